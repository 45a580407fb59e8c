"""Paired bootstrap, Holm, chance level and the expected-max curve, on inputs with known answers."""

import math

import numpy as np
import pytest

from textbench.core import predictions
from textbench.reports import stats


def labels_and_truth(n, seed=0, classes=2):
    rng = np.random.default_rng(seed)
    return rng.integers(0, classes, n), rng


def with_accuracy(labels, accuracy, rng, classes=2):
    """Predictions right on a random ``accuracy`` share of the examples, wrong elsewhere."""
    right = rng.random(len(labels)) < accuracy
    return np.where(right, labels, (labels + 1) % classes)


def test_pack_round_trip_is_small():
    labels, _ = labels_and_truth(25_000, classes=5)
    text = predictions.pack(labels)
    assert np.array_equal(predictions.unpack(text), labels)
    assert len(text) < 25_000  # far under the ~50 KB of a JSON list
    with pytest.raises(ValueError):
        predictions.pack([-1, 2])


def test_paired_finds_a_known_difference():
    labels, rng = labels_and_truth(2000)
    a = np.stack([with_accuracy(labels, 0.80, rng) for _ in range(3)])
    b = np.stack([with_accuracy(labels, 0.70, rng) for _ in range(3)])
    r = stats.paired_difference(a, b, labels, seed=1)
    observed = (a == labels).mean() - (b == labels).mean()
    assert r.diff == pytest.approx(observed)
    assert 0 < r.ci_low < observed < r.ci_high
    assert r.p_value < 0.001
    assert (r.n_seeds_a, r.n_seeds_b, r.n_examples) == (3, 3, 2000)


def test_paired_finds_nothing_on_identical_predictions():
    labels, rng = labels_and_truth(1500)
    a = np.stack([with_accuracy(labels, 0.75, rng) for _ in range(3)])
    r = stats.paired_difference(a, a.copy(), labels, seed=2)
    assert r.diff == 0 and r.ci_low < 0 < r.ci_high and r.p_value > 0.5
    one = stats.paired_difference(a[:1], a[:1], labels)  # one deterministic run a side: no noise at all
    assert (one.diff, one.ci_low, one.ci_high, one.p_value) == (0, 0, 0, 1.0)


def test_pairing_is_kept_across_examples():
    """B = A except 30 of 1000 examples that only A gets right: the paired standard error is that of
    the 30 discordant examples, sqrt(30)/1000 ~ 0.0055, far below an unpaired ~0.022."""
    labels, rng = labels_and_truth(1000)
    a = with_accuracy(labels, 0.6, rng)
    b = a.copy()
    flip = np.flatnonzero(a == labels)[:30]
    b[flip] = (labels[flip] + 1) % 2
    r = stats.paired_difference(a[None], b[None], labels, seed=3)
    assert r.diff == pytest.approx(0.03)
    se = (
        math.sqrt(30 * (1 - 0.03) + 970 * 0.03**2) / 1000 / math.sqrt(1000 / 999)
    )  # sd of per-example diffs / sqrt(n)
    assert (r.ci_high - r.ci_low) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert r.ci_low > 0 and r.p_value < 0.001


def test_seed_spread_widens_the_interval():
    labels, rng = labels_and_truth(3000)
    steady = np.stack([with_accuracy(labels, 0.75, rng) for _ in range(4)])
    shaky = np.stack([with_accuracy(labels, acc, rng) for acc in (0.60, 0.90, 0.65, 0.85)])
    base = with_accuracy(labels, 0.75, rng)[None]
    narrow = stats.paired_difference(steady, base, labels, seed=4)
    wide = stats.paired_difference(shaky, base, labels, seed=4)
    # seed means 0.6..0.9: their standard error (~0.07) dominates the example noise (~0.01)
    assert (wide.ci_high - wide.ci_low) > 4 * (narrow.ci_high - narrow.ci_low)


def test_holm_by_hand():
    reject, adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert reject.tolist() == [True, False, False, True]
    assert stats.holm([])[0].size == 0


def test_expected_max_closed_form():
    # max of 2 draws from {1, 2, 3}: P = 1/9, 3/9, 5/9 -> mean 22/9, E[X^2] = 58/9, var = 38/81
    mean, sd = stats.expected_max([3.0, 1.0, 2.0], 2)
    assert mean == pytest.approx(22 / 9) and sd == pytest.approx(math.sqrt(38 / 81))
    values = [0.5, 0.61, 0.7, 0.72, 0.9]
    assert stats.expected_max(values, 1)[0] == pytest.approx(np.mean(values))
    assert stats.expected_max(values, 1)[1] == pytest.approx(np.std(values))
    rng = np.random.default_rng(0)
    draws = rng.choice(values, size=(200_000, 4)).max(axis=1)
    assert stats.expected_max(values, 4) == pytest.approx((draws.mean(), draws.std()), abs=2e-3)
    assert stats.expected_max(values, 500)[0] == pytest.approx(0.9)


def test_a_family_at_chance_is_detected():
    labels = np.array([0] * 600 + [1] * 400)
    majority = np.zeros((2, 1000), dtype=int)  # predicts the majority class, both seeds
    rate, p, at_chance = stats.chance(majority, labels)
    assert rate == 0.6 and at_chance and p > 0.05
    rng = np.random.default_rng(0)
    good = np.stack([with_accuracy(labels, 0.85, rng) for _ in range(2)])
    assert stats.chance(good, labels)[2] is False
    slightly = np.stack([with_accuracy(labels, 0.63, rng) for _ in range(2)])
    assert stats.chance(slightly, labels)[2] is False  # pooled 2000 predictions: 0.63 clears 0.60
    assert stats.chance(slightly, labels, ci_low=0.55)[2] is True  # but a seed CI reaching 0.55 does not


def test_chance_with_three_classes():
    labels = np.array([0] * 500 + [1] * 300 + [2] * 200)
    rate, _, at_chance = stats.chance(np.zeros((3, 1000), dtype=int), labels)
    assert rate == 0.5 and at_chance
    rng = np.random.default_rng(1)
    assert not stats.chance(with_accuracy(labels, 0.7, rng, classes=3), labels)[2]


def test_a_p_value_at_the_bootstraps_floor_reads_as_a_bound():
    """80% vs 70% right on 2,000 examples: no draw of 4,000 crosses zero, so p is 2 / 4,001, the smallest
    the bootstrap can give, and the report must not print it as if it were the p-value ("p = 0.0015" after
    Holm over 3 reads as an estimate; it is only an upper bound)."""
    labels, rng = labels_and_truth(2000)
    a = np.stack([with_accuracy(labels, 0.80, rng) for _ in range(3)])
    b = np.stack([with_accuracy(labels, 0.70, rng) for _ in range(3)])
    far = stats.paired_difference(a, b, labels, seed=1)
    assert far.at_floor and far.p_value == pytest.approx(2 / (stats.N_BOOT + 1))
    near = stats.paired_difference(
        a, np.stack([with_accuracy(labels, 0.80, rng) for _ in range(3)]), labels, seed=1
    )
    assert not near.at_floor and near.p_value > 0.01
    assert stats.fmt_p(3 * far.p_value, far.at_floor) == "p ≤ 0.0015"
    assert (
        stats.fmt_p(0.0015, np.bool_(True)) == "p ≤ 0.0015" and stats.fmt_p(0.0015, math.nan) == "p = 0.0015"
    )
    assert stats.fmt_p(far.p_value, True) == "p < 0.001"  # below 0.001 it reads as a bound anyway

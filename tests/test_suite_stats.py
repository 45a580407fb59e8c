"""The cross-dataset statistics of the suite report against hand computations and known answers:
average ranks and the Friedman statistic on a small table, the Bayesian signed-rank test on identical
scores (all mass on "practically equal") and on a 10-point lead everywhere ("better" near 1), win /
tie / loss from per-dataset paired tests, and the first sentence with few datasets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from textbench.reports import suite_stats

# Four datasets, three entries. Ranks per row (1 = best, ties share):
#   d1: a .90 b .80 c .70 -> 1 2 3
#   d2: a .85 b .86 c .60 -> 2 1 3
#   d3: a .70 b .70 c .65 -> 1.5 1.5 3
#   d4: a .95 b .90 c .91 -> 1 3 2
# sums: a 5.5, b 7.5, c 11 -> means 1.375, 1.875, 2.75.
SCORES = pd.DataFrame(
    {"a": [0.90, 0.85, 0.70, 0.95], "b": [0.80, 0.86, 0.70, 0.90], "c": [0.70, 0.60, 0.65, 0.91]},
    index=["d1", "d2", "d3", "d4"],
)


def test_average_ranks_by_hand():
    ranks = suite_stats.average_ranks(SCORES)
    assert ranks.index.tolist() == ["a", "b", "c"]
    assert ranks.to_numpy() == pytest.approx([1.375, 1.875, 2.75])


def test_friedman_statistic_by_hand():
    """Friedman's chi-square with the tie correction (as scipy computes it):
    chi2 = 12 / (n k (k+1)) * sum R_j^2 - 3 n (k+1), divided by 1 - sum(t^3 - t) / (n (k^3 - k)).
    n=4, k=3: 12/48 * (5.5^2 + 7.5^2 + 11^2) - 48 = 0.25 * 207.5 - 48 = 3.875; one tie of two in d3:
    correction 1 - (8 - 2) / (4 * 24) = 0.9375 -> chi2 = 4.1333..., p = exp(-chi2 / 2) (chi2, 2 dof)."""
    statistic, p = suite_stats.friedman(SCORES)
    expected = 3.875 / 0.9375
    assert statistic == pytest.approx(expected)
    assert p == pytest.approx(math.exp(-expected / 2))
    assert suite_stats.friedman(SCORES[["a", "b"]]) is None  # fewer than three entries: no Friedman


def test_bayesian_signed_rank_known_answers():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.6, 0.85, 8)
    same = suite_stats.bayes_pair(x, x, rope=0.01)
    assert same == pytest.approx((0.0, 1.0, 0.0))
    better = suite_stats.bayes_pair(x + 0.10, x, rope=0.01)
    assert better[0] > 0.95 and better[2] < 0.01
    worse = suite_stats.bayes_pair(x, x + 0.10, rope=0.01)
    assert worse[2] > 0.95
    inside = suite_stats.bayes_pair(x + 0.004, x, rope=0.01)  # a lead inside the ROPE is "equal"
    assert inside[1] > 0.95


def test_win_tie_loss_from_each_datasets_paired_test():
    def pairs(a, b, significant):
        return pd.DataFrame({"a": [a], "b": [b], "significant": [significant]})

    per = {
        "d1": pairs("cnn", "rnn", True),  # cnn wins
        "d2": pairs("rnn", "cnn", True),  # rnn wins
        "d3": pairs("cnn", "rnn", False),  # tie
        "d4": pairs("cnn", "rnn", True),  # cnn wins
    }
    assert suite_stats.win_tie_loss(per, "cnn", "rnn") == (2, 1, 1)
    assert suite_stats.win_tie_loss(per, "rnn", "cnn") == (1, 1, 2)


def test_rank_test_needs_five_datasets_and_the_headline_says_so():
    assert suite_stats.rank_test(SCORES) is None
    ranks = suite_stats.average_ranks(SCORES)
    bayes = suite_stats.bayes_pairs(SCORES, 0.01, list(ranks.index))
    text = suite_stats.headline(SCORES, ranks, bayes, 0.01, ["a", "b"], None)
    assert text.startswith("Across 4 datasets a ranks first (mean rank 1.4); a ranks ahead of b on 2 of 4")
    assert "cannot establish a general winner" in text and "at least 5" in text
    five = pd.concat([SCORES, SCORES.iloc[[0]].rename(index={"d1": "d5"}) + 0.01])
    result = suite_stats.rank_test(five)
    assert result is not None and result.omnibus in ("friedman", "anova", "wilcoxon", "ttest", "bayes")
    test = {"name": "Friedman", "p": float(result.pvalue)}
    text = suite_stats.headline(five, suite_stats.average_ranks(five), bayes, 0.01, ["a", "b"], test)
    assert "the rank test is" in text and "cannot establish" not in text


def test_the_critical_difference_diagram_is_a_png_from_five_datasets():
    """Friedman + Nemenyi (autorank's nonparametric mode) drawn by autorank; looked at by eye during
    review: rnn alone at rank 3, cnn and the baseline tied at 1.5 joined by a bar."""
    import base64

    from textbench.reports import suite

    scores = pd.DataFrame(
        {
            "cnn": [0.86, 0.78, 0.97, 0.88, 0.89, 0.75],
            "rnn": [0.80, 0.70, 0.95, 0.82, 0.85, 0.70],
            "baseline": [0.88, 0.76, 0.98, 0.86, 0.90, 0.74],
        }
    )
    result = suite_stats.rank_test(scores, force_mode="nonparametric")
    assert (result.omnibus, result.posthoc) == ("friedman", "nemenyi")
    assert result.rankdf.loc["rnn", "meanrank"] == 3.0 and result.rankdf.loc["cnn", "meanrank"] == 1.5
    png = base64.b64decode(suite.cd_diagram(result))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert suite.cd_diagram(None) is None

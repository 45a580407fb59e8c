"""--stop-when-converged on synthetic studies: Optuna's Terminator (regret bound against the
binomial standard error of validation accuracy) stops a search that is flat from trial 5; stagnation
within noise stops one whose trials are noise around a plateau (the flagship's RNN), where the
regret bound stays high; a search that keeps improving runs to --trials. Run through ``run_study``
with the benchmark's own stop rule (``search.studies.stopping``), as a family's search runs."""

from __future__ import annotations

import random
from types import SimpleNamespace

import optuna
import pytest

from textbench.search.converge import ATTR, ConvergenceRule, best_gain
from textbench.search.pruners import binomial_se
from textbench.search.runner import run_study
from textbench.search.studies import stopping

N_VALIDATION = 2500  # the flagship's validation size: a standard error of about 0.008 at 0.8
CAP = 30
MIN_TRIALS = 10


WINDOW = 15


def bench(min_trials=MIN_TRIALS, stop_when_converged=True, stagnation_trials=WINDOW):
    search = SimpleNamespace(
        stop_when_converged=stop_when_converged,
        min_trials=min_trials,
        stagnation_trials=stagnation_trials,
        seed=0,
        time_budget=None,
    )
    return SimpleNamespace(
        search=search, data=SimpleNamespace(splits={"validation": [0] * N_VALIDATION}), budget=None
    )


def run(objective, **kwargs):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    callbacks = []
    stop = stopping(bench(**kwargs), study, callbacks)
    counts = run_study(study, objective, CAP, callbacks=callbacks, progress=False, stop=stop)
    return study, counts


def space(trial):
    trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    trial.suggest_int("hidden_size", 16, 256)


def flat_from_5(trial):
    """Climbs for five trials, then every configuration is within 0.3 points of 0.80."""
    space(trial)
    noise = random.Random(trial.number).gauss(0, 0.003)
    return 0.55 + 0.05 * trial.number if trial.number < 5 else 0.80 + noise


def noisy_plateau(trial):
    """Every configuration scores 0.58 plus noise of 2 points, far more than the 0.99-point standard
    error at 2,500 validation rows: the flagship's RNN, whose 50 trials were all within noise."""
    space(trial)
    return 0.58 + random.Random(1000 + trial.number).gauss(0, 0.02)


def improving(trial):
    """Every trial is 1.5 points better than the one before (far more than the 0.8-point noise)."""
    space(trial)
    return 0.3 + 0.015 * trial.number + random.Random(trial.number).gauss(0, 0.002)


def test_a_flat_search_stops_early_and_says_why():
    study, counts = run(flat_from_5)
    assert MIN_TRIALS <= counts.finished < CAP / 2
    n = counts.finished
    assert study.user_attrs["stop_reason"].startswith(
        f"converged after {n} trials ({n} completed): the regret"
    )
    assert study.user_attrs["stopped_at"] == counts.finished
    # the criterion per trial, from the first trial the rule may judge
    history = study.user_attrs[ATTR]
    assert sorted(map(int, history)) == list(range(MIN_TRIALS - 1, counts.finished))
    bound, error, gain = history[str(counts.finished - 1)]
    assert bound < error == pytest.approx(binomial_se(study.best_value, N_VALIDATION))
    assert gain is None  # the window of 15 is not full yet: the regret bound stopped it


def test_a_search_of_noise_around_a_plateau_stops_by_stagnation():
    study, counts = run(noisy_plateau)
    reason = study.user_attrs["stop_reason"]
    assert f"in the last {WINDOW} trials, less than its binomial standard error" in reason, reason
    assert WINDOW < counts.finished < CAP
    history = study.user_attrs[ATTR]
    bound, error, gain = history[str(counts.finished - 1)]
    assert bound >= error  # the regret bound alone would not have stopped it
    # the gain by hand: the best of all trials against the best of those before the last 15
    values = [t.value for t in sorted(study.trials, key=lambda t: t.number)]
    assert gain == pytest.approx(max(values) - max(values[:-WINDOW])) and gain < error
    # and no earlier trial had both a full window and a gain under the noise
    for number in range(MIN_TRIALS - 1, counts.finished - 1):
        b, e, g = history[str(number)]
        assert b >= e and (g is None or g >= e)


def test_an_improving_search_runs_to_the_cap():
    study, counts = run(improving)
    assert counts.finished == CAP
    assert "stop_reason" not in study.user_attrs
    assert all(bound >= error for bound, error, _ in study.user_attrs[ATTR].values())
    assert all(gain is None or gain > 0.2 for _, _, gain in study.user_attrs[ATTR].values())


def test_the_gain_counts_pruned_trials_in_the_window():
    """Values 0.5, 0.7, pruned, 0.72, 0.71 (numbers 0-4), window 3: the window is trials 2-4, the
    best before it 0.7, the best now 0.72, so the gain is 0.02; window 4 leaves only 0.5 before it."""
    study = optuna.create_study(direction="maximize")
    pruned = optuna.trial.TrialState.PRUNED
    for value, state in [(0.5, None), (0.7, None), (None, pruned), (0.72, None), (0.71, None)]:
        study.add_trial(
            optuna.trial.create_trial(state=pruned) if state else optuna.trial.create_trial(value=value)
        )
    trials = study.get_trials(deepcopy=False)
    assert best_gain(trials, 3) == pytest.approx(0.02)
    assert best_gain(trials, 4) == pytest.approx(0.22)
    assert best_gain(trials, 5) is None  # no trial before the window


def test_no_stop_before_the_minimum():
    study, counts = run(flat_from_5, min_trials=25)
    assert counts.finished >= 25


def test_the_rule_is_off_without_the_option():
    assert stopping(bench(stop_when_converged=False), None, []) is None


def test_the_rule_needs_a_validation_size():
    with pytest.raises(ValueError):
        ConvergenceRule(0)

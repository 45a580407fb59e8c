"""The noise-margin pruner on synthetic learning curves (no training), and on a real small study.

Expected numbers come from hand arithmetic: on 2,500 validation rows the binomial standard error
of an accuracy p is sqrt(p(1-p)/2500), 0.0100 at p=0.5 and 0.00997 at p=0.54.
"""

from __future__ import annotations

import math
import statistics

import optuna
import pytest
from optuna.trial import TrialState

from textbench.search.objective import Objective
from textbench.search.pruners import NoiseMarginPruner, binomial_se
from textbench.search.study import make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)

STEPS = (500, 1000, 1500, 2000, 2500)
# Three ordinary configurations: a quick start, then a plateau near 0.6.
ORDINARY = [
    (0.52, 0.54, 0.58, 0.60, 0.61),
    (0.51, 0.53, 0.57, 0.59, 0.60),
    (0.53, 0.55, 0.59, 0.61, 0.62),
]
# At chance while the others move (within 2 SE of their median at every step), then the best.
SLOW_STARTER = (0.505, 0.53, 0.57, 0.70, 0.80)
# Still at chance at step 1000 while the median is 0.54: 0.04 = 4 SE below.
BAD = (0.50, 0.50, 0.50, 0.50, 0.50)


def run_curve(study: optuna.Study, curve) -> tuple[TrialState, int | None]:
    """Report ``curve`` step by step as a trial would; (final state, step at which it was pruned)."""
    trial = study.ask()
    for step, value in zip(STEPS, curve, strict=True):
        trial.report(value, step)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED, step
    study.tell(trial, max(curve))
    return TrialState.COMPLETE, None


def study_with(pruner, curves) -> tuple[optuna.Study, list]:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    return study, [run_curve(study, c) for c in curves]


def margin_pruner(**kwargs) -> NoiseMarginPruner:
    return NoiseMarginPruner(2500, **{"k": 2.0, "n_startup_trials": 3, "n_warmup_steps": 500, **kwargs})


def test_binomial_standard_error_matches_the_closed_form():
    # Agresti-Coull: p~ = (x + 2) / (n + 4), se = sqrt(p~ (1 - p~) / (n + 4)).
    assert binomial_se(0.5, 2500) == pytest.approx(math.sqrt(0.25 / 2504))
    assert binomial_se(0.5, 2500) == pytest.approx(0.01, rel=1e-3)
    assert binomial_se(1.0, 96) == pytest.approx(0.014)  # p~ = 98/100: sqrt(0.98 * 0.02 / 100)
    assert binomial_se(0.0, 96) == pytest.approx(0.014)


def test_the_slow_starter_that_wins_is_kept_and_the_bad_trial_is_pruned_at_its_first_clear_gap():
    study, outcomes = study_with(margin_pruner(), [*ORDINARY, SLOW_STARTER, BAD])
    assert outcomes[3] == (TrialState.COMPLETE, None)
    assert study.best_trial.number == 3 and study.best_value == 0.80
    # Step 500: the four others' median is (0.51 + 0.52) / 2 = 0.515, margin 2 x 0.009994: 0.50 > 0.4950.
    # Step 1000: their median is (0.53 + 0.54) / 2 = 0.535, margin 0.01995: 0.50 < 0.5151.
    assert outcomes[4] == (TrialState.PRUNED, 1000)


def test_optunas_median_pruner_would_have_pruned_the_slow_starter():
    """The point of the margin: the same curves under MedianPruner lose the best trial at step 500."""
    study, outcomes = study_with(
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=500), [*ORDINARY, SLOW_STARTER]
    )
    assert outcomes[3] == (TrialState.PRUNED, 500)


def test_pruned_trials_count_in_the_reference():
    """A reference of completed trials only rises with every prune; here two trials pruned at step
    1000 with 0.40 pull its median down from 0.54 to 0.53, so a trial at 0.515 (> 0.53 - 0.01996)
    survives, while against the completed trials alone (0.54 - 0.01993 = 0.5201) it would not."""
    low = (0.40, 0.40, 0.40, 0.40, 0.40)
    probe = (0.52, 0.515, 0.6, 0.6, 0.6)
    study, outcomes = study_with(margin_pruner(n_warmup_steps=1000), [*ORDINARY, low, low, probe])
    assert [o[0] for o in outcomes[3:5]] == [TrialState.PRUNED, TrialState.PRUNED]
    assert outcomes[5] == (TrialState.COMPLETE, None)
    decision = study.pruner.decisions[5]
    assert decision.step == 2500 and decision.n_compared == 3  # the pruned ones stopped before 2500

    _, alone = study_with(margin_pruner(n_warmup_steps=1000), [*ORDINARY, probe])
    assert alone[3] == (TrialState.PRUNED, 1000)


def test_no_decision_before_the_startup_trials_or_the_warmup():
    _, outcomes = study_with(margin_pruner(), [ORDINARY[0], ORDINARY[1], BAD])  # only 2 complete
    assert outcomes[2][0] == TrialState.COMPLETE
    _, outcomes = study_with(margin_pruner(n_warmup_steps=1001), [*ORDINARY, BAD])
    assert outcomes[3] == (TrialState.PRUNED, 1500)  # 1000 < warm-up; at 1500 median 0.58


def test_k_zero_is_the_plain_median_rule_and_a_larger_k_waits_longer():
    _, outcomes = study_with(margin_pruner(k=0.0), [*ORDINARY, SLOW_STARTER])
    assert outcomes[3] == (TrialState.PRUNED, 500)
    _, outcomes = study_with(margin_pruner(k=8.0), [*ORDINARY, BAD])
    # margin 8 SE: 0.0797 at 0.54 (0.50 is not below 0.4603), 0.0790 at 0.58 (0.50 < 0.5010).
    assert outcomes[3] == (TrialState.PRUNED, 1500)


def test_minimisation_prunes_values_above_the_reference():
    study = optuna.create_study(direction="minimize", pruner=margin_pruner())
    for curve in ORDINARY:
        run_curve(study, [1 - v for v in curve])
    # Step 500: 0.50 is 0.0200 above the median 0.48, more than the margin 2 x 0.009992.
    assert run_curve(study, [1 - v for v in BAD]) == (TrialState.PRUNED, 500)


def test_make_pruner_builds_the_default_from_the_validation_size():
    pruner = make_pruner("margin", max_steps=2500, eval_steps=500, n_validation=2500)
    assert isinstance(pruner, NoiseMarginPruner)
    assert (pruner.n_validation, pruner.k, pruner.n_startup_trials, pruner.n_warmup_steps) == (
        2500,
        2.0,
        3,
        500,
    )


@pytest.mark.slow
def test_no_trial_of_a_real_small_study_is_pruned_within_noise_of_the_median(tiny_data, tmp_path):
    """A real study (tiny data, the real objective and Trainer): every pruned trial's value at its
    pruning step is more than one standard error below the median of the trials finished before it
    that reported at that step, recomputed here from the storage, not from the pruner."""
    from textbench.core.settings import TrainSettings

    n_val = len(tiny_data.splits["validation"])
    settings = TrainSettings(max_steps=60, eval_steps=10, batch_size=8, patience=0)
    pruner = make_pruner(
        "margin", max_steps=settings.max_steps, eval_steps=settings.eval_steps, n_validation=n_val
    )
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=3)
    )
    objective = Objective(family="cnn", data=tiny_data, settings=settings, study_seed=0, work_dir=tmp_path)
    study.optimize(objective, n_trials=7, catch=())
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "the study must prune something for this test to say anything"
    for trial in pruned:
        step = int(trial.user_attrs["steps_trained"])
        before = [
            t
            for t in study.trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and t.datetime_complete < trial.datetime_complete
            and t.number != trial.number
            and step in t.intermediate_values
        ]
        median = statistics.median(t.intermediate_values[step] for t in before)
        se = math.sqrt(median * (1 - median) / n_val)  # plain binomial, no adjustment
        assert trial.intermediate_values[step] < median - se, (trial.number, step, median)
        assert trial.user_attrs["pruned_median"] == pytest.approx(median)

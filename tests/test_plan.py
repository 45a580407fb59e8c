"""The time-budget planner (search.plan), the durable clock (search.spent) and the running budget
(search.budget) on synthetic step rates: every expected count below is worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from optuna.trial import TrialState

from textbench.core.durations import format_duration, parse_duration
from textbench.search.budget import REPORT_SECONDS, Budget
from textbench.search.overall import Overall
from textbench.search.plan import Rates, plan_trials
from textbench.search.spent import SpentClock

# cnn 0.01 s/step, rnn 0.03 s/step, 100 steps a trial and a final run, 10 s of baseline:
# one trial of each family = 1 s + 3 s = 4 s; a final stage of 2 runs per family = 2 + 6 = 8 s.
RATES = Rates(
    seconds_per_step={"cnn": 0.01, "rnn": 0.03}, trial_steps=100, final_steps=100, baseline_seconds=10
)


@pytest.mark.parametrize(
    "text, seconds",
    [("90m", 5400), ("1h30m", 5400), ("5400", 5400), ("45s", 45), ("2h", 7200), ("1m30s", 90), (120, 120)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1x", "", "m", "0", "-5", "90 minutes", "1.5.2h", "nan"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration():
    assert [format_duration(s) for s in (45, 90, 3900)] == ["45s", "1m30s", "1h05m"]


def test_the_final_stage_and_baseline_are_reserved_before_the_searches():
    # 100 s - 18 s reserved (8 s final stage + 10 s baseline) = 82 s: 20 rounds of 4 s fit, 21 do not
    plan = plan_trials(100, RATES, cap=50, finished={}, final_runs=2)
    assert plan.reserved == pytest.approx(18)
    assert plan.per_trial == pytest.approx(4)
    assert plan.trials == 20 and plan.fits


def test_never_more_than_trials():
    assert plan_trials(1000, RATES, cap=10, finished={}, final_runs=2).trials == 10


def test_a_budget_without_room_for_one_trial_per_family_does_not_fit():
    # 21 s - 18 s reserved = 3 s < 4 s for one trial of each family
    plan = plan_trials(21, RATES, cap=50, finished={}, final_runs=2)
    assert not plan.fits and plan.trials == 0
    assert plan_trials(22, RATES, cap=50, finished={}, final_runs=2).trials == 1


def test_resume_counts_time_spent_and_trials_run():
    # 50 s spent, cnn ran 10 trials and rnn 4: 100 - 50 - 18 = 32 s left. Reaching 13 costs
    # 3 x 1 s (cnn) + 9 x 3 s (rnn) = 30 s; 14 would cost 4 + 30 = 34 s.
    plan = plan_trials(100, RATES, cap=50, finished={"cnn": 10, "rnn": 4}, final_runs=2, spent=50)
    assert plan.trials == 13 and plan.left == pytest.approx(50)


def test_final_runs_done_are_not_reserved_again():
    plan = plan_trials(100, RATES, cap=50, finished={}, final_runs=2, final_done={"cnn": 2})
    assert plan.reserved == pytest.approx(16)  # the rnn's 6 s + the baseline's 10 s


def test_workers_share_trials_and_final_runs():
    # (100 - 10 - 8/2) / (4/2) = 43 rounds
    assert plan_trials(100, RATES, cap=50, finished={}, final_runs=2, workers=2).trials == 43


def test_a_family_stopped_by_the_budget_is_the_count_for_the_rest():
    # cnn stopped at 5; even with room for 20 the rnn runs 5, and with room for 2 it still runs 5
    assert plan_trials(100, RATES, cap=50, finished={"cnn": 5}, final_runs=2, ceiling=5).trials == 5
    tight = plan_trials(30, RATES, cap=50, finished={"cnn": 5}, final_runs=2, ceiling=5)
    assert tight.trials == 5 and not tight.fits


def test_time_spent_survives_a_restart(tmp_path):
    now = [0.0]
    clock = SpentClock(tmp_path, clock=lambda: now[0])
    clock.start()
    now[0] = 20 * 60.0  # interrupted at 20 minutes
    clock.save()
    now[0] = 10_000.0  # however long it sat in between
    resumed = SpentClock(tmp_path, clock=lambda: now[0])
    resumed.start()
    assert resumed.spent() == pytest.approx(20 * 60)
    now[0] += 60
    assert resumed.spent() == pytest.approx(21 * 60)
    resumed.save()
    assert SpentClock(tmp_path).before == pytest.approx(21 * 60) and SpentClock(tmp_path).runs == 2


class FakeStudy:
    """What the budget reads and writes of a study: its trials' states and its attributes."""

    def __init__(self, states=()):
        self.user_attrs = {}
        self.states = list(states)

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value

    def get_trials(self, deepcopy=False):
        return [SimpleNamespace(state=TrialState[s]) for s in self.states]


def overall(**kwargs) -> Overall:
    return Overall(families=["cnn", "rnn"], trials=50, final_runs=2, baseline=False, max_steps=100, **kwargs)


def test_budget_replans_as_rates_are_measured(tmp_path):
    now = [0.0]
    clock = SpentClock(tmp_path, clock=lambda: now[0])
    clock.start()
    o = overall()
    o.calibrated.update(cnn=0.01, rnn=0.03)
    o.calibrated_reference.update(cnn=0.01, rnn=0.03)
    budget = Budget(100 + REPORT_SECONDS, clock, o, cap=50)
    # reserved: 8 s final stage + the report's seconds; (100 - 8) / 4 = 23 rounds
    assert budget.replan().trials == 23
    study = FakeStudy()
    budget.watch("cnn", study)
    assert budget.stop(0) is None and study.user_attrs["planned_trials"] == 23
    # the cnn's reference trial runs twice as slow as its calibration: the rnn is assumed twice as slow too
    o.measured("cnn", 100, 2.0, trial=True, complete=True)
    o.reference_rate["cnn"] = 0.02
    o.finished["cnn"] = 1
    now[0] = 2.0
    assert o.rate("rnn") == pytest.approx(0.06)
    # reserved 2 x 100 x (0.02 + 0.06) = 16 s; 100 - 2 - 16 = 82 s; cnn's 22 more at 2 s + rnn's 23 at
    # 6 s = 182 s is too much: n rounds cost 2 (n - 1) + 6 n <= 82 -> n = 10
    assert budget.replan().trials == 10
    for _ in range(9):  # nine more cnn trials at 2 s: 20 s spent; 100 - 20 - 16 = 64 s left; 10 rnn
        o.measured("cnn", 100, 2.0, trial=True, complete=True)  # trials (60 s) fit, an 11th round not
    o.finished["cnn"] = 10
    now[0] = 20.0
    study.states = ["COMPLETE"] * 10
    reason = budget.stop(10)
    assert reason.startswith("time budget: 10 trials per family (of --trials 50)")
    assert budget.ceiling == 10 and o.trials == 10 and study.user_attrs["planned_trials"] == 10


def test_a_trial_another_worker_runs_counts_as_run(tmp_path):
    """With --workers, the plan never drops below a count some family already claimed: the rnn's 4th
    trial runs in a helper while worker 0 asks about the cnn, so the cnn gets its 4th too."""
    now = [0.0]
    clock = SpentClock(tmp_path, clock=lambda: now[0])
    clock.start()
    o = overall(workers=2)
    o.calibrated.update(cnn=0.01, rnn=0.03)
    budget = Budget(100 + REPORT_SECONDS, clock, o, cap=50)
    cnn, rnn = FakeStudy(["COMPLETE"] * 3), FakeStudy(["COMPLETE"] * 3 + ["RUNNING"])
    budget.watch("cnn", cnn)
    budget.watch("rnn", rnn)
    o.finished.update(cnn=3, rnn=3)
    now[0] = 99.0  # out of time: nothing more fits, but the rnn's 4th is already running
    assert budget.replan().trials == 4
    assert budget.stop(3) is None  # the cnn's 4th
    assert cnn.user_attrs["planned_trials"] == rnn.user_attrs["planned_trials"] == 4
    assert budget.stop(4).startswith("time budget: the searches stop at 4 trials per family")


def test_budget_line_shows_time_left(tmp_path):
    now = [0.0]
    clock = SpentClock(tmp_path, clock=lambda: now[0])
    clock.start()
    o = overall()
    o.calibrated.update(cnn=0.01, rnn=0.03)
    budget = Budget(300, clock, o, cap=50)
    o.extra = budget.left
    now[0] = 75
    assert "budget 3m45s left of 5m00s" in o.line()
    assert o.remaining_seconds() is not None  # calibrated: the first ETA is known before any trial


@pytest.mark.parametrize(
    "left, completed, expected",
    [
        (50, {"cnn": 5, "rnn": 5}, (3, 3)),  # (3 + 1) configurations x 3 seeds x 4 s = 48 s fits
        (40, {"cnn": 5, "rnn": 5}, (2, 3)),  # 48 does not; (2 + 1) x 3 x 4 = 36 does
        (20, {"cnn": 5, "rnn": 5}, (1, 2)),  # (1 + 1) x 3 x 4 = 24 does not; 2 seeds: 16 does
        (10, {"cnn": 5, "rnn": 5}, (1, 2)),  # nothing fits: the smallest, never under 2 seeds
        (42, {"cnn": 1, "rnn": 5}, (3, 3)),  # a cnn with one completed trial: (2 x 1 + 4 x 3) x 3 = 42
        (40, {"cnn": 1, "rnn": 5}, (2, 3)),  # 42 does not; (2 x 1 + 3 x 3) x 3 = 33 does
    ],
)
def test_the_final_stage_is_cut_to_what_the_searches_left(tmp_path, left, completed, expected):
    """cnn 1 s and rnn 3 s per final run of 100 steps, one worker: one configuration x one seed of both
    families costs 4 s; the report's 30 s come off first. Fewer configurations go before fewer seeds."""
    clock = SpentClock(tmp_path, clock=lambda: 0.0)
    clock.start()
    o = overall()
    o.calibrated.update(cnn=0.01, rnn=0.03)
    budget = Budget(REPORT_SECONDS + left, clock, o, cap=50)
    fit = budget.final_stage(completed, top_k=3, seeds=3, reference=True)
    assert (fit["top_k"], fit["final_seeds"]) == expected
    assert ("why" in fit) == (expected != (3, 3))
    assert budget.record()["final_stage"] == fit


def test_the_reserve_uses_each_familys_final_run_estimate():
    # one final run: cnn 5 s, rnn 2 s (not 1 s and 3 s from the rates); 2 runs each + 10 s baseline
    rates = Rates(**{**RATES.__dict__, "final_run_seconds": {"cnn": 5.0, "rnn": 2.0}})
    plan = plan_trials(100, rates, cap=50, finished={}, final_runs=2)
    assert plan.reserved == pytest.approx(2 * 5 + 2 * 2 + 10)
    assert plan.trials == 19  # (100 - 24) / 4 = 19 rounds


def test_a_plan_that_stops_because_the_final_stage_does_not_fit_says_so():
    # both ran 3; 30 s left of 100, the asked final stage and baseline need 18 s + 20 s extra: no room
    plan = plan_trials(100, RATES, cap=50, finished={"cnn": 3, "rnn": 3}, final_runs=7, spent=70)
    assert plan.trials == 3 and not plan.fits
    assert plan.reason() == (
        "the searches stop at 3 trials per family (of --trials 50): the final stage as asked and the "
        "baseline need 38s of the 30s left, so the searches stop and the final stage is fitted to what is "
        "left"
    )


def _timed_study(trials: list[tuple[float, float, float, bool]]):
    """An in-memory study of completed trials: (validation accuracy, wall seconds, seconds per
    validation evaluation, is the course notes' configuration)."""
    import optuna

    from textbench.search.reference import ATTR

    study = optuna.create_study(direction="maximize")
    for value, wall, evaluation, notes in trials:
        attrs = {"wall_seconds": wall, "seconds_per_evaluation": evaluation} | ({ATTR: True} if notes else {})
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE, value=value, params={}, distributions={}, user_attrs=attrs
            )
        )
    return study


def test_a_final_run_costs_its_own_trial_plus_the_test_prediction(tmp_path):
    """The flagship's RNN (2026-12-04): the notes' configuration 68 s a trial, two searched ones 341 s
    and 311 s; the notes' one is the best, so a top-1 final stage re-trains it alone."""
    clock = SpentClock(tmp_path, clock=lambda: 0.0)
    clock.start()
    budget = Budget(1800, clock, overall(), cap=50, top_k=1, test_per_validation=10.0)
    budget.watch(
        "rnn",
        _timed_study([(0.5868, 68.0, 1.0, True), (0.538, 341.0, 3.0, False), (0.51, 311.0, 3.0, False)]),
    )
    assert budget.final_run_seconds("rnn", 1) == [pytest.approx(68 + 10 * 1.0)]
    # top 2: the two best (the notes' one and the 341 s one); the notes' one is not added twice
    assert budget.final_run_seconds("rnn", 2) == [pytest.approx(78), pytest.approx(341 + 30)]
    assert budget.rates().final_run_seconds == {"rnn": pytest.approx(78)}
    assert budget.final_run_seconds("cnn", 1) == []  # no study: the rates' estimate stands


@pytest.mark.parametrize(
    "left, expected, cost",
    [
        # per seed: top 3: cnn 10 + 8 + 6 + 2 = 26, rnn 4 + 20 = 24: 50; top 2: cnn 10 + 8 + 2 = 20,
        # rnn 24: 44; top 1: cnn 10 + 2 = 12, rnn 4: 16. 3 x 3 = 150 and 2 x 3 = 132 do not fit 100
        (100, (3, 2), "1m40s"),  # 3 x 2 = 100 fits exactly: the most that fits, not the top 1 x 3 (48)
        (99, (2, 2), "1m28s"),  # 100 does not; 2 x 2 = 88
        (60, (1, 3), "48s"),  # 88 does not; 1 x 3 = 48
        (40, (1, 2), "32s"),  # 48 does not; 1 x 2 = 32
    ],
)
def test_the_final_stage_is_cut_by_the_configurations_own_costs(tmp_path, left, expected, cost):
    """cnn: the best trial 10 s, the notes' 2 s; rnn: the notes' trial is the best, 4 s (no test
    prediction here). 3 x 3 would re-train cnn's 3 top trials + the notes' and rnn's 2 (the notes' one
    in its top); one worker. The largest final stage that fits is kept, seeds or configurations."""
    clock = SpentClock(tmp_path, clock=lambda: 0.0)
    clock.start()
    o = overall()
    o.calibrated.update(cnn=1.0, rnn=1.0)  # the rates' estimate (100 s a run) would cut to the smallest
    budget = Budget(REPORT_SECONDS + left, clock, o, cap=50)
    budget.watch(
        "cnn",
        _timed_study(
            [(0.6, 2.0, 0, True), (0.9, 10.0, 0, False), (0.8, 8.0, 0, False), (0.7, 6.0, 0, False)]
        ),
    )
    budget.watch("rnn", _timed_study([(0.9, 4.0, 0, True), (0.5, 20.0, 0, False)]))
    fit = budget.final_stage({"cnn": 4, "rnn": 2}, top_k=3, seeds=3, reference=True)
    assert (fit["top_k"], fit["final_seeds"]) == expected
    assert f"about {cost} of {format_duration(left)} left (the asked 2m30s)" in fit["why"]


def test_a_resumed_budget_keeps_the_earlier_runs_plans(tmp_path):
    clock = SpentClock(tmp_path, clock=lambda: 0.0)
    clock.start()
    o = overall()
    o.calibrated.update(cnn=0.01, rnn=0.03)
    budget = Budget(100 + REPORT_SECONDS, clock, o, cap=50)
    budget.replan()  # this run's first plan: 23 trials
    earlier = [{"spent": 0.0, "trials": 30, "reason": "a"}, {"spent": 40.0, "trials": 12, "reason": "b"}]
    cnn, rnn = FakeStudy(), FakeStudy()
    cnn.user_attrs["time_budget"] = rnn.user_attrs["time_budget"] = {"plans": earlier}
    budget.watch("cnn", cnn)
    budget.watch("rnn", rnn)
    assert [p["trials"] for p in budget.record()["plans"]] == [30, 12, 23]


def _cut_budget(tmp_path, seconds: float) -> Budget:
    """Both families 4 completed trials (claimed 4), one worker, cnn 0.01 and rnn 0.03 s/step at 100
    steps: a round of trials costs 1 + 3 = 4 s. Per seed of the final stage (own trial costs): top 3:
    cnn 10 + 8 + 6 + the notes' 2 = 26, rnn the notes' 4 (in its top) + 20 + 20 = 44: 70; top 2: cnn
    20, rnn 24: 44; top 1: cnn 12, rnn 4: 16. So 3 x 3 = 210 s, 3 x 2 = 140, 2 x 3 = 132, 2 x 2 = 88."""
    clock = SpentClock(tmp_path, clock=lambda: 0.0)
    clock.start()
    o = overall()
    o.calibrated.update(cnn=0.01, rnn=0.03)
    budget = Budget(REPORT_SECONDS + seconds, clock, o, cap=50, top_k=3, seeds=3, reference=True)
    cnn = [(0.6, 2.0, 0, True), (0.9, 10.0, 0, False), (0.8, 8.0, 0, False), (0.7, 6.0, 0, False)]
    rnn = [(0.9, 4.0, 0, True), (0.5, 20.0, 0, False), (0.45, 20.0, 0, False), (0.4, 20.0, 0, False)]
    budget.watch("cnn", _timed_study(cnn))
    budget.watch("rnn", _timed_study(rnn))
    return budget


def test_when_the_asked_final_stage_no_longer_fits_the_searches_go_on_in_what_a_smaller_one_leaves(
    tmp_path,
):
    # 100 s left: 3 x 3 (210 s) leaves no room, so the searches would stop at 4 and leave 100 s for a
    # final stage the end cuts anyway. The largest that fits is 2 x 2 (88 s): 12 s = 3 rounds more.
    budget = _cut_budget(tmp_path, 100)
    plan = budget.replan()
    assert budget.cut == (2, 2) and plan.trials == 7
    assert plan.reserved == pytest.approx(88 + REPORT_SECONDS)
    assert (
        "with the final stage cut to the top 2 x 2 seeds (of --top-k 3 x --final-seeds 3), the largest"
        in (plan.reason())
    )
    assert budget.overall.final_runs == (2 + 1) * 2  # the ETA counts the final stage the plan reserved
    assert budget.stop(4) is None
    assert budget.stop(7).startswith("time budget: 7 trials per family (of --trials 50) fit the budget")


def test_the_cut_is_the_largest_final_stage_that_leaves_room_for_another_round(tmp_path):
    # 90 s: 2 x 2 (88 s) fits but leaves 2 s, less than a round (4 s); 1 x 3 (48 s) leaves 42 s: 10
    # rounds more than the 4 claimed
    budget = _cut_budget(tmp_path, 90)
    plan = budget.replan()
    assert budget.cut == (1, 3) and plan.trials == 14


def test_while_the_asked_final_stage_fits_it_is_reserved_whole(tmp_path):
    # 300 s: 210 s for 3 x 3 leaves 90 s = 22 rounds more than the 4 claimed
    budget = _cut_budget(tmp_path, 300)
    plan = budget.replan()
    assert budget.cut is None and plan.trials == 26
    assert plan.reserved == pytest.approx(210 + REPORT_SECONDS)
    assert budget.overall.final_runs == 2  # the asked count the overall started with


def test_while_the_searches_run_a_top_k_not_yet_filled_is_counted_at_the_familys_mean(tmp_path):
    # rnn: 2 completed (the notes' 4 s, 20 s); its top 3 lacks one configuration, counted at their mean
    # 12 s while the searches run: cnn 26 + rnn (4 + 20 + 12) = 62 s a seed; at the end, with 2
    # completed, the rnn re-trains the 2 it has: 26 + 24 = 50
    clock = SpentClock(tmp_path, clock=lambda: 0.0)
    clock.start()
    budget = Budget(1000, clock, overall(), cap=50, top_k=3, seeds=3, reference=True)
    cnn = [(0.6, 2.0, 0, True), (0.9, 10.0, 0, False), (0.8, 8.0, 0, False), (0.7, 6.0, 0, False)]
    budget.watch("cnn", _timed_study(cnn))
    budget.watch("rnn", _timed_study([(0.9, 4.0, 0, True), (0.5, 20.0, 0, False)]))
    assert budget.stage_seconds(3, 1, None) == pytest.approx(62)
    assert budget.stage_seconds(3, 2, {"cnn": 4, "rnn": 2}) == pytest.approx(2 * 50)


def test_the_refusal_names_the_least_budget_that_starts_and_that_budget_starts(tmp_path):
    # before any trial: cnn 1 s and rnn 3 s a run of 100 steps, one worker. As asked (3 + 1 configs
    # x 3 seeds = 12 runs a family): 12 + 36 = 48 s + the report's 30 = 1m18s; the smallest final stage
    # (1 + 1 configs x 2 seeds = 4 runs): 4 + 12 + 30 = 46 s; a round of trials 4 s
    def budget(seconds):
        clock = SpentClock(tmp_path, clock=lambda: 0.0)
        clock.start()
        o = overall()
        o.calibrated.update(cnn=0.01, rnn=0.03)
        return Budget(seconds, clock, o, cap=50, top_k=3, seeds=3, reference=True)

    refused = budget(40)
    assert not refused.replan().fits
    assert refused.refusal().endswith(
        "the final stage and baseline need 1m18s (46s with the final stage cut to the top 1 x 2 seeds), "
        "0s are already spent: give at least 50s (1m22s for the final stage as asked), or lower "
        "--max-steps, --top-k or --final-seeds"
    )
    started = budget(50)
    plan = started.replan()
    assert plan.fits and plan.trials == 1 and started.cut == (1, 2)

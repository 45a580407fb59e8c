"""The time-budget planner (search.plan), the durable clock (search.spent) and the running budget
(search.budget) on synthetic step rates: every expected count below is worked out by hand."""

from __future__ import annotations

import pytest

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
    def __init__(self):
        self.user_attrs = {}

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def overall(**kwargs) -> Overall:
    return Overall(families=["cnn", "rnn"], trials=50, final_runs=2, baseline=False, max_steps=100, **kwargs)


def test_budget_replans_as_rates_are_measured(tmp_path):
    now = [0.0]
    clock = SpentClock(tmp_path, clock=lambda: now[0])
    clock.start()
    o = overall()
    o.calibrated.update(cnn=0.01, rnn=0.03)
    budget = Budget(100 + REPORT_SECONDS, clock, o, cap=50)
    # reserved: 8 s final stage + the report's seconds; (100 - 8) / 4 = 23 rounds
    assert budget.replan().trials == 23
    study = FakeStudy()
    assert budget.stop(study, 0) is None and study.user_attrs["planned_trials"] == 23
    # the cnn's trials turn out twice as slow as its calibration: the rnn is assumed twice as slow too
    o.measured("cnn", 100, 2.0, trial=True, complete=True)
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
    reason = budget.stop(study, 10)
    assert reason.startswith("time budget: 10 trials per family (of --trials 50)")
    assert budget.ceiling == 10 and o.trials == 10


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

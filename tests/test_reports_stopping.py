"""The report's account of --time-budget and --stop-when-converged (reports.stopping), from studies
that carry what the search stores: unequal counts from convergence are stated as deliberate and not
flagged as an unfair budget; the same counts without a recorded reason are still flagged."""

from __future__ import annotations

import optuna

from textbench.reports import collect, stopping
from textbench.reports.collect import Benchmark


def study(n: int, **attrs) -> optuna.Study:
    s = optuna.create_study(direction="maximize")
    for i in range(n):
        s.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5 + i / 100))
    s.set_user_attr("settings", {"target_trials": 12})
    for key, value in attrs.items():
        s.set_user_attr(key, value)
    return s


def bench(**studies) -> Benchmark:
    return Benchmark(name="b", storage="memory", studies=studies)


def test_unequal_counts_from_convergence_are_stated_not_flagged():
    reason = "converged after 6 completed trials: the regret bound 0.0168 is below ..."
    b = bench(
        cnn=study(12, stop_reason="--trials 12 reached"),
        # trial 4 as a study from before the stagnation test stored it (two values), trial 5 with it
        rnn=study(6, stop_reason=reason, converge={"4": [0.03, 0.0221], "5": [0.0168, 0.0221, 0.004]}),
    )
    text = " ".join(stopping.sentences(b))
    assert f"rnn stopped at 6 trials: {reason}." in text
    from textbench.reports.html import _budget_sentence

    assert _budget_sentence(b, has_final=False).startswith(
        "Every family gets up to 12 trials (--trials; --stop-when-converged stopped rnn earlier, below)"
    )
    assert "different numbers of trials (cnn 12, rnn 6), deliberately" in text
    assert not [w for w in collect.budget_check(b) if "trials" in w]
    frame = stopping.criterion_frame(b)
    assert frame.drop(columns="gain").to_dict("records") == [
        {"family": "rnn", "trial": 4, "bound": 0.03, "error": 0.0221},
        {"family": "rnn", "trial": 5, "bound": 0.0168, "error": 0.0221},
    ]
    assert frame["gain"].isna().tolist() == [True, False] and frame["gain"].iloc[1] == 0.004
    stopping.criterion_curves(frame)  # draws both kinds of record


def test_unequal_counts_without_a_reason_are_still_flagged():
    b = bench(cnn=study(12), rnn=study(6))
    assert stopping.sentences(b) == []
    assert any("different numbers of trials" in w for w in collect.budget_check(b))


def test_the_time_budget_is_stated():
    record = {
        "budget_seconds": 1200,
        "spent_seconds": 1130.5,
        "trials_per_family": 3,
        "cap": 50,
        "reason": "3 trials per family (of --trials 50) fit the budget of 20m00s",
        "plans": [{"spent": 200.0, "trials": 4, "reason": ""}, {"spent": 600.0, "trials": 3, "reason": ""}],
    }
    b = bench(cnn=study(3, time_budget=record, planned_trials=3), rnn=study(3, time_budget=record))
    text = " ".join(stopping.sentences(b))
    assert "Time budget 20m00s for the whole benchmark" in text and "18m50s spent running" in text
    assert "It allowed 3 trials per family: 3 trials per family (of --trials 50)" in text
    assert "recomputed as step rates were measured: 4 after 3m20s, 3 after 10m00s" in text


def test_under_a_budget_the_report_states_the_trials_and_final_stage_that_ran():
    """The budget paragraph of the report: "up to --trials", the final stage as cut, and a family stopped
    by the budget's own reason is not told that reason a second time."""
    from textbench.reports.html import _budget_sentence

    reason = "the searches stop at 3 trials per family (of --trials 50): ..."
    cut = "the final stage was cut to the top 1 x 2 seeds (of --top-k 3 x --final-seeds 3) to fit the budget"
    record = {
        "budget_seconds": 1800,
        "spent_seconds": 894.1,
        "trials_per_family": 3,
        "cap": 50,
        "reason": reason,
        "final_stage": {"top_k": 1, "final_seeds": 2, "asked": [3, 3], "why": cut},
        "plans": [],
    }
    attrs = dict(time_budget=record, stop_reason=f"time budget: {reason}")
    b = bench(cnn=study(3, **attrs), rnn=study(3, **attrs))
    for s in b.studies.values():
        s.set_user_attr("settings", {"target_trials": 50, "top_k": 3, "final_seeds": 3})
    sentence = _budget_sentence(b, has_final=True)
    assert sentence.startswith(
        "Every family gets up to 50 trials (--trials; the time budget below allowed 3)"
    )
    assert "the top 1 configuration per family with 2 seeds (cut to fit the time budget)." in sentence
    text = " ".join(stopping.sentences(b))
    assert "cnn stopped at 3 trials under the budget. rnn stopped at 3 trials under the budget." in text
    assert text.count(reason) == 1

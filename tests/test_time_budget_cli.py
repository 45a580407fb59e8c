"""--time-budget through the real command line on tiny data: a bad duration fails fast, a budget
that cannot hold one trial per family is refused with its numbers before any trial, and a small
budget ends with the planned, equal number of trials per family (asserted on the plan and the
trials run, not on the wall seconds of a loaded machine)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import optuna
import pytest
from helpers import (
    cli_output,
    default_storage,
    error_lines,
    open_storage,
    run_cli,
    search_args,
    start_cli,
    stop_process_tree,
)
from optuna.trial import TrialState


def test_a_bad_duration_is_refused_before_anything_runs(tmp_path):
    result = run_cli("--time-budget", "ninety minutes", "--output-dir", str(tmp_path / "out"), "--no-mlflow")
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: --time-budget: not a duration: 'ninety minutes' (use e.g. 90m, 1h30m, 45s or 5400)"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_budget_too_small_for_one_trial_per_family_is_refused(tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    args = search_args(tiny_data_dir, out, family="cnn,rnn", trials=5, extra=["--workers", "1"])
    result = run_cli(*args, "--time-budget", "5s")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    assert "cannot hold one trial per family plus the final stage" in line and "give at least" in line
    # refused before the study store is created: no store, no time spent
    assert not Path(default_storage(out)).exists()
    assert not (out / "tiny" / "time_spent.json").exists()


@pytest.mark.slow
def test_a_small_budget_ends_with_the_planned_equal_trials(tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    args = search_args(  # a --trials far above what 75 s can hold on a fast idle machine (50 fitted here)
        tiny_data_dir, out, family="cnn,rnn", trials=1000, extra=["--no-mlflow", "--workers", "1"]
    )
    result = run_cli(*args, "--time-budget", "75s")
    assert result.returncode == 0, result.stderr[-3000:]
    studies, finished = finished_trials(out)
    planned = {f: s.user_attrs["planned_trials"] for f, s in studies.items()}
    record = studies["cnn"].user_attrs["time_budget"]
    assert (
        finished["cnn"] == finished["rnn"] == planned["cnn"] == planned["rnn"] == record["trials_per_family"]
    )
    assert 1 <= finished["cnn"] < 1000  # the budget, not --trials, decided
    assert all(s.user_attrs["stop_reason"].startswith("time budget: ") for s in studies.values())
    assert record["budget_seconds"] == 75 and 0 < record["spent_seconds"]
    spent = json.loads((out / "tiny" / "time_spent.json").read_text())
    assert spent["runs"] == 1 and spent["seconds"] >= record["spent_seconds"]
    assert "budget" in result.stderr and "left of 1m15s" in result.stderr  # the benchmark line
    report = (out / "tiny" / "report.html").read_text()
    assert f"It allowed {finished['cnn']} trials per family" in report

    # resumed past its budget (as after an interrupt in an over-long final stage): not refused, nothing
    # more searched, what was started is finished
    before = {f: len(s.trials) for f, s in studies.items()}
    (out / "tiny" / "time_spent.json").write_text(json.dumps({"seconds": 1000.0, "runs": 1}))
    again = run_cli(*args, "--time-budget", "75s")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "of 1m15s already spent" in again.stderr and "calibration" not in again.stderr  # measured rates
    after = {f: len(s.trials) for f, s in finished_trials(out)[0].items()}
    assert after == before

    # resumed with time left (as after a Ctrl-C in the final stage): the budget already ended the
    # searches and fitted the final stage, and that stands: no trial is added, the final stage as fitted
    plans = {f: s.user_attrs["final_plan"] for f, s in finished_trials(out)[0].items()}
    (out / "tiny" / "time_spent.json").write_text(json.dumps({"seconds": 10.0, "runs": 1}))
    third = run_cli(*args, "--time-budget", "75s")
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"the searches ended at {finished['cnn']} trials per family before this run" in third.stderr
    studies = finished_trials(out)[0]
    assert {f: len(s.trials) for f, s in studies.items()} == before
    assert {f: s.user_attrs["final_plan"] for f, s in studies.items()} == plans


@pytest.mark.slow
def test_two_workers_under_a_budget_end_with_equal_trials(tiny_data_dir, tmp_path):
    """With --workers 2 the families take turns and a trial in flight in the other worker counts as
    run: both end with exactly the planned count (they used to differ by one, and the first family
    could spend the time the second needed)."""
    out = tmp_path / "out"
    args = search_args(
        tiny_data_dir,
        out,
        family="cnn,rnn",
        trials=1000,  # far above what 150 s can hold on a fast idle machine
        max_steps=200,
        eval_steps=100,
        extra=["--no-mlflow", "--workers", "2", "--pruner", "none", "--final-seeds", "2", "--top-k", "1"],
    )
    result = run_cli(*args, "--time-budget", "150s")
    assert result.returncode == 0, result.stderr[-3000:]
    studies, finished = finished_trials(out)
    for study in studies.values():  # the final stage the budget fitted, shared with the helper
        plan = study.user_attrs["final_plan"]
        runs = study.user_attrs["final_results"]
        assert len({r["seed"] for r in runs}) == plan["final_seeds"] and plan["asked"] == [1, 2]
    record = studies["cnn"].user_attrs["time_budget"]
    assert finished["cnn"] == finished["rnn"] == record["trials_per_family"], (finished, record)
    assert 2 <= finished["cnn"] < 1000
    workers = {t.user_attrs.get("worker") for s in studies.values() for t in s.trials}
    assert len(workers) == 2  # both processes ran trials
    assert "round" in result.stderr  # the benchmark line names the round


@pytest.mark.slow  # ~40 s: one CLI run, interrupted inside its first long trial
def test_an_interrupted_budget_keeps_its_plans_for_the_resumed_report(tiny_data_dir, tmp_path):
    """A benchmark interrupted under --time-budget stores the plans it made (the resumed run's report
    used to show only the resume's own plan: the first run's 8 trials a family falling to 3, lost)."""
    out, logs = tmp_path / "out", tmp_path / "logs"
    args = search_args(
        tiny_data_dir,
        out,
        family="cnn,rnn",
        trials=1000,
        max_steps=3000,
        eval_steps=10,
        extra=["--no-mlflow", "--workers", "1", "--patience", "0", "--pruner", "none"],
    )
    proc = start_cli(*args, "--time-budget", "20m", log_dir=logs)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                study = optuna.load_study(study_name="tiny-cnn", storage=open_storage(default_storage(out)))
                running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if running and running[0].intermediate_values:  # inside trainer.train()
                    break
            except Exception:  # noqa: BLE001 - the store or the study may not exist yet
                pass
            time.sleep(1)
        assert proc.poll() is None, cli_output(logs)[1][-3000:]
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        stop_process_tree(proc, graceful=False)
    assert code == 130, cli_output(logs)[1][-3000:]
    studies, _ = finished_trials(out)
    for study in studies.values():
        record = study.user_attrs["time_budget"]
        assert record["budget_seconds"] == 1200 and record["plans"], record
        assert record["plans"][0]["trials"] >= 1 and record["plans"][0]["spent"] >= 0


def finished_trials(out):
    """Each family's study of the tiny benchmark in ``out`` and its finished (complete or pruned) trials."""
    storage = open_storage(default_storage(out))
    studies = {f: optuna.load_study(study_name=f"tiny-{f}", storage=storage) for f in ("cnn", "rnn")}
    finished = {
        f: sum(t.state.is_finished() and t.state.name != "FAIL" for t in s.trials) for f, s in studies.items()
    }
    return studies, finished

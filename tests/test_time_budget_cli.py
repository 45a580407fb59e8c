"""--time-budget through the real command line on tiny data: a bad duration fails fast, a budget
that cannot hold one trial per family is refused with its numbers before any trial, and a small
budget ends with the planned, equal number of trials per family (asserted on the plan and the
trials run, not on the wall seconds of a loaded machine)."""

from __future__ import annotations

import json

import optuna
import pytest
from helpers import default_storage, error_lines, open_storage, run_cli, search_args


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
    args = search_args(
        tiny_data_dir, out, family="cnn,rnn", trials=5, extra=["--no-mlflow", "--workers", "1"]
    )
    result = run_cli(*args, "--time-budget", "5s")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    assert "cannot hold one trial per family plus the final stage" in line and "give at least" in line
    storage = open_storage(default_storage(out))
    assert all(not s.n_trials for s in optuna.get_all_study_summaries(storage))


@pytest.mark.slow
def test_a_small_budget_ends_with_the_planned_equal_trials(tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    args = search_args(
        tiny_data_dir, out, family="cnn,rnn", trials=50, extra=["--no-mlflow", "--workers", "1"]
    )
    result = run_cli(*args, "--time-budget", "75s")
    assert result.returncode == 0, result.stderr[-3000:]
    storage = open_storage(default_storage(out))
    studies = {f: optuna.load_study(study_name=f"tiny-{f}", storage=storage) for f in ("cnn", "rnn")}
    finished = {
        f: sum(t.state.is_finished() and t.state.name != "FAIL" for t in s.trials) for f, s in studies.items()
    }
    planned = {f: s.user_attrs["planned_trials"] for f, s in studies.items()}
    record = studies["cnn"].user_attrs["time_budget"]
    assert (
        finished["cnn"] == finished["rnn"] == planned["cnn"] == planned["rnn"] == record["trials_per_family"]
    )
    assert 1 <= finished["cnn"] < 50  # the budget, not --trials, decided
    assert all(s.user_attrs["stop_reason"].startswith("time budget: ") for s in studies.values())
    assert record["budget_seconds"] == 75 and 0 < record["spent_seconds"]
    spent = json.loads((out / "tiny" / "time_spent.json").read_text())
    assert spent["runs"] == 1 and spent["seconds"] >= record["spent_seconds"]
    assert "budget" in result.stderr and "left of 1m15s" in result.stderr  # the benchmark line
    report = (out / "tiny" / "report.html").read_text()
    assert f"It allowed {finished['cnn']} trials per family" in report

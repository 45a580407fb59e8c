"""search.tracking as the MLflow UI shows it: the experiment opens on its runs table, run names are
short, a pruned trial says so in its name, and every run carries its real start and end times."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

import optuna
import pytest
from helpers import mlflow_runs
from optuna.trial import TrialState

from textbench.search.tracking import MlflowTracker


def ms(moment) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A study with a complete and a pruned trial, a final run and a baseline, all through the tracker."""
    tmp_path = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = optuna.create_study(direction="maximize", study_name="exp-cnn")
    study.set_user_attr("arch", "cnn")
    tracker = MlflowTracker(uri, "exp", tmp_path / "art", {"cnn": {}})
    tracker.study_started(study)
    frozen = []
    for value, state in ((0.8, TrialState.COMPLETE), (0.5, TrialState.PRUNED)):
        trial = study.ask()
        time.sleep(0.1)  # the objective builds the model before the run is created
        tracker.trial_started(trial, {})
        time.sleep(0.2)
        trial.report(value, 30)
        frozen.append(study.tell(trial, value if state == TrialState.COMPLETE else None, state=state))
        tracker.trial_finished(study, frozen[-1])
    started = time.time() - 100
    tracker.final_run(
        study,
        {
            "arch": "cnn",
            "trial_number": 0,
            "seed": 3_141_592_653,
            "seed_index": 1,
            "rank": 1,
            "params": {},
            "test_accuracy": 0.7,
            "started_at": started,
            "ended_at": started + 12.5,
        },
    )
    tracker.baseline_run(
        "exp", {"name": "tfidf-logreg", "validation_accuracy": 0.6, "test_accuracy": 0.6, "fit_seconds": 12.6}
    )
    tracker.study_ended(study)
    return uri, study, frozen, mlflow_runs(uri, "exp")


def test_the_experiment_opens_on_its_runs_table(tracked):
    from mlflow.tracking import MlflowClient

    uri, *_ = tracked
    experiment = MlflowClient(uri).get_experiment_by_name("exp")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_run_names_are_short_and_a_pruned_trial_says_so(tracked):
    *_, runs = tracked
    names = {r.info.run_name: r.info.status for r in runs}
    assert names == {
        "exp-cnn": "FINISHED",
        "cnn-0": "FINISHED",
        "cnn-1 pruned@30": "FINISHED",
        "cnn-0 final s2": "FINISHED",
        "tfidf-logreg": "FINISHED",
    }
    assert max(map(len, names)) <= 16


def test_runs_carry_their_real_start_and_end_times(tracked):
    _, study, frozen, runs = tracked
    by_name = {r.info.run_name: r.info for r in runs}
    for trial, name in zip(frozen, ("cnn-0", "cnn-1 pruned@30"), strict=True):
        assert by_name[name].start_time == ms(trial.datetime_start)
        assert by_name[name].end_time == ms(trial.datetime_complete)
        assert by_name[name].end_time - by_name[name].start_time >= 200
    final = by_name["cnn-0 final s2"]
    assert final.end_time - final.start_time == 12_500
    assert final.end_time < time.time() * 1000 - 80_000  # from the record, not from when it was logged
    baseline = by_name["tfidf-logreg"]
    assert abs(baseline.end_time - baseline.start_time - 12_600) <= 1


@pytest.mark.slow  # about 25 s: MLflow waits 20 s on a locked SQLite file before it gives up
def test_a_locked_store_is_retried_in_one_line_without_a_traceback(tmp_path, caplog):
    """Many workers on one SQLite file: a write that outlasts MLflow's own wait is retried, said once,
    and the metric still lands; MLflow's traceback for it must not reach the terminal."""
    path = tmp_path / "mlflow.db"
    uri = f"sqlite:///{path}"
    tracker = MlflowTracker(uri, "exp", tmp_path / "art", {"cnn": {}})
    run = tracker.client.create_run(tracker.experiment_id)
    caplog.set_level(logging.INFO, logger="textbench")
    shown: list[logging.LogRecord] = []  # what MLflow's own stderr handler would print
    sql_log = logging.getLogger("mlflow.store.db.utils")
    seen = logging.Handler()
    seen.emit = shown.append
    sql_log.addHandler(seen)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(22, holder.rollback)
    release.start()
    try:
        tracker.log_metrics(run.info.run_id, {"accuracy": 0.75})
    finally:
        release.join()
        sql_log.removeHandler(seen)
    assert tracker.broken is None
    assert tracker.client.get_run(run.info.run_id).data.metrics == {"accuracy": 0.75}
    assert "MLflow store busy (log metrics); retrying" in caplog.text
    printed = [r.getMessage() for r in shown if r.levelno >= logging.WARNING]
    assert not printed, printed[0][:500]

"""Local workers: how many ``--workers auto`` starts, which device each sees, and MLflow's default
SQLite store under as many concurrent writers (no lost run, no "database is locked").

The end-to-end worker tests (exact target, shared final stage, a killed worker's trial retried) run
on the default journal file and on PostgreSQL in ``test_reliability.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, cli_env, mlflow_runs

from textbench.core.errors import UsageError

GIB = 2**30


@pytest.mark.parametrize(
    ("cores", "memory", "gpus", "trials", "expected"),
    [
        (2, 22 * GIB, 0, 50, 2),  # this machine: one per core
        (16, 22 * GIB, 0, 50, 14),  # memory bounds it: 22 GiB / 1.5 GiB = 14.7
        (16, 1 * GIB, 0, 50, 1),  # never fewer than one
        (8, 64 * GIB, 0, 3, 3),  # never more than the trials
        (16, 128 * GIB, 1, 50, 4),  # one GPU: four small trials share it
        (16, 128 * GIB, 2, 50, 8),
    ],
)
def test_auto_workers_is_one_per_core_bounded_by_memory_gpus_and_trials(
    cores, memory, gpus, trials, expected
):
    from textbench.search.workers import auto_workers

    assert auto_workers(trials, cores=cores, memory=memory, gpus=gpus) == expected


def test_each_worker_sees_one_gpu_round_robin(monkeypatch):
    from textbench.search.workers import device_for, gpu_ids, pin_device

    assert [device_for(i, ["0", "1"]) for i in range(5)] == ["0", "1", "0", "1", "0"]
    assert device_for(3, []) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")  # the user's choice is respected
    assert gpu_ids() == ["2", "5"]
    pin_device(1, gpu_ids())
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_ids() == []


def test_sqlite_storage_runs_one_worker_and_refuses_more(tmp_path):
    from textbench.search.search_settings import SearchSettings
    from textbench.search.workers import worker_count

    sqlite = SearchSettings(storage=f"sqlite:///{tmp_path / 'o.db'}", output_dir=str(tmp_path))
    assert worker_count("auto", sqlite) == 1
    assert worker_count("1", sqlite) == 1
    with pytest.raises(UsageError, match="SQLite locks the whole file"):
        worker_count("2", sqlite)
    journal = SearchSettings(output_dir=str(tmp_path), trials=50)
    assert journal.storage == str(tmp_path / "optuna.journal")
    assert worker_count("3", journal) == 3


def test_an_earlier_versions_sqlite_store_is_kept_as_the_default(tmp_path):
    from textbench.search.search_settings import SearchSettings

    (tmp_path / "optuna.db").write_bytes(b"")
    assert SearchSettings(output_dir=str(tmp_path)).storage == f"sqlite:///{tmp_path / 'optuna.db'}"
    (tmp_path / "optuna.journal").write_bytes(b"")
    assert SearchSettings(output_dir=str(tmp_path)).storage == str(tmp_path / "optuna.journal")


def start_together(procs: list, go: Path, deadline: float = 300) -> None:
    """Touch ``go`` once every process has written its ``ready-i`` file beside it (imports done), so
    they really run at the same time however slow the machine; a process that died is reported."""
    end = time.monotonic() + deadline
    while sum((go.parent / f"ready-{i}").exists() for i in range(len(procs))) < len(procs):
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, [p.communicate()[1][-2000:] for p in dead]
        assert time.monotonic() < end, "the processes did not get ready in time"
        time.sleep(0.05)
    go.touch()


WRITER = """
import sys, time
from pathlib import Path
from textbench.search.tracking import MlflowTracker
uri, go, index, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
(go.parent / f"ready-{index}").touch()
while not go.exists():  # imported: now start together
    time.sleep(0.05)
tracker = MlflowTracker(uri, "conc", go.parent / "art", {})
for i in range(runs):
    tracker.baseline_run("conc", {"name": f"w{index}-r{i}", "C": 1.0, "validation_accuracy": 0.5,
                                  "test_accuracy": 0.5, "fit_seconds": 0.1})
sys.exit(1 if tracker.broken else 0)
"""


@pytest.mark.slow  # ~55 s: four processes import MLflow (CI runs it)
def test_concurrent_writers_on_the_default_mlflow_store_lose_no_run(tmp_path):
    """Four processes open a new SQLite tracking store at the same moment and write 25 runs each
    (create, params, metrics, close). MLflow alone fails here: processes that create the tables at
    once crash ("table runs already exists"); the tracker opens the store one process at a time."""
    writers, runs = 4, 25
    uri, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, uri, str(go), str(i), str(runs)],
            cwd=ROOT,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    start_together(procs, go)
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * writers, [err[-2000:] for _, err in results]
    found = mlflow_runs(uri, "conc")
    assert len(found) == writers * runs
    assert sorted(r.info.run_name for r in found) == sorted(
        f"w{i}-r{j}" for i in range(writers) for j in range(runs)
    )
    assert {r.info.status for r in found} == {"FINISHED"}
    assert all(r.data.metrics["test_accuracy"] == 0.5 for r in found)


CLAIMER = """
import sys, time
from pathlib import Path
import optuna
import textbench.search.runner as runner
from textbench.search.study import make_storage
optuna.logging.set_verbosity(optuna.logging.WARNING)
count = runner.count_trials
def slow_count(study):  # widen the window between counting and asking: only the claim lock closes it
    counts = count(study)
    time.sleep(0.2)
    return counts
runner.count_trials = slow_count
path, go, target, index = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
study = optuna.create_study(storage=make_storage(path), study_name="claims", load_if_exists=True,
                            sampler=optuna.samplers.RandomSampler(seed=0))
(go.parent / f"ready-{index}").touch()
while not go.exists():
    time.sleep(0.02)
def objective(trial):
    time.sleep(0.3)  # long enough that the processes' trials overlap
    return trial.suggest_float("x", 0, 1)
runner.run_study(study, objective, target, progress=False)
"""


def test_processes_sharing_the_default_journal_stop_at_the_exact_target(tmp_path):
    """Three processes run one study on a journal file: exactly ``target`` trials, each run once
    (the claim lock serialises "count, then ask"; counting is slowed down here so that without the
    lock the processes would overshoot)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path, go, target = str(tmp_path / "optuna.journal"), tmp_path / "go", 7
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, path, str(go), str(target), str(i)],
            cwd=ROOT,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    start_together(procs, go)
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in results]
    storage = optuna.storages.JournalStorage(JournalFileBackend(path))  # Optuna's own reader
    trials = optuna.load_study(study_name="claims", storage=storage).trials
    assert len(trials) == target
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # they did share it


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage:UserWarning"
)  # asked outside optimize, as the runner does
def test_the_journal_fails_and_retries_a_trial_whose_worker_stopped_beating(tmp_path):
    """Heartbeats on the journal file, as on PostgreSQL: a RUNNING trial whose heartbeat is older
    than the grace period is FAILed, the stale-trial callback is told, and a retry is enqueued; a
    trial that keeps beating is left alone."""
    import optuna
    from optuna.trial import TrialState

    from textbench.search.study import JournalStorage, StaleTrialHandler

    handler = StaleTrialHandler()
    told = []
    handler.listeners.append(lambda study, trial: told.append(trial.number))
    storage = JournalStorage(
        str(tmp_path / "optuna.journal"), heartbeat_interval=1, grace_period=2, stale_trial_callback=handler
    )
    study = optuna.create_study(storage=storage, study_name="beats")
    lost, alive = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), study.ask()
    storage.record_heartbeat(lost._trial_id)
    for _ in range(6):  # 3 s: only ``alive`` keeps beating
        storage.record_heartbeat(alive._trial_id)
        time.sleep(0.5)
    optuna.storages.fail_stale_trials(study)

    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials[:2]] == [TrialState.FAIL, TrialState.RUNNING]
    assert told == [lost.number]
    retry = trials[2]
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == lost.number
    assert retry.params == {"x": lost.params["x"]}


def test_a_helper_under_a_budget_follows_a_plan_that_rises(monkeypatch):
    """A --workers helper under --time-budget claims within worker 0's plan and waits while the plan
    is full: when the first plan (1 trial per family) later rises to 3, the helper runs its share of
    rounds 2 and 3 and stops only where worker 0 stopped the searches. It used to take "all planned
    trials claimed" as its own stop, ending both families for the rest of the run after round 1."""
    import threading
    from types import SimpleNamespace

    import optuna

    from textbench.search import runner
    from textbench.search.studies import FamilySearch, run_searches, stopping

    monkeypatch.setattr(runner, "POLL_SECONDS", 0.05)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    families = ["a", "b"]
    search = SimpleNamespace(
        time_budget=600.0, stop_when_converged=False, trials=10, timeout=None, progress=False
    )
    search.families = families
    helper = SimpleNamespace(search=search, worker=1, budget=None, hooks=[], overall=None)
    studies = {f: optuna.create_study(direction="maximize", study_name=f) for f in families}
    for study in studies.values():
        study.set_user_attr("planned_trials", 1)  # worker 0's first plan
    held = studies["a"].ask()  # worker 0 is running a's first trial

    def objective(trial):
        return trial.suggest_float("x", 0, 1)

    searches = [
        FamilySearch(helper, f, s, objective, [], None, stopping(helper, s, [])) for f, s in studies.items()
    ]
    thread = threading.Thread(target=run_searches, args=(helper, searches), daemon=True)
    thread.start()

    def finished(study):
        return runner.count_trials(study).finished

    deadline = time.monotonic() + 20
    while finished(studies["b"]) < 1 and time.monotonic() < deadline:  # the helper's round 1: b's trial
        time.sleep(0.05)
    time.sleep(0.5)
    assert finished(studies["b"]) == 1 and finished(studies["a"]) == 0  # nothing beyond the plan
    studies["a"].tell(held, 0.5)
    for study in studies.values():  # worker 0's plan rises after its first trial was measured
        study.set_user_attr("planned_trials", 3)
    while min(map(finished, studies.values())) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert {f: finished(s) for f, s in studies.items()} == {"a": 3, "b": 3}  # the helper ran rounds 2-3
    assert thread.is_alive()  # waiting for the plan to rise again, or for worker 0 to stop
    for study in studies.values():
        study.set_user_attr("stop_reason", "time budget: 3 trials per family planned")
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert {f: finished(s) for f, s in studies.items()} == {"a": 3, "b": 3}

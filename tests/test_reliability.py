"""Reliability of the search layer against real services and real signals.

- several workers on one study reach the exact target, and MLflow mirrors Optuna, on the default
  journal file and on PostgreSQL;
- a worker killed with SIGKILL mid-trial: its trial is FAILed after the heartbeat grace period
  and retried by another worker, the target is still met exactly, the CLI names the dead worker;
- Ctrl-C (SIGINT) of a single-process run: exit 130, the running trial FAIL "interrupted", its
  MLflow run KILLED, and the same command resumes to the target;
- a trial whose loss becomes NaN is a FAIL with the reason, and the study goes on.

Tests with several workers run on both shared stores (``shared``). The PostgreSQL variants create
a throwaway database each and drop it afterwards; they are skipped when the server
(``$TEXTBENCH_TEST_POSTGRES``, default postgres@127.0.0.1:5432/test) is down, and fail instead under
``CI=true``.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import optuna
import pytest
from helpers import (
    cli_env,
    cli_output,
    create_postgres_database,
    default_storage,
    drop_postgres_database,
    error_lines,
    load_study,
    mlflow_runs,
    open_storage,
    postgres_unreachable_reason,
    run_cli,
    runs_by_role,
    search_args,
    skip_unless_ci,
    start_cli,
    stop_process_tree,
    study_names,
)
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture
def pg_url():
    reason = postgres_unreachable_reason()
    if reason:
        skip_unless_ci(reason)
    url = create_postgres_database("textbench_reliability")
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(params=["journal", "postgres"])
def shared(request, tmp_path):
    """(CLI args, storage) of a store that several workers share: the default journal file under
    ``tmp_path / "out"`` (no --storage), or a throwaway PostgreSQL database."""
    if request.param == "journal":
        yield [], default_storage(tmp_path / "out")
    else:
        yield ["--storage", request.getfixturevalue("pg_url")], request.getfixturevalue("pg_url")


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]


def wait_for(check, *, proc, log_dir: Path, timeout: float, what: str):
    """Poll ``check()`` until it returns something other than None; fail if the CLI exits first or time
    runs out."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # noqa: BLE001 - the storage or the study may not exist yet
            value, last = None, exc
        if value is not None:
            return value
        if proc.poll() is not None:
            pytest.fail(
                f"the CLI exited ({proc.returncode}) before {what} (last poll error: {last!r}):\n"
                f"{cli_output(log_dir)[1][-3000:]}"
            )
        time.sleep(0.3)
    pytest.fail(
        f"no {what} within {timeout} s (last poll error: {last!r}):\n{cli_output(log_dir)[1][-3000:]}"
    )


def finish(proc, log_dir: Path, timeout: float) -> tuple[int, str, str]:
    code = proc.wait(timeout=timeout)
    return (code, *cli_output(log_dir))


def kill_tree(proc) -> None:
    """SIGKILL a CLI process that is still running, and its workers (a failed test leaves nothing)."""
    stop_process_tree(proc, graceful=False)


def worker_processes(pid: int) -> list:
    """The ``--workers`` children of the CLI process (not multiprocessing's resource tracker)."""
    import psutil

    return [p for p in psutil.Process(pid).children() if "spawn_main" in " ".join(p.cmdline())]


def assert_mlflow_mirrors(study: optuna.Study, runs: list) -> None:
    """One parent run; one child run per Optuna trial, under that parent, with the trial's params."""
    parents, children = runs_by_role(runs, "study"), runs_by_role(runs, "trial")
    assert len(parents) == 1
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == [
        t.number for t in study.trials
    ]
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        trial = study.trials[int(run.data.tags["optuna.trial_number"])]
        assert {k: run.data.params[k] for k in trial.params} == {k: str(v) for k, v in trial.params.items()}


# ---------------------------------------------------------------- a. four workers


@pytest.mark.slow  # 70 s on 2 idle cores (2 min busy): five processes import torch + transformers
def test_four_workers_reach_the_exact_target(shared, tiny_data_dir, tmp_path):
    store_args, storage = shared
    out = tmp_path / "out"
    args = search_args(tiny_data_dir, out, family="cnn", trials=8, extra=["--workers", "4", *store_args])
    result = run_cli(*args, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    study = load_study("tiny-cnn", storage)
    trials = study.trials
    assert len(trials) == 8 and len(finished(study)) == 8  # exactly the target: no overshoot, no failure
    assert sorted(t.number for t in trials) == list(range(8))
    assert len({t.user_attrs["seed"] for t in trials}) == 8  # each trial ran once, with its own seed

    runs = mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "tiny")
    assert_mlflow_mirrors(study, runs)
    assert {r.info.status for r in runs_by_role(runs, "trial")} == {"FINISHED"}
    summary = result.stdout.splitlines()
    assert any(line.startswith("family") and "search best" in line for line in summary)
    assert any(line.split()[:1] == ["cnn"] for line in summary)  # the family's row


@pytest.mark.slow  # 2-3 min per store: 14 runs of 1,000 steps with two workers (CI runs it)
def test_two_workers_share_one_study_and_stop_at_the_exact_target(shared, tiny_data_dir, tmp_path):
    store_args, storage = shared
    out = tmp_path / "out"
    args = search_args(
        tiny_data_dir,
        out,
        family="cnn",
        trials=8,
        max_steps=1000,
        eval_steps=100,
        extra=[
            "--workers",
            "2",
            *store_args,
            "--pruner",
            "none",
            "--patience",
            "0",
            "--top-k",
            "3",
            "--final-seeds",
            "2",
        ],
    )
    result = run_cli(*args, timeout=1200)  # 14 runs of 1,000 steps: minutes on a busy machine
    assert result.returncode == 0, result.stderr[-3000:]

    study = load_study("tiny-cnn", storage)
    assert len(study.trials) == 8 and len(finished(study)) == 8
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2, workers  # the CLI process and its helper both trained
    # Each worker samples from its own seed: workers seeded alike train the same random
    # configurations twice (trials 1 and 2 were identical when they did).
    configs = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(configs)) == len(configs), configs
    runs = mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "tiny")
    assert_mlflow_mirrors(study, runs)

    # The final stage (3 configurations x 2 seeds, + the course notes' reference trial 0 unless it is
    # in the top 3) was split between them, each run done once.
    finals = study.user_attrs["final_results"]
    ranked = [r for r in finals if r["rank"] is not None]
    assert sorted((r["rank"], r["seed"]) for r in ranked) == sorted(
        (rank, seed) for rank in (1, 2, 3) for seed in {r["seed"] for r in finals}
    )
    notes = [r for r in finals if r["rank"] is None]
    assert len(notes) in (0, 2) and all(r["trial_number"] == 0 and r["reference"] for r in notes)
    assert len(finals) == 6 + len(notes) and {r["worker"] for r in finals} == workers
    assert len(runs_by_role(runs, "final")) == len(finals)


def test_bad_input_with_workers_is_one_error_line_and_no_helper_is_left(shared, tiny_data_dir, tmp_path):
    store_args, storage = shared
    args = search_args(
        tiny_data_dir, tmp_path / "out", extra=["--workers", "2", *store_args, "--text-column", "review"]
    )
    result = run_cli(*args, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "no column 'review'" in errors[0], result.stderr[-3000:]
    assert study_names(storage) == set()  # nothing recorded


# ---------------------------------------------------------------- b. a worker killed mid-trial


@pytest.mark.slow  # 75 s on 2 idle cores: two runs with two workers each, and the grace period
def test_a_killed_worker_trial_is_failed_retried_and_the_target_still_met(shared, tiny_data_dir, tmp_path):
    store_args, storage_url = shared
    out, logs = tmp_path / "out", tmp_path / "logs"
    target = 4
    args = search_args(
        tiny_data_dir,
        out,
        family="cnn",
        trials=target,
        max_steps=300,
        eval_steps=10,
        extra=["--workers", "2", *store_args, "--patience", "0", "--pruner", "none"],
    )
    env = cli_env(TEXTBENCH_HEARTBEAT_SECONDS="2")  # grace period 6 s
    out.mkdir()
    storage = open_storage(storage_url)  # made here: polling never races the CLI making it
    proc = start_cli(*args, env=env, log_dir=logs)
    try:

        def both_training():  # both workers in the first two thirds of a trial (30 evaluations)
            study = optuna.load_study(study_name="tiny-cnn", storage=storage)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            return (
                {t.number for t in running}
                if len(running) == 2 and all(0 < len(t.intermediate_values) <= 20 for t in running)
                else None
            )

        running = wait_for(both_training, proc=proc, log_dir=logs, timeout=300, what="two running trials")
        workers = worker_processes(proc.pid)
        assert len(workers) == 1  # --workers 2: the CLI process trains too, beside one helper
        victim = workers[0]
        victim.send_signal(signal.SIGKILL)
        code, stdout, stderr = finish(proc, logs, timeout=600)
    finally:
        kill_tree(proc)

    study = load_study("tiny-cnn", storage_url)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].number in running  # the killed worker's trial, and only it
    dead = failed[0]
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1 and retries[0].number > dead.number
    assert retries[0].params == dead.params and retries[0].state in FINISHED
    assert len(finished(study)) == target and len(study.trials) == target + 1
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))

    # The CLI says which worker died and how to go on, and exits non-zero; no traceback.
    assert code == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr[-3000:]
    assert f"(pid {victim.pid}) was killed by SIGKILL" in errors[0] and "rerun the same command" in errors[0]
    assert "lost its worker" in stderr  # the surviving worker's warning

    runs = mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "tiny")
    assert_mlflow_mirrors(study, runs)
    status = {int(r.data.tags["optuna.trial_number"]): r for r in runs_by_role(runs, "trial")}
    assert status[dead.number].info.status == "FAILED"
    assert status[dead.number].data.tags["fail_reason"] == "worker stopped (no heartbeat)"
    assert {status[n].info.status for n in status if n != dead.number} == {"FINISHED"}

    # Rerunning the same command completes nothing new and succeeds.
    again = run_cli(*args, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    study = load_study("tiny-cnn", storage_url)
    assert len(study.trials) == target + 1 and len(finished(study)) == target


# ---------------------------------------------------------------- c. Ctrl-C of a single process


@pytest.mark.slow  # ~80 s: two CLI runs, one of a 3,000-step trial (CI runs it)
def test_sigint_fails_the_running_trial_exits_130_and_the_rerun_completes(tiny_data_dir, tmp_path):
    out, logs = tmp_path / "out", tmp_path / "logs"
    target = 1
    # A trial seen training from step 10 on and lasting many polling delays: SIGINT lands inside it
    # however busy the machine is (1,500 steps with a first evaluation at 50 finished first once,
    # under pytest -n 2).
    args = search_args(
        tiny_data_dir,
        out,
        family="cnn",
        trials=target,
        max_steps=3000,
        eval_steps=10,
        extra=["--patience", "0", "--pruner", "none"],
    )
    storage_url = default_storage(out)
    out.mkdir()
    storage = open_storage(storage_url)  # one storage object: each poll reads only what is new
    proc = start_cli(*args, log_dir=logs)
    try:

        def training():  # a trial past its first evaluation: we are inside trainer.train()
            study = optuna.load_study(study_name="tiny-cnn", storage=storage)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            return running[0].number if running and running[0].intermediate_values else None

        number = wait_for(training, proc=proc, log_dir=logs, timeout=300, what="a running trial")
        proc.send_signal(signal.SIGINT)
        code, stdout, stderr = finish(proc, logs, timeout=120)
    finally:
        kill_tree(proc)

    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    resume = [line for line in stderr.splitlines() if "rerun the same command to resume" in line]
    assert len(resume) == 1 and resume[0].startswith("interrupted:") and "'tiny'" in resume[0]
    study = load_study("tiny-cnn", storage_url)
    trial = study.trials[number]
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "interrupted"
    assert not study.get_trials(states=(TrialState.RUNNING,))

    tracking = f"sqlite:///{out / 'mlflow.db'}"
    runs = mlflow_runs(tracking, "tiny")
    child = next(r for r in runs_by_role(runs, "trial") if r.data.tags["optuna.trial_number"] == str(number))
    assert child.info.status == "KILLED"
    assert [r.info.status for r in runs_by_role(runs, "study")] == ["KILLED"]

    again = run_cli(*args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    study = load_study("tiny-cnn", storage_url)
    assert len(finished(study)) == target and len(study.trials) == target + 1
    # the interrupted trial 0 was the course notes' reference: the rerun enqueues it again (issue 18)
    assert [t.number for t in study.trials if t.user_attrs.get("reference")] == [0, 1]
    assert study.trials[1].params == study.trials[0].params and study.trials[1].state in FINISHED
    runs = mlflow_runs(tracking, "tiny")
    assert_mlflow_mirrors(study, runs)
    assert [r.info.status for r in runs_by_role(runs, "study")] == ["FINISHED"]


# ---------------------------------------------------------------- d. NaN loss


@pytest.mark.filterwarnings("ignore:Fixed parameter learning_rate:UserWarning")
def test_a_nan_loss_trial_fails_with_its_reason_and_the_study_goes_on(tiny_data, tmp_path):
    from textbench.core.settings import TrainSettings
    from textbench.search.objective import Objective
    from textbench.search.runner import run_study
    from textbench.search.study import make_sampler
    from textbench.search.tracking import MlflowTracker

    study = optuna.create_study(direction="maximize", study_name="nan-cnn", sampler=make_sampler("tpe", 0, 3))
    study.set_user_attr("arch", "cnn")
    study.enqueue_trial({"learning_rate": 1e30})  # far out of the space: the weights overflow at once
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "nan", tmp_path / "art", {"cnn": {}})
    tracker.study_started(study)
    objective = Objective(
        family="cnn",
        data=tiny_data,
        settings=TrainSettings(max_steps=20, eval_steps=10, batch_size=16, patience=0),
        study_seed=0,
        work_dir=tmp_path / "work",
        hooks=[tracker],
    )
    counts = run_study(study, objective, 2, callbacks=[tracker.trial_finished], progress=False)

    assert counts.failed == 1 and counts.finished == 2 and len(study.trials) == 3
    bad = study.trials[0]
    assert bad.state == TrialState.FAIL and bad.params["learning_rate"] == 1e30
    assert re.fullmatch(r"training loss became (nan|inf|-inf) at step \d+", bad.user_attrs["fail_reason"])
    assert all(t.state == TrialState.COMPLETE for t in study.trials[1:])

    runs = runs_by_role(mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "nan"), "trial")
    failed = [r for r in runs if r.data.tags["optuna.trial_number"] == "0"]
    assert len(runs) == 3 and len(failed) == 1
    assert (
        failed[0].info.status == "FAILED"
        and failed[0].data.tags["fail_reason"] == bad.user_attrs["fail_reason"]
    )
    assert tracker.broken is None
    assert not (tmp_path / "work").exists() or not os.listdir(tmp_path / "work")  # no checkpoints left

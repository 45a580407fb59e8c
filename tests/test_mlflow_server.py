"""The CLI against a real MLflow tracking server (``mlflow server``, SQLite backend, proxied artifacts).

One server per module, on a free port; it is stopped (terminate, then kill) with its children.
A first search of both families, then a resumed one with a larger target: MLflow must mirror the
Optuna studies exactly, run for run, param for param, point for point.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from helpers import (
    default_storage,
    mlflow_runs,
    open_storage,
    run_cli,
    runs_by_role,
    search_args,
    stop_process_tree,
)
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)
# The server start and the first search take ~2.5 min on 2 busy cores: run with -m slow.
pytestmark = pytest.mark.slow

START_TIMEOUT = 180  # seconds: the server imports a lot, on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server and the workers it started (by PID), then kill what is left."""
    stop_process_tree(proc, graceful=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(root / "server.log", "w")
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'm.db'}",
        "--artifacts-destination",
        str(root / "art"),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "mlflow server did not answer on "
                    f"{url}/health:\n{(root / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        stop(proc)
        log.close()


def both_args(data_dir: Path, out: Path, trials: int, url: str) -> list[str]:
    return search_args(
        data_dir,
        out,
        family="both",
        trials=trials,
        max_steps=30,
        eval_steps=10,
        extra=["--tracking-uri", url],
    )


@pytest.fixture(scope="module")
def first(server, tiny_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-mlflow-server")
    result = run_cli(*both_args(tiny_data_dir, out, 3, server), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"MLflow: {server} experiment 'tiny' [ok]" in result.stdout
    return out


def check_mirror(url: str, storage: str, per_family: int) -> list:
    """Parent and child runs against the studies; returns the child runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    runs = mlflow_runs(url, "tiny")
    parents, children = runs_by_role(runs, "study"), runs_by_role(runs, "trial")
    assert sorted(r.data.tags["optuna.study"] for r in parents) == ["tiny-cnn", "tiny-rnn"]
    assert len(children) == 2 * per_family
    parent_of = {r.info.run_id: r.data.tags["optuna.study"] for r in parents}
    for name in ("tiny-cnn", "tiny-rnn"):
        study = optuna.load_study(study_name=name, storage=open_storage(storage))
        assert len(study.trials) == per_family and all(t.state.is_finished() for t in study.trials)
        mine = [r for r in children if r.data.tags["optuna.study"] == name]
        assert sorted(int(r.data.tags["optuna.trial_number"]) for r in mine) == list(range(per_family))
        for run in mine:
            trial = study.trials[int(run.data.tags["optuna.trial_number"])]
            assert parent_of[run.data.tags["mlflow.parentRunId"]] == name
            assert {k: run.data.params[k] for k in trial.params} == {
                k: str(v) for k, v in trial.params.items()
            }
            accuracy = client.get_metric_history(run.info.run_id, "eval_accuracy")
            assert [(m.step, m.value) for m in sorted(accuracy, key=lambda m: m.step)] == sorted(
                trial.intermediate_values.items()
            )
            loss = client.get_metric_history(run.info.run_id, "loss")  # logged at every evaluation step
            assert sorted(m.step for m in loss) == sorted(trial.intermediate_values)
            assert run.data.tags["state"] == trial.state.name.lower() and run.info.status == "FINISHED"
            if trial.state == TrialState.COMPLETE:
                assert run.data.metrics["best_validation_accuracy"] == trial.value
    for parent in parents:
        assert parent.info.status == "FINISHED"
        assert [a.path for a in client.list_artifacts(parent.info.run_id)] == [
            "best_model"
        ]  # through the proxy
    return children


def test_a_search_against_a_server_mirrors_optuna_run_for_run(server, first):
    check_mirror(server, default_storage(first), per_family=3)


def test_a_resumed_search_adds_exactly_the_new_trials(server, first, tiny_data_dir):
    before = {r.info.run_id for r in runs_by_role(mlflow_runs(server, "tiny"), "trial")}
    result = run_cli(*both_args(tiny_data_dir, first, 4, server), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    children = check_mirror(server, default_storage(first), per_family=4)
    new = [r for r in children if r.info.run_id not in before]
    assert sorted((r.data.tags["optuna.study"], r.data.tags["optuna.trial_number"]) for r in new) == [
        ("tiny-cnn", "3"),
        ("tiny-rnn", "3"),
    ]

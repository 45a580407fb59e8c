"""End to end: the real CLI on tiny generated data; Optuna, MLflow and the report must agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from helpers import default_storage, load_study
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, str(ROOT / "benchmark.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def tiny_args(data_dir: Path, out: Path, trials: int, *extra: str) -> list[str]:
    return ["--arch", "both", "--trials", str(trials), "--dataset", str(data_dir),
            "--tokenizer", str(data_dir / "tokenizer"), "--max-length", "64", "--max-steps", "40",
            "--eval-steps", "10", "--batch-size", "16", "--output-dir", str(out), "--name", "tiny",
            "--top-k", "1", "--final-seeds", "2", *extra]


def mlflow_runs(out: Path, experiment: str = "tiny") -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


@pytest.fixture(scope="module")
def first_run(tiny_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    result = cli(*tiny_args(tiny_data_dir, out, 3))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_flagship_runs_both_studies_to_the_target(first_run):
    out, result = first_run
    storage = default_storage(out)
    names = {s.study_name for s in optuna.get_all_study_summaries(optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(storage)))}
    assert names == {"tiny-cnn", "tiny-rnn"}
    for name in names:
        study = load_study(name, storage)
        finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == 3
        for trial in finished:
            # The value is the best validation accuracy seen, not the last one.
            assert trial.state == TrialState.PRUNED or trial.value == max(trial.intermediate_values.values())
            assert trial.user_attrs["steps_trained"] <= 40 and trial.user_attrs["n_params"] > 0
        settings = study.user_attrs["settings"]
        assert settings["max_steps"] == 40 and settings["train_size"] == 360 and settings["validation_size"] == 40
        finals = study.user_attrs["final_results"]
        assert len(finals) == 2 and {r["rank"] for r in finals} == {1}
        assert all(0 <= r["test_accuracy"] <= 1 for r in finals)
    assert "best val acc" in result.stdout and "tiny-cnn" in result.stderr  # summary table, progress bar
    assert not list((out / "tiny" / "checkpoints").glob("*"))  # no checkpoints pile up
    assert (out / "tiny" / "report.html").exists() and (out / "tiny" / "trials.csv").exists()


def test_mlflow_mirrors_the_optuna_trials_exactly(first_run):
    out, _ = first_run
    client, runs = mlflow_runs(out)
    parents = [r for r in runs if r.data.tags.get("textbench.role") == "study"]
    children = [r for r in runs if r.data.tags.get("textbench.role") == "trial"]
    finals = [r for r in runs if r.data.tags.get("textbench.role") == "final"]
    assert len(parents) == 2 and len(children) == 6 and len(finals) == 4
    parent_of = {r.info.run_id: r.data.tags["optuna.study"] for r in parents}
    storage = default_storage(out)
    for run in children + finals:
        assert parent_of[run.data.tags["mlflow.parentRunId"]] == run.data.tags["optuna.study"]
    for run in children:
        study = load_study(run.data.tags["optuna.study"], storage)
        trial = study.trials[int(run.data.tags["optuna.trial_number"])]
        assert {k: run.data.params[k] for k in trial.params} == {k: str(v) for k, v in trial.params.items()}
        history = client.get_metric_history(run.info.run_id, "eval_accuracy")
        assert [(m.step, m.value) for m in history] == sorted(trial.intermediate_values.items())
        assert run.data.tags["state"] == trial.state.name.lower()
        assert run.info.status == "FINISHED"
    best_tags = [r for r in children if r.data.tags.get("best") == "true"]
    assert len(best_tags) == 2
    for parent in parents:  # the best model is an artifact of the parent run, loadable again
        assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["best_model"]


def test_best_model_artifact_loads_with_from_pretrained(first_run):
    from mlflow.artifacts import download_artifacts
    from transformers import AutoModelForSequenceClassification

    import core.models  # noqa: F401 - registers the model types with the Auto classes

    out, _ = first_run
    client, runs = mlflow_runs(out)
    parent = next(r for r in runs if r.data.tags.get("optuna.study") == "tiny-cnn"
                  and r.data.tags.get("textbench.role") == "study")
    local = download_artifacts(run_id=parent.info.run_id, artifact_path="best_model",
                               tracking_uri=f"sqlite:///{out / 'mlflow.db'}", dst_path=str(out / "dl"))
    model = AutoModelForSequenceClassification.from_pretrained(local)
    assert type(model).__name__ == "SimpleCNN"


def test_rerun_resumes_and_a_larger_target_adds_only_new_trials(first_run, tiny_data_dir):
    out, _ = first_run
    storage = default_storage(out)
    same = cli(*tiny_args(tiny_data_dir, out, 3))
    assert same.returncode == 0, same.stderr[-2000:]
    assert all(len(load_study(n, storage).trials) == 3 for n in ("tiny-cnn", "tiny-rnn"))

    more = cli(*tiny_args(tiny_data_dir, out, 4))
    assert more.returncode == 0, more.stderr[-2000:]
    for name in ("tiny-cnn", "tiny-rnn"):
        study = load_study(name, storage)
        assert len([t for t in study.trials if t.state.is_finished()]) == 4
    _, runs = mlflow_runs(out)
    assert len([r for r in runs if r.data.tags.get("textbench.role") == "trial"]) == 8
    assert len([r for r in runs if r.data.tags.get("textbench.role") == "study"]) == 2


def test_changed_budget_under_the_same_name_is_refused(first_run, tiny_data_dir):
    out, _ = first_run
    args = tiny_args(tiny_data_dir, out, 3)
    args[args.index("--max-steps") + 1] = "60"
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: benchmark 'tiny' already has study")


def test_the_printed_optuna_dashboard_command_opens_the_studies(first_run):
    """The summary's ``optuna-dashboard ...`` command, run as printed (plus a free port), serves both studies."""
    import json
    import re
    import shutil
    import socket
    import time
    import urllib.request

    out, result = first_run
    if shutil.which("optuna-dashboard") is None:
        pytest.skip("optuna-dashboard is not installed")
    command = re.search(r"\(optuna-dashboard ([^)]+)\)", result.stdout).group(1).split()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(["optuna-dashboard", *command, "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, studies = time.monotonic() + 120, None
        while time.monotonic() < deadline and studies is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.load(response)["study_summaries"]
            except OSError:
                assert proc.poll() is None, "optuna-dashboard exited"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert studies is not None, "optuna-dashboard did not answer"
    assert {s["study_name"] for s in studies} == {"tiny-cnn", "tiny-rnn"}


def test_report_takes_the_search_commands_storage_options(first_run):
    """``report`` accepts --output-dir/--storage/--tracking-uri as the search command does (copied
    across), rebuilds the page from the journal, and refuses a folder with no store without making one."""
    out, _ = first_run
    page = out / "tiny" / "report.html"
    page.unlink()
    result = cli("report", "--name", "tiny", "--output-dir", str(out), "--storage", default_storage(out),
                 "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == f"report: {page}" and page.exists()
    empty = out / "no-run-here"
    missing = cli("report", "--name", "tiny", "--output-dir", str(empty))
    assert missing.returncode == 2 and "no study storage at" in missing.stderr
    assert not empty.exists()

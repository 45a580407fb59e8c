"""End to end: the real CLI on tiny generated data; Optuna, MLflow and the report must agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from helpers import default_storage, load_study, open_storage
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmark.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tiny_args(data_dir: Path, out: Path, trials: int, *extra: str) -> list[str]:
    return [
        "--arch",
        "both",
        "--trials",
        str(trials),
        "--dataset",
        str(data_dir),
        "--tokenizer",
        str(data_dir / "tokenizer"),
        "--max-length",
        "64",
        "--max-steps",
        "40",
        "--eval-steps",
        "10",
        "--batch-size",
        "16",
        "--output-dir",
        str(out),
        "--name",
        "tiny",
        "--top-k",
        "1",
        "--final-seeds",
        "2",
        *extra,
    ]


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
    names = {
        s.study_name
        for s in optuna.get_all_study_summaries(
            optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
        )
    }
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
        assert (
            settings["max_steps"] == 40
            and settings["train_size"] == 360
            and settings["validation_size"] == 40
        )
        finals = study.user_attrs["final_results"]
        ranked = [r for r in finals if r["rank"] is not None]  # the others: the course notes' reference
        assert len(ranked) == 2 and {r["rank"] for r in ranked} == {1}
        assert all(r["reference"] and r["trial_number"] == 0 for r in finals if r["rank"] is None)
        assert all(0 <= r["test_accuracy"] <= 1 for r in finals)
    assert "search best" in result.stdout and "tiny-cnn" in result.stderr  # summary table, progress bar
    assert not list((out / "tiny" / "checkpoints").glob("*"))  # no checkpoints pile up
    page = (out / "tiny" / "report.html").read_text()
    for name in names:  # the page shows each family's chosen configuration's mean test accuracy
        finals = [r for r in load_study(name, storage).user_attrs["final_results"] if r["rank"] == 1]
        mean = sum(r["test_accuracy"] for r in finals) / len(finals)
        assert f"<td>{mean:.3f}</td>" in page, name
    trials_csv = (out / "tiny" / "trials.csv").read_text().splitlines()
    assert len(trials_csv) == 1 + 6  # a header and the 3 trials of each family


def test_curves_are_trial_artifacts_the_report_reads(first_run):
    from textbench.reports import collect

    out, result = first_run
    bench = collect.load_benchmark(open_storage(default_storage(out)), "tiny")
    curves = collect.curves_frame(bench, "all")
    for family, study in bench.studies.items():
        assert study.metric_names == ["validation_accuracy"]
        for trial in bench.trials(family):
            assert (
                "curves" not in trial.user_attrs
            )  # a long JSON attr overflows optuna-dashboard's trial pane
            mine = curves[(curves["family"] == family) & (curves["number"] == trial.number)]
            assert {"loss", "eval_loss", "eval_accuracy"} <= set(mine["metric"]), (family, trial.number)
            accuracy = mine[mine["metric"] == "eval_accuracy"]
            assert dict(zip(accuracy["step"], accuracy["value"], strict=True)) == pytest.approx(
                trial.intermediate_values
            )
    assert f"--artifact-dir {out / 'artifacts'}" in result.stdout


def test_mlflow_mirrors_the_optuna_trials_exactly(first_run):
    out, _ = first_run
    client, runs = mlflow_runs(out)
    parents = [r for r in runs if r.data.tags.get("textbench.role") == "study"]
    children = [r for r in runs if r.data.tags.get("textbench.role") == "trial"]
    finals = [r for r in runs if r.data.tags.get("textbench.role") == "final"]
    storage = default_storage(out)
    n_final = sum(
        len(load_study(n, storage).user_attrs["final_results"]) for n in ("tiny-cnn", "tiny-rnn")
    )  # 2 seeds x (top-1 + the course notes' reference unless top-1)
    assert len(parents) == 2 and len(children) == 6 and len(finals) == n_final and n_final >= 4
    parent_of = {r.info.run_id: r.data.tags["optuna.study"] for r in parents}
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
        assert run.info.run_name.startswith(f"{run.data.tags['textbench.arch']}-{trial.number}")
        assert (run.info.start_time, run.info.end_time) == (
            int(trial.datetime_start.timestamp() * 1000),
            int(trial.datetime_complete.timestamp() * 1000),
        )
    best_tags = [r for r in children if r.data.tags.get("best") == "true"]
    assert len(best_tags) == 2
    for parent in parents:  # the best model is an artifact of the parent run, loadable again
        assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["best_model"]


def test_best_model_artifact_loads_with_from_pretrained(first_run):
    from mlflow.artifacts import download_artifacts
    from transformers import AutoModelForSequenceClassification

    import textbench.core.models  # noqa: F401 - registers the model types with the Auto classes

    out, _ = first_run
    client, runs = mlflow_runs(out)
    parent = next(
        r
        for r in runs
        if r.data.tags.get("optuna.study") == "tiny-cnn" and r.data.tags.get("textbench.role") == "study"
    )
    local = download_artifacts(
        run_id=parent.info.run_id,
        artifact_path="best_model",
        tracking_uri=f"sqlite:///{out / 'mlflow.db'}",
        dst_path=str(out / "dl"),
    )
    model = AutoModelForSequenceClassification.from_pretrained(local)
    assert type(model).__name__ == "SimpleCNN"


@pytest.mark.slow  # ~75 s: two more CLI runs (CI runs it)
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


def test_terminal_mlflow_csv_and_report_agree_on_the_chosen_configuration(first_run):
    """#12: one set of numbers. The chosen configuration (best final-stage validation mean) and its
    test mean are the same in the terminal summary, the MLflow parent runs, trials.csv and the report;
    each final run's test predictions are stored and reproduce its test accuracy."""
    import html

    import numpy as np
    import pandas as pd

    from textbench.core import predictions

    out, result = first_run
    storage = default_storage(out)
    lines = {}
    for (
        line
    ) in result.stdout.splitlines():  # the summary's row: the first line of a family (#18's table follows)
        if line.split():
            lines.setdefault(line.split()[0], line.split())
    csv = pd.read_csv(out / "tiny" / "trials.csv")
    page = html.unescape((out / "tiny" / "report.html").read_text())
    _, runs = mlflow_runs(out)
    parents = {
        r.data.tags["optuna.study"]: r.data.metrics
        for r in runs
        if r.data.tags.get("textbench.role") == "study"
    }
    for family in ("cnn", "rnn"):
        study = load_study(f"tiny-{family}", storage)
        labels = predictions.unpack(study.user_attrs["test_labels"])
        records = study.user_attrs["final_results"]
        assert len(labels) == 100 and all(r["curves"] for r in records)
        for r in records:
            assert (predictions.unpack(r["test_predictions"]) == labels).mean() == r["test_accuracy"]
        chosen = [
            r for r in records if r["rank"] == 1
        ]  # top-k 1: the chosen one is rank 1 (not the #18 reference)
        mean = float(np.mean([r["test_accuracy"] for r in chosen]))
        trial = chosen[0]["trial_number"]
        assert lines[family][2] == str(trial) and lines[family][4] == f"{mean:.4f}"
        assert parents[f"tiny-{family}"]["chosen_test_mean"] == mean
        assert parents[f"tiny-{family}"]["chosen_trial"] == trial
        assert parents[f"tiny-{family}"]["best_validation_accuracy"] == study.best_value
        row = csv[(csv.family == family) & csv.chosen_for_test]
        assert row["number"].tolist() == [trial] and row["final_test_mean"].iloc[0] == mean
        assert f"{family} {mean:.3f}" in page  # the ranking sentence
    baseline = load_study("tiny-cnn", storage).user_attrs["baseline"]
    assert lines["tfidf-logreg"][4] == f"{baseline['test_accuracy']:.4f}" and "C_at_edge" in baseline
    assert "paired bootstrap" in page and "Expected best vs number of trials" in page


@pytest.mark.slow
def test_three_classes_without_baseline(tiny_data_dir, tmp_path):
    """More than two classes, no baseline: chance is the majority rate, the report and summary still agree."""
    import html

    try:
        from tests.helpers import make_dataset
    except ImportError:
        from helpers import make_dataset

    data = make_dataset(tmp_path, n_train=300, n_test=90, n_classes=3, name="three", seed=3)
    args = tiny_args(data, tmp_path / "out", 2, "--no-baseline")
    args[args.index("--tokenizer") + 1] = str(tiny_data_dir / "tokenizer")
    result = cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    page = html.unescape((tmp_path / "out" / "tiny" / "report.html").read_text())
    assert "tfidf" not in result.stdout and "Ranking by mean test accuracy" in page
    import numpy as np

    from textbench.core import predictions

    study = load_study("tiny-cnn", default_storage(tmp_path / "out"))
    labels = predictions.unpack(study.user_attrs["test_labels"])
    assert set(labels) == {0, 1, 2}
    rate = np.bincount(labels).max() / len(labels)
    assert f"majority-class rate of the test split ({rate:.3f})" in " ".join(page.split())


def test_the_printed_optuna_dashboard_command_opens_the_studies(first_run):
    """The summary's ``optuna-dashboard ...`` command, run as printed (plus a free port), serves both
    studies."""
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
    proc = subprocess.Popen(
        ["optuna-dashboard", *command, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
    result = cli(
        "report",
        "--name",
        "tiny",
        "--output-dir",
        str(out),
        "--storage",
        default_storage(out),
        "--tracking-uri",
        f"sqlite:///{out / 'mlflow.db'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == f"report: {page}" and page.exists()
    empty = out / "no-run-here"
    missing = cli("report", "--name", "tiny", "--output-dir", str(empty))
    assert missing.returncode == 2 and "no benchmark storage at" in missing.stderr
    assert not empty.exists()

"""One real ``--arch all`` benchmark on tiny 3-class data with string labels, read back from every
place a user reads it: the Optuna studies, the MLflow runs (parents, finals, baseline), the saved
best models, the report (rebuilt by ``benchmark.py report``), and a resumed final stage.

Marked slow (a few minutes on 2 cores): CI runs it in its second pytest call.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import optuna
import pytest
from helpers import (
    build_tokenizer,
    cli_env,
    default_storage,
    make_dataset,
    mlflow_runs,
    open_storage,
    run_cli,
    runs_by_role,
)
from optuna.trial import TrialState

pytestmark = pytest.mark.slow

NAME = "e2e"
FAMILIES = ("cnn", "rnn", "gru", "lstm", "transformer")  # `--arch all` today: a new family is added here


def args(data: Path, out: Path, final_seeds: int = 1) -> list[str]:
    return [
        "--arch",
        "all",
        "--trials",
        "2",
        "--dataset",
        str(data),
        "--tokenizer",
        str(data / "tokenizer"),
        "--max-length",
        "48",
        "--max-steps",
        "20",
        "--eval-steps",
        "10",
        "--batch-size",
        "16",
        "--output-dir",
        str(out),
        "--name",
        NAME,
        "--top-k",
        "1",
        "--final-seeds",
        str(final_seeds),
        "--no-reference",
    ]  # the course notes' reference trial and its final runs: tests/test_reference.py


@pytest.fixture(scope="module")
def string_label_data(tmp_path_factory) -> Path:
    """3 classes named negative/positive/neutral (sorted order differs from the generator's ids)."""
    import pandas as pd

    root = tmp_path_factory.mktemp("strings")
    folder = make_dataset(
        root, n_train=300, n_test=90, n_classes=3, string_labels=True, name="reviews", seed=3
    )
    texts = pd.concat([pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "test.parquet")])
    build_tokenizer(texts["text"], folder / "tokenizer", vocab_size=400)
    return folder


@pytest.fixture(scope="module")
def run(string_label_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    result = run_cli(*args(string_label_data, out), env=cli_env())
    assert result.returncode == 0, result.stderr[-3000:]
    storage = default_storage(out)
    studies = {
        family: optuna.load_study(study_name=f"{NAME}-{family}", storage=open_storage(storage))
        for family in FAMILIES
    }
    return out, studies, mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", NAME)


def test_arch_all_searches_every_family_to_the_target(run):
    out, studies, _ = run
    names = {s.study_name for s in optuna.get_all_study_summaries(open_storage(default_storage(out)))}
    assert names == {f"{NAME}-{family}" for family in FAMILIES}
    for family, study in studies.items():
        assert len([t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 2, (
            family
        )
        best = out / NAME / "models" / f"{family}-best"
        assert (best / "TRIAL").read_text() == str(study.best_trial.number)
        assert len(study.user_attrs["final_results"]) == 1


def test_string_labels_are_encoded_once_for_every_split(run):
    """Sorted names -> ids, the same mapping for train and test: the TF-IDF baseline, which learns
    this data almost perfectly, would sit near chance (1/3) on test if test were mapped apart."""
    _, studies, _ = run
    for study in studies.values():
        assert study.user_attrs["settings"]["labels"] == ["negative", "neutral", "positive"]
    baseline = studies["cnn"].user_attrs["baseline"]
    assert baseline["test_accuracy"] > 0.8 and baseline["validation_accuracy"] > 0.8


def test_mlflow_parent_final_and_baseline_runs_carry_params_and_metrics(run):
    _, studies, runs = run
    parents = {r.data.tags["optuna.study"]: r for r in runs_by_role(runs, "study")}
    assert set(parents) == {f"{NAME}-{family}" for family in FAMILIES}
    for family, study in studies.items():
        parent = parents[study.study_name]
        assert parent.info.status == "FINISHED"
        assert parent.data.params["arch"] == family
        assert (parent.data.params["max_steps"], parent.data.params["eval_steps"]) == ("20", "10")
        assert parent.data.params["batch_size"] == "16" and parent.data.params["seed"] == "42"
        assert parent.data.metrics["best_validation_accuracy"] == study.best_value
        finished = parent.data.metrics["trials_complete"] + parent.data.metrics["trials_pruned"]
        assert finished == 2

    finals = runs_by_role(runs, "final")
    assert len(finals) == len(FAMILIES)  # top-1 x 1 seed each
    for final in finals:
        study = studies[final.data.tags["textbench.arch"]]
        assert final.data.tags["mlflow.parentRunId"] == parents[study.study_name].info.run_id
        (record,) = study.user_attrs["final_results"]
        assert final.data.params["seed"] == str(record["seed"]) and final.data.params["rank"] == "1"
        best = study.best_trial
        assert record["trial_number"] == best.number
        assert {k: final.data.params[k] for k in best.params} == {k: str(v) for k, v in best.params.items()}
        assert final.data.metrics["test_accuracy"] == record["test_accuracy"]
        assert final.data.metrics["validation_accuracy"] == record["validation_accuracy"]

    (baseline,) = runs_by_role(runs, "baseline")
    stored = studies["cnn"].user_attrs["baseline"]
    assert baseline.data.metrics["test_accuracy"] == stored["test_accuracy"]
    assert baseline.data.metrics["validation_accuracy"] == stored["validation_accuracy"]
    assert baseline.data.params["C"] == str(stored["C"]) and int(baseline.data.params["n_features"]) > 0


def test_report_is_rebuilt_from_storage_by_the_report_command(run):
    out, studies, _ = run
    folder = out / NAME
    original_csv = (folder / "trials.csv").read_text()
    original_html = (folder / "report.html").read_text()
    (folder / "trials.csv").unlink()
    (folder / "report.html").unlink()
    result = run_cli("report", "--name", NAME, "--output-dir", str(out), env=cli_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert (folder / "trials.csv").read_text() == original_csv
    rebuilt = (folder / "report.html").read_text()

    def text_of(html: str) -> str:
        """The page without its timestamp and image bytes (PNG encoding is not byte-stable)."""
        html = re.sub(r"data:image/png;base64,[^\"]+", "data:image/png", html)
        return "\n".join(line for line in html.splitlines() if "generated " not in line)

    assert text_of(rebuilt) == text_of(original_html)
    assert rebuilt.count("data:image/png;base64,") == original_html.count("data:image/png;base64,") > 0
    for study in studies.values():  # one seed of one configuration: its test accuracy is the family's mean
        (record,) = study.user_attrs["final_results"]
        assert f"<td>{record['test_accuracy']:.3f}</td>" in rebuilt


def test_a_resumed_final_stage_trains_only_the_missing_seed(run, string_label_data, tmp_path):
    out, studies, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = {family: study.user_attrs["final_results"] for family, study in studies.items()}
    result = run_cli(*args(string_label_data, copy, final_seeds=2), env=cli_env())
    assert result.returncode == 0, result.stderr[-3000:]
    storage = default_storage(copy)
    for family in FAMILIES:
        study = optuna.load_study(study_name=f"{NAME}-{family}", storage=open_storage(storage))
        assert len(study.trials) == 2  # no new search trial
        records = study.user_attrs["final_results"]
        assert len(records) == 2
        (kept,) = before[family]
        assert [r for r in records if r["seed"] == kept["seed"]] == [
            kept
        ]  # kept as it was, wall time included
    finals = runs_by_role(mlflow_runs(f"sqlite:///{copy / 'mlflow.db'}", NAME), "final")
    assert len(finals) == 2 * len(FAMILIES)  # one new run per family, not two

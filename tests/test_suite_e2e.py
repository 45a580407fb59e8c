"""Suite mode end to end through the real CLI: three tiny generated datasets (parquet folder, a
headerless tab-separated file without extension, fastText lines), interrupted after the first dataset
and resumed with the same command; each dataset is an ordinary benchmark (its report, studies, MLflow
experiment tagged with the suite) and the suite report and suite.csv cover all three."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    build_tokenizer,
    cli_output,
    default_storage,
    load_study,
    make_dataset,
    run_cli,
    start_cli,
    study_names,
)


def _datasets(root: Path) -> list[str]:
    folder = make_dataset(root, n_train=240, n_test=60, name="reviews", seed=1)
    frame = pd.read_parquet(folder / "train.parquet")
    other = make_dataset(root, n_train=240, n_test=0, name="src", seed=2)
    spam = pd.read_parquet(other / "train.parquet")
    (root / "Collection").write_text(
        "".join(f"{'spam' if lab else 'ham'}\t{t}\n" for t, lab in zip(spam.text, spam.label, strict=True))
    )
    third = make_dataset(root, n_train=240, n_test=0, name="src3", seed=3)
    ft = pd.read_parquet(third / "train.parquet")
    (root / "fast").mkdir()
    (root / "fast" / "ft.txt").write_text(
        "".join(f"__label__{lab} {t}\n" for t, lab in zip(ft.text, ft.label, strict=True))
    )
    build_tokenizer(pd.concat([frame.text, spam.text, ft.text]), root / "tok", vocab_size=400)
    return [str(folder), str(root / "Collection"), str(root / "fast" / "ft.txt")]  # named fast-ft


@pytest.mark.slow
def test_a_suite_of_three_runs_resumes_and_reports(tmp_path):
    paths = _datasets(tmp_path)
    out = tmp_path / "out"
    args = [
        "suite",
        "--name",
        "tri",
        "--datasets",
        ",".join(paths),
        "--tokenizer",
        str(tmp_path / "tok"),
        "--arch",
        "cnn,rnn",
        "--trials",
        "2",
        "--max-steps",
        "20",
        "--eval-steps",
        "10",
        "--batch-size",
        "16",
        "--max-length",
        "48",
        "--top-k",
        "1",
        "--final-seeds",
        "2",
        "--workers",
        "1",
        "--output-dir",
        str(out),
    ]
    proc = start_cli(*args, log_dir=tmp_path / "first")
    deadline = time.monotonic() + 400
    while "dataset 2 of 3" not in cli_output(tmp_path / "first")[0] and time.monotonic() < deadline:
        assert proc.poll() is None, cli_output(tmp_path / "first")
        time.sleep(0.5)
    time.sleep(3)  # into the second dataset's search
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    stdout, stderr = cli_output(tmp_path / "first")
    assert "rerun the same command to resume" in stderr
    assert "suite tri: dataset 1 of 3 (reviews), elapsed" in stdout
    assert not (out / "tri" / "suite.html").exists()
    storage = default_storage(out)
    first_trials = len(load_study("tri-reviews-cnn", storage).trials)

    result = run_cli(*args, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dataset 3 of 3 (fast-ft), elapsed" in result.stdout and "ETA" in result.stdout
    assert len(load_study("tri-reviews-cnn", storage).trials) == first_trials  # finished work kept
    assert {f"tri-{d}-{f}" for d in ("reviews", "Collection", "fast-ft") for f in ("cnn", "rnn")} <= set(
        study_names(storage)
    )
    for name in ("reviews", "Collection", "fast-ft"):
        assert (out / f"tri-{name}" / "report.html").exists()
    page = (out / "tri" / "suite.html").read_text()
    assert "Across 3 datasets" in page and "cannot establish a general winner" in page
    assert 'href="../tri-reviews/report.html"' in page
    csv = pd.read_csv(out / "tri" / "suite.csv")
    assert sorted(csv["dataset"].unique()) == ["Collection", "fast-ft", "reviews"]
    assert set(csv["entry"]) == {"cnn", "rnn", "tfidf-logreg"}
    assert csv.groupby("dataset")["winner"].sum().tolist() == [1, 1, 1]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    for name in ("reviews", "Collection", "fast-ft"):
        assert client.get_experiment_by_name(f"tri-{name}").tags.get("textbench.suite") == "tri"

    report = run_cli(
        "report", "--name", "tri-fast-ft", "--output-dir", str(out), timeout=300
    )  # an ordinary one
    assert report.returncode == 0, report.stderr[-2000:]

"""``--finetune FOLDER`` end to end on the real CLI: a tiny randomly initialised BERT (made here, no
weights download) fine-tuned beside a CNN search on tiny data with two workers, then read back
from the study, MLflow, the report, ``predict``, ``export`` and the Model Registry, and resumed.

Marked slow (about a minute on 2 cores): CI runs it in its second pytest call.
"""

from __future__ import annotations

import html
import re
import time

import pytest
from helpers import cli_env, make_tiny_bert, mlflow_runs, run_cli, runs_by_role, search_args

pytestmark = pytest.mark.slow

NAME = "ft"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data_dir, tiny_tokenizer_dir):
    root = tmp_path_factory.mktemp("finetune")
    model = make_tiny_bert(root / "tiny-bert", tiny_tokenizer_dir)
    out = root / "out"
    args = search_args(
        tiny_data_dir,
        out,
        name=NAME,
        max_steps=40,
        extra=["--final-seeds", "2", "--top-k", "1", "--workers", "2", "--finetune", str(model)],
    )
    args.remove("--no-baseline")
    start = time.perf_counter()
    first = run_cli(*args, env=cli_env(HF_HUB_OFFLINE="1"))
    seconds = time.perf_counter() - start
    assert first.returncode == 0, first.stderr[-3000:]
    print(f"tiny --finetune end to end: {seconds:.1f} s")
    return {"root": root, "out": out, "model": model, "args": args, "first": first}


def stored(out):
    from helpers import default_storage, load_study

    return load_study(f"{NAME}-cnn", default_storage(out)).user_attrs


def test_the_cost_is_said_before_the_searches_start(run):
    err = run["first"].stderr
    line = next(x for x in err.splitlines() if "fine-tuning tiny-bert" in x)
    assert re.search(
        r"on CPU: about [\d.]+ s/step here \(measured, batch 16\), 4 runs x 40 steps = about", line
    )
    assert err.index(line) < err.index("ft-cnn")  # before the search's bar


def test_the_record_holds_the_grid_the_seeds_and_the_cost(run):
    attrs = stored(run["out"])
    rec, finals = attrs["finetune"], attrs["final_results"]
    assert list(rec["validation_by_lr"]) == ["2e-05", "3e-05", "5e-05"]
    assert rec["learning_rate"] in rec["lr_grid"] and rec["validation_by_lr"][
        f"{rec['learning_rate']:g}"
    ] == max(rec["validation_by_lr"].values())
    seeds = [r["seed"] for r in sorted(finals, key=lambda r: r["seed_index"]) if r["rank"] == 1]
    assert [r["seed"] for r in rec["runs"]] == seeds == rec["seeds"]  # the families' final-stage seeds
    assert rec["lr_selection_seed"] == seeds[0] and len(rec["trainings"]) == 4  # seed 0's run is reused
    assert all(r["learning_rate"] == rec["learning_rate"] for r in rec["runs"])
    assert len(rec["test_accuracies"]) == 2 and all(0 <= a <= 1 for a in rec["test_accuracies"])
    assert all(t["steps_trained"] <= 40 and t["steps_per_second"] > 0 for t in rec["trainings"])
    assert rec["seconds"] > 0 and rec["steps_per_second"] > 0 and 10_000 < rec["n_params"] < 100_000
    from textbench.core import predictions

    assert all(len(predictions.unpack(r["test_predictions"])) == 100 for r in rec["runs"])


def test_workers_fine_tune_once_and_mlflow_has_each_training(run):
    runs = runs_by_role(mlflow_runs(f"sqlite:///{run['out']}/mlflow.db", NAME), "finetune")
    assert len(runs) == 4  # 3 learning rates + 1 more seed, not one set per worker
    chosen = [r for r in runs if r.data.params["chosen"] == "True"]
    assert len(chosen) == 2 and all("test_accuracy" in r.data.metrics for r in chosen)
    assert "models:/textbench-ft-finetune/1" in run["first"].stdout


def test_the_report_reads_it_as_a_pretrained_reference_row(run):
    page = (run["out"] / NAME / "report.html").read_text()
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    first = re.search(
        r"((The|Ranking)[^.]*?by mean test accuracy[^:]*: .*?\.) (Between|With|At a glance)", text
    )
    print(first.group(1))
    assert "tiny-bert fine-tuned (pretrained reference, not searched, " in first.group(1)
    assert "tfidf-logreg baseline" in first.group(1)
    assert "tiny-bert fine-tuned (pretrained reference)" in text  # the ranking table
    assert "Pretrained reference: " in text and "from 2e-05 (" in text


def test_predict_and_export_use_the_fine_tuned_model(run, tmp_path):
    texts = tmp_path / "texts.csv"
    texts.write_text("text,label\na wonderful film,1\na dull boring film,0\n")
    common = ["--name", NAME, "--output-dir", str(run["out"]), "--arch", "finetune"]
    predicted = run_cli("predict", *common, "--input", str(texts))
    assert predicted.returncode == 0, predicted.stderr
    assert "fine-tuned" in predicted.stderr and "accuracy against column 'label'" in predicted.stdout
    exported = run_cli("export", *common, "--to", str(tmp_path / "export"))
    assert exported.returncode == 0, exported.stderr
    assert not (tmp_path / "export" / "modeling_textbench.py").exists()  # a standard BERT: no code
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(tmp_path / "export"), truncation=True)
    assert classify(["a wonderful film"])[0]["label"] in ("0", "1")


def test_a_resumed_benchmark_reuses_the_record(run):
    before = stored(run["out"])["finetune"]
    again = run_cli(*run["args"], env=cli_env(HF_HUB_OFFLINE="1"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "stored record reused" in again.stderr and "fine-tuning tiny-bert (" not in again.stderr
    assert stored(run["out"])["finetune"] == before
    assert len(runs_by_role(mlflow_runs(f"sqlite:///{run['out']}/mlflow.db", NAME), "finetune")) == 4

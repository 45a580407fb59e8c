"""The fine-tuned pretrained reference (``--finetune``), fast parts: finding the model, its cost
estimate, its row in the ranking, the verdict and the report, and the refusal of a missing model.
The real CLI end to end on a tiny random BERT is in test_finetune_e2e.py (slow)."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
from helpers import cli_env, error_lines, make_tiny_bert, run_cli, search_args

from textbench.core import finetune
from textbench.core import predictions as packed
from textbench.core.errors import UsageError
from textbench.core.settings import TrainSettings
from textbench.reports import build_report, figures, stats

try:
    from tests.test_reports_fixtures import fixture_labels, make_benchmark, sqlite_storage
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from test_reports_fixtures import fixture_labels, make_benchmark, sqlite_storage


def record(accuracies, labels, seed0: int = 7) -> dict:
    """A stored fine-tune record as ``search.finetune_stage`` writes it, with predictions right on
    each seed's accuracy."""
    runs = []
    for i, acc in enumerate(accuracies):
        preds = labels.copy()
        wrong = np.random.default_rng(i).choice(
            len(labels), int(round((1 - acc) * len(labels))), replace=False
        )
        preds[wrong] = 1 - preds[wrong]
        runs.append(
            {
                "seed": seed0 + i,
                "learning_rate": 3e-5,
                "validation_accuracy": acc - 0.01,
                "test_accuracy": float((preds == labels).mean()),
                "test_predictions": packed.pack(preds),
                "steps_trained": 100,
                "wall_seconds": 50.0,
            }
        )
    return {
        "name": "bert-base-cased fine-tuned",
        "model": "bert-base-cased",
        "n_params": 108_311_810,
        "learning_rate": 3e-5,
        "lr_grid": [2e-5, 3e-5, 5e-5],
        "lr_selection_seed": seed0,
        "validation_by_lr": {"2e-05": 0.9, "3e-05": 0.92, "5e-05": 0.91},
        "trainings": [{"steps_trained": 100, "wall_seconds": 50.0}] * (2 + len(runs)),
        "runs": runs,
        "test_accuracies": [r["test_accuracy"] for r in runs],
        "test_accuracy": float(np.mean([r["test_accuracy"] for r in runs])),
        "validation_accuracy": float(np.mean([r["validation_accuracy"] for r in runs])),
        "seconds": 7560.0,
        "steps_per_second": 2.0,
        "device": "CPU",
    }


def predictions_of(rec: dict) -> dict:
    return {("finetune", r["seed"]): packed.unpack(r["test_predictions"]) for r in rec["runs"]}


def family_frame(labels, accuracies=(0.80, 0.81, 0.79)) -> tuple[pd.DataFrame, dict]:
    rows, preds = [], {}
    for seed, acc in enumerate(accuracies):
        p = labels.copy()
        wrong = np.random.default_rng(100 + seed).choice(
            len(labels), int((1 - acc) * len(labels)), replace=False
        )
        p[wrong] = 1 - p[wrong]
        preds[("cnn", 3, seed)] = p
        rows.append(
            {
                "family": "cnn",
                "rank": 1,
                "trial_number": 3,
                "seed": seed,
                "test_accuracy": float((p == labels).mean()),
                "validation_accuracy": acc,
            }
        )
    return pd.DataFrame(rows), preds


def test_the_pretrained_row_has_its_seeds_ci_and_chance_like_a_family():
    labels = fixture_labels()
    final, preds = family_frame(labels)
    rec = record([0.90, 0.91, 0.89], labels)
    order = stats.ranking(final, None, preds | predictions_of(rec), labels, rec)
    row = order[order.kind == "pretrained"].iloc[0]
    assert row["name"] == "bert-base-cased fine-tuned" and order["name"].iloc[0] == row["name"]
    assert row["n"] == 3 and row["mean"] == pytest.approx(np.mean(rec["test_accuracies"]))
    assert row["ci_low"] < row["mean"] < row["ci_high"] and not row["at_chance"]
    pairs = stats.pairwise(final, None, preds | predictions_of(rec), labels, finetune=rec)
    pair = pairs[(pairs.a == row["name"]) & (pairs.b == "cnn")].iloc[0]
    assert pair["method"] == "paired bootstrap" and pair["n_seeds_a"] == 3 and pair["significant"]
    assert not np.isnan(pair["welch_p"])  # seed-level Welch too: both sides have seeds


def test_the_verdict_names_it_a_pretrained_reference_with_its_cost():
    labels = fixture_labels()
    final, preds = family_frame(labels)
    rec = record([0.90, 0.91, 0.89], labels)
    trials = pd.DataFrame({"family": ["cnn"], "state": ["COMPLETE"], "value": [0.8]})
    first = stats.verdict_parts(trials, final, None, preds | predictions_of(rec), labels, finetune=rec)[0]
    assert first.startswith("The bert-base-cased fine-tuned model beats the only family on test;")
    assert "(pretrained reference, not searched, 108.3 M parameters, 2h06m of fine-tuning on CPU)" in first
    # below the family it is listed, not announced
    low = record([0.6, 0.61, 0.62], labels)
    first = stats.verdict_parts(trials, final, None, preds | predictions_of(low), labels, finetune=low)[0]
    assert first.startswith("Ranking by mean test accuracy of each family's chosen configuration:")
    assert first.index("cnn") < first.index("bert-base-cased fine-tuned")


def test_the_report_shows_the_reference_row_and_how_it_was_trained(tmp_path, monkeypatch):
    url, store = sqlite_storage(tmp_path / "studies.db")
    studies = make_benchmark(store, "ft", ("cnn", "rnn"), n_trials=6, predictions=True)
    rec = record([0.95, 0.96, 0.94], fixture_labels())
    for study in studies.values():
        study.set_user_attr("finetune", rec)
    monkeypatch.setattr(figures, "to_png", lambda fig: b"")
    text = html.unescape(re.sub(r"<[^>]+>", " ", build_report(url, "ft", tmp_path / "r").read_text()))
    text = re.sub(r"\s+", " ", text)
    assert "The bert-base-cased fine-tuned model beats all 2 families and the" not in text
    assert re.search(
        r"The bert-base-cased fine-tuned model (and the \S+ baseline )?(each )?beats? all 2", text
    )
    assert "bert-base-cased fine-tuned (pretrained reference)" in text  # the ranking table
    assert "learning rate 3e-05 chosen on validation (seed 7, whose run is also its first seed)" in text
    assert "2e-05 (0.900), 3e-05 (0.920), 5e-05 (0.910)" in text
    assert "Cost on CPU: 2h06m for 5 trainings, 2 steps/s." in text


def test_a_missing_model_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError) as hub:
        finetune.resolve_model("some-org/no-such-model", None)
    assert "no local folder some-org/no-such-model and the Hugging Face Hub is unreachable" in str(hub.value)
    assert "save_pretrained('DIR/some-org/no-such-model')" in str(hub.value) and "\n" not in str(hub.value)
    with pytest.raises(UsageError, match="no such folder, and it is not a Hugging Face Hub id"):
        finetune.resolve_model(str(tmp_path / "nothing"), None)
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="has a config.json but no weights"):
        finetune.resolve_model(str(tmp_path / "tok"), None)


def test_a_saved_folder_resolves_by_path_and_under_the_data_dir(tmp_path, tiny_tokenizer_dir):
    folder = make_tiny_bert(tmp_path / "mini", tiny_tokenizer_dir)
    assert finetune.resolve_model(str(folder), None) == str(folder.resolve())
    assert finetune.resolve_model("mini", str(tmp_path)) == str(folder.resolve())


def test_the_estimate_is_every_run_at_full_length_with_its_evaluations():
    settings = TrainSettings(max_steps=100, eval_steps=50, batch_size=8)
    assert finetune.runs_needed(3) == 5 and finetune.runs_needed(1) == 3
    # 2 runs x (100 steps x 2 s + 2 evaluations x 240 rows x 2/3/8 s) + 2 x 120 test rows x 2/3/8 s
    assert finetune.estimated_seconds(2.0, settings, 2, 240, 120) == pytest.approx(2 * (200 + 40) + 20)


def test_cli_refuses_a_missing_model_before_writing_anything(tmp_path, tiny_data_dir):
    out = tmp_path / "out"
    result = run_cli(
        *search_args(tiny_data_dir, out, extra=["--final-seeds", "1", "--finetune", "nowhere/none"]),
        env=cli_env(HF_HUB_OFFLINE="1"),
    )
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [result.stderr.strip()]
    assert "the Hugging Face Hub is unreachable" in result.stderr and not out.exists()


def test_cli_refuses_finetune_without_final_seeds(tmp_path, tiny_data_dir):
    result = run_cli(*search_args(tiny_data_dir, tmp_path / "o", extra=["--finetune", "x"]))
    assert result.returncode == 2 and "--finetune trains over the final-stage seeds" in result.stderr


def test_the_benchmark_eta_counts_the_fine_tune_until_it_has_run():
    from textbench.search.overall import Overall

    overall = Overall(families=["cnn"], trials=2, final_runs=1, baseline=False, max_steps=10)
    overall.calibrated["cnn"] = 0.1
    before = overall.remaining_seconds()
    overall.finetune_seconds = 3600.0
    assert overall.remaining_seconds() == pytest.approx(before + 3600.0)
    assert "benchmark 1 h 00 min left" in overall.line()

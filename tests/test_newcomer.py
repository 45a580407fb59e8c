"""A newcomer's first hour (issue 19): quiet output, label names on every saved model, train says
where its model is and how to use it, and the whole benchmark's ETA adds up."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from helpers import make_dataset, run_cli, search_args

from textbench.search.overall import BASELINE_SECONDS_PER_ROW, Overall, _duration

# ---------------------------------------------------------------- the ETA arithmetic, by hand


def _measured_plan(**overrides) -> Overall:
    """cnn searched 4 of 10 trials: two completed at 1000 steps in 10 s each, two pruned at 500 in 5 s."""
    plan = Overall(
        **{
            "families": ["cnn", "rnn"],
            "trials": 10,
            "final_runs": 6,
            "baseline": False,
            "max_steps": 1000,
            "train_rows": 1000,
            "clock": lambda: 0.0,
            **overrides,
        }
    )
    for steps, seconds, complete in ((1000, 10, True), (1000, 10, True), (500, 5, False), (500, 5, False)):
        plan.measured("cnn", steps, seconds, trial=True, complete=complete)
    plan.finished["cnn"] = 4
    return plan


def test_eta_covers_remaining_trials_final_stage_and_baseline():
    plan = _measured_plan()
    # 0.01 s/step; a trial averages 750 steps (pruned ones included), a final run 1000 (completed ones):
    # search (6 + 10) x 750 = 12,000 steps, final 2 families x 6 runs x 1000 = 12,000 steps -> 240 s.
    assert plan.remaining_seconds() == pytest.approx(240.0)
    assert _measured_plan(baseline=True).remaining_seconds() == pytest.approx(
        240.0 + 1000 * BASELINE_SECONDS_PER_ROW
    )
    assert _measured_plan(workers=2).remaining_seconds() == pytest.approx(120.0)
    slower = _measured_plan()  # rnn measured at 0.02 s/step: each family at its own rate and steps
    slower.measured("rnn", 1000, 20, trial=True, complete=True)
    slower.finished["rnn"] = 1
    # a trial of each family averages its own steps (cnn 750, rnn 1000), final runs 1000:
    # cnn (6 x 750 + 6 x 1000) x 0.01 = 105, rnn (9 x 1000 + 6 x 1000) x 0.02 = 300.
    assert slower.remaining_seconds() == pytest.approx(105.0 + 300.0)
    plan.finished.update(cnn=10, rnn=10)
    plan.final_done["cnn"] = 6
    plan.final_planned["rnn"] = 3  # rnn completed fewer trials than top_k: 3 runs, 1 done
    plan.final_done["rnn"] = 1
    assert plan.remaining_seconds() == pytest.approx(2 * 1000 * 0.01)
    assert plan.families_done() == 1


def test_eta_is_unknown_before_any_measurement_and_the_line_says_so():
    plan = Overall(
        families=["cnn"], trials=5, final_runs=3, baseline=True, max_steps=100, phase="search cnn 1/1"
    )
    assert plan.remaining_seconds() is None
    assert plan.line() == "[search cnn 1/1 | families done 0/1 | benchmark ETA ?]"
    measured = _measured_plan(phase="final stage cnn")
    assert measured.line().startswith("[final stage cnn | families done 0/2 | benchmark 4 min left, ETA ")
    assert (_duration(20), _duration(3700)) == ("<1 min", "1 h 02 min")


# ---------------------------------------------------------------- a whole run, read as a user would


def _config_labels(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    return {"id2label": config.get("id2label"), "label2id": config.get("label2id")}


NAMED = {"id2label": {"0": "negative", "1": "positive"}, "label2id": {"negative": 0, "positive": 1}}


def test_a_normal_run_prints_no_warning_and_every_saved_model_has_label_names(tiny_data_dir, tmp_path):
    data = make_dataset(tmp_path, n_train=400, n_test=30, string_labels=True, name="named", seed=0)
    (data / "tokenizer").symlink_to(tiny_data_dir / "tokenizer")
    args = search_args(
        data,
        tmp_path / "runs",
        trials=2,
        max_steps=100,
        eval_steps=20,
        name="named",
        extra=[
            "--fix",
            "filter_size=4",
            "--fix",
            "learning_rate=0.01",
            "--fix",
            "num_filters=64",
            "--final-seeds",
            "3",
            "--top-k",
            "1",
            "--no-reference",
        ],
    )
    args = [a for a in args if a != "--no-baseline"]  # baseline and MLflow registry on: a normal run
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    # Every final seed reached test accuracy 1: they tie (no spread for the statistics to work on).
    row = next(line for line in result.stdout.splitlines() if line.startswith("cnn "))
    assert row.split()[4] == "1.0000", row
    assert not re.search(r"warn", result.stderr, re.IGNORECASE), result.stderr[-3000:]
    assert "Successfully registered" not in result.stderr and "Downloading artifacts" not in result.stderr
    assert "families done 1/1" in result.stderr  # the whole benchmark's line
    models = tmp_path / "runs" / "named" / "models"
    saved = [models / "cnn-best", *sorted((models / "final").iterdir())]
    assert len(saved) >= 2
    for folder in saved:
        assert _config_labels(folder) == NAMED, folder


def test_verbose_shows_the_warnings_a_normal_run_hides(tiny_data_dir, tmp_path):
    args = search_args(
        tiny_data_dir,
        tmp_path / "runs",
        trials=1,
        extra=["--fix", "filter_size=4", "--no-mlflow", "--verbose"],
    )
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ExperimentalWarning: PartialFixedSampler" in result.stderr


def test_train_saves_label_names_and_prints_a_command_that_uses_the_model(tiny_data_dir, tmp_path):
    data = make_dataset(tmp_path, n_train=200, n_test=50, string_labels=True, name="named", seed=1)
    result = run_cli(
        "train",
        "--arch",
        "cnn",
        "--dataset",
        str(data),
        "--tokenizer",
        str(tiny_data_dir / "tokenizer"),
        "--max-length",
        "64",
        "--max-steps",
        "20",
        "--eval-steps",
        "10",
        "--output-dir",
        str(tmp_path / "runs"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "runs" / "train-cnn" / "model"
    assert _config_labels(folder) == NAMED
    assert f"model (label names in config.json): {folder}" in result.stdout
    command = next(line for line in result.stdout.splitlines() if line.startswith("use it: "))
    argv = shlex.split(command.removeprefix("use it: "))
    assert argv[:2] == ["python", "benchmark.py"]
    used = run_cli(*argv[2:])
    assert used.returncode == 0, used.stderr[-3000:]
    header, row = used.stdout.splitlines()[:2]
    assert header.split() == ["text", "prediction", "prob_negative", "prob_positive"]
    assert row.split()[-3] in ("negative", "positive")


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["predict", "--text", "x"], "exactly one of --name"),
        (["predict", "--text", "x", "--model", "no/such/folder"], "no saved model in no/such/folder"),
    ],
)
def test_predict_needs_one_model_source(argv, expect, capsys):
    from textbench import benchmark

    assert benchmark.main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and expect in lines[0], lines


def test_importances_of_tied_trials_are_a_note_not_a_warning(recwarn):
    """Every completed trial at the same value: PED-ANOVA's best decile is all of them, so it warns and
    scores every parameter equal; the report says why instead."""
    import optuna

    from textbench.reports.collect import EqualImportances, dashboard_importances

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 1.0 + 0 * t.suggest_float("x", 0, 1) + 0 * t.suggest_int("n", 1, 9), n_trials=3)
    with pytest.raises(EqualImportances):
        dashboard_importances(study)
    assert not [w for w in recwarn if "same set of trials" in str(w.message)]

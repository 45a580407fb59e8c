"""Configurations that cannot fit are refused before anything is allocated: at the start for a
--fix value, inside a search for a sampled one (the trial fails with the numbers)."""

from __future__ import annotations

import pytest
import torch
from helpers import error_lines, run_cli, search_args

from textbench.core import memory
from textbench.core.models import build_model, count_parameters
from textbench.spaces import get as get_family


@pytest.mark.parametrize("family", ["cnn", "rnn"])
def test_parameters_are_counted_without_allocating_them(family):
    from textbench.core.training import split_params

    params = get_family(family).notes_config
    model_params, _ = split_params(params)
    real = build_model(get_family(family), vocab_size=500, num_labels=3, pad_token_id=0, **model_params)
    est = memory.estimate(
        get_family(family), params, vocab_size=500, num_labels=3, pad_token_id=0, batch_size=8, max_length=64
    )
    assert est.n_params == count_parameters(real)
    assert est.weights_bytes == 16 * est.n_params  # fp32 weight, gradient, two AdamW moments


def test_a_huge_embedding_is_costed_on_the_meta_device():
    # 30522 x 1e6 embedding alone: 3.05e10 parameters, 4.9e11 bytes with gradients and AdamW state
    est = memory.estimate(
        get_family("cnn"),
        {"embedding_dim": 1_000_000, "filter_size": 2, "num_filters": 8},
        vocab_size=30522,
        num_labels=2,
        pad_token_id=0,
        batch_size=8,
        max_length=128,
    )
    assert est.n_params >= 30522 * 1_000_000
    assert est.weights_bytes >= 16 * 30522 * 1_000_000
    assert memory.does_not_fit(est, "cnn").startswith("cnn cannot fit in memory: training it needs about ")


def test_memory_is_shared_between_workers(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(memory.WORKERS_ENV, "1")
    one, _, _ = memory.available_per_worker()
    monkeypatch.setenv(memory.WORKERS_ENV, "4")
    four, workers, _ = memory.available_per_worker()
    assert workers == 4 and abs(four * 4 - one) < 0.05 * one + 4 * 1024**2


def test_an_impossible_fix_is_refused_at_the_start_with_the_numbers(tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    args = search_args(tiny_data_dir, out, family="cnn", trials=2, name="huge", max_steps=20, eval_steps=10)
    result = run_cli(*args, "--fix", "embedding_dim=1000000", "--workers", "1", timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    assert (
        "cannot fit in memory" in line and "embedding_dim=1e+06" in line and "GB is free per worker" in line
    )
    warnings = [w for w in result.stderr.splitlines() if w.startswith("warning: --fix embedding_dim")]
    assert len(warnings) == 1 and "outside cnn's searched range 16..256" in warnings[0]
    assert "UserWarning" not in result.stderr and "Traceback" not in result.stderr
    assert not (out / "optuna.journal").exists()  # refused before any store was made


def test_a_sampled_configuration_that_cannot_fit_fails_unallocated(tiny_data, tmp_path, monkeypatch):
    """Inside a search: the trial fails with DoesNotFit and the numbers; no model is built."""
    import optuna

    from textbench.core.settings import TrainSettings
    from textbench.search import objective as objective_module
    from textbench.search.objective import Objective

    monkeypatch.setattr(memory, "available_per_worker", lambda: (1024, 1, "RAM available"))

    def no_training(*args, **kwargs):
        raise AssertionError("a configuration that cannot fit was trained")

    monkeypatch.setattr(objective_module, "train_config", no_training)
    objective = Objective("cnn", tiny_data, TrainSettings(max_steps=20, eval_steps=10), 0, tmp_path)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1, catch=(Exception,))
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["fail_reason"].startswith("DoesNotFit: cnn {")
    assert "cannot fit in memory" in trial.user_attrs["fail_reason"]


def test_an_out_of_range_fix_that_fits_is_warned_once_by_textbench_not_by_optuna(tiny_data_dir, tmp_path):
    args = search_args(tiny_data_dir, tmp_path / "out", family="cnn", trials=2, name="wide", max_steps=10)
    result = run_cli(*args, "--fix", "embedding_dim=300", "--workers", "1", "--no-mlflow", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [w for w in result.stderr.splitlines() if "embedding_dim" in w and "range" in w]
    assert warnings == [
        "warning: --fix embedding_dim=300 is outside cnn's searched range 16..256: used as given"
    ]
    assert "UserWarning" not in result.stderr

"""core.training: best-checkpoint restore, early stopping, non-finite losses, cleanup, metric, settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import sabotage_after
from transformers import TrainerCallback

from textbench.core.errors import UsageError
from textbench.core.models import build_model
from textbench.core.training import (
    METRIC_PATH,
    CurveCallback,
    NonFiniteLossError,
    TrainSettings,
    compute_accuracy,
    evaluate_split,
    fit,
)
from textbench.spaces import FAMILIES


def tiny_cnn(data, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(
        FAMILIES["cnn"],
        vocab_size=len(data.tokenizer),
        num_labels=data.num_labels,
        pad_token_id=data.tokenizer.pad_token_id,
        embedding_dim=16,
        filter_size=3,
        num_filters=8,
    )


class PoisonAt(TrainerCallback):
    """Put a NaN into the weights at step ``step``: the next losses are NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                model.output_layer.weight[0, 0] = float("nan")


def eval_rows(result):
    return [row for row in result.curves if "eval_accuracy" in row]


def test_best_checkpoint_is_restored(tiny_data, tmp_path):
    settings = TrainSettings(max_steps=60, eval_steps=10, batch_size=8, learning_rate=1e-2, patience=0)
    output = tmp_path / "run"
    result = fit(tiny_cnn(tiny_data), tiny_data, settings, output, seed=0, callbacks=[sabotage_after(35)])
    evals = eval_rows(result)
    assert [row["step"] for row in evals] == [10, 20, 30, 40, 50, 60]
    accuracies = [row["eval_accuracy"] for row in evals]
    # the model learned before the sabotage, and the last evaluations are worse than the best
    assert max(accuracies[:3]) >= 0.8
    assert accuracies[-1] == 0.5 and accuracies[-1] < max(accuracies)
    assert result.best_accuracy == max(accuracies)
    assert result.best_step == evals[accuracies.index(max(accuracies))]["step"] <= 30
    assert result.steps_trained == 60
    # one evaluation's seconds (what a time budget scales to the test split): six of them fit the run
    assert 0 < result.seconds_per_evaluation and 6 * result.seconds_per_evaluation < result.wall_seconds
    # the model left in the trainer is the best checkpoint, not the sabotaged last one
    metrics = result.trainer.evaluate()
    assert metrics["eval_accuracy"] == result.best_accuracy
    assert evaluate_split(result.trainer, tiny_data.splits["validation"], "validation")[
        "validation_accuracy"
    ] == (result.best_accuracy)
    assert result.trainer.model.output_layer.bias[0] != 10.0
    assert not output.exists()  # checkpoints removed
    final = result.final_values()
    assert final["final_eval_accuracy"] == accuracies[-1] and "final_loss" in final


def test_curves_and_final_values(tiny_data, tmp_path):
    settings = TrainSettings(max_steps=20, eval_steps=10, logging_steps=5, batch_size=8, patience=0)
    result = fit(tiny_cnn(tiny_data), tiny_data, settings, tmp_path / "run", learning_rate=5e-3)
    steps = [row["step"] for row in result.curves]
    assert steps == [5, 10, 15, 20]
    assert all({"loss", "learning_rate"} <= set(row) for row in result.curves)
    assert [row["step"] for row in eval_rows(result)] == [10, 20]
    assert result.curves[0]["learning_rate"] <= 5e-3
    assert all(np.isfinite(row["loss"]) for row in result.curves)
    assert result.wall_seconds > 0
    assert result.trainer.args.report_to in ([], "none", ["none"])


def test_bf16_mixed_precision_trains_and_keeps_fp32_weights(tiny_data, tmp_path):
    settings = TrainSettings(max_steps=20, eval_steps=10, batch_size=8, patience=0, precision="bf16")
    result = fit(tiny_cnn(tiny_data), tiny_data, settings, tmp_path / "run", learning_rate=5e-3)
    assert result.trainer.args.bf16 and all(
        np.isfinite(row["loss"]) for row in result.curves if "loss" in row
    )
    assert result.best_accuracy is not None
    assert {p.dtype for p in result.trainer.model.parameters()} == {
        torch.float32
    }  # autocast, not a bf16 model


def test_early_stopping_when_accuracy_plateaus(tiny_data, tmp_path):
    # a learning rate too small to change any prediction: accuracy is flat from the first evaluation
    settings = TrainSettings(max_steps=200, eval_steps=10, batch_size=8, learning_rate=1e-12, patience=2)
    result = fit(tiny_cnn(tiny_data, seed=1), tiny_data, settings, tmp_path / "run")
    evals = eval_rows(result)
    assert len({row["eval_accuracy"] for row in evals}) == 1
    assert result.steps_trained < settings.max_steps
    assert result.steps_trained == (settings.patience + 1) * settings.eval_steps
    assert result.best_step == 10 and result.best_accuracy == evals[0]["eval_accuracy"]


def test_no_early_stopping_with_patience_zero(tiny_data, tmp_path):
    settings = TrainSettings(max_steps=40, eval_steps=10, batch_size=8, learning_rate=1e-12, patience=0)
    result = fit(tiny_cnn(tiny_data, seed=1), tiny_data, settings, tmp_path / "run")
    assert result.steps_trained == 40


def test_nan_loss_raises(tiny_data, tmp_path):
    settings = TrainSettings(max_steps=40, eval_steps=10, logging_steps=5, batch_size=8, patience=0)
    output = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="nan at step 10"):
        fit(tiny_cnn(tiny_data), tiny_data, settings, output, callbacks=[PoisonAt(7)])
    assert not output.exists()  # cleaned up on failure too


def test_exploding_learning_rate_raises(tiny_data, tmp_path):
    # Adam moves every weight by about the learning rate: 1e30 overflows float32 in the next forward pass
    settings = TrainSettings(max_steps=40, eval_steps=20, logging_steps=1, batch_size=8, patience=0)
    with pytest.raises(NonFiniteLossError, match="training loss became (nan|inf) at step [23]$"):
        fit(tiny_cnn(tiny_data), tiny_data, settings, tmp_path / "run", learning_rate=1e30)


def test_keep_checkpoints(tiny_data, tmp_path):
    settings = TrainSettings(max_steps=20, eval_steps=10, batch_size=8, patience=0)
    output = tmp_path / "run"
    result = fit(tiny_cnn(tiny_data), tiny_data, settings, output, keep_checkpoints=True)
    checkpoints = sorted(p.name for p in output.glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{result.best_step}"]


def test_curve_callback_raises_on_non_finite_loss():
    callback = CurveCallback()

    class State:
        global_step = 3

    callback.on_log(None, State(), None, logs={"loss": 0.5, "learning_rate": 1e-3, "epoch": 0.1})
    assert callback.as_records() == [{"step": 3, "loss": 0.5, "learning_rate": 1e-3}]
    with pytest.raises(NonFiniteLossError, match="inf at step 3"):
        callback.on_log(None, State(), None, logs={"loss": float("inf")})


def test_compute_accuracy_offline():
    assert (METRIC_PATH / "accuracy.py").exists()
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.2, 0.1]])
    labels = np.array([0, 1, 1, 1])
    assert compute_accuracy((logits, labels)) == {"accuracy": 0.5}
    three = np.eye(3)[[0, 1, 2, 2]]
    assert compute_accuracy((three, np.array([0, 1, 2, 2]))) == {"accuracy": 1.0}


def test_train_settings_defaults():
    settings = TrainSettings()
    assert settings.logging_steps == settings.eval_steps
    assert settings.budget() == {
        "max_steps": 2500,
        "eval_steps": 500,
        "batch_size": 8,
        "patience": 5,
        "precision": "fp32",
    }


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"max_steps": 0}, "--max-steps must be positive"),
        ({"eval_steps": -1}, "--eval-steps must be positive"),
        ({"batch_size": 0}, "--batch-size must be positive"),
        ({"eval_batch_size": 0}, "--eval-batch-size must be positive"),
        ({"max_steps": 10, "eval_steps": 20}, "exceeds --max-steps"),
        ({"patience": -1}, "--patience must be 0 or more"),
        ({"learning_rate": 0.0}, "learning rate must be positive"),
        ({"learning_rate": float("nan")}, "learning rate must be positive"),
        ({"precision": "fp8"}, "--precision must be one of fp32, bf16, fp16"),
        *(
            []
            if torch.cuda.is_available()
            else [({"precision": "fp16"}, "--precision fp16 needs a CUDA GPU")]
        ),
    ],
)
def test_train_settings_validation(values, fragment):
    from textbench.core.training import check_device

    with pytest.raises(UsageError) as info:
        check_device(TrainSettings(**values))
    message = str(info.value)
    assert fragment in message and "\n" not in message

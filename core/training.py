"""One training run with the Hugging Face Trainer, set up so the numbers can be trusted.

- Early stopping and best-model selection read the validation split only.
- ``save_strategy="best"`` + ``load_best_model_at_end``: the model left in the trainer is the
  checkpoint with the best validation accuracy (with misaligned save/eval steps transformers 5
  silently keeps the last one instead).
- Non-finite losses are not smoothed away (``logging_nan_inf_filter=False``) but stop the run.
- ``report_to="none"``: the harness owns experiment tracking.
"""

from __future__ import annotations

import functools
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import (
    EarlyStoppingCallback,
    PreTrainedModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from textbench.core.data import ArrayRows, PaddingCollator
from textbench.core.errors import UsageError
from textbench.core.families import Family, split_params
from textbench.core.models import build_model
from textbench.core.settings import TrainSettings

METRIC_PATH = Path(__file__).parent / "metrics" / "accuracy"
_accuracy = None


def check_device(settings: TrainSettings) -> None:
    """What ``TrainSettings`` cannot check without torch: fp16 needs a CUDA GPU."""
    if settings.precision == "fp16" and not torch.cuda.is_available():
        raise UsageError("--precision fp16 needs a CUDA GPU and none is visible: use fp32 (or bf16)")


def compute_accuracy(eval_pred) -> dict:
    """Accuracy through the `evaluate` library, from the project's own metric module (offline-safe)."""
    global _accuracy
    if _accuracy is None:
        import evaluate

        _accuracy = evaluate.load(str(METRIC_PATH))
    logits, labels = eval_pred
    return _accuracy.compute(predictions=np.asarray(logits).argmax(axis=-1), references=labels)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the trial is a failure, not a result."""


class CurveCallback(TrainerCallback):
    """Keeps the training curves (loss, learning rate, eval loss/accuracy) keyed by step."""

    KEYS = ("loss", "learning_rate", "eval_loss", "eval_accuracy")

    def __init__(self):
        self.rows: dict[int, dict] = defaultdict(dict)

    def on_log(self, args, state, control, logs=None, **kwargs):
        values = {k: float(v) for k, v in (logs or {}).items() if k in self.KEYS}
        if values:
            self.rows[state.global_step].update(values)
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise NonFiniteLossError(f"training loss became {loss} at step {state.global_step}")

    def as_records(self) -> list[dict]:
        return [{"step": step, **values} for step, values in sorted(self.rows.items())]


@dataclass
class FitResult:
    best_accuracy: float | None
    best_step: int | None
    steps_trained: int
    wall_seconds: float
    curves: list[dict] = field(default_factory=list)
    trainer: Trainer | None = None
    seconds_per_evaluation: float = 0.0  # one pass over the validation split (the Trainer's eval_runtime):
    # what a time budget scales to the test split when it estimates a final run of this configuration

    def final_values(self) -> dict:
        """The curves' last value of each metric (for trial attributes and run metrics)."""
        out = {}
        for row in self.curves:
            out.update({f"final_{k}": v for k, v in row.items() if k != "step"})
        return out


def training_arguments(
    settings: TrainSettings, output_dir: str, *, learning_rate: float, seed: int
) -> TrainingArguments:
    return TrainingArguments(
        output_dir=output_dir,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        learning_rate=learning_rate,
        eval_strategy="steps",
        eval_steps=settings.eval_steps,
        logging_strategy="steps",
        logging_steps=settings.logging_steps,
        logging_nan_inf_filter=False,
        save_strategy="best",
        save_only_model=True,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        seed=seed,
        data_seed=seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=settings.precision == "bf16",
        use_cpu=settings.precision == "bf16"
        and not torch.cuda.is_available(),  # CPU autocast (the Trainer asks)
        fp16=settings.precision == "fp16",
        # The datasets hold only the model's columns (ArrayRows of input_ids, attention_mask, labels):
        # nothing to remove, so skip the per-batch RemoveColumnsCollator wrapper.
        remove_unused_columns=False,
    )


def _ask_once_for_lomo() -> None:
    """accelerate's ``AcceleratedOptimizer.step`` asks importlib twice per optimizer step whether the
    ``lomo_optim`` package is installed (a file-system search of sys.path: ~4% of a small model's step
    on CPU). The answer cannot change during a run, so ask once. Training is unchanged."""
    import accelerate.optimizer

    if not hasattr(accelerate.optimizer.is_lomo_available, "cache_info"):
        accelerate.optimizer.is_lomo_available = functools.cache(accelerate.optimizer.is_lomo_available)


def build_trainer(
    model, data, settings: TrainSettings, output_dir: str, *, learning_rate: float, seed: int, callbacks=()
) -> Trainer:
    """A Trainer on the train split, evaluating on validation (never test)."""
    _ask_once_for_lomo()
    callbacks = list(callbacks)
    if settings.patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.patience))
    trainer = Trainer(
        model=model,
        args=training_arguments(settings, output_dir, learning_rate=learning_rate, seed=seed),
        # The same rows in the same order as the Arrow splits, and the same padded batches as
        # DataCollatorWithPadding, without the per-row Arrow access and tokenizer.pad per step.
        train_dataset=ArrayRows(data.splits["train"]),
        eval_dataset=ArrayRows(data.splits["validation"]),
        processing_class=data.tokenizer,
        data_collator=PaddingCollator(data.tokenizer),
        compute_metrics=compute_accuracy,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # the harness prints its own progress
    return trainer


def fit(
    model,
    data,
    settings: TrainSettings,
    output_dir: str | Path,
    *,
    learning_rate: float | None = None,
    seed: int = 42,
    callbacks=(),
    keep_checkpoints: bool = False,
) -> FitResult:
    """Train ``model`` under ``settings``; the returned trainer holds the best-validation model."""
    curves = CurveCallback()
    trainer = build_trainer(
        model,
        data,
        settings,
        str(output_dir),
        learning_rate=learning_rate or settings.learning_rate,
        seed=seed,
        callbacks=[curves, *callbacks],
    )
    start = time.perf_counter()
    try:
        trainer.train()
    finally:
        if not keep_checkpoints:
            shutil.rmtree(output_dir, ignore_errors=True)
    state = trainer.state
    best_step = None
    if state.best_global_step:
        best_step = int(state.best_global_step)
    return FitResult(
        best_accuracy=state.best_metric,
        best_step=best_step,
        steps_trained=int(state.global_step),
        wall_seconds=time.perf_counter() - start,
        curves=curves.as_records(),
        trainer=trainer,
        seconds_per_evaluation=_seconds_per_evaluation(state.log_history),
    )


def _seconds_per_evaluation(log_history: list[dict]) -> float:
    runtimes = [float(e["eval_runtime"]) for e in log_history if "eval_runtime" in e]
    return sum(runtimes) / len(runtimes) if runtimes else 0.0


def train_config(
    family: Family,
    params: dict,
    data,
    settings: TrainSettings,
    output_dir: str | Path,
    *,
    seed: int,
    callbacks=(),
    before_fit: Callable[[PreTrainedModel], list] | None = None,
) -> tuple[PreTrainedModel, FitResult]:
    """Train one configuration once: seed, build the model from plain values, fit. The objective,
    the final stage, ``rerun`` and ``train`` all train through this, so none can drift from the others.

    ``params`` holds model values and training settings (``learning_rate``; without it the budget's).
    ``before_fit(model)`` runs between building and training (a trial records the model's size and
    starts its tracking there) and returns more Trainer callbacks.
    """
    model_params, training_params = split_params(params)
    set_seed(seed)
    model = build_model(
        family,
        vocab_size=len(data.tokenizer),
        num_labels=data.num_labels,
        pad_token_id=data.tokenizer.pad_token_id,
        **model_params,
    )
    extra = before_fit(model) if before_fit is not None else []
    result = fit(
        model,
        data,
        settings,
        output_dir,
        seed=seed,
        callbacks=[*callbacks, *extra],
        learning_rate=training_params.get("learning_rate", settings.learning_rate),
    )
    return model, result


def evaluate_split(trainer: Trainer, dataset, prefix: str = "test") -> dict:
    """Metrics of the trainer's (best) model on one split, e.g. the test split, once."""
    if isinstance(dataset, datasets.Dataset):
        dataset = ArrayRows(dataset)
    metrics = trainer.predict(dataset, metric_key_prefix=prefix).metrics
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def predict_split(trainer: Trainer, split) -> tuple[dict, np.ndarray]:
    """(metrics with the ``test_`` prefix, predicted label ids) of the trainer's (best) model on one
    split, evaluated once."""
    out = trainer.predict(ArrayRows(split), metric_key_prefix="test")
    logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    metrics = {k: float(v) for k, v in out.metrics.items() if isinstance(v, (int, float))}
    return metrics, np.asarray(logits).argmax(axis=-1)


def set_threads(num_threads: int | None) -> None:
    """Torch intra-op threads (one worker per core avoids oversubscription)."""
    if num_threads:
        torch.set_num_threads(num_threads)

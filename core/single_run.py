"""The course notes' workflow as one command: train one configuration, evaluate once on test.

Outputs beside each other in one folder: ``metrics.json`` (test and best-validation metrics),
``curves.csv`` (loss, eval loss/accuracy by step), ``curves.png``, and the best model.
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import pandas as pd

from textbench.core import memory
from textbench.core.data import load, tokenize
from textbench.core.errors import UsageError
from textbench.core.families import Family
from textbench.core.inference import save_model
from textbench.core.models import count_parameters
from textbench.core.settings import DataSettings, TrainSettings
from textbench.core.training import check_device, evaluate_split, set_threads, train_config

log = logging.getLogger(__name__)


def plot_curves(curves: pd.DataFrame, title: str, path: Path) -> None:
    """Loss (train, validation) and validation accuracy against the step, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for key, label in (("loss", "training loss"), ("eval_loss", "validation loss")):
        if key in curves:
            rows = curves.dropna(subset=[key])
            left.plot(rows["step"], rows[key], marker="o", label=label)
    left.set(xlabel="step", ylabel="cross-entropy", title="loss")
    left.legend()
    if "eval_accuracy" in curves:
        rows = curves.dropna(subset=["eval_accuracy"])
        right.plot(rows["step"], rows["eval_accuracy"], marker="o", color="tab:green")
    right.set(xlabel="step", ylabel="accuracy", title="validation accuracy")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_once(
    family: Family,
    params: dict,
    data_settings: DataSettings,
    settings: TrainSettings,
    out_dir: Path,
    *,
    seed: int = 42,
    threads: int | None = None,
    report: bool = False,
) -> dict:
    """Train ``family`` with ``params`` (model values and learning rate) under ``settings``; write the
    outputs to ``out_dir``; return the metrics (with ``report``, also print them and how to use the model)."""
    set_threads(threads)
    check_device(settings)
    data = load(data_settings)  # validates the data before anything is written
    memory.check(family, params, data, settings, f"{family.name} {params}", UsageError)
    tokenize(data, data_settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, result = train_config(family, params, data, settings, out_dir / "checkpoints", seed=seed)
    test = evaluate_split(result.trainer, data.splits["test"], "test")
    metrics = {
        "arch": family.name,
        "params": {**params, "learning_rate": params.get("learning_rate", settings.learning_rate)},
        "test_accuracy": test["test_accuracy"],
        "test_loss": test["test_loss"],
        "best_validation_accuracy": result.best_accuracy,
        "best_step": result.best_step,
        "steps_trained": result.steps_trained,
        "train_seconds": round(result.wall_seconds, 2),
        "n_params": count_parameters(model),
        "data": data.describe() | {"tokenized_from_cache": data.cache_hit},
        "budget": settings.budget(),
        "seed": seed,
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    curves = pd.DataFrame(result.curves)
    curves.to_csv(out_dir / "curves.csv", index=False)
    plot_curves(
        curves, f"{family.name}: test accuracy {metrics['test_accuracy']:.3f}", out_dir / "curves.png"
    )
    save_model(
        result.trainer.model, data.tokenizer, out_dir / "model", data.label_names, data_settings.max_length
    )
    if report:
        model_dir = shlex.quote(str(out_dir / "model"))
        print(json.dumps(metrics, indent=2))
        print(f"wrote {out_dir}/metrics.json, curves.csv, curves.png")
        print(f"model (label names in config.json): {out_dir / 'model'}")
        print(f'use it: python benchmark.py predict --model {model_dir} --text "a text to classify"')
    return metrics

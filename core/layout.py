"""Where a benchmark keeps its models on disk: one convention for the stage that writes them and
the commands that use them (predict, export, rerun, the registry)."""

from __future__ import annotations

from pathlib import Path


def final_model_dir(run_dir: Path, family: str, trial_number: int, seed: int) -> Path:
    """Where the model of one final-stage run is kept (the best seed of each configuration is)."""
    return Path(run_dir) / "models" / "final" / f"{family}-trial-{trial_number}-seed-{seed}"


def best_seed(records: list[dict]) -> dict:
    """The record with the best validation accuracy among one configuration's seeds (ties: lower seed)."""
    return max(records, key=lambda r: (r["validation_accuracy"], -r["seed"]))


def finetune_model_dir(run_dir: Path) -> Path:
    """Where the fine-tuned pretrained reference's model is kept (its best-validation seed)."""
    return Path(run_dir) / "models" / "finetune"

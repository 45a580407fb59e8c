"""The pretrained reference stage (``--finetune MODEL``): a pretrained model fine-tuned once per
benchmark, stored, logged; a reference row like the TF-IDF baseline, never searched.

Learning rate: chosen on validation from ``core.finetune.LR_GRID`` with the first final-stage seed;
that run *is* seed 0 of the reference (it is not trained again), and the other final-stage seeds are
trained at the chosen rate. Each of those runs is scored on test once; the runs of the rates not
chosen never see test. The record (validation accuracy per rate, per-seed test accuracies and
predictions for the paired comparison, seconds, steps/s, parameters) is the user attribute
``finetune`` of every study of the benchmark; a resumed benchmark with the same data, model,
budget and seeds reuses it. Worker 0 runs the stage, after the baseline: ``--workers`` helpers never do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from textbench.core import finetune, predictions, saved_check
from textbench.core.errors import UsageError
from textbench.core.inference import save_model
from textbench.core.layout import finetune_model_dir
from textbench.core.settings import BUDGET_KEYS, DataSettings, TrainSettings
from textbench.core.training import predict_split
from textbench.search.final import final_seeds
from textbench.search.search_settings import SearchSettings

log = logging.getLogger(__name__)

ATTR = "finetune"
WARN_HOURS = 2.0  # a cost above this many hours is said as a warning, not as information


@dataclass
class FinetunePlan:
    """The stage before it runs: the model, its tokens, its measured cost; ``record`` when stored."""

    model: str  # as given on the command line
    source: str  # the folder or hub id it loads from
    key: str  # the resume key (``stage_key``)
    seeds: list[int]
    data: object = None  # core.data.PreparedData tokenized by the model's tokenizer
    n_params: int | None = None
    seconds_per_step: float | None = None
    estimated_seconds: float = 0.0  # an upper bound (no early stop), 0 when the record is stored
    device: str = "cpu"
    record: dict | None = None
    lines: list[str] = field(default_factory=list)


def stage_key(
    source: str, data_fingerprint: str, train: TrainSettings, seeds: list[int], max_length: int
) -> str:
    parts = {
        "model": finetune.model_fingerprint(source),
        "data": data_fingerprint,
        "budget": {k: getattr(train, k) for k in BUDGET_KEYS},
        "seeds": seeds,
        "grid": list(finetune.LR_GRID),
        "max_length": max_length,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def stored_record(studies, key: str) -> dict | None:
    for study in studies:
        record = study.user_attrs.get(ATTR)
        if record and record.get("key") == key:
            return record
    return None


def _existing_studies(storage, name: str, families: list[str]) -> list[optuna.Study]:
    if storage is None:  # a new store: nothing stored to reuse
        return []
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    return [
        optuna.load_study(study_name=f"{name}-{f}", storage=storage)
        for f in families
        if f"{name}-{f}" in names
    ]


def plan_finetune(
    search: SearchSettings, data_settings: DataSettings, train: TrainSettings, data, storage
) -> FinetunePlan:
    """Resolve the model, tokenize the rows with its tokenizer and time its step on them (or find the
    stored record): the cost is known, and said, before any fine-tuning starts."""
    import torch

    source = finetune.resolve_model(search.finetune, data_settings.data_dir)
    seeds = final_seeds(search.seed, search.final_seeds)
    key = stage_key(source, data.fingerprint, train, seeds, data_settings.max_length)
    plan = FinetunePlan(search.finetune, source, key, seeds)
    plan.device = "GPU" if torch.cuda.is_available() else "CPU"
    plan.record = stored_record(_existing_studies(storage, search.name, search.families), key)
    saved = finetune_model_dir(search.run_dir)
    if plan.record is not None and ((saved / "config.json").is_file() and not saved_check.problem(saved)):
        log.info("fine-tune of %s: stored record reused (no training)", search.finetune)
        return plan
    if plan.record is not None:
        log.warning(
            "fine-tune of %s: its stored model in %s is missing or damaged: training it again",
            search.finetune,
            saved,
        )
        plan.record = None
    plan.data = finetune.model_data(data_settings, source, data.fingerprint)
    model = finetune.load_model(source, plan.data, seeds[0])
    if torch.cuda.is_available():
        model = model.to("cuda")
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and data_settings.max_length > positions:
        raise UsageError(
            f"--finetune {plan.model} reads at most {positions} tokens and --max-length is "
            f"{data_settings.max_length}: lower --max-length to {positions} or less (for every family)"
        )
    plan.n_params = finetune.count_parameters(model)
    plan.seconds_per_step = finetune.seconds_per_step(model, plan.data, train)
    del model
    runs = finetune.runs_needed(len(seeds))
    sizes = plan.data.sizes
    plan.estimated_seconds = finetune.estimated_seconds(
        plan.seconds_per_step, train, runs, sizes["validation"], sizes["test"]
    )
    line = finetune.cost_line(
        finetune.display_name(search.finetune),
        plan.n_params,
        plan.seconds_per_step,
        runs,
        train,
        plan.estimated_seconds,
        plan.device,
    )
    if plan.estimated_seconds > WARN_HOURS * 3600:
        log.warning("%s; a GPU or a smaller model (--finetune FOLDER) makes it shorter", line)
    else:
        log.info("%s", line)
    return plan


def run_finetune(
    studies: dict[str, optuna.Study],
    plan: FinetunePlan,
    *,
    search: SearchSettings,
    train: TrainSettings,
    tracker=None,
) -> dict:
    """The stage's record: stored already, or fine-tuned now (learning rate on validation, then the
    final-stage seeds, each scored on test once), stored on every study and logged to MLflow."""
    record = plan.record or _fine_tune(plan, search, train, tracker)
    for study in studies.values():
        if study.user_attrs.get(ATTR) != record:
            study.set_user_attr(ATTR, record)
    return record


def _fine_tune(plan: FinetunePlan, search: SearchSettings, train: TrainSettings, tracker) -> dict:
    data, name = plan.data, finetune.display_name(plan.model)
    work = Path(search.run_dir) / "checkpoints"
    started = time.perf_counter()
    trained: list[dict] = []  # every training: its learning rate, seed, validation, steps, seconds

    def fit(learning_rate: float, seed: int):
        model, result = finetune.fit_one(
            plan.source,
            data,
            train,
            work / f"finetune-{learning_rate:g}-{seed}",
            learning_rate=learning_rate,
            seed=seed,
        )
        trained.append(
            {
                "learning_rate": learning_rate,
                "seed": seed,
                "validation_accuracy": result.best_accuracy,
                "best_step": result.best_step,
                "steps_trained": result.steps_trained,
                "wall_seconds": round(result.wall_seconds, 3),
                "steps_per_second": round(result.steps_trained / max(result.wall_seconds, 1e-9), 4),
            }
        )
        return model, result

    log.info(
        "fine-tuning %s: learning rate from %s on validation (seed %d)", name, finetune.LR_GRID, plan.seeds[0]
    )
    best = None
    for lr in finetune.LR_GRID:
        model, result = fit(lr, plan.seeds[0])
        if best is None or (result.best_accuracy or 0) > (
            best[1].best_accuracy or 0
        ):  # ties: the smaller rate
            best = (lr, result, model)
        del model, result
    learning_rate = best[0]
    runs: list[dict] = []

    def score(seed: int, result, model) -> None:
        """Test once; keep the model of the best-validation seed (predict/export/registry use it)."""
        test, predicted = predict_split(result.trainer, data.splits["test"])
        run = next(t for t in trained if t["learning_rate"] == learning_rate and t["seed"] == seed)
        run = run | {
            "test_accuracy": test["test_accuracy"],
            "test_loss": test["test_loss"],
            "test_predictions": predictions.pack(predicted),
        }
        if not runs or run["validation_accuracy"] > max(r["validation_accuracy"] for r in runs):
            save_model(
                model, data.tokenizer, finetune_model_dir(search.run_dir), data.label_names, data.max_length
            )
            run["saved"] = True
        runs.append(run)

    score(plan.seeds[0], best[1], best[2])
    del best
    for seed in plan.seeds[1:]:
        model, result = fit(learning_rate, seed)
        score(seed, result, model)
        del model, result
    saved = [r for r in runs if r.pop("saved", False)][-1]
    train_seconds = sum(t["wall_seconds"] for t in trained)
    record = {
        "name": f"{name} fine-tuned",
        "model": plan.model,
        "source": plan.source,
        "key": plan.key,
        "fingerprint": data.fingerprint,
        "max_length": data.max_length,
        "n_params": plan.n_params,
        "learning_rate": learning_rate,
        "lr_grid": list(finetune.LR_GRID),
        "lr_selection_seed": plan.seeds[0],
        "validation_by_lr": {
            f"{t['learning_rate']:g}": t["validation_accuracy"] for t in trained if t["seed"] == plan.seeds[0]
        },
        "trainings": trained,
        "runs": runs,  # the chosen rate, one per final-stage seed, the first one being the rate's own run
        "seeds": plan.seeds,
        "test_accuracies": [r["test_accuracy"] for r in runs],
        "test_accuracy": sum(r["test_accuracy"] for r in runs) / len(runs),
        "validation_accuracy": sum(r["validation_accuracy"] for r in runs) / len(runs),
        "best_seed": saved["seed"],
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(train_seconds, 2),
        "steps_per_second": round(sum(t["steps_trained"] for t in trained) / max(train_seconds, 1e-9), 4),
        "seconds_per_step_measured": plan.seconds_per_step,
        "estimated_seconds": round(plan.estimated_seconds, 1),
        "device": plan.device,
    }
    if tracker is not None:
        tracker.finetune_runs(search.name, record)
    return record

"""The final stage: re-train each family's top-k configurations (and the course notes' reference)
with several seeds, test once.

Search ranks by validation accuracy, and one run per configuration is one draw from the seed
lottery. Before a winner is declared, the best configurations are trained again under the same
budget with seeds shared by all families, and each is evaluated once on the test split. The
records are stored on the study (one user attribute per run as it ends, assembled into
``final_results`` at the end), so a report can be rebuilt, and an interrupted stage resumed,
without re-training; ``--workers`` processes split the stage between them. Each record keeps the
run's test predictions (packed, ``core.predictions``) and learning curves, and the study keeps
the test labels once (``test_labels``): the report compares families example by example.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from textbench.core import predictions
from textbench.core.inference import save_model
from textbench.core.layout import best_seed, final_model_dir
from textbench.core.models import count_parameters
from textbench.core.settings import TrainSettings
from textbench.core.training import predict_split, train_config
from textbench.search.objective import trial_seed
from textbench.search.reference import ATTR as REFERENCE
from textbench.search.reference import is_reference, reference_trial
from textbench.search.runner import WORKER, claim_lock
from textbench.search.search_settings import SearchSettings
from textbench.spaces import get as get_family

if TYPE_CHECKING:
    from textbench.search.overall import Overall
    from textbench.search.tracking import MlflowTracker

log = logging.getLogger(__name__)

FINAL_SEED_OFFSET = 1_000_000  # final seeds never coincide with a search trial's seed


def final_seeds(study_seed: int, n: int) -> list[int]:
    """The same n seeds for every configuration and family, so results pair up."""
    return [trial_seed(study_seed, FINAL_SEED_OFFSET + i) for i in range(n)]


def final_size(study: optuna.Study, search: SearchSettings) -> tuple[int, int]:
    """(configurations, seeds) of the final stage: --top-k x --final-seeds, or under --time-budget what
    worker 0 fitted to the budget after the searches (``final_plan`` on the study, which a ``--workers``
    helper waits for: its searches may end before worker 0's)."""
    if search.time_budget is None:
        return search.top_k, search.final_seeds
    while not (plan := study.user_attrs.get("final_plan")):
        time.sleep(1)
    return int(plan["top_k"]), int(plan["final_seeds"])


def top_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The k completed trials with the best validation value (ties: lower trial number first)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    return sorted(complete, key=lambda t: (-t.value, t.number))[:k]


def final_configs(
    study: optuna.Study, k: int
) -> tuple[list[optuna.trial.FrozenTrial], list[optuna.trial.FrozenTrial]]:
    """(the top k, every configuration the final stage re-trains): the course notes' configuration is
    re-trained with the same seeds too (unless it is in the top k already), so that what tuning bought
    is measured on the same test examples."""
    top = top_trials(study, k)
    ref = reference_trial(study)
    return top, top + ([ref] if ref is not None and ref.number not in {t.number for t in top} else [])


def keep_best_seed_models(run_dir: Path, family: str, records: list[dict]) -> None:
    """Delete the saved final-stage models of ``family`` except each configuration's best seed: the
    model that predict/export use for it (one model per configuration, not one per seed, on disk)."""
    by_trial: dict[int, list[dict]] = {}
    for record in records:
        by_trial.setdefault(record["trial_number"], []).append(record)
    keep = {final_model_dir(run_dir, family, n, best_seed(rs)["seed"]).name for n, rs in by_trial.items()}
    folder = Path(run_dir) / "models" / "final"
    for path in folder.glob(f"{family}-trial-*-seed-*") if folder.exists() else ():
        if path.name not in keep and ".tmp-" not in path.name:
            shutil.rmtree(path, ignore_errors=True)


def train_final(
    family: str,
    trial: optuna.trial.FrozenTrial,
    seed: int,
    data,
    train: TrainSettings,
    run_dir: Path,
    work_dir: Path,
) -> dict:
    """One re-training of a configuration with one seed, evaluated once on the test split; its model
    is saved under ``run_dir`` (``final_model_dir``)."""
    started_at = time.time()
    model, result = train_config(
        get_family(family),
        trial.params,
        data,
        train,
        work_dir / f"final-{family}-{trial.number}-{seed}",
        seed=seed,
    )
    test, predicted = predict_split(result.trainer, data.splits["test"])
    save_model(
        result.trainer.model,
        data.tokenizer,
        final_model_dir(run_dir, family, trial.number, seed),
        data.label_names,
        data.max_length,
    )
    return {
        "arch": family,
        "trial_number": trial.number,
        "seed": seed,
        "test_accuracy": test["test_accuracy"],
        "test_loss": test["test_loss"],
        "validation_accuracy": result.best_accuracy,
        "best_step": result.best_step,
        "steps_trained": result.steps_trained,
        "wall_seconds": round(result.wall_seconds, 3),
        "n_params": count_parameters(model),
        "params": dict(trial.params),
        "worker": WORKER,
        "test_predictions": predictions.pack(predicted),
        "curves": result.curves,
        "started_at": started_at,
        "ended_at": time.time(),
    }


RECORD, CLAIM = "final_run:", "final_claim:"  # study user attrs: one record / one claim per (trial, seed)
RUN_ID_ENV = "TEXTBENCH_RUN_ID"  # set by the CLI for its --workers helpers: claims of other runs are stale


def _key(trial_number: int, seed: int) -> str:
    return f"{trial_number}:{seed}"


def stored_records(attrs: dict) -> dict[tuple[int, int], dict]:
    """(trial number, seed) -> record, from a study's user attrs: the assembled list and the
    per-run records of workers."""
    records = {(r["trial_number"], r["seed"]): r for r in attrs.get("final_results", [])}
    for name, record in attrs.items():
        if name.startswith(RECORD):
            records[(record["trial_number"], record["seed"])] = record
    return records


def _claim_next(study: optuna.Study, runs: list[tuple]) -> tuple | None:
    """Under the study lock: the first (trial, seed) with no record and no live claim, now claimed."""
    run_id = os.environ.get(RUN_ID_ENV, str(os.getpid()))
    with claim_lock(study):
        attrs = study.user_attrs
        done = stored_records(attrs)
        for trial, seed in runs:
            key = _key(trial.number, seed)
            if (trial.number, seed) in done or attrs.get(CLAIM + key) == run_id:
                continue
            study.set_user_attr(CLAIM + key, run_id)
            return trial, seed
    return None


def run_final(
    study: optuna.Study,
    family: str,
    *,
    search: SearchSettings,
    data,
    train: TrainSettings,
    tracker: MlflowTracker | None = None,
    overall: Overall | None = None,
    share: bool = False,
) -> list[dict]:
    """Re-train the top-k configurations x seeds that are not stored yet; returns all records.

    With ``share`` (each ``--workers`` process), runs are claimed one at a time so that the workers
    split the stage; without it (the CLI process, last), whatever is still missing is run here and
    the records are assembled into ``final_results``, in rank and seed order."""
    s = search
    if s.final_seeds == 0:
        return []
    top_k, n_seeds = final_size(study, s)
    top, configs = final_configs(study, top_k)
    rank = {t.number: i + 1 for i, t in enumerate(top)}
    seeds = final_seeds(s.seed, n_seeds)
    if not top and not share:
        log.warning("%s: no completed trial, nothing to evaluate on test", study.study_name)
    keep = {t.number for t in configs}
    ref = reference_trial(study)

    runs = [(t, seed) for t in configs for seed in seeds]
    labels = predictions.pack(data.splits["test"]["labels"])
    if runs and study.user_attrs.get("test_labels") != labels:
        study.set_user_attr("test_labels", labels)

    def train_one(trial, seed) -> None:
        record = train_final(family, trial, seed, data, train, s.run_dir, s.run_dir / "checkpoints") | {
            "rank": rank.get(trial.number),
            REFERENCE: is_reference(trial),
            "seed_index": seeds.index(seed),
        }
        study.set_user_attr(RECORD + _key(trial.number, seed), record)
        if tracker is not None:
            tracker.final_run(study, record)

    def stored() -> int:
        done = stored_records(study.user_attrs)
        return sum((t.number, seed) in done for t, seed in runs)

    def describe() -> str:
        return f"{study.study_name} final" + (f" {overall.line()}" if overall is not None else "")

    already = stored()
    if overall is not None:
        overall.phase = f"final stage {family}"
        overall.final_planned[family] = len(runs)
        overall.final_done[family] = already
    if share:  # claimed one at a time, so that the workers split the stage; the bar counts all of theirs
        items = iter(lambda: _claim_next(study, runs), None)
    else:
        done = stored_records(study.user_attrs)
        items = iter([(t, seed) for t, seed in runs if (t.number, seed) not in done])
    bar = tqdm(
        total=len(runs),
        initial=already,
        desc=describe(),
        unit="run",
        disable=not s.progress or already >= len(runs),
    )
    for trial, seed in items:
        train_one(trial, seed)
        bar.n = stored()
        if overall is not None:
            record = stored_records(study.user_attrs).get((trial.number, seed), {})
            overall.measured(
                family,
                record.get("steps_trained", 0),
                record.get("wall_seconds", 0),
                trial=False,
                complete=True,
            )
            overall.final_done[family] = bar.n
        bar.set_description(describe())
    bar.close()
    if share:
        return []
    # Keep the records that still belong to the current top-k or the reference (a resumed search may
    # change it).
    records = [
        dict(
            r,
            rank=rank.get(r["trial_number"]),
            **{REFERENCE: ref is not None and r["trial_number"] == ref.number},
        )
        for r in stored_records(study.user_attrs).values()
        if r["trial_number"] in keep and r["seed"] in seeds
    ]
    study.set_user_attr(
        "final_results", sorted(records, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["seed"]))
    )
    keep_best_seed_models(s.run_dir, family, records)
    return records

"""The objective: suggest -> model from plain values -> Trainer -> best validation accuracy.

The trial's value is the best validation accuracy seen during training (the checkpoint that
``load_best_model_at_end`` restores), never the last one and never a test score. Every
evaluation is reported to the trial so the pruner can stop hopeless trials early.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
from transformers import TrainerCallback

from textbench.core import memory
from textbench.core.inference import save_model
from textbench.core.models import count_parameters
from textbench.core.settings import TrainSettings
from textbench.core.training import NonFiniteLossError, train_config
from textbench.spaces import get as get_family

log = logging.getLogger(__name__)
CURVES_FILE = "curves.csv"  # each trial's learning curves, in the study's artifact store


def trial_seed(study_seed: int, trial_number: int) -> int:
    """A per-trial seed derived from (study seed, trial number): reproducible and decorrelated."""
    digest = hashlib.sha256(f"{study_seed}:{trial_number}".encode()).hexdigest()
    return int(digest[:8], 16)


class PruningCallback(TrainerCallback):
    """Reports each validation accuracy to the trial; stops training cleanly when told to prune."""

    def __init__(self, trial: optuna.Trial, metric: str = "eval_accuracy"):
        self.trial = trial
        self.metric = metric
        self.pruned_at: int | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(self.metric)
        if value is None:
            return
        self.trial.report(float(value), state.global_step)
        if self.trial.should_prune():
            if self.pruned_at is None:
                self.pruned_at = state.global_step
                self._record_why()
            control.should_training_stop = True

    def _record_why(self) -> None:
        """The reference and noise margin the pruner used, so the decision can be checked later."""
        decision = getattr(self.trial.study.pruner, "decisions", {}).get(self.trial.number)
        if decision is not None and decision.median is not None:
            self.trial.set_user_attr("pruned_median", decision.median)
            self.trial.set_user_attr("pruned_margin", decision.margin)


@dataclass
class Objective:
    """Callable ``(trial) -> float`` for one family on prepared (tokenized-once) data."""

    family: str
    data: object  # core.data.PreparedData
    settings: TrainSettings
    study_seed: int
    work_dir: Path
    hooks: list = field(
        default_factory=list
    )  # objects with trial_started(trial, params), trial_callbacks(trial)
    best_model_dir: Path | None = None  # where the study's best model so far is saved
    artifact_dir: Path | None = None  # Optuna artifact store for each trial's curves.csv (else a user attr)

    def __call__(self, trial: optuna.Trial) -> float:
        family = get_family(self.family)
        params = family.suggest(trial)
        seed = trial_seed(self.study_seed, trial.number)
        trial.set_user_attr("seed", seed)
        pruning = PruningCallback(trial)

        def before_fit(model) -> list:
            trial.set_user_attr("n_params", count_parameters(model))
            for hook in self.hooks:
                hook.trial_started(trial, params)
            return [cb for hook in self.hooks for cb in hook.trial_callbacks(trial)]

        output_dir = Path(self.work_dir) / f"{self.family}-trial-{trial.number}"
        start = time.perf_counter()
        try:
            # a sampled configuration too large for this machine fails here, before it is allocated
            memory.check(
                family, params, self.data, self.settings, f"{self.family} {params}", memory.DoesNotFit
            )
            model, result = train_config(
                family,
                params,
                self.data,
                self.settings,
                output_dir,
                seed=seed,
                callbacks=[pruning],
                before_fit=before_fit,
            )
        except NonFiniteLossError as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted")
            raise
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{exc.__class__.__name__}: {str(exc)[:300]}")
            raise
        finally:
            trial.set_user_attr("wall_seconds", round(time.perf_counter() - start, 3))
            shutil.rmtree(output_dir, ignore_errors=True)

        attrs = {
            "best_step": result.best_step,
            "steps_trained": result.steps_trained,
            "seconds_per_evaluation": round(result.seconds_per_evaluation, 3),
            **result.final_values(),
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        self._store_curves(trial, result.curves)
        if result.best_accuracy is None:
            raise RuntimeError("no evaluation happened: lower --eval-steps below --max-steps")
        if pruning.pruned_at is not None:
            del result, model
            gc.collect()
            raise optuna.TrialPruned(f"pruned at step {pruning.pruned_at}")
        self._keep_if_best(trial, result)
        return float(result.best_accuracy)

    def _store_curves(self, trial: optuna.Trial, curves: list[dict]) -> None:
        """The learning curves as a trial artifact (optuna-dashboard shows a CSV as a table; a long
        user attribute overflows its trial pane), or as the ``curves`` attr without an artifact store."""
        if self.artifact_dir is None:
            trial.set_user_attr("curves", curves)
            return
        if not curves:
            return
        Path(self.artifact_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / CURVES_FILE
            pd.DataFrame(curves).to_csv(path, index=False)
            optuna.artifacts.upload_artifact(
                artifact_store=optuna.artifacts.FileSystemArtifactStore(self.artifact_dir),
                file_path=str(path),
                study_or_trial=trial,
            )

    def _keep_if_best(self, trial: optuna.Trial, result) -> None:
        """Save the restored best model when this trial beats every finished one of the study."""
        if self.best_model_dir is None:
            return
        try:
            best = trial.study.best_value
        except ValueError:  # no completed trial yet
            best = float("-inf")
        if result.best_accuracy > best:
            save_model(
                result.trainer.model,
                self.data.tokenizer,
                self.best_model_dir,
                self.data.label_names,
                self.data.max_length,
                {"TRIAL": str(trial.number)},
            )

"""Re-train one recorded run from its parameters and seed, to prove a number of the report
(``textbench.use.rerun`` finds the run and compares).

A search trial is re-trained as the objective trained it (same data, budget, parameters and
``trial_seed``; a pruned trial stops at the step where it was pruned); with ``seed`` set to one of
the final stage's seeds, that final-stage run is re-trained by the final stage's own function and
evaluated on test as it was. Recorded and re-obtained accuracies are shown side by side: on the same
CPU build and thread count they are bit-identical; on other hardware the difference is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState
from transformers import TrainerCallback

from textbench.core.data import prepare
from textbench.core.errors import UsageError
from textbench.core.settings import BUDGET_KEYS, DataSettings, TrainSettings
from textbench.core.training import train_config
from textbench.search.objective import trial_seed
from textbench.spaces import get as get_family


@dataclass
class Rerun:
    """Recorded and re-obtained values of one re-trained run (``None``: not recorded / not evaluated)."""

    family: str
    trial_number: int
    seed: int
    kind: str  # "search trial" or "final-stage run"
    recorded: dict[str, float | None]
    obtained: dict[str, float | None]
    curve: list[tuple[str, float | None, float | None]] = field(
        default_factory=list
    )  # what, recorded, re-obtained
    saved: Path | None = None

    @property
    def identical(self) -> bool:
        pairs = [(self.recorded[k], self.obtained[k]) for k in self.recorded] + [
            (a, b) for _, a, b in self.curve
        ]
        return all(a == b for a, b in pairs if a is not None)


FINAL_KEYS = ("validation_accuracy", "test_accuracy", "test_loss")
CURVE_KEYS = {"eval_accuracy": "validation accuracy", "eval_loss": "validation loss"}  # per evaluation step


class _StopAt(TrainerCallback):
    """Stop after the evaluation at ``step``: where the pruner stopped the recorded trial."""

    def __init__(self, step: int):
        self.step = step

    def on_evaluate(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def recorded_settings(attrs: dict, output_dir: Path) -> tuple[DataSettings, TrainSettings]:
    """The benchmark's data and budget settings, from its study attributes."""
    settings, data = attrs.get("settings") or {}, attrs.get("data_settings")
    if not data:
        raise UsageError(
            "this benchmark's studies do not record their data settings (made before `rerun` "
            "existed): re-run the benchmark with this version to make its trials re-runnable"
        )
    data = {
        **data,
        "dataset": settings.get("dataset", data["dataset"]),
        "tokenizer": settings.get("tokenizer", data["tokenizer"]),
        "cache_dir": str(output_dir / "cache"),
    }
    budget = {k: settings[k] for k in BUDGET_KEYS}
    return DataSettings(**data), TrainSettings(**budget)


def prepare_recorded(attrs: dict, output_dir: Path, threads: int | None):
    from textbench.core.training import set_threads

    set_threads(threads)
    data_settings, train = recorded_settings(attrs, output_dir)
    data = prepare(data_settings)
    expected = attrs["settings"].get("fingerprint")
    if expected and data.fingerprint != expected:
        raise UsageError(
            f"the data differs from the benchmark's (fingerprint {data.fingerprint}, recorded "
            f"{expected}): point $TEXTBENCH_DATA/--output-dir at the same data as the run"
        )
    return data, train


def find_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise UsageError(
            f"study {study.study_name} has no trial {number} (trials 0 to {max(trials, default=-1)})"
        )
    trial = trials[number]
    if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        raise UsageError(
            f"trial {number} of {study.study_name} is {trial.state.name.lower()}: only complete or "
            "pruned trials have a recorded value to reproduce"
        )
    return trial


def rerun_search_trial(data, train: TrainSettings, family: str, study_seed: int, trial, work_dir: Path):
    """The objective's training of ``trial`` (the same ``train_config``, seed, data and budget); a
    pruned trial stops at the step where it was pruned."""
    seed = trial_seed(study_seed, trial.number)
    stop = [_StopAt(trial.last_step)] if trial.state == TrialState.PRUNED else []
    _, result = train_config(
        get_family(family),
        trial.params,
        data,
        train,
        work_dir / f"rerun-{family}-trial-{trial.number}",
        seed=seed,
        callbacks=stop,
    )
    return seed, result


def _value(x: float | None) -> str:
    return "-" if x is None else repr(float(x))


def _difference(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    return "identical" if a == b else f"{b - a:+.3g}"


def format_rerun(r: Rerun) -> str:
    """Recorded vs re-obtained, full precision, one line per value and per evaluation step."""
    lines = [
        f"{r.family} trial {r.trial_number}, {r.kind}, seed {r.seed}",
        f"{'':<30} {'recorded':>20} {'re-obtained':>20}  difference",
    ]
    for key in r.recorded:
        lines.append(
            f"{key.replace('_', ' '):<30} {_value(r.recorded[key]):>20} {_value(r.obtained[key]):>20}  "
            f"{_difference(r.recorded[key], r.obtained[key])}"
        )
    for what, a, b in r.curve:
        lines.append(f"{'  ' + what:<30} {_value(a):>20} {_value(b):>20}  {_difference(a, b)}")
    lines.append(
        "bit-identical to the recorded run"
        if r.identical
        else "differs from the recorded run (another CPU/GPU, thread count or library build changes float "
        "sums)"
    )
    if r.saved is not None:
        lines.append(f"model saved to {r.saved}")
    return "\n".join(lines)

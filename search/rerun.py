"""Re-run one recorded trial from its parameters and seed, to prove a number of the report.

A search trial is re-trained as the objective trained it (same data, budget, parameters and
``trial_seed``; a pruned trial stops at the step where it was pruned); with ``seed`` set to one of
the final stage's seeds, that final-stage run is re-trained by the final stage's own function and
evaluated on test as it was. Recorded and re-obtained accuracies are shown side by side: on the same
CPU build and thread count they are bit-identical; on other hardware the difference is shown.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import optuna
from optuna.trial import TrialState
from transformers import TrainerCallback, set_seed

from core.data import DataSettings, prepare
from core.errors import UsageError
from core.inference import save_model
from core.models import build_model
from core.training import TrainSettings, fit
from reports import collect
from search.final import final_model_dir, stored_records, train_final
from search.objective import trial_seed
from search.use import open_benchmark
from spaces import split_params


@dataclass
class Rerun:
    """Recorded and re-obtained values of one re-trained run (``None``: not recorded / not evaluated)."""

    arch: str
    trial_number: int
    seed: int
    kind: str  # "search trial" or "final-stage run"
    recorded: dict[str, float | None]
    obtained: dict[str, float | None]
    curve: list[tuple[str, float | None, float | None]] = field(default_factory=list)  # what, recorded, re-obtained
    saved: Path | None = None

    @property
    def identical(self) -> bool:
        pairs = [(self.recorded[k], self.obtained[k]) for k in self.recorded] + [(a, b) for _, a, b in self.curve]
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
        raise UsageError("this benchmark's studies do not record their data settings (made before `rerun` "
                         "existed): re-run the benchmark with this version to make its trials re-runnable")
    data = {**data, "dataset": settings.get("dataset", data["dataset"]),
            "tokenizer": settings.get("tokenizer", data["tokenizer"]), "cache_dir": str(output_dir / "cache")}
    budget = {k: settings[k] for k in ("max_steps", "eval_steps", "batch_size", "patience", "precision")}
    return DataSettings(**data), TrainSettings(**budget)


def _prepare(attrs: dict, output_dir: Path, threads: int | None):
    from core.training import set_threads

    set_threads(threads)
    data_settings, train = recorded_settings(attrs, output_dir)
    data = prepare(data_settings)
    expected = attrs["settings"].get("fingerprint")
    if expected and data.fingerprint != expected:
        raise UsageError(f"the data differs from the benchmark's (fingerprint {data.fingerprint}, recorded "
                         f"{expected}): point $TEXTBENCH_DATA/--output-dir at the same data as the run")
    return data, train


def _find_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise UsageError(f"study {study.study_name} has no trial {number} (trials 0 to {max(trials, default=-1)})")
    trial = trials[number]
    if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        raise UsageError(f"trial {number} of {study.study_name} is {trial.state.name.lower()}: only complete or "
                         "pruned trials have a recorded value to reproduce")
    return trial


def rerun_search_trial(data, train: TrainSettings, arch: str, study_seed: int, trial, work_dir: Path):
    """The objective's training of ``trial``, step for step (same seed, model, data, budget)."""
    model_params, training_params = split_params(trial.params)
    seed = trial_seed(study_seed, trial.number)
    set_seed(seed)
    model = build_model(arch, vocab_size=len(data.tokenizer), num_labels=data.num_labels,
                        pad_token_id=data.tokenizer.pad_token_id, **model_params)
    stop = [_StopAt(trial.last_step)] if trial.state == TrialState.PRUNED else []
    result = fit(model, data, train, work_dir / f"rerun-{arch}-trial-{trial.number}",
                 learning_rate=training_params.get("learning_rate", train.learning_rate), seed=seed, callbacks=stop)
    return seed, result


def rerun(storage: str, name: str, output_dir: str | Path, arch: str, trial_number: int, *,
          seed: int | None = None, save: bool = False, threads: int | None = 1) -> Rerun:
    """Re-train one recorded run; ``seed`` picks a final-stage run of the trial instead of the search trial."""
    output_dir = Path(output_dir)
    bench = open_benchmark(storage, name)
    if arch not in bench.studies:
        raise UsageError(f"benchmark {name!r} has no family {arch!r}: use one of {', '.join(bench.families)}")
    study, attrs = bench.studies[arch], bench.attrs(arch)
    trial = _find_trial(study, trial_number)
    record = None
    if seed is not None:
        records = {k: r for k, r in stored_records(attrs).items() if k[0] == trial_number}
        record = records.get((trial_number, seed))
        if record is None:
            seeds = ", ".join(str(s) for _, s in sorted(records)) or "none: the trial was not in the final stage"
            raise UsageError(f"{arch} trial {trial_number} has no final-stage run with seed {seed} (seeds: {seeds})")
    if save and seed is None and trial.number != study.best_trial.number:
        raise UsageError(f"--save keeps the models predict/export use: trial {trial_number} is not the best trial "
                         f"of {study.study_name} ({study.best_trial.number}) nor a final-stage run (add --seed)")
    data, train = _prepare(attrs, output_dir, threads)
    run_dir = output_dir / name
    with tempfile.TemporaryDirectory(prefix="textbench-rerun-") as tmp:
        if record is not None:
            scratch = SimpleNamespace(data=data, train=train, search=SimpleNamespace(run_dir=Path(tmp)))
            new = train_final(scratch, arch, trial, seed, Path(tmp) / "checkpoints")
            result = Rerun(arch, trial_number, seed, "final-stage run",
                           {k: record.get(k) for k in FINAL_KEYS}, {k: new[k] for k in FINAL_KEYS})
            model_tmp = final_model_dir(tmp, arch, trial_number, seed)
            target = final_model_dir(run_dir, arch, trial_number, seed)
            if save:
                shutil.rmtree(target, ignore_errors=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(model_tmp), str(target))
                result.saved = target
            return result
        used_seed, fitted = rerun_search_trial(data, train, arch, int(attrs["settings"]["seed"]), trial, Path(tmp))
        recorded_curve = {(r["step"], k): r[k] for r in collect.trial_curves(bench, arch, trial)
                          for k in CURVE_KEYS if k in r}
        recorded_curve |= {(step, "eval_accuracy"): v for step, v in trial.intermediate_values.items()}
        obtained_curve = {(r["step"], k): r[k] for r in fitted.curves for k in CURVE_KEYS if k in r}
        key = "validation_accuracy" if trial.state == TrialState.COMPLETE else "validation_accuracy_at_prune"
        obtained = (fitted.best_accuracy if trial.state == TrialState.COMPLETE
                    else obtained_curve.get((trial.last_step, "eval_accuracy")))
        result = Rerun(arch, trial_number, used_seed, "search trial", {key: trial.value}, {key: obtained},
                       [(f"{CURVE_KEYS[k]} at step {step}", recorded_curve.get((step, k)), obtained_curve.get((step, k)))
                        for step, k in sorted(set(recorded_curve) | set(obtained_curve))])
        if save:
            result.saved = save_model(fitted.trainer.model, data.tokenizer, run_dir / "models" / f"{arch}-best",
                                      data.label_names, data.max_length, {"TRIAL": str(trial_number)})
        return result


def _value(x: float | None) -> str:
    return "-" if x is None else repr(float(x))


def _difference(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    return "identical" if a == b else f"{b - a:+.3g}"


def format_rerun(r: Rerun) -> str:
    """Recorded vs re-obtained, full precision, one line per value and per evaluation step."""
    lines = [f"{r.arch} trial {r.trial_number}, {r.kind}, seed {r.seed}",
             f"{'':<30} {'recorded':>20} {'re-obtained':>20}  difference"]
    for key in r.recorded:
        lines.append(f"{key.replace('_', ' '):<30} {_value(r.recorded[key]):>20} {_value(r.obtained[key]):>20}  "
                     f"{_difference(r.recorded[key], r.obtained[key])}")
    for what, a, b in r.curve:
        lines.append(f"{'  ' + what:<30} {_value(a):>20} {_value(b):>20}  {_difference(a, b)}")
    lines.append("bit-identical to the recorded run" if r.identical else
                 "differs from the recorded run (another CPU/GPU, thread count or library build changes float sums)")
    if r.saved is not None:
        lines.append(f"model saved to {r.saved}")
    return "\n".join(lines)

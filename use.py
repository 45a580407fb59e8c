"""A finished benchmark, used: each family's chosen configuration, the family that won, the saved
model (``predict``, ``export``, the MLflow Model Registry), and a recorded trial re-trained (``rerun``).

Above ``search`` and ``reports``: it reads storage with the report's rules and trains with the
search's functions.

The chosen configuration is the one the report highlights (``reports.stats.choose``: the
final-stage configuration with the best mean validation accuracy over seeds), or the search's
best trial when no final stage was run. Its model is the final-stage run with the best validation
accuracy among its seeds, saved by the final stage (``core.layout.final_model_dir``); without a
final stage, the search's best model. Test accuracy never selects anything here.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from optuna.trial import TrialState

from textbench.core import saved_check
from textbench.core.errors import UsageError
from textbench.core.finetune import ARCH as FINETUNE
from textbench.core.finetune import SOURCE as FINETUNE_SOURCE
from textbench.core.inference import save_model, saved_labels
from textbench.core.layout import best_seed, final_model_dir, finetune_model_dir
from textbench.reports import collect, stats
from textbench.reports.card import model_card
from textbench.search.final import stored_records, train_final
from textbench.search.rerun import (
    CURVE_KEYS,
    FINAL_KEYS,
    Rerun,
    find_trial,
    format_rerun,
    prepare_recorded,
    rerun_search_trial,
)

log = logging.getLogger(__name__)


@dataclass
class Chosen:
    """One family's chosen configuration and the exact model behind it."""

    benchmark: str
    family: str
    trial_number: int
    params: dict
    model_dir: Path
    source: str  # "final stage" or "search"
    seed: int  # the seed that trained this model
    validation_accuracy: float  # of this model
    test_accuracy: float | None  # of this model (final stage only)
    validation: dict = field(default_factory=dict)  # configuration over seeds: mean, std, n, ci_low, ci_high
    test: dict = field(default_factory=dict)  # the same for test (final stage only)
    attrs: dict = field(default_factory=dict)  # the study's user attrs (settings, command, versions...)

    @property
    def registered_name(self) -> str:
        return f"textbench-{self.benchmark}-{self.family}"

    def describe(self) -> str:
        if self.source == FINETUNE_SOURCE:
            return (
                f"{self.family}: {self.params.get('model')} fine-tuned, seed {self.seed} ({self.model_dir})"
            )
        seed = f", seed {self.seed}" if self.source == "final stage" else ""
        return f"{self.family} trial {self.trial_number}{seed} ({self.source} model, {self.model_dir})"


def _summary(rows: pd.DataFrame, value: str) -> dict:
    """mean, std, n, ci_low, ci_high of one configuration's ``value`` over seeds (the report's numbers)."""
    return stats.summarize(rows.assign(family="x"), value=value).iloc[0].drop("family").to_dict()


def finetuned(bench: collect.Benchmark, run_dir: Path) -> Chosen:
    """The fine-tuned pretrained reference's model (``--arch finetune``): its best-validation seed."""
    record = bench.finetune
    if not record:
        raise UsageError(
            f"benchmark {bench.name!r} has no fine-tuned reference: run it with --finetune MODEL"
        )
    runs = pd.DataFrame(record["runs"])
    best = best_seed(record["runs"])
    pick = Chosen(
        bench.name,
        FINETUNE,
        -1,
        {"model": record["model"], "learning_rate": record["learning_rate"]},
        finetune_model_dir(run_dir),
        FINETUNE_SOURCE,
        int(best["seed"]),
        float(best["validation_accuracy"]),
        float(best["test_accuracy"]),
        _summary(runs, "validation_accuracy"),
        _summary(runs, "test_accuracy"),
        bench.attrs(bench.families[0]),
    )
    if not (pick.model_dir / "config.json").exists() or saved_check.problem(pick.model_dir):
        raise UsageError(
            f"the fine-tuned model of benchmark {bench.name!r} is missing or damaged in {pick.model_dir}: "
            "rerun the benchmark's command (a fine-tune without its model is trained again)"
        )
    return pick


def chosen(bench: collect.Benchmark, family: str, run_dir: Path) -> Chosen:
    """``family``'s chosen configuration and model; a one-line error when there is none to use."""
    if family == FINETUNE and family not in bench.studies:
        return finetuned(bench, run_dir)
    if family not in bench.studies:
        raise UsageError(
            f"benchmark {bench.name!r} has no family {family!r}: use one of {', '.join(bench.families)}"
        )
    attrs = bench.attrs(family)
    rows = stats.choose(collect.final_frame(bench))
    rows = rows[rows["family"] == family]
    if len(rows):
        records = rows.to_dict("records")
        best = best_seed(records)
        trial_number, seed = int(best["trial_number"]), int(best["seed"])
        folder = final_model_dir(run_dir, family, trial_number, seed)
        where = f"rerun --name {bench.name} --arch {family} --trial {trial_number} --seed {seed} --save"
        pick = Chosen(
            bench.name,
            family,
            trial_number,
            dict(best["params"]),
            folder,
            "final stage",
            seed,
            float(best["validation_accuracy"]),
            float(best["test_accuracy"]),
            _summary(rows, "validation_accuracy"),
            _summary(rows, "test_accuracy"),
            attrs,
        )
    else:
        top = collect.best_frame(bench, k=1)
        top = top[top["family"] == family]
        if top.empty:
            raise UsageError(
                f"{family} of benchmark {bench.name!r} has no completed trial: nothing to use yet"
            )
        number = int(top["number"].iloc[0])
        trial = next(t for t in bench.trials(family) if t.number == number)
        folder = run_dir / "models" / f"{family}-best"
        saved = (folder / "TRIAL").read_text().strip() if (folder / "TRIAL").exists() else None
        where = f"rerun --name {bench.name} --arch {family} --trial {number} --save"
        if saved is not None and saved != str(number):
            folder = folder / "missing"  # the saved best model is another trial's (a race between workers)
        pick = Chosen(
            bench.name,
            family,
            number,
            dict(trial.params),
            folder,
            "search",
            int(trial.user_attrs.get("seed", -1)),
            float(trial.value),
            None,
            _summary(pd.DataFrame({"value": [trial.value]}), "value"),
            {},
            attrs,
        )
    if not (pick.model_dir / "config.json").exists():
        raise UsageError(
            f"the model of {pick.family} trial {pick.trial_number} is not saved under {run_dir}: "
            f"re-create it with `python benchmark.py {where}` (check --output-dir)"
        )
    damaged = saved_check.problem(pick.model_dir)
    if damaged:
        raise UsageError(
            f"the saved model of {pick.family} trial {pick.trial_number} in {pick.model_dir} does not load: "
            f"{damaged}: re-create it with `python benchmark.py {where}`"
        )
    settings = attrs.get("settings") or {}
    labels, max_length = saved_labels(pick.model_dir)
    if labels != settings.get("labels", labels) or max_length != settings.get("max_length", max_length):
        raise UsageError(
            f"the saved model in {pick.model_dir} predates label names and max length being saved "
            f"with it: re-create it with `python benchmark.py {where}`"
        )
    return pick


def winner(bench: collect.Benchmark) -> str:
    """The family whose chosen configuration has the best mean validation accuracy in the final
    stage (never test); without a final stage, the family with the best search trial."""
    rows = stats.choose(collect.final_frame(bench))
    if len(rows):
        means = rows.groupby("family")["validation_accuracy"].mean()
        return str(means.sort_values(ascending=False, kind="stable").index[0])
    best = collect.best_frame(bench, k=1)
    if best.empty:
        raise UsageError(f"benchmark {bench.name!r} has no completed trial: nothing to use yet")
    return str(
        best.sort_values(["value", "family"], ascending=[False, True], kind="stable")["family"].iloc[0]
    )


def open_storage(storage: str | None, output_dir: str | Path):
    """The benchmark's Optuna storage (``--storage``, else the default under ``output_dir``); a missing
    journal or SQLite file is an error here, never a new empty store."""
    from sqlalchemy.engine import make_url

    from textbench.search.search_settings import check_storage_url, is_journal, resolve_storage
    from textbench.search.study import make_storage

    storage = resolve_storage(storage, output_dir)
    check_storage_url(storage)
    missing = "no benchmark storage at {}: pass the benchmark's --output-dir (or --storage)"
    if is_journal(storage) and not Path(storage).is_file():
        raise UsageError(missing.format(storage))
    if storage.startswith("sqlite"):
        database = make_url(storage).database
        if database and database != ":memory:" and not Path(database).is_file():
            raise UsageError(missing.format(database))
    return make_storage(storage)


def open_benchmark(storage: str | None, name: str, output_dir: str | Path = "runs") -> collect.Benchmark:
    """The benchmark's studies, read with the report's reader; the families that came from a user's
    module are loaded again from the module their study recorded."""
    from textbench.search.plugins import load_recorded

    bench = collect.load_benchmark(open_storage(storage, output_dir), name)
    load_recorded({family: bench.attrs(family).get("family_module") for family in bench.families})
    return bench


def resolve(storage: str | None, name: str, output_dir: str | Path, family: str | None = None) -> Chosen:
    """The model ``predict``/``export`` use: ``family``'s chosen one, or the winning family's."""
    bench = open_benchmark(storage, name, output_dir)
    return chosen(bench, family or winner(bench), Path(output_dir) / name)


def register_models(storage: str | None, name: str, output_dir: str | Path, tracking_uri: str) -> list[str]:
    """Register every family's chosen model (end of a benchmark); ``models:/`` URIs of those registered.
    A family without a usable model is skipped with a warning: the benchmark's results stand anyway."""
    from textbench.search.registry import register

    bench = open_benchmark(storage, name, output_dir)
    uris = []
    for family in [*bench.families, *([FINETUNE] if bench.finetune else [])]:
        try:
            pick = chosen(bench, family, Path(output_dir) / name)
            labels, max_length = saved_labels(pick.model_dir)
            card = model_card(pick, "model", "(registered by textbench)", labels, max_length)
            version = register(
                pick, tracking_uri, Path(output_dir) / name / "mlartifacts", labels, max_length, card
            )
            uris.append(f"models:/{version.name}/{version.version}")
        except Exception as exc:  # noqa: BLE001 - registering is a convenience, never a failed benchmark
            log.warning(
                "%s: chosen model not registered in MLflow (%s)", family, str(exc).splitlines()[0][:300]
            )
    return uris


def rerun(
    storage: str | None,
    name: str,
    output_dir: str | Path,
    family: str,
    trial_number: int,
    *,
    seed: int | None = None,
    save: bool = False,
    threads: int | None = 1,
) -> Rerun:
    """Re-train one recorded run; ``seed`` picks a final-stage run of the trial instead of the search
    trial."""
    output_dir = Path(output_dir)
    bench = open_benchmark(storage, name, output_dir)
    if family not in bench.studies:
        raise UsageError(
            f"benchmark {name!r} has no family {family!r}: use one of {', '.join(bench.families)}"
        )
    study, attrs = bench.studies[family], bench.attrs(family)
    trial = find_trial(study, trial_number)
    record = None
    if seed is not None:
        records = {k: r for k, r in stored_records(attrs).items() if k[0] == trial_number}
        record = records.get((trial_number, seed))
        if record is None:
            seeds = (
                ", ".join(str(s) for _, s in sorted(records)) or "none: the trial was not in the final stage"
            )
            raise UsageError(
                f"{family} trial {trial_number} has no final-stage run with seed {seed} (seeds: {seeds})"
            )
    if save and seed is None and trial.number != study.best_trial.number:
        raise UsageError(
            f"--save keeps the models predict/export use: trial {trial_number} is not the best trial "
            f"of {study.study_name} ({study.best_trial.number}) nor a final-stage run (add --seed)"
        )
    data, train = prepare_recorded(attrs, output_dir, threads)
    run_dir = output_dir / name
    with tempfile.TemporaryDirectory(prefix="textbench-rerun-") as tmp:
        if record is not None:
            new = train_final(family, trial, seed, data, train, Path(tmp), Path(tmp) / "checkpoints")
            result = Rerun(
                family,
                trial_number,
                seed,
                "final-stage run",
                {k: record.get(k) for k in FINAL_KEYS},
                {k: new[k] for k in FINAL_KEYS},
            )
            model_tmp = final_model_dir(tmp, family, trial_number, seed)
            target = final_model_dir(run_dir, family, trial_number, seed)
            if save:
                shutil.rmtree(target, ignore_errors=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(model_tmp), str(target))
                result.saved = target
            return result
        used_seed, fitted = rerun_search_trial(
            data, train, family, int(attrs["settings"]["seed"]), trial, Path(tmp)
        )
        recorded_curve = {
            (r["step"], k): r[k]
            for r in collect.trial_curves(bench, family, trial)
            for k in CURVE_KEYS
            if k in r
        }
        recorded_curve |= {(step, "eval_accuracy"): v for step, v in trial.intermediate_values.items()}
        obtained_curve = {(r["step"], k): r[k] for r in fitted.curves for k in CURVE_KEYS if k in r}
        key = "validation_accuracy" if trial.state == TrialState.COMPLETE else "validation_accuracy_at_prune"
        obtained = (
            fitted.best_accuracy
            if trial.state == TrialState.COMPLETE
            else obtained_curve.get((trial.last_step, "eval_accuracy"))
        )
        result = Rerun(
            family,
            trial_number,
            used_seed,
            "search trial",
            {key: trial.value},
            {key: obtained},
            [
                (
                    f"{CURVE_KEYS[k]} at step {step}",
                    recorded_curve.get((step, k)),
                    obtained_curve.get((step, k)),
                )
                for step, k in sorted(set(recorded_curve) | set(obtained_curve))
            ],
        )
        if save:
            result.saved = save_model(
                fitted.trainer.model,
                data.tokenizer,
                run_dir / "models" / f"{family}-best",
                data.label_names,
                data.max_length,
                {"TRIAL": str(trial_number)},
            )
        return result


def rerun_and_show(
    storage: str | None,
    name: str,
    output_dir: str | Path,
    family: str,
    trial_number: int,
    *,
    seed: int | None = None,
    save: bool = False,
    threads: int | None = 1,
    verbose: bool = False,
) -> Rerun:
    """``rerun``, printed: recorded and re-obtained values side by side (the ``rerun`` command)."""
    from textbench.search.logs import configure_logging

    configure_logging(verbose)
    result = rerun(storage, name, output_dir, family, trial_number, seed=seed, save=save, threads=threads)
    print(format_rerun(result))
    return result


def rebuild_report(storage: str | None, name: str, output_dir: str | Path, verbose: bool = False) -> Path:
    """The ``report`` command: the HTML report rebuilt from storage alone (no training)."""
    from textbench.search.logs import configure_logging

    configure_logging(verbose)
    from textbench.reports import build_report

    return build_report(open_storage(storage, output_dir), name, Path(output_dir) / name)


def predict(
    texts: list[str] | None,
    input_path: str | None,
    text_column: str,
    label_column: str,
    output: str | None,
    batch_size: int,
    *,
    model_dir: str | None = None,
    name: str | None = None,
    output_dir: str | Path = "runs",
    storage: str | None = None,
    family: str | None = None,
    verbose: bool = False,
) -> pd.DataFrame:
    """The ``predict`` command: labels and probabilities for ``texts`` or the rows of ``input_path``,
    by a saved model folder or a benchmark's chosen model; printed or written to ``output``."""
    from textbench.search.logs import configure_logging

    configure_logging(verbose)
    from textbench.core.inference import Classifier, accuracy, check_output, read_texts, write_table

    check_output(output)
    column = text_column if input_path else "text"
    frame = read_texts(input_path, column) if input_path else pd.DataFrame({"text": texts})
    if model_dir is None:
        pick = resolve(storage, name, output_dir, family)
        print(f"model: {pick.describe()}", file=sys.stderr)
        model_dir = pick.model_dir
    else:
        print(f"model: {model_dir}", file=sys.stderr)
    model = Classifier.load(model_dir)
    values = frame[column].fillna("").astype(str).tolist()  # an empty cell is an empty text
    predicted = model.predict(values, batch_size, progress=len(values) > 10 * batch_size)
    out = pd.concat([frame.reset_index(drop=True), predicted.rename(columns={"label": "prediction"})], axis=1)
    if output:
        write_table(out, output)
        print(f"wrote {len(out)} predictions to {output}")
    else:
        print(
            out.head(20).assign(**{column: out[column].astype(str).str.slice(0, 60)}).to_string(index=False)
        )
        if len(out) > 20:
            print(f"... {len(out)} rows: pass --output FILE to write them all")
    if input_path and label_column in frame.columns:
        acc, unknown = accuracy(frame[label_column].tolist(), predicted["label"].tolist(), model.label_names)
        note = f" ({unknown} rows have a label the model does not know)" if unknown else ""
        print(f"accuracy against column {label_column!r}: {acc:.4f} on {len(frame)} rows{note}")
    return out


def export(
    name: str,
    output_dir: str | Path,
    storage: str | None,
    family: str | None,
    to: str | Path,
    *,
    register: bool = False,
    tracking_uri: str | None = None,
    command: str = "",
    verbose: bool = False,
) -> Path:
    """The ``export`` command: the chosen model as a folder transformers loads alone, with its model
    card; with ``register``, also a version in the MLflow Model Registry."""
    from textbench.search.logs import configure_logging

    configure_logging(verbose)
    from textbench.core.export import export_folder
    from textbench.spaces import get as get_family

    pick = resolve(storage, name, output_dir, family)
    labels, max_length = saved_labels(pick.model_dir)
    card = model_card(pick, str(to), command, labels, max_length)
    family = None if pick.source == FINETUNE_SOURCE else get_family(pick.family)  # a standard HF model
    folder = export_folder(pick.model_dir, to, family, {"README.md": card})
    print(f"exported {pick.describe()} to {folder}")
    remote = "" if family is None else "trust_remote_code=True, "
    print(f'load it: transformers.pipeline("text-classification", model="{folder}", {remote}truncation=True)')
    if register:
        from textbench.search.registry import register as register_model
        from textbench.search.search_settings import default_tracking_uri

        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(output_dir)
        artifacts = Path(output_dir) / name / "mlartifacts"
        version = register_model(
            pick,
            uri,
            artifacts,
            labels,
            max_length,
            model_card(pick, "model", "(registered by textbench)", labels, max_length),
        )
        print(f"registered: models:/{version.name}/{version.version}")
    return folder

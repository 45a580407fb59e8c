"""Which model to use: each family's chosen configuration, the family that won, the saved model.

The chosen configuration is the one the report highlights (``reports.stats.choose``: the
final-stage configuration with the best mean validation accuracy over seeds), or the search's
best trial when no final stage was run. Its model is the final-stage run with the best validation
accuracy among its seeds, saved by the final stage (``search.final.final_model_dir``); without a
final stage, the search's best model. Test accuracy never selects anything here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.errors import UsageError
from core.inference import saved_labels
from reports import collect, stats
from search.final import best_seed, final_model_dir


@dataclass
class Chosen:
    """One family's chosen configuration and the exact model behind it."""

    benchmark: str
    arch: str
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
        return f"textbench-{self.benchmark}-{self.arch}"

    def describe(self) -> str:
        seed = f", seed {self.seed}" if self.source == "final stage" else ""
        return f"{self.arch} trial {self.trial_number}{seed} ({self.source} model, {self.model_dir})"


def _summary(rows: pd.DataFrame, value: str) -> dict:
    """mean, std, n, ci_low, ci_high of one configuration's ``value`` over seeds (the report's numbers)."""
    return stats.summarize(rows.assign(family="x"), value=value).iloc[0].drop("family").to_dict()


def chosen(bench: collect.Benchmark, arch: str, run_dir: Path) -> Chosen:
    """``arch``'s chosen configuration and model; a one-line error when there is none to use."""
    if arch not in bench.studies:
        raise UsageError(f"benchmark {bench.name!r} has no family {arch!r}: use one of {', '.join(bench.families)}")
    attrs = bench.attrs(arch)
    rows = stats.choose(collect.final_frame(bench))
    rows = rows[rows["family"] == arch]
    if len(rows):
        records = rows.to_dict("records")
        best = best_seed(records)
        trial_number, seed = int(best["trial_number"]), int(best["seed"])
        folder = final_model_dir(run_dir, arch, trial_number, seed)
        where = f"rerun --name {bench.name} --arch {arch} --trial {trial_number} --seed {seed} --save"
        pick = Chosen(bench.name, arch, trial_number, dict(best["params"]), folder, "final stage", seed,
                      float(best["validation_accuracy"]), float(best["test_accuracy"]),
                      _summary(rows, "validation_accuracy"), _summary(rows, "test_accuracy"), attrs)
    else:
        top = collect.best_frame(bench, k=1)
        top = top[top["family"] == arch]
        if top.empty:
            raise UsageError(f"{arch} of benchmark {bench.name!r} has no completed trial: nothing to use yet")
        number = int(top["number"].iloc[0])
        trial = next(t for t in bench.trials(arch) if t.number == number)
        folder = run_dir / "models" / f"{arch}-best"
        saved = (folder / "TRIAL").read_text().strip() if (folder / "TRIAL").exists() else None
        where = f"rerun --name {bench.name} --arch {arch} --trial {number} --save"
        if saved is not None and saved != str(number):
            folder = folder / "missing"  # the saved best model is another trial's (a race between workers)
        pick = Chosen(bench.name, arch, number, dict(trial.params), folder, "search",
                      int(trial.user_attrs.get("seed", -1)), float(trial.value), None,
                      _summary(pd.DataFrame({"value": [trial.value]}), "value"), {}, attrs)
    if not (pick.model_dir / "config.json").exists():
        raise UsageError(f"the model of {pick.arch} trial {pick.trial_number} is not saved under {run_dir}: "
                         f"re-create it with `python benchmark.py {where}` (check --output-dir)")
    settings = attrs.get("settings") or {}
    labels, max_length = saved_labels(pick.model_dir)
    if labels != settings.get("labels", labels) or max_length != settings.get("max_length", max_length):
        raise UsageError(f"the saved model in {pick.model_dir} predates label names and max length being saved "
                         f"with it: re-create it with `python benchmark.py {where}`")
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
    return str(best.sort_values(["value", "family"], ascending=[False, True], kind="stable")["family"].iloc[0])


def open_benchmark(storage: str, name: str) -> collect.Benchmark:
    """The benchmark's studies; a missing SQLite or journal file is an error here, not a new empty store."""
    from sqlalchemy.engine import make_url

    from search.settings import check_storage_url, is_journal

    check_storage_url(storage)
    if is_journal(storage):
        if not Path(storage).is_file():
            raise UsageError(f"no benchmark storage at {storage}: pass the benchmark's --output-dir (or --storage)")
        from search.study import make_storage

        return collect.load_benchmark(make_storage(storage), name)
    if storage.startswith("sqlite"):
        database = make_url(storage).database
        if database and database != ":memory:" and not Path(database).is_file():
            raise UsageError(f"no benchmark storage at {database}: pass the benchmark's --output-dir (or --storage)")
    return collect.load_benchmark(storage, name)


def resolve(storage: str, name: str, output_dir: str | Path, arch: str | None = None) -> Chosen:
    """The model ``predict``/``export`` use: ``arch``'s chosen one, or the winning family's."""
    bench = open_benchmark(storage, name)
    return chosen(bench, arch or winner(bench), Path(output_dir) / name)

"""A benchmark: one study per family on the same data, split and budget, then the final stage.

``setup`` validates everything that can be checked before any trial runs (so bad input fails in
seconds and leaves nothing behind), ``run`` drives the studies, the final re-evaluation and the
summary.
"""

from __future__ import annotations

import gc
import logging
import os
import platform
import shlex
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import optuna

from core.data import DataSettings, PreparedData, load, tokenize
from core.errors import UsageError
from core.training import TrainSettings, check_device
from core.urls import redact
from search import fixed as fixing
from search.objective import Objective
from search.overall import Overall, measure_trial
from search.reference import enqueue_reference
from search.runner import count_trials, run_study
from search.settings import SearchSettings, is_journal, is_server_storage, is_sqlite
from search.study import (
    check_resumable,
    make_pruner,
    make_sampler,
    make_storage,
    open_study,
    stale_trial_handler,
)
from search.tracking import MlflowTracker, check_tracking

log = logging.getLogger(__name__)

THIN_FRACTION = 0.2  # fewer completed trials than this share of the finished ones: as reports.collect
PACKAGES = ("textbench", "torch", "transformers", "datasets", "evaluate", "accelerate", "optuna", "mlflow",
            "pandas", "scikit-learn")


@dataclass
class Benchmark:
    """Everything a run needs, built and validated by ``setup``."""

    search: SearchSettings
    data_settings: DataSettings
    train: TrainSettings
    data: PreparedData
    storage: optuna.storages.BaseStorage
    fixed: dict[str, dict]
    hooks: list = field(default_factory=list)
    overall: Overall | None = None  # the whole benchmark's status line (search.overall), None without progress
    worker: int = 0  # which --workers process this is (0: the CLI process); each samples from its own seed

    def study_settings(self, arch: str) -> dict:
        """Study-level settings: stored on the study and compared when it is resumed."""
        s = self.search
        return {
            **self.data.describe(),
            "max_length": self.data_settings.max_length,
            **self.train.budget(),
            "seed": s.seed,
            "sampler": s.sampler,
            "pruner": s.pruner,
            "fixed": self.fixed[arch],
            "reference": s.reference,
            "target_trials": s.trials,
            "top_k": s.top_k,
            "final_seeds": s.final_seeds,
        }


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def hardware() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, {gpu}".replace("  ", " ")


def check_writable(folder: Path) -> None:
    """The folder can be created (or written) by this user; it is not created here."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {folder} is not writable ({existing} is not a writable folder): "
                         "pass a writable --output-dir")


def _new_file_store(url: str) -> bool:
    """True for a journal or SQLite storage whose file does not exist yet: nothing to resume in it, and
    opening it would create the file."""
    if is_journal(url):
        return not Path(url).exists()
    database = url.split(":///", 1)[1] if is_sqlite(url) and ":///" in url else ""
    return bool(database) and not Path(database).exists()


def setup(search: SearchSettings, data_settings: DataSettings, train: TrainSettings) -> Benchmark:
    """Validate everything, then create: storage, MLflow experiment, tokenization cache. Every check
    that needs no data comes before the data is read (a server must answer first); bad input (data,
    settings, a study that cannot be resumed, an unreachable server) fails before anything is
    written, so it leaves no store, folder or cache entry behind."""
    check_writable(search.run_dir)
    check_device(train)
    fixed = {arch: fixing.parse_fixed(arch, search.fix) for arch in search.archs}
    storage = make_storage(search.storage) if is_server_storage(search.storage) else None
    if search.mlflow:
        check_tracking(search.tracking_uri)
    data = load(data_settings)
    if storage is None and not _new_file_store(search.storage):  # an existing file: check it can resume
        storage = make_storage(search.storage)
    bench = Benchmark(search=search, data_settings=data_settings, train=train, data=data, storage=storage, fixed=fixed)
    if storage is not None:
        for arch in search.archs:  # all families, before any of them runs a trial
            check_resumable(storage, search.name, arch, bench.study_settings(arch))
    # validated: from here on, things are created
    bench.storage = storage or make_storage(search.storage)
    if search.mlflow:
        params = {arch: mlflow_params(bench, arch) for arch in search.archs}
        tracking = MlflowTracker(search.tracking_uri, search.name, search.run_dir / "mlartifacts", params)
        bench.hooks.append(tracking)
        if stale_trial_handler(bench.storage) is not None:
            stale_trial_handler(bench.storage).listeners.append(tracking.trial_died)
    tokenize(data, data_settings)
    # The Trainer runs gc.collect() at the start of every train(): without this it walks the ~0.5 M
    # objects of the imported libraries each trial (0.24 s here); frozen, they are left out of it.
    gc.freeze()
    return bench


def mlflow_params(bench: Benchmark, arch: str) -> dict:
    """The parent run's params: study settings (not the trial target, which may grow) and provenance."""
    settings = {k: v for k, v in bench.study_settings(arch).items() if k != "target_trials"}
    attrs = study_attrs(bench, arch)
    return {**settings, "arch": arch, "storage": attrs["storage"], "command": attrs["command"],
            **{f"version.{k}": v for k, v in attrs["versions"].items()}}


def tracker(bench: Benchmark) -> MlflowTracker | None:
    return next((h for h in bench.hooks if isinstance(h, MlflowTracker)), None)


def study_attrs(bench: Benchmark, arch: str) -> dict:
    return {
        "benchmark": bench.search.name,
        "arch": arch,
        "settings": bench.study_settings(arch),
        "data_settings": asdict(bench.data_settings),  # what `rerun` needs to prepare the same data
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": package_versions(),
        "hardware": hardware(),
        "storage": redact(bench.search.storage),
        "tracking_uri": redact(bench.search.tracking_uri) if bench.search.mlflow else None,
    }


def run_family(bench: Benchmark, arch: str) -> optuna.Study:
    """Create or resume one family's study and run it to the target."""
    s = bench.search
    sampler = make_sampler(s.sampler, s.seed, s.trials, worker=bench.worker)
    if bench.fixed[arch]:
        sampler = optuna.samplers.PartialFixedSampler(bench.fixed[arch], sampler)
    pruner = make_pruner(s.pruner, max_steps=bench.train.max_steps, eval_steps=bench.train.eval_steps,
                         n_validation=len(bench.data.splits["validation"]))
    study = open_study(bench.storage, s.name, arch, sampler=sampler, pruner=pruner, attrs=study_attrs(bench, arch))
    best_model_dir = (s.run_dir / "models" / f"{arch}-best").resolve()
    best_model_dir.parent.mkdir(parents=True, exist_ok=True)
    study.set_user_attr("best_model_dir", str(best_model_dir))
    objective = Objective(
        arch=arch, data=bench.data, settings=bench.train, study_seed=s.seed,
        work_dir=s.run_dir / "checkpoints", hooks=bench.hooks, best_model_dir=best_model_dir,
        artifact_dir=artifact_dir(s),
    )
    study.set_user_attr("artifact_dir", str(artifact_dir(s)))
    for hook in bench.hooks:
        hook.study_started(study)
    if tracker(bench) is not None:
        study.set_user_attr("mlflow_experiment_id", tracker(bench).experiment_id)
    callbacks = [hook.trial_finished for hook in bench.hooks]
    if s.reference:
        enqueue_reference(study, arch, bench.fixed[arch], s.trials)
    status = None
    if bench.overall is not None:
        overall = bench.overall
        overall.phase = f"search {arch} {s.archs.index(arch) + 1}/{len(s.archs)}"
        for frozen in study.get_trials(deepcopy=False):  # a resumed study: its trials are measurements too
            measure_trial(overall, arch, frozen)

        def track(study, frozen):
            measure_trial(overall, arch, frozen)
            overall.finished[arch] = count_trials(study).finished

        overall.finished[arch] = count_trials(study).finished
        callbacks.append(track)
        status = overall.line
    interrupted = False
    try:
        run_study(study, objective, s.trials, timeout=s.timeout, callbacks=callbacks, progress=s.progress,
                  status=status)
        if bench.overall is not None:  # with other workers, their last trials ended after this one's
            bench.overall.finished[arch] = count_trials(study).finished
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for hook in bench.hooks:
            hook.study_ended(study, interrupted=interrupted)
    return study


def artifact_dir(search: SearchSettings) -> Path:
    """Optuna's artifact store, beside the default study storage: ``optuna-dashboard --artifact-dir``."""
    return (Path(search.output_dir) / "artifacts").resolve()


def run(bench: Benchmark) -> dict[str, optuna.Study]:
    """All families, one after the other, on the same prepared data."""
    return {arch: run_family(bench, arch) for arch in bench.search.archs}


def study_wall_seconds(study: optuna.Study) -> float | None:
    """First trial start to last trial end: the study's wall time whatever the number of workers."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_complete]
    if not trials:
        return None
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()


def summary_rows(studies: dict[str, optuna.Study], baseline: dict | None = None) -> list[dict]:
    """Per family: search best, the *chosen* configuration and its test mean and CI, trial counts, wall time.

    The chosen configuration is the report's: the final-stage configuration with the highest mean
    validation accuracy over seeds (``reports.stats.leaderboard``, so both show the same numbers);
    without a final stage, the search's best trial and no test number.
    """
    import pandas as pd

    from reports import stats  # the report's own rule and intervals: one set of numbers

    records = [dict(r, family=arch) for arch, study in studies.items()
               for r in study.user_attrs.get("final_results", [])]
    board = stats.leaderboard(pd.DataFrame(records, columns=[*FINAL_FIELDS])).set_index("family")
    rows = []
    for arch, study in studies.items():
        counts = count_trials(study)
        try:
            best = study.best_trial
            value, params, number = best.value, best.params, best.number
        except ValueError:
            value, params, number = None, {}, None
        row = {"arch": arch, "best_value": value, "chosen_trial": number, "params": params,
               "validation_mean": None, "test_mean": None, "test_ci_low": None, "test_ci_high": None,
               "seeds": 0, "complete": counts.complete, "pruned": counts.pruned, "failed": counts.failed,
               "steps_trained": sum(int(t.user_attrs.get("steps_trained") or 0) for t in study.get_trials(deepcopy=False)),
               "wall_seconds": study_wall_seconds(study)}
        if arch in board.index:
            c = board.loc[arch]
            chosen = next(r for r in records if r["family"] == arch and r["rank"] == c["rank"])
            row.update(chosen_trial=int(c["trial_number"]), params=dict(chosen["params"]),
                       validation_mean=float(c["validation_mean"]), test_mean=float(c["mean"]),
                       test_ci_low=_number(c["ci_low"]), test_ci_high=_number(c["ci_high"]), seeds=int(c["n"]))
        rows.append(row)
    if baseline:
        rows.append({"arch": baseline["name"], "best_value": baseline["validation_accuracy"], "chosen_trial": None,
                     "params": {"C": baseline["C"]}, "validation_mean": baseline["validation_accuracy"],
                     "test_mean": baseline["test_accuracy"], "test_ci_low": None, "test_ci_high": None,
                     "seeds": 1, "complete": 1, "pruned": 0, "failed": 0, "steps_trained": None,
                     "wall_seconds": baseline["fit_seconds"]})
    return rows


FINAL_FIELDS = ("family", "rank", "trial_number", "seed", "test_accuracy", "validation_accuracy", "params")


def _number(x) -> float | None:
    return None if x is None or x != x else float(x)  # NaN -> None


def format_summary(rows: list[dict]) -> str:
    """The closing table: the chosen configuration's final-stage numbers, as the report shows them."""
    def f(x, digits=4):
        return "-" if x is None else f"{x:.{digits}f}"

    lines = [f"{'family':<12} {'search best':>11} {'chosen':>6} {'final val':>9} {'test mean':>9} "
             f"{'test 95% CI':>13} {'seeds':>5} {'complete':>8} {'pruned':>6} {'failed':>6} {'steps':>8} {'wall s':>7}  "
             "chosen params"]
    for r in rows:
        ci = "-" if r["test_ci_low"] is None else f"{r['test_ci_low']:.3f}-{r['test_ci_high']:.3f}"
        wall = f"{r['wall_seconds']:.0f}" if r.get("wall_seconds") is not None else "-"
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items())
        trial = r["chosen_trial"] if r["chosen_trial"] is not None else "-"
        steps = r["steps_trained"] if r.get("steps_trained") is not None else "-"
        lines.append(f"{r['arch']:<12} {f(r['best_value']):>11} {trial:>6} {f(r['validation_mean']):>9} "
                     f"{f(r['test_mean']):>9} {ci:>13} {r['seeds']:>5} {r['complete']:>8} {r['pruned']:>6} "
                     f"{r['failed']:>6} {steps:>8} {wall:>7}  {params}")
    if any(r["seeds"] and r["chosen_trial"] is not None for r in rows):
        lines.append("chosen = the final-stage configuration with the best mean validation accuracy over seeds "
                     "(as in the report); test mean and 95% t-interval over its seeds")
    else:
        lines.append("no final stage: chosen = the search's best trial; no test numbers")
    for r in rows:
        finished = r["complete"] + r["pruned"] + r["failed"]
        if finished and r["complete"] < THIN_FRACTION * finished:
            lines.append(f"note: {r['arch']}'s search was thin: {r['complete']} of {finished} trials completed "
                         f"({r['pruned']} pruned, {r['failed']} failed); see the report")
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)

"""The searches of a benchmark: one study per family on the same data, split and budget.

``setup`` validates everything that can be checked before any trial runs (so bad input fails in
seconds and leaves nothing behind) and returns a ``SearchRun``; ``run_searches`` creates or
resumes each family's study and runs it to its target. The final stage, the baseline and the
report come after (``textbench.pipeline``).
"""

from __future__ import annotations

import gc
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import optuna

from textbench.core import memory
from textbench.core.data import PreparedData, load, tokenize
from textbench.core.errors import UsageError
from textbench.core.settings import DataSettings, TrainSettings
from textbench.core.training import check_device
from textbench.core.urls import redact
from textbench.search import fixed as fixing
from textbench.search import runner
from textbench.search.budget import Budget, kept_stop
from textbench.search.converge import ConvergenceRule
from textbench.search.objective import Objective
from textbench.search.overall import Overall, measure_trial
from textbench.search.plugins import source as family_source
from textbench.search.reference import enqueue_reference
from textbench.search.runner import Counts, count_trials, run_study
from textbench.search.search_settings import SearchSettings, is_journal, is_server_storage, is_sqlite
from textbench.search.study import (
    check_resumable,
    make_pruner,
    make_sampler,
    make_storage,
    open_study,
    stale_trial_handler,
)
from textbench.search.tracking import MlflowTracker, check_tracking
from textbench.spaces import get as get_family

log = logging.getLogger(__name__)

PACKAGES = (
    "textbench",
    "torch",
    "transformers",
    "datasets",
    "evaluate",
    "accelerate",
    "optuna",
    "mlflow",
    "pandas",
    "scikit-learn",
)


@dataclass
class SearchRun:
    """The validated inputs of one benchmark's searches, built by ``setup``."""

    search: SearchSettings
    data_settings: DataSettings
    train: TrainSettings
    data: PreparedData
    storage: optuna.storages.BaseStorage
    fixed: dict[str, dict]  # per family: the --fix values its space has
    tracker: MlflowTracker | None = None  # None with --no-mlflow
    overall: Overall | None = (
        None  # the whole benchmark's status line (search.overall), None without progress
    )
    budget: Budget | None = None  # --time-budget's running plan (worker 0 only; helpers read the study)
    worker: int = 0  # which --workers process this is (0: the CLI process); each samples from its own seed

    @property
    def hooks(self) -> list:
        """What each trial reports to besides Optuna: the MLflow tracker, when there is one."""
        return [self.tracker] if self.tracker is not None else []

    def study_settings(self, family: str) -> dict:
        """Study-level settings: stored on the study and compared when it is resumed."""
        s = self.search
        return {
            **self.data.describe(),
            "max_length": self.data_settings.max_length,
            **self.train.budget(),
            "seed": s.seed,
            "sampler": s.sampler,
            "pruner": s.pruner,
            "fixed": self.fixed[family],
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
    return f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, {gpu}".replace(
        "  ", " "
    )


def check_writable(folder: Path) -> None:
    """The folder can be created (or written) by this user; it is not created here."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(
            f"output folder {folder} is not writable ({existing} is not a writable folder): "
            "pass a writable --output-dir"
        )


def _new_file_store(url: str) -> bool:
    """True for a journal or SQLite storage whose file does not exist yet: nothing to resume in it, and
    opening it would create the file."""
    if is_journal(url):
        return not Path(url).exists()
    database = url.split(":///", 1)[1] if is_sqlite(url) and ":///" in url else ""
    return bool(database) and not Path(database).exists()


def setup(
    search: SearchSettings,
    data_settings: DataSettings,
    train: TrainSettings,
    before_create: Callable[[SearchRun], None] | None = None,
) -> SearchRun:
    """Validate everything, tokenize, then create: storage and MLflow experiment. Every check that
    needs no data comes before the data is read (a server must answer first); bad input (data,
    settings, a study that cannot be resumed, an unreachable server) fails before anything is
    written, so it leaves no store, folder or cache entry behind. ``before_create(bench)`` runs on
    the tokenized data before the store and the experiment exist (a time budget's calibration and
    plan: a refused budget leaves nothing behind but the tokenization cache)."""
    check_writable(search.run_dir)
    check_device(train)
    fixed = {family: fixing.parse_fixed(family, search.fix) for family in search.families}
    storage = make_storage(search.storage) if is_server_storage(search.storage) else None
    if search.mlflow:
        check_tracking(search.tracking_uri)
    data = load(data_settings)
    for family in search.families:  # refused with the numbers before anything is written or trained
        values = fixing.smallest(family, fixed[family])
        shown = ", ".join(f"{k}={v:g}" for k, v in fixed[family].items() if isinstance(v, (int, float)))
        what = (
            f"{family} ({shown}; other parameters at their smallest)"
            if shown
            else f"{family}'s smallest model"
        )
        memory.check(get_family(family), values, data, train, what, UsageError)
    if storage is None and not _new_file_store(search.storage):  # an existing file: check it can resume
        storage = make_storage(search.storage)
    bench = SearchRun(
        search=search, data_settings=data_settings, train=train, data=data, storage=storage, fixed=fixed
    )
    if storage is not None:
        for family in search.families:  # all families, before any of them runs a trial
            check_resumable(storage, search.name, family, bench.study_settings(family))
    # validated: the MLflow experiment first (its database needs the most room), then the cache
    if search.mlflow:
        params = {family: mlflow_params(bench, family) for family in search.families}
        artifacts = search.run_dir / "mlartifacts"
        bench.tracker = MlflowTracker(search.tracking_uri, search.name, artifacts, params)
    tokenize(data, data_settings)
    # The Trainer runs gc.collect() at the start of every train(): without this it walks the ~0.5 M
    # objects of the imported libraries each trial (0.24 s here); frozen, they are left out of it.
    gc.freeze()
    if before_create is not None:
        before_create(bench)
    bench.storage = storage or make_storage(search.storage)
    if bench.tracker is not None and stale_trial_handler(bench.storage) is not None:
        stale_trial_handler(bench.storage).listeners.append(bench.tracker.trial_died)
    return bench


def mlflow_params(bench: SearchRun, family: str) -> dict:
    """The parent run's params: study settings (not the trial target, which may grow) and provenance."""
    settings = {k: v for k, v in bench.study_settings(family).items() if k != "target_trials"}
    attrs = study_attrs(bench, family)
    return {
        **settings,
        "arch": family,
        "storage": attrs["storage"],
        "command": attrs["command"],
        **{f"version.{k}": v for k, v in attrs["versions"].items()},
    }


def study_attrs(bench: SearchRun, family: str) -> dict:
    return {
        "benchmark": bench.search.name,
        "arch": family,
        "family_module": family_source(family),  # report/predict/rerun load it again
        "settings": bench.study_settings(family),
        "data_settings": asdict(bench.data_settings),  # what `rerun` needs to prepare the same data
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": package_versions(),
        "hardware": hardware(),
        "storage": redact(bench.search.storage),
        "tracking_uri": redact(bench.search.tracking_uri) if bench.search.mlflow else None,
    }


@dataclass
class FamilySearch:
    """One family's study, opened and ready to run trials (``open_family``)."""

    bench: SearchRun
    family: str
    study: optuna.Study
    objective: Objective
    callbacks: list
    status: Callable[[], str] | None
    stop: Callable[[optuna.Study], str | None] | None
    stopped: str | None = None  # why this family's search ended early (budget, convergence)
    started: bool = False

    def run(self, target: int, *, wait: bool = True) -> Counts:
        """Run trials until ``target`` are finished (``wait=False``: until none is left to claim)."""
        bench, s = self.bench, self.bench.search
        if not self.started:
            for hook in bench.hooks:
                hook.study_started(self.study)
            self.started = True
        if bench.overall is not None:
            turn = f" round {target}" if s.time_budget is not None else ""
            place = f"{s.families.index(self.family) + 1}/{len(s.families)}"
            bench.overall.phase = f"search {self.family} {place}{turn}"
        counts = run_study(
            self.study,
            self.objective,
            target,
            timeout=s.timeout,
            callbacks=self.callbacks,
            progress=s.progress,
            status=self.status,
            stop=self.stop,
            wait=wait,
        )
        self.stopped = self.stopped or counts.stop_reason
        return counts

    def settle(self) -> Counts:
        """Wait for the trials other workers still run in this study (a dead one's trial is retried), so
        that the final stage ranks every trial; then the study's own bookkeeping."""
        counts = count_trials(self.study)
        claimed = counts.finished + counts.running
        if counts.running:
            run_study(self.study, self.objective, claimed, callbacks=self.callbacks, progress=False)
        counts = count_trials(self.study)
        s, overall = self.bench.search, self.bench.overall
        if self.bench.worker == 0 and self.stopped is None and counts.finished >= s.trials:
            self.study.set_user_attr("stop_reason", f"--trials {s.trials} reached")
        elif self.stopped is not None and overall is not None:
            overall.stopped[self.family] = counts.finished
        if overall is not None:  # with other workers, their last trials ended after this one's
            overall.finished[self.family] = counts.finished
        return counts

    def close(self, interrupted: bool = False) -> None:
        if self.started:
            for hook in self.bench.hooks:
                hook.study_ended(self.study, interrupted=interrupted)


def measure_stored(bench: SearchRun) -> None:
    """Feed a resumed benchmark's finished trials and final runs to the ETA and the budget before the
    plan: the families' measured rates, not only a calibration, and the final runs already done are not
    reserved again."""
    from textbench.search.final import stored_records

    overall = bench.overall
    if bench.storage is None or overall is None:
        return
    names = {s.study_name for s in optuna.get_all_study_summaries(bench.storage, include_best_trial=False)}
    for family in bench.search.families:
        name = f"{bench.search.name}-{family}"
        if name not in names:
            continue
        study = optuna.load_study(study_name=name, storage=bench.storage)
        for frozen in study.get_trials(deepcopy=False):
            measure_trial(overall, family, frozen)
        overall.finished[family] = count_trials(study).finished
        overall.final_done[family] = len(stored_records(study.user_attrs))
        overall.preloaded.add(family)
        if kept_stop(study, bench.search.time_budget):  # this budget already ended its search and
            overall.stopped[family] = overall.finished[family]  # fitted the final stage: both stand
            fit = study.user_attrs["final_plan"]
            overall.final_runs = (fit["top_k"] + bench.search.reference) * fit["final_seeds"]


def open_family(bench: SearchRun, family: str) -> FamilySearch:
    """Create or resume one family's study, with its objective, callbacks and stop rule."""
    s = bench.search
    sampler = make_sampler(s.sampler, s.seed, s.trials, worker=bench.worker)
    if bench.fixed[family]:
        sampler = optuna.samplers.PartialFixedSampler(bench.fixed[family], sampler)
    pruner = make_pruner(
        s.pruner,
        max_steps=bench.train.max_steps,
        eval_steps=bench.train.eval_steps,
        n_validation=len(bench.data.splits["validation"]),
    )
    study = open_study(
        bench.storage, s.name, family, sampler=sampler, pruner=pruner, attrs=study_attrs(bench, family)
    )
    best_model_dir = (s.run_dir / "models" / f"{family}-best").resolve()
    best_model_dir.parent.mkdir(parents=True, exist_ok=True)
    study.set_user_attr("best_model_dir", str(best_model_dir))
    objective = Objective(
        family=family,
        data=bench.data,
        settings=bench.train,
        study_seed=s.seed,
        work_dir=s.run_dir / "checkpoints",
        hooks=bench.hooks,
        best_model_dir=best_model_dir,
        artifact_dir=artifact_dir(s),
    )
    study.set_user_attr("artifact_dir", str(artifact_dir(s)))
    if bench.tracker is not None:
        study.set_user_attr("mlflow_experiment_id", bench.tracker.experiment_id)
    callbacks = [hook.trial_finished for hook in bench.hooks]
    if s.reference:
        enqueue_reference(study, family, bench.fixed[family], s.trials)
    status = None
    if bench.overall is not None:
        overall = bench.overall
        for frozen in study.get_trials(deepcopy=False) if family not in overall.preloaded else []:
            measure_trial(overall, family, frozen)  # a resumed study: its trials are measurements too

        def track(study, frozen):
            measure_trial(overall, family, frozen)
            overall.finished[family] = count_trials(study).finished

        overall.finished[family] = count_trials(study).finished
        callbacks.append(track)
        status = overall.line
    if bench.worker == 0 and not kept_stop(study, s.time_budget):  # the helpers read these (started after
        # this): a resumed study starts afresh, unless this budget already ended its search
        study.set_user_attr("stop_reason", None)
        study.set_user_attr("final_plan", None)  # fitted to the budget again after this run's searches
    if bench.worker == 0:
        if bench.budget is not None:
            bench.budget.watch(family, study)
    stop = stopping(bench, study, callbacks)
    return FamilySearch(bench, family, study, objective, callbacks, status, stop)


def open_searches(bench: SearchRun) -> list[FamilySearch]:
    """Every family's study, opened before any trial (worker 0 does this before its helpers start)."""
    return [open_family(bench, family) for family in bench.search.families]


def run_searches(bench: SearchRun, searches: list[FamilySearch] | None = None) -> dict[str, optuna.Study]:
    """All families on the same prepared data: one after the other, or, under ``--time-budget``, in
    rounds (every family one more trial per round) so that all of them have the same number of trials
    whenever the budget ends the searches; run one after the other, the first family spent time the
    later ones then lacked, and fairness had to overrun the budget."""
    searches = open_searches(bench) if searches is None else searches
    interrupted = False
    try:
        if bench.search.time_budget is None:
            for one in searches:
                one.run(bench.search.trials)
                one.settle()
                one.close()
        else:
            for target in range(1, bench.search.trials + 1):
                going = [one for one in searches if one.stopped is None]
                if not going:
                    break
                for one in going:  # with other workers: move on rather than wait for their trial
                    if bench.worker != 0:
                        follow_plan(one.study, target)
                    one.run(target, wait=False)
            for one in searches:
                one.settle()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for one in searches:
            one.close(interrupted=interrupted)
    return {one.family: one.study for one in searches}


def stopping(bench: SearchRun, study: optuna.Study, callbacks: list):
    """The ``stop(study)`` of ``run_study`` for --stop-when-converged and --time-budget (None without
    either). The convergence rule runs after each trial (a callback appended to ``callbacks``) and once
    on a resumed study's trials; the budget's plan is recomputed before each trial."""
    s = bench.search
    rule = None
    verdict: dict[str, str | None] = {}
    if s.stop_when_converged:
        rule = ConvergenceRule(
            len(bench.data.splits["validation"]),
            min_trials=s.min_trials,
            stagnation_trials=s.stagnation_trials,
            seed=s.seed,
        )
        verdict["reason"] = rule.reason(rule.criterion(study))  # a resumed study may have converged

        def judge(study, frozen):
            verdict["reason"] = rule(study, frozen) or verdict.get("reason")

        callbacks.append(judge)
    if rule is None and s.time_budget is None:
        return None

    def stop(study) -> str | None:
        if verdict.get("reason"):
            return verdict["reason"]
        if bench.budget is not None:
            if kept_stop(study, s.time_budget):  # resumed after the budget ended this search
                return study.user_attrs["stop_reason"]
            counts = count_trials(study)  # other workers' trials in flight count as run
            return bench.budget.stop(counts.finished + counts.running)
        # a --workers helper stops when worker 0 stopped this search; it claims within worker 0's plan
        # (``follow_plan``), which may still rise: all planned trials claimed is no reason to stop
        return study.user_attrs.get("stop_reason") if s.time_budget is not None else None

    return stop


def follow_plan(study: optuna.Study, target: int) -> None:
    """A ``--workers`` helper under --time-budget: wait until worker 0's plan holds ``target`` trials
    per family, or worker 0 stopped this search. A plan of 1 trial that later rises used to end the
    family for the helper at its first round ("stopped after 0 trials"), and worker 0 ran the rest alone."""
    while True:
        attrs = study.user_attrs
        planned = attrs.get("planned_trials")
        if attrs.get("stop_reason") or planned is None or planned >= target:
            return
        time.sleep(runner.POLL_SECONDS)


def artifact_dir(search: SearchSettings) -> Path:
    """Optuna's artifact store, beside the default study storage: ``optuna-dashboard --artifact-dir``."""
    return (Path(search.output_dir) / "artifacts").resolve()

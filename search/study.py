"""Storage, sampler and pruner; create a study or resume it when its settings still match.

One study per (benchmark name, family), named ``{name}-{family}``, all in one storage so that
``optuna-dashboard runs/optuna.journal`` shows every benchmark.

The default storage is an Optuna journal file: an append-only log that several local processes
share safely without a server (SQLite locks the whole file on each write and makes parallel
workers wait and fail). Optuna's journal storage has no heartbeats, so ``JournalStorage`` here adds
them (a file per running trial, touched every ``HEARTBEAT_SECONDS``): a killed worker's trial is
failed and retried exactly as on PostgreSQL, which stays the storage for several machines.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from textbench.core.errors import UsageError
from textbench.core.settings import BUDGET_KEYS
from textbench.core.urls import redact
from textbench.search.journal_repair import repair_journal
from textbench.search.pruners import DEFAULT_K, NoiseMarginPruner
from textbench.search.search_settings import PRUNERS, SAMPLERS, check_storage_url, is_journal, is_sqlite

log = logging.getLogger(__name__)

# A worker that stops beating for GRACE seconds is taken for dead: its trial is FAILed and retried.
HEARTBEAT_SECONDS = int(os.environ.get("TEXTBENCH_HEARTBEAT_SECONDS", "20"))
GRACE_SECONDS = 3 * HEARTBEAT_SECONDS

METRIC_NAME = "validation_accuracy"  # what a trial's value is
# Settings that define what a study measures: resuming with other values would mix results.
IDENTITY_KEYS = (
    "dataset",
    "fingerprint",
    "tokenizer",
    "max_length",
    *BUDGET_KEYS,
    "seed",
    "sampler",
    "pruner",
    "fixed",
)


def study_name(benchmark: str, family: str) -> str:
    return f"{benchmark}-{family}"


def worker_seed(seed: int, worker: int) -> int:
    """The sampler seed of worker ``worker`` (0 = the CLI process, which keeps ``seed``).

    Workers seeded alike draw the same random configurations: two processes would train every
    startup trial twice (measured on the flagship before this: trials 1 and 2, 3 and 4, 5 and 6
    identical)."""
    if worker == 0:
        return seed
    return int(hashlib.sha256(f"{seed}:worker:{worker}".encode()).hexdigest()[:8], 16)


def make_sampler(name: str, seed: int, n_trials: int, worker: int = 0) -> optuna.samplers.BaseSampler:
    """Seeded sampler; TPE starts from ~a quarter of the budget of random trials (4 to 10).

    With several workers each draws from its own seed (``worker_seed``) and TPE lies about the
    trials still running (``constant_liar``: it does not propose what another worker is training;
    no effect with one worker). QMC keeps one seed: its points are indexed by the study, so
    workers sharing the seed share one sequence, as Optuna requires."""
    own = worker_seed(seed, worker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            startup = min(10, max(4, n_trials // 4))
            return optuna.samplers.TPESampler(
                seed=own, n_startup_trials=startup, multivariate=True, constant_liar=True
            )
        if name == "random":
            return optuna.samplers.RandomSampler(seed=own)
        if name == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, scramble=True)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=own, n_startup_trials=min(10, max(4, n_trials // 4)))
    raise UsageError(f"unknown sampler {name!r}: use one of {', '.join(SAMPLERS)}")


def make_pruner(
    name: str, *, max_steps: int, eval_steps: int, n_validation: int | None = None
) -> optuna.pruners.BasePruner:
    """``margin`` (default): median pruning that ignores gaps within 2 binomial standard errors of
    accuracy on the ``n_validation`` rows (search/pruners.py), once 3 trials have completed, from
    the first evaluation at or past a fifth of the budget. ``median`` is Optuna's plain
    MedianPruner with the same start; measured against each other and against no pruning in
    perf/README.md (pruning)."""
    warmup = max(1, max_steps // 5)  # Optuna's pruners decide at steps >= n_warmup_steps
    if name == "margin":
        if not n_validation:
            raise ValueError("the margin pruner needs the validation size (n_validation)")
        return NoiseMarginPruner(n_validation, k=DEFAULT_K, n_startup_trials=3, n_warmup_steps=warmup)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=eval_steps, max_resource=max_steps, reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"unknown pruner {name!r}: use one of {', '.join(PRUNERS)}")


class JournalStorage(optuna.storages.JournalStorage, BaseHeartbeat):
    """A journal file storage with heartbeats: ``PATH.d/beat-TRIAL_ID`` is touched while the trial
    runs; a RUNNING trial whose file is older than the grace period lost its worker. ``PATH.d`` also
    holds the runner's claim locks (``lock_path``)."""

    def __init__(self, path: str, heartbeat_interval: int, grace_period: int, stale_trial_callback):
        # Optuna's own write lock (a symlink): optuna-dashboard and plain Optuna scripts use the same one.
        repair_journal(path)  # a torn last record would make Optuna's reader raise on every later open
        super().__init__(JournalFileBackend(path))
        self.path = self.url = path  # url: what reports show, as RDBStorage.url
        self.folder = Path(path + ".d")
        self.folder.mkdir(exist_ok=True)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.heartbeat_stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self._beat(trial_id).touch()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now, stale = time.time(), []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = self._beat(trial._trial_id)
            try:
                last = beat.stat().st_mtime
            except FileNotFoundError:  # asked but never beat: count from its start
                last = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - last > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def set_trial_state_values(self, trial_id, state, values=None) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        if state.is_finished():
            self._beat(trial_id).unlink(missing_ok=True)
        return changed

    def _beat(self, trial_id: int) -> Path:
        return self.folder / f"beat-{trial_id}"

    def lock_path(self, name: str) -> Path:
        """A lock file for ``name`` (e.g. a study's claim lock), beside the journal."""
        return self.folder / f"{name}.lock"

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self.heartbeat_stale_trial_callback


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file (the default) or an RDB storage; heartbeats (crash detection) on both,
    except SQLite (a single process: no other worker to notice a crash)."""
    check_storage_url(url)
    if is_journal(url):
        return _journal(url)
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port only fails here
    except (ArgumentError, ValueError):
        raise UsageError(
            f"malformed storage URL {redact(url)!r}: use e.g. sqlite:///runs/optuna.db or postgresql://user@host/db"
        ) from None
    if is_sqlite(url):
        if parsed.database:
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(
                    f"cannot create the folder of {url}: {exc.strerror}: pick a writable --storage"
                ) from None
        kwargs = {"connect_args": {"timeout": 60}}
        heartbeat = {}
    else:
        kwargs = {"pool_pre_ping": True}
        if parsed.get_backend_name().startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": 5}
        heartbeat = {
            "heartbeat_interval": HEARTBEAT_SECONDS,
            "grace_period": GRACE_SECONDS,
            "heartbeat_stale_trial_callback": StaleTrialHandler(),
        }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, engine_kwargs=kwargs, **heartbeat)
    except Exception as exc:  # noqa: BLE001 - driver errors vary; the user needs one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UsageError(
            f"cannot open storage {redact(url)}: {reason[:200]}: check that the server runs and the URL"
        ) from None


def _journal(path: str) -> JournalStorage:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(str(Path(path)), HEARTBEAT_SECONDS, GRACE_SECONDS, StaleTrialHandler())
    except OSError as exc:
        raise UsageError(
            f"cannot create the journal {path}: {exc.strerror}: pick a writable --storage"
        ) from None


class StaleTrialHandler:
    """Called (by any worker) for a trial whose worker stopped beating: retry it, tell listeners."""

    def __init__(self, max_retry: int = 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        self.listeners: list = []  # callables (study, frozen_trial), e.g. the MLflow tracker

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        log.warning(
            "%s: trial %d lost its worker (no heartbeat for %d s); marked FAIL and retried",
            study.study_name,
            trial.number,
            GRACE_SECONDS,
        )
        for listener in self.listeners:
            listener(study, trial)
        self.retry(study, trial)


def stale_trial_handler(storage) -> StaleTrialHandler | None:
    handler = getattr(storage, "heartbeat_stale_trial_callback", None)
    return handler if isinstance(handler, StaleTrialHandler) else None


def check_resumable(storage, benchmark: str, family: str, settings: dict) -> None:
    """Refuse to resume a study whose identity settings differ from ``settings``."""
    name = study_name(benchmark, family)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name in existing:
        old = existing[name].user_attrs.get("settings", {})
        changed = [k for k in IDENTITY_KEYS if k in old and old.get(k) != settings.get(k)]
        if changed:
            k = changed[0]
            raise UsageError(
                f"benchmark '{benchmark}' already has study '{name}' with {k}={old.get(k)!r} (now "
                f"{settings.get(k)!r}): "
                "rerun with the original settings to resume, or pick a new --name"
            )


def open_study(storage, benchmark: str, family: str, *, sampler, pruner, attrs: dict) -> optuna.Study:
    """Create the study, or resume it if its identity settings equal ``attrs['settings']``."""
    name = study_name(benchmark, family)
    check_resumable(storage, benchmark, family, attrs["settings"])
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # experimental since Optuna 3.2, still there in 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if study.metric_names != [METRIC_NAME]:
            study.set_metric_names([METRIC_NAME])  # optuna-dashboard's name for the objective
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study

"""Drive a study to an exact number of finished trials, alone or with other workers.

``study.optimize(n_trials=...)`` counts trials per process, so resumed runs and concurrent
workers overshoot. Here each worker claims a trial only while finished + running trials are
below the target, under a study-wide lock (a PostgreSQL advisory lock, or ``flock`` on a file
beside a journal storage),
and keeps watching while other workers' trials run, in case one dies and its trial is retried.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import time
import warnings
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 5
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which process ran a trial (several may share a study)
POLL_SECONDS = 1  # how often a worker with nothing to claim checks for finished or dead trials


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    stop_reason: str | None = None  # set by ``run_study`` when ``stop`` ended it early

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


def count_trials(study: optuna.Study) -> Counts:
    counts = Counts()
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.COMPLETE:
            counts.complete += 1
        elif trial.state == TrialState.PRUNED:
            counts.pruned += 1
        elif trial.state == TrialState.FAIL:
            counts.failed += 1
        elif trial.state == TrialState.RUNNING:
            counts.running += 1
    return counts


@contextlib.contextmanager
def claim_lock(study: optuna.Study):
    """Serialise "count, then ask" across processes sharing a journal file or a PostgreSQL storage."""
    storage = study._storage
    key = int(hashlib.sha256(study.study_name.encode()).hexdigest()[:15], 16)
    lock_path = getattr(storage, "lock_path", None)
    if lock_path is not None:  # search.study.JournalStorage: a file lock, released by the kernel if we die
        with open(lock_path(f"claim-{key:x}"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    engine = getattr(getattr(storage, "_backend", storage), "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


def _heartbeat(study: optuna.Study, trial: optuna.Trial):
    try:
        from optuna.storages._heartbeat import get_heartbeat_thread
    except ImportError:  # private API moved: run without heartbeats rather than not at all
        return contextlib.nullcontext()
    return get_heartbeat_thread(trial._trial_id, study._storage)


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_trial(study: optuna.Study, trial: optuna.Trial, objective) -> tuple[optuna.trial.FrozenTrial, bool]:
    """Run one asked trial and tell its outcome: (frozen trial, interrupted).

    Ctrl-C / SIGTERM during the trial is told as FAIL with reason "interrupted"."""
    value, state = None, TrialState.COMPLETE
    trial.set_user_attr("worker", WORKER)
    with _heartbeat(study, trial):
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted")
            return study.tell(trial, state=TrialState.FAIL), True
        except Exception as exc:  # noqa: BLE001 - a failed trial is data, the study goes on
            state = TrialState.FAIL
            if "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", f"{exc.__class__.__name__}: {str(exc)[:300]}")
            log.warning("trial %d failed: %s", trial.number, trial.user_attrs["fail_reason"])
    if state == TrialState.COMPLETE:
        return study.tell(trial, value), False
    return study.tell(trial, state=state), False


def run_study(
    study: optuna.Study,
    objective,
    target: int,
    *,
    timeout: float | None = None,
    callbacks=(),
    progress: bool = True,
    status=None,
    stop=None,
    wait: bool = True,
) -> Counts:
    """Run trials until ``target`` are finished (complete + pruned); returns the final counts.
    ``status``: a callable whose text (the whole benchmark's line) follows the study's name on its bar.
    ``stop(study)``: asked before each new trial; a reason (text) ends the study early (a time
    budget's plan, convergence) and is stored on the study as ``stop_reason``. ``wait=False``: return
    as soon as nothing is left to claim (other workers hold the remaining trials) instead of watching
    them, so that a worker taking turns between families moves on (``search.studies``)."""
    start = time.monotonic()
    counts = count_trials(study)

    def describe() -> str:
        return f"{study.study_name} {status()}" if status is not None else study.study_name

    bar = tqdm(
        total=target,
        initial=min(counts.finished, target),
        desc=describe(),
        unit="trial",
        disable=not progress,
        dynamic_ncols=True,
    )
    failures = 0
    try:
        while True:
            if timeout is not None and time.monotonic() - start > timeout:
                log.warning(
                    "%s: --timeout reached with %d/%d trials finished",
                    study.study_name,
                    counts.finished,
                    target,
                )
                break
            reason = stop(study) if stop is not None else None
            if reason:
                log.info("%s: stopped after %d trials: %s", study.study_name, counts.finished, reason)
                study.set_user_attr("stop_reason", reason)
                study.set_user_attr("stopped_at", counts.finished)
                counts.stop_reason = reason
                break
            trial = None
            with claim_lock(study):  # one worker at a time fails a stale trial and enqueues its retry
                _fail_stale(study)
                counts = count_trials(study)
                if counts.finished < target and counts.finished + counts.running < target:
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", message="Heartbeat of storage")
                        trial = study.ask()
            if counts.finished >= target:
                bar.n = target  # also when another worker finished the last trial
                bar.set_postfix(_postfix(study, counts), refresh=True)
                break
            if trial is None and not wait:
                break
            if trial is None:  # other workers hold the remaining trials: watch for crashes
                time.sleep(POLL_SECONDS)
                continue
            frozen, interrupted = run_trial(study, trial, objective)
            failures = failures + 1 if frozen.state == TrialState.FAIL else 0
            for callback in callbacks:
                callback(study, frozen)
            if interrupted:
                raise KeyboardInterrupt
            counts = count_trials(study)
            bar.n = min(counts.finished, target)
            bar.set_description(describe(), refresh=False)
            bar.set_postfix(_postfix(study, counts), refresh=True)
            if failures >= MAX_CONSECUTIVE_FAILURES:
                log.error(
                    "%s: %d trials in a row failed; stopping this study (see fail_reason)",
                    study.study_name,
                    failures,
                )
                break
    finally:
        bar.close()
    return counts


def _postfix(study: optuna.Study, counts: Counts) -> dict:
    postfix = {"pruned": counts.pruned, "failed": counts.failed}
    try:
        postfix["best"] = f"{study.best_value:.4f}"
    except ValueError:
        pass
    return postfix

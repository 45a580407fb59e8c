"""MLflow tracking: one experiment per benchmark, a parent run per study, a child run per trial.

The harness logs with ``MlflowClient`` directly (``report_to="none"`` in the Trainer, and no
deprecated Optuna integration), so every number is logged exactly once. Tracking must never
cost a trial: an unreachable server is refused before the first trial, and a failure later on
is reported once, after which tracking is switched off and marked broken in the summary.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import time
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState
from transformers import TrainerCallback

from textbench.core.errors import UsageError
from textbench.core.settings import BUDGET_KEYS
from textbench.core.urls import redact
from textbench.search.runner import claim_lock, count_trials
from textbench.search.search_settings import scheme

log = logging.getLogger(__name__)

ROLE, STUDY, TRIAL, ARCH = "textbench.role", "optuna.study", "optuna.trial_number", "textbench.arch"
PARENT = "mlflow.parentRunId"
REFERENCE = "reference"  # tag of the runs of the course notes' configuration, as its trial's user attr
TRAINING_SETTINGS = (*BUDGET_KEYS, "max_length", "tokenizer", "fingerprint")
STEP_METRICS = ("loss", "learning_rate", "grad_norm", "eval_loss", "eval_accuracy")
# The connectivity check makes one short attempt: MLflow's defaults (7 retries with backoff, 120 s
# timeout) keep a command pointed at a dead server waiting for about four minutes.
QUICK_CHECK_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# MLflow 3's UI opens an experiment on its GenAI overview (traces) unless this tag says otherwise.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def runs_table_path(experiment_id: str) -> str:
    """Where the MLflow UI shows an experiment's runs table. MLflow 3.17's UI ignores the experiment
    kind tag: it lands on the GenAI overview unless the browser's GenAI/Model training switch (or
    this URL's ``workflowType``) says model training."""
    return f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


# MLflow waits 20 s for a locked SQLite file (busy_timeout); with many workers a write can still
# time out once. Such a write is retried rather than switching tracking off.
LOCKED_RETRIES = 3


def _not_locked(record: logging.LogRecord) -> bool:
    """MLflow's SQL store logs a full traceback for every OperationalError before raising it; a locked
    SQLite file is retried by ``MlflowTracker._call``, which says so in one line, so that traceback
    is noise (any other database error still prints)."""
    return "database is locked" not in record.getMessage()


def _quiet_locked_writes() -> None:
    sql_log = logging.getLogger("mlflow.store.db.utils")
    if _not_locked not in sql_log.filters:
        sql_log.addFilter(_not_locked)


def check_tracking(uri: str) -> None:
    """Before any data is read: a tracking server (or database server) must answer. A file store
    (sqlite, a folder) is checked by creating it, after the data (nothing written before)."""
    if scheme(uri) in (None, "file", "sqlite"):
        return
    from mlflow.tracking import MlflowClient

    try:
        with _quick_http():
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any client/transport error means the same to the user
        raise _unusable(uri, exc) from None


def _unusable(uri: str, exc: Exception) -> UsageError:
    return UsageError(
        f"MLflow tracking at {redact(uri)} is not usable ({_first_line(exc)}): start the server, "
        "fix --tracking-uri / MLFLOW_TRACKING_URI, or pass --no-mlflow"
    )


def _ms(moment: datetime | float | None) -> int | None:
    """Milliseconds since the epoch (MLflow's start/end times) of a datetime or epoch seconds."""
    if moment is None:
        return None
    return int((moment.timestamp() if isinstance(moment, datetime) else moment) * 1000)


class _MetricsCallback(TrainerCallback):
    """Streams the Trainer's logs (loss, learning rate, eval loss/accuracy) to a run, with their step."""

    def __init__(self, tracker: MlflowTracker, run_id: str):
        self.tracker, self.run_id = tracker, run_id

    def on_log(self, args, state, control, logs=None, **kwargs):
        metrics = {k: v for k, v in (logs or {}).items() if k in STEP_METRICS}
        self.tracker.log_metrics(self.run_id, metrics, step=state.global_step)


class MlflowTracker:
    """What the searches and the final stage report to MLflow (``search.studies``, ``search.final``):
    study_started/ended, trial_started/callbacks/finished/died, final_run, baseline_run, chosen_config,
    tuning_gain."""

    def __init__(
        self, tracking_uri: str, experiment: str, artifact_root: Path, study_params: dict[str, dict]
    ):
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        self.study_params = study_params  # family -> params logged on the parent run
        self.broken: str | None = None
        self.parent: dict[str, str] = {}  # study name -> parent run id
        self.child: dict[tuple[str, int], str] = {}  # (study name, trial number) -> run id
        _quiet_locked_writes()
        with _store_lock(tracking_uri):
            self.client = MlflowClient(tracking_uri=tracking_uri)
            self.experiment_id = self._experiment(experiment, artifact_root)

    # ------------------------------------------------------------ plumbing

    def _experiment(self, name: str, artifact_root: Path) -> str:
        """Find or create the experiment; an unreachable server fails here, before any trial."""
        try:
            with _quick_http():
                found = self.client.get_experiment_by_name(name)
            if found is not None:
                if found.tags.get(EXPERIMENT_KIND[0]) is None:
                    self.client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
                return found.experiment_id
            location = None
            if not self.uri.startswith(("http", "databricks")):
                artifact_root.mkdir(parents=True, exist_ok=True)
                location = artifact_root.resolve().as_uri()
            return self.client.create_experiment(
                name, artifact_location=location, tags=dict([EXPERIMENT_KIND])
            )
        except Exception as exc:  # noqa: BLE001 - any client/transport error means the same to the user
            raise _unusable(self.uri, exc) from None

    def _call(self, what: str, fn, *args, **kwargs):
        """Run one client call; on the first failure report it once and stop tracking (a SQLite file
        that stays locked past MLflow's own wait is retried first)."""
        for attempt in range(LOCKED_RETRIES + 1):
            if self.broken:
                return None
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                if "database is locked" in str(exc) and attempt < LOCKED_RETRIES:
                    log.info("MLflow store busy (%s); retrying", what)
                    time.sleep(1 + attempt)
                    continue
                self.broken = f"{what}: {_first_line(exc)}"
                log.error(
                    "MLflow tracking failed (%s); trials go on in Optuna, tracking is off from now on",
                    self.broken,
                )
        return None

    def log_metrics(self, run_id: str | None, metrics: dict, step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if v is not None and isinstance(v, (int, float)) and math.isfinite(v)
        ]
        if run_id and batch:
            self._call("log metrics", self.client.log_batch, run_id, metrics=batch)

    def _log_params(self, run_id: str, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._call("log params", self.client.log_batch, run_id, params=items[i : i + 100])

    def _find_runs(self, filter_string: str):
        runs = self._call(
            "search runs", self.client.search_runs, [self.experiment_id], filter_string, max_results=5000
        )
        return runs or []

    # ------------------------------------------------------------ study

    def study_started(self, study: optuna.Study) -> None:
        """Find or create the study's parent run (one per study, also across resumes and workers)."""
        with claim_lock(study):
            runs = self._find_runs(f"tags.`{ROLE}` = 'study' and tags.`{STUDY}` = '{study.study_name}'")
            if runs:
                run_id = runs[0].info.run_id
                self._call("reopen parent", self.client.update_run, run_id, status="RUNNING")
            else:
                family = study.user_attrs.get("arch")
                run = self._call(
                    "create parent",
                    self.client.create_run,
                    self.experiment_id,
                    run_name=study.study_name,
                    tags={ROLE: "study", STUDY: study.study_name, ARCH: family},
                )
                if run is None:
                    return
                run_id = run.info.run_id
                self._log_params(run_id, self.study_params.get(family, {}))
        self.parent[study.study_name] = run_id
        self._call(
            "tag parent",
            self.client.set_tag,
            run_id,
            "target_trials",
            str(study.user_attrs.get("settings", {}).get("target_trials")),
        )

    def study_ended(self, study: optuna.Study, interrupted: bool = False) -> None:
        """Mark the best trial's run, attach the best model to the parent, close the parent."""
        run_id = self.parent.get(study.study_name)
        if run_id is None:
            return
        self._mark_best(study)
        model_dir = study.user_attrs.get("best_model_dir")
        if model_dir and Path(model_dir).exists():
            self._call("log best model", self.client.log_artifacts, run_id, model_dir, "best_model")
        counts = count_trials(study)
        self.log_metrics(
            run_id,
            {
                "trials_complete": counts.complete,
                "trials_pruned": counts.pruned,
                "trials_failed": counts.failed,
            },
        )
        try:
            self.log_metrics(run_id, {"best_validation_accuracy": study.best_value})
        except ValueError:
            pass
        status = "KILLED" if interrupted else "FINISHED"
        self._call("close parent", self.client.set_terminated, run_id, status)

    def _mark_best(self, study: optuna.Study) -> None:
        try:
            best = study.best_trial.number
        except ValueError:
            return
        runs = self._find_runs(f"tags.`{ROLE}` = 'trial' and tags.`{STUDY}` = '{study.study_name}'")
        for run in runs:
            is_best = run.data.tags.get(TRIAL) == str(best)
            if is_best or run.data.tags.get("best") == "true":
                self._call("tag best", self.client.set_tag, run.info.run_id, "best", str(is_best).lower())

    # ------------------------------------------------------------ trials

    def trial_started(self, trial: optuna.Trial, params: dict) -> None:
        study = trial.study.study_name
        parent = self.parent.get(study)
        if parent is None:
            return
        family = trial.study.user_attrs.get("arch", "")
        tags = {PARENT: parent, ROLE: "trial", STUDY: study, TRIAL: str(trial.number), ARCH: family}
        if trial.user_attrs.get(REFERENCE):
            tags[REFERENCE] = "true"  # the course notes' configuration (search/reference.py)
        run = self._call(
            "create trial run",
            self.client.create_run,
            self.experiment_id,
            run_name=trial_run_name(family, trial.number),
            start_time=_ms(trial.datetime_start),
            tags=tags,
        )
        if run is None:
            return
        self.child[(study, trial.number)] = run.info.run_id
        settings = self.study_params.get(trial.study.user_attrs.get("arch"), {})
        fixed = {k: settings[k] for k in TRAINING_SETTINGS if k in settings}
        self._log_params(run.info.run_id, {**params, **fixed, "seed": trial.user_attrs.get("seed")})

    def trial_callbacks(self, trial: optuna.Trial) -> list:
        run_id = self.child.get((trial.study.study_name, trial.number))
        return [_MetricsCallback(self, run_id)] if run_id else []

    def trial_finished(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        run_id = self.child.pop((study.study_name, frozen.number), None)
        if run_id is None:
            return
        attrs = frozen.user_attrs
        self.log_metrics(
            run_id,
            {
                "best_validation_accuracy": frozen.value if frozen.state == TrialState.COMPLETE else None,
                "last_reported_accuracy": frozen.intermediate_values.get(frozen.last_step)
                if frozen.last_step
                else None,
                "best_step": attrs.get("best_step"),
                "steps_trained": attrs.get("steps_trained"),
                "wall_seconds": attrs.get("wall_seconds"),
                "n_params": attrs.get("n_params"),
            },
        )
        state = frozen.state.name.lower()
        tags = {"state": {"complete": "complete", "pruned": "pruned"}.get(state, "failed")}
        if frozen.state == TrialState.FAIL:
            tags["fail_reason"] = str(attrs.get("fail_reason", "unknown"))[:500]
        for key, value in tags.items():
            self._call("tag trial", self.client.set_tag, run_id, key, value)
        status = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED"}.get(frozen.state, "FAILED")
        if attrs.get("fail_reason") == "interrupted":
            status = "KILLED"
        if frozen.state == TrialState.PRUNED:  # the runs table shows it without opening the run
            name = trial_run_name(
                study.user_attrs.get("arch", ""), frozen.number, pruned=True, step=frozen.last_step
            )
            self._call("name pruned run", self.client.update_run, run_id, name=name)
        self._call(
            "close trial run",
            self.client.set_terminated,
            run_id,
            status,
            end_time=_ms(frozen.datetime_complete),
        )

    def trial_died(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        """Close the run of a trial whose worker died (found through the trial's tags)."""
        runs = self._find_runs(
            f"tags.`{ROLE}` = 'trial' and tags.`{STUDY}` = '{study.study_name}' "
            f"and tags.`{TRIAL}` = '{frozen.number}'"
        )
        for run in runs:
            if run.info.status == "RUNNING":
                self._call("tag trial", self.client.set_tag, run.info.run_id, "state", "failed")
                self._call(
                    "tag trial",
                    self.client.set_tag,
                    run.info.run_id,
                    "fail_reason",
                    "worker stopped (no heartbeat)",
                )
                self._call("close trial run", self.client.set_terminated, run.info.run_id, "FAILED")

    # ------------------------------------------------------------ final stage

    def final_run(self, study: optuna.Study, record: dict) -> None:
        """One run per final re-training (configuration x seed), nested under the study's parent."""
        parent = self.parent.get(study.study_name)
        if parent is None:
            return
        run = self._call(
            "create final run",
            self.client.create_run,
            self.experiment_id,
            run_name=f"{record['arch']}-{record['trial_number']} final s{record.get('seed_index', 0) + 1}",
            start_time=_ms(record.get("started_at")),
            tags={
                PARENT: parent,
                ROLE: "final",
                STUDY: study.study_name,
                TRIAL: str(record["trial_number"]),
                ARCH: record["arch"],
                "final": "true",
                **({REFERENCE: "true"} if record.get(REFERENCE) else {}),
            },
        )
        if run is None:
            return
        self._log_params(
            run.info.run_id, {**record["params"], "seed": record["seed"], "rank": record["rank"]}
        )
        self.log_metrics(
            run.info.run_id,
            {
                k: record.get(k)
                for k in (
                    "test_accuracy",
                    "test_loss",
                    "validation_accuracy",
                    "best_step",
                    "steps_trained",
                    "wall_seconds",
                )
            },
        )
        self._call(
            "close final run",
            self.client.set_terminated,
            run.info.run_id,
            "FINISHED",
            end_time=_ms(record.get("ended_at")),
        )

    def chosen_config(self, study: optuna.Study, row: dict) -> None:
        """The study's answer on its parent run: best validation in the search, and the chosen
        configuration (the report's) with its final-stage validation mean and test mean / 95% CI."""
        run_id = self.parent.get(study.study_name)
        if run_id is None:
            return
        self.log_metrics(
            run_id,
            {
                "best_validation_accuracy": row.get("best_value"),
                "chosen_trial": row.get("chosen_trial") if row.get("seeds") else None,
                "chosen_validation_mean": row.get("validation_mean"),
                "chosen_test_mean": row.get("test_mean"),
                "chosen_test_ci_low": row.get("test_ci_low"),
                "chosen_test_ci_high": row.get("test_ci_high"),
                "chosen_test_seeds": row.get("seeds") or None,
            },
        )

    def tuning_gain(self, study: optuna.Study, row) -> None:
        """What tuning bought (``reports.tuning``) on the study's parent run: the course notes' reference,
        the gain of the chosen configuration over it (accuracy fraction) and its paired CI and p-values."""
        run_id = self.parent.get(study.study_name)
        if run_id is None:
            return
        names = {
            "reference_trial": "reference_trial",
            "reference_validation": "reference_validation_accuracy",
            "reference_mean": "reference_test_mean",
            "reference_ci_low": "reference_test_ci_low",
            "reference_ci_high": "reference_test_ci_high",
            "gain": "tuning_gain",
            "gain_ci_low": "tuning_gain_ci_low",
            "gain_ci_high": "tuning_gain_ci_high",
            "p_value": "tuning_gain_p",
            "p_holm": "tuning_gain_p_holm",
            "trials_to_beat": "trials_to_beat_reference",
        }
        import pandas as pd

        self.log_metrics(
            run_id, {metric: None if pd.isna(row[key]) else float(row[key]) for key, metric in names.items()}
        )

    def baseline_run(self, benchmark: str, record: dict) -> None:
        """The linear baseline as its own top-level run of the benchmark's experiment."""
        self._reference_run(
            benchmark,
            "baseline",
            record["name"],
            {k: record[k] for k in ("name", "C", "n_features", "fingerprint", "max_length") if k in record},
            {k: record.get(k) for k in ("validation_accuracy", "test_accuracy", "fit_seconds")},
            record.get("fit_seconds", 0),
        )

    def finetune_runs(self, benchmark: str, record: dict) -> None:
        """The fine-tuned pretrained reference: one top-level run per training (every learning rate of
        the grid with the first seed, then the chosen rate's other seeds), with its test figures when
        it is one of the reference's runs."""
        tested = {r["seed"]: r for r in record["runs"]}
        for t in record["trainings"]:
            chosen = t["learning_rate"] == record["learning_rate"] and t["seed"] in tested
            test = tested[t["seed"]] if chosen else {}
            params = {k: record[k] for k in ("model", "source", "n_params", "fingerprint", "max_length")}
            self._reference_run(
                benchmark,
                "finetune",
                f"{record['name']} lr {t['learning_rate']:g} s{t['seed']}",
                params | {"learning_rate": t["learning_rate"], "seed": t["seed"], "chosen": chosen},
                {
                    **{k: t.get(k) for k in ("validation_accuracy", "steps_trained", "wall_seconds")},
                    "steps_per_second": t.get("steps_per_second"),
                    **{k: test.get(k) for k in ("test_accuracy", "test_loss")},
                },
                t.get("wall_seconds", 0),
            )

    def _reference_run(
        self, benchmark: str, role: str, name: str, params: dict, metrics: dict, seconds: float
    ) -> None:
        """A reference's run (baseline, fine-tune), called as its work ends: it began ``seconds`` ago."""
        now = time.time()
        run = self._call(
            f"create {role} run",
            self.client.create_run,
            self.experiment_id,
            run_name=name,
            start_time=_ms(now - seconds),
            tags={ROLE: role, ARCH: name, "benchmark": benchmark},
        )
        if run is None:
            return
        self._log_params(run.info.run_id, params)
        self.log_metrics(run.info.run_id, {k: v for k, v in metrics.items() if v is not None})
        self._call(
            f"close {role} run", self.client.set_terminated, run.info.run_id, "FINISHED", end_time=_ms(now)
        )


def trial_run_name(family: str, number: int, pruned: bool = False, step: int | None = None) -> str:
    """Short enough for the runs table: ``cnn-7``, ``cnn-7 pruned@200`` (pruned at step 200)."""
    return (
        f"{family}-{number}"
        + (" pruned" if pruned else "")
        + (f"@{step}" if pruned and step is not None else "")
    )


def _param_value(value) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


@contextlib.contextmanager
def _store_lock(uri: str):
    """One process at a time opens a SQLite tracking store: MLflow creates a new file's tables on
    first use, and processes that do it at once fail ("table runs already exists")."""
    head, sep, path = uri.partition(":///")
    if scheme(uri) != "sqlite" or not sep or not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quick_http():
    """MLflow HTTP requests without retries and with a short timeout, for the duration of the block."""
    with restored_env(*QUICK_CHECK_ENV):
        os.environ.update(QUICK_CHECK_ENV)
        yield


@contextlib.contextmanager
def restored_env(*keys: str):
    """Leave these environment variables as they were before the block, whatever it sets."""
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]

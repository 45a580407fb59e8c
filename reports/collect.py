"""Data step: read one benchmark's studies from Optuna storage into tidy DataFrames.

Nothing here draws or formats; every figure and table of the report is built from these frames,
so the tests can check the numbers without looking at pictures. Families are sorted by name
everywhere, which keeps colours and table rows in the same order across the page.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from textbench.core import predictions as packed
from textbench.core.errors import UsageError
from textbench.core.settings import BUDGET_KEYS
from textbench.core.urls import redact
from textbench.reports.failures import family_failure

logger = logging.getLogger(__name__)

CURVES_FILE = "curves.csv"  # a trial's curves in the study's artifact store (search.objective.CURVES_FILE)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
CURVE_METRICS = ("loss", "eval_loss", "eval_accuracy")
TRIAL_ATTRS = (
    "best_step",
    "steps_trained",
    "wall_seconds",
    "n_params",
    "seed",
    "final_loss",
    "final_eval_loss",
    "final_eval_accuracy",
    "fail_reason",
)
FINAL_COLUMNS = (
    "family",
    "rank",
    "trial_number",
    "seed",
    "test_accuracy",
    "test_loss",
    "validation_accuracy",
    "best_step",
    "steps_trained",
    "wall_seconds",
    "n_params",
    "params",
)
# Settings that define the budget: they must agree between families for a fair comparison.
COMPARED_SETTINGS = (
    "dataset",
    "fingerprint",
    "tokenizer",
    "max_length",
    "train_size",
    "validation_size",
    "test_size",
    "labels",
    *BUDGET_KEYS,
    "seed",
    "sampler",
    "pruner",
    "target_trials",
    "top_k",
    "final_seeds",
)


@dataclass
class Benchmark:
    """One benchmark: its name, the storage it came from (redacted) and one study per family.

    Study user attrs and trials are read from storage once and kept: each ``study.user_attrs``
    is a storage round trip, and the report asks for them hundreds of times.
    """

    name: str
    storage: str
    studies: dict[str, optuna.Study] = field(default_factory=dict)
    _trials: dict[str, list[FrozenTrial]] = field(default_factory=dict, repr=False)
    _attrs: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def families(self) -> list[str]:
        return list(self.studies)

    def trials(self, family: str) -> list[FrozenTrial]:
        """Trials of one family, read from storage once (storage round trips dominate the cost)."""
        if family not in self._trials:
            self._trials[family] = self.studies[family].get_trials(deepcopy=False)
        return self._trials[family]

    def attrs(self, family: str) -> dict[str, Any]:
        if family not in self._attrs:
            self._attrs[family] = self.studies[family].user_attrs
        return self._attrs[family]

    def settings(self, family: str) -> dict[str, Any]:
        return dict(self.attrs(family).get("settings") or {})

    def shared(self, attr: str) -> dict[str, Any] | None:
        """A record stored alike on every study (a reference's); the first study that has it wins."""
        for family in self.families:
            if self.attrs(family).get(attr):
                return dict(self.attrs(family)[attr])
        return None

    @property
    def baseline(self) -> dict[str, Any] | None:
        """The TF-IDF reference."""
        return self.shared("baseline")

    @property
    def finetune(self) -> dict[str, Any] | None:
        """The fine-tuned pretrained reference (``--finetune``)."""
        return self.shared("finetune")


def load_benchmark(storage: str | optuna.storages.BaseStorage, name: str) -> Benchmark:
    """Load the studies whose user attr ``benchmark`` is ``name``, keyed by their ``family`` attr."""
    url = storage if isinstance(storage, str) else getattr(storage, "url", type(storage).__name__)
    store = optuna.storages.get_storage(storage) if isinstance(storage, str) else storage
    summaries = optuna.get_all_study_summaries(store, include_best_trial=False)
    mine = [s for s in summaries if s.user_attrs.get("benchmark") == name]
    if not mine:
        known = sorted({str(s.user_attrs["benchmark"]) for s in summaries if "benchmark" in s.user_attrs})
        raise UsageError(
            f"no study of benchmark {name!r} in {redact(url)}; benchmarks there: {', '.join(known) or 'none'}"
        )
    studies = {}
    for summary in mine:
        family = str(summary.user_attrs.get("arch") or summary.study_name.removeprefix(f"{name}-"))
        studies[family] = optuna.load_study(study_name=summary.study_name, storage=store)
    ordered = {family: studies[family] for family in sorted(studies)}
    logger.info("benchmark %s: families %s", name, ", ".join(ordered))
    return Benchmark(name=name, storage=redact(url) or "", studies=ordered)


def _scalar(value: Any) -> Any:
    """Lists and dicts become JSON text so they fit a CSV cell and compare by value."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict, tuple)) else value


def _keep_ints(df: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Columns holding only ints stay ints (nullable) instead of turning float around missing values."""

    def is_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    ints = [
        c
        for c in df.columns
        if any(is_int(r.get(c)) for r in rows) and all(r.get(c) is None or is_int(r.get(c)) for r in rows)
    ]
    return df.astype({c: "Int64" for c in ints})


def trials_frame(bench: Benchmark) -> pd.DataFrame:
    """One row per trial: family, number, state, value, user attrs (not curves), ``params_<name>``."""
    rows = []
    for family in bench.families:
        for t in bench.trials(family):
            row = {
                "family": family,
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "duration_seconds": t.duration.total_seconds() if t.duration else np.nan,
            }
            row.update({k: None for k in TRIAL_ATTRS})
            for key, value in t.user_attrs.items():
                if key != "curves":
                    clash = key in ("family", "number", "state", "value") or key.startswith("params_")
                    row[f"user_attrs_{key}" if clash else key] = _scalar(value)
            row.update({f"params_{k}": v for k, v in t.params.items()})
            rows.append(row)
    base = ["family", "number", "state", "value", "duration_seconds", *TRIAL_ATTRS]
    df = _keep_ints(pd.DataFrame(rows, columns=None if rows else base), rows)
    params = sorted(c for c in df.columns if c.startswith("params_"))
    rest = [c for c in df.columns if c not in base and c not in params]
    df = df[base + rest + params]
    return df.astype({"value": float, "duration_seconds": float}).reset_index(drop=True)


def params_frame(bench: Benchmark) -> pd.DataFrame:
    """Long form of (hyperparameter value, validation accuracy) for trials that have a value.

    Pruned trials are kept (their value is the last accuracy they reported) but flagged by
    ``state`` so the figure can show them apart. ``log`` and ``categorical`` come from the
    trial's distribution, which is what the sampler actually searched.
    """
    rows = []
    for family in bench.families:
        for t in bench.trials(family):
            if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or t.value is None:
                continue
            for name, value in t.params.items():
                dist = t.distributions.get(name)
                rows.append(
                    {
                        "family": family,
                        "number": t.number,
                        "state": t.state.name,
                        "param": name,
                        "param_value": value,
                        "value": float(t.value),
                        "log": isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log,
                        "categorical": isinstance(dist, CategoricalDistribution),
                    }
                )
    cols = ["family", "number", "state", "param", "param_value", "value", "log", "categorical"]
    return pd.DataFrame(rows, columns=cols)


def history_frame(bench: Benchmark) -> pd.DataFrame:
    """Best validation accuracy so far, per family, over completed trials in trial order."""
    frames = []
    for family in bench.families:
        done = sorted(
            (t for t in bench.trials(family) if t.state == TrialState.COMPLETE), key=lambda t: t.number
        )
        df = pd.DataFrame(
            {"family": family, "number": [t.number for t in done], "value": [float(t.value) for t in done]}
        )
        df["best_so_far"] = df["value"].cummax()
        frames.append(df)
    cols = ["family", "number", "value", "best_so_far"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return out[cols].astype({"number": int, "value": float, "best_so_far": float})


def _best_trial(bench: Benchmark, family: str) -> FrozenTrial | None:
    done = [t for t in bench.trials(family) if t.state == TrialState.COMPLETE and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def trial_curves(bench: Benchmark, family: str, t: FrozenTrial) -> list[dict[str, Any]]:
    """The trial's ``curves.csv`` in the study's Optuna artifact store, or the older ``curves`` attr."""
    if t.user_attrs.get("curves"):
        return t.user_attrs["curves"]
    folder = bench.attrs(family).get("artifact_dir")
    if not folder or not Path(folder).is_dir():
        return []
    store = optuna.artifacts.FileSystemArtifactStore(folder)
    for meta in optuna.artifacts.get_all_artifact_meta(t, storage=bench.studies[family]._storage):
        if meta.filename == CURVES_FILE:
            try:
                with store.open_reader(meta.artifact_id) as handle:
                    frame = pd.read_csv(handle, float_precision="round_trip")  # the logged floats, exactly
            except optuna.artifacts.exceptions.ArtifactNotFound:
                return []
            return [{k: v for k, v in row.items() if pd.notna(v)} for row in frame.to_dict("records")]
    return []


def _curve_rows(bench: Benchmark, family: str, t: FrozenTrial) -> list[dict[str, Any]]:
    """Curves logged by the trainer, or the reported intermediate accuracies when there are none."""
    rows = []
    for point in trial_curves(bench, family, t):
        step = point.get("step")
        for metric in CURVE_METRICS:
            if step is not None and point.get(metric) is not None:
                rows.append(
                    {
                        "family": family,
                        "number": t.number,
                        "step": int(step),
                        "metric": metric,
                        "value": float(point[metric]),
                    }
                )
    if not rows:
        rows = [
            {
                "family": family,
                "number": t.number,
                "step": int(step),
                "metric": "eval_accuracy",
                "value": float(v),
            }
            for step, v in sorted(t.intermediate_values.items())
        ]
    return rows


def curves_frame(bench: Benchmark, which: str = "best") -> pd.DataFrame:
    """Long-form learning curves: family, number, step, metric (loss/eval_loss/eval_accuracy), value.

    ``which="best"`` keeps each family's best completed trial; ``"all"`` keeps every trial.
    """
    if which not in ("best", "all"):
        raise ValueError(f"which must be 'best' or 'all', not {which!r}")
    rows = []
    for family in bench.families:
        if which == "best":
            chosen = [t for t in [_best_trial(bench, family)] if t is not None]
        else:
            chosen = list(bench.trials(family))
        for t in chosen:
            rows.extend(_curve_rows(bench, family, t))
    return pd.DataFrame(rows, columns=["family", "number", "step", "metric", "value"])


def best_frame(bench: Benchmark, k: int | None = None) -> pd.DataFrame:
    """Top-``k`` completed trials per family by validation value (``k`` defaults to settings top_k).

    ``rank`` matches the ``rank`` of the final stage, which re-trains exactly these configs.
    """
    rows = []
    for family in bench.families:
        top = k or int(bench.settings(family).get("top_k") or 1)
        done = [t for t in bench.trials(family) if t.state == TrialState.COMPLETE and t.value is not None]
        done.sort(key=lambda t: (-t.value, t.number))
        for rank, t in enumerate(done[:top], start=1):
            rows.append(
                {
                    "family": family,
                    "rank": rank,
                    "number": t.number,
                    "value": float(t.value),
                    "n_params": t.user_attrs.get("n_params"),
                    "best_step": t.user_attrs.get("best_step"),
                    "wall_seconds": t.user_attrs.get("wall_seconds"),
                    "params": dict(t.params),
                }
            )
    cols = ["family", "rank", "number", "value", "n_params", "best_step", "wall_seconds", "params"]
    return pd.DataFrame(rows, columns=cols)


def final_frame(bench: Benchmark) -> pd.DataFrame:
    """One row per final-stage run (config rank x seed); empty when the final stage did not run.

    ``reference`` marks the course notes' configuration; outside the top-k its ``rank`` is NaN."""
    rows = []
    for family in bench.families:
        for result in bench.attrs(family).get("final_results") or []:
            row = {c: result.get(c) for c in FINAL_COLUMNS}
            row["family"] = family
            row["params"] = dict(result.get("params") or {})
            row["reference"] = bool(result.get("reference"))
            rows.append(row)
    df = pd.DataFrame(rows, columns=[*FINAL_COLUMNS, "reference"])
    numeric = [c for c in FINAL_COLUMNS if c not in ("family", "params")]
    df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce")
    df["reference"] = df["reference"].astype(bool)
    return df.sort_values(["family", "rank", "seed"], kind="stable").reset_index(drop=True)


def test_labels(bench: Benchmark) -> np.ndarray | None:
    """The test split's labels, stored once per study by the final stage (None for older studies)."""
    for family in bench.families:
        text = bench.attrs(family).get("test_labels")
        if text:
            return packed.unpack(text)
    return None


def final_predictions(bench: Benchmark) -> dict[tuple, np.ndarray]:
    """(family, trial number, seed) -> that final run's test predictions; ("baseline",) -> the baseline's;
    ("finetune", seed) -> the fine-tuned reference's.

    Runs stored without predictions (older studies) are left out; the report then falls back to
    seed-level statistics.
    """
    out: dict[tuple, np.ndarray] = {}
    for family in bench.families:
        for r in bench.attrs(family).get("final_results") or []:
            if r.get("test_predictions"):
                out[(family, int(r["trial_number"]), int(r["seed"]))] = packed.unpack(r["test_predictions"])
    base = bench.baseline
    if base and base.get("test_predictions"):
        out[("baseline",)] = packed.unpack(base["test_predictions"])
    for r in (bench.finetune or {}).get("runs") or []:
        out[("finetune", int(r["seed"]))] = packed.unpack(r["test_predictions"])
    return out


def final_curves_frame(bench: Benchmark) -> pd.DataFrame:
    """Learning curves of every final-stage run: family, trial_number, seed, step, metric, value."""
    rows = []
    for family in bench.families:
        for r in bench.attrs(family).get("final_results") or []:
            for point in r.get("curves") or []:
                for metric in CURVE_METRICS:
                    if point.get("step") is not None and point.get(metric) is not None:
                        rows.append(
                            {
                                "family": family,
                                "trial_number": int(r["trial_number"]),
                                "seed": int(r["seed"]),
                                "step": int(point["step"]),
                                "metric": metric,
                                "value": float(point[metric]),
                            }
                        )
    return pd.DataFrame(rows, columns=["family", "trial_number", "seed", "step", "metric", "value"])


def importance_frame(bench: Benchmark) -> pd.DataFrame:
    """Importance per family and parameter, computed as optuna-dashboard computes it (PED-ANOVA on
    the completed trials, the best decile against all), so the report and the dashboard agree; a
    family that cannot be scored gets one ``note`` row.

    Importance needs at least two completed trials and a parameter that varied; anything else
    (including an evaluator error) becomes a note rather than a crash, since the report must render.
    """
    rows = []
    for family, study in bench.studies.items():
        done = [t for t in bench.trials(family) if t.state == TrialState.COMPLETE]
        varied = {
            name
            for name in {n for t in done for n in t.params}
            if len({_scalar(t.params.get(name)) for t in done}) > 1
        }
        note = None
        if len(done) < 2:
            note = f"needs at least 2 completed trials (has {len(done)})"
        elif not varied:
            note = "no hyperparameter varied across completed trials"
        else:
            try:
                scores = dashboard_importances(study)
                rows.extend(
                    {"family": family, "param": p, "importance": float(v), "note": ""}
                    for p, v in scores.items()
                )
            except EqualImportances:
                note = f"too few completed trials ({len(done)}) for the best decile to differ from the rest"
            except Exception as exc:  # noqa: BLE001 - any evaluator failure is a note on the page
                note = f"could not be computed: {type(exc).__name__}: {exc}"
        if note:
            rows.append({"family": family, "param": None, "importance": np.nan, "note": note})
    return pd.DataFrame(rows, columns=["family", "param", "importance", "note"])


def dashboard_importances(study: optuna.Study) -> dict[str, float]:
    """optuna-dashboard 0.21's evaluator and target (``_importance.py``): PED-ANOVA, deterministic
    (no seed), on the negated value when maximizing, since PED-ANOVA rewards low targets."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes the importances")
        # Few trials: the best decile is every trial, and PED-ANOVA warns and returns equal scores.
        warnings.filterwarnings("error", message="Target and region quantiles select the same set")
        try:
            return optuna.importance.get_param_importances(
                study,
                target=(lambda t: -t.values[0]) if maximize else (lambda t: t.values[0]),
                evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
            )
        except Warning as warning:
            if "select the same set" not in str(warning):
                raise
            raise EqualImportances(str(warning)) from None


class EqualImportances(Exception):
    """PED-ANOVA cannot rank the parameters: too few completed trials."""


THIN_FRACTION = 0.2  # a family whose completed trials are fewer than this share of its finished ones


def counts_frame(bench: Benchmark) -> pd.DataFrame:
    """Trials per family and state: complete, pruned, failed, running (and waiting), total; the
    optimizer steps its trials trained (what the family really got of the budget), ``thin``: some
    but fewer completed trials than a fifth of the finished ones, too few for TPE and importances,
    and ``family_failed``: none completed (a failure, not a thin search: ``reports.failures``)."""
    rows = []
    for family in bench.families:
        trials = bench.trials(family)
        states = [t.state for t in trials]
        complete, finished = states.count(TrialState.COMPLETE), len(states) - states.count(TrialState.RUNNING)
        finished -= states.count(TrialState.WAITING)
        running = states.count(TrialState.RUNNING) + states.count(TrialState.WAITING)
        rows.append(
            {
                "family": family,
                "complete": complete,
                "pruned": states.count(TrialState.PRUNED),
                "failed": states.count(TrialState.FAIL),
                "running": running,
                "total": len(states),
                "steps_trained": sum(int(t.user_attrs.get("steps_trained") or 0) for t in trials),
                "thin": complete > 0 and complete < THIN_FRACTION * finished,
                # nothing completed and nothing still running: no result to choose (reports.failures)
                "family_failed": finished > 0 and not running and family_failure(trials) is not None,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "family",
            "complete",
            "pruned",
            "failed",
            "running",
            "total",
            "steps_trained",
            "thin",
            "family_failed",
        ],
    )


def failed_notes(bench: Benchmark, counts: pd.DataFrame) -> list[str]:
    """One sentence per family that completed no trial: what happened and its most common reason."""
    return [
        f"{r.family}: FAILED: {family_failure(bench.trials(r.family))}."
        for r in counts[counts["family_failed"]].itertuples()
    ]


def thin_notes(counts: pd.DataFrame) -> list[str]:
    """One sentence per family whose search was thin, saying why (pruned or failed trials)."""
    notes = []
    for r in counts[counts["thin"]].itertuples():
        cause = "pruned" if r.pruned >= r.failed else "failed"
        notes.append(
            f"{r.family}: the search was thin: {r.complete} of {r.complete + r.pruned + r.failed} finished "
            f"trials completed ({r.pruned} pruned, {r.failed} failed), below a fifth, so its sampler and "
            f"importances learned from few full runs; most trials {cause}"
            + (" (the pruner stopped them: compare --pruner none)" if cause == "pruned" else "")
            + "."
        )
    return notes


def fail_reasons_frame(bench: Benchmark) -> pd.DataFrame:
    """How often each fail reason occurred, per family (most frequent first)."""
    rows = [
        {"family": family, "fail_reason": str(t.user_attrs.get("fail_reason") or "(no reason recorded)")}
        for family in bench.families
        for t in bench.trials(family)
        if t.state == TrialState.FAIL
    ]
    df = pd.DataFrame(rows, columns=["family", "fail_reason"])
    out = df.groupby(["family", "fail_reason"]).size().rename("count").reset_index()
    return out.sort_values(["family", "count"], ascending=[True, False], kind="stable").reset_index(drop=True)


def settings_frame(bench: Benchmark) -> pd.DataFrame:
    """Settings as rows, one column per family, plus ``same`` (True when all families agree)."""
    keys = list(COMPARED_SETTINGS)
    keys += sorted({k for f in bench.families for k in bench.settings(f)} - set(keys))
    data = {f: [_scalar(bench.settings(f).get(k)) for k in keys] for f in bench.families}
    df = pd.DataFrame(data, index=pd.Index(keys, name="setting"))
    df["same"] = df.nunique(axis=1, dropna=False) <= 1
    return df


def budget_check(bench: Benchmark) -> list[str]:
    """Reasons the families did not get the same budget and data; empty when the comparison is fair."""
    problems = []
    settings = settings_frame(bench)
    missing = [f for f in bench.families if not bench.settings(f)]
    if missing:
        problems.append(f"no settings recorded for {', '.join(missing)}: the budget cannot be checked")
    for key, row in settings[~settings["same"]].iterrows():
        if key in COMPARED_SETTINGS:
            values = ", ".join(f"{f}={row[f]}" for f in bench.families)
            problems.append(f"setting {key!r} differs between families: {values}")
    counts = counts_frame(bench).set_index("family")
    finished = counts["complete"] + counts["pruned"] + counts["failed"]
    stopped = {  # stopped before --trials on purpose (convergence, time budget): stated in reports.stopping
        f
        for f in bench.families
        if str(bench.attrs(f).get("stop_reason") or "").startswith(("converged", "time"))
    }
    if finished.nunique() > 1 and not stopped:
        problems.append(
            "families ran different numbers of trials: " + ", ".join(f"{f}={n}" for f, n in finished.items())
        )
    for family in bench.families:
        target = bench.settings(family).get("target_trials")
        if target and finished[family] < int(target) and family not in stopped:
            problems.append(f"{family} finished {finished[family]} of its {target} target trials")
    seeds = final_frame(bench).groupby("family")["seed"].nunique()
    if len(seeds) and seeds.reindex(bench.families).nunique(dropna=False) > 1:
        problems.append(
            "final stage used different numbers of seeds: "
            + ", ".join(f"{f}={seeds.get(f, 0)}" for f in bench.families)
        )
    baselines = {
        _scalar(bench.attrs(f).get("baseline")) for f in bench.families if bench.attrs(f).get("baseline")
    }
    if len(baselines) > 1:
        problems.append("studies record different baselines; the first one is shown")
    return problems


def provenance(bench: Benchmark) -> list[tuple[str, str]]:
    """What it takes to reproduce the run, as (item, text) pairs; per-family values only when they differ."""

    def merged(get) -> str:
        values = {f: get(f) for f in bench.families}
        texts = {
            f: "(not recorded)" if v in (None, "", [], {}) else str(_scalar(v)) for f, v in values.items()
        }
        if len(set(texts.values())) == 1:
            return next(iter(texts.values()))
        return "; ".join(f"{f}: {t}" for f, t in texts.items())

    final = final_frame(bench)
    final_seeds = sorted(int(s) for s in final["seed"].dropna().unique())
    return [
        ("command", merged(lambda f: bench.attrs(f).get("command"))),
        ("search seed", merged(lambda f: bench.settings(f).get("seed"))),
        ("final-stage seeds", ", ".join(map(str, final_seeds)) or "(final stage not run)"),
        (
            "sampler / pruner",
            merged(lambda f: f"{bench.settings(f).get('sampler')} / {bench.settings(f).get('pruner')}"),
        ),
        ("hardware", merged(lambda f: bench.attrs(f).get("hardware"))),
        ("dataset", merged(lambda f: bench.settings(f).get("dataset"))),
        ("data fingerprint", merged(lambda f: bench.settings(f).get("fingerprint"))),
        ("study storage", merged(lambda f: bench.attrs(f).get("storage") or bench.storage)),
        ("study names", ", ".join(s.study_name for s in bench.studies.values())),
        ("MLflow tracking URI", merged(lambda f: redact(bench.attrs(f).get("tracking_uri")))),
        ("MLflow experiment id", merged(lambda f: bench.attrs(f).get("mlflow_experiment_id"))),
    ]


def versions_frame(bench: Benchmark) -> pd.DataFrame:
    """Package versions recorded by each study: package rows, family columns, plus ``same``."""
    data = {f: dict(bench.attrs(f).get("versions") or {}) for f in bench.families}
    packages = sorted({p for v in data.values() for p in v})
    df = pd.DataFrame(
        {f: [data[f].get(p) for p in packages] for f in bench.families},
        index=pd.Index(packages, name="package"),
    )
    df["same"] = df.nunique(axis=1, dropna=False) <= 1
    return df

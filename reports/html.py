"""Renderer: frames and figures -> one self-contained HTML page (plus ``trials.csv`` beside it).

Everything the page shows is computed here from ``collect`` frames, so the verdict and the tables
below it come from the same numbers. Values from storage (names, labels, params, fail reasons) only
reach the page through Jinja's autoescape; images are inline base64 PNGs and a Content-Security-Policy
forbids scripts and any fetch, so the file opens offline and a hostile study name stays inert.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import optuna
import pandas as pd

from textbench.core.durations import format_duration
from textbench.core.finetune import parameters_text
from textbench.reports import collect, figures, stats, stopping, tuning
from textbench.reports.collect import Benchmark

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
SECTIONS = {
    "verdict": "Verdict",
    "budget": "Budget and data",
    "best": "Best configurations",
    "distribution": "Validation accuracy distribution",
    "history": "Optimization history",
    "budget_aware": "Expected best vs number of trials",
    "params": "Hyperparameters vs validation accuracy",
    "curves": "Learning curves",
    "final": "Final test accuracy",
    "cost": "Accuracy vs cost",
    "importance": "Hyperparameter importance",
    "counts": "Trial counts",
    "reproducibility": "Reproducibility",
}


def cell(value: Any) -> str:
    """Short, readable text for one table cell (NaN and None become a dash)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return cell(int(v))
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.2e}" if abs(v) < 1e-2 else f"{v:.4g}"
    return str(value)


def table(
    df: pd.DataFrame,
    formats: dict[str, Callable[[Any], Any]] | None = None,
    highlight: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """A frame as plain strings for the template's table macro; lists stay lists (one line each)."""
    formats = formats or {}
    rows = []
    for i, (_, row) in enumerate(df.iterrows()):
        cells = [
            formats[c](row[c])
            if c in formats
            else [str(v) for v in row[c]]
            if isinstance(row[c], list)
            else cell(row[c])
            for c in df.columns
        ]
        rows.append({"cells": cells, "highlight": bool(highlight[i]) if highlight is not None else False})
    return {"columns": [str(c).replace("_", " ") for c in df.columns], "rows": rows}


def _kv(params: dict[str, Any]) -> list[str]:
    return [f"{k} = {cell(v)}" for k, v in sorted(params.items())]


def _figure(
    draw: Callable[..., Any], frame: pd.DataFrame, empty: str, alt: str, **kwargs: Any
) -> dict[str, Any]:
    """Draw a figure as an inline PNG, or explain why there is none (a drawing bug must not kill the page)."""
    if frame.empty:
        return {"png": None, "note": empty, "alt": alt}
    try:
        fig = draw(frame, **kwargs)
        png = base64.b64encode(figures.to_png(fig)).decode("ascii")
        return {"png": png, "note": None, "alt": alt}
    except Exception as exc:  # noqa: BLE001
        logger.exception("figure %s failed", draw.__name__)
        return {
            "png": None,
            "note": f"This figure could not be drawn ({type(exc).__name__}: {exc}).",
            "alt": alt,
        }


def _budget_sentence(bench: Benchmark, has_final: bool) -> str:
    """The shared budget in words, from the first family's settings (differences are flagged apart)."""
    raw = bench.settings(bench.families[0])
    if not raw:
        return "No settings were recorded with the studies."
    labels = raw.get("labels") or []
    s = {k: cell(v) for k, v in raw.items()}
    budget = bench.attrs(bench.families[0]).get("time_budget") or {}
    final = budget.get("final_stage") or {}
    trials = f"{s.get('target_trials', '?')} trials"
    converged = [
        f for f in bench.families if str(bench.attrs(f).get("stop_reason") or "").startswith("converged")
    ]
    if budget:  # the budget's own sentences (reports.stopping) say how many it allowed and why
        trials = f"up to {trials} (--trials; the time budget below allowed {budget.get('trials_per_family')})"
    elif converged:  # reports.stopping says where each stopped and why
        trials = (
            f"up to {trials} (--trials; --stop-when-converged stopped {', '.join(converged)} earlier, below)"
        )
    top_k, seeds = (
        final.get("top_k", s.get("top_k", "?")),
        final.get("final_seeds", s.get("final_seeds", "?")),
    )
    return (
        f"Every family gets {trials} (sampler {s.get('sampler', '?')}, "
        f"pruner {s.get('pruner', '?')}), each at most {s.get('max_steps', '?')} steps of batch size "
        f"{s.get('batch_size', '?')}, evaluated on the validation split every {s.get('eval_steps', '?')} "
        "steps "
        f"and stopped after {s.get('patience', '?')} evaluations without improvement. Data: "
        f"{s.get('dataset', '?')} with {s.get('train_size', '?')} train / {s.get('validation_size', '?')} "
        f"validation / {s.get('test_size', '?')} test examples, {len(labels)} labels "
        f"({', '.join(map(str, labels))}), tokenizer {s.get('tokenizer', '?')}, max length "
        f"{s.get('max_length', '?')}. Search and ranking use validation only; the test split is used once, "
        f"to evaluate the top {top_k} configuration{'s' if str(top_k) != '1' else ''} per family with "
        f"{seeds} seeds"
        + (" (cut to fit the time budget)" if final.get("why") else "")
        + ("." if has_final else " (not run yet for this benchmark).")
        + _data_sentence(raw)
    )


def _data_sentence(raw: dict) -> str:
    """Where each split came from and which rows were dropped (nothing is changed silently)."""
    origin = [
        f"{split}: {raw[f'{split}_from']}"
        for split in ("train", "validation", "test")
        if raw.get(f"{split}_from")
    ]
    text = f" Splits: {'; '.join(origin)}." if origin else ""
    if "dropped_rows" not in raw:
        return text
    dropped = raw.get("dropped_rows") or {}
    if not dropped:
        return text + " No row was dropped."
    parts = [
        f"{split}: "
        + ", ".join(
            f"{n} {'without a label' if why == 'no label' else 'with an empty text'}"
            for why, n in counts.items()
            if n
        )
        for split, counts in dropped.items()
    ]
    return text + f" Rows dropped before splitting: {'; '.join(parts)}."


def _settings_table(settings: pd.DataFrame) -> dict[str, Any]:
    """One value column when every family agrees; a column per family (differences highlighted) otherwise."""
    if settings["same"].all() and len(settings.columns) > 1:
        shown = settings.iloc[:, :1].set_axis(["value (all families)"], axis=1)
        return table(shown.reset_index())
    return table(settings.drop(columns="same").reset_index(), highlight=~settings["same"].to_numpy())


def _ci(row: pd.Series) -> str:
    if math.isnan(row["ci_low"]):
        return f"none: all {int(row['n'])} seeds equal" if row["n"] >= 2 else "n/a (one seed)"
    return f"{stats.fmt_acc(row['ci_low'])} to {stats.fmt_acc(row['ci_high'])}"


def _chance_cell(value: Any) -> str:
    return "–" if value is None else ("no: at chance" if value else "yes")


def _leaderboard(trials: pd.DataFrame, order: pd.DataFrame) -> dict[str, Any] | None:
    """The ranking behind the headline: every family's chosen configuration and the baseline."""
    if not order.empty and (order["kind"] == "family").any():
        shown = pd.DataFrame(
            {
                "rank": range(1, len(order) + 1),
                "family": [
                    {"baseline": f"{n} (baseline)", "pretrained": f"{n} (pretrained reference)"}.get(k, n)
                    for n, k in zip(order["name"], order["kind"], strict=True)
                ],
                "chosen trial": order["trial_number"],
                "mean validation": order["validation_mean"],
                "mean test": order["mean"],
                "std": order["std"],
                "seeds": order["n"],
                "95% CI (test)": [_ci(r) if r["kind"] != "baseline" else "–" for _, r in order.iterrows()],
                "above chance": order["at_chance"].map(_chance_cell),
            }
        )
        fmt = {"mean validation": stats.fmt_acc, "mean test": stats.fmt_acc, "std": stats.fmt_acc}
        return table(shown, fmt, highlight=(order["at_chance"] == True).to_numpy())  # noqa: E712
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    if done.empty:
        return None
    best = done.loc[done.groupby("family")["value"].idxmax()].sort_values("value", ascending=False)
    shown = pd.DataFrame(
        {"family": best["family"], "best trial": best["number"], "best validation (not test)": best["value"]}
    )
    return table(shown, {"best validation (not test)": stats.fmt_acc})


def _p_column(p: pd.Series, bound: pd.Series) -> list[str]:
    """Formatted p-values; ``≤`` where the bootstrap had no draw across zero (p is its floor)."""
    return [stats.fmt_p(v, b) for v, b in zip(p, bound, strict=True)]


def _pairs_table(pairs: pd.DataFrame) -> dict[str, Any] | None:
    if pairs.empty:
        return None
    shown = pd.DataFrame(
        {
            "comparison": [f"{a} − {b}" for a, b in zip(pairs["a"], pairs["b"], strict=True)],
            "difference": pairs["diff"].map(stats.fmt_diff),
            "95% CI (unadjusted)": [
                f"{stats.fmt_diff(lo)} to {stats.fmt_diff(hi)}" if not math.isnan(lo) else "n/a"
                for lo, hi in zip(pairs["ci_low"], pairs["ci_high"], strict=True)
            ],
            "method": pairs["method"],
            "p": _p_column(pairs["p_value"], pairs["p_bound"]),
            "Holm-adjusted p": _p_column(pairs["p_holm"], pairs["p_bound"]),
            "significant (Holm, 0.05)": pairs["significant"],
            "Welch p (seed means)": pairs["welch_p"].map(stats.fmt_p),
        }
    )
    return table(shown, highlight=pairs["significant"].to_numpy())


def _final_tables(final: pd.DataFrame) -> dict[str, Any] | None:
    if final.empty:
        return None
    chosen = set(map(tuple, stats.choose(final)[["family", "rank"]].drop_duplicates().to_numpy()))
    notes = set(
        zip(
            final.loc[final["reference"], "family"],
            final.loc[final["reference"], "trial_number"],
            strict=True,
        )
    )
    final = final.assign(
        rank=final["rank"].fillna(0)
    )  # rank 0: the course notes' reference outside the top-k
    summary = stats.summarize(final, by=["family", "rank"])
    val = stats.summarize(final, by=["family", "rank"], value="validation_accuracy")
    trial = final.groupby(["family", "rank"])["trial_number"].first().reset_index()
    merged = summary.merge(
        val[["family", "rank", "mean"]].rename(columns={"mean": "val"}), on=["family", "rank"]
    )
    merged = merged.merge(trial, on=["family", "rank"])
    is_chosen = [(f, r) in chosen for f, r in zip(merged["family"], merged["rank"], strict=True)]
    trial = [
        f"{int(n)} {NOTES_MARK}" if (f, n) in notes else n
        for f, n in zip(merged["family"], merged["trial_number"], strict=True)
    ]
    rank = ["–" if r == 0 else r for r in merged["rank"]]
    per_rank = pd.DataFrame(
        {
            "family": merged["family"],
            "rank": rank,
            "trial": trial,
            "mean validation": merged["val"],
            "mean test": merged["mean"],
            "std": merged["std"],
            "seeds": merged["n"],
            "95% CI (test)": merged.apply(_ci, axis=1),
            "chosen": is_chosen,
        }
    )
    fmt = {"mean validation": stats.fmt_acc, "mean test": stats.fmt_acc, "std": stats.fmt_acc}
    return {"per_rank": table(per_rank, fmt, highlight=is_chosen)}


NOTES_MARK = "(course notes)"  # marks the course notes' reference configuration in the tables


def _tuning_table(gains: pd.DataFrame) -> dict[str, Any] | None:
    """What tuning bought, per family: the same numbers as ``tuning.csv`` and the terminal."""
    if gains.empty:
        return None

    def ci(lo: float, hi: float, fmt: Callable[[float], str]) -> str:
        return "n/a" if math.isnan(lo) else f"{fmt(lo)} to {fmt(hi)}"

    shown = pd.DataFrame(
        {
            "family": gains["family"],
            "notes trial": gains["reference_trial"],
            "notes validation (search)": gains["reference_validation"].map(stats.fmt_acc),
            "notes mean test": gains["reference_mean"].map(stats.fmt_acc),
            "notes 95% CI": [
                ci(lo, hi, stats.fmt_acc)
                for lo, hi in zip(gains["reference_ci_low"], gains["reference_ci_high"], strict=True)
            ],
            "chosen trial": gains["chosen_trial"],
            "chosen mean test": gains["chosen_mean"].map(stats.fmt_acc),
            "chosen 95% CI": [
                ci(lo, hi, stats.fmt_acc)
                for lo, hi in zip(gains["chosen_ci_low"], gains["chosen_ci_high"], strict=True)
            ],
            "seeds": gains["seeds"],
            "gain (points)": gains["gain"].map(tuning.points),
            "gain 95% CI (points)": [
                ci(lo, hi, tuning.points)
                for lo, hi in zip(gains["gain_ci_low"], gains["gain_ci_high"], strict=True)
            ],
            "method": gains["method"],
            "p": _p_column(gains["p_value"], gains["p_bound"]),
            "Holm-adjusted p": _p_column(gains["p_holm"], gains["p_bound"]),
            "trials until one beat the notes (validation)": [
                f"none of {int(m)}" if pd.isna(n) else int(n)
                for n, m in zip(gains["trials_to_beat"], gains["trials_searched"], strict=True)
            ],
        }
    )
    return table(shown, highlight=(gains["significant"] & (gains["gain"] > 0)).to_numpy())


def _reference_numbers(bench: Benchmark) -> set[tuple[str, float]]:
    return {
        (f, float(t.number)) for f in bench.families for t in bench.trials(f) if t.user_attrs.get("reference")
    }


def _best_table(bench: Benchmark, final: pd.DataFrame) -> dict[str, Any] | None:
    best = collect.best_frame(bench)
    if best.empty:
        return None
    # matched by trial number, not rank: a search resumed after the final stage can shift the ranks
    chosen = stats.choose(final)
    picked = set(zip(chosen["family"], chosen["trial_number"].astype(float), strict=True))
    flags = [(f, float(n)) in picked for f, n in zip(best["family"], best["number"], strict=True)]
    notes = _reference_numbers(bench)
    trial = [
        f"{n} {NOTES_MARK}" if (f, float(n)) in notes else n
        for f, n in zip(best["family"], best["number"], strict=True)
    ]
    shown = pd.DataFrame(
        {
            "family": best["family"],
            "rank": best["rank"],
            "trial": trial,
            "validation accuracy": best["value"],
            "parameters": best["n_params"],
            "best step": best["best_step"],
            "hyperparameters": best["params"].map(_kv),
            "chosen for test": flags,
        }
    )
    return table(shown, {"validation accuracy": stats.fmt_acc}, highlight=flags)


def _baseline_text(baseline: dict[str, Any] | None) -> str | None:
    if not baseline:
        return None
    grid = baseline.get("C_grid")
    edge = ""
    if grid:
        edge = f" C was chosen on validation from {', '.join(cell(c) for c in grid)}" + (
            " and sits at the edge of that grid even after widening it: a better C may lie beyond."
            if baseline.get("C_at_edge")
            else "."
        )
    return (
        f"Reference: {baseline.get('name', 'baseline')} (C = {cell(baseline.get('C'))}), validation accuracy "
        f"{stats.fmt_acc(float(baseline.get('validation_accuracy', math.nan)))}, test accuracy "
        f"{stats.fmt_acc(float(baseline.get('test_accuracy', math.nan)))}, fitted in "
        f"{cell(baseline.get('fit_seconds'))} s.{edge}"
    )


def _curse_table(best: pd.DataFrame, final: pd.DataFrame) -> dict[str, Any] | None:
    curse = stats.winners_curse(best, final)
    if curse.empty:
        return None
    shown = pd.DataFrame(
        {
            "family": curse["family"],
            "chosen trial": curse["trial_number"],
            "validation in the search": curse["search_validation"],
            "final-stage validation mean": curse["final_validation_mean"],
            "seeds": curse["n"],
            "change": curse["drop"].map(stats.fmt_diff),
        }
    )
    fmt = {"validation in the search": stats.fmt_acc, "final-stage validation mean": stats.fmt_acc}
    return table(shown, fmt)


def trials_with_choice(trials: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    """``trials.csv``: every trial, plus the chosen configuration's final-stage numbers on its row
    (the same ``stats.leaderboard`` numbers the report's table and the terminal summary show)."""
    board = stats.leaderboard(final)
    extra = pd.DataFrame(
        {
            "family": board["family"],
            "number": board["trial_number"].astype("Int64"),
            "chosen_for_test": True,
            "final_validation_mean": board["validation_mean"],
            "final_test_mean": board["mean"],
            "final_test_ci_low": board["ci_low"],
            "final_test_ci_high": board["ci_high"],
            "final_seeds": board["n"],
        }
    )
    out = trials.merge(extra, on=["family", "number"], how="left")
    out["chosen_for_test"] = out["chosen_for_test"].astype("boolean").fillna(False).astype(bool)
    out["final_seeds"] = out["final_seeds"].astype("Int64")
    return out


def _chance_rate(order: pd.DataFrame, labels: np.ndarray | None) -> float | None:
    return stats.majority_rate(labels) if labels is not None and len(labels) else None


def _rerun_commands(bench: Benchmark, final: pd.DataFrame) -> list[str]:
    """``benchmark.py rerun`` of each family's chosen configuration (the search's best trial without a
    final stage): the command that re-trains it and prints recorded vs re-obtained accuracy."""
    chosen = stats.choose(final).drop_duplicates("family").set_index("family")["trial_number"]
    best = collect.best_frame(bench, k=1).set_index("family")["number"]
    commands = []
    for family in bench.families:
        trial = chosen.get(family, best.get(family))
        if trial is not None and not pd.isna(trial):
            commands.append(
                f"python benchmark.py rerun --name {bench.name} --arch {family} --trial {int(trial)}"
            )
    return commands


def _finetune_text(record: dict[str, Any] | None) -> str | None:
    """The fine-tuned pretrained reference: how it was trained, what it scored, what it cost."""
    if not record:
        return None
    grid = ", ".join(
        f"{lr} ({stats.fmt_acc(acc)})" for lr, acc in (record.get("validation_by_lr") or {}).items()
    )
    tests = ", ".join(stats.fmt_acc(a) for a in record.get("test_accuracies") or [])
    n_params = record.get("n_params") or 0
    return (
        f"Pretrained reference: {record.get('model')} fine-tuned with its own tokenizer on the same rows "
        f"(AutoModelForSequenceClassification, {parameters_text(n_params)}; not searched, and "
        "pretrained on text outside this benchmark). Same steps, batch size, evaluation cadence, patience "
        f"and final-stage seeds as the families; learning rate {record.get('learning_rate'):g} chosen on "
        f"validation (seed {record.get('lr_selection_seed')}, whose run is also its first seed) from {grid}. "
        f"Test accuracy per seed {tests}, mean "
        f"{stats.fmt_acc(float(record.get('test_accuracy', math.nan)))}. "
        f"Cost on {record.get('device', 'CPU')}: {format_duration(record.get('seconds') or 0)} for "
        f"{len(record.get('trainings') or [])} trainings, {cell(record.get('steps_per_second'))} steps/s"
        + (
            f" (estimated at most {format_duration(record['estimated_seconds'])} before it started)."
            if record.get("estimated_seconds")
            else "."
        )
    )


def build_context(bench: Benchmark, gains: pd.DataFrame | None = None) -> dict[str, Any]:
    """Everything the template needs, as plain strings, lists and dicts (``gains``: ``tuning.for_benchmark``,
    computed here when not given)."""
    palette = figures.family_palette(bench.families)
    trials, final, baseline = collect.trials_frame(bench), collect.final_frame(bench), bench.baseline
    tuned = bench.finetune
    settings, counts = collect.settings_frame(bench), collect.counts_frame(bench)
    importance = collect.importance_frame(bench)
    no_done = "No completed trials: nothing to draw."
    versions = collect.versions_frame(bench)
    preds, labels = collect.final_predictions(bench), collect.test_labels(bench)
    gains = tuning.gains(trials, final, preds, labels) if gains is None else gains
    order = stats.ranking(final, baseline, preds, labels, tuned)
    pairs = (
        stats.pairwise(final, baseline, preds, labels, finetune=tuned) if not final.empty else pd.DataFrame()
    )
    chance = _chance_rate(order, labels)
    curves = stats.expected_max_frame(trials)
    best = collect.best_frame(bench)
    chosen = stats.choose(final)
    final_curves = collect.final_curves_frame(bench)
    if not chosen.empty and not final_curves.empty:
        keep = chosen[["family", "trial_number"]].drop_duplicates().astype({"trial_number": int})
        final_curves = final_curves.merge(keep, on=["family", "trial_number"])
    return {
        "name": bench.name,
        "families": bench.families,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "optuna_version": optuna.__version__,
        "sections": SECTIONS,
        "verdict": [
            *stats.verdict_parts(
                trials, final, baseline, preds, labels, pairs=pairs if len(pairs) else None, finetune=tuned
            ),
            *filter(None, [tuning.sentence(gains)]),
        ],
        "tuning": _tuning_table(gains),
        "glance": _figure(
            figures.accuracy_glance,
            order if (order["kind"] == "family").any() else order.iloc[:0],
            "No final test result yet: nothing to draw.",
            "test accuracy per family with 95% CI, the baseline and the chance line",
            palette=palette,
        ),
        "leaderboard": _leaderboard(trials, order),
        "pairs": _pairs_table(pairs),
        "paired": bool(len(pairs)) and (pairs["method"] == "paired bootstrap").any(),
        "chance": None if chance is None else stats.fmt_acc(chance),
        "warnings": collect.budget_check(bench),
        "budget_sentence": _budget_sentence(bench, not final.empty),
        "stopping": stopping.sentences(bench),  # --time-budget and --stop-when-converged (reports.stopping)
        "stops": table(stopping.stops_frame(bench)),
        "criterion": _figure(
            stopping.criterion_curves,
            stopping.criterion_frame(bench),
            "",
            "convergence criterion per trial",
            palette=palette,
        ),
        "has_final": not final.empty,
        "settings": _settings_table(settings),
        "best": _best_table(bench, final),
        "baseline": _baseline_text(baseline),
        "finetune": _finetune_text(tuned),
        "distribution": _figure(
            figures.validation_distribution,
            trials[trials.state == "COMPLETE"],
            no_done,
            "validation accuracy per family",
            palette=palette,
            baseline=baseline,
            chance=chance,
        ),
        "budget_aware": _figure(
            figures.expected_max_curves,
            curves,
            no_done,
            "expected best validation accuracy against number of trials",
            palette=palette,
            baseline=baseline,
            chance=chance,
        ),
        "crossings": stats.crossings(curves, baseline),
        "curse": _curse_table(best, final),
        "history": _figure(
            figures.optimization_history,
            collect.history_frame(bench),
            no_done,
            "best validation accuracy so far against trial number",
            palette=palette,
        ),
        "params": _figure(
            figures.param_scatter,
            collect.params_frame(bench),
            "No trial reported a value: nothing to draw.",
            "each hyperparameter against validation accuracy",
            palette=palette,
        ),
        "curves": (
            _figure(
                figures.final_learning_curves,
                final_curves,
                "",
                "learning curves of the final-stage runs of each family's chosen configuration",
                palette=palette,
            )
            if not final_curves.empty
            else _figure(
                figures.learning_curves,
                collect.curves_frame(bench, "best"),
                "No completed trial recorded a learning curve.",
                "learning curves of each family's best trial",
                palette=palette,
            )
        ),
        "final_curves": not final_curves.empty,
        "final": _figure(
            figures.final_accuracy,
            final,
            "No final evaluation was run (the studies hold no final_results), so nothing on this page "
            "is a test result. Re-run the final stage to compare on test.",
            "test accuracy over seeds per family and rank",
            palette=palette,
            baseline=baseline,
            chance=chance,
        ),
        "final_tables": _final_tables(final),
        "cost": _figure(
            figures.cost_scatter,
            trials[trials.state == "COMPLETE"],
            no_done,
            "validation accuracy against training time and parameter count",
            palette=palette,
        ),
        "importance": _figure(
            figures.importance_bars,
            importance[importance.importance.notna()],
            "No family has importances to show.",
            "hyperparameter importance per family",
            palette=palette,
        ),
        "importance_notes": [f"{r.family}: {r.note}" for r in importance.itertuples() if r.note],
        "counts": table(counts),
        "thin_notes": collect.thin_notes(counts),
        "failed_notes": collect.failed_notes(bench, counts),
        "counts_figure": _figure(
            figures.trial_counts, counts[counts.total > 0], "No trials yet.", "trial states per family"
        ),
        "fail_reasons": table(collect.fail_reasons_frame(bench)),
        "provenance": collect.provenance(bench),
        "reruns": _rerun_commands(bench, final),
        "versions": table(
            versions.drop(columns="same").reset_index(), highlight=~versions["same"].to_numpy()
        ),
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(context: dict[str, Any]) -> str:
    """The report page for a context from ``build_context`` (autoescaped)."""
    return _environment().get_template("report.html").render(**context)


def build_report(storage: str | optuna.storages.BaseStorage, name: str, out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html``, ``out_dir/trials.csv`` and ``out_dir/tuning.csv`` (what tuning bought
    per family) for benchmark ``name``; return the HTML path."""
    bench = collect.load_benchmark(storage, name)  # an unknown name fails before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials_with_choice(collect.trials_frame(bench), collect.final_frame(bench)).to_csv(
        out / "trials.csv", index=False
    )
    gains = tuning.for_benchmark(bench)
    gains.to_csv(out / "tuning.csv", index=False)
    page = out / "report.html"
    page.write_text(render(build_context(bench, gains)), encoding="utf-8")
    logger.info("report written to %s", page)
    return page

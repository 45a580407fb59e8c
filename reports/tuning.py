"""What tuning bought: per family, the chosen configuration against the course notes' settings.

The notes' configuration is each study's first trial (``search/reference.py``) and is re-trained
in the final stage with the chosen configuration's seeds, so both are tested on the same examples.
The gain is measured with the paired comparison the verdict uses between families
(``stats.paired_difference``: a bootstrap over seeds, then shared test examples), Holm-corrected
across the families; Welch's t on the seed accuracies when no test predictions are stored. Beside
it, how many search trials ran before a configuration first beat the notes on validation.

One frame (``gains``) feeds the terminal, ``tuning.csv``, the MLflow parent runs and the report.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from textbench.reports import stats

COLUMNS = [
    "family",
    "reference_trial",
    "reference_validation",
    "reference_mean",
    "reference_ci_low",
    "reference_ci_high",
    "chosen_trial",
    "chosen_mean",
    "chosen_ci_low",
    "chosen_ci_high",
    "seeds",
    "gain",
    "gain_ci_low",
    "gain_ci_high",
    "p_value",
    "p_holm",
    "significant",
    "method",
    "trials_to_beat",
    "trials_searched",
    "p_bound",
]
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def _reference_rows(trials: pd.DataFrame, family: str) -> pd.DataFrame:
    if "reference" not in trials.columns:
        return trials.iloc[:0]
    rows = trials[(trials["family"] == family) & (trials["reference"] == True)]  # noqa: E712 - NaN elsewhere
    return rows[rows["state"].isin(("COMPLETE", "PRUNED"))]


def trials_to_beat(trials: pd.DataFrame, family: str) -> tuple[int | None, int, float]:
    """(search trials run until one first beat the reference on validation, or None; search trials
    finished; the reference's validation accuracy). Search trials are every finished trial but the
    reference, in trial order; only a completed trial can beat it."""
    ref = _reference_rows(trials, family)
    if ref.empty:
        return None, 0, math.nan
    ref_number, ref_value = int(ref["number"].iloc[-1]), float(ref["value"].iloc[-1])
    search = trials[
        (trials["family"] == family) & (trials["number"] != ref_number) & trials["state"].isin(FINISHED)
    ].sort_values("number")
    search = search[search["reference"] != True]  # noqa: E712 - an earlier, interrupted reference is not search
    for count, (_, t) in enumerate(search.iterrows(), start=1):
        if t["state"] == "COMPLETE" and t["value"] > ref_value:
            return count, len(search), ref_value
    return None, len(search), ref_value


def _predictions(rows: pd.DataFrame, family: str, predictions: dict) -> np.ndarray | None:
    keys = [(family, int(t), int(s)) for t, s in zip(rows["trial_number"], rows["seed"], strict=True)]
    if not keys or any(k not in predictions for k in keys):
        return None
    return np.stack([predictions[k] for k in keys])


def gains(
    trials: pd.DataFrame, final: pd.DataFrame, predictions: dict | None = None, labels=None, seed: int = 0
) -> pd.DataFrame:
    """One row per family that has a reference trial (see ``COLUMNS``); test columns are NaN when
    the final stage has not run. ``gain`` is chosen minus reference, as a fraction of accuracy."""
    predictions = predictions or {}
    chosen_all = stats.choose(final) if not final.empty else final
    rows = []
    families = sorted(trials["family"].unique()) if len(trials) else []
    for family in families:
        ref_trials = _reference_rows(trials, family)
        if ref_trials.empty:
            continue
        n_beat, n_search, ref_value = trials_to_beat(trials, family)
        row = dict.fromkeys(COLUMNS, math.nan) | {
            "family": family,
            "reference_trial": int(ref_trials["number"].iloc[-1]),
            "reference_validation": ref_value,
            "chosen_trial": None,
            "significant": False,
            "method": None,
            "p_bound": False,
            "trials_to_beat": n_beat,
            "trials_searched": n_search,
            "seeds": 0,
        }
        chosen = chosen_all[chosen_all["family"] == family] if len(chosen_all) else chosen_all
        ref = final[(final["family"] == family) & final["reference"]] if len(final) else final
        if len(chosen) and len(ref):
            seeds = sorted(set(chosen["seed"]) & set(ref["seed"]))
            chosen, ref = (x[x["seed"].isin(seeds)].sort_values("seed") for x in (chosen, ref))
            c, r = (stats.summarize(x).iloc[0] for x in (chosen, ref))
            row |= {
                "chosen_trial": int(chosen["trial_number"].iloc[0]),
                "seeds": len(seeds),
                "reference_mean": r["mean"],
                "reference_ci_low": r["ci_low"],
                "reference_ci_high": r["ci_high"],
                "chosen_mean": c["mean"],
                "chosen_ci_low": c["ci_low"],
                "chosen_ci_high": c["ci_high"],
            }
            pc, pr = _predictions(chosen, family, predictions), _predictions(ref, family, predictions)
            if (
                row["chosen_trial"] == row["reference_trial"]
            ):  # the same runs: nothing gained, nothing to test
                row |= {"gain": 0.0, "gain_ci_low": 0.0, "gain_ci_high": 0.0, "method": "same configuration"}
            elif labels is not None and pc is not None and pr is not None:
                p = stats.paired_difference(pc, pr, labels, seed=seed)
                row |= {
                    "gain": p.diff,
                    "gain_ci_low": p.ci_low,
                    "gain_ci_high": p.ci_high,
                    "p_value": p.p_value,
                    "method": "paired bootstrap",
                    "p_bound": p.at_floor,
                }
            else:
                w = stats.compare(chosen["test_accuracy"], ref["test_accuracy"])
                row |= {
                    "gain": w.diff,
                    "gain_ci_low": w.ci_low,
                    "gain_ci_high": w.ci_high,
                    "p_value": w.p_value,
                    "method": "Welch t",
                }
        rows.append(row)
    out = pd.DataFrame(rows, columns=COLUMNS)
    testable = out["p_value"].notna().to_numpy()
    reject, adjusted = stats.holm(out.loc[testable, "p_value"].to_numpy(dtype=float))
    out.loc[testable, "p_holm"] = adjusted
    out.loc[testable, "significant"] = reject
    return out.astype(
        {
            "significant": bool,
            "reference_trial": "Int64",
            "chosen_trial": "Int64",
            "trials_to_beat": "Int64",
            "trials_searched": "Int64",
            "seeds": "Int64",
        }
    )


def for_benchmark(bench) -> pd.DataFrame:
    """``gains`` of a ``collect.Benchmark``: what the CLI prints and logs, and the report shows."""
    from textbench.reports import collect

    return gains(
        collect.trials_frame(bench),
        collect.final_frame(bench),
        collect.final_predictions(bench),
        collect.test_labels(bench),
    )


def points(x: float) -> str:
    """An accuracy difference in percentage points, signed, one decimal: ``+4.1``."""
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:+.1f}"


def _interval(row: pd.Series) -> str:
    if math.isnan(row["gain_ci_low"]):
        return "no CI"
    return f"95% CI {points(row['gain_ci_low'])} to {points(row['gain_ci_high'])}"


def _after(row: pd.Series) -> str:
    n = row["trials_to_beat"]
    if pd.isna(n):
        return f"though no search trial beat them on validation in {int(row['trials_searched'])}"
    return f"after {int(n)} trial{'s' if int(n) != 1 else ''}"


def clause(row: pd.Series) -> str:
    """What tuning bought for one family, as a clause of the verdict."""
    family = row["family"]
    if pd.isna(row["chosen_trial"]):
        n = row["trials_to_beat"]
        if pd.isna(n):
            return (
                f"for {family} no search trial beat the course notes' settings on validation in "
                f"{int(row['trials_searched'])} trials (no final stage, so no test gain)"
            )
        return (
            f"for {family} a search trial first beat the course notes' settings on validation after {int(n)} "
            f"trial{'s' if int(n) != 1 else ''} (no final stage, so no test gain)"
        )
    if int(row["chosen_trial"]) == int(row["reference_trial"]):
        return (
            f"for {family} the course notes' settings are themselves the chosen configuration: "
            "tuning found nothing better"
        )
    how = (
        f"{_interval(row)}, Holm-adjusted {stats.fmt_p(row['p_holm'], row['p_bound'])}"
        if not math.isnan(row["p_holm"])
        else _interval(row)
    )
    if row["significant"] and row["gain"] > 0:
        return f"tuning gained {points(row['gain'])} points for {family} ({how}) {_after(row)}"
    if row["significant"]:
        return (
            f"for {family} the chosen configuration scored {points(-row['gain'])[1:]} points below the "
            "course notes' "
            f"settings ({how})"
        )
    return f"for {family} it did not beat the course notes' settings ({points(row['gain'])} points, {how})"


def sentence(frame: pd.DataFrame) -> str | None:
    """The verdict's sentence on what tuning bought, one clause per family; None without references."""
    if frame.empty:
        return None
    text = "; ".join(clause(r) for _, r in frame.iterrows())
    how = (
        "trial 0, re-trained with the same seeds and tested on the same examples"
        if frame["chosen_trial"].notna().any()
        else "trial 0"
    )
    return f"Against the course notes' settings ({how}): {text}."


def format_table(frame: pd.DataFrame) -> str:
    """The terminal's table: the same numbers as ``tuning.csv`` and the report, rounded alike."""

    def acc(mean, lo, hi):
        if math.isnan(mean):
            return "-"
        return f"{mean:.3f}" + ("" if math.isnan(lo) else f" ({lo:.3f}-{hi:.3f})")

    lines = [
        f"{'family':<8} {'notes test (95% CI)':>22} {'chosen test (95% CI)':>22} "
        f"{'gain, points (95% CI)':>24} "
        f"{'p (Holm)':>10} {'trials to beat notes':>20}"
    ]
    for _, r in frame.iterrows():
        gain = (
            "-"
            if math.isnan(r["gain"])
            else (
                f"{points(r['gain'])}"
                + (
                    ""
                    if math.isnan(r["gain_ci_low"])
                    else f" ({points(r['gain_ci_low'])} to {points(r['gain_ci_high'])})"
                )
            )
        )
        beat = r["trials_to_beat"]
        beat = f"none of {int(r['trials_searched'])}" if pd.isna(beat) else str(int(beat))
        p = (
            "-"
            if math.isnan(r["p_holm"])
            else stats.fmt_p(r["p_holm"], r["p_bound"]).removeprefix("p = ").removeprefix("p ")
        )
        lines.append(
            f"{r['family']:<8} {acc(r['reference_mean'], r['reference_ci_low'], r['reference_ci_high']):>22} "
            f"{acc(r['chosen_mean'], r['chosen_ci_low'], r['chosen_ci_high']):>22} {gain:>24} {p:>10} "
            f"{beat:>20}"
        )
    return "\n".join(lines)

"""How sure are we: t-based confidence intervals, Welch's test, and the one-sentence verdict.

The protocol: per family, the *chosen* configuration is the final-stage config (rank) with the
highest mean validation accuracy over seeds (test is never used to select). Its test accuracies
over seeds are compared between families with Welch's t-test, which does not assume equal
variances; the difference's CI uses the Welch-Satterthwaite degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

ALPHA = 0.05
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Comparison:
    """Mean of ``a`` minus mean of ``b``, its CI and Welch p-value (NaN when not testable)."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    dof: float
    n_a: int
    n_b: int

    @property
    def testable(self) -> bool:
        return not math.isnan(self.p_value)

    @property
    def significant(self) -> bool:
        return self.testable and self.p_value < ALPHA


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, int, float, float]:
    """(mean, std, n, ci_low, ci_high) with a Student-t interval; std and CI are NaN when n < 2."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, 1, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, n, mean - half, mean + half


def summarize(final: pd.DataFrame, by: str | Sequence[str] = "family", value: str = "test_accuracy",
              bounds: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    """Per group of ``by``: mean, std, n, ci_low, ci_high of ``value`` (95% t interval).

    The interval is clipped to ``bounds``, the range of an accuracy: with 3 seeds a t interval
    around 0.99 easily reaches past 1, which no accuracy can.
    """
    keys = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, group in final.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        mean, std, n, lo, hi = mean_ci(group[value].tolist())
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])  # NaN (one seed) stays NaN
        rows.append({**dict(zip(keys, key, strict=True)), "mean": mean, "std": std, "n": n,
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=[*keys, "mean", "std", "n", "ci_low", "ci_high"])


def compare(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """Welch's t-test of mean(a) - mean(b); p and CI are NaN with < 2 values a side or no spread."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(xa.mean() - xb.mean()) if len(xa) and len(xb) else math.nan
    nan = Comparison(diff, math.nan, math.nan, math.nan, math.nan, len(xa), len(xb))
    if len(xa) < 2 or len(xb) < 2 or (xa.var(ddof=1) + xb.var(ddof=1)) == 0:
        return nan
    result = sps.ttest_ind(xa, xb, equal_var=False)
    ci = result.confidence_interval(confidence)
    return Comparison(diff, float(ci.low), float(ci.high), float(result.pvalue), float(result.df),
                      len(xa), len(xb))


def choose(final: pd.DataFrame) -> pd.DataFrame:
    """Final-stage rows of each family's chosen rank: best mean validation accuracy, ties to rank 1."""
    final = final[final["rank"].notna()]  # the course notes' reference outside the top-k is not a candidate
    if final.empty:
        return final.copy()
    means = final.groupby(["family", "rank"])["validation_accuracy"].mean().rename("val").reset_index()
    means = means.sort_values(["family", "val", "rank"], ascending=[True, False, True], kind="stable")
    picked = means.drop_duplicates("family")[["family", "rank"]]
    return final.merge(picked, on=["family", "rank"]).reset_index(drop=True)


def leaderboard(final: pd.DataFrame) -> pd.DataFrame:
    """One row per family's chosen config: test mean/std/n/CI and mean validation, best test first."""
    cols = ["family", "rank", "trial_number", "validation_mean", "mean", "std", "n", "ci_low", "ci_high"]
    chosen = choose(final)
    if chosen.empty:
        return pd.DataFrame(columns=cols)
    info = chosen.groupby("family").agg(rank=("rank", "first"), trial_number=("trial_number", "first"),
                                        validation_mean=("validation_accuracy", "mean")).reset_index()
    board = info.merge(summarize(chosen), on="family")[cols]
    return board.sort_values(["mean", "family"], ascending=[False, True], kind="stable").reset_index(drop=True)


def comparisons(final: pd.DataFrame) -> pd.DataFrame:
    """The leader's chosen config against every other family's (not corrected for multiple tests)."""
    cols = ["family", "versus", "diff", "ci_low", "ci_high", "p_value", "dof", "significant"]
    board, chosen = leaderboard(final), choose(final)
    rows = []
    for other in board["family"].iloc[1:]:
        leader = board["family"].iloc[0]
        c = compare(chosen.loc[chosen.family == leader, "test_accuracy"],
                    chosen.loc[chosen.family == other, "test_accuracy"])
        rows.append({"family": leader, "versus": other, "diff": c.diff, "ci_low": c.ci_low,
                     "ci_high": c.ci_high, "p_value": c.p_value, "dof": c.dof, "significant": c.significant})
    return pd.DataFrame(rows, columns=cols)


def fmt_acc(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.3f}"


def fmt_diff(x: float) -> str:
    """Signed, three decimals; four when it would otherwise print as a signed zero."""
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x:+.4f}" if 0 < abs(x) < 0.0005 else f"{x:+.3f}"


def fmt_p(p: float) -> str:
    """``p < 0.001`` or three significant digits (so 0.0496 never reads as 0.05)."""
    return "n/a" if p is None or math.isnan(p) else ("p < 0.001" if p < 0.001 else f"p = {p:.3g}")


def _names(families: Sequence[str]) -> str:
    return ", ".join(families[:-1]) + f" and {families[-1]}" if len(families) > 1 else "".join(families)


def _baseline_clause(row: pd.Series, baseline: dict[str, Any] | None) -> str:
    if not baseline or baseline.get("test_accuracy") is None:
        return ""
    b = float(baseline["test_accuracy"])
    margin = f"{fmt_diff(row['mean'] - b)}"
    if not math.isnan(row["ci_low"]):
        margin += f" (95% CI {fmt_diff(row['ci_low'] - b)} to {fmt_diff(row['ci_high'] - b)})"
    return (f"; {row['family']}'s margin over the {baseline.get('name', 'baseline')} baseline "
            f"({fmt_acc(b)} test accuracy) is {margin}")


def _validation_verdict(done: pd.DataFrame, families: list[str], no_final: list[str]) -> str:
    best = done.groupby("family")["value"].max().sort_values(ascending=False)
    idle = [f for f in families if f not in best.index]
    idle_note = f"; {_names(idle)} completed no trial" if idle else ""
    which = "" if set(no_final) >= set(families) else f" for {_names(no_final)}"
    if len(best) < 2:
        return (f"Only {best.index[0]} completed any trial, so nothing can be compared: its best validation "
                f"accuracy is {fmt_acc(best.iloc[0])}{idle_note}.")
    return (f"No final evaluation was run{which}: ranking by validation only, {best.index[0]} leads with a best "
            f"validation accuracy of {fmt_acc(best.iloc[0])} vs {fmt_acc(best.iloc[1])} for {best.index[1]} "
            f"(best of each search, not a test result){idle_note}.")


def verdict(trials: pd.DataFrame, final: pd.DataFrame, baseline: dict[str, Any] | None = None) -> str:
    """One sentence answering "which family wins on test, by how much, how sure", or what is missing."""
    families = sorted(trials["family"].unique()) if len(trials) else []
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    if not families:
        return "No trials have been run yet: nothing to compare."
    if done.empty:
        n_fail, n_pruned = (trials["state"] == "FAIL").sum(), (trials["state"] == "PRUNED").sum()
        return (f"No trial completed in any family ({n_fail} failed, {n_pruned} pruned): nothing to compare "
                "yet, see the trial counts and fail reasons below.")
    board = leaderboard(final)
    no_final = [f for f in families if f not in set(board["family"])]
    if len(families) == 1:
        f = families[0]
        if no_final:
            return (f"Only one family ({f}) in this benchmark and no final evaluation was run, so nothing is "
                    f"compared: its best validation accuracy is {fmt_acc(done['value'].max())}.")
        row = board.iloc[0]
        return (f"Only one family ({f}) in this benchmark, so nothing is compared: its chosen configuration "
                f"scores {fmt_acc(row['mean'])} mean test accuracy over {row['n']} seeds "
                f"(95% CI {fmt_acc(row['ci_low'])} to {fmt_acc(row['ci_high'])})"
                f"{_baseline_clause(row, baseline)}.")
    if no_final:
        return _validation_verdict(done, families, no_final)
    top, second = board.iloc[0], board.iloc[1]
    c = comparisons(final).iloc[0]
    many = len(board) >= 3
    runner = f"the runner-up {second['family']}" if many else second["family"]
    means = f"{fmt_acc(top['mean'])} vs {fmt_acc(second['mean'])}"
    interval = f"95% CI {fmt_diff(c['ci_low'])} to {fmt_diff(c['ci_high'])}, Welch {fmt_p(c['p_value'])}"
    tail = _baseline_clause(top, baseline)
    if math.isnan(c["p_value"]):
        why = "a single seed" if min(top["n"], second["n"]) < 2 else "identical scores across seeds"
        return (f"{top['family']} has the higher mean test accuracy, {means} for {runner} "
                f"({fmt_diff(c['diff'])}), but with {why} the difference cannot be tested{tail}.")
    if c["significant"]:
        among = f" among {len(board)} families" if many else ""
        return (f"{top['family']} wins on test{among}: mean test accuracy {means} for {runner}, a margin of "
                f"{fmt_diff(c['diff'])} ({interval}){tail}.")
    of_n = f" (the best two of {len(board)} families)" if many else ""
    return (f"No significant difference on test between {top['family']} and {second['family']}{of_n}: mean "
            f"test accuracy {means}, a difference of {fmt_diff(c['diff'])} ({interval} ≥ {ALPHA}){tail}.")

"""Where each family's search stopped and why: the time budget's plan and --stop-when-converged.

The studies carry it (``search.runner``, ``search.budget``, ``search.converge``): ``stop_reason``
and ``stopped_at`` on a study that stopped before ``--trials``, ``planned_trials`` and
``time_budget`` (the budget, the time spent and every plan) with ``--time-budget``, and ``converge``
(trial -> [regret bound, standard error, the best's gain over the stagnation window]) with
``--stop-when-converged``. This module turns them into a table, sentences for the budget section
(unequal trial counts are stated as the deliberate choice they are), and a figure of the criterion
per trial beside the expected-best curve.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from textbench.core.durations import format_duration
from textbench.reports.collect import Benchmark, counts_frame

REACHED = "--trials"  # the prefix of the stop reason of a search that ran to its cap


def stops_frame(bench: Benchmark) -> pd.DataFrame:
    """One row per family: trials finished, the cap, the budget's plan and why the search stopped."""
    counts = counts_frame(bench).set_index("family")
    rows = []
    for family in bench.families:
        attrs = bench.attrs(family)
        finished = (
            int(counts.loc[family, "complete"] + counts.loc[family, "pruned"])
            if family in counts.index
            else 0
        )
        rows.append(
            {
                "family": family,
                "finished trials": finished,
                "--trials": bench.settings(family).get("target_trials"),
                "planned by the budget": attrs.get("planned_trials"),
                "why it stopped": attrs.get("stop_reason") or "",
            }
        )
    return pd.DataFrame(rows)


def deliberate(reason: str | None) -> bool:
    """A search that stopped before --trials on purpose (convergence or the time budget)."""
    return bool(reason) and not str(reason).startswith(REACHED)


def sentences(bench: Benchmark) -> list[str]:
    """The budget section's sentences on time and stopping (empty when neither option was used)."""
    out = []
    record = next(
        (bench.attrs(f).get("time_budget") for f in bench.families if bench.attrs(f).get("time_budget")), None
    )
    if record:
        out.append(
            f"Time budget {format_duration(record['budget_seconds'])} for the whole benchmark (searches, "
            f"final stage, baseline, report); {format_duration(record['spent_seconds'])} spent running "
            f"before the report. It allowed {record['trials_per_family']} trials per family: "
            f"{record['reason']}."
        )
        if (record.get("final_stage") or {}).get("why"):
            out.append(f"Under the budget {record['final_stage']['why']}.")
        if len(record.get("plans", [])) > 1:
            steps = ", ".join(f"{p['trials']} after {format_duration(p['spent'])}" for p in record["plans"])
            out.append(f"The plan was recomputed as step rates were measured: {steps}.")
    stops = stops_frame(bench)
    early = stops[stops["why it stopped"].map(deliberate)]
    for row in early.itertuples(index=False):
        said = record and row[4] == f"time budget: {record['reason']}"  # the budget's reason, said above
        out.append(
            f"{row.family} stopped at {row[1]} trials" + (" under the budget." if said else f": {row[4]}.")
        )
    if stops["finished trials"].nunique() > 1 and len(early):
        out.append(
            "The families ran different numbers of trials ("
            + ", ".join(f"{r.family} {r[1]}" for r in stops.itertuples(index=False))
            + "), deliberately: each search stopped when more trials were unlikely to improve its best "
            "validation accuracy by more than the noise of the validation set; each trial's budget is "
            "the same."
        )
    return out


def criterion_frame(bench: Benchmark) -> pd.DataFrame:
    """The convergence criterion after each judged trial: family, trial, bound, error, gain (the
    best's move over the stagnation window; NaN before it is full or in a study from before it)."""
    rows = [
        {"family": family, "trial": int(number), "bound": values[0], "error": values[1]}
        | {"gain": values[2] if len(values) > 2 and values[2] is not None else float("nan")}
        for family in bench.families
        for number, values in (bench.attrs(family).get("converge") or {}).items()
    ]
    columns = ["family", "trial", "bound", "error", "gain"]
    return pd.DataFrame(rows, columns=columns).sort_values(["family", "trial"])


def criterion_curves(frame: pd.DataFrame, palette: dict[str, Any] | None = None) -> Figure:
    """The two tests of --stop-when-converged per trial against the noise they must beat: the
    Terminator's regret bound (solid), the best's gain over the stagnation window (dotted) and the
    binomial standard error (dashed); a search stops where either falls below the dashed line. A
    gain of zero (nothing better in the window) is drawn at the axis' floor."""
    fig = Figure(figsize=(8.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    palette = palette or {}
    positive = pd.concat([frame["bound"], frame["error"], frame["gain"]]).where(lambda v: v > 0).dropna()
    floor = positive.min() / 3 if len(positive) else 1e-4
    for family, part in frame.groupby("family", sort=False):
        color = palette.get(family)
        ax.plot(part["trial"], part["bound"], marker="o", ms=3, color=color, label=f"{family}: regret bound")
        if part["gain"].notna().any():
            gain = part["gain"].clip(lower=floor)
            zero = " (0: at the bottom)" if (part["gain"] <= 0).any() else ""
            label = f"{family}: best's gain in the window{zero}"
            ax.plot(part["trial"], gain, ls=":", marker=".", color=color, label=label)
        ax.plot(
            part["trial"], part["error"], ls="--", marker="x", color=color, label=f"{family}: standard error"
        )
    ax.set(xlabel="trial number", ylabel="accuracy gap (log scale)", yscale="log")
    ax.legend(fontsize="small")
    return fig

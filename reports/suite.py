"""The suite report: one offline HTML page (``suite.html``) and ``suite.csv`` for a suite of benchmarks,
one per dataset, read back from storage like each dataset's own report.

Per dataset it takes exactly what that dataset's report says (``stats.ranking``: mean test accuracy of
each family's chosen configuration with its CI and the at-chance mark, the baseline; ``stats.pairwise``:
the paired tests, Holm within the dataset; ``tuning``: what tuning bought), and puts the datasets side by
side with the cross-dataset statistics of ``suite_stats``.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from textbench.reports import collect, figures, stats, suite_stats, tuning
from textbench.reports.html import TEMPLATES, cell, table

logger = logging.getLogger(__name__)


def dataset_result(storage, name: str) -> dict[str, Any]:
    """One finished benchmark as the suite needs it: its ranking, paired tests and tuning gains."""
    bench = collect.load_benchmark(storage, name)
    final = collect.final_frame(bench)
    preds, labels = collect.final_predictions(bench), collect.test_labels(bench)
    order = stats.ranking(final, bench.baseline, preds, labels)
    pairs = stats.pairwise(final, bench.baseline, preds, labels) if not final.empty else pd.DataFrame()
    return {"order": order, "pairs": pairs, "gains": tuning.for_benchmark(bench), "families": bench.families}


def scores_frame(results: dict[str, dict]) -> pd.DataFrame:
    """Mean test accuracy: one row per dataset, one column per entry present on every dataset."""
    rows = {d: dict(zip(r["order"]["name"], r["order"]["mean"], strict=True)) for d, r in results.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    return frame.dropna(axis=1)


def _winner(result: dict) -> str:
    order, pairs = result["order"], result["pairs"]
    if order.empty:
        return "–"
    top = order.iloc[0]["name"]
    if len(order) < 2 or pairs is None or pairs.empty:
        return f"{top} (not tested)"
    second = order.iloc[1]["name"]
    row = pairs[(pairs.a == top) & (pairs.b == second)]
    if row.empty:
        return f"{top} (not tested against {second})"
    r = row.iloc[0]
    how = "ahead of" if r["significant"] else "not significantly ahead of"
    return (
        f"{top}, {how} {second} ({stats.fmt_diff(r['diff'])}, Holm {stats.fmt_p(r['p_holm'], r['p_bound'])})"
    )


def _entry_cell(row: pd.Series) -> list[str]:
    ci = (
        ""
        if math.isnan(row["ci_low"])
        else f" ({stats.fmt_acc(row['ci_low'])} to {stats.fmt_acc(row['ci_high'])})"
    )
    return [f"{stats.fmt_acc(row['mean'])}{ci}"] + (["at chance"] if row["at_chance"] is True else [])


def _png(fig) -> str:
    return base64.b64encode(figures.to_png(fig)).decode("ascii")


def cd_diagram(result) -> str | None:
    """autorank's critical-difference diagram as a base64 PNG (None when there is no rank test)."""
    if result is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import autorank
    import matplotlib.pyplot as plt

    ax = autorank.plot_stats(result, allow_insignificant=True)
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _tuning_rows(results: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for dataset, r in results.items():
        for _, g in r["gains"].iterrows():
            rows.append(
                {
                    "dataset": dataset,
                    "family": g["family"],
                    "notes' configuration": g["reference_mean"],
                    "chosen": g["chosen_mean"],
                    "gain (points)": g["gain"] * 100 if not pd.isna(g["gain"]) else math.nan,
                    "significant (Holm)": bool(g["significant"]),
                }
            )
    return pd.DataFrame(rows)


def build_context(
    storage, datasets: dict[str, str], links: dict[str, str], suite: str, rope: float, settings: list[str]
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``datasets``: dataset label -> benchmark name; ``links``: label -> its report (relative path)."""
    results = {d: dataset_result(storage, name) for d, name in datasets.items()}
    families = sorted({f for r in results.values() for f in r["families"]})
    scores = scores_frame(results)
    ranks = suite_stats.average_ranks(scores) if not scores.empty else pd.Series(dtype=float)
    fried = suite_stats.friedman(scores)
    auto = suite_stats.rank_test(scores)
    test = None
    if auto is not None:
        test = {
            "name": {"friedman": "Friedman", "anova": "repeated-measures ANOVA"}.get(
                auto.omnibus, auto.omnibus
            ),
            "p": float(auto.pvalue),
        }
    elif fried is not None:
        test = {"name": "Friedman", "p": fried[1]}
    order = list(ranks.index)
    bayes = suite_stats.bayes_pairs(scores, rope, order)
    pairs = {d: r["pairs"] for d, r in results.items() if r["pairs"] is not None and len(r["pairs"])}
    wtl = []
    for _, b in bayes.iterrows():
        w, t, lo = suite_stats.win_tie_loss(pairs, b["a"], b["b"])
        wtl.append(
            {
                "a": b["a"],
                "b": b["b"],
                "wins": w,
                "ties": t,
                "losses": lo,
                "ahead on (means)": suite_stats.ahead_count(scores, b["a"], b["b"]),
            }
        )
    headline = (
        suite_stats.headline(scores, ranks, bayes, rope, families, test)
        if len(ranks)
        else "No dataset of this suite has a final test result yet: nothing to compare."
    )
    entries = order or sorted({n for r in results.values() for n in r["order"]["name"]})
    table_rows, csv_rows = [], []
    for dataset, r in results.items():
        by_name = {row["name"]: row for _, row in r["order"].iterrows()}
        table_rows.append(
            {
                "dataset": dataset,
                **{e: (_entry_cell(by_name[e]) if e in by_name else "–") for e in entries},
                "winner (paired, Holm within the dataset)": _winner(r),
                "report": links.get(dataset, ""),
            }
        )
        for _, row in r["order"].iterrows():
            csv_rows.append(
                {
                    "suite": suite,
                    "dataset": dataset,
                    "benchmark": datasets[dataset],
                    "entry": row["name"],
                    "kind": row["kind"],
                    "mean_test_accuracy": row["mean"],
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                    "seeds": row["n"],
                    "chance_rate": row["chance_rate"],
                    "at_chance": row["at_chance"],
                    "rank_on_dataset": None,
                    "mean_rank": ranks.get(row["name"], math.nan),
                    "winner": row["name"] == r["order"].iloc[0]["name"],
                }
            )
    csv = pd.DataFrame(csv_rows)
    if len(scores):
        per = scores.apply(
            lambda row: pd.Series(suite_stats.sps.rankdata(-row.to_numpy()), index=row.index), axis=1
        )
        csv["rank_on_dataset"] = [
            per.loc[d, e] if d in per.index and e in per.columns else math.nan
            for d, e in zip(csv["dataset"], csv["entry"], strict=True)
        ]
    orders = {d: r["order"] for d, r in results.items() if len(r["order"])}
    glance = _png(figures.suite_glance(orders)) if orders else None
    tuning_frame = _tuning_rows(results)
    totals = (
        tuning_frame.groupby("family")["gain (points)"].agg(["mean", "count"]).reset_index()
        if len(tuning_frame)
        else pd.DataFrame()
    )
    context = {
        "suite": suite,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "headline": headline,
        "settings": settings,
        "rope": suite_stats.points(rope),
        "n": len(results),
        "min_datasets": suite_stats.MIN_DATASETS,
        "entries": entries,
        "rows": table_rows,
        "glance": glance,
        "ranks": [{"name": n, "rank": f"{v:.2f}"} for n, v in ranks.items()],
        "friedman": None if fried is None else {"statistic": f"{fried[0]:.3f}", "p": f"{fried[1]:.3g}"},
        "auto": None
        if auto is None
        else {
            "omnibus": auto.omnibus,
            "p": f"{auto.pvalue:.3g}",
            "posthoc": auto.posthoc,
            "cd": None if auto.cd is None else f"{auto.cd:.3f}",
            "normal": bool(auto.all_normal),
        },
        "cd_png": cd_diagram(suite_stats.rank_test(scores, force_mode="nonparametric")),
        "bayes": table(
            bayes, {c: (lambda v: cell(round(v, 3))) for c in ("p_a_better", "p_equal", "p_b_better")}
        ),
        "wtl": table(pd.DataFrame(wtl)),
        "tuning": table(tuning_frame) if len(tuning_frame) else None,
        "tuning_totals": table(totals.rename(columns={"mean": "mean gain (points)", "count": "datasets"}))
        if len(totals)
        else None,
    }
    return context, csv


def build_suite_report(
    storage, datasets: dict[str, str], out_dir: str | Path, suite: str, rope: float = 0.01, settings=()
) -> Path:
    """Write ``out_dir/suite.html`` and ``out_dir/suite.csv``; return the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    links = {}
    for dataset, name in datasets.items():
        page = out.parent / name / "report.html"
        links[dataset] = os.path.relpath(page, out) if page.exists() else ""
    context, csv = build_context(storage, datasets, links, suite, rope, list(settings))
    csv.to_csv(out / "suite.csv", index=False)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    page = out / "suite.html"
    page.write_text(env.get_template("suite.html").render(**context), encoding="utf-8")
    logger.info("suite report written to %s", page)
    return page

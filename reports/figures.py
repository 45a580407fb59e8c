"""Drawing step: one function per figure, each taking a tidy frame from ``collect`` and returning a Figure.

Figures are plain ``matplotlib.figure.Figure`` objects on an Agg canvas (no pyplot, so no global
state and no display needed), laid out with the constrained layout so 1 to 5 families never
overlap. Names from storage go through ``_plain`` so a ``$`` in them cannot start math text.
Every function expects non-empty data; the page says "nothing to draw" itself.
"""

from __future__ import annotations

import functools
import io
import math
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from textbench.reports import stats

STATE_COLORS = {"complete": "#4c9a2a", "pruned": "#e69f00", "failed": "#c0392b", "running": "#999999"}
PRUNED_COLOR = "#888888"
METRIC_TITLES = {
    "loss": "training loss",
    "eval_loss": "validation loss",
    "eval_accuracy": "validation accuracy",
}


def _style() -> dict[str, Any]:
    return {
        **sns.axes_style("whitegrid"),
        **sns.plotting_context("notebook", font_scale=0.85),
        "axes.titlesize": "medium",
        "legend.frameon": False,
    }


def styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw under the report's style; ticks are also made at save time, so ``to_png`` reuses it."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(_style()):
            return draw(*args, **kwargs)

    return wrapper


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of ``fig`` (rendered with Agg under the report style)."""
    buf = io.BytesIO()
    with mpl.rc_context(_style()):
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _plain(text: Any) -> str:
    """Show storage text literally: two unescaped ``$`` would make matplotlib parse math (and maybe fail)."""
    return str(text).replace("$", r"\$")


def _wrap(text: Any, width: int = 16) -> str:
    """Long names broken over lines so neighbouring tick labels and titles keep apart."""
    return "\n".join(_plain(line) for line in textwrap.wrap(str(text), width)) or _plain(text)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def family_palette(families: Iterable[str]) -> dict[str, Any]:
    """Stable colour per family (colour-blind safe); pass the same one to every figure."""
    names = list(dict.fromkeys(families))
    return dict(zip(names, sns.color_palette("colorblind", max(len(names), 1)), strict=False))


def _palette(frame: pd.DataFrame, palette: dict[str, Any] | None) -> dict[str, Any]:
    return palette or family_palette(sorted(frame["family"].unique()))


def _order(frame: pd.DataFrame, palette: dict[str, Any]) -> list[str]:
    present = set(frame["family"])
    return [f for f in palette if f in present]


def _legend_top(fig: Figure, handles: list, labels: list[str]) -> None:
    """One legend above the axes, in as many rows as it needs to fit the figure's width."""
    inches = sum(0.08 * len(label) + 0.6 for label in labels)  # rough width at the report's font size
    rows = max(1, math.ceil(inches / (0.95 * fig.get_figwidth())))
    fig.legend(
        handles,
        [_plain(label) for label in labels],
        loc="outside upper center",
        ncols=max(1, math.ceil(len(labels) / rows)),
    )


def _chance_line(ax, chance: float | None) -> list[Line2D]:
    """Dotted line at the majority-class rate: an accuracy on it is no better than always guessing."""
    if chance is None or math.isnan(chance):
        return []
    return [
        ax.axhline(
            chance, color="#c0392b", ls=":", lw=1.4, zorder=0, label=f"chance (majority class, {chance:.3f})"
        )
    ]


def _baseline_line(ax, baseline: dict[str, Any] | None, key: str) -> list[Line2D]:
    """Dashed reference line; its handle goes in the legend (a label on the line can hit the frame)."""
    if not baseline or baseline.get(key) is None:
        return []
    value = float(baseline[key])
    label = f"{baseline.get('name', 'baseline')} baseline ({value:.3f})"
    return [ax.axhline(value, color="0.3", ls="--", lw=1.2, zorder=0, label=label)]


@styled
def validation_distribution(
    trials: pd.DataFrame,
    palette: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
    chance: float | None = None,
) -> Figure:
    """Box + points of the validation accuracy of every completed trial, one column per family."""
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    palette = _palette(done, palette)
    order = _order(done, palette)
    fig = _figure(max(4.5, 1.3 * len(order) + 2.5), 4.0)
    ax = fig.add_subplot()
    sns.boxplot(
        data=done,
        x="family",
        y="value",
        hue="family",
        order=order,
        palette=palette,
        ax=ax,
        showfliers=False,
        width=0.5,
        boxprops={"alpha": 0.35},
        legend=False,
    )
    sns.stripplot(
        data=done,
        x="family",
        y="value",
        hue="family",
        order=order,
        palette=palette,
        ax=ax,
        size=5,
        jitter=0.15,
        edgecolor="white",
        linewidth=0.5,
        legend=False,
    )
    reference = _baseline_line(ax, baseline, "validation_accuracy") + _chance_line(ax, chance)
    if reference:
        _legend_top(fig, reference, [h.get_label() for h in reference])
    ax.set(xlabel="", ylabel="validation accuracy (best per trial)")
    ax.set_xticks(range(len(order)), [f"{_wrap(f)}\n(n={int((done.family == f).sum())})" for f in order])
    return fig


@styled
def optimization_history(history: pd.DataFrame, palette: dict[str, Any] | None = None) -> Figure:
    """Best-so-far validation accuracy of every family on one axis; dots are single trials."""
    palette = _palette(history, palette)
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    handles = []
    for family in _order(history, palette):
        part = history[history["family"] == family]
        color = palette[family]
        ax.scatter(part["number"], part["value"], color=color, s=14, alpha=0.35, lw=0)
        (line,) = ax.step(part["number"], part["best_so_far"], where="post", color=color, lw=2)
        handles.append(line)
    ax.set(xlabel="trial number", ylabel="validation accuracy")
    ax.xaxis.get_major_locator().set_params(integer=True)
    _legend_top(fig, handles, _order(history, palette))
    return fig


def _draw_param(ax, part: pd.DataFrame, color: Any) -> None:
    """One hyperparameter on one axis: completed trials as dots, pruned ones as grey crosses."""
    categorical = bool(part["categorical"].iloc[0])
    x = part["param_value"]
    if categorical:
        cats = sorted(x.astype(str).unique())
        pos = x.astype(str).map({c: i for i, c in enumerate(cats)}).to_numpy(dtype=float)
        x = pos + np.random.default_rng(0).uniform(-0.15, 0.15, len(pos))
        ax.set_xticks(range(len(cats)), [_plain(c) for c in cats])
        ax.set_xlim(-0.5, len(cats) - 0.5)
    else:
        x = pd.to_numeric(x).to_numpy(dtype=float)
    pruned = (part["state"] == "PRUNED").to_numpy()
    y = part["value"].to_numpy(dtype=float)
    ax.scatter(x[~pruned], y[~pruned], color=color, s=22, edgecolor="white", lw=0.4, zorder=3)
    ax.scatter(x[pruned], y[pruned], color=PRUNED_COLOR, marker="x", s=20, lw=1, zorder=2)
    integer = not categorical and bool(np.all(np.equal(np.mod(x, 1), 0)))
    if bool(part["log"].iloc[0]):
        _log_axis(ax.xaxis, x, integer)
    elif integer:
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(nbins=5, integer=True))


def _thin_ticks(axis, most: int = 6) -> None:
    """At most ``most`` labelled major ticks on a log axis (1-2-5 ticks over decades collide)."""
    lo, hi = axis.axes.get_xlim()  # triggers the pending autoscale
    decades = math.log10(hi / lo) if lo > 0 else 1.0
    if decades > 1.5:  # decades only, every k-th one when there are many
        axis.set_major_locator(mpl.ticker.LogLocator(base=10, numticks=most))
    else:
        axis.set_major_locator(mpl.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=most))
        axis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(mpl.ticker.NullLocator())
    axis.set_minor_formatter(mpl.ticker.NullFormatter())


def _log_axis(axis, x: np.ndarray, integer: bool) -> None:
    """Log scale whose labels never collide: decades when the data span them, else 2^k or 1-2-5 ticks."""
    axis.axes.set_xscale("log")
    axis.set_minor_locator(mpl.ticker.NullLocator())  # unlabelled minor ticks cost more than they show
    if len(x) and x.min() > 0 and x.max() / x.min() < 30:
        axis.set_major_locator(
            mpl.ticker.LogLocator(base=2) if integer else mpl.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0))
        )
        axis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))


@styled
def param_scatter(params: pd.DataFrame, palette: dict[str, Any] | None = None) -> Figure:
    """One axis per (family, hyperparameter): value vs validation accuracy; rows are families."""
    palette = _palette(params, palette)
    order = _order(params, palette)
    names = {f: sorted(params.loc[params.family == f, "param"].unique()) for f in order}
    ncols = max(len(v) for v in names.values())
    fig = _figure(max(2.6 * ncols, 6.0), 2.5 * len(order) + 0.5)
    # one y-range per family (row): a shared one flattens a family whose trials span a narrow band
    axes = np.atleast_2d(fig.subplots(len(order), ncols, sharey="row", squeeze=False))
    for row_axes in axes:  # a fixed tick count: "auto" follows the axis height, which the layout changes
        row_axes[0].yaxis.set_major_locator(mpl.ticker.MaxNLocator(nbins=5))
    for row, family in enumerate(order):
        for col in range(ncols):
            ax = axes[row, col]
            if col >= len(names[family]):
                ax.set_visible(False)
                continue
            param = names[family][col]
            _draw_param(ax, params[(params.family == family) & (params.param == param)], palette[family])
            ax.set_title(_wrap(param, 24))
            ax.set_ylabel(f"{_wrap(family, 20)}\nvalidation accuracy" if col == 0 else "")
            ax.tick_params(axis="x", labelrotation=0)
    handles = [
        Line2D([], [], ls="", marker="o", color="0.35", label="complete (colour = family)"),
        Line2D([], [], ls="", marker="x", color=PRUNED_COLOR, label="pruned (last reported value)"),
    ]
    _legend_top(fig, handles, [h.get_label() for h in handles])
    return fig


def _metric_panels(curves: pd.DataFrame, palette: dict[str, Any] | None):
    """One panel per metric present in ``curves`` (loss, accuracy ...), side by side."""
    metrics = [m for m in METRIC_TITLES if m in set(curves["metric"])]
    fig = _figure(max(4.2 * len(metrics), 5.0), 3.8)
    return _palette(curves, palette), metrics, fig, fig.subplots(1, len(metrics), squeeze=False)[0]


@styled
def learning_curves(curves: pd.DataFrame, palette: dict[str, Any] | None = None) -> Figure:
    """Training loss, validation loss and validation accuracy against step for each family's best trial."""
    palette, metrics, fig, axes = _metric_panels(curves, palette)
    handles, labels = [], []
    for family in _order(curves, palette):
        part = curves[curves["family"] == family]
        for ax, metric in zip(axes, metrics, strict=True):
            m = part[part["metric"] == metric].sort_values("step")
            if len(m):
                (line,) = ax.plot(
                    m["step"],
                    m["value"],
                    color=palette[family],
                    lw=1.8,
                    marker="o" if len(m) < 15 else None,
                    ms=3,
                )
        handles.append(Line2D([], [], color=palette[family], lw=2))
        labels.append(f"{family} (trial {int(part['number'].iloc[0])})")
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set(title=METRIC_TITLES[metric], xlabel="step", ylabel="")
    _legend_top(fig, handles, labels)
    return fig


@styled
def expected_max_curves(
    curves: pd.DataFrame,
    palette: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
    chance: float | None = None,
) -> Figure:
    """Expected best validation accuracy against number of trials (mean and +-1 sd band) per family."""
    palette = _palette(curves, palette)
    fig = _figure(8.0, 4.4)
    ax = fig.add_subplot()
    handles, labels = [], []
    for family in _order(curves, palette):
        part = curves[curves["family"] == family].sort_values("n")
        color = palette[family]
        (line,) = ax.plot(
            part["n"], part["mean"], color=color, lw=2, marker="o" if len(part) < 12 else None, ms=3
        )
        ax.fill_between(
            part["n"], part["mean"] - part["std"], part["mean"] + part["std"], color=color, alpha=0.15, lw=0
        )
        handles.append(line)
        labels.append(family)
    reference = _baseline_line(ax, baseline, "validation_accuracy") + _chance_line(ax, chance)
    handles += reference
    labels += [h.get_label() for h in reference]
    ax.set(xlabel="number of trials n", ylabel="expected best validation accuracy")
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    _legend_top(fig, handles, labels)
    return fig


@styled
def final_learning_curves(curves: pd.DataFrame, palette: dict[str, Any] | None = None) -> Figure:
    """Loss and accuracy against step for each family's chosen configuration: mean over the
    final-stage seeds (line) and their range (band)."""
    palette, metrics, fig, axes = _metric_panels(curves, palette)
    handles, labels = [], []
    for family in _order(curves, palette):
        part = curves[curves["family"] == family]
        for ax, metric in zip(axes, metrics, strict=True):
            m = (
                part[part["metric"] == metric]
                .groupby("step")["value"]
                .agg(["mean", "min", "max"])
                .reset_index()
            )
            if len(m):
                ax.plot(
                    m["step"],
                    m["mean"],
                    color=palette[family],
                    lw=1.8,
                    marker="o" if len(m) < 15 else None,
                    ms=3,
                )
                ax.fill_between(m["step"], m["min"], m["max"], color=palette[family], alpha=0.18, lw=0)
        handles.append(Line2D([], [], color=palette[family], lw=2))
        labels.append(f"{family} (trial {int(part['trial_number'].iloc[0])}, {part['seed'].nunique()} seeds)")
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set(title=METRIC_TITLES[metric], xlabel="step", ylabel="")
    _legend_top(fig, handles, labels)
    return fig


@styled
def final_accuracy(
    final: pd.DataFrame,
    palette: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
    chance: float | None = None,
) -> Figure:
    """Test accuracy per family and config rank: one dot per seed, mean with a 95% t interval.

    The chosen config (best mean validation) is drawn filled; the others hollow. The interval is
    the same ``stats.summarize`` one printed in the tables, not a seaborn bootstrap.
    """
    palette = _palette(final, palette)
    summary = stats.summarize(final, by=["family", "rank"])
    chosen = set(map(tuple, stats.choose(final)[["family", "rank"]].drop_duplicates().to_numpy()))
    ticks, labels, groups, x = [], [], [], 0.0
    fig = _figure(max(7.5, 0.85 * len(summary) + 2.5), 4.4)  # at least as wide as the legend
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for family in _order(final, palette):
        start = x
        for _, row in summary[summary["family"] == family].iterrows():
            color = palette[family]
            is_chosen = (family, row["rank"]) in chosen
            seeds = final[(final.family == family) & (final["rank"] == row["rank"])]["test_accuracy"]
            ax.scatter(
                x + rng.uniform(-0.12, 0.12, len(seeds)) + 0.18, seeds, color=color, s=14, alpha=0.6, lw=0
            )
            yerr = (
                None
                if math.isnan(row["ci_low"])
                else [[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]]
            )
            ax.errorbar(
                [x],
                [row["mean"]],
                yerr=yerr,
                fmt="o",
                ms=8,
                capsize=5,
                lw=1.8,
                color=color,
                mfc=color if is_chosen else "white",
                mew=1.8,
            )
            ticks.append(x)
            labels.append(f"rank {int(row['rank'])}" + (" *" if is_chosen else ""))
            x += 1.0
        groups.append(((start + x - 1.0) / 2, _wrap(family, max(int(9 * (x - start)), 8))))
        x += 0.5
    reference = _baseline_line(ax, baseline, "test_accuracy") + _chance_line(ax, chance)
    ax.set_xticks(ticks, labels)
    names = ax.secondary_xaxis("bottom")  # family names centred under their group of ranks
    names.set_xticks([g[0] for g in groups], [g[1] for g in groups], fontweight="bold")
    names.tick_params(length=0, pad=22)
    names.spines["bottom"].set_visible(False)
    ax.set(ylabel="test accuracy", xlim=(-0.6, x - 0.9))
    ax.grid(axis="x", visible=False)
    handles = [
        Line2D([], [], ls="", marker="o", ms=8, color="0.3", label="chosen config (*): mean, 95% CI"),
        Line2D([], [], ls="", marker="o", ms=8, color="0.3", mfc="white", label="other ranks: mean, 95% CI"),
        Line2D([], [], ls="", marker="o", ms=4, color="0.3", alpha=0.6, label="one seed"),
    ]
    handles += reference
    _legend_top(fig, handles, [h.get_label() for h in handles])
    return fig


@styled
def cost_scatter(trials: pd.DataFrame, palette: dict[str, Any] | None = None) -> Figure:
    """Validation accuracy of completed trials against wall-clock training time and parameter count."""
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    palette = _palette(done, palette)
    fig = _figure(10.0, 4.0)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, column, label in (
        (axes[0], "wall_seconds", "training time (s)"),
        (axes[1], "n_params", "parameters"),
    ):
        x = pd.to_numeric(done[column], errors="coerce")
        for family in _order(done, palette):
            mask = (done["family"] == family) & x.notna()
            ax.scatter(
                x[mask], done.loc[mask, "value"], color=palette[family], s=24, edgecolor="white", lw=0.4
            )
        positive = x[x > 0]
        if len(positive) and positive.max() / positive.min() > 20:
            ax.set_xscale("log")
            _thin_ticks(ax.xaxis)
        if column == "n_params":
            ax.xaxis.set_major_formatter(mpl.ticker.EngFormatter(sep=""))
        ax.set(xlabel=label + (" (no data)" if x.notna().sum() == 0 else ""))
    axes[0].set_ylabel("validation accuracy")
    order = _order(done, palette)
    _legend_top(fig, [Line2D([], [], ls="", marker="o", color=palette[f]) for f in order], order)
    return fig


@styled
def importance_bars(importance: pd.DataFrame, palette: dict[str, Any] | None = None) -> Figure:
    """PED-ANOVA importance per family (one axis each, params sorted by importance)."""
    scored = importance[importance["importance"].notna()]
    palette = _palette(scored, palette)
    order = _order(scored, palette)
    ncols = min(len(order), 3)
    nrows = math.ceil(len(order) / ncols)
    tallest = scored.groupby("family").size().max()
    fig = _figure(max(4.0 * ncols, 5.0), nrows * (0.38 * tallest + 1.3))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, family in zip(axes, order, strict=False):
        part = scored[scored["family"] == family].sort_values("importance")
        ax.barh(range(len(part)), part["importance"], color=palette[family])
        ax.set_yticks(range(len(part)), [_plain(p) for p in part["param"]])
        ax.set(title=_plain(family), xlim=(0, 1), xlabel="importance (share of variance)")
        ax.grid(axis="y", visible=False)
    for ax in axes[len(order) :]:
        ax.set_visible(False)
    return fig


@styled
def trial_counts(counts: pd.DataFrame) -> Figure:
    """Stacked bars of complete / pruned / failed / running trials per family."""
    fig = _figure(7.5, 0.45 * len(counts) + 1.4)
    ax = fig.add_subplot()
    left = np.zeros(len(counts))
    families = counts["family"].tolist()[::-1]
    data = counts.set_index("family").loc[families]
    for state, color in STATE_COLORS.items():
        values = data[state].to_numpy(dtype=float)
        if values.sum() > 0:
            ax.barh(range(len(families)), values, left=left, color=color, label=state, height=0.6)
            left += values
    ax.set_yticks(range(len(families)), [_plain(f) for f in families])
    ax.set(xlabel="trials")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", visible=False)
    handles, labels = ax.get_legend_handles_labels()
    _legend_top(fig, handles, labels)
    return fig


def _glance_panel(ax, order: pd.DataFrame, palette: dict[str, Any], title: str | None = None) -> None:
    """One dataset's entries (``stats.ranking``): mean test accuracy with its 95% CI, best on top,
    the baseline as a grey square, the fine-tuned pretrained reference as a dark diamond, the
    majority-class rate as a dashed line."""
    order = order.iloc[::-1].reset_index(drop=True)
    for y, row in order.iterrows():
        color = {"baseline": "0.45", "pretrained": "0.15"}.get(row["kind"]) or palette.get(row["name"], "0.3")
        marker = {"baseline": "s", "pretrained": "D"}.get(row["kind"], "o")
        err = (
            None
            if math.isnan(row["ci_low"])
            else [[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]]
        )
        ax.errorbar([row["mean"]], [y], xerr=err, fmt=marker, ms=7, capsize=4, color=color)
        mark = " (at chance)" if row["at_chance"] is True else ""
        ax.annotate(
            f"{row['mean']:.3f}{mark}",
            (row["mean"], y),
            xytext=(0, 7),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            color=color,
        )
    ax.set_yticks(range(len(order)), [_plain(n) for n in order["name"]])
    ax.set_ylim(-0.6, len(order) - 0.3)
    chance = order["chance_rate"].dropna()
    if len(chance):
        ax.axvline(float(chance.iloc[0]), color="0.4", ls="--", lw=1)
    ax.set_xlabel("test accuracy")
    if title:
        ax.set_title(_plain(title))


@styled
def accuracy_glance(order: pd.DataFrame, palette: dict[str, Any] | None = None) -> Figure:
    """The verdict at a glance: test accuracy per family with its 95% CI, the baseline and the chance
    line (the majority-class rate, dashed)."""
    palette = palette or family_palette(order.loc[order.kind == "family", "name"])
    fig = _figure(6.5, 0.45 * len(order) + 1.3)
    _glance_panel(fig.add_subplot(), order, palette)
    return fig


@styled
def suite_glance(orders: dict[str, pd.DataFrame], palette: dict[str, Any] | None = None) -> Figure:
    """``accuracy_glance`` for every dataset of a suite, one panel each (dashed: chance)."""
    names = sorted({n for o in orders.values() for n in o.loc[o.kind == "family", "name"]})
    palette = palette or family_palette(names)
    cols = min(3, len(orders))
    rows = math.ceil(len(orders) / cols)
    height = max(len(o) for o in orders.values()) * 0.45 + 1.4
    fig = _figure(4.2 * cols, height * rows)
    for i, (dataset, order) in enumerate(orders.items()):
        _glance_panel(fig.add_subplot(rows, cols, i + 1), order, palette, dataset)
    return fig

"""The drawing step: every figure draws for 1 and 5 families and no two pieces of text overlap."""

import itertools

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from textbench.reports import collect, figures, stats

try:
    from tests.test_reports_fixtures import make_benchmark, sqlite_storage
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from test_reports_fixtures import make_benchmark, sqlite_storage

# a long name, and a "$" pair that matplotlib would parse as math unless escaped
FAMILIES = {1: ("cnn",), 5: ("cnn", "gru", "lstm", r"rnn $\unknown$", "a-rather-long-family-name")}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def bench(request, tmp_path_factory):
    url, store = sqlite_storage(tmp_path_factory.mktemp("figures") / "s.db")
    make_benchmark(store, "figs", FAMILIES[request.param], n_trials=8)
    return collect.load_benchmark(url, "figs")


def drawings(bench):
    palette = figures.family_palette(bench.families)
    trials = collect.trials_frame(bench)
    return {
        "validation_distribution": figures.validation_distribution(
            trials, palette, bench.baseline, chance=0.5
        ),
        "expected_max_curves": figures.expected_max_curves(
            stats.expected_max_frame(trials), palette, bench.baseline, chance=0.5
        ),
        "final_learning_curves": figures.final_learning_curves(collect.final_curves_frame(bench), palette),
        "optimization_history": figures.optimization_history(collect.history_frame(bench), palette),
        "param_scatter": figures.param_scatter(collect.params_frame(bench), palette),
        "learning_curves": figures.learning_curves(collect.curves_frame(bench), palette),
        "final_accuracy": figures.final_accuracy(
            collect.final_frame(bench), palette, bench.baseline, chance=0.5
        ),
        "cost_scatter": figures.cost_scatter(trials, palette),
        "importance_bars": figures.importance_bars(collect.importance_frame(bench), palette),
        "trial_counts": figures.trial_counts(collect.counts_frame(bench)),
    }


def overlaps(fig):
    """Pairs of visible, non-empty texts (ticks, titles, labels, legend) whose boxes intersect,
    and texts cut off by the figure's edge (paired with "outside")."""
    with mpl.rc_context(figures._style()):
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for legend in fig.legends for t in legend.get_texts()]
    for ax in [ax for ax in fig.axes if ax.get_visible()]:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        frame = ax.get_window_extent(renderer)
        # tick labels as drawn: matplotlib keeps labels of ticks outside the view, undrawn
        texts += [
            t
            for t in ax.get_xticklabels(which="both")
            if frame.x0 - 1
            <= t.get_window_extent(renderer).x0 / 2 + t.get_window_extent(renderer).x1 / 2
            <= frame.x1 + 1
        ]
        texts += [
            t
            for t in ax.get_yticklabels(which="both")
            if frame.y0 - 1
            <= t.get_window_extent(renderer).y0 / 2 + t.get_window_extent(renderer).y1 / 2
            <= frame.y1 + 1
        ]
    texts = [t for t in texts if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer).padded(-1)) for t in texts]
    page = fig.bbox.padded(1)
    outside = [
        (a, "outside")
        for a, box in boxes
        if not (page.contains(box.x0, box.y0) and page.contains(box.x1, box.y1))
    ]
    return outside + [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


def test_every_figure_draws_without_overlapping_text(bench):
    for name, fig in drawings(bench).items():
        assert isinstance(fig, Figure), name
        assert overlaps(fig) == [], name


def test_to_png(bench):
    assert figures.to_png(figures.trial_counts(collect.counts_frame(bench)))[:4] == b"\x89PNG"


def test_palette_is_stable_across_figures():
    palette = figures.family_palette(["cnn", "rnn", "gru"])
    assert list(palette) == ["cnn", "rnn", "gru"]
    assert figures.family_palette(["cnn", "rnn"])["rnn"] == palette["rnn"]


def test_dollar_signs_in_names_do_not_become_math():
    assert figures._plain("a $x$ b") == r"a \$x\$ b"


def test_final_accuracy_with_one_seed_has_no_interval_but_draws():
    final = pd.DataFrame(
        {
            "family": ["cnn", "rnn"],
            "rank": [1, 1],
            "seed": [0, 0],
            "trial_number": [3, 4],
            "test_accuracy": [0.80, 0.70],
            "validation_accuracy": [0.81, 0.71],
        }
    )
    fig = figures.final_accuracy(final, baseline={"name": "tfidf-logreg", "test_accuracy": 0.75})
    assert overlaps(fig) == []


def test_cost_scatter_without_recorded_times():
    trials = pd.DataFrame(
        {
            "family": ["cnn"] * 3,
            "state": ["COMPLETE"] * 3,
            "value": [0.80, 0.81, 0.82],
            "wall_seconds": [None] * 3,
            "n_params": [1_000, 20_000, 300_000],
        }
    )
    fig = figures.cost_scatter(trials)
    assert fig.axes[0].get_xlabel().endswith("(no data)") and fig.axes[1].get_xscale() == "log"


@pytest.mark.parametrize("low, high", [(30, 700), (3, 900), (2e4, 5e5), (1e3, 1e8)])
def test_cost_scatter_log_ticks_never_collide(low, high):
    """Spans of one to five decades: matplotlib's default log axis labels 2..9 minor ticks over ~1 decade."""
    rng = np.random.default_rng(0)
    n = 40
    trials = pd.DataFrame(
        {
            "family": rng.choice(["cnn", "rnn", "gru"], n),
            "state": "COMPLETE",
            "value": rng.uniform(0.5, 0.9, n),
            "wall_seconds": np.geomspace(low, high, n),
            "n_params": np.geomspace(low * 100, high * 100, n),
        }
    )
    fig = figures.cost_scatter(trials)
    assert overlaps(fig) == []
    assert all(ax.get_xscale() == "log" for ax in fig.axes)


def test_final_learning_curves_band_spans_the_seeds():
    curves = pd.DataFrame(
        [
            {
                "family": "cnn",
                "trial_number": 4,
                "seed": s,
                "step": st,
                "metric": "eval_accuracy",
                "value": 0.6 + 0.1 * s + 0.01 * st,
            }
            for s in range(3)
            for st in (10, 20)
        ]
    )
    fig = figures.final_learning_curves(curves)
    ax = fig.axes[0]
    mean = ax.lines[0].get_ydata()
    assert list(mean) == pytest.approx([0.8, 0.9])  # mean over seeds 0.6/0.7/0.8 (+0.1, +0.2)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.7) and band.max() == pytest.approx(1.0)  # min and max seed
    assert "3 seeds" in fig.legends[0].get_texts()[0].get_text()


def test_param_scatter_gives_each_family_its_own_y_range():
    """cnn spans 0.80-0.90, rnn 0.50-0.52: on one shared axis rnn would be a flat strip."""
    rows = [
        {
            "family": f,
            "number": i,
            "state": "COMPLETE",
            "param": "lr",
            "param_value": 10.0**-i,
            "value": lo + (hi - lo) * i / 4,
            "log": True,
            "categorical": False,
        }
        for f, lo, hi in (("cnn", 0.80, 0.90), ("rnn", 0.50, 0.52))
        for i in range(5)
    ]
    fig = figures.param_scatter(pd.DataFrame(rows))
    (cnn_lo, cnn_hi), (rnn_lo, rnn_hi) = (ax.get_ylim() for ax in fig.axes[:2])
    assert cnn_lo > 0.7 and rnn_hi < 0.6  # each row zoomed on its own family
    assert (rnn_hi - rnn_lo) < 0.05

"""One set of numbers: terminal summary, trials.csv and the report agree; chance, crossings, winner's
curse."""

import html
import math
import re

import numpy as np
import optuna
import pandas as pd
import pytest

from textbench.reports import build_report, collect, figures, stats
from textbench.reports.summary import format_summary, summary_rows

try:
    from tests.test_reports_fixtures import BASELINE, fixture_labels, make_benchmark, sqlite_storage
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from test_reports_fixtures import BASELINE, fixture_labels, make_benchmark, sqlite_storage


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verdict")
    url, store = sqlite_storage(tmp / "studies.db")
    studies = make_benchmark(store, "agree", ("cnn", "dummy", "rnn"), n_trials=8, predictions=True)
    # rnn's rank 2 re-trains better on validation: its chosen configuration is not the search's best
    records = studies["rnn"].user_attrs["final_results"]
    studies["rnn"].set_user_attr(
        "final_results", [dict(r, validation_accuracy=0.99) if r["rank"] == 2 else r for r in records]
    )
    with pytest.MonkeyPatch.context() as patch:  # figures are drawn but not rasterized: these tests read text
        patch.setattr(figures, "to_png", lambda fig: b"")
        page = build_report(url, "agree", tmp / "report")
    return studies, page.read_text(encoding="utf-8"), pd.read_csv(tmp / "report" / "trials.csv")


def ranking_table(text):
    """The verdict section's table as rows of cell texts."""
    section = text[
        text.index('<section id="verdict"') : text.index("</section>", text.index('<section id="verdict"'))
    ]
    body = section[section.index("<tbody>") : section.index("</tbody>")]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr.*?>(.*?)</tr>", body, re.S)
    ]


def test_terminal_csv_and_report_name_the_same_chosen_configuration_and_test_mean(bench):
    studies, text, csv = bench
    baseline = studies["cnn"].user_attrs["baseline"]
    rows = {r["arch"]: r for r in summary_rows(studies, baseline)}
    terminal = {
        line.split()[0]: line.split() for line in format_summary(list(rows.values())).splitlines()[1:-1]
    }
    report = {r[1].removesuffix(" (baseline)"): r for r in ranking_table(text)}
    chosen_csv = csv[csv["chosen_for_test"]].set_index("family")
    assert set(chosen_csv.index) == {"cnn", "dummy", "rnn"}
    for family in ("cnn", "dummy", "rnn"):
        # the chosen configuration: highest final-stage validation mean, not the search's best trial
        records = pd.DataFrame(studies[family].user_attrs["final_results"])
        by_rank = records.groupby("rank").agg(
            val=("validation_accuracy", "mean"),
            test=("test_accuracy", "mean"),
            trial=("trial_number", "first"),
        )
        expected = by_rank.sort_values("val", ascending=False, kind="stable").iloc[0]
        assert (expected.name == 2) == (family == "rnn")  # the fixture tells "chosen" from "search best"
        assert rows[family]["chosen_trial"] == expected["trial"] == chosen_csv.loc[family, "number"]
        assert report[family][2] == str(int(expected["trial"])) == terminal[family][2]
        assert chosen_csv.loc[family, "final_test_mean"] == pytest.approx(expected["test"])
        assert terminal[family][4] == f"{expected['test']:.4f}"
        assert report[family][4] == f"{expected['test']:.3f}"
        lo, hi = chosen_csv.loc[family, ["final_test_ci_low", "final_test_ci_high"]]
        if family == "dummy":  # every seed predicts the majority class: no spread, no interval
            assert (
                math.isnan(lo)
                and terminal[family][5] == "-"
                and report[family][7] == "none: all 3 seeds equal"
            )
        else:
            assert (
                terminal[family][5] == f"{lo:.3f}-{hi:.3f}" and report[family][7] == f"{lo:.3f} to {hi:.3f}"
            )
    assert terminal["tfidf-logreg"][4] == f"{baseline['test_accuracy']:.4f}"
    assert report["tfidf-logreg"][4] == f"{baseline['test_accuracy']:.3f}"


def test_a_family_at_chance_is_labelled_in_the_verdict_and_table(bench):
    _, text, _ = bench
    table = {r[1]: r for r in ranking_table(text)}
    assert table["dummy"][-1] == "no: at chance"
    assert table["cnn"][-1] == "yes" and table["rnn"][-1] == "yes"
    verdict = html.unescape(re.search(r'<p class="sentence">(.*?)</p>', text, re.S).group(1))
    assert "dummy 0.550 (all 3 seeds equal, at chance)" in verdict
    assert "dummy is at chance: not above the majority-class rate of 0.550" in html.unescape(text)


def test_the_report_uses_the_paired_bootstrap_with_holm(bench):
    studies, text, _ = bench
    page = " ".join(html.unescape(text).split())
    assert "hierarchical bootstrap" in page and "Holm-adjusted p" in page
    bench_ = collect.load_benchmark(studies["cnn"]._storage, "agree")
    pairs = stats.pairwise(
        collect.final_frame(bench_),
        bench_.baseline,
        collect.final_predictions(bench_),
        collect.test_labels(bench_),
    )
    assert len(pairs) == 6 and set(pairs["method"]) == {
        "paired bootstrap"
    }  # 3 families + baseline, every pair
    assert (pairs["p_holm"] >= pairs["p_value"]).all()
    assert np.array_equal(collect.test_labels(bench_), fixture_labels())


def test_crossing_sentence_matches_the_closed_form():
    # a: half its trials at 0.5, half at 0.95 -> E[best of n] = 0.5 + 0.45 (1 - 0.5^n): 0.725 at n=1,
    # 0.8375 at n=2
    # b: every trial 0.8. b leads with 1 trial, a from 2 trials on.
    trials = pd.DataFrame(
        [
            {"family": "a", "number": i, "state": "COMPLETE", "value": v}
            for i, v in enumerate([0.5] * 5 + [0.95] * 5)
        ]
        + [{"family": "b", "number": i, "state": "COMPLETE", "value": 0.8} for i in range(10)]
    )
    curves = stats.expected_max_frame(trials)
    a = curves[curves.family == "a"].set_index("n")["mean"]
    assert (
        a[1] == pytest.approx(0.725)
        and a[2] == pytest.approx(0.8375)
        and a[10] == pytest.approx(0.5 + 0.45 * (1 - 0.5**10))
    )
    assert stats.crossings(curves) == [
        "With fewer than 2 trials, b would have been ahead of a (expected best validation accuracy)."
    ]
    sentences = stats.crossings(curves, {"name": "tfidf", "validation_accuracy": 0.9})
    # a passes 0.9 from n = 4 (0.5 + 0.45 * (1 - 1/16) = 0.92), not at n = 3 (0.894)
    assert (
        "With fewer than 4 trials, the tfidf baseline would have been ahead of a on validation." in sentences
    )
    assert stats.crossings(curves[curves.family == "b"]) == []


def test_winners_curse_puts_the_search_score_beside_the_final_mean():
    best = pd.DataFrame({"family": ["cnn", "cnn"], "rank": [1, 2], "number": [7, 3], "value": [0.90, 0.88]})
    final = pd.DataFrame(
        [
            {
                "family": "cnn",
                "rank": r,
                "trial_number": t,
                "seed": s,
                "validation_accuracy": v,
                "test_accuracy": 0.8,
            }
            for r, t, vs in ((1, 7, (0.84, 0.86)), (2, 3, (0.87, 0.87)))
            for s, v in enumerate(vs)
        ]
    )
    curse = stats.winners_curse(best, final)
    row = curse.iloc[0]
    assert row["trial_number"] == 3 and row["search_validation"] == 0.88  # rank 2 has the better final mean
    assert row["final_validation_mean"] == pytest.approx(0.87) and row["drop"] == pytest.approx(-0.01)


def test_summary_without_a_final_stage_shows_the_search_best_and_no_test():
    study = optuna.create_study(direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            value=0.7, params={"x": 1.0}, distributions={"x": optuna.distributions.FloatDistribution(0, 2)}
        )
    )
    rows = summary_rows({"cnn": study}, None)
    assert rows[0]["chosen_trial"] == 0 and rows[0]["test_mean"] is None
    assert "no final stage" in format_summary(rows)
    assert math.isnan(stats.mean_ci([])[0])


def test_ranking_without_a_baseline_or_predictions():
    final = pd.DataFrame(
        [
            {
                "family": f,
                "rank": 1,
                "trial_number": 1,
                "seed": s,
                "validation_accuracy": 0.8,
                "test_accuracy": a,
            }
            for f, accs in (("cnn", (0.8, 0.82)), ("rnn", (0.7, 0.72)))
            for s, a in enumerate(accs)
        ]
    )
    board = stats.ranking(final)
    assert board["name"].tolist() == ["cnn", "rnn"] and board["at_chance"].isna().all()
    assert BASELINE["name"] not in stats.verdict(
        pd.DataFrame({"family": ["cnn", "rnn"], "number": [1, 1], "state": "COMPLETE", "value": 0.8}), final
    )


def test_baseline_on_the_edge_of_its_grid_is_flagged():
    from textbench.reports.html import _baseline_text

    record = {**BASELINE, "C": 10000.0, "C_grid": [0.01, 1.0, 100.0, 10000.0], "C_at_edge": True}
    assert "sits at the edge of that grid even after widening it" in _baseline_text(record)
    assert "edge" not in _baseline_text({**record, "C": 1.0, "C_at_edge": False})


def test_an_unnamed_baseline_that_beats_every_family_is_named_once():
    final = pd.DataFrame(
        [
            {
                "family": "cnn",
                "rank": 1,
                "trial_number": 1,
                "seed": s,
                "validation_accuracy": 0.7,
                "test_accuracy": a,
            }
            for s, a in enumerate((0.70, 0.72))
        ]
    )
    trials = pd.DataFrame({"family": ["cnn"], "number": [1], "state": "COMPLETE", "value": 0.7})
    text = stats.verdict(trials, final, {"test_accuracy": 0.9, "validation_accuracy": 0.9})
    assert text.startswith(
        "The baseline beats the only family on test; ranking by mean test accuracy of each "
        "family's chosen configuration: baseline 0.900, cnn 0.710"
    )
    assert "baseline baseline" not in text
    with_baseline = stats.ranking(final, {"test_accuracy": 0.9})
    assert list(with_baseline.columns) == list(stats.ranking(final).columns)  # its row adds no column
    assert with_baseline.iloc[0][["kind", "n"]].tolist() == ["baseline", 1] and math.isnan(
        with_baseline.iloc[0]["ci_low"]
    )

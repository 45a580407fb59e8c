"""Statistics on known inputs: t intervals, Welch's test, the chosen configuration and the verdict."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from textbench.reports import stats

T_975_DF4 = 2.7764451051977987  # Student t quantile 0.975 with 4 degrees of freedom (tables: 2.776)


def test_mean_ci_by_hand():
    mean, std, n, lo, hi = stats.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    half = T_975_DF4 * math.sqrt(2.5) / math.sqrt(5)  # sample std of 1..5 is sqrt(2.5)
    assert (mean, n) == (3.0, 5)
    assert std == pytest.approx(math.sqrt(2.5))
    assert (lo, hi) == pytest.approx((3 - half, 3 + half))
    assert (lo, hi) == pytest.approx((1.0368, 4.9632), abs=1e-4)


def test_mean_ci_degenerate():
    assert math.isnan(stats.mean_ci([0.8])[1]) and stats.mean_ci([0.8])[:1] == (0.8,)
    assert stats.mean_ci([])[2] == 0


def test_welch_equal_variances_by_hand():
    c = stats.compare([0.85, 0.86, 0.87], [0.80, 0.81, 0.82])
    se = math.sqrt(2 * 1e-4 / 3)
    assert c.diff == pytest.approx(0.05)
    assert c.dof == pytest.approx(4.0)  # Welch-Satterthwaite with equal n and variances: 2(n-1)
    assert c.p_value == pytest.approx(2 * sps.t.sf(0.05 / se, 4))
    assert c.p_value == pytest.approx(0.00360, abs=5e-5)
    assert (c.ci_low, c.ci_high) == pytest.approx((0.05 - T_975_DF4 * se, 0.05 + T_975_DF4 * se))
    assert c.significant


def test_welch_unequal_variances_matches_formula_and_scipy():
    a, b = np.array([0.90, 0.84, 0.87, 0.93]), np.array([0.85, 0.86, 0.855])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    c = stats.compare(a, b)
    assert c.dof == pytest.approx(dof)
    assert c.p_value == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    half = sps.t.ppf(0.975, dof) * math.sqrt(va + vb)
    assert (c.ci_low, c.ci_high) == pytest.approx((c.diff - half, c.diff + half))
    assert c.ci_low < 0 < c.ci_high and not c.significant


def test_compare_untestable_cases_give_nan_not_errors():
    assert not stats.compare([0.8], [0.7, 0.71]).testable
    c = stats.compare([0.8, 0.8], [0.7, 0.7])  # no spread at all
    assert c.diff == pytest.approx(0.1) and math.isnan(c.p_value) and not c.significant


def final_rows(family, rank, trial, val, tests):
    return [
        {
            "family": family,
            "rank": rank,
            "trial_number": trial,
            "seed": s,
            "validation_accuracy": val,
            "test_accuracy": t,
        }
        for s, t in enumerate(tests)
    ]


def frame(*groups):
    return pd.DataFrame([row for g in groups for row in final_rows(*g)])


def test_summarize_per_family_and_rank():
    df = frame(("cnn", 1, 4, 0.9, [0.85, 0.86, 0.87]), ("cnn", 2, 9, 0.8, [0.80, 0.80, 0.83]))
    s = stats.summarize(df, by=["family", "rank"])
    assert list(s.columns) == ["family", "rank", "mean", "std", "n", "ci_low", "ci_high"]
    assert s["mean"].tolist() == pytest.approx([0.86, 0.81])
    assert s["n"].tolist() == [3, 3]
    assert stats.summarize(df)["mean"].tolist() == pytest.approx([0.835])
    empty = stats.summarize(df.iloc[:0])  # no final stage yet: the report's tables still have their columns
    assert empty.empty and list(empty.columns) == ["family", "mean", "std", "n", "ci_low", "ci_high"]


def test_summarize_clips_the_interval_to_the_accuracy_range():
    s = stats.summarize(frame(("cnn", 1, 4, 0.99, [0.98, 1.0, 1.0])))
    assert s["ci_high"].iloc[0] == 1.0 and s["ci_low"].iloc[0] < s["mean"].iloc[0] < 1.0
    assert math.isnan(stats.summarize(frame(("cnn", 1, 4, 0.99, [0.98])))["ci_high"].iloc[0])


def test_choose_uses_mean_validation_never_test():
    df = frame(
        ("cnn", 1, 4, 0.88, [0.80, 0.80, 0.81]),  # best validation, worse test
        ("cnn", 2, 9, 0.87, [0.90, 0.91, 0.92]),
        ("rnn", 1, 2, 0.85, [0.84, 0.85, 0.86]),  # tie on validation -> lower rank
        ("rnn", 2, 3, 0.85, [0.95, 0.95, 0.96]),
    )
    chosen = stats.choose(df).drop_duplicates("family").set_index("family")["rank"].to_dict()
    assert chosen == {"cnn": 1, "rnn": 1}
    board = stats.leaderboard(df)
    assert board.columns.tolist() == [
        "family",
        "rank",
        "trial_number",
        "validation_mean",
        "mean",
        "std",
        "n",
        "ci_low",
        "ci_high",
    ]
    assert board["family"].tolist() == ["rnn", "cnn"]  # ranked by the chosen configs' test means
    assert board["mean"].tolist() == pytest.approx([0.85, 0.8033333])


def trials(families, completed=True):
    rows = []
    for i, f in enumerate(families):
        rows += [
            {
                "family": f,
                "number": n,
                "state": "COMPLETE" if completed else "FAIL",
                "value": (0.8 + 0.01 * i + 0.001 * n) if completed else None,
            }
            for n in range(3)
        ]
    return pd.DataFrame(rows)


def test_verdict_significant_winner_with_numbers_from_the_table():
    df = frame(("cnn", 1, 1, 0.88, [0.85, 0.86, 0.87]), ("rnn", 1, 2, 0.83, [0.80, 0.81, 0.82]))
    text = stats.verdict(trials(["cnn", "rnn"]), df)
    c = stats.compare(
        [0.85, 0.86, 0.87], [0.80, 0.81, 0.82]
    )  # no predictions stored: Welch, Holm over 1 test
    assert text.startswith("Ranking by mean test accuracy of each family's chosen configuration: cnn 0.860")
    assert "cnn is ahead of rnn by" in text
    for number in (
        "0.860",
        "0.810",
        stats.fmt_diff(c.diff),
        stats.fmt_diff(c.ci_low),
        stats.fmt_diff(c.ci_high),
        stats.fmt_p(c.p_value),
    ):
        assert number in text


def test_verdict_not_significant_says_so():
    df = frame(("cnn", 1, 1, 0.88, [0.85, 0.80, 0.87]), ("rnn", 1, 2, 0.83, [0.84, 0.81, 0.83]))
    text = stats.verdict(trials(["cnn", "rnn"]), df)
    assert "no significant difference between cnn and rnn" in text


def test_verdict_three_families_ranks_all_with_the_baseline():
    df = frame(
        ("cnn", 1, 1, 0.88, [0.85, 0.86, 0.87]),
        ("gru", 1, 2, 0.85, [0.83, 0.835, 0.84]),
        ("rnn", 1, 3, 0.83, [0.80, 0.81, 0.82]),
    )
    baseline = {"name": "tfidf-logreg", "test_accuracy": 0.84, "validation_accuracy": 0.85}
    parts = stats.verdict_parts(trials(["cnn", "gru", "rnn"]), df, baseline)
    first = parts[0]
    order = [first.index(n) for n in ("cnn 0.860", "tfidf-logreg baseline 0.840", "gru 0.835", "rnn 0.810")]
    assert order == sorted(order) and first.endswith(".")
    assert "beats" not in first


def test_verdict_first_sentence_says_the_baseline_beats_every_family():
    df = frame(("cnn", 1, 1, 0.6, [0.60, 0.62, 0.64]), ("rnn", 1, 2, 0.5, [0.50, 0.50]))
    baseline = {"name": "tfidf-logreg", "test_accuracy": 0.80, "validation_accuracy": 0.8}
    parts = stats.verdict_parts(trials(["cnn", "rnn"]), df, baseline)
    assert parts[0].startswith("The tfidf-logreg baseline beats all 2 families on test")
    assert (
        parts[0].index("tfidf-logreg baseline 0.800")
        < parts[0].index("cnn 0.620")
        < parts[0].index("rnn 0.500")
    )
    assert "rnn 0.500 (all 2 seeds equal)" in parts[0]  # no degenerate "0.500 to 0.500" interval
    assert any("With only 2 seeds per configuration" in p and "no seed-level conclusion" in p for p in parts)


def test_verdict_labels_a_family_at_chance_from_predictions():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 300 + [1] * 200)
    good = np.where(rng.random((3, 500)) < 0.85, labels, 1 - labels)
    df = pd.DataFrame(
        final_rows("cnn", 1, 1, 0.85, (good == labels).mean(1))
        + final_rows("rnn", 1, 2, 0.6, [0.6, 0.6, 0.6])
    )
    preds = {("cnn", 1, s): good[s] for s in range(3)} | {("rnn", 2, s): np.zeros(500, int) for s in range(3)}
    board = stats.ranking(df, None, preds, labels)
    assert board.set_index("name")["at_chance"].to_dict() == {"cnn": False, "rnn": True}
    assert board["chance_rate"].tolist() == [0.6, 0.6]
    text = stats.verdict(trials(["cnn", "rnn"]), df, None, preds, labels)
    assert "rnn 0.600 (all 3 seeds equal, at chance)" in text
    assert "rnn is at chance: not above the majority-class rate of 0.600" in text
    assert "paired on the same test examples" in text
    pairs = stats.pairwise(df, None, preds, labels)
    assert pairs["method"].tolist() == ["paired bootstrap"] and bool(pairs["significant"].iloc[0])
    reseeded = stats.pairwise(df, None, preds, labels, seed=1)  # the seed reaches the bootstrap
    assert (
        reseeded["diff"].iloc[0] == pairs["diff"].iloc[0]
        and reseeded["ci_low"].iloc[0] != pairs["ci_low"].iloc[0]
    )
    unknown = stats.ranking(df)  # no predictions: chance is unknown (None), not False
    assert unknown["at_chance"].tolist() == [None, None] and unknown["chance_p"].isna().all()


def test_verdict_without_final_results_ranks_by_validation_only():
    text = stats.verdict(trials(["cnn", "rnn"]), frame())
    assert text.startswith("No final evaluation was run: ranking by validation only, rnn leads")
    partial = stats.verdict(trials(["cnn", "rnn"]), frame(("cnn", 1, 1, 0.88, [0.85, 0.86, 0.87])))
    assert partial.startswith("No final evaluation was run for rnn")


def test_verdict_single_family_and_nothing_completed():
    one = stats.verdict(trials(["cnn"]), frame(("cnn", 1, 1, 0.88, [0.85, 0.86, 0.87])))
    assert one.startswith("Only one family (cnn)") and "0.860" in one
    assert "no final evaluation" in stats.verdict(trials(["cnn"]), frame())
    assert stats.verdict(trials(["cnn", "rnn"], completed=False), frame()) == (
        "No trial completed in any family (6 failed, 0 pruned): nothing to compare yet, see the trial counts "
        "and fail reasons below."
    )
    empty = pd.DataFrame(columns=["family", "number", "state", "value"])
    assert stats.verdict(empty, frame()).startswith("No trials have been run yet")


def test_verdict_single_seed_cannot_be_tested():
    df = frame(("cnn", 1, 1, 0.88, [0.85]), ("rnn", 1, 2, 0.83, [0.80]))
    text = stats.verdict(trials(["cnn", "rnn"]), df)
    assert "not testable" in text and "With a single seed per configuration" in text


def test_mean_ci_with_tied_seeds_has_no_interval_and_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, std, n, lo, hi = stats.mean_ci([0.35, 0.35, 0.35])
        assert (mean, std, n) == (pytest.approx(0.35), 0.0, 3) and math.isnan(lo) and math.isnan(hi)
        assert not stats.compare([0.35, 0.35, 0.35], [0.35, 0.35, 0.35]).testable


def test_p_value_format_never_rounds_across_the_threshold():
    assert stats.fmt_p(0.0496) == "p = 0.0496"
    assert stats.fmt_p(0.0004) == "p < 0.001"
    assert stats.fmt_diff(-0.0003) == "-0.0003"


def test_expected_max_skips_missing_values_and_edge_budgets():
    # best of 2 draws from {0.5, 0.7}: 0.7 unless both draws are 0.5 (1/4): 0.25 * 0.5 + 0.75 * 0.7 = 0.65
    assert stats.expected_max([0.5, None, math.nan, 0.7], 2)[0] == pytest.approx(0.65)
    assert stats.expected_max([0.6], 3) == (
        pytest.approx(0.6),
        pytest.approx(0.0),
    )  # one value: it, no spread
    assert all(math.isnan(x) for x in stats.expected_max([0.5, 0.7], 0))  # no draw, no best
    assert all(math.isnan(x) for x in stats.expected_max([None, math.nan], 2))


def test_expected_max_frame_counts_completed_trials_only_per_family_in_order():
    rows = [
        ("rnn", "COMPLETE", 0.6),
        ("rnn", "COMPLETE", 0.8),
        ("rnn", "PRUNED", 0.9),
        ("rnn", "FAIL", None),
        ("cnn", "COMPLETE", 0.7),
        ("cnn", "RUNNING", None),
    ]
    trials = pd.DataFrame(
        [{"family": f, "number": i, "state": s, "value": v} for i, (f, s, v) in enumerate(rows)]
    )
    curves = stats.expected_max_frame(trials)
    assert list(curves.columns) == ["family", "n", "mean", "std"]
    assert list(zip(curves["family"], curves["n"], strict=True)) == [("cnn", 1), ("rnn", 1), ("rnn", 2)]
    # rnn from {0.6, 0.8} (the pruned 0.9 is not a result): n=1 mean 0.7, sd 0.1; n=2: 0.25*0.6 + 0.75*0.8
    assert curves["mean"].tolist() == pytest.approx([0.7, 0.7, 0.75])
    assert curves["std"].tolist() == pytest.approx([0.0, 0.1, math.sqrt(0.25 * 0.15**2 + 0.75 * 0.05**2)])
    assert stats.expected_max_frame(trials[trials.state == "FAIL"]).columns.tolist() == [
        "family",
        "n",
        "mean",
        "std",
    ]


def test_crossings_need_a_strict_lead_and_name_an_unnamed_baseline_plainly():
    curves = pd.DataFrame(
        [
            {"family": f, "n": n, "mean": m, "std": 0.0}
            for f, ms in (("a", (0.80, 0.85, 0.90)), ("b", (0.80, 0.82, 0.84)))
            for n, m in enumerate(ms, 1)
        ]
    )
    assert stats.crossings(curves) == []  # b equals a at n = 1: a tie is not "ahead"
    assert (
        stats.crossings(curves, {"validation_accuracy": 0.80}) == []
    )  # level with the baseline is not below it
    assert stats.crossings(curves, {"validation_accuracy": 0.845}) == [
        "With fewer than 2 trials, the baseline would have been ahead of a on validation."
    ]  # b never passes it
    assert stats.crossings(curves, {"validation_accuracy": 0.84, "name": "tfidf"}) == [
        "With fewer than 2 trials, the tfidf baseline would have been ahead of a on validation."
    ]  # b only ties it


def test_winners_curse_keeps_a_chosen_configuration_missing_from_the_search_table():
    final = pd.DataFrame(
        [
            {
                "family": "cnn",
                "rank": 1,
                "trial_number": 4,
                "seed": s,
                "validation_accuracy": v,
                "test_accuracy": 0.8,
            }
            for s, v in enumerate((0.82, 0.84))
        ]
    )
    cols = ["family", "trial_number", "search_validation", "final_validation_mean", "n", "drop"]
    other = pd.DataFrame({"family": ["cnn"], "number": [9], "value": [0.9]})
    curse = stats.winners_curse(other, final)
    assert list(curse.columns) == cols and len(curse) == 1
    assert curse["final_validation_mean"].iloc[0] == pytest.approx(0.83) and math.isnan(curse["drop"].iloc[0])
    for empty in (stats.winners_curse(other.iloc[:0], final), stats.winners_curse(other, final.iloc[:0])):
        assert empty.empty and list(empty.columns) == cols


def test_validation_only_verdicts_name_every_family_and_the_numbers():
    rows = [("cnn", 0.802), ("cnn", 0.79), ("rnn", 0.812), ("gru", None), ("lstm", None)]
    trials = pd.DataFrame(
        [
            {"family": f, "number": i, "state": "COMPLETE" if v else "FAIL", "value": v}
            for i, (f, v) in enumerate(rows)
        ]
    )
    text = stats.verdict(trials, frame())
    assert text == (
        "No final evaluation was run: ranking by validation only, rnn leads with a best validation "
        "accuracy of 0.812 vs 0.802 for cnn (best of each search, not a test result); gru and lstm "
        "completed no trial."
    )
    alone = stats.verdict(trials[trials.family != "rnn"], frame())
    assert alone == (
        "Only cnn completed any trial, so nothing can be compared: its best validation accuracy is "
        "0.802; gru and lstm completed no trial."
    )
    three = stats.verdict(trials.replace({"gru": "cnn"}), frame())
    assert three.endswith("(best of each search, not a test result); lstm completed no trial.")
    assert stats._names(["a", "b", "c"]) == "a, b and c" and stats._names(["a"]) == "a"


def test_an_empty_ranking_still_has_its_columns():
    assert stats.ranking(frame()).columns.tolist() == stats.RANKING_COLUMNS
    assert stats.ranking(frame()).empty

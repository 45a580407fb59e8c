"""The rendered page: every section, inline images only, escaped storage text, and the degenerate cases."""

import base64
import html
import re
import statistics

import optuna
import pandas as pd
import pytest

from textbench.reports import build_report, figures
from textbench.reports.html import SECTIONS, cell

try:
    from tests.test_reports_fixtures import make_benchmark, make_study, sqlite_storage
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from test_reports_fixtures import make_benchmark, make_study, sqlite_storage

HOSTILE = "<script>alert(1)</script>"
ONE_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def quick_png(monkeypatch):
    """Figures are still drawn (a drawing error would show) but not rasterized: these tests read text."""
    monkeypatch.setattr(figures, "to_png", lambda fig: ONE_PIXEL_PNG)


def build(tmp_path, name, families=("cnn", "rnn"), **kwargs):
    url, store = sqlite_storage(tmp_path / "studies.db")
    make_benchmark(store, name, families, **kwargs)
    page = build_report(url, name, tmp_path / "report")
    return url, page, page.read_text(encoding="utf-8")


def verdict_of(page_html):
    return html.unescape(re.search(r'<p class="sentence">(.*?)</p>', page_html, re.S).group(1))


def assert_every_section(page_html):
    for key, title in SECTIONS.items():
        assert f'<section id="{key}"' in page_html
        assert f"<h2>{html.escape(title)}</h2>" in page_html, title
    positions = [page_html.index(f'<section id="{key}"') for key in SECTIONS]
    assert positions == sorted(positions)  # in the promised order


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build(tmp_path_factory.mktemp("report"), "imdb-small", n_trials=10)


def test_full_report_has_every_section_and_ten_inline_pngs(report):
    """Nine figures in the sections, and the at-a-glance figure at the top of the verdict."""
    _, page, text = report
    assert page.name == "report.html"
    assert_every_section(text)
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 10
    verdict = text[text.index('<section id="verdict"') : text.index('<section id="budget"')]
    assert 'alt="test accuracy per family with 95% CI, the baseline and the chance line"' in verdict
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "could not be drawn" not in text


def test_report_fetches_nothing(report):
    _, _, text = report
    assert "<script" not in text.lower()
    for attr in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert attr.startswith(("data:", "#")), attr
    assert "default-src 'none'" in text  # CSP: even a missed escape could not load or run anything


def chosen_by_hand(url: str, name: str) -> dict[str, tuple[int, list[float]]]:
    """family -> (trial number, test accuracies) of its chosen configuration, read from the stored
    final results without reports.stats: the rank with the highest mean validation accuracy over
    its seeds (ties: the better rank)."""
    out = {}
    for summary in optuna.get_all_study_summaries(url, include_best_trial=False):
        if summary.user_attrs.get("benchmark") != name:
            continue
        by_rank: dict[int, list[dict]] = {}
        for record in summary.user_attrs["final_results"]:
            if record.get("rank") is None:  # the course notes' reference, re-trained beside the top-k
                continue
            by_rank.setdefault(record["rank"], []).append(record)
        rank = min(by_rank, key=lambda k: (-statistics.mean(r["validation_accuracy"] for r in by_rank[k]), k))
        out[summary.user_attrs["arch"]] = (
            by_rank[rank][0]["trial_number"],
            [r["test_accuracy"] for r in by_rank[rank]],
        )
    return out


def test_verdict_names_the_family_with_the_higher_mean_test_accuracy(report):
    url, _, text = report
    means = {
        family: statistics.mean(tests) for family, (_, tests) in chosen_by_hand(url, "imdb-small").items()
    }
    winner, runner_up = sorted(means, key=means.get, reverse=True)
    sentence = verdict_of(text)
    assert sentence.index(winner) < sentence.index(runner_up), sentence
    assert f"{means[winner]:.3f}" in sentence and f"{means[runner_up]:.3f}" in sentence
    for mean in means.values():
        assert f"<td>{mean:.3f}</td>" in text  # the numbers the verdict quotes are in the table
    assert "tfidf-logreg" in text


def test_trials_csv_beside_the_html(report):
    _, page, _ = report
    df = pd.read_csv(page.parent / "trials.csv")
    assert len(df) == 20
    assert list(df.columns[:4]) == ["family", "number", "state", "value"]
    assert "params_learning_rate" in df.columns and "curves" not in df.columns
    assert set(df["state"]) == {"COMPLETE", "PRUNED", "FAIL"}


def test_storage_text_is_escaped(tmp_path, quick_png):
    url, store = sqlite_storage(tmp_path / "s.db")
    for family in ("cnn", "<b>rnn</b> $x$"):
        make_study(store, HOSTILE, family, n_trials=6, labels=[HOSTILE, "pos & neg"])
    text = build_report(url, HOSTILE, tmp_path / "out").read_text()
    assert "<script" not in text.lower() and "<b>rnn</b>" not in text and "<b>x</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;rnn&lt;/b&gt; $x$" in text
    assert "pos &amp; neg" in text
    assert "could not be drawn" not in text  # "$x$" in a family name is drawn as text, not math


def test_zero_completed_trials(tmp_path, quick_png):
    _, _, text = build(tmp_path, "broken", n_trials=4, pruned=(), failed=(0, 1, 2, 3), final=False)
    assert_every_section(text)
    assert verdict_of(text).startswith("No trial completed in any family (8 failed, 0 pruned)")
    assert "No completed trials: nothing to draw." in text
    assert "CUDA out of memory &lt;b&gt;x&lt;/b&gt;" in text  # the fail reason, escaped
    assert "needs at least 2 completed trials (has 0)" in text
    failed = text[text.index('id="failed-families"') :]
    assert "cnn: FAILED: no trial completed (4 failed" in failed  # failed, not "thin"
    assert 'id="thin-search"' not in text


def test_single_family(tmp_path, quick_png):
    _, _, text = build(tmp_path, "solo", families=("cnn",), n_trials=6)
    assert_every_section(text)
    assert verdict_of(text).startswith(
        "Ranking by mean test accuracy of each family's chosen configuration: cnn "
    )
    assert text.count("<img ") == 10  # nine figures and the at-a-glance one in the verdict


def test_no_final_results(tmp_path, quick_png):
    _, _, text = build(tmp_path, "nofinal", n_trials=6, final=False, baseline=None)
    assert_every_section(text)
    assert verdict_of(text).startswith("No final evaluation was run: ranking by validation only")
    assert "Re-run the final stage to compare on test." in text
    assert "best validation (not test)" in text


def test_empty_studies(tmp_path, quick_png):
    _, _, text = build(tmp_path, "fresh", n_trials=0, final=False)
    assert_every_section(text)
    assert verdict_of(text).startswith("No trials have been run yet")
    assert "<img " not in text


def test_unequal_budgets_are_flagged_loudly(tmp_path, quick_png):
    url, store = sqlite_storage(tmp_path / "s.db")
    make_study(store, "unfair", "cnn", n_trials=6, max_steps=1000)
    make_study(store, "unfair", "rnn", n_trials=6, max_steps=200)
    text = build_report(url, "unfair", tmp_path / "out").read_text()
    assert 'class="warning"' in text and "setting &#39;max_steps&#39; differs" in text
    assert text.index('class="warning"') < text.index('<section id="budget"')


def test_five_families(tmp_path, quick_png):
    _, _, text = build(
        tmp_path, "many", families=("cnn", "gru", "lstm", "rnn", "tiny"), n_trials=5, pruned=(3,), failed=()
    )
    assert_every_section(text)
    assert text.count("<img ") == 10 and "could not be drawn" not in text
    first = verdict_of(text)
    means = [float(m) for m in re.findall(r"(?:cnn|gru|lstm|rnn|tiny|baseline) (0\.\d{3})", first)]
    assert len(means) == 6 and means == sorted(
        means, reverse=True
    )  # five families and the baseline, best first


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "–"),
        (pd.NA, "–"),
        (float("nan"), "–"),
        (True, "yes"),
        (25000, "25,000"),
        (1000.0, "1,000"),
        (12345.6, "12,346"),
        (0.000312, "3.12e-04"),
        (0.8712345, "0.8712"),
        ("<b>", "<b>"),
    ],
)
def test_cell_format(value, text):
    assert cell(value) == text  # strings pass through: the template escapes them


def test_chosen_configuration_is_highlighted_in_best_table(report):
    url, _, text = report
    best = re.search(r'<section id="best">(.*?)</section>', text, re.S).group(1)
    chosen = {(family, number) for family, (number, _) in chosen_by_hand(url, "imdb-small").items()}
    assert best.count('<tr class="hl">') == len(chosen) == 2
    for row in re.findall(r'<tr class="hl">(.*?)</tr>', best, re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        assert (cells[0], int(cells[2])) in chosen


def test_the_data_sentence_says_where_splits_came_from_and_what_was_dropped():
    from textbench.reports.html import _data_sentence

    raw = {
        "train_from": "train.tsv",
        "validation_from": "dev.tsv",
        "test_from": "test.tsv",
        "dropped_rows": {"train": {"no label": 2, "empty text": 0}, "test": {"no label": 0, "empty text": 1}},
    }
    assert _data_sentence(raw) == (
        " Splits: train: train.tsv; validation: dev.tsv; test: test.tsv. Rows dropped "
        "before splitting: train: 2 without a label; test: 1 with an empty text."
    )
    assert (
        _data_sentence({"train_from": "a.csv", "dropped_rows": {}})
        == " Splits: train: a.csv. No row was dropped."
    )
    assert _data_sentence({}) == ""  # studies recorded before these settings existed


def test_a_thin_search_is_flagged_with_its_counts_and_steps(tmp_path, quick_png):
    url, store = sqlite_storage(tmp_path / "s.db")
    make_study(store, "thin", "cnn", n_trials=10, pruned=(), failed=())
    make_study(store, "thin", "rnn", n_trials=10, pruned=tuple(range(9)), failed=())
    text = html.unescape(build_report(url, "thin", tmp_path / "out").read_text())
    alert = text[text.index('id="thin-search"') :]
    alert = alert[: alert.index("</div>")]
    assert "rnn: the search was thin: 1 of 10 finished trials completed (9 pruned, 0 failed)" in alert
    assert "cnn:" not in alert
    assert text.index('id="thin-search"') < text.index('<section id="budget"')
    assert "steps trained</th>" in text


def test_no_thin_search_alert_when_every_family_completed_enough(report):
    assert 'id="thin-search"' not in report[2]

"""The suite's plan, with no training: a TOML suite file's datasets and their own columns/caps, the
same search and budget for all, names SUITE-DATASET, and the file's mistakes as one error each; the
progress line's ETA from the time per dataset so far."""

from __future__ import annotations

import pytest

from textbench.core.errors import UsageError
from textbench.core.settings import DataSettings
from textbench.search.search_settings import SearchSettings
from textbench.search.spent import SpentClock
from textbench.suite import SuiteSettings, budget_share, dataset_name, plan, progress_line


def test_a_suite_file_sets_each_datasets_own_columns_and_caps(tmp_path):
    (tmp_path / "ag").mkdir()
    (tmp_path / "five.toml").write_text(
        'name = "news"\n'
        '[[dataset]]\npath = "ag"\nname = "agnews"\nno_header = true\ntext_column = "1,2"\n'
        'label_column = "0"\nlabel_names = "World,Sports,Business,Sci/Tech"\nmax_train_samples = 100\n'
        '[[dataset]]\npath = "imdb"\n'
    )
    search = SearchSettings(trials=3, output_dir=str(tmp_path / "out"), mlflow=False)
    data = DataSettings(max_eval_samples=50)
    suite, members = plan(SuiteSettings(suite=str(tmp_path / "five.toml")), search, data, None)
    assert suite == "news"
    (a, sa, da), (b, sb, db) = members
    assert (a, sa.name, da.dataset) == ("agnews", "news-agnews", str(tmp_path / "ag"))  # relative to the file
    assert (da.no_header, da.text_column, da.label_column, da.max_train_samples) == (True, "1,2", "0", 100)
    assert da.label_names == "World,Sports,Business,Sci/Tech" and da.max_eval_samples == 50
    assert (b, sb.name, db.dataset, db.max_train_samples, db.no_header) == (
        "imdb",
        "news-imdb",
        "imdb",
        None,
        False,
    )
    assert sa.trials == sb.trials == 3  # the search applies to all alike
    suite, _ = plan(SuiteSettings(suite=str(tmp_path / "five.toml")), search, data, "mine")
    assert suite == "mine"  # --name wins over the file's name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[dataset]]\npath = "a"\ncolumns = "x"\n', "unknown key 'columns'"),
        ('[[dataset]]\nname = "a"\n', "dataset 1: no path"),
        ('name = "x"\n', "lists no datasets"),
        ("[[dataset]\n", "cannot read suite file"),
        ('[[dataset]]\npath = "a/x.csv"\n[[dataset]]\npath = "b/x.csv"\nname = "a-x"\n', "name 'a-x' twice"),
    ],
)
def test_suite_file_mistakes_are_one_error(tmp_path, text, expected):
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(UsageError) as info:
        plan(
            SuiteSettings(suite=str(tmp_path / "s.toml")), SearchSettings(mlflow=False), DataSettings(), None
        )
    assert expected in str(info.value)


def test_names_and_the_progress_line():
    assert dataset_name("imdb") == "imdb"
    assert dataset_name("/d/sms_spam/SMSSpamCollection") == "SMSSpamCollection"
    assert dataset_name("ag_news/test.csv") == "ag_news-test"
    assert (
        progress_line("s", 1, 5, "imdb", 0, [])
        == "suite s: dataset 1 of 5 (imdb), elapsed 0m00s, ETA after the first"
    )
    # two datasets took 60 s and 120 s: 90 s each for datasets 3, 4 and 5 -> 270 s
    assert progress_line("s", 3, 5, "x", 185, [60, 120]).endswith(
        "dataset 3 of 5 (x), elapsed 3m05s, ETA 4m30s"
    )
    with pytest.raises(UsageError, match="exactly one of --datasets"):
        SuiteSettings(datasets="a", suite="b.toml")


def test_a_suite_budget_is_shared_out_and_passes_on_what_a_dataset_left(tmp_path):
    """--time-budget 15m over three datasets: 5m for the first; it ran 200 s, so the other two share
    900 - 200 = 700 s (350 s each); the second ran 400 s, so the third gets 900 - 600 = 300 s. The
    shares read the datasets' own running-time files, so a resumed suite gets the same ones."""
    search = SearchSettings(trials=3, output_dir=str(tmp_path / "out"), mlflow=False, time_budget="15m")
    members = [
        (n, SearchSettings(name=f"s-{n}", output_dir=str(tmp_path / "out"), mlflow=False), None)
        for n in ("a", "b", "c")
    ]
    assert budget_share(search.time_budget, members, 1) == pytest.approx(300)
    write_spent(members[0][1].run_dir, 200)
    assert budget_share(search.time_budget, members, 2) == pytest.approx(350)
    write_spent(members[1][1].run_dir, 400)
    assert budget_share(search.time_budget, members, 3) == pytest.approx(300)
    assert budget_share(search.time_budget, members, 2) == pytest.approx(350)  # resumed: the same share


def write_spent(run_dir, seconds):
    clock = SpentClock(run_dir, clock=iter([0.0, float(seconds)]).__next__)
    clock.start()
    clock.save()

"""Bad input through the real CLI, every subcommand in one table: exit code 2, one ``error: `` line
naming the problem and the fix, no traceback, and nothing left behind (no file added or changed
under the output folder, no study or trial in the Optuna storage, no MLflow run).

To add a case: one ``Case`` row in ``CASES`` with its ``command`` (``search``, ``train``, ``report``,
or a new subcommand with its lean arguments in ``BASE_ARGS``), the arguments that make it bad and
the fragments the error line must contain. Most cases call ``benchmark.main(argv)`` in this process
(seconds each, stderr from capsys); the ones marked ``subprocess`` run ``python benchmark.py`` to
prove the real exit code and stderr.
Every case runs with MLflow on (SQLite under its own output folder), so "no MLflow run" is checked
for real wherever the command gets that far.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    default_storage,
    error_lines,
    load_study,
    make_frame,
    mlflow_runs,
    run_cli,
    search_args,
    study_names,
    write_frame,
)

NAME = "bad"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...] = ()  # added after the command's lean defaults (argparse: the last value wins)
    expect: tuple[str, ...] = ()  # fragments of the error line: the problem and the fix
    prepare: Callable[[Path, Path, Path], list[str]] | None = (
        None  # (tmp, output dir, tiny data) -> more args
    )
    subprocess: bool = False
    max_seconds: float | None = None  # wall time of the failing command (in process)
    absent: tuple[str, ...] = ()  # must not appear in stderr (e.g. a password)
    command: str = "search"  # a key of BASE_ARGS
    untouched: bool = False  # refused before any data or storage: no store, cache or MLflow file at all
    data: bool = False  # bad data: refused before torch, transformers and datasets are imported


# ---------------------------------------------------------------- bad data builders


def _folder(
    tmp: Path, train: pd.DataFrame | None, test: pd.DataFrame | None, fmt: str = "parquet"
) -> list[str]:
    folder = tmp / "data"
    if train is not None:
        write_frame(train, folder / f"train.{fmt}")
    if test is not None:
        write_frame(test, folder / f"test.{fmt}")
    return ["--dataset", str(folder)]


def no_text_column(tmp, out, data_dir):
    frame = make_frame(60, seed=1).rename(columns={"text": "review", "label": "sentiment"})
    return _folder(tmp, frame, None)


def single_class(tmp, out, data_dir):
    frame = make_frame(60, seed=1)
    return _folder(tmp, frame.assign(label=1), None)


def empty_test_file(tmp, out, data_dir):
    train = make_frame(60, seed=1)
    return _folder(tmp, train, train.iloc[:0])


def zero_byte_train_file(tmp, out, data_dir):
    (tmp / "data").mkdir()
    (tmp / "data" / "train.csv").write_text("")
    return ["--dataset", str(tmp / "data")]


def label_only_in_test(tmp, out, data_dir):
    train = make_frame(60, seed=1)
    test = make_frame(30, n_classes=3, seed=2, exclude=train["text"])  # has class 2, train has not
    return _folder(tmp, train, test)


def many_rows_without_label(tmp, out, data_dir):
    train = make_frame(60, seed=1).astype({"label": object})
    train.loc[:9, "label"] = None  # 10 of 60: more than 5%
    return _folder(tmp, train, None, fmt="csv")


def broken_jsonl_line(tmp, out, data_dir):
    path = _folder(tmp, make_frame(60, seed=1), None, fmt="jsonl")[1]
    lines = (Path(path) / "train.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-5]
    (Path(path) / "train.jsonl").write_text("\n".join(lines) + "\n")
    return ["--dataset", path]


def regression_target(tmp, out, data_dir):
    frame = make_frame(80, seed=1)
    return _folder(tmp, frame.assign(label=[round(0.37 * i + 0.05, 2) for i in range(80)]), None, fmt="csv")


def one_row_per_class(tmp, out, data_dir):
    frame = make_frame(3, n_classes=3, seed=1).assign(label=["neg", "neutral", "pos"])
    return _folder(tmp, frame, None, fmt="csv")


def output_dir_under_a_file(tmp, out, data_dir):
    (tmp / "a-file").write_text("not a folder")
    return ["--output-dir", str(tmp / "a-file" / "out")]


def missing_dataset(tmp, out, data_dir):
    return ["--dataset", str(tmp / "nowhere" / "reviews.parquet")]


def _finished_run(out, data_dir) -> list[str]:
    """A real one-trial benchmark named NAME in ``out``."""
    from textbench import benchmark

    code = benchmark.main([*search_base(data_dir, out), "--trials", "1"])
    assert code == 0
    assert study_names(default_storage(out)) == {f"{NAME}-cnn"}
    return []


def existing_study_with_another_budget(tmp, out, data_dir):
    """A real finished run under the same name and output folder, then a different --max-steps."""
    return [*_finished_run(out, data_dir), "--max-steps", "30"]


def workers_on_sqlite(tmp, out, data_dir):
    return ["--workers", "2", "--storage", f"sqlite:///{tmp / 'optuna.db'}"]


def _text_file(name: str, lines: list[str]):
    def prepare(tmp, out, data_dir):
        (tmp / name).write_text("\n".join(lines) + "\n")
        return ["--dataset", str(tmp / name)]

    return prepare


def suite_bad_third(tmp, out, data_dir):
    import shutil

    shutil.copytree(data_dir, tmp / "copy")
    return ["--datasets", f"{data_dir},{tmp / 'copy'},{tmp / 'nothere'}"]


def label_names_count(tmp, out, data_dir):
    make_frame(60, seed=2).to_csv(tmp / "two.csv", index=False)
    return ["--dataset", str(tmp / "two.csv"), "--label-names", "a,b,c"]


CASES: dict[str, Case] = {
    "txt-separator-ambiguous": Case(
        prepare=_text_file("both.txt", [f"{i % 2}\tword{i};x{i}" for i in range(40)]),
        expect=("cannot tell how both.txt is separated", "--separator"),
    ),
    "txt-no-layout": Case(
        prepare=_text_file("notes.txt", ["hello"]),
        expect=("cannot tell how notes.txt is laid out", "--separator"),
    ),
    "fasttext-several-labels": Case(
        prepare=_text_file(
            "ft.txt", [f"__label__{i % 2} text {i}" for i in range(20)] + ["__label__0 __label__1 x"]
        ),
        expect=("line 21 has several labels", "one __label__ per line"),
    ),
    "label-names-count": Case(
        prepare=label_names_count,
        expect=("--label-names names 3 classes but the labels are 2 values (0, 1)",),
    ),
    "suite-without-datasets": Case(
        command="suite", expect=("exactly one of --datasets", "--suite FILE.toml"), untouched=True
    ),
    "suite-bad-third-dataset": Case(
        command="suite",
        prepare=suite_bad_third,
        expect=("suite dataset 3 of 3 (nothere)", "does not exist"),
        max_seconds=90,
    ),
    "unknown-arch": Case(("--arch", "mlp"), ("unknown family 'mlp'", "use one of cnn, rnn"), subprocess=True),
    "trials-zero": Case(("--trials", "0"), ("--trials must be positive", "got 0")),
    "trials-negative": Case(("--trials", "-1"), ("--trials must be positive", "got -1")),
    "fix-unknown-parameter": Case(
        ("--fix", "dropout=0.1"), ("--fix dropout: no such parameter in cnn", "known: ")
    ),
    "fix-not-an-integer": Case(
        ("--arch", "rnn", "--fix", "num_layers=two"), ("num_layers must be an integer",)
    ),
    "fix-not-a-choice": Case(
        ("--arch", "rnn", "--fix", "nonlinearity=sigmoid"), ("nonlinearity must be one of tanh, relu",)
    ),
    "fix-zero": Case(("--arch", "rnn", "--fix", "num_layers=0"), ("--fix num_layers=0", "must be positive")),
    "fix-without-value": Case(("--fix", "num_filters"), ("expected name=value", "--fix learning_rate=0.001")),
    "dataset-path-missing": Case(
        prepare=missing_dataset, expect=("does not exist", "check the path"), data=True
    ),
    "no-text-column": Case(
        prepare=no_text_column, expect=("has no column 'text'", "--text-column/--label-column"), data=True
    ),
    "single-class": Case(
        prepare=single_class, expect=("single class", "two or more labels", "--label-column"), data=True
    ),
    "empty-test-file": Case(
        prepare=empty_test_file, expect=("test split is empty", "delete the file"), data=True
    ),
    "unreadable-train-file": Case(
        prepare=zero_byte_train_file, expect=("cannot read", "train.csv", "valid"), data=True
    ),
    "labels-missing-above-5-percent": Case(
        prepare=many_rows_without_label,
        expect=("10 of 60 rows", "without a label", "--drop-invalid"),
        data=True,
    ),
    "jsonl-broken-line": Case(
        prepare=broken_jsonl_line, expect=("train.jsonl", "line 3", "fix or delete"), data=True
    ),
    "no-header-with-column-names": Case(
        ("--no-header",), ("with --no-header", "0-based column numbers"), data=True
    ),
    "regression-target": Case(
        prepare=regression_target,
        expect=("80 distinct numeric values", "looks like a regression target: textbench classifies"),
        data=True,
    ),
    "classes-too-small-to-split": Case(
        prepare=one_row_per_class,
        expect=("class 'neg' has 1 row", "each class needs at least 3", "train, test, validation"),
        data=True,
    ),
    "test-label-not-in-train": Case(
        prepare=label_only_in_test, expect=("test split has labels not in train", "consistent"), data=True
    ),
    "max-length-zero": Case(("--max-length", "0"), ("--max-length must be positive", "got 0")),
    "validation-fraction-above-one": Case(
        ("--validation-fraction", "1.5"), ("--validation-fraction must be in (0, 1)",)
    ),
    "patience-negative": Case(("--patience", "-1"), ("--patience must be 0 or more",)),
    "eval-steps-over-max-steps": Case(
        ("--eval-steps", "50"), ("--eval-steps (50) exceeds --max-steps (20)", "lower")
    ),
    "storage-url-malformed": Case(
        ("--storage", "notaurl"),
        ("--storage 'notaurl' is neither a journal file nor a URL", ".journal", "postgresql://"),
        untouched=True,
    ),
    # URIs are checked before the data is read: with a missing dataset as well, the URI is what is reported.
    "storage-scheme-unknown": Case(
        ("--storage", "bogus://x"),
        ("Optuna cannot use scheme 'bogus'", "postgresql://"),
        prepare=missing_dataset,
        untouched=True,
    ),
    "tracking-scheme-unknown": Case(
        ("--tracking-uri", "bogus://x"),
        ("MLflow cannot use scheme 'bogus'", "--no-mlflow"),
        prepare=missing_dataset,
        untouched=True,
        subprocess=True,
    ),
    "storage-port-not-a-number": Case(
        ("--storage", "postgresql://u:secret@127.0.0.1:notaport/db"),
        ("malformed storage URL", "u:***@"),
        absent=("secret",),
    ),
    "postgres-unreachable": Case(
        ("--storage", "postgresql://postgres@127.0.0.1:1/textbench"),
        ("cannot open storage postgresql://postgres@127.0.0.1:1/textbench", "check that the server runs"),
        max_seconds=15,
        untouched=True,
    ),
    "tracking-server-unreachable": Case(
        ("--tracking-uri", "http://127.0.0.1:1"),
        ("MLflow tracking at http://127.0.0.1:1 is not usable", "--no-mlflow"),
        max_seconds=15,
        untouched=True,
    ),
    "output-dir-not-writable": Case(
        prepare=output_dir_under_a_file, expect=("is not writable", "--output-dir")
    ),
    "resume-with-other-settings": Case(
        prepare=existing_study_with_another_budget,
        expect=(
            f"benchmark '{NAME}' already has study '{NAME}-cnn' with max_steps=20 (now 30)",
            "rerun with the original settings",
            "new --name",
        ),
    ),
    "workers-on-sqlite": Case(
        prepare=workers_on_sqlite,
        expect=("SQLite", "default journal file", "--storage postgresql://"),
        subprocess=True,
    ),
    "workers-zero": Case(("--workers", "0"), ("--workers must be 1 or more",), untouched=True),
    "workers-not-a-number": Case(
        ("--workers", "two"), ("--workers must be 'auto' or a number", "'two'"), untouched=True
    ),
    "name-with-slash": Case(("--name", "a/b"), ("must be a plain name",)),
    # ---- train: --set is checked against the family's search space before any work
    "train-set-not-a-choice": Case(
        ("--arch", "rnn", "--set", "nonlinearity=sigmoid"),
        ("--set nonlinearity=sigmoid", "must be one of tanh, relu"),
        command="train",
        subprocess=True,
    ),
    "train-set-not-an-integer": Case(
        ("--set", "num_filters=many"), ("--set num_filters=many", "must be an integer"), command="train"
    ),
    "train-set-zero": Case(
        ("--arch", "rnn", "--set", "num_layers=0"),
        ("--set num_layers=0", "must be positive"),
        command="train",
    ),
    "train-set-negative-learning-rate": Case(
        ("--set", "learning_rate=-0.1"), ("must be positive",), command="train"
    ),
    "train-set-unknown-parameter": Case(
        ("--set", "dropout=0.1"), ("--set 'dropout=0.1'", "NAME one of"), command="train"
    ),
    "train-set-without-value": Case(("--set", "num_filters"), ("expected", "--set"), command="train"),
    "train-no-text-column": Case(
        prepare=no_text_column, expect=("has no column 'text'", "--text-column"), command="train", data=True
    ),
    "train-eval-steps-over-max-steps": Case(
        ("--eval-steps", "50"), ("--eval-steps (50) exceeds --max-steps (20)",), command="train"
    ),
    # ---- report
    "report-no-storage": Case(
        (), ("no benchmark storage at", "--output-dir"), command="report", subprocess=True
    ),
    "report-unknown-name": Case(
        ("--name", "other"),
        ("no study of benchmark 'other'", "benchmarks there: bad"),
        prepare=lambda tmp, out, data: _finished_run(out, data),
        command="report",
    ),
}


def search_base(data_dir: Path, out: Path) -> list[str]:
    return search_args(data_dir, out, family="cnn", trials=2, name=NAME, max_steps=20, eval_steps=10)


def train_base(data_dir: Path, out: Path) -> list[str]:
    return [
        "train",
        "--arch",
        "cnn",
        "--dataset",
        str(data_dir),
        "--tokenizer",
        str(Path(data_dir) / "tokenizer"),
        "--max-length",
        "64",
        "--max-steps",
        "20",
        "--eval-steps",
        "10",
        "--batch-size",
        "16",
        "--output-dir",
        str(out),
    ]


def report_base(data_dir: Path, out: Path) -> list[str]:
    return ["report", "--name", NAME, "--output-dir", str(out)]


def suite_base(data_dir: Path, out: Path) -> list[str]:
    return ["suite", *search_base(data_dir, out)]


# The lean, valid arguments of each subcommand; a case adds what makes them bad.
BASE_ARGS: dict[str, Callable[[Path, Path], list[str]]] = {
    "suite": suite_base,
    "search": search_base,
    "train": train_base,
    "report": report_base,
}


@pytest.fixture(autouse=True)
def _clean_process_state(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)  # benchmark.main installs its own


def _state(out: Path) -> dict:
    """What a failed command must not change: studies with their trials, MLflow runs, and the output
    folder itself (no new or changed file or folder: no store, no cache entry, no empty folder)."""
    files = (
        sorted(
            (str(p.relative_to(out)), p.is_dir() or p.stat().st_size, p.is_dir() or p.stat().st_mtime_ns)
            for p in out.rglob("*")
        )
        if out.exists()
        else None
    )
    storage = default_storage(out)
    studies = {name: len(load_study(name, storage).trials) for name in study_names(storage)}
    runs = {(r.info.run_id, r.info.status) for r in mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", NAME)}
    return {"studies": studies, "runs": runs, "files": files}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_error_line_exit_2_and_leaves_nothing(case: Case, tmp_path, capsys, tiny_data_dir):
    from textbench import benchmark

    out = tmp_path / "out"
    extra = case.prepare(tmp_path, out, tiny_data_dir) if case.prepare else []
    before = _state(out)
    capsys.readouterr()
    argv = [*BASE_ARGS[case.command](tiny_data_dir, out), *case.args, *extra]
    start = time.monotonic()
    if case.subprocess:
        result = run_cli(*argv, timeout=300)
        code, stderr = result.returncode, result.stderr
    else:
        code = benchmark.main(argv)
        stderr = capsys.readouterr().err
    elapsed = time.monotonic() - start

    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr[-3000:]
    if not case.subprocess:  # in process, logging goes to pytest: the error is all there is
        assert stderr.strip() == errors[0]
    for fragment in case.expect:
        assert fragment in errors[0], errors[0]
    for fragment in case.absent:
        assert fragment not in stderr
    if case.max_seconds is not None:
        assert elapsed < case.max_seconds, f"took {elapsed:.1f} s"
    assert _state(out) == before  # no new study, trial, MLflow run, file or folder
    assert not any(
        name.startswith(NAME) for name in study_names(default_storage(out)) if name not in before["studies"]
    )
    if case.untouched:
        assert not any(
            (out / name).exists() for name in ("optuna.journal", "optuna.db", "mlflow.db", "cache")
        )


def test_an_invalid_choice_is_argparse_usage_and_exit_2(tmp_path, tiny_data_dir):
    """Choices are argparse's: usage lines, then ``benchmark.py: error: ...``, exit 2 (not our format)."""
    result = run_cli(*search_base(tiny_data_dir, tmp_path / "out"), "--sampler", "bogus", timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("benchmark.py: error: argument --sampler: invalid choice: 'bogus'")
    assert "tpe" in last and "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: benchmark.py")
    assert not (tmp_path / "out").exists()


HEAVY = ("torch", "transformers", "optuna", "mlflow", "datasets", "pandas", "sklearn")
FAST = {  # refused from the command line alone
    "trials-zero": ("--trials", "0"),
    "unknown-arch": ("--arch", "mlp"),
    "fix-unknown-parameter": ("--fix", "dropout=0.1"),
    "fix-not-an-integer": ("--arch", "rnn", "--fix", "num_layers=two"),
    "eval-steps-over-max-steps": ("--eval-steps", "50"),
    "max-length-zero": ("--max-length", "0"),
    "storage-scheme-unknown": ("--storage", "bogus://x"),
    "tracking-scheme-unknown": ("--tracking-uri", "bogus://x"),
    "workers-not-a-number": ("--workers", "two"),
    "workers-on-sqlite": ("--workers", "2", "--storage", "sqlite:///never-made.db"),
    "name-with-slash": ("--name", "a/b"),
}
FAST_TRAIN = {  # train --set, checked against the family's space before anything heavy is imported
    "train-set-not-a-choice": ("--arch", "rnn", "--set", "nonlinearity=sigmoid"),
    "train-set-unknown-parameter": ("--arch", "cnn", "--set", "dropout=0.1"),
    "train-set-bidirectional-cnn": ("--arch", "cnn", "--set", "bidirectional=true"),
    "train-set-bidirectional-not-a-bool": ("--arch", "gru", "--set", "bidirectional=maybe"),
}
FAST_PREDICT = {
    "predict-batch-size-zero": ("--batch-size", "0", "--text", "fine"),
    "predict-neither-name-nor-model": ("--text", "fine"),
}
PROBE = (
    "import sys, benchmark\n"
    "code = benchmark.main(sys.argv[1:])\n"
    "print(' '.join(m for m in {heavy!r} if m in sys.modules))\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize(
    "flags",
    [
        *FAST.values(),
        *(("train", *f) for f in FAST_TRAIN.values()),
        *(("predict", *f) for f in FAST_PREDICT.values()),
    ],
    ids=[*FAST, *FAST_TRAIN, *FAST_PREDICT],
)
def test_a_bad_flag_is_refused_before_any_heavy_import(flags, tmp_path, tiny_data_dir):
    """In a fresh interpreter: exit 2 with one error line, and torch, transformers, Optuna, MLflow
    (and the data libraries) were never imported."""
    import subprocess
    import sys

    from helpers import ROOT, cli_env

    if flags[0] == "predict":
        argv = list(flags)
    elif flags[0] == "train":
        argv = [
            "train",
            "--dataset",
            str(tiny_data_dir),
            "--tokenizer",
            str(tiny_data_dir / "tokenizer"),
            "--output-dir",
            str(tmp_path / "out"),
            *flags[1:],
        ]
    else:
        argv = [*search_base(tiny_data_dir, tmp_path / "out"), *flags]
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"imported before refusing: {result.stdout.strip()}"
    assert not (tmp_path / "out").exists()


def test_a_bad_flag_costs_under_a_second_and_a_half(tmp_path, tiny_data_dir):
    """The whole command, interpreter start included (best of three: the machine may be busy)."""
    times = []
    for _ in range(3):
        start = time.monotonic()
        result = run_cli(*search_base(tiny_data_dir, tmp_path / "out"), "--trials", "0", timeout=120)
        times.append(time.monotonic() - start)
        assert result.returncode == 2
    assert min(times) < 1.5, times


DATA_CASES = {name: case for name, case in CASES.items() if case.data}
LIGHT = ("torch", "transformers", "datasets")  # what a data check must not wait for


@pytest.mark.parametrize("case", DATA_CASES.values(), ids=DATA_CASES.keys())
def test_bad_data_is_refused_before_torch_transformers_and_datasets_load(case: Case, tmp_path, tiny_data_dir):
    """Each bad-data row in a fresh interpreter: the same one error line, and none of the heavy
    libraries was imported when it was raised (what makes the refusal take about a second)."""
    import subprocess
    import sys

    from helpers import ROOT, cli_env

    out = tmp_path / "out"
    extra = case.prepare(tmp_path, out, tiny_data_dir) if case.prepare else []
    argv = [*BASE_ARGS[case.command](tiny_data_dir, out), *case.args, *extra]
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=LIGHT), *argv],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    for fragment in case.expect:
        assert fragment in line, line
    assert result.stdout.strip() == "", f"imported before refusing: {result.stdout.strip()}"

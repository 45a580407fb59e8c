"""Bad input through the real CLI, every subcommand in one table: exit code 2, one ``error: `` line
naming the problem and the fix, no traceback, and nothing left behind (no file added or changed
under the output folder, no study or trial in the Optuna storage, no MLflow run).

To add a case: one ``Case`` row in ``CASES`` with its ``command`` (``search``, ``train``, ``report``,
or a new subcommand with its lean arguments in ``BASE_ARGS``), the arguments that make it bad and
the fragments the error line must contain. Most cases call ``benchmark.main(argv)`` in this process (seconds each, stderr from capsys); the
ones marked ``subprocess`` run ``python benchmark.py`` to prove the real exit code and stderr.
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
    error_lines,
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
    prepare: Callable[[Path, Path, Path], list[str]] | None = None  # (tmp, output dir, tiny data) -> more args
    subprocess: bool = False
    max_seconds: float | None = None  # wall time of the failing command (in process)
    absent: tuple[str, ...] = ()  # must not appear in stderr (e.g. a password)
    command: str = "search"  # a key of BASE_ARGS
    writes: str = ""  # a known, not yet fixed write on this bad input: the check xfails with this reason


# ---------------------------------------------------------------- bad data builders


def _folder(tmp: Path, train: pd.DataFrame | None, test: pd.DataFrame | None, fmt: str = "parquet") -> list[str]:
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


def output_dir_under_a_file(tmp, out, data_dir):
    (tmp / "a-file").write_text("not a folder")
    return ["--output-dir", str(tmp / "a-file" / "out")]


def missing_dataset(tmp, out, data_dir):
    return ["--dataset", str(tmp / "nowhere" / "reviews.parquet")]


def _finished_run(out, data_dir) -> list[str]:
    """A real one-trial benchmark named NAME in ``out``."""
    import benchmark

    code = benchmark.main([*search_base(data_dir, out), "--trials", "1"])
    assert code == 0
    assert study_names(f"sqlite:///{out / 'optuna.db'}") == {f"{NAME}-cnn"}
    return []


def existing_study_with_another_budget(tmp, out, data_dir):
    """A real finished run under the same name and output folder, then a different --max-steps."""
    return [*_finished_run(out, data_dir), "--max-steps", "30"]


# Known writes on bad input that are not fixed yet (the search command opens its storage, or
# tokenizes, before these checks); drop the ``writes=`` of a case once it leaves nothing behind.
EARLY_STORAGE = "search creates optuna.db before it reads the data"
DATA_BEFORE_TRACKING = "search caches the tokenized data before it checks the tracking server"

CASES: dict[str, Case] = {
    "unknown-arch": Case(("--arch", "transformer"), ("unknown architecture 'transformer'", "use one of cnn, rnn"),
                         subprocess=True),
    "trials-zero": Case(("--trials", "0"), ("--trials must be positive", "got 0")),
    "trials-negative": Case(("--trials", "-1"), ("--trials must be positive", "got -1")),
    "fix-unknown-parameter": Case(("--fix", "dropout=0.1"), ("--fix dropout: no such parameter in cnn", "known: ")),
    "fix-not-an-integer": Case(("--arch", "rnn", "--fix", "num_layers=two"), ("num_layers must be an integer",)),
    "fix-not-a-choice": Case(("--arch", "rnn", "--fix", "nonlinearity=sigmoid"),
                             ("nonlinearity must be one of tanh, relu",)),
    "fix-zero": Case(("--arch", "rnn", "--fix", "num_layers=0"), ("--fix num_layers=0", "must be positive")),
    "fix-without-value": Case(("--fix", "num_filters"), ("expected name=value", "--fix learning_rate=0.001")),
    "dataset-path-missing": Case(prepare=missing_dataset, expect=("does not exist", "check the path"), writes=EARLY_STORAGE),
    "no-text-column": Case(prepare=no_text_column, expect=("has no column 'text'", "--text-column/--label-column"), writes=EARLY_STORAGE),
    "single-class": Case(prepare=single_class, expect=("single class", "two or more labels", "--label-column"), writes=EARLY_STORAGE),
    "empty-test-file": Case(prepare=empty_test_file, expect=("test split is empty", "delete the file"), writes=EARLY_STORAGE),
    "unreadable-train-file": Case(prepare=zero_byte_train_file, expect=("cannot read", "train.csv", "valid"), writes=EARLY_STORAGE),
    "test-label-not-in-train": Case(prepare=label_only_in_test,
                                    expect=("test split has labels not in train", "consistent"), writes=EARLY_STORAGE),
    "max-length-zero": Case(("--max-length", "0"), ("--max-length must be positive", "got 0")),
    "validation-fraction-above-one": Case(("--validation-fraction", "1.5"), ("--validation-fraction must be in (0, 1)",)),
    "patience-negative": Case(("--patience", "-1"), ("--patience must be 0 or more",)),
    "eval-steps-over-max-steps": Case(("--eval-steps", "50"), ("--eval-steps (50) exceeds --max-steps (20)", "lower")),
    "storage-url-malformed": Case(("--storage", "notaurl"), ("malformed storage URL 'notaurl'", "postgresql://")),
    "storage-port-not-a-number": Case(("--storage", "postgresql://u:secret@127.0.0.1:notaport/db"),
                                      ("malformed storage URL", "u:***@"), absent=("secret",)),
    "postgres-unreachable": Case(("--storage", "postgresql://postgres@127.0.0.1:1/textbench"),
                                 ("cannot open storage postgresql://postgres@127.0.0.1:1/textbench",
                                  "check that the server runs"), max_seconds=15),
    "tracking-server-unreachable": Case(("--tracking-uri", "http://127.0.0.1:1"),
                                        ("MLflow tracking at http://127.0.0.1:1 is not usable", "--no-mlflow"),
                                        max_seconds=15, writes=DATA_BEFORE_TRACKING),
    "output-dir-not-writable": Case(prepare=output_dir_under_a_file, expect=("is not writable", "--output-dir")),
    "resume-with-other-settings": Case(prepare=existing_study_with_another_budget,
                                       expect=(f"benchmark '{NAME}' already has study '{NAME}-cnn' with max_steps=20 "
                                               "(now 30)", "rerun with the original settings", "new --name")),
    "workers-on-sqlite": Case(("--workers", "2"), ("SQLite", "--storage postgresql://"), subprocess=True),
    "workers-zero": Case(("--workers", "0"), ("--workers must be 1 or more",)),
    "name-with-slash": Case(("--name", "a/b"), ("must be a plain name",)),
    # ---- train: --set is checked against the family's search space before any work
    "train-set-not-a-choice": Case(("--arch", "rnn", "--set", "nonlinearity=sigmoid"),
                                   ("--set nonlinearity=sigmoid", "must be one of tanh, relu"), command="train",
                                   subprocess=True),
    "train-set-not-an-integer": Case(("--set", "num_filters=many"), ("--set num_filters=many", "must be an integer"),
                                     command="train"),
    "train-set-zero": Case(("--arch", "rnn", "--set", "num_layers=0"), ("--set num_layers=0", "must be positive"),
                           command="train"),
    "train-set-negative-learning-rate": Case(("--set", "learning_rate=-0.1"), ("must be positive",), command="train"),
    "train-set-unknown-parameter": Case(("--set", "dropout=0.1"), ("--set 'dropout=0.1'", "NAME one of"),
                                        command="train"),
    "train-set-without-value": Case(("--set", "num_filters"), ("expected", "--set"), command="train"),
    "train-no-text-column": Case(prepare=no_text_column, expect=("has no column 'text'", "--text-column"),
                                 command="train"),
    "train-eval-steps-over-max-steps": Case(("--eval-steps", "50"), ("--eval-steps (50) exceeds --max-steps (20)",),
                                            command="train"),
    # ---- report
    "report-no-storage": Case((), ("no Optuna storage at", "--output-dir"), command="report", subprocess=True),
    "report-unknown-name": Case(("--name", "other"), ("no study of benchmark 'other'", "benchmarks there: bad"),
                                prepare=lambda tmp, out, data: _finished_run(out, data), command="report"),
}


def search_base(data_dir: Path, out: Path) -> list[str]:
    return search_args(data_dir, out, arch="cnn", trials=2, name=NAME, max_steps=20, eval_steps=10)


def train_base(data_dir: Path, out: Path) -> list[str]:
    return ["train", "--arch", "cnn", "--dataset", str(data_dir), "--tokenizer", str(Path(data_dir) / "tokenizer"),
            "--max-length", "64", "--max-steps", "20", "--eval-steps", "10", "--batch-size", "16",
            "--output-dir", str(out)]


def report_base(data_dir: Path, out: Path) -> list[str]:
    return ["report", "--name", NAME, "--output-dir", str(out)]


# The lean, valid arguments of each subcommand; a case adds what makes them bad.
BASE_ARGS: dict[str, Callable[[Path, Path], list[str]]] = {
    "search": search_base, "train": train_base, "report": report_base,
}


@pytest.fixture(autouse=True)
def _clean_process_state(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)  # benchmark.main installs its own


def _files(out: Path) -> dict:
    """Every file under ``out`` with its size (SQLite files are compared by their content below).
    Empty folders are not counted: the search command still creates its run folder early."""
    if not out.exists():
        return {}
    return {str(p.relative_to(out)): None if p.suffix == ".db" else p.stat().st_size
            for p in sorted(out.rglob("*")) if p.is_file()}


def _state(out: Path) -> dict:
    """What a failed command must not change: files, studies with their trials, MLflow runs."""
    import optuna

    storage = f"sqlite:///{out / 'optuna.db'}"
    studies = {name: len(optuna.load_study(study_name=name, storage=storage).trials) for name in study_names(storage)}
    runs = {(r.info.run_id, r.info.status) for r in mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", NAME)}
    return {"files": _files(out), "studies": studies, "runs": runs}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_error_line_exit_2_and_leaves_nothing(case: Case, tmp_path, capsys, tiny_data_dir):
    import benchmark

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
    after = _state(out)
    assert {k: after[k] for k in ("studies", "runs")} == {k: before[k] for k in ("studies", "runs")}
    if case.writes and after["files"] != before["files"]:
        pytest.xfail(case.writes)
    assert after["files"] == before["files"]  # nothing written
    assert not any(name.startswith(NAME) for name in study_names(f"sqlite:///{out / 'optuna.db'}")
                   if name not in before["studies"])


def test_an_invalid_choice_is_argparse_usage_and_exit_2(tmp_path, tiny_data_dir):
    """Choices are argparse's: usage lines, then ``benchmark.py: error: ...``, exit 2 (not our format)."""
    result = run_cli(*search_base(tiny_data_dir, tmp_path / "out"), "--sampler", "bogus", timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("benchmark.py: error: argument --sampler: invalid choice: 'bogus'")
    assert "tpe" in last and "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: benchmark.py")
    assert not (tmp_path / "out").exists()

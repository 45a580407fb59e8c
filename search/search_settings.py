"""What to search and where to keep it: the flagship command's settings, checked without heavy imports.

Everything here can be decided from the command line alone (families, counts, names, the shape of
the storage URL and the tracking URI), so a mistyped value is refused in a fraction of a second,
before torch, transformers, Optuna or MLflow are loaded and before any data is read. Whether a
server answers is checked later, still before the data (``search.studies.setup``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from textbench.core.durations import parse_duration
from textbench.core.errors import UsageError
from textbench.core.urls import redact
from textbench.search import fixed as fixing
from textbench.spaces import FAMILIES

SAMPLERS = ("tpe", "random", "qmc", "cmaes")
PRUNERS = ("margin", "median", "hyperband", "none")
JOURNAL_SUFFIXES = (".journal", ".log")  # a --storage without "://" is an Optuna journal file
RDB_SCHEMES = (
    "sqlite",
    "postgresql",
    "mysql",
    "mssql",
    "oracle",
)  # SQLAlchemy dialects Optuna's RDBStorage runs on
TRACKING_SCHEMES = (
    "file",
    "http",
    "https",
    "databricks",
    "databricks-uc",
    "uc",
    "sqlite",
    "postgresql",
    "mysql",
    "mssql",
)  # the stores MLflow ships


def default_storage(output_dir: str | Path) -> str:
    """An Optuna journal file: safe for several local processes, no server (see search/study.py).
    Where only an earlier version's SQLite store exists, that one: a rerun resumes its studies."""
    journal, legacy = Path(output_dir) / "optuna.journal", Path(output_dir) / "optuna.db"
    if legacy.exists() and not journal.exists():
        return f"sqlite:///{legacy}"
    return str(journal)


def resolve_storage(storage: str | None, output_dir: str | Path) -> str:
    return storage if storage is not None else default_storage(output_dir)


def default_tracking_uri(output_dir: str | Path) -> str:
    return f"sqlite:///{Path(output_dir) / 'mlflow.db'}"


def scheme(url: str) -> str | None:
    """``postgresql+psycopg://...`` -> ``postgresql``; None for a plain path."""
    head, sep, _ = url.partition("://")
    if not sep:
        return None
    return head.split("+", 1)[0].lower()


def is_journal(url: str) -> bool:
    return scheme(url) is None


def is_sqlite(url: str) -> bool:
    return scheme(url) == "sqlite"


def is_server_storage(url: str) -> bool:
    """A storage several machines can share (and that must answer before any work starts)."""
    return not is_journal(url) and not is_sqlite(url)


def check_storage_url(url: str) -> None:
    """The shape of ``--storage``: a journal file path or an RDB URL with a known dialect."""
    kind = scheme(url)
    if kind is None:
        if not url.endswith(JOURNAL_SUFFIXES) or url.endswith("/"):
            raise UsageError(
                f"--storage {redact(url)!r} is neither a journal file nor a URL: use a file path ending in "
                ".journal "
                "(e.g. runs/optuna.journal), sqlite:///runs/optuna.db or postgresql://USER@HOST/DB"
            )
        return
    if kind not in RDB_SCHEMES:
        raise UsageError(
            f"malformed storage URL {redact(url)!r}: Optuna cannot use scheme '{kind}': use "
            "runs/optuna.journal, "
            "sqlite:///runs/optuna.db or postgresql://USER@HOST/DB"
        )


def check_tracking_uri(uri: str) -> None:
    """The shape of ``--tracking-uri``: a scheme MLflow ships a store for, or a plain folder."""
    kind = scheme(uri)
    if kind is not None and kind not in TRACKING_SCHEMES:
        raise UsageError(
            f"--tracking-uri {redact(uri)!r}: MLflow cannot use scheme '{kind}': use sqlite:///PATH, "
            "http(s)://HOST:PORT of an mlflow server, or pass --no-mlflow"
        )


def parse_workers(text: str) -> int | None:
    """``--workers``: "auto" (None: decided from the machine) or a count of 1 or more."""
    if text == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"--workers must be 'auto' or a number of processes, got {text!r}") from None
    if n < 1:
        raise UsageError(f"--workers must be 1 or more, got {n}")
    return n


def parse_families(text: str) -> list[str]:
    """``--arch``: 'both' (cnn, rnn), 'all' (every registered family) or a comma list."""
    if text == "both":
        return ["cnn", "rnn"]
    if text == "all":
        return list(FAMILIES)
    return [a.strip() for a in text.split(",") if a.strip()]


@dataclass
class SearchSettings:
    """What to search and how. Maps one-to-one to the flagship command's options."""

    families: list[str] = field(default_factory=lambda: ["cnn", "rnn"])
    trials: int = 50
    name: str = "imdb"
    output_dir: str = "runs"
    storage: str | None = None  # default: the journal file <output_dir>/optuna.journal
    seed: int = 42
    sampler: str = "tpe"
    pruner: str = "margin"
    timeout: float | None = None  # seconds per study
    time_budget: str | float | None = None  # the whole benchmark: 90m, 1h30m, 45s or seconds (search.plan)
    stop_when_converged: bool = False  # stop a family's search at convergence (search.converge)
    min_trials: int = 10  # completed trials before --stop-when-converged may stop a search
    stagnation_trials: int = 15  # --stop-when-converged: the best must move by more than noise in these
    fix: list[str] = field(default_factory=list)
    reference: bool = True  # the course notes' configuration as trial 0 and in the final stage
    top_k: int = 3
    final_seeds: int = 3
    finetune: str | None = None  # a pretrained model (hub id or folder) fine-tuned as a reference row
    tracking_uri: str | None = None  # default $MLFLOW_TRACKING_URI, else sqlite:///<output_dir>/mlflow.db
    mlflow: bool = True
    progress: bool = True

    def __post_init__(self):
        unknown = [a for a in self.families if a not in FAMILIES]
        if unknown or not self.families:
            raise UsageError(
                f"unknown family {unknown[0] if unknown else ''!r}: use one of "
                f"{', '.join(FAMILIES)}, 'both' or 'all' (a family of your own: --family-module FILE.py)"
            )
        if self.trials <= 0:
            raise UsageError(f"--trials must be positive, got {self.trials}")
        if self.sampler not in SAMPLERS:
            raise UsageError(f"unknown sampler {self.sampler!r}: use one of {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise UsageError(f"unknown pruner {self.pruner!r}: use one of {', '.join(PRUNERS)}")
        if self.top_k <= 0 or self.final_seeds < 0:
            raise UsageError("--top-k must be positive and --final-seeds 0 or more")
        if not self.name or any(c in self.name for c in "/\\") or self.name.startswith("."):
            raise UsageError(f"--name {self.name!r} must be a plain name (no slashes), e.g. imdb-small")
        if self.timeout is not None and self.timeout <= 0:
            raise UsageError(f"--timeout must be positive seconds, got {self.timeout}")
        if self.time_budget is not None:
            try:
                self.time_budget = parse_duration(self.time_budget)
            except ValueError as exc:
                raise UsageError(f"--time-budget: {exc}") from None
        if self.finetune is not None and self.final_seeds == 0:
            raise UsageError(
                "--finetune trains over the final-stage seeds and is tested with them: use --final-seeds 1 "
                "or more"
            )
        if self.stagnation_trials < 1:
            raise UsageError(f"--stagnation-trials must be 1 or more, got {self.stagnation_trials}")
        if self.min_trials < 2:
            raise UsageError(f"--min-trials must be 2 or more (the rule fits a model), got {self.min_trials}")
        self.storage = resolve_storage(self.storage, self.output_dir)
        check_storage_url(self.storage)
        if self.tracking_uri is None:
            self.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(self.output_dir)
        if self.mlflow:
            check_tracking_uri(self.tracking_uri)
        fixing.check_known(self.families, self.fix)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

"""The data and training settings: plain dataclasses validated in ``__post_init__``.

Kept free of heavy imports (no torch, datasets, pandas) so that the command line rejects a bad value
in a fraction of a second, before it loads the libraries that train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from textbench.core.errors import UsageError
from textbench.core.families import NOTES_LEARNING_RATE

DATA_ENV = "TEXTBENCH_DATA"
PRECISIONS = ("fp32", "bf16", "fp16")
SEPARATORS = ("tab", ";", "|", ",", "space", "fasttext")  # core.formats: sniffed when not given


@dataclass
class DataSettings:
    """Which data, how it is split and tokenized. Maps one-to-one to CLI options."""

    dataset: str = "imdb"  # hub id, or a local folder (train/validation|valid|dev/test files) or one file
    data_dir: str | None = None  # local mirror root: DIR/<dataset>/ and DIR/<tokenizer>/ are tried first
    text_column: str = "text"  # a column, or "a,b": several joined by a space
    label_column: str = "label"
    no_header: bool = False  # CSV/TSV without a header row: columns are given as 0-based numbers
    separator: str | None = None  # a text file's layout (SEPARATORS); None: sniffed
    label_names: str | None = None  # "a,b,c": names of numeric labels 0..k-1 or 1..k (else classes.txt)
    drop_invalid: bool = False  # allow dropping more than DROP_LIMIT of a split (no text, no label)
    tokenizer: str = "bert-base-cased"  # hub id or local folder
    max_length: int = 128
    validation_fraction: float = (
        0.1  # carved from train, stratified, seeded (unless a validation file is given)
    )
    test_fraction: float = 0.2  # only used when the dataset has no test split
    max_train_samples: int | None = None
    max_eval_samples: int | None = None  # caps validation and test
    seed: int = 42
    cache_dir: str = "runs/cache"

    def __post_init__(self):
        if self.separator is not None and self.separator not in SEPARATORS:
            raise UsageError(
                f"--separator must be one of {', '.join(SEPARATORS)} (space: a label, one space, the text; "
                f"fasttext: __label__X text), got {self.separator!r}"
            )
        if self.label_names is not None and len([n for n in self.label_names.split(",") if n.strip()]) < 2:
            raise UsageError(
                f"--label-names takes two or more comma-separated names, got {self.label_names!r}"
            )
        if self.max_length <= 0:
            raise UsageError(f"--max-length must be positive, got {self.max_length}")
        if not 0 < self.validation_fraction < 1:
            raise UsageError(f"--validation-fraction must be in (0, 1), got {self.validation_fraction}")
        if not 0 < self.test_fraction < 1:
            raise UsageError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.data_dir is None:
            self.data_dir = os.environ.get(DATA_ENV) or None


@dataclass
class TrainSettings:
    """The training budget. Identical for every trial and every family of a benchmark."""

    max_steps: int = 2500
    eval_steps: int = 500  # evaluate (and log) every this many optimizer steps
    batch_size: int = 8
    eval_batch_size: int = 256
    learning_rate: float = NOTES_LEARNING_RATE  # each configuration brings its own
    patience: int = 5  # evaluations without improvement before early stopping; 0 disables
    logging_steps: int | None = None  # default: eval_steps
    precision: str = "fp32"  # fp32, or mixed precision: bf16 (GPU or CPU), fp16 (GPU)

    def __post_init__(self):
        for name in ("max_steps", "eval_steps", "batch_size", "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.eval_steps > self.max_steps:
            raise UsageError(
                f"--eval-steps ({self.eval_steps}) exceeds --max-steps ({self.max_steps}): lower it"
            )
        if self.patience < 0:
            raise UsageError(f"--patience must be 0 or more, got {self.patience}")
        if not self.learning_rate > 0:
            raise UsageError(f"learning rate must be positive, got {self.learning_rate}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.logging_steps is None:
            self.logging_steps = self.eval_steps

    def budget(self) -> dict:
        """What must be equal across families for a fair comparison (``BUDGET_KEYS``)."""
        return {key: getattr(self, key) for key in BUDGET_KEYS}


# The training budget: the same for every family of a benchmark, stored on each study and compared.
BUDGET_KEYS = ("max_steps", "eval_steps", "batch_size", "patience", "precision")

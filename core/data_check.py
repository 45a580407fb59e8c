"""The data checks that run before torch, transformers and datasets are imported, and the words of
two refusals that used to mislead ("train split is empty" for a regression target or for classes
with a row or two).

``precheck`` reads the local files with pandas alone (``core.data.load_raw``: existence, emptiness,
header, columns, unusable rows) and encodes the labels (one class, labels that differ between
splits, a regression target); only when a class is too small for the carved splits does it import
scikit-learn to run the real split. A bad file is thus refused in about a second, not after the
10-30 s of heavy imports; the full load repeats the same checks later (one set of rules).
"""

from __future__ import annotations

import numbers

from textbench.core.settings import DataSettings

MANY_VALUES = 20  # more distinct numeric labels than this, fractional or nearly one per row: a regression


def _number(value) -> float | None:
    """A label as a number ("0.25" read from a text file included), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Number):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def regression_problem(values: list) -> str | None:
    """The refusal for labels that look like a continuous target, or None."""
    numeric = [n for n in map(_number, values) if n is not None]
    if len(numeric) != len(values) or len(values) <= MANY_VALUES:
        return None
    fractional = sum(not float(v).is_integer() for v in numeric)
    if not fractional:
        return None
    return (
        f"the label column has {len(values)} distinct numeric values ({fractional} fractional, from "
        f"{min(numeric):g} to {max(numeric):g}): it looks like a regression target: textbench classifies; "
        "pass a column of class labels with --label-column, or bin the values into classes"
    )


def small_class_problem(train_labels, label_names: list[str] | None, carved: list[str], split: str) -> str:
    """Why ``split`` came out empty: the smallest class (name, rows) and the rows each class needs
    (one for train and one for each split carved from it)."""
    counts = train_labels.value_counts()
    need = 1 + len(carved)
    smallest, rows = counts.idxmin(), int(counts.min())
    name = label_names[int(smallest)] if label_names is not None else smallest
    if rows >= need:
        return f"{split} split is empty after splitting: use more data or smaller fractions"
    where = ", ".join(["train", *carved])
    return (
        f"{split} split is empty after splitting: class {name!r} has {rows} row{'s' * (rows != 1)} in "
        f"the training data ({len(train_labels)} rows, {counts.size} classes) and each class needs at "
        f"least {need} (one each for {where}): add rows, or give validation/test files"
    )


def carved_splits(frames: dict) -> list[str]:
    return [s for s in ("test", "validation") if s not in frames]


def precheck(settings: DataSettings) -> None:
    """Refuse bad local data with one line, importing neither torch nor transformers nor datasets;
    a hub dataset is left to the full load."""
    from textbench.core.data import encode_labels, load_raw, split_frames

    loaded = load_raw(settings, local_only=True)
    if loaded is None:
        return
    frames, _ = loaded
    names = encode_labels(frames)
    counts = frames["train"]["label"].value_counts()
    if counts.min() < 1 + len(carved_splits(frames)):  # rare: the real split decides (scikit-learn)
        split_frames(frames, settings, label_names=names)

"""Text files as people keep them: the layout of a file with no extension or ``.txt`` (a sniffed
separator, fastText ``__label__X text`` lines, ``label text`` lines), a first row that is data rather
than a header, and numeric labels named by ``classes.txt`` or ``--label-names``.

Why a module of its own: ``core.data`` reads the formats that say what they are (parquet, JSON, a
CSV with a header); this module decides what a file that does not say means, and refuses to guess
when two readings are possible: the error names the option that settles it (``--separator``,
``--no-header``, ``--label-column``, ``--label-names``), so the data is never silently changed.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from pathlib import Path

import pandas as pd

from textbench.core.errors import UsageError

log = logging.getLogger(__name__)

SEPARATORS = {"tab": "\t", ";": ";", "|": "|", ",": ",", "space": "space", "fasttext": "fasttext"}
SNIFFED = ("\t", ";", "|", ",")  # in this order of preference when only one is consistent
SHOWN = {"\t": "tab", ";": "';'", "|": "'|'", ",": "','"}
FASTTEXT = "__label__"
SAMPLE_RECORDS = 500
CONSISTENT = 0.98  # share of sampled records with the same number of fields
LONG_FIELD = 40  # a header cell is a name, not a sentence (core.data's hint uses the same bound)
MAX_CLASSES = 100
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def separator_of(value: str | None) -> str | None:
    """The separator ``--separator`` names (tab, ';', '|', ',', space, fasttext), or None for sniffing."""
    if value is None:
        return None
    if value in ("\\t", "\t"):
        return "\t"
    if value not in SEPARATORS:
        raise UsageError(
            f"--separator must be one of {', '.join(SEPARATORS)} (space: a label token, one space, the "
            f"text; fasttext: __label__X text), got {value!r}"
        )
    return SEPARATORS[value]


def _records(sample: str, sep: str) -> list[list[str]]:
    rows = csv.reader(io.StringIO(sample), delimiter=sep, quoting=_quoting(sep))
    out = []
    for row in rows:
        if any(cell.strip() for cell in row):
            out.append(row)
        if len(out) >= SAMPLE_RECORDS:
            break
    return out[:-1] if len(out) > 1 else out  # the last sampled record may be cut off


def _quoting(sep: str) -> int:
    """Tab-separated text is written unquoted (a text may start with a quote); the others are CSVs."""
    return csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL


def _consistent(sample: str, sep: str) -> int | None:
    """The number of fields when (almost) every sampled record has the same one, 2 or more."""
    records = _records(sample, sep)
    if not records:
        return None
    counts = pd.Series([len(r) for r in records]).value_counts()
    fields, n = int(counts.index[0]), int(counts.iloc[0])
    return fields if fields >= 2 and n >= CONSISTENT * len(records) else None


def sniff(sample: str, name: str, kind: str, given: str | None) -> str:
    """How a delimited text file is laid out: a separator character, ``"space"`` (label token, space,
    text) or ``"fasttext"``. ``kind`` is core.data's reader: csv and tsv files keep their separator."""
    if given is not None:
        return given
    lines = [line for line in sample.splitlines() if line.strip()][:SAMPLE_RECORDS]
    if lines and all(line.lstrip().startswith(FASTTEXT) for line in lines[:-1] or lines):
        return "fasttext"
    if kind == "tsv":
        return "\t"
    found = {sep: n for sep in SNIFFED if (n := _consistent(sample, sep))}
    if kind == "csv" and "," in found:
        return ","
    if len(found) == 1:
        return next(iter(found))
    if len(found) > 1:
        listing = ", ".join(f"{SHOWN[s]} ({n} columns)" for s, n in found.items())
        raise UsageError(
            f"cannot tell how {name} is separated: {listing} all split every line alike; "
            "pass --separator (tab, ';', '|' or ',')"
        )
    if kind == "csv":
        return ","
    if _label_space(lines):
        return "space"
    raise UsageError(
        f"cannot tell how {name} is laid out: no separator (tab, ';', '|', ',') splits its lines alike and "
        "their first words are not labels; pass --separator, or use .csv/.jsonl/.parquet"
    )


def _label_space(lines: list[str]) -> bool:
    """Lines of ``label text``: every line has a space, and the first tokens are few (labels)."""
    if len(lines) < 4 or not all(" " in line.strip() for line in lines):
        return False
    firsts = pd.Series([line.split(maxsplit=1)[0] for line in lines])
    return firsts.nunique() <= min(MAX_CLASSES, len(lines) // 4)


def read_lines(text: str, layout: str, name: str) -> pd.DataFrame:
    """fastText (``__label__X text``; several labels on a line are refused) or ``label text`` lines."""
    labels, texts = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        head, _, rest = line.strip().partition(" ")
        if layout == "fasttext":
            if not head.startswith(FASTTEXT):
                raise UsageError(
                    f"cannot read {name}: line {number} has no {FASTTEXT} label but the file is in "
                    f"fastText format: fix that line"
                )
            if rest.lstrip().startswith(FASTTEXT):
                raise UsageError(
                    f"cannot read {name}: line {number} has several labels; a classifier here takes one "
                    f"label per text: keep one {FASTTEXT} per line"
                )
            head = head.removeprefix(FASTTEXT)
        labels.append(head)
        texts.append(rest.strip())
    return pd.DataFrame({"text": texts, "label": labels})


def read_delimited(text: str, sep: str) -> pd.DataFrame:
    """A decoded delimited file as strings, exactly as written, columns numbered from 0."""
    return pd.read_csv(
        io.StringIO(text),
        sep=sep,
        header=None,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        quoting=_quoting(sep),
    )


def _is_number(value: str) -> bool:
    return bool(NUMBER.fullmatch(value.strip()))


def looks_like_data(first: list[str], rest: pd.DataFrame) -> bool:
    """True when a first row is a record, not a header: a number, a long sentence, or a value that
    recurs in its column below (a label such as "ham")."""
    for i, cell in enumerate(first):
        cell = str(cell)
        if _is_number(cell) or len(cell) > LONG_FIELD:
            return True
        column = rest[i] if i in rest.columns else pd.Series(dtype=str)
        if len(column) and column.nunique() <= MAX_CLASSES and (column == cell).sum() >= 2:
            return True
    return False


def arrange(df: pd.DataFrame, name: str, text_column: str, label_column: str, no_header: bool):
    """A frame read without a header (columns 0..n-1) as the columns core.data selects from.

    With ``--no-header`` the numbers stay. Otherwise the first row is the header unless it looks like
    data; a headerless file with the default ``text``/``label`` columns gets them assigned: the one
    column of few short values is the label, the others are the text (joined, in order).
    """
    if no_header or df.empty:
        return df
    first, rest = [str(v) for v in df.iloc[0]], df.iloc[1:].reset_index(drop=True)
    wanted = {p.strip().lower() for p in f"{text_column},{label_column}".split(",")}
    if wanted & {c.strip().lower() for c in first} or not looks_like_data(first, rest):
        rest.columns = first
        return _label_named(rest, name, text_column, label_column)
    if (text_column, label_column) != ("text", "label"):
        raise UsageError(
            f"the first row of {name} is data, not a header ({first[0][:30]!r}, ...): pass --no-header "
            "with 0-based column numbers for --text-column/--label-column"
        )
    labels = [c for c in df.columns if _label_like(df[c])]
    if len(labels) != 1:
        which = "no column" if not labels else f"columns {', '.join(map(str, labels))} all"
        raise UsageError(
            f"{name} has no header row and {which} look like the label: pass --no-header "
            f"--label-column N --text-column M (0-based column numbers)"
        )
    label = labels[0]
    texts = [c for c in df.columns if c != label]
    log.info("%s has no header row: column %s is the label, %s the text", name, label, texts)
    joined = df[texts].apply(lambda row: " ".join(v for v in row if v.strip()), axis=1) if texts else ""
    return pd.DataFrame({"text": joined, "label": df[label]})


def _label_like(column: pd.Series) -> bool:
    values = column.astype(str).str.strip()
    distinct = values.nunique()
    short = (values.str.len() <= LONG_FIELD).all() and not values.str.contains(" ").any()
    return bool(short and 2 <= distinct <= min(MAX_CLASSES, max(2, len(values) // 4)))


def _label_named(df: pd.DataFrame, name: str, text_column: str, label_column: str) -> pd.DataFrame:
    """A header without the default ``label`` but with one column named like it (``label_name``,
    ``class``): that column is the label (said in the log)."""
    if label_column != "label" or any(str(c).strip().lower() == "label" for c in df.columns):
        return df
    close = [c for c in df.columns if re.search("label|class", str(c), re.I) and c != text_column]
    if len(close) == 1:
        log.info("%s has no column 'label': column %r is the label", name, close[0])
        return df.rename(columns={close[0]: "label"})
    return df


def label_names_beside(paths: list[Path], given: str | None) -> list[str] | None:
    """Class names from ``--label-names a,b,c`` or a ``classes.txt`` beside the data (one per line)."""
    if given:
        return [n.strip() for n in given.split(",")]
    for folder in dict.fromkeys(p.parent for p in paths):
        found = folder / "classes.txt"
        if found.is_file():
            names = [n.strip() for n in found.read_text(encoding="utf-8-sig").splitlines() if n.strip()]
            log.info("label names from %s: %s", found, names)
            return names
    return None


def name_labels(frames: dict[str, pd.DataFrame], names: list[str], given: bool) -> None:
    """Numeric labels 0..k-1 or 1..k become their names, in place (the same base in every split).
    ``given``: the names came from --label-names (else from a classes.txt, ignored for text labels)."""
    where = "--label-names" if given else "classes.txt"
    values = set()
    for df in frames.values():
        values |= set(df["label"].tolist())
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if not given or set(map(str, values)) <= set(names):
            return  # the labels are names already
        raise UsageError(
            f"labels are not numbers, so {where} cannot name them (labels: "
            f"{', '.join(map(repr, sorted(values, key=str)[:4]))}): drop --label-names or fix the data"
        )
    k = len(names)
    if len(names) != len(set(names)):
        raise UsageError(f"{where} names a class twice ({', '.join(names)}): give each class once")
    shown = ", ".join(map(str, sorted(values)[:6])) + (", ..." if len(values) > 6 else "")
    zero, one = values == set(range(k)), values == set(range(1, k + 1))
    if not (zero or one):
        raise UsageError(
            f"{where} names {k} classes but the labels are {len(values)} values ({shown}): give one name "
            "per class, for labels 0..k-1 or 1..k"
        )
    base = 0 if zero else 1
    for df in frames.values():
        df["label"] = df["label"].map(lambda v: names[v - base])

"""Load a labelled text dataset (hub id or local files), split it, tokenize it once.

Why it looks like this: every trial of every study must see the same rows, so the split is
seeded and stratified and computed here once; tokenization is the slow step (about 20 s for
IMDB), so the tokenized splits are cached on disk under a key made of the selected rows'
content hash, the tokenizer's identity and ``max_length``.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from textbench.core import cache_entry, data_check, formats
from textbench.core.errors import UsageError
from textbench.core.settings import DATA_ENV, DataSettings

if TYPE_CHECKING:  # datasets (and scikit-learn) load only when tokenizing/splitting: the data check
    import datasets  # before them (core/data_check.py) must stay light

log = logging.getLogger(__name__)

SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json"}
COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "valid", "val", "dev"), "test": ("test",)}
DROP_LIMIT = 0.05  # a split may lose at most this share of rows (no text, no label) without --drop-invalid
MODEL_COLUMNS = ["input_ids", "attention_mask", "labels"]


@dataclass
class PreparedData:
    """Tokenized train/validation/test splits plus what the rest of the harness needs to know."""

    splits: datasets.DatasetDict | None  # None until ``tokenize``
    tokenizer: object
    label_names: list[str]
    fingerprint: str  # content hash of the selected rows of all three splits
    source: str  # where the data came from (local path or hub id)
    tokenizer_source: str
    cache_hit: bool = False
    sizes: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)  # split -> the file it came from, or how it was carved
    dropped: dict = field(
        default_factory=dict
    )  # split -> {"no label": n, "empty text": m}, splits with drops
    frames: dict | None = None  # the split DataFrames between ``load`` and ``tokenize``
    max_length: int | None = None  # tokens per text after truncation (saved with every model)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def describe(self) -> dict:
        """Plain values for study attributes, MLflow params and the report."""
        return {
            "dataset": self.source,
            "fingerprint": self.fingerprint,
            "tokenizer": self.tokenizer_source,
            "labels": self.label_names,
            **{f"{name}_size": n for name, n in self.sizes.items()},
            **{f"{name}_from": text for name, text in self.origin.items()},
            "dropped_rows": self.dropped,
        }


# ---------------------------------------------------------------- resolution


def local_copy(name: str, data_dir: str | None) -> Path | None:
    """A local copy of a hub name: the path itself, or DATA_DIR/<name>."""
    if Path(name).expanduser().exists():
        return Path(name).expanduser()
    if data_dir and (Path(data_dir).expanduser() / name).exists():
        return Path(data_dir).expanduser() / name
    return None


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when huggingface.co answers within ``timeout`` seconds (no 20 s retry loops)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_error(kind: str, name: str, data_dir: str | None) -> UsageError:
    where = f"{data_dir}/{name}" if data_dir else f"$TEXTBENCH_DATA/{name}"
    flag = "--dataset PATH" if kind == "dataset" else "--tokenizer PATH"
    return UsageError(
        f"{kind} '{name}' has no local copy and the Hugging Face Hub is unreachable: "
        f"set {DATA_ENV}=DIR (or --data-dir DIR) with {where} inside, or pass {flag}"
    )


# ---------------------------------------------------------------- raw data


def _kind(path: Path) -> str | None:
    """The reader for a file name (compressed files by their inner suffix: reviews.csv.gz is csv)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return SUFFIXES.get(suffixes[-1]) if suffixes else None


def _reader(path: Path) -> str | None:
    """``_kind``, and "text" for a file with no extension or ``.txt`` (its layout is sniffed)."""
    if not path.suffix or [s.lower() for s in path.suffixes][-1:] == [".txt"]:
        return "text"
    return _kind(path)


def _open_text(path: Path, encoding: str = "utf-8-sig"):
    opener = COMPRESSIONS.get(path.suffix.lower(), open)
    return opener(path, "rt", encoding=encoding, newline="")


def read_file(path: Path, settings: DataSettings | None = None) -> pd.DataFrame:
    """A file as a DataFrame of its raw values; parser errors become one line with the file's name."""
    kind, no_header = _reader(path), settings is not None and settings.no_header
    if kind is None:
        raise UsageError(
            f"unsupported file type '{path.name}': use .parquet, .csv, .tsv, .txt, .jsonl or .json "
            f"(optionally compressed: {', '.join(COMPRESSIONS)})"
        )
    try:
        if kind == "parquet":
            df = pd.read_parquet(path)
        elif kind in ("csv", "tsv", "text"):
            df = _read_table(path, kind, settings or DataSettings())
        elif kind == "jsonl":
            df = _read_jsonl(path)
        else:
            df = _read_json(path)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser error becomes one clear line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""  # some parsers say nothing
        raise UsageError(
            f"cannot read {path}: {exc.__class__.__name__}{': ' + reason if reason else ''}: "
            f"check that it is a valid .{kind} file"
        ) from exc
    if no_header:  # columns are 0-based positions, whatever the format
        df.columns = range(df.shape[1])
    return df


def _read_table(path: Path, kind: str, settings: DataSettings) -> pd.DataFrame:
    """A delimited or line-per-example file, laid out by ``core.formats`` (sniffed unless given)."""
    with _open_text(path, "latin-1") as handle:  # any bytes decode: enough to see the layout
        sample = handle.read(64 * 1024)
    layout = formats.sniff(sample, path.name, kind, formats.separator_of(settings.separator))
    if layout in ("fasttext", "space"):
        with _open_text(path, _encoding(path)) as handle:
            return formats.read_lines(handle.read(), layout, path.name)
    if kind == "text":
        with _open_text(path, _encoding(path)) as handle:
            df = formats.read_delimited(handle.read(), layout)
    else:
        df = _read_delimited(path, layout, True)
    return formats.arrange(df, path.name, settings.text_column, settings.label_column, settings.no_header)


def _encoding(path: Path) -> str:
    """The first of UTF-8, cp1252 and latin-1 that decodes the file (a warning for each that fails)."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            with _open_text(path, encoding) as handle:
                while handle.read(1 << 20):
                    pass
            return encoding
        except UnicodeDecodeError:
            log.warning("%s is not %s text: trying the next encoding", path.name, encoding)
    return "latin-1"


def _read_delimited(path: Path, sep: str, no_header: bool) -> pd.DataFrame:
    """CSV/TSV as strings, exactly as written: no "NA" -> NaN, no "1" -> 1.0; a BOM is dropped, quoted
    newlines are kept; a non-UTF-8 file is read as cp1252 (with a warning); a .csv separated by
    ';', tab or '|' is detected when commas give one column."""
    kwargs = {
        "sep": sep,
        "header": None if no_header else "infer",
        "dtype": str,
        "keep_default_na": False,
        "na_filter": False,
    }
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            with _open_text(path, encoding) as handle:
                sample = handle.read(64 * 1024)
            df = pd.read_csv(path, encoding=encoding, **kwargs)
            break
        except UnicodeDecodeError:
            log.warning("%s is not %s text: trying the next encoding", path.name, encoding)
    if df.shape[1] == 1 and sep == ",":
        first = sample.splitlines()[0] if sample else ""
        for other in (";", "\t", "|"):
            if other in first:
                log.warning("%s is separated by %r, not commas: read it so", path.name, other)
                return pd.read_csv(path, encoding=encoding, **(kwargs | {"sep": other}))
    return df


def _read_jsonl(path: Path) -> pd.DataFrame:
    """JSON Lines, one object per line; an error names the line (pandas gives a byte offset)."""
    records = []
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(
                    f"cannot read {path}: line {number} is not valid JSON ({exc.msg}, column "
                    f"{exc.colno}): fix or delete that line"
                ) from None
            if not isinstance(record, dict):
                raise UsageError(
                    f"cannot read {path}: line {number} is a JSON {type(record).__name__}, not an "
                    'object: write one {"text": ..., "label": ...} object per line'
                )
            records.append(record)
    return pd.DataFrame.from_records(records)


def _read_json(path: Path) -> pd.DataFrame:
    """A .json file: an array of objects, an object of columns, {"data": [...]}, or JSON Lines."""
    with _open_text(path) as handle:
        text = handle.read()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # more than one value: JSON Lines under a .json name
            return _read_jsonl(path)
        raise UsageError(
            f"cannot read {path}: line {exc.lineno} is not valid JSON ({exc.msg}, column "
            f"{exc.colno}): fix the file"
        ) from None
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1:
            value = lists[0]
        elif all(isinstance(v, list) for v in value.values()):
            return pd.DataFrame(value)
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return pd.DataFrame.from_records(value)
    raise UsageError(f"cannot read {path}: expected an array of objects (one per example) or JSON Lines")


def _split_files(folder: Path) -> dict[str, list[Path]]:
    """Each split's files in a folder (or its data/ subfolder, the Hub's layout): train.csv, dev.tsv,
    validation.jsonl, test.parquet, or shards such as train-00000-of-00002.parquet."""
    found: dict[str, list[Path]] = {}
    for where in (folder, folder / "data"):
        files = sorted(p for p in where.iterdir() if p.is_file() and _reader(p)) if where.is_dir() else []
        for split, names in SPLIT_NAMES.items():
            for path in files:
                stem = path.name.split(".")[0].lower()
                if any(stem == n or stem.startswith((f"{n}-", f"{n}_")) for n in names):
                    found.setdefault(split, []).append(path)
        if found:
            break
    for split, paths in found.items():
        names = {p.name.split(".")[0].lower().split("-")[0].split("_")[0] for p in paths}
        kinds = {_reader(p) for p in paths}
        if len(names) > 1 or len(kinds) > 1:
            raise UsageError(
                f"{folder} has several {split} files ({', '.join(p.name for p in paths)}): keep one per split"
            )
    return found


def load_raw(settings: DataSettings, local_only: bool = False) -> tuple[dict[str, pd.DataFrame], dict] | None:
    """Raw splits as DataFrames with columns ``text`` and ``label`` (``validation``/``test`` may be
    missing), and what happened on the way: source, which file each split came from, rows dropped.
    With ``local_only``, None for a hub dataset (nothing read)."""
    local = local_copy(settings.dataset, settings.data_dir)
    if local is not None:
        if local.is_dir():
            files = _split_files(local)
            if "train" not in files:
                raise UsageError(
                    f"no train file (train.parquet/.csv/.tsv/.txt/.jsonl, or train without extension) in "
                    f"{local}: "
                    "add one or pass the file itself"
                )
            raw = {
                s: pd.concat([read_file(p, settings) for p in paths], ignore_index=True)
                for s, paths in files.items()
            }
            origin = {s: ", ".join(p.name for p in paths) for s, paths in files.items()}
            read = [p for paths in files.values() for p in paths]
        else:
            raw, origin = {"train": read_file(local, settings)}, {"train": local.name}
            read = [local]
        source = str(local.resolve())
    elif (
        settings.dataset.startswith(("/", ".", "~"))
        or settings.dataset.count("/") > 1
        or _kind(Path(settings.dataset)) is not None
    ):  # a path, not a hub id ("name" or "owner/name")
        raise UsageError(f"dataset path '{settings.dataset}' does not exist: check the path")
    else:
        if local_only:
            return None
        if not hub_reachable():
            raise _offline_error("dataset", settings.dataset, settings.data_dir)
        import datasets

        loaded = datasets.load_dataset(settings.dataset)
        raw, origin = {}, {}
        for split, names in SPLIT_NAMES.items():
            name = next((n for n in names if n in loaded), None)
            if name is not None:
                raw[split], origin[split] = loaded[name].to_pandas(), f"hub split {name!r}"
        if "train" not in raw:
            raise UsageError(
                f"hub dataset {settings.dataset!r} has no train split (splits: {', '.join(loaded)})"
            )
        source, read = settings.dataset, []
    frames, dropped = {}, {}
    for split, df in raw.items():
        selected = _select_columns(df, settings, split)
        if selected is None:  # an unlabelled test file (GLUE's test.tsv): carve a labelled one instead
            log.warning("%s has no labels: the test split is carved from train instead", origin[split])
            origin[split] = f"carved from train ({origin[split]} has no labels)"
            continue
        frames[split], dropped[split] = selected
    _check_dropped(dropped, {s: len(df) for s, df in raw.items()}, origin, settings.drop_invalid)
    names = formats.label_names_beside(read, settings.label_names)
    if names:
        formats.name_labels(frames, names, given=bool(settings.label_names))
    info = {
        "source": source,
        "origin": origin,
        "dropped": {s: d for s, d in dropped.items() if any(d.values())},
    }
    return frames, info


def _columns(df: pd.DataFrame, spec: str, option: str, settings: DataSettings, split: str) -> list:
    """The columns ``spec`` names: a column, a comma list of columns, or (--no-header) 0-based numbers."""
    parts = [spec] if spec in df.columns else [p.strip() for p in str(spec).split(",")]
    if settings.no_header:
        if not all(p.isdigit() for p in parts):
            raise UsageError(
                f"with --no-header, {option} takes 0-based column numbers (e.g. {option} 1), got {spec!r}"
            )
        parts = [int(p) for p in parts]
    else:
        parts = [_column_named(df, p) for p in parts]
    missing = [p for p in parts if p not in df.columns]
    if missing:
        if settings.no_header:
            raise UsageError(
                f"{split} split has {df.shape[1]} columns, so column {missing[0]} does not exist: "
                f"pass {option} with a number from 0 to {df.shape[1] - 1}"
            )
        hint = (
            " (no header row? pass --no-header with 0-based column numbers)" if _looks_headerless(df) else ""
        )
        raise UsageError(
            f"{split} split has no column {missing[0]!r} (columns: {', '.join(map(str, df.columns))}): "
            f"pass --text-column/--label-column{hint}"
        )
    return parts


def _column_named(df: pd.DataFrame, name: str):
    """``name`` itself, or the one column that differs from it only by case or surrounding spaces
    (a header " Text" or "Review" answers --text-column text / review)."""
    if name in df.columns:
        return name
    close = [c for c in df.columns if str(c).strip().lower() == name.strip().lower()]
    return close[0] if len(close) == 1 else name


def _looks_headerless(df: pd.DataFrame) -> bool:
    """True when a column name is a long sentence or a number: the header row is probably data."""
    return any(
        len(str(c)) > 40 or str(c).strip().lstrip("-").replace(".", "", 1).isdigit() for c in df.columns
    )


def _text(df: pd.DataFrame, columns: list) -> pd.Series:
    """The text of each row: one column as it is, or several joined by a space (empty parts skipped)."""
    parts = [df[c].map(lambda v: "" if _missing(v) else str(v)) for c in columns]
    if len(parts) == 1:
        return parts[0].astype(object)
    return pd.Series(
        [" ".join(p for p in row if p.strip()) for row in zip(*parts, strict=True)],
        index=df.index,
        dtype=object,
    )


def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays: present
        return False


WHOLE = re.compile(r"[+-]?\d+(\.0*)?")


def label_value(value):
    """One label as the value it means: whole numbers as ints ("1", 1.0 -> 1), other strings stripped."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    text = str(value).strip()
    return int(float(text)) if WHOLE.fullmatch(text) else text


def _select_columns(df: pd.DataFrame, settings: DataSettings, split: str):
    """(text/label frame, rows dropped by reason), or None for a test file without labels."""
    texts = _text(df, _columns(df, settings.text_column, "--text-column", settings, split))
    if split == "test" and not settings.no_header and settings.label_column not in df.columns:
        return None
    labels = _columns(df, settings.label_column, "--label-column", settings, split)
    if len(labels) != 1:
        raise UsageError(f"--label-column takes one column, got {settings.label_column!r}")
    label_column = labels[0]
    no_label = df[label_column].map(_missing).to_numpy(dtype=bool)
    if split == "test" and len(df) and no_label.all():
        return None
    empty_text = ~no_label & texts.map(_missing).to_numpy(dtype=bool)
    keep = ~(no_label | empty_text)
    labels = df[label_column][keep]
    mapping = {value: label_value(value) for value in pd.unique(labels)}
    out = pd.DataFrame({"text": texts[keep].astype(str), "label": labels.map(mapping)}).reset_index(drop=True)
    if out.empty:
        fix = (
            "add rows, or delete the file to carve a test split from train" if split == "test" else "add rows"
        )
        raise UsageError(f"{split} split is empty (no rows with both text and label): {fix}")
    return out, {"no label": int(no_label.sum()), "empty text": int(empty_text.sum())}


def _describe_drops(dropped: dict[str, int]) -> str:
    return " and ".join(
        f"{n} {'without a label' if why == 'no label' else 'with an empty text'}"
        for why, n in dropped.items()
        if n
    )


def _check_dropped(dropped: dict, totals: dict, origin: dict, allow: bool) -> None:
    """Refuse to drop more than DROP_LIMIT of a split without --drop-invalid; say what was dropped."""
    for split, counts in dropped.items():
        n = sum(counts.values())
        if n > DROP_LIMIT * totals[split] and not allow:
            raise UsageError(
                f"{split} split ({origin[split]}): {n} of {totals[split]} rows ({n / totals[split]:.1%}) "
                "are unusable, "
                f"{_describe_drops(counts)}; more than {DROP_LIMIT:.0%} of a split is not dropped silently: "
                "fix the data or the --text-column/--label-column, or pass --drop-invalid to drop them"
            )
    parts = [
        f"{split} {_describe_drops(c)} of {totals[split]}" for split, c in dropped.items() if any(c.values())
    ]
    if parts:
        log.warning("dropped rows: %s", "; ".join(parts))


# ---------------------------------------------------------------- splitting


def _stratified_take(df: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(n rows, the rest), stratified by label when every class can be represented."""
    if n >= len(df):
        return df, df.iloc[:0]
    from sklearn.model_selection import train_test_split

    counts = df["label"].value_counts()
    stratify = df["label"] if counts.min() >= 2 and counts.size <= n <= len(df) - counts.size else None
    taken, rest = train_test_split(df, train_size=n, stratify=stratify, random_state=seed)
    return taken.reset_index(drop=True), rest.reset_index(drop=True)


def encode_labels(frames: dict[str, pd.DataFrame]) -> list[str]:
    """Map labels to 0..k-1 in place (sorted train labels); refuse unusable label sets."""
    train_labels = frames["train"]["label"]
    values = sorted(train_labels.unique().tolist(), key=lambda v: (str(type(v)), v))
    regression = data_check.regression_problem(values)
    if regression:
        raise UsageError(regression)
    if len(values) < 2:
        raise UsageError(
            f"training data has a single class ({values[0]!r}): a classifier needs two or more labels; "
            "check --label-column and the data"
        )
    index = {v: i for i, v in enumerate(values)}
    for split, df in frames.items():
        unknown = set(df["label"].unique().tolist()) - set(index)
        if unknown:
            raise UsageError(
                f"{split} split has labels not in train "
                f"({', '.join(map(repr, sorted(unknown, key=str)[:3]))}): "
                "make the label sets consistent"
            )
        df["label"] = df["label"].map(index).astype("int64")
    return [str(v) for v in values]


def split_frames(
    frames: dict[str, pd.DataFrame], settings: DataSettings, label_names: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """train/validation/test: test and validation from the data when given, else carved off train."""
    train = given = frames["train"]
    if "test" in frames:
        test = frames["test"]
    else:
        n_test = max(train["label"].nunique(), round(settings.test_fraction * len(train)))
        test, train = _stratified_take(train, n_test, settings.seed)
    if "validation" in frames:
        validation = frames["validation"]
    else:
        n_val = max(train["label"].nunique(), round(settings.validation_fraction * len(train)))
        validation, train = _stratified_take(train, n_val, settings.seed + 1)
    if settings.max_train_samples:
        train, _ = _stratified_take(train, settings.max_train_samples, settings.seed + 2)
    if settings.max_eval_samples:
        validation, _ = _stratified_take(validation, settings.max_eval_samples, settings.seed + 3)
        test, _ = _stratified_take(test, settings.max_eval_samples, settings.seed + 4)
    out = {"train": train, "validation": validation, "test": test}
    for name, df in out.items():
        if df.empty:
            carved = data_check.carved_splits(frames)
            raise UsageError(data_check.small_class_problem(given["label"], label_names, carved, name))
    if train["label"].nunique() < 2:
        raise UsageError("training split has a single class after capping: raise --max-train-samples")
    return out


def frame_hash(df: pd.DataFrame) -> str:
    """Content hash of a split's rows, in order (stable across processes and machines)."""
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values.tobytes()).hexdigest()


# ---------------------------------------------------------------- tokenization


def load_tokenizer(settings: DataSettings):
    """The tokenizer from a local folder, the local mirror, the HF cache, or the hub."""
    from transformers import AutoTokenizer

    local = local_copy(settings.tokenizer, settings.data_dir)
    if local is not None:
        tokenizer, source = AutoTokenizer.from_pretrained(str(local)), str(local.resolve())
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(settings.tokenizer, local_files_only=True)
        except Exception:  # noqa: BLE001 - not in the HF cache: try the hub, quickly
            if not hub_reachable():
                raise _offline_error("tokenizer", settings.tokenizer, settings.data_dir) from None
            tokenizer = AutoTokenizer.from_pretrained(settings.tokenizer)
        source = settings.tokenizer
    tokenizer.padding_side = "right"  # the models find each sequence's end from the attention mask
    if tokenizer.pad_token is None:
        raise UsageError(f"tokenizer '{settings.tokenizer}' has no padding token: pick one that has")
    return tokenizer, source


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _tokenizer_parallelism():
    """Let the Rust tokenizer encode each batch on all cores (2x faster here). The CLI keeps it off
    otherwise (TOKENIZERS_PARALLELISM=false), so that no forked process inherits its thread pool."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM")
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def _tokenize(frames: dict[str, pd.DataFrame], tokenizer, max_length: int) -> datasets.DatasetDict:
    import datasets

    def encode(batch):
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length, return_token_type_ids=False)
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "labels": batch["label"],
        }

    out = {}
    with _tokenizer_parallelism():
        for name, df in frames.items():
            ds = datasets.Dataset.from_pandas(df, preserve_index=False)
            out[name] = ds.map(encode, batched=True, batch_size=1000, remove_columns=ds.column_names)
    return datasets.DatasetDict(out)


def load(settings: DataSettings) -> PreparedData:
    """Load, check and split the data and load the tokenizer, writing nothing: bad input fails here,
    before any store, folder or cache entry exists. ``tokenize`` does the rest."""
    frames, info = load_raw(settings)
    label_names = encode_labels(frames)
    origin = dict(info["origin"])
    carved = {
        "test": f"{settings.test_fraction:g} of train",
        "validation": f"{settings.validation_fraction:g} of "
        "train" + ("" if "test" in frames else " after the test split"),
    }
    for split, share in carved.items():
        if split not in frames:
            reason = origin.get(split, "").partition("(")[2].rstrip(")")
            origin[split] = (
                f"carved from train ({share}, stratified, seeded{'; ' + reason if reason else ''})"
            )
    frames = split_frames(frames, settings, label_names)
    tokenizer, tokenizer_source = load_tokenizer(settings)
    content = {name: frame_hash(df) for name, df in frames.items()}
    fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return PreparedData(
        splits=None,
        tokenizer=tokenizer,
        label_names=label_names,
        fingerprint=fingerprint,
        source=info["source"],
        tokenizer_source=tokenizer_source,
        sizes={name: len(df) for name, df in frames.items()},
        origin={s: origin[s] for s in ("train", "validation", "test")},
        dropped=info["dropped"],
        frames=frames,
        max_length=settings.max_length,
    )


def tokenize(data: PreparedData, settings: DataSettings) -> PreparedData:
    """Fill ``data.splits``: from the on-disk cache, or tokenized now and cached."""
    import datasets

    key_parts = {
        "data": data.fingerprint,
        "tokenizer": tokenizer_fingerprint(data.tokenizer),
        "max_length": settings.max_length,
    }
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(settings.cache_dir) / "tokenized" / key
    splits = _load_cached(cache, data.sizes) if (cache / "dataset_dict.json").exists() else None
    if splits is not None:
        hit = True
        log.info("tokenized splits loaded from cache %s", cache)
    else:
        log.info("tokenizing %s rows (cached afterwards in %s)", sum(map(len, data.frames.values())), cache)
        splits, hit = _tokenize(data.frames, data.tokenizer, settings.max_length), False
        tmp = cache.with_name(f"{key}.tmp-{os.getpid()}")
        splits.save_to_disk(str(tmp))
        sums = {cache_entry.CHECKSUMS: cache_entry.file_checksums(tmp)}
        (tmp / "key.json").write_text(json.dumps(key_parts | {"settings": asdict(settings)} | sums, indent=1))
        try:
            tmp.replace(cache)  # atomic: concurrent workers never read a half-written cache
        except OSError:  # another worker won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
        splits = datasets.load_from_disk(str(cache)) if cache.exists() else splits
    data.splits, data.cache_hit, data.frames = splits, hit, None
    data.sizes = {name: len(ds) for name, ds in splits.items()}
    return data


def _load_cached(cache: Path, sizes: dict) -> datasets.DatasetDict | None:
    """The cached splits, or None (the entry moved out of the way, one warning) when a file is cut,
    changed or does not load: the entry is rebuilt rather than ending the run (core/cache_entry.py)."""
    import datasets

    why = cache_entry.problem(cache)
    if why is None:
        try:
            splits = datasets.load_from_disk(str(cache))
            got = {name: len(ds) for name, ds in splits.items()}
            if got == sizes:
                return splits
            why = f"it holds {got} rows, not {sizes}"
        except Exception as exc:  # noqa: BLE001 - pyarrow/datasets raise many kinds for a damaged file
            why = f"it does not load ({exc.__class__.__name__}: {str(exc)[:120]})"
    log.warning("tokenized cache entry %s is damaged (%s): rebuilding it", cache, why)
    aside = cache.with_name(f"{cache.name}.damaged-{os.getpid()}")
    try:
        cache.replace(aside)  # out of the way first: another worker never reads it half-deleted
    except OSError:
        return None  # another process moved it already
    shutil.rmtree(aside, ignore_errors=True)
    return None


def prepare(settings: DataSettings) -> PreparedData:
    """Load, split and tokenize (or fetch the tokenized splits from the on-disk cache)."""
    return tokenize(load(settings), settings)


def label_counts(splits: datasets.DatasetDict) -> dict[str, list[int]]:
    """Per-split class counts (for checks and the report)."""
    return {name: np.bincount(ds["labels"]).tolist() for name, ds in splits.items()}


# ---------------------------------------------------------------- batching (the training hot path)


class ArrayRows:
    """A tokenized split as flat numpy arrays, converted once from Arrow: ``rows[i]`` is the same
    example as ``split[i]`` (same order, same values) without a per-row Arrow lookup and python-list
    conversion. A plain map-style dataset, so the Trainer's sampler sees the same length and order."""

    def __init__(self, split: datasets.Dataset):
        table = split.with_format("arrow")[:]  # honours any indices mapping
        self.columns = list(table.column_names)
        self._ragged, self._flat = {}, {}
        for name in self.columns:
            column = table.column(name).combine_chunks()
            if hasattr(column, "offsets"):  # a list column: values + offsets
                self._ragged[name] = (
                    column.values.to_numpy(zero_copy_only=False),
                    column.offsets.to_numpy(zero_copy_only=False),
                )
            else:
                self._flat[name] = column.to_numpy(zero_copy_only=False)
        self.length = len(table)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        row = {}
        for name, (values, offsets) in self._ragged.items():
            row[name] = values[offsets[index] : offsets[index + 1]]
        for name, values in self._flat.items():
            row[name] = values[index].item()
        return row

    def __getitems__(self, indices: list[int]) -> list[dict]:
        return [self[i] for i in indices]


class PaddingCollator:
    """What ``DataCollatorWithPadding(tokenizer)`` returns for this harness's columns (right padding
    to the longest row of the batch: ``input_ids`` with the pad id, ``attention_mask`` with 0; int64
    ``labels``), built with numpy instead of ``tokenizer.pad``. Other layouts go to the original."""

    PADDED = {"input_ids": None, "attention_mask": 0}  # None: the tokenizer's pad id

    def __init__(self, tokenizer):
        from transformers import DataCollatorWithPadding

        self.pad_token_id = tokenizer.pad_token_id
        self.right = getattr(tokenizer, "padding_side", "right") == "right"
        self.fallback = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict]) -> dict:
        import torch

        if not self.right or not features or set(features[0]) != {*self.PADDED, "labels"}:
            return self.fallback(features)
        lengths = [len(f["input_ids"]) for f in features]
        width = max(lengths)
        batch = {}
        for name, pad in self.PADDED.items():
            out = np.full((len(features), width), self.pad_token_id if pad is None else pad, dtype=np.int64)
            for r, (feature, n) in enumerate(zip(features, lengths, strict=True)):
                out[r, :n] = feature[name]
            batch[name] = torch.from_numpy(out)
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

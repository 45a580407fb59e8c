"""Load a labelled text dataset (hub id or local files), split it, tokenize it once.

Why it looks like this: every trial of every study must see the same rows, so the split is
seeded and stratified and computed here once; tokenization is the slow step (about 20 s for
IMDB), so the tokenized splits are cached on disk under a key made of the selected rows'
content hash, the tokenizer's identity and ``max_length``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from core.errors import UsageError
from core.settings import DATA_ENV, DataSettings  # noqa: F401 - re-exported: settings are light

log = logging.getLogger(__name__)

SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}
MODEL_COLUMNS = ["input_ids", "attention_mask", "labels"]


@dataclass
class PreparedData:
    """Tokenized train/validation/test splits plus what the rest of the harness needs to know."""

    splits: datasets.DatasetDict
    tokenizer: object
    label_names: list[str]
    fingerprint: str  # content hash of the selected rows of all three splits
    source: str  # where the data came from (local path or hub id)
    tokenizer_source: str
    cache_hit: bool = False
    sizes: dict = field(default_factory=dict)
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
        }


# ---------------------------------------------------------------- resolution


def _mirror(name: str, data_dir: str | None) -> Path | None:
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


def _read_file(path: Path) -> pd.DataFrame:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UsageError(f"unsupported file type '{path.name}': use .parquet, .csv or .jsonl")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_json(path, lines=path.suffix.lower() == ".jsonl")
    except Exception as exc:  # noqa: BLE001 - any parser error becomes one clear line
        reason = str(exc).splitlines()[0] if str(exc).strip() else ""
        raise UsageError(f"cannot read {path}: {exc.__class__.__name__}: {reason}: "
                         "check that it is a valid .parquet/.csv/.jsonl file") from exc


def _find_split(folder: Path, split: str) -> Path | None:
    for suffix in SUFFIXES:
        if (folder / f"{split}{suffix}").exists():
            return folder / f"{split}{suffix}"
    return None


def load_raw(settings: DataSettings) -> tuple[dict[str, pd.DataFrame], str]:
    """Raw splits as DataFrames with columns ``text`` and ``label`` (``test`` may be missing)."""
    local = _mirror(settings.dataset, settings.data_dir)
    if local is not None:
        if local.is_dir():
            files = {s: _find_split(local, s) for s in ("train", "test")}
            if files["train"] is None:
                raise UsageError(f"no train.parquet/.csv/.jsonl in {local}: add one or pass the file itself")
            frames = {s: _read_file(p) for s, p in files.items() if p is not None}
        else:
            frames = {"train": _read_file(local)}
        source = str(local.resolve())
    elif (
        settings.dataset.startswith(("/", ".", "~"))
        or settings.dataset.count("/") > 1
        or Path(settings.dataset).suffix in SUFFIXES
    ):  # a path, not a hub id ("name" or "owner/name")
        raise UsageError(f"dataset path '{settings.dataset}' does not exist: check the path")
    else:
        if not hub_reachable():
            raise _offline_error("dataset", settings.dataset, settings.data_dir)
        loaded = datasets.load_dataset(settings.dataset)
        frames = {s: loaded[s].to_pandas() for s in ("train", "test") if s in loaded}
        source = settings.dataset
    return {s: _select_columns(df, settings, s) for s, df in frames.items()}, source


def _select_columns(df: pd.DataFrame, settings: DataSettings, split: str) -> pd.DataFrame:
    missing = [c for c in (settings.text_column, settings.label_column) if c not in df.columns]
    if missing:
        raise UsageError(
            f"{split} split has no column {missing[0]!r} (columns: {', '.join(map(str, df.columns))}): "
            f"pass --text-column/--label-column"
        )
    out = df[[settings.text_column, settings.label_column]].rename(
        columns={settings.text_column: "text", settings.label_column: "label"}
    )
    out = out.dropna().reset_index(drop=True)
    out["text"] = out["text"].astype(str)
    if out.empty:
        fix = "add rows, or delete the file to carve a test split from train" if split == "test" else "add rows"
        raise UsageError(f"{split} split is empty (no rows with both text and label): {fix}")
    return out


# ---------------------------------------------------------------- splitting


def _stratified_take(df: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(n rows, the rest), stratified by label when every class can be represented."""
    if n >= len(df):
        return df, df.iloc[:0]
    counts = df["label"].value_counts()
    stratify = df["label"] if counts.min() >= 2 and counts.size <= n <= len(df) - counts.size else None
    taken, rest = train_test_split(df, train_size=n, stratify=stratify, random_state=seed)
    return taken.reset_index(drop=True), rest.reset_index(drop=True)


def encode_labels(frames: dict[str, pd.DataFrame]) -> list[str]:
    """Map labels to 0..k-1 in place (sorted train labels); refuse unusable label sets."""
    train_labels = frames["train"]["label"]
    values = sorted(train_labels.unique().tolist(), key=lambda v: (str(type(v)), v))
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
                f"{split} split has labels not in train ({', '.join(map(repr, sorted(unknown, key=str)[:3]))}): "
                "make the label sets consistent"
            )
        df["label"] = df["label"].map(index).astype("int64")
    return [str(v) for v in values]


def split_frames(frames: dict[str, pd.DataFrame], settings: DataSettings) -> dict[str, pd.DataFrame]:
    """train/validation/test: test from the data or carved off, validation always from train."""
    train = frames["train"]
    if "test" in frames:
        test = frames["test"]
    else:
        n_test = max(train["label"].nunique(), round(settings.test_fraction * len(train)))
        test, train = _stratified_take(train, n_test, settings.seed)
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
            raise UsageError(f"{name} split is empty after splitting: use more data or smaller fractions")
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

    local = _mirror(settings.tokenizer, settings.data_dir)
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
    def encode(batch):
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length, return_token_type_ids=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": batch["label"]}

    out = {}
    with _tokenizer_parallelism():
        for name, df in frames.items():
            ds = datasets.Dataset.from_pandas(df, preserve_index=False)
            out[name] = ds.map(encode, batched=True, batch_size=1000, remove_columns=ds.column_names)
    return datasets.DatasetDict(out)


def prepare(settings: DataSettings) -> PreparedData:
    """Load, split and tokenize (or fetch the tokenized splits from the on-disk cache)."""
    frames, source = load_raw(settings)
    label_names = encode_labels(frames)
    frames = split_frames(frames, settings)
    tokenizer, tokenizer_source = load_tokenizer(settings)
    content = {name: frame_hash(df) for name, df in frames.items()}
    fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    key_parts = {"data": fingerprint, "tokenizer": tokenizer_fingerprint(tokenizer), "max_length": settings.max_length}
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(settings.cache_dir) / "tokenized" / key
    if (cache / "dataset_dict.json").exists():
        splits, hit = datasets.load_from_disk(str(cache)), True
        log.info("tokenized splits loaded from cache %s", cache)
    else:
        log.info("tokenizing %s rows (cached afterwards in %s)", sum(map(len, frames.values())), cache)
        splits, hit = _tokenize(frames, tokenizer, settings.max_length), False
        tmp = cache.with_name(f"{key}.tmp-{os.getpid()}")
        splits.save_to_disk(str(tmp))
        (tmp / "key.json").write_text(json.dumps(key_parts | {"settings": asdict(settings)}, indent=1))
        try:
            tmp.replace(cache)  # atomic: concurrent workers never read a half-written cache
        except OSError:  # another worker won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
        splits = datasets.load_from_disk(str(cache)) if cache.exists() else splits
    sizes = {name: len(ds) for name, ds in splits.items()}
    return PreparedData(
        splits=splits,
        tokenizer=tokenizer,
        label_names=label_names,
        fingerprint=fingerprint,
        source=source,
        tokenizer_source=tokenizer_source,
        cache_hit=hit,
        sizes=sizes,
        max_length=settings.max_length,
    )


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
                self._ragged[name] = (column.values.to_numpy(zero_copy_only=False),
                                      column.offsets.to_numpy(zero_copy_only=False))
            else:
                self._flat[name] = column.to_numpy(zero_copy_only=False)
        self.length = len(table)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        row = {}
        for name, (values, offsets) in self._ragged.items():
            row[name] = values[offsets[index]:offsets[index + 1]]
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

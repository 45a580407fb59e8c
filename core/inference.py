"""Use a trained model: save it with what prediction needs, load it back, predict labels.

A saved model folder is complete on its own: weights and config with ``id2label`` holding the
dataset's real label names (strings included), the tokenizer beside them, and the max length the
model was trained with as the tokenizer's ``model_max_length``, so that prediction (here, or
``pipeline(..., truncation=True)``) truncates texts exactly as training did.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from textbench.core import saved_check
from textbench.core.errors import UsageError


def save_model(
    model,
    tokenizer,
    folder: str | Path,
    label_names: Sequence[str],
    max_length: int | None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write model + tokenizer + label names + max length to ``folder``, atomically (a reader never
    sees half a model; with concurrent writers the last complete folder wins)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.id2label = dict(enumerate(map(str, label_names)))
    model.config.label2id = {name: i for i, name in model.config.id2label.items()}
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if max_length is not None:
        config_path = tmp / "tokenizer_config.json"
        tokenizer_config = json.loads(config_path.read_text())
        tokenizer_config["model_max_length"] = int(max_length)
        config_path.write_text(json.dumps(tokenizer_config, indent=2))
    for name, text in (extra_files or {}).items():
        (tmp / name).write_text(text)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        tmp.replace(folder)
    except OSError:  # another process saved the same model at the same moment; keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


@dataclass
class Classifier:
    """A saved model with its own tokenizer, max length and label names."""

    model: torch.nn.Module
    tokenizer: object
    max_length: int
    label_names: list[str]

    @classmethod
    def load(cls, folder: str | Path) -> Classifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        import textbench.core.models  # noqa: F401 - registers the textbench model types with the Auto classes

        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise UsageError(f"no saved model in {folder} (config.json missing)")
        damaged = saved_check.problem(folder)
        if damaged is None:
            try:
                model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
                tokenizer = AutoTokenizer.from_pretrained(str(folder))
            except Exception as exc:  # noqa: BLE001 - transformers/safetensors raise many kinds
                damaged = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if damaged:
            raise UsageError(
                f"the saved model in {folder} does not load: {damaged}: re-create it with "
                "`python benchmark.py rerun --name NAME --arch FAMILY --trial N --save` "
                "(a benchmark's model; `predict --name NAME` names the exact command)"
            )
        tokenizer.padding_side = "right"  # the models find each sequence's end from the attention mask
        labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        return cls(model, tokenizer, int(tokenizer.model_max_length), labels)

    def probabilities(
        self, texts: Sequence[str], batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        """Class probabilities, one row per text (softmax of the logits), in batches."""
        from tqdm.auto import tqdm

        out = []
        starts = range(0, len(texts), batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="predict", unit="batch", disable=not progress or len(starts) < 2):
                batch = self.tokenizer(
                    [str(t) for t in texts[start : start + batch_size]],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                    return_token_type_ids=False,
                )
                logits = self.model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
                out.append(torch.softmax(logits.float(), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.label_names)))

    def predict(self, texts: Sequence[str], batch_size: int = 256, progress: bool = False) -> pd.DataFrame:
        """``label`` (the original label name) and ``prob_<label>`` per class, one row per text."""
        probs = self.probabilities(list(texts), batch_size, progress)
        frame = pd.DataFrame(
            {"label": [self.label_names[i] for i in probs.argmax(axis=1)]}
            if len(probs)
            else {"label": pd.Series([], dtype=str)}
        )
        for i, name in enumerate(self.label_names):
            frame[f"prob_{name}"] = probs[:, i]
        return frame


# ---------------------------------------------------------------- files in, files out

OUTPUT_SUFFIXES = (".csv", ".jsonl", ".parquet")


def saved_labels(folder: str | Path) -> tuple[list[str], int | None]:
    """(label names, max length) of a saved model, read from its config files (no weights loaded)."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    max_length = json.loads((folder / "tokenizer_config.json").read_text()).get("model_max_length")
    return [id2label[i] for i in sorted(id2label)], max_length


def read_texts(path: str | Path, text_column: str) -> pd.DataFrame:
    """A .csv/.jsonl/.parquet file with a ``text_column``; one-line errors for what cannot be used."""
    from textbench.core.data import read_file

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--input {path} does not exist: pass a .csv, .jsonl or .parquet file")
    if path.stat().st_size == 0:
        raise UsageError(f"--input {path} is empty: pass a file with a {text_column!r} column and rows")
    frame = read_file(path)
    if text_column not in frame.columns:
        raise UsageError(
            f"{path} has no column {text_column!r} (columns: {', '.join(map(str, frame.columns))}): "
            "pass --text-column"
        )
    if frame.empty:
        raise UsageError(f"{path} has no rows: nothing to predict")
    for column in frame.columns:  # CSV cells are read as text; passed-through numbers stay numbers
        if column != text_column:
            try:
                frame[column] = pd.to_numeric(frame[column])
            except (ValueError, TypeError):
                pass
    return frame


def check_output(path: str | Path | None) -> None:
    if path is not None and Path(path).suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"--output {path}: use a .csv, .jsonl or .parquet file name")


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)


def _as_label(value) -> str:
    """A label value as the text ``encode_labels`` made of it (1.0 read from a CSV with blanks is 1,
    " pos" is pos), as the training data was read."""
    from textbench.core.data import label_value

    return str(label_value(value))


def accuracy(
    true_labels: Sequence, predicted: Sequence[str], label_names: Sequence[str]
) -> tuple[float, int]:
    """(accuracy, rows whose true label the model does not know), comparing label names as text."""
    true = [_as_label(v) for v in true_labels]
    unknown = sum(t not in set(label_names) for t in true)
    return float(np.mean([t == p for t, p in zip(true, predicted, strict=True)])), unknown

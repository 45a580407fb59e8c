"""Whether a saved model folder can be loaded, checked from its files without building the model.

A model folder cut short (a full disk while saving, a copy interrupted, a file edited by hand)
otherwise fails deep inside safetensors or transformers with a traceback that does not say how to
get the model back. ``problem`` reads the JSON files and the safetensors header (its declared
tensor sizes against the file's length), which is cheap; callers turn the answer into one error
line that names the command recreating the model (``rerun ... --save``).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

JSON_FILES = ("config.json", "tokenizer_config.json")


def problem(folder: str | Path) -> str | None:
    """Why the saved model in ``folder`` cannot be loaded (one phrase), or None."""
    folder = Path(folder)
    for name in JSON_FILES:
        try:
            json.loads((folder / name).read_text())
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, ValueError) as exc:
            return f"{name} is unreadable ({exc.__class__.__name__})"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not list(folder.glob("pytorch_model*.bin")):
        return "its weights (model.safetensors) are missing"
    for path in weights:
        why = _safetensors_problem(path)
        if why:
            return f"{path.name} {why}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """The format: 8 bytes little-endian header length, a JSON header whose ``data_offsets`` end
    at the data's length, then the data (https://github.com/huggingface/safetensors#format)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return "is cut short (no header)"
        (length,) = struct.unpack("<Q", head)
        if 8 + length > size:
            return f"is cut short ({size} bytes, its header alone needs {8 + length})"
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            return "has an unreadable header"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + length + end != size:
        return f"is cut short or padded ({size} bytes, its tensors need {8 + length + end})"
    return None

"""Predicted (or true) labels of a split, packed small enough to live in a study's user attrs.

Every family is tested on the same examples, so comparing their per-example predictions pairs
the comparison (the reports' paired bootstrap). A run's 25,000 IMDB predictions as JSON ints
would be ~50 KB per run; as zlib-compressed int16 bytes in base64 they are a few KB.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np


def pack(labels) -> str:
    """Class ids (non-negative ints below 32768) -> compact ASCII text."""
    values = np.asarray(labels)
    if values.ndim != 1 or (values.size and (values.min() < 0 or values.max() > np.iinfo(np.int16).max)):
        raise ValueError("pack takes a 1-d sequence of class ids between 0 and 32767")
    return base64.b64encode(zlib.compress(values.astype("<i2").tobytes(), 9)).decode("ascii")


def unpack(text: str) -> np.ndarray:
    """The inverse of ``pack``: a 1-d int64 array."""
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<i2").astype(np.int64)

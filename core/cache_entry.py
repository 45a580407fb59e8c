"""Check a tokenized-cache entry before trusting it, so that a damaged one is rebuilt, not fatal.

A cache entry is written once (to a temporary folder, then renamed) and read by every later run;
a disk error, a full disk during an earlier copy or a user's tool can still cut or change one of
its ``.arrow`` files, and ``datasets.load_from_disk`` then fails in pyarrow (or, worse, loads other
tokens). Each entry records the SHA-256 of its files in ``key.json``; ``problem`` compares them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CHECKSUMS = "checksums"  # the key of key.json that holds {relative path: sha256}


def file_checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every data file of a saved DatasetDict (the ``.arrow`` shards)."""
    out = {}
    for path in sorted(Path(folder).rglob("*.arrow")):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        out[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return out


def problem(folder: Path) -> str | None:
    """Why the entry at ``folder`` cannot be trusted (one phrase), or None when its files match."""
    folder = Path(folder)
    try:
        recorded = json.loads((folder / "key.json").read_text()).get(CHECKSUMS)
    except (OSError, ValueError):
        return "its key.json is missing or unreadable"
    if not isinstance(recorded, dict):
        return None  # an entry from before checksums: trusted if it loads
    actual = file_checksums(folder)
    for name, digest in recorded.items():
        if name not in actual:
            return f"{name} is missing"
        if actual[name] != digest:
            return f"{name} fails its checksum"
    return None

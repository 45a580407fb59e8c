"""A full disk, said in one line: which folder is full, how much is free, and that the same
command resumes (everything finished is on disk already: studies, cache, models are written
atomically, and a torn journal record is moved aside on the next open).

Writers fail in different words: ``OSError`` with ``errno.ENOSPC`` from Python, SQLite's "database or
disk is full" (MLflow's store), safetensors'
``SafetensorError`` ("IoError ... StorageFull"), pyarrow's ``ArrowIOError``; each is recognised here
by its errno or its message, anywhere in the exception's chain.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

FULL_DISK_EXIT = 4
MARKERS = ("No space left on device", "StorageFull", "Disk quota exceeded", "database or disk is full")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_full_disk(exc: BaseException) -> bool:
    return any(
        (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT))
        or any(m in str(e) for m in MARKERS)
        for e in _chain(exc)
    )


def full_disk_message(exc: BaseException, output_dir: str | Path) -> str | None:
    """The one line for a full disk (None for any other error)."""
    if not is_full_disk(exc):
        return None
    named = next((e.filename for e in _chain(exc) if isinstance(e, OSError) and e.filename), None)
    folder = Path(named).parent if named else Path(output_dir)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free / 1024**2
    return (
        f"no space left on the disk of {folder} ({free:.0f} MB free): free some space (or pass another "
        "--output-dir), then rerun the same command: finished trials and models are kept and it resumes"
    )

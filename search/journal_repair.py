"""Heal a journal file whose records were torn by a crash, a kill during a write or a full disk.

Optuna's ``JournalFileBackend`` reads the file line by line and raises on the first line that is
not JSON once another line follows it, so a half-written record (the first bytes of one, with or
without the next record glued on after it) makes every later command on that store fail. Here,
before Optuna reads it, the file is checked under Optuna's own write lock (no other process is
half-way through an append while it is held): every complete record is kept, in order; the bytes
that are no complete record are moved to ``PATH.torn-TIMESTAMP`` beside it (never deleted) and one
warning says so. A record glued onto a torn one (a later append after the crash) is recovered.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock

log = logging.getLogger(__name__)

RECORD_START = b'{"op_code":'  # how every Optuna journal record starts (json.dumps of a dict, op_code first)


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False


def split_records(data: bytes) -> tuple[bytes, bytes]:
    """(the complete records, the torn bytes): each line that is a JSON object ending in a newline
    is kept; a bad line keeps its last ``{"op_code":...}`` suffix when that suffix is a record."""
    good, torn = [], []
    for line in data.splitlines(keepends=True):
        if line.endswith(b"\n") and _is_record(line):
            good.append(line)
            continue
        cut = line.rfind(RECORD_START, 1)
        if cut > 0 and line.endswith(b"\n") and _is_record(line[cut:]):
            torn.append(line[:cut])
            good.append(line[cut:])
        else:
            torn.append(line)
    return b"".join(good), b"".join(torn)


def repair_journal(path: str | Path) -> Path | None:
    """Move the torn bytes of journal ``path`` aside; return the file they went to (None if whole)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0 or not os.access(path.parent, os.W_OK):
        return None  # nothing to check, or a read-only store (Optuna reads what it can)
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        good, torn = split_records(data)
        if not torn:
            return None
        aside = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        aside.write_bytes(torn)
        if data.startswith(good):  # only the tail: truncate, so readers' byte offsets stay valid
            with open(path, "r+b") as handle:
                handle.truncate(len(good))
                os.fsync(handle.fileno())
        else:
            tmp = path.with_name(path.name + ".repair")
            tmp.write_bytes(good)
            os.replace(tmp, path)
    finally:
        lock.release()
    log.warning(
        "%s had an incomplete record (%d bytes, from a crash or a full disk): moved it to %s; "
        "going on from the last complete record",
        path,
        len(torn),
        aside,
    )
    return aside

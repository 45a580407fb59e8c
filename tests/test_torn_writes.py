"""A crash, a kill during a write or a full disk leaves a half-written record at the end of the
journal; the store must open anyway, keep every finished trial and keep the torn bytes aside."""

from __future__ import annotations

import logging

import optuna
import pytest

from textbench.search.journal_repair import split_records
from textbench.search.study import make_storage

TORN = b'{"op_code":6,"worker_id":"x","trial_id":3,"sta'  # the first bytes of a record


def _study(path, n: int) -> list[float]:
    study = optuna.create_study(storage=make_storage(str(path)), study_name="s", load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
    return [t.value for t in study.get_trials() if t.state.is_finished()]


def test_torn_tail_is_moved_aside_and_every_trial_kept(tmp_path, caplog):
    journal = tmp_path / "optuna.journal"
    values = _study(journal, 3)
    whole = journal.read_bytes()
    with open(journal, "ab") as handle:
        handle.write(TORN)
    with caplog.at_level(logging.WARNING):
        storage = make_storage(str(journal))
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.value for t in study.get_trials()] == values  # every finished trial, in order
    assert journal.read_bytes() == whole
    (aside,) = tmp_path.glob("optuna.journal.torn-*")
    assert aside.read_bytes() == TORN  # kept, never deleted
    assert len([r for r in caplog.records if "incomplete record" in r.getMessage()]) == 1
    assert len(_study(journal, 2)) == 5  # and the search goes on from there


def test_a_record_glued_onto_a_torn_one_is_recovered(tmp_path):
    """A process that had the store open before the crash appends right after the torn bytes: the
    record it wrote is kept, the torn prefix alone is moved aside."""
    journal = tmp_path / "optuna.journal"
    _study(journal, 2)
    lines = journal.read_bytes().splitlines(keepends=True)
    glued = b"".join(lines[:-2]) + TORN + b"".join(lines[-2:])
    journal.write_bytes(glued)
    with pytest.raises(ValueError):  # what users got before: Optuna cannot read it
        optuna.load_study(
            study_name="s",
            storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))),
        )
    study = optuna.load_study(study_name="s", storage=make_storage(str(journal)))
    assert len([t for t in study.get_trials() if t.state.is_finished()]) == 2
    assert b"".join(lines) == journal.read_bytes()
    (aside,) = tmp_path.glob("optuna.journal.torn-*")
    assert aside.read_bytes() == TORN


def test_split_records_by_hand():
    a, b = b'{"op_code":0,"a":1}\n', b'{"op_code":1,"b":2}\n'
    assert split_records(a + b) == (a + b, b"")
    assert split_records(a + b[:7]) == (a, b[:7])
    assert split_records(a + b"garbage\n" + b) == (a + b, b"garbage\n")
    assert split_records(a + b"\xff\xfe" + b) == (a + b, b"\xff\xfe")


def test_whole_journal_is_left_alone(tmp_path):
    journal = tmp_path / "optuna.journal"
    _study(journal, 2)
    before = journal.stat().st_mtime_ns, journal.read_bytes()
    make_storage(str(journal))
    assert (journal.stat().st_mtime_ns, journal.read_bytes()) == before
    assert not list(tmp_path.glob("optuna.journal.torn-*"))

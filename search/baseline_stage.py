"""The linear baseline stage: fit once per benchmark (data + tokenization), store, log.

The result is stored on every study of the benchmark (user attribute ``baseline``), so the
report finds it wherever it looks and a resumed benchmark reuses it instead of refitting.
"""

from __future__ import annotations

import logging

import optuna

from textbench.core.baseline import fit_baseline

log = logging.getLogger(__name__)


def cached_baseline(studies: dict[str, optuna.Study], fingerprint: str, max_length: int) -> dict | None:
    for study in studies.values():
        stored = study.user_attrs.get("baseline")
        if (
            stored
            and stored.get("fingerprint") == fingerprint
            and stored.get("max_length") == max_length
            and "test_predictions" in stored
        ):  # older records lack what the paired comparison needs
            return stored
    return None


def run_baseline(studies: dict[str, optuna.Study], data, *, name: str, max_length: int, tracker=None) -> dict:
    """The baseline record of benchmark ``name`` on the prepared ``data``, fitted now or found in the
    studies."""
    record = cached_baseline(studies, data.fingerprint, max_length)
    if record is None:
        log.info("fitting the TF-IDF + logistic regression baseline")
        record = fit_baseline(data) | {"max_length": max_length}
        if tracker is not None:
            tracker.baseline_run(name, record)
    for study in studies.values():
        if study.user_attrs.get("baseline") != record:
            study.set_user_attr("baseline", record)
    return record

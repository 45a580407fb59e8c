"""The TF-IDF + logistic regression reference: fair inputs, chosen on validation, cached."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from textbench.core import baseline as baseline_module
from textbench.core.baseline import fit_baseline
from textbench.search.baseline_stage import run_baseline


def test_fits_and_beats_chance_on_tiny_separable_data(tiny_data):
    record = fit_baseline(tiny_data)
    assert record["test_accuracy"] > 0.8 and record["validation_accuracy"] > 0.8
    assert record["C"] in record["C_grid"] and set(baseline_module.C_GRID) <= set(record["C_grid"])
    assert record["fingerprint"] == tiny_data.fingerprint


def test_regularisation_is_chosen_on_validation_not_test(tiny_data, monkeypatch):
    """Make validation favour one C and test another: the choice must follow validation."""
    seen = []

    class Spy(baseline_module.LogisticRegression):
        def predict(self, features):
            seen.append((self.C, features.shape[0]))
            return super().predict(features)

    monkeypatch.setattr(baseline_module, "LogisticRegression", Spy)
    record = fit_baseline(tiny_data, grid=(0.01, 1.0))
    n_val, n_test = len(tiny_data.splits["validation"]), len(tiny_data.splits["test"])
    # Every C is scored on validation (the grid widened past an edge best); test once, with the chosen C.
    assert sorted(seen[:-1]) == [(c, n_val) for c in record["C_grid"]]
    assert {0.01, 1.0} <= set(record["C_grid"])
    assert seen[-1] == (record["C"], n_test)
    assert record["validation_accuracy"] == max(record["validation_by_C"].values())


def test_reads_the_same_truncated_tokens_as_the_models(tiny_data):
    special = set(tiny_data.tokenizer.all_special_ids)
    docs = baseline_module._documents(tiny_data.splits["train"], special)
    first = [int(t) for t in docs[0].split()]
    ids = [i for i in tiny_data.splits["train"][0]["input_ids"] if i not in special]
    assert first == ids and len(ids) <= 64  # max_length of the tiny data


def test_the_stage_stores_on_every_study_and_reuses_the_fit(tiny_data, monkeypatch):
    studies = {family: optuna.create_study(direction="maximize") for family in ("cnn", "rnn")}
    first = run_baseline(studies, tiny_data, name="b", max_length=64)
    assert all(s.user_attrs["baseline"] == first for s in studies.values())

    monkeypatch.setattr("textbench.search.baseline_stage.fit_baseline", lambda data: pytest.fail("refitted"))
    assert (
        run_baseline(studies, tiny_data, name="b", max_length=64) == first
    )  # a resumed benchmark does not refit
    assert np.isclose(first["test_accuracy"], studies["rnn"].user_attrs["baseline"]["test_accuracy"])


def test_grid_widens_past_an_edge_best_and_flags_it(tiny_data, monkeypatch):
    """Validation accuracy rising with C without end: the grid grows MAX_WIDEN decades, then flags."""

    class MoreIsBetter(baseline_module.LogisticRegression):
        def predict(self, features):
            pred = super().predict(features)
            if features.shape[0] == len(tiny_data.splits["validation"]):
                labels = np.asarray(tiny_data.splits["validation"]["labels"])
                wrong = max(0, len(labels) - int(np.log10(self.C) + 10))  # right on more rows as C grows
                pred = labels.copy()
                pred[:wrong] = (labels[:wrong] + 1) % 2
            return pred

    monkeypatch.setattr(baseline_module, "LogisticRegression", MoreIsBetter)
    record = fit_baseline(tiny_data, grid=(0.1, 1.0, 10.0))
    assert record["C_grid"] == pytest.approx([0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0])
    assert record["C"] == pytest.approx(10000.0) and record["C_at_edge"] is True


def test_interior_best_is_not_flagged(tiny_data):
    record = fit_baseline(tiny_data)
    assert record["C_at_edge"] == (record["C"] in (record["C_grid"][0], record["C_grid"][-1]))
    preds = baseline_module.predictions.unpack(record["test_predictions"])
    labels = np.asarray(tiny_data.splits["test"]["labels"])
    assert (preds == labels).mean() == pytest.approx(record["test_accuracy"])

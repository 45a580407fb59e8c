"""TF-IDF + logistic regression: the linear reference every neural family has to beat.

It reads the same tokens the neural models read (the same tokenizer, the same ``max_length``
truncation), so the comparison is fair; its regularisation strength is chosen on the validation
split, and the test split is scored once, with the chosen model. A best C on the edge of the grid
means the optimum may lie beyond it, so the grid is extended by decades on that side (up to
``MAX_WIDEN`` times); if the best C is still on the edge, the record says so (``C_at_edge``).
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from textbench.core import predictions

NAME = "tfidf-logreg"
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
MAX_WIDEN = 3


def _documents(split, special_ids: set[int]) -> list[str]:
    """Token ids as space-separated words, special tokens ([CLS], [SEP], ...) dropped."""
    return [" ".join(str(i) for i in ids if i not in special_ids) for ids in split["input_ids"]]


def _best(scores: dict[float, float]) -> float:
    """The best validation score; ties go to the less extreme C."""
    return max(scores, key=lambda c: (scores[c], -abs(np.log10(c))))


def fit_baseline(data, grid=C_GRID) -> dict:
    """Fit on train, choose C on validation, score test once. ``data`` is a ``core.data.PreparedData``."""
    start = time.perf_counter()
    special = set(data.tokenizer.all_special_ids)
    docs = {name: _documents(data.splits[name], special) for name in ("train", "validation", "test")}
    labels = {name: np.asarray(data.splits[name]["labels"]) for name in docs}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"\S+", min_df=2, sublinear_tf=True)
    features = {"train": vectorizer.fit_transform(docs["train"])}
    features.update({name: vectorizer.transform(docs[name]) for name in ("validation", "test")})
    scores, models = {}, {}

    def fit_c(c: float) -> None:
        model = LogisticRegression(C=c, max_iter=2000)
        model.fit(features["train"], labels["train"])
        scores[c] = float((model.predict(features["validation"]) == labels["validation"]).mean())
        models[c] = model

    grid = sorted(grid)
    for c in grid:
        fit_c(c)
    best_c = _best(scores)
    for _ in range(MAX_WIDEN):  # the best on an edge: the optimum may lie past it, look one decade further
        if best_c == grid[0]:
            grid.insert(0, grid[0] / 10)
            fit_c(grid[0])
        elif best_c == grid[-1] and len(grid) > 1:
            grid.append(grid[-1] * 10)
            fit_c(grid[-1])
        else:
            break
        best_c = _best(scores)
    at_edge = len(grid) > 1 and best_c in (grid[0], grid[-1])
    test_pred = models[best_c].predict(features["test"])
    test_accuracy = float((test_pred == labels["test"]).mean())
    return {
        "name": NAME,
        "C": best_c,
        "validation_accuracy": scores[best_c],
        "test_accuracy": test_accuracy,
        "validation_by_C": {str(c): scores[c] for c in grid},
        "C_grid": [float(c) for c in grid],
        "C_at_edge": bool(at_edge),
        "test_predictions": predictions.pack(test_pred),
        "n_features": int(features["train"].shape[1]),
        "fit_seconds": round(time.perf_counter() - start, 2),
        "fingerprint": data.fingerprint,
    }

"""Synthetic benchmarks for the report tests: studies written by ask/tell exactly as the search stage would.

No training: accuracies come from a small made-up response surface plus seeded noise, so the
tests (and a demo page) get realistic-looking studies in milliseconds.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from textbench.core import predictions as packed

optuna.logging.set_verbosity(optuna.logging.WARNING)

BASELINE = {
    "name": "tfidf-logreg",
    "validation_accuracy": 0.842,
    "test_accuracy": 0.838,
    "C": 4.0,
    "fit_seconds": 3.2,
}
QUALITY = {"cnn": 0.86, "rnn": 0.82, "gru": 0.85, "lstm": 0.855, "tiny": 0.70, "dummy": 0.56}
N_TEST = 600  # test examples when predictions are stored (``predictions=True``)


def fixture_labels() -> np.ndarray:
    """Test labels shared by every study of a fixture: 55% class 0, so chance is 0.55."""
    return np.array([0] * 330 + [1] * 270)


def predictions_with(accuracy: float, rng: np.random.Generator, family: str) -> np.ndarray:
    """Predictions right on ``accuracy`` of the fixture's examples; "dummy" always says the majority class."""
    labels = fixture_labels()
    if family == "dummy":
        return np.zeros_like(labels)
    wrong = rng.choice(len(labels), int(round((1 - accuracy) * len(labels))), replace=False)
    out = labels.copy()
    out[wrong] = 1 - out[wrong]
    return out


def sqlite_storage(path: Path) -> tuple[str, optuna.storages.RDBStorage]:
    """(url, storage) of a new SQLite file written without fsync: same format, 20x faster to fill."""

    def connect() -> sqlite3.Connection:
        con = sqlite3.connect(path, check_same_thread=False)
        con.execute("PRAGMA synchronous=OFF")
        return con

    url = f"sqlite:///{path}"
    return url, optuna.storages.RDBStorage(url, engine_kwargs={"creator": connect})


def settings(n_trials: int, **overrides: Any) -> dict[str, Any]:
    base = {
        "dataset": "imdb",
        "fingerprint": "f00dfeed",
        "tokenizer": "bert-base-uncased",
        "max_length": 256,
        "train_size": 20000,
        "validation_size": 5000,
        "test_size": 25000,
        "labels": ["neg", "pos"],
        "max_steps": 1000,
        "eval_steps": 100,
        "batch_size": 32,
        "patience": 3,
        "seed": 42,
        "sampler": "TPESampler",
        "pruner": "MedianPruner",
        "target_trials": n_trials,
        "top_k": 3,
        "final_seeds": 3,
    }
    return {**base, **overrides}


def suggest(trial: optuna.Trial, family: str) -> dict[str, Any]:
    """Search spaces shaped like the real ones (cnn; rnn-like for everything else)."""
    params = {
        "embedding_dim": trial.suggest_int("embedding_dim", 32, 256, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
    }
    if family == "cnn":
        params["filter_size"] = trial.suggest_int("filter_size", 2, 7)
        params["num_filters"] = trial.suggest_int("num_filters", 32, 256, step=32)
    else:
        params["hidden_size"] = trial.suggest_int("hidden_size", 32, 256, log=True)
        params["num_layers"] = trial.suggest_int("num_layers", 1, 3)
        if family == "rnn":
            params["nonlinearity"] = trial.suggest_categorical("nonlinearity", ["tanh", "relu"])
    return params


def _quality(family: str, params: dict[str, Any], rng: np.random.Generator) -> float:
    lr_penalty = 0.04 * (math.log10(params["learning_rate"]) + 2.5) ** 2
    size_bonus = 0.01 * math.log2(params["embedding_dim"] / 32) / 3
    return float(
        np.clip(QUALITY.get(family, 0.8) - lr_penalty + size_bonus + rng.normal(0, 0.006), 0.5, 0.99)
    )


def _curve(target: float, n_evals: int, eval_steps: int) -> list[dict[str, float]]:
    rows = []
    for i in range(1, n_evals + 1):
        frac = 1 - math.exp(-1.2 * i)
        rows.append(
            {
                "step": i * eval_steps,
                "loss": 0.7 * (1 - frac) + 1.6 * (1 - target),
                "learning_rate": 1e-3,
                "eval_loss": 0.69 - (0.69 - 2.2 * (1 - target)) * frac,
                "eval_accuracy": 0.5 + (target - 0.5) * frac,
            }
        )
    return rows


def make_study(
    storage: str | optuna.storages.BaseStorage,
    bench: str,
    family: str,
    n_trials: int = 12,
    *,
    rng_seed: int = 0,
    pruned: tuple[int, ...] = (3, 7),
    failed: tuple[int, ...] = (5,),
    final: bool = True,
    baseline: dict[str, Any] | None = BASELINE,
    labels: list[str] | None = None,
    n_seeds: int = 3,
    predictions: bool = False,
    **setting_overrides: Any,
) -> optuna.Study:
    """One family's study following the storage contract, filled with ``n_trials`` fake trials.

    The trials are asked and told in memory, then the study is copied into ``storage`` in a few
    transactions: ask/report/tell straight into SQLite costs one fsync each (seconds per study).
    """
    name = f"{bench}-{family}"
    memory = optuna.storages.InMemoryStorage()
    _fill(
        optuna.create_study(
            storage=memory,
            study_name=name,
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=rng_seed),
        ),
        storage,
        bench,
        family,
        n_trials,
        rng_seed=rng_seed,
        pruned=pruned,
        failed=failed,
        final=final,
        baseline=baseline,
        labels=labels,
        n_seeds=n_seeds,
        predictions=predictions,
        **setting_overrides,
    )
    optuna.copy_study(from_study_name=name, from_storage=memory, to_storage=storage)
    return optuna.load_study(study_name=name, storage=storage)


def _fill(
    study: optuna.Study,
    storage: str | optuna.storages.BaseStorage,
    bench: str,
    family: str,
    n_trials: int,
    *,
    rng_seed: int,
    pruned: tuple[int, ...],
    failed: tuple[int, ...],
    final: bool,
    baseline: dict[str, Any] | None,
    labels: list[str] | None,
    n_seeds: int,
    predictions: bool = False,
    **setting_overrides: Any,
) -> None:
    rng = np.random.default_rng(rng_seed + sum(map(ord, family)))
    s = settings(n_trials, **setting_overrides)
    if labels is not None:
        s["labels"] = labels
    study.set_user_attr("benchmark", bench)
    study.set_user_attr("arch", family)
    study.set_user_attr("settings", s)
    study.set_user_attr("command", f"python benchmark.py --arch {family} --trials {n_trials} --name {bench}")
    study.set_user_attr("versions", {"optuna": optuna.__version__, "torch": "2.5.1", "transformers": "5.0.0"})
    study.set_user_attr("hardware", "cpu: test machine")
    study.set_user_attr("storage", storage if isinstance(storage, str) else storage.url)
    study.set_user_attr("tracking_uri", "sqlite:///mlflow.db")
    study.set_user_attr("mlflow_experiment_id", "7")
    if baseline and predictions:
        base_preds = predictions_with(baseline["test_accuracy"], np.random.default_rng(99), "baseline")
        baseline = {
            **baseline,
            "test_accuracy": float((base_preds == fixture_labels()).mean()),
            "test_predictions": packed.pack(base_preds),
        }
    if baseline:
        study.set_user_attr("baseline", baseline)
    n_evals = s["max_steps"] // s["eval_steps"]
    for i in range(n_trials):
        trial = study.ask()
        params = suggest(trial, family)
        target = _quality(family, params, rng)
        trial.set_user_attr("seed", 1000 * s["seed"] + trial.number)
        if i in failed:
            trial.set_user_attr("fail_reason", "CUDA out of memory <b>x</b>")
            study.tell(trial, state=TrialState.FAIL)
            continue
        stop = 2 if i in pruned else n_evals
        curve = _curve(target - (0.05 if i in pruned else 0), stop, s["eval_steps"])
        for row in curve:
            trial.report(row["eval_accuracy"], row["step"])
        best = max(curve, key=lambda r: r["eval_accuracy"])
        n_params = int(
            params["embedding_dim"] * 30522 + params.get("hidden_size", params.get("num_filters", 64)) ** 2
        )
        attrs = {
            "best_step": best["step"],
            "steps_trained": curve[-1]["step"],
            "n_params": n_params,
            "wall_seconds": float(curve[-1]["step"] * 0.05 * (1 + params["embedding_dim"] / 128)),
            "final_loss": curve[-1]["loss"],
            "final_eval_loss": best["eval_loss"],
            "final_eval_accuracy": best["eval_accuracy"],
            "curves": curve,
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if i in pruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, best["eval_accuracy"])
    if final:
        study.set_user_attr(
            "final_results", final_results(study, family, s["top_k"], n_seeds, rng, predictions)
        )
        if predictions:
            study.set_user_attr("test_labels", packed.pack(fixture_labels()))


def final_results(
    study: optuna.Study,
    family: str,
    top_k: int,
    n_seeds: int,
    rng: np.random.Generator,
    predictions: bool = False,
) -> list[dict[str, Any]]:
    done = sorted((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: -t.value)
    rows = []
    for rank, t in enumerate(done[:top_k], start=1):
        for seed in range(n_seeds):
            rows.append(
                {
                    "arch": family,
                    "rank": rank,
                    "trial_number": t.number,
                    "seed": seed,
                    "test_accuracy": t.value - 0.01 + rng.normal(0, 0.004),
                    "test_loss": 0.35 + rng.normal(0, 0.01),
                    "validation_accuracy": t.value - 0.003 + rng.normal(0, 0.003),
                    "best_step": t.user_attrs["best_step"],
                    "steps_trained": t.user_attrs["steps_trained"],
                    "wall_seconds": t.user_attrs["wall_seconds"],
                    "n_params": t.user_attrs["n_params"],
                    "params": dict(t.params),
                    "curves": t.user_attrs["curves"],
                }
            )
            if predictions:
                preds = predictions_with(rows[-1]["test_accuracy"], rng, family)
                rows[-1]["test_predictions"] = packed.pack(preds)
                rows[-1]["test_accuracy"] = float((preds == fixture_labels()).mean())
    return rows


def make_benchmark(
    storage: str | optuna.storages.BaseStorage,
    bench: str = "demo",
    families: tuple[str, ...] = ("cnn", "rnn"),
    **kwargs: Any,
) -> dict[str, optuna.Study]:
    return {family: make_study(storage, bench, family, **kwargs) for family in families}


def test_fixture_follows_contract(tmp_path):
    url, storage = sqlite_storage(tmp_path / "x.db")
    study = make_study(storage, "b", "cnn", n_trials=8)
    assert optuna.load_study(study_name="b-cnn", storage=url).user_attrs["storage"] == url
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) == 2 and states.count(TrialState.FAIL) == 1
    assert len(study.user_attrs["final_results"]) == 9

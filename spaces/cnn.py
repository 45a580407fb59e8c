"""Search space of the CNN family.

| parameter      | range            | scale | course notes |
|----------------|------------------|-------|--------------|
| embedding_dim  | 16 .. 256        | log   | 64           |
| filter_size    | 2 .. 7           | int   | 3            |
| num_filters    | 8 .. 256         | log   | 10           |
| learning_rate  | 1e-4 .. 1e-2     | log   | 1e-3         |

Sizes act multiplicatively on capacity and cost, so they are searched on a log scale; small
kernels (2-5 tokens, i.e. n-grams) and 100+ filters are what works for sentence CNNs (Kim 2014).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textbench.core.families import NOTES_LEARNING_RATE, Family

if TYPE_CHECKING:  # the type only: naming the families must not import Optuna
    import optuna


def suggest(trial: optuna.Trial) -> dict:
    return {
        "embedding_dim": trial.suggest_int("embedding_dim", 16, 256, log=True),
        "filter_size": trial.suggest_int("filter_size", 2, 7),
        "num_filters": trial.suggest_int("num_filters", 8, 256, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
    }


FAMILY = Family(
    name="cnn",
    config="textbench.core.models:CNNConfig",  # imported when first used: naming the family needs no torch
    model="textbench.core.models:SimpleCNN",
    suggest=suggest,
    notes_config={
        "embedding_dim": 64,
        "filter_size": 3,
        "num_filters": 10,
        "learning_rate": NOTES_LEARNING_RATE,
    },
    settable=(),
)

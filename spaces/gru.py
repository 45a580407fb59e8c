"""Search space of the GRU family (the RNN's structure with gated cells).

| parameter      | range            | scale | reference |
|----------------|------------------|-------|-----------|
| embedding_dim  | 16 .. 256        | log   | 64        |
| hidden_size    | 16 .. 256        | log   | 96        |
| num_layers     | 1 .. 3           | int   | 1         |
| learning_rate  | 1e-4 .. 1e-2     | log   | 1e-3      |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textbench.core.families import NOTES_LEARNING_RATE, Family

if TYPE_CHECKING:  # the type only: naming the families must not import Optuna
    import optuna


def suggest(trial: optuna.Trial) -> dict:
    return {
        "embedding_dim": trial.suggest_int("embedding_dim", 16, 256, log=True),
        "hidden_size": trial.suggest_int("hidden_size", 16, 256, log=True),
        "num_layers": trial.suggest_int("num_layers", 1, 3),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
    }


FAMILY = Family(
    name="gru",
    config="textbench.core.models:GRUConfig",  # imported when first used: naming the family needs no torch
    model="textbench.core.models:SimpleGRU",
    suggest=suggest,
    notes_config={
        "embedding_dim": 64,
        "hidden_size": 96,
        "num_layers": 1,
        "learning_rate": NOTES_LEARNING_RATE,
    },  # the RNN's sizes, gated cells
    settable=("bidirectional",),
)

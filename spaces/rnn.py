"""Search space of the (Elman) RNN family.

| parameter      | range            | scale       | course notes |
|----------------|------------------|-------------|--------------|
| embedding_dim  | 16 .. 256        | log         | 64           |
| hidden_size    | 16 .. 256        | log         | 96           |
| num_layers     | 1 .. 3           | int         | 1            |
| nonlinearity   | tanh, relu       | categorical | tanh         |
| learning_rate  | 1e-4 .. 1e-2     | log         | 1e-3         |

Plain RNNs train unstably: deeper than 3 layers or above 1e-2 they mostly diverge.
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
        "nonlinearity": trial.suggest_categorical("nonlinearity", ["tanh", "relu"]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
    }


FAMILY = Family(
    name="rnn",
    config="textbench.core.models:RNNConfig",  # imported when first used: naming the family needs no torch
    model="textbench.core.models:SimpleRNN",
    suggest=suggest,
    notes_config={
        "embedding_dim": 64,
        "hidden_size": 96,
        "num_layers": 1,
        "nonlinearity": "tanh",
        "learning_rate": NOTES_LEARNING_RATE,
    },
    settable=("bidirectional",),
)

"""Search space of the Transformer family: a small encoder trained from scratch, like the others.

| parameter      | range            | scale | starting configuration |
|----------------|------------------|-------|------------------------|
| num_heads      | 1, 2, 4, 8       | choice| 4                      |
| head_dim       | 8 .. 64          | log   | 16 (width 4 x 16 = 64, the others' embedding size) |
| num_layers     | 1 .. 4           | int   | 2                      |
| ffn_dim        | 32 .. 512        | log   | 256 (4 x the width, as in Vaswani et al.) |
| dropout        | 0.0 .. 0.3       |       | 0.1                    |
| learning_rate  | 1e-4 .. 1e-2     | log   | 1e-3 (the course notes') |

The width is ``num_heads * head_dim`` (8 .. 512): sampling the heads and then the width per head
keeps every sampled width divisible by its heads, so no trial is wasted on an encoder that cannot
be built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textbench.core.families import NOTES_LEARNING_RATE, Family

if TYPE_CHECKING:  # the type only: naming the families must not import Optuna
    import optuna


def suggest(trial: optuna.Trial) -> dict:
    return {
        "num_heads": trial.suggest_categorical("num_heads", [1, 2, 4, 8]),
        "head_dim": trial.suggest_int("head_dim", 8, 64, log=True),
        "num_layers": trial.suggest_int("num_layers", 1, 4),
        "ffn_dim": trial.suggest_int("ffn_dim", 32, 512, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
    }


FAMILY = Family(
    name="transformer",
    config="textbench.core.models:TransformerConfig",  # imported when first used: no torch to name it
    model="textbench.core.models:TransformerClassifier",
    suggest=suggest,
    notes_config={
        "num_heads": 4,
        "head_dim": 16,
        "num_layers": 2,
        "ffn_dim": 256,
        "dropout": 0.1,
        "learning_rate": NOTES_LEARNING_RATE,
    },
    display_name="Transformer",
)

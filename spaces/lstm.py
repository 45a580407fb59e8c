"""Search space of the LSTM family: the GRU's space (same structure, LSTM cells).

| parameter      | range            | scale | reference |
|----------------|------------------|-------|-----------|
| embedding_dim  | 16 .. 256        | log   | 64        |
| hidden_size    | 16 .. 256        | log   | 96        |
| num_layers     | 1 .. 3           | int   | 1         |
| learning_rate  | 1e-4 .. 1e-2     | log   | 1e-3      |
"""

from textbench.core.families import NOTES_LEARNING_RATE, Family
from textbench.spaces.gru import suggest

FAMILY = Family(
    name="lstm",
    config="textbench.core.models:LSTMConfig",  # imported when first used: naming the family needs no torch
    model="textbench.core.models:SimpleLSTM",
    suggest=suggest,
    notes_config={
        "embedding_dim": 64,
        "hidden_size": 96,
        "num_layers": 1,
        "learning_rate": NOTES_LEARNING_RATE,
    },  # the RNN's sizes, LSTM cells
    settable=("bidirectional",),
)

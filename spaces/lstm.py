"""Search space of the LSTM family: the GRU's space (same structure, LSTM cells).

| parameter      | range            | scale | reference |
|----------------|------------------|-------|-----------|
| embedding_dim  | 16 .. 256        | log   | 64        |
| hidden_size    | 16 .. 256        | log   | 96        |
| num_layers     | 1 .. 3           | int   | 1         |
| learning_rate  | 1e-4 .. 1e-2     | log   | 1e-3      |
"""

from spaces.gru import suggest

__all__ = ["suggest"]

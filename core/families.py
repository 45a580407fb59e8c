"""The families and the course notes' configuration of each: the reference point for every search.

Plain values, no torch: the command line names and checks families from here before it loads the
libraries that train. ``core.models`` builds the models and adds families (``register``).
"""

SEED_CONFIGS: dict[str, dict] = {
    "cnn": {"embedding_dim": 64, "filter_size": 3, "num_filters": 10},
    "rnn": {"embedding_dim": 64, "hidden_size": 96, "num_layers": 1, "nonlinearity": "tanh"},
    "gru": {"embedding_dim": 64, "hidden_size": 96, "num_layers": 1},  # the RNN's sizes, gated cells
    "lstm": {"embedding_dim": 64, "hidden_size": 96, "num_layers": 1},
}

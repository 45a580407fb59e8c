"""One search space per model family: ``suggest(trial) -> dict`` of plain values.

Every key is either a model config field or a training setting (``TRAINING_PARAMS``).
"""

from spaces import cnn, gru, lstm, rnn

SPACES = {"cnn": cnn.suggest, "rnn": rnn.suggest, "gru": gru.suggest, "lstm": lstm.suggest}

# Keys of a suggested dict that configure training rather than the model.
TRAINING_PARAMS = ("learning_rate",)


def split_params(params: dict) -> tuple[dict, dict]:
    """(model params, training params) of one suggested configuration."""
    model = {k: v for k, v in params.items() if k not in TRAINING_PARAMS}
    training = {k: v for k, v in params.items() if k in TRAINING_PARAMS}
    return model, training

"""The model families: small text classifiers as Hugging Face ``PreTrainedModel``s.

Each family is a ``PretrainedConfig`` subclass with a registered ``model_type`` plus a model
class, so ``save_pretrained``/``from_pretrained`` and the Auto classes round-trip. Two
correctness points the course notes miss: the CNN's max-pool never sees padding positions, and
the recurrent models read the output at each sequence's true last token, not after padding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from textbench.core.families import Family


class _TextClassifier(PreTrainedModel):
    """Shared tail: embedding in, logits out, cross-entropy when labels are given."""

    main_input_name = "input_ids"

    def __init__(self, config):
        super().__init__(config)
        self.embeddings = nn.Embedding(
            config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id
        )
        self.loss = nn.CrossEntropyLoss()

    def _init_weights(self, module):  # keep PyTorch's default initialisation
        pass

    def features(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, input_ids, attention_mask=None, labels=None, **_):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.bool()
        logits = self.output_layer(self.features(self.embeddings(input_ids), mask))
        loss = self.loss(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


# ---------------------------------------------------------------- CNN


class CNNConfig(PretrainedConfig):
    model_type = "textbench-cnn"

    def __init__(
        self, vocab_size=28996, embedding_dim=64, filter_size=3, num_filters=10, pad_token_id=0, **kwargs
    ):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.filter_size = filter_size
        self.num_filters = num_filters


class SimpleCNN(_TextClassifier):
    """embedding -> Conv1d -> ReLU -> global max-pool over real tokens -> linear."""

    config_class = CNNConfig

    def __init__(self, config: CNNConfig):
        super().__init__(config)
        self.convolution = nn.Conv1d(
            config.embedding_dim, config.num_filters, config.filter_size, padding="same"
        )
        self.activation = nn.ReLU()
        self.output_layer = nn.Linear(config.num_filters, config.num_labels)
        self.post_init()

    def features(self, embedded, mask):
        # Zeroed pad embeddings look exactly like the convolution's own zero padding, so a
        # sequence's windows are the same whatever padding follows it.
        x = (embedded * mask.unsqueeze(-1)).transpose(1, 2)
        x = self.activation(self.convolution(x))
        return x.masked_fill(~mask.unsqueeze(1), float("-inf")).amax(dim=2)


# ---------------------------------------------------------------- recurrent


class RecurrentConfig(PretrainedConfig):
    """Shared fields of the recurrent families (a base, not registered itself)."""

    def __init__(
        self,
        vocab_size=28996,
        embedding_dim=64,
        hidden_size=96,
        num_layers=1,
        bidirectional=False,
        pad_token_id=0,
        **kwargs,
    ):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional


class RNNConfig(RecurrentConfig):
    model_type = "textbench-rnn"

    def __init__(self, nonlinearity="tanh", **kwargs):
        super().__init__(**kwargs)
        self.nonlinearity = nonlinearity


class GRUConfig(RecurrentConfig):
    model_type = "textbench-gru"

    def __init__(self, **kwargs):  # transformers 5 needs each config class to define its own
        super().__init__(**kwargs)


class LSTMConfig(RecurrentConfig):
    model_type = "textbench-lstm"

    def __init__(self, **kwargs):  # transformers 5 needs each config class to define its own
        super().__init__(**kwargs)


class _RecurrentClassifier(_TextClassifier):
    """embedding -> recurrent layers over the real tokens -> output at the last real token -> linear."""

    cell: type[nn.Module] = nn.RNN

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.rnn = self.cell(
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            batch_first=True,
            **self.cell_options(config),
        )
        directions = 2 if config.bidirectional else 1
        self.output_layer = nn.Linear(directions * config.hidden_size, config.num_labels)
        self.post_init()

    def cell_options(self, config) -> dict:
        return {}

    def features(self, embedded, mask):
        lengths = mask.sum(dim=1).clamp(min=1)
        rows = torch.arange(embedded.size(0), device=embedded.device)
        if not self.config.bidirectional:
            # Left to right, the output at a sequence's last real token has seen no padding: read
            # it there (1.5x faster on CPU than packing, and exactly the same values).
            return self.rnn(embedded)[0][rows, lengths - 1]
        # Right to left would start in the padding: pack, so each direction sees real tokens only.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
        hidden = self.config.hidden_size
        # Forward direction: at the last real token; backward direction: at position 0.
        return torch.cat([outputs[rows, lengths - 1, :hidden], outputs[:, 0, hidden:]], dim=1)


class SimpleRNN(_RecurrentClassifier):
    """The course notes' Elman RNN (tanh or relu), reading each sequence's true last token."""

    config_class = RNNConfig
    cell = nn.RNN

    def cell_options(self, config) -> dict:
        return {"nonlinearity": config.nonlinearity}


class SimpleGRU(_RecurrentClassifier):
    config_class = GRUConfig
    cell = nn.GRU


class SimpleLSTM(_RecurrentClassifier):
    config_class = LSTMConfig
    cell = nn.LSTM


# ---------------------------------------------------------------- transformer


class TransformerConfig(PretrainedConfig):
    """A small encoder. Its width is ``num_heads * head_dim``, so the heads always divide it (the
    space samples the heads and the width per head, never a width the heads cannot split)."""

    model_type = "textbench-transformer"

    def __init__(
        self,
        vocab_size=28996,
        num_heads=4,
        head_dim=16,
        num_layers=2,
        ffn_dim=256,
        dropout=0.1,
        max_position_embeddings=1024,
        pad_token_id=0,
        **kwargs,
    ):
        kwargs.pop("embedding_dim", None)  # derived (a saved config.json carries it)
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.num_layers = num_layers
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.max_position_embeddings = max_position_embeddings
        self.embedding_dim = num_heads * head_dim  # the model width


class TransformerClassifier(_TextClassifier):
    """token + learned position embeddings -> pre-norm nn.TransformerEncoder (padding masked out of
    attention) -> mean over the real tokens -> linear."""

    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        width = config.embedding_dim
        self.positions = nn.Embedding(config.max_position_embeddings, width)
        layer = nn.TransformerEncoderLayer(
            width,
            config.num_heads,
            dim_feedforward=config.ffn_dim,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        # No nested tensors: the same (dense) code path in training and evaluation.
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.output_layer = nn.Linear(width, config.num_labels)
        self.post_init()

    def features(self, embedded, mask):
        length = embedded.size(1)
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"texts of {length} tokens, but the transformer has {self.config.max_position_embeddings} "
                "positions: lower --max-length"
            )
        x = embedded + self.positions(torch.arange(length, device=embedded.device)).unsqueeze(0)
        x = self.norm(self.encoder(x, src_key_padding_mask=~mask))
        # masked_fill, not a product: an all-padding row's outputs are NaN, and NaN * 0 is NaN.
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        return x.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)


# ---------------------------------------------------------------- transformers' Auto classes


def register_auto(config_class: type[PretrainedConfig], model_class: type[PreTrainedModel]) -> None:
    """Let ``AutoConfig``/``AutoModelForSequenceClassification.from_pretrained`` load this family's
    saved models (``textbench.core.families.Family.model_class`` calls this for every family)."""
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModelForSequenceClassification.register(config_class, model_class, exist_ok=True)


for _config, _model in (
    (CNNConfig, SimpleCNN),
    (RNNConfig, SimpleRNN),
    (GRUConfig, SimpleGRU),
    (LSTMConfig, SimpleLSTM),
    (TransformerConfig, TransformerClassifier),
):
    register_auto(_config, _model)


def build_model(
    family: Family, *, vocab_size: int, num_labels: int, pad_token_id: int, **params
) -> PreTrainedModel:
    """A fresh model of ``family`` from plain values (never from an Optuna trial)."""
    config_class, model_class = family.config_class, family.model_class
    known = set(config_class().to_dict())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{family.name} has no parameter {unknown[0]!r}")
    config = config_class(vocab_size=vocab_size, num_labels=num_labels, pad_token_id=pad_token_id, **params)
    return model_class(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

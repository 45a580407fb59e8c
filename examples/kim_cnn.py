"""Kim (2014)'s CNN for sentence classification as a textbench family.

    python benchmark.py --family-module examples/kim_cnn.py --arch kim_cnn,cnn --trials 20

Yoon Kim, "Convolutional Neural Networks for Sentence Classification" (EMNLP 2014): filter widths
3, 4 and 5 with 100 feature maps each, ReLU, max-over-time pooling, dropout 0.5 on the pooled
features, and an l2 max-norm constraint s = 3 on the output layer's weight vectors. The paper's
embeddings were word2vec (300 dimensions); here they are learned, like every textbench family's.

Everything a family needs is in this one file (the export copies its classes into the exported
folder): a config class with a unique ``model_type``, a ``PreTrainedModel`` that maps
``input_ids``/``attention_mask`` to logits (and a loss when labels are given), a search space
``suggest(trial) -> dict`` whose keys are config fields or ``learning_rate``, and the starting
configuration (every study's trial 0).

| parameter        | range        | scale | Kim 2014 |
|------------------|--------------|-------|----------|
| embedding_dim    | 64 .. 300    | log   | 300      |
| min_filter_size  | 2 .. 4       | int   | 3        |
| num_widths       | 1 .. 4       | int   | 3 (3,4,5)|
| num_filters      | 50 .. 200    | log   | 100      |
| dropout          | 0.3 .. 0.6   |       | 0.5      |
| learning_rate    | 1e-4 .. 1e-2 | log   | 1e-3 (Adadelta in the paper; AdamW here) |
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from textbench.core.families import Family


class KimCNNConfig(PretrainedConfig):
    model_type = "kim-cnn"

    def __init__(
        self,
        vocab_size=28996,
        embedding_dim=300,
        min_filter_size=3,
        num_widths=3,
        num_filters=100,
        dropout=0.5,
        max_norm=3.0,
        pad_token_id=0,
        **kwargs,
    ):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.min_filter_size = min_filter_size
        self.num_widths = num_widths
        self.num_filters = num_filters
        self.dropout = dropout
        self.max_norm = max_norm


class KimCNN(PreTrainedModel):
    """embedding -> one Conv1d per width -> ReLU -> max over real tokens -> concat -> dropout -> linear."""

    config_class = KimCNNConfig
    main_input_name = "input_ids"

    def __init__(self, config: KimCNNConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(
            config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id
        )
        widths = range(config.min_filter_size, config.min_filter_size + config.num_widths)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(config.embedding_dim, config.num_filters, w, padding="same") for w in widths
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output_layer = nn.Linear(config.num_widths * config.num_filters, config.num_labels)
        self.post_init()

    def _init_weights(self, module):  # PyTorch's default initialisation
        pass

    def constrain(self) -> None:
        """Kim's max-norm: rescale each class's weight vector to l2 norm ``max_norm`` when it is longer.
        Run before every forward pass, i.e. after every optimizer step."""
        with torch.no_grad():
            self.output_layer.weight.copy_(torch.renorm(self.output_layer.weight, 2, 0, self.config.max_norm))

    def forward(self, input_ids, attention_mask=None, labels=None, **_):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.bool()
        # Zeroed pad embeddings equal the convolution's own zero padding: windows ignore the padding.
        x = (self.embeddings(input_ids) * mask.unsqueeze(-1)).transpose(1, 2)
        pooled = [
            torch.relu(conv(x)).masked_fill(~mask.unsqueeze(1), float("-inf")).amax(dim=2)
            for conv in self.convolutions
        ]
        self.constrain()
        logits = self.output_layer(self.dropout(torch.cat(pooled, dim=1)))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def suggest(trial) -> dict:
    return {
        "embedding_dim": trial.suggest_int("embedding_dim", 64, 300, log=True),
        "min_filter_size": trial.suggest_int("min_filter_size", 2, 4),
        "num_widths": trial.suggest_int("num_widths", 1, 4),
        "num_filters": trial.suggest_int("num_filters", 50, 200, log=True),
        "dropout": trial.suggest_float("dropout", 0.3, 0.6),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
    }


FAMILY = Family(
    name="kim_cnn",
    config=KimCNNConfig,
    model=KimCNN,
    suggest=suggest,
    notes_config={  # the paper's configuration: every study starts here
        "embedding_dim": 300,
        "min_filter_size": 3,
        "num_widths": 3,
        "num_filters": 100,
        "dropout": 0.5,
        "learning_rate": 1e-3,
    },
    display_name="Kim CNN (2014)",
)

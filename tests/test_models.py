"""core.models: shapes, padding invariance, save/load round trip, registry checks."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from textbench.core.families import Family
from textbench.core.models import (
    CNNConfig,
    RNNConfig,
    SimpleCNN,
    SimpleRNN,
    build_model,
    count_parameters,
)
from textbench.spaces import FAMILIES

VOCAB = 50
PAD = 0

# torch notes that padding="same" with an even kernel copies the input; expected, not a problem.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

# (family, params): small variants of each family, the awkward ones included.
VARIANTS = {
    "cnn": ("cnn", {"embedding_dim": 8, "filter_size": 3, "num_filters": 5}),
    "cnn-even-filter": ("cnn", {"embedding_dim": 8, "filter_size": 4, "num_filters": 5}),
    "cnn-filter-longer-than-text": ("cnn", {"embedding_dim": 8, "filter_size": 7, "num_filters": 5}),
    "rnn": ("rnn", {"embedding_dim": 8, "hidden_size": 6}),
    "rnn-relu": ("rnn", {"embedding_dim": 8, "hidden_size": 6, "nonlinearity": "relu"}),
    "rnn-bidirectional": ("rnn", {"embedding_dim": 8, "hidden_size": 6, "bidirectional": True}),
    "rnn-2-layers": ("rnn", {"embedding_dim": 8, "hidden_size": 6, "num_layers": 2}),
    "rnn-2-layers-bidirectional": (
        "rnn",
        {"embedding_dim": 8, "hidden_size": 6, "num_layers": 2, "bidirectional": True},
    ),
    "gru": ("gru", {"embedding_dim": 8, "hidden_size": 6}),
    "gru-2-layers-bidirectional": (
        "gru",
        {"embedding_dim": 8, "hidden_size": 6, "num_layers": 2, "bidirectional": True},
    ),
    "lstm": ("lstm", {"embedding_dim": 8, "hidden_size": 6}),
    "transformer": ("transformer", {"num_heads": 2, "head_dim": 4, "num_layers": 2, "ffn_dim": 16}),
    "lstm-2-layers-bidirectional": (
        "lstm",
        {"embedding_dim": 8, "hidden_size": 6, "num_layers": 2, "bidirectional": True},
    ),
}


def make(name: str, num_labels: int = 3, pad_token_id: int = PAD, seed: int = 0):
    family, params = VARIANTS[name]
    torch.manual_seed(seed)
    return build_model(
        FAMILIES[family], vocab_size=VOCAB, num_labels=num_labels, pad_token_id=pad_token_id, **params
    ).eval()


def token_ids(length: int, seed: int, low: int = 5) -> torch.Tensor:
    """Random real (non-pad) token ids."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, VOCAB, (length,), generator=generator)


def pad_batch(sequences: list[torch.Tensor], length: int | None = None, pad_id: int = PAD):
    """Right-padded input_ids and attention_mask, like DataCollatorWithPadding produces."""
    length = length or max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


@pytest.mark.parametrize("name", VARIANTS)
def test_logits_and_loss_shapes(name):
    model = make(name, num_labels=3)
    ids, mask = pad_batch([token_ids(n, seed=n) for n in (4, 9, 1, 6)])
    out = model(input_ids=ids, attention_mask=mask)
    assert out.logits.shape == (4, 3)
    assert out.loss is None
    labels = torch.tensor([0, 2, 1, 0])
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.loss.shape == ()
    assert torch.isfinite(out.loss)
    expected = torch.nn.functional.cross_entropy(out.logits, labels)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()  # the graph reaches the embeddings
    assert model.embeddings.weight.grad is not None


@pytest.mark.parametrize("name", VARIANTS)
def test_without_attention_mask_every_token_counts(name):
    model = make(name)
    ids = torch.stack([token_ids(7, seed=1), token_ids(7, seed=2)])
    explicit = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    torch.testing.assert_close(model(input_ids=ids).logits, explicit, rtol=0, atol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_padding_does_not_change_logits(name):
    """The same text alone, padded inside a batch with a longer text, and padded further: same logits."""
    model = make(name)
    short, long = token_ids(5, seed=11), token_ids(13, seed=12)
    with torch.no_grad():
        alone = model(input_ids=short[None], attention_mask=torch.ones(1, 5, dtype=torch.long)).logits[0]
        ids, mask = pad_batch([short, long])
        batched = model(input_ids=ids, attention_mask=mask).logits
        ids, mask = pad_batch([long, short], length=40)
        padded_more = model(input_ids=ids, attention_mask=mask).logits
        long_alone = model(input_ids=long[None]).logits[0]
    torch.testing.assert_close(batched[0], alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(padded_more[1], alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(batched[1], long_alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(padded_more[0], long_alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_padding_token_id_is_ignored(name):
    """Masked positions are not read: replacing the pad id there by real tokens changes nothing."""
    model = make(name)
    ids, mask = pad_batch([token_ids(3, seed=21), token_ids(10, seed=22), token_ids(6, seed=23)], length=16)
    garbage = ids.clone()
    garbage[mask == 0] = token_ids(int((mask == 0).sum()), seed=24)
    assert not torch.equal(garbage, ids)
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits
        changed = model(input_ids=garbage, attention_mask=mask).logits
    torch.testing.assert_close(changed, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["cnn", "rnn", "rnn-bidirectional"])
def test_pad_token_id_other_than_zero(name):
    """A tokenizer whose pad id is not 0: the config keeps it and padding is still invisible."""
    model = make(name, pad_token_id=7)
    assert model.config.pad_token_id == 7
    assert model.embeddings.padding_idx == 7
    short, long = token_ids(4, seed=31, low=8), token_ids(9, seed=32, low=8)
    with torch.no_grad():
        alone = model(input_ids=short[None]).logits[0]
        ids, mask = pad_batch([short, long], pad_id=7)
        batched = model(input_ids=ids, attention_mask=mask).logits[0]
    torch.testing.assert_close(batched, alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["rnn", "rnn-bidirectional", "rnn-2-layers-bidirectional"])
def test_rnn_reads_every_real_token(name):
    """Changing the first or the last real token changes the RNN's logits (both directions are used)."""
    model = make(name)
    seq = token_ids(8, seed=41)
    ids, mask = pad_batch([seq, token_ids(12, seed=42)])
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits[0]
        for position in (0, 7):
            changed = ids.clone()
            changed[0, position] = 5 if changed[0, position] != 5 else 6
            assert not torch.allclose(model(input_ids=changed, attention_mask=mask).logits[0], reference)


@pytest.mark.parametrize(
    "name", ["cnn", "cnn-even-filter", "rnn", "rnn-2-layers-bidirectional", "transformer"]
)
def test_save_and_load_round_trip(name, tmp_path):
    model = make(name, num_labels=2)
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, type(model.config))
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    ignore = {"_name_or_path", "transformers_version"}
    strip = lambda config: {k: v for k, v in config.to_dict().items() if k not in ignore}  # noqa: E731
    assert strip(loaded.config) == strip(model.config)
    ids, mask = pad_batch([token_ids(5, seed=51), token_ids(11, seed=52)])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(input_ids=ids, attention_mask=mask).logits,
            model(input_ids=ids, attention_mask=mask).logits,
            rtol=0,
            atol=0,
        )
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_build_model_uses_the_given_values():
    model = build_model(
        FAMILIES["rnn"],
        vocab_size=123,
        num_labels=4,
        pad_token_id=3,
        embedding_dim=5,
        hidden_size=7,
        num_layers=2,
        bidirectional=True,
    )
    assert isinstance(model, SimpleRNN) and isinstance(model.config, RNNConfig)
    assert model.config.num_labels == 4
    assert model.embeddings.weight.shape == (123, 5)
    assert model.rnn.num_layers == 2 and model.rnn.bidirectional and model.rnn.hidden_size == 7
    assert model.output_layer.in_features == 14 and model.output_layer.out_features == 4
    cnn = build_model(
        FAMILIES["cnn"], vocab_size=30, num_labels=2, pad_token_id=0, num_filters=9, filter_size=2
    )
    assert isinstance(cnn, SimpleCNN) and isinstance(cnn.config, CNNConfig)
    assert cnn.convolution.kernel_size == (2,) and cnn.output_layer.in_features == 9


def test_count_parameters_by_hand():
    # CNN: embedding 30x64, conv 9 filters x 64 channels x width 2 + 9 biases, linear 9x2 + 2.
    cnn = build_model(
        FAMILIES["cnn"], vocab_size=30, num_labels=2, pad_token_id=0, num_filters=9, filter_size=2
    )
    assert count_parameters(cnn) == 30 * 64 + (9 * 64 * 2 + 9) + (9 * 2 + 2) == 3101
    # RNN, 2 layers, both directions: per direction W_ih (7 x input), W_hh 7x7, two 7-biases;
    # layer 1 reads the 5-dim embedding, layer 2 the 14-dim outputs of layer 1; linear 14x4 + 4.
    rnn = build_model(
        FAMILIES["rnn"],
        vocab_size=123,
        num_labels=4,
        pad_token_id=3,
        embedding_dim=5,
        hidden_size=7,
        num_layers=2,
        bidirectional=True,
    )
    assert count_parameters(rnn) == 123 * 5 + 2 * (35 + 49 + 14) + 2 * (98 + 49 + 14) + (14 * 4 + 4) == 1193
    # LSTM: four gates, so four times the RNN's weights and biases.
    lstm = build_model(
        FAMILIES["lstm"], vocab_size=10, num_labels=2, pad_token_id=0, embedding_dim=3, hidden_size=2
    )
    assert count_parameters(lstm) == 10 * 3 + 4 * (2 * 3 + 2 * 2 + 2 + 2) + (2 * 2 + 2) == 92
    # Frozen weights are not trainable parameters.
    cnn.embeddings.weight.requires_grad_(False)
    assert count_parameters(cnn) == 3101 - 30 * 64


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_course_notes_configs_build(family):
    model = build_model(
        FAMILIES[family],
        vocab_size=VOCAB,
        num_labels=2,
        pad_token_id=PAD,
        **FAMILIES[family].notes_model_params(),
    )
    for key, value in FAMILIES[family].notes_model_params().items():
        assert getattr(model.config, key) == value


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_build_model_rejects_unknown_parameter(family):
    with pytest.raises(ValueError, match="no parameter 'hiden_size'"):
        build_model(FAMILIES[family], vocab_size=VOCAB, num_labels=2, pad_token_id=PAD, hiden_size=4)


def test_an_unknown_family_is_refused_with_the_known_ones():
    from textbench.core.errors import UsageError
    from textbench.spaces import get

    with pytest.raises(UsageError, match="unknown family 'nosuch': use one of cnn, rnn, gru, lstm"):
        get("nosuch")


def test_train_set_values_are_typed_by_the_family_space():
    """``train --set`` is parsed once (``search.fixed.parse_settable``): searched names by the space's
    types, the family's extra settable options (``bidirectional``) as true/false."""
    from textbench.core.errors import UsageError
    from textbench.search.fixed import parse_settable

    got = parse_settable("cnn", ["num_filters=100", "learning_rate=3e-3", "filter_size=5"])
    assert got == {"num_filters": 100, "learning_rate": 0.003, "filter_size": 5}
    assert type(got["num_filters"]) is int and type(got["learning_rate"]) is float
    assert parse_settable("rnn", ["nonlinearity=relu", "bidirectional=true"]) == {
        "nonlinearity": "relu",
        "bidirectional": True,
    }
    assert parse_settable("gru", ["bidirectional=0", "hidden_size=7"]) == {
        "bidirectional": False,
        "hidden_size": 7,
    }
    assert parse_settable("lstm", ["bidirectional=FALSE"]) == {"bidirectional": False}
    assert parse_settable("lstm", ["bidirectional=1"]) == {"bidirectional": True}
    assert parse_settable("lstm", []) == {}
    for pairs, fragment in (
        (["dropout=0.1"], "NAME one of embedding_dim, filter_size, num_filters, learning_rate"),
        (["num_filters"], "expected name=value"),
        (["num_filters=1.5"], "num_filters must be an integer"),
        (["learning_rate=fast"], "learning_rate must be a number"),
    ):
        with pytest.raises(UsageError, match=fragment):
            parse_settable("cnn", pairs)
    with pytest.raises(UsageError, match="bidirectional must be true or false"):
        parse_settable("rnn", ["bidirectional=maybe"])
    with pytest.raises(UsageError, match="expected NAME=VALUE"):
        parse_settable("rnn", ["num_filters=8"])  # a CNN parameter is not an RNN's
    with pytest.raises(UsageError, match="expected NAME=VALUE"):
        parse_settable("cnn", ["bidirectional=true"])  # a recurrent option is not the CNN's


class _WideConfig(CNNConfig):
    model_type = "textbench-test-wide-cnn"

    def __init__(self, **kwargs):  # its own __init__: transformers 5 lists only the attributes a class sets
        super().__init__(**kwargs)


class _WideCNN(SimpleCNN):
    config_class = _WideConfig


def test_registering_a_family_makes_it_buildable_and_loadable_by_the_auto_classes(monkeypatch, tmp_path):
    """``spaces.register`` is how a new family plugs in: one record in the one registry, and
    transformers' Auto classes (a saved model of the family loads back with
    ``AutoModelForSequenceClassification``). Registering again (a re-imported plugin) is allowed."""
    from textbench import spaces

    monkeypatch.setitem(spaces.FAMILIES, "widecnn", spaces.FAMILIES["cnn"])
    notes = {"embedding_dim": 8, "filter_size": 3, "num_filters": 5, "learning_rate": 1e-3}
    family = Family("widecnn", _WideConfig, _WideCNN, spaces.FAMILIES["cnn"].suggest, notes)
    for _ in range(2):
        spaces.register(family)
    assert spaces.get("widecnn") is family and family.notes_model_params() == {
        k: notes[k] for k in list(notes)[:3]
    }
    model = build_model(
        family, vocab_size=VOCAB, num_labels=2, pad_token_id=PAD, **family.notes_model_params()
    )
    assert type(AutoConfig.for_model("textbench-test-wide-cnn")) is _WideConfig
    assert type(model) is _WideCNN
    model.save_pretrained(tmp_path)
    assert type(AutoModelForSequenceClassification.from_pretrained(tmp_path)) is _WideCNN


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_config_defaults_are_the_course_notes_model_for_bert_base_cased(family):
    """A config built without arguments (a config.json that omits a field) is the course notes'
    model for bert-base-cased's vocabulary: 28,996 word pieces, [PAD] = 0 (from its vocab.txt)."""
    config = FAMILIES[family].config_class()
    assert (config.vocab_size, config.pad_token_id) == (28996, 0)
    notes = {k: v for k, v in FAMILIES[family].notes_model_params().items() if k != "nonlinearity"}
    assert {k: getattr(config, k) for k in notes} == notes
    assert not getattr(config, "bidirectional", False)


def test_a_relu_rnn_uses_relu_cells():
    relu = build_model(
        FAMILIES["rnn"],
        vocab_size=VOCAB,
        num_labels=2,
        pad_token_id=PAD,
        embedding_dim=8,
        hidden_size=6,
        num_layers=1,
        nonlinearity="relu",
    )
    assert relu.rnn.nonlinearity == "relu"
    assert (
        build_model(
            FAMILIES["rnn"],
            vocab_size=VOCAB,
            num_labels=2,
            pad_token_id=PAD,
            embedding_dim=8,
            hidden_size=6,
            num_layers=1,
            nonlinearity="tanh",
        ).rnn.nonlinearity
        == "tanh"
    )

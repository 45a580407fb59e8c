""" "Padding is invisible to the models", through the path training uses: the real tokenizer
(``core.data._tokenize``), ``ArrayRows``, ``PaddingCollator``, then every registered family.

A text's logits alone in a batch (no padding) must equal its logits beside random companions
(longer ones pad it, shorter ones are padded), in any position of the batch. Hypothesis draws the
texts, the companions and the position; the models are built once per family.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from helpers import FILLER, NEGATIVE, POSITIVE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textbench.core.data import ArrayRows, PaddingCollator, _tokenize
from textbench.core.models import build_model
from textbench.spaces import FAMILIES

MAX_LENGTH = 32
WORDS = NEGATIVE + POSITIVE + FILLER + ["zzqx", "Ünïcode", "!", "..."]  # unknown words and punctuation too

# One small model per registered family, two layers and both directions where the family has them
# (the backward direction is the one that would read padding first).
PARAMS = {
    "cnn": {"embedding_dim": 8, "filter_size": 4, "num_filters": 6},
    "transformer": {"num_heads": 2, "head_dim": 4, "num_layers": 2, "ffn_dim": 16, "dropout": 0.1},
}
RECURRENT = {"embedding_dim": 8, "hidden_size": 6, "num_layers": 2, "bidirectional": True}

text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=50).map(" ".join)


@pytest.fixture(scope="module")
def models(tiny_tokenizer):
    out = {}
    for family in FAMILIES:
        torch.manual_seed(0)
        out[family] = build_model(
            FAMILIES[family],
            vocab_size=len(tiny_tokenizer),
            num_labels=3,
            pad_token_id=tiny_tokenizer.pad_token_id,
            **PARAMS.get(family, RECURRENT),
        ).eval()
    return out


def batches(tokenizer, texts: list[str]) -> dict:
    """``texts`` as the Trainer batches them: tokenized by core.data, rows, PaddingCollator."""
    frame = pd.DataFrame({"text": texts, "label": [0] * len(texts)})
    rows = ArrayRows(_tokenize({"x": frame}, tokenizer, MAX_LENGTH)["x"])
    return PaddingCollator(tokenizer)([rows[i] for i in range(len(rows))])


def test_the_collator_pads_with_the_pad_id_and_a_zero_mask(tiny_tokenizer):
    batch = batches(tiny_tokenizer, ["good", "a good film with a great cast"])
    lengths = batch["attention_mask"].sum(dim=1)
    assert lengths[0] == 3 and batch["input_ids"].shape[1] == lengths[1]  # [CLS] good [SEP]
    assert batch["attention_mask"][0, 3:].eq(0).all()
    assert batch["input_ids"][0, 3:].eq(tiny_tokenizer.pad_token_id).all()


@pytest.mark.parametrize("family", list(FAMILIES))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=text, companions=st.lists(text, min_size=1, max_size=4), position=st.integers(0, 4))
def test_logits_do_not_depend_on_batch_companions(
    family, models, tiny_tokenizer, target, companions, position
):
    model = models[family]
    position = min(position, len(companions))
    texts = companions[:position] + [target] + companions[position:]
    alone, together = batches(tiny_tokenizer, [target]), batches(tiny_tokenizer, texts)
    with torch.no_grad():
        expected = model(**{k: v for k, v in alone.items() if k != "labels"}).logits[0]
        got = model(**{k: v for k, v in together.items() if k != "labels"}).logits[position]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_heavily_padded_text_keeps_its_logits(family, models, tiny_tokenizer):
    """A deterministic worst case beside the random ones: a 3-token text padded to MAX_LENGTH."""
    model = models[family]
    long = " ".join(["wonderful film"] * 40)  # truncated to MAX_LENGTH tokens
    alone, together = batches(tiny_tokenizer, ["awful"]), batches(tiny_tokenizer, [long, "awful"])
    assert together["input_ids"].shape[1] == MAX_LENGTH
    with torch.no_grad():
        expected = model(**{k: v for k, v in alone.items() if k != "labels"}).logits[0]
        got = model(**{k: v for k, v in together.items() if k != "labels"}).logits[1]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

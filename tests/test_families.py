"""One record, one registry: a family registered with one call is known to the search, the final
stage, ``train``, ``predict``, ``export`` and the help texts (the commands run in process, so they see
the registration)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transformers import PretrainedConfig

from textbench import benchmark, options, spaces
from textbench.core.families import Family
from textbench.core.models import _TextClassifier


class BagConfig(PretrainedConfig):
    model_type = "textbench-test-bag"

    def __init__(self, vocab_size=100, embedding_dim=8, pad_token_id=0, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim


class BagOfEmbeddings(_TextClassifier):
    """Mean of the real tokens' embeddings -> linear: the smallest family there is."""

    config_class = BagConfig

    def __init__(self, config):
        super().__init__(config)
        self.output_layer = nn.Linear(config.embedding_dim, config.num_labels)
        self.post_init()

    def features(self, embedded, mask):
        weights = mask.unsqueeze(-1).to(embedded.dtype)
        return (embedded * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def suggest(trial) -> dict:
    return {
        "embedding_dim": trial.suggest_int("embedding_dim", 4, 16, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True),
    }


BAG = Family("bag", BagConfig, BagOfEmbeddings, suggest, {"embedding_dim": 8, "learning_rate": 1e-2})


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(spaces.FAMILIES, "bag", BAG)  # removed again after the test
    spaces.register(BAG)
    return BAG


def test_a_registered_family_appears_in_every_commands_help(registered, capsys):
    for argv in (["--help"], ["train", "--help"]):
        with pytest.raises(SystemExit):
            benchmark.main(argv)
        assert "bag" in capsys.readouterr().out
    assert "embedding_dim 4..16 (log)" in options.search_parser().epilog


def test_a_registered_family_runs_through_search_train_predict_and_export(
    registered, tiny_data_dir, tiny_tokenizer_dir, tmp_path, capsys
):
    data = [
        "--dataset",
        str(tiny_data_dir),
        "--tokenizer",
        str(tiny_tokenizer_dir),
        "--max-length",
        "32",
        "--max-steps",
        "30",
        "--eval-steps",
        "10",
        "--output-dir",
        str(tmp_path),
    ]
    assert (
        benchmark.main(
            [
                "--arch",
                "bag",
                "--trials",
                "2",
                "--name",
                "toy",
                "--workers",
                "1",
                "--no-mlflow",
                "--no-baseline",
                "--top-k",
                "1",
                "--final-seeds",
                "1",
                *data,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "bag" in out and (tmp_path / "toy" / "report.html").is_file()
    assert list((tmp_path / "toy" / "models" / "final").glob("bag-trial-*-seed-*"))

    assert benchmark.main(["train", "--arch", "bag", "--set", "embedding_dim=5", *data]) == 0
    metrics = json.loads((tmp_path / "train-bag" / "metrics.json").read_text())
    assert metrics["arch"] == "bag" and metrics["params"] == {"embedding_dim": 5, "learning_rate": 1e-2}
    config = json.loads((tmp_path / "train-bag" / "model" / "config.json").read_text())
    assert config["model_type"] == "textbench-test-bag" and config["embedding_dim"] == 5

    capsys.readouterr()
    assert (
        benchmark.main(["predict", "--name", "toy", "--output-dir", str(tmp_path), "--text", "a fine film"])
        == 0
    )
    assert "bag trial" in capsys.readouterr().err
    assert (
        benchmark.main(
            ["export", "--name", "toy", "--output-dir", str(tmp_path), "--to", str(tmp_path / "exported")]
        )
        == 0
    )
    code = (tmp_path / "exported" / "modeling_textbench.py").read_text()
    assert "class BagOfEmbeddings" in code and "class BagConfig" in code
    ids = torch.tensor([[5, 6, 7, 0]])
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "exported", trust_remote_code=True)
    assert model(input_ids=ids, attention_mask=(ids != 0).long()).logits.shape == (1, 2)

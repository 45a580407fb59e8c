"""Families from the user's code (``--family-module``): the Kim CNN example through every command,
and broken modules refused in one line before any training."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT, run_cli, search_args

from textbench import benchmark, spaces
from textbench.core.errors import UsageError
from textbench.search import plugins

EXAMPLE = ROOT / "examples" / "kim_cnn.py"


@pytest.fixture
def clean_registry(monkeypatch):
    """Whatever a test loads is forgotten afterwards (the registry is the process's)."""
    before = dict(spaces.FAMILIES)
    monkeypatch.delenv(plugins.ENV, raising=False)
    monkeypatch.setattr(plugins, "LOADED", {})
    monkeypatch.setattr(plugins, "SOURCES", {})
    yield
    spaces.FAMILIES.clear()
    spaces.FAMILIES.update(before)
    os.environ.pop(plugins.ENV, None)  # set by load_families for the helpers: delenv above recorded nothing


GOOD = """
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from textbench.core.families import Family


class ToyConfig(PretrainedConfig):
    model_type = "textbench-test-toy-{tag}"

    def __init__(self, vocab_size=100, embedding_dim=8, pad_token_id=0, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim


class Toy(PreTrainedModel):
    config_class = ToyConfig

    def __init__(self, config):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.output_layer = nn.Linear(config.embedding_dim, {out})
        self.post_init()

    def forward(self, input_ids, attention_mask=None, labels=None, **_):
        logits = self.output_layer(self.embeddings(input_ids).mean(dim=1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def suggest(trial):
    return {{"{param}": trial.suggest_int("{param}", 4, 16), "learning_rate": 1e-2}}


FAMILY = Family("toy", ToyConfig, Toy, suggest, {{"embedding_dim": 8, "learning_rate": 1e-2}})
"""


def module(tmp_path: Path, tag: str, *, out="config.num_labels", param="embedding_dim", tail="") -> Path:
    path = tmp_path / f"family_{tag}.py"
    path.write_text(GOOD.format(tag=tag, out=out, param=param) + textwrap.dedent(tail))
    return path


BROKEN = {
    "import error": (dict(tail="import no_such_package_here\n"), "importing it failed: ModuleNotFoundError"),
    "no family": (dict(tail="del FAMILY\n"), "defines no family"),
    "not a family": (dict(tail="FAMILY = 'toy'\n"), "expected a textbench.core.families.Family"),
    "wrong logits shape": (dict(out="1"), "must return .logits of shape (batch, num_labels)"),
    "unknown parameter": (dict(param="hidden_size"), "suggest samples 'hidden_size'"),
    "model is no PreTrainedModel": (
        dict(tail="FAMILY = Family('toy', ToyConfig, nn.Linear, suggest, {'embedding_dim': 8})\n"),
        "model must be a transformers.PreTrainedModel subclass",
    ),
    "starting configuration does not build": (
        dict(tail="FAMILY = Family('toy', ToyConfig, Toy, suggest, {'embedding_dim': -1})\n"),
        "notes_config does not build a model",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_family_module_is_refused_in_one_line_before_training(
    case, clean_registry, tmp_path, tiny_data_dir, capsys
):
    kwargs, expected = BROKEN[case]
    path = module(tmp_path, case.replace(" ", "_"), **kwargs)
    out = tmp_path / "out"
    argv = ["train", "--family-module", str(path), "--arch", "toy", "--dataset", str(tiny_data_dir)]
    assert benchmark.main([*argv, "--output-dir", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert str(path) in lines[0] or "--family-module" in lines[0]
    assert not out.exists() and "toy" not in spaces.FAMILIES


def test_a_good_module_registers_its_family_and_is_remembered_for_the_helpers(clean_registry, tmp_path):
    path = module(tmp_path, "good")
    assert plugins.load_families([str(path)]) == ["toy"]
    assert spaces.FAMILIES["toy"].config_class.model_type == "textbench-test-toy-good"
    assert os.environ[plugins.ENV] == str(path.resolve())  # what the spawned --workers load
    assert plugins.source("toy") == str(path.resolve())  # what the study records


@pytest.mark.slow  # about 4 minutes on 2 shared cores: five CLI processes and a spawned helper
def test_the_kim_cnn_example_runs_through_search_report_predict_export_and_rerun(tmp_path, tiny_data_dir):
    out = tmp_path / "runs"
    args = search_args(tiny_data_dir, out, family="kim_cnn,cnn", trials=2, max_steps=20, name="kim")
    extra = ["--final-seeds", "1", "--top-k", "1", "--workers", "2", "--no-mlflow"]
    result = run_cli("--family-module", str(EXAMPLE), *args, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "kim_cnn" in result.stdout
    assert list((out / "kim" / "models" / "final").glob("kim_cnn-trial-*-seed-*"))

    # A finished benchmark finds the family again from its study: no --family-module from here on.
    where = ["--name", "kim", "--output-dir", str(out)]
    report = run_cli("report", *where)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "kim_cnn" in (out / "kim" / "report.html").read_text()

    predict = run_cli("predict", *where, "--arch", "kim_cnn", "--text", "a fine film", "a dull film")
    assert predict.returncode == 0, predict.stderr[-2000:]
    assert "kim_cnn trial" in predict.stderr

    export = run_cli("export", *where, "--arch", "kim_cnn", "--to", str(tmp_path / "exported"))
    assert export.returncode == 0, export.stderr[-2000:]
    code = (tmp_path / "exported" / "modeling_textbench.py").read_text()
    assert (
        "class KimCNN(" in code and "class KimCNNConfig(" in code and "textbench" not in code.split('"""')[2]
    )
    config = json.loads((tmp_path / "exported" / "config.json").read_text())
    assert config["model_type"] == "kim-cnn" and config["num_widths"] >= 1

    rerun = run_cli("rerun", *where, "--arch", "kim_cnn", "--trial", "0")
    assert rerun.returncode == 0, rerun.stderr[-2000:]


def readme_family() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("```python\n# my_family.py") + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_readme_family_works_from_a_folder_outside_the_repository(
    clean_registry, tmp_path, tiny_data_dir, tiny_tokenizer_dir, capsys, monkeypatch
):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "my_family.py").write_text(readme_family())
    monkeypatch.chdir(folder)
    argv = ["train", "--family-module", "my_family.py", "--arch", "bag", "--set", "embedding_dim=12"]
    data = ["--dataset", str(tiny_data_dir), "--tokenizer", str(tiny_tokenizer_dir), "--max-length", "32"]
    budget = ["--max-steps", "20", "--eval-steps", "10", "--output-dir", str(folder / "runs")]
    assert benchmark.main([*argv, *data, *budget]) == 0, capsys.readouterr().err
    metrics = json.loads((folder / "runs" / "train-bag" / "metrics.json").read_text())
    assert metrics["params"] == {"embedding_dim": 12, "learning_rate": 1e-3}
    config = json.loads((folder / "runs" / "train-bag" / "model" / "config.json").read_text())
    assert config["model_type"] == "my-bag" and config["embedding_dim"] == 12


def test_an_installed_entry_point_provides_a_family_without_any_flag(clean_registry, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    module(site, "ep")
    dist = site / "textbench_test_family-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: textbench-test-family\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[textbench.families]\ntoy = family_ep:FAMILY\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(plugins, "ENTRY_POINTS_LOADED", False)
    assert plugins.load_families() == ["toy"]
    assert spaces.FAMILIES["toy"].config_class.model_type == "textbench-test-toy-ep"
    assert plugins.source("toy") is None  # every process finds entry points itself: nothing recorded


def test_a_broken_entry_point_is_refused_in_one_line(clean_registry, tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "textbench_test_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: textbench-test-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[textbench.families]\nbroken = no_such_module_here:FAMILY\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(plugins, "ENTRY_POINTS_LOADED", False)
    with pytest.raises(
        UsageError, match=r"entry point broken = no_such_module_here:FAMILY .*ModuleNotFoundError"
    ):
        plugins.load_families()


def test_a_workers_helper_loads_the_parents_family_modules_before_it_runs(
    clean_registry, tmp_path, monkeypatch
):
    """A spawned helper starts from a fresh interpreter: it knows the parent's modules only from
    ``$TEXTBENCH_FAMILY_MODULES``, and must load them before its benchmark looks families up."""
    from textbench import pipeline

    path = module(tmp_path, "helper")
    monkeypatch.setenv(plugins.ENV, str(path.resolve()))  # what the parent's loading left for its children
    seen = []
    monkeypatch.setattr(pipeline, "run_benchmark", lambda *a, **k: seen.append("toy" in spaces.FAMILIES))
    monkeypatch.setattr(pipeline.signal, "signal", lambda *a: None)
    pipeline.helper_main((None, None, None), 1, 1, [], False, None, os.getpid())
    assert seen == [True]

"""Exit 0 only when every family has a result: a family that completed no trial makes the command
exit 3 with a last line naming it and its most common failure reason, after the report is written."""

from __future__ import annotations

import pytest
from test_families import BAG, BagOfEmbeddings
from transformers import PretrainedConfig

from textbench import benchmark, spaces
from textbench.core.families import Family
from textbench.reports.failures import FAILED_EXIT


class BrokenConfig(PretrainedConfig):
    model_type = "textbench-test-broken"

    def __init__(self, vocab_size=100, embedding_dim=8, pad_token_id=0, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim


class Broken(BagOfEmbeddings):
    """Builds, but cannot train: what an allocation that never succeeds looks like to the harness."""

    config_class = BrokenConfig

    def features(self, embedded, mask):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory (test)")


BROKEN = Family("broken", BrokenConfig, Broken, BAG.suggest, BAG.notes_config)


@pytest.fixture
def families(monkeypatch):
    for family in (BAG, BROKEN):
        monkeypatch.setitem(spaces.FAMILIES, family.name, family)
        spaces.register(family)


def test_a_family_that_completed_nothing_fails_the_command(
    families, tiny_data_dir, tiny_tokenizer_dir, tmp_path, capsys
):
    argv = [
        *("--arch", "bag,broken", "--trials", "2", "--name", "toy", "--no-mlflow", "--no-baseline"),
        *("--workers", "1"),
        *("--top-k", "1", "--final-seeds", "1", "--dataset", str(tiny_data_dir)),
        *("--tokenizer", str(tiny_tokenizer_dir), "--max-length", "32", "--max-steps", "20"),
        *("--eval-steps", "10", "--output-dir", str(tmp_path)),
    ]
    # failed trials do not count toward --trials: the study stops after 5 failures in a row
    assert benchmark.main(argv) == FAILED_EXIT == 3
    out, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "error: benchmark 'toy' failed for 1 family: broken: no trial completed (5 failed;"
    )
    assert "can't allocate memory (test)" in last and "bag:" not in last
    assert "FAILED: broken" in out and "search was thin" not in out  # the terminal says failed, not thin
    assert (tmp_path / "toy" / "report.html").is_file()  # what ran is still reported

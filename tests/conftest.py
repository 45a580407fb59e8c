"""Shared fixtures. Tests never touch the network: the Hugging Face libraries are forced offline and
every cache (HF_HOME included) lives in a temporary folder that is removed when the process exits.

Fixtures (see also ``tests/helpers.py`` for builders of other datasets):
- ``tiny_data_dir`` (session): folder with ``train.parquet`` (400 rows), ``test.parquet`` (100 rows),
  columns text/label (0 = negative, 1 = positive, balanced, learnable), and ``tokenizer/``, a
  WordPiece tokenizer trained on that text ([PAD]=0) that ``AutoTokenizer.from_pretrained`` loads.
- ``tiny_tokenizer_dir`` (session): ``tiny_data_dir / "tokenizer"``.
- ``tiny_tokenizer`` (session): that tokenizer, loaded.
- ``tiny_data`` (session): ``core.data.prepare`` of the tiny data (max_length 64, seed 42), a
  ``PreparedData`` with train 360 / validation 40 / test 100 rows. Treat it as read-only.
- ``shared_data`` (session): Path of the real offline data in ``$TEXTBENCH_DATA`` (imdb/,
  rt_polarity/, bert-base-cased/); tests that use it are skipped when it is unset or missing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# ------------------------------------------------------------ offline, private caches (at import,
# before any test module imports huggingface_hub/datasets/transformers/evaluate)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
_HF_HOME = tempfile.mkdtemp(prefix="textbench-test-hf-")
os.environ["HF_HOME"] = _HF_HOME
for _var in (
    "HF_DATASETS_CACHE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_MODULES_CACHE",
    "HF_EVALUATE_CACHE",
    "TRANSFORMERS_CACHE",
):
    os.environ.pop(_var, None)

ROOT = Path(__file__).resolve().parent.parent
if "textbench" not in sys.modules:  # the tests test this checkout (a worktree, mutmut's mutants/ copy),
    import importlib.util  # whatever an installed textbench points at: as `python benchmark.py` does

    _spec = importlib.util.spec_from_file_location(
        "textbench", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    sys.modules["textbench"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["textbench"])

import pytest  # noqa: E402
from helpers import build_tokenizer, data_settings, make_dataset  # noqa: E402

DATA_ENV = "TEXTBENCH_DATA"


def _remove_hf_home(pid: int = os.getpid()) -> None:
    if os.getpid() == pid:  # not in forked children (mutmut, xdist): the folder is the process's
        shutil.rmtree(_HF_HOME, ignore_errors=True)


# At exit, not at session end: a process may run several sessions (mutmut does) with one HF_HOME.
atexit.register(_remove_hf_home)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    import pandas as pd

    root = tmp_path_factory.mktemp("tiny")
    folder = make_dataset(root, n_train=400, n_test=100, name="tiny", seed=0)
    texts = pd.concat([pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "test.parquet")])
    build_tokenizer(texts["text"], folder / "tokenizer", vocab_size=500)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_data_dir) -> Path:
    return tiny_data_dir / "tokenizer"


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


@pytest.fixture(scope="session")
def tiny_data(tiny_data_dir, tiny_tokenizer_dir, tmp_path_factory):
    from textbench.core.data import prepare

    cache = tmp_path_factory.mktemp("tiny-cache")
    return prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, cache, max_length=64, seed=42))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(f"${DATA_ENV} is not set (real offline data)")
    path = Path(value).expanduser()
    if not (path / "imdb" / "train.parquet").exists():
        pytest.skip(f"${DATA_ENV}={value} has no imdb/train.parquet")
    return path

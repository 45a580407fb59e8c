"""Builders for small, offline test data: learnable sentiment-like text, files, a WordPiece tokenizer.

Everything here is deterministic given ``seed`` and needs no network. The fixtures in
``conftest.py`` are built from these functions; tests that need a variant (three classes,
string labels, CSV, one file without a test split, other column names) call them directly:

    folder = make_dataset(tmp_path, n_classes=3, string_labels=True, fmt="csv")
    file = make_dataset(tmp_path, single_file=True)          # one file, no test split
    settings = data_settings(folder, tokenizer_dir, tmp_path / "cache")
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from textbench.core.settings import DataSettings

# Class vocabularies: a text of class k draws ~40% of its words from CLASS_WORDS[k], the rest from
# FILLER. Class 0 = negative, 1 = positive, 2 = neutral; classes 3+ get synthetic topic words.
NEGATIVE = (
    "awful terrible boring dull bad worst horrible poor weak annoying painful dreadful "
    "mess waste disappointing lifeless clumsy tedious ugly stupid"
).split()
POSITIVE = (
    "great excellent wonderful brilliant good best superb lovely moving charming delightful "
    "gripping beautiful fantastic perfect touching clever fresh stunning enjoyable"
).split()
NEUTRAL = "okay average fine ordinary mixed middling passable standard usual moderate typical plain".split()
FILLER = (
    "the a an and of to in it is was this that film movie story plot actor actors scene scenes "
    "director music script cast ending character characters with for on as but at by from "
    "about one two some very quite really just then there when while after before again also "
    "time people world life night house city water road year day man woman friend family"
).split()
LABEL_NAMES = ("negative", "positive", "neutral")

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] gets id 0


def class_words(k: int) -> Sequence[str]:
    """The signal vocabulary of class ``k``."""
    if k < 3:
        return (NEGATIVE, POSITIVE, NEUTRAL)[k]
    return [f"topic{k}w{i}" for i in range(12)]


def label_name(k: int) -> str:
    """The string label of class ``k`` (sorted order differs from k on purpose for k in 0..2)."""
    return LABEL_NAMES[k] if k < 3 else f"class{k}"


def make_frame(
    n: int,
    *,
    n_classes: int = 2,
    seed: int = 0,
    weights: Sequence[float] | None = None,
    string_labels: bool = False,
    min_words: int = 5,
    max_words: int = 60,
    signal: float = 0.4,
    exclude: Iterable[str] = (),
) -> pd.DataFrame:
    """``n`` unique rows (columns ``text``, ``label``) of learnable class-dependent text.

    Labels are 0..n_classes-1 (or their names with ``string_labels``), drawn with ``weights``
    (balanced by default, exact counts up to rounding). Texts in ``exclude`` are never produced,
    so two frames built with different seeds and ``exclude`` share no text.
    """
    rng = random.Random(seed)
    weights = list(weights) if weights is not None else [1.0] * n_classes
    if len(weights) != n_classes:
        raise ValueError("weights needs one entry per class")
    total = sum(weights)
    counts = [int(round(n * w / total)) for w in weights]
    counts[-1] = n - sum(counts[:-1])
    labels = [k for k, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(labels)
    seen = set(exclude)
    texts = []
    for k in labels:
        words = class_words(k)
        while True:
            length = rng.randint(min_words, max_words)
            tokens = [
                rng.choice(words) if rng.random() < signal else rng.choice(FILLER) for _ in range(length)
            ]
            tokens[rng.randrange(length)] = rng.choice(words)  # at least one signal word
            text = " ".join(tokens)
            if text not in seen:
                break
        seen.add(text)
        texts.append(text.capitalize() + ".")
    out = pd.DataFrame({"text": texts, "label": labels})
    if string_labels:
        out["label"] = out["label"].map(label_name)
    return out


def write_frame(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` as parquet, csv or jsonl, chosen by ``path``'s suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        raise ValueError(f"unsupported suffix {path.suffix}")
    return path


def make_dataset(
    root: Path,
    *,
    n_train: int = 400,
    n_test: int = 100,
    n_classes: int = 2,
    string_labels: bool = False,
    fmt: str = "parquet",
    single_file: bool = False,
    weights: Sequence[float] | None = None,
    text_column: str = "text",
    label_column: str = "label",
    name: str = "data",
    seed: int = 0,
) -> Path:
    """A dataset on disk under ``root``; returns what to pass as ``DataSettings.dataset``.

    - default: folder ``root/name`` with ``train.<fmt>`` (and ``test.<fmt>`` when ``n_test > 0``);
    - ``single_file=True``: one file ``root/name.<fmt>`` with all ``n_train + n_test`` rows and
      no test split (the loader must carve one off).
    ``fmt`` is ``parquet``, ``csv`` or ``jsonl``. Texts are unique across both splits.
    """
    root = Path(root)
    train = make_frame(n_train, n_classes=n_classes, seed=seed, weights=weights, string_labels=string_labels)
    test = (
        make_frame(
            n_test,
            n_classes=n_classes,
            seed=seed + 1000,
            weights=weights,
            string_labels=string_labels,
            exclude=train["text"],
        )
        if n_test
        else None
    )
    rename = {"text": text_column, "label": label_column}
    if single_file:
        frame = pd.concat([train, test]) if test is not None else train
        return write_frame(frame.rename(columns=rename).reset_index(drop=True), root / f"{name}.{fmt}")
    folder = root / name
    write_frame(train.rename(columns=rename), folder / f"train.{fmt}")
    if test is not None:
        write_frame(test.rename(columns=rename), folder / f"test.{fmt}")
    return folder


def build_tokenizer(texts: Iterable[str], out_dir: Path, *, vocab_size: int = 500) -> Path:
    """Train a BERT-like WordPiece tokenizer on ``texts`` and save it where AutoTokenizer loads it.

    Special tokens: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4; ``[CLS] text [SEP]`` is added.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    tok.train_from_iterator(list(texts), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    out_dir = Path(out_dir)
    fast.save_pretrained(str(out_dir))
    return out_dir


def data_settings(dataset, tokenizer, cache_dir, **overrides) -> DataSettings:
    """DataSettings for local test data: paths as strings, a private cache, short sequences."""
    values = {"max_length": 64, "seed": 42} | overrides
    return DataSettings(dataset=str(dataset), tokenizer=str(tokenizer), cache_dir=str(cache_dir), **values)


def split_texts(frames: dict[str, pd.DataFrame]) -> dict[str, set[str]]:
    """The set of texts of each split (texts are unique in generated data)."""
    return {name: set(df["text"]) for name, df in frames.items()}


# ---------------------------------------------------------------- the real CLI, services

ROOT = Path(__file__).resolve().parent.parent
# Admin connection used to create and drop throwaway databases (override for another server).
POSTGRES_ADMIN_ENV = "TEXTBENCH_TEST_POSTGRES"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def cli_env(**extra: str) -> dict:
    """The environment of a CLI subprocess: this one, the repo importable, no inherited MLflow URI."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    return env


def run_cli(*args: str, env: dict | None = None, timeout: float = 600):
    """``python benchmark.py ARGS`` as a subprocess; a ``subprocess.CompletedProcess`` (text)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, str(ROOT / "benchmark.py"), *args],
        cwd=ROOT,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, env: dict | None = None, log_dir: Path):
    """Start ``python benchmark.py ARGS`` without waiting; stdout/stderr go to files in ``log_dir``
    (no pipe can fill up). Returns the ``subprocess.Popen``; read the logs with ``cli_output``."""
    import subprocess
    import sys

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    out, err = open(log_dir / "stdout.txt", "w"), open(log_dir / "stderr.txt", "w")
    try:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "benchmark.py"), *args],
            cwd=ROOT,
            env=env or cli_env(),
            stdout=out,
            stderr=err,
            text=True,
        )
    finally:
        out.close()
        err.close()


def cli_output(log_dir: Path) -> tuple[str, str]:
    """(stdout, stderr) of a process started with ``start_cli``."""
    return (Path(log_dir) / "stdout.txt").read_text(), (Path(log_dir) / "stderr.txt").read_text()


def search_args(
    data_dir: Path,
    out: Path,
    *,
    family: str = "cnn",
    trials: int = 2,
    name: str = "tiny",
    max_steps: int = 20,
    eval_steps: int = 10,
    extra: Sequence[str] = (),
) -> list[str]:
    """Arguments of a lean search on the tiny data (``data_dir/tokenizer`` is its tokenizer):
    short sequences, a small budget, no final stage, no baseline."""
    return [
        "--arch",
        family,
        "--trials",
        str(trials),
        "--dataset",
        str(data_dir),
        "--tokenizer",
        str(Path(data_dir) / "tokenizer"),
        "--max-length",
        "64",
        "--max-steps",
        str(max_steps),
        "--eval-steps",
        str(eval_steps),
        "--batch-size",
        "16",
        "--output-dir",
        str(out),
        "--name",
        name,
        "--final-seeds",
        "0",
        "--no-baseline",
        *extra,
    ]


def error_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are the CLI's one-line errors."""
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def default_storage(out: Path) -> str:
    """Where a CLI run with ``--output-dir out`` and no ``--storage`` keeps its studies."""
    return str(Path(out) / "optuna.journal")


def open_storage(storage: str):
    """An Optuna storage for a URL or a journal file path, opened with Optuna's own classes (not the
    harness's): what a user's script or optuna-dashboard would see."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if "://" in storage:
        return optuna.storages.get_storage(storage)
    return optuna.storages.JournalStorage(JournalFileBackend(storage))


def storage_missing(storage: str) -> bool:
    if storage.startswith("sqlite:///"):
        return not Path(storage[len("sqlite:///") :]).exists()
    return "://" not in storage and not Path(storage).exists()


def study_names(storage: str) -> set[str]:
    """Study names in an Optuna storage (URL or journal file); empty (and nothing created) for a
    missing file."""
    import optuna

    if storage_missing(storage):
        return set()
    return {
        s.study_name for s in optuna.get_all_study_summaries(open_storage(storage), include_best_trial=False)
    }


def load_study(name: str, storage: str):
    import optuna

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def mlflow_runs(tracking_uri: str, experiment: str) -> list:
    """All runs of an MLflow experiment; empty when the SQLite file or the experiment is missing."""
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///") :]).exists():
        return []
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=5000) if found is not None else []


def runs_by_role(runs: list, role: str) -> list:
    return [r for r in runs if r.data.tags.get("textbench.role") == role]


def skip_unless_ci(reason: str) -> None:
    """Skip a test whose service (PostgreSQL, Chromium) is missing here; under ``CI=true`` fail
    instead: on CI a missing service is a broken setup, not a reason to read green."""
    import os

    import pytest

    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(reason)


def postgres_admin_url() -> str:
    import os

    return os.environ.get(POSTGRES_ADMIN_ENV) or POSTGRES_ADMIN_URL


def postgres_unreachable_reason() -> str | None:
    """None when the test PostgreSQL server answers, else why not (for pytest.skip)."""
    try:
        import psycopg

        with psycopg.connect(postgres_admin_url(), connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means: skip the tests that need it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return f"PostgreSQL at {postgres_admin_url()} is not reachable ({first}); set ${POSTGRES_ADMIN_ENV}"


def create_postgres_database(prefix: str = "textbench_test") -> str:
    """A new empty database on the test server; returns its ``postgresql+psycopg://`` URL."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    admin = make_url(postgres_admin_url())
    return admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by ``create_postgres_database``, closing what still connects to it."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stop_process_tree(proc, *, graceful: bool = True, timeout: float = 15) -> None:
    """Stop a process and everything it started, by PID: SIGTERM first when ``graceful``, then SIGKILL."""
    import psutil

    if proc.poll() is not None:
        return
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    alive = family
    if graceful:
        for p in family:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(family, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=2 * timeout)


def sabotage_after(step: int = 0):
    """A Trainer callback that, from step ``step`` on, forces the model to predict class 0 for
    everything (accuracy 0.5 on balanced data): every evaluation after it is worse than anything
    learned. Built here so that the tests that need it share one definition."""
    import torch
    from transformers import TrainerCallback

    class SabotageAfter(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step >= step:
                with torch.no_grad():
                    model.output_layer.weight.zero_()
                    model.output_layer.bias.copy_(torch.tensor([10.0, -10.0]))

    return SabotageAfter()


def make_tiny_bert(out_dir: Path, tokenizer_dir: Path, *, seed: int = 0) -> Path:
    """A tiny randomly initialised BERT checkpoint with ``tokenizer_dir``'s tokenizer beside it: what
    ``--finetune FOLDER`` loads, with no weights download (about 40 k parameters over a 500-token
    vocabulary)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    out_dir = Path(out_dir)
    BertForSequenceClassification(config).save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir

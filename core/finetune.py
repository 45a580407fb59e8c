"""A pretrained model fine-tuned as a reference row: load it, tokenize the same rows with its own
tokenizer, time its step, train it with the families' Trainer setup.

The model is ``AutoModelForSequenceClassification`` from a local folder (``save_pretrained``), the
local mirror (``$TEXTBENCH_DATA/NAME``), the Hugging Face cache or the Hub. Its tokenizer reads the
very rows the families read (same train/validation/test split, same ``max_length``): the data is
loaded again with the tokenizer swapped and its fingerprint must match. Training goes through
``core.training.fit``, so steps, batch size, evaluation cadence, patience and best-checkpoint
selection are the families' own. Nothing here knows about Optuna or MLflow (``search.finetune_stage``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from textbench.core.data import ArrayRows, PaddingCollator, hub_reachable, local_copy, prepare
from textbench.core.errors import UsageError
from textbench.core.settings import DATA_ENV, DataSettings, TrainSettings

log = logging.getLogger(__name__)

ARCH = "finetune"  # its name where a family's goes: predict/export/rerun --arch finetune, the registry
SOURCE = "fine-tune"  # ``use.Chosen.source`` of its model
LR_GRID = (2e-5, 3e-5, 5e-5)  # the BERT paper's fine-tuning grid (Devlin et al. 2019, appendix A.3)
EVAL_COST = 1 / 3  # a forward pass per example, as a share of a training step's (forward + backward)
WEIGHTS = ("*.safetensors", "*.bin")  # what save_pretrained writes (one file, or shards and an index)
CALIBRATION_STEPS = 3  # timed optimizer steps after one warm-up step


def display_name(model: str) -> str:
    """``bert-base-cased`` for a hub id or a folder: the last path component."""
    return Path(model.rstrip("/")).name or model


def _folder_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a saved model (config and weights), or None."""
    if not (folder / "config.json").is_file():
        return f"{folder} has no config.json"
    if not any(any(folder.glob(pattern)) for pattern in WEIGHTS):
        return f"{folder} has a config.json but no weights ({', '.join(WEIGHTS)})"
    return None


def resolve_model(model: str, data_dir: str | None) -> str:
    """A local folder (the path itself or ``DATA_DIR/model``), a hub id already in the HF cache, or a hub
    id when the Hub answers; else the one-line error that says how to get it. Loads nothing."""
    local = local_copy(model, data_dir)
    problem = None if local is None else _folder_problem(local)
    if local is not None and problem is None:
        return str(local.resolve())
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        raise UsageError(
            f"--finetune {model}: {problem or 'no such folder'}, and it is not a Hugging Face Hub id: pass a "
            "folder written by save_pretrained (model and tokenizer), or a hub id such as bert-base-cased"
        ) from None
    if isinstance(try_to_load_from_cache(model, "config.json"), str) or hub_reachable():
        return model
    where = f"{data_dir}/{model}" if data_dir else f"$TEXTBENCH_DATA/{model}"
    raise UsageError(
        f"--finetune {model}: {problem or f'no local folder {model}'} and the Hugging Face Hub is "
        f"unreachable: download it with `python -c \"import transformers as t; [c.from_pretrained('{model}')"
        f".save_pretrained('DIR/{model}') for c in (t.AutoTokenizer, "
        't.AutoModelForSequenceClassification)]"` and set '
        f"{DATA_ENV}=DIR ({where}), or pass a local folder"
    )


def model_fingerprint(source: str) -> str:
    """What identifies the pretrained weights: the hub id, or a local folder's config and weight files
    (names and sizes: a re-saved folder with other weights has another fingerprint)."""
    path = Path(source)
    parts: dict = {"model": source}
    if path.is_dir():
        parts["config"] = (path / "config.json").read_text()
        parts["files"] = sorted(
            (p.name, p.stat().st_size) for p in path.iterdir() if p.suffix in (".safetensors", ".bin")
        )
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def model_data(data_settings: DataSettings, source: str, fingerprint: str):
    """The benchmark's rows tokenized by the model's own tokenizer (cached like the families' tokens);
    ``fingerprint`` is the families' data fingerprint, which these rows must have."""
    data = prepare(replace(data_settings, tokenizer=source))
    if data.fingerprint != fingerprint:  # the split is deterministic: a mismatch is a bug, not bad input
        raise RuntimeError(
            f"the fine-tune's rows ({data.fingerprint}) are not the families' ({fingerprint}): "
            "the same split was expected"
        )
    return data


def load_model(source: str, data, seed: int | None = None):
    """The pretrained encoder with a fresh classification head for ``data``'s labels (seeded first, so
    the head's initialisation is the seed's)."""
    from transformers import AutoModelForSequenceClassification, set_seed
    from transformers.utils import logging as hf_logging

    if seed is not None:
        set_seed(seed)
    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized: classifier.*": expected, the head is new
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=data.num_labels,
            id2label=dict(enumerate(data.label_names)),
            label2id={name: i for i, name in enumerate(data.label_names)},
            ignore_mismatched_sizes=True,  # a checkpoint that already has a head of another size
        )
    finally:
        hf_logging.set_verbosity(before)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = data.tokenizer.pad_token_id
    return model


def parameters_text(n: int) -> str:
    """``108.3 M parameters``; ``23,175 parameters`` below a million."""
    return f"{n / 1e6:.1f} M parameters" if n >= 1e6 else f"{n:,} parameters"


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def seconds_per_step(model, data, settings: TrainSettings, steps: int = CALIBRATION_STEPS) -> float:
    """Measured seconds per optimizer step (forward, backward, AdamW) of ``model`` on real training
    batches of ``settings.batch_size``: the median of ``steps`` steps after one warm-up step. The
    model's weights change; train a fresh copy afterwards."""
    import torch

    rows, collate = ArrayRows(data.splits["train"]), PaddingCollator(data.tokenizer)
    order = np.random.default_rng(0).permutation(len(rows))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR_GRID[0])
    model.train()
    times = []
    for i in range(steps + 1):
        picks = order[np.arange(i * settings.batch_size, (i + 1) * settings.batch_size) % len(rows)]
        batch = collate(rows.__getitems__(picks.tolist()))
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def runs_needed(final_seeds: int, grid=LR_GRID) -> int:
    """Trainings of the stage: one per learning rate (seed 0), then the other final seeds at the
    chosen one."""
    return len(grid) + max(final_seeds - 1, 0)


def estimated_seconds(
    rate: float, settings: TrainSettings, runs: int, validation_rows: int, test_rows: int
) -> float:
    """An upper bound on the stage's seconds at ``rate`` s/step: every run trains all ``max_steps`` (no
    early stop) and evaluates validation every ``eval_steps``; the chosen runs score test once."""
    per_example = rate * EVAL_COST / settings.batch_size
    evaluations = settings.max_steps // settings.eval_steps
    train = settings.max_steps * rate + evaluations * validation_rows * per_example
    return runs * train + runs * test_rows * per_example


def cost_line(
    name: str, n_params: int, rate: float, runs: int, settings: TrainSettings, seconds: float, device: str
) -> str:
    """What the fine-tune will cost, said before it starts."""
    from textbench.core.durations import format_duration

    return (
        f"fine-tuning {name} ({parameters_text(n_params)}) on {device}: about {rate:.2f} s/step here "
        f"(measured, batch {settings.batch_size}), {runs} runs x {settings.max_steps} steps = about "
        f"{format_duration(seconds)}, validation every {settings.eval_steps} "
        "steps included"
    )


def fit_one(source: str, data, settings: TrainSettings, work_dir: Path, *, learning_rate: float, seed: int):
    """One fine-tuning run: (model, ``core.training.FitResult``); the model is the best-validation
    checkpoint (the families' rules: ``core.training.fit``)."""
    from textbench.core.training import fit

    model = load_model(source, data, seed)
    result = fit(model, data, settings, work_dir, learning_rate=learning_rate, seed=seed)
    return result.trainer.model, result

"""Will a configuration fit in memory? Decided before anything is allocated.

A model too large for the machine otherwise fails only once it is built (every trial ends in
"DefaultCPUAllocator: can't allocate memory", or the machine swaps), after minutes of setup. Here
the parameters are counted on torch's "meta" device (shapes only, no storage) and training is
costed as parameters x 16 bytes (fp32 weights, gradients and AdamW's two moments) plus a rough
bound on the activations kept for the backward pass; that is compared with the memory free per
worker (RAM, or the GPU's free memory shared by the workers on it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from textbench.core.families import Family

BYTES_PER_PARAM = 16  # fp32 weight + gradient + AdamW exp_avg + exp_avg_sq
ACTIVATION_FACTOR = 6  # activations kept per layer width for backward (forward values, grads, slack)
WIDTH_KEYS = ("embedding_dim", "hidden_size", "num_filters")
WORKERS_ENV = "TEXTBENCH_WORKERS"  # set by the pipeline: how many processes share this machine
GB = 1024**3


@dataclass(frozen=True)
class Estimate:
    n_params: int
    weights_bytes: int  # parameters x BYTES_PER_PARAM
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.weights_bytes + self.activation_bytes


def estimate(
    family: Family,
    params: dict,
    *,
    vocab_size: int,
    num_labels: int,
    pad_token_id: int,
    batch_size: int,
    max_length: int,
) -> Estimate:
    """The training memory of ``family`` with ``params`` (model values; others ignored)."""
    from textbench.core.models import build_model
    from textbench.core.training import split_params

    model_params, _ = split_params(params)
    with torch.device("meta"):  # shapes only: a 100 GB embedding costs nothing here
        model = build_model(
            family, vocab_size=vocab_size, num_labels=num_labels, pad_token_id=pad_token_id, **model_params
        )
    n = sum(p.numel() for p in model.parameters())
    config = model.config.to_dict()
    width = sum(int(config[k]) for k in WIDTH_KEYS if isinstance(config.get(k), int))
    layers = config.get("num_layers") if isinstance(config.get("num_layers"), int) else 1
    activations = 4 * batch_size * max_length * max(width, 1) * max(layers, 1) * ACTIVATION_FACTOR
    return Estimate(n, n * BYTES_PER_PARAM, activations)


def available_per_worker() -> tuple[int, int, str]:
    """(bytes free per worker, workers sharing it, where): the GPU's free memory over the workers
    on it, or the machine's available RAM over all workers."""
    workers = max(1, int(os.environ.get(WORKERS_ENV, "1") or 1))
    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        sharing = math.ceil(workers / max(1, torch.cuda.device_count()))
        return free // sharing, sharing, "GPU memory free"
    import psutil

    return psutil.virtual_memory().available // workers, workers, "RAM available"


def does_not_fit(estimate: Estimate, what: str) -> str | None:
    """The refusal (with the numbers) when ``estimate`` exceeds the memory free per worker, or None."""
    free, workers, where = available_per_worker()
    if estimate.total <= free:
        return None
    return (
        f"{what} cannot fit in memory: training it needs about {estimate.total / GB:.1f} GB "
        f"({estimate.n_params / 1e6:,.1f} M parameters x {BYTES_PER_PARAM} bytes for weights, gradients "
        f"and AdamW state = {estimate.weights_bytes / GB:.1f} GB, + ~{estimate.activation_bytes / GB:.1f} GB "
        f"of activations), but {free / GB:.1f} GB is free per worker ({where}, {workers} "
        f"worker{'s' * (workers != 1)})"
    )


class DoesNotFit(RuntimeError):
    """A sampled configuration too large to train here: the trial fails with this, unallocated."""


def check(family: Family, params: dict, data, settings, what: str, error: type[Exception]) -> None:
    """Raise ``error`` with the numbers when ``params`` cannot train here (``data``: a
    ``core.data.PreparedData``, tokenizer loaded; ``settings``: the ``TrainSettings``)."""
    why = does_not_fit(
        estimate(
            family,
            params,
            vocab_size=len(data.tokenizer),
            num_labels=data.num_labels,
            pad_token_id=data.tokenizer.pad_token_id,
            batch_size=settings.batch_size,
            max_length=data.max_length,
        ),
        what,
    )
    if why:
        raise error(why)

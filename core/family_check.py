"""Is a family usable? The checks run on a user's family before any data is read or a trial starts.

A family from a user's module fails in ways the built-ins never do: a class that is not a
``PretrainedConfig``/``PreTrainedModel``, a starting configuration the config does not take, a model
whose logits have the wrong shape. Each of these would otherwise surface minutes later, inside the
first trial, as a traceback from the Trainer. ``check_model`` builds the starting configuration with a
tiny vocabulary and runs one forward pass on a 2 x 8 batch (with padding in one row), which costs
milliseconds, and names the part that is wrong.
"""

from __future__ import annotations

import warnings

from textbench.core.errors import UsageError
from textbench.core.families import Family, split_params

PROBE_VOCAB = 50  # token ids of the probe batch are below this
PROBE_LABELS = 3  # not 2: a model that hard-codes two classes is caught


def one_line(exc: BaseException) -> str:
    return " ".join(f"{exc.__class__.__name__}: {exc}".split())


def check_model(family: Family, where: str) -> None:
    """Build ``family``'s starting configuration small and check one forward pass; ``UsageError``
    naming the part (``where`` says which module it came from) otherwise."""
    import torch
    from transformers import PretrainedConfig, PreTrainedModel

    from textbench.core.models import build_model

    def refuse(part: str, problem: str) -> UsageError:
        return UsageError(f"family {family.name!r} from {where}: {part} {problem}")

    try:
        config_class = family.config_class
    except Exception as exc:  # noqa: BLE001 - a "module:Class" path that does not resolve
        raise refuse("config", f"cannot be imported ({one_line(exc)})") from None
    if not (isinstance(config_class, type) and issubclass(config_class, PretrainedConfig)):
        raise refuse("config", f"must be a transformers.PretrainedConfig subclass, got {config_class!r}")
    if not getattr(config_class, "model_type", ""):
        raise refuse("config", "needs a model_type (a unique string, e.g. model_type = 'my-cnn')")
    try:
        model_class = family.model_class
    except Exception as exc:  # noqa: BLE001
        raise refuse("model", f"cannot be used ({one_line(exc)})") from None
    if not (isinstance(model_class, type) and issubclass(model_class, PreTrainedModel)):
        raise refuse("model", f"must be a transformers.PreTrainedModel subclass, got {model_class!r}")
    if getattr(model_class, "config_class", None) is not config_class:
        raise refuse("model", f"needs config_class = {config_class.__name__}")
    params = split_params(family.notes_config)[0]
    try:
        model = build_model(family, vocab_size=PROBE_VOCAB, num_labels=PROBE_LABELS, pad_token_id=0, **params)
    except Exception as exc:  # noqa: BLE001
        raise refuse("notes_config", f"does not build a model ({one_line(exc)})") from None
    ids = torch.randint(1, PROBE_VOCAB, (2, 8))
    ids[1, 5:] = 0  # the second text is padded
    mask = (ids != 0).long()
    model.eval()

    def forward(**labels):
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. Conv1d's padding="same" note: the first trial says it
                return model(input_ids=ids, attention_mask=mask, **labels)
        except Exception as exc:  # noqa: BLE001
            raise refuse("model", f"forward pass failed on a 2x8 batch ({one_line(exc)})") from None

    out = forward()
    logits = getattr(out, "logits", None)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, PROBE_LABELS):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(out).__name__
        raise refuse(
            "model",
            f"must return .logits of shape (batch, num_labels) = (2, {PROBE_LABELS}) for a 2x8 batch, "
            f"got {shape}",
        )
    out = forward(labels=torch.tensor([0, 2]))
    loss = getattr(out, "loss", None)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise refuse("model", "must return a scalar .loss when labels are given (the Trainer minimises it)")

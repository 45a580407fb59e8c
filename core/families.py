"""A model family as one record: what it is built from, how it is searched, where it starts.

Plain values and lazy class references, no torch: the command line names, lists and checks the
families before it loads the libraries that train. The registry of families is
``textbench.spaces.FAMILIES`` (each built-in family's record sits beside its search space); code in
``core`` is handed the record it needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NOTES_LEARNING_RATE = 1e-3  # the course notes' learning rate, the same for every family
TRAINING_PARAMS = ("learning_rate",)  # keys of a configuration that configure training, not the model


def split_params(params: Mapping) -> tuple[dict, dict]:
    """(model params, training params) of one configuration."""
    model = {k: v for k, v in params.items() if k not in TRAINING_PARAMS}
    training = {k: v for k, v in params.items() if k in TRAINING_PARAMS}
    return model, training


def _resolve(ref: type | str) -> type:
    """A class, or ``"package.module:Class"`` imported on first use."""
    if not isinstance(ref, str):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Family:
    """One model family: its ``PretrainedConfig`` and ``PreTrainedModel`` classes (or their
    ``"module:Class"`` paths), its search space ``suggest(trial) -> dict``, the course notes'
    configuration (model values and learning rate: every study's first trial and the yardstick of
    what tuning bought), the name the report shows, and model options ``train --set`` may change
    besides the searched ones."""

    name: str
    config: type | str
    model: type | str
    suggest: Callable[[Any], dict]
    notes_config: Mapping[str, Any]
    display_name: str = ""
    settable: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)

    @property
    def config_class(self) -> type:
        return _resolve(self.config)

    @property
    def model_class(self) -> type:
        """The model class, registered with transformers' Auto classes (``from_pretrained`` of a
        saved model of this family then works)."""
        from textbench.core.models import register_auto

        model = _resolve(self.model)
        register_auto(self.config_class, model)
        return model

    def notes_model_params(self) -> dict:
        """The course notes' configuration without the training settings."""
        return split_params(self.notes_config)[0]

"""The family registry: one ``Family`` record per family, each built-in one beside its search space.

Every command, the search, the final stage, ``train``, ``rerun``, ``predict`` and ``export`` read
``FAMILIES``; ``register`` adds a family (a user's own) to all of them at once. A search space is a
plain function ``suggest(trial) -> dict`` whose keys are model config fields or training settings
(``textbench.core.families.TRAINING_PARAMS``).
"""

from __future__ import annotations

from textbench.core.errors import UsageError
from textbench.core.families import Family
from textbench.spaces import cnn, gru, lstm, rnn, transformer

FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Make ``family`` known to every command (a name already taken is replaced)."""
    FAMILIES[family.name] = family
    return family


def get(name: str) -> Family:
    """The registered family called ``name``, or an error listing the known ones."""
    if name not in FAMILIES:
        raise UsageError(
            f"unknown family {name!r}: use one of {', '.join(FAMILIES)} "
            "(a family of your own: --family-module FILE.py)"
        )
    return FAMILIES[name]


for _module in (cnn, rnn, gru, lstm, transformer):
    register(_module.FAMILY)

"""``--fix name=value``: pin search-space parameters without editing code.

Values are parsed with the type of the parameter's distribution (and categorical values must be
one of its choices), then pinned with Optuna's ``PartialFixedSampler`` so they still appear in
every trial's params. A number outside the searched range is allowed on purpose, with textbench's
own one warning line (``out_of_range``; Optuna's per-trial UserWarning is silenced in
``search.logs``): pinning is how a user tries a value the space does not cover.

The parameters are read by running a family's ``suggest`` on a recording stand-in for a trial, so
that the command line checks ``--fix`` (and prints the spaces in ``--help``) without importing Optuna.
"""

from __future__ import annotations

from dataclasses import dataclass

from textbench.core.errors import UsageError
from textbench.spaces import FAMILIES
from textbench.spaces import get as get_family


@dataclass(frozen=True)
class Param:
    """One suggested parameter: kind "int", "float" or "categorical", its range or choices."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()


class _Recorder:
    """Stands in for ``optuna.Trial`` in a space's ``suggest``: records each parameter it asks for."""

    def __init__(self):
        self.params: dict[str, Param] = {}

    def suggest_int(self, name, low, high, *, step=1, log=False):
        self.params[name] = Param("int", low, high, log)
        return low

    def suggest_float(self, name, low, high, *, step=None, log=False):
        self.params[name] = Param("float", low, high, log)
        return low

    def suggest_categorical(self, name, choices):
        self.params[name] = Param("categorical", choices=tuple(choices))
        return choices[0]


def parameters(family: str) -> dict[str, Param]:
    """The parameters a family's space suggests, in the order it suggests them."""
    recorder = _Recorder()
    get_family(family).suggest(recorder)
    return recorder.params


def distributions(family: str) -> dict:
    """The same parameters as Optuna distributions."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kinds = {"int": IntDistribution, "float": FloatDistribution}
    return {
        name: CategoricalDistribution(p.choices)
        if p.kind == "categorical"
        else kinds[p.kind](p.low, p.high, log=p.log)
        for name, p in parameters(family).items()
    }


def _parse(name: str, text: str, param: Param, option: str) -> object:
    value = None
    try:
        if param.kind == "int":
            value = int(text)
        elif param.kind == "float":
            value = float(text)
    except ValueError:
        kind = "an integer" if param.kind == "int" else "a number"
        raise UsageError(f"{option} {name}={text}: {name} must be {kind}") from None
    if value is not None:
        if param.low > 0 and not value > 0:  # sizes, counts, rates: 0 or less cannot build or train
            raise UsageError(
                f"{option} {name}={text}: {name} must be positive (searched: {param.low:g}..{param.high:g})"
            )
        return value
    for choice in param.choices:
        if str(choice) == text:
            return choice
    raise UsageError(f"{option} {name}={text}: {name} must be one of {', '.join(map(str, param.choices))}")


def parse_fixed(family: str, pairs: list[str], option: str = "--fix") -> dict:
    """``["num_layers=1", ...]`` -> ``{"num_layers": 1}`` for the params ``family`` has.

    A name no family has is an error; a name only other families have is skipped, so one
    ``--fix learning_rate=1e-3 --fix num_filters=100`` can serve ``--arch both``. ``train --set``
    uses the same parser (``option="--set"``), so its values obey the same space.
    """
    params = parameters(family)
    fixed = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name or not text:
            raise UsageError(f"{option} {pair!r}: expected name=value, e.g. {option} learning_rate=0.001")
        if name in params:
            fixed[name] = _parse(name, text, params[name], option)
    return fixed


def parse_settable(family: str, pairs: list[str]) -> dict:
    """``train --set`` values, typed: the family's searched parameters (by its space, as ``--fix``)
    and the model options it declares settable (``Family.settable``: true/false)."""
    params, extra = parameters(family), get_family(family).settable
    known = [*params, *extra]
    values = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in known:
            raise UsageError(f"--set {pair!r}: expected NAME=VALUE with NAME one of {', '.join(known)}")
        if name in extra:
            if text.lower() not in ("true", "false", "1", "0"):
                raise UsageError(f"--set {pair}: {name} must be true or false")
            values[name] = text.lower() in ("true", "1")
    return {**values, **parse_fixed(family, pairs, option="--set")}


def out_of_range(family: str, values: dict, option: str = "--fix") -> list[str]:
    """One warning per pinned number outside ``family``'s searched range (used as given)."""
    params = parameters(family)
    notes = []
    for name, value in values.items():
        p = params.get(name)
        if p is not None and p.kind != "categorical" and not p.low <= value <= p.high:
            notes.append(
                f"warning: {option} {name}={value:g} is outside {family}'s searched range "
                f"{p.low:g}..{p.high:g}: used as given"
            )
    return notes


def smallest(family: str, fixed: dict) -> dict:
    """The pinned values with every other parameter at the low end of its range (the first choice
    for categories): the smallest model the search can sample, for the memory check at the start."""
    return {
        name: fixed.get(name, p.choices[0] if p.kind == "categorical" else p.low)
        for name, p in parameters(family).items()
    }


def check_known(families: list[str], pairs: list[str]) -> None:
    """Refuse a ``--fix`` name that none of the chosen families searches, or a value it cannot take."""
    known = {name for family in families for name in parameters(family)}
    for pair in pairs:
        name = pair.partition("=")[0]
        if name not in known:
            raise UsageError(
                f"--fix {name}: no such parameter in {', '.join(families)} (known: "
                f"{', '.join(sorted(known))})"
            )
    for family in families:
        parse_fixed(family, pairs)


def describe_spaces() -> str:
    """One line per family listing its parameters and ranges (for --help)."""
    lines = []
    for family in FAMILIES:
        items = []
        for name, p in parameters(family).items():
            if p.kind == "categorical":
                items.append(f"{name} in {{{', '.join(map(str, p.choices))}}}")
            else:
                items.append(f"{name} {p.low:g}..{p.high:g}{' (log)' if p.log else ''}")
        lines.append(f"  {family}: " + "; ".join(items))
    return "\n".join(lines)

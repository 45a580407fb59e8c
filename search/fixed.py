"""``--fix name=value``: pin search-space parameters without editing code.

Values are parsed with the type of the parameter's Optuna distribution (and categorical values
must be one of its choices), then pinned with Optuna's ``PartialFixedSampler`` so they still
appear in every trial's params. A number outside the searched range is allowed on purpose
(Optuna warns): pinning is how a user tries a value the space does not cover.
"""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from core.errors import UsageError
from spaces import SPACES


def distributions(arch: str) -> dict[str, optuna.distributions.BaseDistribution]:
    """The parameters a family's space suggests, found by running it on a throwaway trial."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    SPACES[arch](trial)
    return dict(trial.distributions)


def _parse(name: str, text: str, dist, option: str) -> object:
    value = None
    try:
        if isinstance(dist, IntDistribution):
            value = int(text)
        elif isinstance(dist, FloatDistribution):
            value = float(text)
    except ValueError:
        kind = "an integer" if isinstance(dist, IntDistribution) else "a number"
        raise UsageError(f"{option} {name}={text}: {name} must be {kind}") from None
    if value is not None:
        if dist.low > 0 and not value > 0:  # sizes, counts, rates: 0 or less cannot build or train
            raise UsageError(f"{option} {name}={text}: {name} must be positive (searched: {dist.low:g}..{dist.high:g})")
        return value
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            if str(choice) == text:
                return choice
        raise UsageError(f"{option} {name}={text}: {name} must be one of {', '.join(map(str, dist.choices))}")
    raise UsageError(f"{option} {name}: unsupported distribution {dist!r}")


def parse_fixed(arch: str, pairs: list[str], option: str = "--fix") -> dict:
    """``["num_layers=1", ...]`` -> ``{"num_layers": 1}`` for the params ``arch`` has.

    A name no family has is an error; a name only other families have is skipped, so one
    ``--fix learning_rate=1e-3 --fix num_filters=100`` can serve ``--arch both``. ``train --set``
    uses the same parser (``option="--set"``), so its values obey the same space.
    """
    dists = distributions(arch)
    fixed = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name or not text:
            raise UsageError(f"{option} {pair!r}: expected name=value, e.g. {option} learning_rate=0.001")
        if name in dists:
            fixed[name] = _parse(name, text, dists[name], option)
    return fixed


def check_known(archs: list[str], pairs: list[str]) -> None:
    """Refuse a ``--fix`` name that none of the chosen families searches."""
    known = {name for arch in archs for name in distributions(arch)}
    for pair in pairs:
        name = pair.partition("=")[0]
        if name not in known:
            raise UsageError(f"--fix {name}: no such parameter in {', '.join(archs)} (known: {', '.join(sorted(known))})")


def describe_spaces() -> str:
    """One line per family listing its parameters and ranges (for --help)."""
    lines = []
    for arch in SPACES:
        items = []
        for name, dist in distributions(arch).items():
            if isinstance(dist, CategoricalDistribution):
                items.append(f"{name} in {{{', '.join(map(str, dist.choices))}}}")
            else:
                items.append(f"{name} {dist.low:g}..{dist.high:g}{' (log)' if dist.log else ''}")
        lines.append(f"  {arch}: " + "; ".join(items))
    return "\n".join(lines)

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


def _parse(arch: str, name: str, text: str, dist) -> object:
    try:
        if isinstance(dist, IntDistribution):
            return int(text)
        if isinstance(dist, FloatDistribution):
            return float(text)
    except ValueError:
        kind = "an integer" if isinstance(dist, IntDistribution) else "a number"
        raise UsageError(f"--fix {name}={text}: {name} must be {kind}") from None
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            if str(choice) == text:
                return choice
        raise UsageError(f"--fix {name}={text}: {name} must be one of {', '.join(map(str, dist.choices))}")
    raise UsageError(f"--fix {name}: unsupported distribution {dist!r}")


def parse_fixed(arch: str, pairs: list[str]) -> dict:
    """``["num_layers=1", ...]`` -> ``{"num_layers": 1}`` for the params ``arch`` has.

    A name no family has is an error; a name only other families have is skipped, so one
    ``--fix learning_rate=1e-3 --fix num_filters=100`` can serve ``--arch both``.
    """
    dists = distributions(arch)
    fixed = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name or not text:
            raise UsageError(f"--fix {pair!r}: expected name=value, e.g. --fix learning_rate=0.001")
        if name in dists:
            fixed[name] = _parse(arch, name, text, dists[name])
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

"""The course notes' configuration as each study's first trial: the yardstick for what tuning bought.

Every study starts with its family's ``notes_config`` (learning rate included), enqueued with
``Study.enqueue_trial`` so that it is an ordinary trial (same budget, pruning, tracking) the
sampler also learns from, marked by the user attribute ``reference``. It is enqueued under the
study lock and only into a study without trials, so a resume or a second worker never adds it
twice; only a reference interrupted by Ctrl-C is enqueued again. ``--fix`` values override it
(enqueued values would otherwise beat the ``PartialFixedSampler``), and a notes value the
family's space cannot take is left to the sampler, with one warning.
"""

from __future__ import annotations

import logging

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from textbench.search import fixed as fixing
from textbench.search.runner import claim_lock
from textbench.spaces import get as get_family

log = logging.getLogger(__name__)

ATTR = "reference"  # user attr of the reference trial (and of its final-stage records)
SKIPPED_ATTR = "reference_skipped"  # notes values the space could not take, as "name=value (why)"


def _inside(dist, value) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(dist, (IntDistribution, FloatDistribution)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not dist.low <= value <= dist.high
        ):
            return False
        return (
            dist.step is None
            or abs((value - dist.low) / dist.step - round((value - dist.low) / dist.step)) < 1e-9
        )
    return False


def _describe(dist) -> str:
    if isinstance(dist, CategoricalDistribution):
        return "{" + ", ".join(map(str, dist.choices)) + "}"
    return f"{dist.low:g}..{dist.high:g}"


def reference_params(family: str, fixed: dict) -> tuple[dict, list[str]]:
    """(params to enqueue, notes values left out): pinned names are left to the sampler, which pins
    them; a value outside the family's space (or a name it does not search) is left out."""
    dists = fixing.distributions(family)
    params, skipped = {}, []
    for name, value in get_family(family).notes_config.items():
        if name in fixed:
            continue
        if name not in dists:
            skipped.append(f"{name}={value} (not searched)")
        elif not _inside(dists[name], value):
            skipped.append(f"{name}={value} (outside {_describe(dists[name])})")
        else:
            params[name] = value
    return params, skipped


def is_reference(trial: optuna.trial.FrozenTrial) -> bool:
    return bool(trial.user_attrs.get(ATTR))


def needs_reference(trials: list[optuna.trial.FrozenTrial]) -> bool:
    """A fresh study needs it; so does one whose reference was interrupted (Ctrl-C) before it ended.
    A study that already has trials but never had a reference (``--no-reference``, or older) does not."""
    if not trials:
        return True
    marked = [t for t in trials if is_reference(t)]
    if any(t.state != TrialState.FAIL for t in marked):
        return False
    return bool(marked) and marked[-1].user_attrs.get("fail_reason") == "interrupted"


def enqueue_reference(study: optuna.Study, family: str, fixed: dict, target: int) -> bool:
    """Enqueue the reference trial unless the study has (or no longer needs) one; True if enqueued.

    Under the study lock: with several workers exactly one of them enqueues it."""
    with claim_lock(study):
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        if finished >= target or not needs_reference(trials):
            return False
        params, skipped = reference_params(family, fixed)
        attrs = {ATTR: True}
        if skipped:
            attrs[SKIPPED_ATTR] = skipped
            log.warning(
                "%s: the course notes' %s cannot be tried in the %s search space; the reference trial "
                "samples %s instead",
                study.study_name,
                ", ".join(skipped),
                family,
                "it" if len(skipped) == 1 else "them",
            )
        study.enqueue_trial(params, user_attrs=attrs)
    return True


def reference_trial(study_or_trials) -> optuna.trial.FrozenTrial | None:
    """The study's reference trial that finished (complete or pruned), or None."""
    trials = (
        study_or_trials.get_trials(deepcopy=False)
        if isinstance(study_or_trials, optuna.Study)
        else study_or_trials
    )
    done = [t for t in trials if is_reference(t) and t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return done[-1] if done else None

"""``--stop-when-converged``: stop a family's search when more trials cannot beat validation noise.

Two tests, either stops the search; both compare against the same noise. The first is Optuna's
``Terminator`` (Makarova et al. 2022, "Automatic termination for
hyperparameter optimization"): its ``RegretBoundEvaluator`` fits a Gaussian process to the
completed trials and bounds how much better the best configuration could still be (the gap between
the upper confidence bound's maximum and the lower one's among the top trials); the study stops
when that bound is below the error of the measurement itself. Here that error is the binomial
standard error of the best validation accuracy at the validation size (``pruners.binomial_se``,
the same noise the margin pruner allows for): an improvement smaller than it could not be told
from a lucky validation draw. A minimum number of completed trials comes first (the GP needs
points), and ``--trials`` stays the cap.

The second is stagnation within noise: the best validation accuracy has moved by less than that
standard error over the last ``--stagnation-trials`` finished trials (pruned ones count: they are
configurations the search tried). It is Optuna's ``BestValueStagnationEvaluator`` with the noise as
the tolerance. Measured on the flagship's 50-trial studies (``perf/stopping_rules.py``, perf/README
"Time budget and convergence"), the regret bound stayed 2.5-5x the standard error to the end (the
GP's own uncertainty on validation scores that are noise around a plateau) and never stopped a
search; stagnation within noise stopped the CNN at 30 trials with its final best already found.

The criterion after each completed or pruned trial is kept on the study (user attribute ``converge``:
trial number -> [bound, error, gain], gain the best's move over the window or None before it is
full; a finished trial's own attributes cannot change), so the report can
draw it beside the expected-best curve; the study records why it stopped (``stop_reason``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import optuna
from optuna.terminator import RegretBoundEvaluator
from optuna.trial import TrialState

from textbench.search.pruners import binomial_se

ATTR = "converge"
DEFAULT_MIN_TRIALS = 10  # completed trials before the rule may stop a search
DEFAULT_STAGNATION_TRIALS = 15  # finished trials over which the best must move by more than the noise


@dataclass(frozen=True)
class Criterion:
    bound: float  # regret bound: how much the best could still improve
    error: float  # binomial standard error of the best validation accuracy
    completed: int
    finished: int = 0  # completed and pruned: the trials the search has run
    gain: float | None = None  # how much the best moved in the last ``window`` finished trials
    window: int = DEFAULT_STAGNATION_TRIALS

    @property
    def bounded(self) -> bool:
        return self.bound < self.error

    @property
    def stagnant(self) -> bool:
        return self.gain is not None and self.gain < self.error

    @property
    def converged(self) -> bool:
        return self.bounded or self.stagnant


def best_gain(trials: list[optuna.trial.FrozenTrial], window: int) -> float | None:
    """How much the best completed value rose over the last ``window`` completed or pruned trials (in
    trial order), or None until more than ``window`` have run and one before them completed."""
    ran = (TrialState.COMPLETE, TrialState.PRUNED)  # a failed trial trained nothing to compare
    finished = sorted((t for t in trials if t.state in ran), key=lambda t: t.number)
    if len(finished) <= window:
        return None
    before = [t.value for t in finished[:-window] if t.state == TrialState.COMPLETE]
    now = [t.value for t in finished if t.state == TrialState.COMPLETE]
    if not before:
        return None
    return max(now) - max(before)


class ConvergenceRule:
    """Decides, after each trial, whether a study has converged (see the module docstring)."""

    def __init__(
        self,
        n_validation: int,
        *,
        min_trials: int = DEFAULT_MIN_TRIALS,
        stagnation_trials: int = DEFAULT_STAGNATION_TRIALS,
        seed: int | None = 0,
    ):
        if n_validation <= 0:
            raise ValueError(f"n_validation must be positive, got {n_validation}")
        self.n_validation = n_validation
        self.min_trials = max(2, min_trials)
        self.window = max(1, stagnation_trials)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning: the run prints textbench's lines only
            self.evaluator = RegretBoundEvaluator(min_n_trials=2, seed=seed)

    def criterion(self, study: optuna.Study) -> Criterion | None:
        """The regret bound and the noise now, or None before ``min_trials`` completed trials."""
        every = study.get_trials(deepcopy=False)
        trials = [t for t in every if t.state == TrialState.COMPLETE]
        if len(trials) < self.min_trials:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the terminator is experimental; the GP may warn on scale
            bound = float(self.evaluator.evaluate(trials=every, study_direction=study.direction))
        return Criterion(
            bound=bound,
            error=binomial_se(study.best_value, self.n_validation),
            completed=len(trials),
            finished=sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in every),
            gain=best_gain(every, self.window),
            window=self.window,
        )

    def __call__(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> str | None:
        """An Optuna-style callback: records the criterion on the trial, returns why to stop (or None)."""
        if frozen.state not in (TrialState.COMPLETE, TrialState.PRUNED):  # a pruned trial moves the window
            return None
        found = self.criterion(study)
        if found is None:
            return None
        history = dict(study.user_attrs.get(ATTR, {}))
        history[str(frozen.number)] = [found.bound, found.error, found.gain]
        study.set_user_attr(ATTR, history)
        return self.reason(found)

    def reason(self, found: Criterion | None) -> str | None:
        """Why to stop (text) when ``found`` says converged, else None."""
        if found is None or not found.converged:
            return None
        ran = f"converged after {max(found.finished, found.completed)} trials ({found.completed} completed)"
        if found.bounded:
            return (
                f"{ran}: the regret bound {found.bound:.4f} is below the binomial standard error "
                f"{found.error:.4f} of the best validation accuracy"
            )
        return (
            f"{ran}: the best validation accuracy moved by "
            f"{found.gain:.4f} in the last {found.window} trials, less than its binomial standard error "
            f"{found.error:.4f}"
        )

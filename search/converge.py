"""``--stop-when-converged``: stop a family's search when more trials cannot beat validation noise.

The rule is Optuna's ``Terminator`` (Makarova et al. 2022, "Automatic termination for
hyperparameter optimization"): its ``RegretBoundEvaluator`` fits a Gaussian process to the
completed trials and bounds how much better the best configuration could still be (the gap between
the upper confidence bound's maximum and the lower one's among the top trials); the study stops
when that bound is below the error of the measurement itself. Here that error is the binomial
standard error of the best validation accuracy at the validation size (``pruners.binomial_se``,
the same noise the margin pruner allows for): an improvement smaller than it could not be told
from a lucky validation draw. A minimum number of completed trials comes first (the GP needs
points), and ``--trials`` stays the cap.

The criterion after each completed trial is kept on the study (user attribute ``converge``:
trial number -> [bound, error]; a finished trial's own attributes cannot change), so the report can
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


@dataclass(frozen=True)
class Criterion:
    bound: float  # regret bound: how much the best could still improve
    error: float  # binomial standard error of the best validation accuracy
    completed: int

    @property
    def converged(self) -> bool:
        return self.bound < self.error


class ConvergenceRule:
    """Decides, after each trial, whether a study has converged (see the module docstring)."""

    def __init__(self, n_validation: int, *, min_trials: int = DEFAULT_MIN_TRIALS, seed: int | None = 0):
        if n_validation <= 0:
            raise ValueError(f"n_validation must be positive, got {n_validation}")
        self.n_validation = n_validation
        self.min_trials = max(2, min_trials)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning: the run prints textbench's lines only
            self.evaluator = RegretBoundEvaluator(min_n_trials=2, seed=seed)

    def criterion(self, study: optuna.Study) -> Criterion | None:
        """The regret bound and the noise now, or None before ``min_trials`` completed trials."""
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(trials) < self.min_trials:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the terminator is experimental; the GP may warn on scale
            bound = float(
                self.evaluator.evaluate(
                    trials=study.get_trials(deepcopy=False), study_direction=study.direction
                )
            )
        return Criterion(
            bound=bound, error=binomial_se(study.best_value, self.n_validation), completed=len(trials)
        )

    def __call__(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> str | None:
        """An Optuna-style callback: records the criterion on the trial, returns why to stop (or None)."""
        if frozen.state != TrialState.COMPLETE:
            return None
        found = self.criterion(study)
        if found is None:
            return None
        history = dict(study.user_attrs.get(ATTR, {}))
        history[str(frozen.number)] = [found.bound, found.error]
        study.set_user_attr(ATTR, history)
        return self.reason(found)

    def reason(self, found: Criterion | None) -> str | None:
        """Why to stop (text) when ``found`` says converged, else None."""
        if found is None or not found.converged:
            return None
        return (
            f"converged after {found.completed} completed trials: the regret bound {found.bound:.4f} is "
            f"below the binomial standard error {found.error:.4f} of the best validation accuracy"
        )

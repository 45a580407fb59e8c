"""How many trials per family fit a wall-clock budget: pure arithmetic on measured rates.

A budget (``--time-budget``) is for the whole benchmark: searches, final stage and baseline. The
final stage (``top_k x final_seeds`` runs per family), the baseline and a ``--finetune`` reference
are reserved first, then the
searches get what is left; every family gets the same number of trials (fairness: the comparison
is at equal trial counts), the largest that fits and never more than ``--trials``. The rates are
the ETA's (``search.overall``): each family's measured seconds per step (a calibration gives them
before the first trial), the mean steps of a search trial (pruning included) and of a final run.
The plan is recomputed as the rates sharpen; trials already run are counted as spent time, not as
future cost. Nothing here imports torch or Optuna, so the planner is tested on synthetic rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textbench.core.durations import format_duration


@dataclass(frozen=True)
class Rates:
    """What a plan is computed from: measured, or calibrated before the searches."""

    seconds_per_step: dict[str, float]  # per family
    trial_steps: float  # mean steps of one search trial (pruned trials included)
    final_steps: float  # mean steps of one final run (early stopping included)
    baseline_seconds: float = 0.0
    finetune_seconds: float = 0.0  # the --finetune reference's estimate (runs alone, after the others)
    final_run_seconds: dict[str, float] = field(default_factory=dict)  # per family: one final run of the
    # configurations its final stage would re-train now, from their own trials (else final_steps x rate)
    trial_steps_of: dict[str, float] = field(default_factory=dict)  # per family where known (its own
    # trials or a record of this machine, ``Overall.steps_per_trial``), else trial_steps


@dataclass(frozen=True)
class Plan:
    """The trials each family may run under the budget, and the numbers that decided it."""

    budget: float  # seconds, the whole benchmark
    spent: float  # seconds already spent running (earlier runs of a resumed benchmark included)
    trials: int  # per family: the same for every family, at most the cap
    cap: int  # --trials
    reserved: float  # seconds kept for the final stage and the baseline
    per_trial: float  # seconds of one more trial of every family (one "round")
    fits: bool  # one trial per family (or, resumed, catching up to the leader) plus the reserve fits
    cut: str = ""  # how the final stage in the reserve was cut from the asked one ("" when it was not)

    @property
    def left(self) -> float:
        return max(self.budget - self.spent, 0.0)

    def reason(self) -> str:
        """Why ``trials`` per family: one sentence for the terminal and the report."""
        if self.trials >= self.cap:
            return (
                f"--trials {self.cap} fits the budget: {format_duration(self.budget)}, "
                f"{format_duration(self.reserved)} reserved for the final stage and baseline"
            )
        trials = f"{self.trials} trial{'s' if self.trials != 1 else ''}"
        if self.cut:
            return (
                f"{trials} per family (of --trials {self.cap}) fit the budget of "
                f"{format_duration(self.budget)} with {self.cut}: one trial of every family takes about "
                f"{format_duration(self.per_trial)}, that final stage and the baseline need "
                f"{format_duration(self.reserved)}"
            )
        if not self.fits and self.trials:
            return (
                f"the searches stop at {trials} per family (of --trials {self.cap}): the final stage as "
                f"asked and the baseline need {format_duration(self.reserved)} of the "
                f"{format_duration(self.left)} left, so the searches stop and the final stage is fitted to "
                "what is left"
            )
        return (
            f"{trials} per family (of --trials {self.cap}) fit the budget of "
            f"{format_duration(self.budget)}: one trial of every family takes about "
            f"{format_duration(self.per_trial)}, the final stage and baseline need "
            f"{format_duration(self.reserved)}"
        )


def plan_trials(
    budget: float,
    rates: Rates,
    *,
    cap: int,
    finished: dict[str, int],
    final_runs: int,
    final_done: dict[str, int] | None = None,
    spent: float = 0.0,
    workers: int = 1,
    ceiling: int | None = None,
    reserve: float | None = None,
    cut: str = "",
) -> Plan:
    """The largest equal trial count per family that fits ``budget`` seconds.

        ``finished``: trials each family already ran (their time is in ``spent``); the families then
        need ``target - finished[f]`` more each. The final stage's runs not done yet and the baseline
        are reserved first. ``workers`` processes share the trials and final runs. ``ceiling``: the
        count a family already stopped at under the budget; later families run exactly that many (fairness
    wins over the budget when the rates turned out worse than planned). ``reserve``: the final stage's
    seconds when the caller estimated a cut one (``cut`` says how), instead of ``final_runs`` runs.
    """
    families = list(rates.seconds_per_step)
    final_done = final_done or {}
    workers = max(workers, 1)
    final = (
        sum(
            max(final_runs - final_done.get(f, 0), 0)
            * rates.final_run_seconds.get(f, rates.final_steps * rates.seconds_per_step[f])
            for f in families
        )
        / workers
    )
    reserved = (final if reserve is None else reserve) + rates.baseline_seconds + rates.finetune_seconds
    steps = {f: rates.trial_steps_of.get(f, rates.trial_steps) for f in families}
    trial_seconds = {f: steps[f] * rates.seconds_per_step[f] / workers for f in families}
    per_trial = sum(trial_seconds.values())
    left = budget - spent - reserved

    def cost(target: int) -> float:
        return sum(max(target - finished.get(f, 0), 0) * trial_seconds[f] for f in families)

    top = cap if ceiling is None else min(cap, ceiling)
    # equal counts: no family can un-run a trial, and once one stopped at the ceiling the rest reach it
    base = min(max(max(finished.values(), default=0), ceiling or 0), top)
    target = base
    while target < top and cost(target + 1) <= left:
        target += 1
    fits = cost(max(base, 1)) <= left
    return Plan(
        budget=budget,
        spent=spent,
        trials=target,
        cap=cap,
        reserved=reserved,
        per_trial=per_trial,
        fits=fits,
        cut=cut,
    )

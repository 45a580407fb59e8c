"""A benchmark's ``--time-budget`` while it runs: the plan from the ETA's rates, and the stop rule.

``search.plan`` does the arithmetic; this keeps the running state: the whole benchmark's measured
rates (``search.overall.Overall``, calibrated before the searches), the time spent running
(``search.spent.SpentClock``, earlier runs included) and the latest plan. Before each trial the plan
is recomputed and stored on the study (``planned_trials``, which ``--workers`` helpers obey too);
a family stops when it reached the plan's count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textbench.core.durations import format_duration
from textbench.search.overall import BASELINE_SECONDS_PER_ROW, Overall
from textbench.search.plan import Plan, Rates, plan_trials
from textbench.search.spent import SpentClock

REPORT_SECONDS = 30.0  # the summary, MLflow's chosen configurations, the registry and the report
# (12-20 s measured for a two-family benchmark on the loaded 2-core CPU), rounded up


@dataclass
class Budget:
    seconds: float
    clock: SpentClock
    overall: Overall
    cap: int  # --trials
    history: list[dict] = field(default_factory=list)  # every distinct plan, for the report
    plan: Plan | None = None
    ceiling: int | None = None  # the count a family stopped at under the budget: no later family exceeds it

    def rates(self) -> Rates:
        o = self.overall
        return Rates(
            seconds_per_step={f: o.rate(f) or 0.0 for f in o.families},
            trial_steps=sum(o.trial_steps) / len(o.trial_steps) if o.trial_steps else o.max_steps,
            final_steps=sum(o.complete_steps) / len(o.complete_steps) if o.complete_steps else o.max_steps,
            baseline_seconds=o.baseline * o.train_rows * BASELINE_SECONDS_PER_ROW + REPORT_SECONDS,
        )

    def replan(self) -> Plan:
        o = self.overall
        plan = plan_trials(
            self.seconds,
            self.rates(),
            cap=self.cap,
            finished=dict(o.finished),
            final_runs=o.final_runs,
            final_done=dict(o.final_done),
            spent=self.clock.spent(),
            workers=o.workers,
            ceiling=self.ceiling,
        )
        if self.plan is None or plan.trials != self.plan.trials:
            self.history.append(
                {"spent": round(plan.spent, 1), "trials": plan.trials, "reason": plan.reason()}
            )
        self.plan = plan
        o.trials = plan.trials  # the ETA counts the planned trials, not --trials
        return plan

    def stop(self, study, finished: int) -> str | None:
        """Asked before each trial of ``study``: a reason to stop, or None."""
        plan = self.replan()
        study.set_user_attr("planned_trials", plan.trials)
        self.clock.save()
        if finished >= plan.trials and plan.trials < self.cap:
            self.ceiling = plan.trials
            return f"time budget: {plan.reason()}"
        return None

    def left(self) -> str:
        left = max(self.seconds - self.clock.spent(), 0)
        return f"budget {format_duration(left)} left of {format_duration(self.seconds)}"

    def spent_of(self) -> tuple[str, str]:
        return format_duration(self.clock.spent()), format_duration(self.seconds)

    def refusal(self) -> str:
        """The error when not even one trial per family plus the final stage fits, with its numbers."""
        plan, rates = self.plan, self.rates()
        rate = ", ".join(f"{f} {r:.3f} s/step" for f, r in rates.seconds_per_step.items())
        return (
            f"--time-budget {format_duration(self.seconds)} cannot hold one trial per family plus the "
            f"final stage: one trial of every family takes about {format_duration(plan.per_trial)} "
            f"({rates.trial_steps:.0f} steps; {rate}), the final stage and baseline need "
            f"{format_duration(plan.reserved)}, {format_duration(plan.spent)} are already spent: give at "
            f"least {format_duration(plan.spent + plan.reserved + plan.per_trial)}, or lower --max-steps, "
            "--top-k or --final-seeds"
        )

    def record(self) -> dict:
        """What the report's budget section shows (stored on each study as ``time_budget``)."""
        plan = self.plan
        return {
            "budget_seconds": self.seconds,
            "spent_seconds": round(self.clock.spent(), 1),
            "trials_per_family": plan.trials if plan else None,
            "cap": self.cap,
            "reason": plan.reason() if plan else "",
            "plans": self.history,
        }

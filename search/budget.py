"""A benchmark's ``--time-budget`` while it runs: the plan from the ETA's rates, and the stop rule.

``search.plan`` does the arithmetic; this keeps the running state: the whole benchmark's measured
rates (``search.overall.Overall``, calibrated before the searches), the time spent running
(``search.spent.SpentClock``, earlier runs included), the families' studies and the latest plan.
Before each trial the plan is recomputed and stored on every study (``planned_trials``, which
``--workers`` helpers obey too); a family stops when its trials (finished or running) reached the
plan's count. Trials other workers are running count as run: the plan never drops below a count a
family already claimed, so the families end equal.
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
    finetune: str | None = None  # the --finetune model, whose estimate (Overall.finetune_seconds) is reserved
    top_k: int = 0  # --top-k: the configurations per family whose own trials estimate the final stage
    seeds: int = 0  # --final-seeds; with top_k, what a final stage cut in the plan may shrink from
    reference: bool = False  # the course notes' configuration is re-trained in the final stage too
    test_per_validation: float = 0.0  # test rows / validation rows: a final run's test prediction costs
    # that many of its trial's validation evaluations
    history: list[dict] = field(default_factory=list)  # every distinct plan, for the report
    plan: Plan | None = None
    ceiling: int | None = None  # the count a family stopped at under the budget: no later family exceeds it
    studies: dict = field(default_factory=dict)  # family -> its optuna study (``watch``)
    final: dict | None = None  # the final stage that fit (``final_stage``)
    cut: tuple[int, int] | None = None  # (configurations, seeds) the latest plan reserved, when the asked
    # final stage no longer fits: the searches run on in what that smaller final stage leaves
    asked_runs: int = field(init=False)  # final runs per family as asked (or as fitted before a resume)

    def __post_init__(self) -> None:
        self.asked_runs = self.overall.final_runs

    def watch(self, family: str, study) -> None:
        """Count ``study``'s claimed trials in every plan, and tell it the plan (for the helpers)."""
        self.studies[family] = study
        stored = (study.user_attrs.get("time_budget") or {}).get("plans") or []
        if len(self.studies) == 1 and stored:  # a resume: the earlier runs' plans come first in the report
            self.history[:0] = [p for p in stored if p not in self.history]
        study.set_user_attr("planned_trials", self.plan.trials if self.plan else None)

    def claimed(self) -> dict[str, int]:
        """Trials per family that finished or are running (other workers' included)."""
        from textbench.search.runner import count_trials  # Optuna's, imported where the studies are

        out = dict(self.overall.finished)
        for family, study in self.studies.items():
            counts = count_trials(study)
            out[family] = max(out.get(family, 0), counts.finished + counts.running)
        return out

    def rates(self, k: int | None = None) -> Rates:
        """The plan's rates; a final run is estimated from the top ``k`` configurations (``--top-k``)."""
        o = self.overall
        k = self.top_k if k is None else k
        final_run = {f: est for f in o.families if (est := self.final_run_seconds(f, k))}
        return Rates(
            seconds_per_step={f: o.rate(f) or 0.0 for f in o.families},
            trial_steps=sum(o.trial_steps) / len(o.trial_steps) if o.trial_steps else o.max_steps,
            final_steps=sum(o.complete_steps) / len(o.complete_steps) if o.complete_steps else o.max_steps,
            baseline_seconds=o.baseline * o.train_rows * BASELINE_SECONDS_PER_ROW + REPORT_SECONDS,
            finetune_seconds=o.finetune_seconds,
            final_run_seconds={f: sum(est) / len(est) for f, est in final_run.items()},
            trial_steps_of={f: o.steps_per_trial(f) for f in o.families},
        )

    def final_run_seconds(self, family: str, k: int) -> list[float]:
        """Seconds of one final run of each configuration that ``family``'s final stage would re-train
        now (its top ``k`` and the course notes', ``search.final.final_configs``): a re-training of a
        searched configuration costs what its own trial cost, plus one prediction of the test split (its
        seconds per validation evaluation, scaled by the splits' sizes). A family's mean rate misleads
        here: the flagship's RNN trials ran 68 s (the notes' configuration, the one re-trained) to 341 s,
        and the mean made a 4-minute final stage look like 12. Empty before a trial of it completed."""
        study = self.studies.get(family)
        if study is None or k < 1:
            return []
        from textbench.search.final import final_configs  # with the studies: Optuna's, and torch's

        _, configs = final_configs(study, k)
        return [
            t.user_attrs["wall_seconds"]
            + (t.user_attrs.get("seconds_per_evaluation") or 0.0) * self.test_per_validation
            for t in configs
            if t.user_attrs.get("wall_seconds")
        ]

    def replan(self) -> Plan:
        """The trials per family that fit, with the final stage as asked reserved; when that no longer
        leaves room for a trial more than those claimed, with the largest smaller final stage that does
        reserved instead (``cut``, from ``ladder``), so the searches use what it leaves rather than stop
        early and leave it unused (measured: a 30-minute flagship stopped its searches at 3 trials, cut
        its final stage to the top 1 afterwards, and ended with 11 of its 30 minutes unused)."""
        o, rates = self.overall, self.rates()
        claimed = self.claimed()
        common = dict(
            cap=self.cap,
            finished=claimed,
            final_done=dict(o.final_done),
            spent=self.clock.spent(),
            workers=o.workers,
            ceiling=self.ceiling,
        )
        # the final stage's configurations' own costs, as the end fits it (``final_stage``); once a
        # search stopped under the budget (``ceiling``: a resume's fitted final stage included) or with
        # final runs done, the runs left instead
        staged = bool(self.top_k and self.seeds) and self.ceiling is None and not any(o.final_done.values())
        asked = self.stage_seconds(self.top_k, self.seeds, None) if staged else None
        plan = plan_trials(self.seconds, rates, final_runs=self.asked_runs, reserve=asked, **common)
        self.cut, runs = None, self.asked_runs
        if staged and plan.trials < self.cap and plan.trials <= max(claimed.values(), default=0):
            for (k, n), seconds in self.ladder(None)[1:]:  # the largest that lets the searches go on
                smaller = plan_trials(
                    self.seconds,
                    rates,
                    final_runs=0,
                    reserve=seconds,
                    cut=f"the final stage cut to the top {k} x {n} seeds (of --top-k {self.top_k} x "
                    f"--final-seeds {self.seeds}), the largest that leaves room for more trials",
                    **common,
                )
                if smaller.trials > plan.trials:
                    plan, self.cut = smaller, (k, n)
                    rates, runs = self.rates(k), (k + self.reference) * n
                    break
        if self.plan is None or plan.trials != self.plan.trials:
            self.history.append(
                {"spent": round(plan.spent, 1), "trials": plan.trials, "reason": plan.reason()}
            )
            for study in self.studies.values():
                study.set_user_attr("planned_trials", plan.trials)
        self.plan = plan
        o.trials = plan.trials  # the ETA counts the planned trials, not --trials
        o.final_runs = runs  # and the final stage the plan reserved, as it estimates it
        o.final_run_seconds = rates.final_run_seconds
        return plan

    def stop(self, claimed: int) -> str | None:
        """Asked before each trial of a study whose trials finished or running are ``claimed``: a
        reason to stop, or None."""
        plan = self.replan()
        self.clock.save()
        if claimed >= plan.trials and plan.trials < self.cap:
            self.ceiling = plan.trials
            return f"time budget: {plan.reason()}"
        return None

    def stage_seconds(self, k: int, n: int, completed: dict[str, int] | None) -> float:
        """Seconds of a final stage of the top ``k`` x ``n`` seeds (the notes' configuration too), from
        each configuration's own estimate (``final_run_seconds``). ``completed``: completed trials per
        family (at most that many configurations); None while the searches run, when the top ``k`` are
        still to fill: a configuration not yet found costs the mean of the family's known ones."""
        rates, total = self.rates(0), 0.0
        for f, rate in rates.seconds_per_step.items():
            known = self.final_run_seconds(f, k)
            if not known:  # no completed trial measured yet: the family's rate at the final runs' steps
                configs = (k if completed is None else min(k, completed.get(f, 0))) + self.reference
                total += n * configs * rates.final_steps * rate
                continue
            missing = max(k - self._completed(f), 0) if completed is None else 0
            total += n * (sum(known) + missing * sum(known) / len(known))
        return total / max(self.overall.workers, 1)

    def _completed(self, family: str) -> int:
        from textbench.search.runner import count_trials  # Optuna's, imported where the studies are

        study = self.studies.get(family)
        return count_trials(study).complete if study is not None else 0

    def ladder(self, completed: dict[str, int] | None) -> list[tuple[tuple[int, int], float]]:
        """Every final stage up to the asked --top-k x --final-seeds, never under 2 seeds (a confidence
        interval needs them) unless fewer were asked, with its seconds, the most costly first (more
        seeds first at a tie); the asked one first."""
        least = min(self.seeds, 2)
        per_seed = {k: self.stage_seconds(k, 1, completed) for k in range(1, self.top_k + 1)}
        choices = [(k, n) for k in range(self.top_k, 0, -1) for n in range(self.seeds, least - 1, -1)]
        ranked = sorted(choices, key=lambda c: (-per_seed[c[0]] * c[1], -c[1]))
        asked = (self.top_k, self.seeds)
        return [(c, per_seed[c[0]] * c[1]) for c in [asked, *(c for c in ranked if c != asked)]]

    def fit(self, left: float, completed: dict[str, int] | None) -> tuple[int, int]:
        """The largest final stage that fits ``left`` seconds (``ladder``); the smallest when none does."""
        ladder = self.ladder(completed)
        return next((c for c, seconds in ladder if seconds <= left), ladder[-1][0])

    def final_stage(self, completed: dict[str, int], top_k: int, seeds: int, reference: bool) -> dict:
        """The final stage that fits what the searches left of the budget (``fit``), the same for every
        family; ``completed``: completed trials per family (at most that many configurations)."""
        self.top_k, self.seeds, self.reference = top_k, seeds, reference
        rates = self.rates()
        left = self.seconds - self.clock.spent() - rates.baseline_seconds - rates.finetune_seconds
        k, n = self.fit(left, completed)
        record = {"top_k": k, "final_seeds": n, "asked": [top_k, seeds], "budget_seconds": self.seconds}
        if (k, n) != (top_k, seeds):
            record["why"] = (
                f"the final stage was cut to the top {k} x {n} seeds (of --top-k {top_k} x --final-seeds "
                f"{seeds}) to fit the budget: about {format_duration(self.stage_seconds(k, n, completed))} "
                f"of {format_duration(max(left, 0))} left (the asked "
                f"{format_duration(self.stage_seconds(top_k, seeds, completed))})"
            )
        self.final = record
        return record

    def left(self) -> str:
        left = max(self.seconds - self.clock.spent(), 0)
        return f"budget {format_duration(left)} left of {format_duration(self.seconds)}"

    def spent_of(self) -> tuple[str, str]:
        return format_duration(self.clock.spent()), format_duration(self.seconds)

    def refusal(self) -> str:
        """The error when not even one trial per family plus the final stage fits, with its numbers: the
        least budget that would start (the smallest final stage, which the plan cuts to when it must)
        and the one that holds the final stage as asked."""
        plan, rates = self.plan, self.rates()
        rate = ", ".join(f"{f} {r:.3f} s/step" for f, r in rates.seconds_per_step.items())
        counts = {round(rates.trial_steps_of.get(f, rates.trial_steps)) for f in rates.seconds_per_step}
        steps = "/".join(str(c) for c in sorted(counts))
        tune = (
            f" (of which the --finetune {self.finetune} reference {format_duration(rates.finetune_seconds)})"
            if rates.finetune_seconds
            else ""
        )
        asked = plan.spent + plan.reserved + plan.per_trial
        least, smallest = asked, ""
        if self.top_k and self.seeds and (self.top_k, self.seeds) != (1, min(self.seeds, 2)):
            n = min(self.seeds, 2)
            reserved = self.stage_seconds(1, n, None) + rates.baseline_seconds + rates.finetune_seconds
            least = plan.spent + reserved + plan.per_trial
            smallest = f" ({format_duration(reserved)} with the final stage cut to the top 1 x {n} seeds)"
        minimum = (
            f"give at least {format_duration(least)} ({format_duration(asked)} for the final stage as asked)"
            if smallest
            else f"give at least {format_duration(asked)}"
        )
        return (
            f"--time-budget {format_duration(self.seconds)} cannot hold one trial per family plus the "
            f"final stage: one trial of every family takes about {format_duration(plan.per_trial)} "
            f"({steps} steps; {rate}), the final stage and baseline need "
            f"{format_duration(plan.reserved)}{tune}{smallest}, {format_duration(plan.spent)} are already "
            f"spent: {minimum}, or lower --max-steps, --top-k or --final-seeds"
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
            "finetune_reserved_seconds": round(self.overall.finetune_seconds, 1),
            "final_stage": self.final,
            "plans": self.history,
        }


def kept_stop(study, budget_seconds: float | None) -> bool:
    """A resumed study whose search this same --time-budget already ended and whose final stage it
    fitted (``final_plan``): that decision stands, so the final stage finishes on the trials it was
    fitted to, as planned. Reopening the search would re-fit the final stage to fewer configurations
    than the runs already done (measured: a 30-minute flagship interrupted in its final stage searched
    2 more trials a family on resume and cut its final stage to the top 1). A larger budget reopens it."""
    plan = study.user_attrs.get("final_plan") or {}
    reason = str(study.user_attrs.get("stop_reason") or "")
    return (
        budget_seconds is not None
        and plan.get("budget_seconds") == budget_seconds
        and reason.startswith("time budget")
    )

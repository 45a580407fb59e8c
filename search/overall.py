"""One line for the whole benchmark: phase, families done, and an overall ETA.

Each study's bar shows its own trials; this status (shown in the description of whichever bar is
running) adds what comes after: the remaining families, the final stage and the baseline. The ETA
comes from measured step rates: the steps and wall seconds of every finished trial and final run
(evaluation included) give each family's seconds per step; finished trials give the mean steps of
a search trial (pruning included) and completed ones the mean steps of a final run (early stopping
included). Before a family's first trial, its rate comes from a calibration (``search.calibrate``),
or from what an earlier benchmark on this machine measured for it (``search.rate_record``), the
calibration scaled by what the families already searched showed (``Overall.rate``); its mean steps
per search trial (pruning included) likewise come from its own trials, the record, or the families
measured. The
baseline is estimated per training row. Before anything is measured the ETA is unknown ("ETA ?").

Under ``--stop-when-converged`` nobody knows in advance where a search stops: a family's trials are
what it ran when it converged in an earlier benchmark on this machine (``expected``, from the
record), else ``--trials``; and while any unstopped family has no such record, the line gives a range
whose low end has every such search stop at the earliest trial the rule allows (``earliest``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

BASELINE_SECONDS_PER_ROW = 0.005  # TF-IDF + logistic regression over its C grid: 7-13 s for 2,000 rows
# measured on a loaded 2-core CPU (the README's taste command), rounded up


@dataclass
class Overall:
    families: list[str]
    trials: int  # target finished trials per family
    final_runs: int  # top_k x final_seeds per family
    baseline: bool
    max_steps: int
    train_rows: int = 0
    workers: int = 1
    phase: str = "starting"
    finished: dict[str, int] = field(default_factory=dict)  # finished trials per family (from the study)
    final_done: dict[str, int] = field(default_factory=dict)
    final_planned: dict[str, int] = field(default_factory=dict)  # runs of a started final stage (fewer when
    # a family completed fewer than top_k trials)
    steps: dict[str, int] = field(default_factory=dict)  # measured per family: training steps and wall
    seconds: dict[str, float] = field(default_factory=dict)  # seconds of its trials and final runs
    trial_steps: list[int] = field(default_factory=list)  # steps of each finished trial (pruned ones too)
    family_trial_steps: dict[str, list[int]] = field(default_factory=dict)  # the same, per family
    complete_steps: list[int] = field(default_factory=list)  # steps of each completed trial and final run
    clock: object = time.time
    calibrated: dict[str, float] = field(default_factory=dict)  # seconds per step of short timed runs of
    # each family's configurations (search.calibrate), before any of its trials ran
    calibrated_reference: dict[str, float] = field(default_factory=dict)  # the same, of the course notes'
    # configuration alone: what its reference trial's measured rate is compared with
    reference_rate: dict[str, float] = field(default_factory=dict)  # measured on each reference trial
    stopped: dict[str, int] = field(default_factory=dict)  # a family whose search stopped early: its trials
    preloaded: set = field(default_factory=set)  # families whose stored trials were measured (a resume)
    extra: object = None  # a callable whose text ends the line (a time budget's time left)
    finetune_seconds: float = 0.0  # the --finetune reference's estimate, until it has run (last)
    final_run_seconds: dict[str, float] = field(default_factory=dict)  # per family, one final run of the
    # configurations it would re-train, from their own trials (a time budget's, ``Budget.final_run_seconds``)
    recorded: dict[str, dict] = field(default_factory=dict)  # per family, from an earlier benchmark on this
    # machine (search.rate_record): "seconds_per_step" and "trial_steps" measured on its search trials
    earliest: int | None = None  # under --stop-when-converged: the fewest trials after which it may stop
    expected: dict[str, int] = field(default_factory=dict)  # per family, where its search converged in an
    # earlier benchmark on this machine (the record): the ETA counts that many trials, not --trials

    def measured(self, family: str, steps: int, seconds: float, *, trial: bool, complete: bool) -> None:
        """Record one finished trial (``trial``) or final run of ``family``; ``complete``: not pruned."""
        if not steps or not seconds or seconds <= 0:
            return
        self.steps[family] = self.steps.get(family, 0) + int(steps)
        self.seconds[family] = self.seconds.get(family, 0.0) + float(seconds)
        if trial:
            self.trial_steps.append(int(steps))
            self.family_trial_steps.setdefault(family, []).append(int(steps))
        if complete:
            self.complete_steps.append(int(steps))

    def rate(self, family: str) -> float | None:
        """Seconds per step of ``family``: measured on its trials and final runs; before those, what an
        earlier benchmark on this machine measured on this family's search trials; else its calibrated
        rate, scaled by how much slower the course notes' configuration ran as a reference trial than
        in its calibration, in the families measured (the machine's load and the trials' own costs,
        like with like: scaling by a family's whole search instead carried its sampled model sizes over
        to the next family, and put the flagship's RNN at 0.098 s/step for trials that ran at 0.017);
        without a calibration, the mean measured rate. None when nothing is known."""
        if self.steps.get(family):
            return self.seconds[family] / self.steps[family]
        if (self.recorded.get(family) or {}).get("seconds_per_step"):
            return float(self.recorded[family]["seconds_per_step"])
        ratios = [
            self.reference_rate[f] / self.calibrated_reference[f]
            for f in self.families
            if self.reference_rate.get(f) and self.calibrated_reference.get(f)
        ]
        if self.calibrated.get(family):
            return self.calibrated[family] * (sum(ratios) / len(ratios) if ratios else 1.0)
        if self.steps:
            return sum(self.seconds.values()) / sum(self.steps.values())
        known = [*self.calibrated.values(), *(e["seconds_per_step"] for e in self.recorded.values())]
        return sum(known) / len(known) if known else None

    def remaining_seconds(self, soonest: bool = False) -> float | None:
        """Seconds left for the whole benchmark, or None before any rate is known (``rate``); with
        ``soonest``, if every converging search without a record stopped at the earliest trial."""
        if not self.steps and not self.calibrated and not self.recorded:
            return None
        per_final = (
            sum(self.complete_steps) / len(self.complete_steps) if self.complete_steps else self.max_steps
        )
        training = 0.0
        for a in self.families:
            final_run = self.final_run_seconds.get(a, per_final * self.rate(a))
            training += (
                max(self.target(a, soonest) - self.finished.get(a, 0), 0)
                * self.steps_per_trial(a)
                * self.rate(a)
                + max(self._final_runs(a) - self.final_done.get(a, 0), 0) * final_run
            )
        baseline = self.baseline * self.train_rows * BASELINE_SECONDS_PER_ROW
        return training / max(self.workers, 1) + baseline + self.finetune_seconds

    def steps_per_trial(self, family: str) -> float:
        """Mean steps of one search trial of ``family`` (pruning included): its own finished trials,
        else an earlier benchmark's record, else all families' trials, else ``max_steps``."""
        own = self.family_trial_steps.get(family)
        if own:
            return sum(own) / len(own)
        if (self.recorded.get(family) or {}).get("trial_steps"):
            return float(self.recorded[family]["trial_steps"])
        return sum(self.trial_steps) / len(self.trial_steps) if self.trial_steps else float(self.max_steps)

    def target(self, family: str, soonest: bool = False) -> int:
        """The trials ``family`` runs: where its search stopped (convergence, budget); else, while it
        converges, where it converged before (at least one more than it ran: it has not stopped yet), or
        with ``soonest`` the earliest stop; else the target."""
        if family in self.stopped:
            return self.stopped[family]
        running = self.finished.get(family, 0) + 1
        if family in self.expected:
            return min(self.trials, max(self.expected[family], running))
        if soonest and self.earliest is not None:
            return min(self.trials, max(self.earliest, running))
        return self.trials

    def uncertain(self) -> bool:
        """Whether the ETA is a range: a converging search has neither stopped nor a record."""
        return self.earliest is not None and any(
            f not in self.stopped and f not in self.expected and self.earliest < self.trials
            for f in self.families
        )

    def _final_runs(self, family: str) -> int:
        return self.final_planned.get(family, self.final_runs)

    def families_done(self) -> int:
        """Families whose search reached its target and whose final stage has run."""
        return sum(
            self.finished.get(a, 0) >= self.target(a) and self.final_done.get(a, 0) >= self._final_runs(a)
            for a in self.families
        )

    def line(self) -> str:
        left = self.remaining_seconds()
        soonest = self.remaining_seconds(soonest=True) if self.uncertain() else left
        if left is None:
            eta = "ETA ?"
        elif _duration(soonest) == _duration(left):
            eta = f"{_duration(left)} left, ETA {self._at(left)}"
        else:  # where the searches converge is not known yet
            at = (
                self._at(left)
                if self._at(soonest) == self._at(left)
                else f"{self._at(soonest)} to {self._at(left)}"
            )
            eta = f"{_duration(soonest)} to {_duration(left)} left, ETA {at}"
        more = f" | {self.extra()}" if self.extra is not None else ""
        done = f"families done {self.families_done()}/{len(self.families)}"
        return f"[{self.phase} | {done} | benchmark {eta}{more}]"

    def _at(self, seconds: float) -> str:
        return time.strftime("%H:%M", time.localtime(self.clock() + seconds))


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def measure_trial(overall: Overall | None, family: str, frozen) -> None:
    """Feed a finished (complete or pruned) Optuna trial's steps and wall seconds to ``overall``."""
    if overall is None or not frozen.state.is_finished():
        return
    from optuna.trial import TrialState

    from textbench.search.reference import ATTR as REFERENCE

    if frozen.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        return
    steps = frozen.user_attrs.get("steps_trained") or max(frozen.intermediate_values, default=0)
    seconds = frozen.user_attrs.get("wall_seconds") or 0
    overall.measured(family, steps, seconds, trial=True, complete=frozen.state == TrialState.COMPLETE)
    if frozen.user_attrs.get(REFERENCE) and steps and seconds:
        overall.reference_rate[family] = seconds / steps

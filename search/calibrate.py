"""Measure every family's seconds per step before any search starts.

The first ETA and a time budget's plan both need each family's rate, and a family not started yet
used to be assumed to run at the rate of those measured (the flagship's first ETA took the RNN to
run at the CNN's speed: "15 min left" of an hour). Here a few configurations of each family (the
course notes' one and ``SAMPLED`` drawn at random from its search space, since a search visits
models much larger than the notes' one) train for a few steps on the real batches, then evaluate
once on the validation split. A trial spends its time in three ways, each timed apart: steady
optimizer steps (timed between the ends of steps, so the first step's warm-up is not one of them),
one evaluation per ``eval_steps`` steps, and a fixed cost per trial (building the model and the
Trainer, the first step's warm-up, saving the best checkpoint), spread over ``max_steps``. Dividing
the whole short run by its ten steps instead put that fixed cost in every step: on the flagship the
RNN calibrated at 0.0286 s/step and its trials then ran at 0.0174. The family's rate is the mean
over the configurations. On the flagship it takes 17 s for the CNN and the RNN together (2 cores).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time

import optuna
from transformers import TrainerCallback

from textbench.core.settings import TrainSettings
from textbench.core.training import train_config
from textbench.spaces import get as get_family

log = logging.getLogger(__name__)

CALIBRATION_STEPS = 10  # optimizer steps timed per configuration (plus one evaluation)
SAMPLED = 8  # random configurations of the space timed besides the course notes' one. One RNN
# configuration runs 0.011 to 0.069 s/step on the flagship: in a probe the notes' one and 2 random
# ones averaged 0.039, with 12 random 0.024; the search's trials ran 0.021 to 0.028 (2026-12-07)


def configurations(family: str, sampled: int = SAMPLED, seed: int = 0) -> list[dict]:
    """The course notes' configuration and ``sampled`` random ones from ``family``'s space."""
    spec = get_family(family)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [dict(spec.notes_config), *(spec.suggest(study.ask()) for _ in range(sampled))]


def seconds_per_step(
    family: str,
    data,
    train: TrainSettings,
    *,
    steps: int = CALIBRATION_STEPS,
    seed: int = 0,
    sampled: int = SAMPLED,
) -> tuple[float | None, float | None]:
    """A trial's mean seconds per optimizer step for ``family`` (evaluation included at the budget's
    ``eval_steps``) over ``configurations``, and that of the course notes' configuration alone (the
    search's reference trial runs it: comparing the two tells how the machine runs trials, whatever the
    search samples). A configuration that cannot train is left out (its trials fail in the search,
    with their reason, as before); None when none trained: the family's rate is then taken from the
    others (``Overall.rate``)."""
    steps = max(1, min(steps, train.max_steps))
    rates: list[float | None] = []
    for params in configurations(family, sampled, seed):
        try:
            rates.append(config_rate(family, params, data, train, steps=steps, seed=seed))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a measurement, never a reason to stop the benchmark
            rates.append(None)
            log.warning(
                "calibration %s: a configuration did not train (%s)", family, str(exc).splitlines()[0][:200]
            )
    trained = [r for r in rates if r is not None]
    if not trained:
        return None, None
    rate = sum(trained) / len(trained)
    log.info("calibration %s: %s s/step -> %.4f s/step", family, ", ".join(f"{r:.4f}" for r in trained), rate)
    return rate, rates[0]


class StepClock(TrainerCallback):
    """The time at the end of every optimizer step."""

    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def trial_rate(
    total: float, steady: float, steps: int, evaluation: float, eval_steps: int, max_steps: int
) -> float:
    """Seconds per step of a full trial, from a short run of ``steps`` steps that took ``total``
    seconds (one evaluation of ``evaluation`` seconds included) at ``steady`` seconds a step: the
    steady step, one evaluation per ``eval_steps`` and the rest of the short run (the fixed cost of a
    trial) spread over ``max_steps``."""
    fixed = max(total - evaluation - steady * steps, 0.0)
    return steady + evaluation / max(eval_steps, 1) + fixed / max(max_steps, 1)


def config_rate(family: str, params: dict, data, train: TrainSettings, *, steps: int, seed: int) -> float:
    """Seconds per step of one configuration: a short timed run plus one timed evaluation."""
    short = dataclasses.replace(train, max_steps=steps, eval_steps=steps, logging_steps=steps, patience=0)
    spec = get_family(family)
    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix=f"calibrate-{family}-") as tmp:
        start = time.perf_counter()
        _, result = train_config(spec, params, data, short, tmp, seed=seed, callbacks=[clock])
        total = time.perf_counter() - start
        start = time.perf_counter()
        result.trainer.evaluate()
        evaluation = time.perf_counter() - start
    ran = max(result.steps_trained, 1)
    if len(clock.ends) >= 2:  # between step ends: the first step's warm-up is the trial's fixed cost
        steady = (clock.ends[-1] - clock.ends[0]) / (len(clock.ends) - 1)
    else:  # one step: nothing to tell it from the fixed cost
        steady = max(total - evaluation, 1e-6) / ran
    return trial_rate(total, steady, ran, evaluation, train.eval_steps, train.max_steps)

"""(f) evaluation cost: one evaluation on the whole validation split vs. training steps, per family.

What a finer evaluation cadence (more looks for the pruner and early stopping) would cost: the
seed configurations of CNN and RNN trained with ``core.training.fit`` exactly as a trial runs,
evaluating every ``eval_steps``; the intervals between steps without an evaluation give the
training rate, the rest of the fit's wall time divided by the evaluations gives the cost of one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from perf.common import RESULTS, Profile, load_average, prepared_data, row, seed_model
from perf.throughput import trainer_step_timer

KEY = "f"
TARGET = "evaluation at the default cadence (every 500 steps) under 15% of a trial's time"
SIZES = {"quick": {"max_steps": 600, "eval_steps": 150}, "full": {"max_steps": 2000, "eval_steps": 250}}
CADENCES = (100, 250, 500)


def measure(profile: Profile, work: Path) -> list[dict]:
    """(f) seconds per validation evaluation vs. steps/s; the evaluation share at several cadences."""
    from textbench.core.settings import TrainSettings
    from textbench.core.training import fit

    sizes = SIZES[profile.name]
    data = prepared_data(profile, RESULTS / "cache")
    n_val = len(data.splits["validation"])
    rows = []
    for family in ("cnn", "rnn"):
        settings = TrainSettings(max_steps=sizes["max_steps"], eval_steps=sizes["eval_steps"], patience=0)
        timer = trainer_step_timer()
        with tempfile.TemporaryDirectory(prefix="perf-eval-") as tmp:
            result = fit(
                seed_model(family, data), data, settings, Path(tmp) / "run", seed=0, callbacks=[timer]
            )
        steps_per_s, _ = timer.rates(skip=20)
        n_evals = sizes["max_steps"] // sizes["eval_steps"]
        # Intervals that held an evaluation are not in the timer: the fit's time minus the training steps.
        eval_s = (result.wall_seconds - result.steps_trained / steps_per_s) / n_evals
        shares = {c: eval_s / (eval_s + c / steps_per_s) for c in CADENCES}
        print(
            f"  {family}: {steps_per_s:.0f} steps/s, {eval_s:.2f} s per evaluation of {n_val} rows = "
            f"{eval_s * steps_per_s:.0f} training steps; share of a trial at every "
            + ", ".join(f"{c}: {s:.0%}" for c, s in shares.items())
            + f" (load {load_average():.1f})",
            flush=True,
        )
        rows.append(
            row(
                f"f {family} share of a trial spent evaluating, every 500 vs every 250 steps",
                shares[500],
                shares[250],
                target="< 15% at 500",
                met=shares[500] < 0.15,
                seconds_per_evaluation=eval_s,
                steps_per_s=steps_per_s,
                evaluation_in_training_steps=eval_s * steps_per_s,
                shares={str(c): round(s, 3) for c, s in shares.items()},
                validation_rows=n_val,
                load_average_1m=load_average(),
            )
        )
    return rows

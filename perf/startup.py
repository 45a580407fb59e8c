"""(c) start-up: process start -> first training step of the first trial, cold vs. warm cache."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from perf.common import ROOT, Profile, cli_args, row

KEY = "c"
TARGET = "warm start < 5 s to the first training step"
CHILD = "_probe"  # python -m perf _probe ARGS: the CLI with the probe (a child process of this measurement)
PROBE_ENV = "TEXTBENCH_PERF_PROBE"  # file the start-up probe appends its timestamps to


def child(argv: list[str]) -> int:
    """Child process of (c): the real CLI, with a Trainer callback that appends the wall-clock time of
    the first training step (and of a few milestones) to $TEXTBENCH_PERF_PROBE, then stops the run."""
    marks = Path(os.environ[PROBE_ENV])

    def mark(name: str) -> None:
        with marks.open("a") as f:
            f.write(f"{name} {time.time():.6f}\n")

    mark("interpreter")
    from transformers import TrainerCallback

    import textbench.core.data
    import textbench.core.training
    from textbench import benchmark  # noqa: F401 - the CLI module itself, as `python benchmark.py` imports it

    mark("cli_imported")

    class FirstStep(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            mark("train_begin")

        def on_step_end(self, args, state, control, **kwargs):
            mark("first_step")
            os._exit(0)  # the measurement ends here: no need to finish the trial

    original_prepare, original_build = textbench.core.data.prepare, textbench.core.training.build_trainer

    def timed_prepare(*args, **kwargs):
        mark("prepare_start")
        out = original_prepare(*args, **kwargs)
        mark("prepare_end")
        return out

    def build_with_probe(*args, callbacks=(), **kwargs):
        mark("trial_start")
        return original_build(*args, callbacks=[*callbacks, FirstStep()], **kwargs)

    textbench.core.data.prepare = timed_prepare
    import textbench.search.studies

    textbench.search.studies.prepare = timed_prepare
    textbench.core.training.build_trainer = build_with_probe
    return benchmark.main(argv)


def startup_once(out: Path, train_samples: int | None) -> dict:
    marks = out / f"marks-{time.time_ns()}.txt"
    env = {**os.environ, PROBE_ENV: str(marks)}
    args = cli_args(out, train_samples=train_samples, extra=("--max-steps", "10", "--eval-steps", "10"))
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "perf", CHILD, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if "first_step" not in (marks.read_text() if marks.exists() else ""):
        raise RuntimeError(f"start-up probe did not reach a training step:\n{proc.stderr[-3000:]}")
    times = dict(line.split() for line in marks.read_text().splitlines())
    return {name: round(float(t) - start, 3) for name, t in times.items()}


def import_floor(repeats: int = 3) -> float:
    """Wall time of a fresh ``python -c "from transformers import Trainer"`` (median): the part of any
    start-up of a Trainer-based harness that no code of ours runs in."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from transformers import Trainer"], check=True, capture_output=True
        )
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 2)


def measure(profile: Profile, work: Path) -> list[dict]:
    """(c) process start -> first training step, with an empty tokenization cache and then a warm one."""
    out = work / "startup"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cold = startup_once(out, profile.startup_train_samples)
    shutil.rmtree(out / "imdb", ignore_errors=True)  # keep only the cache: a new study, warm tokenization
    (out / "optuna.journal").unlink(missing_ok=True)
    warm_runs = []
    for _ in range(max(2, profile.repeats)):
        shutil.rmtree(out / "imdb", ignore_errors=True)
        (out / "optuna.journal").unlink(missing_ok=True)
        warm_runs.append(startup_once(out, profile.startup_train_samples))
    warm = sorted(warm_runs, key=lambda m: m["first_step"])[len(warm_runs) // 2]
    floor = import_floor()
    print(
        f"  cold {cold['first_step']:.1f} s, warm {warm['first_step']:.1f} s  (warm milestones {warm}; "
        f"a bare `from transformers import Trainer` takes {floor:.1f} s)",
        flush=True,
    )
    return [
        row(
            "c start-up to first step, warm vs cold",
            warm["first_step"],
            cold["first_step"],
            unit="s",
            higher_is_better=False,
            target="warm < 5 s",
            met=warm["first_step"] < 5.0,
            import_trainer_floor_s=floor,
            cold_milestones=cold,
            warm_milestones=warm,
            warm_runs=[m["first_step"] for m in warm_runs],
            dataset_rows="all" if profile.startup_train_samples is None else profile.startup_train_samples,
        )
    ]

"""(d) scaling: one worker vs. two workers (--workers 2, one torch thread each) on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from perf.common import Profile, cli_args, cli_study, load_average, postgres_database, row, warm_cache

KEY = "d"
TARGET = "two workers >= 1.6x one worker"


def measure(profile: Profile, work: Path) -> list[dict]:
    """(d) one worker vs. two workers (--workers 2, one torch thread each) on PostgreSQL, fixed study."""

    out = work / "scaling"
    warm_cache(out, profile.train_samples, profile.eval_samples)
    # Every parameter pinned to the course notes' values: each trial is the same work, so the wall
    # times compare workers, not the luck of which configurations a sampler drew.
    from textbench.spaces import FAMILIES

    fixed = [f"--fix={k}={v}" for k, v in FAMILIES["cnn"].notes_config.items()]
    variants = {  # name -> extra CLI options (threads explicit: the CLI's default has changed before)
        "1 worker, 1 thread": ["--workers", "1", "--threads", "1"],
        "1 worker, 2 threads": ["--workers", "1", "--threads", "2"],
        "2 workers": ["--workers", "2", "--threads", "1"],
    }
    runs = {}
    with postgres_database() as storage:
        for i, (variant, extra) in enumerate(variants.items()):
            name = f"perf-scale-{i}"
            args = cli_args(
                out,
                trials=profile.scale_trials,
                train_samples=profile.train_samples,
                eval_samples=profile.eval_samples,
                extra=(
                    "--name",
                    name,
                    "--storage",
                    storage,
                    "--pruner",
                    "none",
                    "--patience",
                    "0",
                    "--max-steps",
                    str(profile.scale_max_steps),
                    "--eval-steps",
                    str(profile.scale_max_steps // 2),
                    "--no-baseline",
                    *fixed,
                    *extra,
                ),
            )
            r = runs[variant] = cli_study(args, storage, name, label=variant)
            print(
                f"  {variant}: {r['wall_s']:.0f} s wall = {r['before_first_trial_s']:.0f} s before the "
                "first trial + "
                f"{r['trial_span_s']:.0f} s of trials {r['trial_seconds']} + {r['after_last_trial_s']:.0f} "
                "s after; "
                f"{r['cpu_s']:.0f} CPU s = {r['cores_busy']:.2f} cores busy (load {load_average():.1f})",
                flush=True,
            )
    two = runs["2 workers"]
    rows = []
    for variant in ("1 worker, 1 thread", "1 worker, 2 threads"):
        one = runs[variant]
        speedup = one["wall_s"] / two["wall_s"]
        primary = variant == "1 worker, 1 thread"
        rows.append(
            row(
                f"d wall time, 2 workers vs {variant}",
                two["wall_s"],
                one["wall_s"],
                unit="s",
                higher_is_better=False,
                target=">= 1.6x" if primary else "",
                met=(speedup >= 1.6) if primary else None,
                cores_busy_two=two["cores_busy"],
                trial_span_speedup=round(one["trial_span_s"] / two["trial_span_s"], 2),
                one=one,
                two=two,
                trials=profile.scale_trials,
                max_steps=profile.scale_max_steps,
            )
        )
    return rows

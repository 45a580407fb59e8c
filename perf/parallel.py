"""The flagship command end to end, one worker vs. ``--workers auto`` (issue 14), on the real IMDB mirror.

    python perf/parallel.py                    # reduced: 6 trials, 600 steps, 4k/1k rows (minutes)
    python perf/parallel.py --profile full     # the README's command as it is (about an hour for one worker)
    python perf/parallel.py --only auto        # one variant

Each variant runs ``python benchmark.py --arch both ...`` in a fresh output folder (so it tokenizes,
searches both families, runs the final stage and the baseline, and writes the report: everything a
user waits for), with the same seed, and reads back what its studies say: wall time, CPU time, trial
counts, each family's search span, final-stage runs, best validation accuracy. Results go to
perf/results/flagship-PROFILE.json (git-ignored) and a table is printed. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "perf" / "results"

PROFILES = {  # extra options after the flagship command; "full" is the README's command unchanged
    "reduced": [
        "--trials",
        "6",
        "--max-steps",
        "600",
        "--eval-steps",
        "200",
        "--top-k",
        "2",
        "--final-seeds",
        "2",
        "--max-train-samples",
        "4000",
        "--max-eval-samples",
        "1000",
    ],
    "full": [],
}
VARIANTS = {"1": ["--workers", "1"], "auto": ["--workers", "auto"]}


def data_dir() -> str:
    value = os.environ.get("TEXTBENCH_DATA")
    if not value or not (Path(value) / "imdb" / "train.parquet").exists():
        sys.exit("set TEXTBENCH_DATA to the folder with imdb/ and bert-base-cased/")
    return value


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def read_studies(out: Path) -> dict:
    """Per family, what the default journal says about the run."""
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    families = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        timed = [t for t in trials if t.datetime_start and t.datetime_complete]
        finals = study.user_attrs.get("final_results", [])
        families[study.user_attrs.get("arch", summary.study_name)] = {
            "best_value": study.best_value,
            "best_params": study.best_params,
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "workers": sorted({t.user_attrs.get("worker", "?") for t in trials}),
            "search_span_s": round(
                (
                    max(t.datetime_complete for t in timed) - min(t.datetime_start for t in timed)
                ).total_seconds(),
                1,
            ),
            "trial_seconds_sum": round(
                sum((t.datetime_complete - t.datetime_start).total_seconds() for t in timed), 1
            ),
            "final_runs": len(finals),
            "final_run_seconds": [r["wall_seconds"] for r in finals],
            "final_test_mean": (
                sum(r["test_accuracy"] for r in finals if r["rank"] == 1)
                / max(1, sum(r["rank"] == 1 for r in finals))
            ),
        }
    return families


def run_variant(profile: str, variant: str, work: Path) -> dict:
    out = work / f"{profile}-{variant}"
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        "benchmark.py",
        "--arch",
        "both",
        "--data-dir",
        data_dir(),
        "--output-dir",
        str(out),
        *PROFILES[profile],
        *VARIANTS[variant],
    ]
    print(f"[{variant}] {' '.join(command[1:])}", flush=True)
    load_before, cpu, start = load_average(), cpu_seconds_of_children(), time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, cpu_seconds_of_children() - cpu
    (work / f"{profile}-{variant}.stderr.txt").write_text(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"[{variant}] exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    families = read_studies(out)
    result = {
        "variant": variant,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cores_busy": round(cpu / wall, 2),
        "load_before": load_before,
        "load_after": load_average(),
        "families": families,
        "workers_line": next(
            (line.split(": ", 1)[-1] for line in proc.stderr.splitlines() if "workers:" in line), ""
        ),
    }
    print(
        f"[{variant}] {wall:.0f} s wall, {cpu:.0f} CPU s ({cpu / wall:.2f} cores busy); "
        + "; ".join(
            f"{a} best {f['best_value']:.4f} span {f['search_span_s']:.0f} s, "
            f"{f['final_runs']} final runs {sum(f['final_run_seconds']):.0f} s"
            for a, f in families.items()
        ),
        flush=True,
    )
    return result


def table(results: list[dict]) -> str:
    families = list(results[0]["families"])
    head = (
        ["workers", "wall s", "cores busy"]
        + [f"{a} best val" for a in families]
        + [f"{a} search s" for a in families]
        + [f"{a} final s (runs)" for a in families]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        fam = r["families"]
        cells = [r["variant"], f"{r['wall_s']:.0f}", f"{r['cores_busy']:.2f}"]
        cells += [f"{fam[a]['best_value']:.4f}" for a in families]
        cells += [f"{fam[a]['search_span_s']:.0f}" for a in families]
        cells += [f"{sum(fam[a]['final_run_seconds']):.0f} ({fam[a]['final_runs']})" for a in families]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="reduced")
    parser.add_argument("--only", choices=list(VARIANTS), default=None, help="run one variant")
    parser.add_argument("--work-dir", default=None, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="textbench-flagship-"))
    work.mkdir(parents=True, exist_ok=True)
    variants = [args.only] if args.only else list(VARIANTS)
    results = [run_variant(args.profile, v, work) for v in variants]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"flagship-{args.profile}.json"
    path.write_text(
        json.dumps(
            {
                "profile": args.profile,
                "options": PROFILES[args.profile],
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
                "results": results,
            },
            indent=1,
        )
    )
    print(table(results))
    if len(results) == 2:
        print(f"speed-up, auto vs 1 worker: {results[0]['wall_s'] / results[1]['wall_s']:.2f}x")
    print(f"results in {path}; runs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

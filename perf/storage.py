"""Storage overhead per trial: journal file vs. SQLite vs. PostgreSQL, one and two processes (issue 14).

    python perf/storage.py                      # 60 trials per store, 1 and 2 processes
    python perf/storage.py --trials 200

Each process drives the same study with ``search.runner.run_study`` (claim lock, heartbeat, exact
target) on an objective that does what a real trial does to the storage and nothing else: ten
``trial.report`` + ``should_prune`` calls and the user attributes the objective sets (curves
included). The wall time of the whole run divided by the trials is the storage's cost per trial,
to compare with a real trial's 10-90 s. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
POSTGRES = os.environ.get("TEXTBENCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def objective(trial) -> float:
    x = trial.suggest_float("x", 0, 1)
    trial.suggest_int("n", 1, 256, log=True)
    for step in range(10):
        trial.report(x * step, step)
        trial.should_prune()
    curves = [{"step": s, "loss": 1.0 / (s + 1), "eval_accuracy": x} for s in range(10)]
    for key, value in {
        "seed": 1,
        "n_params": 1000,
        "best_step": 5,
        "steps_trained": 10,
        "curves": curves,
        "wall_seconds": 0.1,
    }.items():
        trial.set_user_attr(key, value)
    return x


def worker(url: str, trials: int, ready) -> None:
    import optuna

    from textbench.search.runner import run_study
    from textbench.search.study import make_sampler, make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(url)
    study = optuna.create_study(
        storage=storage,
        study_name="perf",
        direction="maximize",
        load_if_exists=True,
        sampler=make_sampler("tpe", 0, trials),
    )
    ready.wait()
    run_study(study, objective, trials, progress=False)


def measure(url: str, trials: int, processes: int) -> float:
    from textbench.search.study import make_storage

    make_storage(url)  # schema / file made once, before the clock starts
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    procs = [context.Process(target=worker, args=(url, trials, ready)) for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(6)  # imports done
    start = time.perf_counter()
    ready.set()
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"{url}: a worker failed")
    return time.perf_counter() - start


def postgres_database(action: str, name: str) -> bool:
    """CREATE or DROP a throwaway database on the test server; False when there is no server."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3) as conn:
            conn.execute(
                f'CREATE DATABASE "{name}"'
                if action == "create"
                else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            )
        return True
    except Exception:  # noqa: BLE001 - no server: measure the embedded stores only
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args(argv)
    rows = []
    for processes in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            stores = {
                "journal": str(Path(tmp) / "optuna.journal"),
                "sqlite": f"sqlite:///{Path(tmp) / 'optuna.db'}",
            }
            pg_name = f"textbench_perf_storage_{os.getpid()}_{processes}"
            if postgres_database("create", pg_name):
                stores["postgresql"] = (
                    POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
                    + "/"
                    + pg_name
                )
            for name, url in stores.items():
                try:
                    wall = measure(url, args.trials, processes)
                    rows.append(
                        {
                            "store": name,
                            "processes": processes,
                            "trials": args.trials,
                            "wall_s": round(wall, 2),
                            "ms_per_trial": round(1000 * wall / args.trials, 1),
                        }
                    )
                except RuntimeError as exc:
                    rows.append(
                        {"store": name, "processes": processes, "trials": args.trials, "error": str(exc)}
                    )
                print(rows[-1], flush=True)
            if "postgresql" in stores:
                postgres_database("drop", pg_name)
    out = ROOT / "perf" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "storage.json").write_text(json.dumps(rows, indent=1))
    print("| store | processes | ms per trial |\n|---|---|---|")
    for r in rows:
        print(f"| {r['store']} | {r['processes']} | {r.get('ms_per_trial', r.get('error'))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

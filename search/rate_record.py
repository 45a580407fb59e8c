"""Step rates recorded on this machine, so that the next benchmark's first ETA and plan start from them.

A calibration (``search.calibrate``) times a few configurations for ten steps each: a noisy number
(the same configurations on the same idle machine calibrated at 0.049, 0.058 and 0.092 s/step for
the RNN in three runs of 2026-12-06), and a search then visits other models and prunes many of its
trials. On the flagship the first ETA from calibration alone said 2 h 21 min of a 74.5 min run.
After a benchmark, two numbers per family measured on all its search trials are kept: seconds per
step and mean steps per search trial (pruning and early stopping included). They live in
``<output_dir>/rates.json`` (the folder that holds every benchmark of a user's runs), under a key of
what they depend on (family, data, training budget, pruner, workers, CPUs); a later run with the
same key uses them instead of calibrating that family (``Overall.recorded``). A search run under
``--stop-when-converged`` also records where it stopped (``converge``: the rule's settings and the
trials it ran, or None if it reached ``--trials``), which a later converging run with the same rule
takes as its ETA's trial count (``Overall.expected``). A record is a
measurement and never a reason to fail: a missing, unreadable or foreign file is ignored, and a
record that cannot be written is skipped with a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

FILE = "rates.json"
MIN_TRIALS = 5  # finished search trials of a family before its rates are worth recording


def rate_key(family: str, *, fingerprint: str, train, max_length: int, pruner: str, workers: int) -> str:
    """What a family's rates depend on: the data, the training budget, the pruner and the machine."""
    parts = {
        "family": family,
        "data": fingerprint,
        "max_steps": train.max_steps,
        "eval_steps": train.eval_steps,
        "batch_size": train.batch_size,
        "max_length": max_length,
        "pruner": pruner,
        "workers": workers,
        "cpus": os.cpu_count(),
    }
    return json.dumps(parts, sort_keys=True)


def read_records(path: Path) -> dict:
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def load_recorded(overall, path: Path, keys: dict[str, str]) -> dict[str, dict]:
    """Put the records of ``keys`` (family -> key) into ``overall.recorded``; returns what was found."""
    records = read_records(path)
    found = {}
    for family, key in keys.items():
        entry = records.get(key)
        if (
            isinstance(entry, dict)
            and _positive(entry, "seconds_per_step")
            and _positive(entry, "trial_steps")
        ):
            found[family] = entry
    overall.recorded.update(found)
    return found


def _positive(entry: dict, name: str) -> bool:
    value = entry.get(name)
    return isinstance(value, int | float) and value > 0


def expected_trials(entry: dict, rule: dict) -> int | None:
    """The trials a search converged at in ``entry``'s run, if it ran under the same ``rule``
    (``min_trials``, ``stagnation_trials``) and converged; else None."""
    found = entry.get("converge")
    if not isinstance(found, dict) or found.get("rule") != rule:
        return None
    trials = found.get("trials")
    return trials if isinstance(trials, int) and trials > 0 else None


def save_measured(
    overall, path: Path, keys: dict[str, str], converge: dict[str, dict] | None = None
) -> dict[str, dict]:
    """Record each family's measured seconds per step and steps per trial (families with
    ``MIN_TRIALS`` finished trials), and ``converge[family]`` (``{"rule": ..., "trials": ...}``) of a
    run under ``--stop-when-converged``; written whole (a temporary file renamed), other keys kept."""
    new = {}
    for family, key in keys.items():
        steps = overall.family_trial_steps.get(family) or []
        if len(steps) < MIN_TRIALS or not overall.steps.get(family):
            continue
        new[key] = {
            "seconds_per_step": round(overall.seconds[family] / overall.steps[family], 5),
            "trial_steps": round(sum(steps) / len(steps), 1),
            "trials": len(steps),
            "recorded": time.strftime("%Y-%m-%d %H:%M"),
        } | ({"converge": converge[family]} if converge and family in converge else {})
    if not new:
        return {}
    path = Path(path)
    records = read_records(path) | new
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(records, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not record step rates in %s (%s): the next first ETA calibrates only", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return {}
    return new


def record_keys(bench, max_length: int) -> dict[str, str]:
    """Each family's key in the record (``rate_key``) for a benchmark's settings."""
    return {
        f: rate_key(
            f,
            fingerprint=bench.data.fingerprint,
            train=bench.train,
            max_length=max_length,
            pruner=bench.search.pruner,
            workers=bench.overall.workers,
        )
        for f in bench.search.families
    }


def converge_rule(search) -> dict:
    """What a recorded convergence point depends on besides the rate key: the rule's own settings."""
    return {"min_trials": search.min_trials, "stagnation_trials": search.stagnation_trials}


def record_rates(bench, keys: dict[str, str], searches: list) -> None:
    """Keep what a benchmark measured for the next one's first ETA: every search trial on the studies,
    whichever ``--workers`` process ran it (a process's own ETA sees only its own trials), and under
    --stop-when-converged where each search stopped."""
    from textbench.search.overall import Overall, measure_trial
    from textbench.search.runner import count_trials  # Optuna's: imported where the studies are

    if bench.overall is None or not keys or not searches:
        return
    o = bench.overall
    measured = Overall(families=list(keys), trials=0, final_runs=0, baseline=False, max_steps=o.max_steps)
    converge = {}
    for one in searches:
        for frozen in one.study.get_trials(deepcopy=False):
            measure_trial(measured, one.family, frozen)
        if bench.search.stop_when_converged:  # where the search stopped, for the next run's ETA
            converged = str(one.study.user_attrs.get("stop_reason") or "").startswith("converged")
            converge[one.family] = {
                "rule": converge_rule(bench.search),
                "trials": count_trials(one.study).finished if converged else None,
            }
    saved = save_measured(measured, Path(bench.search.output_dir) / FILE, keys, converge)
    if saved:
        log.info("step rates recorded for the next run's first ETA: %s", Path(bench.search.output_dir) / FILE)

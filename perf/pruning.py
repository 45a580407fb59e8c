"""(b) pruning, per family: the default pruner vs. --pruner none, same sampler seed, real IMDB.

For CNN and RNN separately, the same study (same TPE seed, trial count and step budget) is run
with the default pruner and without pruning; read from the storage: steps trained (sum of the
``steps_trained`` attribute), best validation accuracy, completed and pruned trials; and, for
every pruned trial, its value at the pruning step against the median of the trials finished
before it at that step, in binomial standard errors of the validation size. The unpruned study's
recorded curves are also replayed through other pruners (in trial order; the replay ignores the
sampler's feedback) to compare them on the same trials.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from perf.common import Profile, cli_args, cli_study, row, warm_cache

KEY = "b"
TARGET = "per family: best validation accuracy within 1 standard error of no pruning, fewer steps trained"
DEFAULT = "margin"
# Sizes per profile: trials per family, step budget and evaluation cadence, extra pruners run for
# real, and --fix pins per family. Quick pins the RNN to one layer: its 3-layer configurations
# took 23 min a trial on the shared 2-core machine the figures in perf/README.md come from.
SIZES = {
    "quick": {
        "trials": 10,
        "max_steps": 1000,
        "eval_steps": 200,
        "extra": (),
        "fix": {"rnn": ("num_layers=1",)},
    },
    "full": {"trials": 20, "max_steps": 2500, "eval_steps": 500, "extra": ("median",), "fix": {}},
}
ARCHS = ("cnn", "rnn")


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def study_of(storage: str, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage)


def pruned_against_noise(study, n_val: int) -> list[dict]:
    """Each pruned trial: its value at the pruning step, the median of the trials finished before it
    that reported at that step, and the gap in plain binomial standard errors at that median."""
    from optuna.trial import TrialState

    finished = [
        t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]
    out = []
    for trial in finished:
        if trial.state != TrialState.PRUNED:
            continue
        step = int(trial.user_attrs.get("steps_trained") or max(trial.intermediate_values))
        before = [
            t.intermediate_values[step]
            for t in finished
            if t.datetime_complete < trial.datetime_complete and step in t.intermediate_values
        ]
        median = statistics.median(before) if before else None
        value = trial.intermediate_values.get(step)
        gap = None if median is None or value is None else (median - value) / binomial_se(median, n_val)
        out.append(
            {
                "trial": trial.number,
                "step": step,
                "value": value,
                "median_before": median,
                "gap_se": None if gap is None else round(gap, 2),
            }
        )
    return out


def replay(study, pruner, n_val: int) -> dict:
    """The unpruned study's trials, in order, through ``pruner``: steps trained, best value, counts."""
    import optuna
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    replayed = optuna.create_study(direction="maximize", pruner=pruner)
    steps, best, pruned = 0, None, 0
    for t in trials:
        trial = replayed.ask()
        stopped = None
        for step, value in sorted(t.intermediate_values.items()):
            trial.report(value, step)
            if trial.should_prune():
                stopped = step
                break
        if stopped is None:
            replayed.tell(trial, t.value)
            steps += int(t.user_attrs["steps_trained"])
            best = t.value if best is None else max(best, t.value)
        else:
            replayed.tell(trial, state=TrialState.PRUNED)
            steps += stopped
            pruned += 1
    return {"steps_trained": steps, "best_value": best, "complete": len(trials) - pruned, "pruned": pruned}


def replay_rows(family: str, none_study, sizes: dict, n_val: int, none: dict) -> list[dict]:
    import optuna

    from textbench.search.pruners import NoiseMarginPruner

    warmup = max(1, sizes["max_steps"] // 5)
    variants = {
        "median (Optuna MedianPruner, before)": optuna.pruners.MedianPruner(
            n_startup_trials=3, n_warmup_steps=warmup
        ),
        "margin k=1": NoiseMarginPruner(n_val, k=1.0, n_warmup_steps=warmup),
        "margin k=2 (default)": NoiseMarginPruner(n_val, k=2.0, n_warmup_steps=warmup),
        "margin k=3": NoiseMarginPruner(n_val, k=3.0, n_warmup_steps=warmup),
    }
    rows = []
    for label, pruner in variants.items():
        r = replay(none_study, pruner, n_val)
        gap = (r["best_value"] - none["best_value"]) * 100
        rows.append(
            row(
                f"b {family} replay of the unpruned trials: {label}, steps vs none",
                r["steps_trained"],
                none["steps_trained"],
                unit="steps",
                higher_is_better=False,
                fewer_steps=round(1 - r["steps_trained"] / none["steps_trained"], 3),
                best_gap_points=round(gap, 2),
                complete=r["complete"],
                pruned=r["pruned"],
            )
        )
    return rows


def measure(profile: Profile, work: Path) -> list[dict]:
    """(b) per family: steps, best validation accuracy and completed trials, default pruner vs none."""
    sizes = SIZES[profile.name]
    rows = []
    for family in ARCHS:
        runs, studies = {}, {}
        for pruner in (DEFAULT, "none", *sizes["extra"]):
            out = work / "pruning" / f"{family}-{pruner}"  # one storage per study: they may run side by side
            warm_cache(out, profile.train_samples, profile.eval_samples)
            storage = f"sqlite:///{out / 'optuna.db'}"
            args = cli_args(
                out,
                family=family,
                trials=sizes["trials"],
                train_samples=profile.train_samples,
                eval_samples=profile.eval_samples,
                extra=(
                    "--name",
                    f"perf-{pruner}",
                    "--pruner",
                    pruner,
                    "--storage",
                    storage,
                    "--threads",
                    "1",
                    "--max-steps",
                    str(sizes["max_steps"]),
                    "--eval-steps",
                    str(sizes["eval_steps"]),
                    "--no-baseline",
                    "--seed",
                    "42",
                    *(f"--fix={pin}" for pin in sizes["fix"].get(family, ())),
                ),
            )
            r = runs[pruner] = cli_study(
                args, storage, f"perf-{pruner}", label=f"{family} pruner {pruner}", family=family
            )
            studies[pruner] = study_of(storage, f"perf-{pruner}-{family}")
            print(
                f"  {family} {pruner}: {r['steps_trained']} steps, best {r['best_value']}, {r['complete']} "
                "complete / "
                f"{r['pruned']} pruned, {r['wall_s']:.0f} s",
                flush=True,
            )
        n_val = int(studies["none"].user_attrs["settings"]["validation_size"])
        se = binomial_se(runs["none"]["best_value"], n_val)
        for pruner in (DEFAULT, *sizes["extra"]):
            r, none = runs[pruner], runs["none"]
            saved = 1 - r["steps_trained"] / none["steps_trained"]
            gap = r["best_value"] - none["best_value"]
            checks = pruned_against_noise(studies[pruner], n_val)
            within = [c for c in checks if c["gap_se"] is None or c["gap_se"] <= 1]
            budget = {**sizes, "validation_rows": n_val}
            rows += [
                row(
                    f"b {family} steps trained, {pruner} vs none",
                    r["steps_trained"],
                    none["steps_trained"],
                    unit="steps",
                    higher_is_better=False,
                    fewer_steps=round(saved, 3),
                    budget=budget,
                    run=r,
                    none=none,
                ),
                row(
                    f"b {family} best val accuracy, {pruner} vs none",
                    r["best_value"],
                    none["best_value"],
                    target="within 1 SE" if pruner == DEFAULT else "",
                    met=(gap >= -se) if pruner == DEFAULT else None,
                    gap_points=round(gap * 100, 2),
                    gap_se=round(gap / se, 2),
                    se_points=round(se * 100, 2),
                ),
                row(
                    f"b {family} completed trials, {pruner} vs none",
                    r["complete"],
                    none["complete"],
                    pruned=r["pruned"],
                    of=sizes["trials"],
                ),
                row(
                    f"b {family} pruned trials within 1 SE of the median before them ({pruner})",
                    len(within),
                    len(checks),
                    target="0" if pruner == DEFAULT else "",
                    met=(not within) if pruner == DEFAULT else None,
                    pruned=checks,
                ),
                row(
                    f"b {family} study wall time, {pruner} vs none",
                    r["wall_s"],
                    none["wall_s"],
                    unit="s",
                    higher_is_better=False,
                ),
            ]
        rows += replay_rows(family, studies["none"], sizes, n_val, runs["none"])
    return rows

"""The terminal's closing table: per family the search's best, the chosen configuration and its
test mean and CI, trial counts, steps and wall time, read from the studies by the report's rules
(``stats.leaderboard``), so the terminal and the report show the same numbers."""

from __future__ import annotations

from collections import Counter

import optuna
import pandas as pd
from optuna.trial import TrialState

from textbench.core.finetune import parameters_text
from textbench.reports import stats
from textbench.reports.collect import THIN_FRACTION
from textbench.reports.failures import family_failure


def study_wall_seconds(study: optuna.Study) -> float | None:
    """First trial start to last trial end: the study's wall time whatever the number of workers."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_complete]
    if not trials:
        return None
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()


def summary_rows(studies: dict[str, optuna.Study], baseline: dict | None = None) -> list[dict]:
    """Per family: search best, the *chosen* configuration and its test mean and CI, trial counts, wall time.

    The chosen configuration is the report's: the final-stage configuration with the highest mean
    validation accuracy over seeds (``reports.stats.leaderboard``, so both show the same numbers);
    without a final stage, the search's best trial and no test number.
    """
    records = [
        dict(r, family=family)
        for family, study in studies.items()
        for r in study.user_attrs.get("final_results", [])
    ]
    board = stats.leaderboard(pd.DataFrame(records, columns=[*FINAL_FIELDS])).set_index("family")
    rows = []
    for family, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        states = Counter(t.state for t in trials)
        try:
            best = study.best_trial
            value, params, number = best.value, best.params, best.number
        except ValueError:
            value, params, number = None, {}, None
        row = {
            "arch": family,
            "best_value": value,
            "chosen_trial": number,
            "params": params,
            "validation_mean": None,
            "test_mean": None,
            "test_ci_low": None,
            "test_ci_high": None,
            "seeds": 0,
            "complete": states[TrialState.COMPLETE],
            "pruned": states[TrialState.PRUNED],
            "failed": states[TrialState.FAIL],
            "steps_trained": sum(int(t.user_attrs.get("steps_trained") or 0) for t in trials),
            "wall_seconds": study_wall_seconds(study),
            "failure": family_failure(trials),  # None, or why the family has no result
        }
        if family in board.index:
            c = board.loc[family]
            chosen = next(r for r in records if r["family"] == family and r["rank"] == c["rank"])
            row.update(
                chosen_trial=int(c["trial_number"]),
                params=dict(chosen["params"]),
                validation_mean=float(c["validation_mean"]),
                test_mean=float(c["mean"]),
                test_ci_low=_number(c["ci_low"]),
                test_ci_high=_number(c["ci_high"]),
                seeds=int(c["n"]),
            )
        rows.append(row)
    if baseline:
        rows.append(
            {
                "arch": baseline["name"],
                "best_value": baseline["validation_accuracy"],
                "chosen_trial": None,
                "params": {"C": baseline["C"]},
                "validation_mean": baseline["validation_accuracy"],
                "test_mean": baseline["test_accuracy"],
                "test_ci_low": None,
                "test_ci_high": None,
                "seeds": 1,
                "complete": 1,
                "pruned": 0,
                "failed": 0,
                "steps_trained": None,
                "wall_seconds": baseline["fit_seconds"],
            }
        )
    tuned = next((s.user_attrs["finetune"] for s in studies.values() if s.user_attrs.get("finetune")), None)
    if tuned:  # the fine-tuned pretrained reference: its seeds summarised as the report does
        board = stats.ranking(pd.DataFrame(columns=[*FINAL_FIELDS]), finetune=tuned).iloc[0]
        rows.append(
            {
                "arch": tuned["name"],
                "best_value": max(tuned["validation_by_lr"].values()),
                "chosen_trial": None,
                "params": {"learning_rate": tuned["learning_rate"], "n_params": tuned["n_params"]},
                "validation_mean": tuned["validation_accuracy"],
                "test_mean": float(board["mean"]),
                "test_ci_low": _number(board["ci_low"]),
                "test_ci_high": _number(board["ci_high"]),
                "seeds": len(tuned["runs"]),
                "complete": len(tuned["trainings"]),
                "pruned": 0,
                "failed": 0,
                "steps_trained": sum(t["steps_trained"] for t in tuned["trainings"]),
                "wall_seconds": tuned["seconds"],
                "note": (
                    f"pretrained reference, not searched ({parameters_text(tuned['n_params'])}; learning "
                    f"rate chosen on validation from {', '.join(tuned['validation_by_lr'])}; "
                    f"{tuned['steps_per_second']:.2f} steps/s, {tuned['seconds']:.0f} s in all on "
                    f"{tuned.get('device', 'CPU')}); 'search best' is its best learning rate's validation"
                ),
            }
        )
    return rows


FINAL_FIELDS = ("family", "rank", "trial_number", "seed", "test_accuracy", "validation_accuracy", "params")


def _number(x) -> float | None:
    return None if x is None or x != x else float(x)  # NaN -> None


def format_summary(rows: list[dict]) -> str:
    """The closing table: the chosen configuration's final-stage numbers, as the report shows them."""

    def f(x, digits=4):
        return "-" if x is None else f"{x:.{digits}f}"

    w = max([12, *(len(str(r["arch"])) for r in rows)])
    lines = [
        f"{'family':<{w}} {'search best':>11} {'chosen':>6} {'final val':>9} {'test mean':>9} "
        f"{'test 95% CI':>13} {'seeds':>5} {'complete':>8} {'pruned':>6} {'failed':>6} {'steps':>8} "
        f"{'wall s':>7}  "
        "chosen params"
    ]
    for r in rows:
        ci = "-" if r["test_ci_low"] is None else f"{r['test_ci_low']:.3f}-{r['test_ci_high']:.3f}"
        wall = f"{r['wall_seconds']:.0f}" if r.get("wall_seconds") is not None else "-"
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items())
        trial = r["chosen_trial"] if r["chosen_trial"] is not None else "-"
        steps = r["steps_trained"] if r.get("steps_trained") is not None else "-"
        lines.append(
            f"{r['arch']:<{w}} {f(r['best_value']):>11} {trial:>6} {f(r['validation_mean']):>9} "
            f"{f(r['test_mean']):>9} {ci:>13} {r['seeds']:>5} {r['complete']:>8} {r['pruned']:>6} "
            f"{r['failed']:>6} {steps:>8} {wall:>7}  {params}"
        )
    if any(r["seeds"] and r["chosen_trial"] is not None for r in rows):
        lines.append(
            "chosen = the final-stage configuration with the best mean validation accuracy over seeds "
            "(as in the report); test mean and 95% t-interval over its seeds"
        )
    else:
        lines.append("no final stage: chosen = the search's best trial; no test numbers")
    for r in rows:
        finished = r["complete"] + r["pruned"] + r["failed"]
        if r.get("note"):
            lines.append(f"note: {r['arch']}: {r['note']}")
        if r.get("failure"):
            lines.append(f"FAILED: {r['arch']}: {r['failure']}; see the report")
        elif finished and r["complete"] < THIN_FRACTION * finished:
            lines.append(
                f"note: {r['arch']}'s search was thin: {r['complete']} of {finished} trials completed "
                f"({r['pruned']} pruned, {r['failed']} failed); see the report"
            )
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)

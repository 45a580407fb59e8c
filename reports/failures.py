"""When a benchmark failed, and why: the rule behind the exit code, the summary and the report.

A family *failed* when it completed no trial (nothing to choose, nothing to compare), or when the
final stage was asked for (``--final-seeds`` > 0) and stored no result for it. Its reason is the
most common ``fail_reason`` of its failed trials, so the user sees the one cause to fix (an
allocation that cannot succeed, a configuration that cannot train) rather than "thin".
"""

from __future__ import annotations

from collections import Counter

from optuna.trial import TrialState

FAILED_EXIT = 3  # the benchmark ran to its end, but a family has no result: see the README's exit codes
NO_REASON = "(no reason recorded)"


def most_common_reason(trials) -> tuple[str, int, int] | None:
    """(the most frequent fail reason, how many trials failed with it, how many failed) or None."""
    reasons = Counter(
        str(t.user_attrs.get("fail_reason") or NO_REASON) for t in trials if t.state == TrialState.FAIL
    )
    if not reasons:
        return None
    reason, count = reasons.most_common(1)[0]
    return reason, count, sum(reasons.values())


def family_failure(trials, *, final_requested: bool = False, final_results=()) -> str | None:
    """Why this family has no result (one phrase), or None when it has one."""
    states = Counter(t.state for t in trials)
    if states[TrialState.COMPLETE] == 0:
        common = most_common_reason(trials)
        if common is None:
            pruned = states[TrialState.PRUNED]
            return f"no trial completed ({pruned} pruned)" if pruned else "no trial ran"
        reason, count, failed = common
        return f"no trial completed ({failed} failed; most common reason, {count} of {failed}: {reason})"
    if final_requested and not final_results:
        return "the final stage did not run"
    return None


def failed_families(studies: dict, *, final_requested: bool) -> dict[str, str]:
    """{family: why it failed} for each study without a result."""
    out = {}
    for family, study in studies.items():
        why = family_failure(
            study.get_trials(deepcopy=False),
            final_requested=final_requested,
            final_results=study.user_attrs.get("final_results", []),
        )
        if why is not None:
            out[family] = why
    return out


def failure_line(name: str, failed: dict[str, str]) -> str:
    """The command's last line when a family failed."""
    parts = "; ".join(f"{family}: {why}" for family, why in failed.items())
    return (
        f"error: benchmark '{name}' failed for {len(failed)} "
        f"famil{'y' if len(failed) == 1 else 'ies'}: {parts}: fix that cause and rerun the same command "
        "(finished trials are kept)"
    )

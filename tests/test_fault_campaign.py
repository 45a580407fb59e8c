"""A fault campaign that stops by itself: a two-worker benchmark on tiny data during which a helper
is SIGKILLed at random moments (twice), the journal gets a torn record once and the command itself
is interrupted (SIGINT) and resumed. At the end: the exact target, no trial finished twice, every
MLflow run closed, the report built, the torn bytes kept aside, nothing lost.

The README's reliability section quotes its figures (faults injected, survived, lost). The full-disk
case is tests/test_full_disk.py (a small tmpfs, skipped where mounting is not allowed).
"""

from __future__ import annotations

import random
import re
import signal
import time

import pytest
from helpers import cli_env, cli_output, default_storage, mlflow_runs, run_cli, search_args, start_cli
from optuna.trial import TrialState
from test_reliability import finished, kill_tree, worker_processes

TORN = b'{"op_code":6,"worker_id":"gone","trial_id":2,"state":1,"val'  # a record cut mid-write
# The interrupt comes first (the search is left unfinished), then a torn record; a helper killed in the
# search (the CLI process finishes the search alone, exit 1), then one killed in the final stage.
PLAN = ("interrupt", "torn-record", "kill-helper", "kill-helper")


def _without_ignored(stderr: str) -> str:
    """stderr without the "Exception ignored in: ..." reports Python prints when a signal lands in a
    weakref or ``__del__`` callback: the interpreter's note about the interrupt, not a textbench crash."""
    return re.sub(
        r"Exception ignored in: .*?\n(?:Traceback.*?\n(?:[ \t].*\n)*)?\S*(?:Error|Interrupt)\b.*\n?",
        "",
        stderr,
    )


def _training(logs) -> bool:
    """Whether the CLI's progress bar shows a study or the final stage at work."""
    stderr = cli_output(logs)[1]
    return "tiny-cnn [search" in stderr or "tiny-cnn final [" in stderr


@pytest.mark.slow  # several minutes: five CLI runs of two processes each
def test_fault_campaign_loses_nothing(tiny_data_dir, tmp_path):
    rng = random.Random(26)
    out, target = tmp_path / "out", 8
    args = search_args(
        tiny_data_dir,
        out,
        family="cnn",
        trials=target,
        max_steps=200,
        eval_steps=10,
        extra=["--workers", "2", "--pruner", "none", "--patience", "0", "--top-k", "1", "--final-seeds", "1"],
    )
    env = cli_env(TEXTBENCH_HEARTBEAT_SECONDS="2")  # a killed helper's trial is retried after 6 s
    journal = default_storage(out)
    injected, outcomes = [], []  # the faults that hit a running command; each round's exit code
    for round_, fault in enumerate(PLAN):
        if fault == "torn-record":  # what a kill -9 or a full disk in the middle of an append leaves
            with open(journal, "ab") as handle:
                handle.write(TORN)
            injected.append(fault)
            continue
        logs = tmp_path / f"logs-{round_}"
        proc = start_cli(*args, env=env, log_dir=logs)
        try:
            deadline = time.monotonic() + 300
            while proc.poll() is None and not _training(logs) and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(rng.uniform(1.0, 6.0))  # a random moment of the work
            if proc.poll() is None:
                if fault == "kill-helper":
                    for helper in worker_processes(proc.pid)[:1]:
                        helper.send_signal(signal.SIGKILL)
                        injected.append(fault)
                else:
                    proc.send_signal(signal.SIGINT)
                    injected.append(fault)
            code = proc.wait(timeout=900)
        finally:
            kill_tree(proc)
        stderr = cli_output(logs)[1]
        assert "Traceback" not in _without_ignored(stderr), stderr[-3000:]
        outcomes.append(code)
        if round_ and PLAN[round_ - 1] == "torn-record":
            assert stderr.count("had an incomplete record") == 1, stderr[-3000:]

    final = run_cli(*args, env=env, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]

    from helpers import load_study

    study = load_study("tiny-cnn", journal)
    assert len(finished(study)) == target  # the exact target
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    retried = [t.system_attrs["failed_trial"] for t in finished(study) if "failed_trial" in t.system_attrs]
    assert len(retried) == len(set(retried))  # no trial finished twice
    assert all(study.trials[n].state == TrialState.FAIL for n in retried)
    (aside,) = out.glob("optuna.journal.torn-*")
    assert aside.read_bytes() == TORN  # kept, not deleted
    runs = mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "tiny")
    assert runs and all(r.info.status != "RUNNING" for r in runs)  # every MLflow run closed
    assert (out / "tiny" / "report.html").is_file()
    assert study.user_attrs.get("final_results")  # the final stage ran
    print(f"faults injected: {len(injected)} ({', '.join(injected)}); exit codes {outcomes}; lost: 0")
    assert len(injected) == len(PLAN), injected

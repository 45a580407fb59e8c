"""Step rates recorded on this machine (search.rate_record): what a benchmark measured on its search
trials is kept in ``<output_dir>/rates.json`` and a later benchmark's first ETA starts from it
instead of a calibration; a bad or foreign record is ignored, never a failure. Expected values are
hand-computed."""

from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace

import pytest
from helpers import run_cli, search_args

from textbench.search.overall import Overall
from textbench.search.rate_record import FILE, MIN_TRIALS, load_recorded, save_measured


def overall(**kwargs) -> Overall:
    return Overall(
        families=["cnn", "rnn"],
        trials=10,
        final_runs=0,
        baseline=False,
        max_steps=1000,
        clock=lambda: 0.0,
        **kwargs,
    )


KEYS = {"cnn": "key-cnn", "rnn": "key-rnn"}
TRIALS = 6  # the CLI run's


def searched() -> Overall:
    """cnn ran 6 trials: 4 pruned at 250 steps (5 s each), 2 complete at 1000 steps (20 s each):
    3000 steps in 60 s = 0.02 s/step, 500 steps a trial. rnn ran 2 trials only: too few to record."""
    o = overall()
    for steps, seconds, complete in [(250, 5, False)] * 4 + [(1000, 20, True)] * 2:
        o.measured("cnn", steps, seconds, trial=True, complete=complete)
    for _ in range(2):
        o.measured("rnn", 1000, 60, trial=True, complete=True)
    return o


def test_a_search_is_recorded_and_the_next_first_eta_starts_from_it(tmp_path):
    path = tmp_path / FILE
    saved = save_measured(searched(), path, KEYS)
    assert set(saved) == {"key-cnn"}  # rnn: 2 < MIN_TRIALS trials
    assert MIN_TRIALS > 2
    entry = json.loads(path.read_text())["key-cnn"]
    assert entry["seconds_per_step"] == pytest.approx(0.02) and entry["trial_steps"] == pytest.approx(500.0)

    fresh = overall()
    fresh.calibrated = {"rnn": 0.05}  # rnn has no record: it was calibrated
    assert load_recorded(fresh, path, KEYS).keys() == {"cnn"}
    assert fresh.rate("cnn") == pytest.approx(0.02)
    assert fresh.steps_per_trial("cnn") == pytest.approx(500.0)
    # rnn: its calibration, a trial of max_steps. 10 trials each:
    # cnn 10 x 500 x 0.02 = 100 s, rnn 10 x 1000 x 0.05 = 500 s.
    assert fresh.remaining_seconds() == pytest.approx(600.0)
    without = overall()
    without.calibrated = {"cnn": 0.015, "rnn": 0.05}
    assert without.remaining_seconds() == pytest.approx(10 * 1000 * 0.015 + 500.0)  # calibration only


def test_a_record_alone_gives_a_first_eta():
    """No calibration at all (every family recorded or none): cnn recorded at 0.02 s/step and 500
    steps a trial, rnn unknown runs at the mean known rate, 0.02, and max_steps: 10 x 500 x 0.02 +
    10 x 1000 x 0.02 = 300 s."""
    o = overall()
    o.recorded = {"cnn": {"seconds_per_step": 0.02, "trial_steps": 500.0}}
    assert o.remaining_seconds() == pytest.approx(300.0)
    assert "ETA ?" not in o.line()


def test_the_record_counts_every_workers_trials(tmp_path):
    """The process that records sees only its own trials in its ETA; the record reads the studies:
    6 trials of 100 steps in 3 s each, 3 of them by another worker, are 6 trials at 0.03 s/step."""
    import optuna

    from textbench.search.rate_record import record_rates

    study = optuna.create_study(direction="maximize")
    for i in range(6):
        attrs = {"steps_trained": 100, "wall_seconds": 3.0, "worker": f"host:{i % 2}"}
        study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs=attrs))
    o = overall()
    o.measured("cnn", 100, 3.0, trial=True, complete=True)  # its own: one trial only
    bench = SimpleNamespace(
        overall=o, search=SimpleNamespace(output_dir=str(tmp_path), stop_when_converged=False)
    )
    record_rates(bench, {"cnn": "key-cnn"}, [SimpleNamespace(family="cnn", study=study)])
    entry = json.loads((tmp_path / FILE).read_text())["key-cnn"]
    assert entry["trials"] == 6 and entry["seconds_per_step"] == pytest.approx(0.03)
    assert entry["trial_steps"] == pytest.approx(100.0)


def test_own_trials_outrank_the_record(tmp_path):
    path = tmp_path / FILE
    save_measured(searched(), path, KEYS)
    fresh = overall()
    load_recorded(fresh, path, KEYS)
    fresh.measured("cnn", 100, 4, trial=True, complete=False)
    assert fresh.rate("cnn") == pytest.approx(0.04) and fresh.steps_per_trial("cnn") == 100


@pytest.mark.parametrize(
    "content",
    [
        "not json {",
        "[1, 2]",
        json.dumps({"key-cnn": {"seconds_per_step": -1, "trial_steps": 5}}),
        json.dumps({"key-cnn": {"seconds_per_step": "fast", "trial_steps": 5}}),
        json.dumps({"key-cnn": 3}),
    ],
)
def test_a_bad_record_is_ignored(tmp_path, content):
    path = tmp_path / FILE
    path.write_text(content)
    fresh = overall()
    fresh.calibrated = {"cnn": 0.01}
    assert load_recorded(fresh, path, KEYS) == {}
    assert fresh.rate("cnn") == pytest.approx(0.01)
    assert save_measured(searched(), path, KEYS)  # and it is replaced by a good one


def test_other_keys_are_kept_and_a_foreign_key_is_not_used(tmp_path):
    path = tmp_path / FILE
    path.write_text(json.dumps({"other": {"seconds_per_step": 9.0, "trial_steps": 1.0}}))
    save_measured(searched(), path, KEYS)
    assert set(json.loads(path.read_text())) == {"other", "key-cnn"}
    fresh = overall()
    assert load_recorded(fresh, path, {"cnn": "another-dataset"}) == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a read-only folder")
def test_an_unwritable_record_is_skipped_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert save_measured(searched(), folder / FILE, KEYS) == {}
    finally:
        folder.chmod(0o700)
    assert "could not record step rates" in caplog.text


def test_an_unwritable_record_path_is_skipped_with_a_warning(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert save_measured(searched(), blocker / FILE, KEYS) == {}  # its folder is a file
    assert "could not record step rates" in caplog.text


def test_a_second_benchmark_in_the_same_output_dir_starts_from_the_first_ones_rates(tiny_data_dir, tmp_path):
    out = tmp_path / "runs"
    first = run_cli(
        *search_args(
            tiny_data_dir, out, trials=MIN_TRIALS, name="first", extra=["--no-mlflow", "--workers", "2"]
        )
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "step rates recorded for the next run's first ETA" in first.stderr
    (entry,) = json.loads((out / FILE).read_text()).values()
    assert MIN_TRIALS <= entry["trials"] <= TRIALS and entry["trial_steps"] <= 20  # --max-steps 20
    second = run_cli(*search_args(tiny_data_dir, out, trials=2, name="second", extra=["--no-mlflow"]))
    assert second.returncode == 0, second.stderr[-3000:]
    line = re.search(
        r"step rates recorded on this machine .*, no calibration needed: cnn ([\d.]+) s/step", second.stderr
    )
    assert line and float(line.group(1)) == pytest.approx(entry["seconds_per_step"], abs=1e-4), second.stderr
    assert "calibration cnn" not in second.stderr and "calibration cnn" in first.stderr


# ---------------------------------------------------------------- --stop-when-converged and the ETA


def test_a_converging_search_without_a_record_gives_a_range_from_the_earliest_stop_to_the_cap():
    """Both families recorded (cnn 0.02 s/step x 500 steps = 10 s a trial, rnn 0.05 x 1000 = 50 s),
    1 worker, 10 trials, the rule may stop after 4: at the cap 10 x 10 + 10 x 50 = 600 s (10 min), at
    the earliest 4 x 10 + 4 x 50 = 240 s (4 min)."""
    o = overall(earliest=4)
    o.recorded = {
        "cnn": {"seconds_per_step": 0.02, "trial_steps": 500.0},
        "rnn": {"seconds_per_step": 0.05, "trial_steps": 1000.0},
    }
    assert o.remaining_seconds() == pytest.approx(600.0)
    assert o.remaining_seconds(soonest=True) == pytest.approx(240.0)
    assert "benchmark 4 min to 10 min left" in o.line()
    o.finished = {"cnn": 6, "rnn": 2}  # cnn past the earliest: at least one more trial
    assert o.remaining_seconds(soonest=True) == pytest.approx(1 * 10 + 2 * 50)
    o.stopped = {"cnn": 6}  # cnn converged: only rnn is uncertain
    assert o.remaining_seconds() == pytest.approx(8 * 50)
    o.stopped["rnn"] = 7
    assert not o.uncertain() and "to" not in o.line().split("benchmark")[1]


def test_where_a_search_converged_before_is_the_etas_trial_count():
    """cnn converged after 7 trials in the recorded run: 7 x 10 s + rnn (no convergence recorded)
    10 x 50 s = 570 s at most, 7 x 10 + 4 x 50 = 270 s at the soonest; once cnn ran 7 without
    stopping, one more: 8 x 10."""
    o = overall(earliest=4, expected={"cnn": 7})
    o.recorded = {
        "cnn": {"seconds_per_step": 0.02, "trial_steps": 500.0},
        "rnn": {"seconds_per_step": 0.05, "trial_steps": 1000.0},
    }
    assert o.remaining_seconds() == pytest.approx(570.0)
    assert o.remaining_seconds(soonest=True) == pytest.approx(270.0)
    o.expected["rnn"] = 12  # never more than --trials (10)
    assert o.remaining_seconds() == pytest.approx(7 * 10 + 10 * 50) and not o.uncertain()
    o.finished = {"cnn": 7}
    assert o.remaining_seconds() == pytest.approx(1 * 10 + 10 * 50)


def test_where_a_search_converged_is_recorded_and_read_back_only_under_the_same_rule(tmp_path):
    from textbench.search.rate_record import expected_trials

    path = tmp_path / FILE
    rule = {"min_trials": 10, "stagnation_trials": 15}
    save_measured(searched(), path, KEYS, {"cnn": {"rule": rule, "trials": 30}})
    entry = json.loads(path.read_text())["key-cnn"]
    assert expected_trials(entry, rule) == 30
    assert expected_trials(entry, {"min_trials": 10, "stagnation_trials": 5}) is None  # another window
    save_measured(searched(), path, KEYS, {"cnn": {"rule": rule, "trials": None}})  # ran to --trials
    assert expected_trials(json.loads(path.read_text())["key-cnn"], rule) is None
    save_measured(searched(), path, KEYS)  # a run without the rule records no convergence
    assert "converge" not in json.loads(path.read_text())["key-cnn"]


def test_a_second_converging_benchmark_expects_the_trials_the_first_one_converged_at(tiny_data_dir, tmp_path):
    """The real CLI twice in one output folder under --stop-when-converged: the first run's stop is
    recorded, and the second's ETA counts that many trials (said in one line) instead of a range."""
    out = tmp_path / "runs"
    rule = [
        "--stop-when-converged",
        "--min-trials",
        str(MIN_TRIALS),
        "--stagnation-trials",
        "1",
        "--no-mlflow",
    ]
    first = run_cli(*search_args(tiny_data_dir, out, trials=20, name="first", extra=rule))
    assert first.returncode == 0, first.stderr[-3000:]
    (entry,) = json.loads((out / FILE).read_text()).values()
    stopped = re.search(r"converged after (\d+) trials", first.stderr)
    assert stopped, first.stderr[-3000:]
    assert entry["converge"] == {
        "rule": {"min_trials": MIN_TRIALS, "stagnation_trials": 1},
        "trials": int(stopped.group(1)),
    }
    second = run_cli(*search_args(tiny_data_dir, out, trials=20, name="second", extra=rule))
    assert second.returncode == 0, second.stderr[-3000:]
    assert (
        f"cnn converged after {stopped.group(1)} trials in that run: the ETA expects as many" in second.stderr
    )


def test_a_range_within_one_clock_minute_names_that_minute_once():
    """10 trials of 100 steps at 0.05 s/step = 50 s at most, 4 trials = 20 s at the soonest: "<1 min"
    to "1 min", both ending in the same minute after the epoch (in any time zone): one clock time."""
    o = Overall(
        families=["cnn"],
        trials=10,
        final_runs=0,
        baseline=False,
        max_steps=100,
        clock=lambda: 0.0,
        earliest=4,
    )
    o.recorded = {"cnn": {"seconds_per_step": 0.05, "trial_steps": 100.0}}
    line = o.line()
    assert "benchmark <1 min to 1 min left" in line and line.count(":") == 1, line

"""The course notes' configuration as every study's trial 0, and in the final stage (issue 18).

Unit tests on in-memory studies (enqueue rules, --fix, out-of-space values, the final stage's
choice of runs with a stand-in trainer), then the real CLI on the tiny data: trial 0 of each
study, a resume, two workers on PostgreSQL, the final stage.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from helpers import (
    create_postgres_database,
    default_storage,
    drop_postgres_database,
    mlflow_runs,
    open_storage,
    postgres_unreachable_reason,
    run_cli,
    runs_by_role,
    search_args,
)
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from textbench import spaces
from textbench.search import final as final_stage
from textbench.search.reference import enqueue_reference, reference_params, reference_trial
from textbench.spaces import FAMILIES

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The course notes' settings, written out here (not read from the family records): the yardstick itself.
NOTES = {
    "cnn": {"embedding_dim": 64, "filter_size": 3, "num_filters": 10, "learning_rate": 1e-3},
    "rnn": {
        "embedding_dim": 64,
        "hidden_size": 96,
        "num_layers": 1,
        "nonlinearity": "tanh",
        "learning_rate": 1e-3,
    },
}


def run_trials(study: optuna.Study, family: str, n: int, value=lambda t: 0.5) -> None:
    for _ in range(n):
        trial = study.ask()
        FAMILIES[family].suggest(trial)
        study.tell(trial, value(trial))


# ---------------------------------------------------------------- enqueue rules


@pytest.mark.parametrize("family", ["cnn", "rnn"])
def test_the_first_trial_of_a_fresh_study_is_the_course_notes_configuration(family):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    assert enqueue_reference(study, family, {}, target=5)
    run_trials(study, family, 3)
    assert study.trials[0].params == NOTES[family] and study.trials[0].user_attrs["reference"] is True
    assert [t.number for t in study.trials if t.user_attrs.get("reference")] == [0]
    assert study.trials[1].params != NOTES[family]  # the search goes on from there


def test_it_is_not_enqueued_again_on_resume_or_into_a_study_that_never_had_it():
    study = optuna.create_study(direction="maximize")
    assert enqueue_reference(study, "cnn", {}, target=5)
    assert not enqueue_reference(study, "cnn", {}, target=5)  # still waiting: a second worker
    run_trials(study, "cnn", 2)
    assert not enqueue_reference(study, "cnn", {}, target=5)  # a resume
    assert sum(bool(t.user_attrs.get("reference")) for t in study.trials) == 1

    older = optuna.create_study(direction="maximize")  # started with --no-reference
    run_trials(older, "cnn", 2)
    assert not enqueue_reference(older, "cnn", {}, target=5)
    fresh = optuna.create_study(direction="maximize")
    assert not enqueue_reference(fresh, "cnn", {}, target=0)  # nothing left to run


def test_an_interrupted_reference_is_enqueued_again_a_failed_one_is_not():
    study = optuna.create_study(direction="maximize")
    enqueue_reference(study, "cnn", {}, target=5)
    trial = study.ask()
    FAMILIES["cnn"].suggest(trial)
    trial.set_user_attr("fail_reason", "interrupted")
    study.tell(trial, state=TrialState.FAIL)
    assert enqueue_reference(study, "cnn", {}, target=5)
    run_trials(study, "cnn", 1)
    assert study.trials[1].params == NOTES["cnn"] and reference_trial(study).number == 1

    broken = optuna.create_study(direction="maximize")
    enqueue_reference(broken, "cnn", {}, target=5)
    trial = broken.ask()
    FAMILIES["cnn"].suggest(trial)
    trial.set_user_attr("fail_reason", "loss became nan at step 10")
    broken.tell(trial, state=TrialState.FAIL)
    assert not enqueue_reference(broken, "cnn", {}, target=5)
    assert reference_trial(broken) is None


def test_pinned_values_override_the_reference():
    from textbench.search.fixed import parse_fixed

    fixed = parse_fixed("cnn", ["learning_rate=0.003", "num_filters=100"])
    sampler = optuna.samplers.PartialFixedSampler(fixed, optuna.samplers.RandomSampler(seed=0))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    enqueue_reference(study, "cnn", fixed, target=3)
    run_trials(study, "cnn", 2)
    assert study.trials[0].params == {**NOTES["cnn"], "learning_rate": 0.003, "num_filters": 100}
    assert all(t.params["learning_rate"] == 0.003 for t in study.trials)


def test_a_notes_value_outside_the_space_is_left_to_the_sampler_and_said_once(monkeypatch, caplog):
    notes = {"embedding_dim": 64, "filter_size": 3, "num_filters": 4, "dropout": 0.5, "learning_rate": 1e-3}
    monkeypatch.setitem(
        spaces.FAMILIES, "cnn", dataclasses.replace(spaces.FAMILIES["cnn"], notes_config=notes)
    )
    params, skipped = reference_params("cnn", {})
    assert params == {"embedding_dim": 64, "filter_size": 3, "learning_rate": 1e-3}
    assert skipped == ["num_filters=4 (outside 8..256)", "dropout=0.5 (not searched)"]
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    with caplog.at_level(logging.WARNING, logger="textbench.search.reference"):
        for _ in range(3):  # three workers or resumes: one warning
            enqueue_reference(study, "cnn", {}, target=3)
        run_trials(study, "cnn", 2)
    assert len([r for r in caplog.records if "num_filters=4" in r.getMessage()]) == 1
    first = study.trials[0]
    assert 8 <= first.params["num_filters"] <= 256 and first.params["filter_size"] == 3
    assert first.user_attrs["reference_skipped"] == skipped


# ---------------------------------------------------------------- the final stage


def _final_stage(tmp_path, top_k: int, seeds: int = 2) -> dict:
    """``run_final``'s keyword arguments for a stand-in benchmark (the training itself is faked)."""
    search = SimpleNamespace(
        final_seeds=seeds, top_k=top_k, seed=7, time_budget=None, progress=False, run_dir=tmp_path
    )
    return {"search": search, "data": SimpleNamespace(splits={"test": {"labels": [0, 1, 1]}}), "train": None}


def _study_with(values: dict[int, float], reference: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    dists = {
        "num_filters": IntDistribution(8, 256, log=True),
        "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
    }
    for number, value in sorted(values.items()):
        study.add_trial(
            create_trial(
                value=value,
                params={"num_filters": 10 + number, "learning_rate": 1e-3},
                distributions=dists,
                user_attrs={"reference": number == reference},
            )
        )
    return study


TRAINED: list[tuple[int, int]] = []  # (trial number, seed) of every stand-in training


def _fake_train(family, trial, seed, data, train, run_dir, work_dir):
    TRAINED.append((trial.number, seed))
    return {
        "arch": family,
        "trial_number": trial.number,
        "seed": seed,
        "test_accuracy": 0.5,
        "validation_accuracy": trial.value,
        "params": dict(trial.params),
    }


def test_the_final_stage_retrains_the_reference_with_the_chosen_configurations_seeds(monkeypatch, tmp_path):
    monkeypatch.setattr(final_stage, "train_final", _fake_train)
    study = _study_with({0: 0.6, 1: 0.9, 2: 0.8, 3: 0.7}, reference=0)
    records = final_stage.run_final(study, "cnn", **_final_stage(tmp_path, top_k=2))
    seeds = final_stage.final_seeds(7, 2)
    got = sorted((r["trial_number"], r["seed"], r["rank"], r["reference"]) for r in records)
    assert got == sorted(
        [(1, s, 1, False) for s in seeds]
        + [(2, s, 2, False) for s in seeds]
        + [(0, s, None, True) for s in seeds]
    )
    stored = study.user_attrs["final_results"]
    assert [r["trial_number"] for r in stored] == [1, 1, 2, 2, 0, 0]  # rank order, the reference last


def test_a_reference_among_the_top_k_is_trained_once_with_its_rank(monkeypatch, tmp_path):
    monkeypatch.setattr(final_stage, "train_final", _fake_train)
    study = _study_with({0: 0.95, 1: 0.9, 2: 0.8}, reference=0)
    TRAINED.clear()
    records = final_stage.run_final(study, "cnn", **_final_stage(tmp_path, top_k=2))
    assert sorted(TRAINED) == sorted((n, s) for n in (0, 1) for s in final_stage.final_seeds(7, 2))
    assert sorted((r["trial_number"], r["rank"], r["reference"]) for r in records) == [
        (0, 1, True),
        (0, 1, True),
        (1, 2, False),
        (1, 2, False),
    ]


# ---------------------------------------------------------------- what tuning bought (reports/tuning.py)


def _trials(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"family": f, "number": n, "state": st, "value": v, "reference": ref} for f, n, st, v, ref in rows]
    )


def _final(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "family": f,
                "rank": rank,
                "trial_number": n,
                "seed": seed,
                "test_accuracy": acc,
                "validation_accuracy": 0.8,
                "reference": ref,
            }
            for f, rank, n, seed, acc, ref in rows
        ]
    )


def test_trials_to_beat_counts_search_trials_until_one_completed_above_the_reference():
    from textbench.reports.tuning import trials_to_beat

    trials = _trials(
        [
            ("cnn", 0, "COMPLETE", 0.70, True),
            ("cnn", 1, "COMPLETE", 0.65, None),
            ("cnn", 2, "PRUNED", 0.90, None),
            ("cnn", 3, "FAIL", None, None),
            ("cnn", 4, "COMPLETE", 0.71, None),
            ("cnn", 5, "COMPLETE", 0.99, None),
            ("rnn", 0, "COMPLETE", 0.90, True),
            ("rnn", 1, "COMPLETE", 0.90, None),
        ]
    )
    assert trials_to_beat(trials, "cnn") == (
        4,
        5,
        0.70,
    )  # a pruned trial's value does not count, a tie neither
    assert trials_to_beat(trials, "rnn") == (None, 1, 0.90)


def test_the_gain_is_the_paired_difference_of_the_chosen_and_reference_predictions():
    import numpy as np

    from textbench.reports.tuning import gains, sentence

    labels = np.array([0, 1] * 50)
    wrong = {
        ("cnn", 0, 1): 40,
        ("cnn", 0, 2): 30,
        ("cnn", 2, 1): 5,
        ("cnn", 2, 2): 15,  # errors per run
        ("rnn", 0, 1): 20,
        ("rnn", 0, 2): 20,
        ("rnn", 1, 1): 20,
        ("rnn", 1, 2): 20,
    }
    preds = {}
    for key, n in wrong.items():
        p = labels.copy()
        p[:n] = 1 - p[:n]
        preds[key] = p
    final = _final([(f, 1 if n else None, n, s, 1 - wrong[(f, n, s)] / 100, n == 0) for f, n, s in wrong])
    trials = _trials(
        [
            ("cnn", 0, "COMPLETE", 0.6, True),
            ("cnn", 1, "COMPLETE", 0.5, None),
            ("cnn", 2, "COMPLETE", 0.9, None),
            ("rnn", 0, "COMPLETE", 0.6, True),
            ("rnn", 1, "COMPLETE", 0.7, None),
        ]
    )
    g = gains(trials, final, preds, labels).set_index("family")
    # by hand: cnn notes 0.65, chosen 0.90 -> +0.25; rnn 0.80 vs 0.80 -> 0
    assert g.loc["cnn", "reference_mean"] == pytest.approx(0.65) and g.loc[
        "cnn", "chosen_mean"
    ] == pytest.approx(0.90)
    assert g.loc["cnn", "gain"] == pytest.approx(0.25) and g.loc["rnn", "gain"] == pytest.approx(0.0)
    assert g.loc["cnn", "gain_ci_low"] > 0 and g.loc["cnn", "significant"]
    assert (
        g.loc["rnn", "gain_ci_low"] == 0 == g.loc["rnn", "gain_ci_high"] and not g.loc["rnn", "significant"]
    )
    assert g.loc["cnn", "p_holm"] == pytest.approx(min(1, 2 * g.loc["cnn", "p_value"]))  # Holm over 2 tests
    assert g.loc["cnn", "method"] == "paired bootstrap" and list(g["trials_to_beat"]) == [2, 1]
    text = sentence(g.reset_index())
    assert "tuning gained +25.0 points for cnn (95% CI +" in text and "after 2 trials" in text
    assert "for rnn it did not beat the course notes' settings (+0.0 points" in text


def test_without_predictions_the_gain_falls_back_to_welch_and_a_chosen_reference_gains_nothing():
    from textbench.reports.tuning import gains, sentence

    final = _final(
        [
            ("cnn", 1, 0, 1, 0.8, True),
            ("cnn", 1, 0, 2, 0.7, True),
            ("cnn", 2, 3, 1, 0.6, False),
            ("cnn", 2, 3, 2, 0.65, False),
        ]
    )
    final.loc[final.trial_number == 3, "validation_accuracy"] = (
        0.5  # the reference is chosen (rank 1, best val)
    )
    trials = _trials([("cnn", 0, "COMPLETE", 0.8, True), ("cnn", 3, "COMPLETE", 0.7, None)])
    g = gains(trials, final)
    assert g.loc[0, "method"] == "same configuration" and g.loc[0, "chosen_trial"] == 0
    assert (g.loc[0, "gain"], g.loc[0, "gain_ci_low"], g.loc[0, "gain_ci_high"]) == (0, 0, 0) and pd.isna(
        g.loc[0, "p_holm"]
    )
    assert "the course notes' settings are themselves the chosen configuration" in sentence(g)
    final.loc[final.trial_number == 3, "validation_accuracy"] = (
        0.9  # now trial 3 is chosen: Welch on 2 seeds a side
    )
    g = gains(trials, final).iloc[0]
    assert g["method"] == "Welch t" and g["gain"] == pytest.approx(0.625 - 0.75) and g["chosen_trial"] == 3
    assert gains(_trials([("cnn", 0, "COMPLETE", 0.8, None)]), final).empty  # no reference: no row


# ---------------------------------------------------------------- the real CLI


def load(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage))


@pytest.fixture(scope="module")
def both_run(tiny_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    args = search_args(
        tiny_data_dir,
        out,
        family="both",
        trials=3,
        max_steps=30,
        extra=["--final-seeds", "2", "--top-k", "1"],
    )
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, args, result


def test_trial_0_of_each_study_is_the_reference_with_its_mlflow_tag(both_run):
    out, _, _ = both_run
    storage = default_storage(out)
    runs = runs_by_role(mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "tiny"), "trial")
    for family in ("cnn", "rnn"):
        study = load(storage, f"tiny-{family}")
        first = study.trials[0]
        assert first.params == NOTES[family] and first.user_attrs["reference"] is True
        assert [t.number for t in study.trials if t.user_attrs.get("reference")] == [0]
        tagged = [
            r
            for r in runs
            if r.data.tags.get("optuna.study") == f"tiny-{family}" and r.data.tags.get("reference") == "true"
        ]
        assert [r.data.tags["optuna.trial_number"] for r in tagged] == ["0"]


def test_the_final_stage_trains_the_reference_with_the_same_seeds(both_run):
    out, _, _ = both_run
    storage = default_storage(out)
    for family in ("cnn", "rnn"):
        records = load(storage, f"tiny-{family}").user_attrs["final_results"]
        reference = [r for r in records if r["reference"]]
        chosen = [r for r in records if r["rank"] == 1]
        assert {r["trial_number"] for r in reference} == {0}
        assert sorted(r["seed"] for r in reference) == sorted(r["seed"] for r in chosen) and len(chosen) == 2
        assert all(r["params"] == NOTES[family] and 0 <= r["test_accuracy"] <= 1 for r in reference)


def test_the_gain_is_the_same_in_the_csv_terminal_report_and_mlflow(both_run):
    import html
    import re

    out, _, result = both_run
    storage = default_storage(out)
    csv = pd.read_csv(out / "tiny" / "tuning.csv").set_index("family")
    page = html.unescape(re.sub(r"<[^>]+>", " ", (out / "tiny" / "report.html").read_text()))
    page = re.sub(r"\s+", " ", page)
    parents = {
        r.data.tags["optuna.study"]: r
        for r in runs_by_role(mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "tiny"), "study")
    }
    assert sorted(csv.index) == ["cnn", "rnn"]
    for family in ("cnn", "rnn"):
        study = load(storage, f"tiny-{family}")
        records = study.user_attrs["final_results"]
        # independent: chosen = rank 1 (top-k 1), reference = trial 0; the gain is the difference of means
        chosen = [r["test_accuracy"] for r in records if r["rank"] == 1]
        notes = [r["test_accuracy"] for r in records if r["trial_number"] == 0]
        row = csv.loc[family]
        assert row["gain"] == pytest.approx(sum(chosen) / len(chosen) - sum(notes) / len(notes), abs=1e-9)
        assert row["reference_mean"] == pytest.approx(sum(notes) / len(notes))
        assert row["reference_validation"] == study.trials[0].value and row["seeds"] == 2
        ref_value = study.trials[0].value
        beat = next(
            (
                i
                for i, t in enumerate(study.trials[1:], start=1)
                if t.value is not None and t.state == TrialState.COMPLETE and t.value > ref_value
            ),
            None,
        )
        assert (None if pd.isna(row["trials_to_beat"]) else int(row["trials_to_beat"])) == beat
        gain = f"{100 * row['gain']:+.1f}"
        ci = f"{100 * row['gain_ci_low']:+.1f} to {100 * row['gain_ci_high']:+.1f}"
        table_row = re.search(
            rf"\b{family} 0 {row['reference_validation']:.3f} .*? {re.escape(f'{gain} {ci}')} paired "
            "bootstrap",
            page,
        )
        assert table_row, (family, gain, ci)  # the report's table
        terminal = [
            line
            for line in result.stdout.splitlines()
            if line.startswith(family) and f"{gain} ({ci})" in line
        ]
        assert len(terminal) == 1  # the terminal's table
        assert (
            f"{gain} points" in page and f"{gain} points" in result.stdout
        )  # the verdict sentence, both places
        metrics = parents[f"tiny-{family}"].data.metrics
        assert metrics["tuning_gain"] == pytest.approx(row["gain"]) and metrics[
            "tuning_gain_p_holm"
        ] == pytest.approx(row["p_holm"])


def test_a_resume_does_not_add_the_reference_twice(both_run, tmp_path):
    import shutil

    out, args, _ = both_run
    out = Path(
        shutil.copytree(out, tmp_path / "copy")
    )  # the module's run stays as it was for the other tests
    more = list(args)
    more[more.index("--trials") + 1] = "4"
    more[more.index("--output-dir") + 1] = str(out)
    result = run_cli(*more, "--no-mlflow")
    assert result.returncode == 0, result.stderr[-3000:]
    for family in ("cnn", "rnn"):
        study = load(default_storage(out), f"tiny-{family}")
        assert len(study.trials) == 4
        assert [t.number for t in study.trials if t.user_attrs.get("reference")] == [0]


@pytest.mark.slow  # ~90 s: three CLI runs (CI runs it)
def test_fix_overrides_it_and_no_reference_turns_it_off(tiny_data_dir, tmp_path):
    storage = default_storage(tmp_path)
    pinned = run_cli(
        *search_args(
            tiny_data_dir,
            tmp_path,
            trials=2,
            max_steps=20,
            name="pin",
            extra=["--fix", "learning_rate=0.003"],
        )
    )
    assert pinned.returncode == 0, pinned.stderr[-3000:]
    assert load(storage, "pin-cnn").trials[0].params == {**NOTES["cnn"], "learning_rate": 0.003}
    off = run_cli(
        *search_args(tiny_data_dir, tmp_path, trials=2, max_steps=20, name="off", extra=["--no-reference"])
    )
    assert off.returncode == 0, off.stderr[-3000:]
    study = load(storage, "off-cnn")
    assert len(study.trials) == 2 and not any(t.user_attrs.get("reference") for t in study.trials)
    assert study.trials[0].params != NOTES["cnn"]


@pytest.mark.slow  # three processes import torch + transformers: about a minute on 2 busy cores
def test_two_workers_on_postgres_enqueue_the_reference_once(tiny_data_dir, tmp_path):
    reason = postgres_unreachable_reason()
    if reason:
        pytest.skip(reason)
    url = create_postgres_database("textbench_reference")
    try:
        args = search_args(
            tiny_data_dir,
            tmp_path,
            family="both",
            trials=4,
            max_steps=20,
            extra=["--workers", "2", "--storage", url],
        )
        result = run_cli(*args, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        for family in ("cnn", "rnn"):
            study = load(url, f"tiny-{family}")
            assert len(study.trials) == 4
            assert [t.number for t in study.trials if t.user_attrs.get("reference")] == [0]
            assert study.trials[0].params == NOTES[family]
    finally:
        drop_postgres_database(url)


def test_workers_racing_on_a_fresh_postgres_study_enqueue_it_once(monkeypatch):
    """Four threads, each with its own connection, check and enqueue at the same moment; the check
    is slowed down so that without the study lock every one of them would find the study empty."""
    import threading
    import time

    from textbench.search import reference
    from textbench.search.study import make_storage

    reason = postgres_unreachable_reason()
    if reason:
        pytest.skip(reason)
    url = create_postgres_database("textbench_reference_race")
    slow_check = reference.needs_reference

    def needs_reference(trials):
        time.sleep(0.5)
        return slow_check(trials)

    monkeypatch.setattr(reference, "needs_reference", needs_reference)
    try:
        optuna.create_study(study_name="race-cnn", storage=make_storage(url), direction="maximize")
        barrier, results = threading.Barrier(4), []

        def worker():
            study = optuna.load_study(study_name="race-cnn", storage=make_storage(url))
            barrier.wait()
            results.append(enqueue_reference(study, "cnn", {}, target=4))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False, False, False, True]
        assert len(optuna.load_study(study_name="race-cnn", storage=url).trials) == 1
    finally:
        drop_postgres_database(url)

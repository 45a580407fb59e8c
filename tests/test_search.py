"""Search building blocks with toy objectives: pruning, exact targets, resume, pins, spaces."""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState
from transformers import TrainerControl, TrainerState

from textbench.core.errors import UsageError
from textbench.core.families import split_params
from textbench.core.models import build_model
from textbench.search.fixed import check_known, parse_fixed
from textbench.search.objective import PruningCallback, trial_seed
from textbench.search.runner import count_trials, run_study
from textbench.search.study import make_pruner, make_sampler, make_storage, open_study
from textbench.spaces import FAMILIES

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _evaluate(callback: PruningCallback, step: int, accuracy: float) -> TrainerControl:
    state, control = TrainerState(), TrainerControl()
    state.global_step = step
    callback.on_evaluate(None, state, control, metrics={"eval_accuracy": accuracy})
    return control


def test_pruning_callback_prunes_a_bad_trial_at_the_first_step_past_warmup():
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=20)
    )
    for _ in range(2):  # two good finished trials set the median
        trial = study.ask()
        for step in (10, 20, 30, 40):
            trial.report(0.9, step)
        study.tell(trial, 0.9)
    bad = PruningCallback(study.ask())
    controls = [_evaluate(bad, step, 0.5) for step in (10, 20, 30, 40)]
    # Not in the warm-up (steps < 20), then at once, at the first step past it.
    assert [c.should_training_stop for c in controls] == [False, True, True, True]
    assert bad.pruned_at == 20
    assert bad.trial.study.trials[-1].intermediate_values == {10: 0.5, 20: 0.5, 30: 0.5, 40: 0.5}

    good = PruningCallback(study.ask())
    assert not any(_evaluate(good, step, 0.95).should_training_stop for step in (10, 20, 30, 40))
    assert good.pruned_at is None


def test_a_trial_pruned_on_the_noise_margin_records_the_reference_and_margin():
    """What the pruner compared against is kept on the pruned trial, so the decision can be checked:
    the median of the finished trials at that step, and 2 standard errors of an accuracy there
    (Agresti-Coull on 100 rows, by hand: p~ = (0.85 * 100 + 2) / 104)."""
    from textbench.search.pruners import NoiseMarginPruner

    study = optuna.create_study(direction="maximize", pruner=NoiseMarginPruner(100, n_warmup_steps=20))
    for value in (0.9, 0.8, 0.85):
        trial = study.ask()
        trial.report(value, 20)
        study.tell(trial, value)
    bad = PruningCallback(study.ask())
    assert _evaluate(bad, 20, 0.5).should_training_stop
    attrs = study.trials[-1].user_attrs
    adjusted = 87 / 104
    assert attrs["pruned_median"] == pytest.approx(0.85)
    assert attrs["pruned_margin"] == pytest.approx(2 * (adjusted * (1 - adjusted) / 104) ** 0.5)
    assert attrs["pruned_margin"] == pytest.approx(0.0725, abs=1e-4)

    plain = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.6))
    other = PruningCallback(plain.ask())  # a pruner without decisions: pruned, nothing to record
    assert _evaluate(other, 20, 0.5).should_training_stop
    assert "pruned_median" not in plain.trials[-1].user_attrs


def _toy(trial):
    x = trial.suggest_float("x", 0, 1)
    for step in range(1, 4):
        trial.report(x * step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x


def test_run_study_reaches_the_exact_target_and_resumes_without_overshoot(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(
        storage=storage,
        study_name="s",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),  # unseeded, a draw now and then prunes nothing
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
    )
    counts = run_study(study, _toy, 7, progress=False)
    assert counts.finished == 7 and counts.pruned > 0  # pruned trials count as finished
    assert count_trials(study).finished == 7

    again = optuna.load_study(study_name="s", storage=storage)
    run_study(again, _toy, 7, progress=False)
    assert len(again.trials) == 7  # nothing re-run

    run_study(again, _toy, 10, progress=False)
    assert count_trials(again).finished == 10 and len(again.trials) == 10


def test_failed_trials_are_recorded_with_reason_and_the_study_goes_on():
    study = optuna.create_study(direction="maximize")
    calls = []

    def objective(trial):
        calls.append(trial.number)
        if trial.number % 2 == 0:
            raise ValueError("loss exploded")
        return 1.0

    counts = run_study(study, objective, 3, progress=False)
    assert counts.complete == 3 and counts.failed == 3
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all("loss exploded" in t.user_attrs["fail_reason"] for t in failed)


def test_a_study_stops_after_repeated_failures():
    study = optuna.create_study(direction="maximize")
    counts = run_study(study, lambda t: 1 / 0, 3, progress=False)
    assert counts.failed == 5 and counts.finished == 0


def test_interrupt_fails_the_running_trial_and_propagates():
    study = optuna.create_study(direction="maximize")
    seen = []

    def objective(trial):
        if trial.number == 1:
            raise KeyboardInterrupt
        return 0.5

    with pytest.raises(KeyboardInterrupt):
        run_study(study, objective, 5, progress=False, callbacks=[lambda s, t: seen.append(t.state)])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[1].user_attrs["fail_reason"] == "interrupted"
    assert seen == [TrialState.COMPLETE, TrialState.FAIL]  # callbacks (MLflow) still hear of it


def test_trial_seeds_are_reproducible_and_distinct():
    assert trial_seed(42, 3) == trial_seed(42, 3)
    assert len({trial_seed(42, n) for n in range(100)}) == 100
    assert trial_seed(42, 0) != trial_seed(43, 0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_suggested_configuration_builds_and_runs(family):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    ids = torch.randint(1, 50, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    for _ in range(25):
        trial = study.ask()
        model_params, training = split_params(FAMILIES[family].suggest(trial))
        assert 1e-4 <= training["learning_rate"] <= 1e-2
        model = build_model(FAMILIES[family], vocab_size=50, num_labels=2, pad_token_id=0, **model_params)
        out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0]))
        assert out.logits.shape == (3, 2) and torch.isfinite(out.loss)
        study.tell(trial, 0.5)


def test_spaces_contain_the_course_notes_configuration():
    from textbench.search.fixed import distributions

    for family, record in FAMILIES.items():
        dists = distributions(family)
        for name, value in record.notes_config.items():
            assert dists[name]._contains(dists[name].to_internal_repr(value)), (family, name, value)


def test_fix_parses_typed_values_and_refuses_bad_ones():
    assert parse_fixed(
        "rnn", ["num_layers=2", "nonlinearity=relu", "learning_rate=3e-3", "num_filters=9"]
    ) == {"num_layers": 2, "nonlinearity": "relu", "learning_rate": 0.003}  # num_filters is the CNN's
    with pytest.raises(UsageError, match="must be an integer"):
        parse_fixed("rnn", ["num_layers=two"])
    with pytest.raises(UsageError, match="one of tanh, relu"):
        parse_fixed("rnn", ["nonlinearity=sigmoid"])
    with pytest.raises(UsageError, match="expected name=value"):
        parse_fixed("cnn", ["num_filters"])
    with pytest.raises(UsageError, match="no such parameter"):
        check_known(["cnn", "rnn"], ["dropout=0.1"])


def test_pinned_values_are_used_by_every_trial():
    fixed = parse_fixed("cnn", ["filter_size=3", "learning_rate=0.001"])
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.PartialFixedSampler(fixed, make_sampler("tpe", 0, 8))
    )
    for _ in range(6):
        trial = study.ask()
        FAMILIES["cnn"].suggest(trial)
        study.tell(trial, 0.5)
    assert {t.params["filter_size"] for t in study.trials} == {3}
    assert {t.params["learning_rate"] for t in study.trials} == {0.001}
    assert len({t.params["num_filters"] for t in study.trials}) > 1


def test_resuming_with_a_different_budget_is_refused(tmp_path):
    storage = make_storage(f"sqlite:///{tmp_path}/o.db")
    attrs = {
        "benchmark": "b",
        "arch": "cnn",
        "settings": {"max_steps": 100, "fingerprint": "f", "target_trials": 3},
    }
    kwargs = {
        "sampler": make_sampler("random", 0, 3),
        "pruner": make_pruner("none", max_steps=100, eval_steps=10),
    }
    open_study(storage, "b", "cnn", attrs=attrs, **kwargs)
    more = {**attrs, "settings": {**attrs["settings"], "target_trials": 6}}
    assert open_study(storage, "b", "cnn", attrs=more, **kwargs).user_attrs["settings"]["target_trials"] == 6
    changed = {**attrs, "settings": {**attrs["settings"], "max_steps": 200}}
    with pytest.raises(UsageError, match="max_steps=100"):
        open_study(storage, "b", "cnn", attrs=changed, **kwargs)


@pytest.mark.parametrize(
    "url",
    [
        "notaurl",
        "sqlite//x.db",
        "postgresql://u:secret@127.0.0.1:notaport/db",
        "mysql+nodriver://x/y",
        "bogus://x",
        "runs/",
    ],
)
def test_malformed_storage_urls_are_refused_without_leaking_the_password(url):
    with pytest.raises(UsageError, match="storage") as info:
        make_storage(url)
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["tpe", "random", "cmaes"])
def test_each_worker_samples_its_own_configurations_and_worker_0_keeps_the_seed(name):
    """Two workers on one study, asking in turn: no configuration is drawn twice (workers seeded
    alike did: trials 1 and 2 of the flagship were identical), and worker 0 draws what a
    one-process run with the same seed draws."""

    def draws(workers: int, n: int = 6) -> list[tuple]:
        study = optuna.create_study(direction="maximize")
        samplers = [make_sampler(name, 7, 20, worker=w) for w in range(workers)]
        out = []
        for i in range(n):
            study.sampler = samplers[i % workers]
            trial = study.ask()
            params = FAMILIES["cnn"].suggest(trial)
            study.tell(trial, 0.5)
            out.append(tuple(sorted(params.items())))
        return out

    two, alone = draws(2), draws(1)
    assert len(set(two)) == len(two), two
    assert two[0] == alone[0]  # worker 0's first draw is the seeded one-process draw


def test_qmc_workers_share_one_sequence():
    """QMC indexes its points by the study, so every worker keeps the one seed (Optuna's rule)."""
    assert make_sampler("qmc", 7, 20, worker=3)._seed == make_sampler("qmc", 7, 20)._seed == 7


def test_median_pruner_waits_for_a_fifth_of_the_budget_and_three_complete_trials():
    pruner = make_pruner("margin", max_steps=2500, eval_steps=500, n_validation=2500)
    assert pruner.n_warmup_steps == 500 and pruner.n_startup_trials == 3  # the default: the same start
    pruner = make_pruner("median", max_steps=2500, eval_steps=500)
    assert pruner._n_warmup_steps == 500 and pruner._n_startup_trials == 3  # prunes from 500
    assert make_pruner("median", max_steps=600, eval_steps=50)._n_warmup_steps == 120  # prunes from 150
    assert isinstance(make_pruner("hyperband", max_steps=600, eval_steps=100), optuna.pruners.HyperbandPruner)


def test_count_trials_counts_each_state_and_run_trial_names_the_worker():
    from textbench.search.runner import WORKER, Counts, run_trial

    study = optuna.create_study(direction="maximize")
    frozen, interrupted = run_trial(study, study.ask(), lambda trial: 0.5)
    assert frozen.state == TrialState.COMPLETE and not interrupted
    assert frozen.user_attrs["worker"] == WORKER

    def prune(trial):
        raise optuna.TrialPruned()

    def fail(trial):
        raise RuntimeError("boom")

    run_trial(study, study.ask(), prune)
    run_trial(study, study.ask(), fail)
    study.ask()  # asked, not told: running
    assert count_trials(study) == Counts(complete=1, pruned=1, failed=1, running=1)
    assert count_trials(study).finished == 2


def test_summary_shows_steps_trained_per_family_and_flags_a_thin_search():
    from textbench.reports.summary import format_summary, summary_rows

    studies = {}
    for family, n_pruned in (("cnn", 1), ("rnn", 9)):
        study = studies[family] = optuna.create_study(direction="maximize")
        for i in range(10):
            trial = study.ask()
            pruned = i >= 10 - n_pruned
            trial.set_user_attr("steps_trained", 200 if pruned else 1000)
            study.tell(trial, state=TrialState.PRUNED) if pruned else study.tell(trial, 0.5 + i / 100)
    rows = {r["arch"]: r for r in summary_rows(studies)}
    assert (rows["cnn"]["steps_trained"], rows["rnn"]["steps_trained"]) == (9 * 1000 + 200, 1000 + 9 * 200)
    text = format_summary(list(rows.values()))
    assert "note: rnn's search was thin: 1 of 10 trials completed (9 pruned, 0 failed)" in text
    assert "cnn's search was thin" not in text


def test_the_progress_bar_shows_the_study_the_status_and_the_counts(capsys):
    study = optuna.create_study(direction="maximize", study_name="imdb-cnn")

    def objective(trial):
        if trial.number == 1:
            raise optuna.TrialPruned()
        return 0.25 * trial.number

    run_study(study, objective, 3, progress=True, status=lambda: "[search cnn 1/2]")
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("imdb-cnn [search cnn 1/2]") and "3/3" in last and "trial" in last
    assert "pruned=1" in last and "failed=0" in last and "best=0.5000" in last
    run_study(study, objective, 3)  # already done: the bar (on by default) starts full
    again = capsys.readouterr().err.replace("\r", "\n")
    assert "imdb-cnn: 100%" in again and "0/3" not in again


def test_a_timeout_stops_the_study_and_says_how_far_it_got(caplog):
    import time

    study = optuna.create_study(direction="maximize", study_name="slow")

    def objective(trial):
        time.sleep(0.4)
        return 0.5

    with caplog.at_level("WARNING", logger="textbench.search.runner"):
        counts = run_study(study, objective, 100, timeout=0.6, progress=False)
    # checked before each new trial: 2 on an idle machine, at least 1 however busy, never all 100
    assert 1 <= counts.finished == len(study.trials) <= 3
    assert f"slow: --timeout reached with {counts.finished}/100 trials finished" in caplog.text


def test_a_failure_reason_names_the_error_type_cut_to_300_characters_and_is_logged(caplog):
    study = optuna.create_study(direction="maximize")

    def objective(trial):
        raise ValueError("x" * 500)

    with caplog.at_level("WARNING", logger="textbench.search.runner"):
        run_study(study, objective, 1, progress=False)
    assert study.trials[0].user_attrs["fail_reason"] == "ValueError: " + "x" * 300
    assert f"trial 0 failed: ValueError: {'x' * 300}" in caplog.messages  # the whole line, nothing around it
    assert "5 trials in a row failed; stopping this study" in caplog.text


def test_only_failures_in_a_row_stop_a_study():
    """4 failures, a success, 4 failures...: never 5 in a row, so the study reaches its target."""
    study = optuna.create_study(direction="maximize")

    def objective(trial):
        if trial.number % 5 != 4:
            raise RuntimeError("flaky")
        return 1.0

    counts = run_study(study, objective, 3, progress=False)
    assert counts.complete == 3 and counts.failed == 12


def test_the_claim_lock_on_a_journal_is_an_exclusive_file_lock_per_study(tmp_path):
    import fcntl

    from textbench.search.runner import claim_lock

    storage = make_storage(str(tmp_path / "optuna.journal"))
    study = optuna.create_study(storage=storage, study_name="locked")
    other = optuna.create_study(storage=storage, study_name="free")

    def can_take(locks_before: set) -> bool:
        (path,) = set((tmp_path / "optuna.journal.d").glob("claim-*.lock")) - locks_before
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True

    with claim_lock(study):
        assert not can_take(set())  # held while inside
        with claim_lock(other):  # another study's lock is another file
            pass
    mine = set((tmp_path / "optuna.journal.d").glob("claim-*.lock"))
    assert len(mine) == 2
    with claim_lock(study):
        pass
    assert all(can_take(mine - {p}) for p in mine)  # released on the way out


def test_a_worker_claims_no_trial_while_others_hold_the_rest_and_waits_for_them(capsys):
    """Two trials complete, a third RUNNING in another worker, target 3: this worker must not ask a
    fourth (that would overshoot); it watches until the other one finishes, then stops."""
    import threading

    study = optuna.create_study(direction="maximize")
    for _ in range(2):
        study.tell(study.ask(), 0.5)
    elsewhere = study.ask()  # held by "another worker"
    threading.Timer(1.5, lambda: study.tell(elsewhere, 0.7)).start()
    called = []
    counts = run_study(study, lambda trial: called.append(trial.number) or 0.9, 3, progress=False)
    assert called == [] and len(study.trials) == 3 and counts.finished == 3
    assert capsys.readouterr().err == ""  # progress=False: no bar

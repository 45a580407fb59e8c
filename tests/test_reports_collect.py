"""The data step: frames read from a synthetic benchmark have the right rows, columns and numbers."""

import pandas as pd
import pytest

from textbench.core.errors import UsageError
from textbench.reports import collect

try:
    from tests.test_reports_fixtures import make_benchmark, make_study, sqlite_storage
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from test_reports_fixtures import make_benchmark, make_study, sqlite_storage

N_TRIALS = 10  # per family: trials 3 and 7 pruned, trial 5 failed -> 7 complete


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    url, store = sqlite_storage(tmp_path_factory.mktemp("collect") / "studies.db")
    make_benchmark(store, "bench", ("cnn", "rnn"), n_trials=N_TRIALS)
    make_study(store, "other", "cnn", n_trials=2)  # another benchmark in the same storage
    return url


@pytest.fixture(scope="module")
def bench(storage):
    return collect.load_benchmark(storage, "bench")


def test_load_selects_the_benchmark_by_user_attr(bench):
    assert bench.families == ["cnn", "rnn"]
    assert [s.study_name for s in bench.studies.values()] == ["bench-cnn", "bench-rnn"]
    assert bench.baseline["name"] == "tfidf-logreg"


def test_unknown_benchmark_is_a_usage_error_listing_known_ones(storage):
    with pytest.raises(UsageError, match="bench, other"):
        collect.load_benchmark(storage, "nope")


def test_trials_frame_has_one_row_per_trial_with_params_and_attrs(bench):
    df = collect.trials_frame(bench)
    assert len(df) == 2 * N_TRIALS
    assert list(df.columns[:4]) == ["family", "number", "state", "value"]
    assert {
        "best_step",
        "wall_seconds",
        "n_params",
        "fail_reason",
        "params_learning_rate",
        "params_filter_size",
        "params_nonlinearity",
    } <= set(df.columns)
    assert "curves" not in df.columns
    counts = df.groupby("state").size().to_dict()
    assert counts == {"COMPLETE": 14, "PRUNED": 4, "FAIL": 2}
    failed = df[df.state == "FAIL"]
    assert failed["value"].isna().all() and failed["fail_reason"].str.contains("out of memory").all()
    assert df["n_params"].dtype == "Int64"  # ints stay ints around the failed trials' gaps
    assert df.loc[df.family == "rnn", "params_filter_size"].isna().all()


def test_params_frame_keeps_pruned_apart_and_knows_log_and_categorical(bench):
    df = collect.params_frame(bench)
    assert set(df["state"]) == {"COMPLETE", "PRUNED"}
    assert df.groupby(["family", "state"])["number"].nunique().to_dict() == {
        ("cnn", "COMPLETE"): 7,
        ("cnn", "PRUNED"): 2,
        ("rnn", "COMPLETE"): 7,
        ("rnn", "PRUNED"): 2,
    }
    lr = df[df.param == "learning_rate"]
    assert lr["log"].all() and not lr["categorical"].any()
    assert df.loc[df.param == "nonlinearity", "categorical"].all()
    assert set(df.loc[df.param == "nonlinearity", "param_value"]) <= {"tanh", "relu"}


def test_history_is_best_so_far_over_completed_trials(bench):
    df = collect.history_frame(bench)
    trials = collect.trials_frame(bench)
    for family, part in df.groupby("family"):
        assert part["number"].is_monotonic_increasing
        assert part["best_so_far"].is_monotonic_increasing
        assert (part["best_so_far"] >= part["value"]).all()
        done = trials[(trials.family == family) & (trials.state == "COMPLETE")]
        assert len(part) == len(done)
        assert part["best_so_far"].iloc[-1] == pytest.approx(done["value"].max())


def test_curves_frame_best_trial_long_form(bench):
    df = collect.curves_frame(bench, "best")
    assert set(df["metric"]) == {"loss", "eval_loss", "eval_accuracy"}
    assert df.groupby("family")["number"].nunique().tolist() == [1, 1]
    best = {f: s.best_trial.number for f, s in bench.studies.items()}
    assert df.groupby("family")["number"].first().to_dict() == best
    acc = df[(df.family == "cnn") & (df.metric == "eval_accuracy")]
    assert acc["value"].max() == pytest.approx(bench.studies["cnn"].best_value)
    assert len(collect.curves_frame(bench, "all")) > len(df)
    with pytest.raises(ValueError):
        collect.curves_frame(bench, "worst")


def test_final_frame_rows_per_rank_and_seed(bench):
    df = collect.final_frame(bench)
    assert len(df) == 2 * 3 * 3
    assert set(df.groupby(["family", "rank"]).size()) == {3}
    assert df["test_accuracy"].between(0, 1).all()
    top = df[(df.family == "cnn") & (df["rank"] == 1)]["trial_number"].iloc[0]
    assert top == bench.studies["cnn"].best_trial.number


def test_best_frame_matches_final_ranks(bench):
    best = collect.best_frame(bench)
    assert best.groupby("family").size().tolist() == [3, 3]
    final = collect.final_frame(bench).drop_duplicates(["family", "rank"])
    merged = best.merge(final, on=["family", "rank"])
    assert (merged["number"] == merged["trial_number"]).all()


def test_importance_frame_scores_each_family(bench):
    df = collect.importance_frame(bench)
    assert set(df["family"]) == {"cnn", "rnn"}
    assert (df["note"] == "").all()
    assert df.groupby("family")["importance"].sum().round(6).tolist() == [1.0, 1.0]
    assert set(df.loc[df.family == "cnn", "param"]) == {
        "embedding_dim",
        "learning_rate",
        "filter_size",
        "num_filters",
    }


def test_importance_with_too_few_trials_is_a_note(tmp_path):
    url, store = sqlite_storage(tmp_path / "s.db")
    make_study(store, "tiny", "cnn", n_trials=1, pruned=(), failed=())
    df = collect.importance_frame(collect.load_benchmark(url, "tiny"))
    assert len(df) == 1 and df["importance"].isna().all()
    assert "at least 2 completed trials" in df["note"].iloc[0]


def test_counts_and_fail_reasons(bench):
    counts = collect.counts_frame(bench).set_index("family")
    # steps: 7 complete x 10 evaluations x 100 steps + 2 pruned after 2 evaluations + the failed one's 0.
    assert counts.loc["cnn"].to_dict() == {
        "complete": 7,
        "pruned": 2,
        "failed": 1,
        "running": 0,
        "total": 10,
        "steps_trained": 7400,
        "thin": False,
        "family_failed": False,
    }
    assert collect.thin_notes(counts.reset_index()) == []
    reasons = collect.fail_reasons_frame(bench)
    assert reasons["count"].tolist() == [1, 1]


@pytest.mark.parametrize(("pruned", "thin"), [(tuple(range(9)), True), (tuple(range(8)), False)])
def test_a_family_with_fewer_completed_trials_than_a_fifth_is_thin(tmp_path, pruned, thin):
    url, store = sqlite_storage(tmp_path / "s.db")
    make_study(store, "t", "cnn", n_trials=10, pruned=pruned, failed=())
    make_study(store, "t", "rnn", n_trials=10, pruned=(), failed=())
    counts = collect.counts_frame(collect.load_benchmark(url, "t"))
    assert counts["thin"].tolist() == [thin, False]  # 1 of 10 is below a fifth; 2 of 10 is not
    notes = collect.thin_notes(counts)
    assert len(notes) == int(thin)
    if thin:
        assert notes[0].startswith(
            "cnn: the search was thin: 1 of 10 finished trials completed (9 pruned, 0 failed)"
        )
        assert "pruner" in notes[0]


def test_a_family_that_completed_nothing_is_failed_not_thin(tmp_path):
    url, store = sqlite_storage(tmp_path / "s.db")
    make_study(store, "t", "cnn", n_trials=5, pruned=(), failed=(0, 1, 2, 3, 4), final=False)
    make_study(store, "t", "rnn", n_trials=5, pruned=(), failed=(), final=False)
    bench = collect.load_benchmark(url, "t")
    counts = collect.counts_frame(bench)
    assert counts["family_failed"].tolist() == [True, False]
    assert counts["thin"].tolist() == [False, False]
    assert collect.thin_notes(counts) == []
    (note,) = collect.failed_notes(bench, counts)
    assert note.startswith("cnn: FAILED: no trial completed (5 failed; most common reason, 5 of 5: ")
    assert "out of memory" in note


def test_settings_identical_means_no_budget_problem(bench):
    settings = collect.settings_frame(bench)
    assert settings["same"].all()
    assert settings.loc["max_steps", "cnn"] == 1000
    assert collect.budget_check(bench) == []


def test_budget_check_flags_different_settings_and_trial_counts(tmp_path):
    url, store = sqlite_storage(tmp_path / "s.db")
    make_study(store, "unfair", "cnn", n_trials=6, max_steps=1000, fingerprint="aaa")
    make_study(store, "unfair", "rnn", n_trials=4, max_steps=500, fingerprint="bbb", n_seeds=2)
    problems = " | ".join(collect.budget_check(collect.load_benchmark(url, "unfair")))
    assert "'max_steps' differs" in problems and "'fingerprint' differs" in problems
    assert "different numbers of trials: cnn=6, rnn=4" in problems
    assert "different numbers of seeds" in problems


def test_budget_check_flags_unfinished_target(tmp_path):
    url, store = sqlite_storage(tmp_path / "s.db")
    make_study(store, "short", "cnn", n_trials=4, target_trials=10)
    assert collect.budget_check(collect.load_benchmark(url, "short")) == [
        "cnn finished 4 of its 10 target trials"
    ]


def test_provenance_lists_what_reproduces_the_run(bench):
    items = dict(collect.provenance(bench))
    assert items["final-stage seeds"] == "0, 1, 2"
    assert items["study names"] == "bench-cnn, bench-rnn"
    assert items["data fingerprint"] == "f00dfeed"
    assert "cnn: python benchmark.py --arch cnn" in items["command"]  # differs per family here
    versions = collect.versions_frame(bench)
    assert versions["same"].all() and "optuna" in versions.index


def test_provenance_redacts_passwords(tmp_path):
    url, store = sqlite_storage(tmp_path / "s.db")
    study = make_study(store, "pw", "cnn", n_trials=2)
    study.set_user_attr("tracking_uri", "postgresql://me:hunter2@db:5432/mlflow")
    items = dict(collect.provenance(collect.load_benchmark(url, "pw")))
    assert "hunter2" not in items["MLflow tracking URI"] and "***" in items["MLflow tracking URI"]


def test_frames_of_an_empty_study_are_empty_with_columns(tmp_path):
    url, store = sqlite_storage(tmp_path / "s.db")
    make_study(store, "empty", "cnn", n_trials=0, final=False)
    bench = collect.load_benchmark(url, "empty")
    for frame in (
        collect.trials_frame,
        collect.params_frame,
        collect.history_frame,
        collect.curves_frame,
        collect.final_frame,
        collect.best_frame,
        collect.fail_reasons_frame,
    ):
        df = frame(bench)
        assert isinstance(df, pd.DataFrame) and df.empty and len(df.columns) >= 2, frame.__name__
    assert "at least 2 completed" in collect.importance_frame(bench)["note"].iloc[0]


def test_importances_are_the_ones_optuna_dashboard_shows(bench):
    """Same evaluator, target and numbers as optuna-dashboard's importance panel (its own code)."""
    from optuna_dashboard._importance import get_param_importance_from_trials_cache
    from optuna_dashboard._inmemory_cache import InMemoryCache

    report = collect.importance_frame(bench)
    for family, study in bench.studies.items():
        shown = get_param_importance_from_trials_cache(
            InMemoryCache(), study._storage, study._study_id, 0, study.get_trials(deepcopy=False)
        )
        mine = report[report["family"] == family]
        assert dict(zip(mine["param"], mine["importance"], strict=True)) == pytest.approx(
            {p["name"]: p["importance"] for p in shown}, abs=1e-12
        )


def test_curves_are_read_from_the_trial_artifacts(tmp_path):
    """A trial's curves.csv in the study's artifact store (where the harness writes them) is its curve."""
    import optuna

    url, store = sqlite_storage(tmp_path / "s.db")
    study = optuna.create_study(storage=store, study_name="art-cnn", direction="maximize")
    for key, value in {
        "benchmark": "art",
        "arch": "cnn",
        "artifact_dir": str(tmp_path / "artifacts"),
    }.items():
        study.set_user_attr(key, value)
    (tmp_path / "artifacts").mkdir()
    curve = pd.DataFrame(
        {"step": [10, 20], "loss": [0.9, 0.5], "eval_accuracy": [0.6, 0.8], "epoch": [0.1, 0.2]}
    )
    curve.to_csv(tmp_path / "curves.csv", index=False)
    trial = study.ask()
    trial.report(0.6, 10)
    optuna.artifacts.upload_artifact(
        artifact_store=optuna.artifacts.FileSystemArtifactStore(tmp_path / "artifacts"),
        file_path=str(tmp_path / "curves.csv"),
        study_or_trial=trial,
    )
    study.tell(trial, 0.8)
    df = collect.curves_frame(collect.load_benchmark(url, "art"), "best")
    assert sorted(map(tuple, df[["step", "metric", "value"]].to_numpy().tolist())) == [
        (10, "eval_accuracy", 0.6),
        (10, "loss", 0.9),
        (20, "eval_accuracy", 0.8),
        (20, "loss", 0.5),
    ]

"""search.objective on the tiny data, in process: real trials trained by the real Trainer.

- a trial is reproducible from (study seed, trial number), whatever ran before it;
- the saved ``ARCH-best`` model is the best trial's, at its best checkpoint;
- a trial that falls below the median is really pruned (stopped early, told PRUNED, not saved).
"""

from __future__ import annotations

import os
import random

import numpy as np
import optuna
import pytest
import torch
from helpers import sabotage_after
from optuna.trial import TrialState
from transformers import AutoModelForSequenceClassification, TrainerCallback

from textbench.core.data import ArrayRows, PaddingCollator
from textbench.core.settings import TrainSettings
from textbench.search.objective import Objective
from textbench.search.runner import run_study
from textbench.search.study import make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)

SETTINGS = TrainSettings(max_steps=30, eval_steps=10, batch_size=16, patience=0)
CNN = {"embedding_dim": 16, "filter_size": 3, "num_filters": 8}


def _study(pruner=None) -> optuna.Study:
    return optuna.create_study(
        direction="maximize",
        pruner=pruner or optuna.pruners.NopPruner(),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )


def _scramble_global_rngs(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    torch.rand(seed % 7 + 1)


def _one_trial(tiny_data, tmp_path, study_seed: int, rng_noise: int):
    study = _study()
    study.enqueue_trial({**CNN, "learning_rate": 3e-3})
    _scramble_global_rngs(rng_noise)  # what ran before must not matter
    run_study(
        study,
        Objective("cnn", tiny_data, SETTINGS, study_seed, tmp_path / f"w{rng_noise}"),
        1,
        progress=False,
    )
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("fail_reason")
    return trial


def test_a_trial_is_reproducible_from_the_study_seed_and_its_number(tiny_data, tmp_path):
    first = _one_trial(tiny_data, tmp_path, study_seed=7, rng_noise=1)
    again = _one_trial(tiny_data, tmp_path, study_seed=7, rng_noise=2)
    other = _one_trial(tiny_data, tmp_path, study_seed=8, rng_noise=1)
    assert first.user_attrs["seed"] == again.user_attrs["seed"] != other.user_attrs["seed"]
    losses = [[row.get("loss") for row in t.user_attrs["curves"]] for t in (first, again, other)]
    assert losses[0] == losses[1]  # bit for bit: same initial weights, same batches
    assert first.intermediate_values == again.intermediate_values
    assert losses[0] != losses[2]  # and the seed does matter


class Seen(TrainerCallback):
    """Records what the Trainer of one trial was given."""

    def __init__(self, record: dict):
        self.record = record

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.record.update(
            seed=args.seed,
            output_dir=args.output_dir,
            config=model.config.to_dict(),
            learning_rate=args.learning_rate,
        )


class SabotageTrials:
    """An Objective hook that sabotages the trials whose numbers are given, and records what each
    trial started with (its sampled values) and what its Trainer got."""

    def __init__(self, numbers: set[int]):
        self.numbers = numbers
        self.started: dict[int, dict] = {}
        self.trainer: dict[int, dict] = {}

    def trial_started(self, trial, params):
        self.started[trial.number] = dict(params)

    def trial_callbacks(self, trial):
        self.trainer[trial.number] = {}
        return [Seen(self.trainer[trial.number])] + (
            [sabotage_after(0)] if trial.number in self.numbers else []
        )


@pytest.fixture(scope="module")
def pruned_study(tiny_data, tmp_path_factory):
    """Four real trials under the CLI's median pruner: 0 and 1 learn, 2 is sabotaged and completes
    (fewer than 3 trials had completed before it), 3 is sabotaged and pruned (3 had)."""
    work = tmp_path_factory.mktemp("objective")
    study = _study(make_pruner("median", max_steps=SETTINGS.max_steps, eval_steps=SETTINGS.eval_steps))
    for lr in (1e-2, 3e-3, 1e-2, 1e-2):
        study.enqueue_trial({**CNN, "learning_rate": lr})
    hook = SabotageTrials({2, 3})
    objective = Objective(
        "cnn",
        tiny_data,
        SETTINGS,
        42,
        work / "checkpoints",
        hooks=[hook],
        best_model_dir=work / "cnn-best",
        artifact_dir=work / "store" / "artifacts",
    )
    elsewhere = tmp_path_factory.mktemp("cwd")  # the working directory: a trial must write nothing here
    here = os.getcwd()
    os.chdir(elsewhere)
    try:
        run_study(study, objective, 4, progress=False)
    finally:
        os.chdir(here)
    study.set_user_attr("cwd_after", sorted(p.name for p in elsewhere.iterdir()))
    return study, work / "cnn-best", hook


def test_each_trial_trains_its_sampled_model_with_its_own_seed_in_the_work_dir(pruned_study, tiny_data):
    """The sampled values reach the hooks and the model (its parameter count by hand), every trial
    gets its own seed and the Trainer shuffles with it, checkpoints go under the work dir (removed
    afterwards), never to the working directory."""
    study, best_dir, hook = pruned_study
    vocab, (e, k, f) = (
        len(tiny_data.tokenizer),
        (CNN["embedding_dim"], CNN["filter_size"], CNN["num_filters"]),
    )
    by_hand = vocab * e + (e * k * f + f) + (f * 2 + 2)  # embedding, convolution, output layer (2 labels)
    seeds = [t.user_attrs["seed"] for t in study.trials]
    assert len(set(seeds)) == 4
    for trial in study.trials:
        assert hook.started[trial.number] == trial.params
        assert trial.user_attrs["n_params"] == by_hand
        seen = hook.trainer[trial.number]
        assert seen["seed"] == trial.user_attrs["seed"]
        assert (
            seen["learning_rate"] == trial.params["learning_rate"] != SETTINGS.learning_rate
        )  # the sampled one
        assert (
            seen["output_dir"].endswith(f"cnn-trial-{trial.number}") and "checkpoints" in seen["output_dir"]
        )
        assert {key: seen["config"][key] for key in CNN} == CNN
        assert seen["config"]["pad_token_id"] == tiny_data.tokenizer.pad_token_id
    assert study.user_attrs["cwd_after"] == []
    assert not any((best_dir.parent / "checkpoints").glob("cnn-trial-*"))


def test_a_trial_below_the_median_is_pruned_early(pruned_study):
    study, _, _ = pruned_study
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED], [t.user_attrs for t in study.trials]
    pruned = study.trials[3]
    warmup = SETTINGS.max_steps // 5  # the median pruner waits for a fifth of the budget
    first_eval = next(
        s for s in range(SETTINGS.eval_steps, SETTINGS.max_steps + 1, SETTINGS.eval_steps) if s >= warmup
    )
    assert pruned.user_attrs["steps_trained"] == first_eval < SETTINGS.max_steps
    assert list(pruned.intermediate_values) == [first_eval]
    assert pruned.intermediate_values[first_eval] == 0.5


def test_the_saved_best_model_is_the_best_trials_best_checkpoint(pruned_study, tiny_data):
    study, best_dir, _ = pruned_study
    assert study.trials[2].value == 0.5 < study.best_value  # the last complete trial is not the best
    assert (best_dir / "TRIAL").read_text() == str(study.best_trial.number)
    model = AutoModelForSequenceClassification.from_pretrained(best_dir).eval()
    assert (
        validation_accuracy(model, tiny_data) == study.best_value
    )  # its weights, restored to its best checkpoint


def validation_accuracy(model, data) -> float:
    """Accuracy on the validation split by hand (argmax of the logits), not through the Trainer."""
    rows = ArrayRows(data.splits["validation"])
    batch = PaddingCollator(data.tokenizer)([rows[i] for i in range(len(rows))])
    labels = batch.pop("labels")
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(dim=1)
    return (predicted == labels).sum().item() / len(labels)


class Raise(TrainerCallback):
    def __init__(self, exc: Exception):
        self.exc = exc

    def on_step_end(self, args, state, control, **kwargs):
        raise self.exc


class RaiseIn:
    def __init__(self, exc: Exception):
        self.exc = exc

    def trial_started(self, trial, params):
        pass

    def trial_callbacks(self, trial):
        return [Raise(self.exc)]


def test_a_failed_trial_keeps_its_reason(tiny_data, tmp_path):
    """A non-finite loss is told in its own words; any other error with its type; the work dir is cleaned."""
    from textbench.core.training import NonFiniteLossError

    for exc, reason in (
        (
            NonFiniteLossError("loss is nan at step 1: lower the learning rate"),
            "loss is nan at step 1: lower the learning rate",
        ),
        (RuntimeError("boom"), "RuntimeError: boom"),
    ):
        study = _study()
        study.enqueue_trial({**CNN, "learning_rate": 3e-3})
        run_study(
            study,
            Objective("cnn", tiny_data, SETTINGS, 7, tmp_path / "work", hooks=[RaiseIn(exc)]),
            1,
            progress=False,
        )
        trial = study.trials[0]
        assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == reason
        assert "wall_seconds" in trial.user_attrs and not any((tmp_path / "work").glob("*"))


def test_each_trials_curves_are_a_csv_artifact_in_the_study_store(pruned_study):
    """What optuna-dashboard shows in a trial's pane: curves.csv with one row per logged step."""
    import pandas as pd
    from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta

    study, best_dir, _ = pruned_study
    store = FileSystemArtifactStore(best_dir.parent / "store" / "artifacts")
    for trial in study.trials:
        (meta,) = get_all_artifact_meta(trial, storage=study._storage)
        assert meta.filename == "curves.csv"
        path = best_dir.parent / f"curves-{trial.number}.csv"
        download_artifact(artifact_store=store, artifact_id=meta.artifact_id, file_path=str(path))
        curves = pd.read_csv(path)
        assert curves.columns[0] == "step" and "eval_accuracy" in curves.columns
        steps = curves.dropna(subset=["eval_accuracy"])["step"].tolist()
        assert steps == sorted(trial.intermediate_values)
        assert "curves" not in trial.user_attrs  # in the store, not in the (dashboard's) attribute list

"""The calibration's rate is that of a full trial: steady steps, evaluations, and a fixed cost per
trial spread over ``max_steps`` (not over the ten steps timed)."""

import time

import pytest
from transformers import TrainerCallback

from textbench.core.settings import TrainSettings
from textbench.search import calibrate
from textbench.search.calibrate import config_rate, trial_rate
from textbench.spaces import get as get_family


def test_trial_rate_spreads_the_fixed_cost_over_a_full_trial():
    # a 10-step run of 3.0 s at 0.1 s a step with a 0.5 s evaluation: 1.5 s is the trial's fixed cost
    assert trial_rate(3.0, 0.1, 10, 0.5, 100, 1000) == pytest.approx(0.1 + 0.5 / 100 + 1.5 / 1000)
    # a run that is all steps and evaluation has no fixed cost; never a negative one
    assert trial_rate(1.5, 0.1, 10, 0.5, 50, 1000) == pytest.approx(0.1 + 0.01)
    assert trial_rate(1.0, 0.1, 10, 0.5, 50, 1000) == pytest.approx(0.1 + 0.01)


class SlowSteps(TrainerCallback):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_step_begin(self, args, state, control, **kwargs):
        time.sleep(self.seconds)


def test_a_slow_start_is_a_fixed_cost_and_slow_steps_are_steps(tiny_data, monkeypatch):
    """A trial that starts 1 s late (building a big model, say) and whose steps each take 0.05 s
    more: the start adds 1/max_steps to the rate, the steps add 0.05 (against the same run without
    them, so that a loaded machine's own step time cancels out)."""
    real = calibrate.train_config
    train = TrainSettings(max_steps=1000, eval_steps=100, batch_size=16, patience=0)
    notes = dict(get_family("cnn").notes_config)
    plain = config_rate("cnn", notes, tiny_data, train, steps=6, seed=0)

    def slow_train(*args, callbacks=(), **kwargs):
        time.sleep(1.0)  # before the Trainer: the model's construction
        return real(*args, callbacks=[*callbacks, SlowSteps(0.05)], **kwargs)

    monkeypatch.setattr(calibrate, "train_config", slow_train)
    slow = config_rate("cnn", notes, tiny_data, train, steps=6, seed=0)
    # the old rate, (whole run - evaluation) / 6 steps, grew by at least (1 + 6 x 0.05) / 6 = 0.22
    assert 0.035 <= slow - plain < 0.15


def frozen(number: int, steps: int, seconds: float, reference: bool = False):
    import optuna

    from textbench.search.reference import ATTR

    attrs = {"steps_trained": steps, "wall_seconds": seconds} | ({ATTR: True} if reference else {})
    trial = optuna.trial.create_trial(value=0.7, params={}, distributions={}, user_attrs=attrs)
    trial.number = number
    return trial


def test_a_family_not_searched_yet_is_scaled_by_the_reference_trials_only():
    """The cnn's search samples models 3x slower than its calibration's mean, but its course-notes
    configuration runs as calibrated: that is the search's choice of sizes, not the machine, and the
    rnn keeps its calibrated rate. When the reference trial itself runs 1.5x its calibration (load,
    a trial's own costs), the rnn is expected 1.5x slower too."""
    from textbench.search.overall import Overall, measure_trial

    o = Overall(families=["cnn", "rnn"], trials=10, final_runs=0, baseline=False, max_steps=1000)
    o.calibrated.update(cnn=0.01, rnn=0.03)
    o.calibrated_reference.update(cnn=0.008, rnn=0.02)
    measure_trial(o, "cnn", frozen(0, 1000, 8.0, reference=True))  # 0.008 s/step, as calibrated
    for n in range(1, 5):
        measure_trial(o, "cnn", frozen(n, 1000, 30.0))  # 0.03 s/step: larger sampled models
    assert o.rate("cnn") == pytest.approx(128 / 5000)
    assert o.rate("rnn") == pytest.approx(0.03)
    slow = Overall(families=["cnn", "rnn"], trials=10, final_runs=0, baseline=False, max_steps=1000)
    slow.calibrated.update(cnn=0.01, rnn=0.03)
    slow.calibrated_reference.update(cnn=0.008, rnn=0.02)
    measure_trial(slow, "cnn", frozen(0, 1000, 12.0, reference=True))  # 0.012 s/step: 1.5x
    assert slow.rate("rnn") == pytest.approx(0.045)


def test_the_reference_is_compared_with_its_calibration_only_where_it_runs_the_notes_configuration():
    """With --fix pinning one of the notes' values, the reference trial runs another model than the
    one calibrated: its rate says nothing about the machine."""
    from textbench.pipeline import runs_notes_as_calibrated

    assert runs_notes_as_calibrated("cnn", [])
    assert not runs_notes_as_calibrated("cnn", ["num_filters=50"])

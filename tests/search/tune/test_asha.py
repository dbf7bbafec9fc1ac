"""ASHA with a noise margin (search.tune.schedulers.margin_asha.MarginASHA): a rung stops a trial only when it is behind
the cutoff by more than the validation split's standard error; through real Ray Tune too."""

import pickle

import numpy as np
import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.tune.schedulers.margin_asha import MarginASHA
from search.tune.tuner import build_scheduler
from tests.search.tune.test_driver import space_file
from trainable.metrics import standard_error

# A balanced three-class validation split of 600 images, as the substructure cpu: block's: one
# standard error of the macro AUC is about 0.024 near chance.
LABELS = np.repeat([0, 1, 2], 200)
OPTIONS = dict(time_attr="epoch", metric="best_val_auc", mode="max", max_t=9, grace_period=1, reduction_factor=3)


class Trial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def decisions(scheduler, values, key="best_val_auc"):
    """Each trial in turn reports its value of ``key`` at the first rung (epoch 1); the actions taken."""
    out = []
    for i, value in enumerate(values):
        trial = Trial(f"t{i}")
        scheduler.on_trial_add(None, trial)
        out.append(scheduler.on_trial_result(None, trial, {"epoch": 1, key: value}))
    return out


def test_a_rung_stops_a_trial_only_when_it_is_behind_by_more_than_the_noise():
    error = standard_error("val_auc", 0.53, LABELS)
    assert 0.02 < error < 0.03
    # Trials at chance, 0.01 apart: Ray's ASHA stops the second (below the first, alone at the
    # rung) on noise; with the margin it goes on. One 0.1 behind is stopped by both.
    values = [0.53, 0.52, 0.43]
    assert decisions(ASHAScheduler(**OPTIONS), values) == [TrialScheduler.CONTINUE, TrialScheduler.STOP,
                                                           TrialScheduler.STOP]
    margin = MarginASHA(base_metric="val_auc", labels=LABELS, margin=1.0, **OPTIONS)
    assert decisions(margin, values) == [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, TrialScheduler.STOP]
    # Just inside and just outside one standard error of the cutoff (the first trial's 0.53 alone).
    inside, outside = 0.53 - 0.9 * error, 0.53 - 1.1 * error
    def second(value, standard_errors=1.0):
        scheduler = MarginASHA(base_metric="val_auc", labels=LABELS, margin=standard_errors, **OPTIONS)
        return decisions(scheduler, [0.53, value])[1]

    assert (second(inside), second(outside)) == (TrialScheduler.CONTINUE, TrialScheduler.STOP)
    assert second(outside, 2.0) == TrialScheduler.CONTINUE  # two standard errors: it goes on too
    # The last rung is the budget: a trial at max_t stops whatever its value.
    trial = Trial("end")
    margin.on_trial_add(None, trial)
    assert margin.on_trial_result(None, trial, {"epoch": 9, "best_val_auc": 0.99}) == TrialScheduler.STOP


def test_a_metric_without_a_standard_error_decides_as_ray_does_and_the_state_pickles():
    # A loss (mode min) has no standard error: the margin is 0, the decisions Ray's.
    options = {**OPTIONS, "metric": "best_val_loss", "mode": "min"}
    losses = [0.9, 0.95, 0.7, 1.2]
    ray_asha = decisions(ASHAScheduler(**options), losses, "best_val_loss")
    ours = MarginASHA(base_metric="val_loss", labels=LABELS, margin=1.0, **options)
    assert decisions(ours, losses, "best_val_loss") == ray_asha == [TrialScheduler.CONTINUE, TrialScheduler.STOP,
                                                                 TrialScheduler.CONTINUE, TrialScheduler.STOP]
    # Ray saves the scheduler with the experiment (--resume): the rung's record and the margin
    # come back, and decide as before.
    margin = MarginASHA(base_metric="val_auc", labels=LABELS, margin=1.0, **OPTIONS)
    decisions(margin, [0.53, 0.52])
    restored = pickle.loads(pickle.dumps(margin))
    trial = Trial("late")
    restored.on_trial_add(None, trial)
    assert restored.on_trial_result(None, trial, {"epoch": 1, "best_val_auc": 0.51}) == TrialScheduler.CONTINUE
    restored.on_trial_add(None, Trial("low"))
    assert restored.on_trial_result(None, Trial("low"), {"epoch": 1, "best_val_auc": 0.40}) == TrialScheduler.STOP


def test_the_driver_uses_the_margin_where_it_applies_and_says_so(tmp_path):
    auc = space_file(tmp_path, metric="val_auc")
    scheduler = build_scheduler(auc, LABELS)
    assert isinstance(scheduler, MarginASHA)
    assert type(build_scheduler(auc)) is ASHAScheduler  # no validation labels: Ray's
    off = space_file(tmp_path, metric="val_auc",
                     search={"algorithm": "grid", "scheduler": "asha", "grace_period": 1, "rung_margin": 0})
    assert type(build_scheduler(off, LABELS)) is ASHAScheduler
    loss = space_file(tmp_path, metric="val_loss", mode="min")
    assert type(build_scheduler(loss, LABELS)) is ASHAScheduler
    line = scheduler.describe()
    assert line.startswith("rungs: a trial stops only when it is more than 1 standard error(s) of val_auc behind")
    assert f"{standard_error('val_auc', 0.5, LABELS):.3f} at 0.5" in line and "600 validation images" in line


def _scripted(config):
    from ray import tune

    for epoch, value in enumerate(config["curve"], start=1):
        tune.report({"epoch": epoch, "val_auc": value, "best_val_auc": max(config["curve"][:epoch])})


@pytest.mark.parametrize("rung_margin", [1.0, 0.0])
def test_through_ray_tune_a_trial_within_the_noise_goes_on(local_ray, tmp_path, rung_margin):
    """Three trials one at a time, in order: the first sets the rung at 0.53; the second, 0.01
    under it at epoch 1 and the best at the end, is stopped by Ray's ASHA and goes on with the
    margin; the third, 0.1 under, is stopped by both."""
    from ray import tune

    space = space_file(tmp_path, metric="val_auc", trial={"epochs": 3},
                       search={"algorithm": "grid", "scheduler": "asha", "grace_period": 1,
                               "rung_margin": rung_margin})
    curves = [[0.53, 0.60, 0.62], [0.52, 0.70, 0.80], [0.43, 0.45, 0.47]]
    tuner = tune.Tuner(
        _scripted, param_space={"curve": tune.grid_search(curves)},
        tune_config=tune.TuneConfig(scheduler=build_scheduler(space, LABELS), max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name="margin", verbose=0))
    results = tuner.fit()
    assert results.num_errors == 0
    epochs = {tuple(r.config["curve"]): r.metrics["epoch"] for r in results}
    assert epochs[tuple(curves[0])] == 3 and epochs[tuple(curves[2])] == 1
    assert epochs[tuple(curves[1])] == (3 if rung_margin else 1)

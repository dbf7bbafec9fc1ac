"""The final stage's refit and seed check (search.retrain): which runs, on which images, and what
the check reports; the runs as Ray tasks. The whole stage with them runs end to end in
test_final.py (``python -m search.final --set final.refit=true --set final.seeds=1``)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from search.final.retrain import Job, refit_job, run_jobs, seed_check, seed_jobs, with_val_in_train
from search.space import load_space
from tests.trainable.conftest import digits_subset
from trainable.errors import UserError

SPACE = """
name: retrain
data: {format: digits, image_size: 16}
metric: val_accuracy
mode: max
trial: {epochs: 9, batch_size: 32, resources: {cpu: 1, gpu: 0}}
space:
  backbone: simple_cnn
  lr: {loguniform: [1.0e-4, 1.0e-2]}
search: {num_samples: 2}
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return load_space(path, [], has_gpu=False)


def record(trial_id, best, epochs, best_epoch):
    return {"trial_id": trial_id, "best": best, "epochs": epochs, "best_epoch": best_epoch}


def result(**config):
    return SimpleNamespace(config=config)


def test_the_refit_trains_on_train_and_val_and_nothing_of_test():
    dataset = digits_subset((0, 1, 7))
    merged = with_val_in_train(dataset)
    train, val, test = (dataset.splits[k] for k in ("train", "val", "test"))
    assert sorted(merged.splits["train"].tolist()) == sorted(np.concatenate([train, val]).tolist())
    assert np.array_equal(merged.splits["val"], val) and np.array_equal(merged.splits["test"], test)
    assert not set(merged.splits["train"].tolist()) & set(test.tolist())
    assert merged.images is dataset.images  # the rows of the one shared array, not a copy


def test_jobs_take_the_trials_configuration_with_other_seeds_and_the_best_epoch(space):
    chosen = [(record("a", 0.99, 12, 7), result(lr=1e-3, seed=5)), (record("b", 0.97, 4, 4), result(lr=3e-3))]
    jobs = seed_jobs(chosen, space, 2)
    assert [j.name for j in jobs] == ["a seed 6", "a seed 7", "b seed 1", "b seed 2"]
    assert [j.config["seed"] for j in jobs] == [6, 7, 1, 2] and [j.config["epochs"] for j in jobs] == [12, 12, 4, 4]
    assert all(j.config["batch_size"] == 32 and not j.merge_val for j in jobs)
    assert jobs[2].config["lr"] == 3e-3
    refit = refit_job(*chosen[0], space)
    assert refit.merge_val and refit.config["epochs"] == 7 and refit.config["seed"] == 5


def test_the_seed_check_reports_mean_std_and_how_lucky_the_trial_was(space):
    chosen = [(record("a", 0.99, 12, 7), None), (record("b", 0.95, 4, 4), None)]
    histories = [[{"best_val_accuracy": 0.9}, {"best_val_accuracy": 0.93}], [{"best_val_accuracy": 0.97}],
                 [{"best_val_accuracy": 0.95}], [{"best_val_accuracy": 0.95}]]
    check = seed_check(chosen, histories, space, 2)
    assert check[0]["seeds"] == [0.93, 0.97] and check[0]["mean"] == pytest.approx(0.95)
    assert check[0]["std"] == pytest.approx(np.std([0.93, 0.97], ddof=1))
    assert check[0]["above_mean_in_std"] == pytest.approx(0.04 / check[0]["std"])
    assert check[1]["std"] == 0 and check[1]["above_mean_in_std"] is None


def test_final_refit_and_seeds_are_checked(tmp_path):
    for bad, key in (("final: {seeds: -1}", "final.seeds"), ("final: {refit: 'yes'}", "final.refit")):
        path = tmp_path / "bad.yaml"
        path.write_text(SPACE + bad + "\n")
        with pytest.raises(UserError, match=key):
            load_space(path, [], has_gpu=False)


def test_runs_go_to_ray_as_tasks_when_the_search_cluster_is_up(local_ray, space):
    """Two seeds and a refit, as Ray tasks on the trial's resources: every epoch's metrics come
    back; the refit's last weights too, and they are not a seed run's."""
    dataset = digits_subset((0, 1, 7))
    config = {"backbone": "simple_cnn", "batch_size": 32, "epochs": 2, "lr": 3e-3}
    jobs = [Job("s1", {**config, "seed": 1}), Job("s2", {**config, "seed": 2}),
            Job("refit", {**config, "seed": 0}, merge_val=True)]
    out = run_jobs(jobs, space, dataset, sharing="object_store")
    assert [len(history) for history, _ in out] == [2, 2, 2]
    assert out[0][1] is None and out[1][1] is None
    assert all(math.isfinite(h[-1]["best_val_accuracy"]) for h, _ in out)
    assert out[0][0][-1]["train_loss"] != out[1][0][-1]["train_loss"]  # other seeds, other runs
    weights = out[2][1]
    assert weights and all(isinstance(v, torch.Tensor) for v in weights.values())

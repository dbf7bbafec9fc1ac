"""What a trial saves: the latest state for resume, the best epoch's weights alone for the
export, the validation probabilities for W&B, each read without the rest."""

import numpy as np
import pyarrow.fs
import torch

from trainable.best import best_of
from trainable.checkpoint import (BEST_FILE, CHECKPOINT_FILE, VAL_PROBABILITIES_FILE, fetch_best,
                                  load_best, read_probabilities)
from trainable.report import LocalReporter
from trainable.train import train

FAST = {"backbone": "simple_cnn", "epochs": 4, "batch_size": 32, "lr": 0.05, "optimizer": "sgd", "threads": 1}


def test_the_latest_checkpoint_holds_the_best_weights_alone(three_digits, tmp_path):
    reporter = LocalReporter(tmp_path / "run")
    train(FAST, three_digits, reporter, metric="val_loss", mode="min")
    history = reporter.history
    expected = best_of([m["val_loss"] for m in history], [m["epoch"] for m in history], "min")
    # Every result carries the trial's best so far, by the one definition.
    last = history[-1]
    assert (last["best_val_loss"], last["best_epoch"]) == (expected.value, expected.epoch)
    folder = tmp_path / "run" / "checkpoint"
    state = torch.load(folder / CHECKPOINT_FILE, weights_only=True)
    best = load_best(folder)
    assert "optimizer" in state and state["epoch"] == 3  # the latest, to resume from
    assert "optimizer" not in best and set(best) >= {"model", "config", "class_names", "input_size"}
    assert best["epoch"] == expected.epoch and best["value"] == expected.value
    assert best["input_size"] == [16, 16]
    probabilities = np.load(folder / VAL_PROBABILITIES_FILE)
    assert probabilities.shape == (len(three_digits.splits["val"]), 3)


def test_best_weights_survive_a_resume(three_digits, tmp_path):
    """A trial restarted from its latest checkpoint keeps the best epoch it had before."""
    from tests.trainable.test_train import Interrupted, StopAfter

    whole = LocalReporter(tmp_path / "whole")
    train(FAST, three_digits, whole, metric="val_auc")
    broken = StopAfter(tmp_path / "broken", 3)
    try:
        train(FAST, three_digits, broken, metric="val_auc")
    except Interrupted:
        pass
    train(FAST, three_digits, LocalReporter(tmp_path / "broken"), metric="val_auc")
    a, b = (load_best(tmp_path / name / "checkpoint") for name in ("whole", "broken"))
    assert (a["epoch"], a["value"]) == (b["epoch"], b["value"])
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


class Recording(pyarrow.fs.LocalFileSystem):
    """A local filesystem that remembers which files were opened."""

    opened: list[str] = []

    def open_input_file(self, path):
        Recording.opened.append(path)
        return super().open_input_file(path)


class StoredCheckpoint:
    """What ray.tune.Checkpoint offers to read a checkpoint where it is stored."""

    def __init__(self, path):
        self.path, self.filesystem = str(path), Recording()


def test_w_and_b_and_the_export_read_one_file_each(three_digits, tmp_path):
    reporter = LocalReporter(tmp_path / "run")
    train({**FAST, "epochs": 1}, three_digits, reporter)
    stored = StoredCheckpoint(tmp_path / "run" / "checkpoint")
    probabilities = read_probabilities(stored)
    assert probabilities.shape == (len(three_digits.splits["val"]), 3)
    target = tmp_path / "export"
    target.mkdir()
    assert fetch_best(stored, target) == target / BEST_FILE
    assert [p.rsplit("/", 1)[-1] for p in Recording.opened] == [VAL_PROBABILITIES_FILE, BEST_FILE]
    assert read_probabilities(StoredCheckpoint(tmp_path / "nowhere")) is None

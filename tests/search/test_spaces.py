"""Every space file in spaces/ runs end to end through ``python -m search.run`` (Ray Tune, Optuna,
ASHA, timm, the final stage and the report), on a few hundred images in that space's real on-disk
layout: written by the test (the contest and Kaggle layouts) or by the space's own simulator.

The searches are shrunk with ``--set`` (two trials of two epochs at 32 px, no time budget; W&B
offline, so the 100-class set goes through W&B's per-trial plots too), except digits, which runs
exactly as the README's first command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from search import plan
from search.plan import grace_epochs
from tests.search.plan.test_budget import assert_budget_kept
from tests.trainable.data.writers import write_png, write_split_tables
from trainable.data import load_dataset
from trainable.decide import decision_metrics
from trainable.export import load_model

ROOT = Path(__file__).resolve().parents[2]
SPACES = ROOT / "spaces"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SMALL = ["search.time_budget=null", "search.num_samples=2", "trial.epochs=2", "search.grace_period=1",
         "search.max_concurrent=2", "data.image_size=32"]


def write_generated_images(root: Path) -> dict:
    """The 100-class contest: train.csv / val.csv (Image,Class) + train_images/ val_images/ of
    64x64 RGB PNGs, and an unlabelled test split beside them; 3 training and 1 validation image a
    class."""
    write_split_tables(root, {"train": list(range(100)) * 3, "val": list(range(100))}, size=64)
    (root / "test_images").mkdir()
    write_png(root / "test_images" / "0a1b2c.png", np.zeros((64, 64, 3)))
    (root / "test.csv").write_text("Image\n0a1b2c.png\n")
    (root / "sample_submission.csv").write_text("Image,Class\n0a1b2c.png,0\n")
    return {"classes": 100, "layout": "label tables train.csv (train), val.csv (val)", "val": 100}


def write_cifar10(root: Path) -> dict:
    """Kaggle CIFAR-10: trainLabels.csv (id,label) + train/<id>.png, 32x32 RGB, 30 a class; the
    unlabelled test/ folder and sampleSubmission.csv beside them."""
    rng = np.random.default_rng(0)
    rows = ["id,label"]
    for i, label in enumerate(CIFAR_CLASSES * 30, start=1):
        image = rng.random((32, 32, 3)) * 0.5
        image[..., CIFAR_CLASSES.index(label) % 3] += 0.5  # a hint of the class in its colour
        write_png(root / "train" / f"{i}.png", image)
        rows.append(f"{i},{label}")
    (root / "trainLabels.csv").write_text("\n".join(rows) + "\n")
    write_png(root / "test" / "1.png", rng.random((32, 32, 3)))
    (root / "sampleSubmission.csv").write_text("id,label\n1,cat\n")
    return {"classes": 10, "layout": "label table trainLabels.csv", "val": 30}


# Each space without a simulator or bundled data has its layout's writer here.
WRITERS = {"generated_images": write_generated_images, "cifar10": write_cifar10}
SIMULATED = {"lens_finding": {"kind": "lens_finding", "n": 240, "seed": 1},
             "substructure": {"kind": "substructure", "n": 150, "seed": 1}}
EXPECTED = {"lens_finding": {"classes": 2, "layout": "label table classifications.csv"},
            "substructure": {"classes": 3, "layout": "split folders"}}


def run_search(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


def check_results(folder: Path, classes: int) -> dict:
    """What every search hands back: a summary with test metrics, a model that predicts the
    test split as the summary says, and the report's pictures."""
    summary = json.loads((folder / "summary.json").read_text())
    test = summary["test"]
    assert len(test["class_names"]) == classes and np.asarray(test["confusion_matrix"]).shape == (classes, classes)
    model = load_model(folder / "best_model.pt")
    dataset = load_dataset(yaml.safe_load((folder / "space.yaml").read_text())["data"])
    images, labels = dataset.split("test")
    probabilities = model.predict(images).numpy()
    saved = pd.read_csv(folder / "test_predictions.csv")
    assert np.allclose(probabilities, saved[[f"p_{c}" for c in test["class_names"]]].to_numpy(), atol=1e-5)
    if classes <= 10:  # an untrained 100-class model's near-ties may flip between batchings
        metrics = decision_metrics(probabilities, labels.numpy(), model.threshold)
        assert metrics["accuracy"] == pytest.approx(test["accuracy"], abs=1e-12)
    assert {"report.html", "confusion_matrix.png", "roc.png", "learning_curves.png",
            "misclassified.png"} <= {p.name for p in (folder / "report").iterdir()}
    return summary


@pytest.mark.parametrize("name", sorted({*WRITERS, *SIMULATED}))
def test_space_runs_end_to_end_on_its_real_layout(name, tmp_path):
    data = tmp_path / "data" / name
    if name in WRITERS:
        expected = WRITERS[name](data)
        overrides = [f"data.path={data}"]
    else:
        expected = EXPECTED[name]
        overrides = [f"data.path={data}", f"data.simulate={json.dumps(SIMULATED[name])}"]
    proc = run_search(tmp_path, str(SPACES / f"{name}.yaml"), *[a for kv in overrides + SMALL for a in ("--set", kv)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "applying the cpu: block" in proc.stdout
    folder = tmp_path / "results" / name
    summary = check_results(folder, expected["classes"])
    assert summary["num_trials"] == 2
    saved = yaml.safe_load((folder / "space.yaml").read_text())
    dataset = load_dataset(saved["data"])
    assert dataset.source["layout"] == expected["layout"]
    if "val" in expected:  # a shipped validation split is kept whole
        assert len(dataset.splits["val"]) == expected["val"]
    if name == "generated_images":
        assert dataset.normalization["method"] == "standardize" and dataset.image_shape == (32, 32)
        assert all("/val_images/" in dataset.files[i] for i in dataset.splits["val"])
    if name == "cifar10":
        assert tuple(summary["test"]["class_names"]) == tuple(sorted(CIFAR_CLASSES))
        # final.tta: hflip, each image and its mirror, tried beside the plain step
        names = [step["name"] for step in summary["final"]["steps"]]
        assert "best trial + mirror TTA" in names and "best trial + TTA" not in names, names


def test_digits_is_the_readme_first_command_and_fills_its_time_budget(tmp_path):
    """``python -m search.run spaces/digits.yaml`` as the README gives it: a real search sized to
    its time budget (epochs, rungs and trials ``auto``; search.budget) that keeps it, the best
    trial training on from its last epoch on both trials' CPUs until the budget ends
    (search.train_on), a test accuracy of at least 0.95, and the tutorial's pictures."""
    proc = run_search(tmp_path, str(SPACES / "digits.yaml"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = tmp_path / "results" / "digits"
    summary = check_results(folder, 10)
    assert summary["test"]["accuracy"] >= 0.95
    assert (folder / "wandb").is_dir()  # offline W&B runs, as a user gets them

    # The sizing: printed, recorded, and a search, not the default configuration alone.
    sizing, saved = summary["budget"], yaml.safe_load((folder / "space.yaml").read_text())
    assert not sizing["alone"] and sizing["short_of"] is None
    assert sizing["steps"] == 1257 // 32 and sizing["grace_period"] == grace_epochs(1257, 32, sizing["epochs"], 3)
    marks = ", ".join(map(str, plan.rungs(sizing["grace_period"], sizing["epochs"], 3)))
    assert f"rungs: ASHA compares trials at epochs {marks} of {sizing['epochs']}" in proc.stdout
    # ... stopping a trial only beyond one standard error of the validation accuracy (search.asha).
    assert "rungs: a trial stops only when it is more than 1 standard error(s) of val_accuracy behind" in proc.stdout
    assert "time budget 90 s on 2 concurrent trial(s)" in proc.stdout and sizing["cost"]["step_s"] > 0
    assert (saved["trial"]["epochs"], saved["search"]["grace_period"]) == (sizing["epochs"], sizing["grace_period"])
    assert summary["num_trials"] >= 8, "the budget holds a search"
    assert summary["status_counts"].get("stopped", 0) >= 1, summary["status_counts"]  # ASHA stopped some
    # The default configuration (the first start_from) was one of the trials.
    assert any(t["config"]["lr"] == 1.0e-3 and t["config"]["gamma"] == 0.95 for t in summary["trials"])
    history = pd.read_csv(folder / "history.csv")
    assert_budget_kept(summary, history)

    # The best trial trained on, from its last epoch, on both trials' CPUs, until the budget ended.
    assert sizing["train_on_s"] == pytest.approx((sizing["search_s"] + sizing["train_on_s"]) / 3)
    on = summary["train_on"]
    assert on["trial_id"] == summary["best_trial"] and on["widen"] == 2
    assert f"train on: trial {on['trial_id']}, the best" in proc.stdout
    best = next(t for t in summary["trials"] if t["trial_id"] == on["trial_id"])
    assert on["to_epoch"] > on["from_epoch"] and best["epochs"] == on["to_epoch"]
    mine = history[history["trial"] == on["trial_id"]]
    assert list(mine["epoch"]) == list(range(1, on["to_epoch"] + 1))  # no epoch twice, none missing
    assert (folder / "train_on/checkpoint/best.pt").is_file()
    epoch_s = mine["timestamp"].diff().iloc[-(on["to_epoch"] - on["from_epoch"]):].max()
    ended = mine["timestamp"].max() - summary["trials_began"]
    assert ended <= sizing["trials_budget_s"] + sizing["train_on_s"] + epoch_s + 2.0, (ended, epoch_s)
    # The final model's first member is the best epoch of all the best trial's epochs.
    assert summary["best_val"]["val_accuracy"] == pytest.approx(max(on["best_before"], on["best_after"]))


def test_every_space_runs_in_this_module():
    """A new space file needs a writer of its layout here (or a simulator, or bundled data)."""
    ran = {*WRITERS, *SIMULATED, "digits"}
    assert {p.stem for p in SPACES.glob("*.yaml")} == ran


def test_generated_images_layout_is_what_the_space_reads(tmp_path):
    """The space's data block reads the contest layout as written (a cheap check before the run)."""
    block = yaml.safe_load((SPACES / "generated_images.yaml").read_text())["data"]
    write_generated_images(tmp_path / "g")
    dataset = load_dataset({**block, "path": str(tmp_path / "g")})
    assert dataset.num_classes == 100 and dataset.images.shape[1:] == (3, 64, 64)
    assert len(dataset.splits["val"]) == 100 and len(dataset.splits["test"]) == 100
    assert "  train    200  (2-2 a class; fewest: 0: 2, 1: 2, 2: 2)" in dataset.summary()  # not 100 counts
    assert torch.isclose(dataset.images[dataset.splits["train"]].mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4).all()

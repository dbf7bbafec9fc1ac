"""End to end: ``python -m search.run`` through the real Ray Tune, Optuna, ASHA, timm and W&B
(offline), on a small simulated lens-finding set the driver makes itself."""

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
import yaml

from search.space import load_space
from tests.search.wandb_files import read_run
from trainable.data import load_dataset
from trainable.decide import choose_threshold, decision_metrics
from trainable.metrics import standard_error
from trainable.export import load_model

ROOT = Path(__file__).resolve().parents[2]
NUM_SAMPLES = 5
EPOCHS = 4

SPACE = {
    "name": "tiny_lens",
    "data": {"format": "fits_csv", "path": "data/tiny_lens", "image_size": 32,
             "simulate": {"kind": "lens_finding", "n": 240, "seed": 3},
             "val_fraction": 0.2, "test_fraction": 0.2},
    "metric": "val_auc", "mode": "max",
    "trial": {"epochs": EPOCHS, "batch_size": 32, "resources": {"cpu": 1, "gpu": 0}},
    "space": {
        "backbone": {"choice": ["simple_cnn", "test_resnet"]},
        "lr": {"loguniform": [1.0e-4, 1.0e-2]},
        "scheduler": {"choice": ["exponential", "cosine_warm_restarts"]},
        "gamma": {"uniform": [0.8, 0.99], "when": {"scheduler": "exponential"}},
        "t0": {"int": [2, 4], "when": {"scheduler": "cosine_warm_restarts"}},
        "loss": {"choice": ["bce", "focal"]},
        "augment_flip": True,
    },
    "search": {"algorithm": "optuna", "num_samples": NUM_SAMPLES, "max_concurrent": 2,
               "scheduler": "asha", "grace_period": 1, "reduction_factor": 2,
               # Ray's ASHA: on 48 validation images (one standard error of AUC about 0.09) the
               # margin (search.asha) would let every trial go on, and the stopped trials' paths
               # (pruned in Optuna, marked in the curves) are what these tests check.
               "rung_margin": 0,
               "start_from": [{"backbone": "simple_cnn", "lr": 1.0e-3, "scheduler": "exponential",
                               "gamma": 0.9, "loss": "bce"}]},
    "final": {"ensemble": 3, "tta": True, "threshold": "f1"},
    "wandb": {"project": "lens-search-tests", "mode": "auto"},
    # Applied: the test machine has no GPU (and must not use one if it has).
    "cpu": {"trial": {"batch_size": 32}},
}


def run_search(workdir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT), "RAY_DEDUP_LOGS": "0"}
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)


def search_once(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("search")
    (workdir / "space.yaml").write_text(yaml.safe_dump(SPACE))
    proc = run_search(workdir, "space.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir, proc


def test_summary_lists_every_trial_and_the_best(finished):
    workdir, proc = finished
    summary = json.loads((workdir / "results/tiny_lens/summary.json").read_text())
    assert summary["name"] == "tiny_lens" and summary["metric"] == "val_auc" and summary["mode"] == "max"
    assert summary["num_trials"] == NUM_SAMPLES == len(summary["trials"])
    assert len({t["trial_id"] for t in summary["trials"]}) == NUM_SAMPLES
    for trial in summary["trials"]:
        assert trial["status"] in ("completed", "stopped"), trial
        assert 1 <= trial["epochs"] <= EPOCHS
        assert (trial["epochs"] == EPOCHS) == (trial["status"] == "completed")
        assert isinstance(trial["node_id"], str) and len(trial["node_id"]) > 20
        assert trial["config"]["epochs"] == EPOCHS and trial["config"]["augment_flip"] is True
        # Conditional parameters only where their condition holds.
        assert ("gamma" in trial["config"]) == (trial["config"]["scheduler"] == "exponential")
        assert ("t0" in trial["config"]) == (trial["config"]["scheduler"] == "cosine_warm_restarts")
    # The default configuration ran first, as given.
    first = summary["trials"][0]["config"]
    assert (first["backbone"], first["lr"], first["gamma"]) == ("simple_cnn", 1.0e-3, 0.9)
    # ASHA stopped some trials early (reduction factor 2, rungs at epochs 1 and 2), as Ray's ASHA
    # decides (search.rung_margin: 0, so no margin line).
    assert summary["status_counts"]["stopped"] >= 1
    assert "rungs: a trial stops only" not in proc.stdout
    # The default stays the best unless another trial beats it by more than a standard error.
    default, top = summary["trials"][0], max(t["best"] for t in summary["trials"])
    kept = summary["kept_default"]
    assert default["default"] and kept["trial_id"] == default["trial_id"] and 0.02 < kept["margin"] < 0.2
    assert not any(t.get("default") for t in summary["trials"][1:])
    best = next(t for t in summary["trials"] if t["trial_id"] == summary["best_trial"])
    if top - default["best"] <= kept["margin"]:
        assert best is default and kept["first"] and kept["decided"] == (top > default["best"])
    else:
        assert best["best"] == top and not kept["first"]  # of equals, the ranking's tie-break
    assert summary["best_val"]["val_auc"] == pytest.approx(best["best"])
    assert summary["best_config"] == best["config"]
    for key in ("accuracy", "f1_macro", "auc"):
        assert 0.0 <= summary["test"][key] <= 1.0
    matrix = summary["test"]["confusion_matrix"]
    assert sum(map(sum, matrix)) == summary["test"]["n"] and len(matrix) == 2


def test_leaderboard_is_printed_best_first(finished):
    workdir, proc = finished
    summary = json.loads((workdir / "results/tiny_lens/summary.json").read_text())
    lines = proc.stdout[proc.stdout.index("rank"):].splitlines()
    header, rows = lines[0].split(), [line.split() for line in lines[1:NUM_SAMPLES + 1]]
    assert header[:5] == ["rank", "trial", "val_auc", "epochs", "status"] and "lr" in header
    assert [r[0] for r in rows] == [str(i) for i in range(1, NUM_SAMPLES + 1)]
    assert rows[0][1] == summary["best_trial"]
    values = [float(r[2]) for r in rows]
    assert values[1:] == sorted(values[1:], reverse=True)  # the first may be the default (its rule)
    kept = summary["kept_default"]
    said = "ranks first: the best other trial's" in proc.stdout
    assert said == kept["decided"] == (kept["first"] and kept["best_other"] > kept["best"])
    if not kept["first"]:
        assert values[0] == max(values)
    assert "no GPU in the Ray cluster: applying the cpu: block" in proc.stdout
    assert f"best trial {summary['best_trial']}" in proc.stdout


def test_exported_model_reproduces_the_test_metrics(finished):
    workdir, _ = finished
    folder = workdir / "results/tiny_lens"
    summary = json.loads((folder / "summary.json").read_text())
    raw = torch.load(folder / "best_model.pt", weights_only=True)
    assert raw["config"] == {**raw["config"], **summary["best_config"]}
    assert raw["class_names"] == summary["test"]["class_names"] and raw["image_size"] == [32, 32]
    # The data set as the search saw it (its resolved space file), loaded independently.
    space = load_space(folder / "space.yaml")
    dataset = load_dataset(space.data.__class__.from_mapping(
        {**space.raw["data"], "path": str(workdir / "data/tiny_lens")}))
    images, labels = dataset.split("test")
    model = load_model(folder / "best_model.pt")
    probabilities = model.predict(images).numpy()
    metrics = decision_metrics(probabilities, labels.numpy(), model.threshold)
    for key in ("accuracy", "f1_macro", "precision", "recall", "auc", "tpr0", "tpr10"):
        assert metrics[key] == pytest.approx(summary["test"][key], abs=1e-12), key
    assert metrics["confusion_matrix"] == summary["test"]["confusion_matrix"]
    assert raw["test"]["accuracy"] == summary["test"]["accuracy"]
    # The single best trial's best epoch's weights come first, with the size they were trained at.
    best = next(t for t in summary["trials"] if t["trial_id"] == summary["best_trial"])
    assert raw["epoch"] == summary["best_val"]["epoch"] == best["best_epoch"]
    assert raw["input_size"] == [32, 32]


def test_the_final_model_is_chosen_among_the_top_three_and_tta_and_decides_at_the_f1_threshold(finished):
    workdir, proc = finished
    folder = workdir / "results/tiny_lens"
    summary = json.loads((folder / "summary.json").read_text())
    final = summary["final"]
    board = pd.read_csv(folder / "leaderboard.csv", dtype={"trial": str})[:3]  # the search's ranking
    # Of the top three, those within one standard error (Hanley-McNeil, val split) of the best.
    space = load_space(folder / "space.yaml")
    dataset = load_dataset(space.data.__class__.from_mapping(
        {**space.raw["data"], "path": str(workdir / "data/tiny_lens")}))
    images, labels = dataset.split("val")
    best_value = board["val_auc"].iloc[0]
    assert final["tolerance"] == pytest.approx(standard_error("val_auc", best_value, labels.numpy()))
    top = board.loc[best_value - board["val_auc"] <= final["tolerance"], "trial"].tolist()
    assert final["candidates"] == top and top[0] == summary["best_trial"]
    assert [t["trial_id"] for t in final["left_out"]] == [t for t in board["trial"] if t not in top]
    k = len(top)
    steps = final["steps"]
    assert [s["name"] for s in steps] == ["best trial, argmax", "best trial", "best trial + TTA"] + (
        [f"ensemble of {k}", f"ensemble of {k} + TTA"] if k > 1 else [])
    # The chosen step: the last calibrated one within a standard error of the best validation AUC.
    top_auc = max(s["val"]["auc"] for s in steps[1:])
    assert final["choice_tolerance"] == pytest.approx(standard_error("val_auc", top_auc, labels.numpy()))
    chosen = [s for s in steps[1:] if s["val"]["auc"] >= top_auc - final["choice_tolerance"]][-1]
    assert final["final"] == chosen["name"] and final["tta"] == chosen["tta"]
    assert final["members"] == top[:chosen["members"]]
    # That step is the model file; its test metrics are the summary's.
    assert chosen["test"]["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-12)
    model = load_model(folder / "best_model.pt")
    assert [m.trial_id for m in model.members] == final["members"] and model.tta == chosen["tta"]
    assert model.temperature == final["temperature"] and model.threshold == final["threshold"]
    # The threshold is the F1 rule's, by expected counts (the default), on the model's own
    # validation probabilities.
    val = model.predict(images).numpy()
    assert final["threshold_rule"] == "f1" and final["threshold_counts"] == "expected"
    assert choose_threshold(val, labels.numpy(), "f1", counts="expected") == pytest.approx(model.threshold, abs=1e-5)
    assert f"final model: {chosen['name']} (trial" in proc.stdout and "best trial, argmax" in proc.stdout


def test_each_trial_keeps_its_two_latest_checkpoints_the_last_with_the_best_weights_alone(finished):
    from trainable.checkpoint import BEST_FILE, CHECKPOINT_FILE, load_best

    workdir, _ = finished
    folder = workdir / "results/tiny_lens"
    summary = json.loads((folder / "summary.json").read_text())
    for trial in summary["trials"]:
        kept = sorted((folder / f"trial_{trial['trial_id']}").glob("checkpoint_*"))
        assert len(kept) == min(2, trial["epochs"]), kept  # one a reported epoch, the older deleted
        checkpoint = kept[-1]
        assert {p.name for p in checkpoint.iterdir()} >= {CHECKPOINT_FILE, BEST_FILE}
        best = load_best(checkpoint)
        assert "optimizer" not in best and (best["epoch"], best["value"]) == (trial["best_epoch"], trial["best"])


def test_best_config_file_retrains_that_configuration(finished):
    workdir, _ = finished
    folder = workdir / "results/tiny_lens"
    summary = json.loads((folder / "summary.json").read_text())
    best = load_space(folder / "best_config.yaml", has_gpu=False)
    assert best.space == {} and best.search.num_samples == 1 and best.search.scheduler == "none"
    assert best.trial == summary["best_config"]
    assert Path(best.data.path).is_absolute() and best.data.image_size == (32, 32)


def wandb_runs(folder: Path) -> dict[str, dict]:
    """The search's W&B offline runs by name, each with the folder of its files."""
    runs = {}
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run = read_run(path)
        runs[run["name"]] = {**run, "files": path.parent / "files"}
    return runs


def test_wandb_offline_runs_hold_config_and_metrics(finished):
    workdir, proc = finished
    folder = workdir / "results/tiny_lens"
    summary = json.loads((folder / "summary.json").read_text())
    runs = wandb_runs(folder)
    assert set(runs) == {t["trial_id"] for t in summary["trials"]} | {"tiny_lens (summary)"}
    for trial in summary["trials"]:
        run = runs[trial["trial_id"]]
        assert run["group"] == "tiny_lens"
        assert run["config"]["lr"] == trial["config"]["lr"] and run["config"]["epochs"] == EPOCHS
        epochs = [row["epoch"] for row in run["history"] if "val_auc" in row]
        assert epochs == list(range(1, trial["epochs"] + 1))
        assert max(row["val_auc"] for row in run["history"] if "val_auc" in row) == pytest.approx(trial["best"])
    assert "wandb sync" in proc.stdout


def table(run: dict, row: dict, key: str) -> dict:
    """A W&B table logged under ``key`` in a history row, read back from the run's files."""
    assert row[f"{key}/_type"] == "table-file"
    return json.loads((run["files"] / row[f"{key}/path"]).read_text())


def test_each_trial_run_ends_with_roc_confusion_matrix_and_misclassified_images(finished):
    """At a trial's end its run gets W&B's ROC curve and confusion matrix of the last epoch on
    the validation split, the misclassified validation images, and its best epoch as summary."""
    workdir, _ = finished
    folder = workdir / "results/tiny_lens"
    summary = json.loads((folder / "summary.json").read_text())
    space = load_space(folder / "space.yaml")
    dataset = load_dataset(space.data.__class__.from_mapping(
        {**space.raw["data"], "path": str(workdir / "data/tiny_lens")}))
    n_val = len(dataset.splits["val"])
    runs = wandb_runs(folder)
    for trial in summary["trials"]:
        run = runs[trial["trial_id"]]
        end = [row for row in run["history"] if "val_roc_table/_type" in row]
        assert len(end) == 1, "one set of end-of-trial plots"
        row = end[0]
        assert row["epoch"] == trial["epochs"]  # of the trial's last epoch
        roc = table(run, row, "val_roc_table")
        assert roc["columns"][:1] == ["class"] and roc["data"]
        matrix = table(run, row, "val_confusion_matrix_table")
        assert sum(r[-1] for r in matrix["data"]) == n_val
        wrong = sum(r[-1] for r in matrix["data"] if r[0] != r[1])
        misclassified = table(run, row, "val_misclassified")
        assert misclassified["columns"] == ["image", "true", "predicted", "confidence", "index"]
        assert len(misclassified["data"]) == min(wrong, 32)
        assert all(r[1] != r[2] for r in misclassified["data"])
        assert run["summary"]["best_val_auc"] == pytest.approx(trial["best"])
        assert 1 <= run["summary"]["best_epoch"] <= trial["epochs"]


def test_the_summary_run_holds_leaderboard_importances_and_test_results(finished):
    workdir, _ = finished
    folder = workdir / "results/tiny_lens"
    summary = json.loads((folder / "summary.json").read_text())
    run = wandb_runs(folder)["tiny_lens (summary)"]
    assert run["group"] == "tiny_lens" and run["config"]["best_trial"] == summary["best_trial"]
    row = next(r for r in run["history"] if "leaderboard/_type" in r)
    assert len(table(run, row, "leaderboard")["data"]) == summary["num_trials"]
    assert table(run, row, "test_roc_table")["data"]
    matrix = table(run, row, "test_confusion_matrix_table")
    assert sum(r[-1] for r in matrix["data"]) == summary["test"]["n"]
    assert run["summary"]["test_accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert run["summary"]["test_threshold"] == pytest.approx(summary["test"]["threshold"])
    point = run["summary"]["test_operating_point"]
    (tn, fp), (fn, tp) = summary["test"]["confusion_matrix"]
    assert (point["fpr"], point["tpr"]) == (pytest.approx(fp / (fp + tn)), pytest.approx(tp / (tp + fn)))
    steps = table(run, row, "final_steps")
    assert [r[0] for r in steps["data"]] == [s["name"] for s in summary["final"]["steps"]]
    assert any(key.startswith("report/") and key.endswith("/_type") for key in row)


def test_optuna_study_records_asha_stops_as_pruned(finished):
    workdir, _ = finished
    folder = workdir / "results/tiny_lens"
    summary = json.loads((folder / "summary.json").read_text())
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "optuna.journal")))
    study = optuna.load_study(study_name="tiny_lens", storage=storage)
    by_lr = {t["config"]["lr"]: t for t in summary["trials"]}
    assert len(study.trials) == NUM_SAMPLES
    for ot_trial in study.trials:
        trial = by_lr[ot_trial.params["lr"]]
        expected = (optuna.trial.TrialState.COMPLETE if trial["status"] == "completed"
                    else optuna.trial.TrialState.PRUNED)
        assert ot_trial.state == expected
        # Every epoch's value at step = the epoch; a full trial told its best epoch's value.
        assert sorted(ot_trial.intermediate_values) == list(range(1, trial["epochs"] + 1))
        if expected == optuna.trial.TrialState.COMPLETE:
            assert ot_trial.value == pytest.approx(trial["best"])


def test_a_second_search_of_the_same_name_is_refused(finished):
    workdir, _ = finished
    before = (workdir / "results/tiny_lens/summary.json").read_bytes()
    proc = run_search(workdir, "space.yaml", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: results/tiny_lens already holds a search named 'tiny_lens': continue it with "
        "--resume, or give this one another --name"]
    assert (workdir / "results/tiny_lens/summary.json").read_bytes() == before

"""How the search ranks its trials and which step of the final stage becomes the model; the
whole stage runs end to end in test_run.py (a fresh search) and test_resume.py (a resumed one)."""

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from search.final.stage import choose
from search.final.describe import side_by_side
from search.results.records import kept_default, loss_at, mark_default, rank
from trainable.metrics import auc_standard_error, standard_error

ROOT = Path(__file__).resolve().parents[3]


def record(trial_id, best, loss, epochs):
    return {"trial_id": trial_id, "best": best, "best_val_loss": loss, "epochs": epochs}


def test_ties_go_to_the_lower_validation_loss_then_fewer_epochs():
    records = [record("a", 0.996, 0.030, 4), record("b", 0.996, 0.012, 27), record("c", 0.999, 0.5, 9),
               record("d", 0.996, 0.012, 16), record("e", None, None, 1), record("f", 0.996, None, 2)]
    assert [r["trial_id"] for r in rank(records, "max")] == ["c", "d", "b", "a", "f", "e"]
    assert [r["trial_id"] for r in rank(records, "min")][:2] == ["d", "b"]


def test_the_default_stays_first_unless_beaten_by_more_than_its_standard_error():
    records = [record("a", 0.879, 0.4, 15), record("default", 0.874, 0.3, 60), record("c", 0.86, 0.4, 5)]
    records[1].update(default=True, margin=0.033)
    ranked = rank(records, "max")
    assert [r["trial_id"] for r in ranked] == ["default", "a", "c"]
    assert kept_default(ranked, "max") == {"trial_id": "default", "best": 0.874, "margin": 0.033,
                                           "best_other": 0.879, "first": True, "decided": True}
    records[0]["best"] = 0.874 + 0.034  # beaten by more than one standard error
    ranked = rank(records, "max")
    assert [r["trial_id"] for r in ranked] == ["a", "default", "c"]
    assert not kept_default(ranked, "max")["first"] and not kept_default(ranked, "max")["decided"]
    records[0]["best"] = 0.87  # the default is the best anyway: first, but not by the rule
    assert kept_default(rank(records, "max"), "max")["decided"] is False
    # For a metric that is minimised, the same rule.
    losses = [record("a", 0.20, None, 4), record("default", 0.25, None, 4)]
    losses[1].update(default=True, margin=0.06)
    assert [r["trial_id"] for r in rank(losses, "min")] == ["default", "a"]
    assert kept_default(rank(losses, "min"), "min")["decided"]
    # No trial marked default: the plain order.
    assert [r["trial_id"] for r in rank([record("a", 0.9, None, 1), record("b", 0.89, None, 1)], "max")] == ["a", "b"]
    assert kept_default(rank([record("a", 0.9, None, 1)], "max"), "max") is None


def test_the_default_trial_is_found_by_its_completed_configuration(tmp_path):
    from search.space import complete_point
    from search.space import load_space

    space = load_space(ROOT / "spaces" / "lens_finding.yaml", has_gpu=True)
    point = complete_point(space, dict(space.search.start_from[0]))
    labels = np.array([0] * 28 + [1] * 62)
    near = {**point, "lr": point["lr"] * (1 + 1e-12)}  # as floats come back from Ray's files
    other = {**point, "lr": point["lr"] * 2}
    records = [{"trial_id": t, "config": {**space.trial, **c}, "best": b}
               for t, c, b in (("x", other, 0.9), ("d", near, 0.87), ("d2", point, 0.88), ("n", point, None))]
    marked = mark_default(records, space, labels)
    assert marked["trial_id"] == "d" and marked["margin"] == standard_error("val_auc", 0.87, labels)
    assert [r.get("default", False) for r in records] == [False, True, False, False]
    # No start_from, or a metric without a standard error: nothing is marked.
    bare = dataclasses.replace(space, search=dataclasses.replace(space.search, start_from=()))
    assert mark_default([dict(r, default=False) for r in records], bare, labels) is None
    loss = dataclasses.replace(space, metric="val_loss", mode="min")
    fresh = [{k: v for k, v in r.items() if k not in ("default", "margin")} for r in records]
    assert mark_default(fresh, loss, labels) is None and not any(r.get("default") for r in fresh)


def test_the_loss_at_the_best_epoch_is_read_from_the_trials_epochs():
    frame = pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [0.9, 0.4, 0.6]})
    result = SimpleNamespace(metrics_dataframe=frame)
    assert loss_at(result, 2) == 0.4 and loss_at(result, 7) is None and loss_at(result, None) is None
    assert loss_at(SimpleNamespace(metrics_dataframe=None), 2) is None


def step(name, auc, nll=0.5, members=1, tta=False):
    metrics = {"auc": auc, "nll": nll, "accuracy": 0.9}
    return {"name": name, "val": metrics, "test": metrics, "members": members, "tta": tta,
            "temperature": 1.0, "threshold": 0.5}


def test_the_final_step_is_the_best_on_validation_the_more_averaged_of_equals():
    space = SimpleNamespace(metric="val_auc", mode="max")
    steps = [step("best trial", 0.95), step("best trial + TTA", 0.96, tta=True),
             step("ensemble of 3", 0.96, members=3), step("ensemble of 3 + TTA", 0.955, members=3, tta=True)]
    assert choose(steps, space)["name"] == "ensemble of 3"
    steps[-1]["val"] = {**steps[-1]["val"], "auc": 0.96}
    assert choose(steps, space)["name"] == "ensemble of 3 + TTA"
    # A loss is minimised.
    losses = [step("best trial", 0.9, nll=0.3), step("ensemble of 3", 0.9, nll=0.35, members=3)]
    assert choose(losses, SimpleNamespace(metric="val_loss", mode="min"))["name"] == "best trial"
    # Within a tolerance (one standard error) of the best, the most averaged step.
    steps = [step("best trial", 0.93), step("best trial + TTA", 0.919, tta=True), step("ensemble of 3", 0.90, members=3)]
    assert choose(steps, space, tolerance=0.026)["name"] == "best trial + TTA"
    assert choose(steps, space, tolerance=0.005)["name"] == "best trial"
    assert choose(steps, space, tolerance=0.04)["name"] == "ensemble of 3"


def test_ensemble_members_are_those_within_a_standard_error_of_the_best():
    from search.final.stage import close_to_best

    labels = np.array([0] * 28 + [1] * 62)  # the quick start's validation split
    tolerance = standard_error("val_auc", 0.93, labels)
    assert 0.02 < tolerance < 0.03
    chosen = [({"trial_id": t, "best": v}, None) for t, v in (("a", 0.93), ("b", 0.93 - tolerance / 2), ("c", 0.84))]
    kept, used, left_out = close_to_best(chosen, SimpleNamespace(metric="val_auc", mode="max"), labels)
    assert [r["trial_id"] for r, _ in kept] == ["a", "b"] and used == tolerance
    assert left_out == [{"trial_id": "c", "value": 0.84}]
    # A loss has no such tolerance: every candidate stays.
    losses = [({"trial_id": t, "best": v}, None) for t, v in (("a", 0.2), ("b", 0.9))]
    assert close_to_best(losses, SimpleNamespace(metric="val_loss", mode="min"), labels) == (losses, None, [])


def test_standard_errors_by_hand():
    # Hanley and McNeil (1982): AUC 0.5 on 50 and 50 images, sqrt(0.25 + 49 (1/3 - 1/4) * 2) / 50 = 0.0580.
    assert standard_error("val_auc", 0.5, np.array([0] * 50 + [1] * 50)) == pytest.approx(0.05802, abs=1e-5)
    # The macro AUC of three classes: the mean of the three one-vs-rest errors (equal here).
    three = np.repeat([0, 1, 2], 30)
    assert standard_error("val_auc", 0.8, three) == pytest.approx(auc_standard_error(0.8, 30, 60))
    assert standard_error("val_accuracy", 0.9, np.zeros(100)) == pytest.approx(0.03)
    assert standard_error("val_loss", 0.3, three) is None
    # TPR10: binomial over the positives (20 of 70 here).
    assert standard_error("val_tpr10", 0.6, np.array([0] * 50 + [1] * 20)) == pytest.approx((0.24 / 20) ** 0.5)


def test_the_side_by_side_table_marks_the_final_model():
    steps = [step("best trial, argmax", 0.9), step("best trial", 0.9), step("ensemble of 3", 0.93, members=3)]
    frame = side_by_side({"steps": steps, "final": "ensemble of 3"})
    assert frame["model"].tolist() == ["best trial, argmax", "best trial", "ensemble of 3"]
    assert frame["final"].tolist() == ["no", "no", "yes"] and frame["auc"].tolist() == [0.9, 0.9, 0.93]


def test_search_final_reruns_the_stage_on_a_finished_search_without_training(finished, tmp_path, monkeypatch,
                                                                              capsys):
    """``python -m search.final`` on a copy of the shared search's results: another rule, one
    member; and bad input is one line, exit 2, nothing written. In this process, through the
    command line's own error wrapper (the CLI as a subprocess: test_pareto_search, test_run_errors)."""
    import json
    import shutil

    from search.final import __main__ as final_cli
    from search.space import load_space
    from trainable.data import load_dataset
    from trainable.decide import choose_threshold
    from trainable.errors import exit_on_user_error
    from trainable.export import load_model

    workdir, _ = finished
    copy = workdir / "results" / f"final-{tmp_path.name}"
    shutil.copytree(workdir / "results/tiny_lens", copy, ignore=shutil.ignore_patterns("wandb"))
    monkeypatch.chdir(workdir)  # the space's data path is relative to where the search ran
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")

    before = (copy / "summary.json").read_bytes()
    for bad in ("trial.epochs=3", "final.threshold=best", "final.threshold_counts=counted"):
        with pytest.raises(SystemExit) as exit_:
            exit_on_user_error(final_cli.main)([str(copy), "--set", bad])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: ") and (copy / "summary.json").read_bytes() == before
    assert final_cli.main([str(copy), "--set", "final.ensemble=1", "--set", "final.threshold=youden",
                           "--set", "final.threshold_counts=labels"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["final"]["candidates"] == [summary["best_trial"]]
    assert summary["final"]["threshold_rule"] == "youden" and summary["final"]["threshold_counts"] == "labels"
    assert "youden on the validation split's labels" in out
    model = load_model(copy / "best_model.pt")
    assert len(model.members) == 1 and model.threshold == summary["test"]["threshold"]
    assert model.info["threshold_counts"] == "labels"
    # The threshold is Youden's by labels on the model's own validation probabilities: not the
    # expected counts' one (which differs here).
    space = load_space(copy / "space.yaml")
    images, labels = load_dataset(space.data).split("val")
    val, labels = model.predict(images).numpy(), labels.numpy()
    assert choose_threshold(val, labels, "youden", counts="labels") == pytest.approx(model.threshold, abs=1e-5)
    assert choose_threshold(val, labels, "youden", counts="expected") != pytest.approx(model.threshold, abs=1e-5)
    assert "threshold: youden" in (copy / "space.yaml").read_text()
    shutil.rmtree(copy)


def test_search_final_refits_the_best_configuration_and_checks_seeds(finished, tmp_path):
    """``final.refit`` and ``final.seeds`` on a copy of the shared search's results, run in this
    process (no Ray up): the refit is the final model, trained on train + val for the best
    trial's best epoch, deciding with the threshold and temperature fitted before it; every
    candidate is trained again with one other seed."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    import torch

    from tests.search.test_run import ROOT
    from trainable.checkpoint import load_best
    from trainable.export import load_model

    workdir, _ = finished
    copy = workdir / "results" / f"refit-{tmp_path.name}"
    shutil.copytree(workdir / "results/tiny_lens", copy, ignore=shutil.ignore_patterns("wandb"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "search.final", str(copy), "--set", "final.refit=true",
                           "--set", "final.seeds=1"], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((copy / "summary.json").read_text())
    final = summary["final"]
    best = next(t for t in summary["trials"] if t["trial_id"] == summary["best_trial"])
    assert final["final"].startswith("refit") and final["members"] == [summary["best_trial"]]
    assert final["refit"]["epochs"] == best["best_epoch"] and "final.refit" in proc.stdout
    refit_row = final["steps"][-1]
    assert refit_row["name"] == final["final"] and refit_row["val"] == {}
    # It decides as the best trial's calibrated step with the same TTA did, fitted before the refit.
    before = next(s for s in final["steps"][1:] if s.get("members") == 1 and s["tta"] == refit_row["tta"]
                  and not s["name"].startswith("refit"))
    assert (final["threshold"], final["temperature"]) == (before["threshold"], before["temperature"])
    # The file's own test predictions are the refit row's.
    assert summary["test"]["auc"] == pytest.approx(refit_row["test"]["auc"], abs=1e-6)
    assert summary["test"]["accuracy"] == pytest.approx(refit_row["test"]["accuracy"], abs=1e-6)
    # New weights, not the best trial's checkpoint.
    model = load_model(copy / "best_model.pt")
    checkpoint = sorted((copy / f"trial_{summary['best_trial']}").glob("checkpoint_*"))[-1]  # the latest
    old = load_best(checkpoint)["model"]
    new = model.members[0].network.state_dict()
    assert any(not torch.equal(old[k], new[k].cpu()) for k in old if old[k].is_floating_point())
    # The seed check: each of the top final.ensemble trials (those left out of the average too)
    # once more, with another seed.
    checked = [row["trial_id"] for row in final["seeds"]]
    assert checked[0] == summary["best_trial"] and len(checked) == 3
    assert set(checked) == set(final["candidates"]) | {t["trial_id"] for t in final["left_out"]}
    assert all(len(row["seeds"]) == 1 and np.isfinite(row["seeds"][0]) and row["mean"] == row["seeds"][0]
               for row in final["seeds"])
    assert "seed check (val_auc" in proc.stdout
    shutil.rmtree(copy)

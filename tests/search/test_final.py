"""How the search ranks its trials and which step of the final stage becomes the model; the
whole stage runs end to end in test_run.py (a fresh search) and test_resume.py (a resumed one)."""

from types import SimpleNamespace

import pandas as pd

from search.final import choose, side_by_side
from search.results import loss_at, rank


def record(trial_id, best, loss, epochs):
    return {"trial_id": trial_id, "best": best, "best_val_loss": loss, "epochs": epochs}


def test_ties_go_to_the_lower_validation_loss_then_fewer_epochs():
    records = [record("a", 0.996, 0.030, 4), record("b", 0.996, 0.012, 27), record("c", 0.999, 0.5, 9),
               record("d", 0.996, 0.012, 16), record("e", None, None, 1), record("f", 0.996, None, 2)]
    assert [r["trial_id"] for r in rank(records, "max")] == ["c", "d", "b", "a", "f", "e"]
    assert [r["trial_id"] for r in rank(records, "min")][:2] == ["d", "b"]


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
    space = SimpleNamespace(metric="val_auc")
    steps = [step("best trial", 0.95), step("best trial + TTA", 0.96, tta=True),
             step("ensemble of 3", 0.96, members=3), step("ensemble of 3 + TTA", 0.955, members=3, tta=True)]
    assert choose(steps, space)["name"] == "ensemble of 3"
    steps[-1]["val"] = {**steps[-1]["val"], "auc": 0.96}
    assert choose(steps, space)["name"] == "ensemble of 3 + TTA"
    # A loss is minimised.
    losses = [step("best trial", 0.9, nll=0.3), step("ensemble of 3", 0.9, nll=0.35, members=3)]
    assert choose(losses, SimpleNamespace(metric="val_loss"))["name"] == "best trial"


def test_the_side_by_side_table_marks_the_final_model():
    steps = [step("best trial, argmax", 0.9), step("best trial", 0.9), step("ensemble of 3", 0.93, members=3)]
    frame = side_by_side({"steps": steps, "final": "ensemble of 3"})
    assert frame["model"].tolist() == ["best trial, argmax", "best trial", "ensemble of 3"]
    assert frame["final"].tolist() == ["no", "no", "yes"] and frame["auc"].tolist() == [0.9, 0.9, 0.93]


def test_search_final_reruns_the_stage_on_a_finished_search_without_training(finished, tmp_path):
    """``python -m search.final`` on a copy of the shared search's results: another rule, one
    member; and bad input is one line, exit 2, nothing written."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from tests.search.test_run import ROOT
    from trainable.export import load_model

    workdir, _ = finished
    copy = workdir / "results" / f"final-{tmp_path.name}"
    shutil.copytree(workdir / "results/tiny_lens", copy, ignore=shutil.ignore_patterns("wandb"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}

    def final(*args):
        return subprocess.run([sys.executable, "-m", "search.final", str(copy), *args], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=600)

    before = (copy / "summary.json").read_bytes()
    for bad in ("trial.epochs=3", "final.threshold=best"):
        proc = final("--set", bad)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and (copy / "summary.json").read_bytes() == before
    proc = final("--set", "final.ensemble=1", "--set", "final.threshold=youden")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["final"]["candidates"] == [summary["best_trial"]]
    assert summary["final"]["threshold_rule"] == "youden" and "youden on the validation split" in proc.stdout
    model = load_model(copy / "best_model.pt")
    assert len(model.members) == 1 and model.threshold == summary["test"]["threshold"]
    assert "threshold: youden" in (copy / "space.yaml").read_text()
    shutil.rmtree(copy)

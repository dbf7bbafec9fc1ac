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

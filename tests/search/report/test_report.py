"""``python -m search.report`` on a real search's results folder: every figure in one self-contained
page, the data behind the figures, a note in place of each figure the results cannot give, and
exit status 2 for a folder that is not a search's results."""

import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from PIL import Image
from sklearn.metrics import auc, roc_auc_score

from search.report import figures, html as report
from search.report.__main__ import main as report_main

ROOT = Path(__file__).resolve().parents[3]
PNGS = [figure.file for figure in report.FIGURES if figure.applies({})]  # a single-objective search's
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*data-file="([^"]+)"')
NOTE = re.compile(r'<p class="note">(.*?)</p>')


def run_report(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "search.report", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def results_of(finished) -> Path:
    return finished[0] / "results/tiny_lens"


def results_copy(finished, where: Path) -> Path:
    """The results folder's files (not the trials' checkpoint folders), to change freely."""
    folder = where / "tiny_lens"
    folder.mkdir(parents=True)
    for path in results_of(finished).iterdir():
        if path.is_file():
            shutil.copy2(path, folder / path.name)
    return folder


def embedded(page: str) -> dict[str, bytes]:
    """Each picture of the page, decoded, by the PNG file it was made from."""
    return {name: base64.b64decode(data, validate=True) for data, name in IMG.findall(page)}


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def complete_trials(study) -> list:
    return study.get_trials(states=(TrialState.COMPLETE,))


# The whole report, through the command line ---------------------------------------------------

def test_cli_writes_every_figure_into_one_self_contained_page(finished, tmp_path):
    folder = results_copy(finished, tmp_path)
    summary = summary_of(folder)
    proc = run_report(folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = folder / "report"
    assert proc.stdout.strip() == f"report: {out / 'report.html'}", proc.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    pictures = embedded(page)
    # ASHA leaves at least the first trial and the best complete: enough for importances (PED-ANOVA
    # from 2 complete trials, fANOVA from 3).
    assert len(complete_trials(figures.load_study(folder / "optuna.journal"))) >= figures.PED_ANOVA_MIN_TRIALS
    assert sorted(pictures) == sorted(PNGS) and not NOTE.findall(page), NOTE.findall(page)
    for name in PNGS:
        png = out / name
        assert pictures[name] == png.read_bytes(), name
        with Image.open(png) as image:
            assert image.format == "PNG" and min(image.size) > 200, name
            assert np.asarray(image.convert("L"), dtype=float).std() > 0, f"{name} is blank"
    # Self-contained: every picture inline, no script, stylesheet or other file fetched.
    assert page.count("<img ") == len(PNGS)
    assert not re.search(r'(?:src|href)="(?!data:)', page) and "<script" not in page and "<link" not in page
    assert summary["best_trial"] in page
    assert f"accuracy {summary['test']['accuracy']:.4f}" in page
    assert f"macro F1 {summary['test']['f1_macro']:.4f}" in page
    assert f"ROC AUC {summary['test']['auc']:.4f}" in page
    assert f"TPR0 {summary['test']['tpr0']:.4f}, TPR10 {summary['test']['tpr10']:.4f}" in page
    # The steps from the best trial to the final model, the final one highlighted.
    assert "From the best trial to the final model" in page
    assert f'<tr class="best"><td class="text">{summary["final"]["final"]}</td><td class="text">yes</td>' in page
    # The leaderboard as a table, best first, the best row highlighted.
    rows = re.findall(r"<tr(?: class=\"best\")?><td[^>]*>(\d+)</td><td[^>]*>([^<]+)</td>", page)
    assert rows[0] == ("1", summary["best_trial"]) and len(rows) == summary["num_trials"]
    assert f'<tr class="best"><td class="">1</td><td class="text">{summary["best_trial"]}</td>' in page


def test_a_folder_that_is_not_a_search_is_one_line_and_exit_2(tmp_path, capsys):
    """In-process (the command line's own wrapper, trainable.errors.exit_on_user_error, turns the
    error into the line and the status; the report of a real search runs the command above)."""
    for folder in (tmp_path, tmp_path / "no-such-folder"):
        with pytest.raises(SystemExit) as exit_:
            report_main([str(folder), "--out", str(tmp_path / "out")])
        assert exit_.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {folder}: no summary.json"), lines
        assert not (tmp_path / "out").exists()


# The learning curves -----------------------------------------------------------------------------

def test_learning_curves_mark_exactly_the_trials_asha_stopped(finished):
    folder = results_of(finished)
    summary = summary_of(folder)
    curves = figures.learning_curves(figures.read_history(folder), summary)
    trials = {t["trial_id"]: t for t in summary["trials"]}
    assert sorted(c.trial for c in curves) == sorted(trials)
    stopped = {c.trial for c in curves if c.end_marker == "stopped"}
    assert stopped == {k for k, t in trials.items() if t["status"] == "stopped"} and stopped
    for curve in curves:
        trial = trials[curve.trial]
        assert curve.status == trial["status"] and curve.epochs[-1] == trial["epochs"]
        assert list(curve.epochs) == list(range(1, trial["epochs"] + 1))
        if trial["status"] == "completed":
            assert curve.end_marker is None and curve.epochs[-1] == summary["epochs"]
        best = max(curve.values) if summary["mode"] == "max" else min(curve.values)
        assert best == pytest.approx(trial["best"])
    assert [c.trial for c in curves if c.best] == [summary["best_trial"]]


def test_diverged_epochs_are_marked_not_drawn_as_values(tmp_path):
    history = pd.DataFrame({
        "trial": ["a", "a", "a", "b", "b", "c", "d"],
        "epoch": [1, 2, 3, 1, 2, 1, 1],
        "val_auc": [0.6, 0.7, 0.8, 0.55, 0.0, 0.5, 0.0],  # 0.0: what a diverged epoch reports
        "diverged": [0, 0, 0, 0, 1, 0, 1],
    })
    summary = {"name": "toy", "metric": "val_auc", "mode": "max", "epochs": 3, "scheduler": "asha",
               "best_trial": "a", "trials": [{"trial_id": "a", "status": "completed"},
                                             {"trial_id": "b", "status": "diverged"},
                                             {"trial_id": "c", "status": "stopped"},
                                             {"trial_id": "d", "status": "diverged"}]}
    curves = {c.trial: c for c in figures.learning_curves(history, summary)}
    assert curves["a"].best and curves["a"].end_marker is None and list(curves["a"].values) == [0.6, 0.7, 0.8]
    assert curves["b"].end_marker == "diverged" and curves["b"].diverged_at == 2
    assert list(curves["b"].values) == [0.55]  # the sentinel 0.0 left out
    assert curves["c"].end_marker == "stopped"
    assert curves["d"].diverged_at == 1 and len(curves["d"].values) == 0  # diverged at once: a marker only
    history.to_csv(tmp_path / "history.csv", index=False)
    caption = figures.plot_learning_curves(tmp_path, summary, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000 and "stopped by ASHA" in caption
    # An older history without the diverged column: the summary's statuses still mark the ends.
    curves = {c.trial: c for c in figures.learning_curves(history.drop(columns="diverged"), summary)}
    assert curves["b"].diverged_at == 2 and curves["b"].end_marker == "diverged"


# Parameter importances ---------------------------------------------------------------------------

def make_study(objective, n_trials: int = 20):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials)
    return study


def test_importances_of_the_search_study_cover_its_searched_parameters(finished):
    folder = results_of(finished)
    journal = (folder / "optuna.journal").read_bytes()
    space = yaml.safe_load((folder / "space.yaml").read_text())["space"]
    searched = {k for k, v in space.items() if isinstance(v, dict)}
    study = figures.load_study(folder / "optuna.journal", "tiny_lens")
    assert len(study.trials) == summary_of(folder)["num_trials"]  # none diverged in this search
    assert (folder / "optuna.journal").read_bytes() == journal  # read from a copy, left as it was
    found = figures.param_importances(study)
    # Every trial reported its epochs: all of them enter, at the epoch every trial reached.
    assert found.epoch == min(t["epochs"] for t in summary_of(folder)["trials"])
    assert found.n_trials == len(study.trials) > len(complete_trials(study))
    assert found.method == ("fANOVA" if found.n_trials >= figures.FANOVA_MIN_TRIALS else "PED-ANOVA")
    assert found.values and set(found.values) <= searched
    assert sum(found.values.values()) == pytest.approx(1.0) and min(found.values.values()) >= 0
    assert list(found.values.values()) == sorted(found.values.values(), reverse=True)
    # The parameters not assessed (fANOVA: those not in every complete trial) are named as left out.
    assert set(found.values) | set(found.left_out) == {k for t in study.trials for k in t.params}


def test_the_parameter_that_decides_the_value_is_the_most_important():
    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_float("gamma", 0.8, 0.99)
        trial.suggest_categorical("loss", ["bce", "focal"])
        return -abs(math.log10(lr) + 2.5)  # best at lr = 3e-3, whatever the rest

    found = figures.param_importances(make_study(objective))  # no intermediate values: the final ones
    assert found.method == "fANOVA" and found.n_trials == 20 and found.epoch is None and not found.left_out
    assert next(iter(found.values)) == "lr" and found.values["lr"] > 0.8, found.values
    assert sum(found.values.values()) == pytest.approx(1.0)


def test_importances_fall_back_to_ped_anova_when_no_parameter_is_in_every_trial():
    def objective(trial):  # two conditional branches with no parameter in common: nothing for fANOVA
        if trial.number % 2:
            return trial.suggest_float("a", 0.0, 1.0)
        return trial.suggest_float("b", 0.0, 1.0) ** 2

    found = figures.param_importances(make_study(objective))
    assert found.method == "PED-ANOVA" and set(found.values) == {"a", "b"}
    assert sum(found.values.values()) == pytest.approx(1.0)


def test_too_few_trials_give_a_note_or_the_fallback():
    distributions = {"x": FloatDistribution(0.0, 1.0)}
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params={"x": 0.2}, distributions=distributions, value=0.5))
    with pytest.raises(figures.Skipped, match="1 complete trial"):  # no per-epoch values: the final ones
        figures.param_importances(study)
    study.add_trial(create_trial(params={"x": 0.7}, distributions=distributions, state=TrialState.PRUNED,
                                 intermediate_values={1: 0.3}))
    with pytest.raises(figures.Skipped, match=r"1 trial\(s\) at epoch 1 \(the first rung\)"):
        figures.param_importances(study)
    study.add_trial(create_trial(params={"x": 0.9}, distributions=distributions, state=TrialState.PRUNED,
                                 intermediate_values={1: 0.8}))
    found = figures.param_importances(study)  # two: too few for fANOVA, enough for PED-ANOVA
    assert found.method == "PED-ANOVA" and set(found.values) == {"x"} and found.n_trials == 2


def rung_trials(n_pruned: int = 8) -> list:
    """``n_pruned`` trials ASHA stopped at its rungs (epochs 2 and 4) and one it completed (8 epochs):
    ``lr`` alone decides the value at epoch 2, ``gamma`` alone the later ones."""
    distributions = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "gamma": FloatDistribution(0.8, 0.99),
                     "loss": CategoricalDistribution(["bce", "focal"])}
    rng = np.random.default_rng(0)
    trials = []
    for k in range(n_pruned + 1):
        params = {"lr": float(10 ** rng.uniform(-4, -1)), "gamma": float(rng.uniform(0.8, 0.99)),
                  "loss": str(rng.choice(["bce", "focal"]))}
        last = 8 if k == n_pruned else (2, 4)[k % 2]
        values = {e: (0.5 + 0.1 * (math.log10(params["lr"]) + 4) if e <= 2 else params["gamma"])
                  for e in range(1, last + 1)}
        trials.append(create_trial(params=params, distributions=distributions, intermediate_values=values,
                                   state=TrialState.COMPLETE if last == 8 else TrialState.PRUNED,
                                   value=values[last] if last == 8 else None))
    return trials


def test_importances_use_every_trial_at_the_first_rung(tmp_path):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal")))
    study = optuna.create_study(study_name="rungs", storage=storage, direction="maximize")
    study.add_trials(rung_trials())
    found = figures.param_importances(figures.load_study(tmp_path / "optuna.journal", "rungs"))
    assert found.epoch == 2 and found.n_trials == 9 and found.method == "fANOVA"
    assert next(iter(found.values)) == "lr" and found.values["lr"] > 0.6, found.values  # fANOVA, 9 points
    summary = {"name": "rungs", "metric": "val_auc"}
    caption = figures.plot_importance(tmp_path, summary, tmp_path / "importance.png")
    assert "9 trials at epoch 2 (the first rung)" in caption
    assert (tmp_path / "importance.png").stat().st_size > 10_000


# Parallel coordinates, ROC -----------------------------------------------------------------------

def test_parallel_axes_scale_numbers_to_the_unit_range_and_space_categories_evenly():
    lr = figures.parallel_axis("lr", [1e-4, 1e-3, 1e-2])
    assert lr.log and lr.positions == pytest.approx([0.0, 0.5, 1.0])
    assert lr.ticks[0] == (0.0, "0.0001") and lr.ticks[-1] == (1.0, "0.01")
    gamma = figures.parallel_axis("gamma", [0.8, 0.99, None, 0.9])  # a conditional parameter
    assert not gamma.log and gamma.positions[:2] == pytest.approx([0.0, 1.0])
    assert gamma.positions[2] == figures.NA_POSITION and (figures.NA_POSITION, "n/a") in gamma.ticks
    assert figures.parallel_axis("t0", [2, 4, 3]).ticks == [(0.0, "2"), (0.5, "3"), (1.0, "4")]
    loss = figures.parallel_axis("loss", ["focal", "bce", "bce", "dice"])
    assert loss.positions == [1.0, 0.0, 0.0, 0.5] and [t[1] for t in loss.ticks] == ["bce", "dice", "focal"]


def test_parallel_coordinates_lead_with_the_searchs_best_trial_the_default_by_its_rule():
    trials = [{"trial_id": "a", "config": {"lr": 2e-3}, "best": 0.885, "epochs": 15},
              {"trial_id": "d", "config": {"lr": 1e-3}, "best": 0.874, "epochs": 15, "default": True, "margin": 0.026},
              {"trial_id": "c", "config": {"lr": 1e-4}, "best": 0.70, "epochs": 5}]
    summary = {"metric": "val_auc", "mode": "max", "trials": trials}
    ranked, axes = figures.parallel_data(summary)
    assert [t["trial_id"] for t in ranked] == ["d", "a", "c"] and axes[-1].name == "val_auc"
    trials[1]["margin"] = 0.005  # beaten by more than a standard error: the plain order
    assert [t["trial_id"] for t in figures.parallel_data(summary)[0]] == ["a", "d", "c"]


def test_parallel_coordinates_show_the_best_trials_over_what_varied(finished):
    summary = summary_of(results_of(finished))
    trials, axes = figures.parallel_data(summary)
    varied = [k for k in dict.fromkeys(k for t in summary["trials"] for k in t["config"])
              if len({json.dumps(t["config"].get(k)) for t in summary["trials"]}) > 1]
    assert [a.name for a in axes] == varied + [summary["metric"]] and "epochs" not in varied
    assert trials[0]["trial_id"] == summary["best_trial"] and len(trials) == summary["num_trials"]
    for axis in axes:
        assert all(p == figures.NA_POSITION or 0.0 <= p <= 1.0 for p in axis.positions), axis


def test_roc_curve_binary_from_the_test_predictions(finished):
    folder = results_of(finished)
    summary = summary_of(folder)
    frame, names = figures.read_predictions(folder, summary)
    (label, _, _, area), = figures.roc_curves(frame, names)
    assert label == f"class {names[1]}" and area == pytest.approx(summary["test"]["auc"])


def test_roc_curves_multiclass_with_the_macro_auc_of_the_summary(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 90)
    scores = rng.dirichlet(np.ones(3), 90) + 0.5 * np.eye(3)[truth]  # separable, not perfectly
    scores /= scores.sum(1, keepdims=True)
    classes = ["galaxy", "lens", "star"]
    frame = pd.DataFrame({"true": np.array(classes)[truth],
                          **{f"p_{c}": scores[:, k] for k, c in enumerate(classes)}})
    curves = figures.roc_curves(frame, classes)
    assert [c[0] for c in curves] == [f"class {c} vs rest" for c in classes] + ["macro average"]
    assert all(0.5 < c[3] <= 1.0 for c in curves)
    # The macro AUC is summary.json's: the mean of the one-vs-rest AUCs, not the averaged curve's area.
    macro = roc_auc_score(truth, scores, multi_class="ovr", average="macro", labels=[0, 1, 2])
    assert abs(curves[-1][3] - macro) <= 1e-12
    assert abs(auc(curves[-1][1], curves[-1][2]) - macro) > 1e-4  # the number drawn before
    frame.assign(predicted=np.array(classes)[scores.argmax(1)]).to_csv(tmp_path / "test_predictions.csv",
                                                                         index=False)
    caption = figures.plot_roc(tmp_path, {"test": {"class_names": classes}}, tmp_path / "roc.png")
    assert "mean of the one-vs-rest AUCs" in caption and (tmp_path / "roc.png").stat().st_size > 10_000


def test_a_hundred_classes_draw_a_readable_roc_and_confusion_matrix(tmp_path):
    rng = np.random.default_rng(1)
    classes = [str(c) for c in range(100)]
    truth = np.repeat(np.arange(100), 4)
    scores = rng.dirichlet(np.ones(100), len(truth)) + 0.02 * np.eye(100)[truth]
    scores[truth == 7, 7] = 0.0  # class 7 ranked last: the hardest class
    scores[truth == 3, 42] += 1.0  # every 3 taken for a 42: the most frequent confusion
    scores /= scores.sum(1, keepdims=True)
    frame = pd.DataFrame({"true": np.array(classes)[truth], **{f"p_{c}": scores[:, k] for k, c in enumerate(classes)}})
    frame.assign(predicted=np.array(classes)[scores.argmax(1)]).to_csv(tmp_path / "test_predictions.csv", index=False)
    summary = {"test": {"class_names": classes}}
    caption = figures.plot_roc(tmp_path, summary, tmp_path / "roc.png")
    assert "The hardest classes: 7 (AUC 0.0" in caption
    caption = figures.plot_confusion_matrix(tmp_path, summary, tmp_path / "cm.png")
    assert "100 classes, every 4th labelled" in caption and "3 -> 42 (4)" in caption
    for name in ("roc.png", "cm.png"):
        with Image.open(tmp_path / name) as image:  # a figure of fixed size, not 0.55 inch a class
            assert max(image.size) < 2000, image.size


# Robustness: notes, never an exception -----------------------------------------------------------

def test_without_study_and_misclassified_images_the_page_has_notes(finished, tmp_path, capsys):
    folder = results_copy(finished, tmp_path)
    out = tmp_path / "out"
    report.write_report(folder, out)
    assert all((out / name).is_file() for name in PNGS)
    (folder / "optuna.journal").unlink()
    (folder / "misclassified.npz").unlink()
    path = report.write_report(folder, out)  # again, into the same folder
    assert path == out / "report.html"
    page = path.read_text(encoding="utf-8")
    notes = NOTE.findall(page)
    assert len(notes) == 2 and "optuna.journal" in notes[0] and "misclassified.npz" in notes[1], notes
    assert sorted(embedded(page)) == sorted(set(PNGS) - {"importance.png", "misclassified.png"})
    # The earlier report's pictures of those two are gone: the folder shows what the page shows.
    assert not (out / "importance.png").exists() and not (out / "misclassified.png").exists()
    assert capsys.readouterr().err == ""  # expected gaps are notes, not errors


def test_a_single_class_test_split_and_a_bare_summary_give_notes(finished, tmp_path, capsys):
    folder = results_copy(finished, tmp_path)
    predictions = pd.read_csv(folder / "test_predictions.csv", dtype=str)
    only = predictions["true"].iloc[0]
    predictions[predictions["true"] == only].to_csv(folder / "test_predictions.csv", index=False)
    page = report.write_report(folder).read_text(encoding="utf-8")  # into folder/report/
    notes = NOTE.findall(page)
    assert len(notes) == 1 and f"only class {only}" in notes[0], notes
    assert not (folder / "report/roc.png").exists() and (folder / "report/confusion_matrix.png").is_file()

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy2(folder / "summary.json", bare / "summary.json")
    page = report.write_report(bare).read_text(encoding="utf-8")
    # Only the parallel coordinates come from summary.json alone; the rest, leaderboard too, are notes.
    assert list(embedded(page)) == ["parallel_coordinates.png"] and len(NOTE.findall(page)) == len(PNGS)
    assert "<h1>Search tiny_lens</h1>" in page and summary_of(bare)["best_trial"] in page
    assert capsys.readouterr().err == ""


def test_the_best_epoch_star_is_the_trials_own_record():
    """The star sits where the trial recorded its best (trainable.best), not at a second
    definition's argmax; without a record, the same definition picks the first best epoch."""
    from search.report.figures import Curve, best_point

    curve = Curve("t1", "completed", np.array([1, 2, 3]), np.array([0.7, 0.9, 0.9]), best=True)
    recorded = {"mode": "max", "trials": [{"trial_id": "t1", "best_epoch": 3}]}
    assert best_point(curve, recorded) == (3, 0.9)
    assert best_point(curve, {"mode": "max", "trials": []}) == (2, 0.9)
    assert best_point(curve, {"mode": "min", "trials": []}) == (1, 0.7)

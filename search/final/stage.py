"""The final stage's steps: the best trials' checkpoints as members, their BatchNorm refresh, the
ensemble and TTA steps side by side, the choice among them and the refit (:mod:`search.final`)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search.final.describe import tta_suffix
from search.final.retrain import refit_job, run_jobs, seed_check, seed_jobs, with_val_in_train
from search.space import Space
from trainable.checkpoint import fetch_best, replace_best_weights
from trainable.data import ImageDataset
from trainable.decide import calibrate, choose_threshold, decision_metrics, fit_temperature, prior_log_weights
from trainable.best import top, within
from trainable.metrics import METRICS, standard_error
from trainable.export import export_model, load_model
from trainable.losses import focal_alpha_weights
from trainable.models import refresh_batchnorm

def members_of(grid, ranked: list[dict[str, Any]], k: int) -> list[tuple[dict[str, Any], Any]]:
    """The first ``k`` ranked trials that reported a value and kept a checkpoint, with their
    Ray results."""
    by_path = {r.path: r for r in grid}
    out = []
    for record in ranked:
        if len(out) == k or record["best"] is None:
            break
        result = by_path.get(record["path"])
        if result is not None and result.checkpoint is not None:
            out.append((record, result))
    return out


def close_to_best(chosen: list[tuple[dict[str, Any], Any]], space: Space, y_val: np.ndarray):
    """The best trial and those of the others whose validation value is within one standard
    error of its (:func:`trainable.metrics.standard_error`): averaging in a trial clearly worse on
    validation drags the ensemble down, and the choice between the steps, on the same small
    split, can miss it (BENCHMARKS.md, "What does the final stage add to the best trial?").
    Returns the kept, the tolerance (None: all kept, the metric has none) and the left out with
    their values."""
    best = chosen[0][0]["best"]
    tolerance = standard_error(space.metric, best, y_val)
    if tolerance is None:
        return chosen, None, []
    close = [within(record["best"], best, tolerance, space.mode) for record, _ in chosen]
    left_out = [{"trial_id": r["trial_id"], "value": r["best"]} for (r, _), ok in zip(chosen, close) if not ok]
    return [c for c, ok in zip(chosen, close) if ok], tolerance, left_out

REFRESH_IMAGES = 2048  # training images the BatchNorm statistics are recomputed from, at most


def refresh_sample(dataset: ImageDataset) -> torch.Tensor:
    """The training images (at most :data:`REFRESH_IMAGES`, a seeded draw) BatchNorm statistics
    are recomputed from."""
    train_images = dataset.split("train")[0]
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(train_images), min(len(train_images), REFRESH_IMAGES), replace=False))
    return train_images[torch.from_numpy(pick)]


def refresh_member(member, folder: Path, dataset: ImageDataset, val: tuple[torch.Tensor, np.ndarray],
                   space: Space) -> dict[str, Any]:
    """Recompute a member's BatchNorm statistics on (up to :data:`REFRESH_IMAGES`) training images
    (:func:`trainable.models.refresh_batchnorm`) and keep them where the search's metric on the
    validation split is at least as good; the member's ``best.pt`` in ``folder`` is rewritten
    with them. Returns what was done and the metric before and after."""
    images, labels = val
    key = METRICS[space.metric].decision_key
    before_state = {k: v.clone() for k, v in member.network.state_dict().items()}
    before = decision_metrics(member.probabilities(images), labels)[key]
    if not refresh_batchnorm(member.network, refresh_sample(dataset)):
        return {"trial_id": member.trial_id, "batchnorm": "none in the network"}
    after = decision_metrics(member.probabilities(images), labels)[key]
    better = before is None or within(after, before, 0.0, space.mode)  # at least as good
    if better:
        replace_best_weights(folder, folder, member.network.state_dict())
    else:
        member.network.load_state_dict(before_state)
    return {"trial_id": member.trial_id, "batchnorm": "recomputed" if better else "as trained",
            f"val_{key}_before": before, f"val_{key}_after": after}


def member_log_weights(config: dict[str, Any], train_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The prior correction of a trial of ``config`` (its fixed and searched settings): its
    sampling strategy's and its loss's class weights' (:func:`trainable.decide.prior_log_weights`)."""
    weights = None
    if config.get("loss") == "focal" and config.get("focal_alpha") is not None:
        weights = focal_alpha_weights(config["focal_alpha"], num_classes).numpy()
    return prior_log_weights(config.get("sampling", "none"), train_labels, num_classes, class_weights=weights)


def _step(name: str, val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
          space: Space, calibrated: bool) -> dict[str, Any]:
    """One row of the side-by-side table: its temperature and threshold fitted on ``val``
    (probabilities, labels) when ``calibrated``, its metrics on both splits."""
    (p_val, y_val), (p_test, y_test) = val, test
    binary = p_val.shape[1] == 2
    temperature, threshold, rule = 1.0, None, None
    if calibrated:
        if space.final.temperature:
            temperature = fit_temperature(p_val, y_val)
            p_val, p_test = calibrate(p_val, temperature), calibrate(p_test, temperature)
        if binary:
            rule = space.final.threshold
            threshold = choose_threshold(p_val, y_val, rule, counts=space.final.threshold_counts)
    named = isinstance(rule, str)
    return {"name": name, "temperature": temperature, "threshold": threshold,
            "threshold_rule": rule if named else None,
            "threshold_counts": space.final.threshold_counts if named else None,
            "val": decision_metrics(p_val, y_val, threshold), "test": decision_metrics(p_test, y_test, threshold)}


@dataclass
class Final:
    """What the final stage built (:func:`run_final`); :meth:`record` is ``summary["final"]``."""

    steps: list[dict[str, Any]]  # the side-by-side table's rows
    final: str  # the name of the step written as the model
    members: list[str]  # the model's trials
    candidates: list[str]  # the trials within a standard error of the best
    tolerance: float | None  # that standard error
    left_out: list[dict[str, Any]]  # the best trials further from the best
    choice_tolerance: float | None  # the standard error the steps were chosen within
    batchnorm: list[dict[str, Any]]  # each member's BatchNorm refresh
    decision: dict[str, Any]  # temperature, threshold, threshold_rule, threshold_counts, tta
    seeds: list[dict[str, Any]] | None  # final.seeds' check
    refit: dict[str, Any] | None  # final.refit's record
    seconds: float
    test_probabilities: np.ndarray  # the written model's own, on the test split

    def record(self) -> dict[str, Any]:
        return {"steps": self.steps, "final": self.final, "members": self.members, "candidates": self.candidates,
                "tolerance": self.tolerance, "left_out": self.left_out, "choice_tolerance": self.choice_tolerance,
                "batchnorm": self.batchnorm, **self.decision, "seeds": self.seeds, "refit": self.refit,
                "seconds": self.seconds}


def retrain(chosen, space: Space, dataset: ImageDataset, sharing: str | None):
    """What trains (:mod:`search.final.retrain`): the seed check on every candidate, the refit of
    the best. Returns the seed table, the refit's (history, weights) and the seconds taken."""
    began = time.perf_counter()
    seeds = space.final.seeds
    jobs = seed_jobs(chosen, space, seeds) if seeds else []
    if space.final.refit:
        jobs.append(refit_job(*chosen[0], space))
    if jobs:
        print(f"final stage: training {len(jobs)} run(s): " + ", ".join(job.name for job in jobs), flush=True)
    trained = run_jobs(jobs, space, dataset, sharing)
    seed_table = seed_check(chosen, [h for h, _ in trained[:len(chosen) * seeds]], space, seeds) if seeds else None
    return seed_table, trained[-1] if space.final.refit else None, time.perf_counter() - began


def member_folders(chosen, space: Space, dataset: ImageDataset, scratch: Path) -> tuple[list[Path], list[dict]]:
    """Each chosen trial's best checkpoint fetched into ``scratch``, and its member record (its
    trial and prior correction)."""
    dirs = []
    for i, (_, result) in enumerate(chosen):
        folder = scratch / str(i)
        folder.mkdir()
        fetch_best(result.checkpoint, folder)
        dirs.append(folder)
    train_labels = dataset.split("train")[1].numpy()
    members = [{"trial_id": record["trial_id"],
                "log_weights": member_log_weights({**space.trial, **(record["config"] or {})}, train_labels,
                                                  dataset.num_classes).tolist()} for record, _ in chosen]
    return dirs, members


def side_by_side_steps(model, undo: np.ndarray, val, test, space: Space) -> list[dict[str, Any]]:
    """The table's rows: the best trial as the search left it (its own probabilities, before its
    BatchNorm refresh and prior correction: ``model``'s first member is read before those), then
    the best trial and the ensemble, calibrated, each with TTA too when ``final.tta``."""
    (val_images, y_val), (test_images, y_test) = val, test
    raw = {split: calibrate(model.members[0].probabilities(images), 1.0, undo)
           for split, images in (("val", val_images), ("test", test_images))}
    return [_step("best trial, argmax", (raw["val"], y_val), (raw["test"], y_test), space, calibrated=False)]


def averaged_steps(model, val, test, space: Space) -> list[dict[str, Any]]:
    """The calibrated rows: the best member alone and all members averaged, each plain and, with
    ``final.tta``, over its views; every member's probabilities are computed once."""
    (val_images, y_val), (test_images, y_test) = val, test
    views = [False, space.final.tta] if space.final.tta else [False]
    probabilities = {(i, tta, split): member.probabilities(images, tta=tta)
                     for i, member in enumerate(model.members) for tta in views
                     for split, images in (("val", val_images), ("test", test_images))}

    def mean(count: int, tta, split: str) -> np.ndarray:
        return np.mean([probabilities[(i, tta, split)] for i in range(count)], axis=0)

    steps = []
    for count in sorted({1, len(model.members)}):
        for tta in views:
            name = ("best trial" if count == 1 else f"ensemble of {count}") + tta_suffix(tta)
            steps.append({**_step(name, (mean(count, tta, "val"), y_val), (mean(count, tta, "test"), y_test),
                                  space, calibrated=True), "members": count, "tta": tta})
    return steps


def run_final(grid, ranked: list[dict[str, Any]], space: Space, dataset: ImageDataset, out: Path,
              about: dict[str, Any], sharing: str | None = None) -> Final | None:
    """Build, test and write the final model (see :mod:`search.final`).

    Args:
        grid: The search's Ray results.
        ranked: Its trial records, best first (:func:`search.results.records.rank`).
        space: The space searched (its ``final:`` block).
        dataset: The data the trials trained on.
        out: The model file to write (``best_model.pt``).
        about: Plain values to keep in the model file (image size, metric, ...).
        sharing: How the trials got their data (``object_store``, ``path``), with Ray up: the
            refit and the seed check then run as Ray tasks (:func:`search.final.retrain.run_jobs`).

    Returns:
        What was built, or None when no trial kept a checkpoint.
    """
    chosen = members_of(grid, ranked, space.final.ensemble)
    if not chosen:
        return None
    began = time.perf_counter()
    seed_table, refit, retrain_s = retrain(chosen, space, dataset, sharing)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    val_images, val_labels = dataset.split("val")
    test_images, test_labels = dataset.split("test")
    val, test = (val_images, val_labels.numpy()), (test_images, test_labels.numpy())
    chosen, tolerance, left_out = close_to_best(chosen, space, val[1])
    with tempfile.TemporaryDirectory(prefix="final-") as scratch:
        dirs, members = member_folders(chosen, space, dataset, Path(scratch))
        scratch_model = load_model(export_model(dirs, Path(scratch) / "members.pt", members=members), device)
        steps = side_by_side_steps(scratch_model, -np.asarray(members[0]["log_weights"]), val, test, space)
        batchnorm = [refresh_member(member, folder, dataset, val, space)
                     for member, folder in zip(scratch_model.members, dirs)]
        steps += averaged_steps(scratch_model, val, test, space)
        best_value = top((step["val"].get(METRICS[space.metric].decision_key) for step in steps[1:]), space.mode)
        choice_tolerance = standard_error(space.metric, best_value, val[1])
        final = choose(steps[1:], space, choice_tolerance)
        count, files = final["members"], dirs[:final["members"]]
        refit_about = None
        if refit is not None:
            final, folder = _refit_step(refit, steps, final, dirs[0], members[0], batchnorm[0], dataset,
                                        test, device, Path(scratch))
            count, files = 1, [folder]
            refit_about = {"trial_id": members[0]["trial_id"], "epochs": final["epochs"], "seconds": retrain_s}
            steps.append(final)
        decision = {key: final[key] for key in ("temperature", "threshold", "threshold_rule", "threshold_counts",
                                                 "tta")}
        export_model(files, out, members=members[:count], decision=decision, **about)
    # The file's own predictions: what search.predict gives on these images.
    test_probabilities = load_model(out, device).predict(test_images).numpy()
    return Final(steps, final["name"], [m["trial_id"] for m in members[:count]], [m["trial_id"] for m in members],
                 tolerance, left_out, choice_tolerance, batchnorm, decision, seed_table, refit_about,
                 time.perf_counter() - began, test_probabilities)


def _refit_step(refit, steps: list[dict[str, Any]], chosen: dict[str, Any], best_dir: Path, member: dict[str, Any],
                batchnorm: dict[str, Any], dataset: ImageDataset, test: tuple[torch.Tensor, np.ndarray],
                device: str, scratch: Path) -> tuple[dict[str, Any], Path]:
    """The refit's row of the side-by-side table and the folder of its ``best.pt``: the refit's
    last weights in the best trial's file, its BatchNorm statistics recomputed when the best
    trial's were, deciding as the best trial's calibrated step with the chosen step's TTA. It has
    no validation metrics: it trained on that split."""
    history, weights = refit
    base = next(step for step in steps[1:] if step["members"] == 1 and step["tta"] == chosen["tta"])
    folder = scratch / "refit"
    folder.mkdir()
    replace_best_weights(best_dir, folder, weights)
    network = load_model(export_model([folder], scratch / "refit.pt", members=[member]), device).members[0]
    if batchnorm.get("batchnorm") == "recomputed":
        refresh_batchnorm(network.network, refresh_sample(with_val_in_train(dataset)))
        replace_best_weights(folder, folder, network.network.state_dict())
    images, labels = test
    probabilities = calibrate(network.probabilities(images, tta=chosen["tta"]), base["temperature"])
    step = {"name": "refit" + tta_suffix(chosen["tta"]), "temperature": base["temperature"],
            "threshold": base["threshold"], "threshold_rule": base["threshold_rule"],
            "threshold_counts": base["threshold_counts"], "val": {},
            "test": decision_metrics(probabilities, labels, base["threshold"]), "members": 1,
            "tta": chosen["tta"], "epochs": len(history)}
    return step, folder


def choose(steps: list[dict[str, Any]], space: Space, tolerance: float | None = None) -> dict[str, Any]:
    """The last step (more members, TTA) whose validation value of the search's metric is within
    ``tolerance`` (one standard error, :func:`trainable.metrics.standard_error`; None: 0) of the
    best step's: averaging is what generalises when the validation split cannot tell the steps
    apart (BENCHMARKS.md, "What does the final stage add to the best trial?")."""
    values = [step["val"].get(METRICS[space.metric].decision_key) for step in steps]
    best = top(values, space.mode)
    if best is None:
        return steps[-1]
    return [step for step, v in zip(steps, values) if within(v, best, tolerance, space.mode)][-1]


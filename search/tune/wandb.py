"""Every trial a W&B run, logged from the driver at a fraction of the stock callback's cost.

Ray's ``WandbLoggerCallback`` starts a logging actor with its own W&B process per trial
(BENCHMARKS.md, "How much does the driver cost per trial?"). Here the driver's one W&B service
holds every trial's run (``wandb.init(reinit="create_new")``): a run starts when its trial starts,
gets the trial's full configuration, logs each epoch's metrics at ``step=epoch``, and is finished
explicitly when the trial ends, so no run is left "crashed" (ray#33129). Runs are grouped by
search name.

When a trial ends (completed, or stopped by ASHA), its run also gets W&B's ROC curve and
confusion matrix of its last epoch on the validation split (from the predictions the trial saved
with that checkpoint), a table of the misclassified validation images with their predicted and
true classes. Its summary's ``best_<metric>`` and ``best_epoch`` are the last values the trial
logged: the trial's own record of its best epoch (:mod:`trainable.best`).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune import Callback

from trainable.checkpoint import read_probabilities
from trainable.display import displayable

log = logging.getLogger(__name__)


# Ray's bookkeeping fields: not worth a chart.
SKIP = {"trial_id", "experiment_tag", "date", "timestamp", "time_this_iter_s", "pid", "hostname",
        "node_ip", "node_id", "done", "training_iteration", "time_total_s", "time_since_restore",
        "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint", "config"}


class WandbCallback(Callback):
    """One W&B run per trial, in the group ``group``, written under ``folder``.

    Args:
        project, entity, group: Where the runs go in W&B.
        mode: ``online``, ``offline`` or ``disabled`` (see :func:`resolve_mode`).
        folder: The local folder W&B writes to (``folder/wandb/``).
        fixed: Settings every trial shares, merged into each run's config.
        validation: ``(images, rows, labels, class_names)``: the whole set's images (not copied),
            the validation split's rows in the order the trials predict them, their labels and
            the class names, for the end-of-trial plots and table; none without it.
    """

    MISCLASSIFIED_ROWS = 32

    def __init__(self, project: str, entity: str | None, group: str, mode: str, folder: str | Path,
                 fixed: dict[str, Any] | None = None,
                 validation: tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None = None):
        self.project, self.entity, self.group, self.mode = project, entity, group, mode
        self.folder = Path(folder)
        self.fixed = dict(fixed or {})
        self.validation = validation
        self.runs: dict[str, Any] = {}
        self.seconds = 0.0  # time spent in W&B calls, for the overhead benchmark
        self.failed = False
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the callbacks with the tuner (to resume it): no runs, queue or thread.
        # The validation images are not kept either: a resumed search's runs get no end plots.
        return {**self.__dict__, "runs": {}, "_queue": None, "_thread": None, "validation": None}

    # The Tune loop only queues work; one thread makes the W&B calls in order, so a slow
    # wandb.init or finish never holds up scheduling and results.
    def _submit(self, action, *args) -> None:
        if self._thread is None:
            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._work, name="wandb-log", daemon=True)
            self._thread.start()
        self._queue.put((action, args))

    def _work(self) -> None:
        while True:
            action, args = self._queue.get()
            if action is None:
                return
            began = time.perf_counter()
            try:
                action(*args)
            except Exception as err:  # W&B unreachable or refusing: the search goes on without it
                if not self.failed:
                    log.warning("W&B logging stopped: %s", str(err).splitlines()[0] if str(err) else
                                type(err).__name__)
                self.failed = True
            self.seconds += time.perf_counter() - began

    def _start(self, trial_id: str, config: dict[str, Any]) -> None:
        import wandb

        if self.failed or trial_id in self.runs:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=self.project, entity=self.entity, group=self.group, job_type="trial",
            name=trial_id, id=f"{self.group}-{trial_id}"[-64:], resume="allow",
            config={**self.fixed, **config, "trial_id": trial_id}, dir=str(self.folder),
            mode=self.mode, reinit="create_new",
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                    x_disable_machine_info=True))
        run.define_metric("epoch")
        run.define_metric("*", step_metric="epoch")
        self.runs[trial_id] = run

    def _log(self, trial_id: str, config: dict[str, Any], metrics: dict[str, float]) -> None:
        self._start(trial_id, config)
        if trial_id in self.runs:
            self.runs[trial_id].log(metrics)

    def _plots(self, run, checkpoint) -> None:
        """The last epoch's validation ROC curve, confusion matrix and misclassified images."""
        import wandb

        images, rows, labels, class_names = self.validation
        # Only the small probabilities file is read, where the checkpoint is stored (s3://...).
        probabilities = read_probabilities(checkpoint)
        if probabilities is None:
            return
        predicted = probabilities.argmax(1)
        wrong = np.flatnonzero(predicted != labels)
        wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:self.MISCLASSIFIED_ROWS]
        table = wandb.Table(columns=["image", "true", "predicted", "confidence", "index"])
        for i in wrong:
            table.add_data(wandb.Image(displayable(images[rows[i]])), class_names[labels[i]],
                           class_names[predicted[i]], float(probabilities[i, predicted[i]]), int(i))
        run.log({
            "val_roc": wandb.plot.roc_curve(labels, probabilities, labels=list(class_names),
                                            title="ROC (validation, last epoch)"),
            "val_confusion_matrix": wandb.plot.confusion_matrix(
                y_true=labels.tolist(), preds=predicted.tolist(), class_names=list(class_names),
                title="Confusion matrix (validation, last epoch)"),
            "val_misclassified": table,
        })

    def _finish(self, trial_id: str, exit_code: int, checkpoint=None) -> None:
        run = self.runs.pop(trial_id, None)
        if run is None:
            return
        try:
            if checkpoint is not None and self.validation is not None and not exit_code:
                try:
                    self._plots(run, checkpoint)
                except Exception as err:  # e.g. one class only in the split: the run still ends well
                    log.warning("W&B plots of trial %s skipped: %s", trial_id, str(err).splitlines()[0])
        finally:
            run.summary["status"] = "error" if exit_code else "finished"
            run.finish(exit_code=exit_code)

    def _finish_all(self) -> None:
        for trial_id in list(self.runs):
            self._finish(trial_id, 1)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._submit(self._start, trial.trial_id, dict(trial.config))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        metrics = {k: v for k, v in result.items()
                   if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v)}
        self._submit(self._log, trial.trial_id, dict(trial.config), metrics)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._submit(self._finish, trial.trial_id, 0, trial.checkpoint)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._submit(self._finish, trial.trial_id, 1)

    def on_experiment_end(self, trials, **info):
        self.close()

    def close(self) -> None:
        """Wait for the queued W&B calls, then finish the runs of trials still running (a time
        budget or an interrupt ended the search): marked failed here, and continued under the
        same id when the search resumes."""
        if self._thread is not None:
            self._submit(self._finish_all)
            self._queue.put((None, ()))
            self._thread.join()
            self._thread = self._queue = None


"""Every trial a W&B run, logged from the driver at a fraction of the stock callback's cost.

Ray's ``WandbLoggerCallback`` starts a logging actor with its own W&B process per trial (about
2.5 s each on a 2-core machine). Here the driver's one W&B service holds every trial's run
(``wandb.init(reinit="create_new")``): a run starts when its trial starts, gets the trial's full
configuration, logs each epoch's metrics at ``step=epoch``, and is finished explicitly when the
trial ends, so no run is left "crashed" (ray#33129). Runs are grouped by search name.
"""

from __future__ import annotations

import logging
import math
import netrc
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ray.tune import Callback

log = logging.getLogger(__name__)

# Ray's bookkeeping fields: not worth a chart.
SKIP = {"trial_id", "experiment_tag", "date", "timestamp", "time_this_iter_s", "pid", "hostname",
        "node_ip", "node_id", "done", "training_iteration", "time_total_s", "time_since_restore",
        "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint", "config"}


def has_api_key() -> bool:
    """Whether W&B credentials are on this machine: ``WANDB_API_KEY`` or a netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """The W&B mode to run in. ``WANDB_MODE`` in the environment (W&B's own switch) wins; ``auto``
    is online with credentials and offline without."""
    env = os.environ.get("WANDB_MODE")
    if env:
        return {"dryrun": "offline", "run": "online"}.get(env, env)
    if mode == "auto":
        return "online" if has_api_key() else "offline"
    return mode


class WandbCallback(Callback):
    """One W&B run per trial, in the group ``group``, written under ``folder``.

    Args:
        project, entity, group: Where the runs go in W&B.
        mode: ``online``, ``offline`` or ``disabled`` (see :func:`resolve_mode`).
        folder: The local folder W&B writes to (``folder/wandb/``).
        fixed: Settings every trial shares, merged into each run's config.
    """

    def __init__(self, project: str, entity: str | None, group: str, mode: str, folder: str | Path,
                 fixed: dict[str, Any] | None = None):
        self.project, self.entity, self.group, self.mode = project, entity, group, mode
        self.folder = Path(folder)
        self.fixed = dict(fixed or {})
        self.runs: dict[str, Any] = {}
        self.seconds = 0.0  # time spent in W&B calls, for the overhead benchmark
        self.failed = False

    def _start(self, trial) -> Any:
        import wandb

        if self.failed:
            return None
        began = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            run = self._init(wandb, trial)
        except Exception as err:  # W&B unreachable or refusing: the search goes on without it
            log.warning("W&B logging stopped: %s", str(err).splitlines()[0] if str(err) else type(err).__name__)
            self.failed = True
            return None
        self.runs[trial.trial_id] = run
        self.seconds += time.perf_counter() - began
        return run

    def _init(self, wandb, trial) -> Any:
        run = wandb.init(
            project=self.project, entity=self.entity, group=self.group, job_type="trial",
            name=trial.trial_id, id=f"{self.group}-{trial.trial_id}"[-64:], resume="allow",
            config={**self.fixed, **trial.config, "trial_id": trial.trial_id}, dir=str(self.folder),
            mode=self.mode, reinit="create_new",
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                    x_disable_machine_info=True))
        run.define_metric("epoch")
        run.define_metric("*", step_metric="epoch")
        return run

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id not in self.runs:
            self._start(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run = self.runs.get(trial.trial_id) or self._start(trial)
        if run is None:
            return
        began = time.perf_counter()
        metrics = {k: v for k, v in result.items()
                   if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v)}
        run.log(metrics)
        self.seconds += time.perf_counter() - began

    def _finish(self, trial, exit_code: int) -> None:
        run = self.runs.pop(trial.trial_id, None)
        if run is not None:
            began = time.perf_counter()
            run.summary["status"] = "error" if exit_code else "finished"
            run.finish(exit_code=exit_code)
            self.seconds += time.perf_counter() - began

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, 0)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, 1)

    def on_experiment_end(self, trials, **info):
        self.close()

    def close(self) -> None:
        """Finish the runs of trials still running (a time budget or an interrupt ended the
        search): marked failed here, and continued under the same id when the search resumes."""
        for run in self.runs.values():
            run.finish(exit_code=1)
        self.runs.clear()

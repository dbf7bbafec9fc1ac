"""Where a trial's per-epoch metrics and checkpoints go: a local folder, or Ray Tune.

The training loop talks to a reporter only, so it runs and is tested without Ray:
``report(metrics, checkpoint_dir)`` after every epoch, ``restore()`` once at the start (the
folder of the checkpoint to resume from, or None).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Protocol


class Reporter(Protocol):
    def report(self, metrics: dict[str, Any], checkpoint_dir: str) -> None: ...

    def restore(self) -> str | None: ...


class LocalReporter:
    """Keeps the last checkpoint in ``root/checkpoint`` and every epoch's metrics in ``history``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.history: list[dict[str, Any]] = []

    def report(self, metrics: dict[str, Any], checkpoint_dir: str) -> None:
        self.history.append(dict(metrics))
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / "checkpoint.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(checkpoint_dir, staging)
        shutil.rmtree(self.root / "checkpoint", ignore_errors=True)
        staging.rename(self.root / "checkpoint")
        with open(self.root / "metrics.jsonl", "a") as out:
            out.write(json.dumps(metrics) + "\n")

    def restore(self) -> str | None:
        path = self.root / "checkpoint"
        return str(path) if path.is_dir() else None


class RayReporter:
    """Reports through ``ray.tune.report`` and resumes from ``ray.tune.get_checkpoint()``.

    Each result also names the Ray node the trial ran on (``node_id``).
    """

    def report(self, metrics: dict[str, Any], checkpoint_dir: str) -> None:
        import ray
        from ray import tune

        metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id()}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

    def restore(self) -> str | None:
        from ray import tune

        checkpoint = tune.get_checkpoint()
        return None if checkpoint is None else checkpoint.to_directory()

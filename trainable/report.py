"""Where a trial's per-epoch metrics and checkpoints go: a local folder, or Ray Tune.

The training loop talks to a reporter only, so it runs and is tested without Ray:
``report(metrics, checkpoint_dir)`` after every epoch, ``restore()`` once at the start (a
context that yields the folder of the checkpoint to resume from, or None, readable until it exits).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

CHECKPOINT_DIR = "checkpoint"  # a local reporter's last checkpoint, under its root
METRICS_FILE = "metrics.jsonl"  # a local reporter's epochs, one JSON line each


class Reporter(Protocol):
    def report(self, metrics: dict[str, Any], checkpoint_dir: str) -> None: ...

    def restore(self) -> contextlib.AbstractContextManager[str | None]: ...


class LocalReporter:
    """Keeps the last checkpoint in ``root/checkpoint`` and every epoch's metrics in ``history``
    (and in ``root/metrics.jsonl``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.history: list[dict[str, Any]] = []

    def report(self, metrics: dict[str, Any], checkpoint_dir: str) -> None:
        self.history.append(dict(metrics))
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f"{CHECKPOINT_DIR}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(checkpoint_dir, staging)
        shutil.rmtree(self.root / CHECKPOINT_DIR, ignore_errors=True)
        staging.rename(self.root / CHECKPOINT_DIR)
        with open(self.root / METRICS_FILE, "a") as out:
            out.write(json.dumps(metrics) + "\n")

    @contextlib.contextmanager
    def restore(self) -> Iterator[str | None]:
        path = self.root / CHECKPOINT_DIR
        yield str(path) if path.is_dir() else None


class RayReporter:
    """Reports through ``ray.tune.report`` and resumes from ``ray.tune.get_checkpoint()``.

    Each result also names the Ray node the trial ran on (``node_id``).
    """

    def report(self, metrics: dict[str, Any], checkpoint_dir: str) -> None:
        import ray
        from ray import tune

        metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id()}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

    @contextlib.contextmanager
    def restore(self) -> Iterator[str | None]:
        """The trial's latest checkpoint: its folder in the run's storage when that is a local
        (or shared) path, else a download that is removed on exit. ``to_directory()`` would
        leave a copy in the node's temporary folder at every restore."""
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            yield None
        else:
            with checkpoint.as_directory() as folder:
                yield folder

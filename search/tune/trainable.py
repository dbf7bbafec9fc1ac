"""The Ray trainable: one configuration trained by :func:`trainable.train.train` on the set
shared through Ray's object store, or read on each node from its path (``data.share``)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from search.space import Space
from trainable.data import ImageDataset
from trainable.data.config import DataConfig

_NODE_DATA: dict[str, ImageDataset] = {}  # data.share: path; kept while Ray reuses the actor


def node_dataset(data: DataConfig) -> ImageDataset:
    """The set read on this node from ``data.path`` and memory-mapped from the node's data cache
    (one copy per node, whatever the number of trials); kept for the next trial of this process."""
    from trainable.data import load_dataset

    key = repr(data)
    if key not in _NODE_DATA:
        _NODE_DATA.clear()
        _NODE_DATA[key] = load_dataset(data, where="data", mapped=True)
    return _NODE_DATA[key]


def trial(config: dict[str, Any], fixed: dict[str, Any], metric: str, mode: str,
          dataset: ImageDataset | None = None, data: DataConfig | None = None, costs: tuple[str, ...] = ()) -> None:
    """The Ray trainable: one configuration (the file's fixed ``trial:`` settings, then the
    searched ones) trained on the shared data set (``dataset``, from the object store, or read on
    the node as ``data`` says), resuming from Ray's checkpoint if any. The trial keeps its best
    epoch's weights by the search's ``metric`` and ``mode``, and reports the ``costs`` a
    multi-objective search trades it against (:mod:`trainable.cost`)."""
    from trainable.report import RayReporter
    from trainable.train import train

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # a line per checkpoint otherwise
    train({**fixed, **config}, dataset if dataset is not None else node_dataset(data), RayReporter(),
          metric=metric, mode=mode, costs=costs)


def trial_name(trial) -> str:
    """Short trial names and folders: the id only (Ray's default spells out the configuration)."""
    return f"trial_{trial.trial_id}"


def node_data(space: Space) -> DataConfig:
    """The ``data:`` block each node reads the set from (``data.share: path``): the absolute path,
    nothing to simulate there."""
    return dataclasses.replace(space.data, path=str(space.data.root.resolve()), simulate=None)


def trainable_for(space: Space, dataset: ImageDataset, sharing: str = "object_store"):
    """The trainable with its data (the set put once in the object store, or, with ``sharing``
    ``path``, the ``data:`` block each node reads), and the trial's resources."""
    from ray import tune

    resources = {"cpu": space.resources.get("cpu", 1), "gpu": space.resources.get("gpu", 0)}
    settings = {"fixed": dict(space.trial), "metric": space.metric, "mode": space.mode,
                "costs": tuple(c for c, _ in space.costs)}
    if sharing == "path":
        trainable = tune.with_parameters(trial, data=node_data(space), **settings)
    else:
        trainable = tune.with_parameters(trial, dataset=dataset, **settings)
    return tune.with_resources(trainable, resources)

"""A space fitted to its cluster, data and time: the trials that run at once, and, before the
trials start, what the file leaves ``auto`` settled from a measured step (:func:`fit_budget`)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from search.plan.cost import Cost, measure
from search.plan.data import prepare_data
from search.plan.sizing import Sizing, apply, size_search
from search.space import Space, largest_batch

def concurrent_trials(space: Space, nodes: list[dict], per_node: bool = False) -> int:
    """Trials that can run at once: those that fit on each node, summed (``per_node``: on the
    node that holds the most), at most ``search.max_concurrent``."""
    cpu, gpu = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    fits = []
    for node in nodes:
        have = node.get("Resources", {})
        fits.append(min(int(have.get("CPU", 0) // cpu) if cpu else 1 << 20,
                        int(have.get("GPU", 0) // gpu) if gpu else 1 << 20))
    total = max(fits, default=0) if per_node else sum(fits)
    return max(1, min(total, space.search.max_concurrent or total))


@dataclass
class Fitted:
    """A space sized to its data and time (:mod:`search.plan`), and what the tuner needs of it."""

    space: Space
    dataset: object  # trainable.data.ImageDataset
    sizing: Sizing | None = None
    cost: Cost | None = None
    time_budget_s: float | None = None  # left for the trials, after the timing
    total_s: float | None = None  # left for the trials and the best trial's training on (search.train_on)

    def record(self) -> dict | None:
        """What ``summary.json`` keeps of the sizing."""
        if self.sizing is None:
            return None
        return {**dataclasses.asdict(self.sizing), "time_budget_s": self.space.search.time_budget,
                "trials_budget_s": self.time_budget_s,
                "cost": None if self.cost is None else dataclasses.asdict(self.cost)}


def fit_budget(space: Space, dataset, nodes: list[dict], local: bool) -> Fitted:
    """Settle what the file leaves ``auto`` (rungs from the set's size; with a time budget, epochs,
    trials and image size from the measured cost of a step): two printed lines, and the data
    loaded again if the images are to be smaller."""
    import torch

    began = time.time()
    n_train, n_val = len(dataset.splits["train"]), len(dataset.splits["val"])
    slots = concurrent_trials(space, nodes)
    total = space.search.time_budget
    # Timed here on a local Ray when this machine has the trials' device (search.measure).
    here = local and (not space.resources.get("gpu") or torch.cuda.is_available())
    cost = measure(space, dataset, here) if total else None
    left = None if total is None else max(total - (time.time() - began), 1.0)
    sizing = size_search(space, n_train, n_val, max(dataset.image_shape), slots, cost, left,
                                concurrent_trials(space, nodes, per_node=True))
    sized = apply(space, sizing)
    print(sizing.rung_line(space.search.reduction_factor, space.search.scheduler), flush=True)
    if cost is not None:
        print(sizing.budget_line(total, cost, largest_batch(space)), flush=True)
        if sizing.short_line():
            print(sizing.short_line(), flush=True)
    if sized.data.image_size != space.data.image_size:
        dataset = prepare_data(sized)
    # Both count from the trials' start (start_search): the timing is paid out of the budget.
    trials_s = sizing.search_s if sizing.train_on_s else left
    return Fitted(sized, dataset, sizing, cost, trials_s, left)

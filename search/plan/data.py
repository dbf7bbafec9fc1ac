"""The search's images: the data source checked before Ray starts, then simulated when the space
names a simulator and the folder is missing, and loaded once (:func:`prepare_data`)."""

from __future__ import annotations

import time

from search.space import Space
from trainable.errors import UserError

def check_data_source(space: Space) -> None:
    """The data folder exists, or the space names a simulator to create it."""
    data = space.data
    if data.path and not data.root.exists() and not data.simulate:
        raise UserError(f"{space.path}: data.path: {data.path} does not exist (and no data.simulate "
                        "names a simulator to create it); point it at your copy with --set data.path=DIR")


def prepare_data(space: Space):
    """Simulate the set if it is missing and the space names a simulator, then load it once."""
    from trainable.data import load_dataset
    from trainable.simulate import simulate

    data = space.data
    if data.path and not data.root.exists() and data.simulate:
        spec = data.simulate if isinstance(data.simulate, dict) else {"kind": data.simulate}
        unknown = set(spec) - {"kind", "n", "seed"}
        if unknown or "kind" not in spec:
            raise UserError(f"{space.path}: data.simulate: must be a simulator name or "
                            "{kind, n, seed}")
        print(f"{data.path} does not exist: simulating a {spec['kind']} set there (data.simulate)",
              flush=True)
        began = time.perf_counter()
        simulate(spec["kind"], data.root, n=spec.get("n"), seed=spec.get("seed", 0))
        print(f"simulated in {time.perf_counter() - began:.0f} s", flush=True)
    began = time.perf_counter()
    dataset = load_dataset(data, where=f"{space.path}: data")
    print(f"data: {dataset.summary()} (loaded in {time.perf_counter() - began:.1f} s)", flush=True)
    if space.metric == "val_tpr10" and dataset.num_classes != 2:
        raise UserError(f"{space.path}: metric: val_tpr10 (the true-positive rate before the tenth false "
                        f"positive) needs two classes; the set has {dataset.num_classes}")
    return dataset

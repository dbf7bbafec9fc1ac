"""How the driver's cost grows with the search: 1,000 near-instant trials through the real driver.

Usage:
    python benchmarks/search_scale.py [--trials 1000] [--concurrency 2] [--epochs 3] [--no-wandb]
                                      [--json FILE] [--profile FILE] [--standalone]

The driver (``search.tune.tuner.build_tuner`` + ``tuner.fit()``, Optuna TPE with the settings a
search uses, ASHA with a grace period of 1 epoch and reduction factor 3, the checkpoints a search
keeps, the W&B callback offline unless ``--no-wandb``) runs ``--trials`` trials of the real
trainable on scikit-learn's digits (8x8, ``simple_cnn``, batch 256: about 0.1 s of training an
epoch), ``--concurrency`` at a time, over a space of ten parameters with conditional ones (what
TPE's suggestion cost grows with). Recorded on the driver:

* each trial's start and end (a Tune ``Callback``) and its own seconds (Ray's ``time_total_s``,
  the time inside the trainable);
* each suggestion's seconds (``PruningOptunaSearch.suggest``: Optuna's TPE over the history).

**Overhead per trial** around trial k (the trials completed k - w .. k + w, w = max(5, k / 20)):
(slots x the wall time between those completions - the trials' own seconds) / trials, the
slot-seconds a trial costs beyond its own training. Printed at trials 10, 100 and 1,000 (or the
search's last), with the median suggestion time there, and the ratio of the last to the first.
``--profile FILE`` writes cProfile statistics of the driver process (``python -m pstats FILE``)
to find where a growing cost goes. CPU only.

``--standalone``: TPE's own cost, without Ray or training. The same searcher
(``search.tune.tuner.build_searcher``, the same journal storage) is driven in this process:
``--concurrency`` trials outstanding (so the constant liar sees pending trials), each told
epochs as ASHA would stop them (two in three at the first rung, 1 epoch; the rest 3) with a
value drawn from the configuration's learning rate and noise. It prints the median suggestion at
trials 10, 100 and 1,000: what a head node with a core to spare would take, beside the figure
under the driver, where the suggestion shares the cores with the training workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import load_space  # noqa: E402

MARKS = (10, 100, 1000)

SPACE = {
    "name": "search_scale",
    "data": {"format": "digits"},
    "metric": "val_accuracy", "mode": "max",
    "trial": {"backbone": "simple_cnn", "batch_size": 256, "threads": 1, "seed": 0,
              "resources": {"cpu": 1, "gpu": 0}},
    "space": {
        "lr": {"loguniform": [1.0e-4, 1.0e-1]},
        "weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
        "drop_rate": {"uniform": [0.0, 0.5]},
        "optimizer": {"choice": ["adam", "ranger"]},
        "scheduler": {"choice": ["exponential", "cosine_warm_restarts"]},
        "gamma": {"uniform": [0.8, 0.99], "when": {"scheduler": "exponential"}},
        "t0": {"int": [2, 10], "when": {"scheduler": "cosine_warm_restarts"}},
        "loss": {"choice": ["ce", "focal"]},
        "focal_gamma": {"uniform": [0.5, 3.0], "when": {"loss": "focal"}},
        "label_smoothing": {"uniform": [0.0, 0.1]},
        "sampling": {"choice": ["none", "oversample", "undersample", "weighted"]},
    },
    "search": {"algorithm": "optuna", "scheduler": "asha", "grace_period": 1, "reduction_factor": 3,
               "seed": 0},
    "final": {"ensemble": 1, "tta": False},
    "wandb": {"project": "lens-search-benchmark", "mode": "offline"},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="a full trial's epochs (ASHA's max_t)")
    parser.add_argument("--no-wandb", action="store_true", help="without the W&B callback")
    parser.add_argument("--json", help="write the per-trial records and the table here")
    parser.add_argument("--profile", help="write the driver's cProfile statistics here")
    parser.add_argument("--standalone", action="store_true",
                        help="time TPE's suggestions alone: no Ray, no training, a core to itself")
    return parser.parse_args(argv)


def instrument():
    """Time every suggestion on the driver: (started trials so far, seconds) per call."""
    from search.tune.searcher import PruningOptunaSearch

    timings: list[tuple[int, float]] = []
    original = PruningOptunaSearch.suggest

    def suggest(self, trial_id):
        began = time.perf_counter()
        out = original(self, trial_id)
        if isinstance(out, dict):
            timings.append((self.started, time.perf_counter() - began))
        return out

    PruningOptunaSearch.suggest = suggest
    return timings


def clock_callback():
    from ray.tune import Callback

    class Clock(Callback):
        """When each trial started and ended, on the driver's clock."""

        def __init__(self):
            self.started: dict[str, float] = {}
            self.ended: dict[str, float] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.started.setdefault(trial.trial_id, time.perf_counter())

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ended[trial.trial_id] = time.perf_counter()

        def on_trial_error(self, iteration, trials, trial, **info):
            self.ended[trial.trial_id] = time.perf_counter()

    return Clock()


def run(args: argparse.Namespace, folder: Path) -> dict:
    import ray

    from search.tune import tuner as driver
    from search.tune.wandb import WandbCallback
    from trainable.data import load_dataset

    raw = {**SPACE, "trial": {**SPACE["trial"], "epochs": args.epochs},
           "search": {**SPACE["search"], "num_samples": args.trials, "max_concurrent": args.concurrency}}
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    space = load_space(path)
    dataset = load_dataset(space.data)
    timings = instrument()
    clock = clock_callback()
    callbacks = [clock]
    if not args.no_wandb:
        callbacks.append(WandbCallback(space.wandb.project, None, space.name, "offline", folder, fixed=space.trial))
    driver.prepare_environment()
    ray.init(address="local", num_cpus=args.concurrency, num_gpus=0, include_dashboard=False,
             log_to_driver=False, configure_logging=False, _temp_dir=str(folder / "ray"))
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
    try:
        tuner = driver.build_tuner(space, dataset, space.name, str(folder / "storage"), callbacks,
                                   journal=folder / "optuna.journal")
        began = time.perf_counter()
        if profile:
            profile.enable()
        grid = tuner.fit()
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
        seconds = time.perf_counter() - began
    finally:
        if len(callbacks) > 1:
            callbacks[1].close()
        ray.shutdown()
    own = {r.metrics.get("trial_id"): r.metrics.get("time_total_s", 0.0) for r in grid}
    epochs = {r.metrics.get("trial_id"): r.metrics.get("epoch", 0) for r in grid}
    trials = sorted((clock.ended[t], clock.started.get(t, clock.ended[t]), own.get(t, 0.0), epochs.get(t, 0), t)
                    for t in clock.ended)
    return {"seconds": seconds, "errors": sum(1 for r in grid if r.error), "trials": trials,
            "suggest": timings, "began": began}


def standalone(args: argparse.Namespace, folder: Path) -> list[tuple[int, float]]:
    """(started trials so far, seconds) of each suggestion of the search's own searcher, told
    ASHA-like results, with no Ray scheduler and no training beside it."""
    import math
    import random

    from search.tune import tuner as driver

    raw = {**SPACE, "trial": {**SPACE["trial"], "epochs": args.epochs},
           "search": {**SPACE["search"], "num_samples": args.trials, "max_concurrent": args.concurrency}}
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    space = load_space(path)
    searcher, _ = driver.build_searcher(space, journal=folder / "optuna.journal")
    rng = random.Random(0)
    timings, pending = [], []

    def finish(trial_id: str, config: dict) -> None:
        epochs = 1 if rng.random() < 2 / 3 else args.epochs
        # Higher near lr 1e-2, with noise: a landscape TPE can learn, whatever its shape.
        value = 0.95 - 0.05 * abs(math.log10(config["lr"]) + 2) + rng.gauss(0, 0.01)
        for epoch in range(1, epochs + 1):
            result = {space.metric: value - 0.02 * (epochs - epoch), "epoch": epoch, "training_iteration": epoch}
            searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result)

    for i in range(args.trials):
        if len(pending) >= args.concurrency:
            finish(*pending.pop(0))
        trial_id = f"t{i:05d}"
        began = time.perf_counter()
        config = searcher.suggest(trial_id)
        timings.append((searcher.started, time.perf_counter() - began))
        pending.append((trial_id, config))
    while pending:
        finish(*pending.pop(0))
    return timings


def window(records: list, k: int, slots: int) -> dict | None:
    """The overhead per trial around the k-th completion (1-based)."""
    n = len(records)
    half = max(5, k // 20)
    lo, hi = max(k - half, 1), min(k + half, n - slots)  # the last trials run with slots idle
    if hi - lo < 4:
        return None
    wall = records[hi - 1][0] - records[lo - 1][0]
    own = sum(r[2] for r in records[lo:hi])
    count = hi - lo
    return {"k": k, "from": lo + 1, "to": hi, "overhead_s": (slots * wall - own) / count,
            "own_s": own / count, "wall_per_trial_s": wall / count}


def suggestion_at(timings: list[tuple[int, float]], k: int) -> float | None:
    near = [s for started, s in timings if abs(started - k) <= max(5, k // 20)]
    return statistics.median(near) if near else None


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.standalone:
        with tempfile.TemporaryDirectory(prefix="search_scale_") as tmp:
            timings = standalone(args, Path(tmp))
        marks = sorted({m for m in MARKS if m <= args.trials} | {args.trials})
        print(f"TPE alone, {args.trials} trials, {args.concurrency} outstanding: median suggestion (ms)")
        print("| around trial | TPE suggestion (ms, median) |")
        print("| --- | --- |")
        for k in marks:
            print(f"| {k} | {1000 * suggestion_at(timings, k):.0f} |")
        return 0
    with tempfile.TemporaryDirectory(prefix="search_scale_") as tmp:
        out = run(args, Path(tmp))
    records = out["trials"]
    n = len(records)
    marks = sorted({m for m in MARKS if m <= n} | {n})
    rows = [w for w in (window(records, k, args.concurrency) for k in marks) if w]
    print(f"{n} trials ({out['errors']} errors) in {out['seconds']:.0f} s, {args.concurrency} at a time, "
          f"{'with' if not args.no_wandb else 'without'} W&B; epochs run: "
          f"{sum(r[3] for r in records)}; mean own seconds a trial {statistics.mean(r[2] for r in records):.2f}")
    print("| around trial | trials | overhead a trial (slot-s) | own seconds a trial | wall s a trial | "
          "TPE suggestion (ms, median) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        suggest = suggestion_at(out["suggest"], row["k"])
        row["suggest_ms"] = None if suggest is None else 1000 * suggest
        print(f"| {row['k']} | {row['from']}-{row['to']} | {row['overhead_s']:.2f} | {row['own_s']:.2f} | "
              f"{row['wall_per_trial_s']:.2f} | {'-' if suggest is None else f'{1000 * suggest:.0f}'} |")
    if len(rows) > 1:
        print(f"overhead at trial {rows[-1]['k']} / at trial {rows[0]['k']}: "
              f"{rows[-1]['overhead_s'] / rows[0]['overhead_s']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, **out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

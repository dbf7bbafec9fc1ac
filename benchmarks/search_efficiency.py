"""Epochs ASHA + TPE spend to reach the best validation value random search finds without early stopping.

Usage:
    python benchmarks/search_efficiency.py [--trials 24] [--epochs 9] [--seeds 3]
                                           [--metric val_loss] [--max-concurrent 2] [--verbose]
                                           [--grace-period 1] [--reduction-factor 3]

Both searches go through the real driver (``search.space.load_space`` on a space file written
here, ``search.driver.build_tuner``, Ray Tune, Optuna), on scikit-learn's digits (no downloads,
the same splits for every search), with ``simple_cnn`` and a space whose configurations differ a
lot (learning rate over four decades, Adam or SGD, batch 16 to 256, weight decay, schedule). For
each search seed, with the same number of trials N and the same epoch budget E:
  random     Optuna's random sampler (search seed s), no scheduler: every trial runs E epochs (a
             trial whose loss stops being finite ends itself, so a few fewer than N * E can be spent);
  ASHA+TPE   Optuna TPE (search seed 1000 + s, so its random startup trials are not random
             search's) told of ASHA's stops (grace period 1, reduction factor 3, max_t = E).
A ``tune.Callback`` logs every result the driver receives, in arrival order: each result is one
trained epoch. B is the best value (over every epoch of every trial) random search finds. For
ASHA+TPE the table gives its best value, the epochs it spent, and the epochs (counted across all
trials, in arrival order) after which it first reported a value at least as good as B; the ratio
divides those by the epochs random search spent. The issue's target: a ratio of 1/3 or less.
The median row is the median of each column over the seeds ("not reached" counts as infinite).

The default metric is ``val_loss`` (minimized): on digits the good configurations land within a
few of the 359 validation images of one another, so accuracy ties near its top (and "at least as
good" becomes a matter of one image) while the loss still ranks them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ray import tune  # noqa: E402

from search import driver  # noqa: E402
from search.space import load_space  # noqa: E402
from trainable.data import load_dataset  # noqa: E402

DATA = {"format": "digits", "val_fraction": 0.2, "test_fraction": 0.2}
# Ranges wide enough that configurations differ a lot: many are useless, a few are good.
SPACE = {
    "optimizer": {"choice": ["adam", "sgd"]},
    "lr": {"loguniform": [1.0e-5, 1.0e-1]},           # log: four decades, from no progress to divergence
    "weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},  # log, likewise
    "batch_size": {"choice": [16, 64, 256]},           # 67 to 4 steps an epoch
    "scheduler": {"choice": ["none", "cosine", "exponential"]},
    "gamma": {"uniform": [0.7, 0.99], "when": {"scheduler": "exponential"}},  # per-epoch decay
}
VARIANTS = {  # name -> search overrides
    "random": {"algorithm": "random", "scheduler": "none"},
    "asha_tpe": {"algorithm": "optuna", "scheduler": "asha", "grace_period": 1, "reduction_factor": 3},
}
# TPE draws its startup trials from a RandomSampler with its own seed: with the random search's
# seed, ASHA+TPE would start with random search's first configurations, bit for bit, and could
# "find" random's best by replaying it. The searches of one seed get independent draws instead.
SEED_OFFSET = {"random": 0, "asha_tpe": 1000}


class ArrivalLog(tune.Callback):
    """Every result the driver receives, in the order it receives them: ``(trial id, value)``.

    Ray calls ``on_trial_result`` for every result, the one that makes ASHA stop a trial included.
    """

    def __init__(self, metric: str):
        self.metric = metric
        self.results: list[tuple[str, float]] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        self.results.append((trial.trial_id, math.nan if value is None else float(value)))


def better_or_equal(value: float, target: float, mode: str) -> bool:
    return value <= target if mode == "min" else value >= target


def best_value(values: list[float], mode: str) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return (min if mode == "min" else max)(finite) if finite else None


def epochs_to_reach(values: list[float], target: float | None, mode: str) -> int | None:
    """Results (epochs) received up to and including the first at least as good as ``target``."""
    if target is None:
        return None
    for count, value in enumerate(values, 1):
        if math.isfinite(value) and better_or_equal(value, target, mode):
            return count
    return None


def write_space(folder: Path, args: argparse.Namespace) -> Path:
    mode = "min" if args.metric in ("val_loss", "train_loss") else "max"
    raw = {
        "name": "search_efficiency",
        "data": DATA,
        "metric": args.metric,
        "mode": mode,
        # One CPU and one thread a trial; the trainable's seed fixed, so only the configuration varies.
        "trial": {"epochs": args.epochs, "backbone": "simple_cnn", "seed": 0, "threads": 1,
                  "resources": {"cpu": 1, "gpu": 0}},
        "space": SPACE,
        "search": {"num_samples": args.trials, "max_concurrent": args.max_concurrent},
        "wandb": {"mode": "disabled"},
    }
    path = folder / "search_efficiency.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_search(space_path: Path, variant: str, seed: int, dataset, storage: Path, verbose: bool) -> dict:
    """One search through the driver; returns its values in arrival order and its seconds."""
    settings = {**VARIANTS[variant], "seed": seed + SEED_OFFSET[variant]}
    overrides = [f"search.{k}={v}" for k, v in settings.items()]
    space = load_space(space_path, overrides)
    name = f"{variant}-seed{seed}"
    log = ArrivalLog(space.metric)
    tuner = driver.build_tuner(space, dataset, name, str(storage), callbacks=[log])
    began = time.perf_counter()
    ray_output = storage / f"{name}.log"
    with open(ray_output, "w") as out, contextlib.redirect_stdout(sys.stdout if verbose else out):
        grid = tuner.fit()  # Ray's trial table goes to the log unless --verbose
    seconds = time.perf_counter() - began
    if grid.num_errors:
        first = str(grid.errors[0]).strip().splitlines()[-1][:200]
        print(f"{name}: {grid.num_errors} trial(s) failed, e.g. {first}", file=sys.stderr)
    values = [v for _, v in log.results]
    print(f"{name}: {len(grid)} trials, {len(values)} epochs, best {space.metric} "
          f"{best_value(values, space.mode)} in {seconds:.0f} s", flush=True)
    return {"values": values, "mode": space.mode, "seconds": seconds}


def compare(random: dict, asha: dict) -> dict:
    mode = random["mode"]
    target = best_value(random["values"], mode)
    reached = epochs_to_reach(asha["values"], target, mode)
    return {
        "random_best": target, "random_epochs": len(random["values"]),
        "random_to_best": epochs_to_reach(random["values"], target, mode),
        "asha_best": best_value(asha["values"], mode), "asha_epochs": len(asha["values"]),
        "asha_to_target": reached,
        "ratio": None if reached is None else reached / len(random["values"]),
    }


def median_row(rows: list[dict]) -> dict:
    """Each column's median over the seeds; "not reached" (None) counts as infinite."""
    out = {}
    for key in rows[0]:
        values = [math.inf if r[key] is None else r[key] for r in rows]
        middle = statistics.median(values)
        out[key] = None if math.isinf(middle) else middle
    return out


def cell(value, digits: int = 0) -> str:
    if value is None:
        return "not reached"
    return f"{value:.{digits}f}"


def print_table(rows: dict, metric: str, args: argparse.Namespace) -> None:
    header = ["seed", f"random: best {metric}", "random: epochs", "random: epochs to its best",
              f"ASHA+TPE: best {metric}", "ASHA+TPE: epochs", "ASHA+TPE: epochs to random's best",
              "ratio (target <= 0.333)"]
    print(f"\n{args.trials} trials, {args.epochs} epochs each at most, {args.max_concurrent} at a time, "
          f"ASHA grace {args.grace_period}, reduction factor {args.reduction_factor:g}; "
          f"simple_cnn on digits; {metric}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for label, r in rows.items():
        print(f"| {label} | {cell(r['random_best'], 4)} | {cell(r['random_epochs'])} | "
              f"{cell(r['random_to_best'])} | {cell(r['asha_best'], 4)} | {cell(r['asha_epochs'])} | "
              f"{cell(r['asha_to_target'])} | {cell(r['ratio'], 3)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="trials per search (N)")
    parser.add_argument("--epochs", type=int, default=9, help="epoch budget of a trial (E, ASHA's max_t)")
    parser.add_argument("--seeds", type=int, default=3, help="search seeds 0 .. SEEDS-1")
    parser.add_argument("--metric", default="val_loss", choices=("val_loss", "val_accuracy", "val_f1"))
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--grace-period", type=int, default=1, help="ASHA's first rung, in epochs")
    parser.add_argument("--reduction-factor", type=float, default=3)
    parser.add_argument("--verbose", action="store_true", help="show Ray's trial table")
    args = parser.parse_args()

    import ray

    driver.prepare_environment()
    began = time.perf_counter()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="search-efficiency-") as folder:
        folder = Path(folder)
        space_path = write_space(folder, args)
        dataset = load_dataset(DATA)
        VARIANTS["asha_tpe"].update(grace_period=args.grace_period, reduction_factor=args.reduction_factor)
        ray.init(address="local", num_cpus=args.max_concurrent, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        try:
            for seed in range(args.seeds):
                runs = {v: run_search(space_path, v, seed, dataset, folder, args.verbose) for v in VARIANTS}
                rows[str(seed)] = compare(runs["random"], runs["asha_tpe"])
        finally:
            ray.shutdown()
    rows["median"] = median_row(list(rows.values()))
    print_table(rows, args.metric, args)
    print(f"\n{time.perf_counter() - began:.0f} s in all")


if __name__ == "__main__":
    main()

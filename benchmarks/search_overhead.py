"""Overhead of the search driver: K trials through Ray Tune against the same K trials in a bare pool.

Usage:
    python benchmarks/search_overhead.py [--data digits|lens] [--trials 8] [--epochs 4]
                                         [--concurrency 2] [--backbone simple_cnn] [--rounds 2]
                                         [--algorithm optuna|random] [--images 2000] [--size N]

The same K configurations (the ``--backbone``, learning rates drawn log-uniformly from a seeded
RNG, everything else fixed, one torch thread each) are trained for the same ``--epochs``, with no
early stopping, by three rows:
  bare loop        ``trainable.train.train`` with a ``LocalReporter`` in a fork pool of
                   ``--concurrency`` processes: the work itself;
  driver (W&B)     ``search.tune.tuner.build_tuner`` + ``tuner.fit()`` on a fresh local Ray with
                   ``--concurrency`` CPUs, one CPU a trial, scheduler none, the K configurations
                   given as ``search.start_from`` (so the searcher proposes exactly them), and a
                   ``WandbCallback`` in offline mode: what ``python -m search.run`` does;
  driver (no W&B)  the same without the callback.
Only ``tuner.fit()`` is timed for the driver rows; Ray's start-up (``ray.init`` and building the
tuner, which puts the data set in the object store) is reported beside it. The W&B cost a trial
is (driver with W&B - driver without) / K, and the time spent inside W&B calls on the driver
(``WandbCallback.seconds``) / K.

Each measurement runs in its own freshly spawned process, as each search does (no W&B service,
Ray state or forked gRPC threads carried from one to the next), and the data set is loaded there
before the clock starts. Each round runs every row, in reversed order every other round (the
machine is shared and noisy); per-round and median ratios to the bare loop are printed.
``--data digits`` (default) is scikit-learn's 8x8 digits, no files and quick: Ray's fixed costs
dominate. ``--data lens`` simulates a lens-finding set (``--images``, default 2000) at 64x64, the
quick start's CPU scale, where the issue's target applies (driver / bare at most 1.15). CPU only.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU benchmark: the bare loop would take a GPU, a trial not

import numpy as np  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from search import load_space  # noqa: E402
from search.space import Space  # noqa: E402
from trainable.data import load_dataset  # noqa: E402

ROWS = ("bare loop", "driver (W&B)", "driver (no W&B)")
LR_RANGE = (3.0e-4, 3.0e-3)
_DATASET = None  # the bare loop's data set, loaded before the pool forks


def learning_rates(trials: int, seed: int) -> list[float]:
    """``trials`` distinct learning rates, log-uniform in LR_RANGE, to 3 significant digits (so a
    YAML round trip keeps them exact)."""
    rng = np.random.default_rng(seed)
    rates: list[float] = []
    while len(rates) < trials:
        rate = float(f"{math.exp(rng.uniform(*np.log(LR_RANGE))):.3g}")
        if rate not in rates:
            rates.append(rate)
    return rates


def data_block(args: argparse.Namespace, folder: Path) -> dict:
    """The ``data:`` block both sides load; for ``lens``, the set is simulated once under ``folder``."""
    if args.data == "digits":
        block = {"format": "digits"}
        if args.size:
            block["image_size"] = args.size
        return block
    from trainable.simulate import simulate

    root = folder / "lens"
    began = time.perf_counter()
    simulate("lens_finding", root, n=args.images, seed=0)
    print(f"simulated {args.images} lens-finding images in {time.perf_counter() - began:.0f} s", flush=True)
    return {"format": "fits_csv", "path": str(root), "image_size": args.size or 64,
            "cache_dir": str(folder / "cache")}


def write_space(args: argparse.Namespace, data: dict, rates: list[float], folder: Path) -> Path:
    """A space file whose searcher proposes exactly the K configurations, with no early stopping."""
    raw = {
        "name": "search_overhead",
        "data": data,
        "metric": "val_auc", "mode": "max",
        "trial": {"backbone": args.backbone, "epochs": args.epochs, "batch_size": args.batch_size,
                  "threads": 1, "seed": 0, "resources": {"cpu": 1, "gpu": 0}},
        "space": {"lr": {"loguniform": [LR_RANGE[0], LR_RANGE[1]]}},
        "search": {"algorithm": args.algorithm, "num_samples": len(rates),
                   "max_concurrent": args.concurrency, "scheduler": "none", "seed": 0,
                   "start_from": [{"lr": rate} for rate in rates]},
        "wandb": {"project": "lens-search-benchmark", "mode": "offline"},
    }
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _bare_trial(job: tuple[dict, str]) -> float:
    from trainable.report import LocalReporter  # imported before the fork (measure_bare)
    from trainable.train import train

    config, folder = job
    began = time.perf_counter()
    train(config, _DATASET, LocalReporter(folder))
    return time.perf_counter() - began


def measure_bare(space_path: str, rates: list[float], folder: str) -> dict:
    """The K trials in a fork pool of ``max_concurrent`` processes; the wall time of the pool."""
    global _DATASET
    import trainable.train  # noqa: F401  imported once here, so the forked processes start warm

    space = load_space(space_path)
    _DATASET = load_dataset(space.data)
    jobs = [({**space.trial, "lr": rate}, os.path.join(folder, f"trial_{i}")) for i, rate in enumerate(rates)]
    began = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(space.search.max_concurrent) as pool:
        trial_seconds = pool.map(_bare_trial, jobs, chunksize=1)
    return {"seconds": time.perf_counter() - began, "trial_seconds": sum(trial_seconds), "startup": 0.0}


def measure_driver(space_path: str, rates: list[float], folder: str, with_wandb: bool) -> dict:
    """``build_tuner`` + ``tuner.fit()`` on a fresh local Ray; only ``fit`` is timed."""
    import ray

    from search.tune import tuner as driver
    from search.tune.wandb import WandbCallback

    space = load_space(space_path)
    dataset = load_dataset(space.data)
    driver.prepare_environment()
    began = time.perf_counter()
    ray.init(address="local", num_cpus=space.search.max_concurrent, num_gpus=0, include_dashboard=False,
             log_to_driver=False, configure_logging=False, _temp_dir=os.path.join(folder, "ray"))
    try:
        callbacks = []
        if with_wandb:
            rows = dataset.splits["val"]  # as search.run builds it: with the end-of-trial plots
            callbacks.append(WandbCallback(space.wandb.project, None, space.name, "offline", folder,
                                           fixed=space.trial,
                                           validation=(dataset.images.numpy(), rows, dataset.labels.numpy()[rows],
                                                       list(dataset.class_names))))
        tuner = driver.build_tuner(space, dataset, space.name, os.path.join(folder, "results"), callbacks)
        startup = time.perf_counter() - began
        began = time.perf_counter()
        grid = tuner.fit()
        seconds = time.perf_counter() - began
    finally:
        ray.shutdown()
    if with_wandb:
        import wandb

        wandb.teardown()  # the W&B service ends with its search, as the command's process does
    check_same_work(grid, space, rates)
    return {"seconds": seconds, "startup": startup,
            "trial_seconds": sum(r.metrics.get("time_total_s", 0.0) for r in grid),
            "wandb_seconds": callbacks[0].seconds if callbacks else 0.0}


def check_same_work(grid, space: Space, rates: list[float]) -> None:
    """Every configuration trained once, for every epoch, without an error."""
    problems = [f"trial {r.metrics.get('trial_id')}: {r.error}" for r in grid if r.error]
    trained = sorted(r.config["lr"] for r in grid)
    if trained != sorted(rates):
        problems.append(f"the driver trained lr {trained}, not {sorted(rates)}")
    epochs = {r.metrics.get("epoch") for r in grid}
    if epochs != {space.epochs}:
        problems.append(f"trials ended after {sorted(epochs, key=str)} epochs, not {space.epochs}")
    if problems:
        raise RuntimeError("; ".join(problems))


def _child(send, fn, args) -> None:
    try:
        send.send(fn(*args))
    except BaseException:
        send.send(RuntimeError(f"{fn.__name__} failed:\n{traceback.format_exc()}"))
    finally:
        send.close()


def isolated(fn, *args) -> dict:
    """``fn(*args)`` in a freshly spawned (non-daemonic, so it may fork its own pool) process."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(send, fn, args))
    process.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:
        result = RuntimeError(f"{fn.__name__} died without a result")
    process.join()
    if isinstance(result, BaseException):
        raise result
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("digits", "lens"), default="digits")
    parser.add_argument("--trials", type=int, default=8, help="K, trials per measurement")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once (1 CPU each)")
    parser.add_argument("--backbone", default="simple_cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--algorithm", choices=("optuna", "random"), default="optuna")
    parser.add_argument("--images", type=int, default=2000, help="simulated images (--data lens)")
    parser.add_argument("--size", type=int, help="image size; default 64 for lens, 8 (native) for digits")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the learning rates")
    args = parser.parse_args()

    rates = learning_rates(args.trials, args.seed)
    with tempfile.TemporaryDirectory(prefix="search-overhead-", ignore_cleanup_errors=True) as tmp:
        folder = Path(tmp)
        for var, sub in (("WANDB_DIR", "wandb"), ("WANDB_CONFIG_DIR", "wandb-config"),
                         ("WANDB_CACHE_DIR", "wandb-cache"), ("WANDB_DATA_DIR", "wandb-data")):
            os.environ[var] = str(folder / sub)
        space_path = str(write_space(args, data_block(args, folder), rates, folder))
        samples: dict[str, list[dict]] = {row: [] for row in ROWS}
        for round_ in range(args.rounds):
            order = ROWS if round_ % 2 == 0 else ROWS[::-1]
            for row in order:
                where = str(folder / f"round{round_}-{ROWS.index(row)}")
                if row == "bare loop":
                    result = isolated(measure_bare, space_path, rates, where)
                else:
                    result = isolated(measure_driver, space_path, rates, where, row == "driver (W&B)")
                samples[row].append(result)
                print(f"round {round_ + 1}: {row}: {result['seconds']:.1f} s", flush=True)
    report(args, samples)


def report(args: argparse.Namespace, samples: dict[str, list[dict]]) -> None:
    k = args.trials
    bare = [s["seconds"] for s in samples["bare loop"]]
    size = args.size or (64 if args.data == "lens" else 8)
    print(f"\n{k} trials x {args.epochs} epochs, {args.backbone}, {args.data} {size}x{size}, "
          f"{args.concurrency} at once (1 CPU, 1 thread each), search {args.algorithm}, "
          f"{args.rounds} round(s); medians\n")
    print("| row | seconds | ratio to bare | per-round ratios | trial seconds (sum) | Ray start-up s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in ROWS:
        seconds = [s["seconds"] for s in samples[row]]
        ratios = [s / b for s, b in zip(seconds, bare)]
        startup = "-" if row == "bare loop" else f"{statistics.median(s['startup'] for s in samples[row]):.1f}"
        print(f"| {row} | {statistics.median(seconds):.1f} | {statistics.median(ratios):.3f} | "
              f"{', '.join(f'{r:.3f}' for r in ratios)} | "
              f"{statistics.median(s['trial_seconds'] for s in samples[row]):.1f} | {startup} |")
    with_wandb = [s["seconds"] for s in samples["driver (W&B)"]]
    without = [s["seconds"] for s in samples["driver (no W&B)"]]
    per_trial = statistics.median((w - n) / k for w, n in zip(with_wandb, without))
    inside = statistics.median(s["wandb_seconds"] / k for s in samples["driver (W&B)"])
    print(f"\nW&B cost a trial: {per_trial:.2f} s of wall time ((with - without) / {k}); "
          f"{inside:.2f} s inside W&B calls on the driver (WandbCallback.seconds / {k})")


if __name__ == "__main__":
    main()

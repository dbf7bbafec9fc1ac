"""What each way of handing a data set to a trial costs the trial: start-up time and private memory.

    python benchmarks/data_sharing.py [--n 4000] [--size 101] [--repeats 3]

A lens-finding set is simulated (or ``--path`` names one), loaded once, and a Ray task (a fresh
worker process, as a trial) obtains it in each way, then reads every pixel once (as an epoch
does):

* ``copy`` (the bare baseline): the task reads the normalized array from a ``.npy`` file into
  its own memory, as a trial that loads the set itself would.
* ``object store`` (``data.share: object_store``): ``ray.get`` of the set the driver put once,
  what ``tune.with_parameters`` does.
* ``mapped`` (``data.share: path``): ``load_dataset(mapped=True)``, the node's memory-mapped,
  normalized cache entry (warm, as for every trial of a node but the first).

Reported: the median time to obtain the set (ratio to ``copy``) and the task's anonymous
(private) memory after touching every pixel, from ``/proc/self/status`` (``RssAnon``): a copy
costs the set's size per trial; the shared ways cost near nothing, the pages being the object
store's shared memory or the page cache's file pages, one copy per node.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--size", type=int, default=101)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--path", help="a fits_csv set to use instead of a simulated one")
    args = parser.parse_args()

    import ray

    from trainable.data import load_dataset
    from trainable.data.config import DataConfig
    from trainable.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix="data-sharing-"))
    os.environ["LENS_SEARCH_CACHE"] = str(work / "cache")
    root = Path(args.path) if args.path else work / "lens"
    if not args.path:
        simulate("lens_finding", root, n=args.n, seed=0)
    config = DataConfig.from_mapping({"format": "fits_csv", "path": str(root), "normalization": "asinh",
                                      "image_size": args.size})
    dataset = load_dataset(config)
    load_dataset(config, mapped=True)  # warm the node's normalized entry, as the first trial would
    copy_file = work / "images.npy"
    np.save(copy_file, dataset.images.numpy())
    size_mb = dataset.images.numpy().nbytes / 1e6

    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"LENS_SEARCH_CACHE": os.environ["LENS_SEARCH_CACHE"]}})
    ref = ray.put(dataset)

    @ray.remote(num_cpus=1, max_calls=1)  # a fresh process each time, as a new trial actor
    def obtain(mode: str, shared) -> tuple[float, float, float]:
        before = anon_mb()
        began = time.perf_counter()
        if mode == "copy":
            images = np.load(copy_file)
        elif mode == "object store":
            images = ray.get(shared[0]).images.numpy()
        else:
            images = load_dataset(config, mapped=True).images.numpy()
        elapsed = time.perf_counter() - began
        total = 0.0
        for start in range(0, len(images), 256):  # an epoch reads every image once
            total += float(images[start:start + 256].sum())
        return elapsed, anon_mb() - before, total

    print(f"set: {len(dataset.labels)} images of {dataset.in_chans}x{args.size}x{args.size} float32 = "
          f"{size_mb:.0f} MB; {args.repeats} fresh worker processes per way")
    results = {}
    for _ in range(args.repeats):  # interleaved, so the machine's noise hits every way alike
        for mode in ("copy", "object store", "mapped"):
            elapsed, anon, total = ray.get(obtain.remote(mode, [ref]))
            results.setdefault(mode, []).append((elapsed, anon, total))
    ray.shutdown()
    totals = {mode: runs[0][2] for mode, runs in results.items()}
    assert len({round(t, 1) for t in totals.values()}) == 1, f"the ways disagree on the pixels: {totals}"
    base = statistics.median(r[0] for r in results["copy"])
    print(f"{'way':14s} {'obtain (median)':>16s} {'vs copy':>8s} {'private memory':>15s}")
    for mode, runs in results.items():
        elapsed = statistics.median(r[0] for r in runs)
        anon = statistics.median(r[1] for r in runs)
        print(f"{mode:14s} {elapsed * 1000:13.1f} ms {elapsed / base:8.3f} {anon:11.0f} MB")


if __name__ == "__main__":
    main()

"""The README's quick start, measured: the whole search on a machine without a GPU, and the space's
default configuration trained for the same epochs on the same data.

Usage:
    python benchmarks/quickstart.py [--space spaces/lens_finding.yaml] [--keep DIR]

Runs, in a fresh folder (so the set is simulated as a newcomer's first run simulates it),

1. ``python -m search.run SPACE`` (GPUs hidden: the space's ``cpu:`` block applies), timed from
   the command's start to its exit, simulation and Ray start-up included;
2. ``python -m search.run SPACE --name default --set search.num_samples=1 --set
   search.scheduler=none``: the space's default configuration (its first ``start_from``) alone,
   trained for every epoch of the budget, picked and tested exactly as the search's best is.

Prints both test results (ROC AUC, accuracy, macro F1) from the two ``summary.json`` files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(workdir: Path, *args: str) -> float:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
           "PYTHONPATH": str(ROOT)}
    began = time.perf_counter()
    with open(workdir / "run.log", "a") as log:
        subprocess.run([sys.executable, "-m", "search.run", *args], cwd=workdir, env=env, check=True,
                       stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="spaces/lens_finding.yaml")
    parser.add_argument("--keep", help="run in this folder and keep it")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="quickstart-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "spaces", workdir / "spaces", dirs_exist_ok=True)
    os.environ.setdefault("LENS_SEARCH_CACHE", str(workdir / "cache"))
    try:
        search_s = run(workdir, args.space)
        default_s = run(workdir, args.space, "--name", "default", "--set", "search.num_samples=1",
                        "--set", "search.scheduler=none")
        name = next(p for p in (workdir / "results").iterdir() if p.name != "default").name
        search = json.loads((workdir / "results" / name / "summary.json").read_text())
        default = json.loads((workdir / "results/default/summary.json").read_text())
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    epochs = sum(t["epochs"] for t in search["trials"])
    print(f"`python -m search.run {args.space}` on {os.cpu_count()} cores, no GPU: "
          f"{search_s:.0f} s ({search_s / 60:.1f} min), {search['num_trials']} trials, {epochs} epochs; "
          f"the default configuration alone: {default_s:.0f} s\n")
    print("| model | epochs trained | val " + search["metric"] + " | test ROC AUC | test accuracy | test macro F1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, summary in (("best of the search", search), ("default configuration", default)):
        best = next(t for t in summary["trials"] if t["trial_id"] == summary["best_trial"])
        test = summary["test"]
        print(f"| {label} | {best['epochs']} (best at {summary['best_val']['epoch']}) | "
              f"{summary['best_val'][summary['metric']]:.4f} | {test['auc']:.4f} | {test['accuracy']:.4f} | "
              f"{test['f1_macro']:.4f} |")
    print(f"\nbest configuration: {json.dumps(search['best_config'])}")


if __name__ == "__main__":
    main()

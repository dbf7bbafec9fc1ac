"""Where ASHA's first rung can go: how well a trial's value after a given amount of training
ranks it against its final value.

Usage:
    python benchmarks/rung_correlation.py --space spaces/lens_finding.yaml --trials 10 --epochs 12 \\
        --set cpu.data.simulate.n=900 --set cpu.trial.batch_size=32 [--keep DIR]

Runs ``python -m search.run SPACE`` (GPUs hidden: the ``cpu:`` block applies) as random search
with no early stopping (``search.algorithm=random``, ``search.scheduler=none``): every trial trains
every epoch. Then, for every epoch e, the Spearman rank correlation across trials between the
value of the search's metric at epoch e and the trial's final value (its best epoch's value, what
the search ranks by). A rung placed where the correlation is high stops the trials that would have
ended low; one placed where it is near 0 stops trials at random.

Prints a Markdown table: epoch, optimizer steps and samples seen by then, the correlation with the
final value, and the spread of the values at that epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]


def run_search(workdir: Path, space: str, name: str, trials: int, epochs: int, sets: list[str]) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "search.run", space, "--name", name,
               "--set", "search.algorithm=random", "--set", "search.scheduler=none",
               "--set", f"search.num_samples={trials}", "--set", f"trial.epochs={epochs}",
               "--set", f"cpu.trial.epochs={epochs}", "--set", "search.time_budget=null",
               "--set", "cpu.search.time_budget=null"]
    for pair in sets:
        command += ["--set", pair]
    with open(workdir / f"{name}.log", "w") as log:
        subprocess.run(command, cwd=workdir, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)


def histories(folder: Path, metric: str) -> list[list[float]]:
    """Every trial's value of ``metric`` at each epoch, from the results folder's ``history.csv``."""
    history = pd.read_csv(folder / "history.csv").sort_values(["trial", "epoch"])
    return [group[metric].tolist() for _, group in history.groupby("trial")]


def correlations(values: list[list[float]], mode: str) -> list[dict]:
    """Per epoch: Spearman correlation of the epoch's value with each trial's final (best) value."""
    epochs = min(len(v) for v in values)
    table = np.array([v[:epochs] for v in values])
    best = table.max(1) if mode == "max" else table.min(1)
    rows = []
    for e in range(epochs):
        rho = spearmanr(table[:, e], best).statistic if np.ptp(table[:, e]) > 0 else float("nan")
        rows.append({"epoch": e + 1, "rho": float(rho), "low": float(table[:, e].min()),
                     "high": float(table[:, e].max())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="spaces/lens_finding.yaml")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--set", action="append", default=[], help="passed to search.run")
    parser.add_argument("--label", default="rungs")
    parser.add_argument("--keep", help="run in this folder and keep it")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="rungs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "spaces", workdir / "spaces", dirs_exist_ok=True)
    os.environ.setdefault("LENS_SEARCH_CACHE", str(workdir / "cache"))
    try:
        run_search(workdir, args.space, args.label, args.trials, args.epochs, args.set)
        summary = json.loads((workdir / "results" / args.label / "summary.json").read_text())
        values = histories(workdir / "results" / args.label, summary["metric"])
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    n_train, batch = summary["data"]["splits"]["train"], summary["trial_settings"]["batch_size"]
    steps = max(n_train // batch, 1)
    print(f"{args.space} {' '.join(args.set)}: {len(values)} trials, {n_train} training images, "
          f"batch {batch} ({steps} optimizer steps per epoch)\n")
    print(f"| epoch | steps | samples | Spearman with final {summary['metric']} | range at the epoch |")
    print("| --- | --- | --- | --- | --- |")
    for row in correlations(values, summary["mode"]):
        print(f"| {row['epoch']} | {row['epoch'] * steps} | {row['epoch'] * steps * batch} | {row['rho']:.2f} | "
              f"{row['low']:.3f}-{row['high']:.3f} |")


if __name__ == "__main__":
    main()

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

Prints a Markdown table: epoch, optimizer steps by then, the correlation with the final value of
the epoch's own value and of the best value so far, and the spread of the values at that epoch.
``--results DIR`` reads a finished search's results folder instead of running one.
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
    """Per epoch: Spearman correlation with each trial's final (best) value of the epoch's value
    (what ASHA compares at a rung) and of the best value so far (``best_<metric>``)."""
    epochs = min(len(v) for v in values)
    table = np.array([v[:epochs] for v in values])
    if mode == "min":
        table = -table
    so_far = np.maximum.accumulate(table, axis=1)
    final = table.max(1)

    def rho(column: np.ndarray) -> float:
        return float(spearmanr(column, final).statistic) if np.ptp(column) > 0 else float("nan")

    sign = -1 if mode == "min" else 1
    return [{"epoch": e + 1, "rho": rho(table[:, e]), "rho_best": rho(so_far[:, e]),
             "low": float(sign * table[:, e].min()), "high": float(sign * table[:, e].max())}
            for e in range(epochs)]


def print_table(folder: Path, label: str) -> None:
    summary = json.loads((folder / "summary.json").read_text())
    values = histories(folder, summary["metric"])
    n_train, batch = summary["data"]["splits"]["train"], summary["trial_settings"]["batch_size"]
    steps = max(n_train // batch, 1)
    print(f"{label}: {len(values)} trials, {n_train} training images of {summary['data']['image_shape'][0]} px, "
          f"batch {batch} ({steps} optimizer steps per epoch)\n")
    print(f"| epoch | steps | Spearman with the final {summary['metric']}: the epoch's value | best so far | "
          "range at the epoch |")
    print("| --- | --- | --- | --- | --- |")
    for row in correlations(values, summary["mode"]):
        print(f"| {row['epoch']} | {row['epoch'] * steps} | {row['rho']:.2f} | {row['rho_best']:.2f} | "
              f"{row['low']:.3f}-{row['high']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="spaces/lens_finding.yaml")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--set", action="append", default=[], help="passed to search.run")
    parser.add_argument("--label", default="rungs")
    parser.add_argument("--keep", help="run in this folder and keep it")
    parser.add_argument("--results", help="only read a finished search's results folder")
    args = parser.parse_args()
    if args.results:
        print_table(Path(args.results), args.results)
        return
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="rungs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "spaces", workdir / "spaces", dirs_exist_ok=True)
    os.environ.setdefault("LENS_SEARCH_CACHE", str(workdir / "cache"))
    try:
        run_search(workdir, args.space, args.label, args.trials, args.epochs, args.set)
        print_table(workdir / "results" / args.label, f"{args.space} {' '.join(args.set)}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

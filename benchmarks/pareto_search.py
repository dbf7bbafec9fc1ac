"""Accuracy against inference cost: the quick start as a two-objective search (``val_auc`` and
``throughput``) over backbones of different cost, early stopping by ASHA on the metric alone
against MO-ASHA on both (search.pareto).

Usage:
    python benchmarks/pareto_search.py [--scheduler asha --scheduler mo_asha] [--seed 0] [--keep DIR] [--json F]

For each scheduler, in one folder whose simulated set (the quick start's 900 lens images) all
runs share, with GPUs hidden (the space's ``cpu:`` block applies), W&B off:

    python -m search.run spaces/lens_finding.yaml --set 'objectives=[{val_auc: max}, {throughput: max}]'
        --set 'cpu.space.backbone={choice: [resnet10t, simple_cnn]}'
        --set 'cpu.space.cnn_width={choice: [8, 16, 32], when: {backbone: simple_cnn}}'
        --set 'cpu.space.cnn_depth={choice: [3, 4], when: {backbone: simple_cnn}}'
        --set 'cpu.search.start_from=[{backbone: resnet10t, ...},
                                      {backbone: simple_cnn, cnn_width: 16, cnn_depth: 4, ...},
                                      {backbone: simple_cnn, cnn_width: 8, cnn_depth: 3, ...}]'
        --set search.scheduler=SCHEDULER --set search.seed=SEED

(``...``: the quick start's default, Adam at 1e-3, ExponentialLR 0.95, BCE, no resampling.)

and reads its ``summary.json``: the trials, the Pareto set, its hypervolume, and the final model's
test metrics. Prints one Markdown row per run. The hypervolume is the area the front dominates in
(validation AUC above 0.5) x (decades of throughput above half the default network's, resnet10t,
in the same run). Throughput relative to a network timed in the same run, because this shared
machine ran one whole search at half the speed of another.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "optimizer: adam, lr: 1.0e-3, scheduler: exponential, gamma: 0.95, loss: bce, sampling: none"
SETS = ["objectives=[{val_auc: max}, {throughput: max}]",
        # resnet10t and six simple_cnn networks: 1.5 to 113 MFLOPs an image at 48 px.
        "cpu.space.backbone={choice: [resnet10t, simple_cnn]}",
        "cpu.space.cnn_width={choice: [8, 16, 32], when: {backbone: simple_cnn}}",
        "cpu.space.cnn_depth={choice: [3, 4], when: {backbone: simple_cnn}}",
        # The quick start's default first, then one start at each end of the cheap networks: a
        # front needs its cheap end tried, and a 9-minute search holds about 20 trials.
        f"cpu.search.start_from=[{{backbone: resnet10t, {DEFAULT}}}, "
        f"{{backbone: simple_cnn, cnn_width: 16, cnn_depth: 4, {DEFAULT}}}, "
        f"{{backbone: simple_cnn, cnn_width: 8, cnn_depth: 3, {DEFAULT}}}]"]


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """The area two maximised objectives' points dominate above ``reference`` (2-D: a sweep)."""
    area, best_y = 0.0, reference[1]
    for x, y in sorted(points, key=lambda p: -p[0]):  # from the largest x down
        if y > best_y and x > reference[0]:
            area += (x - reference[0]) * (y - best_y)
            best_y = y
    return area


def run(scheduler: str, seed: int, workdir: Path) -> dict:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    name = f"pareto_{scheduler}_{seed}"
    args = [sys.executable, "-m", "search.run", str(ROOT / "spaces/lens_finding.yaml"), "--name", name,
            "--set", f"search.scheduler={scheduler}", "--set", f"search.seed={seed}"]
    for pair in SETS:
        args += ["--set", pair]
    began = time.perf_counter()
    proc = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True)
    (workdir / f"{name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}); see {workdir / (name + '.log')}")
    summary = json.loads((workdir / "results" / name / "summary.json").read_text())
    return {"scheduler": scheduler, "seed": seed, "seconds": time.perf_counter() - began, "summary": summary,
            "report": str(workdir / "results" / name / "report" / "pareto.png")}


def describe(result: dict) -> dict:
    summary = result["summary"]
    trials = [t for t in summary["trials"] if t["best"] is not None and t.get("costs", {}).get("throughput")]
    front = summary["pareto"]
    default = next(t for t in trials if t["config"].get("backbone") == "resnet10t")["costs"]["throughput"]
    points = [(r["val_auc"] - 0.5, math.log10(r["throughput"] / default) - math.log10(0.5)) for r in front]
    test = summary.get("test") or {}
    by_backbone: dict[str, int] = {}
    for t in trials:
        by_backbone[t["config"].get("backbone")] = by_backbone.get(t["config"].get("backbone"), 0) + 1
    return {"scheduler": result["scheduler"], "seed": result["seed"], "seconds": round(result["seconds"]),
            "trials": len(trials), "epochs": sum(t["epochs"] for t in summary["trials"]), "backbones": by_backbone,
            "front": [(r["trial_id"], r.get("backbone"), round(r["val_auc"], 4), round(r["throughput"]), r["epochs"])
                      for r in front],
            "hypervolume": hypervolume(points, (0.0, 0.0)), "default_throughput": default,
            "best_val_auc": max(t["best"] for t in trials),
            "test_auc": test.get("auc"), "test_accuracy": test.get("accuracy"),
            "confusion_matrix": test.get("confusion_matrix"), "model_costs": summary.get("model_costs"),
            "pareto_png": result["report"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheduler", action="append", choices=["asha", "mo_asha"])
    parser.add_argument("--seed", type=int, action="append")
    parser.add_argument("--keep", type=Path, help="keep the runs here (default a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="pareto-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = [run(s, seed, workdir) for seed in (args.seed or [0]) for s in (args.scheduler or ["asha", "mo_asha"])]
    rows = [describe(r) for r in results]
    print("| scheduler | seed | trials (by backbone) | epochs | front | hypervolume | best val AUC | test AUC | "
          "test accuracy | final model img/s | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        backbones = ", ".join(f"{k} {v}" for k, v in sorted(row["backbones"].items()))
        speed = (row["model_costs"] or {}).get("throughput")
        print(f"| {row['scheduler']} | {row['seed']} | {row['trials']} ({backbones}) | {row['epochs']} | "
              f"{len(row['front'])} | {row['hypervolume']:.3f} | {row['best_val_auc']:.3f} | {row['test_auc']:.3f} | "
              f"{row['test_accuracy']:.3f} | {speed or 0:,.0f} | {row['seconds']} |")
    for row in rows:
        print(f"{row['scheduler']} seed {row['seed']} front (trial, backbone, val AUC, img/s, epochs): {row['front']}")
        print(f"  pareto.png: {row['pareto_png']}; confusion matrix {row['confusion_matrix']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

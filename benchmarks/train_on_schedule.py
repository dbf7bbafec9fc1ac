"""Does fitting the learning-rate schedule to the end of the budget help a trial that trains on?

Usage (from the folder the search ran in: the space's data path is relative to it):
    python benchmarks/train_on_schedule.py results/search --out /tmp/tos [--holdout DIR]

Replays the training-on stage (:mod:`search.train_on`) of a finished search twice, from the same
checkpoint of the same trial (the one the search trained on), for the same seconds on the same
threads (the search's ``train_on/record.json``; ``--seconds``, ``--threads`` to change them):

- ``as searched``: the schedule goes on as the trial left it (the stage before
  :func:`trainable.optim.end_with`);
- ``fitted``: its last cycle is fitted to end with the budget (the stage now).

Each run trains in this process (no Ray task: the same code, the first variant with ``end_with``
switched off), writes its epochs into a copy of the results folder, and that copy is finalized
again with ``python -m search.final`` (the space's ``final:`` block). Prints a Markdown row per
variant: epochs trained on, the best validation value and its epoch, the final model's test
metrics and, with ``--holdout`` (a folder of another simulated set, as
``benchmarks/search_vs_default.py`` makes), its metrics there. ``--json`` writes them all.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = ("as searched", "fitted")


def replay(results: Path, out: Path, variant: str, seconds: float | None, threads: int | None) -> dict:
    """Train the search's trained-on trial on again into a copy of ``results`` and finalize it."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    import trainable.train
    from search.files import SPACE_COPY, SUMMARY_FILE
    from search import finalize, load_space
    from search.results.records import rank, trial_records
    from search.results.train_on import trial_config
    from search.plan.data import prepare_data
    from search.files import TRAIN_ON_DIR, TRAIN_ON_RECORD as RECORD_FILE
    from search.results.train_on import continue_trial, keep
    from trainable.optim import end_with

    record = json.loads((results / TRAIN_ON_DIR / RECORD_FILE).read_text())
    seconds = record["budget_s"] if seconds is None else seconds
    space = load_space(results / SPACE_COPY, has_gpu=True)  # resolved when the search ran
    threads = threads or max(1, int(space.resources.get("cpu", 1) * record["widen"]))
    summary = json.loads((results / SUMMARY_FILE).read_text())
    dataset = prepare_data(space)
    grid = ResultGrid(ExperimentAnalysis(summary["experiment_path"]))
    ranked = rank(trial_records(grid, space, dataset.split("val")[1].numpy()), space.mode)
    best = next(r for r in ranked if r["trial_id"] == record["trial_id"])
    result = next(r for r in grid if r.path == best["path"])
    folder = out / variant.replace(" ", "_")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(results, folder, ignore=shutil.ignore_patterns(TRAIN_ON_DIR))
    bound = best["epochs"] + 10_000
    config = trial_config(space, result, epochs=bound, threads=threads)
    trainable.train.end_with = end_with if variant == "fitted" else (lambda scheduler, epochs: None)
    began = time.perf_counter()
    files, history = continue_trial(config, space.metric, space.mode, result.checkpoint,
                                    time.time() + seconds, dataset=dataset)
    how = {"seconds": time.perf_counter() - began, "budget_s": seconds, "widen": record["widen"]}
    kept = keep(folder, best, space.metric, files, history, how)
    finalize(folder)
    final = json.loads((folder / SUMMARY_FILE).read_text())
    return {"variant": variant, "folder": str(folder), "threads": threads, "train_on": kept,
            "curve": [round(h[space.metric], 4) for h in history], "test": final["test"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a finished search's results folder that trained on")
    parser.add_argument("--out", type=Path, required=True, help="where the two copies go")
    parser.add_argument("--seconds", type=float, help="the training on's time (default: the search's)")
    parser.add_argument("--threads", type=int, help="its threads (default: the search's)")
    parser.add_argument("--holdout", type=Path, help="a held-out simulated set's folder")
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="default: both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for variant in args.variant or VARIANTS:
        row = replay(args.results, args.out, variant, args.seconds, args.threads)
        if args.holdout:
            from search_vs_default import holdout_metrics

            data = yaml.safe_load((args.results / "space.yaml").read_text())["data"]
            row["holdout"] = holdout_metrics(Path(row["folder"]) / "best_model.pt", data, args.holdout)
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("variant", "train_on", "curve")}), flush=True)
    print("| schedule | epochs trained on | best val (epoch) | test AUC | test accuracy | held-out AUC | held-out accuracy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        on, test, held = row["train_on"], row["test"], row.get("holdout", {})
        print(f"| {row['variant']} | {on['from_epoch'] + 1}-{on['to_epoch']} | {on['best_after']:.4f} "
              f"({on['best_epoch_after']}) | {test['auc']:.3f} | {test['accuracy']:.3f} | "
              f"{held.get('auc', math.nan):.3f} | {held.get('accuracy', math.nan):.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What ASHA's rungs decide on recorded learning curves, with and without a noise margin.

Usage:
    python benchmarks/rung_margin.py --results DIR [--grace 2 --reduction-factor 3 --max-t 18]
    python benchmarks/rung_margin.py --digits [--trials 20 --grace 3 --max-t 9]

Replays asynchronous successive halving (ASHA, as Ray's ``AsyncHyperBandScheduler`` decides:
a trial reaching a rung stops if its value there, the best so far, is below the
``1 - 1/reduction_factor`` percentile of the values recorded at that rung before it) over
learning curves recorded with no early stopping, in many random orders of arrival, once as Ray
decides and once with the project's margin (``search.scheduler.MarginASHA``: a trial stops only
when it is below that cutoff by more than one standard error of the validation metric there,
``trainable.metrics.standard_error``). For each rule, over the orders:

- **winner cut**: the share of orders in which the trial with the best final value (its best over
  every epoch recorded) is stopped at a rung;
- **default cut**: the same for the space's default configuration (the first curve, when it is);
- **best final missed**: the share of orders in which the picked trial's final value is below the
  best final value;
- **picked final**: the final value of the trial the search would pick (the best value at the
  epochs it reached), as it would be after training on; its mean over the orders;
- **different picks**: the number of distinct trials picked over the orders (1: the order does
  not matter);
- **epochs**: the epochs the search trained, mean over the orders (the margin costs epochs).

``--results DIR``: a results folder of ``benchmarks/rung_correlation.py --keep`` (every trial
trained every epoch); the validation labels are read from the set its ``space.yaml`` names.
``--digits``: random draws of ``--trials`` curves (with ``--draws`` draws) from the table of
324 digits configurations ``benchmarks/search_efficiency.py record`` caches, metric validation
accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray.tune.schedulers import ASHAScheduler  # noqa: E402

from search.tune.schedulers.margin_asha import MarginASHA  # noqa: E402
from search.plan import rungs as asha_rungs  # noqa: E402


class Trial:
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def replay(curves: np.ndarray, order: np.ndarray, make_scheduler, budget: int | None = None) -> tuple[np.ndarray, int]:
    """One search through a real scheduler (``make_scheduler()``: Ray's ASHA or the project's
    MarginASHA, on ``best``, mode max): trials in ``order``, one at a time (asynchronous ASHA
    with one trial running), each reporting its recorded best-so-far curve (``curves``, higher
    better, one row per trial) until the scheduler stops it; with ``budget``, no trial starts once
    that many epochs are trained. Returns each trial's epochs
    reached (0: not run) and the epochs trained."""
    from ray.tune.schedulers import TrialScheduler

    scheduler = make_scheduler()
    reached = np.zeros(len(curves), dtype=int)
    for t in order:
        if budget is not None and reached.sum() >= budget:
            break
        trial = Trial(str(t))
        scheduler.on_trial_add(None, trial)
        for epoch, value in enumerate(curves[t], start=1):
            reached[t] = epoch
            if scheduler.on_trial_result(None, trial, {"epoch": epoch, "best": float(value)}) == TrialScheduler.STOP:
                break
        scheduler.on_trial_remove(None, trial)
    return reached, int(reached.sum())


def summarise(curves: np.ndarray, make_scheduler, orders: int, rng, default: int | None,
              budget: int | None = None) -> dict:
    """The figures of the module's docstring over ``orders`` random orders; the winner is the
    best final value among the trials that ran (with ``budget``, a part of ``curves``)."""
    final = curves[:, -1]
    cut = cut_default = missed = 0
    picks, picked_final, best_final, epochs = [], [], [], []
    for _ in range(orders):
        reached, spent = replay(curves, rng.permutation(len(curves)), make_scheduler, budget)
        ran = reached > 0
        seen = np.where(ran, curves[np.arange(len(curves)), np.maximum(reached, 1) - 1], -np.inf)
        pick, winner = int(np.argmax(seen)), int(np.argmax(np.where(ran, final, -np.inf)))
        cut += reached[winner] < curves.shape[1]
        cut_default += default is not None and 0 < reached[default] < curves.shape[1]
        missed += final[pick] < final[winner]
        picks.append(pick)
        picked_final.append(final[pick])
        best_final.append(final[winner])
        epochs.append(spent)
    return {"winner_cut": cut / orders, "default_cut": cut_default / orders if default is not None else None,
            "picked_final": float(np.mean(picked_final)), "best_final": float(np.mean(best_final)),
            "missed": missed / orders, "picks": len(set(picks)), "epochs": float(np.mean(epochs))}


def from_results(folder: Path) -> tuple[np.ndarray, str, np.ndarray, int | None]:
    """Best-so-far curves (higher better), the metric, the validation labels, the default's row."""
    from search.results.records import is_default
    from trainable.data import load_dataset

    summary = json.loads((folder / "summary.json").read_text())
    metric, mode = summary["metric"], summary["mode"]
    history = pd.read_csv(folder / "history.csv").sort_values(["trial", "epoch"])
    values = [g[metric].to_numpy() for _, g in history.groupby("trial")]
    ids = [t for t, _ in history.groupby("trial")]
    epochs = min(len(v) for v in values)
    table = np.array([v[:epochs] for v in values]) * (-1 if mode == "min" else 1)
    data = yaml.safe_load((folder / "space.yaml").read_text())["data"]
    # A relative path is the search's working folder's (results/NAME two levels under it).
    data["path"] = str(folder.resolve().parents[1] / data["path"])
    labels = load_dataset(data).split("val")[1].numpy()
    start_from = (yaml.safe_load((folder / "space.yaml").read_text()).get("search") or {}).get("start_from")
    default = next((ids.index(t["trial_id"]) for t in summary["trials"]
                    if start_from and t["trial_id"] in ids and is_default(t["config"], start_from[0])), None)
    return np.maximum.accumulate(table, axis=1), metric, labels, default


def from_digits(trials: int | None, draws: int, rng) -> tuple[list[np.ndarray], str, np.ndarray]:
    """``draws`` random sets of ``trials`` curves of validation accuracy from the digits table (None:
    the whole table once)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from search_efficiency import task_data
    from trainable.data import load_dataset

    path = next(iter(sorted((ROOT / "benchmarks" / ".cache").glob("curves-digits-*.json"))), None)
    if path is None:
        raise SystemExit("no digits table: run python benchmarks/search_efficiency.py record first")
    table = json.loads(path.read_text())
    curves = np.array([[row["val_accuracy"] for row in curve] for curve in table["curves"].values()])
    labels = load_dataset(task_data("digits")).split("val")[1].numpy()
    curves = np.maximum.accumulate(curves, axis=1)
    if trials is None:
        return [curves], "val_accuracy", labels
    sets = [curves[rng.choice(len(curves), trials, replace=False)] for _ in range(draws)]
    return sets, "val_accuracy", labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", help="a results folder with every trial trained every epoch")
    parser.add_argument("--digits", action="store_true", help="draws from the cached digits table")
    parser.add_argument("--trials", type=int, default=20, help="--digits: curves a draw")
    parser.add_argument("--draws", type=int, default=200, help="--digits: draws")
    parser.add_argument("--budget", type=int, help="no trial starts once this many epochs are trained (with --digits: drawn from all the curves), "
                        "equal compute for every rule")
    parser.add_argument("--grace", type=int, default=1)
    parser.add_argument("--reduction-factor", type=float, default=3)
    parser.add_argument("--max-t", type=int, help="epochs of a full trial (default: the curves' length)")
    parser.add_argument("--margins", type=float, nargs="+", default=[1.0],
                        help="MarginASHA's margins to replay, in standard errors")
    parser.add_argument("--orders", type=int, default=500, help="orders of arrival (--digits: a tenth of it per draw)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    if args.results:
        curves, metric, labels, default = from_results(Path(args.results))
        sets, defaults = [curves], [default]
    elif args.digits:
        sets, metric, labels = from_digits(None if args.budget else args.trials, args.draws, rng)
        defaults = [None] * len(sets)
    else:
        parser.error("--results DIR or --digits")
    max_t = args.max_t or sets[0].shape[1]
    sets = [s[:, :max_t] for s in sets]
    rungs = asha_rungs(args.grace, max_t, args.reduction_factor)
    orders = args.orders if len(sets) == 1 else max(1, args.orders // 10)
    options = dict(time_attr="epoch", metric="best", mode="max", max_t=max_t, grace_period=args.grace,
                   reduction_factor=args.reduction_factor)
    rules = {"ASHA (Ray's)": lambda: ASHAScheduler(**options)}
    for margin in args.margins:
        rules[f"MarginASHA, {margin:g} standard error(s)"] = (
            lambda margin=margin: MarginASHA(base_metric=metric, labels=labels, margin=margin, **options))
    print(f"{len(sets)} set(s) of {sets[0].shape[0]} curves of {metric}, {max_t} epochs, rungs at "
          f"{rungs}, reduction factor {args.reduction_factor:g}, {orders} orders each; "
          f"{len(labels)} validation images\n")
    print("| rule | winner cut | default cut | best final missed | picked final (best final) | different picks "
          "| epochs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, margin in rules.items():
        rows = [summarise(s, margin, orders, rng, d, args.budget) for s, d in zip(sets, defaults)]
        mean = {k: (None if rows[0][k] is None else float(np.mean([r[k] for r in rows]))) for k in rows[0]}
        default_cut = "-" if mean["default_cut"] is None else f"{mean['default_cut']:.0%}"
        print(f"| {name} | {mean['winner_cut']:.0%} | {default_cut} | {mean['missed']:.0%} | "
              f"{mean['picked_final']:.4f} "
              f"({mean['best_final']:.4f}) | {mean['picks']:.1f} | {mean['epochs']:.0f} |")


if __name__ == "__main__":
    main()

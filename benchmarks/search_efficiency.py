"""TPE + ASHA against random search at equal compute: anytime curves over many seeds, replayed
from learning curves recorded once (a tabular benchmark, as LCBench and NAS-Bench compare
optimizers).

Usage:
    python benchmarks/search_efficiency.py record [--workers 2]          # once: the table (cached)
    python benchmarks/search_efficiency.py replay [--seeds 20] [--budget-trials 20]
                                                  [--grace-period 1] [--concurrency 2] [--json F]
                                                  [--methods M ...] [--tpe KEY=VALUE ...]
    python benchmarks/search_efficiency.py real --task digits|lens [--seeds 3] [--methods M ...]

BENCHMARKS.md ("Search efficiency") ran them with ``--max-t 9``.

**record.** Every configuration of a discrete space is trained by the real trainable
(``trainable.train.train``, one thread each, ``--workers`` at a time, seed 0) for ``MAX_T``
epochs, and every epoch's report is kept with its seconds: ``benchmarks/.cache/curves-<task>.json``
(made once; ``--force`` makes it again). The task is scikit-learn's digits (8x8, ``simple_cnn``,
60/20/20 splits) on a space with genuinely bad regions: learning rate over four decades, Adam or
SGD, batch 16 to 256 (67 to 4 steps an epoch), weight decay, a schedule: 324 configurations of
27 epochs, about 10 minutes on 2 cores.

**replay.** Each method searches the same space through the real driver: the space file checked
by ``search.space.load_space``, the searcher of ``search.tune.tuner.build_searcher`` (Optuna TPE with
the settings a search uses, told of ASHA's stops, or Optuna's random sampler), the scheduler of
``search.tune.tuner.build_scheduler`` (ASHA ranking by ``best_<metric>``, or none), Ray Tune's
``Tuner``. The trainable replays the recorded reports of the grid point nearest the suggested
configuration (learning rate and weight decay are searched log-uniformly, as in a real space, and
snapped to the grid in log space), sleeping ``--time-scale`` x each epoch's recorded seconds so
that trials end in the order their lengths give. Every method gets the same budget: random
search's ``--budget-trials`` full trainings, in epochs; a ``Stopper`` ends the search when it is
spent. Methods: ``random`` (full training), ``random+asha``, ``tpe`` (no early stopping),
``tpe+asha`` (the project's default), and ``1epoch-top3`` ("Is one epoch all you need?", arXiv
2307.15422: random configurations trained one epoch until the budget less three full trainings
is spent, then the three best go on to ``MAX_T``; computed from the table, in the same units).

**real.** The same searches through the driver with the real trainable (``search.tune.trainable.trial``)
instead of the table: digits, or 900 simulated lens-finding images at 32 px with the sampling
strategies searched; each seed trains its trials with that seed. No one-epoch baseline.

For each method and seed, the best ``val_loss`` so far (any epoch of any trial) after each epoch
spent. Figures of merit, for each method against random search of the same seed: the epochs it
needs to first reach random search's final best, as a fraction of the budget (median and
quartiles over seeds; never reaching it counts as infinite), and the share of seeds in which its
final best is at least random search's. TPE's seed is 1000 + the seed, so its random start-up
trials are not random search's draws. The plot (``--plot``, default
``docs/search_efficiency_<task>.png``) shows the median and quartiles of best-so-far against
epochs, one line per method.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "benchmarks" / ".cache"
MAX_T = 27
METRIC, MODE = "val_loss", "min"
TASKS = {
    "digits": {
        "data": {"format": "digits", "val_fraction": 0.2, "test_fraction": 0.2},
        "trial": {"backbone": "simple_cnn", "seed": 0, "threads": 1},
        # The grid the table holds; lr and weight_decay are searched log-uniformly over its span.
        "grid": {
            "optimizer": ["adam", "sgd"],
            "lr": [1.0e-5, 3.0e-5, 1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2, 1.0e-1],
            "batch_size": [16, 64, 256],
            "scheduler": ["none", "cosine"],
            "weight_decay": [1.0e-6, 1.0e-4, 1.0e-2],
        },
    },
    # `real` only: 900 simulated lens-finding images (2.3 non-lenses per lens, 101 px read at
    # 32 px: at 64 px an epoch takes 7 s of one core here, too long for seeds of 180 epochs),
    # the sampling strategies searched too.
    "lens": {
        "data": {"format": "fits_csv", "simulate": "lens_finding", "n": 900, "image_size": 32,
                 "normalization": "asinh", "val_fraction": 0.2, "test_fraction": 0.1},
        "trial": {"backbone": "simple_cnn", "seed": 0, "threads": 1},
        "grid": {
            "optimizer": ["adam", "sgd"],
            "lr": [1.0e-5, 3.0e-5, 1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2, 1.0e-1],
            "batch_size": [16, 64, 256],
            "sampling": ["none", "oversample", "undersample", "weighted"],
            "weight_decay": [1.0e-6, 1.0e-4, 1.0e-2],
        },
    },
}
LOG_SEARCHED = ("lr", "weight_decay")
METHODS = {  # name -> (search.algorithm, search.scheduler); 1epoch-top3 is computed from the table
    "random": ("random", "none"),
    "random+asha": ("random", "asha"),
    "tpe": ("optuna", "none"),
    "tpe+asha": ("optuna", "asha"),
}
TOP_K = 3
COLORS = {"random": "C0", "random+asha": "C1", "tpe": "C2", "tpe+asha": "C3", f"1epoch-top{TOP_K}": "C4"}


# --- the table -------------------------------------------------------------------------------

def grid_points(grid: dict) -> list[dict]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def point_key(point: dict) -> str:
    return "|".join(f"{k}={point[k]}" for k in sorted(point))


def table_path(task: str) -> Path:
    spec = json.dumps({k: TASKS[task][k] for k in ("data", "trial", "grid")} | {"max_t": MAX_T}, sort_keys=True)
    return CACHE / f"curves-{task}-{hashlib.sha1(spec.encode()).hexdigest()[:10]}.json"


_DATASET = None


class TimedReporter:
    """Each epoch's report with its seconds (training, validation and the checkpoint; the first
    epoch's include the trial's start), kept in ``history``."""

    def __init__(self, root: str):
        from trainable.report import LocalReporter

        self.local = LocalReporter(root)
        self.history = self.local.history
        self.last = time.perf_counter()

    def report(self, metrics: dict, checkpoint_dir: str) -> None:
        now = time.perf_counter()
        self.local.report({**metrics, "seconds": now - self.last}, checkpoint_dir)
        self.last = time.perf_counter()

    def restore(self):
        return None


def _record_one(job: tuple[str, dict, str]) -> tuple[str, list[dict]]:
    from trainable.train import train

    key, config, folder = job
    reporter = TimedReporter(folder)
    train(config, _DATASET, reporter, metric=METRIC, mode=MODE)
    keep = ("epoch", METRIC, f"best_{METRIC}", "val_accuracy", "diverged", "seconds")
    return key, [{k: row[k] for k in keep if k in row} for row in reporter.history]


def record(task: str, workers: int, force: bool) -> Path:
    """Train every grid point for MAX_T epochs; the reports per epoch, cached."""
    global _DATASET
    from trainable.data import load_dataset

    path = table_path(task)
    if path.exists() and not force:
        print(f"{path} exists (--force to record again)")
        return path
    spec = TASKS[task]
    _DATASET = load_dataset(spec["data"])
    points = grid_points(spec["grid"])
    began = time.perf_counter()
    curves = {}
    with tempfile.TemporaryDirectory(prefix="curves-") as folder:
        jobs = [(point_key(p), {**spec["trial"], **p, "epochs": MAX_T}, os.path.join(folder, str(i)))
                for i, p in enumerate(points)]
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for done, (key, rows) in enumerate(pool.imap_unordered(_record_one, jobs), 1):
                curves[key] = rows
                if done % 20 == 0 or done == len(jobs):
                    print(f"{done}/{len(jobs)} configurations in {time.perf_counter() - began:.0f} s", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"task": task, "max_t": MAX_T, "metric": METRIC, "mode": MODE,
                                "grid": spec["grid"], "curves": curves}))
    print(f"wrote {path}")
    return path


def snap(config: dict, grid: dict) -> str:
    """The grid point nearest ``config``: log distance for the log-searched values."""
    point = {}
    for name, values in grid.items():
        value = config[name]
        if name in LOG_SEARCHED:
            value = min(values, key=lambda v: abs(math.log(v) - math.log(value)))
        point[name] = value
    return point_key(point)


# --- the replay through the driver --------------------------------------------------------------

def replay_trial(config: dict, curves: dict, grid: dict, time_scale: float) -> None:
    """A trainable that reports what the real one reported for this configuration."""
    from ray import tune

    for row in curves[snap(config, grid)]:
        time.sleep(row.get("seconds", 0.0) * time_scale)
        tune.report({k: v for k, v in row.items() if k != "seconds"})


def task_data(task: str) -> dict:
    """The task's ``data:`` block; a simulated set is made once in the cache."""
    data = dict(TASKS[task]["data"])
    kind, n = data.pop("simulate", None), data.pop("n", None)
    if kind:
        from trainable.simulate import simulate

        folder = CACHE / f"{kind}-{n}"
        if not (folder / "classifications.csv").exists():
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            simulate(kind, folder, n=n, seed=0)
        data["path"] = str(folder)
    return data


def space_file(folder: Path, task: str, method: str, seed: int, budget: int, args) -> Path:
    grid = TASKS[task]["grid"]
    space = {name: ({"loguniform": [min(values), max(values)]} if name in LOG_SEARCHED else {"choice": values})
             for name, values in grid.items()}
    algorithm, scheduler = METHODS[method]
    raw = {
        "name": f"{method.replace('+', '_')}-{seed}",
        "data": task_data(task), "metric": METRIC, "mode": MODE,
        # Real training: each seed trains with its own seed too (the table holds seed 0).
        "trial": {**TASKS[task]["trial"], "epochs": MAX_T, "resources": {"cpu": 1, "gpu": 0},
                  **({"seed": seed} if args.command == "real" else {})},
        "space": space,
        "search": {"algorithm": algorithm, "scheduler": scheduler, "num_samples": budget,
                   "max_concurrent": args.concurrency, "grace_period": args.grace_period,
                   "reduction_factor": args.reduction_factor,
                   "seed": seed + (1000 if algorithm == "optuna" else 0)},
        "wandb": {"mode": "disabled"},
    }
    path = folder / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_method(table: dict | None, task: str, method: str, seed: int, budget: int, folder: Path, args,
               dataset=None) -> list[float]:
    """One search; every epoch's value in the order the driver received them. With ``table``
    the trainable replays it, else (``dataset``) it is the real one, ``search.tune.trainable.trial``."""
    from ray import tune

    from search.tune import tuner as driver
    from search import load_space

    class Arrivals(tune.Callback):
        def __init__(self):
            self.values: list[float] = []

        def on_trial_result(self, iteration, trials, trial, result, **info):
            value = result.get(METRIC)
            self.values.append(math.nan if value is None or result.get("diverged") else float(value))

    class EpochBudget(tune.Stopper):
        """Ends the search once ``budget`` epochs have been reported."""

        def __init__(self):
            self.spent = 0

        def __call__(self, trial_id, result):
            self.spent += 1
            return False

        def stop_all(self):
            return self.spent >= budget

    space = load_space(space_file(folder, task, method, seed, budget, args))
    searcher, num_samples = driver.build_searcher(space)
    arrivals = Arrivals()
    if table is None:
        trainable = driver.trainable_for(space, dataset)
    else:
        trainable = tune.with_resources(
            tune.with_parameters(replay_trial, curves=table["curves"], grid=table["grid"],
                                 time_scale=args.time_scale),
            {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=driver.build_scheduler(space),
                                    num_samples=num_samples, max_concurrent_trials=args.concurrency,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=space.name, storage_path=str(folder), stop=EpochBudget(),
                                  callbacks=[arrivals], verbose=0))
    tuner.fit()
    return arrivals.values[:budget]


def one_epoch_top_k(table: dict, seed: int, budget: int) -> list[float]:
    """Random configurations one epoch each until the budget less K full trainings, then the K
    best by their first epoch trained on to MAX_T."""
    rng = np.random.default_rng(seed)
    keys = sorted(table["curves"])
    screened = int(budget - TOP_K * (MAX_T - 1))
    picks = [keys[i] for i in rng.integers(len(keys), size=screened)]
    values = [first_value(table["curves"][k]) for k in picks]
    ranked = sorted(set(picks), key=lambda k: first_value(table["curves"][k]))[:TOP_K]
    for key in ranked:
        values += [value_of(row) for row in table["curves"][key][1:]]
    return values[:budget]


def value_of(row: dict) -> float:
    return math.nan if row.get("diverged") else float(row[METRIC])


def first_value(curve: list[dict]) -> float:
    value = value_of(curve[0])
    return math.inf if math.isnan(value) else value


# --- the figures --------------------------------------------------------------------------------

def best_so_far(values: list[float], budget: int) -> np.ndarray:
    out = np.full(budget, np.nan)
    best = math.inf
    for i, value in enumerate(values[:budget]):
        if math.isfinite(value):
            best = min(best, value)
        out[i] = best if math.isfinite(best) else np.nan
    if len(values) < budget and len(values):  # a search that ended early keeps its best
        out[len(values):] = out[len(values) - 1]
    return out


def figures(curves: dict[str, list[np.ndarray]], budget: int) -> dict[str, dict]:
    """Per method, against random search of the same seed: the fraction of the budget needed to
    reach random's final best (quartiles), and the share of seeds ending at least as well."""
    out = {}
    targets = [c[-1] for c in curves["random"]]
    for method, runs in curves.items():
        fractions, wins, finals = [], 0, []
        for curve, target in zip(runs, targets):
            reached = np.flatnonzero(curve <= target)
            fractions.append((reached[0] + 1) / budget if len(reached) else math.inf)
            wins += bool(curve[-1] <= target)
            finals.append(float(curve[-1]))
        # Observed values only (never reaching it is infinite: no interpolation with it).
        q1, median, q3 = np.percentile(fractions, [25, 50, 75], method="inverted_cdf")
        out[method] = {"fraction_median": median, "fraction_q1": q1, "fraction_q3": q3,
                       "at_least_random": wins / len(runs), "final_median": statistics.median(finals),
                       "seeds": len(runs)}
    return out


def plot(curves: dict[str, list[np.ndarray]], budget: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(1, budget + 1)
    finals = [float(np.nanmedian([c[-1] for c in runs])) for runs in curves.values()]
    for method, runs in curves.items():
        stack = np.vstack(runs)
        q1, median, q3 = np.nanpercentile(stack, [25, 50, 75], axis=0)
        (line,) = ax.plot(x, median, label=method, lw=1.8, color=COLORS.get(method))
        ax.fill_between(x, q1, q3, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epochs spent (all trials)")
    ax.set_ylabel(f"best {METRIC} so far (median, quartiles)")
    ax.set_yscale("log")
    # The end of the race is the point: from the best median final to a few times the worst.
    ax.set_ylim(0.9 * min(finals), 4 * max(finals))
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(result: dict[str, dict], header: str) -> None:
    print(header)
    print("| method | epochs to reach random's final best, fraction of the budget: median (quartiles) | "
          "seeds ending at least as well as random | median final best |")
    print("| --- | --- | --- | --- |")
    for method, r in result.items():
        cell = "not reached" if math.isinf(r["fraction_median"]) else f"{r['fraction_median']:.3f}"
        quart = ", ".join("inf" if math.isinf(q) else f"{q:.3f}" for q in (r["fraction_q1"], r["fraction_q3"]))
        print(f"| {method} | {cell} ({quart}) | {100 * r['at_least_random']:.0f} % | {r['final_median']:.4f} |")


def replay(args) -> int:
    """``replay`` (the table through the driver) or ``real`` (real training through the driver)."""
    import logging

    import ray

    from search.tune import tuner as driver

    logging.getLogger("ray.tune").setLevel(logging.ERROR)  # trials the budget stopped before a report
    table, dataset = None, None
    if args.command == "replay":
        path = table_path(args.task)
        if not path.exists():
            print(f"no table at {path}: run `python benchmarks/search_efficiency.py record` first", file=sys.stderr)
            return 2
        table = json.loads(path.read_text())
        size = f"{len(table['curves'])} recorded configurations of {MAX_T} epochs"
    else:
        from trainable.data import load_dataset

        dataset = load_dataset(task_data(args.task))
        size = f"real training, {len(dataset.splits['train'])} training images, at most {MAX_T} epochs a trial"
    budget = args.budget_trials * MAX_T
    driver.prepare_environment()
    began = time.perf_counter()
    methods = [m for m in METHODS if m in (args.methods or METHODS)]
    curves: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    if table is not None:
        curves[f"1epoch-top{TOP_K}"] = []
    ray.init(address="local", num_cpus=args.concurrency, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{args.command}-") as folder:
            for seed in range(args.seeds):
                for method in methods:
                    values = run_method(table, args.task, method, seed, budget, Path(folder), args, dataset)
                    curves[method].append(best_so_far(values, budget))
                if table is not None:
                    curves[f"1epoch-top{TOP_K}"].append(best_so_far(one_epoch_top_k(table, seed, budget), budget))
                print(f"seed {seed}: " + ", ".join(f"{m} {c[-1][-1]:.4f}" for m, c in curves.items())
                      + f" ({time.perf_counter() - began:.0f} s)", flush=True)
    finally:
        ray.shutdown()
    result = figures(curves, budget)
    print_table(result, f"\n{args.task} ({args.command}): {size}; budget {budget} epochs ({args.budget_trials} "
                        f"full trainings); ASHA grace {args.grace_period}, reduction factor "
                        f"{args.reduction_factor:g}; {args.concurrency} trials at a time; {args.seeds} seeds; "
                        f"{time.perf_counter() - began:.0f} s\n")
    suffix = "" if args.command == "replay" else "_real"
    plot_path = Path(args.plot or ROOT / "docs" / f"search_efficiency_{args.task}{suffix}.png")
    plot(curves, budget, plot_path, f"{args.task} ({args.command}): best {METRIC} against epochs, {args.seeds} seeds")
    print(f"plot: {plot_path}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "figures": result,
                                               "curves": {m: [c.tolist() for c in cs] for m, cs in curves.items()}}))
    return 0


def main(argv=None) -> int:
    global CACHE, MAX_T
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("record", "replay", "real"))
    parser.add_argument("--task", default="digits", choices=sorted(TASKS))
    parser.add_argument("--workers", type=int, default=2, help="record: trainings at a time")
    parser.add_argument("--force", action="store_true", help="record: again, over the cached table")
    parser.add_argument("--max-t", type=int, default=MAX_T, help="a full trial's epochs (ASHA's max_t)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget-trials", type=int, default=20, help="the budget: this many full trainings")
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--reduction-factor", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--time-scale", type=float, default=0.01, help="replayed seconds per recorded second")
    parser.add_argument("--plot", help="the figure (default docs/search_efficiency_<task>.png)")
    parser.add_argument("--json", help="write the figures and every curve here")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help="replay, real: these only")
    parser.add_argument("--tpe", nargs="+", default=[], metavar="KEY=VALUE",
                        help="TPE settings over the driver's (e.g. n_startup_trials=5 multivariate=false): "
                             "to try a change of the search before making it")
    parser.add_argument("--smoke", action="store_true",
                        help="a check that it runs: 8 configurations of 3 epochs, in a temporary cache")
    args = parser.parse_args(argv)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: CPU trials, as recorded
    os.environ.setdefault("WANDB_MODE", "disabled")
    MAX_T = args.max_t
    if args.command != "real" and "n" in TASKS[args.task]["data"]:
        parser.error(f"--task {args.task}: real training only (`real`)")
    if args.smoke:
        CACHE, MAX_T = Path(tempfile.mkdtemp(prefix="curves-smoke-")), 3
        TASKS[args.task] = {**TASKS[args.task], "grid": {
            "optimizer": ["adam", "sgd"], "lr": [1.0e-3, 1.0e-1], "batch_size": [64], "scheduler": ["none"],
            "weight_decay": [1.0e-4, 1.0e-2]}}
        if args.command != "real":
            record(args.task, args.workers, False)
    if args.command == "record":
        record(args.task, args.workers, args.force)
        return 0
    if args.tpe:
        import inspect

        import optuna

        known = inspect.signature(optuna.samplers.TPESampler).parameters
        for option in args.tpe:
            if "=" not in option or option.split("=", 1)[0] not in known:
                parser.error(f"--tpe {option}: KEY=VALUE with KEY one of optuna.samplers.TPESampler's arguments")
        override_tpe(dict(option.split("=", 1) for option in args.tpe))
    return replay(args)


def override_tpe(options: dict[str, str]) -> None:
    """The driver's TPE sampler with ``options`` (YAML values) over its own settings."""
    import optuna

    values = {k: yaml.safe_load(v) for k, v in options.items()}
    base = optuna.samplers.TPESampler

    def sampler(**kwargs):  # a TPESampler itself: the searcher's snapshots pickle it
        return base(**{**kwargs, **values})

    optuna.samplers.TPESampler = sampler


if __name__ == "__main__":
    sys.exit(main())

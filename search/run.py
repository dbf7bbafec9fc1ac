"""Run a hyperparameter search from a space file.

    python -m search.run spaces/lens_finding.yaml
    python -m search.run spaces/lens_finding.yaml --set data.path=/data/SpaceBasedTraining \\
        --set search.num_samples=200 --address auto --storage s3://bucket/searches
    python -m search.run spaces/lens_finding.yaml --resume      # after the driver was stopped

The file is checked whole before Ray starts. Without a GPU in the cluster the file's ``cpu:``
block applies. When ``data.path`` does not exist and ``data.simulate`` names a simulator, the set
is simulated there first. Ray's trial table shows progress; at the end the leaderboard and the best
model's test metrics are printed and the results folder (``results/<name>/``) is written:
``summary.json``, ``leaderboard.csv``, ``best_config.yaml`` and ``best_model.pt``.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

import yaml

from search.results import format_table, leaderboard, write_results
from search.driver import parameter_columns
from search.space import Space, load_space
from search.wandb_log import WandbCallback, has_api_key, resolve_mode
from trainable.data import load_dataset
from trainable.errors import UserError, exit_on_user_error

SPACE_COPY = "space.yaml"  # the resolved space file a search was started with, for --resume
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m search.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", help="the search-space YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the file (dotted path, value read as YAML); repeatable")
    parser.add_argument("--name", help="search name (results folder, W&B group); default the file's name")
    parser.add_argument("--address", help="Ray cluster to join (e.g. auto, or ray://head:10001); "
                                          "default a local Ray on this machine")
    parser.add_argument("--resume", action="store_true",
                        help="continue the search of this name whose driver stopped")
    parser.add_argument("--storage", help="where Ray keeps trial checkpoints and the experiment "
                                          "state (a path, or s3:// gs:// URI shared by the cluster); "
                                          "default the results folder")
    parser.add_argument("--results", default="results", help="parent of the results folder (default results)")
    return parser.parse_args(argv)


def check_data_source(space: Space) -> None:
    """The data folder exists, or the space names a simulator to create it."""
    data = space.data
    if data.path and not data.root.exists() and not data.simulate:
        raise UserError(f"{space.path}: data.path: {data.path} does not exist (and no data.simulate "
                        "names a simulator to create it)")


def prepare_data(space: Space):
    """Simulate the set if it is missing and the space names a simulator, then load it once."""
    from trainable.simulate import simulate

    data = space.data
    if data.path and not data.root.exists() and data.simulate:
        spec = data.simulate if isinstance(data.simulate, dict) else {"kind": data.simulate}
        unknown = set(spec) - {"kind", "n", "seed"}
        if unknown or "kind" not in spec:
            raise UserError(f"{space.path}: data.simulate: must be a simulator name or "
                            "{kind, n, seed}")
        print(f"{data.path} does not exist: simulating a {spec['kind']} set there (data.simulate)",
              flush=True)
        began = time.perf_counter()
        simulate(spec["kind"], data.root, n=spec.get("n"), seed=spec.get("seed", 0))
        print(f"simulated in {time.perf_counter() - began:.0f} s", flush=True)
    began = time.perf_counter()
    dataset = load_dataset(data, where=f"{space.path}: data")
    print(f"data: {dataset.summary()} (loaded in {time.perf_counter() - began:.1f} s)", flush=True)
    return dataset


def cluster_has_gpu() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def check_resources(space: Space) -> None:
    """A trial fits on at least one node of the cluster, else Ray would wait forever."""
    import ray

    cpu, gpu = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not any(n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu for n in nodes):
        largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        raise UserError(f"{space.path}: trial.resources: a trial needs cpu {cpu}, gpu {gpu}; the "
                        f"largest node has {largest.get('CPU', 0):g} CPUs and {largest.get('GPU', 0):g} GPUs")


def start_ray(address: str | None) -> None:
    """Join the cluster at ``address``, or start a Ray of our own on this machine (``local``:
    never attach by accident to another cluster someone started here with ``ray start``)."""
    import ray

    ray.init(address=address or "local", logging_level=logging.WARNING, log_to_driver=True)


def resolve(args: argparse.Namespace) -> tuple[Space, str, Path, str]:
    """The checked space (cpu: block not yet decided), its name, results folder and Ray storage."""
    if args.resume:
        if args.set:
            raise UserError("--set cannot change a search being resumed; start a new one with --name")
        first = load_space(args.space, has_gpu=True)
        name = args.name or first.name
        folder = Path(args.results) / name
        saved = folder / SPACE_COPY
        if not saved.is_file():
            raise UserError(f"--resume: {folder} holds no search named {name!r} to resume")
        space = load_space(saved, has_gpu=True)
    else:
        # Both variants are checked now, before Ray starts: the cpu: block is merged only later.
        space = load_space(args.space, args.set, has_gpu=True)
        load_space(args.space, args.set, has_gpu=False)
        name = args.name or space.name
        folder = Path(args.results) / name
    if not NAME.match(name):
        raise UserError(f"--name / name: {name!r} must be letters, digits, '.', '_' or '-'")
    storage = (args.storage or str(Path(args.results).resolve())).rstrip("/")
    if not args.resume and ((folder / SPACE_COPY).exists() or (folder / "summary.json").exists()):
        raise UserError(f"{folder} already holds a search named {name!r}: continue it with --resume, "
                        "or give this one another --name")
    return space, name, folder, storage


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    space, name, folder, storage = resolve(args)
    experiment = f"{storage}/{name}"
    check_data_source(space)
    mode = resolve_mode(space.wandb.mode)
    if mode == "online" and not has_api_key():
        raise UserError(f"{space.path}: wandb.mode: online needs W&B credentials (wandb login, or "
                        "WANDB_API_KEY); use auto or offline to log locally and sync later")

    import ray
    from ray import tune

    from search import driver

    if args.resume and not tune.Tuner.can_restore(experiment):
        raise UserError(f"--resume: no Ray experiment state at {experiment}")
    driver.prepare_environment()
    start_ray(args.address)
    wandb_callback = None
    try:
        if not args.resume:
            has_gpu = cluster_has_gpu()
            space = load_space(args.space, args.set, has_gpu=has_gpu)
            if space.cpu_applied:
                print(f"no GPU in the Ray cluster: applying the cpu: block of {args.space}", flush=True)
        check_resources(space)
        dataset = prepare_data(space)
        if not args.resume:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / SPACE_COPY).write_text(
                f"# {args.space} as search {name!r} runs it (overrides and cpu: block applied)\n"
                + yaml.safe_dump(space.raw, sort_keys=False))
        if args.resume:  # the W&B callback comes back with the rest of the tuner
            print(f"resuming search {name!r} from {experiment}", flush=True)
            tuner = driver.restore_tuner(experiment, space, dataset)
        else:
            if mode != "disabled":
                wandb_callback = WandbCallback(space.wandb.project, space.wandb.entity, name, mode,
                                               folder, fixed=space.trial)
            tuner = driver.build_tuner(space, dataset, name, storage,
                                       [wandb_callback] if wandb_callback else [])
        began = time.perf_counter()
        grid = tuner.fit()
        elapsed = time.perf_counter() - began
        # Trials still pending or running: a time budget, or Ctrl-C, ended the search.
        complete = all(t.status in ("TERMINATED", "ERROR") for t in grid._experiment_analysis.trials)
        summary = write_results(grid, space, name, dataset, folder, experiment, complete=complete)
    finally:
        if wandb_callback is not None:  # W&B calls still queued, if the search ended abruptly
            wandb_callback.close()
        ray.shutdown()
    report(summary, space, folder, mode, elapsed)
    if summary["best_trial"] is None:
        return 1
    if not complete and not space.search.time_budget:
        print(f"the search stopped before all its trials finished; continue it with:\n"
              f"  python -m search.run {args.space} --name {name} --resume", flush=True)
        return 130
    return 0


def report(summary: dict, space: Space, folder: Path, mode: str, elapsed: float) -> None:
    """The leaderboard, the best model's test metrics and where everything is."""
    records = summary["trials"]
    counts = ", ".join(f"{n} {s}" for s, n in summary["status_counts"].items() if n)
    print(f"\nsearch {summary['name']!r}: {summary['num_trials']} trials ({counts}) in {elapsed:.0f} s, "
          f"{sum(r['epochs'] for r in records)} epochs in all")
    print(format_table(leaderboard(records, space, columns=parameter_columns(space, limit=8))))
    if summary["test"]:
        test = summary["test"]
        auc = "-" if test["auc"] is None else f"{test['auc']:.4f}"
        print(f"\nbest trial {summary['best_trial']} ({space.metric} {summary['best_val'][space.metric]:.4f} "
              f"at epoch {summary['best_val']['epoch']}); on the test split ({test['n']} images): "
              f"accuracy {test['accuracy']:.4f}, macro F1 {test['f1_macro']:.4f}, ROC AUC {auc}")
        print(f"confusion matrix (rows true, columns predicted; {', '.join(test['class_names'])}): "
              f"{test['confusion_matrix']}")
    else:
        print("\nno trial reported a value: see the errors above")
    print(f"\nresults: {folder}/ (summary.json, leaderboard.csv, best_config.yaml, best_model.pt)")
    if mode == "offline":
        print(f"W&B runs (offline): {folder}/wandb/; upload them with:  wandb sync {folder}/wandb/offline-run-*")
    elif mode == "online":
        print(f"W&B runs: project {space.wandb.project}, group {summary['name']!r}")


if __name__ == "__main__":
    sys.exit(main())

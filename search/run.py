"""Run a hyperparameter search from a space file.

    python -m search.run spaces/lens_finding.yaml
    python -m search.run spaces/lens_finding.yaml --set data.path=/data/SpaceBasedTraining \\
        --set search.num_samples=200 --address auto --storage s3://bucket/searches
    python -m search.run spaces/lens_finding.yaml --resume      # after the driver was stopped
    ray job submit --address http://HEAD:8265 -- python -m search.run spaces/lens_finding.yaml \
        --storage s3://bucket/searches                             # on a cluster, as a Ray job

The file is checked whole before Ray starts. Without a GPU in the cluster the file's ``cpu:``
block applies. Before the trials, ASHA's rungs are placed from the set's size and, with
``search.time_budget``, epochs, trials and image size are sized to fill it (:mod:`search.budget`). When ``data.path`` does not exist and ``data.simulate`` names a simulator, the set
is simulated there first. Ray's trial table shows progress; at the end the leaderboard and the best
model's test metrics are printed and the results folder (``results/<name>/``) is written:
``summary.json``, ``leaderboard.csv``, ``best_config.yaml`` and ``best_model.pt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from search import budget, cluster, estimate
from search.files import REPORT_FOLDER, SPACE_COPY, STUDY_FILE, SUMMARY_FILE
from search.final import describe as describe_final, side_by_side
from search.retrain import describe_seeds
from search.pareto import describe_pareto
from search.results import format_table, leaderboard, write_results
from search.driver import parameter_columns
from search.space import Space, load_space
from search.wandb_log import WandbCallback, has_api_key, log_search_summary, resolve_mode
from trainable.data import ImageDataset, load_dataset
from trainable.decide import few_negatives_note
from trainable.errors import UserError, exit_on_user_error

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m search.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", help="the search-space YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the file (dotted path, value read as YAML); repeatable")
    parser.add_argument("--name", help="search name (results folder, W&B group); default the file's name")
    parser.add_argument("--address", help="Ray cluster to join: auto (the one started on this machine "
                                          "with ray start), HOST:PORT, or ray://HOST:10001; default "
                                          "$RAY_ADDRESS (set by ray job submit), else a local Ray")
    parser.add_argument("--resume", action="store_true",
                        help="continue the search of this name whose driver stopped")
    parser.add_argument("--storage", help="where Ray keeps trial checkpoints and the experiment "
                                          "state: a folder every node sees, or an s3:// or gs:// URI; "
                                          "default the file's storage:, else --results")
    parser.add_argument("--results", default="results", help="parent of the results folder (default results)")
    estimate = parser.add_argument_group("estimate before launch (search.estimate)")
    estimate.add_argument("--dry-run", action="store_true",
                          help="check the file and print the trials, ASHA's rungs, the epochs they train and, "
                               "given an epoch's seconds, the wall time and GPU-hours; start nothing")
    estimate.add_argument("--gpus", type=int, help="with --dry-run: for a cluster of this many GPUs (the file's "
                                                   "GPU settings); default this machine")
    estimate.add_argument("--epoch-seconds", type=float, metavar="S",
                          help="with --dry-run: seconds of one epoch of one trial at the file's image size")
    estimate.add_argument("--time", action="store_true",
                          help="with --dry-run: time a few training steps of the default configuration here")
    return parser.parse_args(argv)


def check_data_source(space: Space) -> None:
    """The data folder exists, or the space names a simulator to create it."""
    data = space.data
    if data.path and not data.root.exists() and not data.simulate:
        raise UserError(f"{space.path}: data.path: {data.path} does not exist (and no data.simulate "
                        "names a simulator to create it); point it at your copy with --set data.path=DIR")


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
    if space.metric == "val_tpr10" and dataset.num_classes != 2:
        raise UserError(f"{space.path}: metric: val_tpr10 (the true-positive rate before the tenth false "
                        f"positive) needs two classes; the set has {dataset.num_classes}")
    return dataset


def cluster_has_gpu() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def check_resources(space: Space, nodes: list[dict], local: bool) -> None:
    """A trial fits on at least one node. On a Ray of our own none ever will: stop. A cluster
    may add one (its autoscaler): say so, and let the trials wait."""
    cpu, gpu = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    resources = [n.get("Resources", {}) for n in nodes]
    if not any(n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu for n in resources):
        largest = max(resources, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        problem = (f"a trial needs cpu {cpu}, gpu {gpu}; the largest node has {largest.get('CPU', 0):g} CPUs "
                   f"and {largest.get('GPU', 0):g} GPUs")
        if local:
            raise UserError(f"{space.path}: trial.resources: {problem}")
        print(f"note: no node can run a trial yet ({problem}): the trials wait for the cluster's "
              "autoscaler to add one (Ctrl-C to stop)", flush=True)


def start_ray(target: str) -> list[dict]:
    """Join the cluster at ``target`` (see :func:`search.cluster.ray_address`), or, for
    ``local``, start a Ray of our own on this machine (never attached by accident to a cluster
    someone started here with ``ray start``); say which, and return its nodes."""
    import ray

    ray.init(address=target, logging_level=logging.WARNING, log_to_driver=True)
    nodes = cluster.alive_nodes()
    total = ray.cluster_resources()
    where = "a local Ray" if target == "local" else f"the Ray cluster at {target}"
    print(f"running on {where}: {len(nodes)} node(s), {total.get('CPU', 0):g} CPUs, "
          f"{total.get('GPU', 0):g} GPUs", flush=True)
    return nodes


def share_data(space: Space, dataset, nodes: list[dict]) -> str:
    """How trials get the set (object store, or read on each node), said in one line."""
    sharing, line = cluster.choose_sharing(
        space.data.share, dataset.images.nbytes + dataset.labels.nbytes,
        [n.get("Resources", {}).get("object_store_memory", 0) for n in nodes], bool(space.data.path))
    print(line, flush=True)
    if sharing == "path":
        cluster.check_data_visible(space.data.root.resolve(), f"{space.path}: data", nodes)
    return sharing


def job_warning(args: argparse.Namespace, storage: str) -> None:
    """A Ray job's working folder is temporary: a relative results folder there would be lost."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and not Path(args.results).is_absolute() \
            and not cluster.is_uri(storage):
        print(f"note: running as a Ray job in {Path.cwd()}: the results folder {args.results}/ is there; "
              "pass --results with an absolute path, or --storage s3://... (results are copied there)",
              flush=True)


@dataclass
class Plan:
    """What this run of the driver does, settled before Ray starts.

    Attributes:
        args: The command line.
        name: The search's name (results folder, Ray experiment, W&B group, Optuna study).
        folder: The results folder.
        storage: Where Ray keeps the experiment (a folder or a URI).
        spaces: The checked space for a cluster with a GPU (``True``) and without (``False``:
            the file's ``cpu:`` block merged in). A resumed search has its one saved space under both.
    """

    args: argparse.Namespace
    name: str
    folder: Path
    storage: str
    spaces: dict[bool, Space]

    @property
    def experiment(self) -> str:
        return f"{self.storage}/{self.name}"

    @property
    def space(self) -> Space:
        """The space for the checks that do not depend on the cluster."""
        return self.spaces[True]


def _checked_name(name: str) -> str:
    if not NAME.match(name):
        raise UserError(f"--name / name: {name!r} must be letters, digits, '.', '_' or '-'")
    return name


def plan_new(args: argparse.Namespace) -> Plan:
    """A new search: the file checked whole in both variants (GPU or not; which one applies is
    known once Ray is up), in a results folder that holds no search yet."""
    spaces = {gpu: load_space(args.space, args.set, has_gpu=gpu) for gpu in (True, False)}
    name = _checked_name(args.name or spaces[True].name)
    folder = Path(args.results) / name
    if (folder / SPACE_COPY).exists() or (folder / SUMMARY_FILE).exists():
        raise UserError(f"{folder} already holds a search named {name!r}: continue it with --resume, "
                        "or give this one another --name")
    storage = cluster.resolve_storage(args.storage, spaces[True].storage, args.results)
    check_storage(storage)
    return Plan(args, name, folder, storage, spaces)


def plan_resume(args: argparse.Namespace) -> Plan:
    """A search whose driver stopped: the space as it was saved in its results folder, and Ray's
    experiment state to continue from."""
    from ray import tune

    if args.set:
        raise UserError("--set cannot change a search being resumed; start a new one with --name")
    name = _checked_name(args.name or load_space(args.space, has_gpu=True).name)
    folder = Path(args.results) / name
    saved = folder / SPACE_COPY
    if not saved.is_file():
        raise UserError(f"--resume: {folder} holds no search named {name!r} to resume")
    space = load_space(saved, has_gpu=True)  # the cpu: block, if it applied, is merged already
    plan = Plan(args, name, folder, cluster.resolve_storage(args.storage, space.storage, args.results),
                {True: space, False: space})
    check_storage(plan.storage)
    if not tune.Tuner.can_restore(plan.experiment):
        raise UserError(f"--resume: no Ray experiment state at {plan.experiment}")
    return plan


def check_storage(storage: str) -> None:
    """A storage URI can be opened and listed (a folder is checked on every node once Ray is up)."""
    if cluster.is_uri(storage):
        cluster.check_uri(storage)


def check_before_ray(plan: Plan) -> str:
    """What else needs no Ray: the data source and W&B credentials. Returns the W&B mode."""
    check_data_source(plan.space)
    mode = resolve_mode(plan.space.wandb.mode)
    if mode == "online" and not has_api_key():
        raise UserError(f"{plan.space.path}: wandb.mode: online needs W&B credentials (wandb login, or "
                        "WANDB_API_KEY); use auto or offline to log locally and sync later")
    return mode


def concurrent_trials(space: Space, nodes: list[dict], per_node: bool = False) -> int:
    """Trials that can run at once: those that fit on each node, summed (``per_node``: on the
    node that holds the most), at most ``search.max_concurrent``."""
    cpu, gpu = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    fits = []
    for node in nodes:
        have = node.get("Resources", {})
        fits.append(min(int(have.get("CPU", 0) // cpu) if cpu else 1 << 20,
                        int(have.get("GPU", 0) // gpu) if gpu else 1 << 20))
    total = max(fits, default=0) if per_node else sum(fits)
    return max(1, min(total, space.search.max_concurrent or total))


@dataclass
class Fitted:
    """A space sized to its data and time (:mod:`search.budget`), and what the tuner needs of it."""

    space: Space
    dataset: ImageDataset
    sizing: budget.Sizing | None = None
    cost: budget.Cost | None = None
    time_budget_s: float | None = None  # left for the trials, after the timing
    total_s: float | None = None  # left for the trials and the best trial's training on (search.train_on)

    def record(self) -> dict | None:
        """What ``summary.json`` keeps of the sizing."""
        if self.sizing is None:
            return None
        return {**dataclasses.asdict(self.sizing), "time_budget_s": self.space.search.time_budget,
                "trials_budget_s": self.time_budget_s,
                "cost": None if self.cost is None else dataclasses.asdict(self.cost)}


def fit_budget(space: Space, dataset, nodes: list[dict], local: bool) -> Fitted:
    """Settle what the file leaves ``auto`` (rungs from the set's size; with a time budget, epochs,
    trials and image size from the measured cost of a step): two printed lines, and the data
    loaded again if the images are to be smaller."""
    import torch

    began = time.time()
    n_train, n_val = len(dataset.splits["train"]), len(dataset.splits["val"])
    slots = concurrent_trials(space, nodes)
    total = space.search.time_budget
    # Timed here on a local Ray when this machine has the trials' device (search.budget.measure).
    here = local and (not space.resources.get("gpu") or torch.cuda.is_available())
    cost = budget.measure(space, dataset, here) if total else None
    left = None if total is None else max(total - (time.time() - began), 1.0)
    sizing = budget.size_search(space, n_train, n_val, max(dataset.image_shape), slots, cost, left,
                                concurrent_trials(space, nodes, per_node=True))
    sized = budget.apply(space, sizing)
    print(sizing.rung_line(space.search.reduction_factor, space.search.scheduler), flush=True)
    if cost is not None:
        print(sizing.budget_line(total, cost, budget.largest_batch(space)), flush=True)
        if sizing.short_line():
            print(sizing.short_line(), flush=True)
    if sized.data.image_size != space.data.image_size:
        dataset = prepare_data(sized)
    # Both count from the trials' start (start_search): the timing is paid out of the budget.
    trials_s = sizing.search_s if sizing.train_on_s else left
    return Fitted(sized, dataset, sizing, cost, trials_s, left)


def start_search(plan: Plan, fitted: Fitted, sharing: str, mode: str):
    """A new search's tuner and W&B callback; the resolved space saved for ``--resume`` first."""
    space, dataset = fitted.space, fitted.dataset
    from search import driver

    plan.folder.mkdir(parents=True, exist_ok=True)
    (plan.folder / SPACE_COPY).write_text(
        f"# {plan.args.space} as search {plan.name!r} runs it (overrides and cpu: block applied)\n"
        + yaml.safe_dump(space.raw, sort_keys=False))
    callback = None
    if mode != "disabled":
        val_rows = dataset.splits["val"]
        callback = WandbCallback(
            space.wandb.project, space.wandb.entity, plan.name, mode, plan.folder, fixed=space.trial,
            validation=(dataset.images.numpy(), val_rows, dataset.labels.numpy()[val_rows],
                        list(dataset.class_names)))
    # No trial starts after this: counted from now, as Ray counts time_budget_s from the tuner's
    # start (not from the sizing, which the data's hand-over and W&B's start follow).
    start_until = None if fitted.cost is None else time.time() + fitted.sizing.start_until_s
    tuner = driver.build_tuner(space, dataset, plan.name, plan.storage, [callback] if callback else [],
                               sharing, journal=plan.folder / STUDY_FILE,
                               planned=fitted.sizing.expected_trials if fitted.sizing else None,
                               start_until=start_until, time_budget_s=fitted.time_budget_s,
                               min_starts=fitted.sizing.slots if fitted.sizing else 1)
    return tuner, callback


def resume_search(plan: Plan, fitted: Fitted, sharing: str, mode: str):
    """A stopped search's tuner; its W&B callback comes back with the rest of the tuner."""
    from search import driver

    print(f"resuming search {plan.name!r} from {plan.experiment}", flush=True)
    return driver.restore_tuner(plan.experiment, fitted.space, fitted.dataset, sharing), None


def choose_space(plan: Plan) -> Space:
    """The space for the cluster Ray is on: the ``cpu:`` block applies without a GPU."""
    space = plan.spaces[cluster_has_gpu()]
    if space.cpu_applied and not plan.args.resume:
        print(f"no GPU in the Ray cluster: applying the cpu: block of {plan.args.space}", flush=True)
    return space


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    estimate.check_flags(args)
    if args.dry_run:
        return estimate.dry_run(args)
    plan = plan_resume(args) if args.resume else plan_new(args)
    mode = check_before_ray(plan)

    import ray

    from search import driver

    driver.prepare_environment()
    job_warning(args, plan.storage)
    target = cluster.ray_address(args.address)
    nodes = start_ray(target)
    callback = None
    try:
        # Trials on every node write checkpoints there. (Through Ray Client, ray://, this
        # machine is not a node and its folders mean nothing to the cluster: not checked.)
        if not cluster.is_uri(plan.storage) and not target.startswith("ray://"):
            cluster.check_shared_folder(Path(plan.storage), "--storage / storage", nodes)
        space = choose_space(plan)
        check_resources(space, nodes, local=target == "local")
        dataset = prepare_data(space)
        # A resumed search's saved space holds the sizes settled when it started.
        fitted = Fitted(space, dataset) if args.resume else fit_budget(space, dataset, nodes, target == "local")
        space, dataset = fitted.space, fitted.dataset
        sharing = share_data(space, dataset, nodes)
        tuner, callback = (resume_search if args.resume else start_search)(plan, fitted, sharing, mode)
        began, began_at = time.perf_counter(), time.time()
        grid = tuner.fit()
        elapsed = time.perf_counter() - began
        # Trials still pending or running: a time budget, or Ctrl-C, ended the search.
        complete = grid.num_terminated + grid.num_errors == len(grid)
        if complete and (plan.folder / STUDY_FILE).is_file():
            from search.searcher import close_orphans

            close_orphans(plan.folder / STUDY_FILE, space.name)
        results, trained_on = keep_training(grid, plan, fitted, sharing, nodes, began_at, complete, elapsed)
        summary = write_results(results, space, plan.name, dataset, plan.folder, plan.experiment, complete=complete,
                                cluster={"address": target, "nodes": len(nodes),
                                         "data_sharing": sharing, "storage": plan.storage},
                                extra={"budget": fitted.record(), "trials_s": elapsed, "trials_began": began_at,
                                       "train_on": trained_on})
        if callback is not None:
            callback.close()  # the offline runs complete before they are copied
            callback = None
        review(space, plan.name, plan.folder, mode, summary)
        if cluster.is_uri(plan.storage):
            print(f"results copied to {cluster.upload_folder(plan.folder, plan.storage, plan.name)}/", flush=True)
    finally:
        if callback is not None:  # W&B calls still queued, if the search ended abruptly
            callback.close()
        ray.shutdown()
    report(summary, space, plan.folder, mode, elapsed)
    if summary["best_trial"] is None:
        return 1
    if not complete and not space.search.time_budget:
        print(f"the search stopped before all its trials finished; continue it with:\n"
              f"  python -m search.run {args.space} --name {plan.name} --resume", flush=True)
        return 130
    return 0


def keep_training(grid, plan: Plan, fitted: Fitted, sharing: str, nodes: list[dict], began_at: float,
                  complete: bool, elapsed: float):
    """The best trial trains on for what is left of the time budget (:mod:`search.train_on`), when
    the space keeps a share for it and the trials ended with the budget or all finished (not on
    Ctrl-C). A resumed search reads back what it trained on before, or trains on for its share.
    Returns the results to write and the record of the training on (or None)."""
    from search import train_on

    space = fitted.space
    share = space.search.train_on if space.search.time_budget else 0
    if not share or share == "auto":
        return grid, None
    if plan.args.resume:
        seconds = share * space.search.time_budget
        widen = max(1, min(concurrent_trials(space, nodes, per_node=True), concurrent_trials(space, nodes)))
    else:
        if not complete and elapsed < 0.95 * fitted.time_budget_s:
            return grid, None  # stopped by the user, not by the budget
        seconds = began_at + fitted.total_s - time.time()
        widen = fitted.sizing.widen
    return train_on.train_on(grid, space, fitted.dataset, sharing, plan.folder, seconds, widen)


def review(space: Space, name: str, folder: Path, mode: str, summary: dict) -> None:
    """The report (``report/report.html`` and its pictures) and the search's W&B summary run.
    Neither may cost the search its results: a failure is one warning line."""
    try:
        from search.report import write_report

        write_report(folder)
    except Exception as err:
        print(f"warning: no report ({type(err).__name__}: {err}); try: python -m search.report {folder}",
              flush=True)
    if mode == "disabled":
        return
    importances = None
    try:
        from search.figures import load_study, param_importances

        if summary.get("study"):
            importances = param_importances(load_study(Path(summary["study"]), name)).values
    except Exception:  # Skipped (too few trials: the report says why), or a damaged study
        importances = None
    pictures = {p.stem: p for p in sorted((folder / REPORT_FOLDER).glob("*.png"))}
    try:
        log_search_summary(space.wandb.project, space.wandb.entity, name, mode, folder, summary,
                           importances, pictures)
    except Exception as err:
        print(f"warning: no W&B summary run ({str(err).splitlines()[0] if str(err) else type(err).__name__})",
              flush=True)


def report(summary: dict, space: Space, folder: Path, mode: str, elapsed: float) -> None:
    """The leaderboard, the best model's test metrics and where everything is."""
    records = summary["trials"]
    counts = ", ".join(f"{n} {s}" for s, n in summary["status_counts"].items() if n)
    print(f"\nsearch {summary['name']!r}: {summary['num_trials']} trials ({counts}) in {elapsed:.0f} s, "
          f"{sum(r['epochs'] for r in records)} epochs in all")
    print(format_table(leaderboard(records, space, columns=parameter_columns(space, limit=8))))
    kept = summary.get("kept_default")
    if kept and kept["decided"]:
        print(f"the default configuration (trial {kept['trial_id']}, {space.metric} {kept['best']:.4f}) ranks first: "
              f"the best other trial's {kept['best_other']:.4f} is within one standard error ({kept['margin']:.4f}) "
              "of it (search.favour_default)")
    for line in describe_pareto(summary):
        print(line)
    if summary["test"]:
        test, final = summary["test"], summary["final"]
        print(f"\nbest trial {summary['best_trial']} ({space.metric} {summary['best_val'][space.metric]:.4f} "
              f"at epoch {summary['best_val']['epoch']})")
        print(f"{describe_final(final)} (final stage {final['seconds']:.0f} s)")
        if final.get("seeds"):
            print(describe_seeds(final["seeds"], space.metric))
        print(f"on the test split ({test['n']} images), from the best trial as the search left it to the final model:")
        print(format_table(side_by_side(final)))
        print(f"confusion matrix of the final model (rows true, columns predicted; {', '.join(test['class_names'])}): "
              f"{test['confusion_matrix']}")
        if few_negatives_note(test):
            print(few_negatives_note(test))
    else:
        print("\nno trial reported a value: see the errors above")
    print(f"\nresults: {folder}/ (summary.json, leaderboard.csv, best_config.yaml, best_model.pt)")
    if (folder / REPORT_FOLDER / "report.html").is_file():
        print(f"report:  {folder}/report/report.html (learning curves, importances, ROC, confusion matrix, "
              "calibration, misclassified images)")
    print(f"predict: python -m search.predict {folder} IMAGES_OR_FOLDERS")
    if mode == "offline":
        print(f"W&B runs (offline): {folder}/wandb/; upload them with:  wandb sync {folder}/wandb/offline-run-*")
    elif mode == "online":
        print(f"W&B runs: project {space.wandb.project}, group {summary['name']!r}")


if __name__ == "__main__":
    sys.exit(main())

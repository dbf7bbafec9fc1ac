"""A search's stages on a Ray cluster, one after the other: the data and the sizing, the trials
(new, or resumed from Ray's experiment state), the best trial training on, the final model and
the results folder, then the report and the W&B summary run (:func:`run_search`).

``search.run`` parses and checks the command line and the space file before this starts
anything, and prints what it returns.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from search.files import REPORT_FOLDER, SPACE_COPY, STUDY_FILE
from search.plan.data import prepare_data
from search.plan.fit import Fitted, concurrent_trials, fit_budget
from search.request import Request
from search.space import Space
from search.stop import Stopped, honoured
from search.tune import cluster
from search.tune.cluster import check_resources, cluster_has_gpu, share_data, start_ray
from search.final.finish import write_results
from search.report.wandb import log_search_summary
from search.results.train_on import train_on
from search.tune.tuner import build_tuner, prepare_environment, restore_tuner
from search.tune.wandb import WandbCallback


@dataclass
class Outcome:
    """What a run of the driver leaves: the summary (``summary.json``), the space as it ran, the
    seconds the trials took, and whether they all finished."""

    summary: dict
    space: Space
    elapsed: float
    complete: bool
def job_warning(args: argparse.Namespace, storage: str) -> None:
    """A Ray job's working folder is temporary: a relative results folder there would be lost."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and not Path(args.results).is_absolute() \
            and not cluster.is_uri(storage):
        print(f"note: running as a Ray job in {Path.cwd()}: the results folder {args.results}/ is there; "
              "pass --results with an absolute path, or --storage s3://... (results are copied there)",
              flush=True)


def choose_space(plan: Request) -> Space:
    """The space for the cluster Ray is on: the ``cpu:`` block applies without a GPU."""
    space = plan.spaces[cluster_has_gpu()]
    if space.cpu_applied and not plan.args.resume:
        print(f"no GPU in the Ray cluster: applying the cpu: block of {plan.args.space}", flush=True)
    return space


def start_search(plan: Request, fitted: Fitted, sharing: str, mode: str):
    """A new search's tuner and W&B callback; the resolved space saved for ``--resume`` first."""
    space, dataset = fitted.space, fitted.dataset
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
    tuner = build_tuner(space, dataset, plan.name, plan.storage, [callback] if callback else [],
                               sharing, journal=plan.folder / STUDY_FILE,
                               planned=fitted.sizing.expected_trials if fitted.sizing else None,
                               start_until=start_until, time_budget_s=fitted.time_budget_s,
                               min_starts=fitted.sizing.slots if fitted.sizing else 1)
    return tuner, callback


def resume_search(plan: Request, fitted: Fitted, sharing: str, mode: str):
    """A stopped search's tuner; its W&B callback comes back with the rest of the tuner."""
    print(f"resuming search {plan.name!r} from {plan.experiment}", flush=True)
    return restore_tuner(plan.experiment, fitted.space, fitted.dataset, sharing), None


def keep_training(grid, plan: Request, fitted: Fitted, sharing: str, nodes: list[dict], began_at: float,
                  complete: bool, elapsed: float):
    """The best trial trains on for what is left of the time budget (:mod:`search.results.train_on`), when
    the space keeps a share for it and the trials ended with the budget or all finished (not on
    Ctrl-C). A resumed search reads back what it trained on before, or trains on for its share.
    Returns the results to write and the record of the training on (or None)."""
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
    return train_on(grid, space, fitted.dataset, sharing, plan.folder, seconds, widen)


def review(space: Space, name: str, folder: Path, mode: str, summary: dict) -> None:
    """The report (``report/report.html`` and its pictures) and the search's W&B summary run.
    Neither may cost the search its results: a failure is one warning line."""
    try:
        from search.report.html import write_report

        write_report(folder)
    except Exception as err:
        print(f"warning: no report ({type(err).__name__}: {err}); try: python -m search.report {folder}",
              flush=True)
    if mode == "disabled":
        return
    importances = None
    try:
        from search.report.figures import load_study, param_importances

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


def fit(plan: Request, target: str, nodes: list[dict]) -> tuple[Fitted, str]:
    """The space for this cluster, its data loaded, sized (a new search) and shared."""
    # Trials on every node write checkpoints there. (Through Ray Client, ray://, this machine is
    # not a node and its folders mean nothing to the cluster: not checked.)
    if not cluster.is_uri(plan.storage) and not target.startswith("ray://"):
        cluster.check_shared_folder(Path(plan.storage), "--storage / storage", nodes)
    space = choose_space(plan)
    check_resources(space, nodes, local=target == "local")
    dataset = prepare_data(space)
    # A resumed search's saved space holds the sizes settled when it started.
    fitted = Fitted(space, dataset) if plan.args.resume else fit_budget(space, dataset, nodes, target == "local")
    return fitted, share_data(fitted.space, fitted.dataset, nodes)


def search_trials(tuner, plan: Request, space: Space) -> tuple:
    """Run the trials. Returns Ray's results, the seconds they took, when they began, and whether
    every trial finished (not so when a time budget or Ctrl-C ended the search)."""
    began, began_at = time.perf_counter(), time.time()
    grid = tuner.fit()
    elapsed = time.perf_counter() - began
    complete = grid.num_terminated + grid.num_errors == len(grid)
    if complete and (plan.folder / STUDY_FILE).is_file():
        from search.tune.searcher import close_orphans

        close_orphans(plan.folder / STUDY_FILE, space.name)
    return grid, elapsed, began_at, complete


def forget_unstarted(plan: Request) -> None:
    """A new search stopped before its trials began: its saved space goes too, so the same
    command starts it again (``--resume`` would find no experiment to continue)."""
    from ray import tune

    if (plan.folder / SPACE_COPY).is_file() and not tune.Tuner.can_restore(plan.experiment):
        (plan.folder / SPACE_COPY).unlink()


def run_search(plan: Request, mode: str) -> Outcome:
    """Every stage of a new or resumed search on the Ray cluster ``--address`` names (or a local
    Ray), with W&B in ``mode``; Ray is shut down at the end, whatever happens. Ctrl-C or SIGTERM
    in any stage raises :class:`search.stop.Stopped` once what is done is kept."""
    import ray

    prepare_environment()
    job_warning(plan.args, plan.storage)
    target = cluster.ray_address(plan.args.address)
    callback = None
    with honoured() as stages:
        try:
            with stages.running("the setup"):
                nodes = start_ray(target)
                stages.install()
                fitted, sharing = fit(plan, target, nodes)
                space, dataset = fitted.space, fitted.dataset
                tuner, callback = (resume_search if plan.args.resume else start_search)(plan, fitted, sharing, mode)
            with stages.trials():
                grid, elapsed, began_at, complete = search_trials(tuner, plan, space)
            with stages.running("the training on"):
                results, trained_on = keep_training(grid, plan, fitted, sharing, nodes, began_at, complete, elapsed)
            with stages.running("the final stage"):
                summary = write_results(results, space, plan.name, dataset, plan.folder, plan.experiment,
                                        complete=complete, cluster={"address": target, "nodes": len(nodes),
                                                                    "data_sharing": sharing, "storage": plan.storage},
                                        extra={"budget": fitted.record(), "trials_s": elapsed,
                                               "trials_began": began_at, "train_on": trained_on})
            if callback is not None:
                callback.close()  # the offline runs complete before they are copied
                callback = None
            with stages.running("the report"):
                review(space, plan.name, plan.folder, mode, summary)
                if cluster.is_uri(plan.storage):
                    print(f"results copied to {cluster.upload_folder(plan.folder, plan.storage, plan.name)}/",
                          flush=True)
        except Stopped as stopped:
            if stopped.stage == "the setup" and not plan.args.resume:
                forget_unstarted(plan)
            raise
        finally:
            if callback is not None:  # W&B calls still queued, if the search ended abruptly
                callback.close()
            ray.shutdown()
    return Outcome(summary, space, elapsed, complete)

"""Run a hyperparameter search from a space file.

    python -m search.run spaces/lens_finding.yaml
    python -m search.run spaces/lens_finding.yaml --set data.path=/data/SpaceBasedTraining \\
        --set search.num_samples=200 --address auto --storage s3://bucket/searches
    python -m search.run spaces/lens_finding.yaml --resume      # after the driver was stopped
    ray job submit --address http://HEAD:8265 -- python -m search.run spaces/lens_finding.yaml \\
        --storage s3://bucket/searches                             # on a cluster, as a Ray job

The file, its overrides and the folders it will write are checked before torch, timm or Ray are
imported: a refused file is one line and exit status 2 within a second. Ctrl-C or SIGTERM stops
whichever stage runs and prints the ``--resume`` command that continues it. Without
a GPU in the cluster the file's ``cpu:`` block applies. The results folder (``results/<name>/``)
gets ``summary.json``, ``leaderboard.csv``, ``best_config.yaml``, ``best_model.pt`` and a report
(docs/results.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search.files import REPORT_FOLDER
from search.plan.estimate import check_flags, dry_run
from search.request import check_before_ray, new_request, resume_request
from search.space import Space
from trainable.errors import exit_on_user_error


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
    estimate = parser.add_argument_group("estimate before launch (search.plan.estimate)")
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


def print_summary(summary: dict, space: Space, folder: Path, mode: str, elapsed: float) -> None:
    """The leaderboard, the best model's test metrics and where everything is."""
    from search.final.describe import describe as describe_final, describe_seeds, side_by_side
    from search.results.pareto import describe_pareto
    from search.results.records import format_table, leaderboard
    from search.tune.progress import parameter_columns
    from trainable.decide import few_negatives_note

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


def how_to_continue(args: argparse.Namespace, request, stage: str) -> str:
    """The one line printed when a signal stopped the search during ``stage``."""
    if stage == "the setup" and not args.resume:
        return "stopped before the trials began; nothing was kept: run the same command to start again"
    flags = f" --name {request.name}" + (f" --results {args.results}" if args.results != "results" else "")
    flags += f" --storage {args.storage}" if args.storage else ""
    return (f"stopped during {stage}; what was done is kept in {request.folder}: continue with "
            f"python -m search.run {args.space}{flags} --resume")


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_flags(args)
    if args.dry_run:
        return dry_run(args)
    request = resume_request(args) if args.resume else new_request(args)
    mode = check_before_ray(request)

    from search.pipeline import run_search

    from search.stop import Stopped

    try:
        outcome = run_search(request, mode)
    except Stopped as stopped:
        print(how_to_continue(args, request, stopped.stage), file=sys.stderr, flush=True)
        return stopped.exit_status
    print_summary(outcome.summary, outcome.space, request.folder, mode, outcome.elapsed)
    return 1 if outcome.summary["best_trial"] is None else 0


if __name__ == "__main__":
    sys.exit(main())

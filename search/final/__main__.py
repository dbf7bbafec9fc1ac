"""Run the final stage again on a finished search, e.g. with another threshold rule.

    python -m search.final results/lens_finding --set final.threshold=youden
    python -m search.final results/lens_finding --set final.ensemble=1 --set final.tta=false
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainable.errors import exit_on_user_error

def parse_args(argv: list[str] | None):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m search.final", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the final stage again on a finished search, e.g. with another threshold rule:\n\n"
                    "    python -m search.final results/lens_finding --set final.threshold=youden\n"
                    "    python -m search.final results/lens_finding --set final.ensemble=1 --set final.tta=false\n"
                    "    python -m search.final results/lens_finding --set final.refit=true --set final.seeds=2\n\n"
                    "No trial is trained again unless final.refit or final.seeds asks it (then here, one run\n"
                    "after another): the stage reads the trials' checkpoints. It rewrites\n"
                    "best_model.pt, summary.json, test_predictions.csv, the report and the final: block of\n"
                    "the saved space.yaml; the search's W&B summary run keeps the first stage's figures.")
    parser.add_argument("folder", type=Path, help="the results folder of a finished search (results/<name>)")
    parser.add_argument("--set", action="append", default=[], metavar="final.KEY=VALUE",
                        help="change a key of the final: block; repeatable")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import json

    import yaml
    from ray.tune import ExperimentAnalysis, ResultGrid

    from search.files import SPACE_COPY, SUMMARY_FILE
    from search.final.describe import describe, describe_seeds, side_by_side
    from search.final.finish import write_results
    from search.plan.data import prepare_data
    from search.report.html import write_report
    from search.results.records import format_table
    from search.results.train_on import with_trained_on
    from search.space import load_space
    from trainable.decide import few_negatives_note
    from trainable.errors import UserError

    args = parse_args(argv)
    folder = args.folder
    if not (folder / SUMMARY_FILE).is_file() or not (folder / SPACE_COPY).is_file():
        raise UserError(f"{folder}: holds no finished search ({SUMMARY_FILE} and {SPACE_COPY} expected)")
    bad = [pair for pair in args.set if not pair.startswith("final.")]
    if bad:
        raise UserError(f"--set {bad[0]}: only final.* keys can change after the search; start a new one for others")
    space = load_space(folder / SPACE_COPY, args.set, has_gpu=True)
    old = json.loads((folder / SUMMARY_FILE).read_text())
    dataset = prepare_data(space)
    # The best trial with the epochs it trained on after the search, if it did (search.train_on).
    grid, _ = with_trained_on(ResultGrid(ExperimentAnalysis(old["experiment_path"])), space, folder,
                              dataset.split("val")[1].numpy())
    summary = write_results(grid, space, old["name"], dataset, folder, old["experiment_path"],
                            complete=old.get("complete", True), cluster=old.get("cluster"),
                            extra={k: old[k] for k in ("budget", "trials_s", "trials_began", "train_on") if k in old})
    header = (folder / SPACE_COPY).read_text().splitlines()[0]
    (folder / SPACE_COPY).write_text(header + "\n" + yaml.safe_dump(space.raw, sort_keys=False))
    write_report(folder)
    if summary["final"] is None:
        print("no trial kept a checkpoint: no final model")
        return 1
    test = summary["test"]
    print(describe(summary["final"]))
    if summary["final"].get("seeds"):
        print(describe_seeds(summary["final"]["seeds"], space.metric))
    print(f"on the test split ({test['n']} images):")
    print(format_table(side_by_side(summary["final"])))
    if few_negatives_note(test):
        print(few_negatives_note(test))
    print(f"written: {folder}/ (best_model.pt, summary.json, test_predictions.csv, report/)")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error(main)())

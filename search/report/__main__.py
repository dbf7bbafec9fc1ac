"""Figures and one HTML page that review a finished search, for the people who judge its results.

    python -m search.report results/lens_finding
    python -m search.report results/lens_finding --out /tmp/lens_finding_report

Reads the results folder a search leaves (see :mod:`search.results`) and writes, in
``RESULTS/report/`` unless ``--out`` says otherwise, one PNG per figure and ``report.html``, which
embeds them and needs nothing else (mail it, open it offline):

* ``learning_curves.png``: the validation metric of every trial per epoch, ASHA's stops marked;
* ``importance.png``: parameter importances (Optuna's fANOVA, else PED-ANOVA) on every trial's
  value at the first ASHA rung (the epoch every trial reached);
* ``parallel_coordinates.png``: the best trials' parameters, coloured by the metric;
* ``pareto.png`` (a search with ``objectives:``): the metric against each cost, the Pareto set
  opaque and joined, the dominated trials faded, the final model's trial starred;
* ``roc.png``, ``confusion_matrix.png`` and ``reliability.png``: the final model on the test split,
  deciding at its threshold (:mod:`search.final`), and its calibration;
* ``misclassified.png``: the test images the best model gets most confidently wrong.

A figure the results cannot give (no Optuna study after a grid search, too few trials for
importances, a single class in the test split) is replaced on the page by a note that says why.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search.report.html import FIGURES, read_summary, write_report
from trainable.errors import exit_on_user_error

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m search.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the results folder of a finished search (results/<name>/)")
    parser.add_argument("--out", type=Path, help="where to write the figures and report.html "
                                                 "(default FOLDER/report/)")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = write_report(args.folder, args.out)
    summary = read_summary(args.folder)
    missing = [f.file for f in FIGURES if f.applies(summary) and not (path.parent / f.file).is_file()]
    print(f"report: {path}" + (f" (not drawn, see the notes there: {', '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

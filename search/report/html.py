"""``report.html``: one page that embeds every figure of a finished search (:mod:`search.report.figures`),
with its summary, leaderboard and Pareto set, and needs nothing else."""

from __future__ import annotations

import base64
import html
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import matplotlib.pyplot as plt

from search.report.figures import (STYLE, Skipped, is_number, plot_confusion_matrix,
                            plot_importance, plot_learning_curves, plot_misclassified,
                            plot_parallel_coordinates, plot_pareto, plot_reliability, plot_roc, require)
from search.files import LEADERBOARD_FILE, REPORT_FOLDER, SUMMARY_FILE
from search.final.describe import describe as describe_final, describe_seeds, side_by_side
from search.results.pareto import describe_pareto
from trainable.decide import few_negatives_note
from trainable.errors import UserError


REPORT_FILE = "report.html"
LEADERBOARD_ROWS = 20

@dataclass
class Figure:
    file: str
    title: str
    draw: Callable[[Path, dict, Path], str]  # (results folder, summary, PNG to write) -> caption
    applies: Callable[[dict], bool] = lambda summary: True  # a figure of some searches only


FIGURES = [
    Figure("learning_curves.png", "Learning curves", plot_learning_curves),
    Figure("importance.png", "Parameter importance", plot_importance),
    Figure("parallel_coordinates.png", "Best trials' parameters", plot_parallel_coordinates),
    Figure("pareto.png", "Pareto front: metric against cost", plot_pareto,
           lambda summary: bool(summary.get("objectives"))),
    Figure("roc.png", "ROC curve (test split)", plot_roc),
    Figure("confusion_matrix.png", "Confusion matrix (test split)", plot_confusion_matrix),
    Figure("reliability.png", "Calibration (test split)", plot_reliability),
    Figure("misclassified.png", "Misclassified test images", plot_misclassified),
]

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 2em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
tr.best td { background: #fff6d5; font-weight: 600; }
.scroll { overflow-x: auto; } .muted { color: #666; }
figure { margin: 0.5em 0 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; margin-top: 0.3em; }
.note { background: #fff8e6; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; color: #5c4400; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any) -> str:
    return f"{value:.4f}" if is_number(value) else "-"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "-"
    return "-" if value is None or value == "" else str(value)


def header_html(summary: dict[str, Any]) -> str:
    """The search, its trials by status, the best trial and its configuration, the test metrics."""
    metric = summary.get("metric", "?")
    counts = summary.get("status_counts") or {}
    statuses = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none finished"
    objectives = summary.get("objectives")
    facts = [("objectives", ", ".join(f"{o['metric']} ({o['mode']})" for o in objectives)) if objectives else
             ("metric", f"{metric} ({summary.get('mode', '?')})"),
             ("search", f"{summary.get('algorithm', '?')}, scheduler {summary.get('scheduler', '?')}, "
                        f"{summary.get('epochs', '?')} epochs a trial at most"),
             ("trials", f"{summary.get('num_trials', len(summary.get('trials') or []))} ({statuses})"
                        + ("" if summary.get("complete", True) else "; the search stopped before all ended"))]
    best, test = summary.get("best_trial"), summary.get("test") or {}
    if best is not None:
        val = summary.get("best_val") or {}
        facts.append(("best trial", f"{best}: {metric} {_number(val.get(metric))} on the validation split "
                                    f"at epoch {val.get('epoch', '?')}"))
    else:
        facts.append(("best trial", "none: no trial reported a value"))
    final = summary.get("final")
    if final:
        facts.append(("final model", describe_final(final).removeprefix("final model: ")))
        if final.get("seeds"):
            facts.append(("seed check", describe_seeds(final["seeds"], metric).split(": ", 1)[1]))
    if test:
        text = (f"{test.get('n', '?')} images: accuracy {_number(test.get('accuracy'))}, "
                f"macro F1 {_number(test.get('f1_macro'))}, ROC AUC {_number(test.get('auc'))}")
        if test.get("tpr0") is not None:
            text += f", TPR0 {_number(test['tpr0'])}, TPR10 {_number(test['tpr10'])}"
        facts.append(("test split (final model)", text))
        if few_negatives_note(test):
            facts.append(("note", few_negatives_note(test).removeprefix("note: ")))
    parts = [f"<h1>Search {_e(summary.get('name', ''))}</h1>", '<dl class="facts">']
    parts += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts]
    parts.append("</dl>")
    if final:
        parts.append("<h2>From the best trial to the final model (test split)</h2>" + table_html(side_by_side(final)))
    if summary.get("best_config"):
        rows = "".join(f'<tr><td class="text">{_e(k)}</td><td class="text">{_e(_cell(v))}</td></tr>'
                       for k, v in summary["best_config"].items())
        parts.append(f'<h2>Best configuration</h2><table><tr><th class="text">parameter</th>'
                     f'<th class="text">value</th></tr>{rows}</table>')
    return "\n".join(parts)


def table_html(frame: pd.DataFrame) -> str:
    """A small table: text columns left, numbers right, the final model's row highlighted."""
    align = {c: "" if pd.api.types.is_numeric_dtype(frame[c]) else "text" for c in frame.columns}
    head = "".join(f'<th class="{align[c]}">{_e(c)}</th>' for c in frame.columns)
    rows = []
    for row in frame.to_dict("records"):
        mark = ' class="best"' if row.get("final") == "yes" else ""
        cells = "".join(f'<td class="{align[c]}">{_e(_cell(None if pd.isna(v) else v))}</td>' for c, v in row.items())
        rows.append(f"<tr{mark}>{cells}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def leaderboard_html(folder: Path, summary: dict[str, Any]) -> str:
    """The leaderboard's first rows as a table, the best trial's row highlighted."""
    frame = pd.read_csv(require(folder, LEADERBOARD_FILE), dtype={"trial": str})
    shown = frame.head(LEADERBOARD_ROWS)
    align = {c: "" if pd.api.types.is_numeric_dtype(shown[c]) else "text" for c in shown.columns}
    head = "".join(f'<th class="{align[c]}">{_e(c)}</th>' for c in shown.columns)
    body = []
    for row in shown.to_dict("records"):
        best = ' class="best"' if str(row.get("trial")) == str(summary.get("best_trial")) else ""
        cells = "".join(f'<td class="{align[c]}">{_e(_cell(None if pd.isna(v) else v))}</td>'
                        for c, v in row.items())
        body.append(f"<tr{best}>{cells}</tr>")
    more = (f'<p class="muted">The best {LEADERBOARD_ROWS} of {len(frame)} trials; all of them in '
            f'{LEADERBOARD_FILE}.</p>' if len(frame) > LEADERBOARD_ROWS else "")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>{more}'


def pareto_html(summary: dict[str, Any]) -> str:
    """The trials on the Pareto front (search.results.pareto), best first on the metric, and what
    ``final.pick`` took."""
    frame = pd.DataFrame(summary.get("pareto") or [])
    lines = describe_pareto(summary)[len(frame) + 1:]  # the pick and the final model's costs
    notes = "".join(f'<p class="muted">{_e(line)}</p>' for line in lines)
    return (table_html(frame) if len(frame) else _note("no trial reported a value and its costs")) + notes


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _attempt(title: str, build: Callable[[], str]) -> tuple[str, bool]:
    """``build()`` and True, or a note saying why it could not be built and False."""
    try:
        return build(), True
    except Skipped as reason:
        return _note(f"{title}: {reason}"), False
    except Exception as err:  # a bug or a damaged file; the report never stops a search's end
        print(f"report: {title} not written: {type(err).__name__}: {err}", file=sys.stderr)
        return _note(f"{title} could not be written ({type(err).__name__}: {err})"), False


def figure_html(figure: Figure, folder: Path, summary: dict[str, Any], out: Path) -> tuple[str, bool]:
    """The figure embedded as a data URI with its caption (and True), or a note saying why there
    is none (and False)."""
    png = out / figure.file
    png.unlink(missing_ok=True)  # never a stale picture from an earlier report beside this one

    def build() -> str:
        caption = figure.draw(folder, summary, png)
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(figure.title)}" '
                f'data-file="{_e(figure.file)}"><figcaption>{_e(caption)}</figcaption></figure>')

    body, drawn = _attempt(figure.title, build)
    if not drawn:
        png.unlink(missing_ok=True)
    return f"<h2>{_e(figure.title)}</h2>\n{body}", drawn


def read_summary(folder: Path) -> dict[str, Any]:
    path = folder / SUMMARY_FILE
    if not path.is_file():
        raise UserError(f"{folder}: no {SUMMARY_FILE} here: not the results folder of a finished search "
                        "(results/<name>/)")
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot be read as JSON ({err})") from None
    if not isinstance(summary, dict) or "metric" not in summary:
        raise UserError(f"{path}: not a search summary (no metric)")
    return summary


def write_report(folder: Path, out: Path | None = None) -> Path:
    """Write the figures and ``report.html`` for a results folder.

    Args:
        folder: The results folder of a finished search (``results/<name>/``).
        out: Where to write; default ``folder/report/``.

    Returns:
        The path of ``report.html``. A figure that cannot be drawn becomes a note on the page, and
        no PNG.

    Raises:
        UserError: ``folder`` holds no readable ``summary.json``.
    """
    folder = Path(folder)
    summary = read_summary(folder)
    out = Path(out) if out is not None else folder / REPORT_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):
        parts = [_attempt("Summary", lambda: header_html(summary))[0], "<h2>Leaderboard</h2>",
                 _attempt("Leaderboard", lambda: leaderboard_html(folder, summary))[0]]
        if summary.get("objectives"):
            parts += ["<h2>Pareto set</h2>", _attempt("Pareto set", lambda: pareto_html(summary))[0]]
        parts += [figure_html(figure, folder, summary, out)[0] for figure in FIGURES if figure.applies(summary)]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>Search {_e(summary.get("name", ""))}: report</title><style>{CSS}</style></head>\n'
            "<body>\n" + "\n".join(parts)
            + f'\n<p class="muted">Written from {_e(folder.resolve())}.</p>\n</body></html>\n')
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path

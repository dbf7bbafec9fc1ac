"""Progress while a search runs: Ray's trial table, trimmed to the searched parameters that
matter most and the metrics."""

from __future__ import annotations

from search.space import Distribution, Space
from search.tune.adapter import reporter_sorted_while

# Progress-table columns, most telling first; searched parameters not listed come after these.
PARAMETER_ORDER = ("backbone", "lr", "optimizer", "loss", "sampling", "scheduler", "batch_size")

MAX_PARAMETER_COLUMNS = 6

METRIC_COLUMNS = ("epoch", "val_auc", "val_accuracy", "val_loss")


def parameter_columns(space: Space, limit: int = MAX_PARAMETER_COLUMNS, conditional: bool = True) -> list[str]:
    """The searched parameters worth a column, most telling first, at most ``limit``."""
    searched = [k for k, v in space.space.items() if isinstance(v, Distribution) and (conditional or not v.when)]
    ordered = [k for k in PARAMETER_ORDER if k in searched] + [k for k in searched if k not in PARAMETER_ORDER]
    return ordered[:limit]


def sortable(trials, metric: str) -> bool:
    """Whether Ray's table can sort ``trials`` by ``metric``: every finished one has a value. A
    time budget can end trials before their first epoch, and Ray's sort would then compare None
    with None and stop the search."""
    return all(t.status != "TERMINATED" or metric in (t.last_result or {}) for t in trials)


def progress_reporter(space: Space):
    """Ray's trial table, trimmed to the searched parameters that matter most and the metrics."""
    TrialTable = reporter_sorted_while(lambda trials: sortable(trials, space.metric))
    metrics = list(dict.fromkeys(["epoch", space.metric, *(c for c, _ in space.costs), *METRIC_COLUMNS[1:]]))
    # Conditional parameters are left out: Ray's best-trial line fails on a trial without one.
    return TrialTable(parameter_columns=parameter_columns(space, conditional=False), metric_columns=metrics,
                       metric=space.metric, mode=space.mode, sort_by_metric=True, max_progress_rows=12, max_error_rows=5,
                       max_column_length=14, max_report_frequency=30)

"""The one place that uses Ray's and Optuna's private names, where no public API does the job.

* Ray's ``OptunaSearch`` gives no public way to reach the Optuna trial of a Ray trial, nor its
  study: :class:`search.tune.searcher.PruningOptunaSearch` reads them here.
* Ray's ASHA gives no public way to change the value a trial must reach at a rung:
  :class:`search.tune.schedulers.margin_asha.MarginASHA` lowers it in a subclass of the bracket class
  (:func:`asha_bracket_base`, :func:`asha_brackets`).
* Ray's ``CLIReporter`` sorts its table by the metric or not for the whole search: the trial
  table turns its sorting off while a finished trial has no value (:func:`reporter_sorted_while`).
* Ray validates a cluster-launcher config only in ``ray.autoscaler._private.util``: the tests of
  ``cluster/*.yaml`` call it here.

:data:`TESTED_MAJORS` are the major versions this was tested on (``pyproject.toml`` bounds them
below the next major), and ``tests/search/test_adapter.py`` fails loudly, naming what changed,
when an upgrade breaks any of it.
"""

from __future__ import annotations

from typing import Any, Callable

TESTED_MAJORS = {"ray": 2, "optuna": 5}


def optuna_trials(searcher) -> dict[str, Any]:
    """Ray trial id -> the ``optuna.Trial`` asked for it (``OptunaSearch._ot_trials``)."""
    return searcher._ot_trials


def completed_trials(searcher) -> set[str]:
    """The Ray trial ids already told to Optuna (``OptunaSearch._completed_trials``)."""
    return searcher._completed_trials


def optuna_study(searcher):
    """The searcher's ``optuna.Study`` (``OptunaSearch._ot_study``; None before it is set up)."""
    return searcher._ot_study


def asha_bracket_base() -> type:
    """Ray's ASHA bracket class (``ray.tune.schedulers.async_hyperband._Bracket``), whose
    ``cutoff(recorded)`` is the value ``on_result`` compares a trial at a rung with."""
    from ray.tune.schedulers.async_hyperband import _Bracket

    return _Bracket


def asha_brackets(scheduler) -> list:
    """The brackets of Ray's ASHA ``scheduler`` (``AsyncHyperBandScheduler._brackets``)."""
    return scheduler._brackets


def reporter_sorted_while(sortable: Callable[[list], bool]) -> type:
    """A ``CLIReporter`` class that sorts its table by the metric only while ``sortable(trials)``
    (it sets ``CLIReporter._sort_by_metric`` before each ``_progress_str``)."""
    from ray.tune import CLIReporter

    class TrialTable(CLIReporter):
        def _progress_str(self, trials, done, *sys_info, **kwargs):
            self._sort_by_metric = sortable(trials)
            return super()._progress_str(trials, done, *sys_info, **kwargs)

    return TrialTable


def validate_cluster_config(config: dict[str, Any], prepare: bool = False) -> dict[str, Any]:
    """Check a Ray cluster-launcher config against Ray's schema, as ``ray up`` does; with
    ``prepare``, first merge the provider's defaults (no cloud call). Returns the checked config.

    Raises:
        jsonschema.ValidationError: the config does not match Ray's schema.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    if prepare:
        config = prepare_config(config)
    validate_config(config)
    return config

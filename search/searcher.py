"""Ray Tune's Optuna searcher, told which trials ASHA stopped.

Ray's ``OptunaSearch.on_trial_complete`` tells Optuna that every trial with a metric is COMPLETE
with its last reported value. A trial that ASHA stopped after 3 of 30 epochs then enters TPE as
a finished trial with a low-budget value, which TPE compares with fully trained ones as if they
were alike. Here a trial that ends before the epoch budget (``max_t``), without an error and
without diverging, is told PRUNED: Optuna keeps its per-epoch values (reported as intermediate
values at each step) and TPE ranks it by the step it reached, as Optuna's own pruners do.
"""

from __future__ import annotations

import logging
import warnings

from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

log = logging.getLogger(__name__)


class PruningOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that records trials stopped before ``max_epochs`` as pruned.

    Args:
        max_epochs: The epoch budget of a full trial (ASHA's ``max_t``).
        epoch_key: The reported result field holding the epochs a trial has run.
        *args, **kwargs: Passed to :class:`ray.tune.search.optuna.OptunaSearch`. Give it the
            same ``metric`` and ``mode`` as ``TuneConfig``: a searcher built with its space
            ignores TuneConfig's (Ray's ``set_search_properties`` returns early).
    """

    def __init__(self, *args, max_epochs: int, epoch_key: str = "epoch", **kwargs):
        super().__init__(*args, **kwargs)
        self.max_epochs = max_epochs
        self.epoch_key = epoch_key

    def stopped_early(self, result: dict | None, error: bool) -> bool:
        """Whether a trial ended with a metric before its epoch budget, neither failed nor diverged."""
        return (not error and bool(result) and result.get(self.metric) is not None
                and not result.get("diverged")
                and result.get(self.epoch_key, self.max_epochs) < self.max_epochs)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if (trial_id in self._ot_trials and trial_id not in self._completed_trials
                and self.stopped_early(result, error)):
            ot_trial = self._ot_trials[trial_id]
            # The result that made the scheduler stop the trial reaches only this method, never
            # on_trial_result: record it at its step, so the trial is pruned where it stopped.
            ot_trial.report(result[self.metric], result.get(TRAINING_ITERATION, result[self.epoch_key]))
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        if (trial_id in self._ot_trials and trial_id not in self._completed_trials and not error
                and result and result.get(self.metric) is not None and result.get(self.epoch_key)):
            # Keep the last epoch's value among the intermediate ones too (Ray's searcher does not).
            with warnings.catch_warnings():  # a step already reported is kept, with a warning
                warnings.simplefilter("ignore")
                self._ot_trials[trial_id].report(
                    result[self.metric], result.get(TRAINING_ITERATION, result[self.epoch_key]))
        super().on_trial_complete(trial_id, result, error)

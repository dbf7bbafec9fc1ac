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
    """``OptunaSearch`` that records trials stopped before ``max_epochs`` as pruned, full trials
    with their best epoch's value, and diverged trials as infeasible.

    * Stopped early (by ASHA, or a time budget), neither failed nor diverged: PRUNED, with every
      epoch's value as an intermediate value, so TPE ranks it by the step it reached.
    * Ran the whole budget: COMPLETE with its best epoch's value, the one the leaderboard ranks
      by and whose checkpoint is kept and exported (Ray tells Optuna the last epoch's).
    * Diverged: COMPLETE with the constraint ``diverged`` violated, so TPE ranks it below every
      feasible trial instead of reading the diverged sentinel value (0 AUC, infinite loss) as an
      ordinary, merely bad, result.

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
        self.best: dict[str, float] = {}

    def stopped_early(self, result: dict | None, error: bool) -> bool:
        """Whether a trial ended with a metric before its epoch budget, neither failed nor diverged."""
        return (not error and bool(result) and result.get(self.metric) is not None
                and not result.get("diverged")
                and result.get(self.epoch_key, self.max_epochs) < self.max_epochs)

    def _record(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if value is None or result.get("diverged"):
            return
        best = self.best.get(trial_id)
        better = max if self.mode == "max" else min
        self.best[trial_id] = value if best is None else better(best, value)

    def on_trial_result(self, trial_id: str, result: dict):
        self._record(trial_id, result)
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id not in self._ot_trials or trial_id in self._completed_trials or error or not result \
                or result.get(self.metric) is None:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        # The last result (the one that made the scheduler stop the trial, or the final epoch)
        # reaches only this method, never on_trial_result: record it at its step too.
        with warnings.catch_warnings():  # a step already reported is kept, with a warning
            warnings.simplefilter("ignore")
            ot_trial.report(result[self.metric], result.get(TRAINING_ITERATION, result.get(self.epoch_key, 0)))
        self._record(trial_id, result)
        if self.stopped_early(result, error):
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
        elif result.get("diverged"):
            ot_trial.set_user_attr("diverged", True)
            ot_trial.set_constraint("diverged", 1.0)
            self._ot_study.tell(ot_trial, result[self.metric], state=TrialState.COMPLETE)
        else:
            self._ot_study.tell(ot_trial, self.best.get(trial_id, result[self.metric]),
                                state=TrialState.COMPLETE)
        self._completed_trials.add(trial_id)

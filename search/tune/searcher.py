"""Ray Tune's Optuna searcher, told which trials ASHA stopped.

Ray's ``OptunaSearch.on_trial_complete`` tells Optuna that every trial with a metric is COMPLETE
with its last reported value. A trial that ASHA stopped after a few epochs then enters TPE as
a finished trial with a low-budget value, which TPE compares with fully trained ones as if they
were alike. Here a trial that ends before the epoch budget (``max_t``), without an error and
without diverging, is told PRUNED: Optuna keeps its per-epoch values (reported as intermediate
values at step = the trial's epoch) and TPE ranks it by the step it reached, as Optuna's own
pruners do.

Ray's ``OptunaSearch`` gives no public way to reach the Optuna trial of a Ray trial: that is
read through :mod:`search.tune.adapter`, the one module that uses Ray's and Optuna's private names.
"""

from __future__ import annotations

import logging
import math
import time
import warnings

from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from search.tune.adapter import completed_trials, optuna_study, optuna_trials
from search.tune.pareto import FastestByArchitecture
from trainable.best import Best, best_key, finite

log = logging.getLogger(__name__)
# The user attribute holding a multi-objective trial's metric by epoch ({"3": 0.91, ...}): Optuna
# takes no intermediate values there, and the report's importances read the first rung from it.
EPOCH_VALUES = "epoch_values"


class PruningOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that records trials stopped before ``max_epochs`` as pruned, full trials
    with their best epoch's value, and diverged trials as infeasible; no NaN ever reaches Optuna.

    * Stopped early (by ASHA, or a time budget), neither failed nor diverged: PRUNED, with every
      epoch's value as an intermediate value at step = its epoch (not Ray's
      ``training_iteration``, which restarts its count after a restore), so TPE ranks it by the
      epoch it reached.
    * Ran the whole budget: COMPLETE with its best epoch's value (:mod:`trainable.best`, as the
      trial itself reports it in ``best_<metric>``), the one the leaderboard ranks by and whose
      weights are exported.
    * Diverged (or out of GPU memory): COMPLETE with the constraint ``diverged`` violated, so TPE
      ranks it below every feasible trial instead of reading the sentinel value (0 AUC, infinite
      loss) as an ordinary, merely bad, result.

    A multi-objective search (``metric`` and ``mode`` lists: the validation metric, then costs,
    :mod:`trainable.cost`) tells a full trial its best value and its costs. Optuna takes no
    intermediate values in a multi-objective study, so a trial stopped early is PRUNED without
    them: TPE ranks it after the completed ones (it was beaten at a rung), never reading a
    low-budget value as a final one. Each trial's metric by epoch is kept as its ``epoch_values``
    user attribute.

    Args:
        max_epochs: The epoch budget of a full trial (ASHA's ``max_t``).
        start_until: No trial starts after this ``time.time()`` (a time budget's end, less the
            time a trial needs to reach its first rung); None: no limit.
        min_starts: Trials that start whatever ``start_until`` says (one per slot: a budget too
            short for a first rung still trains something).
        epoch_key: The reported result field holding the epochs a trial has run.
        *args, **kwargs: Passed to :class:`ray.tune.search.optuna.OptunaSearch` (``storage``:
            an Optuna storage, e.g. a ``JournalStorage`` the results folder keeps). Give it the
            same ``metric`` and ``mode`` as ``TuneConfig``: a searcher built with its space
            ignores TuneConfig's (Ray's ``set_search_properties`` returns early).
    """

    def __init__(self, *args, max_epochs: int, epoch_key: str = "epoch", start_until: float | None = None,
                 min_starts: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        modes = self.mode if isinstance(self.mode, list) else [self.mode]
        self.primary, self.primary_mode = metrics[0], modes[0]
        self.costs = list(zip(metrics[1:], modes[1:]))  # a multi-objective search's cost objectives
        self.max_epochs = max_epochs
        self.epoch_key = epoch_key
        self.start_until = start_until
        self.min_starts = min_starts
        self.started = 0
        self.best: dict[str, Best] = {}
        self.curves: dict[str, dict[str, float]] = {}  # multi-objective: each running trial's values by epoch
        self.fastest = FastestByArchitecture()

    def suggest(self, trial_id: str):
        """The next configuration; none once ``start_until`` (a ``time.time()``) has passed and
        ``min_starts`` trials have started: a trial started then could not reach ASHA's first
        rung within the time budget."""
        if self.start_until is not None and time.time() > self.start_until and self.started >= self.min_starts:
            return Searcher.FINISHED
        suggestion = super().suggest(trial_id)
        if isinstance(suggestion, dict):
            self.started += 1
        return suggestion

    @property
    def study(self):
        """The Optuna study (None before the search properties are set)."""
        return optuna_study(self)

    def stopped_early(self, result: dict | None, error: bool) -> bool:
        """Whether a trial ended with a metric before its epoch budget, neither failed nor diverged."""
        return (not error and bool(result) and finite(result.get(self.primary)) is not None
                and not result.get("diverged")
                and result.get(self.epoch_key, self.max_epochs) < self.max_epochs)

    def _report(self, trial_id: str, result: dict) -> None:
        """Tell Optuna one epoch's value (finite, not diverged) at step = the epoch (not in a
        multi-objective study, where Optuna takes no intermediate values)."""
        value, epoch = finite(result.get(self.primary)), result.get(self.epoch_key)
        if value is None or result.get("diverged") or epoch is None:
            return
        self.best.setdefault(trial_id, Best(self.primary_mode)).update(value, int(epoch))
        if self.costs:  # kept for the trial's end (EPOCH_VALUES)
            self.curves.setdefault(trial_id, {})[str(int(epoch))] = value
            return
        with warnings.catch_warnings():  # a step already reported is kept, with a warning
            warnings.simplefilter("ignore")
            optuna_trials(self)[trial_id].report(value, int(epoch))

    def _best_value(self, trial_id: str, result: dict) -> float | None:
        """The trial's own record of its best value, else the best this searcher saw."""
        reported = finite(result.get(best_key(self.primary)))
        return reported if reported is not None else self.best.get(trial_id, Best(self.primary_mode)).value

    def _values(self, trial_id: str, best: float, result: dict) -> float | list[float] | None:
        """What Optuna is told of a trial that ran its budget: its best value, and in a
        multi-objective search its costs after it (None if one is missing; ``throughput`` as
        the fastest its architecture measured so far, :class:`search.tune.pareto.FastestByArchitecture`)."""
        if not self.costs:
            return best
        costs = [finite(result.get(name)) for name, _ in self.costs]
        if any(c is None for c in costs):
            return None
        names = [name for name, _ in self.costs]
        if "throughput" in names:
            config = optuna_trials(self)[trial_id].params
            costs[names.index("throughput")] = self.fastest.update(config, costs[names.index("throughput")])
        return [best, *costs]

    def _told_before(self, trial_id: str) -> bool:
        """Whether the study already holds the trial as finished. A driver killed after Optuna's
        journal recorded a trial's end, but before Ray's experiment state did, resumes the trial
        as running: it ends again, and Optuna refuses a second tell."""
        number = optuna_trials(self)[trial_id].number
        if any(t.number == number and t.state.is_finished() for t in self.study.get_trials(deepcopy=False)):
            completed_trials(self).add(trial_id)
            return True
        return False

    def on_trial_result(self, trial_id: str, result: dict):
        if trial_id in optuna_trials(self) and trial_id not in completed_trials(self) and not self._told_before(trial_id):
            self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id not in optuna_trials(self) or trial_id in completed_trials(self) or self._told_before(trial_id):
            return super().on_trial_complete(trial_id, result, error)
        ot_trial, result = optuna_trials(self)[trial_id], result or {}
        # The last result (the one that made the scheduler stop the trial, or the final epoch)
        # reaches only this method, never on_trial_result: record it at its step too.
        self._report(trial_id, result)
        best = self._best_value(trial_id, result)
        if self.curves.get(trial_id):
            ot_trial.set_user_attr(EPOCH_VALUES, self.curves[trial_id])
        if result.get("diverged") and not error:
            ot_trial.set_user_attr("diverged", True)
            if result.get("out_of_memory"):
                ot_trial.set_user_attr("out_of_memory", True)
            ot_trial.set_constraint("diverged", 1.0)
            modes = [self.primary_mode, *(mode for _, mode in self.costs)]
            worst = [-math.inf if mode == "max" else math.inf for mode in modes]
            self.study.tell(ot_trial, worst if self.costs else worst[0], state=TrialState.COMPLETE)
        elif self.stopped_early(result, error):
            self.study.tell(ot_trial, state=TrialState.PRUNED)
        elif (values := None if error or best is None else self._values(trial_id, best, result)) is None:
            self.study.tell(ot_trial, state=TrialState.FAIL)
        else:
            self.study.tell(ot_trial, values, state=TrialState.COMPLETE)
        completed_trials(self).add(trial_id)
        # The study holds the finished trial now. Kept here too, every finished trial would go into
        # each experiment snapshot (Ray pickles the searcher whole after every checkpoint), a cost
        # that grows with the search (BENCHMARKS.md, "Does the driver's cost grow over 1,000
        # trials?"). A repeated completion is answered by the completed set.
        optuna_trials(self).pop(trial_id, None)
        self.best.pop(trial_id, None)
        self.curves.pop(trial_id, None)


def close_orphans(journal, study_name: str) -> int:
    """Mark failed the Optuna trials a finished search left running: trials asked for by a driver
    killed before Ray's experiment state recorded them, so never run (the resumed search asked
    for new ones). Left running, TPE's constant liar would count them as pending for good.
    Returns how many there were. Only for a search whose every Ray trial ended."""
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=study_name, storage=storage)
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        study.tell(trial.number, state=TrialState.FAIL)
    return len(orphans)

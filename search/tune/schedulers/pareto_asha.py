"""MO-ASHA: asynchronous successive halving on several objectives, as a Ray Tune scheduler.

No library the project uses stops trials early on several objectives: Optuna's pruners refuse
multi-objective studies and Ray's ASHA ranks by one number. :class:`ParetoASHA` is MO-ASHA
(Schmucker et al., 2021; Syne Tune's ``MOASHA``): ASHA whose rung decision ranks trials by
non-dominated sorting, ties within a front broken by NSGA-II's crowding distance
(:func:`search.tune.pareto.pareto_order`), instead of by one value.
"""

from __future__ import annotations

import math
import pickle
from typing import Sequence

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.plan.rungs import rungs
from search.tune.pareto import FastestByArchitecture, pareto_order


class ParetoASHA(FIFOScheduler):
    """Asynchronous successive halving on several objectives (MO-ASHA).

    A trial reaching a rung is ranked among every trial recorded there, itself included, by
    :func:`pareto_order`; it goes on if it is among the first ``ceil(n / reduction_factor)`` of
    the ``n``, as the top ``1 / reduction_factor`` go on in ASHA (Ray's ASHA compares with a
    percentile of the others: the same share, ties aside). A trial stops at ``max_t``.
    ``throughput``, when an objective, is read as the fastest any trial of the same architecture
    measured so far (:class:`search.tune.pareto.FastestByArchitecture`), at each decision.

    Args:
        time_attr: The reported field that counts a trial's progress (epochs).
        metrics: The reported fields of the objectives, the primary first (for a validation
            metric, ``best_<metric>``, the trial's best so far, as ASHA here ranks by).
        modes: ``max`` or ``min`` for each of ``metrics``.
        max_t, grace_period, reduction_factor: As for Ray's ``ASHAScheduler``.
    """

    def __init__(self, time_attr: str, metrics: Sequence[str], modes: Sequence[str], max_t: int,
                 grace_period: int = 1, reduction_factor: float = 3):
        if len(metrics) != len(modes) or not metrics or any(m not in ("min", "max") for m in modes):
            raise ValueError(f"metrics {metrics!r} and modes {modes!r}: one mode, min or max, per metric")
        if not 0 < grace_period <= max_t or reduction_factor <= 1:
            raise ValueError("need 0 < grace_period <= max_t and reduction_factor > 1")
        super().__init__()
        self._time_attr, self._metrics, self._modes = time_attr, list(metrics), list(modes)
        self._max_t, self._rf = max_t, reduction_factor
        self._rungs: list[tuple[int, dict[str, tuple[float, ...]]]] = [
            (milestone, {}) for milestone in rungs(grace_period, max_t, reduction_factor)]
        self._num_stopped = 0
        self._pooled = self._metrics.index("throughput") if "throughput" in self._metrics else None
        self._fastest = FastestByArchitecture()
        self._configs: dict[str, dict] = {}  # trial id -> configuration, for its architecture

    @property
    def metric(self) -> str:
        return self._metrics[0]

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives are this scheduler's own; TuneConfig names none

    def decide(self, trial_id: str, epoch: float, values: tuple[float, ...]) -> str:
        """CONTINUE or STOP for a trial that reported ``values`` (one per objective) at ``epoch``."""
        if epoch >= self._max_t:
            return TrialScheduler.STOP
        for milestone, recorded in reversed(self._rungs):
            if epoch < milestone or trial_id in recorded:
                continue
            recorded[trial_id] = values
            ids = list(recorded)
            order = pareto_order([self._pooled_values(i, recorded[i]) for i in ids], self._modes)
            place = int(np.flatnonzero(order == ids.index(trial_id))[0])
            return TrialScheduler.CONTINUE if place < math.ceil(len(ids) / self._rf) else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def _pooled_values(self, trial_id: str, values: tuple[float, ...]) -> tuple[float, ...]:
        """``values`` with the throughput of the trial's architecture's fastest measurement."""
        if self._pooled is None or trial_id not in self._configs:
            return values
        pooled = list(values)
        pooled[self._pooled] = self._fastest.get(self._configs[trial_id])
        return tuple(pooled)

    def _values(self, result: dict) -> tuple[float, ...] | None:
        values = [result.get(m) for m in self._metrics]
        if self._time_attr not in result or any(v is None for v in values):
            return None
        return tuple(float(v) for v in values)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        values = self._values(result)
        if values is None:
            return TrialScheduler.CONTINUE
        self._remember(trial, values)
        action = self.decide(trial.trial_id, result[self._time_attr], values)
        self._num_stopped += action == TrialScheduler.STOP
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        values = self._values(result or {})
        if values is not None:
            self._remember(trial, values)
            self.decide(trial.trial_id, result[self._time_attr], values)

    def _remember(self, trial, values: tuple[float, ...]) -> None:
        if self._pooled is not None:
            self._configs[trial.trial_id] = dict(trial.config or {})
            self._fastest.update(self._configs[trial.trial_id], values[self._pooled])

    def debug_string(self) -> str:
        rungs = ", ".join(f"epoch {m}: {len(r)}" for m, r in self._rungs)
        return f"Using MO-ASHA: num_stopped={self._num_stopped}; trials per rung: {rungs}"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))

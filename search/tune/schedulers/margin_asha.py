"""ASHA that stops a trial only on a difference the validation split can tell.

Ray's ASHA (``AsyncHyperBandScheduler``) stops a trial at a rung when its value there is below
the ``1 - 1/reduction_factor`` percentile of the values recorded at that rung. On a small or hard
set the values at the first rungs can all be within the validation split's noise of each other,
and the cut then falls on whichever trial the noise put lowest, the default configuration
included; the same configuration may win one run and be cut in the next. :class:`MarginASHA` is
ASHA whose cutoff is lowered by ``margin`` standard errors of the metric at the cutoff
(:func:`trainable.metrics.standard_error`: Hanley and McNeil's for AUC, the binomial one for
accuracy), on the search's validation labels: a trial stops only when it is behind by more than
the split's noise. Where the values spread widely it decides as ASHA does.
``benchmarks/rung_margin.py`` replays both rules on recorded learning curves (BENCHMARKS.md,
"Should a rung stop a trial that is behind by less than the noise?").
"""

from __future__ import annotations

import numpy as np
from ray.tune.schedulers import AsyncHyperBandScheduler

from search.tune.adapter import asha_bracket_base, asha_brackets
from trainable.metrics import standard_error


def margin_applies(space, val_labels) -> bool:
    """Whether ``space``'s search stops trials with :class:`MarginASHA`: ASHA, a
    ``search.rung_margin`` above 0, validation labels and a metric with a standard error."""
    return (space.search.scheduler == "asha" and space.search.rung_margin > 0 and val_labels is not None
            and len(val_labels) > 0 and standard_error(space.metric, 0.5, val_labels) is not None)


class Noise:
    """``margin`` standard errors of ``metric`` (the base metric: ``val_auc``, not
    ``best_val_auc``) at a value, on the validation ``labels``; 0 where the metric has none (a
    loss). Takes and gives ASHA's signed rewards (``sign`` x value). Picklable: Ray saves the
    scheduler with the experiment."""

    def __init__(self, metric: str, labels: np.ndarray, margin: float, sign: float):
        self.metric, self.labels, self.margin, self.sign = metric, np.asarray(labels), float(margin), sign

    def __call__(self, reward: float) -> float:
        error = standard_error(self.metric, self.sign * float(reward), self.labels)
        return 0.0 if error is None else self.margin * error


class _MarginBracket(asha_bracket_base()):
    """Ray's bracket with its cutoff lowered by the noise at it (``noise``, set by MarginASHA)."""

    noise: Noise

    def cutoff(self, recorded):
        cutoff = super().cutoff(recorded)
        return None if cutoff is None else cutoff - self.noise(cutoff)


class MarginASHA(AsyncHyperBandScheduler):
    """ASHA over ``time_attr`` whose rungs stop a trial only when its ``metric`` is below the
    cutoff by more than ``margin`` standard errors of ``base_metric`` on ``labels`` (see the
    module's docstring)."""

    def __init__(self, *, base_metric: str, labels: np.ndarray, margin: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self._noise = Noise(base_metric, labels, margin, -1.0 if kwargs.get("mode") == "min" else 1.0)
        for bracket in asha_brackets(self):
            bracket.__class__ = _MarginBracket
            bracket.noise = self._noise

    def describe(self) -> str:
        """The printed line: what the margin is on this validation split."""
        noise = self._noise
        at = ", ".join(f"{standard_error(noise.metric, v, noise.labels):.3f} at {v:g}" for v in (0.5, 0.9))
        return (f"rungs: a trial stops only when it is more than {noise.margin:g} standard error(s) of "
                f"{noise.metric} behind the rung's cutoff ({at} on {len(noise.labels)} validation images; "
                f"search.rung_margin)")

    def set_search_properties(self, metric, mode, **spec) -> bool:
        ok = super().set_search_properties(metric, mode, **spec)
        if ok and mode:
            self._noise.sign = -1.0 if mode == "min" else 1.0
        return ok

"""Configurations of a space: Optuna's define-by-run sampling, and the space's default configuration."""

from __future__ import annotations

import math
from typing import Any, Callable

from search.space.schema import Distribution, Space
from trainable.config import TrainConfig
from trainable.errors import UserError

class DefineByRun:
    """An Optuna define-by-run function (picklable, so Ray can save the searcher): suggests each
    searched parameter whose ``when`` holds, in an order where conditions come after what they
    depend on, and returns the fixed values."""

    def __init__(self, space: Space):
        self.space = space
        self.order = dependency_order(space.space)

    def __call__(self, trial) -> dict[str, Any]:
        space = self.space
        chosen: dict[str, Any] = dict(space.trial)
        fixed = {}
        for key in self.order:
            value = space.space[key]
            if isinstance(value, Distribution):
                if not all(chosen.get(other) in wanted for other, wanted in value.when.items()):
                    continue
                if value.kind == "choice":
                    chosen[key] = trial.suggest_categorical(key, list(value.values))
                elif value.kind == "int":
                    chosen[key] = trial.suggest_int(key, *value.values)
                else:
                    chosen[key] = trial.suggest_float(key, *value.values, log=value.kind == "loguniform")
            else:
                chosen[key] = fixed[key] = value
        return fixed


def define_by_run(space: Space) -> Callable:
    """The Optuna define-by-run function of ``space`` (see :class:`DefineByRun`)."""
    return DefineByRun(space)


def dependency_order(searched: dict[str, Any]) -> list[str]:
    """The keys of ``searched`` in an order where each conditional parameter comes after the
    parameters its ``when`` names."""
    order: list[str] = []
    pending = dict(searched)
    while pending:
        ready = [k for k, v in pending.items()
                 if not isinstance(v, Distribution) or all(o not in pending for o in v.when)]
        if not ready:
            raise UserError(f"space: conditions form a cycle among {', '.join(pending)}")
        order += ready
        for key in ready:
            del pending[key]
    return order
def largest_batch(space: Space) -> int:
    value = space.trial.get("batch_size", space.space.get("batch_size", TrainConfig.batch_size))
    if isinstance(value, Distribution):
        return max(value.values)
    return value


def _middle(dist: Distribution) -> Any:
    if dist.kind == "choice":
        return dist.values[0]
    low, high = dist.values
    if dist.kind == "int":
        return (low + high) // 2
    return math.sqrt(low * high) if dist.kind == "loguniform" else (low + high) / 2


def complete_point(space: Space, point: dict[str, Any]) -> dict[str, Any]:
    """A ``start_from`` point with every other searched parameter that applies set: the
    trainable's default where the parameter's range holds it, else the range's middle
    (geometric for loguniform) or its first choice. So "the space's default configuration" is
    one configuration, not one with random parts."""
    defaults = TrainConfig().to_dict()
    chosen = {**space.trial, **{k: v for k, v in space.space.items() if not isinstance(v, Distribution)}}
    out = {}
    for key in dependency_order(space.space):
        dist = space.space[key]
        if not isinstance(dist, Distribution):
            continue
        if not all(chosen.get(other) in wanted for other, wanted in dist.when.items()):
            continue
        if key in point:
            value = point[key]
        elif dist.contains(defaults.get(key)):
            value = defaults[key]
        else:
            value = _middle(dist)
        chosen[key] = out[key] = value
    return out


def default_config(space: Space, backbone: str | None = None) -> dict[str, Any]:
    """The space's default configuration (its first ``start_from``, completed) as trial settings."""
    point = complete_point(space, dict(space.search.start_from[0]) if space.search.start_from else {})
    fixed = {k: v for k, v in space.space.items() if not isinstance(v, Distribution)}
    config = {**space.trial, **fixed, **point}
    if backbone is not None:
        config["backbone"] = backbone
    return config


def backbone_choices(space: Space) -> list[str | None]:
    value = space.space.get("backbone")
    return list(value.values) if isinstance(value, Distribution) and value.kind == "choice" else [None]

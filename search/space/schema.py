"""What a checked space file is: its searched distributions and the settings of its blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainable.config import TrainConfig
from trainable.data.config import DataConfig

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")

TOP_LEVEL = ("name", "data", "metric", "mode", "objectives", "trial", "space", "search", "final", "wandb", "storage",
             "cpu")

SEARCH_SCHEDULERS = ("asha", "mo_asha", "none")

AUTO = "auto"  # a value search.plan settles before the search starts

NEEDS_BUDGET = {"epochs": "trial.epochs", "num_samples": "search.num_samples", "image_size": "data.image_size"}


@dataclass(frozen=True)
class Distribution:
    """One searched parameter: ``kind`` over ``values`` (choices, or [low, high]), ``when`` given."""

    kind: str
    values: tuple
    when: dict[str, tuple] = field(default_factory=dict)

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.values
        low, high = self.values
        if self.kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            return False
        return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True)
class SearchSettings:
    """The ``search:`` block: how configurations are proposed and stopped."""

    algorithm: str = "optuna"
    num_samples: int = 20
    max_concurrent: int | None = None
    scheduler: str = "asha"  # asha: on the metric; mo_asha: every objective (the default with objectives:)
    grace_period: int | str = AUTO  # auto: after search.plan.MIN_RUNG_STEPS optimizer steps
    reduction_factor: float = 3
    rung_margin: float = 1.0  # standard errors a trial must be behind a rung's cutoff by to stop (search.tune.schedulers.margin_asha)
    time_budget: float | None = None
    train_on: float | str = AUTO  # share of time_budget in which the best trial trains on (search.train_on)
    seed: int = 0
    start_from: tuple = ()
    favour_default: bool = True  # the first start_from stays the best unless beaten by a standard error


@dataclass(frozen=True)
class FinalSettings:
    """The ``final:`` block: how the search's best trials become the model it hands back
    (:mod:`search.final`)."""

    ensemble: int = 3  # the top trials whose probabilities are averaged; 1: the best trial alone
    tta: bool | str = False  # true: average over each image's 8 flips and rotations; hflip: over it and its mirror
    threshold: str | float = "f1"  # binary tasks: f1, youden, accuracy (chosen on val) or a number
    threshold_counts: str = "expected"  # expected: each val image counts its fitted probability; labels
    temperature: bool = True  # fit one temperature on the validation split
    refit: bool = False  # the best configuration trained again on train + val (search.final.retrain)
    seeds: int = 0  # the candidates trained again with this many other seeds (search.final.retrain)
    pick: str = "best"  # best, or cheapest_within:D (objectives: the cheapest trial within D of the best)


@dataclass(frozen=True)
class WandbSettings:
    """The ``wandb:`` block."""

    project: str = "lens-search"
    entity: str | None = None
    mode: str = "auto"


@dataclass(frozen=True)
class Space:
    """A checked space file."""

    name: str
    data: DataConfig
    metric: str
    mode: str
    trial: dict[str, Any]
    resources: dict[str, float]
    space: dict[str, Any]  # name -> Distribution or fixed value
    search: SearchSettings
    wandb: WandbSettings
    path: str
    storage: str | None = None  # where Ray keeps checkpoints and state (--storage wins)
    final: FinalSettings = FinalSettings()
    cpu_applied: bool = False
    auto: frozenset = frozenset()  # keys left auto (epochs, grace_period, num_samples, image_size)
    objectives: tuple = ()  # ((metric, mode), (cost, mode), ...): a multi-objective search; () : metric/mode alone
    min_image_size: int | None = None  # with data.image_size auto: the smallest side the budget may choose
    raw: dict = field(default_factory=dict, compare=False)  # the file as resolved: overrides and cpu: applied

    @property
    def costs(self) -> tuple[tuple[str, str], ...]:
        """The cost objectives (:mod:`trainable.cost`) after the metric, with their modes."""
        return tuple(self.objectives[1:])

    @property
    def epochs(self) -> int:
        """The one source of the epoch budget (ASHA's ``max_t``); settled by
        :func:`search.plan.apply` when the file leaves it ``auto``."""
        if "epochs" in self.auto:
            raise ValueError("trial.epochs is auto: size the space first (search.plan)")
        return self.trial.get("epochs", TrainConfig.epochs)

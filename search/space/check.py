"""Every check of a space file, each problem one clause naming its key (:func:`check`)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

from search.space.schema import (AUTO, DISTRIBUTIONS, NEEDS_BUDGET, SEARCH_SCHEDULERS, TOP_LEVEL, Distribution,
                                 FinalSettings, SearchSettings, Space, WandbSettings)
from trainable.backbone_names import close_backbones, is_backbone
from trainable.config import TrainConfig
from trainable.data.config import DataConfig
from trainable.errors import UserError
from trainable.metrics import METRICS, SEARCHABLE
from trainable.names import COSTS, CUSTOM_BACKBONES, NAMED_CHOICES, THRESHOLD_COUNTS, THRESHOLD_RULES

TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}


def check(raw: dict, path: str, problems: list[str]) -> Space | None:
    """The :class:`Space` of a file's mapping ``raw`` (overrides applied), or None with every
    problem appended to ``problems``, each one clause naming its key."""
    problems += [f"{k}: unknown key; known: {', '.join(TOP_LEVEL)}" for k in raw if k not in TOP_LEVEL]
    name = raw.get("name", Path(path).stem)
    if not isinstance(name, str) or not name:
        problems.append(f"name: must be a non-empty string, got {name!r}")
    auto: set[str] = set()  # the keys left auto, which search.plan settles
    data, min_image_size = _check_data(raw.get("data"), auto, problems)
    objectives = _check_objectives(raw, problems)
    metric, mode = _check_metric(raw, objectives, problems)
    trial, resources = _check_trial(dict(raw.get("trial") or {}), auto, problems)
    searched = _check_space(raw.get("space") or {}, trial, problems)
    search = _settle_search(raw.get("search") or {}, searched, trial, objectives, auto, problems)
    final = _check_final(raw.get("final") or {}, problems)
    if not objectives:
        if search is not None and search.scheduler == "mo_asha":
            problems.append("search.scheduler: mo_asha ranks by several objectives; this file has no objectives:")
        if final is not None and final.pick != "best":
            problems.append(f"final.pick: {final.pick!r} trades the metric against a cost; this file has no objectives:")
    wandb = _check_settings(WandbSettings, raw.get("wandb") or {}, "wandb", problems)
    if wandb and wandb.mode not in ("auto", "online", "offline", "disabled"):
        problems.append(f"wandb.mode: {wandb.mode!r} is not one of auto, online, offline, disabled")
    storage = raw.get("storage")
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        problems.append(f"storage: must be a folder or a URI such as s3://bucket/searches, got {storage!r}")
    if problems:
        return None
    return Space(name, data, metric, mode, trial, dict(resources), searched, search, wandb, path, storage,
                 final=final, auto=frozenset(auto), objectives=objectives, min_image_size=min_image_size)


def _check_data(raw_data: Any, auto: set[str], problems: list[str]) -> tuple[DataConfig | None, int | None]:
    """The ``data:`` block, and ``min_image_size`` where ``image_size: auto`` leaves the size to
    the budget (added to ``auto``); a fixed size (``--set data.image_size=32``) drops it."""
    if isinstance(raw_data, Mapping) and raw_data.get("image_size") == AUTO:
        raw_data = {k: v for k, v in raw_data.items() if k != "image_size"}
        auto.add("image_size")
    min_image_size = None
    if isinstance(raw_data, Mapping) and "min_image_size" in raw_data:
        min_image_size = raw_data["min_image_size"]
        raw_data = {k: v for k, v in raw_data.items() if k != "min_image_size"}
        if not isinstance(min_image_size, int) or isinstance(min_image_size, bool) or min_image_size < 1:
            problems.append(f"data.min_image_size: must be a positive number of pixels, got {min_image_size!r}")
        if "image_size" not in auto:
            min_image_size = None
    try:
        return DataConfig.from_mapping(raw_data, where="data"), min_image_size
    except UserError as err:
        problems.append(str(err))
        return None, min_image_size


def _check_trial(trial: dict, auto: set[str], problems: list[str]) -> tuple[dict, Any]:
    """The ``trial:`` block's fixed settings (``epochs: auto`` taken out, into ``auto``) and its
    ``resources``."""
    resources = trial.pop("resources", {"cpu": 1, "gpu": 0})
    if trial.get("epochs") == AUTO:
        del trial["epochs"]
        auto.add("epochs")
    problems += _check_resources(resources)
    problems += [f"trial.{k}: not a trainable setting; known: {', '.join(sorted(TRAIN_KEYS))}"
                 for k in trial if k not in TRAIN_KEYS]
    try:
        TrainConfig.from_mapping({k: v for k, v in trial.items() if k in TRAIN_KEYS}, where="trial")
    except UserError as err:
        problems.append(str(err))
    if "backbone" in trial and not is_backbone(trial["backbone"]):
        problems.append(_unknown_backbone("trial.backbone", trial["backbone"]))
    return trial, resources


def _unknown_backbone(where: str, name: Any) -> str:
    close = close_backbones(name)
    return (f"{where}: {name!r} is not a timm model (timm.list_models()) nor {', '.join(CUSTOM_BACKBONES)}"
            + (f"; close: {', '.join(close)}" if close else ""))


def _settle_search(raw: Any, searched: dict, trial: dict, objectives: tuple, auto: set[str],
                   problems: list[str]) -> SearchSettings | None:
    """The ``search:`` block, its scheduler MO-ASHA where objectives name none, and its auto
    keys (added to ``auto``), each of which needs ``search.time_budget`` to size it."""
    epochs = trial.get("epochs", TrainConfig.epochs)
    epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else TrainConfig.epochs
    search = _check_search(raw, searched, None if "epochs" in auto else epochs, problems)
    if search is None:
        return None
    if objectives and "scheduler" not in raw:  # raw is a mapping: the block was read
        # Several objectives and no scheduler named: MO-ASHA, the better of the two measured
        # (BENCHMARKS.md, "Accuracy against inference cost").
        search = dataclasses.replace(search, scheduler="mo_asha")
    auto |= {key for key in ("grace_period", "num_samples") if getattr(search, key) == AUTO}
    if not search.time_budget:
        problems += [f"{NEEDS_BUDGET[key]}: auto needs search.time_budget (seconds) to size it"
                     for key in sorted(auto & set(NEEDS_BUDGET))]
    return search


def _check_metric(raw: dict, objectives: tuple, problems: list[str]) -> tuple[str, str]:
    """The metric and its mode: the first objective's, else ``metric:`` (default ``val_auc``) with
    ``mode:`` (default the metric's direction, :data:`trainable.metrics.METRICS`), which must
    agree with it."""
    metric = raw.get("metric", "val_auc")
    mode = raw.get("mode", METRICS[metric].mode if metric in METRICS else "max")
    if objectives:
        metric, mode = objectives[0]
    if metric not in SEARCHABLE:
        problems.append(f"metric: {metric!r} is not reported; reported: {', '.join(SEARCHABLE)}")
    if mode not in ("min", "max"):
        problems.append(f"mode: must be min or max, got {mode!r}")
    elif metric in METRICS and mode != METRICS[metric].mode:
        where, direction = "objectives[0]" if objectives else "mode", METRICS[metric].mode
        problems.append(f"{where}: {metric} is better {'lower' if direction == 'min' else 'higher'}: "
                        f"mode {direction}, not {mode} (or leave mode out)")
    return metric, mode


def _check_objectives(raw: dict, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """``objectives:``, a list of ``metric: mode`` (or one mapping of them, in order): first a
    reported validation metric, then one or more costs (:data:`trainable.cost.COSTS`), each in
    its one sensible direction. Returns () when the file has none, or after a problem."""
    spec = raw.get("objectives")
    if spec is None:
        return ()
    example = "e.g. [{val_auc: max}, {throughput: max}]"
    items = list(spec.items()) if isinstance(spec, Mapping) else None
    if isinstance(spec, list) and all(isinstance(i, Mapping) and len(i) == 1 for i in spec):
        items = [next(iter(i.items())) for i in spec]
    if items is None:
        problems.append(f"objectives: must be a list of metric: mode, {example}; got {spec!r}")
        return ()
    before = len(problems)
    if len(items) < 2:
        problems.append(f"objectives: at least two, a metric then a cost ({example}); one is metric: and mode:")
    for i, (name, mode) in enumerate(items):
        where = f"objectives[{i}].{name}"
        if i == 0:
            if name not in SEARCHABLE:
                problems.append(f"{where}: the first objective is a reported metric, one of {', '.join(SEARCHABLE)}")
            elif mode not in ("min", "max"):
                problems.append(f"{where}: mode must be min or max, got {mode!r}")
        elif name not in COSTS:
            problems.append(f"{where}: objectives after the first are costs, one of {', '.join(COSTS)}")
        elif mode != COSTS[name]:
            problems.append(f"{where}: {name} is better {'higher' if COSTS[name] == 'max' else 'lower'}: "
                            f"mode {COSTS[name]}, not {mode!r}")
    names = [name for name, _ in items]
    problems += [f"objectives: {n} named twice" for n in sorted({n for n in names if names.count(n) > 1})]
    for key in ("metric", "mode"):
        if key in raw and items and raw[key] != (items[0][0] if key == "metric" else items[0][1]):
            problems.append(f"{key}: {raw[key]!r} disagrees with the first objective ({items[0][0]}: {items[0][1]}); "
                            "keep one")
    return tuple(items) if len(problems) == before else ()


def _check_resources(resources: Any) -> list[str]:
    if not isinstance(resources, Mapping):
        return [f"trial.resources: must be a mapping like {{cpu: 1, gpu: 0.25}}, got {resources!r}"]
    problems = [f"trial.resources.{k}: unknown; known: cpu, gpu" for k in resources if k not in ("cpu", "gpu")]
    for key in ("cpu", "gpu"):
        value = resources.get(key, 0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            problems.append(f"trial.resources.{key}: must be a number >= 0, got {value!r}")
    gpu = resources.get("gpu", 0)
    if isinstance(gpu, (int, float)) and not isinstance(gpu, bool) and gpu > 1:
        # The training loop runs on one device (no data parallelism): a second GPU would idle.
        problems.append(f"trial.resources.gpu: at most 1, got {gpu!r}: one trial uses one device "
                        "(a fraction below 1 packs several trials on a GPU)")
    return problems


def _distribution(key: str, spec: Any, problems: list[str]) -> Any:
    """A fixed value, or the Distribution a mapping like ``{loguniform: [a, b]}`` describes."""
    if not isinstance(spec, Mapping):
        return spec
    kinds = [k for k in spec if k in DISTRIBUTIONS]
    extra = [k for k in spec if k not in DISTRIBUTIONS and k != "when"]
    if len(kinds) != 1 or extra:
        problems.append(f"space.{key}: must be a value or one of {', '.join(DISTRIBUTIONS)} "
                        f"(with an optional when:), got keys {', '.join(map(str, spec))}")
        return None
    kind, values = kinds[0], spec[kinds[0]]
    when = spec.get("when", {})
    if "when" in spec and (not isinstance(when, Mapping) or not when):
        problems.append(f"space.{key}.when: must map parameters to a value or a list of values")
        when = {}
    when = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in when.items()}
    if kind == "choice":
        if not isinstance(values, list) or not values:
            problems.append(f"space.{key}.choice: must be a non-empty list, got {values!r}")
            return None
        return Distribution(kind, tuple(values), when)
    numeric = isinstance(values, list) and len(values) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numeric:
        problems.append(f"space.{key}.{kind}: must be [low, high], got {values!r}")
        return None
    low, high = values
    if kind == "int" and not all(isinstance(v, int) for v in values):
        problems.append(f"space.{key}.int: bounds must be integers, got {values!r}")
    elif (high < low) if kind == "int" else (high <= low):
        problems.append(f"space.{key}.{kind}: empty or inverted range [{low}, {high}]")
    elif kind == "loguniform" and low <= 0:
        problems.append(f"space.{key}.loguniform: bounds must be positive, got [{low}, {high}]")
    return Distribution(kind, (low, high), when)


def _check_space(raw: Any, trial: dict, problems: list[str]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        problems.append(f"space: must be a mapping of trainable settings, got {raw!r}")
        return {}
    searched = {}
    for key, spec in raw.items():
        if key not in TRAIN_KEYS:
            problems.append(f"space.{key}: not a trainable setting; known: {', '.join(sorted(TRAIN_KEYS))}")
        elif key == "epochs":
            problems.append("space.epochs: the epoch budget is fixed in trial.epochs (ASHA's max_t)")
        elif key in trial:
            problems.append(f"space.{key}: also fixed in trial.{key}; keep one")
        else:
            searched[key] = _distribution(key, spec, problems)
    for key, value in searched.items():
        options = value.values if isinstance(value, Distribution) and value.kind == "choice" else (value,)
        if key in NAMED_CHOICES:
            bad = [o for o in options if o not in NAMED_CHOICES[key]]
            if bad:
                problems.append(f"space.{key}: {bad[0]!r} is unknown; known: {', '.join(NAMED_CHOICES[key])}")
        if key == "backbone":
            problems += [_unknown_backbone("space.backbone", name) for name in options if not is_backbone(name)]
        if isinstance(value, Distribution):
            for other, wanted in value.when.items():
                problems += _check_condition(key, other, wanted, searched, trial)
    return searched


def _check_condition(key: str, other: str, wanted: tuple, searched: dict, trial: dict) -> list[str]:
    where = f"space.{key}.when.{other}"
    if other not in searched and other not in trial:
        return [f"{where}: {other!r} is neither searched nor fixed"]
    source = searched.get(other, trial.get(other))
    possible = source.values if isinstance(source, Distribution) and source.kind == "choice" else (
        None if isinstance(source, Distribution) else (source,))
    if possible is None:
        return [f"{where}: conditions need a choice or a fixed value, {other!r} is {source.kind}"]
    if not any(w in possible for w in wanted):
        return [f"{where}: can never hold: {other} takes {list(possible)}, never {list(wanted)}"]
    return []


def _check_settings(cls, raw: Any, block: str, problems: list[str]):
    if not isinstance(raw, Mapping):
        problems.append(f"{block}: must be a mapping, got {raw!r}")
        return None
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in known]
    problems += [f"{block}.{k}: unknown key; known: {', '.join(known)}" for k in unknown]
    return None if unknown else cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def _check_final(raw: Any, problems: list[str]) -> FinalSettings | None:
    settings = _check_settings(FinalSettings, raw, "final", problems)
    if settings is None:
        return None
    threshold = settings.threshold
    number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    checks = [
        ("ensemble", isinstance(settings.ensemble, int) and not isinstance(settings.ensemble, bool)
         and settings.ensemble >= 1, "a positive integer (1: the best trial alone)"),
        ("tta", isinstance(settings.tta, bool) or settings.tta == "hflip",
         "true (the 8 flips and rotations), hflip (the left-right mirror) or false"),
        ("threshold", threshold in THRESHOLD_RULES or (number and 0 < threshold < 1),
         f"one of {', '.join(THRESHOLD_RULES)} or a number in (0, 1)"),
        ("threshold_counts", settings.threshold_counts in THRESHOLD_COUNTS,
         f"one of {', '.join(THRESHOLD_COUNTS)}"),
        ("temperature", isinstance(settings.temperature, bool), "true or false"),
        ("refit", isinstance(settings.refit, bool), "true or false"),
        ("seeds", isinstance(settings.seeds, int) and not isinstance(settings.seeds, bool) and settings.seeds >= 0,
         "a whole number, 0 or more (0: no seed check)"),
        ("pick", pick_distance(settings.pick) is not None or settings.pick == "best",
         "best or cheapest_within:D, D a distance of the metric >= 0 (e.g. cheapest_within:0.005)"),
    ]
    for key, ok, expected in checks:
        if not ok:
            problems.append(f"final.{key}: must be {expected}, got {getattr(settings, key)!r}")
    return settings


def pick_distance(pick: Any) -> float | None:
    """D of ``final.pick: cheapest_within:D``; None for any other value."""
    name, _, distance = str(pick).partition(":")
    try:
        value = float(distance)
    except ValueError:
        return None
    return value if name == "cheapest_within" and math.isfinite(value) and value >= 0 else None


def _check_search(raw: Any, searched: dict, epochs: int | None, problems: list[str]) -> SearchSettings | None:
    """``epochs`` None: trial.epochs is auto."""
    settings = _check_settings(SearchSettings, raw, "search", problems)
    if settings is None:
        return None
    checks = [
        ("algorithm", settings.algorithm in ("optuna", "random", "grid"), "one of optuna, random, grid"),
        ("num_samples", settings.num_samples == AUTO or isinstance(settings.num_samples, int)
         and not isinstance(settings.num_samples, bool) and settings.num_samples > 0, "a positive integer or auto"),
        ("max_concurrent", settings.max_concurrent is None or (isinstance(settings.max_concurrent, int)
                                                               and settings.max_concurrent > 0), "a positive integer"),
        ("scheduler", settings.scheduler in SEARCH_SCHEDULERS, "asha, mo_asha (objectives:) or none"),
        ("grace_period", settings.grace_period == AUTO or isinstance(settings.grace_period, int)
         and not isinstance(settings.grace_period, bool) and 1 <= settings.grace_period <= (epochs or math.inf),
         "auto or an integer in [1, trial.epochs" + (f" = {epochs}]" if epochs else "]")),
        ("reduction_factor", isinstance(settings.reduction_factor, (int, float)) and settings.reduction_factor > 1,
         "a number above 1"),
        ("rung_margin", isinstance(settings.rung_margin, (int, float)) and not isinstance(settings.rung_margin, bool)
         and 0 <= settings.rung_margin < math.inf, "a number of standard errors, 0 or more"),
        ("time_budget", settings.time_budget is None or (isinstance(settings.time_budget, (int, float))
                                                         and settings.time_budget > 0), "seconds, above 0"),
        ("seed", isinstance(settings.seed, int), "an integer"),
        ("favour_default", isinstance(settings.favour_default, bool), "true or false"),
        ("train_on", settings.train_on == AUTO or isinstance(settings.train_on, (int, float))
         and not isinstance(settings.train_on, bool) and 0 <= settings.train_on <= 0.8,
         "auto or a share of search.time_budget in [0, 0.8]"),
    ]
    for key, ok, expected in checks:
        if not ok:
            problems.append(f"search.{key}: must be {expected}, got {getattr(settings, key)!r}")
    if settings.train_on not in (AUTO, 0) and not settings.time_budget:
        problems.append("search.train_on: a share of search.time_budget, which is not set")
    if settings.algorithm == "grid":
        problems += [f"space.{k}: a grid needs choices or int ranges, not {v.kind}"
                     for k, v in searched.items() if isinstance(v, Distribution) and v.kind in ("uniform", "loguniform")]
    for i, start in enumerate(settings.start_from):
        if not isinstance(start, Mapping):
            problems.append(f"search.start_from[{i}]: must be a mapping of searched parameters")
            continue
        for key, value in start.items():
            dist = searched.get(key)
            if key not in searched:
                problems.append(f"search.start_from[{i}].{key}: not a searched parameter")
            elif isinstance(dist, Distribution) and not dist.contains(value):
                problems.append(f"search.start_from[{i}].{key}: {value!r} is outside its {dist.kind} {list(dist.values)}")
    return settings

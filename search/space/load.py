"""Read a space file, apply its ``--set`` overrides and its ``cpu:`` block, and check it whole."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Mapping

import yaml

from search.space.check import check
from search.space.schema import TOP_LEVEL, Space
from trainable.errors import UserError

def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a mapping of the keys {', '.join(TOP_LEVEL)}")
    return raw


def apply_overrides(raw: dict, overrides: list[str], path: str) -> dict:
    """``KEY.SUB=VALUE`` pairs (the value read as YAML) set into a copy of ``raw``."""
    raw = copy.deepcopy(raw)
    for pair in overrides:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set {pair!r}: expected KEY=VALUE, e.g. search.num_samples=50")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise UserError(f"--set {pair!r}: value is not YAML ({str(err).splitlines()[0]})") from None
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {pair!r}: {part} in {path} is not a mapping")
        node[leaf] = parsed
    return raw


def _merge(base: dict, extra: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def load_space(path: str | Path, overrides: list[str] = (), has_gpu: bool = True) -> Space:
    """Read, override and check a space file.

    Args:
        path: The YAML file.
        overrides: ``--set KEY=VALUE`` pairs, applied before the checks; they win over ``cpu:``.
        has_gpu: Whether the cluster has a GPU; without one the file's ``cpu:`` block is merged in.

    Raises:
        UserError: one line naming the file and every problem's key.
    """
    path = str(path)
    raw = apply_overrides(read_yaml(path), list(overrides), path)
    cpu_block = raw.pop("cpu", None)
    applied = False
    if cpu_block is not None and not has_gpu:
        if not isinstance(cpu_block, Mapping):
            raise UserError(f"{path}: cpu: must be a mapping of overrides")
        # --set wins over the cpu: block (and can change it: --set cpu.trial.epochs=2).
        raw, applied = apply_overrides(_merge(raw, cpu_block), list(overrides), path), True
    problems: list[str] = []
    space = check(raw, path, problems)
    if problems:
        raise UserError(f"{path}: " + "; ".join(problems))
    block = raw.get("data")
    if isinstance(block, Mapping) and "min_image_size" in block:
        # Kept as space.min_image_size: the search's sizing reads it, and the saved data: block
        # (space.yaml, with the size settled) stays one that load_dataset reads.
        raw = {**raw, "data": {k: v for k, v in block.items() if k != "min_image_size"}}
    return dataclasses.replace(space, cpu_applied=applied, raw=raw)

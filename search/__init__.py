"""Hyperparameter search for image classifiers: what a script needs, the commands' own steps.

    import search

    space = search.load_space("spaces/digits.yaml", ["search.num_samples=6"])  # checked, or UserError
    summary = search.run_search("spaces/digits.yaml", ["search.num_samples=6"], name="digits6")
    summary = search.finalize("results/digits6", ["final.threshold=youden"])
    model = search.load_model("results/digits6/best_model.pt")
    probabilities = model.predict(images)  # (N, C), images as the trials were fed

The stages, in the order they run and import each other: ``space`` (the file and its checks),
``plan`` (rungs, sizing to a time budget, the dry run), ``tune`` (Ray Tune: tuner, searcher,
schedulers, progress, cluster, W&B callback), ``results`` (records, Pareto set, training on),
``final`` (the final model), ``report``; then ``request`` (the checks before Ray), ``stop``
(signals), ``pipeline`` (the stages on Ray) and the commands (``run``, ``final``, ``report``,
``predict``). Importing this package imports none of torch, timm or Ray: each function imports
what it needs when called.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

__all__ = ["finalize", "load_model", "load_space", "run_search"]


def load_space(path: str | Path, overrides: Sequence[str] = (), has_gpu: bool = True):
    """The space file at ``path`` with ``KEY=VALUE`` overrides, checked whole
    (:class:`search.space.Space`); :class:`trainable.errors.UserError` names every problem."""
    from search.space import load_space as load

    return load(path, list(overrides), has_gpu=has_gpu)


def run_search(space: str | Path, overrides: Sequence[str] = (), *, name: str | None = None,
               results: str | Path = "results", resume: bool = False, address: str | None = None,
               storage: str | None = None) -> dict[str, Any]:
    """Run (or with ``resume`` continue) a search as ``python -m search.run`` does, with the same
    checks and stages; returns its summary (``summary.json``). A signal stops it with
    :class:`search.stop.Stopped`, a bad input with :class:`trainable.errors.UserError`."""
    from search.pipeline import run_search as run
    from search.request import check_before_ray, new_request, resume_request
    from search.run import parse_args

    argv = [str(space), *(f"--set={pair}" for pair in overrides), "--results", str(results)]
    for flag, value in (("--name", name), ("--address", address), ("--storage", storage)):
        argv += [flag, value] if value else []
    args = parse_args(argv + (["--resume"] if resume else []))
    request = resume_request(args) if args.resume else new_request(args)
    return run(request, check_before_ray(request)).summary


def finalize(folder: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run the final stage again on a finished search (``python -m search.final``) with
    ``final.KEY=VALUE`` overrides; returns the rewritten summary."""
    from search.final.__main__ import main
    from search.files import SUMMARY_FILE

    main([str(folder), *(f"--set={pair}" for pair in overrides)])
    return json.loads((Path(folder) / SUMMARY_FILE).read_text())


def load_model(path: str | Path, device: str = "cpu"):
    """The model a search handed back (``best_model.pt``): its members, their decision rule and
    ``predict(images)`` (:class:`trainable.export.ExportedModel`)."""
    from trainable.export import load_model as load

    return load(path, device)

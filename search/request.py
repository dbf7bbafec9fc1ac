"""What a run of the driver is asked to do, checked before torch, timm or Ray are imported: the
search's name, its results folder and storage, the space file in both variants (with or without
a GPU), and W&B's mode and credentials. Every problem is one :class:`~trainable.errors.UserError`."""

from __future__ import annotations

import argparse
import netrc
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from search.files import SPACE_COPY, SUMMARY_FILE
from search.plan.data import check_data_source
from search.space import Space, load_space
from search.tune import cluster
from trainable.errors import UserError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Request:
    """What this run of the driver is asked to do, checked before Ray starts.

    Attributes:
        args: The command line.
        name: The search's name (results folder, Ray experiment, W&B group, Optuna study).
        folder: The results folder.
        storage: Where Ray keeps the experiment (a folder or a URI).
        spaces: The checked space for a cluster with a GPU (``True``) and without (``False``:
            the file's ``cpu:`` block merged in). A resumed search has its one saved space under both.
    """

    args: argparse.Namespace
    name: str
    folder: Path
    storage: str
    spaces: dict[bool, Space]

    @property
    def experiment(self) -> str:
        return f"{self.storage}/{self.name}"

    @property
    def space(self) -> Space:
        """The space for the checks that do not depend on the cluster."""
        return self.spaces[True]


def _checked_name(name: str) -> str:
    if not NAME.match(name):
        raise UserError(f"--name / name: {name!r} must be letters, digits, '.', '_' or '-'")
    return name


def new_request(args: argparse.Namespace) -> Request:
    """A new search: the file checked whole in both variants (GPU or not; which one applies is
    known once Ray is up), in a results folder that holds no search yet."""
    spaces = {gpu: load_space(args.space, args.set, has_gpu=gpu) for gpu in (True, False)}
    name = _checked_name(args.name or spaces[True].name)
    folder = Path(args.results) / name
    if (folder / SPACE_COPY).exists() or (folder / SUMMARY_FILE).exists():
        raise UserError(f"{folder} already holds a search named {name!r}: continue it with --resume, "
                        "or give this one another --name")
    storage = cluster.resolve_storage(args.storage, spaces[True].storage, args.results)
    check_writable(folder, "--results")
    check_storage(storage, name)
    return Request(args, name, folder, storage, spaces)


def resume_request(args: argparse.Namespace) -> Request:
    """A search whose driver stopped: the space as it was saved in its results folder, and Ray's
    experiment state to continue from."""
    if args.set:
        raise UserError("--set cannot change a search being resumed; start a new one with --name")
    name = _checked_name(args.name or load_space(args.space, has_gpu=True).name)
    folder = Path(args.results) / name
    saved = folder / SPACE_COPY
    if not saved.is_file():
        raise UserError(f"--resume: {folder} holds no search named {name!r} to resume")
    space = load_space(saved, has_gpu=True)  # the cpu: block, if it applied, is merged already
    plan = Request(args, name, folder, cluster.resolve_storage(args.storage, space.storage, args.results),
                {True: space, False: space})
    check_writable(folder, "--results")
    check_storage(plan.storage, name)
    from ray import tune

    if not tune.Tuner.can_restore(plan.experiment):
        raise UserError(f"--resume: no Ray experiment state at {plan.experiment}")
    return plan


def check_storage(storage: str, name: str) -> None:
    """A storage URI can be opened and listed; a local storage's experiment folder
    (``<storage>/<name>``) can be made and written here (every node sees it: checked once Ray is up)."""
    if cluster.is_uri(storage):
        cluster.check_uri(storage)
    else:
        check_writable(Path(storage) / name, "--storage / storage")


def check_writable(folder: Path, flag: str) -> None:
    """``folder`` is a folder this process can write in, or can be made one. What the check made
    it removes again, so a refused run leaves nothing behind.

    Raises:
        UserError: one line naming ``folder`` and the flag that chose it.
    """
    made: list[Path] = []
    try:
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{flag}: {folder} is a file, not a folder")
        made = [p for p in [folder, *folder.parents] if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f"{flag}: cannot write in {folder} ({err.strerror or err})") from None
    finally:
        for path in made:  # the deepest first; only the empty folders this check made
            try:
                path.rmdir()
            except OSError:
                break


def has_api_key() -> bool:
    """Whether W&B credentials are on this machine: ``WANDB_API_KEY`` or a netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """The W&B mode to run in. ``WANDB_MODE`` in the environment (W&B's own switch) wins; ``auto``
    is online with credentials and offline without."""
    env = os.environ.get("WANDB_MODE")
    if env:
        return {"dryrun": "offline", "run": "online"}.get(env, env)
    if mode == "auto":
        return "online" if has_api_key() else "offline"
    return mode


def check_before_ray(plan: Request) -> str:
    """What else needs no Ray: the data source and W&B credentials. Returns the W&B mode."""
    check_data_source(plan.space)
    mode = resolve_mode(plan.space.wandb.mode)
    if mode == "online" and not has_api_key():
        raise UserError(f"{plan.space.path}: wandb.mode: online needs W&B credentials (wandb login, or "
                        "WANDB_API_KEY); use auto or offline to log locally and sync later")
    return mode

"""The cluster a search runs on: which Ray to join, where results go, how trials get the data.

* **Address.** ``--address`` (``auto``, ``HOST:PORT``, ``ray://HOST:10001``), else
  ``$RAY_ADDRESS`` (what ``ray job submit`` sets for the entrypoint), else a Ray of our own on this
  machine (``local``: never attached by accident to a cluster someone else started here).
* **Storage.** ``--storage``, else the space file's ``storage:``, else the results folder's
  parent: a local or network folder, or a URI Ray's storage layer (pyarrow) reads, such as
  ``s3://bucket/searches`` or ``gs://bucket/searches``. Trials on every node write their
  checkpoints there, so on a multi-node cluster a local path must be one every node mounts: that
  is checked before the search starts, by a task on each node.
* **Data.** The driver loads the set once. A set up to half of the smallest node's object store
  goes through the object store (:func:`choose_sharing`): each node receives one copy, shared
  zero-copy by its trials, and only the driver's machine needs the files. A larger set is read
  by each node from ``data.path`` (a path every node must see, also checked), normalized once
  per node into its data cache and memory-mapped by its trials (one copy per node, in the page
  cache). ``data.share: object_store | path`` overrides the rule.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from search.space import Space
from trainable.errors import UserError

OBJECT_STORE_SHARE = 0.5  # a set up to this fraction of the smallest node's object store goes through it


def ray_address(address: str | None) -> str:
    """The Ray to join: ``--address``, else ``$RAY_ADDRESS``, else ``local``."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def is_uri(storage: str) -> bool:
    """Whether ``storage`` names a remote file system (``s3://``, ``gs://``, ...), not a folder."""
    return urlparse(storage).scheme not in ("", "file")


def resolve_storage(flag: str | None, from_file: str | None, results: str) -> str:
    """``--storage``, else the file's ``storage:``, else the results parent; local paths absolute."""
    storage = str(flag or from_file or results)
    if is_uri(storage):
        return storage.rstrip("/")
    if storage.startswith("file://"):
        storage = urlparse(storage).path
    return str(Path(storage).expanduser().resolve())


def check_uri(storage: str) -> None:
    """A URI storage that pyarrow can open and list; a clear line otherwise."""
    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(storage)
        fs.get_file_info(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... with a useful message
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--storage / storage: cannot use {storage} ({first}); check the URI and the "
                        "cloud credentials of this machine (environment, profile or instance role)") from None


def alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def _exists_on_each_node(path: str, nodes: list[dict[str, Any]]) -> list[str]:
    """The addresses of the nodes on which ``path`` does not exist (a zero-CPU task on each)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0, max_retries=0)
    def exists(p: str) -> bool:
        return os.path.exists(p)

    refs = [exists.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(path) for n in nodes]
    found = ray.get(refs, timeout=120)
    return [f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})" for n, ok in zip(nodes, found) if not ok]


def check_shared_folder(folder: Path, what: str, nodes: list[dict[str, Any]]) -> None:
    """Every node sees the same ``folder``: a file written here is found there."""
    if len(nodes) < 2:
        return
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".lens-search-check-{secrets.token_hex(6)}"
    marker.touch()
    try:
        missing = _exists_on_each_node(str(marker), nodes)
    finally:
        marker.unlink(missing_ok=True)
    if missing:
        raise UserError(f"{what}: {folder} is not shared with node {', '.join(missing)} (a file written "
                        "here is not there): give a folder every node mounts (NFS), or an s3:// or "
                        "gs:// URI")


def check_data_visible(root: Path, where: str, nodes: list[dict[str, Any]]) -> None:
    """``data.path`` exists on every node (it is read there)."""
    missing = _exists_on_each_node(str(root), nodes) if len(nodes) > 1 else []
    if missing:
        raise UserError(f"{where}.path: {root} does not exist on node {', '.join(missing)}; trials "
                        "read the set there (data.share: path): put it on a path every node sees")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def choose_sharing(share: str, nbytes: int, store_bytes: list[float], has_path: bool) -> tuple[str, str]:
    """``object_store`` or ``path``, and the one line that says which and why.

    Args:
        share: ``data.share``: ``auto``, ``object_store`` or ``path``.
        nbytes: Size of the loaded set (images and labels).
        store_bytes: Object store size of each node of the cluster.
        has_path: Whether the set is read from a folder (``digits`` is not).
    """
    smallest = min(store_bytes) if store_bytes else 0.0
    size, store = human_bytes(nbytes), human_bytes(smallest)
    if share == "path" and has_path:
        return "path", (f"data sharing: path (data.share): each node reads data.path, normalizes it once "
                        f"into its data cache and memory-maps it ({size})")
    if share == "object_store" or not has_path:
        why = "data.share" if share == "object_store" else "no folder to read on the nodes"
        return "object_store", (f"data sharing: object store ({size}, {why}): loaded once here, one copy "
                                "per node shared by its trials")
    if nbytes <= OBJECT_STORE_SHARE * smallest:
        return "object_store", (f"data sharing: object store ({size}, at most half of the smallest node's "
                                f"{store} object store): loaded once here, one copy per node shared by its trials")
    return "path", (f"data sharing: path ({size}, over half of the smallest node's {store} object "
                    "store): each node reads data.path, normalizes it once into its data cache and "
                    "memory-maps it")


def upload_folder(folder: Path, storage: str, name: str) -> str:
    """Copy the results folder to ``<storage>/<name>/`` beside Ray's experiment state."""
    import pyarrow.fs

    fs, base = pyarrow.fs.FileSystem.from_uri(storage)
    destination = f"{base.rstrip('/')}/{name}"
    pyarrow.fs.copy_files(str(folder.resolve()), destination,
                          source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs)
    return f"{storage}/{name}"


def cluster_has_gpu() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def check_resources(space: Space, nodes: list[dict], local: bool) -> None:
    """A trial fits on at least one node. On a Ray of our own none ever will: stop. A cluster
    may add one (its autoscaler): say so, and let the trials wait."""
    cpu, gpu = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    resources = [n.get("Resources", {}) for n in nodes]
    if not any(n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu for n in resources):
        largest = max(resources, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        problem = (f"a trial needs cpu {cpu}, gpu {gpu}; the largest node has {largest.get('CPU', 0):g} CPUs "
                   f"and {largest.get('GPU', 0):g} GPUs")
        if local:
            raise UserError(f"{space.path}: trial.resources: {problem}")
        print(f"note: no node can run a trial yet ({problem}): the trials wait for the cluster's "
              "autoscaler to add one (Ctrl-C to stop)", flush=True)


def start_ray(target: str) -> list[dict]:
    """Join the cluster at ``target`` (see :func:`ray_address`), or, for
    ``local``, start a Ray of our own on this machine (never attached by accident to a cluster
    someone started here with ``ray start``); say which, and return its nodes."""
    import ray

    ray.init(address=target, logging_level=logging.WARNING, log_to_driver=True)
    nodes = alive_nodes()
    total = ray.cluster_resources()
    where = "a local Ray" if target == "local" else f"the Ray cluster at {target}"
    print(f"running on {where}: {len(nodes)} node(s), {total.get('CPU', 0):g} CPUs, "
          f"{total.get('GPU', 0):g} GPUs", flush=True)
    return nodes


def share_data(space: Space, dataset, nodes: list[dict]) -> str:
    """How trials get the set (object store, or read on each node), said in one line."""
    sharing, line = choose_sharing(
        space.data.share, dataset.images.nbytes + dataset.labels.nbytes,
        [n.get("Resources", {}).get("object_store_memory", 0) for n in nodes], bool(space.data.path))
    print(line, flush=True)
    if sharing == "path":
        check_data_visible(space.data.root.resolve(), f"{space.path}: data", nodes)
    return sharing

"""Write a simulated data set: the registry of kinds, output checks, and the worker pool.

Image ``i`` of a set is drawn from its own generator ``np.random.default_rng([seed, i])``, so a
set depends on the seed and ``n`` only: the same seed gives byte-identical files whatever the
number of workers. Workers render and write chunks of images; each builds its lenstronomy models
once and reuses them.

The set is written into a hidden sibling folder and renamed to ``out`` when complete, so a failed
or interrupted run leaves no half-written data set where the search driver would take it for a
finished one.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from trainable.errors import UserError
from trainable.simulate import lens_finding, substructure
from trainable.simulate.optics import DEEP_SPACE, EUCLID_VIS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One kind of simulated data set.

    Attributes:
        name: The name given on the command line and in a space's ``data.simulate``.
        layout: One line saying which real data set's layout is written.
        classes: Class names, as the loader will see them.
        default_n: Images written when ``n`` is not given (quick on two cores).
        real_n: Images in the real data set.
        side: Pixels per side of an image.
        min_n: Fewest images that give every class (and split) at least one image.
        plan: ``n`` -> relative path and preset class (or ``None``) of images ``0 .. n-1``.
        renderer: Builds a per-process object whose ``render(label, rng)`` returns one image
            and its record (a dict with at least ``label``).
        write_image: Writes one image: ``(path, image, seed)``.
        finish: Writes what follows from all records (e.g. a label table): ``(root, records)``.
    """

    name: str
    layout: str
    classes: tuple[str, ...]
    default_n: int
    real_n: int
    side: int
    min_n: int
    plan: Callable[[int], list[tuple[str, str | None]]]
    renderer: Callable[[], object]
    write_image: Callable[[Path, np.ndarray, int], None]
    finish: Callable[[Path, list[dict]], None]


KINDS: dict[str, Kind] = {
    "lens_finding": Kind(
        name="lens_finding",
        layout="Bologna lens-finding challenge: classifications.csv + files/imageEUC_VIS-<ID>.fits",
        classes=lens_finding.CLASSES, default_n=lens_finding.DEFAULT_N,
        real_n=lens_finding.REAL_N, side=EUCLID_VIS.num_pix, min_n=2, plan=lens_finding.plan,
        renderer=lens_finding.LensFindingRenderer, write_image=lens_finding.write_image,
        finish=lens_finding.finish),
    "substructure": Kind(
        name="substructure",
        layout="DeepLense Common Task 1: {train,val}/{no,sphere,vort}/<n>.npy, (1,150,150)",
        classes=substructure.CLASSES, default_n=substructure.DEFAULT_N,
        real_n=substructure.REAL_N, side=DEEP_SPACE.num_pix, min_n=substructure.MIN_N, plan=substructure.plan,
        renderer=substructure.SubstructureRenderer, write_image=substructure.write_image,
        finish=substructure.finish),
}

# Renderers built in this process, by kind name: a worker builds each once, on its first chunk.
_RENDERERS: dict[str, object] = {}


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` of a set with ``seed``: one stream per image."""
    return np.random.default_rng([seed, index])


def _render_chunk(job: tuple[str, str, int, list[tuple[int, str, str | None]]]
                  ) -> list[tuple[int, dict]]:
    kind_name, root, seed, chunk = job
    kind = KINDS[kind_name]
    if kind_name not in _RENDERERS:
        _RENDERERS[kind_name] = kind.renderer()
    renderer = _RENDERERS[kind_name]
    records = []
    for index, path, label in chunk:
        image, record = renderer.render(label, image_rng(seed, index))
        kind.write_image(Path(root) / path, image, seed)
        records.append((index, record))
    return records


def _check_arguments(spec: Kind, out: Path, n: int, seed: int, workers: int) -> None:
    for flag, value, least in (("--n", n, spec.min_n), ("--seed", seed, 0),
                               ("--workers", workers, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            why = (f"{spec.name} needs at least {spec.min_n} images (every class in every split)"
                   if flag == "--n" else f"must be an integer >= {least}")
            raise UserError(f"{flag} {value!r}: {why}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out}: folder is not empty; simulated data is only written to a "
                        f"new or empty folder, never over existing files")


def _make_staging(out: Path, folders: set[Path]) -> Path:
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as err:
        raise UserError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    try:
        for folder in sorted(folders):
            (staging / folder).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    return staging


def simulate(kind: str, out: str | os.PathLike, n: int | None = None, seed: int = 0,
             workers: int | None = None) -> Path:
    """Simulate a labelled image set in the on-disk layout of a real one.

    Args:
        kind: ``"lens_finding"`` (Bologna challenge layout) or ``"substructure"`` (DeepLense
            Common Task 1 layout); see :data:`KINDS`.
        out: Folder to create; it may exist only if empty. Nothing else is written.
        n: Images in all; default the kind's ``default_n`` (2000 / 3000; the real sets have
            18,000 / 37,500).
        seed: Seed of the set; the same seed and ``n`` give byte-identical files.
        workers: Processes rendering images; default every core. Does not change the output.

    Returns:
        The folder written, ``out``.

    Raises:
        UserError: Unknown kind, ``n`` below the kind's minimum, a bad seed or worker count,
            ``out`` non-empty or not writable; one line naming the flag or path.
    """
    if kind not in KINDS:
        raise UserError(f"kind {kind!r}: unknown simulator; known: {', '.join(KINDS)}")
    spec, out = KINDS[kind], Path(out)
    n = spec.default_n if n is None else n
    workers = (os.cpu_count() or 1) if workers is None else workers
    _check_arguments(spec, out, n, seed, workers)
    n = int(n)
    tasks = [(index, path, label) for index, (path, label) in enumerate(spec.plan(n))]
    staging = _make_staging(out, {Path(path).parent for _, path, _ in tasks})
    try:
        records = _render_all(spec, staging, int(seed), tasks, int(workers))
        spec.finish(staging, records)
        # Renames onto ``out`` when it is missing or an empty folder (POSIX rename semantics).
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _render_all(spec: Kind, staging: Path, seed: int, tasks: list, workers: int) -> list[dict]:
    # Several chunks per worker balance the load; small chunks keep progress lines regular.
    chunk_size = max(1, min(64, math.ceil(len(tasks) / (workers * 8))))
    jobs = [(spec.name, str(staging), seed, tasks[i:i + chunk_size])
            for i in range(0, len(tasks), chunk_size)]
    workers = min(workers, len(jobs))
    records: list[dict | None] = [None] * len(tasks)
    start, done, next_report = time.perf_counter(), 0, 0.1
    logger.info("%s: simulating %d images with %d worker%s", spec.name, len(tasks), workers,
                "s" * (workers > 1))
    pool = multiprocessing.Pool(workers) if workers > 1 else None
    finished = False
    try:
        results = pool.imap_unordered(_render_chunk, jobs) if pool else map(_render_chunk, jobs)
        for chunk in results:
            for index, record in chunk:
                records[index] = record
            done += len(chunk)
            if done / len(tasks) >= next_report - 1e-9:
                logger.info("%s: %d/%d images (%.0f%%), %.1f s", spec.name, done, len(tasks),
                            100 * done / len(tasks), time.perf_counter() - start)
                next_report = math.floor(10 * done / len(tasks)) / 10 + 0.1
        finished = True
    finally:
        if pool:
            # Workers that are done exit on their own; SIGTERM only on an error or an interrupt
            # (a worker forked from a process with Ray's signal handlers prints a stack on it).
            pool.close() if finished else pool.terminate()
            pool.join()
    seconds = time.perf_counter() - start
    counts = Counter(record["label"] for record in records)
    per_class = ", ".join(f"{name}: {counts.get(name, 0)}" for name in spec.classes)
    logger.info("%s: wrote %d images in %.1f s (%.0f images/s); per class %s", spec.name,
                len(tasks), seconds, len(tasks) / seconds, per_class)
    # Lens-finding labels follow from the draws, so a tiny set can miss a class; the loader
    # needs two images of each to split them.
    scarce = [name for name in spec.classes if counts.get(name, 0) < 2]
    if scarce:
        logger.warning("%s: class %s has fewer than 2 images; use a larger --n to train on it",
                       spec.name, ", ".join(scarce))
    return records

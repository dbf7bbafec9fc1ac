"""Decoding image files into float32 (C, H, W) arrays, in parallel, and stacking them.

Decoders are chosen by file suffix: ``.npy`` (NumPy), ``.fits``/``.fit``/``.fts`` (astropy; also
gzipped, ``.fits.gz``, as survey archives ship them) and the raster formats Pillow reads. 8- and
16-bit rasters are scaled to [0, 1]; NumPy and FITS values are kept as they are. Decoding workers
never touch torch: only resizing (in :func:`stack_images`) uses it, in the calling process.
"""

from __future__ import annotations

import mmap
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Sequence

import numpy as np

from trainable.errors import DataError


FITS_SUFFIXES = (".fits", ".fit", ".fts")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
# Below this many files a process pool costs more than it saves.
_MIN_FILES_PER_WORKER = 64


def _as_chw(array: np.ndarray, path: Path) -> np.ndarray:
    """A 2-D image gets a channel axis; (H, W, C) with few channels becomes (C, H, W)."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and array.shape[0] <= 4:
        return array
    if array.ndim == 3 and array.shape[-1] <= 4:
        return np.moveaxis(array, -1, 0)
    raise DataError(f"{path}: array of shape {array.shape} is not an image "
                    f"(expected (H, W), (C, H, W) or (H, W, C) with at most 4 channels)")


def read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataError(f"{path}: cannot read as a NumPy array "
                        f"({'object arrays are not supported' if 'pickle' in str(err) else err})") from None
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read as a NumPy array ({err})") from None
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: array of dtype {array.dtype} is not numeric")
    return array


def read_fits(path: Path, hdu: int = 0) -> np.ndarray:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            data = hdul[hdu].data
    except IndexError:
        raise DataError(f"{path}: has no HDU {hdu} (set data.hdu)") from None
    except Exception as err:  # astropy raises OSError, ValueError, TypeError for broken files
        raise DataError(f"{path}: cannot read as FITS ({type(err).__name__}: {err})") from None
    if data is None:
        raise DataError(f"{path}: HDU {hdu} holds no image (set data.hdu)")
    return np.asarray(data)


def read_raster(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("1", "L", "LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "HSV", "LAB"):
                image = image.convert("L" if image.mode in ("1", "L", "LA") else "RGB")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read as an image ({err})") from None
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16 or array.dtype == np.dtype(">u2"):
        return array.astype(np.float32) / 65535.0
    return array


def image_suffix(path: Path) -> str:
    """The suffix that picks a file's decoder: ``.fits`` for ``x.fits.gz``, else the last one."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if len(suffixes) == 2 and suffixes[1] == ".gz" and suffixes[0] in FITS_SUFFIXES:
        return suffixes[0]
    return path.suffix.lower()


def decodable(path: Path) -> bool:
    """Whether :func:`read_image` has a decoder for ``path``."""
    return image_suffix(path) in (".npy", *FITS_SUFFIXES, *RASTER_SUFFIXES)


def read_image(path: Path, hdu: int = 0) -> np.ndarray:
    """Decode one file into a float32 (C, H, W) array."""
    suffix = image_suffix(path)
    if suffix == ".npy":
        array = read_npy(path)
    elif suffix in FITS_SUFFIXES:
        array = read_fits(path, hdu)
    elif suffix in RASTER_SUFFIXES:
        array = read_raster(path)
    else:
        raise DataError(f"{path}: no decoder for {suffix!r} files")
    return _as_chw(array, path).astype(np.float32, copy=False)


def _decode_item(item: tuple[Path, ...], hdu: int, nonfinite: str) -> np.ndarray:
    """Decode one image: the channels of each file in ``item``, stacked."""
    parts = [read_image(path, hdu) for path in item]
    if len(parts) > 1 and len({p.shape[1:] for p in parts}) > 1:
        raise DataError(f"{item[0]} and {item[1]}: bands of one image differ in size "
                        f"({parts[0].shape[1:]} vs {parts[1].shape[1:]})")
    image = np.concatenate(parts) if len(parts) > 1 else parts[0]
    bad = ~np.isfinite(image)
    if bad.any():
        if nonfinite == "error":
            raise DataError(f"{item[0]}: {int(bad.sum())} NaN or infinite pixels "
                            f"(set data.nonfinite: zero to replace them with 0)")
        image = np.where(bad, 0.0, image).astype(np.float32)
    return np.ascontiguousarray(image)


# The decode under way: forked workers inherit it, so only index ranges cross the pipes, and
# its (N, C, H, W) output is in memory shared with them.
_JOB: dict | None = None


def _decode_chunk(indices: range) -> list[tuple[int, np.ndarray]]:
    """Decode ``items[indices]`` into the shared output; return the images of another shape."""
    out, items, hdu, nonfinite = _JOB["out"], _JOB["items"], _JOB["hdu"], _JOB["nonfinite"]
    odd = []
    for i in indices:
        image = _decode_item(items[i], hdu, nonfinite)
        if image.shape == out.shape[1:]:
            out[i] = image
        else:
            odd.append((i, image))
    return odd


def _shared_array(shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed float32 array in anonymous shared memory: forked workers write into it."""
    nbytes = int(np.prod(shape)) * 4
    return np.frombuffer(mmap.mmap(-1, max(nbytes, 1)), dtype=np.float32, count=int(np.prod(shape))).reshape(shape)


def decode_images(items: Sequence[tuple[Path, ...]], *, image_size: tuple[int, int] | None = None,
                  expand_grey: bool = False, hdu: int = 0, nonfinite: str = "error",
                  workers: int | None = None) -> np.ndarray:
    """Decode every image into one (N, C, H, W) float32 array, on ``workers`` processes.

    Workers write straight into an output array shared with them (no copying of pixels back
    through pipes); only images whose shape differs from the first one's are sent back, to be
    resized (``image_size``), repeated to 3 channels (``expand_grey``), or reported.

    Args:
        items: One tuple of files per image (several files are stacked as channels).
        image_size: Resize every image to (H, W); without it, differing shapes are an error.
        expand_grey: Repeat 1-channel images to 3 channels when grey and colour files mix.
        hdu: FITS extension holding the image.
        nonfinite: ``error`` or ``zero``, for NaN and infinite pixels.
        workers: Processes; default every core. Small sets are decoded in this process.
    """
    global _JOB
    names = [str(item[0]) for item in items]
    first = _decode_item(items[0], hdu, nonfinite)
    shape = (len(items), first.shape[0], *(image_size or first.shape[1:]))
    workers = min(workers or os.cpu_count() or 1, max(1, len(items) // _MIN_FILES_PER_WORKER))
    parallel = workers > 1 and "fork" in get_all_start_methods()
    out = _shared_array(shape) if parallel else np.empty(shape, np.float32)
    _JOB = {"out": out, "items": items, "hdu": hdu, "nonfinite": nonfinite}
    try:
        if parallel:
            # Several chunks per worker keep every core busy when files differ in size. fork: the
            # workers inherit the shared output and need no re-import; they touch no torch.
            bounds = np.linspace(1, len(items), workers * 8 + 1).astype(int)
            chunks = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
            with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                odd = [pair for chunk in pool.map(_decode_chunk, chunks) for pair in chunk]
        else:
            odd = _decode_chunk(range(1, len(items)))
    finally:
        _JOB = None
    if first.shape == out.shape[1:]:
        out[0] = first
    else:
        odd.insert(0, (0, first))
    if not odd:
        return out
    # Some images differ from the first one's shape: stack them all the careful way.
    odd_index = dict(odd)
    arrays = [odd_index[i] if i in odd_index else out[i] for i in range(len(items))]
    return stack_images(arrays, names, image_size, expand_grey)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def stack_images(arrays: list[np.ndarray], names: Sequence[str],
                 image_size: tuple[int, int] | None, expand_grey: bool = False) -> np.ndarray:
    """Stack decoded images into one (N, C, H, W) float32 array.

    Args:
        arrays: Decoded (C, H, W) images.
        names: What to call each image in errors (its file).
        image_size: Resize every image to (H, W) with antialiased bilinear interpolation;
            without it, images of different shapes are an error.
        expand_grey: Repeat 1-channel images to 3 channels when a set mixes grey and RGB
            rasters (lossless; PNG folders often do).

    Raises:
        DataError: shapes that differ (one image of each shape named).
    """
    if not arrays:
        raise DataError("no images found")
    channels = {a.shape[0] for a in arrays}
    if expand_grey and channels == {1, 3}:
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
        channels = {3}
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, array in enumerate(arrays):
        by_shape[array.shape].append(i)
    if len(channels) > 1 or (image_size is None and len(by_shape) > 1):
        (shape_a, idx_a), (shape_b, idx_b) = list(by_shape.items())[:2]
        hint = "" if len(channels) > 1 else "; set data.image_size to resize them"
        raise DataError(f"images differ in shape: {names[idx_a[0]]} is {_shape_text(shape_a)}, "
                        f"{names[idx_b[0]]} is {_shape_text(shape_b)}{hint}")
    c = channels.pop()
    h, w = image_size or next(iter(by_shape))[1:]
    out = np.empty((len(arrays), c, h, w), dtype=np.float32)
    for shape, indices in by_shape.items():
        if shape[1:] == (h, w):
            for i in indices:
                out[i] = arrays[i]
        else:
            _resize_into(out, arrays, indices, (h, w))
    return out


def _resize_into(out: np.ndarray, arrays: list[np.ndarray], indices: list[int],
                 size: tuple[int, int], batch: int = 256) -> None:
    import torch
    import torch.nn.functional as F

    for start in range(0, len(indices), batch):
        part = indices[start:start + batch]
        x = torch.from_numpy(np.stack([arrays[i] for i in part]))
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        out[part] = y.numpy()

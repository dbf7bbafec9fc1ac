"""Classify new images with the best model of a finished search.

    python -m search.predict results/lens_finding new_cutouts/                # a folder, searched recursively
    python -m search.predict results/lens_finding a.fits b.fits --out preds.csv --no-tta

Each image is read, resized, expanded to the model's channels and normalized as the training images
were, then classified by the search's final model (``best_model.pt``: the best trial or an
ensemble, temperature-scaled; :mod:`search.final`). An image whose size differs from the training
images' is refused, unless the search resized its images (``data.image_size``) and so resizes these
the same way. With ``final.tta`` the model averages the probabilities over the 8 rotations and
flips of each image (a lens has no preferred orientation), or over each photograph and its
left-right mirror (``final.tta: hflip``); ``--tta`` / ``--no-tta`` overrides it (``--tta`` on a
model stored without TTA: the 8 flips and rotations).
The CSV (default ``RESULTS_FOLDER/predictions.csv``) has one row per image, in the order given:
``file, predicted, p_<class>...``, the predicted class at the model's threshold (binary tasks:
chosen on the validation split, ``final.threshold``), else the most probable. Nothing is written
when an input is missing or unreadable, or of another size than the model takes.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
import yaml

from search.files import MODEL_FILE, PREDICT_FILE, SPACE_COPY
from trainable.data import DataConfig, apply_normalization
from trainable.data.decode import FITS_SUFFIXES, RASTER_SUFFIXES, decodable, decode_images, read_image
from trainable.errors import DataError, UserError, exit_on_user_error
from trainable.export import ExportedModel, load_model

# What read_image decodes (decode.decodable), for messages.
IMAGE_SUFFIXES = (".npy", *FITS_SUFFIXES, *(s + ".gz" for s in FITS_SUFFIXES), *RASTER_SUFFIXES)
_FILES_PER_STEP = 1024  # decoded at a time: bounds memory on large folders


def _natural(path: Path) -> list:
    """Sort key over every part of a path: ``a/2.fits`` before ``a/10.fits``."""
    return [[int(t) if t.isdigit() else t for t in re.split(r"(\d+)", part)] for part in path.parts]


def list_images(paths: list[str]) -> list[Path]:
    """The image files named, folders replaced by the image files under them (natural order)."""
    files = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted((p for p in given.rglob("*") if p.is_file() and decodable(p)
                            and not any(part.startswith((".", "__")) for part in p.relative_to(given).parts)),
                           key=lambda p: _natural(p.relative_to(given)))
            if not found:
                raise UserError(f"{given}: folder holds no image files ({' '.join(IMAGE_SUFFIXES)})")
            files += found
        elif given.is_file():
            files.append(given)
        else:
            raise UserError(f"{given}: no such file or folder")
    return files


def decode_options(folder: Path) -> tuple[int, str]:
    """The FITS HDU and NaN policy the search read its images with (the model file lacks them)."""
    space = folder / SPACE_COPY
    if not space.is_file():
        return 0, "error"
    data = DataConfig.from_mapping((yaml.safe_load(space.read_text()) or {}).get("data") or {},
                                   where=f"{space}: data")
    return data.options.get("hdu", 0), data.nonfinite


def _size_text(size) -> str:
    return "x".join(map(str, size))


def refuse_other_sizes(files: list[Path], trained: tuple[int, int], hdu: int) -> None:
    """Raise for the first of ``files`` whose height and width are not ``trained``.

    Raises:
        UserError: naming the file and both sizes. The network's global pooling would classify
            such an image without complaint, but not as it was trained to.
    """
    for path in files:
        size = tuple(read_image(path, hdu).shape[1:])
        if size != trained:
            raise UserError(f"{path}: image is {_size_text(size)} pixels; the model was trained on "
                            f"{_size_text(trained)} images and records no resize (data.image_size)")


def decode_part(model: ExportedModel, files: list[Path], hdu: int, nonfinite: str) -> np.ndarray:
    """``files`` decoded into (N, C, H, W): resized to the model's ``image_size`` when it records
    one, else checked against its ``input_size`` (a model file without one is not checked)."""
    resize, trained = model.info.get("image_size"), model.info.get("input_size")
    options = {"expand_grey": model.info["in_chans"] == 3, "hdu": hdu, "nonfinite": nonfinite}
    if resize or not trained:
        return decode_images([(f,) for f in files], image_size=resize and tuple(resize), **options)
    trained = tuple(trained)
    try:
        images = decode_images([(f,) for f in files], **options)
    except DataError:  # differing shapes, among others: a file of another size is named first
        refuse_other_sizes(files, trained, hdu)
        raise
    if tuple(images.shape[-2:]) != trained:  # all of one shape: the first file stands for them
        refuse_other_sizes(files[:1], trained, hdu)
    return images


def prepared(model: ExportedModel, files: list[Path], hdu: int, nonfinite: str) -> Iterator[torch.Tensor]:
    """(N, C, H, W) batches of ``files`` as the model was trained on: decoded, resized to its
    ``image_size`` (or refused when of another size than its ``input_size``), grey repeated to
    3 channels when it takes colour, then normalized."""
    in_chans = model.info["in_chans"]
    for start in range(0, len(files), _FILES_PER_STEP):
        part = files[start:start + _FILES_PER_STEP]
        images = decode_part(model, part, hdu, nonfinite)
        if images.shape[1] == 1 and in_chans == 3:
            images = np.repeat(images, 3, axis=1)
        if images.shape[1] != in_chans:
            raise DataError(f"{part[0]}: has {images.shape[1]} channels; the model takes {in_chans}")
        apply_normalization(images, model.info["normalization"])
        yield torch.from_numpy(images)


def predict(model: ExportedModel, batches: Iterator[torch.Tensor], batch_size: int,
            tta: bool | str | None = None) -> np.ndarray:
    """The model's class probabilities (N, num_classes); ``tta`` None: as the model file says,
    else a mode of :func:`trainable.export.tta_views`."""
    return torch.cat([model.predict(x, batch_size, tta) for x in batches]).numpy()


def write_csv(frame: pd.DataFrame, out: Path) -> None:
    """Write to a temporary name beside ``out``, then rename: never a half-written file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        frame.to_csv(partial, index=False)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m search.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a finished search's results folder (results/<name>)")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files, or folders searched recursively")
    parser.add_argument("--out", help=f"the CSV to write (default RESULTS/{PREDICT_FILE})")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="average the probabilities over the model's views of each image: its "
                             "final.tta mode, else the 8 rotations and flips (default: as the model's "
                             "final stage chose)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="images per forward pass")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(args.results)
    if not (folder / MODEL_FILE).is_file():
        problem = "no such folder" if not folder.is_dir() else f"holds no {MODEL_FILE}"
        raise UserError(f"{folder}: {problem} (expected the results folder of a finished search)")
    files = list_images(args.paths)
    out = Path(args.out) if args.out else folder / PREDICT_FILE
    if out.is_dir() or out.resolve() in {f.resolve() for f in files}:
        raise UserError(f"--out {out}: is {'a folder' if out.is_dir() else 'one of the input images'}")
    model = load_model(folder / MODEL_FILE, "cuda" if torch.cuda.is_available() else "cpu")
    tta = model.tta if args.tta is None else args.tta
    if tta is True and model.tta:  # --tta: the model's own views (a photograph's mirror)
        tta = model.tta
    probabilities = predict(model, prepared(model, files, *decode_options(folder)), args.batch_size, tta)
    names = model.class_names
    frame = pd.DataFrame({"file": [str(f) for f in files],
                          "predicted": [names[k] for k in model.decide(probabilities)]})
    for k, name in enumerate(names):
        frame[f"p_{name}"] = probabilities[:, k]
    write_csv(frame, out)
    counts = Counter(frame["predicted"])
    at = "" if model.threshold is None else f" at threshold {model.threshold:.3g} for {names[1]}"
    views = {True: " (TTA)", "hflip": " (TTA: mirrored)"}.get(tta, "")
    print(f"{len(files)} images{views}, predicted "
          + ", ".join(f"{n}: {counts[n]}" for n in names) + f"{at}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

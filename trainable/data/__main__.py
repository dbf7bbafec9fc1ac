"""Check a data set: load it as a search would and print what was found.

Usage:
    python -m trainable.data FORMAT [PATH] [--set KEY=VALUE ...]

Examples:
    python -m trainable.data npy_folders data/substructure
    python -m trainable.data fits_csv data/SpaceBasedTraining --set normalization=standardize
    python -m trainable.data csv_images data/cifar10 --set csv=trainLabels.csv
    python -m trainable.data digits

Prints the classes, the split sizes per class, the image shape and the cache entry used. The first
load of a set of many files decodes them on every core and caches the arrays; later loads read the
cache. A problem with the data is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import yaml

from trainable.data.formats import FORMATS
from trainable.data.load import load_dataset
from trainable.errors import UserError, exit_on_user_error


def _parse_set(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set {pair!r}: expected KEY=VALUE")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise UserError(f"--set {pair!r}: value is not YAML ({str(err).splitlines()[0]})") from None
    return options


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    formats = "\n".join(f"  {f.name:14s} {f.description}" for f in FORMATS.values())
    parser = argparse.ArgumentParser(
        prog="python -m trainable.data", description="Load a data set and describe it.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=f"formats:\n{formats}")
    parser.add_argument("format", help="on-disk format (see below)")
    parser.add_argument("path", nargs="?", help="the data set's folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other key of the data: block, the value read as YAML")
    args = parser.parse_args(argv)
    # Progress and the summary on stdout; stderr carries only an error.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    block = {"format": args.format, **({"path": args.path} if args.path else {}),
             **_parse_set(args.set)}
    start = time.perf_counter()
    dataset = load_dataset(block)
    print(dataset.summary())
    print(f"loaded in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

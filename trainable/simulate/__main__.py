"""Write a simulated lens-image data set in the on-disk layout of a real one.

Usage:
    python -m trainable.simulate {lens_finding,substructure} --out DIR [--n N] [--seed S] [--workers W]

Examples:
    python -m trainable.simulate lens_finding --out data/SpaceBasedTraining
    python -m trainable.simulate substructure --out data/substructure --n 37500 --seed 1

Kinds:
    lens_finding   Bologna lens-finding challenge layout: DIR/classifications.csv (ID,is_lens,
                   Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma) and
                   DIR/files/imageEUC_VIS-<ID>.fits, 101x101 Euclid VIS cutouts, IDs from 100000,
                   about 2.3 lenses per non-lens. is_lens follows from the simulation truth in the
                   other three columns, so those columns must never be used as features.
                   Default 2000 images (the real set: 18,000).
    substructure   DeepLense Common Task 1 layout: DIR/{train,val}/{no,sphere,vort}/<n>.npy, each
                   (1,150,150) float32 min-max normalised to [0,1], balanced, 20% val.
                   Default 3000 images (the real set: 37,500).

The same seed and N give byte-identical files whatever the number of workers (default: every
core). DIR must be new or empty: existing files are never overwritten. The set appears at DIR
only once complete. Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging

from trainable.errors import exit_on_user_error
from trainable.simulate.runner import KINDS, simulate


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trainable.simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=list(KINDS), help="which data set to simulate")
    parser.add_argument("--out", required=True, help="folder to write (new or empty)")
    parser.add_argument("--n", type=int, default=None,
                        help="images in all (default: %s)" % ", ".join(
                            f"{k.name} {k.default_n}" for k in KINDS.values()))
    parser.add_argument("--seed", type=int, default=0, help="seed of the set (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="rendering processes (default: every core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    simulate(args.kind, args.out, n=args.n, seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    main()

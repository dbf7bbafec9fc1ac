"""Lens finding: Euclid VIS cutouts laid out as the Bologna lens-finding challenge.

Layout written (as DeepLense shipped the challenge's space-based training set)::

    OUT/classifications.csv     ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma
    OUT/files/imageEUC_VIS-<ID>.fits

IDs start at 100000; each FITS file holds one 101x101 float32 image (electrons per second, 0.1
arcsec pixels) in its primary HDU. Every cutout has a lens galaxy (SIE + shear mass, Sersic
light) and up to two unlensed field galaxies; most have a background Sersic source.

As in the real challenge, ``is_lens`` is derived from the simulation truth, not chosen: a system
is a lens when it has a source (``Einstein_area > 0``) whose lensed image alone, noise-free,
covers at least :data:`MIN_LENSED_PIXELS` pixels above 1 sigma of the background noise and
carries at least :data:`MIN_FLUX_IN_SIGMA` in those pixels. Non-lenses are thus a mix of cutouts
without a source and with sources too faint or too small to see, and borderline systems of both
labels exist. The three truth columns encode the label: they must never be used as features.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from astropy.io import fits

from trainable.simulate import galaxies
from trainable.simulate.optics import EUCLID_VIS, Photometry, build_image_model

FIRST_ID = 100000
CSV_NAME = "classifications.csv"
CSV_HEADER = ["ID", "is_lens", "Einstein_area", "numb_pix_lensed_image",
              "flux_lensed_image_in_sigma"]
CLASSES = ("0", "1")  # the values of is_lens

# The challenge's detectability cut: pixels of the lensed source alone above 1 sigma ...
MIN_LENSED_PIXELS = 20
# ... and their summed flux in units of sigma (a mean of 2 sigma over the minimum 20 pixels).
MIN_FLUX_IN_SIGMA = 40.0

# Fraction of cutouts with no background source at all (lens galaxy and field galaxies only).
NO_SOURCE_FRACTION = 0.12
# Source magnitudes are uniform over this range; with the other draws it gives about 2.3 lenses
# per non-lens, as the real set (12,574 vs 5,426), and puts many sources near the cut.
SOURCE_MAGNITUDES = (22.0, 27.8)
MAX_FIELD_GALAXIES = 2

DEFAULT_N = 2000
REAL_N = 18000


def file_name(image_id: int) -> str:
    """Path of one cutout relative to the data set's root."""
    return f"files/imageEUC_VIS-{image_id}.fits"


def plan(n: int) -> list[tuple[str, str | None]]:
    """Relative output path of images ``0 .. n-1`` (IDs from 100000), and no preset class.

    The class of a cutout is known only once it is rendered (see the module docstring).
    """
    return [(file_name(FIRST_ID + i), None) for i in range(n)]


class LensFindingRenderer:
    """Draws and renders cutouts; one per worker process, built once and reused."""

    def __init__(self):
        self.photometry = Photometry(EUCLID_VIS)
        self.sigma = self.photometry.background_sigma
        self.image_model = build_image_model(
            EUCLID_VIS, ["SIE", "SHEAR"], ["SERSIC_ELLIPSE"],
            ["SERSIC_ELLIPSE"] * (1 + MAX_FIELD_GALAXIES))

    def render(self, label: str | None, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """One noisy cutout and its truth row (without the ID).

        Args:
            label: Unused: the label follows from the rendered truth.
            rng: The image's own generator.

        Returns:
            The image and a record with the CSV's truth columns and ``label`` (``"0"``/``"1"``).
        """
        theta_e = rng.uniform(0.5, 2.0)
        kwargs_lens, mass_phi = galaxies.macro_lens(rng, theta_e, max_offset=0.1)
        sie = kwargs_lens[0]
        has_source = rng.uniform() >= NO_SOURCE_FRACTION

        source = galaxies.source_light(rng, sie, max_radius=0.7 * theta_e, r_sersic=(0.05, 0.5))
        source["amp"] = self.photometry.amplitude(
            "SERSIC_ELLIPSE", source, rng.uniform(*SOURCE_MAGNITUDES)) if has_source else 0.0
        light = galaxies.lens_light(rng, sie, mass_phi, r_sersic=(0.4, 1.5))
        light["amp"] = self.photometry.amplitude("SERSIC_ELLIPSE", light, rng.uniform(18.5, 21.5))
        lights = [light] + self._field_galaxies(rng)

        lensed = self.image_model.source_surface_brightness([source], kwargs_lens)
        unlensed = self.image_model.lens_surface_brightness(lights)
        image = self.photometry.add_noise(lensed + unlensed, rng).astype(np.float32)

        above = lensed > self.sigma
        truth = {
            # A source plane is what gives an Einstein radius; without a source there is none.
            "Einstein_area": np.pi * theta_e**2 if has_source else 0.0,
            "numb_pix_lensed_image": int(above.sum()),
            "flux_lensed_image_in_sigma": float(lensed[above].sum() / self.sigma),
        }
        truth["is_lens"] = int(truth["Einstein_area"] > 0
                               and truth["numb_pix_lensed_image"] >= MIN_LENSED_PIXELS
                               and truth["flux_lensed_image_in_sigma"] >= MIN_FLUX_IN_SIGMA)
        truth["label"] = str(truth["is_lens"])
        return image, truth

    def _field_galaxies(self, rng: np.random.Generator) -> list[dict]:
        # Unlensed galaxies elsewhere in the cutout, as in real fields: they make "a second
        # object near the lens" no proof of lensing. Unused slots get zero amplitude so the
        # profile list, and so the image model, stays fixed.
        count = rng.integers(0, MAX_FIELD_GALAXIES + 1)
        half_width = EUCLID_VIS.num_pix * EUCLID_VIS.delta_pix / 2
        field = []
        for k in range(MAX_FIELD_GALAXIES):
            radius, angle = rng.uniform(2.0, half_width), rng.uniform(0, 2 * np.pi)
            e1, e2 = galaxies.random_ellipticity(rng, q_min=0.3)
            kwargs = {"R_sersic": float(rng.uniform(0.1, 0.6)),
                      "n_sersic": float(rng.uniform(0.7, 4.0)),
                      "e1": e1, "e2": e2, "center_x": float(radius * np.cos(angle)),
                      "center_y": float(radius * np.sin(angle))}
            magnitude = rng.uniform(20.5, 25.0)
            kwargs["amp"] = (self.photometry.amplitude("SERSIC_ELLIPSE", kwargs, magnitude)
                             if k < count else 0.0)
            field.append(kwargs)
        return field


def write_image(path: Path, image: np.ndarray, seed: int) -> None:
    """Write one cutout as a single-HDU FITS file (no date cards: the bytes depend on the seed)."""
    header = fits.Header()
    header["PIXSCALE"] = (EUCLID_VIS.delta_pix, "arcsec per pixel")
    header["BUNIT"] = ("electron/s", "pixel unit")
    header["PSF_FWHM"] = (EUCLID_VIS.psf_fwhm, "Gaussian PSF FWHM, arcsec")
    header["MAGZP"] = (EUCLID_VIS.magnitude_zero_point, "AB magnitude of 1 electron/s")
    header["EXPTIME"] = (EUCLID_VIS.exposure_time * EUCLID_VIS.num_exposures, "s, total")
    header["SIMULATR"] = ("trainable.simulate lens_finding", "simulated, not observed")
    header["SIMSEED"] = (seed, "seed of the simulated set")
    fits.PrimaryHDU(image, header=header).writeto(path)


def finish(out: Path, records: list[dict]) -> None:
    """Write ``classifications.csv`` from the records of images ``0 .. n-1``, in that order."""
    with open(out / CSV_NAME, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for index, row in enumerate(records):
            writer.writerow([FIRST_ID + index, row["is_lens"], f"{row['Einstein_area']:.6g}",
                             row["numb_pix_lensed_image"],
                             f"{row['flux_lensed_image_in_sigma']:.6g}"])

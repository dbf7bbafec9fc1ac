"""Dark-matter substructure: galaxy-galaxy lenses laid out as DeepLense Common Task 1.

Layout written (the real set has 10,000 images per class in ``train`` and 2,500 in ``val``)::

    OUT/train/{no,sphere,vort}/0.npy, 1.npy, ...
    OUT/val/{no,sphere,vort}/0.npy, 1.npy, ...

Each file is a float32 array of shape (1, 150, 150), min-max normalised to [0, 1] per image. The
classes are balanced and about 20% of each goes to ``val``.

Every image is a smooth SIE + external shear lens with Sersic lens light and a Sersic source near
the caustic, imaged with a Gaussian PSF, Poisson and background noise. The classes differ only in
the substructure added to the mass:

* ``no``: none.
* ``sphere``: a population of point-mass subhalos scattered around the Einstein ring.
* ``vort``: a vortex, a straight line of point masses through the lens centre at a random angle
  (a string-like mass, as in DeepLense's axion-vortex class).

The substructure's total mass is a few per cent of the mass inside the Einstein radius: its
deflections of a few hundredths of an arcsec move and break up the arcs by a pixel or two: the
classes are learnable, but not trivially (BENCHMARKS.md, "Is the simulated data learnable, and not
trivial?").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainable.simulate import galaxies
from trainable.simulate.optics import DEEP_SPACE, Photometry, build_image_model

CLASSES = ("no", "sphere", "vort")
SPLITS = ("train", "val")
VAL_FRACTION = 0.2

SUBHALO_COUNT = (8, 24)
SUBHALO_MASS_FRACTION = (0.03, 0.10)   # of the mass inside the Einstein radius, all subhalos
VORTEX_POINTS = 40
VORTEX_MASS_FRACTION = (0.03, 0.10)    # of the mass inside the Einstein radius, whole vortex
VORTEX_HALF_LENGTH = (1.0, 1.8)        # in Einstein radii: the line crosses the ring

DEFAULT_N = 3000
REAL_N = 37500
MIN_N = 2 * len(CLASSES)  # one image per class in each split


def split_counts(n: int) -> dict[str, dict[str, int]]:
    """Images per split and class for ``n`` in all: balanced, about 20% in ``val``, none empty.

    The remainder of ``n`` over the classes goes to the first classes, one each, so exactly
    ``n`` images are written.
    """
    counts: dict[str, dict[str, int]] = {split: {} for split in SPLITS}
    for c, name in enumerate(CLASSES):
        per_class = n // len(CLASSES) + (c < n % len(CLASSES))
        val = min(max(1, round(VAL_FRACTION * per_class)), per_class - 1)
        counts["train"][name], counts["val"][name] = per_class - val, val
    return counts


def plan(n: int) -> list[tuple[str, str]]:
    """Relative output path and class of images ``0 .. n-1``: train then val, class by class."""
    tasks = []
    for split, per_class in split_counts(n).items():
        for name, count in per_class.items():
            tasks += [(f"{split}/{name}/{k}.npy", name) for k in range(count)]
    return tasks


def point_mass(theta_e_host: float, mass_fraction: float, x: float, y: float) -> dict:
    """``POINT_MASS`` keywords of a mass ``mass_fraction`` times the host's within its ring.

    A point mass m has Einstein radius ``theta_E * sqrt(m / M_E)``, M_E the mass inside the
    host's Einstein radius ``theta_E`` (same lens and source distances).
    """
    return {"theta_E": float(theta_e_host * np.sqrt(mass_fraction)),
            "center_x": float(x), "center_y": float(y)}


def subhalos(rng: np.random.Generator, sie: dict) -> list[dict]:
    """A population of point-mass subhalos around the Einstein ring.

    Radii are uniform between 0.5 and 1.5 Einstein radii, where subhalos perturb the arcs;
    masses are log-uniform over two decades, scaled to a total drawn from
    :data:`SUBHALO_MASS_FRACTION`.
    """
    theta_e = sie["theta_E"]
    count = rng.integers(SUBHALO_COUNT[0], SUBHALO_COUNT[1] + 1)
    weights = 10 ** rng.uniform(0, 2, size=count)
    fractions = weights / weights.sum() * rng.uniform(*SUBHALO_MASS_FRACTION)
    radii = theta_e * rng.uniform(0.5, 1.5, size=count)
    angles = rng.uniform(0, 2 * np.pi, size=count)
    return [point_mass(theta_e, f, sie["center_x"] + r * np.cos(a), sie["center_y"] + r * np.sin(a))
            for f, r, a in zip(fractions, radii, angles)]


def vortex(rng: np.random.Generator, sie: dict) -> list[dict]:
    """A vortex: :data:`VORTEX_POINTS` equal point masses on a line through the lens centre."""
    theta_e = sie["theta_E"]
    angle = rng.uniform(0, np.pi)
    half_length = theta_e * rng.uniform(*VORTEX_HALF_LENGTH)
    along = np.linspace(-half_length, half_length, VORTEX_POINTS)
    fraction = rng.uniform(*VORTEX_MASS_FRACTION) / VORTEX_POINTS
    return [point_mass(theta_e, fraction, sie["center_x"] + s * np.cos(angle),
                       sie["center_y"] + s * np.sin(angle)) for s in along]


def smooth(rng: np.random.Generator, sie: dict) -> list[dict]:
    """No substructure (the ``no`` class)."""
    return []


# Class name -> the point masses it adds to the smooth lens.
SUBSTRUCTURE = {"no": smooth, "sphere": subhalos, "vort": vortex}


class SubstructureRenderer:
    """Draws and renders images; one per worker process, reused for every image.

    The image model depends on the number of point masses, so one is built per count on first
    use and kept (at most a couple of dozen per process).
    """

    def __init__(self):
        self.photometry = Photometry(DEEP_SPACE)
        self._models: dict[int, object] = {}

    def _image_model(self, num_point_masses: int):
        if num_point_masses not in self._models:
            self._models[num_point_masses] = build_image_model(
                DEEP_SPACE, ["SIE", "SHEAR"] + ["POINT_MASS"] * num_point_masses,
                ["SERSIC_ELLIPSE"], ["SERSIC_ELLIPSE"])
        return self._models[num_point_masses]

    def render(self, label: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """One image of class ``label``, shape (1, 150, 150), float32 in [0, 1].

        Args:
            label: ``"no"``, ``"sphere"`` or ``"vort"``.
            rng: The image's own generator.

        Returns:
            The image and its record (``label``).
        """
        # The smooth system is drawn first and the same way for every class, so the classes
        # differ in their substructure only.
        kwargs_lens, mass_phi = galaxies.macro_lens(rng, rng.uniform(0.9, 1.4), max_offset=0.05)
        sie = kwargs_lens[0]
        source = galaxies.source_light(rng, sie, max_radius=0.5 * sie["theta_E"],
                                       r_sersic=(0.1, 0.35))
        source["amp"] = self.photometry.amplitude("SERSIC_ELLIPSE", source, rng.uniform(21.5, 23))
        light = galaxies.lens_light(rng, sie, mass_phi, r_sersic=(0.3, 0.8))
        light["amp"] = self.photometry.amplitude("SERSIC_ELLIPSE", light, rng.uniform(20.5, 22.5))
        kwargs_lens = kwargs_lens + SUBSTRUCTURE[label](rng, sie)

        model = self._image_model(len(kwargs_lens) - 2)
        clean = (model.source_surface_brightness([source], kwargs_lens)
                 + model.lens_surface_brightness([light]))
        image = self.photometry.add_noise(clean, rng)
        image = (image - image.min()) / (image.max() - image.min())
        return image.astype(np.float32)[None], {"label": label}


def write_image(path: Path, image: np.ndarray, seed: int) -> None:
    """Write one image as ``.npy`` (``np.save`` writes no metadata beyond shape and dtype)."""
    np.save(path, image)


def finish(out: Path, records: list[dict]) -> None:
    """Nothing to write after the images: the folders are the labels."""

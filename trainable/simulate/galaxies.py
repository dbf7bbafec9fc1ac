"""Random draws of the smooth lens system: SIE + external shear mass, Sersic lens and source light.

Both kinds of simulated data share these draws. Every orientation is uniform (position angles of
the mass, the lens light and the source, the shear angle, the source's position around the lens),
so flips and rotations of an image are a real symmetry of the data set; the public DeepLenseSim
fixes the lens orientation, which a network can learn as a spurious cue.

Each function takes the image's own ``numpy.random.Generator`` and returns lenstronomy keyword
dictionaries, so an image depends on its seed alone.
"""

from __future__ import annotations

import numpy as np
from lenstronomy.Util import param_util


def random_ellipticity(rng: np.random.Generator, q_min: float, q_max: float = 1.0,
                       phi: float | None = None) -> tuple[float, float]:
    """Ellipticity components ``(e1, e2)`` of an axis ratio in ``[q_min, q_max]``.

    Args:
        rng: The image's generator.
        q_min: Smallest axis ratio (minor/major).
        q_max: Largest axis ratio.
        phi: Position angle in radians; uniform on ``[0, pi)`` when ``None``.
    """
    if phi is None:
        phi = rng.uniform(0, np.pi)
    e1, e2 = param_util.phi_q2_ellipticity(phi=phi, q=rng.uniform(q_min, q_max))
    return float(e1), float(e2)


def macro_lens(rng: np.random.Generator, theta_e: float, max_shear: float = 0.08,
               max_offset: float = 0.0) -> tuple[list[dict], float]:
    """An SIE with external shear, at the centre up to ``max_offset`` arcsec.

    Args:
        rng: The image's generator.
        theta_e: Einstein radius, arcsec.
        max_shear: Largest external shear strength; the shear angle is uniform.
        max_offset: Largest shift of the lens centre from the cutout centre in x and y, arcsec.

    Returns:
        The keyword lists of ``["SIE", "SHEAR"]`` and the mass position angle (radians), which the
        lens light follows with some scatter as real galaxies do.
    """
    phi = rng.uniform(0, np.pi)
    e1, e2 = random_ellipticity(rng, q_min=0.55, phi=phi)
    center_x, center_y = rng.uniform(-max_offset, max_offset, size=2)
    gamma1, gamma2 = param_util.shear_polar2cartesian(phi=rng.uniform(0, np.pi),
                                                      gamma=rng.uniform(0, max_shear))
    sie = {"theta_E": float(theta_e), "e1": e1, "e2": e2,
           "center_x": float(center_x), "center_y": float(center_y)}
    shear = {"gamma1": float(gamma1), "gamma2": float(gamma2), "ra_0": 0.0, "dec_0": 0.0}
    return [sie, shear], float(phi)


def lens_light(rng: np.random.Generator, sie: dict, mass_phi: float,
               r_sersic: tuple[float, float]) -> dict:
    """Elliptical Sersic light of the lens galaxy, centred on its mass (no ``amp`` yet).

    Args:
        rng: The image's generator.
        sie: The SIE keywords (for the centre).
        mass_phi: Position angle of the mass; the light's angle scatters around it by ~10 deg.
        r_sersic: Range of the half-light radius, arcsec.
    """
    e1, e2 = random_ellipticity(rng, q_min=0.5, phi=mass_phi + rng.normal(0, 0.17))
    return {"R_sersic": float(rng.uniform(*r_sersic)), "n_sersic": float(rng.uniform(2.5, 5.0)),
            "e1": e1, "e2": e2, "center_x": sie["center_x"], "center_y": sie["center_y"]}


def source_light(rng: np.random.Generator, sie: dict, max_radius: float,
                 r_sersic: tuple[float, float]) -> dict:
    """Elliptical Sersic source at a random position within ``max_radius`` of the lens centre.

    The position is uniform in area over a disk on the source plane; with ``max_radius`` of
    about half the Einstein radius most sources sit near or inside the caustic of an SIE and
    give arcs or rings, the rest give doubles or single distorted images.

    Args:
        rng: The image's generator.
        sie: The SIE keywords (for the centre).
        max_radius: Largest distance from the lens centre on the source plane, arcsec.
        r_sersic: Range of the half-light radius, arcsec.
    """
    radius = max_radius * np.sqrt(rng.uniform())
    angle = rng.uniform(0, 2 * np.pi)
    e1, e2 = random_ellipticity(rng, q_min=0.4)
    return {"R_sersic": float(rng.uniform(*r_sersic)), "n_sersic": float(rng.uniform(0.7, 2.5)),
            "e1": e1, "e2": e2,
            "center_x": float(sie["center_x"] + radius * np.cos(angle)),
            "center_y": float(sie["center_y"] + radius * np.sin(angle))}

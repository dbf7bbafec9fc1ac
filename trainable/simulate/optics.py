"""The instrument: pixel grid, PSF, photometric zero point and noise, built on lenstronomy.

A :class:`Camera` holds the numbers of one imaging set-up; :func:`build_image_model` turns it
and a list of mass profiles into a lenstronomy ``ImageModel`` (a ``PixelGrid`` and a Gaussian
``PSF``, no supersampling), and :class:`Photometry` converts magnitudes to lenstronomy amplitudes
and draws the noise of one exposure.

The instrument numbers are written here rather than read from lenstronomy's
``SimulationAPI.ObservationConfig`` so that a lenstronomy upgrade that revises its survey
constants does not silently change the simulated data for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lenstronomy.Data.pixel_grid import PixelGrid
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel
from lenstronomy.SimulationAPI.observation_api import SingleBand
from lenstronomy.Util import util


@dataclass(frozen=True)
class Camera:
    """One imaging set-up: the cutout, the PSF and what sets the noise.

    Attributes:
        num_pix: Pixels per side of the square cutout.
        delta_pix: Pixel scale in arcsec.
        psf_fwhm: Full width at half maximum of the Gaussian PSF, arcsec.
        exposure_time: Seconds per exposure.
        num_exposures: Exposures stacked into the image.
        magnitude_zero_point: AB magnitude of a source giving 1 electron per second.
        sky_brightness: Sky surface brightness, AB mag per arcsec^2.
        read_noise: Read-out noise per exposure, electrons.
    """

    num_pix: int
    delta_pix: float
    psf_fwhm: float
    exposure_time: float
    num_exposures: int
    magnitude_zero_point: float
    sky_brightness: float
    read_noise: float


# Euclid VIS as in the Bologna lens-finding challenge (0.1 arcsec pixels, 101x101 cutouts); the
# photometric numbers are lenstronomy 1.14's Euclid VIS wide-survey values (Euclid Collaboration
# 2024, arXiv:2405.13496 / 2405.13501 / 2405.13493).
EUCLID_VIS = Camera(num_pix=101, delta_pix=0.1, psf_fwhm=0.16, exposure_time=566.0,
                    num_exposures=4, magnitude_zero_point=25.72, sky_brightness=22.3,
                    read_noise=4.2)

# A deep, sharp space-telescope image as in DeepLense Common Task 1 (150x150 cutouts, Gaussian
# PSF): finer pixels than Euclid so the Einstein ring spans most of the frame and the small
# deflections of subhalos are resolved.
DEEP_SPACE = Camera(num_pix=150, delta_pix=0.03, psf_fwhm=0.08, exposure_time=2000.0,
                    num_exposures=4, magnitude_zero_point=25.9, sky_brightness=22.0,
                    read_noise=4.0)


def pixel_grid(camera: Camera) -> PixelGrid:
    """The camera's pixel grid, centred on the optical axis (East to the left, as on the sky)."""
    # lenstronomy 1.14 renamed the arguments to num_pix/delta_pix (older code passes numPix).
    _, _, ra_at_xy_0, dec_at_xy_0, _, _, pix2angle, _ = util.make_grid_with_coordtransform(
        num_pix=camera.num_pix, delta_pix=camera.delta_pix)
    return PixelGrid(nx=camera.num_pix, ny=camera.num_pix, transform_pix2angle=pix2angle,
                     ra_at_xy_0=ra_at_xy_0, dec_at_xy_0=dec_at_xy_0)


def build_image_model(camera: Camera, lens_profiles: list[str], source_profiles: list[str],
                      lens_light_profiles: list[str]) -> ImageModel:
    """A lenstronomy ``ImageModel`` for fixed lists of mass and light profiles.

    Building one costs milliseconds, but workers still build each once and reuse it for every
    image, since the profile lists are fixed per kind of image (or per subhalo count).

    Args:
        camera: The imaging set-up.
        lens_profiles: lenstronomy mass-profile names, e.g. ``["SIE", "SHEAR"]``.
        source_profiles: Light profiles of the lensed source plane.
        lens_light_profiles: Light profiles in the lens plane (not lensed).

    Returns:
        The image model; its ``source_surface_brightness`` and ``lens_surface_brightness`` give
        PSF-convolved, noise-free images in electrons per second per pixel.
    """
    psf = PSF(psf_type="GAUSSIAN", fwhm=camera.psf_fwhm, pixel_size=camera.delta_pix)
    return ImageModel(pixel_grid(camera), psf, lens_model_class=LensModel(lens_profiles),
                      source_model_class=LightModel(source_profiles),
                      lens_light_model_class=LightModel(lens_light_profiles),
                      kwargs_numerics={"supersampling_factor": 1})


class Photometry:
    """Magnitudes to lenstronomy amplitudes, and the noise of one image, for a camera.

    Args:
        camera: The imaging set-up.
    """

    def __init__(self, camera: Camera):
        self._band = SingleBand(
            pixel_scale=camera.delta_pix, exposure_time=camera.exposure_time,
            magnitude_zero_point=camera.magnitude_zero_point, read_noise=camera.read_noise,
            sky_brightness=camera.sky_brightness, seeing=camera.psf_fwhm,
            num_exposures=camera.num_exposures, psf_type="GAUSSIAN")
        # One light model per profile name, to normalise amplitudes by total flux.
        self._unit_models: dict[str, LightModel] = {}

    @property
    def background_sigma(self) -> float:
        """Standard deviation of the sky plus read-out noise per pixel, electrons per second."""
        return float(self._band.background_noise)

    def amplitude(self, profile: str, kwargs: dict, magnitude: float) -> float:
        """The lenstronomy ``amp`` that gives a light profile this total AB magnitude.

        Args:
            profile: lenstronomy light-profile name, e.g. ``"SERSIC_ELLIPSE"``.
            kwargs: The profile's shape parameters (no ``amp``).
            magnitude: Total apparent magnitude wanted.
        """
        model = self._unit_models.setdefault(profile, LightModel([profile]))
        flux_at_unit_amp = model.total_flux([kwargs], norm=True)[0]
        return float(self._band.magnitude2cps(magnitude) / flux_at_unit_amp)

    def add_noise(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The image plus one draw of Poisson (Gaussian approximation) and background noise.

        lenstronomy's ``image_util.add_poisson``/``add_background`` draw from the global
        ``np.random`` state, which would make an image depend on what the worker drew before;
        ``SingleBand.noise_for_model`` takes a seed, which is drawn here from the image's own
        generator so every image is reproducible on its own.
        """
        seed = int(rng.integers(2**32))
        return image + self._band.noise_for_model(np.clip(image, 0, None), seed=seed)

"""Embedded lens simulator: labelled image sets in the on-disk layouts of the real ones.

Two kinds, both rendered with lenstronomy (SIE + external shear, Sersic light, Gaussian PSF,
Poisson and background noise, random orientations throughout):

* ``lens_finding``: Euclid VIS cutouts in the Bologna lens-finding challenge layout
  (:mod:`trainable.simulate.lens_finding`);
* ``substructure``: no / sphere / vortex substructure in the DeepLense Common Task 1 layout
  (:mod:`trainable.simulate.substructure`).

The search driver calls :func:`simulate` when a space's data path is missing and the space names
a simulator; ``python -m trainable.simulate`` does the same from the command line.
"""

from trainable.simulate.runner import KINDS, simulate

__all__ = ["KINDS", "simulate"]

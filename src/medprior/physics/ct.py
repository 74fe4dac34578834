"""CT forward models: parallel- and fan-beam projectors with exact adjoints, HU units, low-dose noise.

The public face of :mod:`medprior.physics.ct_parallel`, :mod:`~medprior.physics.ct_fan`,
:mod:`~medprior.physics.ct_units` and the shared system matrix of
:mod:`~medprior.physics.ct_footprint` (which explains why we build our own projector: the adjoint
must be exact, and the papers' back-projector is neither the transpose nor scaled like it).

Example:
    >>> import torch
    >>> from medprior.physics.ct import ParallelBeamCT, hu_to_attenuation, sparse_view_angles
    >>> op = ParallelBeamCT((32, 32), sparse_view_angles(8), pixel_size_mm=0.5)
    >>> y = op.forward(hu_to_attenuation(torch.zeros(1, 32, 32)))  # water: line integrals
    >>> y.shape
    torch.Size([1, 8, 49])
"""

from __future__ import annotations

from medprior.physics.ct_fan import FanBeamCT
from medprior.physics.ct_parallel import ParallelBeamCT, limited_angle_angles, sparse_view_angles
from medprior.physics.ct_units import (MU_WATER_PER_MM, attenuation_to_hu, hu_to_attenuation,
                                       poisson_transmission_noise)

__all__ = ["MU_WATER_PER_MM", "FanBeamCT", "ParallelBeamCT", "attenuation_to_hu", "hu_to_attenuation",
           "limited_angle_angles", "poisson_transmission_noise", "sparse_view_angles"]

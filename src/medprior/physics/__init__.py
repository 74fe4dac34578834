"""Linear forward models with exact adjoints: CT (parallel and fan beam) and MRI (Cartesian, SENSE).

The names below are imported from their modules on first use (PEP 562): the operators need torch, and
the package also holds NumPy-only modules (:mod:`medprior.physics.image_grids`,
:mod:`medprior.physics.probes`, :mod:`medprior.physics.haze`) that the CLI reads while parsing,
without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_MODULE_OF = {
    "birdcage_sensitivities": "coils", "complex_gaussian_noise": "coils", "estimate_sensitivities": "coils",
    "MU_WATER_PER_MM": "ct", "FanBeamCT": "ct", "ParallelBeamCT": "ct", "attenuation_to_hu": "ct",
    "hu_to_attenuation": "ct", "limited_angle_angles": "ct", "poisson_transmission_noise": "ct",
    "sparse_view_angles": "ct",
    "FiniteDifference": "finite_difference",
    "acceleration": "masks", "gaussian_mask_1d": "masks", "poisson_disc_mask": "masks", "random_mask_1d": "masks",
    "uniform_mask_1d": "masks",
    "CartesianMRI": "mri", "CartesianMRI3D": "mri", "fftnc": "mri", "ifftnc": "mri",
    "ComposedOperator": "operator", "LinearOperator": "operator", "ScaledOperator": "operator",
    "adjoint_mismatch": "operator", "inner": "operator",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """One of :data:`__all__`, from its module."""
    if name in _MODULE_OF:
        return getattr(import_module(f"medprior.physics.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Linear forward models with exact adjoints: CT (parallel and fan beam) and MRI (Cartesian, SENSE)."""

from __future__ import annotations

from medprior.physics.coils import birdcage_sensitivities, complex_gaussian_noise, estimate_sensitivities
from medprior.physics.ct import (MU_WATER_PER_MM, FanBeamCT, ParallelBeamCT, attenuation_to_hu, hu_to_attenuation,
                                 limited_angle_angles, poisson_transmission_noise, sparse_view_angles)
from medprior.physics.finite_difference import FiniteDifference
from medprior.physics.masks import (acceleration, gaussian_mask_1d, poisson_disc_mask, random_mask_1d,
                                    uniform_mask_1d)
from medprior.physics.mri import CartesianMRI, CartesianMRI3D, fftnc, ifftnc
from medprior.physics.operator import ComposedOperator, LinearOperator, ScaledOperator, adjoint_mismatch, inner

__all__ = ["MU_WATER_PER_MM", "CartesianMRI", "CartesianMRI3D", "ComposedOperator", "FanBeamCT", "FiniteDifference",
           "LinearOperator", "ParallelBeamCT", "ScaledOperator", "acceleration", "adjoint_mismatch",
           "attenuation_to_hu", "birdcage_sensitivities", "complex_gaussian_noise", "estimate_sensitivities", "fftnc",
           "gaussian_mask_1d", "hu_to_attenuation", "ifftnc", "inner", "limited_angle_angles", "poisson_disc_mask",
           "poisson_transmission_noise", "random_mask_1d", "sparse_view_angles", "uniform_mask_1d"]

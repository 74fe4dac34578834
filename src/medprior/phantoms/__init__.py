"""Deterministic phantoms: CT in HU, BraTS-like brain MRI, head-and-neck PET/CT.

Every phantom is a pure function of its seed and grid, returns :class:`medprior.io.Volume` objects
with real geometry and units, and runs in seconds on a CPU.

>>> from medprior.phantoms import ct_body, brain_mri
>>> ct = ct_body(seed=0, shape=(64, 64, 32), spacing=(6.0, 6.0, 10.0))   # HU
>>> case = brain_mri(seed=0, shape=(64, 64, 40))                          # 4 contrasts + seg
"""

from __future__ import annotations

from medprior.phantoms.brain import BrainCase, brain_mri
from medprior.phantoms.ct import ct_body, ct_head, shepp_logan_3d
from medprior.phantoms.petct import PetCtCase, petct_head_neck

__all__ = ["BrainCase", "PetCtCase", "brain_mri", "ct_body", "ct_head", "petct_head_neck", "shepp_logan_3d"]

"""medprior: medical imaging with diffusion-model priors.

Subpackages (dependencies point down, see DESIGN.md): ``io``, ``phantoms``, ``challenges``
and ``errors`` at the bottom; the ``medprior`` command (``cli``) and the Snakemake rules on top.
"""

from __future__ import annotations

__version__ = "0.1.0"

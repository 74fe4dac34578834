"""Every task's methods, by name: :data:`RECON_METHODS`, :data:`DEHAZE_METHODS`, :data:`SEGMENT_METHODS`.

Each :class:`~medprior.registry.Method` names the function that runs it by its import path, so this
module loads without torch or MONAI: the CLI builds its choices and help from it, and the commands
that run no network (evaluate, figures, checks; most jobs of a workflow) start in about a second
instead of the several that importing MONAI costs. The functions live beside their task
(:mod:`medprior.tasks.recon_methods`, :mod:`medprior.tasks.dehaze`, :mod:`medprior.tasks.segment`).

``python -m medprior.methods recon`` (or ``dehaze``, ``segment``) prints a registry's README table.
"""

from __future__ import annotations

import sys

from medprior.registry import Method, Registry

_RECON = "medprior.tasks.recon_methods"
_TV_WEIGHTS = {"CT": {"ct_tv_lambda": "lam", "ct_tv_rho": "rho"}, "MR": {"mri_tv_lambda": "lam", "mri_tv_rho": "rho"}}


def _diffusion_recon(method: str, summary: str) -> Method:
    """A diffusion reconstruction method: the solver of the same name in :mod:`medprior.solvers.diffusion`,
    parameters in the schema's ``recon.diffusion.<method>`` with the MRI overrides of
    ``recon.diffusion.mri_overrides``."""
    return Method(method, "diffusion", ("CT", "MR"), f"medprior.solvers.diffusion:{method}",
                  f"recon.diffusion.{method}", overrides={"MR": f"recon.diffusion.mri_overrides.{method}"},
                  summary=summary)


RECON_METHODS = Registry("recon", [
    Method("fbp", "classical", ("CT",), f"{_RECON}:analytic", "recon.solver", uses=(),
           summary="filtered back-projection (ramp filter)"),
    Method("zerofill", "classical", ("MR",), f"{_RECON}:analytic", "recon.solver", uses=(),
           summary="zero-filled inverse FFT, coil-combined with the coil maps"),
    Method("cgsense", "classical", ("MR",), f"{_RECON}:cgsense", "recon.solver", uses=("cg_iterations",),
           summary="CG-SENSE: conjugate gradients on the normal equations"),
    Method("tv", "classical", ("CT", "MR"), f"{_RECON}:tv", "recon.solver",
           uses=("tv_iterations", "tv_cg_iterations", "ct_tv_lambda", "ct_tv_rho", "mri_tv_lambda", "mri_tv_rho"),
           rename=_TV_WEIGHTS, summary="3D anisotropic total variation by ADMM (CG inner solves)"),
    _diffusion_recon("dds", "DDS (Chung, Lee, Ye 2024): CG data consistency on the Tweedie estimate"),
    _diffusion_recon("mbir", "DiffusionMBIR (Chung et al. 2023): prior step, then z-TV ADMM"),
    _diffusion_recon("dps", "DPS (Chung et al. 2023): gradient of the residual through the network"),
    _diffusion_recon("reddiff", "RED-diff (Mardani et al. 2024): Adam on the image, denoiser regulariser"),
])

_DEHAZE = "medprior.tasks.dehaze"
DEHAZE_METHODS = Registry("dehaze", [
    Method("diffusion", "diffusion", ("US",), f"{_DEHAZE}:joint_diffusion", "dehaze.diffusion",
           summary="joint posterior sampling with a tissue and a haze prior (Stevens et al. 2024)"),
    Method("supervised", "learned", ("US",), f"{_DEHAZE}:supervised_network", "dehaze.supervised",
           summary="the tissue prior's network trained on the same pairs to map hazy to clean"),
    Method("bm3d", "classical", ("US",), f"{_DEHAZE}:bm3d", "dehaze.bm3d",
           summary="BM3D of the B-mode image (bm3d package)"),
    Method("nlm", "classical", ("US",), f"{_DEHAZE}:nlm", "dehaze.nlm",
           summary="non-local means of the B-mode image (scikit-image)"),
])

_SEGMENT = "medprior.tasks.segment"
SEGMENT_METHODS = Registry("segment", [
    Method("diffusion", "diffusion", ("PET/CT",), f"{_SEGMENT}:diffusion_ensemble", "segment.diffusion",
           summary="conditional 3D diffusion model of the label given PET and CT, ensemble of N samples "
                   "(Dong and Gong)"),
    Method("segresnet", "learned", ("PET/CT",), f"{_SEGMENT}:network_prediction", "segment.segresnet",
           summary="MONAI SegResNet, Dice + cross-entropy (the HECKTOR 2022 winner's family)"),
    Method("unet", "learned", ("PET/CT",), f"{_SEGMENT}:network_prediction", "segment.unet",
           summary="MONAI UNet, Dice + cross-entropy"),
    Method("threshold", "classical", ("PET/CT",), f"{_SEGMENT}:pet_threshold", "segment.threshold",
           summary="40 % of each region's SUVmax grown from automatic seeds, GTVp by the midline"),
])

REGISTRIES = {registry.task: registry for registry in (RECON_METHODS, DEHAZE_METHODS, SEGMENT_METHODS)}

if __name__ == "__main__":  # the README's method tables
    print(REGISTRIES[sys.argv[1]].markdown(), end="")

"""Receive-coil sensitivities (simulated birdcage, ESPIRiT estimation) and k-space noise.

Sensitivities ``S`` are complex ``(C, H, W)`` (or ``(C, D, H, W)``) torch tensors, dimensionless;
normalised maps satisfy ``sum_c |S_c|^2 = 1`` wherever the object is, so that the adjoint of
:class:`~medprior.physics.mri.CartesianMRI` is the SENSE-1 coil combination.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medprior.errors import InputError


def birdcage_sensitivities(shape: Sequence[int], n_coils: int, relative_radius: float = 1.5,
                           normalize: bool = True, coils_per_ring: int = 8,
                           dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """Simulated birdcage coil maps (the model of SigPy's ``birdcage_maps``).

    Coil ``c`` sits on a circle of radius ``relative_radius`` (in units of the half field of view)
    at angle ``theta_c = 2 pi c / n_ring``; its sensitivity at a point with in-plane offset
    ``(dx, dy)`` from the coil (``x`` along ``W``, ``y`` along ``H``, both normalised to ``[-1, 1)``
    over the field of view) is ``exp(i (atan2(dx, -dy) - theta_c)) / distance``, a Biot-Savart-like
    magnitude fall-off and a phase that turns with the angle. In 3D, coils come in rings of
    ``coils_per_ring`` stacked along ``D`` (ring ``k`` at ``z = k - (n_rings - 1) / 2`` in half-FOV
    units) and the distance is 3D.

    Args:
        shape: ``(H, W)`` or ``(D, H, W)``.
        n_coils: number of coils ``C >= 1``.
        relative_radius: coil circle radius / half FOV (> sqrt(2) keeps coils outside the image).
        normalize: divide by the root-sum-of-squares so that ``sum_c |S_c|^2 = 1`` everywhere.
        coils_per_ring: coils per ring (3D only; 2D uses one ring of ``n_coils``).
        dtype: complex64 or complex128.

    Returns:
        ``(C, *shape)`` complex tensor.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise InputError(None, f"shape must be (H, W) or (D, H, W), got {shape}")
    if n_coils < 1 or not relative_radius > 0:
        raise InputError(None, f"need n_coils >= 1 and relative_radius > 0, got {n_coils}, {relative_radius}")
    per_ring = n_coils if len(shape) == 2 else max(1, min(coils_per_ring, n_coils))
    n_rings = -(-n_coils // per_ring)
    c = np.arange(n_coils)[:, None, None, None]
    ring = c // per_ring
    theta = 2 * np.pi * (c % per_ring) / per_ring
    d, h, w = (1, *shape) if len(shape) == 2 else shape
    z = ((np.arange(d) - d / 2) / (d / 2))[None, :, None, None] if len(shape) == 3 else np.zeros((1, 1, 1, 1))
    y = ((np.arange(h) - h / 2) / (h / 2))[None, None, :, None]
    x = ((np.arange(w) - w / 2) / (w / 2))[None, None, None, :]
    dx = x - relative_radius * np.cos(theta)
    dy = y - relative_radius * np.sin(theta)
    dz = z - (ring - (n_rings - 1) / 2) if len(shape) == 3 else 0.0
    distance = np.sqrt(dx ** 2 + dy ** 2 + dz ** 2)
    maps = np.exp(1j * (np.arctan2(dx, -dy) - theta - 2 * np.pi * ring / per_ring)) / np.maximum(distance, 1e-6)
    if normalize:
        maps = maps / np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True))
    maps = maps.reshape(n_coils, *shape)
    return torch.from_numpy(maps).to(dtype)


def _centred_block(kspace: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = kspace.shape[-2:]
    return kspace[..., h // 2 - size[0] // 2:h // 2 - size[0] // 2 + size[0],
                  w // 2 - size[1] // 2:w // 2 - size[1] // 2 + size[1]]


def estimate_sensitivities(kspace: np.ndarray | torch.Tensor, calibration_size: int | Sequence[int] = 24,
                           kernel_size: int = 6, threshold: float = 0.02, crop: float = 0.8) -> torch.Tensor:
    """ESPIRiT coil maps from the fully sampled k-space centre (Uecker et al., MRM 71:990, 2014).

    1. Calibration matrix: every ``kernel_size^2`` patch of the ``calibration_size^2`` ACS block,
       all coils, one row each (``(n_patches, C k^2)``).
    2. SVD; the rows of ``V^H`` whose singular values exceed ``threshold * s_max`` span the signal
       subspace; each is a k-space kernel ``(C, k, k)``.
    3. Kernel images: each kernel zero-padded to ``(H, W)`` and inverse FFT'd (centred, orthonormal);
       per pixel ``G(r) = (H W / k^2) sum_kernels a(r) a(r)^H`` (``C x C``, Hermitian).
    4. The maps are the leading eigenvector of ``G(r)``, phase referenced to coil 0, and set to zero
       where its eigenvalue is below ``crop`` (outside the object the eigenvalue drops from ~1).
       The default 0.8 is BART's (``ecalib -c``). The eigenvalue falls off over the calibration's
       resolution, so a higher crop eats into the object's edge: with 0.95, brain phantoms at
       128 x 128 through the 10 central lines of x8 sampling kept 0.2-0.9 % of their energy outside
       the maps, which no reconstruction from them can see (TV at x8 lost 2.8 dB by it on the quality
       benchmark's 8 volumes, 2026-12-01); with 0.8, none.

    The maps are unit-norm across coils (``sum_c |S_c|^2 = 1``) where kept, so they match
    normalised :func:`birdcage_sensitivities` up to a common per-pixel phase. Torch throughout, in
    complex128, on the k-space's device (a GPU when the data are there). Peak memory is about
    ``16 H W C^2`` bytes (the per-pixel ``G``): 1 GiB at 256 x 256 with 32 coils.

    Args:
        kspace: ``(C, H, W)`` complex k-space, DC at ``(H // 2, W // 2)``, with a fully sampled
            centre of at least ``calibration_size`` (zeros elsewhere are fine).
        calibration_size: side(s) of the ACS block, int or ``(cy, cz)``.
        kernel_size: ESPIRiT kernel width (pixels of k-space).
        threshold: relative singular-value threshold for the signal subspace.
        crop: eigenvalue threshold for the support (0 keeps every pixel); the data say nothing
            about the pixels it drops (:meth:`~medprior.physics.mri.CartesianMRI.unseen`).

    Returns:
        ``(C, H, W)`` complex tensor, complex64 (complex128 for complex128 input), on the k-space's
        device (CPU for a numpy array).

    Raises:
        InputError: k-space of another shape, an all-zero calibration region, or one too small for
            the kernel (no pixel keeps its eigenvalue above ``crop``: the maps would be all zero and
            every reconstruction from them the zero image).
    """
    data = kspace.detach() if isinstance(kspace, torch.Tensor) else torch.from_numpy(np.asarray(kspace))
    if data.ndim != 3:
        raise InputError(None, f"kspace must be (C, H, W), got shape {tuple(data.shape)}")
    n_coils, h, w = data.shape
    size = (calibration_size, calibration_size) if np.isscalar(calibration_size) else tuple(calibration_size)
    size = (int(size[0]), int(size[1]))
    if not (kernel_size <= min(size) and size[0] <= h and size[1] <= w):
        raise InputError(None, f"need kernel_size {kernel_size} <= calibration {size} <= image {(h, w)}")
    calib = _centred_block(data.to(torch.complex128), size)
    patches = calib.unfold(1, kernel_size, 1).unfold(2, kernel_size, 1)  # (C, ny, nz, k, k)
    matrix = patches.permute(1, 2, 0, 3, 4).reshape(-1, n_coils * kernel_size ** 2)
    singular, vh = torch.linalg.svd(matrix, full_matrices=False)[1:]
    if singular[0] == 0:
        raise InputError(None, "the calibration region of the k-space is all zeros")
    kernels = vh[singular > threshold * singular[0]].reshape(-1, n_coils, kernel_size, kernel_size)
    padded = torch.zeros((kernels.shape[0], n_coils, h, w), dtype=torch.complex128, device=data.device)
    y0, z0 = h // 2 - kernel_size // 2, w // 2 - kernel_size // 2
    padded[..., y0:y0 + kernel_size, z0:z0 + kernel_size] = kernels
    images = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(padded, dim=(-2, -1)), norm="ortho"),
                                dim=(-2, -1))
    a = images.permute(2, 3, 1, 0).contiguous()  # (H, W, C, kernels)
    gram = (a @ a.conj().transpose(-1, -2)) * (h * w / kernel_size ** 2)  # sum over kernels of a a^H
    values, vectors = torch.linalg.eigh(gram)
    maps = vectors[..., -1]
    maps = maps * torch.exp(-1j * torch.angle(maps[..., :1]))
    kept = values[..., -1:] >= crop
    if crop > 0 and not bool(kept.any()):
        raise InputError(None, f"ESPIRiT found no pixel where the coils' sensitivities agree (every eigenvalue below "
                               f"{crop:g}): a calibration region of {size[0]} x {size[1]} lines is too small for its "
                               f"{kernel_size} x {kernel_size} kernel; measure more fully sampled central lines or "
                               "give coil maps")
    maps = maps * kept
    out = maps.permute(2, 0, 1).contiguous()
    return out if data.dtype == torch.complex128 else out.to(torch.complex64)


def complex_gaussian_noise(kspace: torch.Tensor, snr_db: float, generator: torch.Generator | None = None,
                           mask: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """Add circular complex Gaussian noise to the sampled k-space positions at a given SNR.

    Definition: ``SNR_dB = 10 log10(P_signal / sigma^2)`` with ``P_signal`` the mean of ``|y|^2``
    over the sampled positions (all coils, all batch items) and ``sigma^2 = E|n|^2`` the complex noise
    variance (``sigma^2 / 2`` in each of the real and imaginary parts). Unsampled positions stay zero.

    Args:
        kspace: ``(..., H, W)`` complex k-space (e.g. ``CartesianMRI.forward`` output).
        snr_db: SNR in dB as defined above.
        generator: torch generator on the k-space's device, for reproducible noise.
        mask: binary mask broadcastable to ``kspace`` (``True`` = sampled); default: the nonzero
            positions of ``kspace`` (what the operators produce).

    Returns:
        Noisy k-space, same shape, dtype and device.
    """
    if not kspace.is_complex():
        raise InputError(None, f"kspace must be complex, got {kspace.dtype}")
    if mask is None:
        sampled = kspace != 0
    else:
        mask_t = torch.from_numpy(np.asarray(mask)) if isinstance(mask, np.ndarray) else mask
        sampled = torch.broadcast_to(mask_t.to(device=kspace.device, dtype=torch.bool), kspace.shape)
    count = int(sampled.sum())
    if count == 0:
        raise InputError(None, "no sampled k-space positions to add noise to")
    power = float((kspace.abs() ** 2 * sampled).sum()) / count
    sigma = (power / 10 ** (snr_db / 10)) ** 0.5
    noise = torch.randn(kspace.shape, generator=generator, dtype=kspace.dtype, device=kspace.device)
    return kspace + sigma * noise * sampled

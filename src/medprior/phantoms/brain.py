"""A BraTS-like brain MRI phantom: four contrasts and a glioma segmentation from the MNI152 templates.

Each case warps nilearn's MNI152 2009 tissue maps (see :mod:`medprior.phantoms.mni_templates`) by
a random global affine (rotation up to 4 degrees, scale +-5 % per axis) and a smooth displacement
field (1-2.5 mm rms per axis), grows a glioma in the white matter of one hemisphere (necrotic
core, enhancing rim, edema spreading along white matter, mild mass effect), and renders t1n, t1c,
t2w and t2f (FLAIR) as partial-volume mixtures of tissue intensities with the T1 template's fine
detail, a smooth bias field (+-10-20 %) and Rician noise (SNR 20-40 in white matter). Like the
BraTS data, images are skull-stripped: exactly 0 outside the brain mask, the same mask in every
contrast. The same seed gives the same anatomy and tumour at any grid ``shape`` (on grids coarser
than 4.8 mm the tumour radius is raised to 2.5 voxels); the noise depends on the grid.

Geometry: the field of view is always the BraTS / SRI24-like 240 x 240 x 155 mm box, sampled by
``shape`` voxels (spacing ``240/I, 240/J, 155/K`` mm). Like BraTS NIfTIs the grid is LPS-stored
(nibabel orientation ``"LPS"``: ``i`` runs right to left, ``j`` anterior to posterior, ``k``
inferior to superior), so the affine is ``diag(-sx, -sy, sz)``; world coordinates are RAS+ mm in
an MNI-like frame whose grid centre :data:`GRID_CENTER_MM` sits at the brain's centre.

>>> case = brain_mri(seed=0, shape=(64, 64, 40))
>>> case.contrasts["t1c"].data.shape, case.seg.orientation
((64, 64, 40), 'LPS')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medprior.checks import require_seed
from medprior.errors import ParameterError
from medprior.io.volume import Volume
from medprior.phantoms.mni_templates import MNITissues, mni152_tissues

BRATS_SHAPE: tuple[int, int, int] = (240, 240, 155)
BRATS_SPACING: tuple[float, float, float] = (1.0, 1.0, 1.0)
CONTRASTS: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")
FOV_MM: tuple[float, float, float] = (240.0, 240.0, 155.0)
GRID_CENTER_MM: tuple[float, float, float] = (0.0, -17.0, 9.5)
"""World position (RAS+ mm, MNI frame) of the grid centre: the brain's centre, 4.5 mm raised so the
vertex stays in the 155 mm field of view and the lower brainstem is cut, as in BraTS."""

# Tissue intensities (a.u.) per contrast: csf, gm, wm, necrosis, edema, enhancing tumour.
_INTENSITY: dict[str, tuple[float, float, float, float, float, float]] = {
    "t1n": (300.0, 560.0, 800.0, 330.0, 620.0, 600.0),
    "t1c": (300.0, 580.0, 810.0, 330.0, 640.0, 1200.0),
    "t2w": (1000.0, 620.0, 460.0, 920.0, 950.0, 720.0),
    "t2f": (110.0, 640.0, 480.0, 420.0, 980.0, 760.0),
}
# Exponent of the T1 template's residual detail per contrast (deep grey nuclei, cortex texture).
_DETAIL_GAMMA = {"t1n": 1.0, "t1c": 1.0, "t2w": -0.7, "t2f": -0.5}
_EDEMA_WEIGHT = 0.7  # edema signal = 0.7 * edema intensity + 0.3 * underlying tissue
_LABEL_NCR, _LABEL_ED, _LABEL_ET = 1, 2, 3
_MIN_SHAPE = (48, 48, 30)  # coarser grids (> 5 mm voxels) cannot hold a rim around the necrosis


@dataclass(frozen=True, eq=False)
class BrainCase:
    """One synthetic BraTS case.

    Args:
        contrasts: ``{"t1n", "t1c", "t2w", "t2f"}`` -> :class:`Volume` of modality ``"MR"``,
            ``(I, J, K)`` float32, non-negative a.u. (white matter about 460-810), 0 outside the brain.
        seg: :class:`Volume` of modality ``"SEG"`` on the same grid, values 0 (background and
            healthy tissue), 1 necrosis (NCR), 2 edema (ED), 3 enhancing tumour (ET).
        tissues: ``{"csf", "gm", "wm"}`` -> ``(I, J, K)`` float32 probabilities of the healthy
            (warped, tumour-displaced) anatomy under the tumour; they sum to 1 inside the brain
            mask and are 0 outside it.
    """

    contrasts: dict[str, Volume]
    seg: Volume
    tissues: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def brain_mask(self) -> np.ndarray:
        """``(I, J, K)`` bool mask of the skull-stripped brain (nonzero voxels of every contrast)."""
        return self.contrasts[CONTRASTS[0]].data > 0


def brats_affine(shape: tuple[int, int, int] = BRATS_SHAPE) -> np.ndarray:
    """``(4, 4)`` LPS-stored voxel-to-world (RAS+ mm) matrix of the 240 x 240 x 155 mm grid."""
    spacing = np.asarray(FOV_MM) / np.asarray(shape, dtype=np.float64)
    diagonal = spacing * np.array([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = np.diag(diagonal)
    affine[:3, 3] = np.asarray(GRID_CENTER_MM) - diagonal * (np.asarray(shape) - 1) / 2.0
    return affine


def brain_mri(seed: int, shape: tuple[int, int, int] = BRATS_SHAPE) -> BrainCase:
    """Simulate one skull-stripped BraTS-like case (t1n, t1c, t2w, t2f and the tumour labels).

    Args:
        seed: any non-negative integer; the same seed gives the same case.
        shape: grid ``(I, J, K)`` covering the fixed 240 x 240 x 155 mm field of view; each at
            least (48, 48, 30). Full size (240, 240, 155) takes about 4 s on 2 CPU cores (plus about
            5 s once per process to load the templates); (64, 64, 40) about 0.2 s.

    Returns:
        a :class:`BrainCase`; metadata of each contrast: ``contrast``, ``units`` ("a.u."),
        ``phantom`` ("brain"), ``seed``.
    """
    shape = _checked_shape(shape)
    seed = require_seed("seed", seed)
    mni = mni152_tissues()
    anatomy_rng, tumour_rng, contrast_rng = (np.random.default_rng(s)
                                             for s in np.random.SeedSequence(int(seed)).spawn(3))
    affine = brats_affine(shape)
    axes = [affine[a, 3] + affine[a, a] * np.arange(n) for a, n in enumerate(shape)]
    warp = _Warp.random(anatomy_rng, mni.brain_center)
    coarsest = float(np.max(np.abs(np.diag(affine)[:3])))
    tumour = _Tumour.random(tumour_rng, mni, warp, spacing=coarsest)

    index, tissue, t1 = _sample_tissues(mni, warp, tumour, axes, shape)
    probabilities = {}
    for name, values in zip(("csf", "gm", "wm"), tissue):
        full = np.zeros(int(np.prod(shape)), dtype=np.float32)
        full[index] = values
        probabilities[name] = full.reshape(shape)
    brain = np.zeros(int(np.prod(shape)), dtype=bool)
    brain[index] = True
    labels, heterogeneity, edema = tumour.labels(affine, probabilities["wm"], brain.reshape(shape))
    seg_flat, het_flat, edema_flat = (v.reshape(-1)[index] for v in (labels, heterogeneity, edema))

    metadata = {"units": "a.u.", "phantom": "brain", "seed": int(seed)}
    points = [axes[a][np.unravel_index(index, shape)[a]] for a in range(3)]
    contrasts = {}
    detail = np.clip(t1 / np.maximum(mni.t1_fit @ tissue, 1e-3), 0.8, 1.25)
    for name in CONTRASTS:
        signal = _render(name, tissue, detail, seg_flat, het_flat, edema_flat, contrast_rng)
        signal *= _bias_field(contrast_rng, points, warp.center)
        snr = contrast_rng.uniform(20.0, 40.0)
        sigma = np.float32(_INTENSITY[name][2] / snr)
        noisy = np.hypot(signal + sigma * contrast_rng.standard_normal(signal.size, dtype=np.float32),
                         sigma * contrast_rng.standard_normal(signal.size, dtype=np.float32))
        full = np.zeros(int(np.prod(shape)), dtype=np.float32)
        full[index] = np.maximum(noisy, np.float32(1e-3))  # exactly 0 only outside the brain
        contrasts[name] = Volume(full.reshape(shape), affine, "MR", {"contrast": name, **metadata})
    seg = Volume(labels.astype(np.float32), affine, "SEG", {"contrast": "seg", **metadata})
    return BrainCase(contrasts=contrasts, seg=seg, tissues=probabilities)


def _checked_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    values = tuple(int(n) for n in shape)
    if len(values) != 3 or any(n != m for n, m in zip(values, shape)) or \
            any(n < lo for n, lo in zip(values, _MIN_SHAPE)):
        raise ParameterError("shape", f"must be three integers of at least {_MIN_SHAPE}, got {shape!r}")
    return values  # type: ignore[return-value]


def _render(name: str, tissue: np.ndarray, detail: np.ndarray, seg: np.ndarray, het: np.ndarray,
            edema_weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise-free signal (a.u.) at the ``N`` brain voxels, ``(N,)`` float32.

    Tissue mixture ``tissue`` ``(3, N)`` times the T1 template's detail ``(N,)``, blended with the
    edema signal by ``edema_weight`` ``(N,)`` (0..1, soft-edged), then the tumour core labels.
    """
    values = np.asarray(_INTENSITY[name]) * rng.uniform(0.97, 1.03, size=6)
    csf, gm, wm, ncr, edema, et = values.astype(np.float32)
    signal = csf * tissue[0] + gm * tissue[1] + wm * tissue[2]
    signal *= detail ** np.float32(_DETAIL_GAMMA[name])
    blend = np.float32(_EDEMA_WEIGHT) * edema_weight
    signal = (1 - blend) * signal + blend * edema * het
    signal[seg == _LABEL_NCR] = ncr * het[seg == _LABEL_NCR]
    signal[seg == _LABEL_ET] = et * het[seg == _LABEL_ET]
    return signal.astype(np.float32)


def _bias_field(rng: np.random.Generator, points: list[np.ndarray], center: np.ndarray) -> np.ndarray:
    """Smooth multiplicative field ``exp(quadratic polynomial)``, peak deviation 10-20 %."""
    u = [(p - c) / 100.0 for p, c in zip(points, center)]
    terms = [u[0], u[1], u[2], u[0] * u[1], u[0] * u[2], u[1] * u[2], u[0] ** 2, u[1] ** 2, u[2] ** 2]
    log_field = sum(c * t for c, t in zip(rng.standard_normal(len(terms)), terms))
    log_field = log_field - log_field.mean()
    peak = np.log1p(rng.uniform(0.10, 0.20))
    return np.exp(log_field * (peak / max(np.abs(log_field).max(), 1e-6))).astype(np.float32)


def _sample_tissues(mni: MNITissues, warp: _Warp, tumour: _Tumour, axes: list[np.ndarray],
                    shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp the MNI maps onto the grid.

    Returns the flat indices of the brain voxels ``(N,)``, their tissue probabilities
    ``(3, N)`` (csf, gm, wm; summing to 1) and the T1 template values ``(N,)``.
    """
    to_voxel = np.linalg.inv(mni.affine)

    def mni_voxels(flat: np.ndarray) -> np.ndarray:
        p = tumour.push(warp.to_mni(axes, np.unravel_index(flat, shape)))
        return to_voxel[:3, :3] @ p + to_voxel[:3, 3:]

    def sample(volume: np.ndarray, voxels: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(volume, voxels, order=1, mode="constant", cval=0.0,
                                       prefilter=False, output=np.float32)

    stride = 4  # coarse pass: which voxels can be in the brain at all
    coarse_shape = tuple(len(range(0, n, stride)) for n in shape)
    coarse_ijk = np.indices(coarse_shape).reshape(3, -1) * stride
    coarse_flat = np.ravel_multi_index(tuple(coarse_ijk), shape)
    coarse = sample(mni.brain, mni_voxels(coarse_flat)).reshape(coarse_shape) > 0
    coarse = ndimage.binary_dilation(coarse, iterations=2)
    candidate = np.flatnonzero(coarse[np.ix_(*(np.arange(n) // stride for n in shape))])
    voxels = mni_voxels(candidate)
    inside = sample(mni.brain, voxels) >= 0.5
    index, voxels = candidate[inside], voxels[:, inside]
    gm, wm, t1 = (sample(v, voxels) for v in (mni.gm, mni.wm, mni.t1))
    tissue = np.stack([np.clip(1.0 - gm - wm, 0.0, 1.0), gm, wm])
    tissue /= np.maximum(tissue.sum(axis=0), 1e-6)
    return index, tissue.astype(np.float32), t1


class _Warp:
    """Subject (grid world, mm) -> MNI mm: ``p = c + M (x - c) + u(x)``, ``u`` a smooth field."""

    def __init__(self, center: np.ndarray, matrix: np.ndarray, waves: np.ndarray,
                 phases: np.ndarray, amplitudes: np.ndarray) -> None:
        self.center, self.matrix = center, matrix
        self.waves, self.phases, self.amplitudes = waves, phases, amplitudes  # (3, M, 3) (3, M, 3) (3, M)

    @classmethod
    def random(cls, rng: np.random.Generator, center: np.ndarray, terms: int = 4) -> _Warp:
        angles = np.deg2rad(rng.uniform(-4.0, 4.0, size=3))
        rotation = np.eye(3)
        for axis, angle in enumerate(angles):
            a, b = [i for i in range(3) if i != axis]
            step = np.eye(3)
            step[a, a] = step[b, b] = np.cos(angle)
            step[a, b], step[b, a] = -np.sin(angle), np.sin(angle)
            rotation = step @ rotation
        matrix = rotation @ np.diag(1.0 / rng.uniform(0.95, 1.05, size=3))
        wavelengths = rng.uniform(60.0, 180.0, size=(3, terms, 3))
        waves = 2 * np.pi / wavelengths * rng.choice([-1.0, 1.0], size=(3, terms, 3))
        phases = rng.uniform(0.0, 2 * np.pi, size=(3, terms, 3))
        raw = rng.standard_normal((3, terms))
        rms = rng.uniform(1.0, 2.5, size=(3, 1))  # mm per component; a product of 3 cosines has rms 0.354
        amplitudes = raw / np.linalg.norm(raw, axis=1, keepdims=True) * rms / 0.354
        return cls(np.asarray(center, dtype=np.float64), matrix, waves, phases, amplitudes)

    def displacement(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``u`` in mm, ``(3, ...)``, at points ``x, y, z`` (1D axes broadcast by the caller)."""
        rel = (x - self.center[0], y - self.center[1], z - self.center[2])
        out = []
        for c in range(3):
            total = 0.0
            for m in range(self.amplitudes.shape[1]):
                term = self.amplitudes[c, m]
                for a in range(3):
                    term = term * np.cos(self.waves[c, m, a] * rel[a] + self.phases[c, m, a])
                total = total + term
            out.append(total)
        return np.stack(out)

    def to_mni(self, axes: list[np.ndarray], ijk: tuple[np.ndarray, ...]) -> np.ndarray:
        """MNI positions ``(3, N)`` mm of grid voxels ``ijk`` (three ``(N,)`` index arrays).

        ``axes`` holds the world coordinate of each grid line (the grid is axis-aligned), so the
        separable displacement costs one gather per factor.
        """
        rel = np.stack([axes[a][ijk[a]] - self.center[a] for a in range(3)])
        out = self.center[:, None] + self.matrix @ rel
        for c in range(3):
            for m in range(self.amplitudes.shape[1]):
                term = self.amplitudes[c, m] * np.cos(
                    self.waves[c, m, 0] * (axes[0] - self.center[0]) + self.phases[c, m, 0])[ijk[0]]
                for a in (1, 2):
                    factor = np.cos(self.waves[c, m, a] * (axes[a] - self.center[a]) + self.phases[c, m, a])
                    term *= factor[ijk[a]]
                out[c] += term
        return out

    def from_mni(self, p: np.ndarray, iterations: int = 20) -> np.ndarray:
        """Subject position ``(3,)`` mm of one MNI point ``p`` (fixed-point inversion)."""
        inverse = np.linalg.inv(self.matrix)
        x = np.array(p, dtype=np.float64)
        for _ in range(iterations):
            u = self.displacement(*x)
            x = self.center + inverse @ (p - self.center - u)
        return x


class _Tumour:
    """A glioma in subject space: irregular core (radius ``r`` mm), necrosis, rim, WM edema."""

    def __init__(self, mni_center: np.ndarray, center: np.ndarray, side: float, radius: float,
                 necrosis: float, edema_radius: float, waves: np.ndarray, phases: np.ndarray,
                 amplitudes: np.ndarray, push: float) -> None:
        self.mni_center, self.center, self.side = mni_center, center, side
        self.radius, self.necrosis = radius, necrosis
        self.edema_radius, self.push_strength = edema_radius, push
        self.waves, self.phases, self.amplitudes = waves, phases, amplitudes  # (4, M, 3) (4, M) (4, M)

    @classmethod
    def random(cls, rng: np.random.Generator, mni: MNITissues, warp: _Warp, spacing: float,
               terms: int = 16) -> _Tumour:
        side = float(rng.choice([-1.0, 1.0]))  # +1: right hemisphere (RAS x > 0)
        radius = max(rng.uniform(12.0, 22.0), 2.5 * spacing)
        margin = 1.3 * radius + 6.0  # the core reaches at most 1.3 r from its centre
        x, y, z = (np.asarray(mni.affine[a, a] * np.arange(n) + mni.affine[a, 3])
                   for a, n in enumerate(mni.wm.shape))
        ok = (mni.wm > 0.9) & (mni.depth >= margin) & (side * x[:, None, None] >= margin)
        ok &= (z[None, None, :] >= -5.0) & (y[None, :, None] >= -85.0)  # supratentorial
        candidates = np.argwhere(ok)
        if candidates.size == 0:  # very large tumour on a coarse grid: relax the depth
            candidates = np.argwhere((mni.wm > 0.9) & (side * x[:, None, None] >= margin))
        voxel = candidates[rng.integers(len(candidates))]
        mni_center = (mni.affine @ np.append(voxel, 1.0))[:3]
        wavelengths = rng.uniform([[15.0], [12.0], [15.0], [8.0]], [[40.0], [30.0], [40.0], [25.0]],
                                  size=(4, terms))
        directions = rng.standard_normal((4, terms, 3))
        directions /= np.linalg.norm(directions, axis=2, keepdims=True)
        waves = directions * (2 * np.pi / wavelengths)[..., None]
        phases = rng.uniform(0.0, 2 * np.pi, size=(4, terms))
        # rms of each field: core shape, necrosis shape, edema fingers, intensity heterogeneity
        rms = np.array([[0.16], [0.15], [0.22], [0.06]])
        amplitudes = rng.standard_normal((4, terms))
        amplitudes *= rms / np.linalg.norm(amplitudes, axis=1, keepdims=True) * np.sqrt(2.0)
        necrosis, edema_radius = rng.uniform(0.5, 0.8), radius + rng.uniform(6.0, 16.0)
        return cls(mni_center, warp.from_mni(mni_center), side, radius, necrosis, edema_radius,
                   waves, phases, amplitudes, push=rng.uniform(0.15, 0.35))

    def push(self, p: np.ndarray) -> np.ndarray:
        """Mass effect: MNI positions ``(3, N)`` mm the healthy tissue at MNI ``p`` ``(3, N)`` came
        from (a radial, monotone push away from the tumour centre)."""
        rel = p - self.mni_center[:, None]
        width2 = 2.0 * (self.radius + 5.0) ** 2
        factor = 1.0 - self.push_strength * np.exp(-(rel ** 2).sum(axis=0) / width2)
        return self.mni_center[:, None] + rel * factor

    def _field(self, which: int, rel: np.ndarray) -> np.ndarray:
        phase = np.tensordot(self.waves[which], rel, axes=(1, 0))  # (M, ...)
        return np.tensordot(self.amplitudes[which], np.cos(phase + self.phases[which][
            (...,) + (None,) * (rel.ndim - 1)]), axes=(0, 0))

    def labels(self, affine: np.ndarray, wm: np.ndarray,
               brain: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BraTS labels, intensity heterogeneity and soft edema weight on the grid.

        Returns ``(I, J, K)`` uint8 labels, ``(I, J, K)`` float32 heterogeneity (about 1) and
        ``(I, J, K)`` float32 edema weight (the whole tumour's indicator blurred by 1 mm).

        Args:
            affine: ``(4, 4)`` grid affine (axis-aligned); wm: ``(I, J, K)`` white-matter
                probability; brain: ``(I, J, K)`` bool brain mask.
        """
        shape = wm.shape
        labels = np.zeros(shape, dtype=np.uint8)
        heterogeneity = np.ones(shape, dtype=np.float32)
        edema_weight = np.zeros(shape, dtype=np.float32)
        reach = self.edema_radius * 1.4 + 10.0
        center = (np.linalg.inv(affine) @ np.append(self.center, 1.0))[:3]
        spacing = np.abs(np.diag(affine)[:3])
        box = tuple(slice(int(np.clip(np.floor(c - reach / s), 0, n)),
                          int(np.clip(np.ceil(c + reach / s) + 1, 0, n)))
                    for c, s, n in zip(center, spacing, shape))
        ijk = np.meshgrid(*(np.arange(b.start, b.stop) for b in box), indexing="ij")
        x, y, z = (affine[a, a] * ijk[a] + affine[a, 3] for a in range(3))
        rel = np.stack([x - self.center[0], y - self.center[1], z - self.center[2]])
        distance = np.sqrt((rel ** 2).sum(axis=0))
        brain = brain[box]
        hemisphere = self.side * x >= 1.0
        shape_field = np.clip(self._field(0, rel), -0.3, 0.3)
        core = (distance < self.radius * (1.0 + shape_field)) & brain & hemisphere
        interior = ndimage.binary_erosion(core, structure=np.ones((3, 3, 3), bool))
        necrosis = interior & (distance < self.necrosis * self.radius * (1.0 + self._field(1, rel)))
        if not necrosis.any() and interior.any():  # coarse grids: keep at least the deepest voxel
            depth = ndimage.distance_transform_edt(core)
            necrosis = depth == depth[interior].max()
            necrosis &= interior
        fingers = np.clip(self._field(2, rel), -0.6, 0.35)  # stays inside the box
        edema = distance < self.edema_radius * (1.0 + fingers)
        edema &= (wm[box] > 0.25) | (distance < self.radius + 4.0)  # spreads along white matter
        edema |= ndimage.binary_dilation(core, iterations=1)
        edema &= brain & hemisphere
        components, _ = ndimage.label(edema | core)
        keep = np.unique(components[core])
        edema &= np.isin(components, keep[keep > 0])
        out = np.zeros(core.shape, dtype=np.uint8)
        out[edema] = _LABEL_ED
        out[core] = _LABEL_ET
        out[necrosis] = _LABEL_NCR
        labels[box] = out
        heterogeneity[box] = 1.0 + self._field(3, rel).astype(np.float32)
        edema_weight[box] = ndimage.gaussian_filter((out > 0).astype(np.float32), 1.0 / spacing)
        return labels, heterogeneity, edema_weight

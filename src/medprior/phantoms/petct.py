"""Deterministic head-and-neck FDG PET/CT phantom with tumour labels, HECKTOR-style.

The anatomy is a set of analytic shapes evaluated in world space, so the CT (HU), the label map
(on the CT grid) and the PET (SUV, on its own coarser, shifted grid) agree in world millimetres:
resampling through the affines is needed to overlay them, exactly as with real HECKTOR cases.
The PET is the activity averaged over each PET voxel (2x2x2 sub-samples), blurred by a Gaussian
PSF and given Poisson counting noise.

So that no SUV threshold solves the task, each case draws (:class:`_Physiology`): the uptake of the
tonsils, salivary glands, brain and muscles (tonsils up to SUV 7, as hot as a weak tumour), 0-4
brown-fat foci in the neck fat (SUV 2-8, fat density on CT) and 0-2 active muscles (SUV 2-5,
muscle density), a primary tumour of 1.5-35 mL at SUV 3.5-15 (some as cold as the tonsils),
0-3 nodes of 4-11 mm radius at SUV 2.5-10, half of them against the jugular vein, and the PET's
resolution (PSF 4-7 mm FWHM) and noise (15-60 counts per SUV per voxel). Tumours and nodes are
10-30 HU denser than muscle on CT, brown fat is fat: only CT and PET together tell them apart.
Not modelled: tumour necrosis, metal artefacts, patient motion between CT and PET, respiratory
blur, and lesions outside the oropharynx and levels II-III.

>>> from medprior.phantoms.petct import petct_head_neck
>>> case = petct_head_neck(seed=0, ct_shape=(64, 64, 48), ct_spacing=(2.0, 2.0, 4.0),
...                        pet_shape=(32, 32, 24), pet_spacing=(4.4, 4.4, 8.0))
>>> sorted(set(case.label.data.ravel().tolist()))[:2]
[0.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from medprior.io.volume import Volume
from medprior.phantoms.ct import _finish_ct
from medprior.checks import require_seed
from medprior.phantoms.shapes import Grid, check_grid, ellipsoid_radius, lps_affine, smooth_random_field

PETCT_CT_SHAPE = (128, 128, 96)
PETCT_CT_SPACING = (1.0, 1.0, 2.0)
PETCT_PET_SHAPE = (64, 64, 48)
PETCT_PET_SPACING = (2.2, 2.2, 4.0)
PET_CENTRE_OFFSET_MM = (1.0, -1.0, 2.0)
PET_PSF_FWHM_MM = (4.0, 7.0)       # range drawn per case
PET_COUNTS_PER_SUV = (15.0, 60.0)  # range drawn per case (log-uniform)

# tissue classes: (name, HU, texture HU, SUV)
_TISSUES = [("air", -1000.0, 0.0, 0.0), ("fat", -100.0, 8.0, 0.35), ("muscle", 45.0, 10.0, 0.9),
            ("cortical bone", 1100.0, 80.0, 0.5), ("marrow", 300.0, 60.0, 1.3), ("csf", 10.0, 3.0, 0.3),
            ("salivary gland", 10.0, 8.0, 2.2), ("brain grey", 36.0, 3.0, 8.0), ("brain white", 28.0, 3.0, 3.5),
            ("blood", 42.0, 5.0, 1.6), ("thyroid", 90.0, 8.0, 1.5), ("lymphoid", 45.0, 8.0, 2.8),
            ("disc", 80.0, 8.0, 0.8), ("tumour", 0.0, 6.0, 0.0)]
_DRAWN_SUV = {"lymphoid": (2.0, 7.0), "salivary gland": (1.5, 4.0), "brain grey": (6.0, 11.0), "muscle": (0.7, 1.5)}
_HU = np.array([t[1] for t in _TISSUES], np.float32)
_AMP = np.array([t[2] for t in _TISSUES], np.float32)
_SUV = np.array([t[3] for t in _TISSUES], np.float32)
_T = {t[0]: i for i, t in enumerate(_TISSUES)}


@dataclass(frozen=True)
class PetCtCase:
    """One PET/CT case: ``ct`` (HU), ``pet`` (SUV, own grid) and ``label`` (on the CT grid).

    ``label`` holds 0 background, 1 primary tumour (GTVp), 2 lymph nodes (GTVn).
    """

    ct: Volume
    pet: Volume
    label: Volume


@dataclass(frozen=True)
class _Lesion:
    centre: np.ndarray          # anatomy mm
    semi: np.ndarray            # anatomy mm
    angle: float                # degrees about z
    waves: np.ndarray           # (m, 5): amplitude, direction (3), phase: boundary lobulation
    suv: float
    hu: float
    label: int                  # 0 for physiological uptake (brown fat, active muscle)

    def radius(self, X, Y, Z):
        """Normalised radius, lobulated (< 1 inside)."""
        r = ellipsoid_radius(X, Y, Z, self.centre, self.semi, self.angle)
        dx, dy, dz = X - self.centre[0], Y - self.centre[1], Z - self.centre[2]
        norm = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-6
        lobes = sum(a * np.cos(2.5 * (ux * dx + uy * dy + uz * dz) / norm + ph) for a, ux, uy, uz, ph in self.waves)
        return r / (1.0 + lobes)


@dataclass(frozen=True)
class _Physiology:
    """What a case draws besides its tumours: tissue SUVs, uptake foci and the PET's resolution and noise."""

    suv: np.ndarray             # per tissue class of ``_TISSUES``
    foci: list[_Lesion]         # brown fat and active muscle (label 0)
    psf_fwhm_mm: float
    counts_per_suv: float


def petct_head_neck(seed: int, ct_shape: Sequence[int] = PETCT_CT_SHAPE,
                    ct_spacing: Sequence[float] = PETCT_CT_SPACING,
                    pet_shape: Sequence[int] = PETCT_PET_SHAPE,
                    pet_spacing: Sequence[float] = PETCT_PET_SPACING,
                    psf_range_mm: tuple[float, float] = PET_PSF_FWHM_MM,
                    counts_range: tuple[float, float] = PET_COUNTS_PER_SUV) -> PetCtCase:
    """Head-and-neck FDG PET/CT with a primary tumour and 1-3 involved lymph nodes.

    CT (HU): neck muscles and fat planes, cervical spine with discs and canal, airway from
    trachea to nasopharynx, mandible, carotids and jugular veins, thyroid, parotid and
    submandibular glands, tonsils, and the skull and brain at the top. PET (SUV): background
    0.35-1.6, muscles 0.7-1.5, salivary glands 1.5-4, tonsils 2-7, brain 3.5-11, brown fat and
    active muscles 2-8, GTVp 3.5-15, GTVn 2.5-10, with the PSF and noise of the module docstring.
    Tumours are +10..+30 HU above muscle on CT. The anatomy fills the CT field of view (adult size at the
    default); the PET grid covers the same field of view, centred ``PET_CENTRE_OFFSET_MM`` away.

    Args:
        seed: random seed; the same seed gives the same case.
        ct_shape, ct_spacing: CT grid size and voxel size (mm); the label shares this grid.
        pet_shape, pet_spacing: PET grid size and voxel size (mm).
        psf_range_mm, counts_range: the ranges the PET's PSF FWHM (mm) and counts per SUV per voxel
            are drawn from (outside the defaults: PET unlike the demo models' training data).

    Returns:
        :class:`PetCtCase`; volumes are LPS grids (``orientation == "LPS"``); metadata ``units``
        ``"HU"``, ``"SUV"``, ``"label"``, ``phantom`` and ``seed``.
    """
    ct_shape, ct_spacing = check_grid(ct_shape, ct_spacing, "ct_shape")
    pet_shape, pet_spacing = check_grid(pet_shape, pet_spacing, "pet_shape")
    rng = np.random.default_rng(require_seed("seed", seed))
    scale = tuple(rn * rs / (n * s) for rn, rs, n, s in zip(PETCT_CT_SHAPE, PETCT_CT_SPACING, ct_shape, ct_spacing))
    lesions = _draw_lesions(rng)
    physiology = _draw_physiology(rng, lesions, psf_range_mm, counts_range)
    objects = lesions + physiology.foci

    ct_affine = lps_affine(ct_shape, ct_spacing)
    grid = Grid.from_world(ct_affine, ct_shape, scale)
    tex = smooth_random_field(rng, ct_shape, [15.0 / v for v in grid.voxel])
    cls, obj = _tissues(grid, objects, tex)
    hu, amp = _HU[cls], _AMP[cls]
    label = np.zeros(ct_shape, np.float32)
    for n, lesion in enumerate(objects, start=1):
        hu[obj == n] = lesion.hu
    for wanted in (2, 1):                                   # GTVp wins where they touch
        for n, lesion in enumerate(lesions, start=1):
            if lesion.label == wanted:
                label[obj == n] = wanted
    ct = _finish_ct(hu, amp, tex, rng, noise_hu=15.0)

    fine_shape = tuple(2 * n for n in pet_shape)
    fine_affine = lps_affine(fine_shape, [s / 2.0 for s in pet_spacing], PET_CENTRE_OFFSET_MM)
    fine = Grid.from_world(fine_affine, fine_shape, scale)
    fine_cls, fine_obj = _tissues(fine, objects, 0.0)
    act = physiology.suv[fine_cls]
    for n, lesion in enumerate(objects, start=1):
        act[fine_obj == n] = lesion.suv
    sigma = [physiology.psf_fwhm_mm / 2.3548 / (s / 2.0) for s in pet_spacing]
    act = ndi.gaussian_filter(act, sigma, truncate=3.0)
    act = act.reshape(pet_shape[0], 2, pet_shape[1], 2, pet_shape[2], 2).mean(axis=(1, 3, 5))
    counts = physiology.counts_per_suv
    suv = rng.poisson(np.maximum(act, 0.0) * counts) / counts

    meta = {"phantom": "petct_head_neck", "seed": seed, "pet_psf_fwhm_mm": round(physiology.psf_fwhm_mm, 3),
            "pet_counts_per_suv": round(counts, 3)}
    return PetCtCase(ct=Volume(ct, ct_affine, "CT", {"units": "HU", **meta}),
                     pet=Volume(suv.astype(np.float32), lps_affine(pet_shape, pet_spacing, PET_CENTRE_OFFSET_MM),
                                "PT", {"units": "SUV", **meta}),
                     label=Volume(label, ct_affine, "SEG", {"units": "label", **meta}))


def _waves(rng: np.random.Generator, amount: float) -> np.ndarray:
    """Boundary lobulation of a lesion: 5 cosine waves of amplitude ~ ``amount``."""
    dirs = rng.standard_normal((5, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return np.column_stack([rng.normal(0.0, amount, 5), dirs, rng.uniform(0.0, 2 * np.pi, 5)])


def _apart(centre: np.ndarray, radius: float, others: list[_Lesion]) -> bool:
    return all(np.linalg.norm(centre - o.centre) > radius + o.semi.max() * 1.3 + 4.0 for o in others)


def _draw_lesions(rng: np.random.Generator) -> list[_Lesion]:
    """GTVp (1.5-35 mL, log-uniform, oropharynx/larynx) and 0-3 level II-III nodes (4-11 mm radius), half
    of them against the jugular vein, on the primary's side or both."""
    side = 1.0 if rng.random() < 0.5 else -1.0
    volume_ml = float(np.exp(rng.uniform(np.log(1.5), np.log(35.0))))
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    axes = rng.uniform(0.8, 1.25, 3)
    primary = _Lesion(np.array([side * rng.uniform(4.0, 12.0), rng.uniform(8.0, 20.0), rng.uniform(-35.0, -5.0)]),
                      radius * axes / np.prod(axes) ** (1 / 3), rng.uniform(0, 180), _waves(rng, 0.08),
                      rng.uniform(3.5, 15.0), 45.0 + rng.uniform(10.0, 30.0), 1)
    lesions = [primary]
    for _ in range(int(rng.choice(4, p=[0.15, 0.4, 0.3, 0.15]))):
        r = rng.uniform(4.0, 11.0)
        for _ in range(100):
            s = side if rng.random() < 0.7 else -side
            z = rng.uniform(-65.0, -15.0)
            if rng.random() < 0.5:                  # against the jugular vein (x = 29 mm, y = 3 mm, radius 6 mm)
                angle = rng.uniform(-np.pi / 2, np.pi / 2)
                distance = 6.0 + r + rng.uniform(0.5, 2.5)
                c = np.array([s * (29.0 + distance * np.cos(angle)), 3.0 + distance * np.sin(angle), z])
            else:
                c = np.array([s * rng.uniform(30.0, 40.0), rng.uniform(-2.0, 14.0), z])
            if _apart(c, r, lesions):
                break
        lesions.append(_Lesion(c, r * rng.uniform(0.85, 1.15, 3), rng.uniform(0, 180), _waves(rng, 0.05),
                               rng.uniform(2.5, 10.0), 45.0 + rng.uniform(10.0, 25.0), 2))
    return lesions


def _draw_physiology(rng: np.random.Generator, lesions: list[_Lesion], psf_range_mm: tuple[float, float],
                     counts_range: tuple[float, float]) -> _Physiology:
    """Tissue SUVs (:data:`_DRAWN_SUV`), 0-4 brown-fat foci in the posterior and supraclavicular neck fat,
    0-2 active muscles (longus colli, sternocleidomastoid), none touching a lesion, and the PET's PSF and
    noise."""
    suv = _SUV.copy()
    for name, (low, high) in _DRAWN_SUV.items():
        suv[_T[name]] = rng.uniform(low, high)
    foci = []
    for _ in range(int(rng.integers(0, 5))):
        s = 1.0 if rng.random() < 0.5 else -1.0
        c = np.array([s * rng.uniform(38.0, 50.0), rng.uniform(-30.0, -10.0), rng.uniform(-90.0, -40.0)])
        r = rng.uniform(4.0, 8.0)
        if _apart(c, r * 1.3, lesions):
                foci.append(_Lesion(c, r * rng.uniform(0.7, 1.3, 3), rng.uniform(0, 180), _waves(rng, 0.1),
                                rng.uniform(2.0, 8.0), -90.0, 0))
    for _ in range(int(rng.integers(0, 3))):
        s = 1.0 if rng.random() < 0.5 else -1.0
        if rng.random() < 0.5:
            c, semi = np.array([s * 7.0, -4.0, rng.uniform(-60.0, -20.0)]), np.array([4.0, 3.0, 18.0])
        else:
            c, semi = np.array([s * 42.0, -5.0, rng.uniform(-70.0, -30.0)]), np.array([6.0, 8.0, 22.0])
        if _apart(c, float(semi.max()), lesions):
            foci.append(_Lesion(c, semi, 0.0, _waves(rng, 0.03), rng.uniform(2.0, 5.0), 45.0, 0))
    fwhm = rng.uniform(*psf_range_mm)
    counts = float(np.exp(rng.uniform(*np.log(counts_range))))
    return _Physiology(suv, foci, fwhm, counts)


def _tissues(grid: Grid, lesions: list[_Lesion], tex) -> tuple[np.ndarray, np.ndarray]:
    """Tissue class per voxel (index into ``_TISSUES``) and lesion index (0 none, n for lesion n)."""
    X, Y, Z = grid.x[:, None, None], grid.y[None, :, None], grid.z[None, None, :]
    shape = grid.shape
    cls = np.zeros(shape, np.uint8)

    def paint(mask, name):
        cls[np.broadcast_to(mask, shape)] = _T[name]

    neck = (Z < 30.0) & ((X / 58.0) ** 2 + ((Y - 2.0) / 56.0) ** 2 < 1.0)
    head = ellipsoid_radius(X, Y, Z, (0.0, 2.0, 52.0), (64.0, 72.0, 62.0)) < 1.0
    paint(neck | head, "fat")
    paint(((Z < 30.0) & ((X / 51.0) ** 2 + ((Y - 2.0) / 49.0) ** 2 < 1.0))
          | (ellipsoid_radius(X, Y, Z, (0.0, 2.0, 52.0), (57.0, 65.0, 55.0)) < 1.0), "muscle")
    if np.ndim(tex):
        paint((cls == _T["muscle"]) & (np.abs(tex - 0.8) < 0.12) & (Z < 0.0), "fat")     # fat planes
    for s in (1.0, -1.0):
        paint(ellipsoid_radius(X, Y, Z, (s * 45.0, 0.0, 5.0), (12.0, 18.0, 18.0)) < 1.0, "salivary gland")
        paint(ellipsoid_radius(X, Y, Z, (s * 28.0, 28.0, -22.0), (9.0, 9.0, 9.0)) < 1.0, "salivary gland")
        paint(ellipsoid_radius(X, Y, Z, (s * 11.0, 14.0, -2.0), (6.0, 6.0, 9.0)) < 1.0, "lymphoid")
        paint(ellipsoid_radius(X, Y, Z, (s * 15.0, 18.0, -75.0), (8.0, 7.0, 18.0)) < 1.0, "thyroid")
        paint((Z < 25.0) & ((X - s * 20.0) ** 2 + (Y - 8.0) ** 2 < 16.0), "blood")
        paint((Z < 25.0) & ((X - s * 29.0) ** 2 + (Y - 3.0) ** 2 < 36.0), "blood")
    # mandible: a parabolic arch with rami
    arch_y = 47.0 - X ** 2 / 42.0
    body = (np.abs(Y - arch_y) < 4.0) & (np.abs(X) < 40.0) & (Z > -28.0) & (Z < 0.0)
    rami = ((np.abs(X) - 43.0) ** 2 / 12.0 + (Y - 8.0) ** 2 / 100.0 < 1.0) & (Z > -28.0) & (Z < 22.0)
    paint(body | rami, "cortical bone")
    paint((np.abs(Y - arch_y) < 1.5) & (np.abs(X) < 38.0) & (Z > -25.0) & (Z < -3.0), "marrow")
    # cervical spine: bodies, discs, canal, arch and spinous process
    phase = (Z + 4.0) / 17.0
    dz = 17.0 * (phase - np.round(phase))
    spine = Z < 30.0
    rv = (X / 11.0) ** 2 + ((Y + 18.0) / 9.0) ** 2
    paint(spine & (rv < 1.0), "cortical bone")
    paint(spine & (rv < 0.7) & (np.abs(dz) < 6.5), "marrow")
    paint(spine & (rv < 1.0) & (np.abs(dz) > 7.0), "disc")
    rc = X ** 2 + (Y + 34.0) ** 2
    paint(spine & (np.abs(dz) < 6.0) & (((rc > 49.0) & (rc < 130.0) & (Y < -26.0))
                                        | ((X / 3.5) ** 2 + ((Y + 48.0) / 9.0) ** 2 < 1.0)), "cortical bone")
    paint(spine & (rc < 49.0), "csf")
    # airway from trachea to nasopharynx (semi-axes and centre vary with height)
    zk = [-100.0, -40.0, -30.0, -10.0, 20.0, 35.0]
    ay = np.interp(Z, zk, [18.0, 18.0, 16.0, 10.0, 12.0, 14.0])
    sa = np.interp(Z, zk, [9.0, 9.0, 11.0, 13.0, 12.0, 0.1])
    sb = np.interp(Z, zk, [7.0, 7.0, 8.0, 5.0, 5.0, 0.1])
    paint((Z < 35.0) & ((X / sa) ** 2 + ((Y - ay) / sb) ** 2 < 1.0), "air")
    # skull and brain at the top
    skull = ellipsoid_radius(X, Y, Z, (0.0, -2.0, 62.0), (56.0, 64.0, 55.0))
    top = Z > 38.0
    paint(top & (skull < 1.0), "cortical bone")
    paint(top & (skull < 0.89), "brain grey")
    paint(top & (skull < 0.82), "brain white")
    obj = np.zeros(shape, np.uint8)
    for n, lesion in enumerate(lesions, start=1):
        lo, hi = lesion.centre - 1.6 * lesion.semi.max(), lesion.centre + 1.6 * lesion.semi.max()
        sl, Xl, Yl, Zl = grid.box(lo, hi)
        if sl is not None:
            inside = lesion.radius(Xl, Yl, Zl) < 1.0
            obj[sl][inside] = n
            cls[sl][inside] = _T["tumour"]
    return cls, obj

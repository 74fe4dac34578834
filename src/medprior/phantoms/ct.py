"""Deterministic CT phantoms in Hounsfield units: thorax/upper abdomen, head, 3D Shepp-Logan.

Each phantom is painted from analytic shapes (see :mod:`medprior.phantoms.shapes`) whose
anatomy fills the field of view, then textured with a smooth Gaussian random field, blurred by a
small in-plane PSF with correlated noise, and clipped to the 12-bit CT range ``[-1024, 3071]``.
Grids are LPS-stored (``i`` towards the patient's left, ``j`` posterior, ``k`` superior;
``Volume.orientation == "LPS"``) and centred on the world origin.

>>> from medprior.phantoms.ct import ct_body
>>> vol = ct_body(seed=0, shape=(64, 64, 32))
>>> vol.data.shape, vol.metadata["units"]
((64, 64, 32), 'HU')
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from medprior.checks import require_seed
from medprior.io.volume import Volume
from medprior.phantoms.shapes import (Grid, branching_tree, check_grid, ellipsoid_radius, lps_affine,
                                      paint_tubes, smooth_random_field)

CT_BODY_SHAPE = (256, 256, 128)
CT_BODY_SPACING = (1.5, 1.5, 2.5)
CT_HEAD_SHAPE = (256, 256, 128)
CT_HEAD_SPACING = (1.0, 1.0, 1.5)
SHEPP_LOGAN_SHAPE = (128, 128, 128)
SHEPP_LOGAN_FOV_MM = 256.0
HU_RANGE = (-1024.0, 3071.0)


def ct_body(seed: int, shape: Sequence[int] = CT_BODY_SHAPE,
            spacing: Sequence[float] = CT_BODY_SPACING) -> Volume:
    """Thorax and upper abdomen CT in HU (venous-phase-like contrast), LPS grid centred on the origin.

    Contents: air (-1000), couch, body outline with skin, subcutaneous fat (-100) and chest-wall
    muscle (+45); lungs (about -860, denser posteriorly) holding tapering branching vessels; heart
    with chambers (+130) and myocardium (+85); aorta, caval veins, pulmonary arteries, trachea and
    main bronchi, oesophagus; vertebrae with discs, spinal canal and posterior elements, ribs and
    sternum (cortical about +1000, cancellous about +300); below the diaphragm the liver (+62) with
    its vessels, stomach with gas, spleen, kidneys and fat with bowel; 3-5 enhancing lesions
    (+60..+150 HU) in lung or liver. The lungs taper towards the apex (top slices) and sit on
    diaphragm domes, so the anatomy changes smoothly with ``k``.

    Args:
        seed: random seed; the same seed gives the same volume.
        shape: grid size ``(I, J, K)``; the anatomy fills the field of view at any size.
        spacing: voxel size in mm along ``i, j, k``.

    Returns:
        ``Volume`` of float32 HU, modality ``"CT"``; metadata ``units``, ``phantom``, ``seed``
        and ``lesions`` (list of ``{"centre_mm", "radius_mm", "hu", "organ"}`` in world mm).
    """
    shape, spacing, affine, grid, scale = _grid(shape, spacing, CT_BODY_SHAPE, CT_BODY_SPACING)
    rng = np.random.default_rng(require_seed("seed", seed))
    p = _BodyParams.draw(rng)
    X, Y, Z = grid.x[:, None, None], grid.y[None, :, None], grid.z[None, None, :]
    corr = [18.0 / v for v in grid.voxel]
    tex = smooth_random_field(rng, shape, corr)
    tex2 = smooth_random_field(rng, shape, [10.0 / v for v in grid.voxel])
    hu = np.full(shape, -1000.0, np.float32)
    amp = np.zeros(shape, np.float32)

    _paint_couch(grid, hu, p)
    rho, depth, fat_t = _body_layers(X, Y, Z, p, tex)
    body = rho < 1.0
    hu[body], amp[body] = 45.0, 10.0
    fat = body & (depth > 1.5) & (depth < fat_t)
    hu[fat], amp[fat] = -100.0, 8.0
    inner = depth - fat_t - 12.0                     # mm below the chest-wall muscle
    diaphragm = _diaphragm(X, Y, p) + 4.0 * tex
    cavity = inner > 10.0
    thorax, abdomen = cavity & (Z > diaphragm), cavity & (Z < diaphragm - 6.0)
    hu[thorax], amp[thorax] = -80.0, 10.0           # mediastinal fat, overwritten by organs
    gut = abdomen & (tex2 > 0.2)
    hu[abdomen], amp[abdomen] = -95.0, 8.0
    hu[gut], amp[gut] = 35.0, 10.0
    hu[gut & (tex2 > 2.3)] = -900.0                  # bowel gas

    lungs = thorax & _lungs(X, Y, Z, p)
    hu[lungs] = -865.0 - 0.35 * np.broadcast_to(Y, shape)[lungs]
    amp[lungs] = 18.0
    min_r = 0.45 * float(np.mean(grid.voxel[:2]))
    for side, hilum in ((1.0, (42.0, -5.0, 5.0)), (-1.0, (-42.0, -10.0, 10.0))):
        for direction in ((side, 0.1, 1.0), (0.3 * side, 0.2, 1.0), (side, 0.4, 0.0), (side, -0.5, 0.2),
                          (side, 0.0, -1.0), (0.3 * side, -1.0, -0.8), (0.4 * side, 1.0, -0.4),
                          (0.5 * side, -0.6, -1.0)):
            seg = branching_tree(rng, hilum, direction, 5.0, 30.0, min_r, lambda q: _lung_point(q, p))
            paint_tubes(grid, seg, [(hu, 40.0), (amp, 6.0)], mask=lungs)

    _paint_heart_vessels(grid, hu, amp, p)
    liver = abdomen & (X > -15.0 - 55.0 * np.clip(Y / 70.0, 0.0, 1.0)) & (Y > -75.0) \
        & (Z > -170.0 + 0.45 * (110.0 - X))
    hu[liver], amp[liver] = 62.0, 8.0
    seg = branching_tree(rng, (20.0, -5.0, -120.0), (1.0, 0.3, 0.6), 6.0, 30.0, min_r,
                         lambda q: _liver_point(q, p))
    paint_tubes(grid, seg, [(hu, 140.0), (amp, 5.0)], mask=liver)
    _paint_abdominal_organs(grid, hu, amp, abdomen)
    _paint_skeleton(grid, hu, amp, inner, body, p)

    lesions = _paint_lesions(rng, grid, hu, amp, p, scale)
    data = _finish_ct(hu, amp, tex, rng, noise_hu=12.0)
    meta = {"units": "HU", "phantom": "ct_body", "seed": seed, "lesions": lesions}
    return Volume(data, affine, "CT", meta)


def _grid(shape, spacing, ref_shape, ref_spacing):
    """Validated grid, its affine, its anatomy-mm :class:`Grid` and the world-to-anatomy scale."""
    shape, spacing = check_grid(shape, spacing)
    affine = lps_affine(shape, spacing)
    scale = tuple(rn * rs / (n * s) for rn, rs, n, s in zip(ref_shape, ref_spacing, shape, spacing))
    return shape, spacing, affine, Grid.from_world(affine, shape, scale), scale


class _BodyParams:
    """Per-seed anatomical variation of :func:`ct_body` (anatomy mm)."""

    def __init__(self, u: np.ndarray) -> None:
        self.a, self.b, self.yc = 165.0 * (1 + 0.04 * u[0]), 112.0 * (1 + 0.05 * u[1]), 5.0
        self.fat = 12.0 + 4.0 * u[2]
        self.dome_r, self.dome_l = -50.0 + 6.0 * u[3], -60.0 + 6.0 * u[4]
        self.heart = (-18.0 + 4.0 * u[5], 42.0, -25.0 + 5.0 * u[6])
        self.heart_angle = 135.0 + 8.0 * u[7]
        self.rib_phase = 8.0 * u[8]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _BodyParams:
        return cls(rng.uniform(-1.0, 1.0, 9))


def _body_layers(X, Y, Z, p: _BodyParams, tex=0.0):
    """Body outline radius (< 1 inside), depth below the skin (mm) and fat thickness (mm)."""
    a = p.a * (1.0 - 0.05 * (Z / 160.0) ** 2)
    b = p.b - 6.0 * (Z / 160.0)
    dx, dy = X / a, (Y - p.yc) / b
    rho = np.sqrt(dx * dx + dy * dy) * (1.0 + 0.012 * tex)
    depth = (1.0 - rho) * np.sqrt(X * X + (Y - p.yc) ** 2) / np.maximum(rho, 1e-3)
    abdomen = np.clip((-Z - 40.0) / 80.0, 0.0, 1.0)
    fat_t = np.clip(p.fat + 4.0 * tex + 12.0 * abdomen, 3.0, 40.0)
    return rho, depth, fat_t


def _diaphragm(X, Y, p: _BodyParams):
    """Height (mm) of the diaphragm domes, right dome higher, recesses lower laterally and behind."""
    w = 1.0 / (1.0 + np.exp(-X / 15.0))
    qr = ((X - 65.0) / 85.0) ** 2 + ((Y + 5.0) / 95.0) ** 2
    ql = ((X + 65.0) / 85.0) ** 2 + ((Y + 5.0) / 95.0) ** 2
    return w * (p.dome_r - 60.0 * np.minimum(qr, 1.4)) + (1 - w) * (p.dome_l - 60.0 * np.minimum(ql, 1.4))


def _lungs(X, Y, Z, p: _BodyParams):
    """Lung region inside the thoracic cavity: lateral to the mediastinum, tapering to the apices."""
    s = np.clip(1.0 - (np.maximum(Z - 20.0, 0.0) / 135.0) ** 2, 0.0, 1.0) ** 0.8
    s = np.maximum(s, 1e-3)
    medi = 14.0 + 26.0 * np.exp(-(((Y - 30.0) / 45.0) ** 2))
    apex = ((np.abs(X) - 58.0) / (80.0 * s)) ** 2 + ((Y + 5.0) / (105.0 * s)) ** 2 < 1.0
    spine = (X / 36.0) ** 2 + ((Y + 50.0) / 32.0) ** 2 < 1.0
    return (np.abs(X) > medi) & apex & ~spine


def _lung_point(q: np.ndarray, p: _BodyParams) -> bool:
    """Whether an anatomy point lies in a lung (nominal wall, no texture), away from the heart."""
    x, y, z = (np.float64(v) for v in q)
    rho, depth, fat_t = _body_layers(x, y, z, p)
    if depth - fat_t - 12.0 < 14.0 or z < _diaphragm(x, y, p) + 3.0 or not _lungs(x, y, z, p):
        return False
    return bool(ellipsoid_radius(x, y, z, p.heart, (70.0, 54.0, 58.0), p.heart_angle) > 1.0)


def _liver_point(q: np.ndarray, p: _BodyParams) -> bool:
    x, y, z = (np.float64(v) for v in q)
    rho, depth, fat_t = _body_layers(x, y, z, p)
    return bool(depth - fat_t - 12.0 > 14.0 and z < _diaphragm(x, y, p) - 10.0 and y > -70.0
                and x > -10.0 - 55.0 * np.clip(y / 70.0, 0.0, 1.0) and z > -170.0 + 0.45 * (110.0 - x))


def _paint_couch(grid: Grid, hu: np.ndarray, p: _BodyParams) -> None:
    """Curved carbon-fibre couch top and a flat base plate behind the patient."""
    sl, X, Y, Z = grid.box((-200.0, -200.0, -1e4), (200.0, p.yc - p.b - 3.0, 1e4))
    if sl is None:
        return
    top = p.yc - p.b - 8.0 + 0.0012 * X ** 2
    view = hu[sl]
    view[np.broadcast_to((Y < top) & (Y > top - 4.0) & (np.abs(X) < 190.0), view.shape)] = 200.0
    view[np.broadcast_to((Y < top - 4.0) & (Y > top - 30.0) & (np.abs(X) < 185.0), view.shape)] = -950.0
    view[np.broadcast_to((Y < top - 30.0) & (Y > top - 33.0) & (np.abs(X) < 185.0), view.shape)] = 300.0


def _paint_heart_vessels(grid: Grid, hu: np.ndarray, amp: np.ndarray, p: _BodyParams) -> None:
    """Heart (pericardial fat, myocardium, ventricles, left atrium), great vessels and airways."""
    c = np.asarray(p.heart)
    sl, X, Y, Z = grid.box(c - 80.0, c + 80.0)
    if sl is not None:
        view, av = hu[sl], amp[sl]
        r = ellipsoid_radius(X, Y, Z, c, (62.0, 46.0, 50.0), p.heart_angle)
        for mask, value, a in ((r < 1.12, -90.0, 8.0), (r < 1.0, 85.0, 8.0)):
            view[mask], av[mask] = value, a
        theta = np.radians(p.heart_angle)
        along, across = np.array([np.cos(theta), np.sin(theta), 0.0]), np.array([-np.sin(theta), np.cos(theta), 0.0])
        for offset, semi in (((-6.0, -13.0), (40.0, 20.0, 36.0)), ((6.0, 15.0), (44.0, 15.0, 36.0))):
            centre = c + offset[0] * along + offset[1] * across
            mask = ellipsoid_radius(X, Y, Z, centre, semi, p.heart_angle) < 1.0
            view[mask], av[mask] = 130.0, 5.0
        mask = ellipsoid_radius(X, Y, Z, c + np.array([8.0, -26.0, 30.0]), (30.0, 16.0, 18.0)) < 1.0
        view[mask], av[mask] = 130.0, 5.0
    h = c + np.array([15.0, -5.0, 20.0])
    vessels = np.array([
        [*h, 8, 30, 60, 14, 14], [8, 30, 60, -8, 8, 82, 14, 13], [-8, 8, 82, -22, -22, 68, 13, 12],
        [-22, -22, 68, -20, -25, -60, 12, 11], [-20, -25, -60, -12, -30, -170, 11, 10],   # aorta
        [28, 22, -10, 25, 18, 160, 9, 9], [22, -8, -170, 22, -5, -65, 11, 11],            # SVC, IVC
        [c[0], c[1] + 10, c[2] + 20, -22, 30, 25, 13, 12], [-22, 30, 25, 40, -2, 10, 10, 8],
        [-22, 30, 25, -42, -8, 15, 10, 8]], dtype=np.float64)                              # pulmonary
    paint_tubes(grid, vessels, [(hu, 130.0), (amp, 5.0)])
    gullet = np.array([[4, -14, 160, 2, -14, -40, 7, 7], [2, -14, -40, -45, 10, -100, 7, 7]], float)
    paint_tubes(grid, gullet, [(hu, 40.0), (amp, 8.0)])
    airway = np.array([[0, 2, 170, 0, -2, 40, 10, 10], [0, -2, 40, 40, -8, 8, 7, 5], [0, -2, 40, -44, -12, 14, 7, 5]], float)
    paint_tubes(grid, airway + [0, 0, 0, 0, 0, 0, 2.5, 2.5], [(hu, 50.0), (amp, 5.0)])
    paint_tubes(grid, airway, [(hu, -1000.0), (amp, 0.0)])


def _paint_abdominal_organs(grid: Grid, hu: np.ndarray, amp: np.ndarray, abdomen: np.ndarray) -> None:
    """Stomach (wall, fluid, anterior gas), spleen and kidneys (cortex, medulla) below the diaphragm."""
    organs = (((-65.0, 25.0, -112.0), (40.0, 45.0, 45.0), 0.0, "stomach"),
              ((-88.0, -50.0, -105.0), (28.0, 45.0, 50.0), 30.0, "spleen"),
              ((68.0, -55.0, -185.0), (28.0, 22.0, 50.0), 20.0, "kidney"),
              ((-68.0, -55.0, -170.0), (28.0, 22.0, 50.0), -20.0, "kidney"))
    for centre, semi, angle, name in organs:
        sl, X, Y, Z = grid.box(np.subtract(centre, max(semi)), np.add(centre, max(semi)))
        if sl is None:
            continue
        r = ellipsoid_radius(X, Y, Z, centre, semi, angle)
        view, av, inside = hu[sl], amp[sl], abdomen[sl]
        if name == "stomach":
            layers = ((r < 1.0, 45.0, 8.0), (r < 0.88, 15.0, 4.0), ((r < 0.88) & (Y > centre[1] + 18.0), -1000.0, 0.0))
        elif name == "spleen":
            layers = ((r < 1.0, 55.0, 8.0),)
        else:
            layers = ((r < 1.0, 160.0, 8.0), (r < 0.7, 95.0, 8.0), (r < 0.35, -60.0, 8.0))
        for mask, value, a in layers:
            mask = mask & inside
            view[mask], av[mask] = value, a


def _paint_skeleton(grid: Grid, hu, amp, inner, body, p: _BodyParams) -> None:
    """Paraspinal muscles, vertebrae (bodies, discs, canal, posterior elements), ribs and sternum."""
    sl, X, Y, Z = grid.box((-70.0, -125.0, -1e4), (70.0, -15.0, 1e4))
    if sl is not None:
        view, av, b = hu[sl], amp[sl], body[sl]
        shape = view.shape
        phase = (Z + p.rib_phase) / 26.0
        dz = 26.0 * (phase - np.round(phase))
        for sx in (-1.0, 1.0):
            m = b & (((X - 32.0 * sx) / 26.0) ** 2 + ((Y + 82.0) / 22.0) ** 2 < 1.0)
            view[m], av[m] = 50.0, 10.0
        rv = np.sqrt((X / 22.0) ** 2 + ((Y + 42.0) / 17.0) ** 2)
        vert = np.broadcast_to(rv < 1.0, shape)
        view[vert], av[vert] = 300.0, 50.0
        cort = vert & np.broadcast_to((rv > 0.88) | (np.abs(dz) > 9.5), shape)
        view[cort], av[cort] = 1000.0, 60.0
        disc = vert & np.broadcast_to(np.abs(dz) > 10.5, shape)
        view[disc], av[disc] = 85.0, 8.0
        rc = np.sqrt(X ** 2 + (Y + 70.0) ** 2)
        arch = (((rc > 10.0) & (rc < 17.0) & (Y < -52.0))
                | ((X / 5.0) ** 2 + ((Y + 92.0) / 16.0) ** 2 < 1.0)
                | (((np.abs(X) - 26.0) / 15.0) ** 2 + ((Y + 70.0) / 6.0) ** 2 < 1.0))
        arch = np.broadcast_to(arch, shape) & np.broadcast_to(np.abs(dz) < 8.0, shape)
        view[arch], av[arch] = 700.0, 80.0
        canal = np.broadcast_to(rc < 10.0, shape)
        view[canal], av[canal] = 25.0, 5.0
    ring = body & (np.abs(inner - 5.0) < 6.0)
    idx = np.nonzero(ring)
    x, y, z = grid.x[idx[0]], grid.y[idx[1]], grid.z[idx[2]]
    front = np.arctan2(np.abs(x), p.yc - y) / np.pi            # 0 behind the spine, 1 at the sternum
    level = z + 75.0 * front                                  # ribs descend from back to front
    phase = (level - 10.0 + p.rib_phase) / 26.0
    dz = 26.0 * (phase - np.round(phase))
    q = ((inner[idx] - 5.0) / 5.0) ** 2 + (dz / 7.0) ** 2
    rib = (q < 1.0) & (front > 0.1) & (front < 0.9) & (level > -110.0) & (level < 175.0)
    values = np.where(q > 0.45, 1000.0, 300.0)
    values = np.where(front > 0.75, 140.0, values)                 # costal cartilage
    sternum = (np.abs(x) < 16.0) & (front > 0.85) & (inner[idx] > -1.0) & (inner[idx] < 9.0) \
        & (z > -80.0) & (z < 130.0)
    sternum_v = np.where((np.abs(x) > 13.0) | (inner[idx] < 1.0) | (inner[idx] > 7.0), 900.0, 300.0)
    hu_sel = hu[idx]
    amp_sel = amp[idx]
    hu_sel = np.where(rib, values, np.where(sternum, sternum_v, hu_sel))
    amp_sel = np.where(rib | sternum, 50.0, amp_sel)
    hu[idx], amp[idx] = hu_sel, amp_sel


def _paint_lesions(rng, grid: Grid, hu, amp, p: _BodyParams, scale) -> list[dict]:
    """3-5 enhancing lesions, each in a lung or the liver; returns their world-mm description."""
    lesions = []
    for _ in range(int(rng.integers(3, 6))):
        organ = "lung" if rng.random() < 0.5 else "liver"
        test = _lung_point if organ == "lung" else _liver_point
        lo, hi = ((-130, -80, -60), (130, 80, 120)) if organ == "lung" else ((-40, -70, -160), (130, 80, -60))
        for _ in range(200):
            c = rng.uniform(lo, hi)
            if test(c, p):
                break
        radius = rng.uniform(4.0, 10.0) if organ == "lung" else rng.uniform(7.0, 18.0)
        value = rng.uniform(60.0, 150.0) if organ == "lung" else rng.uniform(100.0, 150.0)
        semi = radius * rng.uniform(0.8, 1.2, 3)
        angle = rng.uniform(0.0, 180.0)
        sl, X, Y, Z = grid.box(c - semi.max() - 5.0, c + semi.max() + 5.0)
        if sl is not None:
            r = ellipsoid_radius(X, Y, Z, c, semi, angle)
            w = np.clip((1.0 - r) * radius / np.mean(grid.voxel) + 0.5, 0.0, 1.0).astype(np.float32)
            view, av = hu[sl], amp[sl]
            view += w * (np.float32(value) - view)
            av += w * (np.float32(6.0) - av)
        lesions.append({"organ": organ, "centre_mm": [float(v / s) for v, s in zip(c, scale)],
                        "radius_mm": float(radius / np.mean(scale)), "hu": float(value)})
    return lesions


def _finish_ct(hu: np.ndarray, amp: np.ndarray, tex: np.ndarray, rng: np.random.Generator,
               noise_hu: float, psf_vox: Sequence[float] = (0.7, 0.7, 0.4)) -> np.ndarray:
    """Add texture ``amp * tex``, blur by the scanner PSF with correlated noise of ``noise_hu`` std, clip."""
    delta = np.zeros(15)
    delta[7] = 1.0
    gain = np.prod([np.sqrt(np.sum(ndi.gaussian_filter1d(delta, s) ** 2)) if s > 0 else 1.0 for s in psf_vox])
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    hu += amp * tex
    hu += noise * np.float32(noise_hu / gain)
    out = ndi.gaussian_filter(hu, psf_vox, truncate=3.0)
    return np.clip(out, *HU_RANGE, out=out)


def ct_head(seed: int, shape: Sequence[int] = CT_HEAD_SHAPE,
            spacing: Sequence[float] = CT_HEAD_SPACING) -> Volume:
    """Non-contrast head CT in HU, LPS grid centred on the origin.

    Contents: scalp (+40, thin fat, temporal muscles), skull with cortical tables (+1200) and
    diploe (+600), skull base, CSF under the skull and in sulci (+8), cortical grey matter (+36)
    folded over white matter (+28), deep grey nuclei, lateral/third/fourth ventricles (+6), falx,
    orbits (globes, fat), frontal, sphenoid and maxillary sinuses and nasal cavity (air), mastoid
    air cells, and 1-3 lesions: acute haemorrhage (+60..+80 with an oedema rim) or infarct
    (+12..+18).

    Args:
        seed: random seed; the same seed gives the same volume.
        shape: grid size ``(I, J, K)``; the head fills the field of view at any size.
        spacing: voxel size in mm along ``i, j, k``.

    Returns:
        ``Volume`` of float32 HU, modality ``"CT"``; metadata ``units``, ``phantom``, ``seed``
        and ``lesions`` (``{"kind", "centre_mm", "radius_mm", "hu"}`` in world mm).
    """
    shape, spacing, affine, grid, scale = _grid(shape, spacing, CT_HEAD_SHAPE, CT_HEAD_SPACING)
    rng = np.random.default_rng(require_seed("seed", seed))
    u = rng.uniform(-1.0, 1.0, 4)
    centre, semi = (0.0, -5.0, 8.0), (72.0 * (1 + 0.04 * u[0]), 92.0 * (1 + 0.04 * u[1]), 86.0)
    X, Y, Z = grid.x[:, None, None], grid.y[None, :, None], grid.z[None, None, :]
    tex = smooth_random_field(rng, shape, [15.0 / v for v in grid.voxel])
    fold = smooth_random_field(rng, shape, [5.0 / v for v in grid.voxel])
    hu = np.full(shape, -1000.0, np.float32)
    amp = np.zeros(shape, np.float32)

    def paint(mask, value, a):
        hu[mask], amp[mask] = value, a

    r = ellipsoid_radius(X, Y, Z, centre, semi) * (1.0 + 0.008 * tex)
    depth = (1.0 - r) * np.sqrt(X ** 2 + (Y - centre[1]) ** 2 + (Z - centre[2]) ** 2) / np.maximum(r, 1e-3)
    face = ellipsoid_radius(X, Y, Z, (0.0, 12.0, -62.0), (semi[0] - 8.0, semi[1] - 2.0, 45.0)) < 1.0
    temporal = 8.0 * np.clip((np.abs(X) - 45.0) / 20.0, 0.0, 1.0) * (np.abs(Z - 5.0) < 35.0)
    head = (depth > -6.0 - temporal) | face
    paint(head, 40.0, 8.0)
    paint(head & (depth > -4.0 - temporal) & (depth < -2.5 - temporal), -80.0, 8.0)
    paint(face & (depth < -6.0 - temporal), 40.0, 8.0)
    skull_t = max(6.5, 2.5 * float(np.mean(grid.voxel))) + 1.2 * tex   # >= 2.5 voxels at coarse grids
    base = -45.0 + 35.0 / (1.0 + np.exp(-(Y - 10.0) / 12.0))        # skull base, deeper behind
    cranium = depth > 0.0
    paint(cranium & (Z < base + 2.0), 40.0, 8.0)
    skull = cranium & (depth < skull_t) & (Z > base - 6.0)
    paint(skull, 600.0, 100.0)
    table = max(2.0, float(np.mean(grid.voxel)))
    paint(skull & ((depth < table) | (depth > skull_t - table)), 1200.0, 80.0)
    paint(cranium & (Z > base - 6.0) & (Z < base) & (depth >= skull_t), 900.0, 100.0)
    inside = (depth >= skull_t) & (Z >= base)
    brain_depth = depth - skull_t
    paint(inside, 8.0, 2.0)                                            # CSF
    gm_depth = 2.0 + 3.0 + 4.0 * np.tanh(fold)
    paint(inside & (brain_depth > 2.0), 28.0, 2.5)
    paint(inside & (brain_depth > 2.0) & (brain_depth < gm_depth + 2.0), 36.0, 2.5)
    paint(inside & (brain_depth > 2.0) & (brain_depth < 20.0) & (np.abs(fold) < 0.12), 8.0, 2.0)
    sl, Xb, Yb, Zb = grid.box((-40.0, -80.0, -60.0), (40.0, 60.0, 50.0))
    if sl is not None:
        view, av = hu[sl], amp[sl]
        for shapes_, value in (
                ((((22.0, 5.0, 5.0), (10.0, 18.0, 12.0), 0.0), ((-22.0, 5.0, 5.0), (10.0, 18.0, 12.0), 0.0),
                  ((10.0, -12.0, 8.0), (9.0, 14.0, 10.0), 0.0), ((-10.0, -12.0, 8.0), (9.0, 14.0, 10.0), 0.0)), 37.0),
                ((((12.0, 5.0, 20.0), (6.0, 30.0, 9.0), -8.0), ((-12.0, 5.0, 20.0), (6.0, 30.0, 9.0), 8.0),
                  ((18.0, -30.0, 14.0), (5.0, 15.0, 6.0), 20.0), ((-18.0, -30.0, 14.0), (5.0, 15.0, 6.0), -20.0),
                  ((0.0, -5.0, 2.0), (2.5, 12.0, 9.0), 0.0), ((0.0, -40.0, -30.0), (6.0, 4.0, 6.0), 0.0)), 6.0)):
            for c, s, ang in shapes_:
                m = ellipsoid_radius(Xb, Yb, Zb, c, s, ang) < 1.0
                view[m], av[m] = value, 2.0
    paint(inside & (np.abs(X) < 0.8) & (Z > 10.0) & (brain_depth > 1.0), 55.0, 3.0)   # falx
    _paint_face(grid, hu, amp, tex)
    lesions = []
    for _ in range(int(rng.integers(1, 4))):
        kind = "haemorrhage" if rng.random() < 0.5 else "infarct"
        for _ in range(200):
            c = rng.uniform((-50.0, -70.0, -10.0), (50.0, 60.0, 70.0))
            rc = ellipsoid_radius(c[0], c[1], c[2], centre, semi)
            if rc < 0.75 and abs(c[0]) > 20.0:
                break
        radius = rng.uniform(6.0, 14.0) if kind == "haemorrhage" else rng.uniform(10.0, 20.0)
        value = rng.uniform(60.0, 80.0) if kind == "haemorrhage" else rng.uniform(12.0, 18.0)
        s3 = radius * rng.uniform(0.75, 1.25, 3)
        sl, Xl, Yl, Zl = grid.box(c - 2.0 * s3.max(), c + 2.0 * s3.max())
        if sl is not None:
            view, av, ins = hu[sl], amp[sl], inside[sl]
            rl = ellipsoid_radius(Xl, Yl, Zl, c, s3, rng.uniform(0.0, 180.0)) * (1.0 + 0.15 * tex[sl])
            if kind == "haemorrhage":
                m = ins & (rl < 1.5)
                view[m] = 18.0
            m = ins & (rl < 1.0)
            view[m], av[m] = value, 2.0
        lesions.append({"kind": kind, "centre_mm": [float(v / s) for v, s in zip(c, scale)],
                        "radius_mm": float(radius / np.mean(scale)), "hu": float(value)})
    data = _finish_ct(hu, amp, tex, rng, noise_hu=4.0)
    return Volume(data, affine, "CT", {"units": "HU", "phantom": "ct_head", "seed": seed, "lesions": lesions})


def _paint_face(grid: Grid, hu: np.ndarray, amp: np.ndarray, tex: np.ndarray) -> None:
    """Orbits, paranasal sinuses, nasal cavity and mastoid air cells of :func:`ct_head`."""
    items = [((s * 32.0, 62.0, -22.0), (18.0, 24.0, 16.0), -80.0) for s in (1, -1)]          # orbital fat
    items += [((s * 32.0, 66.0, -22.0), (12.0, 12.0, 12.0), 12.0) for s in (1, -1)]          # globes
    items += [((s * 32.0, 77.0, -22.0), (4.5, 2.0, 4.5), 110.0) for s in (1, -1)]            # lenses
    items += [((s * 28.0, 52.0, -65.0), (16.0, 20.0, 21.0), 1000.0) for s in (1, -1)]        # maxillary walls
    items += [((s * 28.0, 52.0, -65.0), (13.5, 17.5, 18.5), -1000.0) for s in (1, -1)]       # maxillary sinuses
    items += [((0.0, 20.0, -38.0), (15.0, 13.0, 12.0), 1000.0), ((0.0, 76.0, 14.0), (18.0, 11.0, 14.0), 1000.0)]
    items += [((0.0, 72.0, -58.0), (11.0, 22.0, 22.0), -1000.0), ((0.0, 20.0, -38.0), (12.0, 10.0, 9.0), -1000.0),
              ((0.0, 73.0, 14.0), (12.0, 4.0, 8.0), -1000.0)]                                # nasal, sphenoid, frontal
    for c, s, value in items:
        sl, X, Y, Z = grid.box(np.subtract(c, s), np.add(c, s))
        if sl is None:
            continue
        m = ellipsoid_radius(X, Y, Z, c, s) < 1.0
        hu[sl][m], amp[sl][m] = value, (60.0 if value > 500 else 4.0)
    sl, X, Y, Z = grid.box((-2.0, 50.0, -80.0), (2.0, 95.0, -36.0))
    if sl is not None:
        hu[sl][np.broadcast_to(np.abs(X) < 1.5, hu[sl].shape)] = 400.0                      # nasal septum
    for s in (1, -1):
        c, semi = (s * 55.0, -20.0, -45.0), (12.0, 13.0, 12.0)
        sl, X, Y, Z = grid.box(np.subtract(c, semi), np.add(c, semi))
        if sl is None:
            continue
        m = ellipsoid_radius(X, Y, Z, c, semi) < 1.0
        hu[sl][m] = np.where(np.abs(tex[sl][m] * 7.0 % 1.0 - 0.5) < 0.3, -900.0, 900.0)


_SHEPP_LOGAN_3D = np.array([
    # value, semi-axes a, b, c, centre x0, y0, z0, in-plane angle (deg): modified intensities (Toft)
    [1.0, 0.6900, 0.920, 0.810, 0.0, 0.0, 0.0, 0.0],
    [-0.8, 0.6624, 0.874, 0.780, 0.0, -0.0184, 0.0, 0.0],
    [-0.2, 0.1100, 0.310, 0.220, 0.22, 0.0, 0.0, -18.0],
    [-0.2, 0.1600, 0.410, 0.280, -0.22, 0.0, 0.0, 18.0],
    [0.1, 0.2100, 0.250, 0.410, 0.0, 0.35, -0.15, 0.0],
    [0.1, 0.0460, 0.046, 0.050, 0.0, 0.1, 0.25, 0.0],
    [0.1, 0.0460, 0.046, 0.050, 0.0, -0.1, 0.25, 0.0],
    [0.1, 0.0460, 0.023, 0.050, -0.08, -0.605, 0.0, 0.0],
    [0.1, 0.0230, 0.023, 0.020, 0.0, -0.606, 0.0, 0.0],
    [0.1, 0.0230, 0.046, 0.020, 0.06, -0.605, 0.0, 0.0]])


def shepp_logan_3d(shape: Sequence[int] = SHEPP_LOGAN_SHAPE, fov_mm: float = SHEPP_LOGAN_FOV_MM) -> Volume:
    """The 3D modified Shepp-Logan phantom (Kak & Slaney ellipsoids, Toft's intensities) on [-1, 1]^3.

    The normalised coordinates ``(u, v, w)`` of the phantom table map to the grid as the 2D image
    does to ``skimage.data.shepp_logan_phantom()``: ``u`` grows with ``i`` (image column, the
    patient's left), ``v`` decreases with ``j`` (image row, anterior is up) and ``w`` grows with
    ``k``; so ``data[:, :, K // 2].T`` shows the classic 2D phantom. Values are the phantom's own
    (0 background, 1 skull, 0.2 brain, ...) in arbitrary units.

    Args:
        shape: grid size ``(I, J, K)``.
        fov_mm: side of the cube ``[-1, 1]^3`` in world mm (sets the affine only).

    Returns:
        ``Volume`` (modality ``"CT"``, units ``"a.u."``), LPS grid centred on the origin.
    """
    shape, spacing = check_grid(shape, [fov_mm / n for n in shape] if fov_mm > 0 else (0.0,) * 3)
    u, v, w = ((2.0 * np.arange(n, dtype=np.float32) + 1.0 - n) / n for n in shape)
    U, V, W = u[:, None, None], -v[None, :, None], w[None, None, :]
    data = np.zeros(shape, np.float32)
    for value, a, b, c, x0, y0, z0, phi in _SHEPP_LOGAN_3D:
        ca, sa = np.cos(np.radians(phi)), np.sin(np.radians(phi))
        du, dv = U - x0, V - y0
        inside = ((ca * du + sa * dv) / a) ** 2 + ((-sa * du + ca * dv) / b) ** 2 + ((W - z0) / c) ** 2 <= 1.0
        data += np.float32(value) * inside
    return Volume(data, lps_affine(shape, spacing), "CT", {"units": "a.u.", "phantom": "shepp_logan_3d"})

"""Tests of the BraTS-like brain MRI phantom (medprior.phantoms.brain)."""

from __future__ import annotations

import socket
import urllib.request

import numpy as np
import pytest
from scipy import ndimage

from medprior.phantoms import mni_templates
from medprior.phantoms.brain import (
    BRATS_SHAPE,
    BRATS_SPACING,
    CONTRASTS,
    GRID_CENTER_MM,
    BrainCase,
    brain_mri,
    brats_affine,
)

SMALL = (64, 64, 40)
MID = (96, 96, 60)


@pytest.fixture(scope="module")
def cases() -> dict[tuple[int, tuple[int, int, int]], BrainCase]:
    """A few cases, computed once: seeds 0-4 at SMALL, seeds 0 and 1 at MID."""
    out = {(seed, SMALL): brain_mri(seed, SMALL) for seed in range(5)}
    out.update({(seed, MID): brain_mri(seed, MID) for seed in (0, 1)})
    return out


def _world(case: BrainCase, mask: np.ndarray) -> np.ndarray:
    """World (RAS+ mm) positions ``(N, 3)`` of the voxels in ``mask``."""
    ijk = np.argwhere(mask)
    return ijk @ case.seg.affine[:3, :3].T + case.seg.affine[:3, 3]


def test_templates_come_from_nilearn_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    mni_templates.mni152_tissues.cache_clear()
    mni = mni_templates.mni152_tissues()
    assert mni.gm.shape == mni.wm.shape == mni.csf.shape == mni.t1.shape == (197, 233, 189)
    assert np.allclose(mni.affine[:3, :3], np.eye(3))
    assert mni.csf.min() >= 0 and mni.csf.sum() > 1e5  # > 100 mL of CSF
    np.testing.assert_allclose((mni.gm + mni.wm + mni.csf)[mni.brain > 0], 1.0, atol=1e-5)
    assert np.all(mni.gm[mni.brain == 0] == 0)
    assert mni.t1_fit[2] > mni.t1_fit[1] > mni.t1_fit[0]  # T1: wm > gm > csf


def test_constants_and_full_size_affine() -> None:
    assert BRATS_SHAPE == (240, 240, 155) and BRATS_SPACING == (1.0, 1.0, 1.0)
    assert CONTRASTS == ("t1n", "t1c", "t2w", "t2f")
    affine = brats_affine()
    np.testing.assert_allclose(affine[:3, :3], np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(affine @ [119.5, 119.5, 77.0, 1.0], [*GRID_CENTER_MM, 1.0])


def test_grid_geometry_and_metadata(cases: dict) -> None:
    case = cases[(0, SMALL)]
    spacing = (240 / 64, 240 / 64, 155 / 40)
    expected = np.eye(4)
    expected[:3, :3] = np.diag([-spacing[0], -spacing[1], spacing[2]])
    expected[:3, 3] = np.asarray(GRID_CENTER_MM) - expected[:3, :3] @ ((np.asarray(SMALL) - 1) / 2)
    assert set(case.contrasts) == set(CONTRASTS)
    for name, volume in [*case.contrasts.items(), ("seg", case.seg)]:
        assert volume.shape == SMALL and volume.data.dtype == np.float32
        np.testing.assert_allclose(volume.spacing, spacing)
        np.testing.assert_allclose(np.asarray(volume.spacing) * SMALL, (240.0, 240.0, 155.0))
        np.testing.assert_allclose(volume.affine, expected, atol=1e-9)
        assert volume.orientation == "LPS"
        assert volume.modality == ("SEG" if name == "seg" else "MR")
        assert volume.metadata["seed"] == 0 and volume.metadata["phantom"] == "brain"
    expected_metadata = {"contrast": "t2f", "units": "a.u.", "phantom": "brain", "seed": 0}
    assert case.contrasts["t2f"].metadata == expected_metadata


def test_same_seed_same_case_and_different_seed_different_case(cases: dict) -> None:
    again = brain_mri(0, SMALL)
    first = cases[(0, SMALL)]
    for name in CONTRASTS:
        np.testing.assert_array_equal(again.contrasts[name].data, first.contrasts[name].data)
    np.testing.assert_array_equal(again.seg.data, first.seg.data)
    other = cases[(1, SMALL)]
    assert not np.array_equal(other.seg.data, first.seg.data)
    centroids = [_world(c, c.seg.data > 0).mean(axis=0) for c in (first, other)]
    assert np.linalg.norm(centroids[0] - centroids[1]) > 3.0  # tumours in different places


def test_deformation_changes_anatomy_but_keeps_it_a_brain(cases: dict) -> None:
    gm = [cases[(seed, MID)].tissues["gm"].ravel() for seed in (0, 1)]
    correlation = np.corrcoef(gm[0], gm[1])[0, 1]
    assert 0.7 < correlation < 0.97
    masks = [cases[(seed, MID)].brain_mask for seed in (0, 1)]
    assert (masks[0] ^ masks[1]).sum() > 0.02 * masks[0].sum()


def test_same_seed_same_anatomy_at_any_resolution(cases: dict) -> None:
    small, mid = cases[(0, SMALL)], cases[(0, MID)]
    for label in (1, 2, 3):
        positions = [_world(c, c.seg.data == label).mean(axis=0) for c in (small, mid)]
        assert np.linalg.norm(positions[0] - positions[1]) < 4.0
    volumes = [(c.seg.data > 0).sum() * np.prod(c.seg.spacing) for c in (small, mid)]
    assert abs(volumes[0] - volumes[1]) < 0.2 * volumes[1]
    brain = [c.brain_mask.sum() * np.prod(c.seg.spacing) for c in (small, mid)]
    assert abs(brain[0] - brain[1]) < 0.05 * brain[1]


def test_skull_stripped_background_is_exactly_zero_with_one_mask(cases: dict) -> None:
    for (seed, shape), case in cases.items():
        tissue_sum = sum(case.tissues[name] for name in ("csf", "gm", "wm"))
        mask = tissue_sum > 0
        np.testing.assert_allclose(tissue_sum[mask], 1.0, atol=1e-5)
        brain_ml = mask.sum() * np.prod(case.seg.spacing) / 1000
        assert 1300 < brain_ml < 2300, (seed, brain_ml)
        for name in CONTRASTS:
            data = case.contrasts[name].data
            assert np.array_equal(data > 0, mask), (seed, name)
            assert np.all(data[~mask] == 0) and data.min() >= 0
        assert np.all(case.seg.data[~mask] == 0)
        assert not mask[0].any() and not mask[-1].any()  # the brain fits left to right


def test_labels_follow_brats_conventions(cases: dict) -> None:
    cube = np.ones((3, 3, 3), dtype=bool)
    for (seed, shape), case in cases.items():
        seg = case.seg.data
        assert set(np.unique(seg)) == {0.0, 1.0, 2.0, 3.0}, seed
        ncr, core = seg == 1, (seg == 1) | (seg == 3)
        # NCR is wrapped in enhancing tumour: no NCR voxel touches edema or healthy tissue
        assert np.all(np.isin(seg[ndimage.binary_dilation(ncr, cube)], (1, 3))), seed
        # the tumour core is wrapped in edema: it never touches healthy tissue directly
        assert np.all(seg[ndimage.binary_dilation(core)] > 0), seed
        # whole tumour is one connected region
        assert ndimage.label(seg > 0, cube)[1] == 1, seed
        whole_ml = (seg > 0).sum() * np.prod(case.seg.spacing) / 1000
        core_ml = core.sum() * np.prod(case.seg.spacing) / 1000
        assert 15 < whole_ml < 250 and 3 < core_ml < whole_ml, (seed, whole_ml, core_ml)
        x = _world(case, seg > 0)[:, 0]
        assert np.all(x > 0.5) or np.all(x < -0.5), seed  # one hemisphere (RAS x, midline at 0)


def test_both_hemispheres_occur() -> None:
    sides = set()
    for seed in range(12):
        case = brain_mri(seed, (48, 48, 31))
        sides.add(np.sign(_world(case, case.seg.data > 0)[:, 0].mean()))
        if len(sides) == 2:
            break
    assert sides == {-1.0, 1.0}


def _means(case: BrainCase, name: str) -> dict[str, float]:
    data, seg, tissues = case.contrasts[name].data, case.seg.data, case.tissues
    healthy = seg == 0
    regions = {
        "wm": healthy & (tissues["wm"] > 0.9),
        "gm": healthy & (tissues["gm"] > 0.6),
        "csf": healthy & (tissues["csf"] > 0.6),
        "ncr": seg == 1, "ed": seg == 2, "et": seg == 3,
    }
    assert all(region.sum() >= 5 for region in regions.values())
    return {key: float(data[region].mean()) for key, region in regions.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_contrast_orderings(cases: dict, seed: int) -> None:
    case = cases[(seed, MID)]
    t1n, t1c, t2w, t2f = (_means(case, name) for name in CONTRASTS)
    assert t1n["wm"] > t1n["gm"] > t1n["csf"]
    assert t1n["ed"] < t1n["wm"] and t1n["ncr"] < t1n["gm"]
    assert t1c["et"] > t1c["wm"] and t1c["et"] > 1.3 * t1n["et"]
    assert t2w["csf"] > t2w["gm"] > t2w["wm"] and t2w["ed"] > t2w["gm"] and t2w["ncr"] > t2w["gm"]
    assert t2f["csf"] < t2f["wm"] < t2f["gm"] and t2f["ed"] > t2f["gm"]
    assert t2f["ed"] == max(t2f.values())
    assert 300 < t1n["wm"] < 1000 and 300 < t2f["wm"] < 1000  # MRI-like a.u. scale


def test_rician_noise_at_realistic_snr(cases: dict) -> None:
    case = cases[(0, MID)]
    pure_wm = (case.tissues["wm"] > 0.97) & (case.seg.data == 0)
    pairs = pure_wm[1:] & pure_wm[:-1]
    for name in CONTRASTS:
        data = case.contrasts[name].data
        sigma = np.std((data[1:] - data[:-1])[pairs]) / np.sqrt(2)
        snr = np.median(data[pure_wm]) / sigma
        assert 12 < snr < 45, (name, snr)
        edge = case.brain_mask & ~ndimage.binary_erosion(case.brain_mask)
        assert data[edge].min() > 0 and data[edge].std() > 0


def test_bias_field_differs_between_contrasts(cases: dict) -> None:
    case = cases[(0, MID)]
    wm = (case.tissues["wm"] > 0.9) & (case.seg.data == 0)
    x = _world(case, wm)[:, 0]
    ratio = case.contrasts["t1n"].data[wm] / case.contrasts["t1c"].data[wm]
    left, right = np.median(ratio[x < -20]), np.median(ratio[x > 20])
    y = _world(case, wm)[:, 1]
    front, back = np.median(ratio[y > 20]), np.median(ratio[y < -50])
    assert max(abs(left / right - 1), abs(front / back - 1)) > 0.02


@pytest.mark.parametrize("bad", [(40, 64, 40), (64, 64), (64.5, 64, 40)])
def test_bad_shape_is_rejected(bad: tuple) -> None:
    with pytest.raises(ValueError, match="shape"):
        brain_mri(0, bad)


def test_bad_seed_is_rejected() -> None:
    with pytest.raises(ValueError, match="seed"):
        brain_mri(-1, SMALL)


def test_warp_is_smooth_invertible_and_nonlinear() -> None:
    from medprior.phantoms.brain import _Warp

    center = np.array([0.0, -17.0, 5.0])
    rng = np.random.default_rng(7)
    points = center + rng.uniform(-60, 60, size=(200, 3))
    for seed in range(3):
        warp = _Warp.random(np.random.default_rng(seed), center)
        u = warp.displacement(*points.T)
        rms = np.sqrt((u ** 2).mean(axis=1))
        assert np.all(rms > 0.3) and np.all(np.abs(u) < 12.0)  # a few mm, never wild
        for p in points[:5]:
            axes = [np.array([v]) for v in warp.from_mni(p)]
            back = warp.to_mni(axes, (np.array([0]),) * 3)[:, 0]
            np.testing.assert_allclose(back, p, atol=1e-3)

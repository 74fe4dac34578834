"""Tests of medprior.phantoms.ct: determinism, geometry, HU plausibility, Shepp-Logan vs skimage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from medprior.errors import InputError
from medprior.phantoms.ct import ct_body, ct_head, shepp_logan_3d

SMALL = (64, 64, 32)


@pytest.fixture(scope="module")
def body():
    return ct_body(3, shape=SMALL)


@pytest.fixture(scope="module")
def head():
    return ct_head(3, shape=SMALL)


@pytest.mark.parametrize("make", [ct_body, ct_head])
def test_deterministic_per_seed(make):
    a, b, c = make(7, shape=SMALL), make(7, shape=SMALL), make(8, shape=SMALL)
    assert np.array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    assert a.metadata["seed"] == 7 and a.metadata["units"] == "HU" and a.modality == "CT"


@pytest.mark.parametrize("make", [ct_body, ct_head])
def test_grid_geometry(make):
    vol = make(0, shape=(40, 48, 24), spacing=(2.0, 1.5, 3.0))
    assert vol.shape == (40, 48, 24)
    np.testing.assert_allclose(vol.spacing, (2.0, 1.5, 3.0))
    assert vol.orientation == "LPS"
    centre = vol.affine @ np.array([19.5, 23.5, 11.5, 1.0])       # grid centre at the world origin
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    np.testing.assert_allclose(vol.affine[:3, :3], np.diag([-2.0, -1.5, 3.0]))
    assert vol.data.dtype == np.float32


def test_bad_grid_raises_input_error():
    with pytest.raises(InputError):
        ct_body(0, shape=(64, 64))
    with pytest.raises(InputError):
        ct_head(0, shape=SMALL, spacing=(1.0, -1.0, 1.0))


def test_body_hu_plausible(body):
    d = body.data
    assert d.min() >= -1024 and d.max() <= 3071
    corners = d[:4, :4, :]
    assert abs(float(np.median(corners)) + 1000.0) < 15.0
    lung = (d < -600) & (d > -950)
    inside = ndi.binary_fill_holes(d > -500, structure=np.ones((3, 3, 1)))
    lung &= inside
    assert 0.08 < lung.sum() / inside.sum() < 0.45
    assert (d > 700).sum() > 20                                 # cortical bone of spine and ribs
    soft = d[(d > -50) & (d < 150)]
    assert 0.0 < np.median(soft) < 80.0
    fat = d[inside & (d > -150) & (d < -60)]
    assert fat.size > 0.03 * inside.sum()                       # subcutaneous fat layer


def test_lungs_shrink_towards_apex(body):
    lung = (body.data < -600) & ndi.binary_fill_holes(body.data > -500, structure=np.ones((3, 3, 1)))
    per_slice = lung.sum(axis=(0, 1))
    k = body.shape[2]
    assert per_slice[int(0.9 * k)] < 0.7 * per_slice.max()
    assert per_slice[int(0.1 * k)] < 0.3 * per_slice.max()  # abdomen below the domes


def test_lungs_hold_vessels():
    vol = ct_body(1, shape=(128, 128, 64))
    d = vol.data
    inside = ndi.binary_fill_holes(d > -500, structure=np.ones((3, 3, 1)))
    lungs = ndi.binary_opening((d < -600) & inside, iterations=2)
    lung_region = ndi.binary_erosion(ndi.binary_closing(lungs, iterations=3), iterations=2)
    dense = (d > -500) & lung_region
    assert lung_region.sum() > 0.1 * inside.sum()
    assert 0.005 < dense.sum() / lung_region.sum() < 0.2


def test_lesions_are_painted():
    vol = ct_body(5, shape=(128, 128, 64))
    lesions = vol.metadata["lesions"]
    assert 3 <= len(lesions) <= 5
    inv = np.linalg.inv(vol.affine)
    world = np.stack(np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij"), -1) @ vol.affine[:3, :3].T
    world += vol.affine[:3, 3]
    for lesion in lesions:
        assert lesion["organ"] in ("lung", "liver") and 60.0 <= lesion["hu"] <= 150.0
        i, j, k = np.round(inv @ [*lesion["centre_mm"], 1.0])[:3].astype(int)
        core = vol.data[i - 1:i + 2, j - 1:j + 2, k].mean()
        dist = np.linalg.norm(world - np.asarray(lesion["centre_mm"]), axis=-1)
        ring = vol.data[(dist > 2.0 * lesion["radius_mm"] + 3.0) & (dist < 2.5 * lesion["radius_mm"] + 6.0)]
        assert core > np.median(ring) + 20.0, lesion


def test_head_hu_plausible(head):
    d = head.data
    assert d.min() >= -1024 and d.max() <= 3071
    assert abs(float(np.median(d[:4, :4, :])) + 1000.0) < 15.0
    mid = d[:, :, int(0.6 * d.shape[2])]
    bone = mid > 700
    filled = ndi.binary_fill_holes(bone)
    assert bone.sum() > 30 and filled.sum() > 2.5 * bone.sum()    # a closed skull ring
    brain = mid[filled & ~ndi.binary_dilation(bone, iterations=2)]
    assert 15.0 < np.median(brain) < 45.0
    assert np.mean((brain > -20) & (brain < 100)) > 0.9


def test_head_lesions_listed():
    vol = ct_head(11, shape=SMALL)
    assert 1 <= len(vol.metadata["lesions"]) <= 3
    assert {les["kind"] for les in vol.metadata["lesions"]} <= {"haemorrhage", "infarct"}


def test_shepp_logan_matches_skimage():
    skimage = pytest.importorskip("skimage")
    from skimage.transform import resize

    vol = shepp_logan_3d((96, 96, 64))
    assert vol.shape == (96, 96, 64) and vol.metadata["units"] == "a.u." and vol.modality == "CT"
    assert vol.data.min() >= -1e-6 and vol.data.max() <= 1.0 + 1e-6
    ref = resize(skimage.data.shepp_logan_phantom(), (96, 96), order=1, anti_aliasing=True)
    ours = vol.data[:, :, 32].T
    corr = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]
    flipped = np.corrcoef(ours[::-1].ravel(), ref.ravel())[0, 1]
    assert corr > 0.9 and corr > flipped + 0.1
    np.testing.assert_allclose(vol.spacing, (256 / 96, 256 / 96, 256 / 64))
    assert np.array_equal(vol.data, shepp_logan_3d((96, 96, 64)).data)

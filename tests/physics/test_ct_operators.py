"""CT operators: exact adjoints, hand-computed line integrals, scikit-image geometry, units, noise."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from disc_phantom import disc_image
from medprior.errors import InputError
from medprior.physics.ct import (MU_WATER_PER_MM, FanBeamCT, ParallelBeamCT, attenuation_to_hu, hu_to_attenuation,
                                 limited_angle_angles, poisson_transmission_noise, sparse_view_angles)
from medprior.physics.operator import adjoint_mismatch


@st.composite
def angle_sets(draw: st.DrawFn, full_arc: float = 180.0) -> np.ndarray:
    kind = draw(st.sampled_from(["sparse", "limited", "random"]))
    n = draw(st.integers(1, 24))
    if kind == "sparse":
        return sparse_view_angles(n, full_arc)
    if kind == "limited":
        start = draw(st.floats(-90, 90))
        return limited_angle_angles(start, start + draw(st.floats(5, 120)), n)
    return np.asarray(draw(st.lists(st.floats(-360, 360), min_size=1, max_size=24)))


@settings(max_examples=15, deadline=None)
@given(h=st.integers(8, 40), w=st.integers(8, 40), angles=angle_sets(),
       n_detectors=st.one_of(st.none(), st.integers(3, 80)), spacing=st.floats(0.4, 2.5),
       pixel_mm=st.floats(0.1, 3.0))
def test_parallel_adjoint_is_exact(h, w, angles, n_detectors, spacing, pixel_mm):
    op = ParallelBeamCT((h, w), angles, n_detectors=n_detectors, detector_spacing=spacing, pixel_size_mm=pixel_mm)
    assert op.matrix.nnz > 0
    assert adjoint_mismatch(op, dtype=torch.float64) < 1e-6
    assert adjoint_mismatch(op, dtype=torch.float32) < 1e-5


@settings(max_examples=15, deadline=None)
@given(h=st.integers(8, 40), w=st.integers(8, 40), angles=angle_sets(360.0),
       n_detectors=st.one_of(st.none(), st.integers(3, 80)),
       spacing=st.one_of(st.none(), st.floats(0.3, 3.0)), pixel_mm=st.floats(0.1, 3.0),
       distance=st.floats(1.2, 6.0), magnification=st.floats(1.0, 2.5))
def test_fan_adjoint_is_exact(h, w, angles, n_detectors, spacing, pixel_mm, distance, magnification):
    d_so = distance * (math.hypot(h, w) / 2 + 1) * pixel_mm
    op = FanBeamCT((h, w), angles, source_to_isocentre_mm=d_so, source_to_detector_mm=d_so * magnification,
                   n_detectors=n_detectors, detector_spacing_mm=spacing, pixel_size_mm=pixel_mm)
    assert op.matrix.nnz > 0
    assert adjoint_mismatch(op, dtype=torch.float64) < 1e-6


def test_parallel_disc_line_integrals_match_closed_form():
    pixel_mm, radius, mu = 0.5, 20.0, 0.02
    op = ParallelBeamCT((96, 96), sparse_view_angles(12), detector_spacing=1.5, pixel_size_mm=pixel_mm,
                        dtype=torch.float64)
    y = op.forward(torch.from_numpy(mu * disc_image((96, 96), pixel_mm, radius))[None])[0].numpy()
    s = op.detector_positions_mm()
    inner = np.abs(s) < 0.8 * radius
    expected = 2 * mu * np.sqrt(radius ** 2 - s[inner] ** 2)
    np.testing.assert_allclose(y[:, inner], np.broadcast_to(expected, y[:, inner].shape), rtol=0.02)
    assert np.abs(y[:, np.abs(s) > radius + 2]).max() == 0.0


def test_fan_disc_line_integrals_match_closed_form():
    pixel_mm, radius, mu, d_so, d_sd = 0.5, 12.0, 0.02, 60.0, 90.0
    op = FanBeamCT((64, 64), sparse_view_angles(10, 360), source_to_isocentre_mm=d_so, source_to_detector_mm=d_sd,
                   pixel_size_mm=pixel_mm, dtype=torch.float64)
    y = op.forward(torch.from_numpy(mu * disc_image((64, 64), pixel_mm, radius))[None])[0].numpy()
    t = op.detector_positions_mm()
    s = d_so * t / np.hypot(d_sd, t)  # distance of the ray from the isocentre
    inner = np.abs(s) < 0.8 * radius
    expected = 2 * mu * np.sqrt(radius ** 2 - s[inner] ** 2)
    np.testing.assert_allclose(y[:, inner], np.broadcast_to(expected, y[:, inner].shape), rtol=0.03)


def test_single_pixel_projects_to_its_area():
    mu, pixel_mm = 0.03, 0.7
    op = ParallelBeamCT((21, 17), np.array([0.0, 13.0, 45.0, 90.0, 121.0, 200.0]), detector_spacing=0.8,
                        pixel_size_mm=pixel_mm, dtype=torch.float64)
    x = torch.zeros(1, 21, 17, dtype=torch.float64)
    x[0, 5, 11] = mu
    y = op.forward(x)[0]
    np.testing.assert_allclose(y.sum(-1).numpy() * op.detector_spacing_mm, mu * pixel_mm ** 2, rtol=1e-12)


def test_fan_single_pixel_projects_to_its_magnified_area():
    mu, pixel_mm, d_so, d_sd = 0.03, 0.5, 40.0, 70.0
    angles = np.array([0.0, 30.0, 100.0, 250.0])
    op = FanBeamCT((32, 32), angles, source_to_isocentre_mm=d_so, source_to_detector_mm=d_sd, pixel_size_mm=pixel_mm,
                   dtype=torch.float64)
    i, j = 8, 22
    x = torch.zeros(1, 32, 32, dtype=torch.float64)
    x[0, i, j] = mu
    px, py = (j - 16) * pixel_mm, (16 - i) * pixel_mm
    beta = np.deg2rad(angles)
    along = d_so - px * np.sin(beta) + py * np.cos(beta)
    cos_gamma = along / np.hypot(px - d_so * np.sin(beta), py + d_so * np.cos(beta))
    expected = mu * pixel_mm ** 2 * d_sd / (along * cos_gamma)
    np.testing.assert_allclose(op.forward(x)[0].sum(-1).numpy() * op.detector_spacing_mm, expected, rtol=0.01)


def test_matches_scikit_image_radon_geometry():
    from skimage.transform import radon

    image = disc_image((64, 64), 1.0, 18.0) + 0.5 * disc_image((64, 64), 1.0, 5.0, centre_mm=(9.0, 4.0))
    angles = np.array([0.0, 20.0, 45.0, 77.0, 90.0, 135.0, 160.0])
    op = ParallelBeamCT((64, 64), angles, n_detectors=64, dtype=torch.float64)
    ours = op.forward(torch.from_numpy(image)[None])[0].numpy()
    theirs = radon(image, angles).T
    assert np.abs(ours - theirs).max() < 0.03 * theirs.max()
    flipped = op.forward(torch.from_numpy(image[:, ::-1].copy())[None])[0].numpy()  # a wrong rotation sense fails
    assert np.abs(flipped - theirs).max() > 0.1 * theirs.max()


def test_batched_over_slices_equals_per_slice():
    op = ParallelBeamCT((24, 20), sparse_view_angles(9), dtype=torch.float64)
    x = torch.randn(3, 24, 20, dtype=torch.float64)
    y = op.forward(x)
    assert y.shape == (3, 9, op.n_detectors)
    torch.testing.assert_close(y, torch.cat([op.forward(x[b:b + 1]) for b in range(3)]))
    torch.testing.assert_close(op.adjoint(y), torch.cat([op.adjoint(y[b:b + 1]) for b in range(3)]))
    torch.testing.assert_close(op.normal(x), op.adjoint(op.forward(x)))


def test_dtype_follows_input_and_to():
    op = ParallelBeamCT((16, 16), sparse_view_angles(5))
    assert op.forward(torch.ones(1, 16, 16)).dtype == torch.float32
    assert op.forward(torch.ones(1, 16, 16, dtype=torch.float64)).dtype == torch.float64
    assert op.to("cpu", torch.float64).dtype == torch.float64
    with pytest.raises(ValueError, match="expected shape"):
        op.forward(torch.ones(1, 15, 16))


def test_matrices_are_cached_per_geometry():
    angles = sparse_view_angles(40)
    first = ParallelBeamCT((48, 48), angles, pixel_size_mm=0.8)
    start = time.perf_counter()
    second = ParallelBeamCT((48, 48), list(angles), pixel_size_mm=0.8)
    assert time.perf_counter() - start < 0.05
    assert second.matrix is first.matrix
    assert ParallelBeamCT((48, 48), angles, pixel_size_mm=0.9).matrix is not first.matrix


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_forward_and_adjoint_on_cuda_match_cpu():
    op = FanBeamCT((32, 32), sparse_view_angles(20, 360), source_to_isocentre_mm=50, source_to_detector_mm=80)
    x = torch.randn(2, 32, 32)
    y = op.forward(x)
    torch.testing.assert_close(op.forward(x.cuda()).cpu(), y, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(op.adjoint(y.cuda()).cpu(), op.adjoint(y), rtol=1e-4, atol=1e-4)
    assert adjoint_mismatch(op.to("cuda"), dtype=torch.float64, device="cuda") < 1e-6


def test_bad_geometry_raises_input_error():
    with pytest.raises(InputError, match="angles_deg"):
        ParallelBeamCT((16, 16), [])
    with pytest.raises(InputError, match="image_shape"):
        ParallelBeamCT((16,), [0.0])
    with pytest.raises(InputError, match="half diagonal"):
        FanBeamCT((64, 64), [0.0], source_to_isocentre_mm=30, source_to_detector_mm=60)
    with pytest.raises(InputError):
        limited_angle_angles(90, 0, 10)


def test_angle_helpers():
    np.testing.assert_allclose(sparse_view_angles(4), [0, 45, 90, 135])
    np.testing.assert_allclose(sparse_view_angles(3, 360, 10), [10, 130, 250])
    np.testing.assert_allclose(limited_angle_angles(0, 90, 4), [0, 30, 60, 90])


def test_hounsfield_round_trip_and_anchors():
    hu = np.array([-1000.0, -500.0, 0.0, 40.0, 1000.0, 3000.0])
    np.testing.assert_allclose(attenuation_to_hu(hu_to_attenuation(hu)), hu, atol=1e-9)
    np.testing.assert_allclose(hu_to_attenuation(np.array([-1000.0, 0.0, -1200.0])), [0, MU_WATER_PER_MM, 0])
    as_tensor = torch.tensor(hu, dtype=torch.float64)
    torch.testing.assert_close(attenuation_to_hu(hu_to_attenuation(as_tensor)), as_tensor)
    assert hu_to_attenuation(torch.tensor([-3000.0])).item() == 0.0
    assert hu_to_attenuation(0.0) == MU_WATER_PER_MM


def test_poisson_transmission_noise_statistics():
    incident = 1e4
    p = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    sinogram = p.expand(40_000, 3)
    noisy = poisson_transmission_noise(sinogram, incident, torch.Generator().manual_seed(0))
    assert noisy.shape == sinogram.shape and noisy.dtype == torch.float64
    np.testing.assert_allclose(noisy.mean(0).numpy(), p.numpy(), atol=4e-3)
    np.testing.assert_allclose(noisy.var(0).numpy(), torch.exp(p).numpy() / incident, rtol=0.05)
    again = poisson_transmission_noise(sinogram, incident, torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy, again)
    starved = poisson_transmission_noise(torch.full((4,), 50.0), 100.0, torch.Generator().manual_seed(1))
    torch.testing.assert_close(starved, torch.full((4,), math.log(100.0)))
    with pytest.raises(InputError):
        poisson_transmission_noise(sinogram, 0.0)

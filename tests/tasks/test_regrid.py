"""A measurement on the prior's matrix over the same field of view: hand-computed grids, exact
sinograms of block images, exact k-space crops, linear and Fourier interpolation back, and the reconstruction
and CLI that use them."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from medprior.cli import main
from medprior.diffusion.prior_file import load_prior
from medprior.errors import InputError, ParameterError
from medprior.io import Volume
from medprior.io.measurement import Measurement
from medprior.io.resample import voxel_centres_mm
from medprior.physics import MU_WATER_PER_MM, ParallelBeamCT
from medprior.physics.mri import fftnc
from medprior.solvers import zero_filled
from medprior.tasks.problems import ct_problem, problem_from_measurement
from medprior.tasks.recon import simulate_mri
from medprior.tasks.recon_methods import reconstruct
from medprior.tasks.regrid import (back_to_grid, back_to_measured_grid, consistent_on_grid, fourier_resize, grid_affine,
                                   on_grid)


def test_the_new_grid_keeps_the_centre_pixel_and_the_field_of_view():
    affine = np.array([[1.5, 0, 0, 10.0], [0, 1.5, 0, -20.0], [0, 0, 3.0, 5.0], [0, 0, 0, 1]])
    new = grid_affine(affine, (255, 255), (85, 85))
    # pixel 127 sat at 10 + 127 * 1.5 = 200.5 mm; pixel 42 of 4.5 mm pixels goes there: 200.5 - 42 * 4.5 = 11.5
    np.testing.assert_allclose(new, [[4.5, 0, 0, 11.5], [0, 4.5, 0, -18.5], [0, 0, 3.0, 5.0], [0, 0, 0, 1]])
    # odd sizes: each coarse voxel centre is the centre of its 3 x 3 block of fine voxels
    fine = voxel_centres_mm(affine, (255, 255, 1))[..., :2].reshape(85, 3, 85, 3, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(voxel_centres_mm(new, (85, 85, 1))[:, :, 0, :2], fine, atol=1e-9)
    # even sizes: pixel 128 of 256 at 1.5 mm (192 mm) and pixel 32 of 64 at 6 mm fall together, 1.5 fine pixels off
    shifted = grid_affine(np.diag([1.5, 1.5, 3.0, 1.0]), (256, 256), (64, 64))
    assert shifted[0, 3] == pytest.approx(128 * 1.5 - 32 * 6.0) == -0.0 and shifted[0, 0] == 6.0


def _ct_measurement(image_hu: np.ndarray, pixel_mm: float, views: int = 12) -> Measurement:
    angles = np.linspace(0, 180, views, endpoint=False)
    operator = ParallelBeamCT(image_hu.shape[:2], angles, pixel_size_mm=pixel_mm)
    mu = torch.as_tensor(np.moveaxis(image_hu, 2, 0)) * (MU_WATER_PER_MM / 1000) + MU_WATER_PER_MM
    geometry = {"operator": "ParallelBeamCT", "image_shape": list(image_hu.shape[:2]), "pixel_size_mm": pixel_mm,
                "n_detectors": operator.n_detectors, "detector_spacing": operator.detector_spacing}
    return Measurement("CT", operator.forward(mu.double()).float().numpy(), geometry, image_hu.shape,
                       np.diag([pixel_mm, pixel_mm, 2.0, 1.0]), {"angles_deg": angles}, {})


def test_ct_block_images_have_the_same_sinogram_on_the_coarse_grid(rng):
    coarse = rng.uniform(0.0, 0.03, (15, 15, 2))  # attenuation in 1/mm on 3 mm pixels
    fine = np.kron(coarse, np.ones((3, 3, 1)))     # the same function on 1 mm pixels
    measurement = _ct_measurement((fine - MU_WATER_PER_MM) / MU_WATER_PER_MM * 1000, 1.0)
    regridded, facts = on_grid(measurement, (15, 15))
    assert facts["pixel_mm"] == 3.0 and facts["measured_grid"] == [45, 45] and "CT" in facts["how"]
    problem = problem_from_measurement(regridded)
    assert problem.operator.detector_spacing_mm == pytest.approx(1.0)  # bins kept in mm
    sinogram = problem.operator.forward(torch.as_tensor(np.moveaxis(coarse, 2, 0)).to(problem.data.dtype))
    torch.testing.assert_close(sinogram, problem.data, rtol=1e-4, atol=1e-5)


def test_mri_crop_is_the_lower_resolution_image_and_padding_inverts_it(rng):
    coarse = rng.normal(size=(2, 1, 16, 16)) + 1j * rng.normal(size=(2, 1, 16, 16))
    kspace = np.zeros((2, 1, 32, 32), complex)
    kspace[..., 8:24, 8:24] = fftnc(torch.as_tensor(coarse), (-2, -1)).numpy() * 2  # zero-padded, scaled sqrt(32^2/16^2)
    geometry = {"operator": "CartesianMRI", "image_shape": [32, 32], "coils": 1, "calibration_lines": 20}
    measurement = Measurement("MR", kspace.astype(np.complex64), geometry, (32, 32, 2), np.diag([1.0, 1.0, 2.0, 1.0]),
                              {"mask": np.ones(32, bool)}, {})
    cropped, facts = on_grid(measurement, (16, 16))
    assert facts["pixel_mm"] == 2.0 and "cropped" in facts["how"]
    assert cropped.geometry["calibration_lines"] == 16 and cropped.arrays["mask"].shape == (16,)
    problem = problem_from_measurement(cropped)
    np.testing.assert_allclose(zero_filled(problem.operator, problem.data).abs().numpy(),
                               np.abs(coarse[:, 0]), rtol=1e-4, atol=1e-4)
    padded, facts = on_grid(cropped, (32, 32))
    assert "zero-padded" in facts["how"] and padded.arrays["mask"].sum() == 16  # the new lines unmeasured
    np.testing.assert_allclose(padded.data, measurement.data, atol=1e-5)


def test_mri_coil_maps_are_estimated_again_on_the_new_grid(rng):
    maps = np.ones((1, 2, 32, 32), np.complex64) / np.sqrt(2)
    geometry = {"operator": "CartesianMRI", "image_shape": [32, 32], "coils": 2, "calibration_lines": 12}
    measurement = Measurement("MR", rng.normal(size=(1, 2, 32, 32)).astype(np.complex64), geometry, (32, 32, 1),
                              np.eye(4), {"mask": np.ones((32, 32), bool), "coil_maps": maps}, {})
    regridded, _ = on_grid(measurement, (16, 16))
    assert "coil_maps" not in regridded.arrays and regridded.arrays["mask"].shape == (16, 16)
    assert problem_from_measurement(regridded).operator.domain_shape[-2:] == (16, 16)


def test_back_to_grid_is_exact_on_linear_images_and_the_identity_on_one_grid(rng):
    affine = grid_affine(np.diag([1.0, 1.0, 2.0, 1.0]), (40, 40), (10, 10))
    centres = voxel_centres_mm(affine, (10, 10, 2))
    ramp = 3.0 * centres[..., 0] - 2.0 * centres[..., 1] + 1.0  # linear in world mm
    fine = back_to_grid(ramp, affine, np.diag([1.0, 1.0, 2.0, 1.0]), (40, 40, 2))
    world = voxel_centres_mm(np.diag([1.0, 1.0, 2.0, 1.0]), (40, 40, 2))
    inside = (slice(4, 36), slice(4, 36))  # within the coarse voxel centres; the border takes the nearest value
    np.testing.assert_allclose(fine[inside], (3.0 * world[..., 0] - 2.0 * world[..., 1] + 1.0)[inside], atol=1e-4)
    image = rng.normal(size=(8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(back_to_grid(image, np.eye(4), np.eye(4), image.shape), image, atol=1e-6)


@pytest.mark.parametrize("coarse, fine", [(16, 40), (15, 45), (16, 45)])
def test_fourier_resize_is_exact_on_images_the_coarse_grid_holds(coarse, fine):
    """A wave of whole cycles over the field of view below the coarse grid's Nyquist limit, sampled
    at the voxel centres of both grids (grid_affine's centring), comes back exactly, and back again."""
    measured = np.diag([1.0, 1.0, 2.0, 1.0])
    affine = grid_affine(measured, (fine, fine), (coarse, coarse))

    def wave(grid_affine_, n):
        x, y = np.moveaxis(voxel_centres_mm(grid_affine_, (n, n, 2))[..., :2], -1, 0)
        return 5 + np.cos(2 * np.pi * (3 * x + 2 * y) / fine + 0.4) + 0.5 * np.sin(2 * np.pi * 7 * x / fine)

    np.testing.assert_allclose(fourier_resize(wave(affine, coarse), (fine, fine)), wave(measured, fine), atol=1e-5)
    np.testing.assert_allclose(fourier_resize(wave(measured, fine), (coarse, coarse)), wave(affine, coarse), atol=1e-5)


def test_mri_goes_back_by_fourier_and_ct_by_linear_interpolation(rng):
    image = rng.normal(size=(16, 16, 1)).astype(np.float32)
    maps = np.ones((1, 1, 32, 32), np.complex64)
    geometry = {"operator": "CartesianMRI", "image_shape": [32, 32], "coils": 1, "calibration_lines": 12}
    mri = Measurement("MR", np.zeros((1, 1, 32, 32), np.complex64), geometry, (32, 32, 1), np.eye(4),
                      {"mask": np.ones((32, 32), bool), "coil_maps": maps}, {})
    affine = on_grid(mri, (16, 16))[0].affine
    back, how = back_to_measured_grid(image, affine, mri)
    np.testing.assert_array_equal(back, fourier_resize(image, (32, 32)))
    assert "k-space" in how
    ct = _ct_measurement(np.zeros((32, 32, 1)), 1.0)
    affine = on_grid(ct, (16, 16))[0].affine
    back, how = back_to_measured_grid(image, affine, ct)
    np.testing.assert_array_equal(back, back_to_grid(image, affine, ct.affine, ct.image_shape))
    assert how == "linear interpolation"


def test_the_last_cg_step_fits_the_data_better_and_zero_iterations_change_nothing(rng):
    truth = np.full((32, 32, 1), -1000.0)
    truth[8:24, 10:22] = rng.uniform(-100, 300, (16, 12, 1))
    measurement = _ct_measurement(truth, 2.0, views=8)
    problem = problem_from_measurement(measurement)
    start = np.clip(truth + rng.normal(0, 200, truth.shape), -1000, None).astype(np.float32)

    def misfit(image):
        mu = (torch.as_tensor(np.moveaxis(image, 2, 0)) / 1000 + 1) * MU_WATER_PER_MM
        return float(torch.linalg.vector_norm(problem.operator.forward(mu.to(problem.data.dtype)) - problem.data))
    np.testing.assert_allclose(consistent_on_grid(problem, start, 0), start, atol=1e-2)  # HU -> 1/mm -> HU
    assert misfit(consistent_on_grid(problem, start, 5)) < 0.2 * misfit(start)


def test_a_field_of_view_that_is_not_square_is_refused():
    measurement = _ct_measurement(np.zeros((32, 16, 1)), 1.0)
    with pytest.raises(InputError, match="m.h5.*not square"):
        on_grid(measurement, (64, 64), "m.h5")


def test_reconstruct_on_the_prior_grid_returns_the_measurement_grid():
    measurement = _ct_measurement(np.full((128, 128, 1), -1000.0), 3.0, views=8)
    with pytest.raises(InputError, match="models \\(64, 64\\) slices"):
        reconstruct(measurement, "dds", prior="priors/ct_slices", steps=2, device="cpu")
    volume = reconstruct(measurement, "dds", prior="priors/ct_slices", steps=2, device="cpu", resample="prior")
    assert volume.shape == (128, 128, 1) and np.allclose(volume.affine, measurement.affine)
    facts = volume.metadata["reconstruction"]
    assert facts["resampled"]["grid"] == [64, 64] and facts["resampled"]["pixel_mm"] == 6.0
    assert facts["resampled"]["cg_iterations_on_measured_grid"] == 5
    assert facts["pixel_mm"] == pytest.approx(6.0) and "geometry_warning" not in facts  # checked on the new grid
    with pytest.raises(ParameterError, match="resample"):
        reconstruct(measurement, "dds", prior="priors/ct_slices", resample="coarse")
    with pytest.raises(InputError, match="needs a prior"):
        reconstruct(measurement, "dds", resample="prior")
    problem = ct_problem(measurement.data, measurement.arrays["angles_deg"], image_shape=(128, 128), pixel_size_mm=3.0)
    with pytest.raises(ParameterError, match="resample"):
        reconstruct(problem, "dds", prior="priors/ct_slices", resample="prior")


def test_reconstruct_at_the_prior_pixel_size_runs_its_network_on_that_matrix():
    measurement = _ct_measurement(np.full((128, 128, 1), -1000.0), 2.0, views=8)  # 256 mm field of view
    prior = load_prior("priors/ct_slices", "cpu")  # learned 6 mm pixels only
    volume = reconstruct(measurement, "dds", prior=prior, steps=2, device="cpu", resample="pixel")
    assert volume.shape == (128, 128, 1) and np.allclose(volume.affine, measurement.affine)
    facts = volume.metadata["reconstruction"]["resampled"]
    assert facts["resample"] == "pixel" and facts["grid"] == [40, 40] and facts["pixel_mm"] == 6.4  # 256 / 6 -> 40
    assert prior.image_size == (64, 64)  # the caller's prior is left as it was
    at_prior = reconstruct(measurement, "dds", prior=prior, steps=2, device="cpu", resample="prior")
    assert at_prior.metadata["reconstruction"]["resampled"]["grid"] == [64, 64]


def test_mri_at_the_prior_pixel_size_zero_pads_k_space_and_comes_back_on_its_own_matrix():
    """60 x 60 of 2 mm is coarser than the 0.94-1.875 mm brain_slices_mixed learned: 64 x 64 of
    1.875 mm (k-space zero-padded), its 4-level network run there, the result back on 60 x 60."""
    brain = np.zeros((60, 60, 1), np.float32)
    brain[15:45, 12:48] = 100.0
    measurement = simulate_mri(Volume(brain, np.diag([2.0, 2.0, 3.0, 1.0]), "MR"), acceleration=2, coils=2,
                               center_fraction=0.25)
    volume = reconstruct(measurement, "dds", prior="priors/brain_slices_mixed", steps=2, samples=1, device="cpu",
                         resample="pixel")
    facts = volume.metadata["reconstruction"]["resampled"]
    assert facts["grid"] == [64, 64] and facts["pixel_mm"] == 1.875 and "zero-padded" in facts["how"]
    assert volume.shape == (60, 60, 1) and np.allclose(volume.affine, measurement.affine)
    assert np.isfinite(volume.data).all()


def test_cli_resamples_and_says_so(tmp_path, capsys):
    data = np.full((128, 128, 2), -1000.0, np.float32)
    data[32:96, 32:96] = 40.0
    nib.save(nib.Nifti1Image(data, np.diag([3.0, 3.0, 2.0, 1.0])), tmp_path / "ct.nii.gz")
    assert main(["simulate", "ct", str(tmp_path / "ct.nii.gz"), "--views", "8", "--slices", "2",
                 "--out", str(tmp_path / "m.h5")]) == 0
    out = str(tmp_path / "r.nii.gz")
    assert main(["recon", str(tmp_path / "m.h5"), "--method", "dds", "--prior", "priors/ct_slices", "--param",
                 "steps=2", "--device", "cpu", "--resample", "prior", "--out", out]) == 0
    assert nib.load(out).shape == (128, 128, 2)
    facts = json.loads((tmp_path / "r.nii.gz.provenance.json").read_text())["config"]
    assert facts["resampled"]["measured_grid"] == [128, 128] and "6 mm" in facts["resampled"]["how"]
    capsys.readouterr()
    assert main(["recon", str(tmp_path / "m.h5"), "--method", "fbp", "--resample", "prior",
                 "--out", str(tmp_path / "f.nii.gz")]) == 2
    assert "--resample" in capsys.readouterr().err and not (tmp_path / "f.nii.gz").exists()


def test_the_same_grid_is_left_alone():
    measurement = _ct_measurement(np.zeros((16, 16, 1)), 2.0)
    same, facts = on_grid(measurement, (16, 16))
    assert same is measurement and "already" in facts["how"]

"""Finite and consistent data (issue 14, sections 2 and 4): readers refuse NaN/Inf and geometry that
disagrees with the data, naming the file and the key; writers refuse non-finite results; training stops
on divergence keeping the last good checkpoint; priors refuse measurements of another modality or
intensity convention; synthesis models refuse cases of the wrong contrasts or shapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from medprior.challenges import brats_case_id, write_brats_case
from medprior.challenges.brasyn import drop_contrasts
from medprior.cli import main
from medprior.diffusion import training
from medprior.diffusion.normalization import Normalization
from medprior.diffusion.prior_file import load_prior, prior_modality, read_prior_json, save_prior
from medprior.diffusion.priors import SlicePrior2D, WaveletPrior3D
from medprior.diffusion.schedule import VPSchedule
from medprior.diffusion.training import TrainingConfig, train_prior
from medprior.errors import DivergenceError, InputError, MedpriorError
from medprior.io import Volume, file_sha256, load, save_dicom_series, save_nifti
from medprior.io.measurement import ATTRIBUTES, read_measurement, write_measurement
from medprior.phantoms import brain_mri, ct_body
from medprior.tasks import recon, recon_methods, synthesis
from medprior.tasks.recon_methods import check_prior_fits

SHIPPED = Path(__file__).resolve().parents[1] / "priors"
TINY_NETWORK = {"channels": [8, 8], "attention_levels": [False, False], "num_res_blocks": 1, "num_head_channels": 8,
                "norm_num_groups": 4}
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A CT and an MR measurement file (16 x 16, 2 slices) and a finite NIfTI."""
    folder = tmp_path_factory.mktemp("measurements")
    ct = recon.simulate_ct(ct_body(5, shape=(32, 32, 4), spacing=(12.0, 12.0, 20.0)), views=8, slices=2, size=(16, 16))
    mr = recon.simulate_mri(brain_mri(3, shape=(48, 48, 30)).contrasts["t2w"], acceleration=2, coils=3, slices=2,
                            size=(16, 16))
    volume = Volume(np.arange(60, dtype=np.float32).reshape(5, 4, 3), LPS, "CT")
    return {"ct": write_measurement(ct, folder / "ct.h5"), "mr": write_measurement(mr, folder / "mr.h5"),
            "nifti": save_nifti(volume, folder / "volume.nii.gz")}


def spoil(source: Path, target: Path, edit) -> Path:
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as file:
        edit(file)
    return target


def replace_data(file, data) -> None:
    del file["data"]
    file.create_dataset("data", data=data)


def set_value(file, value) -> None:
    data = file["data"][()]
    data.flat[3] = value
    replace_data(file, data)


def edit_geometry(file, **changes) -> None:
    geometry = json.loads(file.attrs["geometry"])
    file.attrs["geometry"] = json.dumps({**geometry, **changes})


def drop_angle(file) -> None:
    angles = file["arrays/angles_deg"][()]
    del file["arrays/angles_deg"]
    file["arrays"].create_dataset("angles_deg", data=angles[:-1])


def set_coil_maps(file, maps) -> None:
    del file["arrays/coil_maps"]
    file["arrays"].create_dataset("coil_maps", data=maps)


def set_affine(file, row, column, value) -> None:
    affine = file.attrs["affine"]
    affine[row, column] = value
    file.attrs["affine"] = affine


SPOILS = {  # name: (measurement, edit, the key and problem in the message)
    "nan sinogram": ("ct", lambda f: set_value(f, np.nan), r"data: holds 1 non-finite"),
    "inf sinogram": ("ct", lambda f: set_value(f, np.inf), r"data: holds 1 non-finite"),
    "nan k-space": ("mr", lambda f: set_value(f, np.nan), r"data: holds 1 non-finite"),
    "image_shape changed": ("ct", lambda f: f.attrs.__setitem__("image_shape", [32, 32, 2]),
                            r"image_shape: is \[32, 32, 2\], but geometry.image_shape is \[16, 16\]"),
    "slice count changed": ("ct", lambda f: f.attrs.__setitem__("image_shape", [16, 16, 3]), r"data: has shape.*3 slices"),
    "views != angles": ("ct", drop_angle, r"data: has shape \(2, 8, \d+\).*7 angles in arrays/angles_deg"),
    "detector count": ("ct", lambda f: edit_geometry(f, n_detectors=40), r"data: has shape.*geometry.n_detectors 40"),
    "too few detectors": ("ct", lambda f: edit_geometry(f, n_detectors=5), r"geometry.n_detectors: is 5, too few"),
    "pixel size": ("ct", lambda f: edit_geometry(f, pixel_size_mm=1.0), r"geometry.pixel_size_mm: is 1 mm"),
    "wrong coil count": ("mr", lambda f: edit_geometry(f, coils=8), r"data: has shape \(2, 3, 16, 16\).*geometry.coils 8"),
    "coil maps shape": ("mr", lambda f: set_coil_maps(f, f["arrays/coil_maps"][()][:, :2]),
                        r"arrays/coil_maps: has shape \(2, 2, 16, 16\).*\(2, 3, 16, 16\)"),
    "real coil maps": ("mr", lambda f: set_coil_maps(f, np.abs(f["arrays/coil_maps"][()])),
                       r"arrays/coil_maps: has shape \(2, 3, 16, 16\) and dtype float32"),
    "real k-space": ("mr", lambda f: replace_data(f, f["data"][()].real), r"data: has dtype float32; MRI k-space is complex"),
    "real k-space geometry": ("mr", lambda f: edit_geometry(f, operator="ParallelBeamCT"),
                              r"geometry.operator: ParallelBeamCT is a CT operator, but the file's modality is MR"),
    "no data": ("ct", lambda f: f.__delitem__("data"), r"data: dataset missing"),
    "no arrays": ("ct", lambda f: f.__delitem__("arrays"), r"arrays: group missing"),
    "no angles": ("ct", lambda f: f.__delitem__("arrays/angles_deg"), r"arrays/angles_deg: is missing"),
    "no mask": ("mr", lambda f: f.__delitem__("arrays/mask"), r"arrays/mask: is missing"),
    "short mask": ("mr", lambda f: (f.__delitem__("arrays/mask"), f["arrays"].create_dataset("mask", data=np.ones(9, bool))),
                   r"arrays/mask: has shape \(9,\)"),
    "nan affine": ("ct", lambda f: set_affine(f, 0, 3, np.nan), r"affine: holds NaN or Inf"),
    "singular affine": ("mr", lambda f: set_affine(f, 2, 2, 0.0), r"affine: is singular"),
    "bad geometry json": ("ct", lambda f: f.attrs.__setitem__("geometry", "{not json"), r"geometry: attribute is not valid JSON"),
    "unknown operator": ("ct", lambda f: edit_geometry(f, operator="FanBeam"), r"geometry.operator: is 'FanBeam'"),
    "unknown modality": ("ct", lambda f: f.attrs.__setitem__("modality", "PT"), r"modality: is 'PT'"),
    **{f"no {key}": ("ct", lambda f, key=key: f.attrs.__delitem__(key), rf"{key}: attribute\(s\) missing")
       for key in ATTRIBUTES},
}


# ------------------------------------------------------------------------------------------ readers


@pytest.mark.parametrize("name", sorted(SPOILS))
def test_measurement_reader_names_the_file_and_the_key(files, tmp_path, name):
    which, edit, message = SPOILS[name]
    path = spoil(files[which], tmp_path / "spoiled.h5", edit)
    with pytest.raises(InputError, match=message) as caught:
        read_measurement(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["nan sinogram", "image_shape changed", "no data", "singular affine", "no geometry",
                                  "wrong coil count", "coil maps shape"])
def test_recon_refuses_a_bad_measurement_in_one_line(files, tmp_path, capsys, name):
    which, edit, message = SPOILS[name]
    path = spoil(files[which], tmp_path / "spoiled.h5", edit)
    out = tmp_path / "out.nii.gz"
    assert main(["recon", str(path), "--method", "fbp" if which == "ct" else "zerofill", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error and str(path) in error
    assert __import__("re").search(message, error)
    assert not out.exists()


def test_good_measurements_still_reconstruct(files):
    for which, method in (("ct", "fbp"), ("mr", "zerofill")):
        volume = recon.reconstruct(read_measurement(files[which]), method)
        assert volume.shape == (16, 16, 2) and np.isfinite(volume.data).all()


def patched_nifti(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` (uncompressed) whose header ``edit`` changed, bypassing nibabel's checks."""
    image = nib.load(source)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine, image.header), target)
    header = nib.Nifti1Header.from_fileobj(open(target, "rb"))
    edit(header)
    raw = bytearray(target.read_bytes())
    raw[:348] = header.binaryblock
    target.write_bytes(bytes(raw))
    return target


@pytest.mark.parametrize("edit, message", [
    (lambda h: h.__setitem__("srow_x", [np.nan, 0, 0, 0]), r"affine \(sform srow_x/srow_y/srow_z\): holds NaN"),
    (lambda h: h.__setitem__("srow_y", [0, np.inf, 0, 0]), r"affine \(sform.*\): holds NaN or Inf"),
    (lambda h: h.__setitem__("srow_x", [0, 0, 0, 0]), r"affine \(sform.*\): is singular"),
    (lambda h: (h.__setitem__("sform_code", 0), h.__setitem__("qoffset_x", np.nan)), r"affine \(qform.*\): holds NaN"),
])
def test_nifti_reader_refuses_a_non_finite_or_singular_affine(files, tmp_path, edit, message):
    path = patched_nifti(files["nifti"], tmp_path / "bad.nii", edit)
    with pytest.raises(InputError, match=message):
        load(path)


def test_evaluate_figure_and_qc_refuse_nan_volumes(files, tmp_path, capsys):
    nan = tmp_path / "nan.nii.gz"
    data = np.ones((5, 4, 3), np.float32)
    data[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(data, LPS), nan)
    good = str(files["nifti"])
    for args, out in ((["evaluate", "--reference", good, "--estimate", str(nan)], "m.json"),
                      (["figure", good, str(nan)], "f.png"), (["qc", str(nan)], "q.png")):
        assert main([*args, "--out", str(tmp_path / out)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and f"{nan}: contains 1 non-finite voxels" in error
        assert not (tmp_path / out).exists()


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_dicom_reader_refuses_a_non_finite_rescale(tmp_path):
    import pydicom
    folder = save_dicom_series(Volume(np.zeros((4, 4, 2), np.float32), LPS, "CT"), tmp_path / "series")
    first = sorted(folder.glob("*.dcm"))[0]
    ds = pydicom.dcmread(first)
    ds.RescaleSlope = "NaN"
    ds.save_as(first)
    with pytest.raises(InputError, match=rf"{first.name}: RescaleSlope nan"):
        load(folder)


# ------------------------------------------------------------------------------------------ writers


def test_writers_refuse_non_finite_results_and_keep_earlier_outputs(files, tmp_path):
    good = Volume(np.zeros((4, 4, 2), np.float32), LPS, "CT")
    bad = good.with_data(np.full((4, 4, 2), np.nan, np.float32))
    target = save_nifti(good, tmp_path / "image.nii.gz")
    before = target.read_bytes()
    with pytest.raises(MedpriorError, match=r"image.nii.gz: not written: the image holds 32 non-finite values"):
        save_nifti(bad, target)
    assert target.read_bytes() == before
    with pytest.raises(MedpriorError, match="series: not written"):
        save_dicom_series(bad, tmp_path / "series")
    assert not (tmp_path / "series").exists()
    measurement = read_measurement(files["ct"])
    data = measurement.data.copy()
    data[0, 0, 0] = np.inf
    with pytest.raises(MedpriorError, match=r"m.h5: not written: the measurement data hold 1 non-finite"):
        write_measurement(recon.Measurement("CT", data, measurement.geometry, measurement.image_shape,
                                            measurement.affine, measurement.arrays), tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_a_reconstruction_that_diverged_writes_nothing(files, tmp_path, monkeypatch):
    out = tmp_path / "fbp.nii.gz"
    recon.reconstruct_file(files["ct"], "fbp", out)
    before = out.read_bytes()
    original = recon_methods.reconstruct

    def diverging(measurement, method, **options):
        volume = original(measurement, method, **options)
        return volume.with_data(np.full(volume.shape, np.nan, np.float32))

    monkeypatch.setattr(recon_methods, "reconstruct", diverging)  # where reconstruct_file finds it
    with pytest.raises(MedpriorError, match=r"fbp.nii.gz: not written: the fbp reconstruction holds 512 non-finite"):
        recon.reconstruct_file(files["ct"], "fbp", out)
    assert out.read_bytes() == before


def tiny_slice_prior(normalization=Normalization("window", -1000, 1000), seed=0) -> SlicePrior2D:
    torch.manual_seed(seed)
    return SlicePrior2D((16, 16), network=TINY_NETWORK, parametrization="v", normalization=normalization)


def test_save_prior_refuses_non_finite_weights_also_after_the_float16_cast(tmp_path):
    prior = tiny_slice_prior()
    out = save_prior(prior, tmp_path / "prior", training={})
    before = (out / "weights.safetensors").read_bytes()
    weight = next(p for p in prior.network.parameters() if p.ndim > 1)
    with torch.no_grad():
        weight.view(-1)[0] = 1e6  # finite in float32, Inf in float16
    save_prior(prior, tmp_path / "float32", training={})
    with pytest.raises(MedpriorError, match=r"prior: not written: 1 weight tensor\(s\) hold NaN or Inf in float16"):
        save_prior(prior, out, training={}, weights_dtype=torch.float16)
    with torch.no_grad():
        weight.view(-1)[0] = float("nan")
    with pytest.raises(MedpriorError, match="not written"):
        save_prior(prior, out, training={})
    assert (out / "weights.safetensors").read_bytes() == before


def test_load_prior_refuses_nan_weights_even_with_a_matching_sha256(tmp_path, capsys):
    out = save_prior(tiny_slice_prior(), tmp_path / "prior", training={})
    weights = out / "weights.safetensors"
    tensors = load_file(weights)
    name = sorted(n for n, t in tensors.items() if t.is_floating_point())[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, weights, metadata={"format": "medprior-prior"})
    content = json.loads((out / "prior.json").read_text())
    content["weights"]["sha256"] = file_sha256(weights)
    (out / "prior.json").write_text(json.dumps(content))
    with pytest.raises(InputError, match=rf"weights.safetensors: 1 weight tensor\(s\) hold NaN or Inf \({name}\)"):
        load_prior(out, device="cpu")
    sample = tmp_path / "sample.nii.gz"
    assert main(["sample", "--prior", str(out), "--n", "1", "--steps", "1", "--out", str(sample), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "hold NaN or Inf" in error and not sample.exists()


# ------------------------------------------------------------------------------------------ divergence


def tiny_config(**overrides) -> TrainingConfig:
    return TrainingConfig(**{"steps": 8, "batch_size": 4, "learning_rate": 1e-3, "checkpoint_every": 1,
                             "log_every": 1, "ema_decay": 0.9, "device": "cpu", **overrides})


def tiny_data() -> torch.Tensor:
    return torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_an_absurd_learning_rate_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    prior = tiny_slice_prior()
    with pytest.raises(DivergenceError, match=r"diverged at step 2: the loss of steps 2..2 became non-finite.*"
                                              r"last good checkpoint \(step 1\) is kept in .*checkpoint.pt.*"
                                              r"learning_rate \(now 1e\+30\)") as caught:
        train_prior(prior, tiny_data(), tiny_config(learning_rate=1e30), tmp_path, progress=False)
    assert "\n" not in str(caught.value)
    kept = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert kept["loop"]["step"] == 1
    assert all(torch.isfinite(t).all() for t in kept["ema"].values() if t.is_floating_point())
    log = [json.loads(line) for line in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1] and np.isfinite(log[0]["loss"])


def test_a_loss_going_nan_after_checkpoints_keeps_the_checkpoint_and_no_nan_line(tmp_path, monkeypatch):
    calls = []
    mse = training.F.mse_loss

    def failing(*args, **kwargs):
        calls.append(1)
        loss = mse(*args, **kwargs)
        return loss * float("nan") if len(calls) >= 6 else loss

    monkeypatch.setattr(training.F, "mse_loss", failing)
    with pytest.raises(DivergenceError, match=r"step 6: the loss of steps 5..6.*checkpoint \(step 4\) is kept"):
        train_prior(tiny_slice_prior(), tiny_data(), tiny_config(checkpoint_every=4, log_every=2), tmp_path,
                    progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["loop"]["step"] == 4
    assert [json.loads(line)["step"] for line in (tmp_path / "loss.jsonl").read_text().splitlines()] == [2, 4]


def test_train_prior_cli_diverges_with_exit_1_and_keeps_the_earlier_prior(tmp_path, capsys):
    config = {"name": "tiny_ct", "kind": "slice2d", "image_size": [16, 16],
              "data": {"phantom": {"generator": "ct_body", "seeds": [1], "holdout_seeds": [3], "size": [32, 32, 8]}},
              "network": {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8,
                          "norm_num_groups": 8},
              "schedule": {"kind": "cosine", "steps": 50}, "weights_dtype": "float16",
              "training": {"steps": 2, "batch_size": 4, "checkpoint_every": 1, "log_every": 1}}
    good, absurd = tmp_path / "good.yaml", tmp_path / "absurd.yaml"
    good.write_text(yaml.safe_dump(config))
    config["training"] = {**config["training"], "steps": 6, "learning_rate": 1e30}
    absurd.write_text(yaml.safe_dump(config))
    out = tmp_path / "prior"
    assert main(["train-prior", "--config", str(good), "--out", str(out), "--workdir", str(tmp_path / "w1"),
                 "--device", "cpu"]) == 0
    assert read_prior_json(out)["modality"] == "CT"  # recorded for new priors
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["train-prior", "--config", str(absurd), "--out", str(out), "--workdir", str(tmp_path / "w2"),
                 "--device", "cpu"]) == 1
    error = capsys.readouterr().err  # the progress bar's lines, then the error's one line
    last = error.rstrip("\n").split("\n")[-1]
    assert last.startswith("medprior: error: training diverged at step 2") and "Traceback" not in error
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert (tmp_path / "w2" / "checkpoint.pt").is_file()


# ------------------------------------------------------------------------------------------ modality


def test_the_shipped_priors_modality_is_derived_from_prior_json():
    assert prior_modality(read_prior_json(SHIPPED / "ct_slices"))[0] == "CT"
    for name in ("brain_slices", "brain_cwdm", "brain_cwdm_regression"):
        assert prior_modality(read_prior_json(SHIPPED / name))[0] == "MR"
    assert prior_modality({"normalization": {"kind": "window"}})[0] == "CT"  # a prior saved without provenance
    assert prior_modality({"normalization": {"kind": "percentile"}})[0] == "MR"


@pytest.mark.parametrize("prior, which, message", [
    ("ct_slices", "mr", r"ct_slices/prior.json: is a CT prior \(trained on ct_body phantoms\) and cannot reconstruct "
                        r".*mr.h5, an MR measurement; give an MR prior"),
    ("brain_slices", "ct", r"brain_slices/prior.json: is an MR prior \(trained on brain_mri phantoms\) and cannot "
                           r"reconstruct .*ct.h5, a CT measurement; give a CT prior"),
])
def test_a_prior_refuses_a_measurement_of_another_modality(files, tmp_path, capsys, prior, which, message):
    with pytest.raises(InputError, match=message):
        measurement = read_measurement(files[which])
        check_prior_fits(measurement.modality, tuple(measurement.image_shape[:2]), SHIPPED / prior, source=files[which])
    out = tmp_path / "out.nii.gz"
    assert main(["recon", str(files[which]), "--method", "dds", "--prior", str(SHIPPED / prior), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and __import__("re").search(message, error) and not out.exists()


def test_a_prior_refuses_an_intensity_convention_it_was_not_trained_for(files, tmp_path):
    windowed_mr = save_prior(tiny_slice_prior(), tmp_path / "mr_window", training={}, modality="MR")
    with pytest.raises(InputError, match=r"is an MR prior trained on a fixed window \[-1000, 1000\] arbitrary units, "
                                         r"but .*mr.h5, an MR measurement gives magnitudes in arbitrary units"):
        check_prior_fits("MR", tuple(read_measurement(files["mr"]).image_shape[:2]), windowed_mr, source=files["mr"])
    percentile_ct = save_prior(tiny_slice_prior(Normalization("percentile", 0.5, 99.5)), tmp_path / "ct_pct",
                               training={}, modality="CT")
    assert read_prior_json(percentile_ct)["modality"] == "CT"
    check_prior_fits("CT", tuple(read_measurement(files["ct"]).image_shape[:2]), percentile_ct)  # relative intensities fit HU


# ------------------------------------------------------------------------------------------ synthesis


def synthesis_model(path: Path, modality: str = "MR") -> Path:
    torch.manual_seed(0)
    prior = WaveletPrior3D((16, 16, 8), condition_channels=4, network={**TINY_NETWORK, "channels": [8, 16],
                                                                      "norm_num_groups": 8},
                           schedule=VPSchedule(steps=20), normalization=Normalization("percentile", 0.5, 99.5))
    return save_prior(prior, path, training={"config": {"data": {"contrast": "any"}, "training": {}},
                                             "orientation": "LPS"}, modality=modality)


def write_case(root: Path, shapes: dict[str, tuple[int, int, int]], modality: str = "MR") -> Path:
    rng = np.random.default_rng(0)
    images = {c: Volume(rng.uniform(1, 2, shape).astype(np.float32), LPS, modality) for c, shape in shapes.items()}
    return write_brats_case(images, root, brats_case_id(1))


@pytest.mark.parametrize("shapes, modality, message", [
    ({"t1n": (24, 24, 12), "t1c": (24, 24, 12), "t2w": (24, 24, 10)}, "MR",
     r"t2w.nii.gz: has shape \(24, 24, 10\), but .*t1n.nii.gz of the same case has \(24, 24, 12\)"),
    ({"t1n": (24, 24, 1), "t1c": (24, 24, 1), "t2w": (24, 24, 1)}, "MR", r"t1n.nii.gz: has shape \(24, 24, 1\); "
                                                                        "synthesis needs a 3D volume"),
    ({"t1n": (6, 24, 12), "t1c": (6, 24, 12), "t2w": (6, 24, 12)}, "MR", r"less than half the model's network grid"),
    ({"t1n": (24, 24, 12), "t1c": (24, 24, 12), "t2w": (24, 24, 12)}, "CT", r"t1n.nii.gz: is tagged modality CT"),
])
def test_a_synthesis_model_refuses_cases_of_the_wrong_shapes(tmp_path, shapes, modality, message):
    model = synthesis_model(tmp_path / "model")
    write_case(tmp_path / "cases", shapes, modality)
    with pytest.raises(InputError, match=message):
        synthesis.synthesize(model, tmp_path / "cases", tmp_path / "out", steps=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_synthesis_model_refuses_a_ct_prior_and_missing_conditions(tmp_path):
    write_case(tmp_path / "cases", {c: (24, 24, 12) for c in ("t1n", "t1c", "t2w")})
    ct = synthesis_model(tmp_path / "ct_model", modality="CT")
    with pytest.raises(InputError, match=r"ct_model/prior.json: is a CT wavelet3d prior"):
        synthesis.synthesize(ct, tmp_path / "cases", tmp_path / "out", steps=1, progress=False)
    per_contrast = tmp_path / "per_contrast"
    torch.manual_seed(0)
    prior = WaveletPrior3D((16, 16, 8), condition_channels=3, network={**TINY_NETWORK, "channels": [8, 16],
                                                                      "norm_num_groups": 8},
                           normalization=Normalization("percentile", 0.5, 99.5))
    save_prior(prior, per_contrast / "t2f", training={"config": {"data": {"contrast": "t2f",
                                                                          "conditions": ["t1n", "t1c", "t2f"]}}})
    with pytest.raises(InputError, match=r"needs condition contrast\(s\) \['t2f'\] that the case"):
        synthesis.synthesize(per_contrast, tmp_path / "cases", tmp_path / "out", steps=1, progress=False)


# ------------------------------------------------------------------------------------------ brasyn-split


def spoil_nan(path: Path) -> None:
    image = nib.load(path)
    data = np.asarray(image.dataobj, dtype=np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine, image.header), path)


def spoil_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def spoil_affine(path: Path) -> None:
    image = nib.load(path)
    affine = image.affine.copy()
    affine[0, 3] += 1.0
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), affine), path)


@pytest.mark.parametrize("spoil_file, message", [(spoil_nan, "contains 1 non-finite voxels"),
                                                 (spoil_truncate, "cannot be read as NIfTI"),
                                                 (spoil_affine, r"has an affine 1 mm off")])
def test_brasyn_split_reads_and_checks_every_volume_it_copies(tmp_path, capsys, spoil_file, message):
    shape = (6, 5, 4)
    images = {c: Volume(np.full(shape, k + 1.0, np.float32), LPS, "MR") for k, c in enumerate(("t1n", "t1c", "t2w", "t2f"))}
    case = write_brats_case({**images, "seg": Volume(np.zeros(shape, np.float32), LPS, "SEG")}, tmp_path / "full",
                            brats_case_id(7))
    spoiled = case / f"{case.name}-t2w.nii.gz"
    spoil_file(spoiled)
    with pytest.raises(InputError, match=message) as caught:
        drop_contrasts(tmp_path / "full", tmp_path / "inputs", tmp_path / "truth", seed=0)
    assert str(caught.value).startswith(str(spoiled))
    assert not (tmp_path / "inputs").exists() and not (tmp_path / "truth").exists()
    assert main(["brasyn-split", "--cases", str(tmp_path / "full"), "--out", str(tmp_path / "inputs"),
                 "--truth", str(tmp_path / "truth"), "--seed", "0"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(spoiled) in error and not (tmp_path / "inputs").exists()

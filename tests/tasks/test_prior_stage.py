"""The prior stage end to end on tiny priors: config -> training data -> prior dir -> samples -> check."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from medprior.cli import main
from medprior.diffusion.prior_file import read_prior_json
from medprior.errors import InputError
from medprior.io import save
from medprior.phantoms.ct import CT_BODY_SHAPE, CT_BODY_SPACING
from medprior.diffusion import sample_statistics
from medprior.tasks import datasets, priors
from medprior.tasks.data import same_field_of_view

TINY = {
    "network": {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8},
    "schedule": {"kind": "cosine", "steps": 50},
    "training": {"steps": 6, "batch_size": 4, "checkpoint_every": 3, "log_every": 2},
    "check": {"samples": 4, "steps": 5, "sampler": "ddim"},
}


def write_config(tmp_path, **changes):
    config = {"name": "tiny_ct", "kind": "slice2d", "image_size": [16, 16],
              "data": {"phantom": {"generator": "ct_body", "seeds": [1, 2], "holdout_seeds": [3], "size": [32, 32, 8]}},
              **TINY, **changes}
    path = tmp_path / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_slice_examples_are_normalised_resampled_axial_slices(tmp_path):
    config = priors.load_prior_config(write_config(tmp_path))
    examples, names, orientation = datasets.examples(config, "train")
    assert names == ["ct_body-1", "ct_body-2"] and orientation == "LPS"
    assert examples.shape[1:] == (1, 16, 16) and 8 <= examples.shape[0] <= 16
    assert examples.min() >= -1 and examples.max() <= 1
    holdout, holdout_names, _ = datasets.examples(config, "holdout")
    assert holdout_names == ["ct_body-3"] and not torch.equal(holdout[:1], examples[:1])


def test_file_examples_are_canonical_and_say_so(tmp_path):
    """Files are read RAS-canonical: an LPS phantom file gives its slices flipped in plane, and RAS."""
    size = (32, 32, 8)
    save(datasets.ct_body(1, shape=size, spacing=same_field_of_view(size, CT_BODY_SHAPE, CT_BODY_SPACING)),
         tmp_path / "ct.nii.gz")
    from_phantom, _, _ = datasets.examples(priors.load_prior_config(write_config(tmp_path)), "train")
    config = priors.load_prior_config(write_config(tmp_path, data={"files": {"train": [str(tmp_path / "ct.nii.gz")]}}))
    from_file, names, orientation = datasets.examples(config, "train")
    assert names == ["ct.nii.gz"] and orientation == "RAS"
    first = from_phantom[:from_file.shape[0]]
    torch.testing.assert_close(from_file, first.flip(-2, -1))


def test_wavelet_examples_carry_the_condition_contrasts(tmp_path):
    path = write_config(tmp_path, name="tiny_brain", kind="wavelet3d", image_size=[16, 16, 8],
                        data={"phantom": {"generator": "brain_mri", "seeds": [5], "size": [48, 48, 30]},
                              "contrast": "t2f", "conditions": ["t1n", "t2w"]},
                        normalization={"kind": "percentile", "low": 0.5, "high": 99.5})
    config = priors.load_prior_config(path)
    examples, _, _ = datasets.examples(config, "train")
    assert examples.shape == (1, 3, 16, 16, 8)
    assert config["parametrization"] == "x0"
    prior = priors.build_prior(config)
    assert prior.condition_channels == 2


def test_one_model_for_any_missing_contrast_gets_four_examples_per_volume(tmp_path):
    """Contrast `any`: example k is contrast k given all four, channel k blanked; volumes are
    cropped / padded (48 x 48 x 30 -> 52 x 44 x 32), padding at the background's -1."""
    path = write_config(tmp_path, name="tiny_any", kind="wavelet3d", image_size=[52, 44, 32],
                        data={"phantom": {"generator": "brain_mri", "seeds": [5], "size": [48, 48, 30]},
                              "contrast": "any"},
                        normalization={"kind": "percentile", "low": 0.5, "high": 99.5})
    config = priors.load_prior_config(path)
    examples, _, _ = datasets.examples(config, "train")
    assert examples.shape == (4, 5, 52, 44, 32)
    assert priors.build_prior(config).condition_channels == 4
    case = datasets.brain_mri(5, shape=(48, 48, 30))
    normalization = datasets.Normalization("percentile", 0.5, 99.5)
    for k, contrast in enumerate(datasets.BRATS_CONTRASTS):
        native = torch.from_numpy(case.contrasts[contrast].data)
        expected = normalization.apply(native, normalization.range_of(native))[:, 2:46]
        torch.testing.assert_close(examples[k, 0, 2:50, :, 1:31], expected)
        assert examples[k, 0, :2].eq(-1).all() and examples[k, 0, 50:].eq(-1).all()
        assert examples[k, 0, ..., 0].eq(-1).all() and examples[k, 0, ..., 31].eq(-1).all()
        assert examples[k, 1 + k].eq(datasets.MISSING_VALUE).all()
        others = [c for c in range(4) if c != k]
        torch.testing.assert_close(examples[k, [1 + c for c in others]], examples[others, 0])


def test_a_slice_prior_of_any_contrast_learns_every_contrasts_slices(tmp_path):
    """Contrast `any` on a slice prior: unconditional, and its examples are the four one-contrast
    configs' examples interleaved (slice s of contrast k is example 4 s + k)."""
    brain = {"phantom": {"generator": "brain_mri", "seeds": [5], "size": [48, 48, 30]}, "min_foreground": 0.0}
    normalization = {"kind": "percentile", "low": 0.5, "high": 99.5}
    config = priors.load_prior_config(write_config(tmp_path, name="tiny_any", normalization=normalization,
                                                   data={**brain, "contrast": "any"}))
    examples, _, _ = datasets.examples(config, "train")
    assert examples.shape == (120, 1, 16, 16) and priors.build_prior(config).condition_channels == 0
    for k, contrast in enumerate(datasets.BRATS_CONTRASTS):
        single = priors.load_prior_config(write_config(tmp_path, name=f"tiny_{contrast}", normalization=normalization,
                                                       data={**brain, "contrast": contrast}))
        torch.testing.assert_close(examples[k::4], datasets.examples(single, "train")[0])


def test_training_can_start_from_a_prior_built_the_same_way(tmp_path):
    """``init``: the weights of another prior start the run (a learning rate of 1e-9 leaves them
    as they were), it is recorded, and a prior of another network is refused by name."""
    first = tmp_path / "first"
    assert main(["train-prior", "--config", str(write_config(tmp_path)), "--out", str(first), "--device", "cpu"]) == 0
    tuned = tmp_path / "tuned"
    config = write_config(tmp_path, name="tuned", init=str(first),
                          training={**TINY["training"], "steps": 2, "learning_rate": 1e-9})
    assert main(["train-prior", "--config", str(config), "--out", str(tuned), "--device", "cpu"]) == 0
    start, end = (load_file(folder / "weights.safetensors") for folder in (first, tuned))
    for name in start:
        torch.testing.assert_close(end[name], start[name], rtol=0, atol=1e-6)
    assert read_prior_json(tuned)["training"]["init"] == {"prior": str(first),
                                                          "sha256": read_prior_json(first)["weights"]["sha256"]}
    other = write_config(tmp_path, name="other", init=str(first), network={**TINY["network"], "channels": [8, 8]})
    with pytest.raises(InputError, match="init: the prior .*first differs from this config in network"):
        priors.train_from_config(other, tmp_path / "other", progress=False)
    with pytest.raises(InputError, match="no/such/prior"):
        priors.train_from_config(write_config(tmp_path, name="lost", init="no/such/prior"), tmp_path / "lost",
                                 progress=False)
    assert not (tmp_path / "other").exists() and not (tmp_path / "lost").exists()


@pytest.mark.parametrize("change, message", [
    ({"image_size": [16, 16, 16]}, "image_size"),
    ({"data": {"files": {"train": ["nothing/*.nii.gz"]}}}, "matches nothing"),
    ({"data": {}}, "exactly one"),
    ({"data": {"phantom": {"generator": "ct_body", "seeds": [1]}, "conditions": ["t1n"]}}, "conditions"),
    ({"training": {"steps": 0}}, "training.steps"),
    ({"kind": "wavelet3d", "image_size": [16, 16, 8],
      "data": {"phantom": {"generator": "brain_mri", "seeds": [1]}, "contrast": "any", "conditions": ["t1n"]}},
     "`any` is for brain data without data.conditions"),
    ({"kind": "wavelet3d", "image_size": [16, 16, 8],
      "data": {"phantom": {"generator": "brain_mri", "seeds": [1]}, "conditions": ["depth"]}}, "only the contrasts"),
    ({"data": {"phantom": {"generator": "ct_body", "seeds": [1], "gamma": [0.1, 0.2]}}},
     "data.phantom.gamma: only the echo generator reads"),
])
def test_bad_prior_configs_name_the_problem(tmp_path, change, message):
    path = write_config(tmp_path, **change)
    with pytest.raises(InputError, match=message):
        config = priors.load_prior_config(path)
        datasets.examples(config, "train")


def test_only_echo_configs_carry_the_echo_phantom_keys(tmp_path):
    """The schema's echo defaults (content, haze, gamma) stay out of other priors' configs and prior.json."""
    ct = priors.load_prior_config(write_config(tmp_path))["data"]["phantom"]
    assert not set(datasets.ECHO_PHANTOM_KEYS) & set(ct) and ct["generator"] == "ct_body"
    echo = priors.load_prior_config(write_config(tmp_path, name="tiny_echo", data={
        "phantom": {"generator": "echo", "seeds": [1], "haze": "reverberation"}}))["data"]["phantom"]
    assert (echo["content"], echo["haze"], echo["gamma"]) == ("tissue", "reverberation", [0.25, 0.75])
    for record in Path(__file__).resolve().parents[2].glob("priors/*/prior.json"):
        phantom = json.loads(record.read_text())["training"]["config"]["data"].get("phantom", {})
        if phantom.get("generator", "echo") != "echo":
            assert not set(datasets.ECHO_PHANTOM_KEYS) & set(phantom), record


def test_a_config_starts_from_its_base_file(tmp_path):
    """``base``: the base's settings, this file's keys on top (mappings merged, lists replaced)."""
    base = priors.load_prior_config(write_config(tmp_path))
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text(yaml.safe_dump({"base": "../tiny_ct.yaml", "name": "child", "image_size": [8, 8],
                                     "training": {"steps": 2}}))
    config = priors.load_prior_config(child)
    assert config["name"] == "child" and config["image_size"] == [8, 8]
    assert config["training"] == {**base["training"], "steps": 2}
    assert config["network"] == base["network"] and config["data"] == base["data"]
    (tmp_path / "tiny_ct.yaml").write_text(yaml.safe_dump({"base": "sub/child.yaml"}))
    with pytest.raises(InputError, match="loops back"):
        priors.load_prior_config(child)
    child.write_text(yaml.safe_dump({"base": "missing.yaml"}))
    with pytest.raises(InputError, match="missing.yaml"):
        priors.load_prior_config(child)


def test_train_sample_and_check_through_the_cli(tmp_path, capsys):
    config = write_config(tmp_path)
    prior_dir = tmp_path / "prior"
    assert main(["train-prior", "--config", str(config), "--out", str(prior_dir), "--device", "cpu"]) == 0
    description = read_prior_json(prior_dir)
    training = description["training"]
    assert training["steps"] == 6 and training["data"]["phantom"]["seeds"] == [1, 2]
    assert training["orientation"] == "LPS"
    assert len(training["data"]["sha256"]) == 64 and training["data"]["examples"] > 0
    assert (tmp_path / "prior.work" / "loss.jsonl").exists()

    samples = tmp_path / "samples.nii.gz"
    figure = tmp_path / "samples.png"
    assert main(["sample", "--prior", str(prior_dir), "--n", "3", "--steps", "4", "--sampler", "dpmpp",
                 "--out", str(samples), "--figure", str(figure), "--device", "cpu"]) == 0
    data = np.asarray(nib.load(samples).dataobj)
    assert data.shape == (16, 16, 3) and data.min() >= -1000 and data.max() <= 1000
    assert figure.stat().st_size > 1000
    assert json.loads((tmp_path / "samples.nii.gz.provenance.json").read_text())["config"]["sampler"] == "dpmpp"

    report_path = tmp_path / "check.json"
    assert main(["check-prior", "--prior", str(prior_dir), "--config", str(config), "--out", str(report_path),
                 "--figure", str(tmp_path / "check.png"), "--device", "cpu"]) == 0
    report = json.loads(report_path.read_text())
    assert set(report) == {"samples", "training", "white_noise", "settings"}
    assert 0 <= report["samples"]["histogram_intersection"] <= 1
    assert report["training"]["histogram_intersection"] > report["white_noise"]["histogram_intersection"]
    assert "samples" in capsys.readouterr().out


def test_check_compares_an_augmented_prior_with_plain_training_slices(tmp_path):
    config = write_config(tmp_path)
    content = yaml.safe_load(config.read_text())
    content["training"]["augmentation"] = {"source_size": [32, 32], "zoom_range": [1.0, 2.0]}
    config.write_text(yaml.safe_dump(content))
    prior_dir = tmp_path / "prior"
    assert main(["train-prior", "--config", str(config), "--out", str(prior_dir), "--device", "cpu"]) == 0
    report_path = tmp_path / "check.json"
    assert main(["check-prior", "--prior", str(prior_dir), "--config", str(config), "--out", str(report_path),
                 "--device", "cpu"]) == 0  # the training rows were 32 x 32, the samples 16 x 16
    report = json.loads(report_path.read_text())
    assert report["training"]["histogram_intersection"] > report["white_noise"]["histogram_intersection"]


def test_cli_bad_prior_dir_and_config_exit_2_without_output(tmp_path, capsys):
    out = tmp_path / "samples.nii.gz"
    assert main(["sample", "--prior", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: slice2d\n")
    assert main(["train-prior", "--config", str(bad), "--out", str(tmp_path / "p")]) == 2
    assert "bad.yaml" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert main(["sample", "--prior", str(tmp_path / "missing"), "--out", str(out), "--device", "tpu"]) == 2
    assert "--device" in capsys.readouterr().err and not out.exists()


def test_statistics_tell_matching_images_from_noise():
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(40, 1, 36, 36, generator=generator), 5, 1)[:, 0] * 2 - 1
    same = sample_statistics.image_statistics(smooth[:20], smooth[20:])
    noise = sample_statistics.image_statistics(torch.rand(20, 32, 32, generator=generator) * 2 - 1, smooth[20:])
    assert same["histogram_intersection"] > 0.9 and same["spectrum_db"] < 1.0
    assert noise["histogram_intersection"] < 0.6 and noise["spectrum_db"] > 5


def test_radial_power_spectrum_of_a_single_frequency_peaks_at_its_radius():
    grid = torch.arange(32, dtype=torch.float64)
    wave = torch.cos(2 * torch.pi * 5 * grid / 32)[None, :, None].expand(1, 32, 32)
    spectrum = sample_statistics.radial_power_spectrum(wave)
    assert int(spectrum.argmax()) == 5

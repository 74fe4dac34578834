"""The rows of the robustness suite: each a command line, how to build its (bad) input, and the outcome.

A row's ``argv`` may hold ``{t}`` (the row's own folder, also the working directory) and ``{case}``
(the BraTS case id). ``uses`` names the items of the shared world (``conftest.world``) copied into
the row's folder first; ``build`` then breaks or prepares what the row needs (it may run good
commands first, for rows about earlier outputs). Classes (``cls``):

- ``output``: output safety (an output that is, is inside, or contains an input; a file where a
  folder goes or the reverse; a folder of user data; a reserved sidecar name);
- ``input``: non-finite or inconsistent inputs (NIfTI, DICOM, measurement files, priors, configs,
  BraTS cases, submissions);
- ``param``: bad parameters (0, negative, non-integer, NaN/Inf, unknown names, bad windows, usage);
- ``runaway``: requests whose memory alone would exhaust the machine;
- ``earlier``: a good output first, then a failing run onto it (it must stay byte-identical), and
  chains of commands that must not clobber each other's files;
- ``positive``: good invocations that must succeed and write exactly their outputs.

Failure rows expect exit 2, one stderr line naming what ``names`` lists (each entry a string, or a
tuple of alternatives), and the row's folder unchanged. Success rows expect exit 0, every pattern
in ``creates`` matched by a new path, no other new path (except sidecars ``*.provenance.json`` of
created paths, markers ``.medprior-output`` in created folders, and ``may_create``), and every
earlier path unchanged (except ``changes``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import yaml

CASE = "BraTS-GLI-00400-000"
DROPPED = "t2w"
MEMORY = ("GiB", "GB", "MiB", "MB", "TiB", "TB", "bytes")

Build = Callable[[Path], None]


class SetupError(Exception):
    """A row's preparation (a good command it runs first) failed."""


@dataclass(frozen=True)
class Row:
    id: str
    cls: str
    argv: tuple[str, ...]
    uses: tuple[str, ...] = ()
    build: Build | None = None
    code: int = 2
    names: tuple = ()
    creates: tuple[str, ...] = ()
    may_create: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    timeout: int = 60
    max_seconds: float | None = None
    notes: str = ""

    @property
    def command(self) -> str:
        if self.argv[0] == "evaluate":
            kind = self.argv[1] if self.argv[1:2] in (("synthesis",), ("dehazing",)) else "recon"
            return f"evaluate-{kind}"
        return self.argv[0]

    def args(self, t: Path) -> list[str]:
        return [a.format(t=t, case=CASE) for a in self.argv]


# ------------------------------------------------------------------ builders


def steps(*builds: Build) -> Build:
    def build(t: Path) -> None:
        for b in builds:
            b(t)
    return build


def good(*argv: str) -> Build:
    """Run a good command first (in-process); the row fails as a setup error if it does not succeed."""
    def build(t: Path) -> None:
        from medprior.cli import main
        args = [a.format(t=t, case=CASE) for a in argv]
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
        if code != 0:
            raise SetupError(f"the good run `medprior {' '.join(argv)}` exited {code}")
    return build


def mkdir(rel: str, user_file: bool = True) -> Build:
    def build(t: Path) -> None:
        (t / rel).mkdir(parents=True, exist_ok=True)
        if user_file:
            (t / rel / "notes.txt").write_text("the user's own file\n")
    return build


def write(rel: str, content: bytes = b"the user's own file\n") -> Build:
    def build(t: Path) -> None:
        (t / rel).parent.mkdir(parents=True, exist_ok=True)
        (t / rel).write_bytes(content)
    return build


def symlink(rel: str, target: str) -> Build:
    def build(t: Path) -> None:
        os.symlink(target, t / rel)
    return build


def move(src: str, dst: str) -> Build:
    def build(t: Path) -> None:
        (t / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(t / src, t / dst)
    return build


def copy(src: str, dst: str) -> Build:
    def build(t: Path) -> None:
        (t / dst).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (t / src).is_dir() else shutil.copy2)(t / src, t / dst)
    return build


def remove(rel: str) -> Build:
    def build(t: Path) -> None:
        path = t / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return build


def replace_text(rel: str, old: str, new: str) -> Build:
    def build(t: Path) -> None:
        path = t / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new))
    return build


def edit_yaml(rel: str, edit: Callable[[dict], None]) -> Build:
    def build(t: Path) -> None:
        content = yaml.safe_load((t / rel).read_text())
        edit(content)
        (t / rel).write_text(yaml.safe_dump(content, sort_keys=False))
    return build


def set_key(dotted: str, value) -> Callable[[dict], None]:
    def edit(content: dict) -> None:
        *parents, last = dotted.split(".")
        node = content
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return edit


NIFTI_BAD = ("nan", "inf", "nan_affine", "singular_affine", "empty", "truncated", "random")


def nifti(rel: str, how: str, source: str | None = None) -> Build:
    """Break the NIfTI ``rel`` (made from ``source`` when given) in one of the ``NIFTI_BAD`` ways,
    or ``shape`` (one slice fewer), ``shift`` (affine moved 5 mm), ``flat2d`` (a 2D image)."""
    def build(t: Path) -> None:
        path, origin = t / rel, t / (source or rel)
        raw = origin.read_bytes()
        if how == "empty":
            path.write_bytes(b"")
            return
        if how == "truncated":
            path.write_bytes(raw[: len(raw) // 2])
            return
        if how == "random":
            path.write_bytes(np.random.default_rng(0).bytes(4000))
            return
        image = nib.load(str(origin))
        data = np.asarray(image.dataobj)
        data = data.astype(np.float32) if how in ("nan", "inf") else data.copy()
        affine = image.affine.copy()
        header = None
        if how in ("nan", "inf"):
            data[tuple(n // 2 for n in data.shape)] = np.nan if how == "nan" else np.inf
        elif how == "shape":
            data = data[:, :, :-1]
        elif how == "shift":
            affine[:3, 3] += 5.0
        elif how == "flat2d":
            data = data[:, :, data.shape[2] // 2]
        elif how in ("nan_affine", "singular_affine"):
            bad = affine.copy()
            if how == "nan_affine":
                bad[0, 0] = np.nan
            else:
                bad[:3, 0] = 0.0
            header = nib.Nifti1Image(data, affine).header
            header.set_qform(None, code=0)
            header.set_sform(bad, code=1)
        else:
            raise ValueError(how)
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, None if header is not None else affine, header), str(path))
    return build


def dicom(how: str) -> Build:
    """Break the DICOM series ``dcm/``: ``random`` (a random-bytes .dcm added), ``truncated`` (one
    slice cut), ``missing`` (a middle slice removed), ``empty`` (no files)."""
    def build(t: Path) -> None:
        folder = t / "dcm"
        files = sorted(folder.glob("*.dcm"))
        if how == "random":
            (folder / "zz_random.dcm").write_bytes(np.random.default_rng(1).bytes(3000))
        elif how == "truncated":
            raw = files[0].read_bytes()
            files[0].write_bytes(raw[: len(raw) // 3])
        elif how == "missing":
            import pydicom
            by_position = sorted(files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                                              .ImagePositionPatient[2]))
            by_position[len(by_position) // 2].unlink()
        elif how == "empty":
            for f in files:
                f.unlink()
        else:
            raise ValueError(how)
    return build


def h5(rel: str, how: str) -> Build:
    """Break the measurement file ``rel`` (see the table for the ways)."""
    def build(t: Path) -> None:
        path = t / rel
        if how in ("empty", "truncated", "random"):
            raw = path.read_bytes()
            path.write_bytes({"empty": b"", "truncated": raw[: len(raw) // 2],
                              "random": np.random.default_rng(2).bytes(4000)}[how])
            return
        with h5py.File(path, "r+") as f:
            data = f["data"][()] if "data" in f else None
            geometry = json.loads(f.attrs["geometry"])

            def set_data(values):
                del f["data"]
                f.create_dataset("data", data=values)

            if how == "data_nan":
                data.flat[data.size // 2] = np.nan
                set_data(data)
            elif how == "data_inf":
                data.flat[data.size // 3] = np.inf
                set_data(data)
            elif how.startswith("no_attr_"):
                del f.attrs[how.removeprefix("no_attr_")]
            elif how == "no_data":
                del f["data"]
            elif how == "no_arrays":
                del f["arrays"]
            elif how.startswith("no_array_"):
                del f["arrays"][how.removeprefix("no_array_")]
            elif how == "image_shape_k":
                shape = f.attrs["image_shape"].copy()
                shape[2] += 1
                f.attrs["image_shape"] = shape
            elif how == "image_shape_ij":
                shape = f.attrs["image_shape"].copy()
                shape[0] += 3
                f.attrs["image_shape"] = shape
            elif how == "grid_not_square":  # a valid CT measurement of a 16 x 8 image
                shape = f.attrs["image_shape"].copy()
                shape[1] = shape[0] // 2
                f.attrs["image_shape"] = shape
                f.attrs["geometry"] = json.dumps({**geometry, "image_shape": [int(shape[0]), int(shape[1])]})
            elif how == "affine_nan":
                affine = f.attrs["affine"].copy()
                affine[1, 1] = np.nan
                f.attrs["affine"] = affine
            elif how == "affine_singular":
                affine = f.attrs["affine"].copy()
                affine[:3, 1] = 0
                f.attrs["affine"] = affine
            elif how == "geometry_garbage":
                f.attrs["geometry"] = "{not json"
            elif how == "operator_unknown":
                f.attrs["geometry"] = json.dumps({**geometry, "operator": "FanBeamCT9000"})
            elif how == "modality_pet":
                f.attrs["modality"] = "PET"
            elif how == "modality_swapped":
                f.attrs["modality"] = "CT" if f.attrs["modality"] == "MR" else "MR"
            elif how == "data_2d":
                set_data(data.reshape(data.shape[0], -1))
            elif how == "angles_nan":
                angles = f["arrays"]["angles_deg"][()]
                angles[1] = np.nan
                del f["arrays"]["angles_deg"]
                f["arrays"].create_dataset("angles_deg", data=angles)
            elif how == "angles_count":
                angles = f["arrays"]["angles_deg"][()][:-1]
                del f["arrays"]["angles_deg"]
                f["arrays"].create_dataset("angles_deg", data=angles)
            elif how == "detectors":
                f.attrs["geometry"] = json.dumps({**geometry, "n_detectors": geometry["n_detectors"] + 5})
            elif how == "version_99":
                f.attrs["version"] = 99
            elif how == "coils":
                f.attrs["geometry"] = json.dumps({**geometry, "coils": geometry["coils"] * 2})
            elif how == "real_kspace":
                set_data(np.abs(data).astype(np.float32))
            elif how == "mask_length":
                mask = f["arrays"]["mask"][()]
                del f["arrays"]["mask"]
                f["arrays"].create_dataset("mask", data=np.concatenate([mask, mask[:5]]))
            elif how == "mask_empty":
                mask = f["arrays"]["mask"][()]
                del f["arrays"]["mask"]
                f["arrays"].create_dataset("mask", data=np.zeros_like(mask))
            elif how == "coil_maps_shape":
                maps = f["arrays"]["coil_maps"][()]
                del f["arrays"]["coil_maps"]
                f["arrays"].create_dataset("coil_maps", data=maps[:, :-1])
            elif how == "calibration_zero":
                f.attrs["geometry"] = json.dumps({**geometry, "calibration_lines": 0})
            else:
                raise ValueError(how)
    return build


def small_rf(*, n_tx: int, n_ch: int, seed: int, focus: float, angles: np.ndarray):
    """Random channel data of an 8-element, 0.3 mm pitch array: ``n_ch`` 1 is RF, 2 IQ at 5 MHz;
    ``focus`` the transmits' focus distance (0 plane, < 0 diverging)."""
    from medprior.io.ultrasound import RFData
    n_el, n_ax = 8, 64
    positions = np.zeros((n_el, 3))
    positions[:, 0] = (np.arange(n_el) - (n_el - 1) / 2) * 0.3e-3
    return RFData(raw_data=np.random.default_rng(seed).standard_normal((1, n_tx, n_ax, n_el, n_ch)).astype(np.float32),
                  probe_geometry=positions, sampling_frequency=20e6, center_frequency=5e6,
                  demodulation_frequency=5e6 if n_ch == 2 else 0.0, initial_times=np.zeros(n_tx),
                  t0_delays=np.zeros((n_tx, n_el)), tx_apodizations=np.ones((n_tx, n_el)),
                  focus_distances=np.full(n_tx, focus), transmit_origins=np.zeros((n_tx, 3)), polar_angles=angles)


def zea(rel: str, how: str) -> Build:
    """Write a small good zea ultrasound file ``rel`` (``write_zea``), then break it: ``good`` (kept),
    ``truncated`` (first half of the bytes), ``no_sampling_frequency`` (``scan/sampling_frequency``
    deleted), ``raw_data_nan`` (one NaN in ``data/raw_data``)."""
    def build(t: Path) -> None:
        from medprior.io.ultrasound import write_zea
        path = write_zea(small_rf(n_tx=2, n_ch=1, seed=3, focus=0.0, angles=np.array([-0.1, 0.1])), t / rel)
        if how == "truncated":
            raw = path.read_bytes()
            path.write_bytes(raw[: len(raw) // 2])
        elif how != "good":
            with h5py.File(path, "r+") as f:
                if how == "no_sampling_frequency":
                    del f["scan/sampling_frequency"]
                elif how == "raw_data_nan":
                    data = f["data/raw_data"][()]
                    data.flat[data.size // 2] = np.nan
                    f["data/raw_data"][...] = data
                else:
                    raise ValueError(f"unknown zea breakage {how!r}")
    return build


def prior_json(rel: str, how: str) -> Build:
    def build(t: Path) -> None:
        path = t / rel / "prior.json"
        if how == "garbage":
            path.write_text("{ this is not json")
        elif how == "missing":
            path.unlink()
        elif how == "kind":
            content = json.loads(path.read_text())
            content["kind"] = "hologram9d"
            path.write_text(json.dumps(content))
        else:
            raise ValueError(how)
    return build


def histogram(how: str) -> Build:
    def build(t: Path) -> None:
        path = t / "hist" / "histogram_mean.json"
        content = json.loads(path.read_text())
        if how == "nan":
            content["quantiles"][DROPPED][500] = float("nan")
        elif how == "no_target":
            del content["quantiles"][DROPPED]
        path.write_text(json.dumps(content))
    return build


def contrast(folder: str, name: str) -> str:
    return f"{folder}/{CASE}/{CASE}-{name}.nii.gz"


# ------------------------------------------------------------------ the table

ROWS: list[Row] = []


def row(id: str, cls: str, argv, **kwargs) -> None:
    ROWS.append(Row(id=f"{cls}-{id}", cls=cls, argv=tuple(argv), **kwargs))


CT_SIM = ("--views", "8", "--slices", "2")
MR_SIM = ("--size", "32", "32", "--coils", "4", "--slices", "2", "--acceleration", "2")
DDS = ("--method", "dds", "--prior", "{t}/ct_prior", "--param", "steps=1", "--device", "cpu")
SAMPLE = ("sample", "--prior", "{t}/ct_prior", "--n", "1", "--steps", "1", "--device", "cpu")
SYN = ("synthesize", "--model", "{t}/reg", "--input", "{t}/cases", "--device", "cpu", "--steps", "2")
SPLIT = ("brasyn-split", "--cases", "{t}/full")
CHECK = ("check-prior", "--prior", "{t}/ct_prior", "--config", "{t}/check.yaml", "--device", "cpu")
TRAIN = ("train-prior", "--config", "{t}/train.yaml", "--device", "cpu", "--time-budget", "10")
FIT = ("fit-histogram-mean", "--config", "{t}/hist.yaml")
EVS = ("evaluate", "synthesis", "--submission", "{t}/sub", "--truth", "{t}/truth")
SFIG = ("synthesis-figure", "--case", "{case}", "--cases", "{t}/cases", "--truth", "{t}/truth",
        "--submission", "reg={t}/sub")
CHECKSUB = ("check-submission", "--submission", "{t}/sub", "--cases", "{t}/cases")
EVR = ("evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/rec.nii.gz")

U_SIM = ("ct.nii.gz",)
U_DDS = ("ct64.h5", "ct_prior")
U_SAMPLE = ("ct_prior",)
U_SYN = ("reg", "cases")
U_SPLIT = ("full",)
U_CHECK = ("ct_prior", "check.yaml", "ct64.nii.gz")
U_TRAIN = ("train.yaml", "ct.nii.gz", "ct2.nii.gz")
U_FIT = ("hist.yaml", "full")
U_EVS = ("sub", "truth")
U_SFIG = ("cases", "truth", "sub")
U_CHECKSUB = ("sub", "cases")
U_EVR = ("ct.nii.gz", "rec.nii.gz")

# ---------------------------------------------------------------- 1. output safety
O = "output"

# convert
row("convert-out-is-input", O, ["convert", "{t}/ct.nii.gz", "{t}/ct.nii.gz"], uses=U_SIM, names=("ct.nii.gz",))
row("convert-out-is-input-spelled-relative", O, ["convert", "{t}/ct.nii.gz", "./ct.nii.gz"], uses=U_SIM,
    names=("ct.nii.gz",))
row("convert-out-is-symlink-to-input", O, ["convert", "{t}/ct.nii.gz", "{t}/link.nii.gz"], uses=U_SIM,
    build=symlink("link.nii.gz", "ct.nii.gz"), names=("link.nii.gz",))
row("convert-out-is-user-folder", O, ["convert", "{t}/ct.nii.gz", "{t}/out.nii.gz"], uses=U_SIM,
    build=mkdir("out.nii.gz"), names=("out.nii.gz",))
row("convert-out-is-empty-folder", O, ["convert", "{t}/ct.nii.gz", "{t}/out.nii.gz"], uses=U_SIM,
    build=mkdir("out.nii.gz", user_file=False), names=("out.nii.gz",))
row("convert-out-inside-dicom-input", O, ["convert", "{t}/dcm", "{t}/dcm/out.nii.gz"], uses=("dcm",),
    names=(("dcm/out.nii.gz", "dcm"),))
row("convert-out-is-dicom-input-folder", O, ["convert", "{t}/dcm", "{t}/dcm"], uses=("dcm",), names=("dcm",))
row("convert-out-reserved-sidecar-name", O, ["convert", "{t}/ct.nii.gz", "{t}/out.nii.gz.provenance.json"],
    uses=U_SIM, names=("out.nii.gz.provenance.json",))
row("convert-out-parent-is-a-file", O, ["convert", "{t}/ct.nii.gz", "{t}/ct.nii.gz/out.nii.gz"], uses=U_SIM,
    names=("ct.nii.gz",))

# phantom (a dataset folder the command adds case entries to)
PH_CT = ("phantom", "ct", "--size", "16", "16", "8", "--seed", "7")
row("phantom-ct-out-is-a-file", O, [*PH_CT, "--out", "{t}/data"], build=write("data"), names=("data",))
row("phantom-ct-case-folder-is-user-folder", O, [*PH_CT, "--out", "{t}/data"], build=mkdir("data/CT-0007"),
    names=("CT-0007",))
row("phantom-ct-case-folder-is-a-file", O, [*PH_CT, "--out", "{t}/data"], build=write("data/CT-0007"),
    names=("CT-0007",))
row("phantom-ct-case-nifti-is-a-folder", O, [*PH_CT, "--out", "{t}/data"], build=mkdir("data/CT-0007.nii.gz"),
    names=("CT-0007.nii.gz",))
row("phantom-ct-case-sidecar-is-a-folder", O, [*PH_CT, "--out", "{t}/data"],
    build=mkdir("data/CT-0007.provenance.json"), names=(("CT-0007.provenance.json", "CT-0007"),))
row("phantom-ct-out-reserved-sidecar-name", O, [*PH_CT, "--out", "{t}/data.provenance.json"],
    names=("data.provenance.json",))
row("phantom-brain-case-folder-is-user-folder", O,
    ["phantom", "brain", "--size", "48", "48", "30", "--seed", "7", "--out", "{t}/brats"],
    build=mkdir("brats/BraTS-GLI-00007-000"), names=("BraTS-GLI-00007-000",))
row("phantom-petct-imagesTr-is-a-file", O,
    ["phantom", "petct", "--size", "16", "16", "12", "--seed", "7", "--out", "{t}/hk"],
    build=write("hk/imagesTr"), names=("imagesTr",))

# qc
row("qc-out-is-input", O, ["qc", "{t}/ct.nii.gz", "--out", "{t}/ct.nii.gz"], uses=U_SIM, names=("ct.nii.gz",))
row("qc-out-is-second-image", O, ["qc", "{t}/ct.nii.gz", "{t}/mr.nii.gz", "--out", "{t}/mr.nii.gz"],
    uses=("ct.nii.gz", "mr.nii.gz"), names=("mr.nii.gz",))
row("qc-out-is-label", O, ["qc", "{t}/mr.nii.gz", "--label", "{t}/seg.nii.gz", "--out", "{t}/seg.nii.gz"],
    uses=("mr.nii.gz", "seg.nii.gz"), names=("seg.nii.gz",))
row("qc-out-is-symlink-to-input", O, ["qc", "{t}/ct.nii.gz", "--out", "{t}/q.png"], uses=U_SIM,
    build=symlink("q.png", "ct.nii.gz"), names=("q.png",))
row("qc-out-is-user-folder", O, ["qc", "{t}/ct.nii.gz", "--out", "{t}/q.png"], uses=U_SIM, build=mkdir("q.png"),
    names=("q.png",))
row("qc-out-reserved-sidecar-name", O, ["qc", "{t}/ct.nii.gz", "--out", "{t}/q.png.provenance.json"], uses=U_SIM,
    names=("q.png.provenance.json",))
row("qc-out-inside-dicom-input", O, ["qc", "{t}/dcm", "--out", "{t}/dcm/q.png"], uses=("dcm",),
    names=(("dcm/q.png", "dcm"),))
row("qc-out-parent-is-a-file", O, ["qc", "{t}/ct.nii.gz", "--out", "{t}/ct.nii.gz/q.png"], uses=U_SIM,
    names=("ct.nii.gz",))

# simulate
SIM_CT = ("simulate", "ct", "{t}/ct.nii.gz", *CT_SIM)
SIM_MR = ("simulate", "mri", "{t}/mr.nii.gz", *MR_SIM)
row("simulate-ct-out-is-input", O, [*SIM_CT, "--out", "{t}/ct.nii.gz"], uses=U_SIM, names=("ct.nii.gz",))
row("simulate-ct-truth-out-is-input", O, [*SIM_CT, "--out", "{t}/m.h5", "--truth-out", "{t}/ct.nii.gz"],
    uses=U_SIM, names=("ct.nii.gz",))
row("simulate-ct-out-equals-truth-out", O, [*SIM_CT, "--out", "{t}/m.h5", "--truth-out", "{t}/m.h5"],
    uses=U_SIM, names=("m.h5",))
row("simulate-ct-out-is-user-folder", O, [*SIM_CT, "--out", "{t}/m.h5"], uses=U_SIM, build=mkdir("m.h5"),
    names=("m.h5",))
row("simulate-ct-truth-out-is-user-folder", O, [*SIM_CT, "--out", "{t}/m.h5", "--truth-out", "{t}/t.nii.gz"],
    uses=U_SIM, build=mkdir("t.nii.gz"), names=("t.nii.gz",))
row("simulate-ct-out-reserved-sidecar-name", O, [*SIM_CT, "--out", "{t}/m.provenance.json"], uses=U_SIM,
    names=("m.provenance.json",))
row("simulate-ct-truth-out-reserved-sidecar-name", O,
    [*SIM_CT, "--out", "{t}/m.h5", "--truth-out", "{t}/m.h5.provenance.json"], uses=U_SIM,
    names=("m.h5.provenance.json",))
row("simulate-ct-out-inside-dicom-input", O, ["simulate", "ct", "{t}/dcm", *CT_SIM, "--out", "{t}/dcm/m.h5"],
    uses=("dcm",), names=(("dcm/m.h5", "dcm"),))
row("simulate-ct-out-is-symlink-to-input", O, [*SIM_CT, "--out", "{t}/m.h5"], uses=U_SIM,
    build=symlink("m.h5", "ct.nii.gz"), names=("m.h5",))
row("simulate-ct-out-parent-is-a-file", O, [*SIM_CT, "--out", "{t}/ct.nii.gz/m.h5"], uses=U_SIM,
    names=("ct.nii.gz",))
row("simulate-mri-out-is-input", O, [*SIM_MR, "--out", "{t}/mr.nii.gz"], uses=("mr.nii.gz",), names=("mr.nii.gz",))
row("simulate-mri-truth-out-is-input", O, [*SIM_MR, "--out", "{t}/m.h5", "--truth-out", "{t}/mr.nii.gz"],
    uses=("mr.nii.gz",), names=("mr.nii.gz",))

# recon
FBP = ("recon", "{t}/ct.h5", "--method", "fbp")
row("recon-out-is-input", O, [*FBP, "--out", "{t}/ct.h5"], uses=("ct.h5",), names=("ct.h5",))
row("recon-out-is-user-folder", O, [*FBP, "--out", "{t}/r.nii.gz"], uses=("ct.h5",), build=mkdir("r.nii.gz"),
    names=("r.nii.gz",))
row("recon-out-reserved-sidecar-name", O, [*FBP, "--out", "{t}/r.nii.gz.provenance.json"], uses=("ct.h5",),
    names=("r.nii.gz.provenance.json",))
row("recon-out-parent-is-a-file", O, [*FBP, "--out", "{t}/ct.h5/r.nii.gz"], uses=("ct.h5",), names=("ct.h5",))
row("recon-out-is-symlink-to-input", O, [*FBP, "--out", "{t}/r.nii.gz"], uses=("ct.h5",),
    build=symlink("r.nii.gz", "ct.h5"), names=("r.nii.gz",))
row("recon-mri-out-is-input", O, ["recon", "{t}/mr.h5", "--method", "zerofill", "--out", "{t}/mr.h5"],
    uses=("mr.h5",), names=("mr.h5",))
DDS_CT = ("recon", "{t}/ct64.h5", *DDS)
row("recon-dds-out-is-measurement", O, [*DDS_CT, "--out", "{t}/ct64.h5"], uses=U_DDS, names=("ct64.h5",))
row("recon-dds-out-inside-prior", O, [*DDS_CT, "--out", "{t}/ct_prior/r.nii.gz"], uses=U_DDS,
    names=(("ct_prior/r.nii.gz", "ct_prior"),))
row("recon-dds-out-is-prior-weights", O, [*DDS_CT, "--out", "{t}/ct_prior/weights.safetensors"], uses=U_DDS,
    names=("weights.safetensors",))
row("recon-dds-out-is-prior-json", O, [*DDS_CT, "--out", "{t}/ct_prior/prior.json"], uses=U_DDS,
    names=("prior.json",))
row("recon-dds-out-is-prior-folder", O, [*DDS_CT, "--out", "{t}/ct_prior"], uses=U_DDS, names=("ct_prior",))

# evaluate (recon)
row("evaluate-out-is-reference", O, [*EVR, "--out", "{t}/ct.nii.gz"], uses=U_EVR, names=("ct.nii.gz",))
row("evaluate-out-is-estimate", O, [*EVR, "--out", "{t}/rec.nii.gz"], uses=U_EVR, names=("rec.nii.gz",))
row("evaluate-out-is-user-folder", O, [*EVR, "--out", "{t}/e.json"], uses=U_EVR, build=mkdir("e.json"),
    names=("e.json",))
row("evaluate-out-reserved-sidecar-name", O, [*EVR, "--out", "{t}/e.provenance.json"], uses=U_EVR,
    names=("e.provenance.json",))
row("evaluate-out-is-estimates-sidecar", O, [*EVR, "--out", "{t}/rec.nii.gz.provenance.json"], uses=U_EVR,
    names=("rec.nii.gz.provenance.json",))
row("evaluate-out-inside-dicom-reference", O,
    ["evaluate", "--reference", "{t}/dcm", "--estimate", "{t}/rec.nii.gz", "--out", "{t}/dcm/e.json"],
    uses=("dcm", "rec.nii.gz"), names=(("dcm/e.json", "dcm"),))
row("evaluate-out-parent-is-a-file", O, [*EVR, "--out", "{t}/rec.nii.gz/e.json"], uses=U_EVR,
    names=("rec.nii.gz",))
# evaluate synthesis
row("evaluate-synthesis-out-is-submission-file", O, [*EVS, "--out", "{t}/sub/{case}-t2w.nii.gz"], uses=U_EVS,
    names=(f"{CASE}-t2w.nii.gz",))
row("evaluate-synthesis-out-inside-submission", O, [*EVS, "--out", "{t}/sub/scores.json"], uses=U_EVS,
    names=(("sub/scores.json", "sub"),))
row("evaluate-synthesis-out-inside-truth", O, [*EVS, "--out", "{t}/truth/scores.json"], uses=U_EVS,
    names=(("truth/scores.json", "truth"),))
row("evaluate-synthesis-out-is-truth-folder", O, [*EVS, "--out", "{t}/truth"], uses=U_EVS, names=("truth",))
row("evaluate-synthesis-out-is-truth-seg", O, [*EVS, "--out", "{t}/truth/{case}/{case}-seg.nii.gz"], uses=U_EVS,
    names=(f"{CASE}-seg.nii.gz",))
row("evaluate-synthesis-out-inside-cases", O, [*EVS, "--cases", "{t}/cases", "--out", "{t}/cases/s.json"],
    uses=(*U_EVS, "cases"), names=(("cases/s.json", "cases"),))
row("evaluate-synthesis-out-reserved-sidecar-name", O, [*EVS, "--out", "{t}/s.provenance.json"], uses=U_EVS,
    names=("s.provenance.json",))
row("evaluate-synthesis-out-is-user-folder", O, [*EVS, "--out", "{t}/s.json"], uses=U_EVS, build=mkdir("s.json"),
    names=("s.json",))

# figure
FIG = ("figure", "{t}/ct.nii.gz", "{t}/rec.nii.gz")
row("figure-out-is-reference", O, [*FIG, "--out", "{t}/ct.nii.gz"], uses=U_EVR, names=("ct.nii.gz",))
row("figure-out-is-estimate", O, [*FIG, "--out", "{t}/rec.nii.gz"], uses=U_EVR, names=("rec.nii.gz",))
row("figure-out-is-second-estimate", O, [*FIG, "{t}/ct2.nii.gz", "--out", "{t}/ct2.nii.gz"],
    uses=(*U_EVR, "ct2.nii.gz"), names=("ct2.nii.gz",))
row("figure-out-is-user-folder", O, [*FIG, "--out", "{t}/f.png"], uses=U_EVR, build=mkdir("f.png"),
    names=("f.png",))
row("figure-out-reserved-sidecar-name", O, [*FIG, "--out", "{t}/f.provenance.json"], uses=U_EVR,
    names=("f.provenance.json",))
row("figure-out-inside-dicom-reference", O, ["figure", "{t}/dcm", "{t}/rec.nii.gz", "--out", "{t}/dcm/f.png"],
    uses=("dcm", "rec.nii.gz"), names=(("dcm/f.png", "dcm"),))

# train-prior
row("train-prior-out-is-config", O, [*TRAIN, "--out", "{t}/train.yaml"], uses=U_TRAIN, names=("train.yaml",))
row("train-prior-out-is-a-file", O, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN, build=write("p"), names=("p",))
row("train-prior-out-is-user-folder", O, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN, build=mkdir("p"),
    names=("p",))
row("train-prior-out-contains-config", O, ["train-prior", "--config", "{t}/cfg/train.yaml", "--device", "cpu",
                                            "--time-budget", "10", "--out", "{t}/cfg"],
    uses=U_TRAIN, build=move("train.yaml", "cfg/train.yaml"), names=("cfg",))
row("train-prior-out-contains-training-data", O, [*TRAIN, "--out", "{t}/data"], uses=U_TRAIN,
    build=steps(move("ct.nii.gz", "data/ct.nii.gz"), replace_text("train.yaml", "/ct.nii.gz", "/data/ct.nii.gz")),
    names=("data",), notes="the training volumes are inputs too, named inside the config")
row("train-prior-out-reserved-sidecar-name", O, [*TRAIN, "--out", "{t}/p.provenance.json"], uses=U_TRAIN,
    names=("p.provenance.json",))
row("train-prior-out-is-unmarked-prior-folder", O, [*TRAIN, "--out", "{t}/ct_prior"], uses=(*U_TRAIN, "ct_prior"),
    names=("ct_prior",))
row("train-prior-workdir-is-config", O, [*TRAIN, "--out", "{t}/p", "--workdir", "{t}/train.yaml"], uses=U_TRAIN,
    names=("train.yaml",))
row("train-prior-workdir-equals-out", O, [*TRAIN, "--out", "{t}/p", "--workdir", "{t}/p"], uses=U_TRAIN,
    names=("p",))

# sample
row("sample-out-inside-prior", O, [*SAMPLE, "--out", "{t}/ct_prior/s.nii.gz"], uses=U_SAMPLE,
    names=(("ct_prior/s.nii.gz", "ct_prior"),))
row("sample-out-is-prior-weights", O, [*SAMPLE, "--out", "{t}/ct_prior/weights.safetensors"], uses=U_SAMPLE,
    names=("weights.safetensors",))
row("sample-figure-is-prior-json", O, [*SAMPLE, "--out", "{t}/s.nii.gz", "--figure", "{t}/ct_prior/prior.json"],
    uses=U_SAMPLE, names=("prior.json",))
row("sample-out-is-prior-folder", O, [*SAMPLE, "--out", "{t}/ct_prior"], uses=U_SAMPLE, names=("ct_prior",))
row("sample-out-equals-figure", O, [*SAMPLE, "--out", "{t}/s.nii.gz", "--figure", "{t}/s.nii.gz"], uses=U_SAMPLE,
    names=("s.nii.gz",))
row("sample-out-is-user-folder", O, [*SAMPLE, "--out", "{t}/s.nii.gz"], uses=U_SAMPLE, build=mkdir("s.nii.gz"),
    names=("s.nii.gz",))
row("sample-figure-is-user-folder", O, [*SAMPLE, "--out", "{t}/s.nii.gz", "--figure", "{t}/s.png"], uses=U_SAMPLE,
    build=mkdir("s.png"), names=("s.png",))
row("sample-out-reserved-sidecar-name", O, [*SAMPLE, "--out", "{t}/s.provenance.json"], uses=U_SAMPLE,
    names=("s.provenance.json",))
row("sample-figure-reserved-sidecar-name", O,
    [*SAMPLE, "--out", "{t}/s.nii.gz", "--figure", "{t}/s.nii.gz.provenance.json"], uses=U_SAMPLE,
    names=("s.nii.gz.provenance.json",))

# check-prior
row("check-prior-out-is-config", O, [*CHECK, "--out", "{t}/check.yaml"], uses=U_CHECK, names=("check.yaml",))
row("check-prior-out-is-prior-json", O, [*CHECK, "--out", "{t}/ct_prior/prior.json"], uses=U_CHECK,
    names=("prior.json",))
row("check-prior-out-inside-prior", O, [*CHECK, "--out", "{t}/ct_prior/c.json"], uses=U_CHECK,
    names=(("ct_prior/c.json", "ct_prior"),))
row("check-prior-figure-is-config", O, [*CHECK, "--out", "{t}/c.json", "--figure", "{t}/check.yaml"],
    uses=U_CHECK, names=("check.yaml",))
row("check-prior-out-equals-figure", O, [*CHECK, "--out", "{t}/c.json", "--figure", "{t}/c.json"], uses=U_CHECK,
    names=("c.json",))
row("check-prior-out-is-user-folder", O, [*CHECK, "--out", "{t}/c.json"], uses=U_CHECK, build=mkdir("c.json"),
    names=("c.json",))
row("check-prior-out-reserved-sidecar-name", O, [*CHECK, "--out", "{t}/c.provenance.json"], uses=U_CHECK,
    names=("c.provenance.json",))
row("check-prior-out-is-holdout-volume", O, [*CHECK, "--out", "{t}/ct64.nii.gz"], uses=U_CHECK,
    names=("ct64.nii.gz",), notes="the held-out volume is an input, named inside the config")

# synthesize
row("synthesize-output-is-input", O, [*SYN, "--output", "{t}/cases"], uses=U_SYN, names=("cases",))
row("synthesize-output-inside-input", O, [*SYN, "--output", "{t}/cases/sub"], uses=U_SYN,
    names=(("cases/sub", "cases"),))
row("synthesize-output-contains-input", O,
    ["synthesize", "--model", "{t}/reg", "--input", "{t}/data/cases", "--device", "cpu", "--steps", "2",
     "--output", "{t}/data"], uses=U_SYN, build=move("cases", "data/cases"), names=("data",))
row("synthesize-output-is-model", O, [*SYN, "--output", "{t}/reg"], uses=U_SYN, names=("reg",))
row("synthesize-output-inside-model", O, [*SYN, "--output", "{t}/reg/sub"], uses=U_SYN,
    names=(("reg/sub", "reg"),))
row("synthesize-output-contains-model", O,
    ["synthesize", "--model", "{t}/models/reg", "--input", "{t}/cases", "--device", "cpu", "--steps", "2",
     "--output", "{t}/models"], uses=U_SYN, build=move("reg", "models/reg"), names=("models",))
row("synthesize-output-is-a-file", O, [*SYN, "--output", "{t}/sub"], uses=U_SYN, build=write("sub"),
    names=("sub",))
row("synthesize-output-is-user-folder", O, [*SYN, "--output", "{t}/mine"], uses=U_SYN, build=mkdir("mine"),
    names=("mine",))
row("synthesize-output-reserved-sidecar-name", O, [*SYN, "--output", "{t}/sub.provenance.json"], uses=U_SYN,
    names=("sub.provenance.json",))

# brasyn-split
row("brasyn-split-out-is-cases", O, [*SPLIT, "--out", "{t}/full", "--truth", "{t}/tru"], uses=U_SPLIT,
    names=("full",))
row("brasyn-split-truth-is-cases", O, [*SPLIT, "--out", "{t}/inp", "--truth", "{t}/full"], uses=U_SPLIT,
    names=("full",))
row("brasyn-split-out-equals-truth", O, [*SPLIT, "--out", "{t}/x", "--truth", "{t}/x"], uses=U_SPLIT,
    names=("x",))
row("brasyn-split-out-inside-cases", O, [*SPLIT, "--out", "{t}/full/x", "--truth", "{t}/tru"], uses=U_SPLIT,
    names=(("full/x", "full"),))
row("brasyn-split-out-contains-cases", O,
    ["brasyn-split", "--cases", "{t}/d/full", "--out", "{t}/d", "--truth", "{t}/tru"], uses=U_SPLIT,
    build=move("full", "d/full"), names=("d",))
row("brasyn-split-truth-inside-out", O, [*SPLIT, "--out", "{t}/a", "--truth", "{t}/a/b"], uses=U_SPLIT,
    names=("a",))
row("brasyn-split-out-is-a-file", O, [*SPLIT, "--out", "{t}/inp", "--truth", "{t}/tru"], uses=U_SPLIT,
    build=write("inp"), names=("inp",))
row("brasyn-split-truth-is-a-file", O, [*SPLIT, "--out", "{t}/inp", "--truth", "{t}/tru"], uses=U_SPLIT,
    build=write("tru"), names=("tru",))
row("brasyn-split-out-is-user-folder", O, [*SPLIT, "--out", "{t}/inp", "--truth", "{t}/tru"], uses=U_SPLIT,
    build=mkdir("inp"), names=("inp",))
row("brasyn-split-out-reserved-sidecar-name", O, [*SPLIT, "--out", "{t}/inp.provenance.json", "--truth", "{t}/tru"],
    uses=U_SPLIT, names=("inp.provenance.json",))
row("brasyn-split-truth-reserved-sidecar-name", O,
    [*SPLIT, "--out", "{t}/inp", "--truth", "{t}/tru.provenance.json"], uses=U_SPLIT, names=("tru.provenance.json",))

# fit-histogram-mean
row("fit-histogram-mean-out-is-config", O, [*FIT, "--out", "{t}/hist.yaml"], uses=U_FIT, names=("hist.yaml",))
row("fit-histogram-mean-out-is-a-file", O, [*FIT, "--out", "{t}/h"], uses=U_FIT, build=write("h"), names=("h",))
row("fit-histogram-mean-out-is-user-folder", O, [*FIT, "--out", "{t}/h"], uses=U_FIT, build=mkdir("h"),
    names=("h",))
row("fit-histogram-mean-out-reserved-sidecar-name", O, [*FIT, "--out", "{t}/h.provenance.json"], uses=U_FIT,
    names=("h.provenance.json",))
row("fit-histogram-mean-out-contains-config", O,
    ["fit-histogram-mean", "--config", "{t}/cfg/hist.yaml", "--out", "{t}/cfg"], uses=U_FIT,
    build=move("hist.yaml", "cfg/hist.yaml"), names=("cfg",))
row("fit-histogram-mean-out-is-training-cases", O, [*FIT, "--out", "{t}/full"], uses=U_FIT, names=("full",),
    notes="the training cases are inputs, named inside the config")
row("fit-histogram-mean-out-inside-training-case", O, [*FIT, "--out", "{t}/full/{case}/h"], uses=U_FIT,
    names=((f"{CASE}/h", CASE),))

# synthesis-figure
row("synthesis-figure-out-is-a-t1n", O, [*SFIG, "--out", "{t}/" + contrast("cases", "t1n")], uses=U_SFIG,
    names=(f"{CASE}-t1n.nii.gz",))
row("synthesis-figure-out-is-truth", O, [*SFIG, "--out", "{t}/" + contrast("truth", DROPPED)], uses=U_SFIG,
    names=(f"{CASE}-{DROPPED}.nii.gz",))
row("synthesis-figure-out-is-submission-file", O, [*SFIG, "--out", "{t}/sub/{case}-t2w.nii.gz"], uses=U_SFIG,
    names=(f"{CASE}-t2w.nii.gz",))
row("synthesis-figure-out-inside-submission", O, [*SFIG, "--out", "{t}/sub/fig.png"], uses=U_SFIG,
    names=(("sub/fig.png", "sub"),))
row("synthesis-figure-out-inside-truth", O, [*SFIG, "--out", "{t}/truth/fig.png"], uses=U_SFIG,
    names=(("truth/fig.png", "truth"),))
row("synthesis-figure-out-is-user-folder", O, [*SFIG, "--out", "{t}/f.png"], uses=U_SFIG, build=mkdir("f.png"),
    names=("f.png",))
row("synthesis-figure-out-reserved-sidecar-name", O, [*SFIG, "--out", "{t}/f.provenance.json"], uses=U_SFIG,
    names=("f.provenance.json",))

# ---------------------------------------------------------------- 2. non-finite / inconsistent inputs
I = "input"

for how in NIFTI_BAD:
    row(f"info-nifti-{how}", I, ["info", "{t}/ct.nii.gz"], uses=U_SIM, build=nifti("ct.nii.gz", how),
        names=("ct.nii.gz",))
    row(f"convert-nifti-{how}", I, ["convert", "{t}/ct.nii.gz", "{t}/c.nii.gz"], uses=U_SIM,
        build=nifti("ct.nii.gz", how), names=("ct.nii.gz",))
    row(f"qc-image-{how}", I, ["qc", "{t}/ct.nii.gz", "--out", "{t}/q.png"], uses=U_SIM,
        build=nifti("ct.nii.gz", how), names=("ct.nii.gz",))
    row(f"simulate-ct-volume-{how}", I, [*SIM_CT, "--out", "{t}/m.h5"], uses=U_SIM, build=nifti("ct.nii.gz", how),
        names=("ct.nii.gz",))
    row(f"evaluate-reference-{how}", I, [*EVR, "--out", "{t}/e.json"], uses=U_EVR, build=nifti("ct.nii.gz", how),
        names=("ct.nii.gz",))
for how in ("nan", "inf", "truncated", "nan_affine"):
    row(f"qc-label-{how}", I, ["qc", "{t}/mr.nii.gz", "--label", "{t}/seg.nii.gz", "--out", "{t}/q.png"],
        uses=("mr.nii.gz", "seg.nii.gz"), build=nifti("seg.nii.gz", how), names=("seg.nii.gz",))
    row(f"simulate-mri-volume-{how}", I, [*SIM_MR, "--out", "{t}/m.h5"], uses=("mr.nii.gz",),
        build=nifti("mr.nii.gz", how), names=("mr.nii.gz",))
    row(f"evaluate-estimate-{how}", I, [*EVR, "--out", "{t}/e.json"], uses=U_EVR, build=nifti("rec.nii.gz", how),
        names=("rec.nii.gz",))
    row(f"figure-reference-{how}", I, [*FIG, "--out", "{t}/f.png"], uses=U_EVR, build=nifti("ct.nii.gz", how),
        names=("ct.nii.gz",))
    row(f"figure-estimate-{how}", I, [*FIG, "--out", "{t}/f.png"], uses=U_EVR, build=nifti("rec.nii.gz", how),
        names=("rec.nii.gz",))
row("simulate-ct-volume-is-2d", I, [*SIM_CT, "--out", "{t}/m.h5"], uses=U_SIM, build=nifti("ct.nii.gz", "flat2d"),
    names=("ct.nii.gz",))
for how in ("random", "truncated", "missing", "empty"):
    row(f"info-dicom-{how}", I, ["info", "{t}/dcm"], uses=("dcm",), build=dicom(how), names=("dcm",))
    row(f"convert-dicom-{how}", I, ["convert", "{t}/dcm", "{t}/c.nii.gz"], uses=("dcm",), build=dicom(how),
        names=("dcm",))

for how, keys in (("truncated", ()), ("no_sampling_frequency", ("scan/sampling_frequency",)),
                  ("raw_data_nan", ("data/raw_data",))):
    row(f"info-zea-{how}", I, ["info", "{t}/us.hdf5"], build=zea("us.hdf5", how), names=("us.hdf5", *keys))

# measurement files
MEASUREMENT_CT = {
    "data_nan": ("data",), "data_inf": ("data",),
    "no_attr_modality": ("modality",), "no_attr_geometry": ("geometry",), "no_attr_image_shape": ("image_shape",),
    "no_attr_affine": ("affine",), "no_attr_metadata": ("metadata",), "no_data": ("data",),
    "no_arrays": ("arrays",), "no_array_angles_deg": ("angles_deg",),
    "image_shape_k": (("image_shape", "data"),), "image_shape_ij": (("image_shape", "data"),),
    "affine_nan": ("affine",), "affine_singular": ("affine",), "geometry_garbage": ("geometry",),
    "operator_unknown": ("FanBeamCT9000",), "modality_pet": ("PET",), "modality_swapped": (),
    "data_2d": ("data",), "angles_nan": ("angles_deg",), "angles_count": (("angles_deg", "angles", "views"),),
    "detectors": (("n_detectors", "detector"),), "version_99": ("version",),
    "empty": (), "truncated": (), "random": (),
}
for how, keys in MEASUREMENT_CT.items():
    row(f"recon-fbp-measurement-{how}", I, [*FBP, "--out", "{t}/r.nii.gz"], uses=("ct.h5",), build=h5("ct.h5", how),
        names=("ct.h5", *keys))
row("recon-tv-measurement-data_nan", I, ["recon", "{t}/ct.h5", "--method", "tv", "--tv-iterations", "2",
                                         "--out", "{t}/r.nii.gz"], uses=("ct.h5",), build=h5("ct.h5", "data_nan"),
    names=("ct.h5",))
CGSENSE = ("recon", "{t}/mr.h5", "--method", "cgsense", "--cg-iterations", "2")
MEASUREMENT_MR = {
    "data_nan": ("data",), "data_inf": ("data",), "coils": (("coil", "coils"),), "real_kspace": ("data",),
    "mask_length": ("mask",), "mask_empty": ("mask",), "calibration_zero": (("calibration_lines", "calibration"),),
    "image_shape_k": (("image_shape", "data"),), "affine_nan": ("affine",), "no_array_mask": ("mask",),
    "modality_swapped": (), "coil_maps_shape": ("arrays/coil_maps",),
}
for how, keys in MEASUREMENT_MR.items():
    row(f"recon-cgsense-measurement-{how}", I, [*CGSENSE, "--out", "{t}/r.nii.gz"], uses=("mr.h5",),
        build=h5("mr.h5", how), names=("mr.h5", *keys))
for how, keys in (("data_nan", ("data",)), ("image_shape_k", (("image_shape", "data"),)),
                  ("affine_nan", ("affine",))):
    row(f"recon-dds-measurement-{how}", I, [*DDS_CT, "--out", "{t}/r.nii.gz"], uses=U_DDS,
        build=h5("ct64.h5", how), names=("ct64.h5", *keys))

# priors
PRIOR_NAMES = (("weights.safetensors", "ct_prior"),)
for variant in ("ct_prior_nan", "ct_prior_inf", "ct_prior_badsha"):
    row(f"recon-dds-prior-{variant}", I, ["recon", "{t}/ct64.h5", "--method", "dds", "--prior", f"{{t}}/{variant}",
                                          "--param", "steps=1", "--device", "cpu", "--out", "{t}/r.nii.gz"],
        uses=("ct64.h5", variant), names=((variant, "weights.safetensors"),))
    row(f"sample-prior-{variant}", I, ["sample", "--prior", f"{{t}}/{variant}", "--n", "1", "--steps", "1",
                                       "--device", "cpu", "--out", "{t}/s.nii.gz"],
        uses=(variant,), names=((variant, "weights.safetensors"),))
    row(f"check-prior-prior-{variant}", I, ["check-prior", "--prior", f"{{t}}/{variant}", "--config",
                                            "{t}/check.yaml", "--device", "cpu", "--out", "{t}/c.json"],
        uses=(variant, "check.yaml", "ct64.nii.gz"), names=((variant, "weights.safetensors"),))
row("recon-dds-prior-weights-missing", I, [*DDS_CT, "--out", "{t}/r.nii.gz"], uses=U_DDS,
    build=remove("ct_prior/weights.safetensors"), names=("weights.safetensors",))
for how in ("garbage", "missing", "kind"):
    row(f"recon-dds-prior-json-{how}", I, [*DDS_CT, "--out", "{t}/r.nii.gz"], uses=U_DDS,
        build=prior_json("ct_prior", how), names=("prior.json",))
row("sample-prior-weights-missing", I, [*SAMPLE, "--out", "{t}/s.nii.gz"], uses=U_SAMPLE,
    build=remove("ct_prior/weights.safetensors"), names=("weights.safetensors",))
row("sample-prior-json-garbage", I, [*SAMPLE, "--out", "{t}/s.nii.gz"], uses=U_SAMPLE,
    build=prior_json("ct_prior", "garbage"), names=("prior.json",))
row("sample-conditional-prior", I, ["sample", "--prior", "{t}/cwdm", "--n", "1", "--steps", "1", "--device", "cpu",
                                    "--out", "{t}/s.nii.gz"], uses=("cwdm",), names=("cwdm",))
for method in ("dds", "mbir", "dps", "reddiff"):
    row(f"recon-{method}-ct-prior-on-mri-measurement", I,
        ["recon", "{t}/mr64.h5", "--method", method, "--prior", "{t}/ct_prior", "--param", "steps=1",
         "--device", "cpu", "--out", "{t}/r.nii.gz"], uses=("mr64.h5", "ct_prior"), names=(("ct_prior", "mr64.h5"),))
for method in ("dds", "reddiff"):
    row(f"recon-{method}-brain-prior-on-ct-measurement", I,
        ["recon", "{t}/ct128.h5", "--method", method, "--prior", "{t}/brain_prior", "--param", "steps=1",
         "--device", "cpu", "--out", "{t}/r.nii.gz"], uses=("ct128.h5", "brain_prior"),
        names=(("brain_prior", "ct128.h5"),))
row("recon-dds-prior-size-differs-from-measurement", I,
    ["recon", "{t}/ct.h5", *DDS, "--out", "{t}/r.nii.gz"], uses=("ct.h5", "ct_prior"), names=("ct_prior",))
row("recon-dds-resample-field-of-view-not-square", I,
    ["recon", "{t}/ct.h5", *DDS, "--resample", "prior", "--out", "{t}/r.nii.gz"], uses=("ct.h5", "ct_prior"),
    build=h5("ct.h5", "grid_not_square"), names=("ct.h5",))
row("recon-dds-conditional-prior", I,
    ["recon", "{t}/ct64.h5", "--method", "dds", "--prior", "{t}/cwdm", "--param", "steps=1", "--device", "cpu",
     "--out", "{t}/r.nii.gz"], uses=("ct64.h5", "cwdm"), names=("cwdm",))
row("check-prior-config-garbage", I, [*CHECK, "--out", "{t}/c.json"], uses=U_CHECK,
    build=write("check.yaml", b"name: [unclosed\n  - : :"), names=("check.yaml",))
row("check-prior-holdout-volume-nan", I, [*CHECK, "--out", "{t}/c.json"], uses=U_CHECK,
    build=nifti("ct64.nii.gz", "nan"), names=("ct64.nii.gz",))
for variant, names in (("reg_nan", (("reg_nan", "weights.safetensors"),)),
                       ("cwdm_nan", (("cwdm_nan", "weights.safetensors"),))):
    row(f"synthesize-model-{variant}", I, ["synthesize", "--model", f"{{t}}/{variant}", "--input", "{t}/cases",
                                           "--device", "cpu", "--steps", "2", "--output", "{t}/sub"],
        uses=(variant, "cases"), names=names)
SYN_HIST = ("synthesize", "--model", "{t}/hist", "--input", "{t}/cases", "--device", "cpu", "--output", "{t}/sub")
row("synthesize-histogram-model-nan", I, SYN_HIST, uses=("hist", "cases"), build=histogram("nan"),
    names=("histogram_mean.json",))
row("synthesize-histogram-model-lacks-target", I, SYN_HIST, uses=("hist", "cases"), build=histogram("no_target"),
    names=("histogram_mean.json",))
row("synthesize-model-is-a-slice-prior", I, ["synthesize", "--model", "{t}/ct_prior", "--input", "{t}/cases",
                                            "--device", "cpu", "--output", "{t}/sub"],
    uses=("ct_prior", "cases"), names=("ct_prior",))
row("synthesize-model-folder-empty", I, [*SYN[:2], "{t}/empty", *SYN[3:], "--output", "{t}/sub"],
    uses=("cases",), build=mkdir("empty", user_file=False), names=("empty",))
row("synthesize-model-missing", I, [*SYN[:2], "{t}/nothing", *SYN[3:], "--output", "{t}/sub"],
    uses=("cases",), names=("nothing",))

# synthesis cases
CASE_BAD = {
    "two-missing": (remove(contrast("cases", "t1c")), (CASE,)),
    "none-missing": (copy(contrast("full", DROPPED), contrast("cases", DROPPED)), (CASE,)),
    "shapes-differ": (nifti(contrast("cases", "t1c"), "shape"), ((CASE, "t1c"),)),
    "t1n-nan": (nifti(contrast("cases", "t1n"), "nan"), (f"{CASE}-t1n.nii.gz",)),
    "t1n-inf": (nifti(contrast("cases", "t1n"), "inf"), (f"{CASE}-t1n.nii.gz",)),
    "t1c-truncated": (nifti(contrast("cases", "t1c"), "truncated"), (f"{CASE}-t1c.nii.gz",)),
    "t2f-nan-affine": (nifti(contrast("cases", "t2f"), "nan_affine"), (f"{CASE}-t2f.nii.gz",)),
    "t1c-affine-differs": (nifti(contrast("cases", "t1c"), "shift"), ((CASE, "t1c"),)),
    "t1n-random-bytes": (nifti(contrast("cases", "t1n"), "random"), (f"{CASE}-t1n.nii.gz",)),
    "no-cases": (steps(remove(f"cases/{CASE}")), ("cases",)),
}
for what, (build, names) in CASE_BAD.items():
    row(f"synthesize-cases-{what}", I, [*SYN, "--output", "{t}/sub"], uses=(*U_SYN, "full"), build=build,
        names=names)
row("synthesize-cwdm-cases-shapes-differ", I, ["synthesize", "--model", "{t}/cwdm", "--input", "{t}/cases",
                                                "--device", "cpu", "--steps", "2", "--output", "{t}/sub"],
    uses=("cwdm", "cases"), build=nifti(contrast("cases", "t1c"), "shape"), names=((CASE, "t1c"),))

SUB_FILE = f"sub/{CASE}-{DROPPED}.nii.gz"
SUB_BAD = {
    "nan": (nifti(SUB_FILE, "nan"), (f"{CASE}-{DROPPED}.nii.gz",)),
    "inf": (nifti(SUB_FILE, "inf"), (f"{CASE}-{DROPPED}.nii.gz",)),
    "truncated": (nifti(SUB_FILE, "truncated"), (f"{CASE}-{DROPPED}.nii.gz",)),
    "wrong-shape": (nifti(SUB_FILE, "shape"), (f"{CASE}-{DROPPED}.nii.gz",)),
    "affine-off": (nifti(SUB_FILE, "shift"), (f"{CASE}-{DROPPED}.nii.gz",)),
    "nan-affine": (nifti(SUB_FILE, "nan_affine"), (f"{CASE}-{DROPPED}.nii.gz",)),
    "extra-file": (write("sub/notes.txt"), ("notes.txt",)),
    "missing-file": (remove(SUB_FILE), (f"{CASE}-{DROPPED}.nii.gz",)),
    "wrong-contrast-name": (move(SUB_FILE, f"sub/{CASE}-t1n.nii.gz"), (f"{CASE}-t1n.nii.gz",)),
}
for what, (build, names) in SUB_BAD.items():
    row(f"check-submission-{what}", I, CHECKSUB, uses=U_CHECKSUB, build=build, names=names)
row("check-submission-cases-two-missing", I, CHECKSUB, uses=U_CHECKSUB, build=remove(contrast("cases", "t1c")),
    names=(CASE,))
for what in ("nan", "truncated", "missing-file", "wrong-shape"):
    build, names = SUB_BAD[what]
    row(f"evaluate-synthesis-submission-{what}", I, [*EVS, "--out", "{t}/s.json"], uses=U_EVS, build=build,
        names=names)
TRUTH_FILE = contrast("truth", DROPPED)
row("evaluate-synthesis-truth-nan", I, [*EVS, "--out", "{t}/s.json"], uses=U_EVS, build=nifti(TRUTH_FILE, "nan"),
    names=(f"{CASE}-{DROPPED}.nii.gz",))
row("evaluate-synthesis-truth-truncated", I, [*EVS, "--out", "{t}/s.json"], uses=U_EVS,
    build=nifti(TRUTH_FILE, "truncated"), names=(f"{CASE}-{DROPPED}.nii.gz",))
row("evaluate-synthesis-truth-seg-missing", I, [*EVS, "--out", "{t}/s.json"], uses=U_EVS,
    build=remove(contrast("truth", "seg")), names=(CASE,))
row("evaluate-synthesis-truth-seg-shape-differs", I, [*EVS, "--out", "{t}/s.json"], uses=U_EVS,
    build=nifti(contrast("truth", "seg"), "shape"), names=(f"{CASE}-seg.nii.gz",))
row("evaluate-synthesis-cases-lack-another-contrast", I, [*EVS, "--cases", "{t}/cases", "--out", "{t}/s.json"],
    uses=(*U_EVS, "cases", "full"),
    build=steps(copy(contrast("full", DROPPED), contrast("cases", DROPPED)), remove(contrast("cases", "t1n"))),
    names=(CASE,))
row("synthesis-figure-unknown-case", I, [*SFIG[:2], "BraTS-GLI-09999-000", *SFIG[3:], "--out", "{t}/f.png"],
    uses=U_SFIG, names=("BraTS-GLI-09999-000",))
row("synthesis-figure-truth-nan", I, [*SFIG, "--out", "{t}/f.png"], uses=U_SFIG, build=nifti(TRUTH_FILE, "nan"),
    names=(f"{CASE}-{DROPPED}.nii.gz",))
row("synthesis-figure-submission-nan", I, [*SFIG, "--out", "{t}/f.png"], uses=U_SFIG,
    build=nifti(SUB_FILE, "nan"), names=(f"{CASE}-{DROPPED}.nii.gz",))
row("synthesis-figure-case-t1n-nan", I, [*SFIG, "--out", "{t}/f.png"], uses=U_SFIG,
    build=nifti(contrast("cases", "t1n"), "nan"), names=(f"{CASE}-t1n.nii.gz",))
row("synthesis-figure-submission-not-name-equals-folder", I, [*SFIG[:-1], "{t}/sub", "--out", "{t}/f.png"],
    uses=U_SFIG, names=(("--submission", "NAME=FOLDER"),))
row("synthesis-figure-submission-folder-missing", I, [*SFIG[:-1], "reg={t}/nothing", "--out", "{t}/f.png"],
    uses=U_SFIG, names=("nothing",))

SPLIT_BAD = {
    "t1n-truncated": (nifti(contrast("full", "t1n"), "truncated"), (f"{CASE}-t1n.nii.gz",)),
    "t2w-nan": (nifti(contrast("full", "t2w"), "nan"), (f"{CASE}-t2w.nii.gz",)),
    "t1c-inf": (nifti(contrast("full", "t1c"), "inf"), (f"{CASE}-t1c.nii.gz",)),
    "t2f-nan-affine": (nifti(contrast("full", "t2f"), "nan_affine"), (f"{CASE}-t2f.nii.gz",)),
    "t1n-empty-file": (nifti(contrast("full", "t1n"), "empty"), (f"{CASE}-t1n.nii.gz",)),
    "t1n-random-bytes": (nifti(contrast("full", "t1n"), "random"), (f"{CASE}-t1n.nii.gz",)),
    "case-lacks-a-contrast": (remove(contrast("full", "t2f")), (CASE,)),
    "shapes-differ": (nifti(contrast("full", "t1c"), "shape"), (CASE,)),
    "no-cases": (remove(f"full/{CASE}"), ("full",)),
}
for what, (build, names) in SPLIT_BAD.items():
    row(f"brasyn-split-{what}", I, [*SPLIT, "--out", "{t}/inp", "--truth", "{t}/tru"], uses=U_SPLIT, build=build,
        names=names)

CONFIG_BAD = {
    "garbage-yaml": (lambda c: write(c, b"name: [unclosed\n  - : :"), ()),
    "missing-file": (lambda c: remove(c), ()),
    "unknown-key": (lambda c: edit_yaml(c, set_key("flavour", "vanilla")), ("flavour",)),
}
for what, (make, keys) in CONFIG_BAD.items():
    row(f"train-prior-config-{what}", I, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN, build=make("train.yaml"),
        names=("train.yaml", *keys))
    row(f"fit-histogram-mean-config-{what}", I, [*FIT, "--out", "{t}/h"], uses=U_FIT, build=make("hist.yaml"),
        names=("hist.yaml", *keys))
row("train-prior-training-volume-nan", I, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN, build=nifti("ct.nii.gz", "nan"),
    names=("ct.nii.gz",))
row("train-prior-training-volume-truncated", I, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN,
    build=nifti("ct.nii.gz", "truncated"), names=("ct.nii.gz",))
row("train-prior-training-pattern-matches-nothing", I, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN,
    build=replace_text("train.yaml", "/ct.nii.gz", "/nothing-*.nii.gz"), names=("nothing-*.nii.gz",))

def init_from(folder: str) -> Build:
    """train.yaml's ``init`` (the prior training starts from) set to the row's ``folder``."""
    def build(t: Path) -> None:
        edit_yaml("train.yaml", set_key("init", str(t / folder)))(t)
    return build


for what, folder, names in (("missing-folder", "no_prior", ("no_prior",)),
                            ("other-network", "ct_prior", ("train.yaml", "init", "network")),
                            ("weights-hash-mismatch", "ct_prior_badsha", ("ct_prior_badsha", "sha256"))):
    row(f"train-prior-config-init-{what}", I, [*TRAIN, "--out", "{t}/p"], uses=(*U_TRAIN, "ct_prior", "ct_prior_badsha"),
        build=init_from(folder), names=names)

def block_volume(rel: str) -> Build:
    """A uniform block in a 60 x 60 x 2 MR volume: at the default centre fraction (5 central lines)
    ESPIRiT finds no coil sensitivity in it."""
    def build(t: Path) -> None:
        data = np.zeros((60, 60, 2), np.float32)
        data[15:45, 12:48] = 100.0
        nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), t / rel)
    return build


row("simulate-mri-too-few-calibration-lines-for-espirit", I,
    ["simulate", "mri", "{t}/block.nii.gz", "--coils", "2", "--acceleration", "2", "--out", "{t}/m.h5"],
    uses=(), build=block_volume("block.nii.gz"), names=("--center-fraction", "calibration"))
row("fit-histogram-mean-config-contrast-not-any", I, [*FIT, "--out", "{t}/h"], uses=U_FIT,
    build=edit_yaml("hist.yaml", set_key("data.contrast", "t2f")), names=("hist.yaml",))
row("fit-histogram-mean-training-case-nan", I, [*FIT, "--out", "{t}/h"], uses=U_FIT,
    build=nifti(contrast("full", "t1c"), "nan"), names=(f"{CASE}-t1c.nii.gz",))
row("fit-histogram-mean-training-case-truncated", I, [*FIT, "--out", "{t}/h"], uses=U_FIT,
    build=nifti(contrast("full", "t2f"), "truncated"), names=(f"{CASE}-t2f.nii.gz",))
row("fit-histogram-mean-training-pattern-matches-nothing", I, [*FIT, "--out", "{t}/h"], uses=U_FIT,
    build=replace_text("hist.yaml", f"/full/{CASE}", "/nothing-*"), names=("nothing-*",))

# ---------------------------------------------------------------- 3. bad parameters
P = "param"


def sim_ct(option: str, *values: str) -> list[str]:
    return ["simulate", "ct", "{t}/ct.nii.gz", *CT_SIM, option, *values, "--out", "{t}/m.h5"]


def sim_mr(option: str, *values: str) -> list[str]:
    return ["simulate", "mri", "{t}/mr.nii.gz", *MR_SIM, option, *values, "--out", "{t}/m.h5"]


for option, values in (("--views", "0"), ("--views", "-3"), ("--arc", "nan"), ("--arc", "inf"),
                       ("--start", "nan"), ("--photons", "nan"), ("--photons", "inf"), ("--photons", "-5"),
                       ("--slices", "-1"), ("--size", "0 0"), ("--size", "-8 8"), ("--size", "0 16"),
                       ("--seed", "-1")):
    row(f"simulate-ct{option}={values.replace(' ', 'x')}", P, sim_ct(option, *values.split()), uses=U_SIM,
        names=(option,))
for option, values in (("--acceleration", "0"), ("--acceleration", "-2"), ("--acceleration", "nan"),
                       ("--acceleration", "inf"), ("--center-fraction", "nan"), ("--center-fraction", "-0.1"),
                       ("--center-fraction", "1.5"), ("--coils", "0"), ("--coils", "-2"), ("--snr-db", "nan"),
                       ("--snr-db", "inf"), ("--size", "0 0"), ("--slices", "-2")):
    row(f"simulate-mri{option}={values.replace(' ', 'x')}", P, sim_mr(option, *values.split()), uses=("mr.nii.gz",),
        names=(option,))
for method, measurement, option, value in (
        ("cgsense", "mr.h5", "--cg-iterations", "0"), ("cgsense", "mr.h5", "--cg-iterations", "-1"),
        ("tv", "ct.h5", "--tv-iterations", "0"), ("tv", "ct.h5", "--tv-iterations", "-5"),
        ("tv", "ct.h5", "--tv-cg-iterations", "0"), ("tv", "ct.h5", "--ct-tv-lambda", "nan"),
        ("tv", "ct.h5", "--ct-tv-lambda", "-1"), ("tv", "ct.h5", "--ct-tv-lambda", "inf"),
        ("tv", "ct.h5", "--ct-tv-rho", "0"), ("tv", "ct.h5", "--ct-tv-rho", "nan"),
        ("tv", "ct.h5", "--ct-tv-rho", "-1"),
        ("tv", "mr.h5", "--mri-tv-lambda", "nan"), ("tv", "mr.h5", "--mri-tv-rho", "-1")):
    fast = () if option == "--tv-iterations" else ("--tv-iterations", "2")  # if the value is not refused
    row(f"recon-{method}{option}={value}", P, ["recon", f"{{t}}/{measurement}", "--method", method, *fast,
                                                option, value, "--out", "{t}/r.nii.gz"],
        uses=(measurement,), names=(option,))
for method, param, name in (("dds", "steps=0", "steps"), ("dds", "steps=-3", "steps"), ("dds", "steps=2.5", "steps"),
                            ("dds", "steps=nan", "steps"), ("dds", "eta=nan", "eta"), ("dds", "eta=inf", "eta"),
                            ("dds", "foo=1", "foo"), ("dds", "steps", "steps"), ("dds", "steps=abc", "steps"),
                            ("dds", "samples=0", "samples"), ("mbir", "steps=0", "steps"),
                            ("dps", "step_size=nan", "step_size"), ("reddiff", "lr=nan", "lr"),
                            ("reddiff", "lam=-1", "lam"), ("dds", "adapt=lora", "adapt"), ("dds", "adapt=1", "adapt"),
                            ("dds", "adapt_rank=0", "adapt_rank"), ("mbir", "adapt_lr=0", "adapt_lr"),
                            ("dds", "adapt_lr=nan", "adapt_lr"), ("dds", "adapt_every=0", "adapt_every"),
                            ("mbir", "adapt_layers=encoder", "adapt_layers"), ("reddiff", "adapt=all", "adapt"),
                            ("reddiff", "adapt_iterations=51", "adapt_iterations"),
                            ("dps", "adapt=d3ip", "adapt")):
    row(f"recon-{method}-param-{param}", P,
        ["recon", "{t}/ct64.h5", "--method", method, "--prior", "{t}/ct_prior", "--param", "steps=1",
         "--param", param, "--device", "cpu", "--out", "{t}/r.nii.gz"], uses=U_DDS, names=(name,))
for option, value in (("--slice-batch", "0"), ("--slice-batch", "-1"), ("--slice-batch", "abc"),
                      ("--slice-batch", "2.5"), ("--device", "tpu"), ("--seed", "-1")):
    row(f"recon-dds{option}={value}", P, [*DDS_CT, option, value, "--out", "{t}/r.nii.gz"], uses=U_DDS,
        names=(option,))
row("recon-dds--resample=coarse", P, [*DDS_CT, "--resample", "coarse", "--out", "{t}/r.nii.gz"], uses=U_DDS,
    names=("--resample",))
for mode in ("prior", "pixel"):
    row(f"recon-fbp--resample={mode}", P, [*FBP, "--resample", mode, "--out", "{t}/r.nii.gz"], uses=("ct.h5",),
        names=("--resample",))
for low, high in (("1000", "-1000"), ("5", "5"), ("nan", "1000"), ("nan", "nan"), ("0", "inf")):
    row(f"evaluate--window={low},{high}", P, [*EVR, "--window", low, high, "--out", "{t}/e.json"], uses=U_EVR,
        names=("--window",))
for low, high in (("1", "0"), ("nan", "1"), ("5", "5")):
    row(f"figure--window={low},{high}", P, [*FIG, "--window", low, high, "--out", "{t}/f.png"], uses=U_EVR,
        names=("--window",))
row("evaluate-missing-estimate", P, ["evaluate", "--reference", "{t}/ct.nii.gz", "--out", "{t}/e.json"],
    uses=U_EVR, names=("--estimate",))
row("evaluate-synthesis-missing-truth", P, ["evaluate", "synthesis", "--submission", "{t}/sub", "--out",
                                           "{t}/s.json"], uses=U_EVS, names=("--truth",))
row("figure--names-count-differs", P, [*FIG, "--names", "a", "b", "--out", "{t}/f.png"], uses=U_EVR,
    names=("--names",))
row("qc--names-count-differs", P, ["qc", "{t}/ct.nii.gz", "--names", "a", "b", "--out", "{t}/q.png"], uses=U_SIM,
    names=("--names",))
row("qc-no-images", P, ["qc", "--out", "{t}/q.png"], names=("images",))
for kind, option, values in (("ct", "--size", "0 0 0"), ("ct", "--size", "-16 16 8"), ("ct", "--size", "16 16 0"),
                             ("ct", "--cases", "0"), ("ct", "--cases", "-1"), ("ct", "--seed", "-1"),
                             ("brain", "--size", "0 0 0"), ("brain", "--cases", "0"),
                             ("petct", "--size", "0 0 0"), ("petct", "--size", "-8 8 8"), ("petct", "--cases", "0")):
    size = () if option == "--size" else ("--size", *{"ct": ("16", "16", "8"), "brain": ("48", "48", "30"),
                                                      "petct": ("16", "16", "12")}[kind])
    row(f"phantom-{kind}{option}={values.replace(' ', 'x')}", P,
        ["phantom", kind, *size, option, *values.split(), "--out", "{t}/data"], names=(option,))
for option, value in (("--n", "0"), ("--n", "-1"), ("--steps", "0"), ("--steps", "-2"), ("--eta", "nan"),
                      ("--eta", "-1"), ("--batch-size", "0"), ("--batch-size", "-4"), ("--device", "tpu"),
                      ("--seed", "-1")):
    row(f"sample{option}={value}", P, [*SAMPLE, "--sampler", "ddim", option, value, "--out", "{t}/s.nii.gz"],
        uses=U_SAMPLE, names=(option,))
row("check-prior--device=tpu", P, [*CHECK, "--device", "tpu", "--out", "{t}/c.json"], uses=U_CHECK,
    names=("--device",))
for key, value in (("check.samples", 0), ("check.steps", 0)):
    row(f"check-prior-config-{key}={value}", P, [*CHECK, "--out", "{t}/c.json"], uses=U_CHECK,
        build=edit_yaml("check.yaml", set_key(key, value)), names=("check.yaml", key.split(".")[-1]))
for option, value in (("--steps", "0"), ("--steps", "-1"), ("--device", "tpu"), ("--seed", "-1")):
    row(f"synthesize{option}={value}", P, [*SYN, option, value, "--output", "{t}/sub"], uses=U_SYN, names=(option,))
for option, value in (("--time-budget", "0"), ("--time-budget", "-5"), ("--time-budget", "nan"),
                      ("--time-budget", "inf"), ("--device", "tpu")):
    row(f"train-prior{option}={value}", P, [*TRAIN, option, value, "--out", "{t}/p"], uses=U_TRAIN, names=(option,))
for key, value in (("training.steps", 0), ("training.batch_size", 0), ("training.learning_rate", float("nan")),
                   ("image_size", [0, 16]), ("schedule.steps", 0)):
    label = "nan" if value != value else str(value).replace(" ", "")
    row(f"train-prior-config-{key}={label}", P, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN,
        build=edit_yaml("train.yaml", set_key(key, value)),
        names=("train.yaml", (key.split(".")[-1], key.split(".")[-1] + ".0")))
row("train-prior-config-data.phantom.gamma-not-echo", P, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN,
    build=edit_yaml("train.yaml", set_key("data", {"phantom": {"generator": "ct_body", "seeds": [1], "gamma": [0.1, 0.2]}})),
    names=("train.yaml", "gamma"))
row("fit-histogram-mean-config-image_size=0", P, [*FIT, "--out", "{t}/h"], uses=U_FIT,
    build=edit_yaml("hist.yaml", set_key("image_size", [0, 16, 8])),
    names=("hist.yaml", ("image_size", "image_size.0")))
row("brasyn-split--seed=-1", P, [*SPLIT, "--seed", "-1", "--out", "{t}/inp", "--truth", "{t}/tru"], uses=U_SPLIT,
    names=("--seed",))
row("info--series-uid-on-nifti", P, ["info", "{t}/ct.nii.gz", "--series-uid", "1.2.3"], uses=U_SIM,
    names=(("--series-uid", "series_uid"),))
# usage errors (argparse)
row("simulate-usage--views=2.5", P, sim_ct("--views", "2.5"), uses=U_SIM, names=("--views",))
row("sample-usage--n=2.5", P, [*SAMPLE, "--n", "2.5", "--out", "{t}/s.nii.gz"], uses=U_SAMPLE, names=("--n",))
row("phantom-usage--size=16x16x8.5", P, ["phantom", "ct", "--size", "16", "16", "8.5", "--out", "{t}/data"],
    names=("--size",))
row("recon-usage-unknown-option", P, [*FBP, "--bogus", "1", "--out", "{t}/r.nii.gz"], uses=("ct.h5",),
    names=("--bogus",))
row("simulate-usage-missing-out", P, ["simulate", "ct", "{t}/ct.nii.gz"], uses=U_SIM, names=("--out",))
row("convert-usage-no-arguments", P, ["convert"], names=(("input", "output"),))
row("synthesize-usage--steps=two", P, [*SYN, "--steps", "two", "--output", "{t}/sub"], uses=U_SYN,
    names=("--steps",))

# ---------------------------------------------------------------- 4. runaway requests
R = "runaway"
for id, argv, uses, option in (
        ("simulate-ct--views=1e8", sim_ct("--views", "100000000"), U_SIM, "--views"),
        ("simulate-ct--size=1e5", sim_ct("--size", "100000", "100000"), U_SIM, "--size"),
        ("simulate-mri--size=1e5", sim_mr("--size", "100000", "100000"), ("mr.nii.gz",), "--size"),
        ("simulate-mri--coils=1e7", sim_mr("--coils", "10000000"), ("mr.nii.gz",), "--coils"),
        ("sample--n=1e8", [*SAMPLE, "--n", "100000000", "--out", "{t}/s.nii.gz"], U_SAMPLE, "--n"),
        ("phantom-ct--size=1e5", ["phantom", "ct", "--size", "100000", "100000", "100000", "--out", "{t}/data"], (),
         "--size"),
        ("phantom-brain--size=4000", ["phantom", "brain", "--size", "4000", "4000", "4000", "--out", "{t}/data"], (),
         "--size"),
        ("phantom-petct--size=1e5", ["phantom", "petct", "--size", "100000", "100000", "100000", "--out", "{t}/data"],
         (), "--size"),
):
    row(id, R, argv, uses=uses, names=(option, MEMORY), max_seconds=20)
row("phantom-ct--cases=1e9", R, ["phantom", "ct", "--size", "16", "16", "8", "--cases", "1000000000", "--out",
                                  "{t}/data"], names=("--cases",), max_seconds=20, timeout=15,
    notes="a billion cases: terabytes of disk and years of work; refuse, naming --cases")

# ---------------------------------------------------------------- 5. earlier good outputs
E = "earlier"
CONVERT_GOOD = good("convert", "{t}/ct.nii.gz", "{t}/c.nii.gz")
row("convert-empty-input-onto-good-output", E, ["convert", "{t}/bad.nii.gz", "{t}/c.nii.gz"], uses=U_SIM,
    build=steps(CONVERT_GOOD, write("bad.nii.gz", b"")), names=("bad.nii.gz",))
row("convert-nan-input-onto-good-output", E, ["convert", "{t}/bad.nii.gz", "{t}/c.nii.gz"], uses=U_SIM,
    build=steps(CONVERT_GOOD, nifti("bad.nii.gz", "nan", source="ct.nii.gz")), names=("bad.nii.gz",))
row("convert-series-uid-on-nifti-onto-good-output", E,
    ["convert", "{t}/ct.nii.gz", "{t}/c.nii.gz", "--series-uid", "1.2.3"], uses=U_SIM, build=CONVERT_GOOD,
    names=(("--series-uid", "series_uid"),))
PHANTOM_GOOD = good(*PH_CT, "--out", "{t}/data")
for option, values in (("--size", "0 0 0"), ("--cases", "0"), ("--seed", "-1")):
    argv = ["phantom", "ct", "--size", *("16 16 8" if option != "--size" else values).split(),
            *((option, *values.split()) if option != "--size" else ()), "--out", "{t}/data"]
    if option != "--seed":
        argv[argv.index("--out"):argv.index("--out")] = ["--seed", "7"]
    row(f"phantom-ct{option}={values.replace(' ', 'x')}-onto-good-dataset", E, argv, build=PHANTOM_GOOD,
        names=(option,))
QC_GOOD = good("qc", "{t}/ct.nii.gz", "--out", "{t}/q.png")
row("qc-nan-image-onto-good-png", E, ["qc", "{t}/bad.nii.gz", "--out", "{t}/q.png"], uses=U_SIM,
    build=steps(QC_GOOD, nifti("bad.nii.gz", "nan", source="ct.nii.gz")), names=("bad.nii.gz",))
row("qc-truncated-label-onto-good-png", E, ["qc", "{t}/ct.nii.gz", "--label", "{t}/bad.nii.gz", "--out", "{t}/q.png"],
    uses=U_SIM, build=steps(QC_GOOD, nifti("bad.nii.gz", "truncated", source="ct.nii.gz")), names=("bad.nii.gz",))
SIM_GOOD = good(*SIM_CT, "--out", "{t}/m.h5", "--truth-out", "{t}/t.nii.gz")
row("simulate--views=0-onto-good-measurement", E, [*SIM_CT, "--views", "0", "--out", "{t}/m.h5", "--truth-out",
                                                  "{t}/t.nii.gz"], uses=U_SIM, build=SIM_GOOD, names=("--views",))
row("simulate--photons=nan-onto-good-measurement", E,
    [*SIM_CT, "--photons", "nan", "--out", "{t}/m.h5", "--truth-out", "{t}/t.nii.gz"], uses=U_SIM, build=SIM_GOOD,
    names=("--photons",))
row("simulate-nan-volume-onto-good-measurement", E,
    ["simulate", "ct", "{t}/bad.nii.gz", *CT_SIM, "--out", "{t}/m.h5", "--truth-out", "{t}/t.nii.gz"], uses=U_SIM,
    build=steps(SIM_GOOD, nifti("bad.nii.gz", "nan", source="ct.nii.gz")), names=("bad.nii.gz",))
RECON_GOOD = good(*FBP, "--out", "{t}/r.nii.gz")
row("recon-nan-measurement-onto-good-recon", E, ["recon", "{t}/bad.h5", "--method", "fbp", "--out", "{t}/r.nii.gz"],
    uses=("ct.h5",), build=steps(RECON_GOOD, copy("ct.h5", "bad.h5"), h5("bad.h5", "data_nan")), names=("bad.h5",))
row("recon-tv--tv-iterations=-1-onto-good-recon", E,
    ["recon", "{t}/ct.h5", "--method", "tv", "--tv-iterations", "-1", "--out", "{t}/r.nii.gz"], uses=("ct.h5",),
    build=RECON_GOOD, names=("--tv-iterations",))
row("recon-dds-nan-prior-onto-good-recon", E,
    ["recon", "{t}/ct64.h5", "--method", "dds", "--prior", "{t}/ct_prior_nan", "--param", "steps=1", "--device",
     "cpu", "--out", "{t}/r.nii.gz"], uses=("ct64.h5", "ct_prior_nan"),
    build=good("recon", "{t}/ct64.h5", "--method", "fbp", "--out", "{t}/r.nii.gz"),
    names=(("ct_prior_nan", "weights.safetensors"),))
EVAL_GOOD = good(*EVR, "--out", "{t}/e.json")
row("evaluate--window=5,5-onto-good-metrics", E, [*EVR, "--window", "5", "5", "--out", "{t}/e.json"], uses=U_EVR,
    build=EVAL_GOOD, names=("--window",))
row("evaluate-nan-estimate-onto-good-metrics", E,
    ["evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/bad.nii.gz", "--out", "{t}/e.json"],
    uses=U_EVR, build=steps(EVAL_GOOD, nifti("bad.nii.gz", "nan", source="rec.nii.gz")), names=("bad.nii.gz",))
FIG_GOOD = good(*FIG, "--out", "{t}/f.png")
row("figure--window=nan-onto-good-figure", E, [*FIG, "--window", "nan", "1", "--out", "{t}/f.png"], uses=U_EVR,
    build=FIG_GOOD, names=("--window",))
row("figure-truncated-estimate-onto-good-figure", E, ["figure", "{t}/ct.nii.gz", "{t}/bad.nii.gz", "--out",
                                                      "{t}/f.png"],
    uses=U_EVR, build=steps(FIG_GOOD, nifti("bad.nii.gz", "truncated", source="rec.nii.gz")), names=("bad.nii.gz",))
SAMPLE_GOOD = good(*SAMPLE, "--out", "{t}/s.nii.gz", "--figure", "{t}/s.png")
row("sample--steps=0-onto-good-samples", E, [*SAMPLE, "--steps", "0", "--out", "{t}/s.nii.gz", "--figure",
                                             "{t}/s.png"], uses=U_SAMPLE, build=SAMPLE_GOOD, names=("--steps",))
row("sample-nan-prior-onto-good-samples", E, ["sample", "--prior", "{t}/ct_prior_nan", "--n", "1", "--steps", "1",
                                              "--device", "cpu", "--out", "{t}/s.nii.gz", "--figure", "{t}/s.png"],
    uses=("ct_prior", "ct_prior_nan"), build=SAMPLE_GOOD, names=(("ct_prior_nan", "weights.safetensors"),))
row("check-prior--device=tpu-onto-good-report", E, [*CHECK, "--device", "tpu", "--out", "{t}/c.json"],
    uses=U_CHECK, build=good(*CHECK, "--out", "{t}/c.json"), names=("--device",))
SYN_GOOD = good(*SYN, "--output", "{t}/sub")
row("synthesize--steps=0-onto-good-submission", E, [*SYN, "--steps", "0", "--output", "{t}/sub"], uses=U_SYN,
    build=SYN_GOOD, names=("--steps",))
row("synthesize-nan-model-onto-good-submission", E,
    ["synthesize", "--model", "{t}/reg_nan", "--input", "{t}/cases", "--device", "cpu", "--output", "{t}/sub"],
    uses=(*U_SYN, "reg_nan"), build=SYN_GOOD, names=(("reg_nan", "weights.safetensors"),))
row("synthesize-bad-cases-onto-good-submission", E, [*SYN, "--output", "{t}/sub"], uses=U_SYN,
    build=steps(SYN_GOOD, remove(contrast("cases", "t1c"))), names=(CASE,))
SPLIT_GOOD = good(*SPLIT, "--out", "{t}/inp", "--truth", "{t}/tru")
row("brasyn-split--seed=-1-onto-good-split", E, [*SPLIT, "--seed", "-1", "--out", "{t}/inp", "--truth", "{t}/tru"],
    uses=U_SPLIT, build=SPLIT_GOOD, names=("--seed",))
row("brasyn-split-truncated-case-onto-good-split", E, [*SPLIT, "--out", "{t}/inp", "--truth", "{t}/tru"],
    uses=U_SPLIT, build=steps(SPLIT_GOOD, nifti(contrast("full", "t1n"), "truncated")), names=(f"{CASE}-t1n.nii.gz",))
TRAIN_GOOD = good(*TRAIN, "--out", "{t}/p")
row("train-prior--time-budget=0-onto-good-prior", E, [*TRAIN, "--time-budget", "0", "--out", "{t}/p"],
    uses=U_TRAIN, build=TRAIN_GOOD, names=("--time-budget",))
row("train-prior-nan-volume-onto-good-prior", E, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN,
    build=steps(TRAIN_GOOD, nifti("ct.nii.gz", "nan")), names=("ct.nii.gz",))
row("fit-histogram-mean-contrast-not-any-onto-good-model", E, [*FIT, "--out", "{t}/h"], uses=U_FIT,
    build=steps(good(*FIT, "--out", "{t}/h"), edit_yaml("hist.yaml", set_key("data.contrast", "t2f"))),
    names=("hist.yaml",))
row("synthesis-figure-unknown-case-onto-good-figure", E,
    [*SFIG[:2], "BraTS-GLI-09999-000", *SFIG[3:], "--out", "{t}/f.png"], uses=U_SFIG,
    build=good(*SFIG, "--out", "{t}/f.png"), names=("BraTS-GLI-09999-000",))
row("train-prior-lr=1e30-diverges-onto-good-prior", E, [*TRAIN, "--workdir", "{t}/w2", "--out", "{t}/p"],
    uses=U_TRAIN, build=steps(TRAIN_GOOD, edit_yaml("train.yaml", set_key("training.learning_rate", 1e30))),
    code=1, names=("learning_rate",), may_create=("w2", "w2/*"),
    notes="divergence: exit 1, one line, the earlier prior byte-identical; the workdir keeps what was good")
row("sample-figure-is-user-folder-onto-good-samples", E,
    [*SAMPLE, "--seed", "1", "--out", "{t}/s.nii.gz", "--figure", "{t}/figs"], uses=U_SAMPLE,
    build=steps(SAMPLE_GOOD, mkdir("figs")), names=("figs",), notes="another seed: an overwrite would show")
row("simulate-out-is-user-folder-with-truth-out", E, [*SIM_CT, "--out", "{t}/m.h5", "--truth-out", "{t}/t.nii.gz"],
    uses=U_SIM, build=mkdir("m.h5"), names=("m.h5",), notes="--truth-out must not appear when --out fails")
row("simulate-out-under-a-file-with-truth-out", E,
    [*SIM_CT, "--out", "{t}/ct.nii.gz/m.h5", "--truth-out", "{t}/t.nii.gz"], uses=U_SIM, names=("ct.nii.gz/m.h5",))
# chains: a later command's output must not clobber an earlier command's outputs or sidecars
row("evaluate-twice-after-recon-out-r.json", E,
    ["evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/r.nii.gz", "--out", "{t}/r.json"],
    uses=("ct.h5", "ct.nii.gz"),
    build=steps(RECON_GOOD, good("evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/r.nii.gz", "--out",
                                 "{t}/r.json")), code=0, changes=("r.json",),
    notes="the README's chain run twice: the second evaluate used to fail on its own metrics read as a sidecar")
row("evaluate-after-recon-out-r.json", E,
    ["evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/r.nii.gz", "--out", "{t}/r.json"],
    uses=("ct.h5", "ct.nii.gz"), build=RECON_GOOD, code=0, creates=("r.json",))
row("evaluate-after-recon-out-r.nii.json", E,
    ["evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/r.nii.gz", "--out", "{t}/r.nii.json"],
    uses=("ct.h5", "ct.nii.gz"), build=RECON_GOOD, code=0, creates=("r.nii.json",))
row("evaluate-after-simulate-out-m.json", E,
    ["evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/t.nii.gz", "--out", "{t}/m.json"],
    uses=U_SIM, build=SIM_GOOD, code=0, creates=("m.json",))
row("evaluate-after-convert-out-c.json", E,
    ["evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/c.nii.gz", "--out", "{t}/c.json"],
    uses=U_SIM, build=CONVERT_GOOD, code=0, creates=("c.json",))
row("evaluate-synthesis-after-synthesize-out-sub.json", E, [*EVS, "--out", "{t}/sub.json"], uses=(*U_SYN, "truth"),
    build=SYN_GOOD, code=0, creates=("sub.json",))
row("check-prior-after-sample-out-s.json", E, [*CHECK, "--out", "{t}/s.json"],
    uses=(*U_SAMPLE, "check.yaml", "ct64.nii.gz"), build=SAMPLE_GOOD, code=0, creates=("s.json",))
row("evaluate-after-phantom-out-CT-0007.json", E,
    ["evaluate", "--reference", "{t}/data/CT-0007.nii.gz", "--estimate", "{t}/rec.nii.gz", "--out",
     "{t}/data/CT-0007.json"], uses=("rec.nii.gz",), build=PHANTOM_GOOD, code=0, creates=("data/CT-0007.json",))
row("evaluate-after-brasyn-split-out-tru.json", E,
    ["evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/rec.nii.gz", "--out", "{t}/tru.json"],
    uses=(*U_SPLIT, *U_EVR), build=SPLIT_GOOD, code=0, creates=("tru.json",))
row("evaluate-after-fit-histogram-mean-out-h.json", E,
    ["evaluate", "--reference", "{t}/ct.nii.gz", "--estimate", "{t}/rec.nii.gz", "--out", "{t}/h.json"],
    uses=(*U_FIT, *U_EVR), build=good(*FIT, "--out", "{t}/h"), code=0, creates=("h.json",))

# ---------------------------------------------------------------- 7. positive controls
G = "positive"
row("info-nifti", G, ["info", "{t}/ct.nii.gz"], uses=U_SIM, code=0)
row("info-dicom", G, ["info", "{t}/dcm"], uses=("dcm",), code=0)
row("info-zea", G, ["info", "{t}/us.hdf5"], build=zea("us.hdf5", "good"), code=0)
row("convert-nifti", G, ["convert", "{t}/ct.nii.gz", "{t}/c.nii.gz"], uses=U_SIM, code=0,
    creates=("c.nii.gz", "c.nii.gz.provenance.json"))
row("convert-dicom-canonical", G, ["convert", "{t}/dcm", "{t}/c.nii", "--canonical"], uses=("dcm",), code=0,
    creates=("c.nii", "c.nii.provenance.json"))
row("convert-replaces-its-earlier-output", G, ["convert", "{t}/ct2.nii.gz", "{t}/c.nii.gz"],
    uses=(*U_SIM, "ct2.nii.gz"), build=CONVERT_GOOD, code=0, changes=("c.nii.gz", "c.nii.gz.provenance.json"))
row("phantom-ct", G, [*PH_CT, "--out", "{t}/data"], code=0,
    creates=("data", "data/CT-0007", "data/CT-0007/*.dcm", "data/CT-0007.nii.gz"),
    may_create=("data/CT-0007.provenance.json", "data/.medprior-output"))
row("phantom-ct-into-user-dataset-folder", G, [*PH_CT, "--format", "nifti", "--out", "{t}/data"],
    build=mkdir("data"), code=0, creates=("data/CT-0007.nii.gz",),
    may_create=("data/CT-0007.provenance.json", "data/.medprior-output"))
row("phantom-ct-replaces-its-earlier-case", G,
    ["phantom", "ct", "--size", "20", "20", "8", "--seed", "7", "--out", "{t}/data"], build=PHANTOM_GOOD, code=0,
    changes=("data/CT-0007*",), may_create=("data/CT-0007/*",))
row("phantom-petct", G, ["phantom", "petct", "--size", "16", "16", "12", "--seed", "7", "--out", "{t}/hk"], code=0,
    creates=("hk", "hk/imagesTr", "hk/imagesTr/SIM-007__CT.nii.gz", "hk/imagesTr/SIM-007__PT.nii.gz", "hk/labelsTr",
             "hk/labelsTr/SIM-007.nii.gz"), may_create=("hk/SIM-007.provenance.json", "hk/.medprior-output"))
row("phantom-brain", G, ["phantom", "brain", "--size", "48", "48", "30", "--seed", "7", "--out", "{t}/brats"],
    code=0, creates=("brats", "brats/BraTS-GLI-00007-000", "brats/BraTS-GLI-00007-000/BraTS-GLI-00007-000-*.nii.gz"),
    may_create=("brats/BraTS-GLI-00007-000.provenance.json", "brats/.medprior-output"))
row("qc", G, ["qc", "{t}/mr.nii.gz", "--label", "{t}/seg.nii.gz", "--out", "{t}/q.png"],
    uses=("mr.nii.gz", "seg.nii.gz"), code=0, creates=("q.png",))
row("simulate-ct", G, [*SIM_CT, "--out", "{t}/m.h5", "--truth-out", "{t}/t.nii.gz"], uses=U_SIM, code=0,
    creates=("m.h5", "m.h5.provenance.json", "t.nii.gz"))
row("simulate-mri", G, [*SIM_MR, "--out", "{t}/m.h5"], uses=("mr.nii.gz",), code=0,
    creates=("m.h5", "m.h5.provenance.json"))
row("recon-fbp", G, [*FBP, "--out", "{t}/r.nii.gz"], uses=("ct.h5",), code=0,
    creates=("r.nii.gz", "r.nii.gz.provenance.json"))
row("recon-cgsense", G, [*CGSENSE, "--out", "{t}/r.nii.gz"], uses=("mr.h5",), code=0,
    creates=("r.nii.gz", "r.nii.gz.provenance.json"))
row("recon-dds", G, [*DDS_CT, "--out", "{t}/r.nii.gz"], uses=U_DDS, code=0,
    creates=("r.nii.gz", "r.nii.gz.provenance.json"))
row("recon-dds-adapted", G, [*DDS_CT, "--param", "adapt=d3ip", "--out", "{t}/r.nii.gz"], uses=U_DDS, code=0,
    creates=("r.nii.gz", "r.nii.gz.provenance.json", "r.adapters.safetensors"))
row("recon-reddiff-adapted", G, ["recon", "{t}/ct64.h5", "--method", "reddiff", "--prior", "{t}/ct_prior", "--param",
                                 "steps=2", "--param", "adapt=ddip", "--device", "cpu", "--out", "{t}/r.nii.gz"],
    uses=U_DDS, code=0, creates=("r.nii.gz", "r.nii.gz.provenance.json", "r.adapters.safetensors"))
for mode in ("prior", "pixel"):
    row(f"recon-dds-resampled-{mode}", G, ["recon", "{t}/ct.h5", *DDS, "--resample", mode, "--out", "{t}/r.nii.gz"],
        uses=("ct.h5", "ct_prior"), code=0, creates=("r.nii.gz", "r.nii.gz.provenance.json"))
row("recon-replaces-its-earlier-output", G, ["recon", "{t}/ct.h5", "--method", "tv", "--tv-iterations", "2",
                                             "--out", "{t}/r.nii.gz"], uses=("ct.h5",), build=RECON_GOOD, code=0,
    changes=("r.nii.gz", "r.nii.gz.provenance.json"))
row("evaluate", G, [*EVR, "--window", "-1000", "1000", "--out", "{t}/e.json"], uses=U_EVR, code=0,
    creates=("e.json",))
row("figure", G, [*FIG, "--out", "{t}/f.png"], uses=U_EVR, code=0, creates=("f.png",))
row("sample", G, [*SAMPLE, "--out", "{t}/s.nii.gz", "--figure", "{t}/s.png"], uses=U_SAMPLE, code=0,
    creates=("s.nii.gz", "s.png"))
row("check-prior", G, [*CHECK, "--out", "{t}/c.json"], uses=U_CHECK, code=0, creates=("c.json",))
row("train-prior", G, [*TRAIN, "--out", "{t}/p"], uses=U_TRAIN, code=0,
    creates=("p", "p/prior.json", "p/weights.safetensors"), may_create=("p.work", "p.work/*"), timeout=120)
row("fit-histogram-mean", G, [*FIT, "--out", "{t}/h"], uses=U_FIT, code=0, creates=("h", "h/histogram_mean.json"))
row("fit-histogram-mean-replaces-its-earlier-model", G, [*FIT, "--out", "{t}/h"], uses=U_FIT,
    build=good(*FIT, "--out", "{t}/h"), code=0, changes=("h/*", "h.provenance.json"))
row("synthesize-regression", G, [*SYN, "--output", "{t}/sub"], uses=U_SYN, code=0,
    creates=("sub", f"sub/{CASE}-{DROPPED}.nii.gz", "sub.provenance.json"))
row("synthesize-histogram-mean", G, SYN_HIST, uses=("hist", "cases"), code=0,
    creates=("sub", f"sub/{CASE}-{DROPPED}.nii.gz", "sub.provenance.json"))
row("synthesize-cwdm", G, ["synthesize", "--model", "{t}/cwdm", "--input", "{t}/cases", "--device", "cpu",
                           "--steps", "2", "--output", "{t}/sub"], uses=("cwdm", "cases"), code=0,
    creates=("sub", f"sub/{CASE}-{DROPPED}.nii.gz", "sub.provenance.json"))
row("synthesize-replaces-its-earlier-submission", G, [*SYN, "--seed", "1", "--output", "{t}/sub"], uses=U_SYN,
    build=SYN_GOOD, code=0, changes=("sub/*", "sub.provenance.json"))
row("synthesize-into-empty-folder", G, [*SYN, "--output", "{t}/sub"], uses=U_SYN,
    build=mkdir("sub", user_file=False), code=0, changes=("sub",),
    creates=(f"sub/{CASE}-{DROPPED}.nii.gz", "sub.provenance.json"))
row("check-submission", G, CHECKSUB, uses=U_CHECKSUB, code=0)
row("brasyn-split", G, [*SPLIT, "--out", "{t}/inp", "--truth", "{t}/tru"], uses=U_SPLIT, code=0,
    creates=("inp", "inp/*", "tru", "tru/*", "inp.provenance.json", "tru.provenance.json"))
row("brasyn-split-replaces-its-earlier-split", G, [*SPLIT, "--seed", "1", "--out", "{t}/inp", "--truth", "{t}/tru"],
    uses=U_SPLIT, build=SPLIT_GOOD, code=0, changes=("inp/*", "tru/*", "inp.provenance.json", "tru.provenance.json"),
    may_create=("inp/*", "tru/*"))
row("evaluate-synthesis", G, [*EVS, "--cases", "{t}/cases", "--out", "{t}/s.json"], uses=(*U_EVS, "cases"), code=0,
    creates=("s.json",))
row("synthesis-figure", G, [*SFIG, "--out", "{t}/f.png"], uses=U_SFIG, code=0, creates=("f.png",))

# ---------------------------------------------------------------- 8. ultrasound (simulate us, beamform, dehaze,
# evaluate dehazing, dehazing-figure)
# Their inputs are built once per session, lazily, into a cache folder (``us_inputs``) with the task
# functions (a small scan, tiny untrained priors), and copied into each row's folder.
US_SCAN = dict(depth=(5e-3, 30e-3), n_lines=24, sector_deg=50, anatomy_scale=0.28, transmits=1)
TINY_US = {"channels": [8, 8], "attention_levels": [False, False], "num_res_blocks": 1, "num_head_channels": 8,
           "norm_num_groups": 4}
_US_CACHE: dict[str, Path] = {}


def _us_tiny_prior(path: Path, conditions: tuple[str, ...] = (), parametrization: str = "v",
                   modality: str = "US") -> None:
    import torch
    from medprior.diffusion.normalization import Normalization
    from medprior.diffusion.prior_file import save_prior
    from medprior.diffusion.priors import SlicePrior2D
    torch.manual_seed(0)
    prior = SlicePrior2D((32, 16), network=TINY_US, parametrization=parametrization,
                         condition_channels=len(conditions), normalization=Normalization("window", -1, 1))
    save_prior(prior, path, training={"steps": 0, "config": {"data": {"conditions": list(conditions)}}},
               modality=modality)


def _us_picmus(path: Path) -> None:
    """A small PICMUS plane-wave RF file: 2 angles, 16 elements, 640 samples (about 25 mm) of noise."""
    from medprior.io.ultrasound import PICMUS_GROUP
    n_tx, n_el, n_ax = 2, 16, 640
    with h5py.File(path, "w") as f:
        g = f.create_group(PICMUS_GROUP)
        g.create_dataset("data/real", data=np.random.default_rng(4).standard_normal((n_tx, n_el, n_ax)).astype("f4"))
        g["angles"] = np.array([-0.05, 0.05])
        geometry = np.zeros((3, n_el))
        geometry[0] = (np.arange(n_el) - (n_el - 1) / 2) * 0.3e-3
        g["probe_geometry"] = geometry
        g["sampling_frequency"], g["modulation_frequency"], g["pulse_frequency"] = 20e6, 0.0, 5e6
        g["sound_speed"], g["initial_time"] = 1540.0, 0.0


def _us_iq(path: Path) -> None:
    """A zea file of IQ channel data (2 channels, demodulated at 5 MHz)."""
    from medprior.io.ultrasound import write_zea
    write_zea(small_rf(n_tx=1, n_ch=2, seed=5, focus=-1e-2, angles=np.zeros(1)), path)


def us_input(name: str) -> Path:
    """The cached ultrasound input ``name`` (built on first use, with what it is made from)."""
    if name in _US_CACHE:
        return _US_CACHE[name]
    import atexit
    import tempfile
    from medprior.tasks.dehaze import dehaze_file
    from medprior.tasks.cardiac_scan import CardiacScan
    from medprior.tasks.ultrasound import beamform_file, simulate_case
    if "" not in _US_CACHE:
        _US_CACHE[""] = Path(tempfile.mkdtemp(prefix="medprior-robustness-us-"))
        atexit.register(shutil.rmtree, _US_CACHE[""], True)
    store = _US_CACHE[""]
    path = store / name
    if name in ("hazy_rf.hdf5", "truth_rf.hdf5"):
        simulate_case(3, store / "hazy_rf.hdf5", store / "truth_rf.hdf5", gamma=0.5, scan=CardiacScan(**US_SCAN))
        _US_CACHE["hazy_rf.hdf5"], _US_CACHE["truth_rf.hdf5"] = store / "hazy_rf.hdf5", store / "truth_rf.hdf5"
        return path
    if name in ("hazy.hdf5", "truth.hdf5"):
        beamform_file(us_input(name.replace(".", "_rf.")), path, device="cpu")
    elif name == "truth12.hdf5":  # another grid: 12 lines
        beamform_file(us_input("truth_rf.hdf5"), path, lines=12, device="cpu")
    elif name == "shallow.hdf5":  # 0.5 mm deep: fewer rows than the tiny priors' 32-row patches
        beamform_file(us_input("hazy_rf.hdf5"), path, depth=(5e-3, 5.5e-3), device="cpu")
    elif name == "nlm.hdf5":
        dehaze_file(us_input("hazy.hdf5"), "nlm", path, device="cpu")
    elif name in ("tissue", "haze"):
        _us_tiny_prior(path)
    elif name == "supervised":
        _us_tiny_prior(path, conditions=("hazy",), parametrization="x0")
    elif name == "unconditioned":  # a supervised-style network without its condition channel
        _us_tiny_prior(path, parametrization="x0")
    elif name == "ct_tissue":
        _us_tiny_prior(path, modality="CT")
    elif name == "pw.hdf5":
        _us_picmus(path)
    elif name == "pw_bf.hdf5":  # plane waves: a Cartesian grid
        beamform_file(us_input("pw.hdf5"), path, device="cpu")
    elif name == "iq.hdf5":
        _us_iq(path)
    else:
        raise ValueError(f"unknown ultrasound input {name!r}")
    for entry in store.rglob("*"):  # no writer's sidecars among the inputs
        if entry.is_file() and (entry.name.endswith(".provenance.json") or entry.name == ".medprior-output"):
            entry.unlink()
    _US_CACHE[name] = path
    return path


def us(*items: str) -> Build:
    """Copy the cached ultrasound inputs ``items`` into the row's folder (``TARGET=NAME``: the cached
    input NAME under another name)."""
    def build(t: Path) -> None:
        for item in items:
            target, _, name = item.rpartition("=")
            source = us_input(name)
            target = target or name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, t / target)
    return build


def truncate(rel: str) -> Build:
    def build(t: Path) -> None:
        raw = (t / rel).read_bytes()
        (t / rel).write_bytes(raw[: len(raw) // 2])
    return build


SIM_US = ("simulate", "us", "--seed", "1")
BF = ("beamform", "{t}/hazy_rf.hdf5", "--device", "cpu")
DH = ("dehaze", "{t}/hazy.hdf5", "--device", "cpu")
DIFF = (*DH, "--method", "diffusion", "--tissue-prior", "{t}/tissue", "--haze-prior", "{t}/haze", "--param", "steps=1")
EVD = ("evaluate", "dehazing", "--estimate", "{t}/nlm.hdf5")
EVD_ALL = (*EVD, "--hazy", "{t}/hazy.hdf5", "--truth", "{t}/truth.hdf5")
DFIG = ("dehazing-figure", "{t}/hazy.hdf5", "{t}/truth.hdf5", "{t}/nlm.hdf5")
U_EVD = ("nlm.hdf5", "hazy.hdf5", "truth.hdf5")

# output safety
row("simulate-us-out-is-truth-out", O, [*SIM_US, "--out", "{t}/h.hdf5", "--truth-out", "{t}/h.hdf5"],
    names=("h.hdf5",))
row("beamform-out-is-input", O, [*BF, "--out", "{t}/hazy_rf.hdf5"], build=us("hazy_rf.hdf5"),
    names=("hazy_rf.hdf5",))
row("beamform-out-is-user-folder", O, [*BF, "--out", "{t}/bf.hdf5"], build=steps(us("hazy_rf.hdf5"), mkdir("bf.hdf5")),
    names=("bf.hdf5",))
row("dehaze-out-is-input", O, [*DH, "--method", "nlm", "--out", "{t}/hazy.hdf5"], build=us("hazy.hdf5"),
    names=("hazy.hdf5",))
row("dehaze-out-inside-prior", O, [*DIFF, "--out", "{t}/tissue/d.hdf5"], build=us("hazy.hdf5", "tissue", "haze"),
    names=(("tissue/d.hdf5", "tissue"),))
row("evaluate-dehazing-out-is-estimate", O, [*EVD_ALL, "--out", "{t}/nlm.hdf5"], build=us(*U_EVD),
    names=("nlm.hdf5",))
row("dehazing-figure-out-is-truth", O, [*DFIG, "--out", "{t}/truth.hdf5"], build=us(*U_EVD), names=("truth.hdf5",))

# bad inputs
row("simulate-us-volume-given", I, ["simulate", "us", "{t}/ct.nii.gz", "--seed", "1", "--out", "{t}/h.hdf5",
                                    "--truth-out", "{t}/tr.hdf5"], uses=U_SIM, names=("ct.nii.gz",))
row("beamform-iq-input", I, ["beamform", "{t}/iq.hdf5", "--device", "cpu", "--out", "{t}/bf.hdf5"],
    build=us("iq.hdf5"), names=("iq.hdf5", "IQ"))
row("beamform-missing-file", I, ["beamform", "{t}/none.hdf5", "--device", "cpu", "--out", "{t}/bf.hdf5"],
    names=("none.hdf5",))
row("beamform-truncated-file", I, [*BF, "--out", "{t}/bf.hdf5"], build=steps(us("hazy_rf.hdf5"),
                                                                             truncate("hazy_rf.hdf5")),
    names=("hazy_rf.hdf5",))
row("beamform-measurement-file", I, ["beamform", "{t}/ct.h5", "--device", "cpu", "--out", "{t}/bf.hdf5"],
    uses=("ct.h5",), names=("ct.h5",))
row("beamform-raw-data-nan", I, ["beamform", "{t}/us.hdf5", "--device", "cpu", "--out", "{t}/bf.hdf5"],
    build=zea("us.hdf5", "raw_data_nan"), names=("us.hdf5", "data/raw_data"))
row("beamform-plane-waves-shallower-than-default-image", I, ["beamform", "{t}/us.hdf5", "--device", "cpu", "--out",
                                                             "{t}/bf.hdf5"], build=zea("us.hdf5", "good"),
    names=("us.hdf5", "--depth"), notes="2.5 mm of samples, and the default Cartesian image starts at 5 mm")
row("dehaze-input-not-beamformed", I, ["dehaze", "{t}/hazy_rf.hdf5", "--method", "nlm", "--device", "cpu",
                                       "--out", "{t}/d.hdf5"], build=us("hazy_rf.hdf5"),
    names=("hazy_rf.hdf5", "data/beamformed_data"))
row("dehaze-input-truncated", I, [*DH, "--method", "nlm", "--out", "{t}/d.hdf5"],
    build=steps(us("hazy.hdf5"), truncate("hazy.hdf5")), names=("hazy.hdf5",))
row("dehaze-ct-prior-as-tissue-prior", I, [*DH, "--method", "diffusion", "--tissue-prior", "{t}/ct_tissue",
                                           "--haze-prior", "{t}/haze", "--out", "{t}/d.hdf5"],
    build=us("hazy.hdf5", "ct_tissue", "haze"), names=("ct_tissue",))
row("dehaze-supervised-model-without-condition", I, [*DH, "--method", "supervised", "--model", "{t}/unconditioned",
                                                     "--out", "{t}/d.hdf5"], build=us("hazy.hdf5", "unconditioned"),
    names=("unconditioned",))
row("dehaze-diffusion-conditional-tissue-prior", I, [*DH, "--method", "diffusion", "--tissue-prior",
                                                     "{t}/supervised", "--haze-prior", "{t}/haze", "--out",
                                                     "{t}/d.hdf5"], build=us("hazy.hdf5", "supervised", "haze"),
    names=("supervised",))
row("dehaze-supervised-frames-smaller-than-patches", I,
    ["dehaze", "{t}/shallow.hdf5", "--device", "cpu", "--method", "supervised", "--model", "{t}/supervised", "--out",
     "{t}/d.hdf5"], build=us("shallow.hdf5", "supervised"), names=("shallow.hdf5", "patches"))
row("dehaze-diffusion-frames-smaller-than-patches", I,
    ["dehaze", "{t}/shallow.hdf5", *DIFF[2:], "--out", "{t}/d.hdf5"], build=us("shallow.hdf5", "tissue", "haze"),
    names=("shallow.hdf5", "patches"))
row("dehaze-prior-json-garbage", I, [*DIFF, "--out", "{t}/d.hdf5"],
    build=steps(us("hazy.hdf5", "tissue", "haze"), prior_json("haze", "garbage")), names=("haze",))
row("evaluate-dehazing-truth-without-regions", I, [*EVD, "--hazy", "{t}/hazy.hdf5", "--truth", "{t}/plain.hdf5",
                                                   "--out", "{t}/s.json"],
    build=us("nlm.hdf5", "hazy.hdf5", "plain.hdf5=hazy.hdf5"), names=("plain.hdf5", "medprior/ventricle"))
row("evaluate-dehazing-truth-on-another-grid", I, [*EVD, "--hazy", "{t}/hazy.hdf5", "--truth", "{t}/truth12.hdf5",
                                                   "--out", "{t}/s.json"],
    build=us("nlm.hdf5", "hazy.hdf5", "truth12.hdf5"), names=("truth12.hdf5",))
row("evaluate-dehazing-estimate-not-dehazed", I, ["evaluate", "dehazing", "--estimate", "{t}/plain.hdf5", "--hazy",
                                                  "{t}/hazy.hdf5", "--truth", "{t}/truth.hdf5", "--out", "{t}/s.json"],
    build=us("hazy.hdf5", "truth.hdf5", "plain.hdf5=hazy.hdf5"), names=("plain.hdf5", "data/image"))
row("evaluate-dehazing-hazy-truncated", I, [*EVD_ALL, "--out", "{t}/s.json"],
    build=steps(us(*U_EVD), truncate("hazy.hdf5")), names=("hazy.hdf5",))
row("dehazing-figure-cartesian-hazy", I, ["dehazing-figure", "{t}/pw_bf.hdf5", "{t}/truth.hdf5", "{t}/nlm.hdf5",
                                          "--out", "{t}/f.png"], build=us("pw_bf.hdf5", "truth.hdf5", "nlm.hdf5"),
    names=("pw_bf.hdf5",))
row("dehazing-figure-dehazed-not-dehazed", I, ["dehazing-figure", "{t}/hazy.hdf5", "{t}/truth.hdf5",
                                               "{t}/plain.hdf5", "--out", "{t}/f.png"],
    build=us("hazy.hdf5", "truth.hdf5", "plain.hdf5=hazy.hdf5"), names=("plain.hdf5", "data/image"))

# bad parameters
for option, value in (("--seed", "-1"), ("--gamma", "-1"), ("--gamma", "11"), ("--gamma", "nan"),
                      ("--haze", "fog")):
    row(f"simulate-us{option}={value}", P, [*SIM_US, option, value, "--out", "{t}/h.hdf5", "--truth-out",
                                            "{t}/tr.hdf5"], names=(option,))
row("simulate-us-missing-truth-out", P, [*SIM_US, "--out", "{t}/h.hdf5"], names=("--truth-out",))
for option, values in (("--depth", "30 10"), ("--depth", "0 20"), ("--depth", "nan 20"), ("--depth", "5 inf"),
                       ("--sector", "0"),
                       ("--sector", "180"), ("--lines", "1"), ("--lines", "0"), ("--f-number", "0"),
                       ("--f-number", "-1"), ("--f-number", "nan"), ("--device", "tpu")):
    row(f"beamform{option}={values.replace(' ', 'x')}", P, [*BF, option, *values.split(), "--out", "{t}/bf.hdf5"],
        build=us("hazy_rf.hdf5"), names=(option,))
for option, values in (("--sector", "40"), ("--lines", "16")):
    row(f"beamform-plane-waves{option}={values}", P, ["beamform", "{t}/pw.hdf5", "--device", "cpu", option, values,
                                                      "--out", "{t}/bf.hdf5"], build=us("pw.hdf5"),
        names=(option, "plane waves"))
for method, param, name in (("nlm", "foo=1", "foo"), ("nlm", "h=nan", "h"), ("nlm", "patch_size=0", "patch_size"),
                            ("bm3d", "sigma=-1", "sigma"), ("nlm", "h", "h"), ("nlm", "models=1", "--param models"),
                            ("nlm", "dynamic_range=20", "--param dynamic_range")):
    row(f"dehaze-{method}-param-{param}", P, [*DH, "--method", method, "--param", param, "--out", "{t}/d.hdf5"],
        build=us("hazy.hdf5"), names=(name,))
for param, name in (("lam=-1", "lam"), ("steps=0", "steps"), ("seed=-1", "seed"), ("gradient=sideways", "gradient"),
                    ("samples=0", "samples"), ("samples=65", "samples"), ("samples=2.5", "samples"),
                    ("estimate=median", "estimate"), ("window_depth=0", "window_depth"),
                    ("window_lines=1.5", "window_lines")):
    row(f"dehaze-diffusion-param-{param}", P, [*DIFF, "--param", param, "--out", "{t}/d.hdf5"],
        build=us("hazy.hdf5", "tissue", "haze"), names=(name,))
row("dehaze-diffusion-without-priors", P, [*DH, "--method", "diffusion", "--out", "{t}/d.hdf5"],
    build=us("hazy.hdf5"), names=("--tissue-prior",))
row("dehaze-diffusion-without-haze-prior", P, [*DH, "--method", "diffusion", "--tissue-prior", "{t}/tissue",
                                               "--out", "{t}/d.hdf5"], build=us("hazy.hdf5", "tissue"),
    names=("--haze-prior",))
row("dehaze-supervised-without-model", P, [*DH, "--method", "supervised", "--out", "{t}/d.hdf5"],
    build=us("hazy.hdf5"), names=("--model",))
for value in ("0", "-20", "nan", "inf"):
    row(f"dehaze--dynamic-range={value}", P, [*DH, "--method", "nlm", "--dynamic-range", value, "--out",
                                              "{t}/d.hdf5"], build=us("hazy.hdf5"), names=("--dynamic-range",))
row("dehaze--device=tpu", P, [*DH, "--method", "nlm", "--device", "tpu", "--out", "{t}/d.hdf5"],
    build=us("hazy.hdf5"), names=("--device",))
row("dehaze-usage-unknown-method", P, [*DH, "--method", "magic", "--out", "{t}/d.hdf5"], build=us("hazy.hdf5"),
    names=("--method",))
row("evaluate-dehazing-missing-hazy", P, [*EVD, "--truth", "{t}/truth.hdf5", "--out", "{t}/s.json"],
    build=us(*U_EVD), names=("--hazy",))
row("evaluate-dehazing-missing-truth", P, [*EVD, "--hazy", "{t}/hazy.hdf5", "--out", "{t}/s.json"],
    build=us(*U_EVD), names=("--truth",))
row("dehazing-figure--names-count-differs", P, [*DFIG, "--names", "a", "b", "--out", "{t}/f.png"],
    build=us(*U_EVD), names=("--names",))

# runaway requests
for option, values in (("--lines", "100000000"), ("--depth", "5 1e9")):
    row(f"beamform{option}={values.replace(' ', 'x')}", R, [*BF, option, *values.split(), "--out", "{t}/bf.hdf5"],
        build=us("hazy_rf.hdf5"), names=(option, MEMORY), max_seconds=20)
row("beamform-picmus--depth=5x1e9", R, ["beamform", "{t}/pw.hdf5", "--device", "cpu", "--depth", "5", "1e9", "--out",
                                        "{t}/bf.hdf5"], build=us("pw.hdf5"), names=("--depth", MEMORY), max_seconds=20)

# earlier good outputs: a failing run onto them leaves them as they were
row("dehaze-bad-param-onto-good-output", E, [*DH, "--method", "nlm", "--param", "h=nan", "--out", "{t}/d.hdf5"],
    build=steps(us("hazy.hdf5"), good(*DH, "--method", "nlm", "--out", "{t}/d.hdf5")), names=("h",))
row("beamform-truncated-input-onto-good-output", E, [*BF, "--out", "{t}/bf.hdf5"],
    build=steps(us("hazy_rf.hdf5"), good(*BF, "--out", "{t}/bf.hdf5"), truncate("hazy_rf.hdf5")),
    names=("hazy_rf.hdf5",))

# positive controls
row("simulate-us", G, [*SIM_US, "--haze", "reverberation", "--gamma", "1", "--out", "{t}/h.hdf5", "--truth-out",
                       "{t}/tr.hdf5"], code=0, creates=("h.hdf5", "tr.hdf5"), timeout=180)
row("beamform-polar", G, [*BF, "--out", "{t}/bf.hdf5"], build=us("hazy_rf.hdf5"), code=0, creates=("bf.hdf5",))
row("beamform-polar-options", G, [*BF, "--depth", "6", "25", "--sector", "40", "--lines", "16", "--f-number", "1.5",
                                  "--out", "{t}/bf.hdf5"], build=us("hazy_rf.hdf5"), code=0, creates=("bf.hdf5",))
row("beamform-picmus-cartesian", G, ["beamform", "{t}/pw.hdf5", "--device", "cpu", "--out", "{t}/bf.hdf5"],
    build=us("pw.hdf5"), code=0, creates=("bf.hdf5",))
row("beamform-replaces-its-earlier-output", G, [*BF, "--lines", "16", "--out", "{t}/bf.hdf5"],
    build=steps(us("hazy_rf.hdf5"), good(*BF, "--out", "{t}/bf.hdf5")), code=0,
    changes=("bf.hdf5", "bf.hdf5.provenance.json"))
row("beamform-zea-plane-waves-cartesian", G, ["beamform", "{t}/us.hdf5", "--device", "cpu", "--depth", "1", "2",
                                               "--out", "{t}/bf.hdf5"], build=zea("us.hdf5", "good"), code=0,
    creates=("bf.hdf5",))
row("dehaze-nlm", G, [*DH, "--method", "nlm", "--out", "{t}/d.hdf5"], build=us("hazy.hdf5"), code=0,
    creates=("d.hdf5",))
row("dehaze-supervised", G, [*DH, "--method", "supervised", "--model", "{t}/supervised", "--out", "{t}/d.hdf5"],
    build=us("hazy.hdf5", "supervised"), code=0, creates=("d.hdf5",))
row("dehaze-diffusion", G, [*DIFF, "--out", "{t}/d.hdf5"], build=us("hazy.hdf5", "tissue", "haze"), code=0,
    creates=("d.hdf5",))
row("evaluate-dehazing", G, [*EVD_ALL, "--out", "{t}/s.json"], build=us(*U_EVD), code=0, creates=("s.json",))
row("dehazing-figure", G, [*DFIG, "--names", "nlm", "--out", "{t}/f.png"], build=us(*U_EVD), code=0,
    creates=("f.png",))

# ---------------------------------------------------------------- 9. HECKTOR submissions (check-submission
# --challenge hecktor)
# The shared world holds no PET/CT: each row's builder writes two tiny cases (CT 8 x 8 x 6 on an oblique
# grid, PET 4 x 4 x 3) and a good submission for them with nibabel, never with the command under test.
HK_CASES = ("CHUM-001", "CHUM-002")
HK_CT_AFFINE = np.array([[0.0, 0.9, 0.0, 10.5], [-0.8, 0.0, 0.0, -20.25], [0.0, 0.0, 2.5, 30.125], [0.0, 0.0, 0.0, 1.0]])
HK_SUB = ("check-submission", "--challenge", "hecktor", "--submission", "{t}/hsub", "--cases", "{t}/hk")
HK_FILE = f"hsub/{HK_CASES[0]}.nii.gz"


def _save_nii(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def hecktor(flat: bool = False) -> Build:
    """HECKTOR cases ``hk/`` (``imagesTr``/``labelsTr``, or all in ``hk/`` with ``flat``) and a good
    submission ``hsub/``: per case ``<ID>.nii.gz``, uint8 labels 0/1/2 on the CT's grid."""
    def build(t: Path) -> None:
        images, labels = (t / "hk", t / "hk") if flat else (t / "hk" / "imagesTr", t / "hk" / "labelsTr")
        label = np.zeros((8, 8, 6), np.uint8)
        label[2:4, 2:4, 1:3], label[6, 6, 4] = 1, 2
        for n, case in enumerate(HK_CASES):
            _save_nii(images / f"{case}__CT.nii.gz", np.full((8, 8, 6), -100 + n, np.int16), HK_CT_AFFINE)
            _save_nii(images / f"{case}__PT.nii.gz", np.ones((4, 4, 3), np.float32), np.diag([-2.0, -2.0, 4.0, 1.0]))
            _save_nii(labels / f"{case}.nii.gz", label, HK_CT_AFFINE)
            _save_nii(t / "hsub" / f"{case}.nii.gz", label, HK_CT_AFFINE)
    return build


def hecktor_voxel(rel: str, value: float) -> Build:
    """Set one voxel of the label file ``rel`` to ``value`` (stored as float32 when not whole)."""
    def build(t: Path) -> None:
        image = nib.load(str(t / rel))
        data = np.asarray(image.dataobj)
        data = data.astype(np.float32) if value != int(value) else data.copy()
        data[1, 1, 1] = value
        nib.save(nib.Nifti1Image(data, image.affine), str(t / rel))
    return build


HK_BAD = {
    "wrong-grid": (nifti(HK_FILE, "shape"), (f"{HK_CASES[0]}.nii.gz",)),
    "affine-off": (nifti(HK_FILE, "shift"), (f"{HK_CASES[0]}.nii.gz",)),
    "label-3": (hecktor_voxel(HK_FILE, 3), (f"{HK_CASES[0]}.nii.gz",)),
    "label-0.5": (hecktor_voxel(HK_FILE, 0.5), (f"{HK_CASES[0]}.nii.gz",)),
    "nan": (nifti(HK_FILE, "nan"), (f"{HK_CASES[0]}.nii.gz",)),
    "truncated": (nifti(HK_FILE, "truncated"), (f"{HK_CASES[0]}.nii.gz",)),
    "flat2d": (nifti(HK_FILE, "flat2d"), (f"{HK_CASES[0]}.nii.gz",)),
    "extra-file": (write("hsub/notes.txt"), ("notes.txt",)),
    "subfolder": (mkdir("hsub/extra"), ("extra",)),
    "missing-case": (remove(f"hsub/{HK_CASES[1]}.nii.gz"), (f"{HK_CASES[1]}.nii.gz",)),
    "uncompressed-name": (move(HK_FILE, f"hsub/{HK_CASES[0]}.nii"), (f"{HK_CASES[0]}.nii",)),
    "no-submission-folder": (remove("hsub"), ("hsub",)),
    "cases-ct-without-pet": (remove(f"hk/imagesTr/{HK_CASES[1]}__PT.nii.gz"), (f"{HK_CASES[1]}__CT.nii.gz",)),
    "cases-label-of-no-case": (copy(f"hk/labelsTr/{HK_CASES[0]}.nii.gz", "hk/labelsTr/CHUM-009.nii.gz"),
                               ("CHUM-009.nii.gz",)),
}
for what, (build, names) in HK_BAD.items():
    row(f"check-submission-hecktor-{what}", I, HK_SUB, build=steps(hecktor(), build), names=names)
row("check-submission-hecktor-brats-cases", I, [*HK_SUB[:-1], "{t}/cases"], uses=("cases",), build=hecktor(),
    names=("cases",))
row("check-submission-usage-unknown-challenge", P, ["check-submission", "--challenge", "hecktr", "--submission",
                                                    "{t}/hsub", "--cases", "{t}/hk"], build=hecktor(),
    names=("--challenge",))
row("check-submission-hecktor", G, HK_SUB, build=hecktor(), code=0)
row("check-submission-hecktor-flat-cases", G, HK_SUB, build=hecktor(flat=True), code=0)
row("check-submission-hecktor-ignores-hidden-files-and-sidecars", G, HK_SUB, code=0,
    build=steps(hecktor(), write("hsub/.snakemake_timestamp", b""), write("hsub/.DS_Store", b""),
                write(f"{HK_FILE}.provenance.json", b"{}")))

# ---------------------------------------------------------------- 10. segmentation (segment, evaluate
# segmentation, segmentation-figure) on the HECKTOR cases of section 9

SEG = ("segment", "--method", "threshold", "--input", "{t}/hk", "--device", "cpu")
EVAL_SEG = ("evaluate", "segmentation", "--submission", "{t}/hsub", "--cases", "{t}/hk")
row("segment-threshold", G, [*SEG, "--output", "{t}/seg", "--uncertainty", "{t}/unc"], build=hecktor(), code=0,
    creates=("seg", "seg/CHUM-*.nii.gz", "unc", "unc/CHUM-*__probabilities.nii.gz", "unc/CHUM-*__entropy.nii.gz"))
row("segment-output-is-input", O, [*SEG, "--output", "{t}/hk"], build=hecktor(), names=("--output",))
row("segment-output-inside-input", O, [*SEG, "--output", "{t}/hk/imagesTr/seg"], build=hecktor(), names=("--output",))
row("segment-uncertainty-is-output", O, [*SEG, "--output", "{t}/seg", "--uncertainty", "{t}/seg"], build=hecktor(),
    names=(("--uncertainty", "--output"),))
row("segment-not-a-segmentation-model", I, ["segment", "--model", "{t}/ct_prior", "--input", "{t}/hk", "--output",
                                            "{t}/seg"], uses=("ct_prior",), build=hecktor(), names=("ct_prior",))
row("segment-pet-nan", I, [*SEG, "--output", "{t}/seg"], build=steps(hecktor(), nifti(f"hk/imagesTr/{HK_CASES[0]}__PT.nii.gz", "nan")),
    names=(f"{HK_CASES[0]}__PT.nii.gz",))
row("segment-ct-without-pet", I, [*SEG, "--output", "{t}/seg"],
    build=steps(hecktor(), remove(f"hk/imagesTr/{HK_CASES[1]}__PT.nii.gz")), names=(f"{HK_CASES[1]}__CT.nii.gz",))
row("segment-no-cases", I, [*SEG[:4], "{t}/empty", "--output", "{t}/seg"], build=mkdir("empty"), names=("empty",))
row("segment-diffusion-without-model", P, ["segment", "--method", "diffusion", "--input", "{t}/hk", "--output",
                                           "{t}/seg"], build=hecktor(), names=("--model",))
for what, argv, names in (("fraction-0", ["--param", "fraction=0"], "fraction"),
                          ("fraction-nan", ["--param", "fraction=nan"], "fraction"),
                          ("unknown-param", ["--param", "strength=2"], "strength"),
                          ("samples-for-threshold", ["--samples", "0"], "--samples"),
                          ("bad-device", ["--device", "tpu"], "--device")):
    row(f"segment-{what}", P, [*SEG, "--output", "{t}/seg", *argv], build=hecktor(), names=(names,))
row("evaluate-segmentation", G, [*EVAL_SEG, "--out", "{t}/scores.json"], build=hecktor(), code=0,
    creates=("scores.json",))
row("evaluate-segmentation-needs-cases", I, [*EVAL_SEG[:4], "--out", "{t}/scores.json"], build=hecktor(),
    names=("--cases",))
row("evaluate-segmentation-broken-submission", I, [*EVAL_SEG, "--out", "{t}/scores.json"],
    build=steps(hecktor(), hecktor_voxel(HK_FILE, 3)), names=(f"{HK_CASES[0]}.nii.gz",))
row("evaluate-segmentation-cases-without-labels", I, [*EVAL_SEG, "--out", "{t}/scores.json"],
    build=steps(hecktor(), remove(f"hk/labelsTr/{HK_CASES[0]}.nii.gz")), names=(HK_CASES[0],))
row("evaluate-segmentation-uncertainty-missing", I, [*EVAL_SEG, "--uncertainty", "{t}/hsub", "--out", "{t}/s.json"],
    build=hecktor(), names=(f"{HK_CASES[0]}__probabilities.nii.gz",))
row("evaluate-segmentation-out-is-input", O, [*EVAL_SEG, "--out", f"{{t}}/{HK_FILE}"], build=hecktor(),
    names=("--out",))
row("segmentation-figure", G, ["segmentation-figure", "--case", HK_CASES[0], "--cases", "{t}/hk", "{t}/hsub",
                               "--out", "{t}/fig.png"], build=hecktor(), code=0, creates=("fig.png",))
row("segmentation-figure-unknown-case", I, ["segmentation-figure", "--case", "CHUM-009", "--cases", "{t}/hk",
                                            "{t}/hsub", "--out", "{t}/fig.png"], build=hecktor(), names=("CHUM-009",))
row("segmentation-figure-names-mismatch", P, ["segmentation-figure", "--case", HK_CASES[0], "--cases", "{t}/hk",
                                              "{t}/hsub", "--names", "a", "b", "--out", "{t}/fig.png"],
    build=hecktor(), names=("--names",))

# ---------------------------------------------------------------- 11. hecktor-split on the HECKTOR cases of section 9

HK_SPLIT = ("hecktor-split", "--cases", "{t}/hk", "--out", "{t}/split")
row("hecktor-split", G, [*HK_SPLIT, "--test", "0.5", "--holdout", "0"], build=hecktor(), code=0,
    creates=("split", "split/split.json", "split/*", "split/*/*", "split/*/*/CHUM-*.nii.gz"))
row("hecktor-split-flat-cases", G, [*HK_SPLIT, "--test", "0.5", "--holdout", "0"], build=hecktor(flat=True), code=0,
    creates=("split", "split/split.json", "split/*", "split/*/*", "split/*/*/CHUM-*.nii.gz"))
row("hecktor-split-out-is-input", O, [*HK_SPLIT[:4], "{t}/hk", "--test", "0.5", "--holdout", "0"], build=hecktor(),
    names=("--out",))
row("hecktor-split-out-inside-input", O, [*HK_SPLIT[:4], "{t}/hk/imagesTr/split", "--test", "0.5", "--holdout", "0"],
    build=hecktor(), names=("--out",))
row("hecktor-split-unlabelled-case", I, [*HK_SPLIT, "--test", "0.5", "--holdout", "0"],
    build=steps(hecktor(), remove(f"hk/labelsTr/{HK_CASES[1]}.nii.gz")), names=(f"{HK_CASES[1]}__CT.nii.gz",))
row("hecktor-split-no-cases", I, [*HK_SPLIT[:2], "{t}/empty", *HK_SPLIT[3:]], build=mkdir("empty"), names=("empty",))
row("hecktor-split-ct-without-pet", I, [*HK_SPLIT, "--test", "0.5", "--holdout", "0"],
    build=steps(hecktor(), remove(f"hk/imagesTr/{HK_CASES[1]}__PT.nii.gz")), names=(f"{HK_CASES[1]}__CT.nii.gz",))
for what, argv, names in (("too-few-cases", [], "--test"),   # 2 cases cannot give one each to test, holdout, train
                          ("by-center-one-centre", ["--by", "center", "--test", "0.5", "--holdout", "0"], "--test"),
                          ("test-1", ["--test", "1"], "--test"),
                          ("test-nan", ["--test", "nan"], "--test"),
                          ("holdout-negative", ["--holdout", "-0.1"], "--holdout"),
                          ("fractions-sum-1", ["--test", "0.5", "--holdout", "0.5"], "--holdout"),
                          ("seed-negative", ["--seed", "-1"], "--seed"),
                          ("unknown-grouping", ["--by", "scanner"], "--by")):
    row(f"hecktor-split-{what}", P, [*HK_SPLIT, *argv], build=hecktor(), names=(names,))

assert len({r.id for r in ROWS}) == len(ROWS), "row ids must be unique"


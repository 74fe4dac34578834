"""The ``medprior`` command. Each subcommand parses arguments and calls one task; no algorithm here.

Each subcommand declares the arguments it reads (``reads``) and writes (``writes``, with the kind of
output); :func:`medprior.io.outputs.command_outputs` then runs it as one transaction: outputs that
touch an input or user data are refused before any work, and all outputs appear together or not at
all. Errors in the user's input print one line (``medprior: error: <file or option>: <problem>``)
and exit with status 2, a numerical divergence exits with 1, an interrupt (SIGINT) with 130 and a
SIGTERM (SLURM's cancel) with 143, each without a traceback and without touching earlier outputs.

Output: stdout gets the one report line of a successful command (always, ``--quiet`` included: it
names what was written); stderr gets the error line, and log records (``HH:MM:SS LEVEL logger:
message``) by verbosity, given before or after the subcommand (``medprior -v recon ...``):
``-q/--quiet`` no log records and no progress bars; default: warnings and progress bars, both only
when stderr is a terminal (a log file or pipe gets no carriage-return noise, and a failure leaves its
one error line alone); ``-v`` also INFO (e.g. each solver's iterations and final residual); ``-vv``
also DEBUG (e.g. the residual of every solver iteration).

Imports: a task's module is imported by the handler that runs it, so that parsing, ``--help`` and the
commands that run no network (scoring, figures, checks: most jobs of a workflow) do not pay for
importing MONAI (several seconds per process; :mod:`medprior.methods` gives the choices and help).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

import medprior
from medprior import cli_segment, cli_ultrasound, logs, progress
from medprior.checks import schema_property
from medprior.cli_support import check_device, flags, named_options, parameter
from medprior.config import defaults
from medprior.errors import DivergenceError, InputError, MedpriorError, ParameterError
from medprior.io import Volume, load, save, ultrasound
from medprior.io.outputs import Output, command_outputs
from medprior.methods import RECON_METHODS
from medprior.tasks import data

EXIT_INPUT_ERROR = 2
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def describe(volume: Volume) -> str:
    """Human-readable summary: shape, spacing (mm), orientation, modality, value range."""
    shape = " x ".join(str(n) for n in volume.shape)
    spacing = " x ".join(f"{s:.3f}" for s in volume.spacing)
    units = volume.metadata.get("units", "")
    lines = [
        f"source:      {volume.metadata.get('source', '?')}",
        f"shape:       {shape} voxels",
        f"spacing:     {spacing} mm",
        f"orientation: {volume.orientation}",
        f"modality:    {volume.modality}",
        f"values:      {float(np.min(volume.data)):.1f} .. {float(np.max(volume.data)):.1f} {units}".rstrip(),
    ]
    for key in ("study_uid", "series_uid", "series_description"):
        if volume.metadata.get(key):
            lines.append(f"{key + ':':<13}{volume.metadata[key]}")
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> str:
    path = Path(args.path)
    if path.suffix.lower() in ultrasound.HDF5_SUFFIXES and path.is_file():
        kind = ultrasound.detect_format(path)  # None: another HDF5 file (a measurement): load() says what it is
        if kind is not None:
            if args.series_uid is not None:
                raise InputError(path, "is ultrasound data; --series-uid applies only to DICOM input")
            rf = ultrasound.read_rf(path)
            return f"source:      {path} ({'zea' if kind == 'zea' else 'PICMUS'})\n{ultrasound.describe_rf(rf)}"
    return describe(load(args.path, series_uid=args.series_uid))


def _convert(args: argparse.Namespace) -> str:
    source = args.input[0] if len(args.input) == 1 else args.input
    written = data.convert(source, args.output, series_uid=args.series_uid, canonical=args.canonical)
    return f"wrote {written}"


def _phantom(args: argparse.Namespace) -> str:
    common = {"cases": args.cases, "seed": args.seed, "size": args.size}
    with named_options(**flags("cases", "seed", "size", "anatomy", "center")):
        if args.kind == "ct":
            written = data.make_ct_dataset(args.out, anatomy=args.anatomy, formats=args.format, **common)
        elif args.kind == "brain":
            written = data.make_brain_dataset(args.out, **common)
        else:
            written = data.make_petct_dataset(args.out, center=args.center, **common)
    return f"wrote {len(written)} outputs under {args.out}"


def _phantom_members(args: argparse.Namespace) -> list[Output]:
    """Every case folder, file and sidecar ``phantom`` will write, checked before any work."""
    with named_options(**flags("cases", "seed", "size", "anatomy", "center")):
        members = data.dataset_outputs(args.kind, args.out, cases=args.cases, seed=args.seed, size=args.size,
                                       formats=args.format, center=args.center)
    return [Output(path, kind, "--out") for path, kind in members]


def _config_data(args: argparse.Namespace) -> list[Path]:
    """The data files a prior config names: inputs of the commands that read the config."""
    from medprior.tasks import priors
    return priors.data_files(args.config)


def _qc(args: argparse.Namespace) -> str:
    with named_options(names="--names"):
        data.qc_montage(args.images, args.out, label=args.label, names=args.names, title=args.title)
    return f"wrote {args.out}"


_SIMULATION_OPTIONS = {"arc_deg": "--arc", "start_deg": "--start",
                       **flags("views", "photons", "acceleration", "mask", "center_fraction", "coils", "snr_db",
                                "slices", "size", "seed")}


def _simulate(args: argparse.Namespace) -> str:
    from medprior.tasks import recon
    if args.modality == "ct":
        parameters = {"views": args.views, "arc_deg": args.arc, "start_deg": args.start, "photons": args.photons}
    else:
        parameters = {"acceleration": args.acceleration, "mask": args.mask, "center_fraction": args.center_fraction,
                      "coils": args.coils, "snr_db": args.snr_db}
    parameters.update(slices=args.slices, size=args.size, seed=args.seed)
    with named_options(**_SIMULATION_OPTIONS):
        parameters = recon.check_simulation(args.modality, **parameters)  # before the volume is read
        volume = load(args.volume, need_3d=True)
        simulate = recon.simulate_ct if args.modality == "ct" else recon.simulate_mri
        measurement = simulate(volume, **parameters, setting=args.setting)  # refuses what would not fit in memory
    if args.truth_out:
        save(recon.measured_slab(volume, parameters["slices"], parameters["size"]), args.truth_out)
    recon.save_measurement(measurement, args.out, source=args.volume)
    return f"wrote {args.out}"


def _number_or_name(text: str) -> int | float | str:
    """``--slice-batch``'s value: a number (checked by the task) or a name such as ``auto``."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _recon(args: argparse.Namespace) -> str:
    from medprior.tasks import recon_methods
    if RECON_METHODS[args.method].family == "diffusion":
        check_device(args.device)
        parameters = dict(parameter(p, names=True) for p in args.param)
        named = {name: f"--param {name}" for name in parameters}
        with named_options(**named):
            RECON_METHODS.check(args.method, parameters)  # names and ranges, before any work
        given = {"slice_batch": args.slice_batch and _number_or_name(args.slice_batch), "seed": args.seed,
                 "device": args.device, "resample": args.resample}
        options = {key: value for key, value in given.items() if value is not None}
        with named_options(**flags("slice_batch", "seed"), **named):  # e.g. steps beyond the prior's schedule
            recon_methods.reconstruct_file(args.measurement, args.method, args.out, prior=args.prior, **options, **parameters)
    else:
        if args.resample in ("prior", "pixel"):
            raise ParameterError("--resample", f"applies to the diffusion methods; {args.method} reconstructs on the "
                                               "measurement's own grid")
        given = {key: getattr(args, key) for key in RECON_METHODS.options("classical")
                 if getattr(args, key) is not None}
        with named_options(**flags(*given)):
            recon_methods.reconstruct_file(args.measurement, args.method, args.out, **given)
    return f"wrote {args.out}"


def _evaluate(args: argparse.Namespace) -> str:
    if args.kind == "dehazing":
        scores = cli_ultrasound.evaluate(args)
        return " ".join(f"{key}={value:.4g}" for key, value in scores.items())
    if args.kind == "segmentation":
        scores = cli_segment.evaluate(args)
        return " ".join(f"{key}={value:.4g}" for key, value in scores.items() if key.startswith("DSCagg"))
    needed = ("submission", "truth") if args.kind == "synthesis" else ("reference", "estimate")
    absent = [f"--{name}" for name in needed if getattr(args, name) is None]
    if absent:
        raise InputError(None, f"evaluate {args.kind} needs {' and '.join(absent)}")
    if args.kind == "synthesis":
        from medprior.tasks import synthesis
        scores = synthesis.evaluate_submission(args.submission, args.truth, args.out, cases_dir=args.cases)["mean"]
    else:
        from medprior.tasks import recon_report
        with named_options(window="--window"):
            scores = recon_report.evaluate_files(args.reference, args.estimate, args.out, window=args.window)
    return " ".join(f"{key}={value:.4g}" for key, value in scores.items() if isinstance(value, float))


def _figure(args: argparse.Namespace) -> str:
    from medprior.tasks import recon_report
    with named_options(window="--window", names="--names"):
        recon_report.comparison_figure(args.reference, args.estimates, args.out, names=args.names, window=args.window,
                                title=args.title)
    return f"wrote {args.out}"


def _train_prior(args: argparse.Namespace) -> str:
    from medprior.tasks import priors
    check_device(args.device)
    with named_options(time_budget_s="--time-budget"):
        written = priors.train_from_config(args.config, args.out, workdir=args.workdir,
                                           time_budget_s=args.time_budget, device=args.device)
    return f"wrote {written}"


def _sample(args: argparse.Namespace) -> str:
    from medprior.tasks import priors
    check_device(args.device)
    with named_options(**flags("n", "steps", "sampler", "eta", "seed", "batch_size")):  # checked before the prior loads
        priors.sample_prior(args.prior, args.out, n=args.n, steps=args.steps, sampler=args.sampler, eta=args.eta,
                            seed=args.seed, batch_size=args.batch_size, device=args.device, figure=args.figure)
    return f"wrote {args.out}"


def _check_prior(args: argparse.Namespace) -> str:
    from medprior.tasks import priors
    check_device(args.device)
    report = priors.check_prior(args.prior, args.config, args.out, figure=args.figure, device=args.device)
    return "\n".join(f"{name:<12} histogram intersection {report[name]['histogram_intersection']:.3f}  "
                     f"W1 {report[name]['wasserstein']:.1f}  spectrum {report[name]['spectrum_db']:.2f} dB"
                     for name in ("samples", "training", "white_noise"))


def _synthesize(args: argparse.Namespace) -> str:
    from medprior.tasks import synthesis
    check_device(args.device)
    with named_options(**flags("steps", "sampler", "seed")):
        written = synthesis.synthesize(args.model, args.input, args.output, steps=args.steps, sampler=args.sampler,
                                       seed=args.seed, device=args.device)
    return f"wrote {len(written)} syntheses to {args.output}"


def _check_submission(args: argparse.Namespace) -> str:
    from medprior.challenges import brasyn, hecktor
    if args.challenge == "hecktor":
        checked = hecktor.check_hecktor_submission(args.submission, args.cases)
        return f"{args.submission}: a valid HECKTOR submission ({len(checked)} cases)"
    checked = brasyn.check_submission(args.submission, args.cases)
    return f"{args.submission}: a valid BraSyn submission ({len(checked)} cases)"


def _brasyn_split(args: argparse.Namespace) -> str:
    from medprior.challenges import brasyn
    with named_options(seed="--seed"):
        dropped = brasyn.drop_contrasts(args.cases, args.out, args.truth, seed=args.seed)
    return f"dropped one contrast of each of {len(dropped)} cases: inputs in {args.out}, truth in {args.truth}"


def _fit_histogram_mean(args: argparse.Namespace) -> str:
    from medprior.tasks import synthesis
    return f"wrote {synthesis.fit_histogram_mean(args.config, args.out)}"


def _named_folder(text: str) -> tuple[str, str]:
    """``NAME=FOLDER`` of ``synthesis-figure --submission`` -> (name, folder)."""
    name, _, folder = text.partition("=")
    if not name or not folder:
        raise argparse.ArgumentTypeError(f"takes NAME=FOLDER, got {text!r}")
    return name, folder


def _synthesis_figure(args: argparse.Namespace) -> str:
    from medprior.tasks import synthesis
    submissions = dict(args.submission)
    return f"wrote {synthesis.case_figure(args.case, args.cases, args.truth, submissions, args.out)}"


def _add_synthesis_commands(commands: argparse._SubParsersAction, config: dict) -> None:
    """``brasyn-split``, ``fit-histogram-mean``, ``synthesize``, ``check-submission`` and
    ``synthesis-figure``; defaults from the schema's ``synthesis`` section."""
    split = commands.add_parser("brasyn-split", help="drop one contrast per BraTS case (seeded), keep it as truth")
    split.add_argument("--cases", required=True, help="folder of complete BraTS case folders")
    split.add_argument("--out", required=True, help="folder for the cases with three contrasts")
    split.add_argument("--truth", required=True, help="folder for the dropped contrasts and segmentations")
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(run=_brasyn_split, reads=("cases",), writes={"out": "folder", "truth": "folder"})

    fit = commands.add_parser("fit-histogram-mean", help="the histogram-matched mean baseline from a contrast-any config")
    fit.add_argument("--config", required=True, help="brain prior config YAML with data.contrast: any")
    fit.add_argument("--out", required=True, help="model folder to write")
    fit.set_defaults(run=_fit_histogram_mean, reads=("config", _config_data), writes={"out": "folder"})

    synthesize = commands.add_parser("synthesize", help="missing contrast of every case -> BraSyn submission folder")
    synthesize.add_argument("--model", required=True, help="synthesis model folder (cWDM prior(s) or a baseline)")
    synthesize.add_argument("--input", required=True, help="folder of BraTS case folders, one contrast missing each")
    synthesize.add_argument("--output", required=True, help="submission folder to write (flat)")
    synthesize.add_argument("--steps", type=int, default=config["steps"],
                            help=f"network evaluations per case (default {config['steps']})")
    synthesize.add_argument("--sampler", choices=schema_property("synthesis.sampler")["enum"],
                            default=config["sampler"])
    synthesize.add_argument("--seed", type=int, default=config["seed_sampling"])
    synthesize.add_argument("--device", default=config["device"], help="auto, cpu or cuda[:N]")
    synthesize.set_defaults(run=_synthesize, reads=("model", "input"), writes={"output": "folder"})

    check = commands.add_parser("check-submission",
                                help="check a BraSyn or HECKTOR submission folder's layout, geometry and values")
    check.add_argument("--challenge", choices=("brasyn", "hecktor"), default="brasyn",
                       help="brasyn: one <case>-<missing contrast>.nii.gz per BraTS case; hecktor: one "
                            "<ID>.nii.gz of labels 0/1/2 on each case's CT grid (default brasyn)")
    check.add_argument("--submission", required=True, help="the flat submission folder")
    check.add_argument("--cases", required=True,
                       help="the input cases it answers (BraTS case folders; HECKTOR: flat or imagesTr/imagesTs)")
    check.set_defaults(run=_check_submission, reads=("submission", "cases"))

    figure = commands.add_parser("synthesis-figure", help="PNG of one case: present contrasts, truth, syntheses, errors")
    figure.add_argument("--case", required=True, help="case id, e.g. BraTS-GLI-00400-000")
    figure.add_argument("--cases", required=True, help="the input cases folder (three contrasts each)")
    figure.add_argument("--truth", required=True, help="the truth folder of brasyn-split")
    figure.add_argument("--submission", required=True, nargs="+", metavar="NAME=FOLDER", type=_named_folder,
                        help="submission folders to show, each with its row name")
    figure.add_argument("--out", required=True, help="PNG to write")
    figure.set_defaults(run=_synthesis_figure, reads=("cases", "truth", "submission"), writes={"out": "file"})


def _add_prior_commands(commands: argparse._SubParsersAction) -> None:
    """``train-prior``, ``sample`` and ``check-prior``."""
    train = commands.add_parser("train-prior", help="train a diffusion prior from a prior config (configs/priors/*.yaml)")
    train.add_argument("--config", required=True, help="prior config YAML")
    train.add_argument("--out", help="prior directory to write (default results/priors/<name>)")
    train.add_argument("--workdir", help="checkpoints and loss log, for resuming (default <out>.work)")
    train.add_argument("--time-budget", type=float, help="stop after this many seconds (overrides the config)")
    train.add_argument("--device", help="auto, cpu or cuda (overrides the config)")
    train.set_defaults(run=_train_prior, reads=("config", _config_data), writes={"out": "folder"})

    draw = commands.add_parser("sample", help="draw samples from an unconditional prior -> NIfTI stack")
    draw.add_argument("--prior", required=True, help="prior directory (prior.json + weights.safetensors)")
    draw.add_argument("--n", type=int, default=16, help="number of samples (default %(default)s)")
    draw.add_argument("--steps", type=int, default=50, help="sampling steps = network evaluations (default %(default)s)")
    draw.add_argument("--sampler", choices=("ddpm", "ddim", "dpmpp"), default="dpmpp", help="default %(default)s")
    draw.add_argument("--eta", type=float, default=0.0, help="ddim: 0 deterministic, 1 ancestral")
    draw.add_argument("--seed", type=int, default=0)
    draw.add_argument("--batch-size", type=int, default=16)
    draw.add_argument("--device", default="auto", help="auto, cpu or cuda")
    draw.add_argument("--out", required=True, help="NIfTI to write: (H, W, n) slices or (D, H, W, n) volumes")
    draw.add_argument("--figure", help="also write a PNG grid of the samples")
    draw.set_defaults(run=_sample, reads=("prior",), writes={"out": "file", "figure": "file"})

    check = commands.add_parser("check-prior", help="samples vs held-out data: histograms and power spectra -> JSON")
    check.add_argument("--prior", required=True, help="prior directory")
    check.add_argument("--config", required=True, help="the prior config (its held-out data and check settings)")
    check.add_argument("--out", required=True, help="JSON report")
    check.add_argument("--figure", help="PNG grid: samples and held-out slices")
    check.add_argument("--device", default="auto")
    check.set_defaults(run=_check_prior, reads=("prior", "config", _config_data), writes={"out": "file", "figure": "file"})


def _add_recon_commands(commands: argparse._SubParsersAction, config: dict) -> None:
    """``simulate``, ``recon`` and ``evaluate``; defaults from the config schema."""
    ct_setting, mri_setting = config["ct"]["settings"][0], config["mri"]["settings"][0]
    simulate = commands.add_parser("simulate", help="volume -> measurement file (sinogram or k-space, HDF5); "
                                   "us: a hazy ultrasound acquisition and its truth (zea)")
    modalities = simulate.add_subparsers(dest="modality", required=True, metavar="MODALITY")
    for modality in ("ct", "mri"):
        measure = modalities.add_parser(modality, help=f"{modality}: volume -> measurement file")
        measure.add_argument("volume", help="CT in HU, or an MR magnitude image (NIfTI or DICOM)")
        measure.add_argument("--out", required=True, help="measurement file (.h5)")
        measure.add_argument("--setting", default="", help="name recorded in the file")
        measure.add_argument("--slices", type=int, default=config["ct"]["slices"],
                             help="central slab thickness in slices, 0 = all (default %(default)s)")
        measure.add_argument("--seed", type=int, default=0, help="noise / mask seed")
        measure.add_argument("--truth-out", help="also write the simulated slab (the ground truth) as NIfTI")
        measure.add_argument("--size", type=int, nargs=2, metavar=("I", "J"),
                             help="area-average the volume to this in-plane size first (e.g. a prior's slice size)")
        measure.add_argument("--views", type=int, default=ct_setting["views"], help="ct: projection angles")
        measure.add_argument("--arc", type=float, default=ct_setting["arc_deg"], help="ct: angular range, degrees")
        measure.add_argument("--start", type=float, default=ct_setting["start_deg"], help="ct: first angle, degrees")
        measure.add_argument("--photons", type=float, default=ct_setting["photons"],
                             help="ct: incident photons per ray (0 = noiseless)")
        measure.add_argument("--acceleration", type=float, default=mri_setting["acceleration"], help="mri")
        measure.add_argument("--mask", choices=schema_property("recon.mri.settings[].mask")["enum"],
                             default=mri_setting["mask"], help="mri: line pattern")
        measure.add_argument("--center-fraction", type=float, default=mri_setting["center_fraction"],
                             help="mri: fully sampled centre")
        measure.add_argument("--coils", type=int, default=config["mri"]["coils"], help="mri: receive coils")
        measure.add_argument("--snr-db", type=float, default=config["mri"]["snr_db"], help="mri: k-space SNR in dB")
        measure.set_defaults(run=_simulate, reads=("volume",), writes={"out": "file", "truth_out": "file"})
    cli_ultrasound.add_simulate_command(modalities)

    reconstruct = commands.add_parser("recon", help="measurement file -> NIfTI on the original grid")
    reconstruct.add_argument("measurement", help="file written by `medprior simulate`")
    reconstruct.add_argument("--method", required=True, choices=RECON_METHODS.names(),
                             help="; ".join(f"{m.name}: {m.family}, {'/'.join(m.modalities)}"
                                            for m in RECON_METHODS.methods.values()))
    reconstruct.add_argument("--out", required=True, help="output .nii.gz (CT in HU, MRI magnitude)")
    for key in RECON_METHODS.options("classical"):
        users = [m.name for m in RECON_METHODS.methods.values() if m.family == "classical" and key in m.used()]
        reconstruct.add_argument(f"--{key.replace('_', '-')}", type=type(config["solver"][key]),
                                 help=f"{', '.join(users)}: default {config['solver'][key]}")
    diffusion = config["diffusion"]
    reconstruct.add_argument("--prior", help=f"{', '.join(RECON_METHODS.names('diffusion'))}: slice prior directory "
                                             "(prior.json + weights)")
    reconstruct.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                             help="diffusion parameter, repeatable; default (range, MRI default where it differs): "
                             + "; ".join(f"{name}: " + ", ".join(RECON_METHODS.describe(name))
                                         for name in RECON_METHODS.names("diffusion")))
    reconstruct.add_argument("--slice-batch",
                             help=f"diffusion: slices per network call, or auto (default {diffusion['slice_batch']})")
    reconstruct.add_argument("--seed", type=int, help=f"diffusion: random seed (default {diffusion['seed']})")
    reconstruct.add_argument("--device", help=f"diffusion: auto, cpu or cuda[:N] (default {diffusion['device']})")
    reconstruct.add_argument("--resample", choices=("none", "prior", "pixel"),
                             help="diffusion: prior = reconstruct on the prior's matrix over the measurement's field of "
                                  "view (CT: the operator's pixel size; MRI: k-space cropped or zero-padded), the result "
                                  "interpolated back onto the measurement's grid; pixel = the same on the matrix whose "
                                  "pixels are of the size the prior learned, its network run there "
                                  f"(default {diffusion['resample']})")
    reconstruct.set_defaults(run=_recon, reads=("measurement", "prior"), writes={"out": "file"})

    evaluate = commands.add_parser("evaluate", help="recon: PSNR, SSIM (3D and per axis), NMSE, MAE of one image; "
                                   "synthesis: BraSyn scores of a submission folder -> JSON")
    evaluate.add_argument("kind", nargs="?", choices=("recon", "synthesis", "dehazing", "segmentation"), default="recon")
    evaluate.add_argument("--reference", help="recon: ground truth (resampled onto the estimate's grid)")
    evaluate.add_argument("--estimate", help="recon: reconstruction; dehazing: a file of `medprior dehaze`")
    evaluate.add_argument("--hazy", help="dehazing: the beamformed hazy frames")
    evaluate.add_argument("--window", type=float, nargs=2, metavar=("LOW", "HIGH"),
                          help="recon: intensity window (e.g. HU); default: [0, max of the reference]")
    evaluate.add_argument("--submission", help="synthesis: flat folder of <case>-<contrast>.nii.gz; "
                                               "segmentation: flat folder of <ID>.nii.gz")
    evaluate.add_argument("--truth", help="synthesis: <case>/<case>-{<dropped contrast>,seg}.nii.gz folders; "
                                          "dehazing: the beamformed haze-free frames with their region masks")
    evaluate.add_argument("--cases", help="synthesis: the input cases (default: checked against the truth); "
                                          "segmentation: the HECKTOR cases with their labels")
    evaluate.add_argument("--uncertainty", help="segmentation: uncertainty folder of `medprior segment` (AUROC, ECE)")
    evaluate.add_argument("--out", required=True, help="metrics JSON")
    evaluate.set_defaults(run=_evaluate, reads=("reference", "estimate", "submission", "truth", "cases", "hazy",
                                                "uncertainty"),
                          writes={"out": "file"})

    figure = commands.add_parser("figure", help="PNG comparing reconstructions with the truth (slices, errors)")
    figure.add_argument("reference", help="ground truth")
    figure.add_argument("estimates", nargs="+", help="reconstructions")
    figure.add_argument("--out", required=True, help="PNG to write")
    figure.add_argument("--names", nargs="+", help="row names (default: file names)")
    figure.add_argument("--window", type=float, nargs=2, metavar=("LOW", "HIGH"), help="display window")
    figure.add_argument("--title", default="", help="figure title")
    figure.set_defaults(run=_figure, reads=("reference", "estimates"), writes={"out": "file"})


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line and exit status 2, like every other input error."""

    def error(self, message: str) -> NoReturn:
        print(f"medprior: error: {self.prog.removeprefix('medprior').strip() or 'usage'}: {message}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)


def _fill_defaults(args: argparse.Namespace) -> None:
    """Defaults that depend on other arguments, resolved before the outputs are checked."""
    if args.command == "phantom":
        kind_defaults = defaults()["data"][args.kind]
        args.seed = kind_defaults["seed"] if args.seed is None else args.seed
        args.size = kind_defaults["size"] if args.size is None else args.size
    if args.command == "train-prior":
        from medprior.tasks import priors
        args.out = args.out or f"{defaults()['workdir_results']}/priors/{priors.load_prior_config(args.config)['name']}"
        args.workdir = args.workdir or f"{args.out}.work"  # resumable state: outside the output transaction
        work = Path(args.workdir).resolve()
        for option, given in (("--out", args.out), ("--config", args.config)):
            other = Path(given).resolve()
            if work == other or work in other.parents or other in work.parents:
                raise InputError(args.workdir, f"--workdir (checkpoints) must be apart from {option} {given}")


def _paths(values: object) -> list[str]:
    """The paths in an argument value: a path, a list of them, or ``(name, path)`` pairs."""
    if values is None:
        return []
    if isinstance(values, (list, tuple)) and not isinstance(values, str):
        return [p for v in values for p in _paths(v[-1] if isinstance(v, tuple) else v)]
    return [str(values)]


def _run(args: argparse.Namespace) -> str:
    """Run one subcommand as a transaction over the outputs it declares (``writes``: argument -> kind;
    an ``"entries"`` folder lists what goes in it with ``members(args)``): checked against its inputs
    (``reads``: arguments, or functions of the arguments) before any work, staged, and moved into
    place together on success."""
    writes = {attr: kind for attr, kind in getattr(args, "writes", {}).items() if getattr(args, attr) is not None}
    outputs = [Output(Path(getattr(args, attr)), kind, "--" + attr.replace("_", "-"),
                      tuple(args.members(args)) if kind == "entries" else ()) for attr, kind in writes.items()]
    inputs = [p for item in getattr(args, "reads", ())
              for p in (item(args) if callable(item) else _paths(getattr(args, item)))]
    with command_outputs(args.command, inputs, outputs) as staged:
        args.finals = {str(path): str(output.path) for path, output in zip(staged, outputs)}
        for attr, path in zip(writes, staged):
            setattr(args, attr, str(path))
        return _final_names(args.run(args), args)


def _final_names(text: str, args: argparse.Namespace) -> str:
    """``text`` (a report or an error) with each staged output path replaced by the path the user gave."""
    for staged, final in getattr(args, "finals", {}).items():
        text = text.replace(staged, final)
    return text


def _error(message: str, args: argparse.Namespace, status: int) -> int:
    print(f"medprior: error: {_final_names(message, args)}", file=sys.stderr)
    return status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``medprior`` (defaults come from the config schema)."""
    config = defaults()["data"]
    parser = _Parser(prog="medprior", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medprior {medprior.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="shape, spacing, orientation, modality and value range of an image")
    info.add_argument("path", help="NIfTI file, DICOM file or DICOM series folder, or ultrasound data "
                                   "(zea or PICMUS .hdf5)")
    info.add_argument("--series-uid", help="pick one series in a folder that holds several")
    info.set_defaults(run=_info, reads=("path",))

    convert = commands.add_parser("convert", help="DICOM series or NIfTI to NIfTI, geometry kept exactly")
    convert.add_argument("input", nargs="+", help="a NIfTI, a DICOM folder, or DICOM files")
    convert.add_argument("output", help="output .nii or .nii.gz")
    convert.add_argument("--series-uid", help="pick one series in a folder that holds several")
    convert.add_argument("--canonical", action="store_true", help="reorient to RAS (exact axis flips/permutations)")
    convert.set_defaults(run=_convert, reads=("input",), writes={"output": "file"})

    phantom = commands.add_parser("phantom", help="write demo phantom datasets in real on-disk layouts")
    phantom.add_argument("kind", choices=("ct", "brain", "petct"),
                         help="ct: CT in HU (DICOM series and/or NIfTI); brain: BraTS layout; petct: HECKTOR layout")
    phantom.add_argument("--out", required=True, help="dataset folder")
    phantom.add_argument("--cases", type=int, default=1, help="number of cases (default 1)")
    phantom.add_argument("--seed", type=int, help="seed of the first case; case n uses seed + n "
                         f"(default ct {config['ct']['seed']}, brain {config['brain']['seed']}, "
                         f"petct {config['petct']['seed']})")
    phantom.add_argument("--size", type=int, nargs=3, metavar=("I", "J", "K"),
                         help=f"grid in voxels (default ct {config['ct']['size']}, brain {config['brain']['size']}, "
                         f"petct {config['petct']['size']})")
    phantom.add_argument("--anatomy", choices=("body", "head"), default=config["ct"]["anatomy"], help="ct only")
    phantom.add_argument("--format", nargs="+", choices=data.CT_FORMATS, default=list(data.CT_FORMATS),
                         help="ct only: DICOM series folders and/or NIfTI files")
    phantom.add_argument("--center", default=config["petct"]["center"], help="petct only: centre code in case names")
    phantom.set_defaults(run=_phantom, writes={"out": "entries"}, members=_phantom_members)

    qc = commands.add_parser("qc", help="orthogonal-slice montage PNG of one or more images")
    qc.add_argument("images", nargs="+", help="images; the first one's grid defines the slices")
    qc.add_argument("--out", required=True, help="PNG to write")
    qc.add_argument("--label", help="label map drawn as outlines (slices go through its centre)")
    qc.add_argument("--names", nargs="+", help="row names (default: file names)")
    qc.add_argument("--title", default="", help="figure title")
    qc.set_defaults(run=_qc, reads=("images", "label"), writes={"out": "file"})
    _add_recon_commands(commands, defaults()["recon"])
    _add_prior_commands(commands)
    _add_synthesis_commands(commands, defaults()["synthesis"])
    cli_ultrasound.add_commands(commands, defaults()["dehaze"])
    cli_segment.add_commands(commands, defaults()["segment"])
    _add_verbosity(parser, 0)
    for command in commands.choices.values():  # also accepted after the subcommand
        _add_verbosity(command, argparse.SUPPRESS)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v/--verbose`` (repeatable) and ``-q/--quiet``; a subcommand's have ``SUPPRESS`` defaults so
    that they leave the top-level ones alone when absent."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="count", default=default,
                       help="log progress and solver residuals on stderr (-vv: every iteration)")
    group.add_argument("-q", "--quiet", action="store_true", default=False if default == 0 else default,
                       help="no log records and no progress bars (errors still print their one line)")


def _terminate(signum: int, frame: object) -> NoReturn:
    """SIGTERM unwinds like an interrupt, so staged outputs are removed before the process ends."""
    print("medprior: terminated; no partial output was kept", file=sys.stderr)
    raise SystemExit(EXIT_TERMINATED)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medprior`` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already printed as one line
        return done.code
    if args.verbose and args.quiet:  # one before the subcommand, the other after it
        return _error("-v/--verbose and -q/--quiet exclude each other", args, EXIT_INPUT_ERROR)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    terminal = sys.stderr.isatty()
    progress.enabled = terminal and not args.quiet  # in a log, stderr holds the error line alone
    try:
        with logs.configured(-1 if args.quiet else args.verbose, terminal):
            _fill_defaults(args)
            print(_run(args))
    except DivergenceError as error:
        return _error(str(error), args, EXIT_DIVERGED)
    except MedpriorError as error:
        return _error(str(error), args, EXIT_INPUT_ERROR)
    except OSError as error:  # an output that cannot be written: a bad path the user gave
        return _error(f"{error.filename or ''}: {error.strerror or error}", args, EXIT_INPUT_ERROR)
    except KeyboardInterrupt:
        print("medprior: interrupted; no partial output was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        progress.enabled = True
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ultrasound subcommands of ``medprior``: ``simulate us``, ``beamform``,
``dehaze``, ``evaluate dehazing`` (a handler of ``evaluate``) and ``dehazing-figure``. Each parses
arguments and calls one task (:mod:`medprior.tasks.ultrasound`, :mod:`medprior.tasks.dehaze_report` and
:mod:`medprior.tasks.dehaze`), which its handler imports: they need torch (and dehazing MONAI), which
parsing does not (see :mod:`medprior.cli`);
the transaction over the outputs is :mod:`medprior.cli`'s."""

from __future__ import annotations

import argparse
from typing import Any

from medprior.checks import require_seed
from medprior.cli_support import check_device, flags, named_options, parameter
from medprior.errors import InputError, ParameterError
from medprior.io import write_json
from medprior.methods import DEHAZE_METHODS
from medprior.tasks.cardiac_scan import HAZE_MODELS, CardiacScan


def _simulate_us(args: argparse.Namespace) -> str:
    """``medprior simulate us``: a simulated hazy acquisition and its truth (zea files)."""
    from medprior.tasks.ultrasound import simulate_case
    with named_options(**flags("seed", "gamma", "haze")):
        require_seed("seed", args.seed)
        if not 0 <= args.gamma <= 10:
            raise ParameterError("gamma", f"must lie in [0, 10], got {args.gamma}")
        simulate_case(args.seed, args.out, args.truth_out, haze=args.haze, gamma=args.gamma)
    return f"wrote {args.out} and {args.truth_out}"


def _beamform(args: argparse.Namespace) -> str:
    from medprior.tasks.ultrasound import beamform_file
    check_device(args.device)
    depth = None if args.depth is None else (args.depth[0] * 1e-3, args.depth[1] * 1e-3)
    if depth is not None and not 0 < depth[0] < depth[1] < float("inf"):
        raise ParameterError("--depth", f"needs 0 < NEAR < FAR < inf (mm), got {args.depth}")
    if args.sector is not None and not 0 < args.sector < 180:
        raise ParameterError("--sector", f"must lie in (0, 180) degrees, got {args.sector:g}")
    if args.lines is not None and args.lines < 2:
        raise ParameterError("--lines", f"must be >= 2, got {args.lines}")
    with named_options(depth="--depth", sector_deg="--sector", n_lines="--lines", f_number="--f-number",
                       scan="--depth/--sector/--lines"):
        beamform_file(args.rf, args.out, depth=depth, sector_deg=args.sector, lines=args.lines,
                      f_number=args.f_number, device=args.device)
    return f"wrote {args.out}"


def _dehaze(args: argparse.Namespace) -> str:
    from medprior.tasks.dehaze import dehaze_file  # imports MONAI: only where a method runs
    check_device(args.device)
    options: dict[str, Any] = dict(parameter(p, names=True) for p in args.param)
    named = {name: f"--param {name}" for name in options}
    models = {"tissue": args.tissue_prior, "haze": args.haze_prior, "supervised": args.model}
    with named_options(**{"models": "--tissue-prior/--haze-prior/--model", "dynamic_range": "--dynamic-range",
                          **named}):
        DEHAZE_METHODS.check(args.method, options)
        dehaze_file(args.beamformed, args.method, args.out, models=models, options=options,
                    dynamic_range=args.dynamic_range, device=args.device)
    return f"wrote {args.out}"


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """``medprior evaluate dehazing``: the scores of a dehazed file, written as JSON; returns their means."""
    absent = [f"--{name}" for name in ("estimate", "hazy", "truth") if getattr(args, name) is None]
    if absent:
        raise InputError(None, f"evaluate dehazing needs {' and '.join(absent)}")
    from medprior.tasks.dehaze_report import evaluate_dehazing
    scores = evaluate_dehazing(args.estimate, args.hazy, args.truth)
    write_json(args.out, scores)
    return scores["mean"]


def _figure(args: argparse.Namespace) -> str:
    names = args.names or [f"method {n + 1}" for n in range(len(args.dehazed))]
    if len(names) != len(args.dehazed):
        raise ParameterError("--names", f"gives {len(names)} names for {len(args.dehazed)} dehazed files")
    from medprior.tasks.dehaze_report import dehazing_figure
    dehazing_figure(args.hazy, args.truth, list(zip(names, args.dehazed)), args.out, title=args.title)
    return f"wrote {args.out}"


def add_simulate_command(modalities: argparse._SubParsersAction) -> None:
    """``simulate us``: no volume (the apical view is its own phantom), the haze and its strength."""
    simulate = modalities.add_parser("us", help="us: a cardiac apical view's hazy RF channel data and its truth")
    simulate.add_argument("--out", required=True, help="the hazy acquisition (zea .hdf5)")
    simulate.add_argument("--truth-out", required=True, help="the haze-free acquisition with its region masks (zea)")
    simulate.add_argument("--seed", type=int, default=0, help="the apical view and its scatterers (default 0)")
    simulate.add_argument("--haze", choices=HAZE_MODELS, default="multipath", help="the haze model")
    simulate.add_argument("--gamma", type=float, default=0.5, help="haze-to-tissue RMS ratio (default 0.5)")
    simulate.set_defaults(run=_simulate_us, reads=(), writes={"out": "file", "truth_out": "file"})


def add_commands(commands: argparse._SubParsersAction, config: dict[str, Any]) -> None:
    """``beamform``, ``dehaze`` and ``dehazing-figure``; defaults from the config schema's ``dehaze``."""
    scan = CardiacScan()
    beamform = commands.add_parser("beamform", help="RF channel data (zea or PICMUS) -> beamformed RF (zea "
                                   "beamformed_data): polar grid for diverging waves, Cartesian for plane waves")
    beamform.add_argument("rf", help="zea or PICMUS .hdf5 with RF channel data")
    beamform.add_argument("--out", required=True, help="zea .hdf5 to write")
    beamform.add_argument("--depth", type=float, nargs=2, metavar=("NEAR", "FAR"),
                          help=f"image depth in mm (default: the file's scan, else {scan.depth[0] * 1e3:g} "
                               f"{scan.depth[1] * 1e3:g})")
    beamform.add_argument("--sector", type=float, help=f"sector scans: opening in degrees (default {scan.sector_deg:g})")
    beamform.add_argument("--lines", type=int, help=f"sector scans: image lines (default {scan.n_lines})")
    beamform.add_argument("--f-number", type=float, help=f"receive f-number (default {scan.f_number:g}, plane waves 1.5)")
    beamform.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    beamform.set_defaults(run=_beamform, reads=("rf",), writes={"out": "file"})

    dehaze = commands.add_parser("dehaze", help="beamformed frames -> dehazed B-mode (zea image), with the tissue "
                                 "and haze RF where the method estimates them")
    dehaze.add_argument("beamformed", help="zea .hdf5 from `medprior beamform`")
    dehaze.add_argument("--method", required=True, choices=DEHAZE_METHODS.names(),
                        help=DEHAZE_METHODS.help())
    dehaze.add_argument("--out", required=True, help="zea .hdf5 to write")
    dehaze.add_argument("--tissue-prior", help=f"diffusion: tissue prior folder (e.g. priors/{config['models']['tissue']})")
    dehaze.add_argument("--haze-prior", help=f"diffusion: haze prior folder (e.g. priors/{config['models']['haze']})")
    dehaze.add_argument("--model", help=f"supervised: network folder (e.g. priors/{config['models']['supervised']})")
    dehaze.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="method parameter, repeatable; default (range): "
                        + "; ".join(f"{name}: " + ", ".join(DEHAZE_METHODS.describe(name))
                                    for name in DEHAZE_METHODS.names()))
    dehaze.add_argument("--dynamic-range", type=float, help=f"B-mode dB (default {config['dynamic_range']:g})")
    dehaze.add_argument("--device", default=config["device"], help="auto, cpu or cuda[:N]")
    dehaze.set_defaults(run=_dehaze, reads=("beamformed", "tissue_prior", "haze_prior", "model"), writes={"out": "file"})

    figure = commands.add_parser("dehazing-figure", help="PNG of one frame: hazy, dehazed, haze estimate, truth")
    figure.add_argument("hazy", help="beamformed hazy frame (zea)")
    figure.add_argument("truth", help="beamformed haze-free frame (zea)")
    figure.add_argument("dehazed", nargs="+", help="files of `medprior dehaze`")
    figure.add_argument("--names", nargs="+", help="panel names (default: method 1, 2, ...)")
    figure.add_argument("--out", required=True, help="PNG to write")
    figure.add_argument("--title", default="", help="figure title")
    figure.set_defaults(run=_figure, reads=("hazy", "truth", "dehazed"), writes={"out": "file"})

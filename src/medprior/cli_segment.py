"""The segmentation subcommands of ``medprior``: ``hecktor-split``, ``segment``, ``evaluate
segmentation`` (a handler of ``evaluate``) and ``segmentation-figure``. Each parses arguments and calls one task
(:mod:`medprior.tasks.segment_report`, :mod:`medprior.tasks.segment`), which its handler imports: they need
torch (and segmenting MONAI), which parsing does not (see :mod:`medprior.cli`); the transaction over the
outputs is :mod:`medprior.cli`'s."""

from __future__ import annotations

import argparse
from typing import Any

from medprior.challenges.hecktor_split import GROUPINGS, split_hecktor_folder
from medprior.cli_support import check_device, named_options, parameter
from medprior.errors import InputError, ParameterError
from medprior.io import write_json
from medprior.methods import SEGMENT_METHODS


def _segment(args: argparse.Namespace) -> str:
    from medprior.tasks.segment import segment_folder  # imports MONAI: only where a method runs
    check_device(args.device)
    options: dict[str, Any] = dict(parameter(p, names=True) for p in args.param)
    if args.samples is not None:
        options["samples"] = args.samples
    if args.steps is not None:
        options["steps"] = args.steps
    named = {name: f"--param {name}" for name in options}
    named.update(samples="--samples", steps="--steps")
    with named_options(**named):
        written = segment_folder(args.input, args.output, method=args.method, model_dir=args.model, options=options,
                                 uncertainty_dir=args.uncertainty, device=args.device)
    return f"wrote {len(written)} segmentations to {args.output}"


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """``medprior evaluate segmentation``: HECKTOR scores of a submission, written as JSON; returns the aggregate."""
    absent = [f"--{name}" for name in ("submission", "cases") if getattr(args, name) is None]
    if absent:
        raise InputError(None, f"evaluate segmentation needs {' and '.join(absent)}")
    from medprior.tasks.segment_report import evaluate_segmentation
    scores = evaluate_segmentation(args.submission, args.cases, args.uncertainty)
    write_json(args.out, scores)
    return scores["aggregate"]


def _hecktor_split(args: argparse.Namespace) -> str:
    with named_options(seed="--seed", test="--test", holdout="--holdout"):
        split = split_hecktor_folder(args.cases, args.out, seed=args.seed, test=args.test, holdout=args.holdout,
                                     by=args.by)
    counts = ", ".join(f"{len(ids)} {name}" for name, ids in split.items())
    return f"split the cases of {args.cases} by {args.by} (seed {args.seed}): {counts} in {args.out}"


def _figure(args: argparse.Namespace) -> str:
    names = args.names or [f"method {n + 1}" for n in range(len(args.submissions))]
    if len(names) != len(args.submissions):
        raise ParameterError("--names", f"gives {len(names)} names for {len(args.submissions)} submissions")
    from medprior.tasks.segment_report import segmentation_figure
    segmentation_figure(args.case, args.cases, list(zip(names, args.submissions)), args.out,
                        uncertainty=args.uncertainty)
    return f"wrote {args.out}"


def add_commands(commands: argparse._SubParsersAction, config: dict[str, Any]) -> None:
    """``segment``, ``hecktor-split`` and ``segmentation-figure``; defaults from the config schema's ``segment``."""
    segment = commands.add_parser("segment", help="HECKTOR PET/CT cases -> submission folder (<ID>.nii.gz, "
                                  "uint8 GTVp 1 / GTVn 2 on each CT grid) and uncertainty maps")
    segment.add_argument("--model", help=f"segmentation model folder (e.g. priors/{config['models']['diffusion']}); "
                                         "its method is the model's")
    segment.add_argument("--method", choices=SEGMENT_METHODS.names(),
                         help=SEGMENT_METHODS.help()
                         + " (threshold needs no --model)")
    segment.add_argument("--input", required=True, help="HECKTOR cases: flat, or imagesTr/imagesTs folders")
    segment.add_argument("--output", required=True, help="submission folder to write (flat)")
    segment.add_argument("--uncertainty", help="folder for each case's class probabilities, entropy and variance")
    segment.add_argument("--samples", type=int, help=f"diffusion: ensemble size N (default "
                                                     f"{config['diffusion']['samples']})")
    segment.add_argument("--steps", type=int, help=f"diffusion: steps per sample (default {config['diffusion']['steps']})")
    segment.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                         help="method parameter, repeatable; default (range): "
                         + "; ".join(f"{name}: " + ", ".join(SEGMENT_METHODS.describe(name))
                                     for name in SEGMENT_METHODS.names()))
    segment.add_argument("--device", default=config["device"], help="auto, cpu or cuda[:N]")
    segment.set_defaults(run=_segment, reads=("model", "input"), writes={"output": "folder", "uncertainty": "folder"})

    split = commands.add_parser("hecktor-split", help="labelled HECKTOR cases -> train / holdout / test folders "
                                "(seeded, case- or centre-level)")
    split.add_argument("--cases", required=True, help="labelled HECKTOR cases: flat, or imagesTr/labelsTr")
    split.add_argument("--out", required=True, help="folder for train/, holdout/, test/ (imagesTr/labelsTr each) "
                                                    "and split.json")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--test", type=float, default=0.2, help="fraction of cases (or centres) for test (default 0.2)")
    split.add_argument("--holdout", type=float, default=0.1,
                       help="fraction for the model check during training (default 0.1)")
    split.add_argument("--by", choices=GROUPINGS, default="case",
                       help="case: cases drawn one by one; center: each centre's cases stay together (default case)")
    split.set_defaults(run=_hecktor_split, reads=("cases",), writes={"out": "folder"})

    figure = commands.add_parser("segmentation-figure", help="PNG of one case: CT, PET, truth, predictions, entropy")
    figure.add_argument("--case", required=True, help="case id, e.g. SIM-300")
    figure.add_argument("--cases", required=True, help="the HECKTOR cases folder")
    figure.add_argument("submissions", nargs="+", help="submission folders of `medprior segment`")
    figure.add_argument("--names", nargs="+", help="panel names (default: method 1, 2, ...)")
    figure.add_argument("--uncertainty", help="uncertainty folder of the first submission (entropy panel)")
    figure.add_argument("--out", required=True, help="PNG to write")
    figure.set_defaults(run=_figure, reads=("cases", "submissions", "uncertainty"), writes={"out": "file"})

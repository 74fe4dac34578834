"""Case-level splits of a HECKTOR training folder, by seed: train, holdout and test cases.

A segmentation model must be scored on patients it never saw, and HECKTOR's public data are one
labelled training folder (the challenge's test labels are withheld). :func:`split_cases` draws a
reproducible partition of its case ids; :func:`split_hecktor_folder` writes it as three HECKTOR
folders (``OUT/train``, ``OUT/holdout``, ``OUT/test``, each in the imagesTr/labelsTr layout)
that every other command reads unchanged: ``train-prior`` (a volume3d config's ``data.files``),
``segment``, ``check-submission`` and ``evaluate segmentation`` (``--input OUT/test``).

Splitting ``by="center"`` keeps each centre's cases together (the id's ``<CENTER>`` part), so the
test set measures a model on scanners and protocols it never saw, as HECKTOR's own test centres do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from medprior.challenges.hecktor import find_hecktor_cases, hecktor_paths
from medprior.checks import require_float, require_seed
from medprior.errors import InputError, ParameterError
from medprior.io import atomic_path, write_json, write_sidecar

SPLIT_NAMES = ("train", "holdout", "test")
GROUPINGS = ("case", "center")
SPLIT_FILE = "split.json"


def case_group(case_id: str, by: str) -> str:
    """The unit a split keeps together: the case itself, or its centre (``CHUM-001`` -> ``CHUM``)."""
    return case_id.rsplit("-", 1)[0] if by == "center" else case_id


def split_cases(case_ids: Sequence[str], *, seed: int, test: float, holdout: float,
                by: str = "case") -> dict[str, list[str]]:
    """A seeded partition of ``case_ids`` into ``{"train", "holdout", "test"}``, each sorted.

    The groups (:func:`case_group`) in sorted order are permuted with
    ``numpy.random.default_rng(seed).permutation``; the first ``round(test * G)`` groups go to test
    (at least one when ``test > 0``), the next ``round(holdout * G)`` (likewise) to holdout, the
    rest to train. The same ids, seed and fractions give the same split on any machine.

    Raises:
        ParameterError: a fraction outside [0, 1), fractions summing to 1 or more, or too few
            groups to leave one for training; ValueError: an unknown ``by``.
    """
    seed = require_seed("seed", seed)
    test = require_float("test", test, minimum=0, maximum=1, exclusive_maximum=True)
    holdout = require_float("holdout", holdout, minimum=0, maximum=1, exclusive_maximum=True)
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {GROUPINGS}, got {by!r}")
    if test + holdout >= 1:
        raise ParameterError("holdout", f"and test ({test}) sum to {test + holdout:g}; they must leave cases for training")
    groups = sorted({case_group(c, by) for c in case_ids})
    counts = [max(1, round(f * len(groups))) if f > 0 else 0 for f in (test, holdout)]
    if sum(counts) >= len(groups):
        plural = "" if len(groups) == 1 else "s"
        raise ParameterError("test", f"with holdout {holdout:g} leaves no {by} for training: {len(groups)} {by}{plural} "
                                     f"give {counts[0]} to test and {counts[1]} to holdout")
    order = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    chosen = {"test": set(order[:counts[0]]), "holdout": set(order[counts[0]:sum(counts)])}
    split: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for case_id in sorted(case_ids):
        group = case_group(case_id, by)
        name = next((n for n, members in chosen.items() if group in members), "train")
        split[name].append(case_id)
    return split


def split_hecktor_folder(cases_root: str | os.PathLike, out_root: str | os.PathLike, *, seed: int,
                         test: float = 0.2, holdout: float = 0.1, by: str = "case") -> dict[str, list[str]]:
    """Write the seeded split (:func:`split_cases`) of a labelled HECKTOR folder; returns it.

    ``out_root/<split>/imagesTr`` and ``labelsTr`` hold each case's three files, hard-linked to
    the originals where the file system allows (no extra disk; medprior replaces files, it never
    writes into them) and copied otherwise; splits without cases are not written.
    ``out_root/split.json`` records the ids, seed, fractions and source, and ``out_root.json`` is
    the provenance sidecar. The folder appears complete or not at all.

    Raises:
        InputError: ``cases_root`` holds no HECKTOR cases, or a case without its label (naming
            its CT); ParameterError as :func:`split_cases`.
    """
    cases = find_hecktor_cases(cases_root)
    if not cases:
        raise InputError(cases_root, "holds no HECKTOR cases")
    for case_id, files in cases.items():
        if "label" not in files:
            raise InputError(files["ct"], f"case {case_id} has no label; a split for training and "
                                          "evaluation needs labelled cases")
    split = split_cases(list(cases), seed=seed, test=test, holdout=holdout, by=by)
    with ExitStack() as stack:
        out = stack.enter_context(atomic_path(out_root, directory=True))
        for name, case_ids in split.items():
            for case_id in case_ids:
                _link_case(cases[case_id], hecktor_paths(out / name, case_id))
        write_json(out / SPLIT_FILE, {"cases_root": str(Path(cases_root).resolve()), "seed": int(seed),
                                      "by": by, "fractions": {"test": test, "holdout": holdout}, **split})
    write_sidecar(out_root, config={"cases_root": str(cases_root), "test": test, "holdout": holdout, "by": by},
                  seeds={"split": int(seed)})
    return split


def _link_case(sources: Mapping[str, Path], targets: Mapping[str, Path]) -> None:
    for key, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(sources[key], target)
        except OSError:
            shutil.copyfile(sources[key], target)

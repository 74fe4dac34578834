"""The method registries are the one list: the schema, the CLI, the rules and the README agree with them."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medprior.checks import schema_property
from medprior.cli import build_parser
from medprior.config import defaults
from medprior.errors import InputError, ParameterError
from medprior.registry import Method, Registry
from medprior.methods import DEHAZE_METHODS, RECON_METHODS, SEGMENT_METHODS

ROOT = Path(__file__).resolve().parents[1]


def test_the_schema_enums_are_the_registry():
    for key, modality in (("ct", "CT"), ("mri", "MR")):
        enum = schema_property(f"recon.{key}.methods")["items"]["enum"]
        assert enum == list(RECON_METHODS.names(modality=modality)), key
        assert set(defaults()["recon"][key]["methods"]) <= set(enum)
    diffusion = schema_property("recon.diffusion")["properties"]
    assert set(diffusion["mri_overrides"]["properties"]) == set(RECON_METHODS.names("diffusion"))
    assert set(RECON_METHODS.names("diffusion")) <= set(diffusion)
    for name in RECON_METHODS.names():  # every parameter a method uses has a default and a range in the schema
        for key in RECON_METHODS[name].used():
            assert "default" in schema_property(f"{RECON_METHODS[name].section}.{key}")


def test_the_cli_offers_the_registry():
    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command")
    recon = commands.choices["recon"]
    method = next(action for action in recon._actions if action.dest == "method")
    assert tuple(method.choices) == RECON_METHODS.names()
    options = {action.dest: action for action in recon._actions}
    for key in RECON_METHODS.options("classical"):
        assert options[key].default is None  # defaults are resolved by the registry, not by argparse
        assert str(defaults()["recon"]["solver"][key]) in options[key].help


def test_the_rules_route_every_method_by_its_family(tmp_path):
    (tmp_path / "all.yaml").write_text(yaml.safe_dump({
        "recon": {"ct": {"cases": 1, "methods": list(RECON_METHODS.names(modality="CT"))},
                  "mri": {"cases": 1, "methods": list(RECON_METHODS.names(modality="MR"))}},
        "synthesis": {"cases": 0}}))
    done = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(tmp_path), "-n", "--configfile", str(ROOT / "configs/default.yaml"),
                           str(tmp_path / "all.yaml")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    routed = {}
    pattern = r"^rule (reconstruct\w*):\n(?:\s+\w+: .*\n)*?\s+output: \S+/(?:ct|mri)/[^/]+/[^/]+/(\w+)\.nii\.gz"
    for rule, output in re.findall(pattern, done.stdout, re.M):
        routed.setdefault(output, set()).add(rule)
    expected = {name: {"reconstruct_diffusion" if RECON_METHODS[name].family == "diffusion" else "reconstruct"}
                for name in RECON_METHODS.names()}
    assert routed == expected


def test_the_readme_table_is_the_registry():
    assert RECON_METHODS.markdown() in (ROOT / "README.md").read_text(), \
        "regenerate the README's method table: python -m medprior.methods recon"
    assert DEHAZE_METHODS.markdown() in (ROOT / "README.md").read_text(), \
        "regenerate the README's dehazing table: python -m medprior.methods dehaze"
    assert SEGMENT_METHODS.markdown() in (ROOT / "README.md").read_text(), \
        "regenerate the README's segmentation table: python -m medprior.methods segment"


def test_the_segmentation_schema_and_cli_are_the_registry():
    assert schema_property("segment.methods")["items"]["enum"] == list(SEGMENT_METHODS.names())
    assert set(defaults()["segment"]["models"]) == set(SEGMENT_METHODS.names()) - {"threshold"}
    for name in SEGMENT_METHODS.names():
        for key in SEGMENT_METHODS[name].used():
            assert "default" in schema_property(f"{SEGMENT_METHODS[name].section}.{key}")
    commands = next(action for action in build_parser()._actions if action.dest == "command")
    method = next(action for action in commands.choices["segment"]._actions if action.dest == "method")
    assert tuple(method.choices) == SEGMENT_METHODS.names()


def test_parameters_are_resolved_in_one_order():
    config = defaults()
    config["recon"]["diffusion"]["dds"]["steps"] = 7  # a workflow config's value
    assert RECON_METHODS.parameters("dds", "CT", config=config)["steps"] == 7
    assert RECON_METHODS.parameters("dds", "MR", config=config)["steps"] == 25  # the MRI override wins
    assert RECON_METHODS.parameters("dds", "MR", {"steps": 3}, config)["steps"] == 3  # what the caller gave wins
    tv = RECON_METHODS.parameters("tv", "MR")
    assert tv["lam"] == config["recon"]["solver"]["mri_tv_lambda"] and "ct_tv_lambda" not in tv
    assert RECON_METHODS.parameters("fbp", "CT", {"cg_iterations": 3}) == {}  # accepted (a shared option), unused
    with pytest.raises(ParameterError, match="^steps: must be >= 1"):
        RECON_METHODS.parameters("dds", "CT", {"steps": 0})
    with pytest.raises(ParameterError, match="^method: unknown method 'art'"):
        RECON_METHODS.parameters("art", "CT")
    with pytest.raises(InputError, match="'cgsense' does not apply to CT"):
        RECON_METHODS.for_modality("cgsense", "CT")


def test_a_new_task_registers_its_methods_the_same_way():
    registry = Registry("toy", [Method("only", "classical", ("CT",), lambda problem: problem, "recon.solver",
                                       uses=("cg_iterations",), summary="a toy")])
    assert registry.names() == ("only",) and registry.names(modality="MR") == ()
    assert registry.parameters("only", "CT") == {"cg_iterations": defaults()["recon"]["solver"]["cg_iterations"]}
    assert "| only | classical | CT | cg_iterations=20 (>= 1) | a toy |" in registry.markdown()


def test_every_method_names_a_function_that_imports():
    import medprior.solvers.diffusion as diffusion_solvers
    from medprior.tasks import dehaze, recon_methods, segment
    expected = {("recon", "tv"): recon_methods.tv, ("recon", "dds"): diffusion_solvers.dds,
                ("dehaze", "nlm"): dehaze.nlm, ("segment", "threshold"): segment.pet_threshold}
    for registry in (RECON_METHODS, DEHAZE_METHODS, SEGMENT_METHODS):
        for method in registry.methods.values():
            assert isinstance(method.run, str) and callable(method.runner), (registry.task, method.name)
            if (registry.task, method.name) in expected:
                assert method.runner is expected[registry.task, method.name]


def _loaded_after(statements: str, modules: tuple[str, ...]) -> list[str]:
    """Those of ``modules`` that a fresh interpreter has imported after running ``statements``."""
    code = f"import sys; {statements}; print(sorted(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return ast.literal_eval(done.stdout)


def test_parsing_and_scoring_do_not_import_monai():
    """The registries name their functions by import path so that the CLI's parser, and the commands
    that run no network, start without MONAI (seconds per workflow job)."""
    statements = ("from medprior.cli import build_parser; build_parser(); "
                  "from medprior.tasks import recon, dehaze_report, segment_report")
    assert _loaded_after(statements, ("monai", "medprior.diffusion.networks")) == []


def test_parsing_does_not_import_torch():
    """The CLI's parser reads its defaults from NumPy-only modules and imports each task in its handler,
    so every workflow job saves torch's import time (about 1.7 s) until its task needs it."""
    assert _loaded_after("from medprior.cli import build_parser; build_parser()", ("torch", "monai")) == []

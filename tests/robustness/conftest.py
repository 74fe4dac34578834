"""Fixtures of the robustness suite (issue 14, section 5): the shared good inputs, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustness_world import build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """Small good inputs (volumes, a DICOM series, measurements, BraTS cases, priors, configs) that
    every row copies from; see ``robustness_world``."""
    return build_world(tmp_path_factory.mktemp("world"))


def pytest_configure(config):
    config.addinivalue_line("markers", "interrupt: a robustness row that kills or interrupts a real process")


def pytest_report_header(config):
    import medprior
    return f"robustness suite: medprior {medprior.__version__} imported from {Path(medprior.__file__).parent}"

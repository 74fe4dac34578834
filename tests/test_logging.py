"""Logging: ``-v/-vv/-q`` on the CLI, silence by default off a terminal, solver residual histories."""

from __future__ import annotations

import logging

import pytest
import torch

from dense_operator import Dense
from medprior.cli import main
from medprior.solvers import admm_tv, cg_sense, cgls, conjugate_gradient


@pytest.fixture(scope="module")
def measurement(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("logging")
    assert main(["phantom", "ct", "--out", str(folder), "--seed", "4", "--size", "32", "32", "4",
                 "--format", "nifti"]) == 0
    path = folder / "sv8.h5"
    assert main(["simulate", "ct", str(folder / "CT-0004.nii.gz"), "--views", "8", "--slices", "2",
                 "--out", str(path)]) == 0
    return str(path)


def _recon(measurement: str, out, *verbosity: str, where: str = "after") -> list[str]:
    args = ["recon", measurement, "--method", "tv", "--tv-iterations", "3", "--out", str(out)]
    return [*verbosity, *args] if where == "before" else [*args, *verbosity]


def test_default_run_off_a_terminal_logs_nothing(measurement, tmp_path, capsys):
    capsys.readouterr()
    assert main(_recon(measurement, tmp_path / "x.nii.gz")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.strip() == f"wrote {tmp_path / 'x.nii.gz'}"


def test_quiet_prints_only_the_report_line(measurement, tmp_path, capsys):
    capsys.readouterr()
    assert main(_recon(measurement, tmp_path / "x.nii.gz", "-q", where="before")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines() == [f"wrote {tmp_path / 'x.nii.gz'}"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_logs_the_tv_summary_and_vv_every_iteration(measurement, tmp_path, capsys, where):
    capsys.readouterr()
    assert main(_recon(measurement, tmp_path / "v.nii.gz", "-v", where=where)) == 0
    lines = capsys.readouterr().err.splitlines()
    assert any("INFO medprior.solvers.tv: ADMM-TV: 3 iterations, primal residual" in line for line in lines)
    assert not any("DEBUG" in line for line in lines)
    assert all("\r" not in line for line in lines)  # no progress bar off a terminal

    assert main(_recon(measurement, tmp_path / "vv.nii.gz", "-vv", where=where)) == 0
    lines = capsys.readouterr().err.splitlines()
    iterations = [line for line in lines if "DEBUG medprior.solvers.tv: ADMM-TV iteration" in line]
    assert len(iterations) == 3 and all("primal residual" in line and "dual residual" in line for line in iterations)


def test_verbose_and_quiet_exclude_each_other(measurement, tmp_path, capsys):
    capsys.readouterr()
    assert main(["-v", *_recon(measurement, tmp_path / "x.nii.gz", "-q")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("medprior: error: ")
    assert not (tmp_path / "x.nii.gz").exists()


def test_failing_verbose_run_ends_with_the_error_line_and_leaves_logging_as_it_was(tmp_path, capsys):
    assert main(["-vv", "recon", str(tmp_path / "absent.h5"), "--method", "tv", "--out", str(tmp_path / "x.nii.gz")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("medprior: error: ")
    package = logging.getLogger("medprior")
    assert package.handlers == [] and package.level == logging.NOTSET and package.propagate


def _spd(n: int = 12, batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=generator))
    matrix = q @ torch.diag(torch.linspace(1.0, 4.0, n, dtype=torch.float64)) @ q.T
    return matrix, torch.randn(batch, n, dtype=torch.float64, generator=generator)


def test_cg_residual_history_decreases_and_leaves_the_solution_alone(caplog):
    matrix, b = _spd()
    plain = conjugate_gradient(lambda x: x @ matrix, b, iterations=30, tolerance=1e-10)
    history: list[float] = []
    with caplog.at_level(logging.DEBUG, logger="medprior.solvers.cg"):
        x = conjugate_gradient(lambda x: x @ matrix, b, iterations=30, tolerance=1e-10, history=history)
    assert torch.equal(x, plain)
    assert history[0] == pytest.approx(1.0) and history[-1] <= 1e-10 and len(history) <= 31
    assert all(later < earlier for earlier, later in zip(history, history[1:]))
    steps = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(steps) == len(history) - 1 and steps[0].startswith("CG iteration 1: relative residual")
    summary = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert summary == [f"CG: {len(history) - 1} iterations, relative residual {history[-1]:.3e}"]


def test_cgls_cg_sense_and_admm_tv_histories():
    generator = torch.Generator().manual_seed(1)
    operator = Dense(torch.randn(20, 8, dtype=torch.float64, generator=generator))
    y = torch.randn(2, 20, dtype=torch.float64, generator=generator)
    for solve in (cgls, cg_sense):
        history: list[float] = []
        x = solve(operator, y, iterations=8, history=history)
        assert torch.equal(x, solve(operator, y, iterations=8))
        assert len(history) == 9 and history[-1] < 1e-6 * history[0]
    pairs: list[tuple[float, float]] = []
    x = admm_tv(operator, y, lam=0.1, rho=1.0, iterations=6, axes=("z",), nonnegative=True, history=pairs)
    assert torch.equal(x, admm_tv(operator, y, lam=0.1, rho=1.0, iterations=6, axes=("z",), nonnegative=True))
    assert len(pairs) == 6 and all(p >= 0 and d >= 0 for p, d in pairs)


def test_the_library_configures_no_logging():
    assert logging.getLogger("medprior").handlers == []


def test_bars_off_become_log_lines_at_info(caplog, monkeypatch):
    from medprior import progress

    monkeypatch.setattr(progress, "enabled", False)
    assert list(progress.progress_bar(range(4), desc="demo")) == [0, 1, 2, 3]  # INFO off: silent
    assert caplog.records == []
    with caplog.at_level(logging.INFO, logger="medprior.progress"):
        assert list(progress.progress_bar(range(4), desc="demo", unit="slice")) == [0, 1, 2, 3]
        assert list(progress.progress_bar(range(4), desc="hidden", show=False)) == [0, 1, 2, 3]
    messages = [record.getMessage() for record in caplog.records]
    assert messages and all("\r" not in m and m.startswith("demo:") for m in messages)
    assert "4/4" in messages[-1]


def test_a_bar_asking_for_the_terminal_width_still_logs(caplog, monkeypatch):
    from medprior import progress  # train-prior -v off a terminal asked for dynamic_ncols and crashed

    monkeypatch.setattr(progress, "enabled", False)
    with caplog.at_level(logging.INFO, logger="medprior.progress"):
        assert list(progress.progress_bar(range(3), desc="training", dynamic_ncols=True)) == [0, 1, 2]
    assert "3/3" in caplog.records[-1].getMessage()

"""Every subcommand against every class of bad input, one table row per command line (issue 14, §5).

Rows live in ``robustness_rows.py``; each runs ``medprior.cli.main`` in-process (the interrupt rows,
which need a real process to kill, are in ``test_interrupts.py``). With ``ROBUSTNESS_LOG=FILE`` each
row also appends its exit status, seconds and last stderr line to FILE (JSON lines).
"""

from __future__ import annotations

import json
import os

import pytest

from robustness_harness import check_failure, check_success, copy_world, run_cli, snapshot
from robustness_rows import ROWS, SetupError


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_row(row, world, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "w"
    copy_world(world, folder, row.uses)
    monkeypatch.chdir(folder)
    if row.build is not None:
        try:
            row.build(folder)
        except SetupError as error:
            pytest.fail(f"[setup] {error}", pytrace=False)
    capsys.readouterr()
    before = snapshot(folder)
    code, escaped, elapsed = run_cli(row.args(folder), row.timeout)
    stderr = capsys.readouterr().err
    after = snapshot(folder) if folder.is_dir() else {}
    if os.environ.get("ROBUSTNESS_LOG"):  # one JSON line per row: what it printed, for review
        with open(os.environ["ROBUSTNESS_LOG"], "a") as log:
            log.write(json.dumps({"id": row.id, "exit": code, "seconds": round(elapsed, 2),
                                  "stderr": stderr.strip().splitlines()[-1:]}) + "\n")
    check = check_success if row.code == 0 else check_failure
    problems = check(row, code, escaped, elapsed, stderr, before, after)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)

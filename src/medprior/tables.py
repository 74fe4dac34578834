"""Results tables: one list of row dicts, written as CSV (for tools) and Markdown (for the README)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medprior.io import atomic_path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return "" if value is None else str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table; columns in first-seen order over all rows."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[Mapping[str, Any]], csv_path: str | os.PathLike,
                markdown_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``rows`` to a CSV file and a Markdown file, each atomically."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: _cell(row.get(c)) for c in columns} for row in rows)
    for path, text in ((csv_path, buffer.getvalue()), (markdown_path, markdown_table(rows))):
        with atomic_path(path) as temporary:
            temporary.write_text(text)
    return Path(csv_path), Path(markdown_path)

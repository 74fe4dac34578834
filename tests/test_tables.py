"""Results tables: CSV and Markdown carry the same cells, columns in first-seen order."""

from __future__ import annotations

import csv

from medprior.tables import markdown_table, write_table

ROWS = [{"case": "a", "psnr": 31.23456}, {"case": "b", "ssim": 0.9, "psnr": 12345.6}]


def test_markdown_table():
    assert markdown_table(ROWS) == (
        "| case | psnr | ssim |\n|---|---|---|\n| a | 31.23 |  |\n| b | 12346 | 0.9 |\n")


def test_csv_matches_markdown(tmp_path):
    csv_path, md_path = write_table(ROWS, tmp_path / "t.csv", tmp_path / "t.md")
    with open(csv_path) as stream:
        rows = list(csv.DictReader(stream))
    assert rows == [{"case": "a", "psnr": "31.23", "ssim": ""}, {"case": "b", "psnr": "12346", "ssim": "0.9"}]
    assert md_path.read_text() == markdown_table(ROWS)

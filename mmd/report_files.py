"""Writes report files: a report's summary.json, charts and page, the fills CSV, text exports
(`mmd ledger --out`), a key added to a written summary.json. Shell: the bytes come from
mmd.sim.report_charts and the callers; nothing is computed here."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from mmd.sim.report_charts import ReportSeries, render_report


def write_report(summary: dict[str, Any], series: ReportSeries, out_dir: Path | str) -> list[Path]:
    """Write `summary.json`, the PNGs of CHARTS and `report.html` to out_dir (created when
    missing). `mmd backtest --report` calls it; any run that has a summary and a ReportSeries
    (a live or replay run read back from its ledger) gets the same files.

    Returns:
        The written paths: summary.json first, then the PNGs, then report.html.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, data in render_report(summary, series).items():
        p = out / name
        p.write_bytes(data)
        paths.append(p)
    return paths


def write_text(path: Path, text: str) -> None:
    """text as a UTF-8 file (parent directories created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """rows as a CSV file with a header of columns (parent directories created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)


def add_to_summary(path: Path, key: str, value: Any) -> None:
    """Set key in a written summary.json (nothing when the file does not exist)."""
    if path.exists():
        written = json.loads(path.read_text())
        written[key] = value
        path.write_text(json.dumps(written, indent=2) + "\n")

"""Run every benchmark and print one JSON object per line: `{"name": ..., <figures>}`.

Usage: `python tests/bench/run.py [--quick] [-k SUBSTRING]`. Each `tests/bench/bench_*.py`
exposes `run(quick: bool) -> list[dict]`; modules are loaded by file path, so `tests` need not be
a package. `--quick` is the short size CI runs. Every row is checked (a name, at least one
figure, every figure a finite positive number, names unique across the run). Exits 1 when a
benchmark raises or a row fails the check (the others still run and their lines are printed), 0
otherwise; `.ci/run` runs it, so a broken benchmark fails CI.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parents[1]


def load_module(path: Path) -> ModuleType:
    """Import one bench module from its file under a private name."""
    spec = importlib.util.spec_from_file_location(f"_mmd_bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_files(pattern: str = "") -> list[Path]:
    """The bench modules, sorted by name, whose stem contains pattern."""
    return [p for p in sorted(BENCH_DIR.glob("bench_*.py")) if pattern in p.stem]


def check_row(row: Any, source: Path) -> dict[str, Any]:
    """A result row must be a dict with a non-empty string name and at least one figure; every
    figure is a finite, positive int or float (not a bool)."""
    if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not row["name"]:
        raise TypeError(f"{source.name}: result rows must be dicts with a 'name', got {row!r}")
    figures = {k: v for k, v in row.items() if k != "name"}
    if not figures:
        raise ValueError(f"{source.name}: {row['name']} has no figures")
    for key, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{source.name}: {row['name']}.{key} is not a number: {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{source.name}: {row['name']}.{key} = {value}")
    return row


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short sizes (what CI runs)")
    parser.add_argument("-k", default="", help="only bench modules whose name contains this")
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:  # run as a script from anywhere: make `mmd` importable
        sys.path.insert(0, str(REPO))
    failed = []
    seen: set[str] = set()
    for path in bench_files(args.k):
        try:
            rows = [check_row(r, path) for r in load_module(path).run(args.quick)]
        except Exception:  # report every failing module, then fail the run as a whole
            traceback.print_exc(file=sys.stderr)
            failed.append(path.name)
            continue
        names = [r["name"] for r in rows]
        repeated = sorted({n for n in names if n in seen or names.count(n) > 1})
        if repeated:
            print(f"{path.name}: benchmark names repeat: {repeated}", file=sys.stderr)
            failed.append(path.name)
        seen.update(r["name"] for r in rows)
        for row in rows:
            print(json.dumps(row, allow_nan=False), flush=True)
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""run.py --quick runs every benchmark and prints well-formed JSON lines (no timing asserts)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent / "run.py"


def test_bench_runner_quick_prints_named_json_lines_with_positive_figures(tmp_path: Path) -> None:
    # run from elsewhere: run.py must find the bench modules and mmd by itself. One real module
    # (the book kernels) end to end; every module runs in `.ci/run` (`run.py --quick`, whose
    # row checks are tested below), so the suite does not run them all twice
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "-k", "book"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines, "no benchmark output"
    names = []
    for line in lines:
        row = json.loads(line)
        assert isinstance(row, dict)
        assert isinstance(row.get("name"), str)
        assert row["name"]
        figures = {k: v for k, v in row.items() if k != "name"}
        assert figures, f"{row['name']} has no figures"
        for key, value in figures.items():
            assert isinstance(value, int | float), f"{row['name']}.{key} is not a number"
            assert not isinstance(value, bool), f"{row['name']}.{key} is a bool"
            assert math.isfinite(value), f"{row['name']}.{key} = {value}"
            assert value > 0, f"{row['name']}.{key} = {value}"
        names.append(row["name"])
    assert len(names) == len(set(names)), "benchmark names repeat"
    assert any(n.startswith("book.apply_levels") for n in names)


@pytest.mark.parametrize(
    "body",
    [
        "def run(quick):\n    return [{'name': 'x', 'a': 0.0}]\n",  # not positive
        "def run(quick):\n    return [{'name': 'x', 'a': True}]\n",  # a bool
        "def run(quick):\n    return [{'name': 'x', 'a': 'fast'}]\n",  # not a number
        "def run(quick):\n    return [{'name': 'x'}]\n",  # no figure
        "def run(quick):\n    return [{'name': 'x', 'a': 1}, {'name': 'x', 'a': 2}]\n",  # repeated
    ],
)
def test_bench_runner_refuses_a_bad_row(tmp_path: Path, body: str) -> None:
    (tmp_path / "run.py").write_text(RUN.read_text())
    (tmp_path / "bench_bad.py").write_text(body)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout


def test_bench_runner_failing_module_exits_nonzero(tmp_path: Path) -> None:
    # a copy of the runner next to one broken bench module
    (tmp_path / "run.py").write_text(RUN.read_text())
    (tmp_path / "bench_broken.py").write_text("def run(quick):\n    raise RuntimeError('boom')\n")
    (tmp_path / "bench_fine.py").write_text(
        "def run(quick):\n    return [{'name': 'fine', 'x': 1}]\n"
    )
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "boom" in proc.stderr
    assert [json.loads(x)["name"] for x in proc.stdout.splitlines()] == ["fine"]

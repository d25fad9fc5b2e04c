"""README's Layout section and its "Where to change what" table name files that exist, and each
name a row places in a file (`NAME` of `path`, `NAME` in `path`) is defined there; every module
of the package appears in the Layout tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    nxt = re.search(r"^#{2,3} ", README[start + len(title) :], re.M)
    return README[start : start + len(title) + (nxt.start() if nxt else len(README))]


def _table_rows() -> list[str]:
    sec = _section("### Where to change what")
    rows = [ln for ln in sec.splitlines() if ln.startswith("| ") and not ln.startswith("| To add")]
    assert len(rows) >= 5, "the table lost rows"
    return rows


def test_every_path_in_the_table_exists() -> None:
    missing = []
    for row in _table_rows():
        for path in re.findall(r"`((?:mmd|deploy)/[^`\s]+)`", row):
            if not (ROOT / path).exists():
                missing.append(path)
    assert not missing, f"README names files that do not exist: {missing}"


def test_every_name_the_table_places_is_in_its_file() -> None:
    wrong = []
    for row in _table_rows():
        # `NAME` of `path` / `NAME` in `path` / `[section] key` of `path`
        for name, path in re.findall(
            r"`(?:\[[a-z]+\] )?([A-Za-z_][A-Za-z0-9_]*)\*?` (?:of|in) `((?:mmd|deploy)/[^`]+)`", row
        ):
            text = (ROOT / path).read_text()
            if not re.search(rf"\b{re.escape(name)}", text):
                wrong.append(f"{name} not in {path}")
    assert not wrong, wrong


def test_every_module_appears_in_the_layout() -> None:
    layout = _section("## Layout")
    absent = []
    for f in sorted((ROOT / "mmd").rglob("*.py")):
        if f.name == "__init__.py" or "__pycache__" in f.parts:
            continue
        if not re.search(rf"\b{re.escape(f.stem)}(\.py|\b)", layout):
            absent.append(str(f.relative_to(ROOT)))
    assert not absent, f"modules missing from README's Layout: {absent}"

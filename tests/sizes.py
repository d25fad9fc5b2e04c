"""How many repetitions the repeated parts of the suite run: a smaller count by default, the full
count with MMD_TEST_FULL=1 (kill -9 rounds, hostile-input batches, drawn examples)."""

from __future__ import annotations

import os

FULL = os.environ.get("MMD_TEST_FULL", "0") not in ("", "0")


def scaled(default: int, full: int) -> int:
    """`full` under MMD_TEST_FULL=1, else `default`."""
    return full if FULL else default

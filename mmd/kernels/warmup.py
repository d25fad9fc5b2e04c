"""Compile every kernel ahead of time with the dtypes the app uses (`python -m mmd.kernels.warmup`).

Run at Docker build time so the numba cache is warm. Finds every numba dispatcher in the
`mmd.kernels` modules and calls it once with the sample arguments in `SAMPLE_ARGS`; a dispatcher
without an entry (or an entry without a dispatcher) is an error, so a new kernel is added here.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
from numba.core.dispatcher import Dispatcher

import mmd.kernels

I64 = np.int64


def _side(capacity: int = 4) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(capacity, I64), np.zeros(capacity, I64)


def _levels() -> tuple[np.ndarray, np.ndarray]:
    return np.array([3, 1, 2], I64), np.array([5, 0, 7], I64)


# "<module>.<function>" -> factory of a fresh argument tuple (kernels mutate their first arrays).
# Scalar types matter as much as array dtypes: Python int -> int64, Python bool -> boolean.
SAMPLE_ARGS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "book._is_better": lambda: (2, 1, True),
    "book._find_level": lambda: (np.array([3, 2, 1], I64), 3, 2, True),
    "book.apply_levels": lambda: (*_side(), 0, *_levels(), True),
    "book.apply_snapshot_side": lambda: (*_side(), *_levels(), False),
    "book.compute_is_crossed": lambda: (_side()[0], 1, _side()[0], 1),
    "book.compute_mid_ticks": lambda: (_side()[0], 1, _side()[0], 1),
    "book.compute_spread_ticks": lambda: (_side()[0], 1, _side()[0], 1),
    "book.compute_depth_qty": lambda: (_side()[1], 2, 5),
}


def kernel_modules() -> list[ModuleType]:
    """Import and return every module of the `mmd.kernels` package except this one."""
    mods = []
    for info in sorted(pkgutil.iter_modules(mmd.kernels.__path__), key=lambda m: m.name):
        if info.name != "warmup":
            mods.append(importlib.import_module(f"mmd.kernels.{info.name}"))
    return mods


def dispatchers() -> dict[str, Dispatcher]:
    """Every numba dispatcher defined (not merely imported) in a kernel module, by table key."""
    found: dict[str, Dispatcher] = {}
    for mod in kernel_modules():
        short = mod.__name__.rsplit(".", 1)[1]
        for name, obj in vars(mod).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod.__name__:
                found[f"{short}.{name}"] = obj
    return found


def warmup() -> float:
    """Compile (or load from the numba cache) every kernel once.

    Returns:
        Seconds taken.

    Raises:
        RuntimeError: a dispatcher has no entry in SAMPLE_ARGS, or an entry names no dispatcher.
    """
    t0 = time.perf_counter()
    found = dispatchers()
    missing = sorted(set(found) - set(SAMPLE_ARGS))
    stale = sorted(set(SAMPLE_ARGS) - set(found))
    if missing or stale:
        raise RuntimeError(
            f"mmd.kernels.warmup.SAMPLE_ARGS out of date: no entry for {missing}, "
            f"entry without a kernel for {stale}"
        )
    for key in sorted(found):
        found[key](*SAMPLE_ARGS[key]())
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"numba kernels warmed up in {warmup():.2f} s")  # noqa: T201

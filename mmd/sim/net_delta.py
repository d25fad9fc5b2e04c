"""The book's net delta over a multi-symbol backtest, from each symbol's sampled series.

Pure core: arrays in, figures out. Each symbol brings its position samples (exchange time,
base units) and its mid samples (exchange time, quote per base unit); on a common clock the
net delta is the sum over the symbols of the position in force times the mid in force (the
last sample at or before the clock time), in quote currency, as `mmd_net_delta_quote` reads it
from the daemon at a scrape. The same function serves a joint (hedged) run and separate
per-symbol runs, so the two compare on one definition.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt

I64Array = npt.NDArray[np.int64]
F64Array = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True, slots=True)
class SymbolPath:
    """One symbol's sampled path in a backtest.

    Attributes:
        position_ts_ns, position_base: position samples (exchange ns, base units), time order.
        mid_ts_ns, mid_quote: mid samples (exchange ns, quote per base unit), time order.
        pnl_quote: the symbol's final PnL (quote, net of fees).
    """

    position_ts_ns: I64Array
    position_base: F64Array
    mid_ts_ns: I64Array
    mid_quote: F64Array
    pnl_quote: float


def _in_force(ts: I64Array, values: F64Array, grid: I64Array) -> F64Array:
    """The last value at or before each grid time (NaN before the first sample)."""
    idx = np.searchsorted(ts, grid, side="right") - 1
    out = np.full(len(grid), math.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def net_delta_path(paths: dict[str, SymbolPath], step_ns: int) -> tuple[I64Array, F64Array]:
    """(clock times, net delta in quote) every step_ns from the first time every symbol has
    both a position and a mid sample to the last sample of any symbol."""
    if not paths:
        return np.empty(0, np.int64), np.empty(0)
    starts, ends = [], []
    for p in paths.values():
        if not len(p.position_ts_ns) or not len(p.mid_ts_ns):
            return np.empty(0, np.int64), np.empty(0)
        starts.append(max(int(p.position_ts_ns[0]), int(p.mid_ts_ns[0])))
        ends.append(max(int(p.position_ts_ns[-1]), int(p.mid_ts_ns[-1])))
    start, end = max(starts), max(ends)
    if end < start:
        return np.empty(0, np.int64), np.empty(0)
    grid = np.arange(start, end + 1, step_ns, dtype=np.int64)
    net = np.zeros(len(grid))
    for p in paths.values():
        net += _in_force(p.position_ts_ns, p.position_base, grid) * _in_force(
            p.mid_ts_ns, p.mid_quote, grid
        )
    return grid, net


def net_delta_figures(paths: dict[str, SymbolPath], step_ns: int = 1_000_000_000) -> dict[str, Any]:
    """The book's figures over the run: total PnL (the symbols' sum), the net delta's mean of
    absolute values, its root mean square and largest absolute value (quote), and each
    symbol's mean |position x mid| (quote), on a clock of step_ns (default 1 s)."""
    grid, net = net_delta_path(paths, step_ns)
    ok = np.isfinite(net)
    per = {}
    for sym, p in paths.items():
        if len(grid):
            leg = _in_force(p.position_ts_ns, p.position_base, grid) * _in_force(
                p.mid_ts_ns, p.mid_quote, grid
            )
            per[sym] = (
                float(np.mean(np.abs(leg[np.isfinite(leg)]))) if np.isfinite(leg).any() else None
            )
        else:
            per[sym] = None
    return {
        "symbols": sorted(paths),
        "pnl": math.fsum(p.pnl_quote for p in paths.values()),
        "net_delta_mean_abs_quote": float(np.mean(np.abs(net[ok]))) if ok.any() else None,
        "net_delta_rms_quote": float(np.sqrt(np.mean(net[ok] ** 2))) if ok.any() else None,
        "net_delta_max_abs_quote": float(np.max(np.abs(net[ok]))) if ok.any() else None,
        "leg_mean_abs_quote": per,
        "net_delta_samples": int(ok.sum()),
        "net_delta_step_s": step_ns / 1e9,
    }

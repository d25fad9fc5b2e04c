"""Every fill of a run as one row with its markouts (what `mmd backtest --fills` writes).

Pure: arrays in, rows out; the caller writes the CSV. Markouts use the same definition and the
same mid series as the run's summary (mmd.sim.report.summarize), so the mean of a column over
the rows where it is set equals the summary's figure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from mmd.sim.report import MARKOUT_HORIZONS_S, NS

FILL_COLUMNS = (
    "ts",
    "symbol",
    "side",
    "price",
    "qty",
    "fee",
    "liquidity",
    *(f"markout_{h}s_{unit}" for h in MARKOUT_HORIZONS_S for unit in ("ticks", "quote")),
)
_SIDES = {1: "buy", -1: "sell"}
_LIQUIDITY = {1: "maker", 2: "taker"}


def _g12(v: float) -> float:
    """v to 12 significant digits (drops float noise such as 0.0024500000000000004)."""
    return float(f"{v:.12g}")


def _iso_ns(ts_ns: int) -> str:
    return str(np.datetime64(int(ts_ns), "ns")) + "Z"


def fill_rows(
    fills: npt.NDArray[np.void],
    mids: npt.NDArray[np.void],
    *,
    symbol: str,
    tick: float,
    lot: float,
    format_px: Callable[[int], str],
    format_qty: Callable[[int], str],
) -> list[dict[str, Any]]:
    """One dict per fill (FILL_COLUMNS as keys), in fill order.

    Args:
        fills: FILL_DTYPE array (mmd.sim.report).
        mids: MID_DTYPE array, the mid series of the run (ticks, step function).
        symbol: written in every row.
        tick, lot: instrument steps, for the markouts in quote.
        format_px, format_qty: ticks -> venue price text, lots -> venue size text
            (Instrument.format_px / format_qty).

    Columns: ts (exchange time of the fill, ISO 8601 UTC, ns), side (buy/sell), price and qty
    in venue units as the venue writes them, fee in quote (negative = rebate), liquidity
    (maker/taker); markout_<h>s_ticks = side * (mid(ts + h) - price) in ticks, with
    mid(t) the last mid at or before t; markout_<h>s_quote = that times tick * qty (quote, one
    fill's PnL marked at the mid h seconds later, before fees). A markout is None when ts + h is
    past the last mid or before the first.
    """
    mid_ts = np.asarray(mids["ts_ns"], np.int64)
    mid_px = np.asarray(mids["mid_ticks"], np.float64)
    ts = np.asarray(fills["ts_ns"], np.int64)
    marks: dict[int, npt.NDArray[np.float64]] = {}
    for h in MARKOUT_HORIZONS_S:
        t_h = ts + h * NS
        out = np.full(ts.size, np.nan)
        if mid_ts.size:
            idx = np.searchsorted(mid_ts, t_h, side="right") - 1
            ok = (idx >= 0) & (t_h <= mid_ts[-1])
            out[ok] = mid_px[idx[ok]]
        marks[h] = out
    rows = []
    for i, f in enumerate(fills):
        side, px, qty = int(f["side"]), int(f["px_ticks"]), int(f["qty_lots"])
        row: dict[str, Any] = {
            "ts": _iso_ns(int(f["ts_ns"])),
            "symbol": symbol,
            "side": _SIDES.get(side, str(side)),
            "price": format_px(px),
            "qty": format_qty(qty),
            "fee": _g12(float(f["fee_quote"])),
            "liquidity": _LIQUIDITY.get(int(f["liquidity"]), str(int(f["liquidity"]))),
        }
        for h in MARKOUT_HORIZONS_S:
            m = marks[h][i]
            ticks = side * (m - px) if m == m else None
            row[f"markout_{h}s_ticks"] = ticks
            row[f"markout_{h}s_quote"] = None if ticks is None else _g12(ticks * tick * qty * lot)
        rows.append(row)
    return rows

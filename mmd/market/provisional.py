"""Provisional values of the features that need a minute or more of data, for the dashboard.

Garman-Klass volatility waits for the first closed 1-minute kline and VPIN for its first full
volume bucket (in auto mode after a minute of measuring the volume). Until then these functions
give a stand-in read from what has been seen so far: the open kline, the trades held. Pure
(reads a SymbolState); the features themselves and the strategy never use these values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mmd.kernels.features import compute_gk_variance
from mmd.market.features import KLINE_S
from mmd.model.codes import BUY

if TYPE_CHECKING:
    from mmd.market.hub import SymbolState

NS = 1_000_000_000
# an open candle younger than this says nothing yet
MIN_OPEN_KLINE_S = 1.0


def open_kline_gk_log_per_s(
    start_ns: int, open_: float, high: float, low: float, close: float, now_ns: int
) -> float:
    """Garman-Klass volatility of an unfinished candle, per sqrt(second).

    sqrt(compute_gk_variance(O, H, L, C) / elapsed_s) with elapsed_s = (now_ns - start_ns) / 1e9
    capped at one kline (60 s): the same unit as the `gk_log_per_s` feature, from one partial
    candle.

    Returns:
        The estimate, or NaN when the candle is younger than MIN_OPEN_KLINE_S or its prices
        are invalid.
    """
    elapsed_s = min((now_ns - start_ns) / NS, KLINE_S)
    if not elapsed_s >= MIN_OPEN_KLINE_S:
        return math.nan
    var = float(compute_gk_variance(float(open_), float(high), float(low), float(close)))
    return math.sqrt(max(var, 0.0) / elapsed_s) if var == var else math.nan


def open_bucket_imbalance(qty_lots: npt.NDArray[np.int64], side: npt.NDArray[np.int64]) -> float:
    """|buy - sell| / (buy + sell) aggressor volume of the given trades: VPIN's measure over
    one open bucket holding all of them, in [0, 1]; NaN without volume."""
    q = np.asarray(qty_lots, np.float64)
    total = float(q.sum())
    if not total > 0:
        return math.nan
    buy = float(q[np.asarray(side) == BUY].sum())
    return abs(2.0 * buy - total) / total


def provisional_values(st: SymbolState) -> dict[str, float]:
    """Stand-ins for the features of `st` that have no value yet, by feature name.

    gk_log_per_s: open_kline_gk_log_per_s of the newest kline held, up to the newest book
        time; only while the feature is NaN (no closed kline taken yet).
    vpin: open_bucket_imbalance of the trades held; only while the feature is NaN (the bucket
        volume still being measured, or no full bucket yet).
    Keys whose value would be NaN are left out.
    """
    values = st.features.values()
    out: dict[str, float] = {}
    if math.isnan(values["gk_log_per_s"]) and len(st.klines) and st.book.ts_exch_ns > 0:
        k = st.klines.last(1)
        v = open_kline_gk_log_per_s(
            int(k["start_ns"][0]),
            k["open"][0],
            k["high"][0],
            k["low"][0],
            k["close"][0],
            st.book.ts_exch_ns,
        )
        if v == v:
            out["gk_log_per_s"] = v
    if math.isnan(values["vpin"]) and len(st.trades):
        t = st.trades.last(len(st.trades))
        v = open_bucket_imbalance(t["qty_lots"], t["side"])
        if v == v:
            out["vpin"] = v
    return out

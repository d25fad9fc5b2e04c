"""Klines: 1-minute candles built from trades, and aggregation of 1-minute rows into any interval.

Pure: int ticks/lots in, Bybit kline rows (7 strings) out; no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

KLINE_INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")
MINUTE_MS = 60_000
_DAY_MS = 86_400_000
_MONDAY0_MS = 4 * _DAY_MS  # 1970-01-05, the first Monday after the epoch


@dataclass(slots=True, eq=False)
class TradeCandle:
    """A 1-minute candle built from trades (int ticks/lots)."""

    start_ms: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    turnover: int  # sum of ticks * lots


def _bucket(start_ms: int, interval: str) -> int:
    if interval == "D":
        return start_ms - start_ms % _DAY_MS
    if interval == "W":
        return start_ms - (start_ms - _MONDAY0_MS) % (7 * _DAY_MS)
    if interval == "M":
        d = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC)
        return int(dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC).timestamp()) * 1000
    span = int(interval) * MINUTE_MS
    return start_ms - start_ms % span


def aggregate(rows: list[list[str]], interval: str) -> list[list[str]]:
    """1-minute rows (oldest first) -> `interval` rows (oldest first)."""
    out: list[list[str]] = []
    cur: list[Any] | None = None
    for r in rows:
        b = _bucket(int(r[0]), interval)
        if cur is None or cur[0] != b:
            if cur is not None:
                out.append(_agg_row(cur))
            cur = [b, r[1], r[2], r[3], r[4], Decimal(r[5]), Decimal(r[6])]
            continue
        if Decimal(r[2]) > Decimal(cur[2]):
            cur[2] = r[2]
        if Decimal(r[3]) < Decimal(cur[3]):
            cur[3] = r[3]
        cur[4] = r[4]
        cur[5] += Decimal(r[5])
        cur[6] += Decimal(r[6])
    if cur is not None:
        out.append(_agg_row(cur))
    return out


def _agg_row(cur: list[Any]) -> list[str]:
    return [str(cur[0]), cur[1], cur[2], cur[3], cur[4], format(cur[5], "f"), format(cur[6], "f")]


def kline_interval_from_rows(rows: list[Any]) -> str:
    """Interval of a recorded REST kline answer (the request URL is not recorded)."""
    starts = sorted({int(r[0]) for r in rows})
    if len(starts) < 2:
        return "1"
    step = min(b - a for a, b in itertools.pairwise(starts))
    if step % MINUTE_MS == 0 and str(step // MINUTE_MS) in KLINE_INTERVALS:
        return str(step // MINUTE_MS)
    return {_DAY_MS: "D", 7 * _DAY_MS: "W"}.get(step, "M")

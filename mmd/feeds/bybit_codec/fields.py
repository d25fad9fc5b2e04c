"""Field rules of the Bybit V5 codec (README "Input rules"): each helper checks one wire field and
returns it typed, or raises DecodeError. Nothing is coerced or rounded; no frame shapes here.
"""

from __future__ import annotations

import re
from typing import Any

from mmd.feeds.bybit_codec.messages import DecodeError, Kline, Trade
from mmd.model import codes
from mmd.model.instrument import PLAIN_DECIMAL

_MS = 1_000_000
# Field rules (README "Input rules"): times are JSON integers of milliseconds in 2000..2200
# (so that times in ns fit int64), ids are JSON integers in 0..2**53-1; a bool is never a number.
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS_MS = 7_258_118_400_000  # 2200-01-01T00:00:00Z
MAX_ID = 2**53 - 1
MAX_DEPTH = 1000
# |fundingRate| above this is refused as absurd (venue caps are a few percent per interval)
MAX_FUNDING_RATE = 0.1
SYMBOL_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
SIGNED_DECIMAL_RE = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?")
DIGITS_RE = re.compile(r"[0-9]{1,13}")
MAX_TRADE_ID_LEN = 128


def int_in_range(v: Any, name: str, lo: int, hi: int) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise DecodeError(f"{name} {v!r:.40} is not an integer in [{lo}, {hi}]")
    return v


def ms_time_ns(v: Any, name: str) -> int:
    """A JSON integer of ms since the epoch, within 2000..2200, as ns."""
    return int_in_range(v, name, MIN_TS_MS, MAX_TS_MS) * _MS


def ms_text_time_ns(v: Any, name: str) -> int:
    """REST writes times as digit strings ("1670608800000"); same range as `ms_time_ns`."""
    if type(v) is str and DIGITS_RE.fullmatch(v):
        return ms_time_ns(int(v), name)
    raise DecodeError(f"{name} {v!r:.40} is not a millisecond time string")


def id_field(v: Any, name: str) -> int:
    return int_in_range(v, name, 0, MAX_ID)


def symbol_field(v: Any, name: str = "symbol") -> str:
    if type(v) is str and SYMBOL_RE.fullmatch(v):
        return v
    raise DecodeError(f"{name} {v!r:.40} is not a symbol")


def same_symbol(v: Any, topic_symbol: str) -> None:
    if v != topic_symbol:
        raise DecodeError(f"symbol {v!r:.40} disagrees with its topic ({topic_symbol})")


def plain_decimal(v: Any, name: str, *, positive: bool = True) -> float:
    """A plain decimal string (no sign, exponent, space, NaN or inf), > 0 when positive."""
    if type(v) is str and PLAIN_DECIMAL.fullmatch(v):
        x = float(v)
        if x > 0 or not positive:
            return x
    raise DecodeError(f"{name} {v!r:.40} is not a plain positive decimal")


def bool_field(v: Any, name: str) -> bool:
    if type(v) is not bool:
        raise DecodeError(f"{name} {v!r:.40} is not a JSON bool")
    return v


def short_str(v: Any, name: str, max_len: int = MAX_TRADE_ID_LEN) -> str:
    if type(v) is not str or not 0 < len(v) <= max_len:
        raise DecodeError(f"{name} {v!r:.40} is not a short string")
    return v


def obj_field(v: Any, name: str) -> dict[str, Any]:
    if type(v) is not dict:
        raise DecodeError(f"{name} is not an object")
    return v


def list_field(v: Any, name: str) -> list[Any]:
    if type(v) is not list:
        raise DecodeError(f"{name} is not a list")
    return v


def side_code(s: Any) -> int:
    if s == "Buy":
        return codes.BUY
    if s == "Sell":
        return codes.SELL
    raise DecodeError(f"bad side {s!r:.40}")


def levels_field(x: Any) -> list[list[str]]:
    """`[[price, size], ...]` of strings; their format and grid are checked by `Instrument`."""
    if type(x) is not list:
        raise DecodeError("levels are not a list")
    for lvl in x:
        if not (
            type(lvl) is list and len(lvl) == 2 and type(lvl[0]) is str and type(lvl[1]) is str
        ):
            raise DecodeError("a level is not a [price, size] pair of strings")
    return x


def topic_parts(topic: str) -> list[str]:
    parts = topic.split(".")
    if len(parts) < 2:
        raise DecodeError(f"bad topic {topic!r:.60}")
    return parts


def kline_of(start_ns: int, o: Any, h: Any, low: Any, c: Any, vol: Any, confirm: bool) -> Kline:
    """One candle; open/high/low/close positive, volume >= 0, low <= open, close <= high."""
    fo, fh = plain_decimal(o, "kline open"), plain_decimal(h, "kline high")
    fl, fc = plain_decimal(low, "kline low"), plain_decimal(c, "kline close")
    plain_decimal(vol, "kline volume", positive=False)
    if not fl <= min(fo, fc) <= max(fo, fc) <= fh:
        raise DecodeError(f"kline prices out of order (o={o} h={h} l={low} c={c})")
    return Kline(start_ns=start_ns, open=o, high=h, low=low, close=c, volume=vol, confirm=confirm)


def trade_of(ts_ns: int, px: Any, qty: Any, side: Any, trade_id: Any, block: Any) -> Trade:
    plain_decimal(px, "trade price")
    plain_decimal(qty, "trade size")
    return Trade(
        ts_exch_ns=ts_ns,
        price=px,
        size=qty,
        side=side_code(side),
        trade_id=short_str(trade_id, "trade id"),
        block=bool_field(block, "block flag"),
    )

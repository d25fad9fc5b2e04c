"""Bybit V5 websocket topic bodies (orderbook, publicTrade, kline, tickers) -> typed messages.

Pure: the frame's JSON object in, a message out, or DecodeError (section 3 of BYBIT_V5_NOTES).
"""

from __future__ import annotations

from typing import Any

from mmd.feeds.bybit_codec.fields import (
    DIGITS_RE,
    MAX_DEPTH,
    MAX_FUNDING_RATE,
    SIGNED_DECIMAL_RE,
    bool_field,
    id_field,
    int_in_range,
    kline_of,
    levels_field,
    list_field,
    ms_text_time_ns,
    ms_time_ns,
    obj_field,
    plain_decimal,
    same_symbol,
    symbol_field,
    topic_parts,
    trade_of,
)
from mmd.feeds.bybit_codec.messages import (
    BookMsg,
    DecodeError,
    KlineMsg,
    Message,
    TickerMsg,
    TradesMsg,
)


def _decode_ws_book(obj: dict[str, Any], parts: list[str]) -> BookMsg:
    data = obj_field(obj["data"], "data")
    typ = obj["type"]
    if typ not in ("snapshot", "delta"):
        raise DecodeError(f"bad book type {typ!r:.40}")
    symbol = parts[-1]
    same_symbol(data["s"], symbol)
    if len(parts) != 3 or not DIGITS_RE.fullmatch(parts[1]):
        raise DecodeError("bad orderbook topic")
    # the matching engine's time when the venue gives it, else the message time
    ts_ns = ms_time_ns(obj["cts"], "cts") if "cts" in obj else ms_time_ns(obj["ts"], "ts")
    return BookMsg(
        symbol=symbol,
        is_snapshot=typ == "snapshot",
        depth=int_in_range(int(parts[1]), "depth", 1, MAX_DEPTH),
        u=id_field(data["u"], "u"),
        seq=id_field(data["seq"], "seq") if "seq" in data else 0,
        ts_exch_ns=ts_ns,
        bids=levels_field(data["b"]),
        asks=levels_field(data["a"]),
    )


def _decode_ws_trades(obj: dict[str, Any], parts: list[str]) -> TradesMsg:
    symbol = parts[-1]
    trades = []
    for t in list_field(obj["data"], "publicTrade data"):
        t = obj_field(t, "trade")
        if "s" in t:
            same_symbol(t["s"], symbol)
        trades.append(
            trade_of(ms_time_ns(t["T"], "T"), t["p"], t["v"], t["S"], t["i"], t.get("BT", False))
        )
    return TradesMsg(symbol=symbol, trades=trades)


def _decode_ws_kline(obj: dict[str, Any], parts: list[str]) -> KlineMsg:
    klines = []
    for k in list_field(obj["data"], "kline data"):
        k = obj_field(k, "kline")
        klines.append(
            kline_of(
                ms_time_ns(k["start"], "kline start"),
                k["open"],
                k["high"],
                k["low"],
                k["close"],
                k["volume"],
                bool_field(k.get("confirm", False), "confirm"),
            )
        )
    return KlineMsg(symbol=parts[-1], interval=parts[1], klines=klines)


def _decode_ws_ticker(obj: dict[str, Any], parts: list[str]) -> TickerMsg:
    d = obj_field(obj["data"], "tickers data")
    symbol = parts[-1]
    if "symbol" in d:
        same_symbol(d["symbol"], symbol)
    rate, nxt, mark = d.get("fundingRate"), d.get("nextFundingTime"), d.get("markPrice")
    funding_rate = None
    if rate not in (None, ""):
        if (
            type(rate) is not str
            or not SIGNED_DECIMAL_RE.fullmatch(rate)
            or abs(float(rate)) > MAX_FUNDING_RATE
        ):
            raise DecodeError(f"fundingRate {rate!r:.40} is not a rate within +-{MAX_FUNDING_RATE}")
        funding_rate = float(rate)
    return TickerMsg(
        symbol=symbol,
        funding_rate=funding_rate,
        next_funding_ns=(
            ms_text_time_ns(nxt, "nextFundingTime") if nxt not in (None, "", "0") else None
        ),
        mark_price=plain_decimal(mark, "markPrice") if mark not in (None, "") else None,
    )


def decode_ws(obj: dict[str, Any]) -> Message | None:
    topic = obj["topic"]
    if not isinstance(topic, str):
        raise DecodeError("topic is not a string")
    parts = topic_parts(topic)
    head = parts[0]
    if head not in ("orderbook", "publicTrade", "kline", "tickers"):
        return None  # liquidations, ...: known venue topics we do not use
    symbol_field(parts[-1], "topic symbol")
    if head == "orderbook":
        return _decode_ws_book(obj, parts)
    if head == "publicTrade":
        return _decode_ws_trades(obj, parts)
    if head == "kline":
        return _decode_ws_kline(obj, parts)
    return _decode_ws_ticker(obj, parts)

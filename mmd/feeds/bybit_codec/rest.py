"""Bybit V5 REST bodies (orderbook, kline, recent-trade, instruments-info, errors) -> typed
messages. Pure: the answer's JSON object in, a message out, or DecodeError (BYBIT_V5_NOTES 2).
"""

from __future__ import annotations

from typing import Any

from mmd.feeds.bybit_codec.fields import (
    id_field,
    kline_of,
    levels_field,
    ms_text_time_ns,
    ms_time_ns,
    obj_field,
    same_symbol,
    short_str,
    symbol_field,
    trade_of,
)
from mmd.feeds.bybit_codec.messages import (
    BookMsg,
    DecodeError,
    InstrumentInfo,
    InstrumentsMsg,
    KlineMsg,
    Message,
    RestError,
    TradesMsg,
)
from mmd.model.instrument import step_units


def _decode_rest_book(obj: dict[str, Any], res: dict[str, Any]) -> BookMsg:
    for key, where in (("cts", res), ("ts", res), ("time", obj)):
        if key in where:
            ts_ns = ms_time_ns(where[key], key)
            break
    else:
        raise DecodeError("orderbook answer without a time")
    return BookMsg(
        symbol=symbol_field(res["s"]),
        is_snapshot=True,
        depth=0,
        u=id_field(res["u"], "u"),
        seq=id_field(res["seq"], "seq") if "seq" in res else 0,
        ts_exch_ns=ts_ns,
        bids=levels_field(res["b"]),
        asks=levels_field(res["a"]),
        from_rest=True,
    )


def _decode_rest_klines(res: dict[str, Any], rows: list[Any]) -> KlineMsg:
    klines = []
    # REST rows are newest first; the newest is the still-open candle
    for i, r in enumerate(rows):
        if type(r) is not list or len(r) < 6:
            raise DecodeError("a kline row is not a list of at least 6 strings")
        klines.append(
            kline_of(ms_text_time_ns(r[0], "kline start"), r[1], r[2], r[3], r[4], r[5], i > 0)
        )
    klines.sort(key=lambda k: k.start_ns)
    return KlineMsg(symbol=symbol_field(res["symbol"]), interval="", klines=klines, from_rest=True)


def _decode_rest_trades(rows: list[Any]) -> TradesMsg:
    symbol = symbol_field(obj_field(rows[0], "trade")["symbol"])
    trades = []
    for t in rows:
        t = obj_field(t, "trade")
        same_symbol(t["symbol"], symbol)
        trades.append(
            trade_of(
                ms_text_time_ns(t["time"], "trade time"),
                t["price"],
                t["size"],
                t["side"],
                t["execId"],
                t.get("isBlockTrade", False),
            )
        )
    # order of `list` is not documented: sort by time, keep server order on ties
    trades.sort(key=lambda t: t.ts_exch_ns)
    return TradesMsg(symbol=symbol, trades=trades, from_rest=True)


def step_field(v: Any, name: str) -> str:
    """A tick or lot step: a plain positive decimal string (Instrument's step rules)."""
    try:
        step_units(v)
    except ValueError as exc:
        raise DecodeError(f"{name}: {exc}") from None
    return str(v)  # a str already: step_units refuses anything else


def _decode_rest_instruments(res: dict[str, Any], rows: list[Any]) -> InstrumentsMsg:
    infos = []
    for r in rows:
        r = obj_field(r, "instrument")
        lot = obj_field(r["lotSizeFilter"], "lotSizeFilter")
        lot_step = lot["qtyStep"] if "qtyStep" in lot else lot["basePrecision"]
        infos.append(
            InstrumentInfo(
                symbol=symbol_field(r["symbol"]),
                tick_size=step_field(
                    obj_field(r["priceFilter"], "priceFilter")["tickSize"], "tickSize"
                ),
                lot_size=step_field(lot_step, "lot step"),
                status=short_str(r.get("status", "Trading"), "status"),
            )
        )
    return InstrumentsMsg(category=str(res.get("category", "")), instruments=infos)


def decode_rest(obj: dict[str, Any]) -> Message | None:
    ret_code = obj["retCode"]
    if type(ret_code) is not int:
        raise DecodeError("retCode is not an integer")
    if ret_code != 0:
        return RestError(ret_code=ret_code, ret_msg=str(obj.get("retMsg", "")))
    res = obj_field(obj["result"], "result")
    if "b" in res and "a" in res:
        return _decode_rest_book(obj, res)
    rows = res.get("list")
    if not isinstance(rows, list):
        return None
    if "symbol" in res and (not rows or isinstance(rows[0], list)):
        return _decode_rest_klines(res, rows)
    if not rows:
        # an empty list: trades or instruments with nothing in them
        return InstrumentsMsg(category=str(res.get("category", "")), instruments=[])
    first = obj_field(rows[0], "list item")
    if "execId" in first:
        return _decode_rest_trades(rows)
    if "priceFilter" in first:
        return _decode_rest_instruments(res, rows)
    return None

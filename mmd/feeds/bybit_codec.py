"""Pure Bybit V5 codec: raw frame bytes -> typed message (websocket and REST envelopes).

Owns the wire shapes (BYBIT_V5_NOTES.md sections 2-3) and nothing else: no sockets, no clock,
no book state. Any frame it cannot make sense of raises DecodeError, which callers count and skip.
Prices and sizes stay venue strings here; `Instrument` turns them into ticks and lots.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from mmd.model import codes


class DecodeError(ValueError):
    """A frame that is not valid JSON or not a shape we know (counted and skipped)."""


class BookMsg(msgspec.Struct, frozen=True, kw_only=True):
    """An order book frame: WS `orderbook.N.SYM` (snapshot or delta) or a REST snapshot.

    WS sample (section 3.2), trimmed:
    `{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1786310817700,
      "data":{"s":"BTCUSDT","b":[["65114.2","1.2"]],"a":[["65114.3","0"]],"u":15076953,
              "seq":131139541218},"cts":1786310817698}`
    """

    symbol: str
    is_snapshot: bool
    depth: int  # topic depth, 0 for REST
    u: int
    seq: int
    ts_exch_ns: int
    bids: list[list[str]]
    asks: list[list[str]]
    from_rest: bool = False


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One public trade. side is codes.BUY when the taker bought."""

    ts_exch_ns: int
    price: str
    size: str
    side: int
    trade_id: str
    block: bool = False


class TradesMsg(msgspec.Struct, frozen=True, kw_only=True):
    """WS `publicTrade.SYM` (oldest first) or REST recent-trade (sorted oldest first here).

    WS sample (section 3.3): `{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":...,
      "data":[{"T":1786310818001,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"65114.3",
               "L":"PlusTick","i":"5b0c...","BT":false,"RPI":false,"seq":131139541300}]}`
    """

    symbol: str
    trades: list[Trade]
    from_rest: bool = False


class Kline(msgspec.Struct, frozen=True, kw_only=True):
    """One candle. Prices and volume as venue strings; start in ns."""

    start_ns: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    confirm: bool


class KlineMsg(msgspec.Struct, frozen=True, kw_only=True):
    """WS `kline.1.SYM` or REST kline (sorted oldest first here)."""

    symbol: str
    interval: str
    klines: list[Kline]
    from_rest: bool = False


class TickerMsg(msgspec.Struct, frozen=True, kw_only=True):
    """WS `tickers.SYM` (linear): the fields mmd uses; None where a delta leaves them out.

    Sample (section 3, tickers), trimmed: `{"topic":"tickers.BTCUSDT","type":"snapshot",
      "data":{"symbol":"BTCUSDT","markPrice":"65117.44","nextFundingTime":"1786320000000",
              "fundingRate":"0.0001",...},"ts":1786310817700,"cs":...}`
    """

    symbol: str
    funding_rate: float | None
    next_funding_ns: int | None
    mark_price: float | None


class ControlMsg(msgspec.Struct, frozen=True, kw_only=True):
    """Subscribe/unsubscribe acks and pongs: `{"success":true,"ret_msg":"pong","op":"ping",...}`."""

    op: str
    success: bool
    ret_msg: str
    req_id: str


class InstrumentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Tick and lot size of one symbol from `/v5/market/instruments-info`."""

    symbol: str
    tick_size: str
    lot_size: str
    status: str


class InstrumentsMsg(msgspec.Struct, frozen=True, kw_only=True):
    """REST `/v5/market/instruments-info` answer."""

    category: str
    instruments: list[InstrumentInfo]


class RestError(msgspec.Struct, frozen=True, kw_only=True):
    """A REST envelope with a non-zero retCode."""

    ret_code: int
    ret_msg: str


Message = BookMsg | TradesMsg | KlineMsg | TickerMsg | ControlMsg | InstrumentsMsg | RestError

_MS = 1_000_000


def _side(s: Any) -> int:
    if s == "Buy":
        return codes.BUY
    if s == "Sell":
        return codes.SELL
    raise DecodeError(f"bad side {s!r}")


def _levels(x: Any) -> list[list[str]]:
    if not isinstance(x, list):
        raise DecodeError("levels are not a list")
    for lvl in x:
        if not (isinstance(lvl, list) and len(lvl) >= 2 and isinstance(lvl[0], str)):
            raise DecodeError("bad level")
    return x


def _topic_parts(topic: str) -> list[str]:
    parts = topic.split(".")
    if len(parts) < 2:
        raise DecodeError(f"bad topic {topic!r}")
    return parts


def _decode_ws_book(obj: dict[str, Any], parts: list[str]) -> BookMsg:
    data = obj["data"]
    typ = obj["type"]
    if typ not in ("snapshot", "delta"):
        raise DecodeError(f"bad book type {typ!r}")
    ts_ms = obj.get("cts") or obj["ts"]
    return BookMsg(
        symbol=data["s"],
        is_snapshot=typ == "snapshot",
        depth=int(parts[1]),
        u=int(data["u"]),
        seq=int(data.get("seq", 0)),
        ts_exch_ns=int(ts_ms) * _MS,
        bids=_levels(data["b"]),
        asks=_levels(data["a"]),
    )


def _decode_ws_trades(obj: dict[str, Any], parts: list[str]) -> TradesMsg:
    items = obj["data"]
    if not isinstance(items, list):
        raise DecodeError("publicTrade data is not a list")
    trades = [
        Trade(
            ts_exch_ns=int(t["T"]) * _MS,
            price=str(t["p"]),
            size=str(t["v"]),
            side=_side(t["S"]),
            trade_id=str(t["i"]),
            block=bool(t.get("BT", False)),
        )
        for t in items
    ]
    return TradesMsg(symbol=parts[-1], trades=trades)


def _decode_ws_kline(obj: dict[str, Any], parts: list[str]) -> KlineMsg:
    items = obj["data"]
    if not isinstance(items, list):
        raise DecodeError("kline data is not a list")
    klines = [
        Kline(
            start_ns=int(k["start"]) * _MS,
            open=str(k["open"]),
            high=str(k["high"]),
            low=str(k["low"]),
            close=str(k["close"]),
            volume=str(k["volume"]),
            confirm=bool(k.get("confirm", False)),
        )
        for k in items
    ]
    return KlineMsg(symbol=parts[-1], interval=parts[1], klines=klines)


def _decode_ws(obj: dict[str, Any]) -> Message | None:
    topic = obj["topic"]
    if not isinstance(topic, str):
        raise DecodeError("topic is not a string")
    parts = _topic_parts(topic)
    head = parts[0]
    if head == "orderbook":
        return _decode_ws_book(obj, parts)
    if head == "publicTrade":
        return _decode_ws_trades(obj, parts)
    if head == "kline":
        return _decode_ws_kline(obj, parts)
    if head == "tickers":
        d = obj["data"]
        rate, nxt, mark = d.get("fundingRate"), d.get("nextFundingTime"), d.get("markPrice")
        return TickerMsg(
            symbol=str(d.get("symbol") or parts[-1]),
            funding_rate=float(rate) if rate not in (None, "") else None,
            next_funding_ns=int(nxt) * _MS if nxt not in (None, "", "0") else None,
            mark_price=float(mark) if mark not in (None, "") else None,
        )
    return None  # tickers, liquidations, ...: known venue topics we do not use


def _decode_rest(obj: dict[str, Any]) -> Message | None:
    ret_code = obj["retCode"]
    if ret_code != 0:
        return RestError(ret_code=int(ret_code), ret_msg=str(obj.get("retMsg", "")))
    res = obj["result"]
    if not isinstance(res, dict):
        raise DecodeError("result is not an object")
    if "b" in res and "a" in res:
        ts_ms = res.get("cts") or res.get("ts") or obj.get("time", 0)
        return BookMsg(
            symbol=res["s"],
            is_snapshot=True,
            depth=0,
            u=int(res["u"]),
            seq=int(res.get("seq", 0)),
            ts_exch_ns=int(ts_ms) * _MS,
            bids=_levels(res["b"]),
            asks=_levels(res["a"]),
            from_rest=True,
        )
    rows = res.get("list")
    if not isinstance(rows, list):
        return None
    if "symbol" in res and (not rows or isinstance(rows[0], list)):
        klines = sorted(
            (
                Kline(
                    start_ns=int(r[0]) * _MS,
                    open=r[1],
                    high=r[2],
                    low=r[3],
                    close=r[4],
                    volume=r[5],
                    # REST rows are newest first; the newest is the still-open candle
                    confirm=i > 0,
                )
                for i, r in enumerate(rows)
            ),
            key=lambda k: k.start_ns,
        )
        return KlineMsg(symbol=res["symbol"], interval="", klines=klines, from_rest=True)
    if rows and "execId" in rows[0]:
        # order of `list` is not documented: sort by time, keep server order on ties
        trades = sorted(
            (
                Trade(
                    ts_exch_ns=int(t["time"]) * _MS,
                    price=t["price"],
                    size=t["size"],
                    side=_side(t["side"]),
                    trade_id=str(t["execId"]),
                    block=bool(t.get("isBlockTrade", False)),
                )
                for t in rows
            ),
            key=lambda t: t.ts_exch_ns,
        )
        return TradesMsg(symbol=rows[0]["symbol"], trades=trades, from_rest=True)
    if rows and "priceFilter" in rows[0]:
        infos = []
        for r in rows:
            lot = r["lotSizeFilter"]
            infos.append(
                InstrumentInfo(
                    symbol=r["symbol"],
                    tick_size=r["priceFilter"]["tickSize"],
                    lot_size=lot.get("qtyStep") or lot["basePrecision"],
                    status=r.get("status", "Trading"),
                )
            )
        return InstrumentsMsg(category=str(res.get("category", "")), instruments=infos)
    if not rows:
        # an empty list: trades or instruments with nothing in them
        return InstrumentsMsg(category=str(res.get("category", "")), instruments=[])
    return None


def decode_frame(raw: bytes | str) -> Message | None:
    """Decode one frame as received from a Bybit V5 socket or REST endpoint.

    Args:
        raw: the frame bytes (or text).

    Returns:
        A typed message, or None for a well-formed frame of a kind mmd does not use
        (tickers, liquidations).

    Raises:
        DecodeError: not JSON, truncated, or a known kind with missing/ill-typed fields.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError("frame is not a JSON object")
    try:
        if "topic" in obj:
            return _decode_ws(obj)
        if "op" in obj:
            return ControlMsg(
                op=str(obj["op"]),
                success=bool(obj.get("success", False)),
                ret_msg=str(obj.get("ret_msg", "")),
                req_id=str(obj.get("req_id", "")),
            )
        if "retCode" in obj:
            return _decode_rest(obj)
    except DecodeError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise DecodeError(f"bad field: {type(exc).__name__}: {exc}") from None
    raise DecodeError("unknown frame shape")


def encode_subscribe(topics: list[str], req_id: str, op: str = "subscribe") -> bytes:
    """The subscribe/unsubscribe request `{"req_id":..,"op":"subscribe","args":[...]}`."""
    return orjson.dumps({"req_id": req_id, "op": op, "args": topics})


def encode_ping(req_id: str) -> bytes:
    """The client heartbeat `{"req_id":..,"op":"ping"}` (every 20 s)."""
    return orjson.dumps({"req_id": req_id, "op": "ping"})


def book_topic(depth: int, symbol: str) -> str:
    """`orderbook.50.BTCUSDT`."""
    return f"orderbook.{depth}.{symbol}"


def trade_topic(symbol: str) -> str:
    """`publicTrade.BTCUSDT`."""
    return f"publicTrade.{symbol}"


def ticker_topic(symbol: str) -> str:
    """`tickers.BTCUSDT` (funding rate, next funding time, mark price)."""
    return f"tickers.{symbol}"


def kline_topic(symbol: str, interval: str = "1") -> str:
    """`kline.1.BTCUSDT`."""
    return f"kline.{interval}.{symbol}"


def topic_symbol(topic: str) -> str | None:
    """The symbol a topic is about (last dotted part), or None for a malformed topic."""
    parts = topic.split(".")
    return parts[-1] if len(parts) >= 2 else None

"""Pure Bybit V5 codec: raw frame bytes -> typed message (websocket and REST envelopes).

Owns the wire shapes (BYBIT_V5_NOTES.md sections 2-3) and nothing else: no sockets, no clock,
no book state. Any frame it cannot make sense of, or that breaks a field rule (README "Input
rules"), raises DecodeError, which callers count and skip; nothing is coerced or rounded. Prices
and sizes stay venue strings here; `Instrument` turns them into ticks and lots (exactly).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson

from mmd.model import codes
from mmd.model.instrument import PLAIN_DECIMAL, step_units


class DecodeError(ValueError):
    """A frame that is not valid JSON, not a shape we know, or breaks a field rule (counted and
    skipped). `book_symbol` names the symbol when the refused frame was an order book frame of
    a readable topic (the caller resyncs that book)."""

    def __init__(self, message: str, book_symbol: str | None = None) -> None:
        super().__init__(message)
        self.book_symbol = book_symbol


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
# Field rules (README "Input rules"): times are JSON integers of milliseconds in 2000..2200
# (so that times in ns fit int64), ids are JSON integers in 0..2**53-1; a bool is never a number.
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS_MS = 7_258_118_400_000  # 2200-01-01T00:00:00Z
MAX_ID = 2**53 - 1
MAX_DEPTH = 1000
# |fundingRate| above this is refused as absurd (venue caps are a few percent per interval)
MAX_FUNDING_RATE = 0.1
_SYMBOL = re.compile(r"[A-Za-z0-9_-]{1,40}")
_SIGNED_DECIMAL = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?")
_DIGITS = re.compile(r"[0-9]{1,13}")
_MAX_TRADE_ID_LEN = 128


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise DecodeError(f"{name} {v!r:.40} is not an integer in [{lo}, {hi}]")
    return v


def _ts_ns(v: Any, name: str) -> int:
    """A JSON integer of ms since the epoch, within 2000..2200, as ns."""
    return _int(v, name, MIN_TS_MS, MAX_TS_MS) * _MS


def _ts_text_ns(v: Any, name: str) -> int:
    """REST writes times as digit strings ("1670608800000"); same range as `_ts_ns`."""
    if type(v) is str and _DIGITS.fullmatch(v):
        return _ts_ns(int(v), name)
    raise DecodeError(f"{name} {v!r:.40} is not a millisecond time string")


def _id(v: Any, name: str) -> int:
    return _int(v, name, 0, MAX_ID)


def _symbol(v: Any, name: str = "symbol") -> str:
    if type(v) is str and _SYMBOL.fullmatch(v):
        return v
    raise DecodeError(f"{name} {v!r:.40} is not a symbol")


def _same_symbol(v: Any, topic_symbol: str) -> None:
    if v != topic_symbol:
        raise DecodeError(f"symbol {v!r:.40} disagrees with its topic ({topic_symbol})")


def _decimal(v: Any, name: str, *, positive: bool = True) -> float:
    """A plain decimal string (no sign, exponent, space, NaN or inf), > 0 when positive."""
    if type(v) is str and PLAIN_DECIMAL.fullmatch(v):
        x = float(v)
        if x > 0 or not positive:
            return x
    raise DecodeError(f"{name} {v!r:.40} is not a plain positive decimal")


def _bool(v: Any, name: str) -> bool:
    if type(v) is not bool:
        raise DecodeError(f"{name} {v!r:.40} is not a JSON bool")
    return v


def _str(v: Any, name: str, max_len: int = _MAX_TRADE_ID_LEN) -> str:
    if type(v) is not str or not 0 < len(v) <= max_len:
        raise DecodeError(f"{name} {v!r:.40} is not a short string")
    return v


def _dict(v: Any, name: str) -> dict[str, Any]:
    if type(v) is not dict:
        raise DecodeError(f"{name} is not an object")
    return v


def _list(v: Any, name: str) -> list[Any]:
    if type(v) is not list:
        raise DecodeError(f"{name} is not a list")
    return v


def _side(s: Any) -> int:
    if s == "Buy":
        return codes.BUY
    if s == "Sell":
        return codes.SELL
    raise DecodeError(f"bad side {s!r:.40}")


def _levels(x: Any) -> list[list[str]]:
    """`[[price, size], ...]` of strings; their format and grid are checked by `Instrument`."""
    if type(x) is not list:
        raise DecodeError("levels are not a list")
    for lvl in x:
        if not (
            type(lvl) is list and len(lvl) == 2 and type(lvl[0]) is str and type(lvl[1]) is str
        ):
            raise DecodeError("a level is not a [price, size] pair of strings")
    return x


def _topic_parts(topic: str) -> list[str]:
    parts = topic.split(".")
    if len(parts) < 2:
        raise DecodeError(f"bad topic {topic!r:.60}")
    return parts


def _kline(start_ns: int, o: Any, h: Any, low: Any, c: Any, vol: Any, confirm: bool) -> Kline:
    """One candle; open/high/low/close positive, volume >= 0, low <= open, close <= high."""
    fo, fh = _decimal(o, "kline open"), _decimal(h, "kline high")
    fl, fc = _decimal(low, "kline low"), _decimal(c, "kline close")
    _decimal(vol, "kline volume", positive=False)
    if not fl <= min(fo, fc) <= max(fo, fc) <= fh:
        raise DecodeError(f"kline prices out of order (o={o} h={h} l={low} c={c})")
    return Kline(start_ns=start_ns, open=o, high=h, low=low, close=c, volume=vol, confirm=confirm)


def _trade(ts_ns: int, px: Any, qty: Any, side: Any, trade_id: Any, block: Any) -> Trade:
    _decimal(px, "trade price")
    _decimal(qty, "trade size")
    return Trade(
        ts_exch_ns=ts_ns,
        price=px,
        size=qty,
        side=_side(side),
        trade_id=_str(trade_id, "trade id"),
        block=_bool(block, "block flag"),
    )


def _decode_ws_book(obj: dict[str, Any], parts: list[str]) -> BookMsg:
    data = _dict(obj["data"], "data")
    typ = obj["type"]
    if typ not in ("snapshot", "delta"):
        raise DecodeError(f"bad book type {typ!r:.40}")
    symbol = parts[-1]
    _same_symbol(data["s"], symbol)
    if len(parts) != 3 or not _DIGITS.fullmatch(parts[1]):
        raise DecodeError("bad orderbook topic")
    # the matching engine's time when the venue gives it, else the message time
    ts_ns = _ts_ns(obj["cts"], "cts") if "cts" in obj else _ts_ns(obj["ts"], "ts")
    return BookMsg(
        symbol=symbol,
        is_snapshot=typ == "snapshot",
        depth=_int(int(parts[1]), "depth", 1, MAX_DEPTH),
        u=_id(data["u"], "u"),
        seq=_id(data["seq"], "seq") if "seq" in data else 0,
        ts_exch_ns=ts_ns,
        bids=_levels(data["b"]),
        asks=_levels(data["a"]),
    )


def _decode_ws_trades(obj: dict[str, Any], parts: list[str]) -> TradesMsg:
    symbol = parts[-1]
    trades = []
    for t in _list(obj["data"], "publicTrade data"):
        t = _dict(t, "trade")
        if "s" in t:
            _same_symbol(t["s"], symbol)
        trades.append(
            _trade(_ts_ns(t["T"], "T"), t["p"], t["v"], t["S"], t["i"], t.get("BT", False))
        )
    return TradesMsg(symbol=symbol, trades=trades)


def _decode_ws_kline(obj: dict[str, Any], parts: list[str]) -> KlineMsg:
    klines = []
    for k in _list(obj["data"], "kline data"):
        k = _dict(k, "kline")
        klines.append(
            _kline(
                _ts_ns(k["start"], "kline start"),
                k["open"],
                k["high"],
                k["low"],
                k["close"],
                k["volume"],
                _bool(k.get("confirm", False), "confirm"),
            )
        )
    return KlineMsg(symbol=parts[-1], interval=parts[1], klines=klines)


def _decode_ws_ticker(obj: dict[str, Any], parts: list[str]) -> TickerMsg:
    d = _dict(obj["data"], "tickers data")
    symbol = parts[-1]
    if "symbol" in d:
        _same_symbol(d["symbol"], symbol)
    rate, nxt, mark = d.get("fundingRate"), d.get("nextFundingTime"), d.get("markPrice")
    funding_rate = None
    if rate not in (None, ""):
        if (
            type(rate) is not str
            or not _SIGNED_DECIMAL.fullmatch(rate)
            or abs(float(rate)) > MAX_FUNDING_RATE
        ):
            raise DecodeError(f"fundingRate {rate!r:.40} is not a rate within +-{MAX_FUNDING_RATE}")
        funding_rate = float(rate)
    return TickerMsg(
        symbol=symbol,
        funding_rate=funding_rate,
        next_funding_ns=(
            _ts_text_ns(nxt, "nextFundingTime") if nxt not in (None, "", "0") else None
        ),
        mark_price=_decimal(mark, "markPrice") if mark not in (None, "") else None,
    )


def _decode_ws(obj: dict[str, Any]) -> Message | None:
    topic = obj["topic"]
    if not isinstance(topic, str):
        raise DecodeError("topic is not a string")
    parts = _topic_parts(topic)
    head = parts[0]
    if head not in ("orderbook", "publicTrade", "kline", "tickers"):
        return None  # liquidations, ...: known venue topics we do not use
    _symbol(parts[-1], "topic symbol")
    if head == "orderbook":
        return _decode_ws_book(obj, parts)
    if head == "publicTrade":
        return _decode_ws_trades(obj, parts)
    if head == "kline":
        return _decode_ws_kline(obj, parts)
    return _decode_ws_ticker(obj, parts)


def _decode_rest_book(obj: dict[str, Any], res: dict[str, Any]) -> BookMsg:
    for key, where in (("cts", res), ("ts", res), ("time", obj)):
        if key in where:
            ts_ns = _ts_ns(where[key], key)
            break
    else:
        raise DecodeError("orderbook answer without a time")
    return BookMsg(
        symbol=_symbol(res["s"]),
        is_snapshot=True,
        depth=0,
        u=_id(res["u"], "u"),
        seq=_id(res["seq"], "seq") if "seq" in res else 0,
        ts_exch_ns=ts_ns,
        bids=_levels(res["b"]),
        asks=_levels(res["a"]),
        from_rest=True,
    )


def _decode_rest_klines(res: dict[str, Any], rows: list[Any]) -> KlineMsg:
    klines = []
    # REST rows are newest first; the newest is the still-open candle
    for i, r in enumerate(rows):
        if type(r) is not list or len(r) < 6:
            raise DecodeError("a kline row is not a list of at least 6 strings")
        klines.append(_kline(_ts_text_ns(r[0], "kline start"), r[1], r[2], r[3], r[4], r[5], i > 0))
    klines.sort(key=lambda k: k.start_ns)
    return KlineMsg(symbol=_symbol(res["symbol"]), interval="", klines=klines, from_rest=True)


def _decode_rest_trades(rows: list[Any]) -> TradesMsg:
    symbol = _symbol(_dict(rows[0], "trade")["symbol"])
    trades = []
    for t in rows:
        t = _dict(t, "trade")
        _same_symbol(t["symbol"], symbol)
        trades.append(
            _trade(
                _ts_text_ns(t["time"], "trade time"),
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


def _step(v: Any, name: str) -> str:
    try:
        step_units(v)
    except ValueError as exc:
        raise DecodeError(f"{name}: {exc}") from None
    return v


def _decode_rest_instruments(res: dict[str, Any], rows: list[Any]) -> InstrumentsMsg:
    infos = []
    for r in rows:
        r = _dict(r, "instrument")
        lot = _dict(r["lotSizeFilter"], "lotSizeFilter")
        lot_step = lot["qtyStep"] if "qtyStep" in lot else lot["basePrecision"]
        infos.append(
            InstrumentInfo(
                symbol=_symbol(r["symbol"]),
                tick_size=_step(_dict(r["priceFilter"], "priceFilter")["tickSize"], "tickSize"),
                lot_size=_step(lot_step, "lot step"),
                status=_str(r.get("status", "Trading"), "status"),
            )
        )
    return InstrumentsMsg(category=str(res.get("category", "")), instruments=infos)


def _decode_rest(obj: dict[str, Any]) -> Message | None:
    ret_code = obj["retCode"]
    if type(ret_code) is not int:
        raise DecodeError("retCode is not an integer")
    if ret_code != 0:
        return RestError(ret_code=ret_code, ret_msg=str(obj.get("retMsg", "")))
    res = _dict(obj["result"], "result")
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
    first = _dict(rows[0], "list item")
    if "execId" in first:
        return _decode_rest_trades(rows)
    if "priceFilter" in first:
        return _decode_rest_instruments(res, rows)
    return None


def _book_symbol(obj: Any) -> str | None:
    """The symbol of an order book frame (WS topic or REST answer), when it can be read."""
    if not isinstance(obj, dict):
        return None
    topic = obj.get("topic")
    if isinstance(topic, str):
        if topic.startswith("orderbook."):
            sym = topic.rsplit(".", 1)[-1]
            return sym if _SYMBOL.fullmatch(sym) else None
        return None
    res = obj.get("result")
    if isinstance(res, dict) and "b" in res and "a" in res:
        sym = res.get("s")
        return sym if isinstance(sym, str) and _SYMBOL.fullmatch(sym) else None
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
                success=obj.get("success") is True,
                ret_msg=str(obj.get("ret_msg", "")),
                req_id=str(obj.get("req_id", "")),
            )
        if "retCode" in obj:
            return _decode_rest(obj)
    except DecodeError as exc:
        raise DecodeError(str(exc), _book_symbol(obj)) from None
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
    ) as exc:
        raise DecodeError(
            f"bad field: {type(exc).__name__}: {exc!s:.80}", _book_symbol(obj)
        ) from None
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

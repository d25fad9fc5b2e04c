"""decode_frame: one raw Bybit V5 frame (websocket or REST) -> typed message; plus the requests
and topic names we send. Pure: no sockets, no clock, no book state.
"""

from __future__ import annotations

from typing import Any

import orjson

from mmd.feeds.bybit_codec.fields import SYMBOL_RE
from mmd.feeds.bybit_codec.messages import ControlMsg, DecodeError, Message
from mmd.feeds.bybit_codec.rest import decode_rest
from mmd.feeds.bybit_codec.stream import decode_ws


def _book_symbol(obj: Any) -> str | None:
    """The symbol of an order book frame (WS topic or REST answer), when it can be read."""
    if not isinstance(obj, dict):
        return None
    topic = obj.get("topic")
    if isinstance(topic, str):
        if topic.startswith("orderbook."):
            sym = topic.rsplit(".", 1)[-1]
            return sym if SYMBOL_RE.fullmatch(sym) else None
        return None
    res = obj.get("result")
    if isinstance(res, dict) and "b" in res and "a" in res:
        rest_sym = res.get("s")
        return rest_sym if isinstance(rest_sym, str) and SYMBOL_RE.fullmatch(rest_sym) else None
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
            return decode_ws(obj)
        if "op" in obj:
            return ControlMsg(
                op=str(obj["op"]),
                success=obj.get("success") is True,
                ret_msg=str(obj.get("ret_msg", "")),
                req_id=str(obj.get("req_id", "")),
            )
        if "retCode" in obj:
            return decode_rest(obj)
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

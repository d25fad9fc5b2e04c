"""Pure Bybit V5 codec: raw frame bytes -> typed message (websocket and REST envelopes).

Owns the wire shapes (BYBIT_V5_NOTES.md sections 2-3) and nothing else: no sockets, no clock,
no book state. Any frame it cannot make sense of, or that breaks a field rule (README "Input
rules"), raises DecodeError, which callers count and skip; nothing is coerced or rounded. Prices
and sizes stay venue strings here; `Instrument` turns them into ticks and lots (exactly).
"""

from mmd.feeds.bybit_codec.frame import (
    book_topic,
    decode_frame,
    encode_ping,
    encode_subscribe,
    kline_topic,
    ticker_topic,
    topic_symbol,
    trade_topic,
)
from mmd.feeds.bybit_codec.messages import (
    BookMsg,
    ControlMsg,
    DecodeError,
    InstrumentInfo,
    InstrumentsMsg,
    Kline,
    KlineMsg,
    Message,
    RestError,
    TickerMsg,
    Trade,
    TradesMsg,
)

__all__ = [
    "BookMsg",
    "ControlMsg",
    "DecodeError",
    "InstrumentInfo",
    "InstrumentsMsg",
    "Kline",
    "KlineMsg",
    "Message",
    "RestError",
    "TickerMsg",
    "Trade",
    "TradesMsg",
    "book_topic",
    "decode_frame",
    "encode_ping",
    "encode_subscribe",
    "kline_topic",
    "ticker_topic",
    "topic_symbol",
    "trade_topic",
]

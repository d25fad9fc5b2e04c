"""The Bybit V5 codec's typed messages and DecodeError: what a decoded frame is. No decoding."""

from __future__ import annotations

import msgspec


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

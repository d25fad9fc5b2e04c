"""Bybit V5 frame builders (pure): instruments-info, orderbook, publicTrade and kline frames.

Shared by the converters and the synthetic feed; no I/O, no clock (times arrive as arguments).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from mmd.model.instrument import Instrument

KLINE_PUSH_MS = 5_000
MINUTE_MS = 60_000
_QUOTE_COINS = ("USDT", "USDC", "USD", "BTC", "ETH")


def _scaled(step: str, factor: int) -> str:
    """`step * factor` written with step's decimals (Bybit's way of writing filter bounds)."""
    return f"{Decimal(step) * factor:f}"


def _base_coin(symbol: str) -> tuple[str, str]:
    for quote in _QUOTE_COINS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "USDT"


def instruments_info_envelope(inst: Instrument, time_ms: int) -> bytes:
    """A `/v5/market/instruments-info` answer listing only `inst` (BYBIT_V5_NOTES 2.1).

    tickSize / qtyStep / minOrderQty come from the instrument. The other filter bounds are
    placeholders in Bybit's format (e.g. maxPrice = tickSize x 19999998, as Bybit writes it):
    nothing should rely on them.

    Args:
        inst: symbol, category, tick and lot size.
        time_ms: the envelope's `time` field.

    Returns:
        The JSON body, e.g. `{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[
        {"symbol":"BTCUSDT",...,"priceFilter":{"tickSize":"0.10",...},...}],...},"time":...}`.
    """
    base, quote = _base_coin(inst.symbol)
    tick, lot = inst.tick_size, inst.lot_size
    item: dict[str, Any]
    if inst.category == "spot":
        item = {
            "symbol": inst.symbol,
            "baseCoin": base,
            "quoteCoin": quote,
            "innovation": "0",
            "status": "Trading",
            "marginTrading": "utaOnly",
            "lotSizeFilter": {
                "basePrecision": lot,
                "quotePrecision": "0.0000001",
                "minOrderQty": lot,
                "maxOrderQty": _scaled(lot, 230_000_000),
                "minOrderAmt": "5",
                "maxOrderAmt": "8000000",
            },
            "priceFilter": {"tickSize": tick},
        }
    else:
        item = {
            "symbol": inst.symbol,
            "contractType": "LinearPerpetual" if inst.category == "linear" else "InversePerpetual",
            "status": "Trading",
            "baseCoin": base,
            "quoteCoin": quote,
            "launchTime": "0",
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": str(len(tick.partition(".")[2])),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {
                "minPrice": tick,
                "maxPrice": _scaled(tick, 19_999_998),
                "tickSize": tick,
            },
            "lotSizeFilter": {
                "maxOrderQty": _scaled(lot, 1_500_000),
                "minOrderQty": lot,
                "qtyStep": lot,
                "postOnlyMaxOrderQty": _scaled(lot, 1_500_000),
                "maxMktOrderQty": _scaled(lot, 150_000),
                "minNotionalValue": "5",
            },
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "settleCoin": quote if inst.category == "linear" else base,
        }
    return orjson.dumps(
        {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": inst.category, "list": [item], "nextPageCursor": ""},
            "retExtInfo": {},
            "time": time_ms,
        }
    )


class FrameFormat:
    """Price and size strings of one instrument (Instrument.format_px/format_qty, memoised).

    The memo is cleared when it grows past `max_entries`, so an endless synthetic feed whose
    prices drift does not grow memory without bound.
    """

    def __init__(self, inst: Instrument, max_entries: int = 1 << 16) -> None:
        self.inst = inst
        self._px: dict[int, str] = {}
        self._qty: dict[int, str] = {}
        self._max = max_entries

    def px(self, ticks: int) -> str:
        """Ticks -> the venue price string (e.g. 639439 -> "63943.9")."""
        s = self._px.get(ticks)
        if s is None:
            if len(self._px) >= self._max:
                self._px.clear()
            s = self._px[ticks] = self.inst.format_px(ticks)
        return s

    def qty(self, lots: int) -> str:
        """Lots -> the venue size string; 0 -> "0" (Bybit's delete marker)."""
        s = self._qty.get(lots)
        if s is None:
            if len(self._qty) >= self._max:
                self._qty.clear()
            s = self._qty[lots] = self.inst.format_qty(lots) if lots else "0"
        return s


def orderbook_frame(
    fmt: FrameFormat,
    depth: int,
    kind: str,
    bids: list[tuple[int, int]],
    asks: list[tuple[int, int]],
    *,
    u: int,
    seq: int,
    ts_ms: int,
    cts_ms: int,
) -> bytes:
    """An `orderbook.{depth}.{SYM}` frame (BYBIT_V5_NOTES 3.2).

    Args:
        fmt: formats prices and sizes.
        depth: the topic depth.
        kind: "snapshot" or "delta".
        bids: (px_ticks, qty_lots) best (highest) first; qty 0 is written "0" (delete).
        asks: (px_ticks, qty_lots) best (lowest) first.
        u: update id (+1 per frame).
        seq: cross sequence.
        ts_ms: feed time; cts_ms: matching-engine time.

    Returns:
        `{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":...,"data":{"s":"BTCUSDT",
        "b":[["63943.9","46.371"]],"a":[...],"u":2,"seq":4984028388330},"cts":...}`.
    """
    px, qty = fmt.px, fmt.qty
    symbol = fmt.inst.symbol
    return orjson.dumps(
        {
            "topic": f"orderbook.{depth}.{symbol}",
            "type": kind,
            "ts": ts_ms,
            "data": {
                "s": symbol,
                "b": [[px(p), qty(q)] for p, q in bids],
                "a": [[px(p), qty(q)] for p, q in asks],
                "u": u,
                "seq": seq,
            },
            "cts": cts_ms,
        }
    )


class TickDirection:
    """Bybit's trade `L` field: the direction of the last price change."""

    def __init__(self) -> None:
        self._last_px: int | None = None
        self._up = True

    def next(self, px_ticks: int) -> str:
        """The `L` of a trade at px_ticks (the first trade counts as ZeroPlusTick)."""
        last = self._last_px
        self._last_px = px_ticks
        if last is None or px_ticks == last:
            return "ZeroPlusTick" if self._up else "ZeroMinusTick"
        self._up = px_ticks > last
        return "PlusTick" if self._up else "MinusTick"


def trade_item(
    fmt: FrameFormat,
    *,
    t_ms: int,
    taker_buy: bool,
    px_ticks: int,
    qty_lots: int,
    trade_id: str,
    seq: int,
    tick_direction: str | None,
) -> dict[str, Any]:
    """One `publicTrade` data item (BYBIT_V5_NOTES 3.3); spot items have no `L`."""
    item: dict[str, Any] = {
        "T": t_ms,
        "s": fmt.inst.symbol,
        "S": "Buy" if taker_buy else "Sell",
        "v": fmt.qty(qty_lots),
        "p": fmt.px(px_ticks),
    }
    if tick_direction is not None:
        item["L"] = tick_direction
    item.update({"i": trade_id, "BT": False, "RPI": False, "seq": seq})
    return item


def trade_frame(symbol: str, ts_ms: int, items: list[dict[str, Any]]) -> bytes:
    """A `publicTrade.{SYM}` frame: `{"topic":...,"type":"snapshot","ts":...,"data":[items]}`."""
    return orjson.dumps(
        {"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": ts_ms, "data": items}
    )


class KlineBuilder:
    """1-minute candles built from trades, pushed as Bybit `kline.1.{SYM}` frames.

    The candle is pushed every 5 s of exchange time while open, and once more with
    `confirm:true` when its minute is over. Minutes without trades are flat candles at the
    last close (as Bybit sends them). Nothing is pushed before the first trade (or
    `open_flat`). Call
    `on_time(now_ms)` before `add_trade` so that a trade in a new minute closes the old one.
    """

    def __init__(self, fmt: FrameFormat) -> None:
        self._fmt = fmt
        self._topic = f"kline.1.{fmt.inst.symbol}"
        self._start: int | None = None
        self._open = self._high = self._low = self._close = 0
        self._volume_lots = 0
        self._turnover = 0  # sum of px_ticks * qty_lots
        self._next_push_ms = 0
        self._now_ms = 0

    def on_time(self, now_ms: int) -> list[bytes]:
        """Advance exchange time; return the kline frames due (closed minutes, 5 s push)."""
        if now_ms < self._now_ms:
            return []
        self._now_ms = now_ms
        out: list[bytes] = []
        if self._start is None:
            return out
        while now_ms >= self._start + MINUTE_MS:
            out.append(self._frame(now_ms, confirm=True))
            self._start += MINUTE_MS
            self._open = self._high = self._low = self._close
            self._volume_lots = self._turnover = 0
        if now_ms >= self._next_push_ms:
            out.append(self._frame(now_ms, confirm=False))
            self._next_push_ms = now_ms - now_ms % KLINE_PUSH_MS + KLINE_PUSH_MS
        return out

    def open_flat(self, t_ms: int, px_ticks: int) -> None:
        """Start with a flat, empty candle at px_ticks (so pushes begin before any trade)."""
        if self._start is None:
            self._start = t_ms - t_ms % MINUTE_MS
            self._open = self._high = self._low = self._close = px_ticks
            self._next_push_ms = max(self._now_ms, t_ms) // KLINE_PUSH_MS * KLINE_PUSH_MS
            self._next_push_ms += KLINE_PUSH_MS

    def add_trade(self, t_ms: int, px_ticks: int, qty_lots: int) -> None:
        """Fold one trade into the open candle (a late trade of a closed minute joins it too)."""
        self.open_flat(t_ms, px_ticks)
        self._high = max(self._high, px_ticks)
        self._low = min(self._low, px_ticks)
        self._close = px_ticks
        self._volume_lots += qty_lots
        self._turnover += px_ticks * qty_lots

    def _frame(self, now_ms: int, *, confirm: bool) -> bytes:
        fmt, inst = self._fmt, self._fmt.inst
        assert self._start is not None
        turnover = Decimal(self._turnover) * Decimal(inst.tick_size) * Decimal(inst.lot_size)
        turnover_s = f"{turnover.normalize():f}" if self._turnover else "0"
        return orjson.dumps(
            {
                "topic": self._topic,
                "type": "snapshot",
                "ts": now_ms,
                "data": [
                    {
                        "start": self._start,
                        "end": self._start + MINUTE_MS - 1,
                        "interval": "1",
                        "open": fmt.px(self._open),
                        "close": fmt.px(self._close),
                        "high": fmt.px(self._high),
                        "low": fmt.px(self._low),
                        "volume": inst.format_qty(self._volume_lots) if self._volume_lots else "0",
                        "turnover": turnover_s,
                        "confirm": confirm,
                        "timestamp": now_ms,
                    }
                ],
            }
        )

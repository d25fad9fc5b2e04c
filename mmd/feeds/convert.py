"""Other recorders' captures (Binance USD-M collector, cryptofeed raw) -> our recording format,
and our recordings -> hftbacktest's event array (.npz).

Owns the Bybit-V5 frame builders shared with the synthetic feed (instruments-info, orderbook,
publicTrade, kline); the only I/O is reading the inputs and writing recordings via RecordingWriter
(or the .npz via numpy).
"""

from __future__ import annotations

import bisect
import gzip
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import orjson
from tqdm import tqdm

from mmd.errors import ConfigError
from mmd.feeds.bybit_codec import BookMsg, DecodeError, TradesMsg, decode_frame
from mmd.feeds.recording import RecordingWriter, read_recording, recording_name
from mmd.model import codes
from mmd.model.instrument import Instrument, infer_step

KLINE_PUSH_MS = 5_000
MINUTE_MS = 60_000
_QUOTE_COINS = ("USDT", "USDC", "USD", "BTC", "ETH")


class ConvertResult(list[Path]):
    """The written recordings (a plain list of paths) plus what the conversion counted.

    Attributes:
        frames: lines written, the instruments-info line included, over all files.
        dropped_trades: trades left out on purpose (Binance prints whose `X` is not MARKET,
            e.g. insurance-fund fills).
        skipped: input records not carried over (bookTicker/markPrice lines, tickers, acks).
    """

    def __init__(
        self, paths: Iterable[Path], *, frames: int, dropped_trades: int = 0, skipped: int = 0
    ) -> None:
        super().__init__(paths)
        self.frames = frames
        self.dropped_trades = dropped_trades
        self.skipped = skipped


# ---------------------------------------------------------------------------------------------
# Bybit V5 frame builders (pure)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Binance USD-M (hftbacktest collector) -> Bybit-shaped frames
# ---------------------------------------------------------------------------------------------


class _BookSide:
    """One side of the full book. Keys are sign * px_ticks so that ascending = best first."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, *, is_bid: bool) -> None:
        self.sign = -1 if is_bid else 1
        self.levels: dict[int, int] = {}  # key -> qty_lots
        self.keys: list[int] = []  # sorted ascending

    def reset(self, pairs: list[tuple[int, int]]) -> None:
        self.levels = {self.sign * p: q for p, q in pairs if q}
        self.keys = sorted(self.levels)

    def top(self, depth: int) -> list[tuple[int, int]]:
        """(px_ticks, qty_lots) of the best `depth` levels, best first."""
        s, lv = self.sign, self.levels
        return [(s * k, lv[k]) for k in self.keys[:depth]]

    def apply(self, changes: list[tuple[int, int]], depth: int) -> list[tuple[int, int]]:
        """Apply absolute sizes (0 deletes) and return how the top-`depth` view changed.

        Returns:
            (px_ticks, qty_lots) best first: changed or entering levels with their size,
            levels gone from the view with 0.
        """
        keys, levels, sign = self.keys, self.levels, self.sign
        old_edge = keys[depth - 1] if len(keys) >= depth else None  # None: every level shows
        before: dict[int, int] = {}
        for px, qty in changes:
            k = sign * px
            cur = levels.get(k, 0)
            before.setdefault(k, cur)
            if qty:
                if not cur:
                    bisect.insort(keys, k)
                levels[k] = qty
            elif cur:
                del levels[k]
                del keys[bisect.bisect_left(keys, k)]
        new_edge = keys[depth - 1] if len(keys) >= depth else None
        out: dict[int, int] = {}
        for k, old_q in before.items():
            new_q = levels.get(k, 0)
            was = bool(old_q) and (old_edge is None or k <= old_edge)
            now = bool(new_q) and (new_edge is None or k <= new_edge)
            if now and (not was or old_q != new_q):
                out[k] = new_q
            elif was and not now:
                out[k] = 0
        # untouched levels pushed across the view's edge by inserts/deletes above them
        if old_edge != new_edge:
            old_end = len(keys) if old_edge is None else bisect.bisect_right(keys, old_edge)
            new_end = len(keys) if new_edge is None else bisect.bisect_right(keys, new_edge)
            if new_end > old_end:  # the view reaches further: levels entered
                for k in keys[old_end:new_end]:
                    if k not in before:
                        out[k] = levels[k]
            else:  # the view got shorter: levels left
                for k in keys[new_end:old_end]:
                    if k not in before:
                        out[k] = 0
        return [(sign * k, out[k]) for k in sorted(out)]


class BinanceUsdmConverter:
    """Pure state machine: hftbacktest-collector lines of one symbol -> Bybit V5 linear frames.

    Feed every input line to `on_line`; it returns the frames that line produces. Depth
    messages are synced to the REST snapshot line by Binance's rule (SOURCES.md), the full book
    is kept in int ticks/lots, and only changes of the top-`depth` view are emitted. Depth
    messages that arrive before the snapshot line are also written where they arrived, whole,
    as `delta` frames ahead of the snapshot (see _pre_snapshot_frame); the book itself is
    built from the snapshot and the buffered messages that bridge it.
    """

    def __init__(self, inst: Instrument, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.inst = inst
        self.fmt = FrameFormat(inst)
        self.depth = depth
        self.dropped_trades = 0
        self.skipped = 0
        self._bids = _BookSide(is_bid=True)
        self._asks = _BookSide(is_bid=False)
        self._buffer: list[dict[str, Any]] | None = []  # depth msgs before the snapshot
        self._snapshot_id = 0
        self._last_u: int | None = None  # last applied Binance u (None: first not yet kept)
        self._u = 0  # our renumbered orderbook u
        self._klines = KlineBuilder(self.fmt)
        self._ticks = TickDirection()
        self._px_cache: dict[str, int] = {}
        self._qty_cache: dict[str, int] = {}
        self._where = ""

    @property
    def synced(self) -> bool:
        """True once the REST snapshot line has been seen."""
        return self._buffer is None

    def on_line(self, raw: bytes, where: str = "") -> list[bytes]:
        """Frames produced by one collector JSON line (without its stamp).

        Args:
            raw: the JSON text as recorded.
            where: `file:line`, used in error messages.

        Raises:
            ValueError: a broken `pu` chain, a first message not bridging the snapshot, or a
                message for another symbol.
        """
        self._where = where
        if raw.startswith(b'{"stream":"'):
            # "btcusdt@depth@0ms" -> depth, "btcusdt@trade" -> trade
            kind = raw[11 : raw.index(b'"', 11)].split(b"@")[1:2]
            if kind == [b"depth"]:
                return self._on_depth(orjson.loads(raw)["data"])
            if kind == [b"trade"]:
                return self._on_trade(orjson.loads(raw)["data"])
            self.skipped += 1  # bookTicker, markPrice@1s, anything else
            return []
        msg = orjson.loads(raw)
        if isinstance(msg, dict) and "lastUpdateId" in msg:
            return self._on_snapshot(msg)
        self.skipped += 1
        return []

    # -- helpers ------------------------------------------------------------------------------

    def _levels(self, pairs: list[list[str]]) -> list[tuple[int, int]]:
        pc, qc, inst = self._px_cache, self._qty_cache, self.inst
        out = []
        for px_s, qty_s in pairs:
            px = pc.get(px_s)
            if px is None:
                px = pc[px_s] = inst.px_to_ticks(px_s)
            qty = qc.get(qty_s)
            if qty is None:
                qty = qc[qty_s] = inst.qty_to_lots(qty_s)
            out.append((px, qty))
        return out

    def _check_symbol(self, s: str) -> None:
        if s != self.inst.symbol:
            raise ValueError(f"{self._where}: message for {s} in a {self.inst.symbol} recording")

    def _book_frame(
        self,
        kind: str,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
        seq: int,
        ts_ms: int,
        cts_ms: int,
    ) -> bytes:
        self._u += 1
        return orderbook_frame(
            self.fmt, self.depth, kind, bids, asks, u=self._u, seq=seq, ts_ms=ts_ms, cts_ms=cts_ms
        )

    # -- message kinds ------------------------------------------------------------------------

    def _on_snapshot(self, msg: dict[str, Any]) -> list[bytes]:
        out = self._klines.on_time(int(msg["E"]))
        pending = self._buffer or []
        self._buffer = None
        self._snapshot_id = int(msg["lastUpdateId"])
        self._last_u = None
        self._bids.reset(self._levels(msg["bids"]))
        self._asks.reset(self._levels(msg["asks"]))
        out.append(
            self._book_frame(
                "snapshot",
                self._bids.top(self.depth),
                self._asks.top(self.depth),
                self._snapshot_id,
                int(msg["E"]),
                int(msg["T"]),
            )
        )
        for data in pending:
            out.extend(self._apply_depth(data))
        return out

    def _on_depth(self, data: dict[str, Any]) -> list[bytes]:
        self._check_symbol(data["s"])
        out = self._klines.on_time(int(data["E"]))
        if self._buffer is not None:
            self._buffer.append(data)
            out.append(self._pre_snapshot_frame(data))
            return out
        out.extend(self._apply_depth(data))
        return out

    def _pre_snapshot_frame(self, data: dict[str, Any]) -> bytes:
        """A depth message that came before the REST snapshot, kept as it is: a `delta` with
        every level of the message (there is no book yet to cut a top-`depth` view from).

        Bybit readers drop deltas until the first snapshot (book_sync, the venue server), so
        they change nothing there; hftbacktest's own converter keeps them, and keeping them
        too makes both event files start at the same stamp (hftbacktest_events).
        """
        bids = sorted(self._levels(data["b"]), reverse=True)
        asks = sorted(self._levels(data["a"]))
        return self._book_frame("delta", bids, asks, int(data["u"]), int(data["E"]), int(data["T"]))

    def _apply_depth(self, data: dict[str, Any]) -> list[bytes]:
        u = int(data["u"])
        if self._last_u is None:
            if u < self._snapshot_id:
                return []  # already contained in the snapshot
            if not int(data["U"]) <= self._snapshot_id <= u:
                raise ValueError(
                    f"{self._where}: first depth message after the snapshot does not bridge it "
                    f"(U={data['U']}, u={u}, lastUpdateId={self._snapshot_id})"
                )
        elif int(data["pu"]) != self._last_u:
            raise ValueError(
                f"{self._where}: depth chain broken for {self.inst.symbol}: "
                f"pu={data['pu']} but the previous u={self._last_u} (a message is missing)"
            )
        self._last_u = u
        bids = self._bids.apply(self._levels(data["b"]), self.depth)
        asks = self._asks.apply(self._levels(data["a"]), self.depth)
        if not bids and not asks:
            return []
        return [self._book_frame("delta", bids, asks, u, int(data["E"]), int(data["T"]))]

    def _on_trade(self, data: dict[str, Any]) -> list[bytes]:
        self._check_symbol(data["s"])
        if data.get("X", "MARKET") != "MARKET":
            self.dropped_trades += 1  # insurance-fund / ADL prints are not market trades
            return []
        t_ms, e_ms = int(data["T"]), int(data["E"])
        px = self.inst.px_to_ticks(data["p"])
        qty = self.inst.qty_to_lots(data["q"])
        out = self._klines.on_time(max(e_ms, t_ms))
        item = trade_item(
            self.fmt,
            t_ms=t_ms,
            taker_buy=not data["m"],  # m: the buyer was the maker, so the taker sold
            px_ticks=px,
            qty_lots=qty,
            trade_id=str(data["t"]),
            seq=int(data["t"]),
            tick_direction=self._ticks.next(px),
        )
        out.append(trade_frame(self.inst.symbol, e_ms, [item]))
        self._klines.add_trade(t_ms, px, qty)
        return out


def _stamp_to_ns(stamp: int) -> int:
    """Collector stamps are ns (19 digits) or, in the 2023 format, us (16 digits)."""
    if stamp >= 10**17:
        return stamp
    if stamp >= 10**14:
        return stamp * 1_000
    if stamp >= 10**11:
        return stamp * 1_000_000
    raise ValueError(f"local stamp {stamp} is not an epoch time in ns, us or ms")


def _open_maybe_gzip(raw: IO[bytes]) -> gzip.GzipFile | IO[bytes]:
    magic = raw.read(2)
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw


def _collector_lines(
    paths: list[Path], on_bytes: Callable[[int], object] | None = None
) -> Iterator[tuple[str, int, bytes]]:
    """(where, ts_recv_ns, json) for each `<stamp> <json>` line of the files, in order."""
    for path in paths:
        with open(path, "rb") as raw:
            fh = _open_maybe_gzip(raw)
            done = 0
            try:
                for lineno, line in enumerate(fh, 1):
                    head, sep, body = line.rstrip(b"\r\n").partition(b" ")
                    if not sep or not head.isdigit():
                        if not line.strip():
                            continue
                        raise ValueError(f"{path}:{lineno}: not a `<stamp> <json>` line")
                    yield f"{path.name}:{lineno}", _stamp_to_ns(int(head)), body
                    if on_bytes is not None and lineno % 2048 == 0:
                        pos = raw.tell()
                        on_bytes(pos - done)
                        done = pos
            except (EOFError, gzip.BadGzipFile) as exc:
                raise ValueError(f"{path}: truncated or corrupt gzip ({exc})") from None
            if on_bytes is not None:
                on_bytes(raw.tell() - done)


def _written_decimals(values: Iterable[str]) -> int:
    return max((len(v.partition(".")[2]) for v in values), default=0)


def _step_string(values: list[str]) -> str:
    """infer_step, written with as many decimals as the venue writes (Binance "0.10")."""
    step = infer_step(values)
    if "." in step:
        step += "0" * max(0, _written_decimals(values) - len(step.partition(".")[2]))
    return step


def _probe_binance(inputs: list[Path]) -> tuple[Instrument, int]:
    """Symbol, tick and lot (from the REST snapshot line) and the first local stamp in ns."""
    first_ts: int | None = None
    symbol: str | None = None
    prices: list[str] = []
    qtys: list[str] = []
    for where, ts_ns, body in _collector_lines(inputs):
        if first_ts is None:
            first_ts = ts_ns
        if body.startswith(b'{"stream":"'):
            data = orjson.loads(body)["data"]
            symbol = symbol or data.get("s")
            if data.get("e") == "trade":
                prices.append(data["p"])
                qtys.append(data["q"])
            continue
        msg = orjson.loads(body)
        if isinstance(msg, dict) and "lastUpdateId" in msg:
            for px, qty in (*msg["bids"], *msg["asks"]):
                prices.append(px)
                qtys.append(qty)
            if symbol is None:
                raise ValueError(f"{where}: no symbol seen before the REST snapshot")
            inst = Instrument(
                symbol=symbol.upper(),
                category="linear",
                tick_size=_step_string(prices),
                lot_size=_step_string(qtys),
            )
            assert first_ts is not None
            return inst, first_ts
    raise ValueError(f"{', '.join(map(str, inputs))}: no REST depth snapshot line found")


def _output_path(out: Path | str, name: str) -> Path:
    text = str(out)
    p = Path(out)
    if p.is_dir() or text.endswith(("/", os.sep)):
        p.mkdir(parents=True, exist_ok=True)
        return p / name
    return p


def _progress(total: int, desc: str, enabled: bool) -> tqdm[Any]:
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        disable=not (enabled and sys.stderr.isatty()),
        leave=False,
    )


class _AtomicRecording:
    """A RecordingWriter on `<path>.partial`, moved onto `path` only when closed cleanly."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".partial")
        self._tmp.unlink(missing_ok=True)
        self.writer = RecordingWriter(self._tmp)
        self._last_ts = 0

    def write(self, ts_recv_ns: int, frame: bytes) -> None:
        # keep the file's stamps non-decreasing even if the source clock stepped back
        self._last_ts = max(self._last_ts, ts_recv_ns)
        self.writer.write(self._last_ts, frame)

    def commit(self) -> None:
        self.writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self.writer.close()
        self._tmp.unlink(missing_ok=True)


def convert_binance_usdm(
    inputs: list[Path], out: Path | str, *, depth: int = 200, progress: bool = False
) -> ConvertResult:
    """Convert one continuous hftbacktest-collector recording into one Bybit-shaped recording.

    Args:
        inputs: the files of one recording in time order (e.g. btcusdt_20240718.gz then
            btcusdt_20240719.gz); ns-stamped (2024) and us-stamped (2023) formats both work.
        out: the file to write, or a directory (existing, or given with a trailing "/") to
            write `binanceusdm_linear_<SYM>_<start>.rec.gz` into.
        depth: the `orderbook.{depth}` view to emit.
        progress: show a tqdm bar (only on a TTY).

    Returns:
        The written path (a ConvertResult: also carries frames and dropped_trades).

    Raises:
        ValueError: no snapshot line, a depth chain break, mixed symbols, unreadable lines.
    """
    inputs = [Path(p) for p in inputs]
    inst, first_ts = _probe_binance(inputs)
    conv = BinanceUsdmConverter(inst, depth)
    path = _output_path(out, recording_name("binanceusdm", "linear", inst.symbol, first_ts))
    rec = _AtomicRecording(path)
    total = sum(p.stat().st_size for p in inputs)
    try:
        with _progress(total, f"convert {inst.symbol}", progress) as bar:
            rec.write(first_ts, instruments_info_envelope(inst, first_ts // 1_000_000))
            for where, ts_ns, body in _collector_lines(inputs, bar.update):
                for frame in conv.on_line(body, where):
                    rec.write(ts_ns, frame)
            if not conv.synced:
                raise ValueError(f"{path.name}: input ended before the REST snapshot line")
    except BaseException:
        rec.abort()
        raise
    frames = rec.writer.lines
    rec.commit()
    return ConvertResult(
        [path], frames=frames, dropped_trades=conv.dropped_trades, skipped=conv.skipped
    )


# ---------------------------------------------------------------------------------------------
# cryptofeed raw capture (format 2) of Bybit V5 -> one recording per (category, symbol)
# ---------------------------------------------------------------------------------------------

_KEPT_TOPICS = ("orderbook", "publicTrade", "kline")


def _cryptofeed_records(
    path: Path, on_bytes: Callable[[int], object] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as raw:
        if raw.read(4) == b"\x28\xb5\x2f\xfd":
            raise ValueError(f"{path}: zstd-compressed; decompress it first (zstd -d)")
        raw.seek(0)
        fh = _open_maybe_gzip(raw)
        done = 0
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON ({exc})") from None
            yield lineno, rec
            if on_bytes is not None and lineno % 512 == 0:
                pos = raw.tell()
                on_bytes(pos - done)
                done = pos
        if on_bytes is not None:
            on_bytes(raw.tell() - done)


def _scan_cryptofeed(path: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """conn -> category (from `connect` addrs) and category -> instruments-info envelope."""
    conns: dict[str, str] = {}
    envelopes: dict[str, dict[str, Any]] = {}
    for lineno, rec in _cryptofeed_records(path):
        t = rec.get("t")
        if t == "connect":
            # wss://stream.bybit.com/v5/public/linear -> linear
            category = str(rec.get("addr", "")).rstrip("/").rpartition("/")[2]
            if category in ("linear", "spot", "inverse"):
                conns[rec["conn"]] = category
        elif t == "http" and "/v5/market/instruments-info" in str(rec.get("url", "")):
            try:
                body = orjson.loads(rec["data"])
            except orjson.JSONDecodeError:
                raise ValueError(f"{path}:{lineno}: instruments-info body is not JSON") from None
            result = body.get("result") or {}
            if body.get("retCode") == 0 and result.get("category"):
                known = envelopes.get(result["category"])
                if known is None:
                    envelopes[result["category"]] = body
                else:  # a second page: merge the lists
                    known["result"]["list"].extend(result.get("list", []))
    return conns, envelopes


def _envelope_for(envelope: dict[str, Any], symbol: str) -> bytes:
    items = [it for it in envelope["result"]["list"] if it.get("symbol") == symbol]
    category = envelope["result"]["category"]
    if not items:
        raise ValueError(f"instruments-info for {category} does not list {symbol}")
    result = {**envelope["result"], "list": items}
    return orjson.dumps({**envelope, "result": result})


def convert_cryptofeed(input: Path, out: Path | str, *, progress: bool = False) -> ConvertResult:
    """Split a cryptofeed raw capture of Bybit V5 into one recording per (category, symbol).

    Args:
        input: the `.jsonl` capture (cryptofeed recorder format 2; SOURCES.md section D).
        out: a directory (created); files are named `bybit_<category>_<SYM>_<start>.rec.gz`.
        progress: show a tqdm bar (only on a TTY).

    Returns:
        The written paths in the order their first frame appeared.

    Raises:
        ValueError: the file is not a readable capture, or a symbol is missing from the
            captured instruments-info answer.
    """
    path = Path(input)
    conns, envelopes = _scan_cryptofeed(path)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    recs: dict[tuple[str, str], _AtomicRecording] = {}
    skipped = 0
    frames = 0
    try:
        with _progress(path.stat().st_size, f"convert {path.name}", progress) as bar:
            for lineno, rec in _cryptofeed_records(path, bar.update):
                category = conns.get(rec.get("conn", ""))
                if rec.get("t") != "recv" or category is None:
                    continue
                text: str = rec["data"]
                try:
                    topic = orjson.loads(text).get("topic")
                except (orjson.JSONDecodeError, AttributeError):
                    raise ValueError(f"{path}:{lineno}: frame is not a JSON object") from None
                prefix, _, symbol = str(topic).rpartition(".")
                if not topic or prefix.partition(".")[0] not in _KEPT_TOPICS:
                    skipped += 1  # tickers, liquidations, subscribe acks, pongs
                    continue
                ts_ns = round(rec["ts"] * 1e9)
                key = (category, symbol)
                target = recs.get(key)
                if target is None:
                    if category not in envelopes:
                        raise ValueError(f"{path}: no instruments-info answer for {category}")
                    name = recording_name("bybit", category, symbol, ts_ns)
                    target = recs[key] = _AtomicRecording(out_dir / name)
                    target.write(ts_ns, _envelope_for(envelopes[category], symbol))
                target.write(ts_ns, text.encode())
    except BaseException:
        for r in recs.values():
            r.abort()
        raise
    for r in recs.values():
        frames += r.writer.lines
        r.commit()
    return ConvertResult([r.path for r in recs.values()], frames=frames, skipped=skipped)


# ---------------------------------------------------------------------------------------------
# dispatch for the CLI
# ---------------------------------------------------------------------------------------------

CONVERT_KINDS = ("binance-usdm", "cryptofeed", "hftbacktest")


def run_convert(kind: str, inputs: list[str], out: str, progress: bool = True) -> list[Path]:
    """`mmd convert KIND IN... --out OUT`: check the arguments, then convert.

    Args:
        kind: "binance-usdm", "cryptofeed" or "hftbacktest".
        inputs: input files (binance-usdm: the files of one recording, in order;
            cryptofeed: exactly one capture; hftbacktest: our recordings of one symbol,
            in order).
        out: output file or directory (binance-usdm), output directory (cryptofeed),
            output .npz file (hftbacktest).
        progress: show progress bars on a TTY.

    Returns:
        The written recordings (a ConvertResult; hftbacktest: a one-element list, the .npz).

    Raises:
        ConfigError: unknown kind, missing or unreadable input, or input that does not convert
            (the message is one line).
    """
    if kind not in CONVERT_KINDS:
        raise ConfigError(f"convert: unknown kind {kind!r} (expected one of {CONVERT_KINDS})")
    if not inputs:
        raise ConfigError(f"convert {kind}: no input files given")
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"convert {kind}: {p}: no such file")
    if kind == "cryptofeed" and len(paths) != 1:
        raise ConfigError(f"convert cryptofeed: expected one input file, got {len(paths)}")
    try:
        if kind == "binance-usdm":
            return convert_binance_usdm(paths, out, progress=progress)
        if kind == "hftbacktest":
            return [convert_hftbacktest(paths, Path(out), progress=progress)]
        return convert_cryptofeed(paths[0], out, progress=progress)
    except (ValueError, OSError) as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"convert {kind}: {message}") from exc


# ---------------------------------------------------------------------------------------------
# our recording(s) of one symbol -> hftbacktest's event array (.npz)
# ---------------------------------------------------------------------------------------------

# hftbacktest's data format (docs/data.rst): one 64-byte row per event.
HBT_DEPTH = 1
HBT_TRADE = 2
HBT_DEPTH_CLEAR = 3
HBT_DEPTH_SNAPSHOT = 4
HBT_EXCH = 1 << 31
HBT_LOCAL = 1 << 30
HBT_BUY = 1 << 29
HBT_SELL = 1 << 28
HBT_EVENT_DTYPE = np.dtype(
    [
        ("ev", "<u8"),
        ("exch_ts", "<i8"),
        ("local_ts", "<i8"),
        ("px", "<f8"),
        ("qty", "<f8"),
        ("order_id", "<u8"),
        ("ival", "<i8"),
        ("fval", "<f8"),
    ],
    align=True,
)


class HbtEvents:
    """Column buffers for hftbacktest rows (ev, exch_ts, recv_ts, px, qty) before the array."""

    def __init__(self) -> None:
        self.ev: list[int] = []
        self.exch: list[int] = []
        self.recv: list[int] = []
        self.px: list[float] = []
        self.qty: list[float] = []

    def add(self, ev: int, exch_ns: int, recv_ns: int, px: float, qty: float) -> None:
        self.ev.append(ev)
        self.exch.append(exch_ns)
        self.recv.append(recv_ns)
        self.px.append(px)
        self.qty.append(qty)


def _hbt_book_frame(
    msg: BookMsg,
    recv_ns: int,
    bids: dict[float, float],
    asks: dict[float, float],
    out: HbtEvents,
) -> None:
    exch = msg.ts_exch_ns
    if msg.is_snapshot:
        new_bids = [(float(p), float(q)) for p, q, *_ in msg.bids]
        new_asks = [(float(p), float(q)) for p, q, *_ in msg.asks]
        # hftbacktest's snapshot convention: a DEPTH_CLEAR row per side whose px is how far
        # from the best the clear reaches, then the levels as DEPTH_SNAPSHOT rows. A Bybit
        # snapshot replaces the whole side, so the clear reaches the farthest level known.
        bid_far = [p for p, _ in new_bids] + list(bids)
        ask_far = [p for p, _ in new_asks] + list(asks)
        if bid_far:
            out.add(HBT_DEPTH_CLEAR | HBT_BUY, exch, recv_ns, min(bid_far), 0.0)
        if ask_far:
            out.add(HBT_DEPTH_CLEAR | HBT_SELL, exch, recv_ns, max(ask_far), 0.0)
        bids.clear()
        asks.clear()
        for side_flag, pairs, book in ((HBT_BUY, new_bids, bids), (HBT_SELL, new_asks, asks)):
            for p, q in pairs:
                if q > 0:
                    book[p] = q
                    out.add(HBT_DEPTH_SNAPSHOT | side_flag, exch, recv_ns, p, q)
        return
    for side_flag, levels, book in ((HBT_BUY, msg.bids, bids), (HBT_SELL, msg.asks, asks)):
        for lvl in levels:
            p, q = float(lvl[0]), float(lvl[1])
            if q > 0:
                book[p] = q
            else:
                book.pop(p, None)
            out.add(HBT_DEPTH | side_flag, exch, recv_ns, p, q)


def _hbt_order_rows(
    ev: npt.NDArray[np.uint64], exch: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]]:
    """Row order and flags so both the exchange and the local view are time-ordered.

    Rows come in local (receive) order. A row whose exchange stamp is not below every earlier
    one keeps EXCH_EVENT|LOCAL_EVENT. A row that arrived after a later-stamped one (e.g. a trade
    print overtaken by a book frame from another stream) is split as hftbacktest's data docs
    describe: a LOCAL_EVENT copy where it arrived and an EXCH_EVENT copy moved to its exchange
    time. Returns (source row per output row, ev per output row).
    """
    n = len(ev)
    runmax = np.maximum.accumulate(exch) if n else exch
    in_order = np.ones(n, bool)
    if n > 1:
        in_order[1:] = exch[1:] >= runmax[:-1]
    late = np.flatnonzero(~in_order)
    keep = np.arange(n, dtype=np.int64)
    if late.size == 0:
        return keep, ev | np.uint64(HBT_EXCH | HBT_LOCAL)
    # sort key: (slot, kind, exch_ts). kind 0 = moved EXCH copy, inserted before the first row
    # (of any kind) whose running max exchange stamp exceeds it; kind 1 = rows in place.
    slot = np.concatenate([keep, np.searchsorted(runmax, exch[late], side="right")])
    kind = np.concatenate([np.ones(n, np.int8), np.zeros(late.size, np.int8)])
    sub = np.concatenate([np.zeros(n, np.int64), exch[late]])
    src = np.concatenate([keep, late])
    flags = np.full(n + late.size, HBT_EXCH | HBT_LOCAL, np.uint64)
    flags[late] = HBT_LOCAL
    flags[n:] = HBT_EXCH
    order = np.lexsort((sub, kind, slot))
    return src[order], ev[src[order]] | flags[order]


def hftbacktest_events(
    recordings: list[Path], *, progress: bool = False
) -> tuple[npt.NDArray[np.void], int]:
    """Our recording(s) of one symbol -> hftbacktest event rows, and the local_ts shift used.

    Rows (hftbacktest `event_dtype`, see HBT_EVENT_DTYPE):
        - book snapshot (WS `type=snapshot` or a REST book): DEPTH_CLEAR|BUY (px = lowest bid
          known) and DEPTH_CLEAR|SELL (px = highest ask known), then one DEPTH_SNAPSHOT row per
          level with BUY_EVENT or SELL_EVENT;
        - book delta: one DEPTH row per level, BUY/SELL by side, qty 0 deletes the level;
          deltas before the first snapshot are kept the same way, as hftbacktest's own
          converters do (e.g. the depth messages a Binance collector wrote before its REST
          snapshot line): they fill hftbacktest's empty book until the snapshot, whose clear
          reaches every level they left, and they make the file start at the source's first
          book stamp, so a backtest steps on the same time grid as on hftbacktest's own output;
        - trade: one TRADE row, BUY_EVENT when the taker bought, SELL_EVENT when it sold
          (duplicate trade ids, e.g. a REST page overlapping the socket, are dropped);
        - klines, tickers, acks, instruments-info: no rows.
        px and qty are floats in price and base-coin units; order_id, ival, fval are 0.
        exch_ts is the venue's stamp in ns (book: `cts`, else `ts`; trade: `T`).
        local_ts is our receive stamp `ts_recv_ns` plus a constant shift (see below).
        Every row carries EXCH_EVENT|LOCAL_EVENT unless its exchange stamp is older than an
        earlier row's, then it is split in two (see _hbt_order_rows).

    local_ts shift: hftbacktest needs local_ts >= exch_ts (feed latency >= 0). When the
    recording host's clock ran behind the venue's, some `ts_recv_ns - exch_ts` are negative;
    then every local_ts is shifted by the same constant `-min(ts_recv_ns - exch_ts)`, so the
    smallest feed latency becomes 0 and the median positive. Relative local timing is kept.

    Returns:
        (rows, shift_ns) with local_ts = ts_recv_ns + shift_ns.

    Raises:
        ValueError: recordings of more than one symbol, or no book/trade frames.
    """
    out = HbtEvents()
    symbol: str | None = None
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    seen_trades: dict[str, None] = {}
    paths = [Path(p) for p in recordings]
    bar = tqdm(
        total=len(paths),
        desc="convert hftbacktest",
        unit="file",
        leave=False,
        disable=not (progress and sys.stderr.isatty()),
    )
    with bar:
        for path in paths:
            for recv_ns, raw in read_recording(path):
                try:
                    msg = decode_frame(raw)
                except DecodeError:
                    continue
                if isinstance(msg, BookMsg | TradesMsg):
                    if symbol is None:
                        symbol = msg.symbol
                    elif msg.symbol != symbol:
                        raise ValueError(
                            f"{path}: symbol {msg.symbol} after {symbol}: one symbol per output"
                        )
                if isinstance(msg, BookMsg):
                    _hbt_book_frame(msg, recv_ns, bids, asks, out)
                elif isinstance(msg, TradesMsg):
                    for t in msg.trades:
                        if t.trade_id in seen_trades:
                            continue
                        seen_trades[t.trade_id] = None
                        if len(seen_trades) > 200_000:  # bounded: overlaps are short
                            for key in list(seen_trades)[:100_000]:
                                del seen_trades[key]
                        side = HBT_BUY if t.side == codes.BUY else HBT_SELL
                        out.add(
                            HBT_TRADE | side, t.ts_exch_ns, recv_ns, float(t.price), float(t.size)
                        )
            bar.update(1)
    if not out.ev:
        raise ValueError(f"{', '.join(map(str, paths))}: no book or trade frames")
    ev = np.array(out.ev, np.uint64)
    exch = np.array(out.exch, np.int64)
    recv = np.array(out.recv, np.int64)
    # the recordings' lines are in receive order; keep that order across files too
    order = np.argsort(recv, kind="stable")
    ev, exch, recv = ev[order], exch[order], recv[order]
    px = np.array(out.px, np.float64)[order]
    qty = np.array(out.qty, np.float64)[order]
    shift = max(0, -int((recv - exch).min()))
    src, flags = _hbt_order_rows(ev, exch)
    rows = np.zeros(len(src), HBT_EVENT_DTYPE)
    rows["ev"] = flags
    rows["exch_ts"] = exch[src]
    rows["local_ts"] = recv[src] + shift
    rows["px"] = px[src]
    rows["qty"] = qty[src]
    return rows, shift


def convert_hftbacktest(recordings: list[Path], out: Path, *, progress: bool = False) -> Path:
    """Our recording(s) of ONE symbol -> hftbacktest's event array in `out` (.npz, key `data`).

    Load it with `BacktestAsset().data([str(out)])`. Row layout, snapshot convention, the
    split of out-of-order rows and the local_ts shift: see hftbacktest_events.

    Args:
        recordings: the files of one symbol in time order.
        out: the .npz to write (".npz" is appended when missing), or a directory (existing,
            or given with a trailing "/") to write `<first recording's name>.npz` into.
            Written atomically.
        progress: show a tqdm bar (only on a TTY).

    Returns:
        The written path.
    """
    rows, _ = hftbacktest_events(recordings, progress=progress)
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        first = Path(recordings[0]).name
        path = path / (first.removesuffix(".gz").removesuffix(".rec") + ".npz")
    elif path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.npz")
    try:
        np.savez_compressed(tmp, data=rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

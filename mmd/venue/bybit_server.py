"""Loopback venue speaking the Bybit V5 PUBLIC protocol (REST + websocket), serving recordings.

`mmd serve-venue DATA...` runs it; tests use `VenueServer` directly. It owns replay timing,
the served book/trade/kline state, the wire shapes of BYBIT_V5_NOTES.md sections 2-3 and the
fault injection of `--faults`. It holds no trading logic and never talks to the internet.

How it works
------------
* **Loading.** Recordings (files or directories, see `mmd.feeds.recording`) are grouped by
  (category, symbol): the category comes from the file name, else from the instruments-info
  frame, else "linear"; the symbol comes from each frame's topic (or REST result). Tick and lot
  size come from the first instruments-info frame listing the symbol; without one they are
  inferred from every price and size in the recording (`infer_step`).
* **Source streams.** Per symbol, the deepest recorded `orderbook.N` topic is the source of the
  full book (other depths are ignored: an `orderbook.1` snapshot would otherwise wipe a
  200-level book); recorded REST orderbook answers are used only when no websocket book was
  recorded. Likewise websocket `publicTrade`/`kline` frames win over recorded REST
  recent-trade/kline answers. Without any recorded klines, 1-minute candles are built from the
  trades (REST `kline` and `kline.1.SYM` frames).
* **One replay clock.** Venue time starts at the earliest `ts_recv_ns` of all files when
  `start()` returns and advances at `speed` x real time. A single task applies the events in
  recorded order as venue time passes them. After the last event the venue keeps serving the
  final state (REST, pings, subscriptions) and reports `finished`.
* **Full book.** Int ticks/lots in dicts plus sorted price lists. A source snapshot resets it,
  deltas set absolute sizes, size 0 deletes; deltas before the first source snapshot are
  skipped. Per symbol the venue keeps the source `seq` of the last applied book frame (the
  running count of applied book frames when the source carries none) and `u`, the number of
  source book frames applied (REST `u`).
* **Views.** Each subscribed `orderbook.{1,50,200,1000}.SYM` topic gets one view (shared by
  every connection of that category): its top-`depth` levels and its own `u`, starting at
  `VIEW_U0` (far from 1, so a restart is unambiguous). After every source book frame each view
  with subscribers is diffed; if its top levels changed, `u += 1` and a `delta` with exactly the
  changed levels is broadcast (size changed -> new size, left the view -> "0", entered -> its
  size). Depth 1 sends `snapshot` frames only, as Bybit does (the 3 s keep-alive re-send is not
  reproduced). `data.seq` is always the seq of the source frame whose application produced the
  state, so a client can compare with a book rebuilt offline from the recording at that seq.
  A (re-)subscription first gets a `snapshot` of the view with its current `u` (after the ack).
  Views without subscribers are not updated (and count no deltas); on re-subscription they are
  refreshed and `u` is bumped once if the levels changed meanwhile. A subscription made before
  the source book's first snapshot gets its snapshot when that snapshot is applied.
* **Trades and klines.** `publicTrade.SYM` frames are broadcast as the replay passes them
  (ids and fields kept); the last `RECENT_TRADES` trades are kept for REST, a trade id seen
  again is dropped (overlapping REST polls). Recorded `kline.I.SYM` frames are passed through to
  `kline.I.SYM` subscribers and kept by start; REST `kline` serves the recorded interval, or
  aggregates 1-minute candles into the asked one (W from Monday, M per calendar month), newest
  first.
* **Protocol.** A subscribe/unsubscribe request is all-or-nothing: one unknown topic, depth,
  interval or symbol refuses the whole request (`success:false`, the reasons in `ret_msg`).
  Subscribing again to a subscribed topic succeeds and re-sends the snapshot. Spot acks carry
  `ret_msg` "subscribe" and spot pongs no `req_id`, as on Bybit; spot takes at most 10 args
  per request. Invalid JSON, unknown ops and binary frames get `success:false`; the venue only
  sends text frames.
* **Timestamps.** Unless `keep_timestamps`, every served frame is re-based onto the venue's
  wall clock at emission: shift = now - frame `ts`, added to `ts`, `cts`, trade `T` and kline
  `timestamp`, so `ts` is the emission time and a client's measured feed lag is real, while the
  recorded `ts - cts` gap is kept. Kline `start`/`end` stay as recorded (they name the candle).
  REST `result.ts` is the answer time, `cts` and trade `time` carry the shift they were served
  with. The REST envelope `time` and `/v5/market/time` are the wall clock, or the venue clock
  (recorded time domain) with `keep_timestamps`.
* **Slow clients.** Each connection has its own send queue and writer task; broadcasting never
  awaits a socket. A connection whose queue exceeds `max_queue_frames` is aborted.

Faults (`--faults KIND:N,...`)
------------------------------
Counting is deterministic. Websocket kinds count the book update frames (deltas; the updates
of a depth-1 view) each view produces while it has subscribers, so every N-th update of a view
is affected, for all of its subscribers at once; stream order and `u` of the unaffected frames
are untouched. REST kinds count the requests to `/v5/market/*` (not `/venue/stats`).

* `disconnect`: the N-th delta is sent, then the subscribers' connections are closed (close
  code 1001 "venue fault: disconnect").
* `stall`: from the N-th delta on (it included) nothing more is sent on the subscribers'
  connections: no frames, no acks, no pongs (app-level or websocket protocol), until the
  client closes them (frames queued before it still go out). The connections stay open; the
  idle timeout still applies to a client that stops sending.
* `gap`: the N-th delta is not sent; its `u` is consumed, so the next delta jumps by 2.
* `restart`: the N-th delta is replaced by a `snapshot` of the view with `u = 1`, and `u`
  continues from 1 (a Bybit book-service restart).
* `garbage`: a non-JSON text frame is sent just before the N-th delta (stream otherwise intact).
* `truncate`: the first half of the N-th delta's text is sent just before it (intact otherwise).
* `duplicate`: the N-th delta is sent twice.
* `reorder`: the N-th delta is held and sent right after the next frame of that topic on each
  connection (held frames still pending when the replay ends are then sent).
* `types`: the N-th delta is sent with wrongly typed fields instead (`u` a string, every price
  a JSON number); its `u` is consumed, so a client that refuses it has lost that update.
* `oversized`: the N-th delta is padded with blanks inside its JSON object to
  `oversized_frame_bytes` (default 4 MiB + 1 KiB, just above the daemon's default
  `[ws] max_frame_bytes`): still a valid frame, only too large.
* `outage` (counts the source book frames the replay applies, every symbol together, with or
  without subscribers, so it also hits a REST-only client): after the N-th, the venue stops
  listening and cuts every connection (websocket and REST keep-alive, without a close
  handshake; what was queued before still goes out) for `outage_s` (default 2 s), then listens
  again on the same port; meanwhile connecting is refused and the replay goes on. A frame due
  for `outage` while the venue is already down starts no second outage.
* `http5xx` / `http429` / `http403`: every N-th REST request gets HTTP 503 / 429 / 403 (the
  403 body is "access too frequent", as Bybit's IP rate limit).
* `retcode`: every N-th REST request gets HTTP 200 with `retCode` 10016 "service restarting".
* `slow`: every N-th REST request is answered (correctly) only after `slow_response_s`
  (default 6 s, beyond the daemon's default `[rest] timeout_s` of 5 s).

When several kinds hit the same update: `stall` wins over everything; `restart` wins over
`gap`, `types` and `oversized`; a `gap` leaves nothing for the frame kinds (`types`, `oversized`,
`garbage`, `truncate`, `duplicate`, `reorder`); `types` wins over `oversized`; `garbage`,
`truncate`, `duplicate` and `reorder` see the frame `types`/`oversized` made; `reorder` wins
over `duplicate`; `disconnect` combines with all but `stall`.
For REST the first hit in the order http5xx, http429, http403, retcode, slow wins.
`/venue/stats` counts each injected fault once per occurrence on a view (not per connection),
also when its subscribers are already stalled.

Endpoints
---------
Bybit: `GET /v5/public/{linear|spot|inverse}` (websocket), `GET /v5/market/instruments-info`,
`/v5/market/orderbook`, `/v5/market/kline`, `/v5/market/recent-trade`, `/v5/market/time`.
Not Bybit (introspection for tests and operators): `GET /venue/stats`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import heapq
import itertools
import re
import secrets
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from mmd.clock import Clock, LiveClock
from mmd.errors import ConfigError
from mmd.feeds.bybit_codec import (
    BookMsg,
    DecodeError,
    InstrumentsMsg,
    KlineMsg,
    TradesMsg,
    decode_frame,
)
from mmd.feeds.recording import expand_paths, parse_recording_name, read_recording
from mmd.model.instrument import Instrument, infer_step

CATEGORIES = ("linear", "spot", "inverse")
BOOK_DEPTHS = (1, 50, 200, 1000)
KLINE_INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")
WS_FAULT_KINDS = (
    "disconnect",
    "stall",
    "gap",
    "restart",
    "garbage",
    "truncate",
    "duplicate",
    "reorder",
    "types",
    "oversized",
)
REST_FAULT_KINDS = ("http5xx", "http429", "http403", "retcode", "slow")
VENUE_FAULT_KINDS = ("outage",)
FAULT_KINDS = WS_FAULT_KINDS + REST_FAULT_KINDS + VENUE_FAULT_KINDS

VIEW_U0 = 1000  # first `u` of a book view
RECENT_TRADES = 1000  # trades kept per symbol (REST recent-trade maximum)
MAX_KLINES = 50_000  # candles kept per (symbol, interval)
GARBAGE_FRAME = "<html><body><h1>502 Bad Gateway</h1></body></html> (mmd venue fault: garbage)"
OVERSIZED_FRAME_BYTES = (4 << 20) + 1024  # `oversized`: above the daemon's default 4 MiB
SLOW_RESPONSE_S = 6.0  # `slow`: beyond the daemon's default REST timeout (5 s)
OUTAGE_S = 2.0  # `outage`: how long the venue refuses connections

_MS_NS = 1_000_000
_MINUTE_MS = 60_000
_DAY_MS = 86_400_000
_MONDAY0_MS = 4 * _DAY_MS  # 1970-01-05, the first Monday after the epoch
_TOPIC_RE = re.compile(rb'"topic"\s*:\s*"([^"]*)"')
_STR_CACHE_MAX = 200_000

# a lazy proxy: the configuration made later by the CLI applies (`.bind()` here would freeze it)
log = structlog.get_logger(component="venue")


# ---------------------------------------------------------------------------------------------
# faults


def parse_faults(spec: str | None) -> dict[str, int]:
    """Parse the `--faults` value: comma-separated `KIND:N` (PRODUCT.md).

    Args:
        spec: e.g. "disconnect:500,gap:700,garbage:300,http5xx:5"; empty or None = no faults.

    Returns:
        {kind: N}, N > 0.

    Raises:
        ConfigError: an unknown kind, a missing or non-integer N, N <= 0, or a kind given twice;
            the message names the bad part.
    """
    out: dict[str, int] = {}
    if not spec or not spec.strip():
        return out
    for raw_part in spec.split(","):
        part = raw_part.strip()
        if not part:
            continue
        kind, sep, count = part.partition(":")
        kind = kind.strip().lower()
        if kind not in FAULT_KINDS:
            raise ConfigError(
                f"--faults: unknown fault kind {kind!r} in {part!r} "
                f"(known: {', '.join(FAULT_KINDS)})"
            )
        if not sep:
            raise ConfigError(f"--faults: {part!r} needs a count N, e.g. {kind}:100")
        try:
            n = int(count.strip())
        except ValueError:
            raise ConfigError(f"--faults: {part!r}: N must be an integer") from None
        if n <= 0:
            raise ConfigError(f"--faults: {part!r}: N must be > 0")
        if kind in out:
            raise ConfigError(f"--faults: {kind!r} is given twice")
        out[kind] = n
    return out


# ---------------------------------------------------------------------------------------------
# loading


@dataclass(slots=True)
class _SymbolScan:
    """What one file holds for one symbol (decides the source streams)."""

    book_depths: set[int] = field(default_factory=set)
    ws_trades: bool = False
    ws_klines: bool = False
    rest_book: bool = False
    rest_trades: bool = False
    rest_klines: bool = False

    def merge(self, other: _SymbolScan) -> None:
        """Fold another file's findings into this one."""
        self.book_depths |= other.book_depths
        self.ws_trades |= other.ws_trades
        self.ws_klines |= other.ws_klines
        self.rest_book |= other.rest_book
        self.rest_trades |= other.rest_trades
        self.rest_klines |= other.rest_klines


@dataclass(slots=True)
class _FileScan:
    """One recording file after the loading pass."""

    path: Path
    index: int
    category: str
    first_ts_ns: int
    skip_first: bool  # the first line is the instruments envelope, consumed at load time
    events: int
    rows: dict[str, dict[str, Any]]
    symbols: dict[str, _SymbolScan]


def _instrument_rows(raw: bytes) -> tuple[str, dict[str, dict[str, Any]]]:
    obj = orjson.loads(raw)
    res = obj["result"]
    rows = {str(r["symbol"]): r for r in res["list"] if isinstance(r, dict) and "symbol" in r}
    return str(res.get("category") or ""), rows


def _rest_symbol(msg: object) -> str | None:
    if isinstance(msg, BookMsg | TradesMsg | KlineMsg):
        return msg.symbol
    return None


def _scan_file(path: Path, index: int) -> _FileScan:
    """Read one recording once: first stamp, event count, instruments rows, topics per symbol."""
    meta = parse_recording_name(path)
    rows: dict[str, dict[str, Any]] = {}
    symbols: dict[str, _SymbolScan] = {}
    env_category = ""
    first_ts: int | None = None
    skip_first = False
    events = 0
    for line_no, (ts, raw) in enumerate(read_recording(path)):
        if first_ts is None:
            first_ts = ts
        m = _TOPIC_RE.search(raw)
        if m is not None:
            events += 1
            parts = m.group(1).decode("utf-8", "replace").split(".")
            if len(parts) < 2:
                continue
            sc = symbols.setdefault(parts[-1], _SymbolScan())
            if parts[0] == "orderbook" and parts[1].isdigit():
                sc.book_depths.add(int(parts[1]))
            elif parts[0] == "publicTrade":
                sc.ws_trades = True
            elif parts[0] == "kline":
                sc.ws_klines = True
            continue
        try:
            msg = decode_frame(raw) if b'"retCode"' in raw else None
        except DecodeError:
            msg = None
        if isinstance(msg, InstrumentsMsg) and msg.instruments:
            cat, found = _instrument_rows(raw)
            env_category = env_category or cat
            for sym, row in found.items():
                rows.setdefault(sym, row)
            if line_no == 0:
                skip_first = True
                continue
        events += 1
        rest_sym = _rest_symbol(msg)
        if rest_sym is None:
            continue
        sc = symbols.setdefault(rest_sym, _SymbolScan())
        if isinstance(msg, BookMsg):
            sc.rest_book = True
        elif isinstance(msg, TradesMsg):
            sc.rest_trades = True
        elif isinstance(msg, KlineMsg):
            sc.rest_klines = True
    if first_ts is None:
        raise ConfigError(f"{path}: no frames (not a recording `<ts_recv_ns> <frame>` per line?)")
    if meta is not None:
        category = meta.category
        symbols.setdefault(meta.symbol, _SymbolScan())
    else:
        category = env_category if env_category in CATEGORIES else "linear"
        if not symbols and len(rows) == 1:
            symbols[next(iter(rows))] = _SymbolScan()
    return _FileScan(
        path=path,
        index=index,
        category=category,
        first_ts_ns=first_ts,
        skip_first=skip_first,
        events=events,
        rows=rows,
        symbols=symbols,
    )


def _infer_instrument(paths: list[Path], category: str, symbol: str) -> Instrument:
    """Tick and lot size inferred from every price and size of `symbol` (no instruments row)."""
    prices: list[str] = []
    sizes: list[str] = []
    for path in paths:
        for _, raw in read_recording(path):
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            res = obj.get("result")
            if isinstance(res, dict):  # a recorded REST answer: orderbook or recent-trade
                if res.get("s") == symbol:
                    for side in ("b", "a"):
                        for lvl in res.get(side) or ():
                            prices.append(str(lvl[0]))
                            sizes.append(str(lvl[1]))
                for row in res.get("list") or ():
                    if isinstance(row, dict) and row.get("symbol") == symbol and "price" in row:
                        prices.append(str(row["price"]))
                        sizes.append(str(row.get("size", "0")))
                continue
            topic = obj.get("topic")
            data = obj.get("data")
            if not isinstance(topic, str) or topic.split(".")[-1] != symbol:
                continue
            if topic.startswith("orderbook.") and isinstance(data, dict):
                for side in ("b", "a"):
                    for lvl in data.get(side) or ():
                        prices.append(str(lvl[0]))
                        sizes.append(str(lvl[1]))
            elif topic.startswith("publicTrade.") and isinstance(data, list):
                for t in data:
                    prices.append(str(t.get("p", "0")))
                    sizes.append(str(t.get("v", "0")))
    tick = infer_step(prices) if prices else "0.01"
    lot = infer_step(sizes) if sizes else "0.001"
    return Instrument(symbol=symbol, category=category, tick_size=tick, lot_size=lot)


def _synth_row(inst: Instrument) -> dict[str, Any]:
    """An instruments-info row for an instrument the recording did not describe."""
    lot: dict[str, Any] = {
        "maxOrderQty": "1000000",
        "minOrderQty": inst.lot_size,
        "qtyStep": inst.lot_size,
    }
    if inst.category == "spot":
        lot["basePrecision"] = inst.lot_size
    return {
        "symbol": inst.symbol,
        "status": "Trading",
        "priceFilter": {
            "minPrice": inst.tick_size,
            "maxPrice": "10000000",
            "tickSize": inst.tick_size,
        },
        "lotSizeFilter": lot,
    }


# ---------------------------------------------------------------------------------------------
# state


class _Book:
    """A full L2 book in int ticks -> int lots, with sorted price lists for top-N reads."""

    __slots__ = ("ask_px", "asks", "bid_px", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.bid_px: list[int] = []  # ascending
        self.ask_px: list[int] = []  # ascending

    def clear(self) -> None:
        """Drop every level."""
        self.bids.clear()
        self.asks.clear()
        self.bid_px.clear()
        self.ask_px.clear()

    @staticmethod
    def _set(levels: dict[int, int], prices: list[int], px: int, lots: int) -> None:
        if lots <= 0:
            if levels.pop(px, None) is not None:
                del prices[bisect.bisect_left(prices, px)]
        else:
            if px not in levels:
                bisect.insort(prices, px)
            levels[px] = lots

    def set_bid(self, px: int, lots: int) -> None:
        """Set one bid level (absolute size; 0 deletes)."""
        self._set(self.bids, self.bid_px, px, lots)

    def set_ask(self, px: int, lots: int) -> None:
        """Set one ask level (absolute size; 0 deletes)."""
        self._set(self.asks, self.ask_px, px, lots)

    def top(self, depth: int) -> tuple[dict[int, int], dict[int, int]]:
        """(bids best first, asks best first) of the top `depth` levels, as ordered dicts."""
        bids = self.bids
        asks = self.asks
        return (
            {p: bids[p] for p in reversed(self.bid_px[-depth:])},
            {p: asks[p] for p in self.ask_px[:depth]},
        )


@dataclass(slots=True, eq=False)
class _View:
    """The top-`depth` levels of one symbol as served on one `orderbook.N.SYM` topic."""

    depth: int
    topic: str
    u: int = VIEW_U0
    ready: bool = False  # holds the book (the source had its first snapshot)
    stale: bool = False  # skipped updates while nobody listened
    deltas: int = 0  # update frames produced (the fault counter)
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _TradeCandle:
    """A 1-minute candle built from trades (int ticks/lots)."""

    start_ms: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    turnover: int  # sum of ticks * lots


class _Market:
    """Everything the venue serves for one (category, symbol)."""

    def __init__(
        self, category: str, symbol: str, inst: Instrument, row: dict[str, Any], scan: _SymbolScan
    ) -> None:
        self.category = category
        self.symbol = symbol
        self.instrument = inst
        self.row = row
        self.book = _Book()
        self.initialized = False
        self.seq = 0
        self.book_u = 0  # source book frames applied
        self.ts_ms = 0  # recorded ts / cts of the last applied book frame
        self.cts_ms = 0
        self.shift_ms = 0  # re-basing shift it was served with
        self.skipped_deltas = 0
        self.views: dict[int, _View] = {}
        self.trades: deque[tuple[str, dict[str, Any], int]] = deque()  # (id, trade, shift)
        self.trade_ids: set[str] = set()
        self.trades_total = 0
        self.klines: dict[str, dict[int, list[str]]] = {}
        self.candles: dict[int, _TradeCandle] = {}
        self.last_candle_ms = -1
        self.book_source: int | None = (
            max(scan.book_depths) if scan.book_depths else (0 if scan.rest_book else None)
        )
        self.trade_source = "ws" if scan.ws_trades else ("rest" if scan.rest_trades else None)
        self.kline_source = "ws" if scan.ws_klines else ("rest" if scan.rest_klines else "trades")
        self._px_cache: dict[int, str] = {}
        self._qty_cache: dict[int, str] = {}

    def px(self, ticks: int) -> str:
        """Ticks to the venue's price string (cached)."""
        s = self._px_cache.get(ticks)
        if s is None:
            if len(self._px_cache) > _STR_CACHE_MAX:
                self._px_cache.clear()
            s = self._px_cache[ticks] = self.instrument.format_px(ticks)
        return s

    def qty(self, lots: int) -> str:
        """Lots to the venue's size string ("0" for a deleted level, as Bybit writes it)."""
        if lots == 0:
            return "0"
        s = self._qty_cache.get(lots)
        if s is None:
            if len(self._qty_cache) > _STR_CACHE_MAX:
                self._qty_cache.clear()
            s = self._qty_cache[lots] = self.instrument.format_qty(lots)
        return s

    def levels(self, levels: Iterable[tuple[int, int]]) -> list[list[str]]:
        """[(ticks, lots)] -> Bybit `[[price, size], ...]`."""
        return [[self.px(p), self.qty(q)] for p, q in levels]

    def add_trade(self, tid: str, trade: dict[str, Any], shift_ms: int) -> bool:
        """Keep one trade (WS shape, id `tid`); False when its id was seen already."""
        if tid in self.trade_ids:
            return False
        if len(self.trades) >= RECENT_TRADES:
            old_id, _, _ = self.trades.popleft()
            self.trade_ids.discard(old_id)
        self.trades.append((tid, trade, shift_ms))
        self.trade_ids.add(tid)
        self.trades_total += 1
        return True

    def upsert_kline(self, interval: str, start_ms: int, row: list[str]) -> None:
        """Insert or replace the candle starting at start_ms."""
        rows = self.klines.setdefault(interval, {})
        if start_ms not in rows and len(rows) >= MAX_KLINES:
            del rows[min(rows)]
        rows[start_ms] = row

    def candle_row(self, c: _TradeCandle) -> list[str]:
        """A trade-built candle as a REST kline row (7 strings)."""
        inst = self.instrument
        turnover = Decimal(c.turnover) * Decimal(inst.tick_size) * Decimal(inst.lot_size)
        return [
            str(c.start_ms),
            self.px(c.open),
            self.px(c.high),
            self.px(c.low),
            self.px(c.close),
            inst.format_qty(c.volume),
            format(turnover.normalize(), "f"),
        ]

    def add_candle_trade(self, t_ms: int, px: int, lots: int) -> list[_TradeCandle]:
        """Fold one trade into its 1-minute candle; returns the candles it closed (confirmed)."""
        start = t_ms - t_ms % _MINUTE_MS
        c = self.candles.get(start)
        if c is None:
            if len(self.candles) >= MAX_KLINES:
                del self.candles[min(self.candles)]
            c = self.candles[start] = _TradeCandle(start, px, px, px, px, 0, 0)
        c.high = max(c.high, px)
        c.low = min(c.low, px)
        c.close = px
        c.volume += lots
        c.turnover += px * lots
        closed: list[_TradeCandle] = []
        if start > self.last_candle_ms:
            prev = self.candles.get(self.last_candle_ms)
            if prev is not None:
                closed.append(prev)
            self.last_candle_ms = start
        return closed

    def minute_rows(self) -> list[list[str]]:
        """1-minute rows, oldest first: recorded klines, else candles built from trades."""
        if self.kline_source != "trades":
            rows = self.klines.get("1", {})
            return [rows[k] for k in sorted(rows)]
        return [self.candle_row(self.candles[k]) for k in sorted(self.candles)]

    def kline_rows(self, interval: str) -> list[list[str]]:
        """Rows of `interval`, oldest first (recorded, else aggregated from 1-minute rows)."""
        if interval in self.klines:
            rows = self.klines[interval]
            return [rows[k] for k in sorted(rows)]
        base = self.minute_rows()
        if interval == "1":
            return base
        return _aggregate(base, interval)

    def best(self) -> tuple[str | None, str | None]:
        """Best bid and ask prices as strings (None for an empty side)."""
        b = self.px(self.book.bid_px[-1]) if self.book.bid_px else None
        a = self.px(self.book.ask_px[0]) if self.book.ask_px else None
        return b, a


def _bucket(start_ms: int, interval: str) -> int:
    if interval == "D":
        return start_ms - start_ms % _DAY_MS
    if interval == "W":
        return start_ms - (start_ms - _MONDAY0_MS) % (7 * _DAY_MS)
    if interval == "M":
        d = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC)
        return int(dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC).timestamp()) * 1000
    span = int(interval) * _MINUTE_MS
    return start_ms - start_ms % span


def _aggregate(rows: list[list[str]], interval: str) -> list[list[str]]:
    """1-minute rows (oldest first) -> `interval` rows (oldest first)."""
    out: list[list[str]] = []
    cur: list[Any] | None = None
    for r in rows:
        b = _bucket(int(r[0]), interval)
        if cur is None or cur[0] != b:
            if cur is not None:
                out.append(_agg_row(cur))
            cur = [b, r[1], r[2], r[3], r[4], Decimal(r[5]), Decimal(r[6])]
            continue
        if Decimal(r[2]) > Decimal(cur[2]):
            cur[2] = r[2]
        if Decimal(r[3]) < Decimal(cur[3]):
            cur[3] = r[3]
        cur[4] = r[4]
        cur[5] += Decimal(r[5])
        cur[6] += Decimal(r[6])
    if cur is not None:
        out.append(_agg_row(cur))
    return out


def _agg_row(cur: list[Any]) -> list[str]:
    return [str(cur[0]), cur[1], cur[2], cur[3], cur[4], format(cur[5], "f"), format(cur[6], "f")]


def _kline_interval_from_rows(rows: list[Any]) -> str:
    """Interval of a recorded REST kline answer (the request URL is not recorded)."""
    starts = sorted({int(r[0]) for r in rows})
    if len(starts) < 2:
        return "1"
    step = min(b - a for a, b in itertools.pairwise(starts))
    if step % _MINUTE_MS == 0 and str(step // _MINUTE_MS) in KLINE_INTERVALS:
        return str(step // _MINUTE_MS)
    return {_DAY_MS: "D", 7 * _DAY_MS: "W"}.get(step, "M")


# ---------------------------------------------------------------------------------------------
# connections


@dataclass(slots=True, frozen=True)
class _Pong:
    payload: bytes


@dataclass(slots=True, frozen=True)
class _Close:
    code: int
    reason: str


@dataclass(slots=True, frozen=True)
class _Stall:
    """Marks where a `stall` fault starts: what was queued before it is still sent."""


@dataclass(slots=True, frozen=True)
class _Abort:
    """Cut the connection without a close handshake (an `outage` fault)."""


_Item = str | _Pong | _Close | _Stall | _Abort


class _Connection:
    """One websocket client: its subscriptions, its send queue and its fault state."""

    __slots__ = (
        "category",
        "closing",
        "conn_id",
        "frames_sent",
        "held",
        "queue",
        "stalled",
        "topics",
        "transport",
        "ws",
    )

    def __init__(
        self,
        conn_id: str,
        category: str,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
    ) -> None:
        self.conn_id = conn_id
        self.category = category
        self.ws = ws
        self.transport = transport
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.topics: set[str] = set()
        self.held: dict[str, str] = {}  # topic -> delta held back by a `reorder` fault
        self.stalled = False
        self.closing = False
        self.frames_sent = 0


def _mistyped(frame: str) -> str:
    """The `types` fault: the same book frame with `u` as a string and prices as numbers."""
    obj = orjson.loads(frame)
    data = obj["data"]
    data["u"] = str(data["u"])
    for side in ("b", "a"):
        data[side] = [[float(px), qty] for px, qty in data[side]]
    return orjson.dumps(obj).decode()


# ---------------------------------------------------------------------------------------------
# the server


class _ParamError(Exception):
    """A REST request Bybit would answer with retCode 10001."""


class _BadFrame(Exception):
    """A recorded frame with missing or ill-typed fields (counted in stats, skipped)."""


@contextlib.contextmanager
def _frame_fields() -> Iterator[None]:
    """Turn the errors of reading a recorded frame's fields into _BadFrame.

    Only field extraction runs inside it, before any state changes, so a bug in the venue's own
    code is never mistaken for a bad recording.
    """
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise _BadFrame(f"{type(exc).__name__}: {exc}") from None


_Handler = Callable[[web.Request], web.Response]


class VenueServer:
    """A loopback Bybit V5 public venue replaying recordings (see the module docstring).

    Attributes:
        port: the bound port (real after `start()`, also when constructed with port 0).
    """

    def __init__(
        self,
        paths: Iterable[str | Path],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        faults: dict[str, int] | None = None,
        keep_timestamps: bool = False,
        idle_timeout_s: float = 600.0,
        max_queue_frames: int = 20_000,
        clock: Clock | None = None,
        oversized_frame_bytes: int = OVERSIZED_FRAME_BYTES,
        slow_response_s: float = SLOW_RESPONSE_S,
        outage_s: float = OUTAGE_S,
    ) -> None:
        """Configure the venue; nothing is read or bound before `start()`.

        Args:
            paths: recording files and/or directories of `*.rec.gz`.
            host: interface to bind.
            port: TCP port; 0 picks a free one.
            speed: replay speed, venue seconds per real second (> 0).
            faults: {kind: N} as returned by `parse_faults`.
            keep_timestamps: serve the recorded timestamps instead of re-basing them.
            idle_timeout_s: drop a websocket client that sends nothing for this long.
            max_queue_frames: abort a websocket client whose send queue grows past this.
            clock: wall and monotonic time source (default: the real clock).
            oversized_frame_bytes: size of a frame made by the `oversized` fault.
            slow_response_s: delay of an answer made by the `slow` fault.
            outage_s: how long an `outage` fault refuses connections.

        Raises:
            ConfigError: speed <= 0, an unknown fault kind or N <= 0, no paths, a fault
                parameter out of range.
        """
        self._paths = [Path(p) for p in paths]
        if not self._paths:
            raise ConfigError("serve-venue: no recordings given")
        if not speed > 0:
            raise ConfigError(f"serve-venue: --speed must be > 0, got {speed}")
        faults = dict(faults or {})
        for kind, n in faults.items():
            if kind not in FAULT_KINDS or n <= 0:
                raise ConfigError(f"serve-venue: bad fault {kind}:{n}")
        if oversized_frame_bytes < 1024 or not slow_response_s > 0 or not outage_s > 0:
            raise ConfigError(
                "serve-venue: oversized_frame_bytes must be >= 1024, "
                "slow_response_s and outage_s > 0"
            )
        self._oversized_bytes = oversized_frame_bytes
        self._slow_s = float(slow_response_s)
        self._outage_s = float(outage_s)
        self._site: web.TCPSite | None = None
        self._down = False  # an `outage` is under way: nothing listens, connections are cut
        self._host = host
        self.port = port
        self._speed = float(speed)
        self._faults = faults
        self._ws_faults = [(k, faults[k]) for k in WS_FAULT_KINDS if k in faults]
        self._rest_faults = [(k, faults[k]) for k in REST_FAULT_KINDS if k in faults]
        self._outage_n = faults.get("outage", 0)
        self._source_books = 0  # source book frames applied (the `outage` counter)
        self._keep = keep_timestamps
        self._idle_timeout_s = idle_timeout_s
        self._max_queue = max_queue_frames
        self._clock: Clock = clock or LiveClock()

        self._files: list[_FileScan] = []
        self._markets: dict[tuple[str, str], _Market] = {}
        self._subs: dict[tuple[str, str], dict[_Connection, None]] = {}
        self._conns: dict[_Connection, None] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._replay_task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._replay_error: BaseException | None = None
        self._started = False
        self._stopped = False
        self._finished = False
        self._t0_ns = 0
        self._start_mono_ns = 0
        self._events_total = 0
        self._events_applied = 0
        self._replay_ts_ns = 0
        self._bad_frames = 0
        self._ignored_frames = 0
        self._injected = dict.fromkeys(FAULT_KINDS, 0)
        self._rest_requests = 0
        self._conns_total = 0
        self._conns_dropped_slow = 0
        self._frames_sent = 0
        self._conn_seq = 0

    # ---- public API ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The HTTP base URL, e.g. `http://127.0.0.1:8800` (the REST host to configure)."""
        return f"http://{self._host_for_url()}:{self.port}"

    def ws_url(self, category: str = "linear") -> str:
        """The public websocket URL of a category, e.g. `ws://127.0.0.1:8800/v5/public/linear`."""
        return f"ws://{self._host_for_url()}:{self.port}/v5/public/{category}"

    @property
    def symbols(self) -> int:
        """Number of (category, symbol) markets served (after `start()`)."""
        return len(self._markets)

    @property
    def events_total(self) -> int:
        """Number of recorded events the replay will apply (after `start()`)."""
        return self._events_total

    @property
    def finished(self) -> bool:
        """True once every recorded event has been applied."""
        return self._finished

    async def start(self) -> None:
        """Load the recordings, bind the port and start the replay clock.

        Raises:
            ConfigError: a path that does not exist, no recordings, a file without frames.
            OSError: the port cannot be bound.
        """
        if self._started:
            raise RuntimeError("VenueServer.start() called twice")
        self._started = True
        files = expand_paths(self._paths)
        for p in files:
            if not p.is_file():
                raise ConfigError(f"serve-venue: no such recording: {p}")
        if not files:
            raise ConfigError(f"serve-venue: no recordings in {', '.join(map(str, self._paths))}")
        self._files = await asyncio.to_thread(
            lambda: [_scan_file(p, i) for i, p in enumerate(files)]
        )
        await asyncio.to_thread(self._build_markets)
        if not self._markets:
            raise ConfigError("serve-venue: the recordings hold no symbol to serve")
        self._events_total = sum(f.events for f in self._files)
        self._t0_ns = min(f.first_ts_ns for f in self._files)
        self._replay_ts_ns = self._t0_ns

        app = web.Application()
        app.router.add_get("/v5/public/{category}", self._ws_handler)
        market: dict[str, _Handler] = {
            "instruments-info": self._rest_instruments,
            "orderbook": self._rest_orderbook,
            "kline": self._rest_kline,
            "recent-trade": self._rest_recent_trade,
            "time": self._rest_time,
        }
        for name, handler in market.items():
            app.router.add_get(f"/v5/market/{name}", self._rest(handler))
        app.router.add_get("/venue/stats", self._stats_handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self._host, self.port)
        await site.start()
        self._site = site
        self.port = int(runner.addresses[0][1])
        self._start_mono_ns = self._clock.mono_ns()
        self._replay_task = self._spawn(self._run_replay(), "venue.replay")

    async def stop(self) -> None:
        """Stop the replay, close every connection (1001 going away) and unbind."""
        if self._stopped:
            return
        self._stopped = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        conns = list(self._conns)
        for c in conns:
            c.closing = True
        await asyncio.gather(
            *(
                asyncio.wait_for(c.ws.close(code=1001, message=b"venue stopping"), 2.0)
                for c in conns
                if not c.ws.closed
            ),
            return_exceptions=True,
        )
        if self._runner is not None:
            await self._runner.cleanup()
        self._done.set()

    async def wait_finished(self) -> None:
        """Wait until the replay has applied every event.

        Raises:
            RuntimeError: the replay task failed (its exception is the cause).
        """
        await self._done.wait()
        if self._replay_error is not None:
            raise RuntimeError("venue replay failed") from self._replay_error

    def stats(self) -> dict[str, Any]:
        """What `GET /venue/stats` answers (not part of the Bybit API).

        Keys: started, finished, speed, keep_timestamps, venue_time_ms (keeps advancing after
        the end), replay_time_ms (stamp of the last applied event), start_time_ms,
        events_applied/events_total, bad_frames/ignored_frames (recorded frames skipped),
        markets["<category>:<SYMBOL>"] (source seq, u = source book frames applied, best
        bid/ask, levels, source stream, trades, and per subscribed view its u, deltas and
        subscribers), faults.configured/faults.injected (per kind), connections
        (open, total, dropped_slow), frames_sent, rest_requests.
        """
        markets = {}
        for (cat, sym), m in sorted(self._markets.items()):
            best_bid, best_ask = m.best()
            markets[f"{cat}:{sym}"] = {
                "category": cat,
                "symbol": sym,
                "seq": m.seq,
                "u": m.book_u,
                "best_bid": best_bid,
                "best_ask": best_ask,
                "bid_levels": len(m.book.bids),
                "ask_levels": len(m.book.asks),
                "book_source": (
                    None
                    if m.book_source is None
                    else ("rest" if m.book_source == 0 else f"orderbook.{m.book_source}")
                ),
                "skipped_deltas": m.skipped_deltas,
                "trades": m.trades_total,
                "views": {
                    v.topic: {
                        "u": v.u,
                        "deltas": v.deltas,
                        "subscribers": len(self._subs.get((cat, v.topic), {})),
                    }
                    for v in m.views.values()
                },
            }
        return {
            "venue": "mmd serve-venue (not part of the Bybit API)",
            "started": self._started,
            "finished": self._finished,
            "speed": self._speed,
            "keep_timestamps": self._keep,
            "venue_time_ms": self._venue_time_ns() // _MS_NS,
            "replay_time_ms": self._replay_ts_ns // _MS_NS,
            "start_time_ms": self._t0_ns // _MS_NS,
            "events_applied": self._events_applied,
            "events_total": self._events_total,
            "bad_frames": self._bad_frames,
            "ignored_frames": self._ignored_frames,
            "markets": markets,
            "faults": {
                "configured": dict(self._faults),
                "injected": dict(self._injected),
            },
            "connections": {
                "open": len(self._conns),
                "total": self._conns_total,
                "dropped_slow": self._conns_dropped_slow,
            },
            "frames_sent": self._frames_sent,
            "rest_requests": self._rest_requests,
        }

    # ---- helpers ---------------------------------------------------------------------------

    def _host_for_url(self) -> str:
        return f"[{self._host}]" if ":" in self._host else self._host

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _venue_time_ns(self) -> int:
        if not self._start_mono_ns:
            return self._t0_ns
        elapsed = self._clock.mono_ns() - self._start_mono_ns
        return self._t0_ns + int(elapsed * self._speed)

    def _now_ms(self) -> int:
        return self._clock.now_ns() // _MS_NS

    def _server_ms(self) -> int:
        """Server clock of REST envelopes: wall clock, or venue clock when keeping timestamps."""
        return self._venue_time_ns() // _MS_NS if self._keep else self._now_ms()

    def _shift(self, frame_ts_ms: int) -> int:
        return 0 if self._keep else self._now_ms() - frame_ts_ms

    def _count(self, kind: str) -> None:
        self._injected[kind] += 1
        log.debug("fault_injected", kind=kind, total=self._injected[kind])

    def _build_markets(self) -> None:
        scans: dict[tuple[str, str], _SymbolScan] = {}
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        paths: dict[tuple[str, str], list[Path]] = {}
        for f in self._files:
            for sym, sc in f.symbols.items():
                key = (f.category, sym)
                scans.setdefault(key, _SymbolScan()).merge(sc)
                paths.setdefault(key, []).append(f.path)
                if key not in rows and sym in f.rows:
                    rows[key] = f.rows[sym]
        for key, sc in scans.items():
            cat, sym = key
            row = rows.get(key)
            if row is not None:
                lot = row.get("lotSizeFilter") or {}
                inst = Instrument(
                    symbol=sym,
                    category=cat,
                    tick_size=str(row["priceFilter"]["tickSize"]),
                    lot_size=str(lot.get("qtyStep") or lot.get("basePrecision") or "0.001"),
                )
                row = dict(row)
                row["status"] = "Trading"
                lot = dict(lot)
                lot.setdefault("qtyStep", inst.lot_size)
                lot.setdefault("minOrderQty", inst.lot_size)
                row["lotSizeFilter"] = lot
            else:
                inst = _infer_instrument(paths[key], cat, sym)
                row = _synth_row(inst)
            self._markets[key] = _Market(cat, sym, inst, row, sc)

    # ---- replay ----------------------------------------------------------------------------

    def _iter_events(self) -> Iterator[tuple[int, int, bytes]]:
        def one(f: _FileScan) -> Iterator[tuple[int, int, bytes]]:
            first = True
            for ts, raw in read_recording(f.path):
                if first:
                    first = False
                    if f.skip_first:
                        continue
                yield ts, f.index, raw

        return heapq.merge(*(one(f) for f in self._files), key=lambda e: (e[0], e[1]))

    async def _run_replay(self) -> None:
        """Apply every recorded event when venue time passes its ts_recv_ns."""
        try:
            since_yield = 0
            for ts, fi, raw in self._iter_events():
                due_ns = self._start_mono_ns + (ts - self._t0_ns) / self._speed
                delay_ns = due_ns - self._clock.mono_ns()
                if delay_ns > 0:
                    await asyncio.sleep(delay_ns / 1e9)
                    since_yield = 0
                elif since_yield >= 64:
                    # running behind: let the writers and the REST handlers breathe
                    await asyncio.sleep(0)
                    since_yield = 0
                self._replay_ts_ns = max(self._replay_ts_ns, ts)
                self._apply_event(fi, raw)
                self._events_applied += 1
                since_yield += 1
            for c in list(self._conns):
                for topic in list(c.held):
                    self._send(c, c.held.pop(topic))
            self._finished = True
            log.info(
                "venue_replay_finished", events=self._events_applied, bad_frames=self._bad_frames
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._replay_error = exc
            log.error("venue_replay_failed", exc_info=True)
            raise
        finally:
            self._done.set()

    def _apply_event(self, fi: int, raw: bytes) -> None:
        category = self._files[fi].category
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._bad_frames += 1
            return
        if not isinstance(obj, dict):
            self._bad_frames += 1
            return
        try:
            topic = obj.get("topic")
            if isinstance(topic, str):
                self._apply_ws(category, topic, obj)
            elif "retCode" in obj:
                self._apply_rest(category, raw, obj)
            else:
                self._ignored_frames += 1
        except (_BadFrame, DecodeError) as exc:
            self._bad_frames += 1
            log.debug("venue_bad_frame", error=str(exc))

    def _apply_ws(self, category: str, topic: str, obj: dict[str, Any]) -> None:
        parts = topic.split(".")
        m = self._markets.get((category, parts[-1]))
        if m is None or len(parts) < 2:
            self._ignored_frames += 1
            return
        head = parts[0]
        if head == "orderbook" and parts[1] == str(m.book_source):
            with _frame_fields():
                data = obj["data"]
                ts_ms = int(obj["ts"])
                args = (
                    obj["type"] == "snapshot",
                    data["b"],
                    data["a"],
                    int(data.get("seq") or 0),
                    ts_ms,
                    int(obj.get("cts") or ts_ms),
                )
            self._apply_book(m, *args)
        elif head == "publicTrade" and m.trade_source == "ws":
            with _frame_fields():
                items = obj["data"]
                if not isinstance(items, list):
                    raise TypeError("publicTrade data is not a list")
                ts_ms = int(obj["ts"])
            self._apply_trades(m, items, ts_ms)
        elif head == "kline" and m.kline_source == "ws":
            self._apply_ws_kline(m, topic, parts[1], obj)
        elif head == "tickers":
            # passed through as recorded (ts re-based); funding fields drive paper funding
            if self._subs.get((m.category, topic)):
                with _frame_fields():
                    ts_ms = int(obj["ts"])
                shift = self._shift(ts_ms)
                out = {**obj, "ts": ts_ms + shift} if shift else obj
                self._broadcast(m.category, topic, orjson.dumps(out).decode())
        else:
            self._ignored_frames += 1

    def _apply_rest(self, category: str, raw: bytes, obj: dict[str, Any]) -> None:
        msg = decode_frame(raw)
        sym = _rest_symbol(msg)
        m = self._markets.get((category, sym)) if sym is not None else None
        if m is None:
            self._ignored_frames += 1
            return
        with _frame_fields():
            res = obj["result"]
            time_ms = int(obj.get("time") or 0)
        if isinstance(msg, BookMsg) and m.book_source == 0:
            with _frame_fields():
                ts_ms = int(res.get("ts") or time_ms)
                args = (
                    True,
                    res["b"],
                    res["a"],
                    int(res.get("seq") or 0),
                    ts_ms,
                    int(res.get("cts") or ts_ms),
                )
            self._apply_book(m, *args)
        elif isinstance(msg, TradesMsg) and m.trade_source == "rest":
            with _frame_fields():
                rows = sorted(res["list"], key=lambda r: int(r["time"]))
                items = [
                    {
                        "T": int(r["time"]),
                        "s": m.symbol,
                        "S": r["side"],
                        "v": r["size"],
                        "p": r["price"],
                        "i": str(r["execId"]),
                        "BT": bool(r.get("isBlockTrade", False)),
                        "RPI": bool(r.get("isRPITrade", False)),
                        "seq": int(r.get("seq") or 0),
                    }
                    for r in rows
                ]
            self._apply_trades(m, items, time_ms or items[-1]["T"])
        elif isinstance(msg, KlineMsg) and m.kline_source == "rest":
            with _frame_fields():
                krows = [(int(r[0]), [str(x) for x in r[:7]]) for r in res["list"]]
                interval = _kline_interval_from_rows(res["list"])
            for start, row in krows:
                m.upsert_kline(interval, start, row)
        else:
            self._ignored_frames += 1

    # ---- book and views --------------------------------------------------------------------

    def _apply_book(
        self,
        m: _Market,
        is_snapshot: bool,
        bids: list[Any],
        asks: list[Any],
        seq: int,
        ts_ms: int,
        cts_ms: int,
    ) -> None:
        if not is_snapshot and not m.initialized:
            m.skipped_deltas += 1
            return
        inst = m.instrument
        with _frame_fields():
            bl = [(inst.px_to_ticks(lvl[0]), inst.qty_to_lots(lvl[1])) for lvl in bids]
            al = [(inst.px_to_ticks(lvl[0]), inst.qty_to_lots(lvl[1])) for lvl in asks]
        book = m.book
        if is_snapshot:
            book.clear()
        for p, q in bl:
            book.set_bid(p, q)
        for p, q in al:
            book.set_ask(p, q)
        m.initialized = True
        m.book_u += 1
        m.seq = seq if seq > 0 else m.book_u
        m.ts_ms = ts_ms
        m.cts_ms = cts_ms
        m.shift_ms = self._shift(ts_ms)
        self._update_views(m)
        self._source_books += 1
        if (
            self._outage_n
            and self._source_books % self._outage_n == 0
            and not self._down
            and self._site is not None
        ):
            self._begin_outage()

    def _book_frame(
        self,
        m: _Market,
        view: _View,
        typ: str,
        bids: Iterable[tuple[int, int]],
        asks: Iterable[tuple[int, int]],
        ts_ms: int,
    ) -> str:
        return orjson.dumps(
            {
                "topic": view.topic,
                "type": typ,
                "ts": ts_ms,
                "data": {
                    "s": m.symbol,
                    "b": m.levels(bids),
                    "a": m.levels(asks),
                    "u": view.u,
                    "seq": m.seq,
                },
                "cts": m.cts_ms + m.shift_ms,
            }
        ).decode()

    def _snapshot_frame(self, m: _Market, view: _View, *, now: bool) -> str:
        ts = (m.ts_ms if self._keep else self._now_ms()) if now else m.ts_ms + m.shift_ms
        return self._book_frame(m, view, "snapshot", view.bids.items(), view.asks.items(), ts)

    def _update_views(self, m: _Market) -> None:
        for view in m.views.values():
            subs = self._subs.get((m.category, view.topic))
            if not subs:
                view.stale = True
                continue
            new_b, new_a = m.book.top(view.depth)
            if not view.ready:
                view.ready = True
                view.bids, view.asks = new_b, new_a
                frame = self._snapshot_frame(m, view, now=False)
                for c in list(subs):
                    self._send(c, frame)
                continue
            old_b, old_a = view.bids, view.asks
            db = [(p, q) for p, q in new_b.items() if old_b.get(p) != q]
            db += [(p, 0) for p in old_b if p not in new_b]
            da = [(p, q) for p, q in new_a.items() if old_a.get(p) != q]
            da += [(p, 0) for p in old_a if p not in new_a]
            if not db and not da:
                continue
            db.sort(reverse=True)
            da.sort()
            view.bids, view.asks = new_b, new_a
            self._emit_update(m, view, db, da, list(subs))

    def _emit_update(
        self,
        m: _Market,
        view: _View,
        db: list[tuple[int, int]],
        da: list[tuple[int, int]],
        subs: list[_Connection],
    ) -> None:
        """Broadcast one view update, applying the faults due at this update count."""
        view.deltas += 1
        k = view.deltas
        hits = {kind for kind, n in self._ws_faults if k % n == 0}
        ts_ms = m.ts_ms + m.shift_ms
        if "stall" in hits:
            view.u += 1
            for c in subs:
                if not (c.stalled or c.closing):
                    c.queue.put_nowait(_Stall())
                c.stalled = True
                c.held.clear()
            self._count("stall")
            log.info("venue_connections_stalled", topic=view.topic, connections=len(subs))
            return
        frame: str | None
        reset = False
        if "restart" in hits:
            view.u = 1
            frame = self._snapshot_frame(m, view, now=False)
            reset = True
            self._count("restart")
        else:
            view.u += 1
            if "gap" in hits:
                frame = None
                self._count("gap")
            elif view.depth == 1:
                frame = self._snapshot_frame(m, view, now=False)
            else:
                frame = self._book_frame(m, view, "delta", db, da, ts_ms)
            if frame is not None and "types" in hits:
                frame = _mistyped(frame)
                self._count("types")
            elif frame is not None and "oversized" in hits:
                frame = frame[:-1] + " " * max(0, self._oversized_bytes - len(frame)) + "}"
                self._count("oversized")
        pre: list[str] = []
        reorder = duplicate = False
        if frame is not None:
            if "garbage" in hits:
                pre.append(GARBAGE_FRAME)
                self._count("garbage")
            if "truncate" in hits:
                pre.append(frame[: len(frame) // 2])
                self._count("truncate")
            if "reorder" in hits:
                reorder = True
                self._count("reorder")
            elif "duplicate" in hits:
                duplicate = True
                self._count("duplicate")
        topic = view.topic
        for c in subs:
            if c.stalled or c.closing:
                continue
            for p in pre:
                self._send(c, p)
            if frame is None:
                continue
            if reset:
                c.held.pop(topic, None)
            held = c.held.pop(topic, None)
            if reorder and held is None:
                c.held[topic] = frame
                continue
            self._send(c, frame)
            if duplicate:
                self._send(c, frame)
            if held is not None:
                self._send(c, held)
        if "disconnect" in hits:
            self._count("disconnect")
            for c in subs:
                self._close_after_queue(c, 1001, "venue fault: disconnect")

    def _begin_outage(self) -> None:
        """The `outage` fault, at once: cut every connection after what is queued."""
        self._count("outage")
        self._down = True
        for c in list(self._conns):
            self._forget(c)
            c.queue.put_nowait(_Abort())
        self._spawn(self._run_outage(), "venue.outage")

    async def _run_outage(self) -> None:
        """The `outage` fault: stop listening for `outage_s`, then listen on the same port."""
        runner, site = self._runner, self._site
        assert runner is not None and site is not None
        log.info("venue_outage_started", seconds=self._outage_s)
        try:
            await site.stop()
            await asyncio.sleep(self._outage_s)
            site = web.TCPSite(runner, self._host, self.port)
            await site.start()
            self._site = site
        finally:
            self._down = False
        log.info("venue_outage_ended")

    # ---- trades and klines -----------------------------------------------------------------

    def _apply_trades(self, m: _Market, items: list[dict[str, Any]], frame_ts_ms: int) -> None:
        inst = m.instrument
        with _frame_fields():
            parsed = [
                (int(t["T"]), inst.px_to_ticks(t["p"]), inst.qty_to_lots(t["v"]), str(t["i"]), t)
                for t in items
            ]
        shift = self._shift(frame_ts_ms)
        fresh = [
            (t_ms, px, lots, t) for t_ms, px, lots, tid, t in parsed if m.add_trade(tid, t, shift)
        ]
        if not fresh:
            return
        topic = f"publicTrade.{m.symbol}"
        if self._subs.get((m.category, topic)):
            data = [t if shift == 0 else {**t, "T": t_ms + shift} for t_ms, _, _, t in fresh]
            self._broadcast(
                m.category,
                topic,
                orjson.dumps(
                    {"topic": topic, "type": "snapshot", "ts": frame_ts_ms + shift, "data": data}
                ).decode(),
            )
        if m.kline_source != "trades":
            return
        touched: dict[int, _TradeCandle] = {}
        for t_ms, px, lots, _ in fresh:
            for closed in m.add_candle_trade(t_ms, px, lots):
                touched[closed.start_ms] = closed
            c = m.candles[t_ms - t_ms % _MINUTE_MS]
            touched[c.start_ms] = c
        ktopic = f"kline.1.{m.symbol}"
        if self._subs.get((m.category, ktopic)):
            ts = frame_ts_ms + shift
            data = []
            for c in sorted(touched.values(), key=lambda c: c.start_ms):
                row = m.candle_row(c)
                data.append(
                    {
                        "start": c.start_ms,
                        "end": c.start_ms + _MINUTE_MS - 1,
                        "interval": "1",
                        "open": row[1],
                        "close": row[4],
                        "high": row[2],
                        "low": row[3],
                        "volume": row[5],
                        "turnover": row[6],
                        "confirm": c.start_ms < m.last_candle_ms,
                        "timestamp": ts,
                    }
                )
            self._broadcast(
                m.category,
                ktopic,
                orjson.dumps(
                    {"topic": ktopic, "type": "snapshot", "ts": ts, "data": data}
                ).decode(),
            )

    def _apply_ws_kline(self, m: _Market, topic: str, interval: str, obj: dict[str, Any]) -> None:
        with _frame_fields():
            items = obj["data"]
            if not isinstance(items, list):
                raise TypeError("kline data is not a list")
            rows = [
                (
                    int(k["start"]),
                    [
                        str(k["start"]),
                        str(k["open"]),
                        str(k["high"]),
                        str(k["low"]),
                        str(k["close"]),
                        str(k["volume"]),
                        str(k.get("turnover", "0")),
                    ],
                )
                for k in items
            ]
            ts_ms = int(obj["ts"])
            shift = self._shift(ts_ms)
            if shift:
                obj = {
                    **obj,
                    "ts": ts_ms + shift,
                    "data": [
                        {**k, "timestamp": int(k["timestamp"]) + shift} if "timestamp" in k else k
                        for k in items
                    ],
                }
        for start, row in rows:
            m.upsert_kline(interval, start, row)
        if self._subs.get((m.category, topic)):
            self._broadcast(m.category, topic, orjson.dumps(obj).decode())

    # ---- sending ---------------------------------------------------------------------------

    def _send(self, c: _Connection, item: _Item) -> None:
        """Queue one item for a connection; never blocks; aborts a client that falls behind."""
        if c.stalled or c.closing:
            return
        if c.queue.qsize() >= self._max_queue:
            self._conns_dropped_slow += 1
            log.warning("venue_slow_client_dropped", conn_id=c.conn_id, queued=c.queue.qsize())
            self._forget(c)
            if c.transport is not None:
                c.transport.abort()
            return
        c.queue.put_nowait(item)

    def _broadcast(self, category: str, topic: str, frame: str) -> None:
        for c in list(self._subs.get((category, topic), ())):
            self._send(c, frame)

    def _close_after_queue(self, c: _Connection, code: int, reason: str) -> None:
        """Close a connection once what is queued before now has been sent."""
        if c.closing:
            return
        c.queue.put_nowait(_Close(code, reason))
        self._forget(c)

    def _forget(self, c: _Connection) -> None:
        """Take a connection out of every subscription (it receives nothing more)."""
        c.closing = True
        for topic in c.topics:
            subs = self._subs.get((c.category, topic))
            if subs is not None:
                subs.pop(c, None)
        c.topics.clear()
        c.held.clear()

    async def _run_writer(self, c: _Connection) -> None:
        ws = c.ws
        silent = False  # past a stall marker: send nothing more
        try:
            while True:
                item = await c.queue.get()
                if isinstance(item, _Close):
                    await ws.close(code=item.code, message=item.reason.encode())
                    return
                if isinstance(item, _Stall):
                    silent = True
                    continue
                if isinstance(item, _Abort):
                    if c.transport is not None:
                        c.transport.abort()
                    return
                if silent or ws.closed:
                    continue
                if isinstance(item, str):
                    await ws.send_str(item)
                    c.frames_sent += 1
                    self._frames_sent += 1
                else:
                    await ws.pong(item.payload)
        except ConnectionError as exc:
            log.debug("venue_send_failed", conn_id=c.conn_id, error=str(exc))

    # ---- websocket -------------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        category = request.match_info["category"]
        if category not in CATEGORIES:
            raise web.HTTPNotFound(text=f"this venue serves /v5/public/{{{','.join(CATEGORIES)}}}")
        ws = web.WebSocketResponse(
            autoping=False, compress=False, max_msg_size=1 << 16, timeout=5.0
        )
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="expected a websocket upgrade")
        if self._down:  # accepted just before the listening socket closed: cut it
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        await ws.prepare(request)
        self._conn_seq += 1
        conn = _Connection(
            f"{secrets.token_hex(8)}-{self._conn_seq}", category, ws, request.transport
        )
        self._conns[conn] = None
        self._conns_total += 1
        log.debug("venue_connection_opened", conn_id=conn.conn_id, category=category)
        writer = self._spawn(self._run_writer(conn), f"venue.ws.{conn.conn_id}")
        try:
            await self._read_loop(conn)
        finally:
            closing_by_us = conn.closing
            self._forget(conn)
            self._conns.pop(conn, None)
            if closing_by_us and not writer.done():
                # a close handshake we started (fault, idle): let it finish
                await asyncio.wait([writer], timeout=2.0)
            writer.cancel()
            outcomes: list[BaseException | None] = await asyncio.gather(
                writer, return_exceptions=True
            )
            outcome = outcomes[0]
            if isinstance(outcome, Exception):
                log.error("venue_writer_failed", conn_id=conn.conn_id, exc_info=outcome)
            if not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.close()
            log.debug("venue_connection_closed", conn_id=conn.conn_id, sent=conn.frames_sent)
        return ws

    async def _read_loop(self, c: _Connection) -> None:
        ws = c.ws
        while True:
            try:
                msg = await ws.receive(timeout=self._idle_timeout_s)
            except TimeoutError:
                if c.closing:
                    return
                log.info("venue_idle_client_dropped", conn_id=c.conn_id)
                self._close_after_queue(c, 1000, "idle timeout")
                continue
            if msg.type is WSMsgType.TEXT:
                self._on_request(c, msg.data)
            elif msg.type is WSMsgType.PING:
                self._send(c, _Pong(msg.data))
            elif msg.type is WSMsgType.PONG:
                continue
            elif msg.type is WSMsgType.BINARY:
                self._reply(c, "", False, "text frames only", None)
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return

    def _reply(self, c: _Connection, op: str, success: bool, ret_msg: str, req_id: Any) -> None:
        obj: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": c.conn_id}
        # spot pongs carry no req_id (BYBIT_V5_NOTES 3.1)
        if not (c.category == "spot" and op == "ping"):
            obj["req_id"] = "" if req_id is None else req_id
        obj["op"] = op
        self._send(c, orjson.dumps(obj).decode())

    def _on_request(self, c: _Connection, text: str) -> None:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._reply(c, "", False, "invalid request: not JSON", None)
            return
        if not isinstance(req, dict):
            self._reply(c, "", False, "invalid request: not a JSON object", None)
            return
        op = req.get("op")
        req_id = req.get("req_id")
        if op == "ping":
            self._reply(c, "ping", True, "pong", req_id)
        elif op in ("subscribe", "unsubscribe"):
            self._on_subscription(c, str(op), req.get("args"), req_id)
        else:
            self._reply(c, str(op or ""), False, f"unsupported op: {op!r}", req_id)

    def _resolve_topic(self, category: str, topic: str) -> tuple[_Market, int] | str:
        """(market, book depth or 0) for a valid topic, else the reason it is refused."""
        parts = topic.split(".")
        head = parts[0]
        if head == "orderbook" and len(parts) == 3:
            if not parts[1].isdigit() or int(parts[1]) not in BOOK_DEPTHS:
                return (
                    f"invalid topic {topic}: orderbook depth must be one of "
                    f"{', '.join(map(str, BOOK_DEPTHS))}"
                )
            depth = int(parts[1])
        elif head in ("publicTrade", "tickers") and len(parts) == 2:
            depth = 0
        elif head == "kline" and len(parts) == 3:
            if parts[1] not in KLINE_INTERVALS:
                return f"invalid topic {topic}: kline interval must be one of " + " ".join(
                    KLINE_INTERVALS
                )
            depth = 0
        else:
            return (
                f"error:handler not found,topic:{topic} (served: orderbook.N.SYM, "
                "publicTrade.SYM, kline.I.SYM, tickers.SYM)"
            )
        m = self._markets.get((category, parts[-1]))
        if m is None:
            served = sorted(s for cat, s in self._markets if cat == category)
            return (
                f"invalid topic {topic}: unknown symbol {parts[-1]} on {category} "
                f"(served: {', '.join(served) or 'none'})"
            )
        return m, depth

    def _on_subscription(self, c: _Connection, op: str, args: Any, req_id: Any) -> None:
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            self._reply(c, op, False, "args must be a non-empty list of topics", req_id)
            return
        if c.category == "spot" and len(args) > 10:
            self._reply(c, op, False, "spot allows at most 10 args per request", req_id)
            return
        topics = list(dict.fromkeys(args))
        resolved: list[tuple[str, _Market, int]] = []
        errors: list[str] = []
        for topic in topics:
            r = self._resolve_topic(c.category, topic)
            if isinstance(r, str):
                errors.append(r)
            else:
                resolved.append((topic, *r))
        if op == "unsubscribe":
            errors += [
                f"not subscribed: {t}"
                for t in topics
                if t not in c.topics and not any(t in e for e in errors)
            ]
        if errors:
            self._reply(c, op, False, "; ".join(errors), req_id)
            return
        ok_msg = op if c.category == "spot" else ""
        if op == "unsubscribe":
            for topic in topics:
                c.topics.discard(topic)
                c.held.pop(topic, None)
                self._subs.get((c.category, topic), {}).pop(c, None)
            self._reply(c, op, True, ok_msg, req_id)
            return
        for topic, _, _ in resolved:
            c.topics.add(topic)
            self._subs.setdefault((c.category, topic), {})[c] = None
        self._reply(c, op, True, ok_msg, req_id)
        for topic, m, depth in resolved:
            if depth:
                self._subscribe_book(c, m, depth, topic)

    def _subscribe_book(self, c: _Connection, m: _Market, depth: int, topic: str) -> None:
        """Bring the view up to date and send its snapshot (or wait for the first source one)."""
        view = m.views.get(depth)
        if view is None:
            view = m.views[depth] = _View(depth=depth, topic=topic, ready=m.initialized)
            if view.ready:
                view.bids, view.asks = m.book.top(depth)
        elif view.ready and view.stale:
            new_b, new_a = m.book.top(depth)
            if new_b != view.bids or new_a != view.asks:
                view.u += 1
                view.bids, view.asks = new_b, new_a
        view.stale = False
        c.held.pop(topic, None)
        if view.ready:
            self._send(c, self._snapshot_frame(m, view, now=True))

    # ---- REST ------------------------------------------------------------------------------

    def _envelope(
        self, result: dict[str, Any], ret_code: int = 0, ret_msg: str = "OK"
    ) -> web.Response:
        body = {
            "retCode": ret_code,
            "retMsg": ret_msg,
            "result": result,
            "retExtInfo": {},
            "time": self._server_ms(),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _rest(self, handler: _Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap a REST handler: count the request, inject REST faults, map param errors."""

        async def wrapped(request: web.Request) -> web.Response:
            if self._down:
                # a keep-alive connection opened before the outage: cut it, answer nothing
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=503)
            self._rest_requests += 1
            k = self._rest_requests
            for kind, n in self._rest_faults:
                if k % n:
                    continue
                self._count(kind)
                if kind == "http5xx":
                    return web.Response(status=503, text="Service Unavailable")
                if kind == "http429":
                    return web.Response(status=429, text="Too Many Requests")
                if kind == "http403":
                    return web.Response(status=403, text="access too frequent")
                if kind == "slow":
                    await asyncio.sleep(self._slow_s)
                    break
                return self._envelope({}, 10016, "service restarting")
            try:
                return handler(request)
            except _ParamError as exc:
                return self._envelope({}, 10001, str(exc))

        return wrapped

    def _category_param(self, request: web.Request, default: str | None = None) -> str:
        cat = request.query.get("category", default)
        if not cat:
            raise _ParamError("params error: category is required")
        if cat not in CATEGORIES:
            raise _ParamError(
                f"params error: category {cat!r} is not served (one of {', '.join(CATEGORIES)})"
            )
        return cat

    def _market_param(self, request: web.Request, default_category: str | None = None) -> _Market:
        cat = self._category_param(request, default_category)
        sym = request.query.get("symbol", "").upper()
        if not sym:
            raise _ParamError("params error: symbol is required")
        m = self._markets.get((cat, sym))
        if m is None:
            raise _ParamError(f"params error: symbol invalid: {sym} is not served on {cat}")
        return m

    @staticmethod
    def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            v = int(raw)
        except ValueError:
            raise _ParamError(f"params error: {name} must be an integer") from None
        if not lo <= v <= hi:
            raise _ParamError(f"params error: {name} must be in [{lo}, {hi}]")
        return v

    def _rest_instruments(self, request: web.Request) -> web.Response:
        cat = self._category_param(request)
        sym = request.query.get("symbol", "").upper()
        if sym:
            m = self._markets.get((cat, sym))
            if m is None:
                raise _ParamError(f"params error: symbol invalid: {sym} is not served on {cat}")
            rows = [m.row]
        else:
            rows = [m.row for (c, _), m in sorted(self._markets.items()) if c == cat]
        return self._envelope({"category": cat, "list": rows, "nextPageCursor": ""})

    def _rest_orderbook(self, request: web.Request) -> web.Response:
        m = self._market_param(request)
        limit = self._int_param(request, "limit", 1 if m.category == "spot" else 25, 1, 1000)
        bids, asks = m.book.top(limit)
        return self._envelope(
            {
                "s": m.symbol,
                "b": m.levels(bids.items()),
                "a": m.levels(asks.items()),
                "ts": m.ts_ms if self._keep else self._now_ms(),
                "u": m.book_u,
                "seq": m.seq,
                "cts": m.cts_ms + m.shift_ms,
            }
        )

    def _rest_kline(self, request: web.Request) -> web.Response:
        m = self._market_param(request, default_category="linear")
        interval = request.query.get("interval", "")
        if interval not in KLINE_INTERVALS:
            raise _ParamError(f"params error: interval must be one of {' '.join(KLINE_INTERVALS)}")
        limit = self._int_param(request, "limit", 200, 1, 1000)
        start = self._int_param(request, "start", 0, 0, 1 << 62)
        end = self._int_param(request, "end", 1 << 62, 0, 1 << 62)
        rows = [r for r in m.kline_rows(interval) if start <= int(r[0]) <= end]
        return self._envelope(
            {"category": m.category, "symbol": m.symbol, "list": rows[-limit:][::-1]}
        )

    def _rest_recent_trade(self, request: web.Request) -> web.Response:
        m = self._market_param(request)
        spot = m.category == "spot"
        limit = self._int_param(request, "limit", 60 if spot else 500, 1, 60 if spot else 1000)
        out = []
        for tid, t, shift in list(m.trades)[-limit:][::-1]:
            out.append(
                {
                    "execId": tid,
                    "symbol": m.symbol,
                    "price": t["p"],
                    "size": t["v"],
                    "side": t["S"],
                    "time": str(int(t["T"]) + shift),
                    "isBlockTrade": bool(t.get("BT", False)),
                    "isRPITrade": bool(t.get("RPI", False)),
                    "seq": str(t.get("seq") or 0),
                }
            )
        return self._envelope({"category": m.category, "list": out})

    def _rest_time(self, request: web.Request) -> web.Response:
        ms = self._server_ms()
        return self._envelope({"timeSecond": str(ms // 1000), "timeNano": str(ms * _MS_NS)})

    async def _stats_handler(self, request: web.Request) -> web.Response:
        """`GET /venue/stats`: replay progress, per-symbol state, faults, connections.

        Not part of the Bybit API: introspection for tests and operators.
        """
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")


# ---------------------------------------------------------------------------------------------
# the command


async def serve(
    paths: Iterable[str | Path],
    host: str = "127.0.0.1",
    port: int = 8800,
    speed: float = 1.0,
    faults_spec: str | None = "",
    keep_timestamps: bool = False,
) -> None:
    """`mmd serve-venue`: run a venue until cancelled, SIGTERM or SIGINT, then stop cleanly.

    Prints one line `mmd venue listening on http://HOST:PORT (N symbols, M events)` to stdout
    (flushed) once bound; tests and scripts read the port from it.

    Args:
        paths: recording files and/or directories.
        host: interface to bind.
        port: TCP port (0 = any free port).
        speed: replay speed (> 0).
        faults_spec: the `--faults` value (see `parse_faults`).
        keep_timestamps: serve recorded timestamps instead of re-basing them to now.

    Raises:
        ConfigError: bad arguments (unknown fault, speed <= 0, missing recordings).
        RuntimeError: the replay failed.
    """
    server = VenueServer(
        paths,
        host=host,
        port=port,
        speed=speed,
        faults=parse_faults(faults_spec),
        keep_timestamps=keep_timestamps,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread / not supported: rely on cancellation
    stop_wait = asyncio.create_task(stop.wait(), name="venue.serve.stop")
    done_wait: asyncio.Task[None] | None = None
    try:
        await server.start()
        sys.stdout.write(
            f"mmd venue listening on {server.url} "
            f"({server.symbols} symbols, {server.events_total} events)\n"
        )
        sys.stdout.flush()
        log.info(
            "venue_started",
            url=server.url,
            symbols=server.symbols,
            events=server.events_total,
            speed=speed,
        )
        done_wait = asyncio.create_task(server.wait_finished(), name="venue.serve.replay")
        done, _ = await asyncio.wait({stop_wait, done_wait}, return_when=asyncio.FIRST_COMPLETED)
        if done_wait in done:
            done_wait.result()  # raises when the replay failed
            await stop_wait
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        pending = [t for t in (stop_wait, done_wait) if t is not None]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await server.stop()
        log.info("venue_stopped")

"""What the venue serves for one (category, symbol): the replayed book, its views, trades, klines.

State and formatting only: it never touches a socket, file or task; replay timing is read from
the `VenueClock` it is given (the only clock reader of the venue's served timestamps).

* **Full book.** The product's `L2Book` (int ticks/lots, numba kernels), grown before an update
  could overflow it, so no level is ever dropped. A source snapshot resets it, deltas set
  absolute sizes, size 0 deletes (a negative size too); deltas before the first source snapshot
  are skipped. Per symbol the venue keeps the source `seq` of the last applied book frame (the
  running count of applied book frames when the source carries none) and `u`, the number of
  source book frames applied (REST `u`).
* **Trades and klines.** The last `RECENT_TRADES` trades are kept for REST, a trade id seen
  again is dropped (overlapping REST polls). Recorded klines are kept by start; without any,
  1-minute candles are built from the trades. REST `kline` serves the recorded interval, or
  aggregates 1-minute candles into the asked one (W from Monday, M per calendar month).
* **Timestamps.** Unless `keep_timestamps`, every served frame is re-based onto the venue's
  wall clock at emission: shift = now - frame `ts`, added to `ts`, `cts`, trade `T` and kline
  `timestamp`, so `ts` is the emission time and a client's measured feed lag is real, while the
  recorded `ts - cts` gap is kept. Kline `start`/`end` stay as recorded (they name the candle).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from mmd.clock import Clock
from mmd.market.book import L2Book
from mmd.venue.catalog import MarketSpec
from mmd.venue.klines import MINUTE_MS, TradeCandle, aggregate

BOOK_DEPTHS = (1, 50, 200, 1000)
VIEW_U0 = 1000  # first `u` of a book view
RECENT_TRADES = 1000  # trades kept per symbol (REST recent-trade maximum)
MAX_KLINES = 50_000  # candles kept per (symbol, interval)

MS_NS = 1_000_000
_STR_CACHE_MAX = 200_000
_BOOK_CAPACITY0 = 256  # levels per side before the first growth

I64Array = npt.NDArray[np.int64]


class VenueClock:
    """Replay time: venue time runs from the earliest recorded stamp at `speed` x real time.

    Args:
        clock: wall and monotonic time source.
        speed: venue seconds per real second (> 0).
        keep_timestamps: serve recorded timestamps instead of re-basing them to now.
    """

    __slots__ = ("clock", "keep", "speed", "start_mono_ns", "t0_ns")

    def __init__(self, clock: Clock, speed: float, keep_timestamps: bool) -> None:
        self.clock = clock
        self.speed = float(speed)
        self.keep = keep_timestamps
        self.t0_ns = 0  # venue time at the start (earliest ts_recv_ns of all files)
        self.start_mono_ns = 0  # monotonic time of the start, 0 before

    def venue_time_ns(self) -> int:
        """Venue time now (ns, the recorded time domain)."""
        if not self.start_mono_ns:
            return self.t0_ns
        elapsed = self.clock.mono_ns() - self.start_mono_ns
        return self.t0_ns + int(elapsed * self.speed)

    def delay_ns(self, ts_ns: int) -> float:
        """Real ns until venue time reaches a recorded stamp (<= 0: due)."""
        due_ns = self.start_mono_ns + (ts_ns - self.t0_ns) / self.speed
        return due_ns - self.clock.mono_ns()

    def now_ms(self) -> int:
        """Wall clock (ms)."""
        return self.clock.now_ns() // MS_NS

    def server_ms(self) -> int:
        """Server clock of REST envelopes: wall clock, or venue clock when keeping timestamps."""
        return self.venue_time_ns() // MS_NS if self.keep else self.now_ms()

    def shift(self, frame_ts_ms: int) -> int:
        """The re-basing shift of a frame stamped `frame_ts_ms` served now (0 when keeping)."""
        return 0 if self.keep else self.now_ms() - frame_ts_ms


class FullBook:
    """The full source book: an `L2Book` regrown so that no level is ever pushed out."""

    __slots__ = ("_l2",)

    def __init__(self) -> None:
        self._l2 = L2Book(_BOOK_CAPACITY0)

    @property
    def n_bids(self) -> int:
        """Bid levels held."""
        return self._l2.n_bids

    @property
    def n_asks(self) -> int:
        """Ask levels held."""
        return self._l2.n_asks

    def apply(
        self,
        is_snapshot: bool,
        bid_px: I64Array,
        bid_lots: I64Array,
        ask_px: I64Array,
        ask_lots: I64Array,
        *,
        u: int,
        seq: int,
        ts_ms: int,
    ) -> None:
        """Apply one source frame: prices in ticks and sizes in lots (>= 0, 0 deletes)."""
        l2 = self._l2
        if is_snapshot:
            need = max(len(bid_px), len(ask_px))
        else:
            need = max(l2.n_bids + len(bid_px), l2.n_asks + len(ask_px))
        if need > l2.capacity:
            l2 = self._grow(max(need, 2 * l2.capacity))
        apply = l2.apply_snapshot if is_snapshot else l2.apply_delta
        apply(bid_px, bid_lots, ask_px, ask_lots, u=u, seq=seq, ts_exch_ns=ts_ms * MS_NS)

    def _grow(self, capacity: int) -> L2Book:
        old = self._l2
        new = L2Book(capacity)
        if old.n_bids or old.n_asks:
            new.apply_snapshot(
                *old.top(old.capacity), u=old.u, seq=old.seq, ts_exch_ns=old.ts_exch_ns
            )
        self._l2 = new
        return new

    def top(self, depth: int) -> tuple[dict[int, int], dict[int, int]]:
        """(bids best first, asks best first) of the top `depth` levels, as ordered dicts."""
        l2 = self._l2
        nb = min(depth, l2.n_bids)
        na = min(depth, l2.n_asks)
        return (
            dict(zip(l2.bid_px[:nb].tolist(), l2.bid_qty[:nb].tolist(), strict=False)),
            dict(zip(l2.ask_px[:na].tolist(), l2.ask_qty[:na].tolist(), strict=False)),
        )

    def best(self) -> tuple[int | None, int | None]:
        """Best bid and ask prices in ticks (None for an empty side)."""
        b = self._l2.best_bid()
        a = self._l2.best_ask()
        return (None if b is None else b[0]), (None if a is None else a[0])


@dataclass(slots=True, eq=False)
class View:
    """The top-`depth` levels of one symbol as served on one `orderbook.N.SYM` topic."""

    depth: int
    topic: str
    u: int = VIEW_U0
    ready: bool = False  # holds the book (the source had its first snapshot)
    stale: bool = False  # skipped updates while nobody listened
    deltas: int = 0  # update frames produced (the fault counter)
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)


class Market:
    """Everything the venue serves for one (category, symbol)."""

    def __init__(self, spec: MarketSpec) -> None:
        scan = spec.scan
        self.category = spec.category
        self.symbol = spec.symbol
        self.instrument = spec.instrument
        self.row = spec.row
        self.book = FullBook()
        self.initialized = False
        self.seq = 0
        self.book_u = 0  # source book frames applied
        self.ts_ms = 0  # recorded ts / cts of the last applied book frame
        self.cts_ms = 0
        self.shift_ms = 0  # re-basing shift it was served with
        self.skipped_deltas = 0
        self.views: dict[int, View] = {}
        self.trades: deque[tuple[str, dict[str, Any], int]] = deque()  # (id, trade, shift)
        self.trade_ids: set[str] = set()
        self.trades_total = 0
        self.klines: dict[str, dict[int, list[str]]] = {}
        self.candles: dict[int, TradeCandle] = {}
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

    def book_frame(
        self,
        view: View,
        typ: str,
        bids: Iterable[tuple[int, int]],
        asks: Iterable[tuple[int, int]],
        ts_ms: int,
    ) -> str:
        """An `orderbook.N.SYM` frame of `view` (its current `u`, the source `seq`)."""
        return orjson.dumps(
            {
                "topic": view.topic,
                "type": typ,
                "ts": ts_ms,
                "data": {
                    "s": self.symbol,
                    "b": self.levels(bids),
                    "a": self.levels(asks),
                    "u": view.u,
                    "seq": self.seq,
                },
                "cts": self.cts_ms + self.shift_ms,
            }
        ).decode()

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

    def candle_row(self, c: TradeCandle) -> list[str]:
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

    def add_candle_trade(self, t_ms: int, px: int, lots: int) -> list[TradeCandle]:
        """Fold one trade into its 1-minute candle; returns the candles it closed (confirmed)."""
        start = t_ms - t_ms % MINUTE_MS
        c = self.candles.get(start)
        if c is None:
            if len(self.candles) >= MAX_KLINES:
                del self.candles[min(self.candles)]
            c = self.candles[start] = TradeCandle(start, px, px, px, px, 0, 0)
        c.high = max(c.high, px)
        c.low = min(c.low, px)
        c.close = px
        c.volume += lots
        c.turnover += px * lots
        closed: list[TradeCandle] = []
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
        return aggregate(base, interval)

    def best(self) -> tuple[str | None, str | None]:
        """Best bid and ask prices as strings (None for an empty side)."""
        b, a = self.book.best()
        return (None if b is None else self.px(b)), (None if a is None else self.px(a))

    def stats(self, subscribers: Callable[[str, str], int]) -> dict[str, Any]:
        """This market's part of `/venue/stats`; `subscribers(category, topic)` counts them."""
        best_bid, best_ask = self.best()
        return {
            "category": self.category,
            "symbol": self.symbol,
            "seq": self.seq,
            "u": self.book_u,
            "best_bid": best_bid,
            "best_ask": best_ask,
            "bid_levels": self.book.n_bids,
            "ask_levels": self.book.n_asks,
            "book_source": (
                None
                if self.book_source is None
                else ("rest" if self.book_source == 0 else f"orderbook.{self.book_source}")
            ),
            "skipped_deltas": self.skipped_deltas,
            "trades": self.trades_total,
            "views": {
                v.topic: {
                    "u": v.u,
                    "deltas": v.deltas,
                    "subscribers": subscribers(self.category, v.topic),
                }
                for v in self.views.values()
            },
        }

    @staticmethod
    def warm_up() -> None:
        """Compile (or load from the cache) the book kernels, before the replay clock starts."""
        one = np.ones(1, np.int64)
        book = FullBook()
        book.apply(True, one, one, one + 1, one, u=1, seq=1, ts_ms=0)
        book.apply(False, one, one * 0, one + 1, one * 2, u=2, seq=2, ts_ms=0)

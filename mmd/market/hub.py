"""MarketHub: every frame goes codec -> book sync -> L2Book -> ring buffers, synchronously.

A book frame's book, crossed check, features and mids ring are one compiled call
(`mmd.kernels.frame.advance_book_frame`) on the arrays those objects own.

Pure core: it never awaits, touches a socket or reads the clock (times arrive as arguments). It
keeps its own counters as plain ints; the metrics module copies them out off the hot path. What
the I/O shell must do (resubscribe a symbol) comes back as `Resync` values.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import msgspec
import numpy as np

from mmd.config import FeaturesConfig, MarketConfig
from mmd.errors import InvariantViolation
from mmd.feeds.book_sync import BookSync, SyncAction
from mmd.feeds.bybit_codec import (
    BookMsg,
    ControlMsg,
    DecodeError,
    InstrumentsMsg,
    KlineMsg,
    Message,
    RestError,
    TickerMsg,
    TradesMsg,
    decode_frame,
)
from mmd.kernels.frame import (
    FRAME_BAD_FEATURES,
    FRAME_BAD_LEVELS,
    FRAME_CROSSED,
    advance_book_frame,
)
from mmd.market.book import I64Array, L2Book
from mmd.market.features import FeatureEngine
from mmd.market.ring import RingBuffer
from mmd.model.instrument import Instrument

# bounded: how many recent trade ids are remembered to drop WS/REST duplicates
_TRADE_ID_MEMORY = 4096


class Resync(msgspec.Struct, frozen=True):
    """The shell must get a fresh snapshot of `symbol` (resubscribe or REST)."""

    symbol: str
    reason: str


class SymbolState:
    """One symbol's market state: instrument, book, continuity and fixed-size rings."""

    def __init__(
        self, instrument: Instrument, cfg: MarketConfig, features_cfg: FeaturesConfig | None = None
    ) -> None:
        self.instrument = instrument
        self.book = L2Book(cfg.book_levels)
        self.features = FeatureEngine(
            features_cfg or FeaturesConfig(), instrument.tick, instrument.lot
        )
        self.sync = BookSync()
        self.mids = RingBuffer(cfg.mid_capacity, {"ts_ns": np.int64, "mid_ticks": np.float64})
        self.trades = RingBuffer(
            cfg.trade_capacity,
            {"ts_ns": np.int64, "px_ticks": np.int64, "qty_lots": np.int64, "side": np.int64},
        )
        self.klines = RingBuffer(
            cfg.kline_capacity,
            {
                "start_ns": np.int64,
                "open": np.float64,
                "high": np.float64,
                "low": np.float64,
                "close": np.float64,
                "volume": np.float64,
            },
        )
        self._trade_ids: collections.deque[str] = collections.deque(maxlen=_TRADE_ID_MEMORY)
        self._trade_id_set: set[str] = set()
        # funding (perpetuals), from the tickers stream
        self.funding_rate: float | None = None
        self.next_funding_ns: int | None = None
        # (funding time, rate) settlements the ticker moved past before the trader saw them
        self.pending_funding: list[tuple[int, float]] = []
        self.mark_price: float | None = None
        # what the per-frame kernel (kernels.frame.advance_book_frame) works on: views of the
        # book's, the features' and the mids ring's own arrays, plus two small counters
        self.frame_book = (self.book.bid_px, self.book.bid_qty, self.book.ask_px, self.book.ask_qty)
        self.frame_features = self.features.kernel_state()
        self.frame_mids = (self.mids.column("ts_ns"), self.mids.column("mid_ticks"))
        self.frame_counts = np.zeros(2, np.int64)
        self.mids_total = np.zeros(1, np.int64)
        self.last_book_recv_ns = 0
        self.lag_s = 0.0
        self.stale = False
        self.book_updates = 0

    def seen_trade(self, trade_id: str) -> bool:
        """True when trade_id was already recorded (remembers the last few thousand ids)."""
        if trade_id in self._trade_id_set:
            return True
        if len(self._trade_ids) == self._trade_ids.maxlen:
            self._trade_id_set.discard(self._trade_ids[0])
        self._trade_ids.append(trade_id)
        self._trade_id_set.add(trade_id)
        return False

    @property
    def nbytes(self) -> int:
        """Bytes held by the book and the rings (fixed for the life of the process)."""
        return (
            self.book.nbytes
            + self.mids.nbytes
            + self.trades.nbytes
            + self.klines.nbytes
            + self.features.nbytes
        )


class HubStats:
    """Counters the metrics module exports (`mmd_feed_*`)."""

    def __init__(self) -> None:
        self.messages: collections.Counter[str] = collections.Counter()
        self.decode_errors = 0
        self.resyncs: collections.Counter[tuple[str, str]] = collections.Counter()
        self.rest_errors: collections.Counter[int] = collections.Counter()
        self.dropped_frames = 0
        self.control: collections.Counter[str] = collections.Counter()
        self.instrument_changes = 0
        # exceptions absorbed at the frame boundary, by stage (decode, hub, trader, record)
        self.frame_errors: collections.Counter[str] = collections.Counter()
        self.last_refusal = ""  # why the codec refused the latest refused frame (for logs)


class MarketHub:
    """Routes decoded frames to per-symbol state.

    Args:
        symbols: the symbols this daemon trades (frames for others are ignored).
        cfg: ring and book sizes.
        instruments: already known instruments; others are learned from instruments-info frames.
        features_cfg: feature windows (defaults when None).
    """

    def __init__(
        self,
        symbols: Iterable[str],
        cfg: MarketConfig,
        instruments: Iterable[Instrument] = (),
        features_cfg: FeaturesConfig | None = None,
    ) -> None:
        self.cfg = cfg
        self.features_cfg = features_cfg or FeaturesConfig()
        self.symbols = list(symbols)
        self.states: dict[str, SymbolState] = {}
        self.stats = HubStats()
        for inst in instruments:
            self.add_instrument(inst)

    def add_instrument(self, inst: Instrument) -> None:
        """Start tracking a symbol (idempotent: a known symbol keeps its state)."""
        if inst.symbol in self.symbols and inst.symbol not in self.states:
            self.states[inst.symbol] = SymbolState(inst, self.cfg, self.features_cfg)

    # -- frames ---------------------------------------------------------------------------

    def decode(self, raw: bytes | str) -> tuple[Message | None, list[Resync]]:
        """Decode one raw frame; a refused one, or a kind mmd does not use, is counted and
        gives None. A refused order book frame of a synced symbol also resyncs that symbol
        (skipping an update would leave its book wrong)."""
        try:
            msg = decode_frame(raw)
        except DecodeError as exc:
            self.stats.decode_errors += 1
            self.stats.last_refusal = str(exc)
            return None, self.resync_symbol(exc.book_symbol, "bad_frame")
        if msg is None:
            self.stats.messages["other"] += 1
        return msg, []

    def on_frame(self, raw: bytes | str, ts_recv_ns: int) -> list[Resync]:
        """Decode and apply one raw frame. Refused frames are counted and skipped."""
        msg, resyncs = self.decode(raw)
        return resyncs if msg is None else self.on_message(msg, ts_recv_ns)

    def resync_symbol(self, symbol: str | None, reason: str) -> list[Resync]:
        """Void a synced symbol's book (its frames could not be applied); [] when unknown or
        already waiting for a snapshot."""
        st = self.states.get(symbol) if symbol is not None else None
        if st is None or not st.sync.synced:
            return []
        return [self._resync(st, symbol, reason)]  # type: ignore[arg-type]

    def on_message(self, msg: Message, ts_recv_ns: int) -> list[Resync]:
        """Apply one decoded message; returns the resyncs the shell must start."""
        if isinstance(msg, BookMsg):
            self.stats.messages["orderbook_rest" if msg.from_rest else "orderbook"] += 1
            return self._on_book(msg, ts_recv_ns)
        if isinstance(msg, TradesMsg):
            self.stats.messages["trades_rest" if msg.from_rest else "trades"] += 1
            self._on_trades(msg)
        elif isinstance(msg, KlineMsg):
            self.stats.messages["kline_rest" if msg.from_rest else "kline"] += 1
            self._on_kline(msg)
        elif isinstance(msg, InstrumentsMsg):
            self.stats.messages["instruments"] += 1
            self._on_instruments(msg)
        elif isinstance(msg, TickerMsg):
            self.stats.messages["tickers"] += 1
            st = self.states.get(msg.symbol)
            if st is not None:  # deltas carry only what changed
                due, rate = st.next_funding_ns, st.funding_rate
                if (
                    msg.next_funding_ns is not None
                    and due is not None
                    and rate is not None
                    and msg.next_funding_ns > due
                    and len(st.pending_funding) < 8
                ):
                    # the settlement at `due` used the rate shown before it: keep it for the
                    # trader, which may not have seen a book or trade stamped after `due` yet
                    st.pending_funding.append((due, rate))
                if msg.funding_rate is not None:
                    st.funding_rate = msg.funding_rate
                if msg.next_funding_ns is not None:
                    st.next_funding_ns = msg.next_funding_ns
                if msg.mark_price is not None:
                    st.mark_price = msg.mark_price
        elif isinstance(msg, ControlMsg):
            self.stats.messages["control"] += 1
            self.stats.control[msg.ret_msg if msg.op == "ping" else msg.op] += 1
        elif isinstance(msg, RestError):
            self.stats.rest_errors[msg.ret_code] += 1
        return []

    def _on_instruments(self, msg: InstrumentsMsg) -> None:
        for info in msg.instruments:
            if info.symbol not in self.symbols:
                continue
            inst = Instrument(
                symbol=info.symbol,
                category=msg.category or "linear",
                tick_size=info.tick_size,
                lot_size=info.lot_size,
            )
            old = self.states.get(info.symbol)
            if old is None:
                self.add_instrument(inst)
            elif (old.instrument.tick, old.instrument.lot) != (inst.tick, inst.lot):
                # new steps change what every stored tick and lot means: start the symbol afresh
                self.states[info.symbol] = SymbolState(inst, self.cfg, self.features_cfg)
                self.stats.instrument_changes += 1

    def _on_book(self, msg: BookMsg, ts_recv_ns: int) -> list[Resync]:
        st = self.states.get(msg.symbol)
        if st is None:
            self.stats.dropped_frames += 1
            return []
        if msg.is_snapshot:
            if msg.u == 1 and st.sync.synced and not msg.from_rest:
                # u == 1: the venue's book service restarted; the snapshot rebuilds the book
                self.stats.resyncs[(msg.symbol, "restart")] += 1
            action = st.sync.on_snapshot(msg.u, msg.seq, from_rest=msg.from_rest)
        else:
            action = st.sync.on_delta(msg.u, msg.seq)
        if action == SyncAction.DROP:
            self.stats.dropped_frames += 1
            return []
        if action == SyncAction.RESYNC:
            return [self._resync(st, msg.symbol, "gap")]
        inst = st.instrument
        try:
            bpx, bqty = inst.levels_to_arrays(msg.bids)
            apx, aqty = inst.levels_to_arrays(msg.asks)
        except ValueError:
            # a corrupt update cannot be applied, and skipping it would leave the book wrong
            self.stats.decode_errors += 1
            return [self._resync(st, msg.symbol, "bad_frame")]
        return self._apply_book(
            st, msg, action == SyncAction.APPLY_SNAPSHOT, (bpx, bqty, apx, aqty), ts_recv_ns
        )

    def _apply_book(
        self,
        st: SymbolState,
        msg: BookMsg,
        is_snapshot: bool,
        levels: tuple[I64Array, I64Array, I64Array, I64Array],
        ts_recv_ns: int,
    ) -> list[Resync]:
        """A synced book frame's levels (ticks, lots) applied: one compiled call for the book,
        the crossed check, the features and the mids ring; a crossed book resyncs."""
        book = st.book
        counts, total = st.frame_counts, st.mids_total
        counts[0] = book.n_bids
        counts[1] = book.n_asks
        total[0] = st.mids.total
        ts = msg.ts_exch_ns
        code = advance_book_frame(
            st.frame_book, counts, st.frame_features, st.frame_mids, total, levels, is_snapshot, ts
        )
        if code == FRAME_BAD_LEVELS:
            book.clear()
            what = "snapshot" if is_snapshot else "delta"
            raise InvariantViolation(
                f"book {what} u={msg.u} rejected by kernel: negative size or mismatched lengths"
            )
        book.n_bids = int(counts[0])
        book.n_asks = int(counts[1])
        book.u = msg.u
        book.seq = msg.seq
        book.ts_exch_ns = ts
        st.book_updates += 1
        st.last_book_recv_ns = ts_recv_ns
        st.stale = False
        st.lag_s = (ts_recv_ns - ts) / 1e9
        if code == FRAME_CROSSED:
            return [self._resync(st, msg.symbol, "crossed")]
        if code == FRAME_BAD_FEATURES:
            raise InvariantViolation(
                f"book features rejected by kernel: n_bids={book.n_bids} n_asks={book.n_asks}"
            )
        if total[0] != st.mids.total:  # a two-sided book: its mid went into the ring
            st.mids.count_written(1)
        return []

    def _on_trades(self, msg: TradesMsg) -> None:
        st = self.states.get(msg.symbol)
        if st is None:
            self.stats.dropped_frames += 1
            return
        inst = st.instrument
        for t in msg.trades:
            if st.seen_trade(t.trade_id):
                continue
            try:
                px, qty = inst.price_ticks(t.price), inst.size_lots(t.size)
            except ValueError:
                # off-tick, not whole lots, or beyond MAX_SCALED: refused, never rounded
                self.stats.decode_errors += 1
                continue
            if px <= 0 or qty <= 0:
                self.stats.decode_errors += 1
                continue
            st.trades.append(ts_ns=t.ts_exch_ns, px_ticks=px, qty_lots=qty, side=t.side)
            st.features.on_trade(t.ts_exch_ns, px, qty, t.side)

    def _on_kline(self, msg: KlineMsg) -> None:
        st = self.states.get(msg.symbol)
        if st is None:
            self.stats.dropped_frames += 1
            return
        ring = st.klines
        for k in msg.klines:
            # the codec checked every field (plain decimals, ordered prices, time range)
            row = {
                "start_ns": k.start_ns,
                "open": float(k.open),
                "high": float(k.high),
                "low": float(k.low),
                "close": float(k.close),
                "volume": float(k.volume),
            }
            st.features.on_kline(
                k.start_ns,
                row["open"],
                row["high"],
                row["low"],
                row["close"],
                row["volume"],
                k.confirm,
            )
            if len(ring) and ring.latest("start_ns") == k.start_ns:
                ring.replace_last(**row)  # the same candle again: upsert by start
            elif not len(ring) or ring.latest("start_ns") < k.start_ns:
                ring.append(**row)

    def _resync(self, st: SymbolState, symbol: str, reason: str) -> Resync:
        st.sync.mark_unsynced(reason)
        if st.book.ts_exch_ns > 0:
            st.features.on_book_gap(st.book.ts_exch_ns)  # book features restart after a gap
        self.stats.resyncs[(symbol, reason)] += 1
        return Resync(symbol, reason)

    # -- shell-driven state changes ---------------------------------------------------------

    def mark_unsynced(self, symbols: Iterable[str], reason: str) -> None:
        """The connection carrying these symbols dropped: their books wait for a snapshot."""
        for s in symbols:
            st = self.states.get(s)
            if st is not None and st.sync.synced:
                st.sync.mark_unsynced(reason)
                self.stats.resyncs[(s, reason)] += 1

    def check_stale(self, now_ns: int, stale_after_s: float) -> list[str]:
        """Flag symbols whose book had no update for stale_after_s; returns newly stale ones."""
        newly = []
        limit = int(stale_after_s * 1e9)
        for sym, st in self.states.items():
            if st.sync.synced and not st.stale and now_ns - st.last_book_recv_ns > limit:
                st.stale = True
                newly.append(sym)
        return newly

    def readiness(self) -> dict[str, str]:
        """Why each not-ready symbol is not ready (empty dict = all ready)."""
        out = {}
        for sym in self.symbols:
            st = self.states.get(sym)
            if st is None:
                out[sym] = "no_instrument"
            elif not st.sync.synced:
                out[sym] = f"unsynced:{st.sync.unsynced_reason}"
            elif st.stale:
                out[sym] = "stale"
        return out

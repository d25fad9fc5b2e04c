"""EventBuilder (core): decoded frames of recordings, in the replay's merged order -> EventArrays.

Decodes through the project's own codec (`bybit_codec.decode_frame`) and instrument conversions
(`Instrument.levels_to_arrays`, `px_to_ticks`, `qty_to_lots`), so a frame the live pipeline
refuses is refused here too (what is left out: `mmd.feeds.convert.events`). No I/O.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

import numpy as np

from mmd.feeds.bybit_codec import (
    BookMsg,
    DecodeError,
    InstrumentsMsg,
    KlineMsg,
    TickerMsg,
    TradesMsg,
    decode_frame,
)
from mmd.feeds.convert.events import I64, EventArrays
from mmd.model import codes
from mmd.model.instrument import Instrument

# the hub's memory of recent trade ids (mmd.market.hub._TRADE_ID_MEMORY)
TRADE_ID_MEMORY = 4096


class _Columns:
    """Rows as Python tuples, appended positionally (cheap), turned into columns at the end."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = {n: j for j, n in enumerate(names)}
        self.rows: list[tuple[Any, ...]] = []

    def add(self, *values: Any) -> int:
        self.rows.append(values)
        return len(self.rows) - 1

    def column(self, name: str, dtype: Any) -> Any:
        j = self.names[name]
        return np.fromiter((r[j] for r in self.rows), dtype, count=len(self.rows))

    def values(self, name: str) -> list[Any]:
        j = self.names[name]
        return [r[j] for r in self.rows]


class EventBuilder:
    """Accumulates decoded frames of recordings, one symbol per recording, in merged order.

    Args:
        symbols: (category, symbol) per symbol id.
    """

    def __init__(self, symbols: list[tuple[str, str]]) -> None:
        self.symbols = symbols
        self._inst: list[Instrument | None] = [None] * len(symbols)
        self._trade_ids: list[collections.deque[str]] = [
            collections.deque(maxlen=TRADE_ID_MEMORY) for _ in symbols
        ]
        self._trade_id_sets: list[set[str]] = [set() for _ in symbols]
        self._ev = _Columns(("kind", "sym", "idx", "frame", "recv", "exch"))
        self._book = _Columns(("sym", "flags", "u", "seq", "exch", "recv", "n_bid", "n_ask"))
        self._level_px: list[I64] = []
        self._level_qty: list[I64] = []
        self._trade = _Columns(("sym", "exch", "recv", "px", "qty", "side"))
        self._kline = _Columns(
            ("sym", "recv", "start", "confirm", "open", "high", "low", "close", "volume")
        )
        self._ticker = _Columns(("sym", "recv", "next", "rate", "mark"))
        self._inst_rows = _Columns(("sym", "recv", "flags", "tick", "lot", "tick_size", "lot_size"))
        self.frames = 0
        self.decode_errors = 0
        self.skipped = 0  # well-formed frames left out (other symbol, no instrument yet, ...)
        self.refused = 0  # trades/klines the instrument or float parsing refused

    def add_frame(self, sym: int, ts_recv_ns: int, raw: bytes) -> None:
        """Decode one recording line of symbol id `sym` and append what it holds."""
        frame = self.frames
        self.frames += 1
        try:
            msg = decode_frame(raw)
        except DecodeError:
            self.decode_errors += 1
            return
        symbol = self.symbols[sym][1]
        if isinstance(msg, InstrumentsMsg):
            self._on_instruments(sym, symbol, msg, ts_recv_ns, frame)
            return
        inst = self._inst[sym]
        if (
            msg is None
            or inst is None
            or not isinstance(msg, BookMsg | TradesMsg | KlineMsg | TickerMsg)
            or msg.symbol != symbol
        ):
            self.skipped += 1  # acks, REST errors, other symbols, before the instrument
            return
        if isinstance(msg, BookMsg):
            self._on_book(sym, inst, msg, ts_recv_ns, frame)
        elif isinstance(msg, TradesMsg):
            self._on_trades(sym, inst, msg, ts_recv_ns, frame)
        elif isinstance(msg, KlineMsg):
            self._on_klines(sym, msg, ts_recv_ns, frame)
        else:
            idx = self._ticker.add(
                sym,
                ts_recv_ns,
                -1 if msg.next_funding_ns is None else msg.next_funding_ns,
                np.nan if msg.funding_rate is None else msg.funding_rate,
                np.nan if msg.mark_price is None else msg.mark_price,
            )
            self._event(codes.EV_TICKER, sym, idx, frame, ts_recv_ns, -1)

    def _event(self, kind: int, sym: int, idx: int, frame: int, recv: int, exch: int) -> None:
        self._ev.add(kind, sym, idx, frame, recv, exch)

    def _on_instruments(
        self, sym: int, symbol: str, msg: InstrumentsMsg, recv: int, frame: int
    ) -> None:
        for info in msg.instruments:
            if info.symbol != symbol:
                continue
            inst = Instrument(
                symbol=info.symbol,
                category=msg.category or "linear",
                tick_size=info.tick_size,
                lot_size=info.lot_size,
            )
            old = self._inst[sym]
            if old is None:
                flags = codes.INST_NEW
            elif (old.tick, old.lot) != (inst.tick, inst.lot):
                flags = codes.INST_CHANGED  # the hub starts the symbol afresh
                self._trade_ids[sym].clear()
                self._trade_id_sets[sym].clear()
            else:
                continue  # same steps: the hub keeps its state and its instrument
            self._inst[sym] = inst
            idx = self._inst_rows.add(
                sym, recv, flags, inst.tick, inst.lot, inst.tick_size, inst.lot_size
            )
            self._event(codes.EV_INSTRUMENT, sym, idx, frame, recv, -1)

    def _on_book(self, sym: int, inst: Instrument, msg: BookMsg, recv: int, frame: int) -> None:
        flags = (codes.BOOK_SNAPSHOT if msg.is_snapshot else 0) | (
            codes.BOOK_REST if msg.from_rest else 0
        )
        try:
            bpx, bqty = inst.levels_to_arrays(msg.bids)
            apx, aqty = inst.levels_to_arrays(msg.asks)
        except ValueError:
            flags |= codes.BOOK_BAD
            bpx = bqty = apx = aqty = np.empty(0, np.int64)
        self._level_px += (bpx, apx)
        self._level_qty += (bqty, aqty)
        idx = self._book.add(sym, flags, msg.u, msg.seq, msg.ts_exch_ns, recv, len(bpx), len(apx))
        self._event(codes.EV_BOOK, sym, idx, frame, recv, msg.ts_exch_ns)

    def _seen_trade(self, sym: int, trade_id: str) -> bool:
        # the hub's SymbolState.seen_trade: a bounded memory of recent ids
        ids, id_set = self._trade_ids[sym], self._trade_id_sets[sym]
        if trade_id in id_set:
            return True
        if len(ids) == ids.maxlen:
            id_set.discard(ids[0])
        ids.append(trade_id)
        id_set.add(trade_id)
        return False

    def _on_trades(self, sym: int, inst: Instrument, msg: TradesMsg, recv: int, frame: int) -> None:
        for t in msg.trades:
            if self._seen_trade(sym, t.trade_id):
                continue
            try:
                px, qty = inst.px_to_ticks(t.price), inst.qty_to_lots(t.size)
            except (ValueError, OverflowError):
                self.refused += 1
                continue
            if px <= 0 or qty <= 0:
                self.refused += 1
                continue
            idx = self._trade.add(sym, t.ts_exch_ns, recv, px, qty, t.side)
            self._event(codes.EV_TRADE, sym, idx, frame, recv, t.ts_exch_ns)

    def _on_klines(self, sym: int, msg: KlineMsg, recv: int, frame: int) -> None:
        for k in msg.klines:
            try:
                row = (float(k.open), float(k.high), float(k.low), float(k.close), float(k.volume))
            except ValueError:
                self.refused += 1
                continue
            idx = self._kline.add(sym, recv, k.start_ns, int(k.confirm), *row)
            self._event(codes.EV_KLINE, sym, idx, frame, recv, -1)

    def finish(self) -> EventArrays:
        """The arrays of everything added so far (in memory)."""
        i64 = np.int64

        def col(c: _Columns, name: str, dtype: Any = i64) -> Any:
            return c.column(name, dtype)

        b = self._book
        n_bid, n_ask = col(b, "n_bid"), col(b, "n_ask")
        n_rows = n_bid + n_ask
        book_end = np.cumsum(n_rows, dtype=i64)
        book_row = book_end - n_rows
        n_frames = len(n_rows)
        level_frame = np.repeat(np.arange(n_frames, dtype=i64), n_rows)
        level_px = np.concatenate(self._level_px) if self._level_px else np.empty(0, i64)
        level_qty = np.concatenate(self._level_qty) if self._level_qty else np.empty(0, i64)
        book_flags = col(b, "flags")
        side = np.full(len(level_px), codes.SELL, i64)
        pos_in_frame = np.arange(len(level_px), dtype=i64) - np.repeat(book_row, n_rows)
        side[pos_in_frame < np.repeat(n_bid, n_rows)] = codes.BUY
        level_flags = np.repeat(book_flags & (codes.BOOK_SNAPSHOT | codes.BOOK_REST), n_rows)
        has = n_rows > 0
        level_flags[book_row[has]] |= codes.BOOK_FRAME_START
        level_flags[book_end[has] - 1] |= codes.BOOK_FRAME_END
        ins = self._inst_rows
        return EventArrays(
            ev_kind=col(self._ev, "kind"),
            ev_sym=col(self._ev, "sym"),
            ev_idx=col(self._ev, "idx"),
            ev_frame=col(self._ev, "frame"),
            ev_ts_recv_ns=col(self._ev, "recv"),
            ev_ts_exch_ns=col(self._ev, "exch"),
            book_sym=col(b, "sym"),
            book_flags=book_flags,
            book_u=col(b, "u"),
            book_seq=col(b, "seq"),
            book_ts_exch_ns=col(b, "exch"),
            book_ts_recv_ns=col(b, "recv"),
            book_row=book_row,
            book_ask_row=book_row + n_bid,
            book_end=book_end,
            level_frame=level_frame,
            level_sym=np.repeat(col(b, "sym"), n_rows),
            level_side=side,
            level_px_ticks=level_px.astype(i64),
            level_qty_lots=level_qty.astype(i64),
            level_flags=level_flags,
            level_u=np.repeat(col(b, "u"), n_rows),
            level_seq=np.repeat(col(b, "seq"), n_rows),
            level_ts_exch_ns=np.repeat(col(b, "exch"), n_rows),
            level_ts_recv_ns=np.repeat(col(b, "recv"), n_rows),
            trade_sym=col(self._trade, "sym"),
            trade_ts_exch_ns=col(self._trade, "exch"),
            trade_ts_recv_ns=col(self._trade, "recv"),
            trade_px_ticks=col(self._trade, "px"),
            trade_qty_lots=col(self._trade, "qty"),
            trade_side=col(self._trade, "side"),
            kline_sym=col(self._kline, "sym"),
            kline_ts_recv_ns=col(self._kline, "recv"),
            kline_start_ns=col(self._kline, "start"),
            kline_confirm=col(self._kline, "confirm"),
            kline_open=col(self._kline, "open", np.float64),
            kline_high=col(self._kline, "high", np.float64),
            kline_low=col(self._kline, "low", np.float64),
            kline_close=col(self._kline, "close", np.float64),
            kline_volume=col(self._kline, "volume", np.float64),
            ticker_sym=col(self._ticker, "sym"),
            ticker_ts_recv_ns=col(self._ticker, "recv"),
            ticker_next_funding_ns=col(self._ticker, "next"),
            ticker_funding_rate=col(self._ticker, "rate", np.float64),
            ticker_mark_price=col(self._ticker, "mark", np.float64),
            inst_sym=col(ins, "sym"),
            inst_ts_recv_ns=col(ins, "recv"),
            inst_flags=col(ins, "flags"),
            inst_tick=col(ins, "tick", np.float64),
            inst_lot=col(ins, "lot", np.float64),
            symbols=list(self.symbols),
            inst_tick_size=ins.values("tick_size"),
            inst_lot_size=ins.values("lot_size"),
            meta={
                "frames": self.frames,
                "decode_errors": self.decode_errors,
                "skipped": self.skipped,
                "refused": self.refused,
            },
        )

"""The event cache's arrays: recordings decoded once into columnar int64/float64 arrays.

`EventArrays` is the layout and its contract; `event_builder` fills it from frames, `event_cache`
reads recordings and keeps the arrays on disk. No decoding, no I/O here.

What is applied at conversion, and what the consumer must do (as `MarketHub` does):

- applied at conversion (event_builder): frames that do not decode, frames of another symbol
  than their recording's, and frames before the symbol's first instruments-info line are left
  out; trades are
  de-duplicated by trade id (the hub's bounded memory, forgotten when the instrument changes)
  and a trade whose price or size the instrument refuses is left out; a kline whose numbers do
  not parse is left out;
- left to the consumer (stateful, so a loop reproduces it exactly): book sync. Every decoded
  book frame of a known symbol is kept with its flags (BOOK_SNAPSHOT, BOOK_REST, BOOK_BAD),
  `u` and `seq`; the consumer runs the update-id machine and applies the frame as one batch per
  side (`mmd.kernels.book_sync.apply_book_frame`: drop / resync on a gap / resync on a bad or
  crossed frame), and starts the symbol afresh at an instrument row flagged INST_NEW or
  INST_CHANGED. `tests/book_oracle.py` replay_book_tops is the reference loop.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mmd.model.instrument import Instrument

# bump when the arrays' layout or meaning changes: older cache entries are then ignored
FORMAT_VERSION = 1

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclasses.dataclass
class EventArrays:
    """Decoded recordings as columns, plus one merged, time-ordered event stream.

    The stream is in exactly the order `mmd.feeds.replay.merged_frames` gives the frames
    (files merged by receive stamp, stable per file), one row per book frame, per trade, per
    kline, per ticker and per instrument change; `ev_idx` points into that kind's arrays.
    Prices are int64 ticks and sizes int64 lots of the symbol's instrument at that time; times
    are int64 ns (`*_ts_exch_ns` venue stamp, `*_ts_recv_ns` our receive stamp, -1 when the
    venue gives none). A symbol id (`*_sym`) indexes `symbols`, one per (category, symbol).

    Book levels: one row per level change, a frame's bids then its asks; `level_flags` carries
    the frame's BOOK_SNAPSHOT/BOOK_REST bits and BOOK_FRAME_START/BOOK_FRAME_END on its first and
    last row. `book_*` is one row per book frame: `book_row` (its first level row),
    `book_ask_row` (its first ask row), `book_end` (one past its last row).
    """

    ev_kind: I64
    ev_sym: I64
    ev_idx: I64
    ev_frame: I64  # ordinal of the recording line in the merged order (0-based)
    ev_ts_recv_ns: I64
    ev_ts_exch_ns: I64
    book_sym: I64
    book_flags: I64
    book_u: I64
    book_seq: I64
    book_ts_exch_ns: I64
    book_ts_recv_ns: I64
    book_row: I64
    book_ask_row: I64
    book_end: I64
    level_frame: I64
    level_sym: I64
    level_side: I64  # codes.BUY (bid) or codes.SELL (ask)
    level_px_ticks: I64
    level_qty_lots: I64  # absolute size; 0 deletes the level
    level_flags: I64
    level_u: I64
    level_seq: I64
    level_ts_exch_ns: I64
    level_ts_recv_ns: I64
    trade_sym: I64
    trade_ts_exch_ns: I64
    trade_ts_recv_ns: I64
    trade_px_ticks: I64
    trade_qty_lots: I64
    trade_side: I64  # codes.BUY when the taker bought
    kline_sym: I64
    kline_ts_recv_ns: I64
    kline_start_ns: I64
    kline_confirm: I64
    kline_open: F64
    kline_high: F64
    kline_low: F64
    kline_close: F64
    kline_volume: F64
    ticker_sym: I64
    ticker_ts_recv_ns: I64
    ticker_next_funding_ns: I64  # -1 when the frame leaves it out
    ticker_funding_rate: F64  # NaN when the frame leaves it out
    ticker_mark_price: F64  # NaN when the frame leaves it out
    inst_sym: I64
    inst_ts_recv_ns: I64
    inst_flags: I64  # INST_NEW or INST_CHANGED
    inst_tick: F64
    inst_lot: F64
    symbols: list[tuple[str, str]]  # (category, symbol) per symbol id
    inst_tick_size: list[str]  # venue strings per instrument row
    inst_lot_size: list[str]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    cache_hit: bool = False  # loaded from the cache without decoding
    path: Path | None = None  # the directory the arrays are mapped from

    def instrument(self, row: int) -> Instrument:
        """The Instrument of one instrument row."""
        category, symbol = self.symbols[int(self.inst_sym[row])]
        return Instrument(
            symbol=symbol,
            category=category,
            tick_size=self.inst_tick_size[row],
            lot_size=self.inst_lot_size[row],
        )

    def stream_table(self) -> I64:
        """int64[n_events, 3] (ev_kind, ev_sym, ev_idx): the stream for a jitted loop."""
        return np.ascontiguousarray(np.stack([self.ev_kind, self.ev_sym, self.ev_idx], axis=1))

    def book_table(self) -> I64:
        """int64[n_frames, 6] (flags, u, seq, row, ask_row, end) per book frame."""
        cols = [
            self.book_flags,
            self.book_u,
            self.book_seq,
            self.book_row,
            self.book_ask_row,
            self.book_end,
        ]
        return np.ascontiguousarray(np.stack(cols, axis=1)).reshape(-1, 6)

    @property
    def rows(self) -> int:
        """Level rows plus trades plus klines plus tickers (what decoding produced)."""
        return int(
            len(self.level_px_ticks)
            + len(self.trade_px_ticks)
            + len(self.kline_start_ns)
            + len(self.ticker_sym)
        )


# the array columns, in declaration order (annotations are strings under __future__ annotations)
ARRAY_FIELDS = tuple(f.name for f in dataclasses.fields(EventArrays) if f.type in ("I64", "F64"))

"""The event cache: recordings decoded once into columnar int64/float64 arrays, memory-mapped after.

Core: `EventBuilder` turns (recording, ts_recv_ns, frame) triples, in the replay's merged order,
into `EventArrays` through the project's own codec (`bybit_codec.decode_frame`) and instrument
conversions (`Instrument.levels_to_arrays`, `px_to_ticks`, `qty_to_lots`), so a frame the live
pipeline refuses is refused here too. Shell (the `*_events` functions at the bottom): hashing,
reading recordings, and the cache directory of `.npy` files. No trading logic.

What is applied at conversion, and what the consumer must do (as `MarketHub` does):

- applied here: frames that do not decode, frames of another symbol than their recording's,
  and frames before the symbol's first instruments-info line are left out; trades are
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

import collections
import dataclasses
import hashlib
import heapq
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mmd.feeds.bybit_codec import (
    BookMsg,
    DecodeError,
    InstrumentsMsg,
    KlineMsg,
    TickerMsg,
    TradesMsg,
    decode_frame,
)
from mmd.feeds.recording import file_sha256
from mmd.model import codes
from mmd.model.instrument import Instrument

# bump when the arrays' layout or meaning changes: older cache entries are then ignored
FORMAT_VERSION = 1
# the hub's memory of recent trade ids (mmd.market.hub._TRADE_ID_MEMORY)
TRADE_ID_MEMORY = 4096
CACHE_ENV = "MMD_EVENT_CACHE"

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


# ---------------------------------------------------------------------------------------------
# shell: recordings in, cache directory out
# ---------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """`$MMD_EVENT_CACHE`, else `$XDG_CACHE_HOME/mmd/events`, else `~/.cache/mmd/events`."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "mmd" / "events"


def file_digests(files: list[Path]) -> list[str]:
    """The hex sha256 of each file (read in full)."""
    return [file_sha256(f) for f in files]


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def recording_digests(files: list[Path], cache_dir: Path) -> list[str]:
    """The files' sha256 digests, remembered in `<cache_dir>/digests.json` by device, inode,
    size and mtime, so a warm start does not read the recordings again."""
    memo_path = cache_dir / "digests.json"
    try:
        memo: dict[str, list[str]] = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    out, changed = [], False
    for f in files:
        key, name = _stat_key(f), str(f.resolve())
        known = memo.get(name)
        if known is not None and known[0] == key:
            out.append(known[1])
            continue
        digest = file_sha256(f)
        memo[name] = [key, digest]
        out.append(digest)
        changed = True
    if changed:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_name(f"digests.json.partial-{os.getpid()}")
        tmp.write_text(json.dumps(memo), encoding="utf-8")
        os.replace(tmp, memo_path)  # concurrent writers: the last one wins, nothing breaks
    return out


def codec_fingerprint() -> str:
    """What decides the arrays besides the recordings: the sources of the codec, the instrument
    conversions and this module (so a stricter codec invalidates older cache entries)."""
    from mmd import __version__
    from mmd.feeds import bybit_codec
    from mmd.model import instrument

    h = hashlib.sha256(f"{FORMAT_VERSION}|{__version__}|".encode())
    h.update(str(getattr(bybit_codec, "CODEC_VERSION", "")).encode())
    for mod_file in (bybit_codec.__file__, instrument.__file__, codes.__file__, __file__):
        h.update(Path(str(mod_file)).read_bytes())
    return h.hexdigest()


def cache_key(digests: list[str]) -> str:
    """The cache entry name of recordings with these sha256 digests, in this order."""
    body = json.dumps(
        {"format": FORMAT_VERSION, "codec": codec_fingerprint(), "recordings": digests}
    )
    return hashlib.sha256(body.encode()).hexdigest()[:40]


def _recording_symbols(files: list[Path]) -> tuple[list[tuple[str, str]], list[int]]:
    from mmd.feeds.recording import recording_meta

    symbols: list[tuple[str, str]] = []
    file_sym = []
    for f in files:
        meta = recording_meta(f)
        if meta is None:
            raise ValueError(
                f"{f}: not a recording (its first line is not the "
                "instruments-info answer of one symbol)"
            )
        key = (meta.category, meta.symbol)
        if key not in symbols:
            symbols.append(key)
        file_sym.append(symbols.index(key))
    return symbols, file_sym


def _tagged(path: Path, sym: int) -> Iterator[tuple[int, bytes, int]]:
    from mmd.feeds.recording import read_recording

    for ts, raw in read_recording(path):
        yield ts, raw, sym


def decode_events(files: list[Path]) -> EventArrays:
    """Decode recordings into EventArrays (in memory), frames in `merged_frames(files)` order.

    Raises:
        ValueError: a file that is not a recording.
    """
    symbols, file_sym = _recording_symbols(files)
    builder = EventBuilder(symbols)
    t0 = time.perf_counter()
    # heapq.merge with the same key and file order as replay.merged_frames: the same order
    for ts, raw, sym in heapq.merge(
        *(_tagged(f, s) for f, s in zip(files, file_sym, strict=True)), key=lambda x: x[0]
    ):
        builder.add_frame(sym, ts, raw)
    ev = builder.finish()
    ev.meta["decode_s"] = time.perf_counter() - t0
    return ev


def save_events(
    ev: EventArrays, out: Path, meta: dict[str, Any] | None = None, *, replace: bool = True
) -> Path:
    """Write ev as a directory of uncompressed `.npy` files plus `meta.json`, atomically.

    Args:
        ev: the arrays.
        out: the directory to write.
        meta: more fields for meta.json.
        replace: replace an existing `out`; when False an existing one (another process
            finished first) is kept and this copy dropped.

    Raises:
        ValueError: out exists and is not an event cache directory (it is left alone).
    """
    out = Path(out)
    if out.exists() and not (out / "meta.json").is_file():
        # never delete what is not an event cache (a typo'd --out must not cost a directory)
        raise ValueError(f"{out} exists and is not an event cache directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name in ARRAY_FIELDS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(ev, name)))
        doc = {
            **ev.meta,
            **(meta or {}),
            "format": FORMAT_VERSION,
            "symbols": [list(s) for s in ev.symbols],
            "inst_tick_size": ev.inst_tick_size,
            "inst_lot_size": ev.inst_lot_size,
        }
        (tmp / "meta.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
        if out.exists():
            if not replace:
                return out
            shutil.rmtree(out)
        try:
            os.replace(tmp, out)
        except OSError:
            if replace or not out.is_dir():
                raise  # not a concurrent writer that got there first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def open_events(path: Path) -> EventArrays:
    """Memory-map a directory written by save_events.

    The arrays are mapped copy-on-write (`mmap_mode="c"`): pages are shared with the page
    cache (and other processes) until written, a write never reaches the file, and numba sees
    the same writable `array(int64, 1d, C)` type as for in-memory arrays, so a kernel compiles
    once for both (read-only maps would be a second type).

    Raises:
        ValueError: not an event cache directory, or one of another format version.
    """
    path = Path(path)
    try:
        doc = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not an event cache ({exc})") from None
    if doc.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: event cache format {doc.get('format')}, expected {FORMAT_VERSION}"
        )
    arrays = {name: np.load(path / f"{name}.npy", mmap_mode="c") for name in ARRAY_FIELDS}
    return EventArrays(
        **arrays,
        symbols=[(c, s) for c, s in doc["symbols"]],
        inst_tick_size=list(doc["inst_tick_size"]),
        inst_lot_size=list(doc["inst_lot_size"]),
        meta=doc,
        path=path,
    )


def load_events(
    paths: list[str] | list[Path], cache_dir: str | Path | None = None, *, refresh: bool = False
) -> EventArrays:
    """The recordings' EventArrays, decoded once and memory-mapped from the cache after that.

    The cache entry is `<cache_dir>/<key>/`, key = sha256 of the format version, the codec
    fingerprint (codec_fingerprint) and the recordings' sha256 digests in the given order (the
    order decides ties in the merge). A changed recording has another digest, so another entry;
    digests are remembered by file identity, size and mtime (recording_digests). Processes
    that build the same entry at once each decode; the first one written is kept.

    Args:
        paths: recordings (files or directories), in the order the replay would merge them.
        cache_dir: the cache directory (default: default_cache_dir()).
        refresh: decode again even when the entry exists.

    Returns:
        Memory-mapped EventArrays; `cache_hit` tells whether decoding was skipped.

    Raises:
        ValueError: no recordings, a missing file, or a file that is not a recording.
    """
    from mmd.feeds.recording import expand_paths

    files = expand_paths(list(paths))
    if not files:
        raise ValueError("no recordings in " + ", ".join(map(str, paths)))
    for f in files:
        if not f.is_file():
            raise ValueError(f"{f}: no such file")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digests = file_digests(files) if refresh else recording_digests(files, root)
    entry = root / cache_key(digests)
    if not refresh and (entry / "meta.json").is_file():
        try:
            ev = open_events(entry)
        except ValueError:
            pass  # a broken entry is rebuilt below
        else:
            ev.cache_hit = True
            return ev
    ev = decode_events(files)
    recs = [{"path": str(f), "sha256": d} for f, d in zip(files, digests, strict=True)]
    save_events(ev, entry, {"recordings": recs, "codec": codec_fingerprint()}, replace=refresh)
    return open_events(entry)


def convert_events(paths: list[str] | list[Path], out: str | Path) -> EventArrays:
    """`mmd convert events REC... --out DIR`: decode recordings into an event cache directory.

    Returns:
        The written arrays, memory-mapped from `out`.
    """
    from mmd.feeds.recording import expand_paths

    files = expand_paths(list(paths))
    if not files:
        raise ValueError("no recordings given")
    for f in files:
        if not f.is_file():
            raise ValueError(f"{f}: no such file")
    ev = decode_events(files)
    recs = [{"path": str(f), "sha256": file_sha256(f)} for f in files]
    save_events(ev, Path(out), {"recordings": recs, "codec": codec_fingerprint()})
    return open_events(Path(out))

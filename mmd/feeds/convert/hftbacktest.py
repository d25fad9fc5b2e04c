"""Our recording(s) of one symbol -> hftbacktest's event array (.npz, its `event_dtype` rows).

Decodes with the project's codec and keeps the book in `BookSide` (float units); the only I/O is
reading the recordings and writing the .npz.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from mmd.feeds.bybit_codec import BookMsg, DecodeError, TradesMsg, decode_frame
from mmd.feeds.convert.book import BookSide
from mmd.feeds.recording import read_recording
from mmd.model import codes

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
    bids: BookSide[float],
    asks: BookSide[float],
    out: HbtEvents,
) -> None:
    exch = msg.ts_exch_ns
    if msg.is_snapshot:
        new_bids = [(float(p), float(q)) for p, q, *_ in msg.bids]
        new_asks = [(float(p), float(q)) for p, q, *_ in msg.asks]
        # hftbacktest's snapshot convention: a DEPTH_CLEAR row per side whose px is how far
        # from the best the clear reaches, then the levels as DEPTH_SNAPSHOT rows. A Bybit
        # snapshot replaces the whole side, so the clear reaches the farthest level known.
        bid_far = [p for p, _ in new_bids]
        ask_far = [p for p, _ in new_asks]
        for far, book in ((bid_far, bids), (ask_far, asks)):
            known = book.farthest()
            if known is not None:
                far.append(known)
        if bid_far:
            out.add(HBT_DEPTH_CLEAR | HBT_BUY, exch, recv_ns, min(bid_far), 0.0)
        if ask_far:
            out.add(HBT_DEPTH_CLEAR | HBT_SELL, exch, recv_ns, max(ask_far), 0.0)
        for side_flag, pairs, book in ((HBT_BUY, new_bids, bids), (HBT_SELL, new_asks, asks)):
            kept = [(p, q) for p, q in pairs if q > 0]
            book.reset(kept)
            for p, q in kept:
                out.add(HBT_DEPTH_SNAPSHOT | side_flag, exch, recv_ns, p, q)
        return
    for side_flag, levels, book in ((HBT_BUY, msg.bids, bids), (HBT_SELL, msg.asks, asks)):
        for lvl in levels:
            p, q = float(lvl[0]), float(lvl[1])
            book.set(p, q if q > 0 else 0.0)
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
    bids = BookSide[float](is_bid=True)
    asks = BookSide[float](is_bid=False)
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

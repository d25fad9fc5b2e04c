"""The event cache rebuilds the live pipeline's market state on every shared recording.

For each recording (one symbol each, as `mmd backtest` groups them), the book is rebuilt from
the cached arrays by the compiled reference loop (`replay_book_tops`) and compared with a
MarketHub fed the same frames in the replay's order: top 20 levels and sync state after every
frame, and the hub's trade ring against the cached trades.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmd.config import MarketConfig
from mmd.feeds.convert.event_cache import load_events
from mmd.feeds.convert.events import EventArrays
from mmd.feeds.recording import recording_meta
from mmd.feeds.replay import merged_frames
from mmd.kernels.book_sync import SYNC_LAST_SEQ, SYNC_LAST_U, SYNC_WIDTH
from mmd.market.hub import MarketHub
from mmd.model import codes
from tests.book_oracle import replay_book_tops

N_TOP = 20


def _tops(ev: EventArrays, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    n_sym, n_fr = len(ev.symbols), len(ev.book_sym)
    books_px = np.zeros((n_sym, 2, capacity), np.int64)
    books_qty = np.zeros((n_sym, 2, capacity), np.int64)
    states = np.zeros((n_sym, SYNC_WIDTH), np.int64)
    states[:, SYNC_LAST_U] = states[:, SYNC_LAST_SEQ] = -1
    top = np.zeros((n_fr, 4, N_TOP), np.int64)
    state = np.zeros((n_fr, 4), np.int64)
    walked = replay_book_tops(
        books_px,
        books_qty,
        states,
        ev.stream_table(),
        ev.book_table(),
        np.ascontiguousarray(ev.level_px_ticks),
        np.ascontiguousarray(ev.level_qty_lots),
        np.ascontiguousarray(ev.inst_flags),
        top,
        state,
    )
    assert walked == n_fr
    return top, state


def _check_recording(files: list[Path], cache: Path) -> dict[str, int]:
    meta = recording_meta(files[0])
    assert meta is not None
    ev = load_events(files, cache)
    assert ev.symbols == [(meta.category, meta.symbol)]
    cfg = MarketConfig()
    top, state = _tops(ev, cfg.book_levels)
    book_at = {
        int(f): int(i)
        for f, k, i in zip(ev.ev_frame, ev.ev_kind, ev.ev_idx, strict=True)
        if k == codes.EV_BOOK
    }
    hub = MarketHub([meta.symbol], cfg)
    cur = -1
    compared = applied = 0
    for i, (ts, raw) in enumerate(merged_frames(files)):
        hub.on_frame(raw, ts)
        cur = book_at.get(i, cur)
        st = hub.states.get(meta.symbol)
        if st is None:
            assert cur == -1
            continue
        bpx, bqty, apx, aqty = st.book.top(N_TOP)
        if cur == -1:  # no book frame of ours yet: the hub's book is empty too
            assert len(bpx) == len(apx) == 0 and not st.sync.synced, i
            continue
        nb, na = min(N_TOP, int(state[cur, 2])), min(N_TOP, int(state[cur, 3]))
        assert (len(bpx), len(apx)) == (nb, na), i
        assert top[cur, 0, :nb].tolist() == bpx.tolist(), i
        assert top[cur, 1, :nb].tolist() == bqty.tolist(), i
        assert top[cur, 2, :na].tolist() == apx.tolist(), i
        assert top[cur, 3, :na].tolist() == aqty.tolist(), i
        assert bool(state[cur, 1]) == st.sync.synced, i
        compared += 1
    applied = int(np.isin(state[:, 0], (codes.SYNC_APPLY_SNAPSHOT, codes.SYNC_APPLY_DELTA)).sum())
    assert applied == st.book_updates
    trades = st.trades
    assert len(trades) == len(ev.trade_px_ticks) < trades.capacity
    assert trades.array("ts_ns").tolist() == ev.trade_ts_exch_ns.tolist()
    assert trades.array("px_ticks").tolist() == ev.trade_px_ticks.tolist()
    assert trades.array("qty_lots").tolist() == ev.trade_qty_lots.tolist()
    assert trades.array("side").tolist() == ev.trade_side.tolist()
    # klines: the hub's upsert by start (the same candle again replaces the last one)
    ring: list[tuple[int, float, float, float, float, float]] = []
    for j in range(len(ev.kline_start_ns)):
        row = (
            int(ev.kline_start_ns[j]),
            float(ev.kline_open[j]),
            float(ev.kline_high[j]),
            float(ev.kline_low[j]),
            float(ev.kline_close[j]),
            float(ev.kline_volume[j]),
        )
        if ring and ring[-1][0] == row[0]:
            ring[-1] = row
        elif not ring or ring[-1][0] < row[0]:
            ring.append(row)
    assert len(ring) == len(st.klines) > 0
    got = list(
        zip(
            *(
                st.klines.array(k).tolist()
                for k in ("start_ns", "open", "high", "low", "close", "volume")
            ),
            strict=True,
        )
    )
    assert got == ring
    print(
        f"{meta.category}/{meta.symbol}: {compared} frames compared, {applied} book frames "
        f"applied, {len(ev.trade_px_ticks)} trades, {len(ev.level_px_ticks)} level rows"
    )
    return {"compared": compared, "applied": applied}


@pytest.mark.parametrize("fixture", ["binance_btc_rec", "binance_eth_rec", "binance_btc_2023_rec"])
def test_event_cache_equals_hub_on_binance(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    rec: Path = request.getfixturevalue(fixture)
    got = _check_recording([rec], tmp_path / "cache")
    assert got["applied"] > 1000  # hours of a 200-level book, not an empty walk


def test_event_cache_equals_hub_on_bybit_capture(cryptofeed_dir: Path, tmp_path: Path) -> None:
    files = sorted(cryptofeed_dir.glob("*.rec.gz"))
    assert len(files) == 6
    for f in files:
        assert _check_recording([f], tmp_path / "cache")["applied"] > 100
    # all six merged: one time-ordered stream, each symbol's rows equal its own recording's
    merged = load_events(files, tmp_path / "cache")
    assert len(merged.symbols) == 6
    assert (np.diff(merged.ev_ts_recv_ns) >= 0).all()
    for sym, f in enumerate(files):
        alone = load_events([f], tmp_path / "cache")
        assert alone.cache_hit
        mine = merged.level_sym == sym
        assert merged.level_px_ticks[mine].tolist() == alone.level_px_ticks.tolist()
        assert merged.level_qty_lots[mine].tolist() == alone.level_qty_lots.tolist()
        assert merged.book_u[merged.book_sym == sym].tolist() == alone.book_u.tolist()
        assert (
            merged.trade_px_ticks[merged.trade_sym == sym].tolist() == alone.trade_px_ticks.tolist()
        )

"""Our recording -> hftbacktest .npz: hftbacktest rebuilds the same book as a plain replay.

hftbacktest is a dev-only comparison peer (`pip install hftbacktest==2.4.4`); the module is
skipped when it is not importable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmd.feeds.bybit_codec import BookMsg, DecodeError, TradesMsg, decode_frame
from mmd.feeds.convert import (
    HBT_BUY,
    HBT_DEPTH,
    HBT_DEPTH_CLEAR,
    HBT_DEPTH_SNAPSHOT,
    HBT_EVENT_DTYPE,
    HBT_EXCH,
    HBT_LOCAL,
    HBT_SELL,
    HBT_TRADE,
    convert_hftbacktest,
    hftbacktest_events,
    run_convert,
)
from mmd.feeds.recording import read_recording

hbt = pytest.importorskip(
    "hftbacktest", reason="hftbacktest (dev comparison peer) not installed: "
    "pip install hftbacktest==2.4.4"
)

TICK = 0.1
LOT = 0.001
CHECKPOINTS = 25


def _our_book_checkpoints(rec: Path) -> list[tuple[int, int, int, float, float]]:
    """Replay the recording with plain dicts; (recv_ns, best bid tick, best ask tick, bid qty,
    ask qty) after every frame received at or before recv_ns, at evenly spaced frames."""
    frames = list(read_recording(rec))
    book_idx = []
    bids: dict[int, float] = {}
    asks: dict[int, float] = {}
    states: list[tuple[int, int, int, float, float]] = []
    synced = False
    for i, (recv_ns, raw) in enumerate(frames):
        try:
            msg = decode_frame(raw)
        except DecodeError:
            continue
        if isinstance(msg, BookMsg):
            if msg.is_snapshot:
                bids.clear()
                asks.clear()
                synced = True
            if not synced:
                continue
            for levels, side in ((msg.bids, bids), (msg.asks, asks)):
                for p, q, *_ in levels:
                    t = round(float(p) / TICK)
                    if float(q) > 0:
                        side[t] = float(q)
                    else:
                        side.pop(t, None)
            book_idx.append(i)
        if synced and bids and asks:
            bb, ba = max(bids), min(asks)
            states.append((recv_ns, bb, ba, bids[bb], asks[ba]))
    # the state after the last frame stamped recv_ns, only where the next frame comes later
    last_at: dict[int, tuple[int, int, int, float, float]] = {}
    for s in states:
        last_at[s[0]] = s
    stamps = sorted(last_at)
    picks = np.linspace(1, len(stamps) - 2, CHECKPOINTS).astype(int)
    out = []
    for k in picks:
        t, nxt = stamps[k], stamps[k + 1]
        if nxt - t >= 2:
            out.append(last_at[t])
    return out


def test_event_dtype_matches_hftbacktest() -> None:
    from hftbacktest.types import event_dtype

    assert event_dtype == HBT_EVENT_DTYPE
    assert HBT_EVENT_DTYPE.itemsize == 64
    assert (HBT_DEPTH, HBT_TRADE, HBT_DEPTH_CLEAR, HBT_DEPTH_SNAPSHOT) == (
        hbt.DEPTH_EVENT, hbt.TRADE_EVENT, hbt.DEPTH_CLEAR_EVENT, hbt.DEPTH_SNAPSHOT_EVENT
    )
    assert (HBT_EXCH, HBT_LOCAL, HBT_BUY, HBT_SELL) == (
        hbt.EXCH_EVENT, hbt.LOCAL_EVENT, hbt.BUY_EVENT, hbt.SELL_EVENT
    )


@pytest.fixture(scope="module")
def hbt_npz(binance_btc_rec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hbt") / "btcusdt.npz"
    (path,) = run_convert("hftbacktest", [str(binance_btc_rec)], str(out), progress=False)
    assert path == out
    return out


def test_npz_layout_and_validation(binance_btc_rec: Path, hbt_npz: Path) -> None:
    from hftbacktest.data.validation import validate_event_order

    with np.load(hbt_npz) as z:
        assert list(z.files) == ["data"]
        data = z["data"]
    assert data.dtype == HBT_EVENT_DTYPE
    validate_event_order(data)  # raises on out-of-order exchange or local rows
    ev = data["ev"]
    assert np.all(data["local_ts"] >= data["exch_ts"])
    lat = data["local_ts"] - data["exch_ts"]
    assert np.median(lat) > 0
    # every row is seen by at least one side; most by both
    both = (ev & (HBT_EXCH | HBT_LOCAL)) == (HBT_EXCH | HBT_LOCAL)
    assert np.all(ev & (HBT_EXCH | HBT_LOCAL))
    assert both.mean() > 0.95
    kind = ev & 0xFF
    assert set(np.unique(kind).tolist()) <= {HBT_DEPTH, HBT_TRADE, HBT_DEPTH_CLEAR,
                                              HBT_DEPTH_SNAPSHOT}
    # every depth/trade row has exactly one side flag
    sides = (ev & HBT_BUY).astype(bool).astype(int) + (ev & HBT_SELL).astype(bool).astype(int)
    assert np.all(sides == 1)
    # trades: one local row per distinct print in the recording, taker side as the flag
    n_trades = 0
    buys = 0
    for _, raw in read_recording(binance_btc_rec):
        msg = decode_frame(raw)
        if isinstance(msg, TradesMsg):
            n_trades += len(msg.trades)
            buys += sum(t.side == 1 for t in msg.trades)
    local_trades = (kind == HBT_TRADE) & ((ev & HBT_LOCAL) != 0)
    assert local_trades.sum() == n_trades
    assert (local_trades & ((ev & HBT_BUY) != 0)).sum() == buys
    # px/qty are in price and base units
    depth_rows = kind == HBT_DEPTH
    assert np.all(data["qty"][depth_rows] >= 0)
    assert 50_000 < np.median(data["px"][depth_rows]) < 80_000
    # the shift the converter reports is the one in the file
    rows, shift = hftbacktest_events([binance_btc_rec])
    assert np.array_equal(rows, data)
    assert shift >= 0


def test_hftbacktest_rebuilds_our_book(binance_btc_rec: Path, hbt_npz: Path) -> None:
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    _, shift = hftbacktest_events([binance_btc_rec])
    checkpoints = _our_book_checkpoints(binance_btc_rec)
    assert len(checkpoints) >= CHECKPOINTS - 3
    asset = (
        BacktestAsset()
        .data([str(hbt_npz)])
        .linear_asset(1.0)
        .constant_order_latency(1_000_000, 1_000_000)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.0002, 0.00055)
        .tick_size(TICK)
        .lot_size(LOT)
        .last_trades_capacity(0)
    )
    bt = HashMapMarketDepthBacktest([asset])
    try:
        assert bt.elapse(0) == 0  # positions the clock on the first event
        seen = []
        for recv_ns, bid_tick, ask_tick, bid_qty, ask_qty in checkpoints:
            target = recv_ns + shift + 1  # every row received at recv_ns, none after
            assert target > bt.current_timestamp
            assert bt.elapse(target - bt.current_timestamp) == 0
            assert bt.current_timestamp == target
            depth = bt.depth(0)
            got = (depth.best_bid_tick, depth.best_ask_tick)
            seen.append((got, (bid_tick, ask_tick)))
            assert got == (bid_tick, ask_tick), f"at recv {recv_ns}"
            assert depth.best_bid_qty == pytest.approx(bid_qty)
            assert depth.best_ask_qty == pytest.approx(ask_qty)
        # the checkpoints are not all the same book
        assert len({s[1] for s in seen}) > 5
        # and the replay reaches the end of the data
        while bt.elapse(60_000_000_000) == 0:
            pass
    finally:
        bt.close()


def test_convert_hftbacktest_appends_suffix(binance_btc_rec: Path, tmp_path: Path) -> None:
    path = convert_hftbacktest([binance_btc_rec], tmp_path / "sub" / "btc")
    assert path == tmp_path / "sub" / "btc.npz"
    assert path.is_file()
    assert not list((tmp_path / "sub").glob("*.partial*"))


def test_convert_hftbacktest_into_directory(binance_btc_rec: Path, tmp_path: Path) -> None:
    path = convert_hftbacktest([binance_btc_rec], tmp_path)
    assert path.parent == tmp_path
    assert path.name == binance_btc_rec.name.removesuffix(".rec.gz") + ".npz"

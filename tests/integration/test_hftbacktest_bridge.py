"""Our recording -> hftbacktest .npz: hftbacktest rebuilds the same book as a plain replay, and a
strategy run by hftbacktest makes the same fills on our event file as on the one hftbacktest's own
Binance converter makes from the same collector files.

hftbacktest is a dev-only comparison peer (`pip install hftbacktest==2.4.4`); the module is
skipped when it is not importable.
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numba
import numpy as np
import pytest
from conftest import BINANCE_BTC, BINANCE_BTC_2023, BINANCE_ETH

from mmd.feeds.bybit_codec import BookMsg, DecodeError, TradesMsg, decode_frame
from mmd.feeds.convert.dispatch import run_convert
from mmd.feeds.convert.hftbacktest import (
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
)
from mmd.feeds.recording import read_recording

hbt = pytest.importorskip(
    "hftbacktest",
    reason="hftbacktest (dev comparison peer) not installed: pip install hftbacktest==2.4.4",
)

from hftbacktest.order import BUY, FILLED, GTX, LIMIT, NEW, NONE  # noqa: E402

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
        hbt.DEPTH_EVENT,
        hbt.TRADE_EVENT,
        hbt.DEPTH_CLEAR_EVENT,
        hbt.DEPTH_SNAPSHOT_EVENT,
    )
    assert (HBT_EXCH, HBT_LOCAL, HBT_BUY, HBT_SELL) == (
        hbt.EXCH_EVENT,
        hbt.LOCAL_EVENT,
        hbt.BUY_EVENT,
        hbt.SELL_EVENT,
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
    assert set(np.unique(kind).tolist()) <= {
        HBT_DEPTH,
        HBT_TRADE,
        HBT_DEPTH_CLEAR,
        HBT_DEPTH_SNAPSHOT,
    }
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


# --- the same fills on our event file as on hftbacktest's own converter's ------------------
#
# hftbacktest's `data.utils.binancefutures.convert` reads the collector file directly: every
# level of every depth message (from the first line on, before the REST snapshot too, applied
# to an empty book), the snapshot as DEPTH_CLEAR + DEPTH_SNAPSHOT rows, MARKET trades; exchange
# time is `T`, and local_ts is shifted so the smallest feed latency is 0. Our path is
# `mmd convert binance-usdm` (a Bybit-shaped recording: the top-200 view after the snapshot,
# the pre-snapshot messages kept whole) then `mmd convert hftbacktest`. What differs, and why
# it cannot change the fills of a strategy quoting at the touch:
#   - rows beyond our top-200 view (their file has ~2x the rows): deep levels, never the
#     touch in these recordings (the view is always full, test_convert.py);
#   - repeated levels with an unchanged size (they keep them, we emit changes only): with
#     the risk-averse queue model a depth row at an unchanged size leaves the queue as it is;
#   - the snapshot's clear: ours reaches every level known (the pre-snapshot levels too),
#     theirs the snapshot's 1000th level: the difference is levels far from the touch.
# Both files start at the first depth message's `T`, so hftbacktest's clock steps on the same
# grid. Their converter reads the stamp as the line's first 19 characters (ns); the 2023
# collector wrote us stamps (16 digits), so for that recording it gets a copy whose stamps
# are multiplied by 1000 (the same instants, nothing else changed).

STEP_NS = 100_000_000  # the strategy's step: 100 ms
MAX_POS_LOTS = 10


@numba.njit
def _quote_at_touch(hbt, step_ns, max_pos, lot, tick, out):  # type: ignore[no-untyped-def]
    """One lot at the best bid and ask, cancelled when the touch moves; every `step_ns`.

    Writes (step, side, exec price tick, exec lots) per fill into out; returns the fill count.
    """
    n = 0
    k = 0
    oid = 0
    while hbt.elapse(step_ns) == 0:
        k += 1
        orders = hbt.orders(0)
        vals = orders.values()
        while vals.has_next():
            o = vals.get()
            if o.status == FILLED:
                if n < out.shape[0]:
                    out[n, 0] = k
                    out[n, 1] = o.side
                    out[n, 2] = o.exec_price_tick
                    out[n, 3] = round(o.exec_qty / lot)
                n += 1
        hbt.clear_inactive_orders(0)
        depth = hbt.depth(0)
        bb = depth.best_bid_tick
        ba = depth.best_ask_tick
        pos = round(hbt.position(0) / lot)
        valid = bb < ba
        have_buy = False
        have_sell = False
        vals = orders.values()
        while vals.has_next():
            o = vals.get()
            idle = o.status == NEW and o.req == NONE
            if o.side == BUY:
                have_buy = True
                if idle and (not valid or o.price_tick != bb or pos >= max_pos):
                    hbt.cancel(0, o.order_id, False)
            else:
                have_sell = True
                if idle and (not valid or o.price_tick != ba or pos <= -max_pos):
                    hbt.cancel(0, o.order_id, False)
        if valid and not have_buy and pos < max_pos:
            oid += 1
            hbt.submit_buy_order(0, oid, bb * tick, lot, GTX, LIMIT, False)
        if valid and not have_sell and pos > -max_pos:
            oid += 1
            hbt.submit_sell_order(0, oid, ba * tick, lot, GTX, LIMIT, False)
    return n


def _fills(rows: np.ndarray, tick: float, lot: float) -> tuple[int, Counter[tuple[int, ...]]]:
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    asset = (
        BacktestAsset()
        .data(rows)
        .linear_asset(1.0)
        .constant_order_latency(10_000_000, 10_000_000)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.0002, 0.00055)
        .tick_size(tick)
        .lot_size(lot)
        .last_trades_capacity(0)
    )
    bt = HashMapMarketDepthBacktest([asset])
    try:
        out = np.zeros((50_000, 4), np.int64)
        n = _quote_at_touch(bt, STEP_NS, MAX_POS_LOTS, lot, tick, out)
        start = int(rows["exch_ts"][0])
    finally:
        bt.close()
    assert n <= len(out)
    # fills as a multiset per step: a buy and a sell filled in the same step are one event
    return start, Counter(map(tuple, out[:n].tolist()))


def _their_input(sources: list[Path], tmp: Path) -> Path:
    """The collector files as the one gzip file their converter reads, stamps in ns."""
    path = tmp / "collector.gz"
    with gzip.open(path, "wb") as dst:
        for src in sources:
            with gzip.open(src, "rb") as fh:
                for line in fh:
                    head, sep, body = line.partition(b" ")
                    if len(head) == 16:  # 2023 collector: us
                        head = b"%d" % (int(head) * 1000)
                    dst.write(head + sep + body)
    return path


CASES = [
    # (conftest fixture, sources, tick, lot); SOURCES.md gives the steps
    ("binance_btc_rec", BINANCE_BTC, 0.1, 0.001),
    ("binance_eth_rec", BINANCE_ETH, 0.01, 0.001),
    ("binance_btc_2023_rec", BINANCE_BTC_2023, 0.1, 0.001),
]


@pytest.mark.parametrize(
    ("fixture", "sources", "tick", "lot"), CASES, ids=["btc_2024", "eth_2024", "btc_2023"]
)
def test_same_fills_as_on_hftbacktests_own_conversion(
    fixture: str,
    sources: list[Path],
    tick: float,
    lot: float,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    from hftbacktest.data.utils.binancefutures import convert as their_convert

    rec = request.getfixturevalue(fixture)
    theirs = their_convert(str(_their_input(sources, tmp_path)))
    ours, _ = hftbacktest_events([rec])
    t_start, t_fills = _fills(theirs, tick, lot)
    o_start, o_fills = _fills(ours, tick, lot)
    # the same first stamp, and the same first depth row: the first depth message (before
    # the REST snapshot), not the snapshot
    assert o_start == t_start
    first_depth = [a[(a["ev"] & 0xFF) == HBT_DEPTH][0] for a in (ours, theirs)]
    assert first_depth[0]["exch_ts"] == first_depth[1]["exch_ts"]
    assert first_depth[0]["local_ts"] == first_depth[1]["local_ts"]
    total = sum(t_fills.values())
    print(
        f"{fixture}: {total} fills on their file, {sum(o_fills.values())} on ours; "
        f"{len(theirs)} vs {len(ours)} rows"
    )
    assert total > 100  # a strategy that trades: 179 fills on BTC 2024 (measured)
    assert o_fills == t_fills, (
        f"only theirs: {sorted((t_fills - o_fills).elements())[:5]}, "
        f"only ours: {sorted((o_fills - t_fills).elements())[:5]}"
    )

"""SimExchange benchmarks: on_book and on_trade with N resting orders, against a plain-Python peer.

Figures, each the median over passes: `ns_per_call` is the wall time of one SimExchange.on_book /
on_trade call (Python glue + one exchange kernel call, no fills), `kernel_ns_per_call` the bare
kernel call (`mmd.kernels.exchange.on_book` / `on_trade`) from Python on the same arrays,
`jit_ns_per_call` the same kernel called inside one njit loop over the stream (how a jitted
backtest calls it), `ref_ns_per_call` a plain-Python peer of the same matching (cross
check, dict level lookup, prob_power queue update / trade rules over a list of order objects) in
this process, and `ratio = ref_ns_per_call / ns_per_call`. The stream is seeded: a 50-level book
whose sizes at our prices move up and down (never crossing our quotes), and trades at our prices
at the touch behind a queue too long to fill, so every call walks all N orders and no events
are built. The
peer's final queue positions are checked against the SimExchange's before timing is reported.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from mmd.config import ExchangeConfig
from mmd.kernels import exchange as kx
from mmd.market.book import L2Book
from mmd.model.codes import BUY, SELL
from mmd.model.events import SubmitOrder
from mmd.model.instrument import Instrument
from mmd.sim.exchange import SimExchange

# test-side helpers in tests/ (run.py loads benches by path; tests/ is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exchange_probe import queue_ahead_lots

BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
BEST_BID, BEST_ASK = 650_000, 650_001
LEVELS = 50
POWER = 2.0


class PeerOrder:
    """One resting order of the plain-Python peer."""

    __slots__ = ("leaves", "px", "queue", "seen", "side", "traded")

    def __init__(self, side: int, px: int, leaves: int, level: int) -> None:
        self.side, self.px, self.leaves = side, px, leaves
        self.seen, self.queue, self.traded = level, float(level), 0


class PeerExchange:
    """Plain-Python peer: the same cross / prob_power / trade rules, dict books, no numpy."""

    def __init__(self, orders: list[PeerOrder]) -> None:
        self.orders = orders

    def on_book(
        self, bids: dict[int, int], asks: dict[int, int], best_bid: int, best_ask: int
    ) -> list[tuple[PeerOrder, int]]:
        out = []
        for o in self.orders:
            if o.leaves == 0:
                continue
            if (o.side == BUY and best_ask <= o.px) or (o.side == SELL and best_bid >= o.px):
                out.append((o, o.leaves))
                o.leaves = 0
                continue
            new = (bids if o.side == BUY else asks).get(o.px, 0)
            if new == o.seen:
                continue
            chg = o.seen - new - o.traded
            front = o.queue
            if chg < 0:
                q = min(front, new)
            else:
                back = o.seen - front
                fb, ff = max(back, 0.0) ** POWER, max(front, 0.0) ** POWER
                p = fb / (fb + ff) if fb + ff > 0 else 1.0
                est = front - (1 - p) * chg + min(back - p * chg, 0.0)
                q = min(est, front, new)
            o.queue, o.seen, o.traded = q, new, 0
        return out

    def on_trade(self, px: int, qty: int, taker: int) -> list[tuple[PeerOrder, int]]:
        out = []
        for o in self.orders:
            if o.leaves == 0 or o.side != -taker:
                continue
            through = px < o.px if o.side == BUY else px > o.px
            fill = 0
            if through:
                fill = min(qty, o.leaves)
            elif px == o.px:
                o.queue -= qty
                o.traded += qty
                k = math.floor(-o.queue + 1e-9) if o.queue < 0 else 0
                if k >= 1:
                    fill = min(k, qty, o.leaves)
                    o.queue = 0.0
            if fill:
                o.leaves -= fill
                out.append((o, fill))
        return out


def order_prices(n: int) -> list[tuple[int, int]]:
    """(side, px) of n resting orders: alternating bids and asks, one per level from the touch."""
    return [(BUY, BEST_BID - i // 2) if i % 2 == 0 else (SELL, BEST_ASK + i // 2) for i in range(n)]


def book_stream(n_frames: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    """Full 50-level book states whose sizes wander (1e6..2e6 lots, so trades never fill)."""
    rng = np.random.default_rng(seed)
    depth = np.arange(LEVELS, dtype=np.int64)
    qty_b = rng.integers(1_000_000, 2_000_000, LEVELS)
    qty_a = rng.integers(1_000_000, 2_000_000, LEVELS)
    frames = []
    for _ in range(n_frames):
        k = rng.integers(0, LEVELS // 4, 3)
        qty_b[k] = rng.integers(1_000_000, 2_000_000, k.size)
        qty_a[k] = rng.integers(1_000_000, 2_000_000, k.size)
        frames.append((BEST_BID - depth, qty_b.copy(), BEST_ASK + depth, qty_a.copy()))
    return frames


def trade_stream(n_trades: int, seed: int) -> list[tuple[int, int, int]]:
    """(px, qty, taker side) at the touch, where our first bid and ask rest, 1..5 lots (a trade
    deeper would go through our other orders and fill them)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_trades):
        if rng.random() < 0.5:
            out.append((BEST_BID, int(rng.integers(1, 6)), SELL))
        else:
            out.append((BEST_ASK, int(rng.integers(1, 6)), BUY))
    return out


def build(
    n_orders: int, frames: list[tuple[np.ndarray, ...]]
) -> tuple[SimExchange, L2Book, PeerExchange]:
    cfg = ExchangeConfig(queue_model="prob_power", queue_power=POWER, partial_fills=True)
    sim = SimExchange(
        cfg, {"BTCUSDT": BTC}, entry_latency_ns=0, cancel_latency_ns=0, capacity=max(n_orders, 1)
    )
    book = L2Book(LEVELS)
    bpx, bqty, apx, aqty = frames[0]
    book.apply_snapshot(bpx, bqty, apx, aqty, u=1, seq=1, ts_exch_ns=0)
    sim.on_book("BTCUSDT", book, 0)
    peer_orders = []
    for i, (side, px) in enumerate(order_prices(n_orders)):
        sim.send(
            SubmitOrder(
                client_order_id=f"o{i}", symbol="BTCUSDT", side=side, px_ticks=px, qty_lots=5
            ),
            0,
        )
        level = dict(
            zip(
                (bpx if side == BUY else apx).tolist(),
                (bqty if side == BUY else aqty).tolist(),
                strict=True,
            )
        ).get(px, 0)
        peer_orders.append(PeerOrder(side, px, 5, level))
    sim.advance(0)
    assert len(sim.open_orders("BTCUSDT")) == n_orders
    return sim, book, PeerExchange(peer_orders)


@njit(cache=True)
def _jit_books(ex, syms, orders, free, events, bid_px, bid_qty, n_bids, ask_px, ask_qty, n_asks):
    n = 0
    for j in range(bid_px.shape[0]):
        n += kx.on_book(
            ex,
            syms,
            orders,
            free,
            events,
            0,
            bid_px[j],
            bid_qty[j],
            n_bids[j],
            ask_px[j],
            ask_qty[j],
            n_asks[j],
            1,
        )
    return n


@njit(cache=True)
def _jit_trades(ex, syms, orders, free, events, trades):
    n = 0
    for j in range(trades.shape[0]):
        n += kx.on_trade(
            ex, syms, orders, free, events, 0, 1, trades[j, 0], trades[j, 1], trades[j, 2]
        )
    return n


def time_pass(fn: Any, items: list[Any]) -> float:
    t0 = time.perf_counter_ns()
    for item in items:
        fn(item)
    return (time.perf_counter_ns() - t0) / len(items)


def bench(n_orders: int, n_events: int, passes: int) -> list[dict[str, Any]]:
    frames = book_stream(n_events, seed=7)
    trades = trade_stream(n_events, seed=8)
    sim, _, peer = build(n_orders, frames)  # takes the book stream
    tsim, _, tpeer = build(n_orders, frames)  # takes the trades only: queues stay long
    # bench-only peek at the kernel state for the bare kernel figures
    state = (sim._ex, sim._syms, sim._orders, sim._free, sim._events)
    tstate = (tsim._ex, tsim._syms, tsim._orders, tsim._free, tsim._events)

    # one L2Book per frame, built before timing (the peer's dict books are prebuilt too)
    books = []
    for f in frames:
        bk = L2Book(LEVELS)
        bk.apply_snapshot(f[0], f[1], f[2], f[3], u=1, seq=1, ts_exch_ns=1)
        books.append(bk)
    stacked = (
        np.stack([bk.bid_px for bk in books]),
        np.stack([bk.bid_qty for bk in books]),
        np.array([bk.n_bids for bk in books], np.int64),
        np.stack([bk.ask_px for bk in books]),
        np.stack([bk.ask_qty for bk in books]),
        np.array([bk.n_asks for bk in books], np.int64),
    )
    trade_rows = np.array(trades, np.int64)

    def sim_book(bk: L2Book) -> None:
        if sim.on_book("BTCUSDT", bk, 1):
            raise AssertionError("the bench stream must not fill")

    def kernel_book(bk: L2Book) -> None:
        kx.on_book(*state, 0, bk.bid_px, bk.bid_qty, bk.n_bids, bk.ask_px, bk.ask_qty, bk.n_asks, 1)

    def jit_books() -> float:
        t0 = time.perf_counter_ns()
        if _jit_books(*state, *stacked):
            raise AssertionError("the bench stream must not fill")
        return (time.perf_counter_ns() - t0) / len(books)

    def jit_trades() -> float:
        t0 = time.perf_counter_ns()
        if _jit_trades(*tstate, trade_rows):
            raise AssertionError("the bench stream must not fill")
        return (time.perf_counter_ns() - t0) / len(trades)

    def sim_trade(t: tuple[int, int, int]) -> None:
        if tsim.on_trade("BTCUSDT", 1, t[0], t[1], t[2]):
            raise AssertionError("the bench stream must not fill")

    def kernel_trade(t: tuple[int, int, int]) -> None:
        kx.on_trade(*tstate, 0, 1, t[0], t[1], t[2])

    peer_frames = [
        (
            dict(zip(f[0].tolist(), f[1].tolist(), strict=True)),
            dict(zip(f[2].tolist(), f[3].tolist(), strict=True)),
            int(f[0][0]),
            int(f[2][0]),
        )
        for f in frames
    ]

    def peer_book(f: tuple[dict[int, int], dict[int, int], int, int]) -> None:
        if peer.on_book(*f):
            raise AssertionError("the bench stream must not fill")

    def peer_trade(t: tuple[int, int, int]) -> None:
        if tpeer.on_trade(*t):
            raise AssertionError("the bench stream must not fill")

    # one untimed pass each over the same streams; then the queues must agree
    for bk, pf, t in zip(books, peer_frames, trades, strict=True):
        sim_book(bk)
        peer_book(pf)
        sim_trade(t)
        peer_trade(t)
    for ex, pe in ((sim, peer), (tsim, tpeer)):
        sim_q = [queue_ahead_lots(ex, "BTCUSDT", f"o{i}") for i in range(n_orders)]
        peer_q = [o.queue for o in pe.orders]
        if not np.allclose(sim_q, peer_q, rtol=1e-9):
            raise AssertionError(f"peer disagrees with SimExchange: {sim_q[:4]} vs {peer_q[:4]}")

    jit_books()  # compile (or load) the loops before timing
    jit_trades()
    figures: dict[str, list[list[float]]] = {"book": [[], [], [], []], "trade": [[], [], [], []]}
    for _ in range(passes):
        for key, fns, items in (
            ("book", (sim_book, kernel_book, peer_book), (books, books, peer_frames)),
            ("trade", (sim_trade, kernel_trade, peer_trade), (trades, trades, trades)),
        ):
            for j in range(3):
                figures[key][j].append(time_pass(fns[j], items[j]))
        figures["book"][3].append(jit_books())
        figures["trade"][3].append(jit_trades())
    rows = []
    for key in ("book", "trade"):
        ns, kernel_ns, ref_ns, jit_ns = (statistics.median(v) for v in figures[key])
        rows.append(
            {
                "name": f"sim.on_{key}[orders={n_orders}]",
                "ns_per_call": round(ns, 1),
                "kernel_ns_per_call": round(kernel_ns, 1),
                "jit_ns_per_call": round(jit_ns, 1),
                "ref_ns_per_call": round(ref_ns, 1),
                "ratio": round(ref_ns / ns, 2),
            }
        )
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    """One row per (call, order count)."""
    n_events, passes = (2_000, 5) if quick else (20_000, 9)
    rows: list[dict[str, Any]] = []
    for n_orders in (2, 8, 32):
        rows += bench(n_orders, n_events, passes)
    return rows

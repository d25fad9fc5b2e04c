"""The queue arithmetic of `mmd.kernels.exchange` driven kernel by kernel: level lookup and the
probability model by hand, the edge cases the SimExchange examples (tests/unit/sim) do not reach,
and hypothesis properties on random book and trade sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmd.kernels import exchange as kx
from mmd.model.codes import BUY, SELL

I64 = np.int64
N_SLOTS = 6
CAP = 4  # book levels kept in the random sequences: small, so some orders sit beyond the book


def arr(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=I64)


# -- worked examples ---------------------------------------------------------------------------


def test_compute_level_qty_found_absent_and_unknown() -> None:
    px, qty = arr([99, 98, 97]), arr([5, 7, 9])
    assert kx.compute_level_qty(px, qty, 3, 98, True) == 7
    assert kx.compute_level_qty(px, qty, 3, 100, True) == 0  # better than the best: no level
    assert kx.compute_level_qty(px, qty, 2, 97, True) == 0  # side not full: truly absent
    assert kx.compute_level_qty(px, qty, 3, 96, True) == -1  # full side, beyond the worst
    apx, aqty = arr([101, 103, 0]), arr([4, 2, 0])
    assert kx.compute_level_qty(apx, aqty, 2, 102, False) == 0  # a gap inside the book
    assert kx.compute_level_qty(apx, aqty, 2, 103, False) == 2
    assert kx.compute_level_qty(apx, aqty, 0, 103, False) == 0


def test_compute_back_prob_power_log_and_edges() -> None:
    # power n=2, front 4, back 6: 36 / (36 + 16)
    assert kx.compute_back_prob(4.0, 6.0, kx.QUEUE_PROB_POWER, 2.0) == pytest.approx(36 / 52)
    expected = math.log(7) / (math.log(7) + math.log(5))
    assert kx.compute_back_prob(4.0, 6.0, kx.QUEUE_PROB_LOG, 2.0) == pytest.approx(expected)
    assert kx.compute_back_prob(0.0, 0.0, kx.QUEUE_PROB_POWER, 2.0) == 1.0  # nothing anywhere
    assert kx.compute_back_prob(0.0, 3.0, kx.QUEUE_PROB_POWER, 2.0) == 1.0  # nothing ahead
    assert kx.compute_back_prob(-2.0, 3.0, kx.QUEUE_PROB_POWER, 1.5) == 1.0  # front clamped
    assert kx.compute_back_prob(1e200, 1.0, kx.QUEUE_PROB_POWER, 3.0) == 0.0  # overflow
    assert kx.compute_back_prob(4.0, 6.0, kx.QUEUE_RISK_AVERSE, 2.0) == 1.0


class Slots:
    """One symbol of exchange state whose order slots are seated directly (no post-only or
    latency path), so the book and trade kernels can be driven on any queue state."""

    def __init__(self, n: int = N_SLOTS, model: int = kx.QUEUE_RISK_AVERSE) -> None:
        self.ex, self.syms, self.orders, self.free, _, self.events = kx.alloc_exchange(
            1, n, n_events=4 * n
        )
        self.ex[0]["model"] = model
        self.ex[0]["power"] = 2.0
        self.syms["tick"], self.syms["lot"] = 1.0, 1.0
        self.o = self.orders[0]
        # exchange clock (ns): every book and trade is stamped one later unless told otherwise
        self.t = 0
        self.book_ts = -1

    def add(self, i: int, side: int, px: int, leaves: int, level: int, active: int = -1) -> None:
        o = self.o
        o["live"][i], o["side"][i], o["px_ticks"][i] = kx.SLOT_LIVE, side, px
        o["qty_lots"][i] = o["leaves_lots"][i] = leaves
        o["seen_lots"][i], o["queue_ahead"][i] = level, float(level)
        o["active_ns"][i], o["order_id"][i] = active, i
        free = [k for k in range(o.shape[0]) if o["live"][k] != kx.SLOT_LIVE]
        self.syms[0]["n_free"] = len(free)
        self.free[0, : len(free)] = free[::-1]

    def _fills(self, n: int) -> list[tuple[int, int]]:
        assert n >= 0
        ev = self.events[: int(self.ex[0]["n_events"])]
        self.ex[0]["n_events"] = 0
        out = [(int(e["slot"]), int(e["qty_lots"])) for e in ev if e["kind"] == kx.EVT_FILLED]
        assert len(out) == n
        return out

    def on_book(self, book: tuple, power: float = 2.0) -> list[tuple[int, int]]:
        self.ex[0]["power"] = power
        self.t += 1
        self.book_ts = self.t
        n = kx.on_book(self.ex, self.syms, self.orders, self.free, self.events, 0, *book, self.t)
        return self._fills(n)

    def on_trade(
        self, px: int, qty: int, side: int, partial: bool, ts: int | None = None
    ) -> list[tuple[int, int]]:
        if ts is None:
            self.t += 1
            ts = self.t
        self.ex[0]["partial"] = int(partial)
        n = kx.on_trade(
            self.ex, self.syms, self.orders, self.free, self.events, 0, ts, px, qty, side
        )
        return self._fills(n)

    @property
    def queue(self) -> np.ndarray:
        return self.o["queue_ahead"]


def book_arrays(bids: dict[int, int], asks: dict[int, int], cap: int = 8) -> tuple:
    bp = sorted((p for p, q in bids.items() if q > 0), reverse=True)[:cap]
    ap = sorted(p for p, q in asks.items() if q > 0)[:cap]
    bpx, bqty, apx, aqty = (np.zeros(cap, I64) for _ in range(4))
    bpx[: len(bp)] = bp
    bqty[: len(bp)] = [bids[p] for p in bp]
    apx[: len(ap)] = ap
    aqty[: len(ap)] = [asks[p] for p in ap]
    return bpx, bqty, len(bp), apx, aqty, len(ap)


def test_at_price_print_shared_by_two_orders_caps_the_second_at_what_is_left() -> None:
    s = Slots()
    s.add(0, SELL, 101, 2, 1, active=2)  # 1 ahead
    s.add(1, SELL, 101, 2, 0, active=4)  # improved when level was 0 (nothing ahead)
    # buy 3 @ 101: slot 0 first (earlier): queue 1 - 3 = -2 -> k 2, fill min(2, 3, 2) = 2,
    # budget 1; slot 1: queue 0 - 3 = -3 -> k 3, but only 1 lot left of the print: fill 1
    assert s.on_trade(101, 3, BUY, True, ts=10) == [(0, 2), (1, 1)]
    assert s.queue[1] == 0.0 and s.o["leaves_lots"][1] == 1


@pytest.mark.parametrize("book_first", [False, True])
def test_trade_and_book_in_either_order_risk_averse_not_double_counted(book_first: bool) -> None:
    # level 5 at 99, we are at its back (queue 5); a sell 2 @ 99 takes the level to 3.
    # trade first: queue 5 - 2 = 3, book: min(3, 3) = 3.
    # book first: min(5, 3) = 3 (dec 2, adv 2: all of it counted ahead); the late trade
    # (stamped before the book) x = 2, share 2/2 = 1 -> advances 2 * (1 - 1) = 0: stays 3
    # (subtracting the trade again would give 3 - 2 = 1: the 2 lots counted twice)
    s = Slots(model=kx.QUEUE_RISK_AVERSE)
    s.add(0, BUY, 99, 1, 5)
    if book_first:
        s.on_book(book_arrays({99: 3}, {101: 1}))
        s.on_trade(99, 2, SELL, True, ts=s.book_ts)
    else:
        s.on_trade(99, 2, SELL, True)
        s.on_book(book_arrays({99: 3}, {101: 1}))
    assert s.queue[0] == 3.0


# -- random sequences: properties --------------------------------------------------------------

order_st = st.tuples(
    st.sampled_from([BUY, SELL]), st.integers(0, 4), st.integers(1, 6)
)  # side, distance from the touch (ticks), size
op_st = st.one_of(
    st.tuples(st.just("bid"), st.integers(95, 100), st.integers(0, 12)),
    st.tuples(st.just("ask"), st.integers(101, 106), st.integers(0, 12)),
    st.tuples(
        st.sampled_from(["trade", "late"]),
        st.integers(94, 107),
        st.integers(1, 8),
        st.sampled_from([BUY, SELL]),
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    orders=st.lists(order_st, min_size=1, max_size=N_SLOTS),
    ops=st.lists(op_st, max_size=30),
    model=st.sampled_from([kx.QUEUE_RISK_AVERSE, kx.QUEUE_PROB_POWER, kx.QUEUE_PROB_LOG]),
    power=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    partial=st.booleans(),
)
def test_queue_kernels_random_sequences_keep_invariants(
    orders: list[tuple[int, int, int]], ops: list[tuple], model: int, power: float, partial: bool
) -> None:
    bids = {100: 5, 99: 7, 98: 3}
    asks = {101: 4, 102: 6, 103: 2}
    s = Slots(len(orders), model)
    book = book_arrays(bids, asks, CAP)
    for i, (side, dist, qty) in enumerate(orders):
        px = 100 - dist if side == BUY else 101 + dist
        if side == BUY:
            lvl = kx.compute_level_qty(book[0], book[1], book[2], px, True)
        else:
            lvl = kx.compute_level_qty(book[3], book[4], book[5], px, False)
        s.add(i, side, px, qty, max(int(lvl), 0))
    all_fills = []
    for op in ops:
        if op[0] in ("trade", "late"):
            # "late": stamped as the last book (that book already showed it)
            ts = s.book_ts if op[0] == "late" else None
            got = s.on_trade(op[1], op[2], op[3], partial, ts=ts)
            # one print never fills more of ours than its size
            assert sum(q for _, q in got) <= op[2]
        else:
            (bids if op[0] == "bid" else asks)[op[1]] = op[2]
            prev_q = s.queue.copy()
            prev_live = s.o["live"].copy()
            got = s.on_book(book_arrays(bids, asks, CAP), power)
            # a book update never moves anyone back in the queue
            still = prev_live == kx.SLOT_LIVE
            assert np.all(s.queue[still] <= prev_q[still] + 1e-12)
        all_fills += got
    filled = [0] * len(orders)
    for slot, qty in all_fills:
        assert qty > 0
        filled[slot] += qty
    leaves, live = s.o["leaves_lots"], s.o["live"]
    for i, (_, _, qty) in enumerate(orders):
        assert leaves[i] >= 0
        assert filled[i] <= qty
        assert filled[i] + leaves[i] == qty
        if live[i] == kx.SLOT_FREE:
            assert leaves[i] == 0 and filled[i] == qty  # only fills free a slot here
    assert np.all(np.isfinite(s.queue))


@settings(max_examples=200, deadline=None)
@given(
    front=st.floats(0, 1e6),
    back=st.floats(0, 1e6),
    chg=st.floats(0, 1),
    model=st.sampled_from([kx.QUEUE_PROB_POWER, kx.QUEUE_PROB_LOG]),
    power=st.floats(0.1, 5.0),
)
def test_queue_depth_decrease_never_raises_queue(
    front: float, back: float, chg: float, model: int, power: float
) -> None:
    # one order, level = front + back (rounded to lots), shrinks by a fraction chg of itself
    level = int(front + back)
    if level == 0:
        return
    s = Slots(1, model)
    s.add(0, BUY, 99, 1, level)
    s.queue[0] = min(front, float(level))
    new = level - int(chg * level)
    q0 = s.queue[0]
    s.on_book(book_arrays({99: new}, {101: 1}), power)
    assert s.queue[0] <= q0
    assert s.queue[0] <= new
    p = kx.compute_back_prob(front, back, model, power)
    assert 0.0 <= p <= 1.0

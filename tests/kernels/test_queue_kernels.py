"""mmd.kernels.queue: worked examples, hypothesis properties, jit vs py_func parity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmd.kernels import queue as kq
from mmd.model.codes import BUY, ERR_BAD_INPUT, SELL

I64 = np.int64
N_SLOTS = 6
CAP = 4  # book levels kept in the random sequences: small, so some orders sit beyond the book


def arr(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=I64)


# -- worked examples ---------------------------------------------------------------------------


def test_compute_level_qty_found_absent_and_unknown() -> None:
    px, qty = arr([99, 98, 97]), arr([5, 7, 9])
    assert kq.compute_level_qty(px, qty, 3, 98, True) == 7
    assert kq.compute_level_qty(px, qty, 3, 100, True) == 0  # better than the best: no level
    assert kq.compute_level_qty(px, qty, 2, 97, True) == 0  # side not full: truly absent
    assert kq.compute_level_qty(px, qty, 3, 96, True) == -1  # full side, beyond the worst
    apx, aqty = arr([101, 103, 0]), arr([4, 2, 0])
    assert kq.compute_level_qty(apx, aqty, 2, 102, False) == 0  # a gap inside the book
    assert kq.compute_level_qty(apx, aqty, 2, 103, False) == 2
    assert kq.compute_level_qty(apx, aqty, 0, 103, False) == 0


def test_compute_back_prob_power_log_and_edges() -> None:
    # power n=2, front 4, back 6: 36 / (36 + 16)
    assert kq.compute_back_prob(4.0, 6.0, kq.QUEUE_PROB_POWER, 2.0) == pytest.approx(36 / 52)
    expected = math.log(7) / (math.log(7) + math.log(5))
    assert kq.compute_back_prob(4.0, 6.0, kq.QUEUE_PROB_LOG, 2.0) == pytest.approx(expected)
    assert kq.compute_back_prob(0.0, 0.0, kq.QUEUE_PROB_POWER, 2.0) == 1.0  # nothing anywhere
    assert kq.compute_back_prob(0.0, 3.0, kq.QUEUE_PROB_POWER, 2.0) == 1.0  # nothing ahead
    assert kq.compute_back_prob(-2.0, 3.0, kq.QUEUE_PROB_POWER, 1.5) == 1.0  # front clamped
    assert kq.compute_back_prob(1e200, 1.0, kq.QUEUE_PROB_POWER, 3.0) == 0.0  # overflow
    assert kq.compute_back_prob(4.0, 6.0, kq.QUEUE_RISK_AVERSE, 2.0) == 1.0


class Slots:
    """A tiny order table for driving the kernels directly."""

    def __init__(self, n: int = N_SLOTS) -> None:
        self.live = np.zeros(n, I64)
        self.leaves = np.zeros(n, I64)
        self.seen = np.zeros(n, I64)
        self.traded = np.zeros(n, I64)
        self.queue = np.zeros(n)
        self.dec = np.zeros(n)
        self.adv = np.zeros(n)
        self.active = np.zeros(n, I64)
        self.px = np.zeros(n, I64)
        self.side = np.zeros(n, I64)
        self.out_slot = np.zeros(n, I64)
        self.out_qty = np.zeros(n, I64)

        # exchange clock (ns): every book and trade is stamped one later unless told otherwise
        self.t = 0
        self.book_ts = -1

    def add(self, i: int, side: int, px: int, leaves: int, level: int, active: int = -1) -> None:
        self.live[i] = kq.SLOT_LIVE
        self.side[i], self.px[i], self.leaves[i] = side, px, leaves
        self.seen[i] = level
        self.queue[i] = float(level)
        self.active[i] = active
        self.dec[i] = self.adv[i] = 0.0

    def on_book(self, fn: Any, book: tuple, model: int, power: float = 2.0) -> int:
        bpx, bqty, nb, apx, aqty, na = book
        self.t += 1
        self.book_ts = self.t
        return int(
            fn(
                self.live,
                self.leaves,
                self.seen,
                self.traded,
                self.queue,
                self.dec,
                self.adv,
                self.out_slot,
                self.out_qty,
                self.px,
                self.side,
                bpx,
                bqty,
                nb,
                apx,
                aqty,
                na,
                model,
                power,
            )
        )

    def on_trade(
        self, fn: Any, px: int, qty: int, side: int, partial: bool, ts: int | None = None
    ) -> int:
        if ts is None:
            self.t += 1
            ts = self.t
        return int(
            fn(
                self.live,
                self.leaves,
                self.traded,
                self.queue,
                self.dec,
                self.adv,
                self.active,
                self.out_slot,
                self.out_qty,
                self.px,
                self.side,
                ts,
                self.book_ts,
                px,
                qty,
                side,
                partial,
            )
        )

    def state(self) -> tuple:
        return (
            self.live.copy(),
            self.leaves.copy(),
            self.seen.copy(),
            self.traded.copy(),
            self.queue.copy(),
        )


def book_arrays(bids: dict[int, int], asks: dict[int, int], cap: int = 8) -> tuple:
    bp = sorted((p for p, q in bids.items() if q > 0), reverse=True)[:cap]
    ap = sorted(p for p, q in asks.items() if q > 0)[:cap]
    bpx, bqty, apx, aqty = (np.zeros(cap, I64) for _ in range(4))
    bpx[: len(bp)] = bp
    bqty[: len(bp)] = [bids[p] for p in bp]
    apx[: len(ap)] = ap
    aqty[: len(ap)] = [asks[p] for p in ap]
    return bpx, bqty, len(bp), apx, aqty, len(ap)


def test_update_orders_on_book_cross_and_prob_power_example() -> None:
    s = Slots()
    s.add(0, BUY, 99, 2, 4)  # behind 4 at 99
    s.add(1, BUY, 100, 3, 0)  # alone at 100
    # asks fall to 100 (crosses slot 1); bids 99 grows 4 -> 10 (behind slot 0)
    n = s.on_book(kq.update_orders_on_book, book_arrays({99: 10}, {100: 1}), kq.QUEUE_PROB_POWER)
    assert n == 1 and s.out_slot[0] == 1 and s.out_qty[0] == 3
    assert s.live[1] == kq.SLOT_FREE and s.leaves[1] == 0
    assert s.queue[0] == 4.0 and s.seen[0] == 10
    # 99: 10 -> 7 with front 4, back 6: 4 - (16/52) * 3
    s.on_book(kq.update_orders_on_book, book_arrays({99: 7}, {101: 1}), kq.QUEUE_PROB_POWER)
    assert s.queue[0] == pytest.approx(4 - 48 / 52)


def test_update_orders_on_trade_bad_input_returns_code() -> None:
    s = Slots()
    assert s.on_trade(kq.update_orders_on_trade, 99, 0, SELL, True) == ERR_BAD_INPUT
    assert s.on_trade(kq.update_orders_on_trade, 99, 1, 0, True) == ERR_BAD_INPUT
    short = np.zeros(1, I64)
    n = kq.update_orders_on_book(
        s.live,
        s.leaves,
        s.seen,
        s.traded,
        s.queue,
        s.dec,
        s.adv,
        short,
        short,
        s.px,
        s.side,
        *book_arrays({}, {}),
        0,
        2.0,
    )
    assert n == ERR_BAD_INPUT


def test_update_orders_on_trade_stamped_at_or_before_activation_is_ignored() -> None:
    s = Slots()
    s.add(0, BUY, 99, 2, 5, active=10)  # became active at t=10, 5 lots ahead
    # a print through us (98 < 99) stamped 10 = the activation: not ours, nothing moves
    assert s.on_trade(kq.update_orders_on_trade, 98, 4, SELL, True, ts=10) == 0
    # a print at our price stamped 7 (a late backfill): the queue stays 5, traded stays 0
    assert s.on_trade(kq.update_orders_on_trade, 99, 4, SELL, True, ts=7) == 0
    assert (s.queue[0], s.traded[0], s.leaves[0]) == (5.0, 0, 2)
    # the same print stamped 11: queue 5 - 4 = 1, traded 4; then sell 1 @ 98 at 12: fill 1
    assert s.on_trade(kq.update_orders_on_trade, 99, 4, SELL, True, ts=11) == 0
    assert (s.queue[0], s.traded[0]) == (1.0, 4)
    assert s.on_trade(kq.update_orders_on_trade, 98, 1, SELL, True, ts=12) == 1
    assert (s.out_slot[0], s.out_qty[0], s.leaves[0]) == (0, 1, 1)


def test_update_orders_on_trade_print_shared_by_ladder_in_price_time_priority() -> None:
    s = Slots()
    s.add(0, BUY, 100, 2, 0, active=5)  # later at 100
    s.add(1, BUY, 100, 2, 0, active=3)  # earlier at 100: first in time priority
    s.add(2, BUY, 99, 3, 0, active=1)  # worse price: last
    # sell 3 @ 98, through all three: budget 3 -> slot 1 min(3, 2) = 2 (budget 1),
    # slot 0 min(1, 2) = 1 (budget 0), slot 2 nothing: 3 lots in total, not 7
    n = s.on_trade(kq.update_orders_on_trade, 98, 3, SELL, True, ts=10)
    assert [(int(s.out_slot[j]), int(s.out_qty[j])) for j in range(n)] == [(1, 2), (0, 1)]
    assert list(s.leaves[:3]) == [1, 0, 3]
    # without partial fills: sell 2 @ 98 -> slot 0 (leaves 1 <= 2) fills 1 (budget 1),
    # slot 2 needs 3 > 1: nothing
    n = s.on_trade(kq.update_orders_on_trade, 98, 2, SELL, False, ts=11)
    assert [(int(s.out_slot[j]), int(s.out_qty[j])) for j in range(n)] == [(0, 1)]
    assert s.leaves[2] == 3


def test_update_orders_on_trade_at_price_print_shared_by_two_orders() -> None:
    s = Slots()
    s.add(0, SELL, 101, 2, 1, active=2)  # 1 ahead
    s.add(1, SELL, 101, 2, 0, active=4)  # improved when level was 0 (nothing ahead)
    # buy 3 @ 101: slot 0 first (earlier): queue 1 - 3 = -2 -> k 2, fill min(2, 3, 2) = 2,
    # budget 1; slot 1: queue 0 - 3 = -3 -> k 3, but only 1 lot left of the print: fill 1
    n = s.on_trade(kq.update_orders_on_trade, 101, 3, BUY, True, ts=10)
    assert [(int(s.out_slot[j]), int(s.out_qty[j])) for j in range(n)] == [(0, 2), (1, 1)]
    assert s.queue[1] == 0.0 and s.leaves[1] == 1


@pytest.mark.parametrize("book_first", [False, True])
def test_trade_and_book_in_either_order_risk_averse_not_double_counted(book_first: bool) -> None:
    # level 5 at 99, we are at its back (queue 5); a sell 2 @ 99 takes the level to 3.
    # trade first: queue 5 - 2 = 3, book: min(3, 3) = 3.
    # book first: min(5, 3) = 3 (dec 2, adv 2: all of it counted ahead); the late trade
    # (stamped before the book) x = 2, share 2/2 = 1 -> advances 2 * (1 - 1) = 0: stays 3
    # (the old rule gave 3 - 2 = 1: the 2 lots counted twice)
    s = Slots()
    s.add(0, BUY, 99, 1, 5)
    ra = kq.QUEUE_RISK_AVERSE
    if book_first:
        s.on_book(kq.update_orders_on_book, book_arrays({99: 3}, {101: 1}), ra)
        s.on_trade(kq.update_orders_on_trade, 99, 2, SELL, True, ts=s.book_ts)
    else:
        s.on_trade(kq.update_orders_on_trade, 99, 2, SELL, True)
        s.on_book(kq.update_orders_on_book, book_arrays({99: 3}, {101: 1}), ra)
    assert s.queue[0] == 3.0


@pytest.mark.parametrize("book_first", [False, True])
def test_trade_and_book_in_either_order_prob_power(book_first: bool) -> None:
    # level 10 at 99, queue 4 (front 4, back 6); a sell 2 @ 99 plus a 1-lot cancel take the
    # level to 7. Either way the 2 traded lots advance us in full and the 1-lot cancel by its
    # probable share (power 2):
    # trade first: queue 4 - 2 = 2; book chg = 10 - 7 - 2 = 1, front 2, back 8,
    #   p = 64/68 -> queue = 2 - (4/68) * 1 = 1.941176...
    # book first: chg 3, front 4, back 6, p = 36/52 -> queue 4 - (16/52) * 3 = 3.0769...,
    #   adv 48/52 of dec 3; late trade x = 2: advance 2 * (1 - 16/52) = 72/52 ->
    #   queue = 4 - 120/52 = 1.692307... = 4 - 2 - (16/52) * 1 (the old rule: 4 - 48/52 - 2)
    s = Slots()
    s.add(0, BUY, 99, 1, 10)
    s.queue[0] = 4.0
    pp = kq.QUEUE_PROB_POWER
    if book_first:
        s.on_book(kq.update_orders_on_book, book_arrays({99: 7}, {101: 1}), pp)
        s.on_trade(kq.update_orders_on_trade, 99, 2, SELL, True, ts=s.book_ts)
        assert s.queue[0] == pytest.approx(4 - 120 / 52)
        assert s.traded[0] == 0  # already in the book: the next book must not subtract it
    else:
        s.on_trade(kq.update_orders_on_trade, 99, 2, SELL, True)
        s.on_book(kq.update_orders_on_book, book_arrays({99: 7}, {101: 1}), pp)
        assert s.queue[0] == pytest.approx(2 - 4 / 68)


# -- random sequences: properties and parity ---------------------------------------------------

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


def run_sequence(
    orders: list[tuple[int, int, int]],
    ops: list[tuple],
    model: int,
    power: float,
    partial: bool,
    jitted: bool,
) -> tuple[list[tuple], Slots, list[tuple[int, int]]]:
    """Drive a fresh table; returns (per-step states, final table, all fills)."""
    on_book = kq.update_orders_on_book if jitted else kq.update_orders_on_book.py_func
    on_trade = kq.update_orders_on_trade if jitted else kq.update_orders_on_trade.py_func
    level = kq.compute_level_qty if jitted else kq.compute_level_qty.py_func
    bids = {100: 5, 99: 7, 98: 3}
    asks = {101: 4, 102: 6, 103: 2}
    s = Slots(len(orders))
    book = book_arrays(bids, asks, CAP)
    for i, (side, dist, qty) in enumerate(orders):
        px = 100 - dist if side == BUY else 101 + dist
        if side == BUY:
            lvl = level(book[0], book[1], book[2], px, True)
        else:
            lvl = level(book[3], book[4], book[5], px, False)
        s.add(i, side, px, qty, max(int(lvl), 0))
    states, all_fills = [s.state()], []
    for op in ops:
        if op[0] in ("trade", "late"):
            # "late": stamped as the last book (that book already showed it)
            ts = s.book_ts if op[0] == "late" else None
            n = s.on_trade(on_trade, op[1], op[2], op[3], partial, ts=ts)
            assert n >= 0
            # one print never fills more of ours than its size
            assert sum(int(s.out_qty[j]) for j in range(n)) <= op[2]
        else:
            (bids if op[0] == "bid" else asks)[op[1]] = op[2]
            prev_q = s.queue.copy()
            prev_live = s.live.copy()
            n = s.on_book(on_book, book_arrays(bids, asks, CAP), model, power)
            # a book update never moves anyone back in the queue
            still = prev_live == kq.SLOT_LIVE
            assert np.all(s.queue[still] <= prev_q[still] + 1e-12)
        all_fills += [(int(s.out_slot[j]), int(s.out_qty[j])) for j in range(n)]
        states.append(s.state())
    return states, s, all_fills


@settings(max_examples=200, deadline=None)
@given(
    orders=st.lists(order_st, min_size=1, max_size=N_SLOTS),
    ops=st.lists(op_st, max_size=30),
    model=st.sampled_from([kq.QUEUE_RISK_AVERSE, kq.QUEUE_PROB_POWER, kq.QUEUE_PROB_LOG]),
    power=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    partial=st.booleans(),
)
def test_queue_kernels_random_sequences_keep_invariants(
    orders: list[tuple[int, int, int]], ops: list[tuple], model: int, power: float, partial: bool
) -> None:
    _, s, all_fills = run_sequence(orders, ops, model, power, partial, jitted=True)
    filled = [0] * len(orders)
    for slot, qty in all_fills:
        assert qty > 0
        filled[slot] += qty
    for i, (_, _, qty) in enumerate(orders):
        assert s.leaves[i] >= 0
        assert filled[i] <= qty
        assert filled[i] + s.leaves[i] == qty or s.live[i] == kq.SLOT_FREE
        if s.live[i] == kq.SLOT_FREE:
            assert s.leaves[i] == 0 and filled[i] == qty  # only fills free a slot here
    assert np.all(np.isfinite(s.queue))


@settings(max_examples=100, deadline=None)
@given(
    orders=st.lists(order_st, min_size=1, max_size=N_SLOTS),
    ops=st.lists(op_st, max_size=30),
    model=st.sampled_from([kq.QUEUE_RISK_AVERSE, kq.QUEUE_PROB_POWER, kq.QUEUE_PROB_LOG]),
    power=st.sampled_from([1.0, 2.0, 2.5]),
    partial=st.booleans(),
)
def test_queue_kernels_jit_matches_py_func(
    orders: list[tuple[int, int, int]], ops: list[tuple], model: int, power: float, partial: bool
) -> None:
    jit_states, _, jit_fills = run_sequence(orders, ops, model, power, partial, jitted=True)
    py_states, _, py_fills = run_sequence(orders, ops, model, power, partial, jitted=False)
    assert jit_fills == py_fills
    for a, b in zip(jit_states, py_states, strict=True):
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_allclose(a[4], b[4], rtol=1e-12, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    front=st.floats(0, 1e6),
    back=st.floats(0, 1e6),
    chg=st.floats(0, 1),
    model=st.sampled_from([kq.QUEUE_PROB_POWER, kq.QUEUE_PROB_LOG]),
    power=st.floats(0.1, 5.0),
)
def test_queue_depth_decrease_never_raises_queue(
    front: float, back: float, chg: float, model: int, power: float
) -> None:
    # one order, level = front + back (rounded to lots), shrinks by a fraction chg of itself
    level = int(front + back)
    if level == 0:
        return
    s = Slots(1)
    s.add(0, BUY, 99, 1, level)
    s.queue[0] = min(front, float(level))
    new = level - int(chg * level)
    q0 = s.queue[0]
    s.on_book(kq.update_orders_on_book, book_arrays({99: new}, {101: 1}), model, power)
    assert s.queue[0] <= q0
    assert s.queue[0] <= new
    p = kq.compute_back_prob(front, back, model, power)
    assert 0.0 <= p <= 1.0

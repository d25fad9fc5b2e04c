"""Paper exchange kernels (`mmd.kernels.exchange`): the same event buffer and state whether the
kernels are called one by one from Python or inside one njit loop, on random command and
market sequences; fees as the Instrument arithmetic; return codes. The portfolio kernels
(`mmd.kernels.portfolio`): a worked example, and the same figures inside njit as the Portfolio
class."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from mmd.kernels import exchange as kx
from mmd.kernels import portfolio as kp
from mmd.model.codes import BUY, ERR_BAD_INPUT, ERR_FULL, OK, SELL
from mmd.model.events import MAKER, OrderFilled
from mmd.model.instrument import Instrument
from mmd.sim.fees import FeeSchedule
from mmd.trading.portfolio import Portfolio

# op rows: (kind, sym, ts_ns, a, b, c, d)
OP_SUBMIT, OP_CANCEL, OP_BOOK, OP_TRADE, OP_ADVANCE = 0, 1, 2, 3, 4
LEVELS = 5  # book capacity: 5 levels per side, so a full side's outer prices are "unknown"
INSTRUMENTS = {
    "BTCUSDT": Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001"),
    "ETHUSDT": Instrument(symbol="ETHUSDT", tick_size="0.01", lot_size="0.01"),
}


def make_ops(
    seed: int, n: int, n_sym: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random sequence of commands and market events over n_sym symbols, with the books.

    Returns: (ops int64[n, 7], books_px int64[n_books, 2, LEVELS], books_qty, books_n [n_books, 2]).
    Times mostly advance; a trade may be stamped before the last book (book-first path). Prices
    stay within a few ticks of a random-walk mid, so orders cross, join and improve levels.
    """
    rng = np.random.default_rng(seed)
    ops = np.zeros((n, 7), np.int64)
    books_px = np.zeros((n, 2, LEVELS), np.int64)
    books_qty = np.zeros((n, 2, LEVELS), np.int64)
    books_n = np.zeros((n, 2), np.int64)
    mid = [1000] * n_sym
    ts = 10
    n_books = 0
    next_id = 1
    for j in range(n):
        ts += int(rng.integers(0, 4))
        s = int(rng.integers(0, n_sym))
        u = rng.random()
        if u < 0.3:
            side = BUY if rng.random() < 0.5 else SELL
            px = mid[s] - side * int(rng.integers(-1, 5))  # sometimes through the touch
            oid = next_id if rng.random() < 0.9 else int(rng.integers(1, next_id + 1))
            next_id = max(next_id, oid + 1)
            qty = int(rng.integers(1, 4)) if rng.random() < 0.95 else 0
            ops[j] = (OP_SUBMIT, s, ts, oid, side, px, qty)
        elif u < 0.4:
            ops[j] = (OP_CANCEL, s, ts, int(rng.integers(1, next_id + 1)), 0, 0, 0)
        elif u < 0.7:
            mid[s] += int(rng.integers(-1, 2))
            for k, sign in ((0, -1), (1, 1)):
                m = 0
                for lvl in range(1, LEVELS + 2):
                    if m == LEVELS:
                        break
                    if rng.random() < 0.15:
                        continue  # a gap: that price is not a level
                    books_px[n_books, k, m] = mid[s] + sign * lvl
                    books_qty[n_books, k, m] = int(rng.integers(1, 7))
                    m += 1
                books_n[n_books, k] = m
            ops[j] = (OP_BOOK, s, ts, n_books, 0, 0, 0)
            n_books += 1
        elif u < 0.95:
            tts = ts - int(rng.integers(0, 3))
            taker = BUY if rng.random() < 0.5 else SELL
            px = mid[s] + int(rng.integers(-3, 4))
            ops[j] = (OP_TRADE, s, tts, px, int(rng.integers(1, 6)), taker, 0)
        else:
            ops[j] = (OP_ADVANCE, s, ts, 0, 0, 0, 0)
    m = max(n_books, 1)
    return ops, books_px[:m], books_qty[:m], books_n[:m]


@njit(cache=True)
def _drive(
    ops, books_px, books_qty, books_n, ex, syms, orders, free, cmds, events, sh_px, sh_qty, sh_n
):
    # applies ops to the exchange state; the book of the last market event of each symbol is
    # kept in sh_* for the commands (what SimExchange keeps while commands are in flight)
    for j in range(ops.shape[0]):
        k = ops[j, 0]
        s = ops[j, 1]
        ts = ops[j, 2]
        if k == OP_SUBMIT:
            kx.submit(ex, syms, cmds, s, ops[j, 3], ops[j, 4], ops[j, 5], ops[j, 6], ts)
        elif k == OP_CANCEL:
            kx.cancel(ex, syms, cmds, s, ops[j, 3], ts)
        else:
            kx.process_due(ex, syms, orders, free, cmds, events, sh_px, sh_qty, sh_n, ts)
            if k == OP_BOOK:
                b = ops[j, 3]
                kx.on_book(
                    ex,
                    syms,
                    orders,
                    free,
                    events,
                    s,
                    books_px[b, 0],
                    books_qty[b, 0],
                    books_n[b, 0],
                    books_px[b, 1],
                    books_qty[b, 1],
                    books_n[b, 1],
                    ts,
                )
                sh_px[s] = books_px[b]
                sh_qty[s] = books_qty[b]
                sh_n[s] = books_n[b]
            elif k == OP_TRADE:
                kx.on_trade(ex, syms, orders, free, events, s, ts, ops[j, 3], ops[j, 4], ops[j, 5])


def _state(
    model: int, partial: bool, n_sym: int, n_ops: int, entry_ns: int, cancel_ns: int
) -> list[np.ndarray]:
    ex, syms, orders, free, cmds, events = kx.alloc_exchange(
        n_sym, 6, n_cmd=n_ops + 1, n_events=8 * n_ops + 8
    )
    ex[0]["model"] = model
    ex[0]["power"] = 2.0
    ex[0]["partial"] = int(partial)
    ex[0]["maker_fee"] = 0.0002
    assert kx.set_latency(ex, entry_ns, cancel_ns) == OK
    syms["tick"], syms["lot"] = 0.1, 0.001
    syms["price_decimals"], syms["qty_decimals"] = 1, 3
    sh = [
        np.zeros((n_sym, 2, LEVELS), np.int64),
        np.zeros((n_sym, 2, LEVELS), np.int64),
        np.zeros((n_sym, 2), np.int64),
    ]
    return [ex, syms, orders, free, cmds, events, *sh]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    model=st.integers(0, 2),
    partial=st.booleans(),
    entry_ns=st.integers(0, 6),
    cancel_ns=st.integers(0, 6),
)
def test_python_calls_and_njit_loop_give_identical_events(
    seed: int, model: int, partial: bool, entry_ns: int, cancel_ns: int
) -> None:
    ops, bpx, bqty, bn = make_ops(seed, 300, 2)
    py = _state(model, partial, 2, len(ops), entry_ns, cancel_ns)
    jit = _state(model, partial, 2, len(ops), entry_ns, cancel_ns)
    _drive.py_func(ops, bpx, bqty, bn, *py)  # each kernel called from Python
    _drive(ops, bpx, bqty, bn, *jit)  # the same kernels inside one compiled loop
    n = int(py[0][0]["n_events"])
    assert n == int(jit[0][0]["n_events"])
    assert n > 0
    assert py[5][:n].tobytes() == jit[5][:n].tobytes()
    for a, b in zip(py[:5], jit[:5], strict=True):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("tick_size", ["0.1", "0.01", "0.5", "0.0001", "1"])
@pytest.mark.parametrize("lot_size", ["0.001", "0.01", "1", "0.00001"])
def test_fee_kernel_is_the_instrument_arithmetic(tick_size: str, lot_size: str) -> None:
    inst = Instrument(symbol="X", tick_size=tick_size, lot_size=lot_size)
    fees = FeeSchedule(0.0002, 0.00055)
    rng = np.random.default_rng(7)
    for px, qty in zip(
        rng.integers(1, 10**8, 200).tolist(), rng.integers(1, 10**5, 200).tolist(), strict=True
    ):
        want = fees.fee_quote(inst, MAKER, px, qty)
        got = kx.compute_fee_quote(
            0.0002, px, qty, inst.tick, inst.lot, inst.price_decimals, inst.qty_decimals
        )
        assert got == want


def test_fee_by_hand() -> None:
    # 651142 ticks x 0.1 = 65114.2 USDT, 3 lots x 0.001 = 0.003 BTC: notional 195.3426,
    # x 2 bp = 0.03906852 USDT
    assert kx.compute_fee_quote(0.0002, 651142, 3, 0.1, 0.001, 1, 3) == pytest.approx(
        0.03906852, rel=1e-12
    )


def test_return_codes() -> None:
    ex, syms, orders, free, cmds, events = kx.alloc_exchange(1, 2, n_cmd=2, n_events=4)
    assert kx.set_latency(ex, -1, 0) == ERR_BAD_INPUT
    assert kx.submit(ex, syms, cmds, 0, 1, BUY, 100, 1, 0) == OK
    assert kx.cancel(ex, syms, cmds, 0, 1, 0) == OK
    assert kx.submit(ex, syms, cmds, 0, 2, BUY, 100, 1, 0) == ERR_FULL  # FIFO full, not queued
    assert int(ex[0]["cmd_tail"]) == 2
    side = np.zeros(2, np.int64)
    assert kx.on_trade(ex, syms, orders, free, events, 0, 5, 100, 0, SELL) == ERR_BAD_INPUT
    assert kx.on_trade(ex, syms, orders, free, events, 0, 5, 100, 1, 0) == ERR_BAD_INPUT
    assert kx.on_book(ex, syms, orders, free, events, 1, side, side, 0, side, side, 0, 5) == (
        ERR_BAD_INPUT
    )
    # events room for 4, two commands due: both handled, a no_market_data reject and an
    # unknown_order reject (the submit was never accepted)
    bpx = np.zeros((1, 2, 2), np.int64)
    assert (
        kx.process_due(
            ex, syms, orders, free, cmds, events, bpx, bpx, np.zeros((1, 2), np.int64), 0
        )
        == 2
    )
    assert events["kind"][:2].tolist() == [kx.EVT_REJECTED, kx.EVT_REJECTED]
    assert events["reason"][:2].tolist() == [kx.REJ_NO_MARKET_DATA, kx.REJ_UNKNOWN_ORDER]
    # on_book needs room for a fill of every slot (2): with 2 events buffered it refuses
    ex[0]["n_events"] = 3
    assert kx.on_book(ex, syms, orders, free, events, 0, side, side, 0, side, side, 0, 5) == (
        ERR_FULL
    )


# -- portfolio kernels -------------------------------------------------------------------------


def test_portfolio_kernels_by_hand() -> None:
    # tick 0.1 x lot 0.001 = 1e-4 quote per tick-lot
    pos = kp.alloc_positions(np.array([1e-4]))
    # buy 2 @ 1000, buy 2 @ 1010: 4 long, cost 4020 (avg 1005)
    assert kp.apply_fill(pos, 0, BUY, 1000, 2, 0.01) == OK
    assert kp.apply_fill(pos, 0, BUY, 1010, 2, 0.01) == OK
    assert pos[0]["cost_ticks_lots"] == 4020.0
    # sell 3 @ 1020: 3 x (1020 - 1005) = 45 tick-lots = 0.0045 realized; 1 left at avg 1005
    assert kp.apply_fill(pos, 0, SELL, 1020, 3, 0.01) == OK
    assert kp.compute_realized_quote(pos, 0) == pytest.approx(0.0045, abs=1e-12)
    assert pos[0]["cost_ticks_lots"] == 1005.0
    # sell 3 @ 1000: closes 1 at -5 (total 40 = 0.004), opens 2 short at 1000
    assert kp.apply_fill(pos, 0, SELL, 1000, 3, 0.01) == OK
    assert pos[0]["position_lots"] == -2
    assert pos[0]["cash_ticks_lots"] == -2000 - 2020 + 3060 + 3000
    assert kp.compute_realized_quote(pos, 0) == pytest.approx(0.004, abs=1e-12)
    # mark 990: short 2 from 1000 gains 20 tick-lots = 0.002
    assert kp.update_mark(pos, 0, 990.0) == pytest.approx(0.002, abs=1e-12)
    assert kp.apply_funding(pos, 0, -0.5) == OK
    # 0.004 + 0.002 - 4 x 0.01 fees - 0.5 funding
    assert kp.compute_pnl_quote(pos, 0) == pytest.approx(-0.534, abs=1e-12)
    assert (pos[0]["fills"], pos[0]["volume_lots"]) == (4, 10)
    # refusals change nothing
    before = pos.tobytes()
    assert kp.apply_fill(pos, 0, 0, 1000, 1, 0.0) == ERR_BAD_INPUT
    assert kp.apply_fill(pos, 0, BUY, 1000, 0, 0.0) == ERR_BAD_INPUT
    assert kp.apply_fill(pos, 0, BUY, 1000, 1, float("nan")) == ERR_BAD_INPUT
    assert kp.apply_fill(pos, 1, BUY, 1000, 1, 0.0) == ERR_BAD_INPUT
    assert kp.apply_funding(pos, 0, float("inf")) == ERR_BAD_INPUT
    assert np.isnan(kp.update_mark(pos, 0, 0.0))
    assert pos.tobytes() == before


@njit(cache=True)
def _apply_fills_jit(pos, fills, fees):
    for j in range(fills.shape[0]):
        kp.apply_fill(pos, 0, fills[j, 0], fills[j, 1], fills[j, 2], fees[j])
        kp.update_mark(pos, 0, float(fills[j, 3]))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_portfolio_kernels_match_the_portfolio_class(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    fills = np.stack(
        [
            rng.choice([BUY, SELL], n),
            rng.integers(900, 1100, n),
            rng.integers(1, 6, n),
            rng.integers(900, 1100, n),
        ],
        axis=1,
    ).astype(np.int64)
    fees = rng.normal(0.0, 0.01, n)
    inst = INSTRUMENTS["BTCUSDT"]
    pf = Portfolio([inst])
    for j, (side, px, qty, mid) in enumerate(fills.tolist()):
        pf.apply_fill(
            OrderFilled(
                fill_id=f"f{j}",
                client_order_id="o",
                symbol=inst.symbol,
                side=side,
                px_ticks=px,
                qty_lots=qty,
                leaves_lots=0,
                liquidity=MAKER,
                fee_quote=float(fees[j]),
                ts_exch_ns=j,
            ),
            inst,
        )
        pf.mark(inst.symbol, float(mid))
    pos = kp.alloc_positions(np.array([inst.tick * inst.lot]))
    _apply_fills_jit(pos, fills, fees)
    p = pf.position(inst.symbol)
    row = pos[0]
    assert (int(row["position_lots"]), int(row["cash_ticks_lots"])) == (
        p.position_lots,
        p.cash_ticks_lots,
    )
    assert float(row["cost_ticks_lots"]) == p.cost_ticks_lots
    assert float(row["fees_quote"]) == p.fees_quote
    assert kp.compute_realized_quote(pos, 0) == p.realized_quote
    assert kp.compute_unrealized_quote(pos, 0) == p.unrealized_quote
    assert kp.compute_pnl_quote(pos, 0) == p.pnl_quote

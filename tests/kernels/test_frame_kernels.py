"""The live driver's compiled per-frame calls (mmd.kernels.frame) against the step-by-step path
they replace: the hub's book frame (book, crossed check, features, mids ring) on a real
recording, a symbol's decision (calibration, gate, quote, order diff) on every book of it, and
small hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest

from mmd.config import FeaturesConfig, MarketConfig, StrategyConfig
from mmd.feeds.bybit_codec import BookMsg
from mmd.feeds.recording import read_recording
from mmd.kernels.features import F_MID_TICKS
from mmd.kernels.frame import (
    DI_CODE,
    DI_GATE,
    DI_N_CMDS,
    FRAME_BAD_LEVELS,
    FRAME_CROSSED,
    NO_DECISION,
    advance_book_frame,
    decide_symbol_quotes,
)
from mmd.kernels.strategy import COMMAND_DTYPE, GATE_WAITING, ORDER_DTYPE
from mmd.market.features import FeatureEngine
from mmd.market.hub import MarketHub, Resync, SymbolState
from mmd.model.codes import OK
from mmd.strategy.engine import SymbolStrategy
from mmd.strategy.order_diff import CancelOrder, OpenOrder
from tests.book_oracle import features_on_book, is_crossed

I64 = np.int64
N_FRAMES = 12_000


def _arr(*xs: int) -> np.ndarray:
    return np.array(xs, I64)


class StepHub(MarketHub):
    """The hub with a synced book frame applied as separate calls (L2Book, FeatureEngine,
    RingBuffer), the path before the one compiled call; the sync checks are the hub's own."""

    def _apply_book(
        self,
        st: SymbolState,
        msg: BookMsg,
        is_snapshot: bool,
        levels: tuple[np.ndarray, ...],
        ts_recv_ns: int,
    ) -> list[Resync]:
        bpx, bqty, apx, aqty = levels
        book = st.book
        if is_snapshot:
            book.apply_snapshot(
                bpx, bqty, apx, aqty, u=msg.u, seq=msg.seq, ts_exch_ns=msg.ts_exch_ns
            )
        else:
            book.apply_delta(bpx, bqty, apx, aqty, u=msg.u, seq=msg.seq, ts_exch_ns=msg.ts_exch_ns)
        st.last_book_recv_ns = ts_recv_ns
        if is_crossed(book):
            return [self._resync(st, msg.symbol, "crossed")]
        features_on_book(st.features, book, msg.ts_exch_ns)
        mid = book.mid_ticks()
        if mid == mid:
            st.mids.append(ts_ns=msg.ts_exch_ns, mid_ticks=mid)
        return []


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


def _frames(rec, n: int = N_FRAMES):
    for k, (ts, raw) in enumerate(read_recording(rec)):
        if k >= n:
            return
        yield ts, raw


def test_book_frame_matches_the_step_by_step_hub_on_a_real_recording(binance_btc_rec) -> None:
    cfg = MarketConfig()
    fast = MarketHub(["BTCUSDT"], cfg)
    step = StepHub(["BTCUSDT"], cfg)
    for ts, raw in _frames(binance_btc_rec):
        results = []
        for hub in (fast, step):
            msg, refused = hub.decode(raw)
            results.append([r.symbol for r in refused] if msg is None else hub.on_message(msg, ts))
        assert results[0] == results[1]
        if "BTCUSDT" not in fast.states:
            continue
        a, b = fast.states["BTCUSDT"], step.states["BTCUSDT"]
        assert (a.book.n_bids, a.book.n_asks, a.book.u, a.book.ts_exch_ns) == (
            b.book.n_bids,
            b.book.n_asks,
            b.book.u,
            b.book.ts_exch_ns,
        )
        nb, na = a.book.n_bids, a.book.n_asks
        assert _same(a.book.bid_px[:nb], b.book.bid_px[:nb])
        assert _same(a.book.ask_qty[:na], b.book.ask_qty[:na])
        assert _same(a.features.x, b.features.x)
        assert a.mids.total == b.mids.total
    sa, sb = fast.states["BTCUSDT"], step.states["BTCUSDT"]
    assert _same(sa.mids.array("mid_ticks"), sb.mids.array("mid_ticks"))
    assert _same(sa.mids.array("ts_ns"), sb.mids.array("ts_ns"))
    assert sa.mids.total > 1000  # the comparison covered many two-sided books
    assert sa.book_updates > 1000


def _feature_state() -> tuple[np.ndarray, np.ndarray]:
    eng = FeatureEngine(FeaturesConfig(), tick_size=0.1, lot_size=0.001)
    return eng.kernel_state()


def test_book_frame_hand_cases() -> None:
    bid_px, bid_qty, ask_px, ask_qty = (np.zeros(4, I64) for _ in range(4))
    book = (bid_px, bid_qty, ask_px, ask_qty)
    counts = np.zeros(2, I64)
    feat = _feature_state()
    mids = (np.zeros(3, I64), np.zeros(3))
    total = np.zeros(1, I64)
    # snapshot: bids 100 x 5, 99 x 3; asks 102 x 4, 101 x 2 (any order) -> best bid 100, best
    # ask 101, mid (100 + 101) / 2 = 100.5 appended at slot 0
    rc = advance_book_frame(
        book,
        counts,
        feat,
        mids,
        total,
        (_arr(99, 100), _arr(3, 5), _arr(102, 101), _arr(4, 2)),
        True,
        7,
    )
    assert rc == OK
    assert counts.tolist() == [2, 2]
    assert bid_px[:2].tolist() == [100, 99] and ask_px[:2].tolist() == [101, 102]
    assert total[0] == 1 and mids[0][0] == 7 and mids[1][0] == 100.5
    assert feat[0][F_MID_TICKS] == 100.5
    # delta: the 101 ask deleted, a bid at 101 x 1 -> bids 101, 100, 99; asks 102; mid 101.5
    rc = advance_book_frame(
        book, counts, feat, mids, total, (_arr(101), _arr(1), _arr(101), _arr(0)), False, 8
    )
    assert rc == OK and counts.tolist() == [3, 1] and total[0] == 2 and mids[1][1] == 101.5
    # delta: an ask at 100 -> crossed (best bid 101 >= best ask 100): applied, but neither the
    # features nor the mids ring move
    x_before = feat[0].copy()
    rc = advance_book_frame(
        book, counts, feat, mids, total, (_arr(), _arr(), _arr(100), _arr(1)), False, 9
    )
    assert rc == FRAME_CROSSED and counts.tolist() == [3, 2] and total[0] == 2
    assert _same(feat[0], x_before)
    # a negative size: refused, counts untouched
    rc = advance_book_frame(
        book, counts, feat, mids, total, (_arr(98), _arr(-1), _arr(), _arr()), False, 10
    )
    assert rc == FRAME_BAD_LEVELS and counts.tolist() == [3, 2]


def _apply(open_orders: list[OpenOrder], cmds) -> None:
    for c in cmds:
        if isinstance(c, CancelOrder):
            open_orders[:] = [o for o in open_orders if o.client_order_id != c.client_order_id]
        else:
            open_orders.append(
                OpenOrder(c.client_order_id, c.side, c.px_ticks, c.qty_lots, c.qty_lots)
            )


@pytest.mark.parametrize("model", ["as", "glft"])
def test_decision_matches_the_step_by_step_strategy_on_a_real_recording(
    binance_btc_rec, model: str
) -> None:
    cfg = StrategyConfig(
        model=model,
        warmup_s=5.0,  # type: ignore[arg-type]
        levels=2,
        order_size=0.002,
        max_position=0.01,
    )
    hub = MarketHub(["BTCUSDT"], MarketConfig())
    strats: list[SymbolStrategy] = []
    orders: list[list[OpenOrder]] = [[], []]
    position = 0
    decisions = submits = 0
    for ts, raw in _frames(binance_btc_rec):
        msg, _ = hub.decode(raw)
        if msg is None:
            continue
        hub.on_message(msg, ts)
        st = hub.states.get("BTCUSDT")
        if not isinstance(msg, BookMsg) or st is None:
            continue
        if not strats:
            strats = [SymbolStrategy(cfg, st.instrument, ts) for _ in range(2)]
            strats[1].compiled = None
            assert strats[0].compiled
        # a position that moves, so the inventory terms are exercised too
        position = (position + 1) % 5 - 2 if ts % 7 == 0 else position
        halted = ts % 97 == 0
        out = [
            s.step(ts, st, list(o), position, halted=halted)
            for s, o in zip(strats, orders, strict=True)
        ]
        assert out[0] == out[1]
        a, b = strats
        assert a.gate.state == b.gate.state
        assert a.has_target == (b.target is not None)
        assert a.target == b.target
        assert a.quoter.reject_reason == b.quoter.reject_reason
        assert (a.decisions, a.submits, a.cancels) == (b.decisions, b.submits, b.cancels)
        assert _same(a.calibrator.cal_f, b.calibrator.cal_f)
        for o, cmds in zip(orders, out, strict=True):
            _apply(o, cmds)
        decisions, submits = a.decisions, a.submits
    assert decisions > 100 and submits > 10  # the comparison covered real quoting


def test_decision_hand_case_cancels_everything_while_the_gate_is_closed() -> None:
    from mmd.kernels import warmup as kw

    args = list(kw.SAMPLE_ARGS["frame.decide_symbol_quotes"]())
    dec_i = args[0]
    args[10] = 10**12  # the warm-up deadline far ahead, no good fit: the gate waits
    orders = np.zeros(2, ORDER_DTYPE)
    orders[0] = (0, 1, 99, 1, 1, 0)
    orders[1] = (1, -1, 102, 1, 1, 0)
    args[5] = orders
    args[6] = np.zeros(6, COMMAND_DTYPE)
    assert decide_symbol_quotes(*args) == OK
    assert dec_i[DI_GATE] == GATE_WAITING and dec_i[DI_CODE] == NO_DECISION
    assert dec_i[DI_N_CMDS] == 2  # one cancel per open order
    assert args[6]["oid"][:2].tolist() == [0, 1]

"""Strategy kernels (mmd.kernels.strategy) against the plain-Python strategy path they replaced,
on every decision of a real recording, and called inside njit against called from Python.

The reference below is the strategy's Python glue as it was before the kernels (ring copies
through RingBuffer.since, the calibrator's refit schedule and acceptance, Quoter.decide, the
order diff's matching, RiskGate.check's loop); it calls only the maths kernels that both paths
share (quotes, ladder, calibration window, fit).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest
from numba import njit

from mmd.config import MarketConfig, RiskConfig, StrategyConfig
from mmd.feeds.recording import read_recording
from mmd.kernels import strategy as ks
from mmd.kernels.calibration import (
    FIT_NON_POSITIVE_SLOPE,
    FIT_OK,
    FIT_POOR_R2,
    FIT_TOO_FEW_TRADES,
    I_N_OBS,
    I_WIN_TRADES,
    advance_steps,
    compute_intensity_fit,
    compute_sigma,
    update_arrival_counts,
    update_mid,
    update_trade,
)
from mmd.kernels.quotes import compute_as_quotes, compute_glft_quotes, compute_quote_ladder
from mmd.market.hub import MarketHub
from mmd.model.codes import BUY, ERR_CROSSED, OK, SELL
from mmd.model.events import CancelOrder, SubmitOrder
from mmd.strategy.calibration import IntensityCalibrator
from mmd.strategy.engine import SymbolStrategy
from mmd.strategy.order_diff import OpenOrder
from mmd.strategy.quoter import MlInputs
from mmd.trading.risk import REASONS, Rejection, RiskGate

# --- the Python path before the kernels (reference) ----------------------------------------


class RefCalibrator:
    """IntensityCalibrator's glue in Python: window arrays, refit schedule, acceptance."""

    def __init__(self, cal: IntensityCalibrator) -> None:
        # start from a fresh calibrator's arrays (copies) and parameters
        self.win = tuple(x.copy() for x in cal.win)
        self.cfg = cal.cfg
        self.step_s, self.step_ns, self.min_points = cal.step_s, cal.step_ns, cal.min_points
        self.refit_ns = round(cal.cfg.refit_s * 1e9)
        self.kappa, self.a, self.sigma = cal.kappa, cal.a, cal.sigma
        self.source = "fallback"
        self.fits = self.good_fits = self.poor_fits = 0
        self.r2 = self.raw_kappa = self.raw_a = self.raw_sigma = math.nan
        self.status = None
        self.next_refit_ns = -1

    def maybe_refit(self, now_ns: int) -> None:
        if self.next_refit_ns >= 0 and now_ns < self.next_refit_ns:
            return
        if self.next_refit_ns < 0:
            self.next_refit_ns = now_ns
        missed = (now_ns - self.next_refit_ns) // self.refit_ns
        self.next_refit_ns += (missed + 1) * self.refit_ns
        step_depth, step_trades, step_dmid, state_i, state_f, counts = self.win
        advance_steps(step_depth, step_trades, step_dmid, state_i, state_f, now_ns, self.step_ns)
        update_arrival_counts(counts, step_depth)
        n_trades = int(state_i[I_WIN_TRADES])
        window_s = int(state_i[I_N_OBS]) * self.step_s
        cfg = self.cfg
        if window_s > 0:
            status, kappa, a, r2, _n = compute_intensity_fit(
                counts, window_s, n_trades, int(cfg.min_trades), self.min_points, float(cfg.min_r2)
            )
        else:
            status, kappa, a, r2 = FIT_TOO_FEW_TRADES, math.nan, math.nan, math.nan
        sigma = float(compute_sigma(state_i, state_f, self.step_s))
        self.fits += 1
        self.raw_kappa, self.raw_a, self.r2, self.raw_sigma = (
            float(kappa),
            float(a),
            float(r2),
            sigma,
        )
        self.status = int(status)
        if status == FIT_OK:
            self.kappa = min(max(float(kappa), cfg.kappa_min), cfg.kappa_max)
            self.a = min(max(float(a), cfg.a_min), cfg.a_max)
            if sigma > 0:
                self.sigma = sigma
            self.source = "calibrated"
            self.good_fits += 1
        elif status in (FIT_NON_POSITIVE_SLOPE, FIT_POOR_R2):
            self.poor_fits += 1


def ref_decide(
    strat: SymbolStrategy,
    now_ns: int,
    book,
    sigma: float,
    kappa: float,
    a: float,
    q: int,
    ml: MlInputs,
):
    """Quoter.decide as Python: returns (bids, asks, reservation, half, source) or a reason."""
    qt = strat.quoter
    if book.n_bids == 0 or book.n_asks == 0:
        return "one_sided_book"
    best_bid, best_ask = int(book.bid_px[0]), int(book.ask_px[0])
    mid = 0.5 * (best_bid + best_ask)
    source = "calibrated"
    if math.isnan(sigma):
        sigma, source = qt._fallback_sigma, "fallback"
    if math.isnan(kappa):
        kappa, source = qt._fallback_kappa, "fallback"
    gamma = qt._gamma * ml.gamma_mult
    if qt._is_glft:
        if math.isnan(a):
            a, source = qt._fallback_a, "fallback"
        raw = compute_glft_quotes(mid, q, sigma, gamma, kappa, a, qt._order_lots)
    else:
        raw = compute_as_quotes(mid, q, sigma, gamma, kappa, qt.tau_s(now_ns))
    if math.isnan(raw[0]):
        return "bad_model_input"
    n = qt._levels
    bp, bq, ap, aq = (np.zeros(n, np.int64) for _ in range(4))
    code = compute_quote_ladder(
        bp,
        bq,
        ap,
        aq,
        raw[0],
        raw[1],
        raw[2],
        best_bid,
        best_ask,
        q,
        qt._max_lots,
        qt._min_spread_frac * mid,
        n,
        qt._spacing_ticks,
        qt._order_lots,
        qt._size_eta,
        ml.bid_mult,
        ml.ask_mult,
        ml.skew_ticks,
        ml.spread_override_ticks,
    )
    if code != OK:
        return "crossed_book" if code == ERR_CROSSED else "bad_ladder_input"
    bids = [(int(p), int(x)) for p, x in zip(bp, bq, strict=True) if x > 0]
    asks = [(int(p), int(x)) for p, x in zip(ap, aq, strict=True) if x > 0]
    return bids, asks, float(raw[2]), float(raw[3]), source


def ref_diff(bids, asks, orders: list[OpenOrder], tol: int) -> list[tuple]:
    """diff_quotes as Python: ("cancel", id) / ("submit", side, px, qty) tuples."""

    def sent(o: OpenOrder) -> int:
        return o.orig_lots if o.orig_lots > 0 else o.qty_lots

    def match(levels, side_orders):
        done, kept = [False] * len(levels), [False] * len(side_orders)
        for i, (px, qty) in enumerate(levels):
            for j, o in enumerate(side_orders):
                if not kept[j] and o.px_ticks == px and sent(o) == qty:
                    done[i] = kept[j] = True
                    break
        if tol > 0:
            for i, (px, qty) in enumerate(levels):
                if done[i]:
                    continue
                best_j, best_d = -1, tol + 1
                for j, o in enumerate(side_orders):
                    d = abs(o.px_ticks - px)
                    if not kept[j] and sent(o) == qty and d < best_d:
                        best_j, best_d = j, d
                if best_j >= 0:
                    done[i] = kept[best_j] = True
        return done, kept

    b_orders = [o for o in orders if o.side == BUY]
    a_orders = [o for o in orders if o.side == SELL]
    b_done, b_kept = match(bids, b_orders)
    a_done, a_kept = match(asks, a_orders)
    kept = {o.client_order_id for o, k in zip(b_orders, b_kept, strict=True) if k}
    kept |= {o.client_order_id for o, k in zip(a_orders, a_kept, strict=True) if k}
    out: list[tuple] = [
        ("cancel", o.client_order_id) for o in orders if o.client_order_id not in kept
    ]
    for side, levels, done in ((BUY, bids, b_done), (SELL, asks, a_done)):
        out += [("submit", side, p, x) for (p, x), d in zip(levels, done, strict=True) if not d]
    return out


@dataclass
class RefBucket:
    tokens: float
    last_ns: int


def ref_check(
    gate: RiskGate,
    buckets: dict,
    symbol: str,
    cmds,
    now_ns: int,
    pos: int,
    open_buy: int,
    open_sell: int,
    stale: bool,
) -> list[tuple[str, str]]:
    """RiskGate.check's loop as Python: (client_order_id, reason or "") per command."""
    inst = gate._instruments[symbol]
    b = buckets.get(symbol)
    if b is None:
        b = buckets[symbol] = RefBucket(gate._burst, now_ns)
    else:
        b.tokens = min(gate._burst, b.tokens + max(0, now_ns - b.last_ns) * gate._rate_per_ns)
        b.last_ns = max(b.last_ns, now_ns)
    out = []
    buy, sell = open_buy, open_sell
    for c in cmds:
        if isinstance(c, CancelOrder):
            b.tokens = max(0.0, b.tokens - 1.0)
            out.append((c.client_order_id, ""))
            continue
        exp = pos + buy + c.qty_lots if c.side == BUY else -(pos - sell - c.qty_lots)
        reason = ""
        if gate.halted:
            reason = "halted"
        elif stale:
            reason = "book_stale"
        elif exp > gate._max_lots[symbol]:
            reason = "max_position"
        elif (
            gate._cfg.max_notional > 0
            and exp * inst.lot * c.px_ticks * inst.tick > gate._cfg.max_notional
        ):
            reason = "max_notional"
        elif b.tokens < 1.0:
            reason = "rate_limit"
        out.append((c.client_order_id, reason))
        if reason:
            continue
        b.tokens -= 1.0
        if c.side == BUY:
            buy += c.qty_lots
        else:
            sell += c.qty_lots
    return out


# --- the whole decision inside one njit function --------------------------------------------


@njit
def _decide_in_njit(
    win,
    cursor,
    mids,
    trades,
    mid_total,
    trade_total,
    cal,
    quote,
    orders,
    n_orders,
    cmds,
    next_oid,
    done,
    now_ns,
    market_ns,
    book,
    q,
):
    cal_i, cal_f, cal_pi, cal_pf = cal
    tgt, dec_f, qpi, qpf, ml = quote
    best_bid, best_ask, n_bids, n_asks = book
    rc = ks.update_calibration_from_rings(
        win, cursor, mids, trades, mid_total, trade_total, cal_pi[ks.CPI_STEP_NS]
    )
    if rc != 0:
        return rc, -1
    if market_ns > 0:
        ks.update_calibration_schedule(win, cal_i, cal_f, cal_pi, cal_pf, market_ns)
    code = ks.compute_quote_decision(
        tgt,
        dec_f,
        qpi,
        qpf,
        ml,
        now_ns,
        best_bid,
        best_ask,
        n_bids,
        n_asks,
        cal_f[ks.CF_SIGMA],
        cal_f[ks.CF_KAPPA],
        cal_f[ks.CF_A],
        q,
    )
    if code != 0:
        return code, -1
    n = ks.compute_order_diff(
        cmds, orders, next_oid, done, tgt, n_orders, qpi[ks.QPI_TOLERANCE_TICKS]
    )
    return code, n


def _cfgs() -> list[tuple[str, StrategyConfig, MlInputs]]:
    base = StrategyConfig()
    return [
        ("as_default", base, MlInputs()),
        (
            "glft_ladder",
            msgspec.structs.replace(
                base,
                model="glft",
                order_size=0.004,
                levels=3,
                level_spacing_ticks=2,
                requote_tolerance_ticks=2,
                size_eta=0.5,
                max_position=0.02,
                min_spread_bps=0.5,
            ),
            MlInputs(bid_mult=1.2, ask_mult=0.9, gamma_mult=2.0, skew_ticks=0.5),
        ),
        (
            "as_tight",
            msgspec.structs.replace(
                base, session_s=60.0, requote_tolerance_ticks=0, order_size=0.002, gamma=1e-3
            ),
            MlInputs(spread_override_ticks=3.0),
        ),
    ]


# The first frames of the recording (of 19,801; about 2 of its 8 minutes) hold
# every kind of step the comparison is about: the fallback before the first fit, refits every
# 5 s, quotes, reference rejections, the halt windows below, risk rejections and (partial)
# fills; the counters at the end of the test assert that each one happened in the slice.
PARITY_FRAMES = 5500


@pytest.mark.parametrize("name,cfg,ml", _cfgs(), ids=[c[0] for c in _cfgs()])
def test_strategy_kernels_equal_python_path_on_every_decision(
    binance_btc_rec: Path, name: str, cfg: StrategyConfig, ml: MlInputs
) -> None:
    hub = MarketHub(["BTCUSDT"], MarketConfig())
    risk_cfg = RiskConfig(max_orders_per_s=8.0, max_notional=1500.0)
    strat: SymbolStrategy | None = None
    ref_cal: RefCalibrator | None = None
    ref_cursor = [0, 0]
    gate = ref_gate = None
    ref_buckets: dict = {}
    orders: list[OpenOrder] = []
    pos = 0
    n_dec = n_cmds = n_rej = n_fits = n_partial = n_njit = n_fill_pos = 0
    n_idle = n_ref_reject = n_halted_cancel = 0
    sources: set[str] = set()
    mids_k = trades_k = None
    tot_m, tot_t = np.zeros(1, np.int64), np.zeros(1, np.int64)
    n_gate_halted = 0
    frames = itertools.islice(read_recording(binance_btc_rec), PARITY_FRAMES)
    for i, (ts, raw) in enumerate(frames):
        hub.on_frame(raw, ts)
        st = hub.states.get("BTCUSDT")
        if st is None:
            continue
        if strat is None:
            start = st.book.ts_exch_ns if st.book.ts_exch_ns > 0 else ts
            strat = SymbolStrategy(cfg, st.instrument, start)
            strat.ml = ml
            ref_cal = RefCalibrator(strat.calibrator)
            gate = RiskGate(risk_cfg, cfg.max_position, [st.instrument])
            ref_gate = RiskGate(risk_cfg, cfg.max_position, [st.instrument])
            mids_k = (np.zeros(st.mids.capacity, np.int64), np.zeros(st.mids.capacity))
            trades_k = tuple(np.zeros(st.trades.capacity, np.int64) for _ in range(4))
        # ring append kernels rebuild the hub's rings row for row
        m_new = st.mids.since(int(tot_m[0]))
        for k in range(len(m_new["ts_ns"])):
            ks.append_ring_mid(*mids_k, tot_m, int(m_new["ts_ns"][k]), float(m_new["mid_ticks"][k]))
        t_new = st.trades.since(int(tot_t[0]))
        for k in range(len(t_new["ts_ns"])):
            ks.append_ring_trade(
                trades_k,
                tot_t,
                int(t_new["ts_ns"][k]),
                int(t_new["px_ticks"][k]),
                int(t_new["qty_lots"][k]),
                int(t_new["side"][k]),
            )
        assert tot_m[0] == st.mids.total and tot_t[0] == st.trades.total
        assert np.array_equal(mids_k[0], st.mids.column("ts_ns"))
        assert np.array_equal(mids_k[1], st.mids.column("mid_ticks"), equal_nan=True)
        assert np.array_equal(trades_k[3], st.trades.column("side"))

        # reference: pull the rings through RingBuffer.since copies, then refit on schedule
        m = st.mids.since(ref_cursor[0])
        t = st.trades.since(ref_cursor[1])
        ref_cursor = [st.mids.total, st.trades.total]
        step_ns = strat.calibrator.step_ns
        a_i = b_j = 0
        while a_i < len(m["ts_ns"]) or b_j < len(t["ts_ns"]):
            if b_j >= len(t["ts_ns"]) or (
                a_i < len(m["ts_ns"]) and m["ts_ns"][a_i] <= t["ts_ns"][b_j]
            ):
                update_mid(
                    *ref_cal.win[:5], int(m["ts_ns"][a_i]), float(m["mid_ticks"][a_i]), step_ns
                )
                a_i += 1
            else:
                update_trade(
                    *ref_cal.win[:5],
                    int(t["ts_ns"][b_j]),
                    int(t["px_ticks"][b_j]),
                    int(t["side"][b_j]),
                    step_ns,
                )
                b_j += 1
        if st.book.ts_exch_ns > 0:
            ref_cal.maybe_refit(st.book.ts_exch_ns)

        now = st.book.ts_exch_ns if st.book.ts_exch_ns > 0 else ts
        halted = 3000 <= i < 3200
        ref_orders = [
            OpenOrder(o.client_order_id, o.side, o.px_ticks, o.qty_lots, o.orig_lots)
            for o in orders
        ]
        cmds = strat.step(now, st, orders, pos, halted=halted)

        # calibration: identical window, fit and parameters
        cal = strat.calibrator
        for x, y in zip(cal.win, ref_cal.win, strict=True):
            assert np.array_equal(x, y, equal_nan=True), i
        assert (
            cal.kappa,
            cal.a,
            cal.sigma,
            cal.source,
            cal.fits,
            cal.good_fits,
            cal.poor_fits,
        ) == (
            ref_cal.kappa,
            ref_cal.a,
            ref_cal.sigma,
            ref_cal.source,
            ref_cal.fits,
            ref_cal.good_fits,
            ref_cal.poor_fits,
        ), i
        assert np.array_equal(
            [cal.r2, cal.raw_kappa, cal.raw_a, cal.raw_sigma],
            [ref_cal.r2, ref_cal.raw_kappa, ref_cal.raw_a, ref_cal.raw_sigma],
            equal_nan=True,
        ), i
        n_fits = cal.fits
        sources.add(cal.source)

        # decision and diff
        usable = st.sync.synced and not st.stale
        ready = strat.gate.ready
        if halted or not (ready and usable):
            want = [("cancel", o.client_order_id) for o in ref_orders]
            n_idle += 1
            n_halted_cancel += halted and bool(ref_orders)
        else:
            ref = ref_decide(strat, now, st.book, cal.sigma, cal.kappa, cal.a, pos, ml)
            if isinstance(ref, str):
                n_ref_reject += 1
                assert strat.target is None and strat.quoter.reject_reason == ref, i
                want = [("cancel", o.client_order_id) for o in ref_orders]
            else:
                n_dec += 1
                tg = strat.target
                assert (
                    tg.bids,
                    tg.asks,
                    tg.reservation_ticks,
                    tg.half_spread_ticks,
                    tg.params_source,
                ) == ref, i
                want = ref_diff(ref[0], ref[1], ref_orders, cfg.requote_tolerance_ticks)
        got = [
            ("cancel", c.client_order_id)
            if isinstance(c, CancelOrder)
            else ("submit", c.side, c.px_ticks, c.qty_lots)
            for c in cmds
        ]
        assert got == want, i
        n_cmds += len(cmds)

        # risk: the kernel gate and the Python loop give the same verdicts
        open_buy = sum(o.qty_lots for o in orders if o.side == BUY)
        open_sell = sum(o.qty_lots for o in orders if o.side == SELL)
        gate.halted = ref_gate.halted = 5000 <= i < 5100
        allowed, rejected = gate.check(
            "BTCUSDT",
            cmds,
            now_ns=now,
            position_lots=pos,
            open_buy_lots=open_buy,
            open_sell_lots=open_sell,
            book_stale=st.stale,
        )
        verdict = ref_check(
            ref_gate, ref_buckets, "BTCUSDT", cmds, now, pos, open_buy, open_sell, st.stale
        )
        rej = {r.command.client_order_id: r.reason for r in rejected}
        assert [(c.client_order_id, rej.get(c.client_order_id, "")) for c in cmds] == verdict
        assert all(isinstance(r, Rejection) and r.reason in REASONS for r in rejected)
        n_rej += len(rejected)
        n_gate_halted += sum(r.reason == "halted" for r in rejected)

        # the order manager, simply: allowed commands apply; a public trade through an order's
        # price fills half of it (at least one lot), so partly filled orders rest too
        for c in allowed:
            if isinstance(c, CancelOrder):
                orders = [o for o in orders if o.client_order_id != c.client_order_id]
            elif isinstance(c, SubmitOrder):
                orders.append(
                    OpenOrder(c.client_order_id, c.side, c.px_ticks, c.qty_lots, c.qty_lots)
                )
        for px, taker in zip(t_new["px_ticks"].tolist(), t_new["side"].tolist(), strict=True):
            kept = []
            for o in orders:
                if (o.side == BUY and taker == SELL and px <= o.px_ticks) or (
                    o.side == SELL and taker == BUY and px >= o.px_ticks
                ):
                    fill = max(1, o.qty_lots // 2)
                    pos += fill * o.side
                    n_fill_pos += pos != 0
                    o.qty_lots -= fill
                    n_partial += o.qty_lots > 0
                if o.qty_lots > 0:
                    kept.append(o)
            orders = kept

        # every 50th frame: the same decision inside one njit function from copied state
        if i % 50 == 0 and strat.target is not None and not halted:
            n_njit += _check_njit_equals_python(strat, st, orders, pos, now)
    print(
        f"{name}: {i + 1} frames, {n_dec} decisions, {n_cmds} commands, {n_rej} risk "
        f"rejections, {n_fits} refits, {n_partial} partial fills, final position {pos}, "
        f"{n_njit} njit checks, {n_idle} idle steps ({n_halted_cancel} halted with orders "
        f"to cancel), {n_ref_reject} refused quotes, {n_gate_halted} halted rejections, "
        f"sources {sorted(sources)}"
    )
    # the slice was long enough to see every kind of step (not a loop that checked nothing)
    assert i + 1 == PARITY_FRAMES
    assert n_dec > 1000 and n_cmds > 100 and n_fits > 10 and n_njit > 20
    assert sources == {"fallback", "calibrated"} and n_idle > 200 and n_halted_cancel > 0
    assert n_rej > n_gate_halted > 0
    assert strat.calibrator.good_fits > 0 and n_fill_pos > 0
    if cfg.order_size > 0.001:
        assert n_partial > 0


def _check_njit_equals_python(
    strat: SymbolStrategy, st, orders: list[OpenOrder], pos: int, now: int
) -> int:
    """Run ring read + refit + decision + diff from copies of the strategy's state twice: kernel
    by kernel from Python, and inside one njit function; both must agree exactly."""
    cal = strat.calibrator
    qt = strat.quoter
    book = st.book
    mids = (st.mids.column("ts_ns"), st.mids.column("mid_ticks"))
    trades = tuple(st.trades.column(f) for f in ("ts_ns", "px_ticks", "qty_lots", "side"))
    arr = np.zeros(len(orders), ks.ORDER_DTYPE)
    for j, o in enumerate(orders):
        arr[j] = (j, o.side, o.px_ticks, o.qty_lots, o.orig_lots, 0)
    # an older cursor so there are rows to read
    cursor0 = np.array([max(0, st.mids.total - 7), max(0, st.trades.total - 3)], np.int64)
    market_ns = book.ts_exch_ns + 10**10  # forces a refit

    def state():
        return (
            tuple(x.copy() for x in cal.win),
            cursor0.copy(),
            (cal.cal_i.copy(), cal.cal_f.copy(), cal.cal_pi, cal.cal_pf),
            (np.zeros_like(qt.tgt), np.zeros(ks.DF_SIZE), qt.qpi, qt.qpf, qt._ml.copy()),
            arr.copy(),
            np.zeros(len(orders) + 2 * qt.tgt.shape[1], ks.COMMAND_DTYPE),
            np.array([7], np.int64),
            np.zeros(2 * qt.tgt.shape[1], np.int64),
        )

    bk = (int(book.bid_px[0]), int(book.ask_px[0]), book.n_bids, book.n_asks)
    w1, c1, cl1, q1, o1, cm1, id1, d1 = state()
    ks.update_calibration_from_rings(
        w1, c1, mids, trades, st.mids.total, st.trades.total, cal.step_ns
    )
    ks.update_calibration_schedule(w1, *cl1, market_ns)
    code1 = ks.compute_quote_decision(
        *q1,
        now,
        *bk,
        float(cl1[1][ks.CF_SIGMA]),
        float(cl1[1][ks.CF_KAPPA]),
        float(cl1[1][ks.CF_A]),
        pos,
    )
    n1 = (
        ks.compute_order_diff(
            cm1, o1, id1, d1, q1[0], len(orders), int(qt.qpi[ks.QPI_TOLERANCE_TICKS])
        )
        if code1 == 0
        else -1
    )
    w2, c2, cl2, q2, o2, cm2, id2, d2 = state()
    code2, n2 = _decide_in_njit(
        w2,
        c2,
        mids,
        trades,
        st.mids.total,
        st.trades.total,
        cl2,
        q2,
        o2,
        len(orders),
        cm2,
        id2,
        d2,
        now,
        market_ns,
        bk,
        pos,
    )
    assert (code1, n1) == (code2, n2)
    for x, y in itertools.chain(
        zip(w1, w2, strict=True),
        zip(cl1[:2], cl2[:2], strict=True),
        zip(q1[:2], q2[:2], strict=True),
    ):
        assert np.array_equal(x, y, equal_nan=True)
    assert np.array_equal(cm1, cm2) and np.array_equal(c1, c2) and id1[0] == id2[0]
    return 1


def test_risk_kernel_reasons_follow_risk_gate_reasons() -> None:
    # the kernel's reason codes index REASONS from 1 (RiskGate.check maps them back)
    assert REASONS[ks.RISK_HALTED - 1] == "halted"
    assert REASONS[ks.RISK_BOOK_STALE - 1] == "book_stale"
    assert REASONS[ks.RISK_MAX_POSITION - 1] == "max_position"
    assert REASONS[ks.RISK_MAX_NOTIONAL - 1] == "max_notional"
    assert REASONS[ks.RISK_RATE_LIMIT - 1] == "rate_limit"


def test_compute_ring_since_matches_ring_buffer_since() -> None:
    from mmd.market.ring import RingBuffer

    ring = RingBuffer(5, {"v": np.int64})
    for total in range(13):
        for cursor in range(0, 15):
            got0, got_n = ks.compute_ring_since(ring.total, ring.capacity, cursor)
            want = ring.since(cursor)["v"].tolist()
            col = ring.column("v")
            assert [int(col[g % 5]) for g in range(got0, got0 + got_n)] == want, (total, cursor)
        ring.append(v=total * 10)

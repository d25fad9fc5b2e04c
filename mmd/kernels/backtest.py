"""The backtest loop over the event cache, one jitted call: book sync and apply, the strategy,
risk, the paper exchange (due commands, crossing, queue updates, trades), the order manager
and the portfolio (`advance`; state built by mmd.sim.strategy_loop.StrategyLoop).

The exchange steps are composed exactly as the SimExchange wrapper composes them (mmd/sim/
exchange.py): due commands are handled before each market event against the book as of the
last market event (the "shadow" book, copied when the first command of a quiet period is sent
and after a book event while commands are in flight), then the book or trade kernel runs, and
every order event is applied to the order manager and the portfolio in event order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.kernels.book import compute_mid_ticks
from mmd.kernels.book_sync import (
    SYNC_N_ASKS,
    SYNC_N_BIDS,
    SYNC_SYNCED,
    apply_cached_frame,
    reset_book_sync,
)
from mmd.kernels.exchange import (
    EVENT_DTYPE,
    EVT_ACCEPTED,
    EVT_CANCELED,
    EVT_FILLED,
    cancel,
    on_book,
    on_trade,
    process_due,
    set_latency,
    submit,
)
from mmd.kernels.portfolio import apply_fill, compute_pnl_quote, update_mark
from mmd.kernels.rl import MODE_OFF as RL_MODE_OFF
from mmd.kernels.rl import OBS_INV_FRAC, OBS_OFI, OBS_P_ADVERSE, OBS_SIGMA, OBS_TIME_FRAC, rl_decide
from mmd.kernels.rl import RPI_MODE as RL_MODE
from mmd.kernels.strategy import (
    ACCT_BOOK_STALE,
    ACCT_HALTED,
    ACCT_MAX_LOTS,
    ACCT_OPEN_BUY_LOTS,
    ACCT_OPEN_SELL_LOTS,
    ACCT_POSITION_LOTS,
    CF_A,
    CF_KAPPA,
    CF_SIGMA,
    CI_CALIBRATED,
    CPI_STEP_NS,
    GATE_WAITING,
    QPI_SESSION_NS,
    QPI_TOLERANCE_TICKS,
    RISK_OK,
    TG_ASK_PX,
    TG_ASK_QTY,
    TG_BID_PX,
    TG_BID_QTY,
    append_ring_mid,
    append_ring_trade,
    apply_risk_checks,
    compute_cancel_all,
    compute_gate_state,
    compute_order_diff,
    compute_quote_decision,
    update_calibration_from_rings,
    update_calibration_schedule,
)
from mmd.kernels.strategy import CMD_CANCEL as S_CMD_CANCEL
from mmd.kernels.strategy import CMD_SUBMIT as S_CMD_SUBMIT
from mmd.model.codes import (
    BUY,
    ERR_FULL,
    EV_BOOK,
    EV_INSTRUMENT,
    EV_TRADE,
    INST_CHANGED,
    INST_NEW,
    NS_PER_DAY,
    OK,
    SYNC_APPLY_DELTA,
    SYNC_APPLY_SNAPSHOT,
    SYNC_CROSSED,
)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Rec = npt.NDArray[np.void]  # rows of a kernels.exchange / portfolio structured dtype
# one group of the loop's state (data, mkt, exs, strat, acct, prm, rl, out: see below), arrays
# of several dtypes
Arrays = tuple[npt.NDArray[Any], ...]
# advance()'s arguments but stop_row: (data, mkt, exs, strat, oms, acct, prm, rl, out)
LoopState = tuple[Arrays, Arrays, Arrays, Arrays, I64, Arrays, Arrays, Arrays, Arrays]

# fill output columns (int64[n, FILL_WIDTH]; the fee goes to a parallel float64 column)
FILL_TS_NS = 0
FILL_SYM = 1
FILL_ORDER_ID = 2
FILL_SIDE = 3
FILL_PX = 4
FILL_QTY = 5
FILL_LEAVES = 6
FILL_WIDTH = 7

# result codes of the loop (besides OK)
ERR_FILLS_FULL = -101  # out_fills too small
ERR_KERNEL = -102  # an exchange or portfolio kernel refused (an invariant broke)


@njit(cache=True, nogil=True)
def _copy_shadow(
    books_px: I64, books_qty: I64, states: I64, sh_px: I64, sh_qty: I64, sh_n: I64, sym: int
) -> None:
    # the live levels only: the exchange kernels read a book side up to its level count
    for side in range(2):
        n = states[sym, SYNC_N_BIDS + side]
        for j in range(n):
            sh_px[sym, side, j] = books_px[sym, side, j]
            sh_qty[sym, side, j] = books_qty[sym, side, j]
        sh_n[sym, side] = n


# =============================================================================================
# The whole loop: market + strategy + risk + paper exchange + order manager + portfolio
# =============================================================================================
# The same steps, in the same order, as `mmd backtest --engine python` (FrameHandler -> MarketHub
# -> Trader.on_message -> Trader.quote after every book frame), over the event cache. State
# travels as tuples of arrays (see mmd.sim.strategy_loop.StrategyLoop, which builds them):
#
#   data  (read only): stream int64[n, 3] (kind, sym, idx), ev_recv int64[n], ev_frame int64[n],
#         frames int64[n_frames, 6], book_ts int64[n_frames], lv_px, lv_qty, inst_flags,
#         trade_ts, trade_px, trade_qty, trade_side
#   mkt   books_px, books_qty int64[n_sym, 2, cap], states int64[n_sym, SYNC_WIDTH],
#         mids_ts int64[n_sym, m_cap], mids_px float64[n_sym, m_cap],
#         tr_ts, tr_px, tr_qty, tr_side int64[n_sym, t_cap]
#   exs   ex, syms, orders, free, cmds, events (kernels.exchange), sh_px, sh_qty, sh_n (the
#         exchange's book as of the last market event)
#   strat si int64[n_sym, SI_SIZE]; calibration window stacked per symbol: w_depth, w_trades
#         int64[n_sym, n_steps], w_dmid float64[n_sym, n_steps], w_si, w_sf, w_counts;
#         cal_i, cal_f, cursor int64[n_sym, 2], tgt int64[n_sym, 4, levels], dec_f,
#         ml float64[n_sym, ML_SIZE], scratch: dcmds COMMAND_DTYPE, dorders ORDER_DTYPE,
#         done int64, next_oid int64[1], acct_row int64[ACCT_SIZE]
#   oms   int64[n_sym, oms_cap, OM_WIDTH]: our non-terminal orders in submission order
#   acct  pos POSITION_DTYPE[n_sym], bucket RISK_BUCKET_DTYPE[n_sym], g int64[G_SIZE],
#         gf float64[GF_SIZE], lat_ring int64[window], lat_sorted int64[window]
#   prm   qpi int64[n_sym, QPI_SIZE], qpf float64[n_sym, QPF_SIZE], cal_pi, cal_pf, rpf
#         float64[n_sym, RPF_SIZE], max_lots int64[n_sym], pi int64[PI_SIZE], pf float64[PF_SIZE]
#   rl    q, visits, rpi, rpf, actions, rs float64[n_sym, RS_SIZE], rng uint64[1],
#         obs float64[n_sym, OBS_SIZE] (mmd.kernels.rl)
#   out   fills int64[k, FILL_WIDTH], fees float64[k]; equity samples eq_ts int64, eq
#         float64, eq_pos int64, eq_sym int64; mid samples mid_ts int64, mid float64;
#         quote changes q_ts int64, q_bid float64, q_ask float64, q_sym int64

# per-symbol strategy slots (si)
SI_HAS_INST = 0  # the hub knows the instrument
SI_KNOWN = 1  # the trader saw it (Trader._ensure_symbol)
SI_STARTED = 2  # its SymbolStrategy exists
SI_START_NS = 3  # the strategy's start (receive clock): client ids and the warm-up deadline
SI_DEADLINE_NS = 4
SI_NEXT_OID = 5  # the next client id number (1, 2, ...)
SI_DECISIONS = 6
SI_SEEN = 7  # the exchange saw a book of it
SI_BOOK_TS = 8  # L2Book.ts_exch_ns (0 before the first applied frame)
SI_MIDS_TOTAL = 9
SI_TRADES_TOTAL = 10
SI_N_OMS = 11
SI_NEXT_SAMPLE_NS = 12
SI_SUBMITS = 13
SI_CANCELS = 14
SI_WIDENED = 15
SI_SIZE = 16

# order manager rows
OM_OID = 0
OM_SIDE = 1
OM_PX = 2
OM_QTY = 3
OM_LEAVES = 4
OM_STATUS = 5
OM_WIDTH = 6
OMS_PENDING_NEW = 1
OMS_LIVE = 2  # ACCEPTED or PARTIALLY_FILLED
OMS_PENDING_CANCEL = 4
OMS_RACED = 8  # filled in full while its cancel travels: the cancel's reject is still due

# global slots (g, gf)
G_ROW = 0  # next stream row
G_LAST_EXCH_NS = 1
G_RESTORED = 2
G_HALTED = 3
G_DAY = 4
G_HAS_LAST = 5
G_N_FILLS = 6
G_N_EQ = 7
G_N_MID = 8
G_N_QUOTE = 9
G_LAT_N = 10
G_LAT_HEAD = 11
G_LAT_MIN_RAW = 12
G_FRAME_EVENTS = 13  # order events seen in the current trade frame
G_N_SYM_INST = 14  # symbols the hub knows
G_SIZE = 15
GF_BASELINE = 0
GF_LAST_TOTAL = 1
GF_SIZE = 2

# parameters (pi, pf)
PI_ENTRY_NS = 0  # configured entry latency; < 0 = derived from the feed
PI_CANCEL_NS = 1
PI_DERIVE = 2  # push the derived latency into the exchange at every book
PI_MIN_SAMPLES = 3
PI_FALLBACK_NS = 4
PI_WARMUP_NS = 5
PI_SAMPLE_NS = 6  # equity/mid sampling period (exchange time)
PI_SIZE = 7
PF_MAX_LOSS = 0  # kill switch (quote); 0 = off
PF_LAT_SCALE = 1
PF_SIZE = 2


# advance() result codes (besides OK)
ERR_OMS_FULL = -103  # more live orders than the order manager's rows
ERR_OUT_FULL = -104  # a sample buffer is full
ERR_ORDER_STATE = -105  # an order event the order manager cannot apply (an invariant broke)
ERR_CALIBRATION = -106  # the calibration window refused a trade


@njit(cache=True, nogil=True)
def _feed_sample(g: I64, lat_ring: I64, lat_sorted: I64, ts_exch: int, ts_recv: int) -> None:
    # FeedDerivedLatency.on_feed_sample: samples above the most negative raw latency seen, a
    # sliding window kept sorted
    raw = ts_recv - ts_exch
    if raw < g[G_LAT_MIN_RAW]:
        g[G_LAT_MIN_RAW] = raw
    sample = max(0, raw - min(0, g[G_LAT_MIN_RAW]))
    w = lat_ring.shape[0]
    n = g[G_LAT_N]
    if n == w:
        old = lat_ring[g[G_LAT_HEAD]]
        j = 0  # bisect_left: the first copy of old
        while lat_sorted[j] < old:
            j += 1
        for k in range(j, n - 1):
            lat_sorted[k] = lat_sorted[k + 1]
        n -= 1
        lat_ring[g[G_LAT_HEAD]] = sample
        g[G_LAT_HEAD] = (g[G_LAT_HEAD] + 1) % w
    else:
        lat_ring[n] = sample
    j = n  # insort (right)
    while j > 0 and lat_sorted[j - 1] > sample:
        lat_sorted[j] = lat_sorted[j - 1]
        j -= 1
    lat_sorted[j] = sample
    g[G_LAT_N] = n + 1


@njit(cache=True, nogil=True)
def _feed_latency(g: I64, lat_sorted: I64, min_samples: int) -> int:
    n = g[G_LAT_N]
    if n < min_samples:
        return -1
    mid = n // 2
    if n % 2:
        return int(lat_sorted[mid])
    return int((lat_sorted[mid - 1] + lat_sorted[mid]) // 2)


@njit(cache=True, nogil=True)
def _total_pnl(pos: Rec) -> float:
    total = 0.0
    for s in range(pos.shape[0]):
        total += compute_pnl_quote(pos, s)
    return total


@njit(cache=True, nogil=True)
def _check_pnl(g: I64, gf: F64, pos: Rec, si: I64, pf: F64, ts_ns: int) -> int:
    # Trader._check_pnl: DayPnl.update, then RiskGate.on_pnl
    total = 0.0
    for s in range(pos.shape[0]):
        if si[s, SI_KNOWN]:
            total += compute_pnl_quote(pos, s)
    day = ts_ns // NS_PER_DAY
    if day != g[G_DAY]:
        if day < g[G_DAY]:
            return ERR_ORDER_STATE
        gf[GF_BASELINE] = total if g[G_HAS_LAST] == 0 else gf[GF_LAST_TOTAL]
        g[G_DAY] = day
    gf[GF_LAST_TOTAL] = total
    g[G_HAS_LAST] = 1
    limit = pf[PF_MAX_LOSS]
    if g[G_HALTED] == 0 and limit > 0 and total - gf[GF_BASELINE] <= -limit:
        g[G_HALTED] = 1
    return OK


@njit(cache=True, nogil=True)
def _oms_find(oms: I64, si: I64, s: int, oid: int) -> int:
    for j in range(si[s, SI_N_OMS]):
        if oms[s, j, OM_OID] == oid:
            return j
    return -1


@njit(cache=True, nogil=True)
def _oms_remove(oms: I64, si: I64, s: int, j: int) -> None:
    n = si[s, SI_N_OMS]
    for k in range(j, n - 1):
        for c in range(OM_WIDTH):
            oms[s, k, c] = oms[s, k + 1, c]
    si[s, SI_N_OMS] = n - 1


@njit(cache=True, nogil=True)
def _apply_events(
    ex: Rec, events: Rec, pos: Rec, g: I64, oms: I64, si: I64, o_fills: I64, o_fees: F64
) -> int:
    """Trader.apply_events over the exchange's event buffer: order manager, portfolio, fills
    out. Returns the number of events applied, or a negative code."""
    n = ex[0].n_events
    for k in range(n):
        e = events[k]
        s = e.sym
        j = _oms_find(oms, si, s, e.order_id)
        if j < 0:
            return ERR_ORDER_STATE
        st = oms[s, j, OM_STATUS]
        if e.kind == EVT_FILLED:
            if st in (OMS_PENDING_NEW, OMS_RACED):
                return ERR_ORDER_STATE
            leaves = oms[s, j, OM_LEAVES] - e.qty_lots
            if leaves != e.leaves_lots or leaves < 0:
                return ERR_ORDER_STATE
            oms[s, j, OM_LEAVES] = leaves
            if apply_fill(pos, s, e.side, e.px_ticks, e.qty_lots, e.fee_quote) < 0:
                return ERR_KERNEL
            nf = g[G_N_FILLS]
            if nf >= o_fills.shape[0]:
                return ERR_FILLS_FULL
            r = o_fills[nf]
            r[FILL_TS_NS] = e.ts_ns
            r[FILL_SYM] = s
            r[FILL_ORDER_ID] = e.order_id
            r[FILL_SIDE] = e.side
            r[FILL_PX] = e.px_ticks
            r[FILL_QTY] = e.qty_lots
            r[FILL_LEAVES] = e.leaves_lots
            o_fees[nf] = e.fee_quote
            g[G_N_FILLS] = nf + 1
            if leaves == 0:
                if st == OMS_PENDING_CANCEL:
                    oms[s, j, OM_STATUS] = OMS_RACED
                else:
                    _oms_remove(oms, si, s, j)
        elif e.kind == EVT_ACCEPTED:
            if st != OMS_PENDING_NEW:
                return ERR_ORDER_STATE
            oms[s, j, OM_STATUS] = OMS_LIVE
        elif e.kind == EVT_CANCELED:
            if st != OMS_PENDING_CANCEL:
                return ERR_ORDER_STATE
            _oms_remove(oms, si, s, j)
        else:  # rejected
            if st in (OMS_RACED, OMS_PENDING_NEW):
                _oms_remove(oms, si, s, j)
            elif st == OMS_PENDING_CANCEL:
                oms[s, j, OM_STATUS] = OMS_LIVE
            else:
                return ERR_ORDER_STATE
    ex[0].n_events = 0
    return int(n)


@njit(cache=True, nogil=True)
def _due_and_apply(
    exs: Arrays, pos: Rec, g: I64, oms: I64, si: I64, o_fills: I64, o_fees: F64, now_ns: int
) -> int:
    """SimExchange._process_due then apply: returns events applied or a negative code."""
    ex, syms, orders, free, cmds, events, sh_px, sh_qty, sh_n = exs
    total = 0
    while True:
        rc = process_due(ex, syms, orders, free, cmds, events, sh_px, sh_qty, sh_n, now_ns)
        n = _apply_events(ex, events, pos, g, oms, si, o_fills, o_fees)
        if n < 0:
            return n
        total += n
        if rc != ERR_FULL:
            break
    if rc < 0:
        return ERR_KERNEL
    return total


@njit(cache=True, nogil=True)
def _send_commands(
    ex: Rec,
    syms: Rec,
    cmds: Rec,
    books_px: I64,
    books_qty: I64,
    states: I64,
    sh_px: I64,
    sh_qty: I64,
    sh_n: I64,
    oms: I64,
    si: I64,
    dcmds: Rec,
    n_cmds: int,
    s: int,
    exch_ns: int,
) -> int:
    """Trader.send for every allowed command: order manager, then the wire."""
    for k in range(n_cmds):
        c = dcmds[k]
        if c["reason"] != RISK_OK:
            continue
        if si[s, SI_SEEN] and syms[s].pending == 0:
            _copy_shadow(books_px, books_qty, states, sh_px, sh_qty, sh_n, s)
        oid = c["oid"]
        if c["kind"] == S_CMD_SUBMIT:
            n = si[s, SI_N_OMS]
            if n >= oms.shape[1]:
                return ERR_OMS_FULL
            oms[s, n, OM_OID] = oid
            oms[s, n, OM_SIDE] = c["side"]
            oms[s, n, OM_PX] = c["px_ticks"]
            oms[s, n, OM_QTY] = c["qty_lots"]
            oms[s, n, OM_LEAVES] = c["qty_lots"]
            oms[s, n, OM_STATUS] = OMS_PENDING_NEW
            si[s, SI_N_OMS] = n + 1
            si[s, SI_SUBMITS] += 1
            rc = submit(ex, syms, cmds, s, oid, c["side"], c["px_ticks"], c["qty_lots"], exch_ns)
        else:
            j = _oms_find(oms, si, s, oid)
            if j < 0 or oms[s, j, OM_STATUS] != OMS_LIVE:
                return ERR_ORDER_STATE
            oms[s, j, OM_STATUS] = OMS_PENDING_CANCEL
            si[s, SI_CANCELS] += 1
            rc = cancel(ex, syms, cmds, s, oid, exch_ns)
        if rc < 0:
            return ERR_KERNEL
    return OK


@njit(cache=True, nogil=True, inline="always")
def _quote(
    data: Arrays,
    mkt: Arrays,
    exs: Arrays,
    strat: Arrays,
    oms: I64,
    acct: Arrays,
    prm: Arrays,
    rl: Arrays,
    out: Arrays,
    s: int,
    now_ns: int,
) -> int:
    """Trader.quote(now_ns, [symbol]) for symbol s: SymbolStrategy.step, filter_cancels, risk,
    send. Returns OK or a negative code."""
    books_px, books_qty, states = mkt[0], mkt[1], mkt[2]
    mids_ts, mids_px, tr_ts, tr_px, tr_qty, tr_side = mkt[3], mkt[4], mkt[5], mkt[6], mkt[7], mkt[8]
    (
        si,
        w_depth,
        w_trades,
        w_dmid,
        w_si,
        w_sf,
        w_counts,
        cal_i,
        cal_f,
        cursor,
        tgt,
        dec_f,
        ml,
        dcmds,
        dorders,
        done,
        next_oid,
        acct_row,
    ) = strat
    pos, bucket, g, lat_sorted = acct[0], acct[1], acct[2], acct[5]
    qpi, qpf, cal_pi, cal_pf, rpf, max_lots, pi = prm[:7]
    feed_ns = max(0, _feed_latency(g, lat_sorted, pi[PI_MIN_SAMPLES]))
    if si[s, SI_STARTED] == 0:
        si[s, SI_STARTED] = 1
        si[s, SI_START_NS] = now_ns
        si[s, SI_DEADLINE_NS] = now_ns + pi[PI_WARMUP_NS]
    # calibration: the rings' new rows, then the refit schedule on the book's time
    win = (w_depth[s], w_trades[s], w_dmid[s], w_si[s], w_sf[s], w_counts[s])
    rc = update_calibration_from_rings(
        win,
        cursor[s],
        (mids_ts[s], mids_px[s]),
        (tr_ts[s], tr_px[s], tr_qty[s], tr_side[s]),
        si[s, SI_MIDS_TOTAL],
        si[s, SI_TRADES_TOTAL],
        cal_pi[s, CPI_STEP_NS],
    )
    if rc != OK:
        return ERR_CALIBRATION
    market_ns = si[s, SI_BOOK_TS]
    if market_ns > 0:
        update_calibration_schedule(win, cal_i[s], cal_f[s], cal_pi[s], cal_pf[s], market_ns)
    st = states[s]
    usable = st[SYNC_SYNCED] != 0
    gate = compute_gate_state(now_ns, si[s, SI_DEADLINE_NS], usable, cal_i[s, CI_CALIBRATED] != 0)
    # open orders: non-terminal and not being cancelled, in submission order
    n_open = 0
    for j in range(si[s, SI_N_OMS]):
        stt = oms[s, j, OM_STATUS]
        if stt in (OMS_PENDING_NEW, OMS_LIVE):
            o = dorders[n_open]
            o["oid"] = oms[s, j, OM_OID]
            o["side"] = oms[s, j, OM_SIDE]
            o["px_ticks"] = oms[s, j, OM_PX]
            o["qty_lots"] = oms[s, j, OM_LEAVES]
            o["orig_lots"] = oms[s, j, OM_QTY]
            o["keep"] = 0
            n_open += 1
    position = pos[s].position_lots
    has_target = False
    if g[G_HALTED] != 0 or gate == GATE_WAITING or not usable:
        n_cmds = compute_cancel_all(dcmds, dorders, n_open)
    else:
        n_bids = st[SYNC_N_BIDS]
        n_asks = st[SYNC_N_ASKS]
        has_book = n_bids > 0 and n_asks > 0
        best_bid = books_px[s, 0, 0] if has_book else 0
        best_ask = books_px[s, 1, 0] if has_book else 0
        if rl[2][RL_MODE] != RL_MODE_OFF:
            _rl_step(rl, ml, pos, cal_f, qpi, qpf, si, max_lots, books_px, st, s, now_ns)
        code = compute_quote_decision(
            tgt[s],
            dec_f[s],
            qpi[s],
            qpf[s],
            ml[s],
            now_ns,
            best_bid,
            best_ask,
            n_bids,
            n_asks,
            cal_f[s, CF_SIGMA],
            cal_f[s, CF_KAPPA],
            cal_f[s, CF_A],
            position,
        )
        si[s, SI_DECISIONS] += 1
        if code != OK:
            n_cmds = compute_cancel_all(dcmds, dorders, n_open)
        else:
            has_target = True
            next_oid[0] = si[s, SI_NEXT_OID]
            n_cmds = compute_order_diff(
                dcmds, dorders, next_oid, done, tgt[s], n_open, qpi[s, QPI_TOLERANCE_TICKS]
            )
            si[s, SI_NEXT_OID] = next_oid[0]
    if n_cmds < 0:
        return ERR_KERNEL
    # the target's top for the report (NaN = no level on that side)
    bid_top = math.nan
    ask_top = math.nan
    if has_target:
        for i in range(tgt.shape[2]):
            if tgt[s, TG_BID_QTY, i] > 0:
                bid_top = float(tgt[s, TG_BID_PX, i])
                break
        for i in range(tgt.shape[2]):
            if tgt[s, TG_ASK_QTY, i] > 0:
                ask_top = float(tgt[s, TG_ASK_PX, i])
                break
    strat_tops = out[13]
    strat_tops[s, 0] = bid_top
    strat_tops[s, 1] = ask_top
    if n_cmds == 0:
        return OK
    # Orders.filter_cancels: a cancel of an order still travelling waits; the diff's
    # cancel oids are the order manager's oids
    k = 0
    for j in range(n_cmds):
        c = dcmds[j]
        if c["kind"] == S_CMD_CANCEL:
            r = _oms_find(oms, si, s, c["oid"])
            if r >= 0 and oms[s, r, OM_STATUS] != OMS_LIVE:
                continue
        if k != j:
            dcmds[k] = dcmds[j]
        k += 1
    n_cmds = k
    buy_lots = 0
    sell_lots = 0
    for j in range(si[s, SI_N_OMS]):
        if oms[s, j, OM_STATUS] == OMS_RACED:
            continue
        if oms[s, j, OM_SIDE] == BUY:
            buy_lots += oms[s, j, OM_LEAVES]
        else:
            sell_lots += oms[s, j, OM_LEAVES]
    acct_row[ACCT_POSITION_LOTS] = position
    acct_row[ACCT_OPEN_BUY_LOTS] = buy_lots
    acct_row[ACCT_OPEN_SELL_LOTS] = sell_lots
    acct_row[ACCT_BOOK_STALE] = 0 if usable else 1
    acct_row[ACCT_HALTED] = g[G_HALTED]
    acct_row[ACCT_MAX_LOTS] = max_lots[s]
    apply_risk_checks(dcmds, bucket[s : s + 1], rpf[s], acct_row, n_cmds, now_ns)
    decided = max(si[s, SI_BOOK_TS], 0) + feed_ns
    ex, syms, cmds, sh_px, sh_qty, sh_n = exs[0], exs[1], exs[4], exs[6], exs[7], exs[8]
    return _send_commands(
        ex,
        syms,
        cmds,
        books_px,
        books_qty,
        states,
        sh_px,
        sh_qty,
        sh_n,
        oms,
        si,
        dcmds,
        n_cmds,
        s,
        decided,
    )


@njit(cache=True, nogil=True)
def _rl_step(
    rl: Arrays,
    ml: F64,
    pos: Rec,
    cal_f: F64,
    qpi: I64,
    qpf: F64,
    si: I64,
    max_lots: I64,
    books_px: I64,
    st: I64,
    s: int,
    now_ns: int,
) -> None:
    q, visits, rpi, rpf_rl, actions, rs, rng, obs = rl
    ob = obs[s]
    ml_max = max_lots[s]
    ob[OBS_INV_FRAC] = pos[s].position_lots / ml_max if ml_max > 0 else 0.0
    ob[OBS_SIGMA] = cal_f[s, CF_SIGMA]
    ob[OBS_OFI] = 0.0
    ob[OBS_P_ADVERSE] = math.nan
    session = qpi[s, QPI_SESSION_NS]
    ob[OBS_TIME_FRAC] = (now_ns % session) / session
    mid = compute_mid_ticks(books_px[s, 0], st[SYNC_N_BIDS], books_px[s, 1], st[SYNC_N_ASKS])
    rl_decide(
        q,
        visits,
        rpi,
        rpf_rl,
        actions,
        rs[s],
        rng,
        ml[s],
        ob,
        now_ns,
        compute_pnl_quote(pos, s),
        mid,
        pos[s].position_lots,
        ml_max,
        pos[s].quote_per_tick_lot,
    )


@njit(cache=True, nogil=True, inline="always")
def _sample(mkt: Arrays, acct: Arrays, si: I64, out: Arrays, prm: Arrays, s: int) -> int:
    """What `mmd backtest` samples after a frame of a synced symbol: the equity curve and
    the mid every PI_SAMPLE_NS of the book's time, and the quote target's top when it
    changed."""
    books_px, states = mkt[0], mkt[2]
    pos = acct[0]
    g = acct[2]
    pi = prm[6]
    (o_eq_ts, o_eq, o_eq_pos, o_eq_sym, o_mid_ts, o_mid, o_q_ts, o_q_bid, o_q_ask, o_q_sym) = (
        out[2],
        out[3],
        out[4],
        out[5],
        out[6],
        out[7],
        out[8],
        out[9],
        out[10],
        out[11],
    )
    last_q = out[12]
    tops = out[13]
    st = states[s]
    t = si[s, SI_BOOK_TS]
    if t >= si[s, SI_NEXT_SAMPLE_NS]:
        si[s, SI_NEXT_SAMPLE_NS] = t + pi[PI_SAMPLE_NS]
        m = compute_mid_ticks(books_px[s, 0], st[SYNC_N_BIDS], books_px[s, 1], st[SYNC_N_ASKS])
        if m == m:
            k = g[G_N_MID]
            if k >= o_mid_ts.shape[0]:
                return ERR_OUT_FULL
            o_mid_ts[k] = t
            o_mid[k] = m
            g[G_N_MID] = k + 1
        k = g[G_N_EQ]
        if k >= o_eq_ts.shape[0]:
            return ERR_OUT_FULL
        o_eq_ts[k] = t
        o_eq[k] = _total_pnl(pos)
        o_eq_pos[k] = pos[s].position_lots
        o_eq_sym[k] = s
        g[G_N_EQ] = k + 1
    b = tops[s, 0]
    a = tops[s, 1]
    lb = last_q[s, 0]
    la = last_q[s, 1]
    same_b = (b == lb) or (b != b and lb != lb)
    same_a = (a == la) or (a != a and la != la)
    if not (same_b and same_a):
        k = g[G_N_QUOTE]
        if k >= o_q_ts.shape[0]:
            return ERR_OUT_FULL
        o_q_ts[k] = t
        o_q_bid[k] = b
        o_q_ask[k] = a
        o_q_sym[k] = s
        g[G_N_QUOTE] = k + 1
        last_q[s, 0] = b
        last_q[s, 1] = a
    return OK


@njit(cache=True, nogil=True, inline="always")
def _on_book_event(
    data: Arrays,
    mkt: Arrays,
    exs: Arrays,
    strat: Arrays,
    oms: I64,
    acct: Arrays,
    prm: Arrays,
    rl: Arrays,
    out: Arrays,
    s: int,
    idx: int,
    recv: int,
) -> int:
    frames, book_ts = data[3], data[4]
    lv_px, lv_qty = data[5], data[6]
    books_px, books_qty, states, mids_ts, mids_px = mkt[0], mkt[1], mkt[2], mkt[3], mkt[4]
    ex, syms, orders, free, events = exs[0], exs[1], exs[2], exs[3], exs[5]
    sh_px, sh_qty, sh_n = exs[6], exs[7], exs[8]
    si = strat[0]
    pos, g, gf, lat_ring, lat_sorted = acct[0], acct[2], acct[3], acct[4], acct[5]
    pi, pf = prm[6], prm[7]
    st = states[s]
    ts = book_ts[idx]
    # MarketHub._on_book: book sync and apply, then the mids ring
    code = apply_cached_frame(books_px, books_qty, states, s, frames, idx, lv_px, lv_qty)
    if code in (SYNC_APPLY_SNAPSHOT, SYNC_APPLY_DELTA, SYNC_CROSSED):
        si[s, SI_BOOK_TS] = ts
    if code in (SYNC_APPLY_SNAPSHOT, SYNC_APPLY_DELTA):
        m = compute_mid_ticks(books_px[s, 0], st[SYNC_N_BIDS], books_px[s, 1], st[SYNC_N_ASKS])
        if m == m:
            append_ring_mid(mids_ts[s], mids_px[s], si[s, SI_MIDS_TOTAL : SI_MIDS_TOTAL + 1], ts, m)
    # Trader.on_message (book): only a synced book of this frame's time
    if st[SYNC_SYNCED] and si[s, SI_BOOK_TS] == ts:
        if ts > g[G_LAST_EXCH_NS]:
            g[G_LAST_EXCH_NS] = ts
        si[s, SI_KNOWN] = 1
        _feed_sample(g, lat_ring, lat_sorted, ts, recv)
        if pi[PI_DERIVE]:
            med = _feed_latency(g, lat_sorted, pi[PI_MIN_SAMPLES])
            derived = pi[PI_FALLBACK_NS] if med < 0 else round(med * pf[PF_LAT_SCALE])
            entry = pi[PI_ENTRY_NS] if pi[PI_ENTRY_NS] >= 0 else derived
            canc = pi[PI_CANCEL_NS] if pi[PI_CANCEL_NS] >= 0 else derived
            set_latency(ex, entry, canc)
        n_ev = 0
        if ex[0].cmd_tail > ex[0].cmd_head:
            n_ev = _due_and_apply(exs, pos, g, oms, si, out[0], out[1], ts)
            if n_ev < 0:
                return n_ev
        si[s, SI_SEEN] = 1
        rc = on_book(
            ex,
            syms,
            orders,
            free,
            events,
            s,
            books_px[s, 0],
            books_qty[s, 0],
            st[SYNC_N_BIDS],
            books_px[s, 1],
            books_qty[s, 1],
            st[SYNC_N_ASKS],
            ts,
        )
        if rc < 0:
            return ERR_KERNEL
        if rc:
            n = _apply_events(ex, events, pos, g, oms, si, out[0], out[1])
            if n < 0:
                return n
            n_ev += n
        if syms[s].pending:
            _copy_shadow(books_px, books_qty, states, sh_px, sh_qty, sh_n, s)
        if n_ev > 0:
            rc = _check_pnl(g, gf, pos, si, pf, g[G_LAST_EXCH_NS])
            if rc < 0:
                return rc
        m = compute_mid_ticks(books_px[s, 0], st[SYNC_N_BIDS], books_px[s, 1], st[SYNC_N_ASKS])
        if m == m and m > 0:
            update_mark(pos, s, m)
            rc = _check_pnl(g, gf, pos, si, pf, g[G_LAST_EXCH_NS])
            if rc < 0:
                return rc
    # FrameHandler (replay/backtest): quote after every book frame
    if g[G_RESTORED] == 0:
        if g[G_N_SYM_INST] < si.shape[0]:
            return OK
        g[G_RESTORED] = 1
    if si[s, SI_HAS_INST]:
        rc = _quote(data, mkt, exs, strat, oms, acct, prm, rl, out, s, recv)
        if rc < 0:
            return rc
    if st[SYNC_SYNCED]:
        return _sample(mkt, acct, si, out, prm, s)
    return OK


@njit(cache=True, nogil=True)
def advance(
    data: Arrays,
    mkt: Arrays,
    exs: Arrays,
    strat: Arrays,
    oms: I64,
    acct: Arrays,
    prm: Arrays,
    rl: Arrays,
    out: Arrays,
    stop_row: int,
) -> int:
    """Run the backtest from stream row acct[2][G_ROW] up to (not including) stop_row.

    Every event is handled as `mmd backtest --engine python` handles its frame: a book frame
    goes through book sync, the mids ring, the paper exchange (due commands, then the book),
    the order manager and portfolio, the mark and the kill switch, then the strategy quotes
    (calibration from the rings, warm-up gate, optional RL action, quote decision, order diff,
    cancels of travelling orders deferred, risk checks, send at the book's time + the feed
    latency); a trade goes into the trades ring and through the paper exchange; an instrument
    row starts the symbol's book. The layouts of the state tuples are listed above.

    Resumable: state lives only in the arrays, so calling again with a later stop_row goes on
    where the last call stopped (the RL trainer steps it from its own njit loop).

    Mutates: mkt, exs, strat, oms, acct (and acct[2][G_ROW]), rl (q/visits/rs/rng/obs when RL
    is on), out.
    Returns: OK, or ERR_FILLS_FULL / ERR_OUT_FULL (buffers too small: rerun with larger ones),
    ERR_KERNEL, ERR_OMS_FULL, ERR_ORDER_STATE, ERR_CALIBRATION.
    """
    stream, ev_recv, ev_frame = data[0], data[1], data[2]
    inst_flags = data[7]
    trade_ts, trade_px, trade_qty, trade_side = data[8], data[9], data[10], data[11]
    states = mkt[2]
    tr_ts, tr_px, tr_qty, tr_side = mkt[5], mkt[6], mkt[7], mkt[8]
    ex, syms, orders, free, events = exs[0], exs[1], exs[2], exs[3], exs[5]
    si = strat[0]
    pos, g, gf = acct[0], acct[2], acct[3]
    pf = prm[7]
    n_rows = min(stop_row, stream.shape[0])
    i = g[G_ROW]
    while i < n_rows:
        kind = stream[i, 0]
        s = stream[i, 1]
        idx = stream[i, 2]
        if kind == EV_BOOK:
            rc = _on_book_event(data, mkt, exs, strat, oms, acct, prm, rl, out, s, idx, ev_recv[i])
            if rc < 0:
                g[G_ROW] = i
                return rc
        elif kind == EV_TRADE:
            ts = trade_ts[idx]
            append_ring_trade(
                (tr_ts[s], tr_px[s], tr_qty[s], tr_side[s]),
                si[s, SI_TRADES_TOTAL : SI_TRADES_TOTAL + 1],
                ts,
                trade_px[idx],
                trade_qty[idx],
                trade_side[idx],
            )
            si[s, SI_KNOWN] = 1
            if ts > g[G_LAST_EXCH_NS]:
                g[G_LAST_EXCH_NS] = ts
            if ex[0].cmd_tail > ex[0].cmd_head:
                n = _due_and_apply(exs, pos, g, oms, si, out[0], out[1], ts)
                if n < 0:
                    g[G_ROW] = i
                    return n
                g[G_FRAME_EVENTS] += n
            rc = on_trade(
                ex,
                syms,
                orders,
                free,
                events,
                s,
                ts,
                trade_px[idx],
                trade_qty[idx],
                trade_side[idx],
            )
            if rc < 0:
                g[G_ROW] = i
                return ERR_KERNEL
            if rc:
                n = _apply_events(ex, events, pos, g, oms, si, out[0], out[1])
                if n < 0:
                    g[G_ROW] = i
                    return n
                g[G_FRAME_EVENTS] += n
            # the frame's last trade: Trader.apply_events checks the PnL once per frame
            last = (
                i + 1 >= stream.shape[0]
                or stream[i + 1, 0] != EV_TRADE
                or ev_frame[i + 1] != ev_frame[i]
            )
            if last and g[G_FRAME_EVENTS] > 0:
                g[G_FRAME_EVENTS] = 0
                rc = _check_pnl(g, gf, pos, si, pf, g[G_LAST_EXCH_NS])
                if rc < 0:
                    g[G_ROW] = i
                    return rc
        elif kind == EV_INSTRUMENT:
            if inst_flags[idx] & (INST_NEW | INST_CHANGED):
                reset_book_sync(states[s])
            if si[s, SI_HAS_INST] == 0:
                si[s, SI_HAS_INST] = 1
                g[G_N_SYM_INST] += 1
        i += 1
    g[G_ROW] = i
    return OK


def sample_state(
    n_sym: int = 1, cap: int = 4, levels: int = 1, ring: int = 8, n_steps: int = 4, depth: int = 3
) -> LoopState:
    """Small valid state tuples for `advance` (empty stream, one instrument-less symbol): the
    dtypes and shapes `mmd.sim.strategy_loop.StrategyLoop` builds, for compiling ahead of time
    (kernels.warmup). Returns (data, mkt, exs, strat, oms, acct, prm, rl, out)."""
    from mmd.kernels.calibration import STATE_F_SIZE, STATE_I_SIZE
    from mmd.kernels.exchange import CMD_DTYPE, alloc_exchange
    from mmd.kernels.portfolio import alloc_positions
    from mmd.kernels.rl import OBS_SIZE, RPF_SIZE, RPI_SIZE, new_agent_state
    from mmd.kernels.strategy import (
        ACCT_SIZE,
        CF_SIZE,
        CI_SIZE,
        COMMAND_DTYPE,
        CPF_SIZE,
        CPI_SIZE,
        DF_SIZE,
        ML_SIZE,
        ORDER_DTYPE,
        QPF_SIZE,
        QPI_SIZE,
        RISK_BUCKET_DTYPE,
    )
    from mmd.kernels.strategy import (
        RPF_SIZE as RISK_RPF_SIZE,
    )

    i8, f8 = np.int64, np.float64
    e = np.zeros(0, i8)
    data = (np.zeros((0, 3), i8), e, e, np.zeros((1, 6), i8), np.zeros(1, i8), e, e, e, e, e, e, e)
    mkt = (
        np.zeros((n_sym, 2, cap), i8),
        np.zeros((n_sym, 2, cap), i8),
        np.zeros((n_sym, 5), i8),
        np.zeros((n_sym, ring), i8),
        np.zeros((n_sym, ring), f8),
        np.zeros((n_sym, ring), i8),
        np.zeros((n_sym, ring), i8),
        np.zeros((n_sym, ring), i8),
        np.zeros((n_sym, ring), i8),
    )
    ex, syms, orders, free, _, _ = alloc_exchange(n_sym, 8)
    exs = (
        ex,
        syms,
        orders,
        free,
        np.zeros(16, CMD_DTYPE),
        np.zeros(16, EVENT_DTYPE),
        np.zeros((n_sym, 2, cap), i8),
        np.zeros((n_sym, 2, cap), i8),
        np.zeros((n_sym, 2), i8),
    )
    si = np.zeros((n_sym, SI_SIZE), i8)
    cal_pi = np.ones((n_sym, CPI_SIZE), i8)
    qpi = np.ones((n_sym, QPI_SIZE), i8)
    strat = (
        si,
        np.zeros((n_sym, n_steps), i8),
        np.zeros((n_sym, n_steps), i8),
        np.zeros((n_sym, n_steps), f8),
        np.zeros((n_sym, STATE_I_SIZE), i8),
        np.zeros((n_sym, STATE_F_SIZE), f8),
        np.zeros((n_sym, depth + 1), i8),
        np.zeros((n_sym, CI_SIZE), i8),
        np.zeros((n_sym, CF_SIZE), f8),
        np.zeros((n_sym, 2), i8),
        np.zeros((n_sym, 4, levels), i8),
        np.zeros((n_sym, DF_SIZE), f8),
        np.ones((n_sym, ML_SIZE), f8),
        np.zeros(8 + 2 * levels, COMMAND_DTYPE),
        np.zeros(8, ORDER_DTYPE),
        np.zeros(2 * levels, i8),
        np.zeros(1, i8),
        np.zeros(ACCT_SIZE, i8),
    )
    g = np.zeros(G_SIZE, i8)
    g[G_DAY] = -1
    acct = (
        alloc_positions(np.full(n_sym, 1e-4)),
        np.zeros(n_sym, RISK_BUCKET_DTYPE),
        g,
        np.zeros(GF_SIZE, f8),
        np.zeros(4, i8),
        np.zeros(4, i8),
    )
    prm = (
        qpi,
        np.zeros((n_sym, QPF_SIZE), f8),
        cal_pi,
        np.ones((n_sym, CPF_SIZE), f8),
        np.zeros((n_sym, RISK_RPF_SIZE), f8),
        np.ones(n_sym, i8),
        np.ones(PI_SIZE, i8),
        np.zeros(PF_SIZE, f8),
    )
    rpi = np.ones(RPI_SIZE, i8)  # one bin each, RL off
    rpi[RL_MODE] = RL_MODE_OFF
    rl = (
        np.zeros((1, 1), f8),
        np.zeros((1, 1), i8),
        rpi,
        np.ones(RPF_SIZE, f8),
        np.ones((1, 2), f8),
        new_agent_state().reshape(1, -1),
        np.ones(1, np.uint64),
        np.zeros((n_sym, OBS_SIZE), f8),
    )
    nan2 = np.full((n_sym, 2), np.nan)
    out = (
        np.zeros((4, FILL_WIDTH), i8),
        np.zeros(4, f8),
        np.zeros(2, i8),
        np.zeros(2, f8),
        np.zeros(2, i8),
        np.zeros(2, i8),
        np.zeros(2, i8),
        np.zeros(2, f8),
        np.zeros(2, i8),
        np.zeros(2, f8),
        np.zeros(2, f8),
        np.zeros(2, i8),
        nan2,
        nan2.copy(),
    )
    return data, mkt, exs, strat, oms_rows(n_sym, 8), acct, prm, rl, out


def oms_rows(n_sym: int, capacity: int) -> I64:
    """An empty order manager: int64[n_sym, capacity, OM_WIDTH]."""
    return np.zeros((n_sym, capacity, OM_WIDTH), np.int64)

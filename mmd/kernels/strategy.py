"""Strategy kernels: rings, calibration schedule, warm-up gate, quote decision, order diff, risk.

One decision of `mmd.strategy.engine.SymbolStrategy` as free functions over state arrays, callable
from Python (the live driver, one call per step) and from inside another njit function (the
backtest loop). Owns no state: the Python classes own the arrays and build the parameter arrays
once from the config.

Units: prices in ticks (int64; float64 for model prices and mids), sizes and positions in lots
(int64), times in ns (int64) unless named `_s`, sigma in ticks per sqrt(second), kappa per tick,
A per second.

State and parameter layouts (slot constants below):
    rings: mids = (ts_ns int64[cap], mid_ticks float64[cap]); trades = (ts_ns, px_ticks,
        qty_lots, side) int64[cap] each; a row appended as the ring's `total`-th lives at slot
        total % cap (`mmd.market.ring.RingBuffer`'s layout); `total` is int64[1] for the kernels.
    cursor: int64[2]: rows of the mids / trades rings already read (RingBuffer.since cursors).
    calibration window: win = (step_depth, step_trades, step_dmid, state_i, state_f, counts)
        as in `mmd.kernels.calibration`; results cal_i int64[CI_SIZE], cal_f float64[CF_SIZE];
        parameters cal_pi int64[CPI_SIZE], cal_pf float64[CPF_SIZE].
    quote decision: qpi int64[QPI_SIZE], qpf float64[QPF_SIZE]; ML inputs ml float64[ML_SIZE];
        target out tgt int64[4, levels] (rows TG_*; qty 0 = no level); dec_f float64[DF_SIZE].
    orders: ORDER_DTYPE structured array (oid, side, px_ticks, qty_lots, orig_lots, keep).
    commands: COMMAND_DTYPE structured array (kind, side, px_ticks, qty_lots, oid, reason).
    risk: bucket RISK_BUCKET_DTYPE[1]; rpf float64[RPF_SIZE]; acct int64[ACCT_SIZE].

Return codes: OK (0) or the negative codes of `mmd.model.codes` / this module (QUOTE_*).
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

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
from mmd.model.codes import BUY, ERR_BAD_INPUT, ERR_CROSSED, OK, SELL

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Rec = npt.NDArray[np.void]  # ORDER_DTYPE, COMMAND_DTYPE or RISK_BUCKET_DTYPE rows
# (step_depth, step_trades, step_dmid, state_i, state_f, counts) of kernels.calibration
Window = tuple[I64, I64, F64, I64, F64, I64]
MidCols = tuple[I64, F64]  # (ts_ns, mid_ticks) columns of a mids ring
TradeCols = tuple[I64, I64, I64, I64]  # (ts_ns, px_ticks, qty_lots, side) of a trades ring

# --- structured dtypes -----------------------------------------------------------------------
ORDER_DTYPE = np.dtype(
    [
        ("oid", "i8"),  # caller's id of the order (the live wrapper: its index in the list)
        ("side", "i8"),  # codes.BUY / codes.SELL
        ("px_ticks", "i8"),
        ("qty_lots", "i8"),  # leaves
        ("orig_lots", "i8"),  # size as sent; 0 = unknown (taken as qty_lots)
        ("keep", "i8"),  # scratch of compute_order_diff
    ]
)
CMD_SUBMIT = 1
CMD_CANCEL = 2
COMMAND_DTYPE = np.dtype(
    [
        ("kind", "i8"),  # CMD_SUBMIT / CMD_CANCEL
        ("side", "i8"),
        ("px_ticks", "i8"),
        ("qty_lots", "i8"),
        ("oid", "i8"),  # submit: the new id; cancel: the order's oid
        ("reason", "i8"),  # RISK_* after apply_risk_checks (RISK_OK = allowed)
    ]
)
RISK_BUCKET_DTYPE = np.dtype([("tokens", "f8"), ("last_ns", "i8"), ("started", "i8")])

# --- calibration slots -----------------------------------------------------------------------
CI_CALIBRATED = 0  # 1 once a good fit set the parameters
CI_STATUS = 1  # latest refit's status (FIT_*), CAL_STATUS_NONE before the first
CI_N_POINTS = 2
CI_N_TRADES = 3  # trades in the window of the latest refit
CI_FITS = 4
CI_GOOD_FITS = 5
CI_POOR_FITS = 6
CI_LAST_REFIT_NS = 7  # -1 before the first refit
CI_NEXT_REFIT_NS = 8  # -1 before the first refit
CI_SIZE = 9
CAL_STATUS_NONE = 1

CF_KAPPA = 0  # values quoting uses
CF_A = 1
CF_SIGMA = 2
CF_R2 = 3  # latest refit's raw results (NaN when absent)
CF_RAW_KAPPA = 4
CF_RAW_A = 5
CF_RAW_SIGMA = 6
CF_WINDOW_S = 7  # seconds of observed steps the latest refit covered
CF_SIZE = 8

CPI_STEP_NS = 0
CPI_REFIT_NS = 1
CPI_MIN_TRADES = 2
CPI_MIN_POINTS = 3
CPI_SIZE = 4

CPF_STEP_S = 0
CPF_MIN_R2 = 1
CPF_KAPPA_MIN = 2
CPF_KAPPA_MAX = 3
CPF_A_MIN = 4
CPF_A_MAX = 5
CPF_SIZE = 6

# --- warm-up gate states ---------------------------------------------------------------------
GATE_WAITING = 0
GATE_CALIBRATED = 1
GATE_FALLBACK = 2

# --- quote decision slots and codes ----------------------------------------------------------
QPI_IS_GLFT = 0
QPI_SESSION_NS = 1
QPI_ORDER_LOTS = 2
QPI_MAX_LOTS = 3
QPI_LEVELS = 4
QPI_SPACING_TICKS = 5
QPI_TOLERANCE_TICKS = 6  # requote tolerance (order diff)
QPI_SIZE = 7

QPF_GAMMA = 0
QPF_MIN_SPREAD_FRAC = 1  # min_spread_bps * 1e-4
QPF_SIZE_ETA = 2
QPF_FALLBACK_SIGMA = 3
QPF_FALLBACK_KAPPA = 4
QPF_FALLBACK_A = 5
QPF_SIZE = 6

ML_BID_MULT = 0
ML_ASK_MULT = 1
ML_GAMMA_MULT = 2
ML_SKEW_TICKS = 3
ML_SPREAD_OVERRIDE_TICKS = 4  # NaN = none
ML_SIZE_MULT = 5  # order size multiplier in (0, 1] (mmd.kernels.risk_size); 1 = neutral
ML_SIZE = ML_SIZE_MULT + 1

TG_BID_PX = 0
TG_BID_QTY = 1
TG_ASK_PX = 2
TG_ASK_QTY = 3

DF_RESERVATION = 0
DF_HALF_SPREAD = 1
DF_FALLBACK = 2  # 1.0 when a parameter was the configured fallback
DF_SIZE = 3

QUOTE_ONE_SIDED = -30
QUOTE_CROSSED = ERR_CROSSED
QUOTE_BAD_MODEL = -31
QUOTE_BAD_LADDER = ERR_BAD_INPUT

# --- risk slots and reasons ------------------------------------------------------------------
RPF_MAX_NOTIONAL = 0  # quote; 0 = no limit
RPF_LOT = 1
RPF_TICK = 2
RPF_RATE_PER_NS = 3
RPF_BURST = 4
RPF_SIZE = 5

ACCT_POSITION_LOTS = 0
ACCT_OPEN_BUY_LOTS = 1
ACCT_OPEN_SELL_LOTS = 2
ACCT_BOOK_STALE = 3
ACCT_HALTED = 4
ACCT_MAX_LOTS = 5
ACCT_SIZE = 6

RISK_OK = 0
RISK_HALTED = 1  # reasons in mmd.trading.risk.REASONS order, from 1
RISK_BOOK_STALE = 2
RISK_MAX_POSITION = 3
RISK_MAX_NOTIONAL = 4
RISK_RATE_LIMIT = 5


# --- rings -----------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def append_ring_mid(ts_col: I64, mid_col: F64, total: I64, ts_ns: int, mid_ticks: float) -> int:
    """Append one mid row to a mids ring (RingBuffer layout). Mutates: ts_col, mid_col, total.
    Returns: OK."""
    i = total[0] % ts_col.shape[0]
    ts_col[i] = ts_ns
    mid_col[i] = mid_ticks
    total[0] += 1
    return OK


@njit(cache=True, nogil=True)
def append_ring_trade(
    trades: TradeCols, total: I64, ts_ns: int, px_ticks: int, qty_lots: int, side: int
) -> int:
    """Append one trade row to a trades ring (ts_ns, px_ticks, qty_lots, side) tuple.
    Mutates: the trades columns, total. Returns: OK."""
    ts_col, px_col, qty_col, side_col = trades
    i = total[0] % ts_col.shape[0]
    ts_col[i] = ts_ns
    px_col[i] = px_ticks
    qty_col[i] = qty_lots
    side_col[i] = side
    total[0] += 1
    return OK


@njit(cache=True, nogil=True)
def compute_ring_since(total: int, capacity: int, cursor: int) -> tuple[int, int]:
    """Rows appended after the ring's total was cursor, at most those held (RingBuffer.since).
    Pure. Returns: (first row's global index, row count); row g lives at slot g % capacity."""
    held = min(total, capacity)
    k = min(max(0, total - cursor), held)
    return total - k, k


# --- calibration -----------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def update_calibration_from_rings(
    win: Window,
    cursor: I64,
    mids: MidCols,
    trades: TradeCols,
    mid_total: int,
    trade_total: int,
    step_ns: int,
) -> int:
    """Feed the calibration window every mid and trade appended since the cursors, in time order
    (a mid and a trade at the same ns: the mid first). Sets the cursors to the totals first.

    Mutates: win (step_depth, step_trades, step_dmid, state_i, state_f), cursor.
    Returns: OK, or ERR_BAD_INPUT at the first trade the window refuses (bad side or ts).
    """
    step_depth, step_trades, step_dmid, state_i, state_f, _counts = win
    m_ts, m_mid = mids
    t_ts, t_px, _t_qty, t_side = trades
    m_cap = m_ts.shape[0]
    t_cap = t_ts.shape[0]
    m0, nm = compute_ring_since(mid_total, m_cap, cursor[0])
    t0, nt = compute_ring_since(trade_total, t_cap, cursor[1])
    cursor[0] = mid_total
    cursor[1] = trade_total
    i = 0
    j = 0
    mi = 0
    tj = 0
    while i < nm or j < nt:
        if i < nm:
            mi = (m0 + i) % m_cap
        if j < nt:
            tj = (t0 + j) % t_cap
        if j >= nt or (i < nm and m_ts[mi] <= t_ts[tj]):
            update_mid(
                step_depth, step_trades, step_dmid, state_i, state_f, m_ts[mi], m_mid[mi], step_ns
            )
            i += 1
        else:
            rc = update_trade(
                step_depth,
                step_trades,
                step_dmid,
                state_i,
                state_f,
                t_ts[tj],
                t_px[tj],
                t_side[tj],
                step_ns,
            )
            if rc == ERR_BAD_INPUT:
                return ERR_BAD_INPUT
            j += 1
    return OK


@njit(cache=True, nogil=True)
def apply_calibration_refit(
    win: Window, cal_i: I64, cal_f: F64, cal_pi: I64, cal_pf: F64, now_ns: int
) -> int:
    """Close the steps up to now_ns, fit the window, accept or keep the previous parameters.

    Acceptance: FIT_OK (enough trades and depths, negative slope, R^2 >= min_r2) sets kappa and
    A clipped to their bounds and sigma when > 0; otherwise the parameters stay (the last good
    fit or the fallbacks). Mutates: win, cal_i, cal_f. Returns: the fit status (FIT_*).
    """
    step_depth, step_trades, step_dmid, state_i, state_f, counts = win
    step_s = cal_pf[CPF_STEP_S]
    advance_steps(step_depth, step_trades, step_dmid, state_i, state_f, now_ns, cal_pi[CPI_STEP_NS])
    update_arrival_counts(counts, step_depth)
    n_trades = state_i[I_WIN_TRADES]
    window_s = state_i[I_N_OBS] * step_s
    if window_s > 0:
        status, kappa, a, r2, n_points = compute_intensity_fit(
            counts,
            window_s,
            n_trades,
            cal_pi[CPI_MIN_TRADES],
            cal_pi[CPI_MIN_POINTS],
            cal_pf[CPF_MIN_R2],
        )
    else:
        status, kappa, a, r2, n_points = FIT_TOO_FEW_TRADES, math.nan, math.nan, math.nan, 0
    sigma = compute_sigma(state_i, state_f, step_s)
    cal_i[CI_FITS] += 1
    cal_i[CI_LAST_REFIT_NS] = now_ns
    cal_i[CI_N_TRADES] = n_trades
    cal_f[CF_WINDOW_S] = window_s
    cal_f[CF_RAW_KAPPA] = kappa
    cal_f[CF_RAW_A] = a
    cal_f[CF_R2] = r2
    cal_f[CF_RAW_SIGMA] = sigma
    cal_i[CI_N_POINTS] = n_points
    cal_i[CI_STATUS] = status
    if status == FIT_OK:
        cal_f[CF_KAPPA] = min(max(kappa, cal_pf[CPF_KAPPA_MIN]), cal_pf[CPF_KAPPA_MAX])
        cal_f[CF_A] = min(max(a, cal_pf[CPF_A_MIN]), cal_pf[CPF_A_MAX])
        if sigma > 0:
            cal_f[CF_SIGMA] = sigma
        cal_i[CI_CALIBRATED] = 1
        cal_i[CI_GOOD_FITS] += 1
    elif status in (FIT_NON_POSITIVE_SLOPE, FIT_POOR_R2):
        cal_i[CI_POOR_FITS] += 1
    return status


@njit(cache=True, nogil=True)
def update_calibration_schedule(
    win: Window, cal_i: I64, cal_f: F64, cal_pi: I64, cal_pf: F64, now_ns: int
) -> int:
    """Refit when refit_s has passed since the previous refit (the first call refits); refits
    stay on a fixed grid from the first, missed slots skipped.
    Mutates: win, cal_i, cal_f. Returns: 1 when a refit ran, 0 otherwise."""
    nxt = cal_i[CI_NEXT_REFIT_NS]
    if nxt >= 0 and now_ns < nxt:
        return 0
    if nxt < 0:
        nxt = now_ns
    refit_ns = cal_pi[CPI_REFIT_NS]
    missed = (now_ns - nxt) // refit_ns
    cal_i[CI_NEXT_REFIT_NS] = nxt + (missed + 1) * refit_ns
    apply_calibration_refit(win, cal_i, cal_f, cal_pi, cal_pf, now_ns)
    return 1


# --- warm-up gate ----------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def compute_gate_state(now_ns: int, deadline_ns: int, usable: bool, calibrated: bool) -> int:
    """The warm-up gate's state from the facts (WarmupGate.update). Pure.
    Returns: GATE_WAITING, GATE_CALIBRATED or GATE_FALLBACK."""
    if not usable:
        return GATE_WAITING
    if calibrated:
        return GATE_CALIBRATED
    if now_ns >= deadline_ns:
        return GATE_FALLBACK
    return GATE_WAITING


# --- quote decision --------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def compute_quote_decision(
    tgt: I64,
    dec_f: F64,
    qpi: I64,
    qpf: F64,
    ml: F64,
    now_ns: int,
    best_bid: int,
    best_ask: int,
    n_bids: int,
    n_asks: int,
    sigma_ticks: float,
    kappa: float,
    a: float,
    position_lots: int,
) -> int:
    """Quoter.decide: fallbacks for NaN estimates, AS or GLFT raw quotes, then the ladder.

    AS horizon tau = session - (now mod session) (rolling, epoch-aligned sessions).
    Mutates: tgt (rows TG_*; every slot, qty 0 = no level), dec_f (reservation, half spread,
    fallback flag). Returns: OK, QUOTE_ONE_SIDED, QUOTE_BAD_MODEL, QUOTE_CROSSED or
    QUOTE_BAD_LADDER (tgt is then all zero, except for QUOTE_ONE_SIDED/QUOTE_BAD_MODEL where it
    is left as it was).
    """
    if n_bids == 0 or n_asks == 0:
        return QUOTE_ONE_SIDED
    mid = 0.5 * (best_bid + best_ask)
    fallback = 0.0
    if math.isnan(sigma_ticks):
        sigma_ticks = qpf[QPF_FALLBACK_SIGMA]
        fallback = 1.0
    if math.isnan(kappa):
        kappa = qpf[QPF_FALLBACK_KAPPA]
        fallback = 1.0
    gamma = qpf[QPF_GAMMA] * ml[ML_GAMMA_MULT]
    order_lots = qpi[QPI_ORDER_LOTS]
    if ml[ML_SIZE_MULT] < 1.0:  # risk-scaled size, never below one lot (NaN: neutral)
        order_lots = max(1, int(order_lots * ml[ML_SIZE_MULT]))
    if qpi[QPI_IS_GLFT] != 0:
        if math.isnan(a):
            a = qpf[QPF_FALLBACK_A]
            fallback = 1.0
        raw_bid, raw_ask, reservation, half = compute_glft_quotes(
            mid, position_lots, sigma_ticks, gamma, kappa, a, order_lots
        )
    else:
        session_ns = qpi[QPI_SESSION_NS]
        tau_s = (session_ns - now_ns % session_ns) * 1e-9
        raw_bid, raw_ask, reservation, half = compute_as_quotes(
            mid, position_lots, sigma_ticks, gamma, kappa, tau_s
        )
    dec_f[DF_FALLBACK] = fallback
    if math.isnan(raw_bid):
        return QUOTE_BAD_MODEL
    dec_f[DF_RESERVATION] = reservation
    dec_f[DF_HALF_SPREAD] = half
    code = compute_quote_ladder(
        tgt[TG_BID_PX],
        tgt[TG_BID_QTY],
        tgt[TG_ASK_PX],
        tgt[TG_ASK_QTY],
        raw_bid,
        raw_ask,
        reservation,
        best_bid,
        best_ask,
        position_lots,
        qpi[QPI_MAX_LOTS],
        qpf[QPF_MIN_SPREAD_FRAC] * mid,
        qpi[QPI_LEVELS],
        qpi[QPI_SPACING_TICKS],
        order_lots,
        qpf[QPF_SIZE_ETA],
        ml[ML_BID_MULT],
        ml[ML_ASK_MULT],
        ml[ML_SKEW_TICKS],
        ml[ML_SPREAD_OVERRIDE_TICKS],
    )
    if code == OK:
        return OK
    if code == ERR_CROSSED:
        return QUOTE_CROSSED
    return QUOTE_BAD_LADDER


# --- order diff ------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _sent_lots(orders: Rec, j: int) -> int:
    orig = orders[j]["orig_lots"]
    return int(orig if orig > 0 else orders[j]["qty_lots"])


@njit(cache=True, nogil=True)
def _match_side(
    orders: Rec,
    n_orders: int,
    side: int,
    px_row: I64,
    qty_row: I64,
    done: I64,
    tolerance_ticks: int,
) -> None:
    # pass 1: exact prices; pass 2: the nearest unused order within the tolerance (ties: the
    # earlier one). The size as sent must equal the level's (a partial remainder keeps its place).
    n_lv = px_row.shape[0]
    for i in range(n_lv):
        done[i] = 0
        qty = qty_row[i]
        if qty <= 0:
            continue
        for j in range(n_orders):
            if (
                orders[j]["side"] == side
                and orders[j]["keep"] == 0
                and orders[j]["px_ticks"] == px_row[i]
                and _sent_lots(orders, j) == qty
            ):
                done[i] = 1
                orders[j]["keep"] = 1
                break
    if tolerance_ticks > 0:
        for i in range(n_lv):
            qty = qty_row[i]
            if done[i] != 0 or qty <= 0:
                continue
            best_j = -1
            best_dist = tolerance_ticks + 1
            for j in range(n_orders):
                if orders[j]["side"] != side or orders[j]["keep"] != 0:
                    continue
                dist = abs(orders[j]["px_ticks"] - px_row[i])
                if _sent_lots(orders, j) == qty and dist < best_dist:
                    best_j = j
                    best_dist = dist
            if best_j >= 0:
                done[i] = 1
                orders[best_j]["keep"] = 1


@njit(cache=True, nogil=True)
def _put_command(cmds: Rec, k: int, kind: int, side: int, px: int, qty: int, oid: int) -> None:
    cmds[k]["kind"] = kind
    cmds[k]["side"] = side
    cmds[k]["px_ticks"] = px
    cmds[k]["qty_lots"] = qty
    cmds[k]["oid"] = oid
    cmds[k]["reason"] = RISK_OK


@njit(cache=True, nogil=True)
def compute_order_diff(
    cmds: Rec, orders: Rec, next_oid: I64, done: I64, tgt: I64, n_orders: int, tolerance_ticks: int
) -> int:
    """diff_quotes over arrays: the fewest commands turning the resting orders into tgt.

    An order is kept when on the level's side, within tolerance_ticks of its price and its size
    as sent (orig_lots, else qty_lots) equals the level's; exact prices match first. Commands:
    cancels of every other order (in orders order), then submits of the unmatched levels (bids
    best first, then asks), each with oid = next_oid[0] (then incremented).
    Mutates: cmds, orders["keep"], next_oid, done (int64[>= 2 * levels] scratch).
    Returns: the command count, or ERR_BAD_INPUT when cmds or done is too small.
    """
    n_lv = tgt.shape[1]
    if cmds.shape[0] < n_orders + 2 * n_lv or done.shape[0] < 2 * n_lv:
        return ERR_BAD_INPUT
    for j in range(n_orders):
        orders[j]["keep"] = 0
    done_b = done[:n_lv]
    done_a = done[n_lv : 2 * n_lv]
    _match_side(orders, n_orders, BUY, tgt[TG_BID_PX], tgt[TG_BID_QTY], done_b, tolerance_ticks)
    _match_side(orders, n_orders, SELL, tgt[TG_ASK_PX], tgt[TG_ASK_QTY], done_a, tolerance_ticks)
    k = 0
    for j in range(n_orders):
        if orders[j]["keep"] == 0:
            _put_command(
                cmds,
                k,
                CMD_CANCEL,
                orders[j]["side"],
                orders[j]["px_ticks"],
                orders[j]["qty_lots"],
                orders[j]["oid"],
            )
            k += 1
    for i in range(n_lv):
        if tgt[TG_BID_QTY, i] > 0 and done_b[i] == 0:
            _put_command(
                cmds, k, CMD_SUBMIT, BUY, tgt[TG_BID_PX, i], tgt[TG_BID_QTY, i], next_oid[0]
            )
            next_oid[0] += 1
            k += 1
    for i in range(n_lv):
        if tgt[TG_ASK_QTY, i] > 0 and done_a[i] == 0:
            _put_command(
                cmds, k, CMD_SUBMIT, SELL, tgt[TG_ASK_PX, i], tgt[TG_ASK_QTY, i], next_oid[0]
            )
            next_oid[0] += 1
            k += 1
    return k


@njit(cache=True, nogil=True)
def compute_cancel_all(cmds: Rec, orders: Rec, n_orders: int) -> int:
    """A cancel for every order, in orders order. Mutates: cmds.
    Returns: the command count, or ERR_BAD_INPUT when cmds is too small."""
    if cmds.shape[0] < n_orders:
        return ERR_BAD_INPUT
    for j in range(n_orders):
        _put_command(
            cmds,
            j,
            CMD_CANCEL,
            orders[j]["side"],
            orders[j]["px_ticks"],
            orders[j]["qty_lots"],
            orders[j]["oid"],
        )
    return n_orders


# --- risk ------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def apply_risk_checks(cmds: Rec, bucket: Rec, rpf: F64, acct: I64, n_cmds: int, now_ns: int) -> int:
    """RiskGate.check over a command buffer: set each command's reason (RISK_OK = allowed).

    The bucket refills at rate_per_ns up to burst (started full at the first call). A cancel
    always passes and takes a token when one is left. A submit is refused when halted, the book
    is stale, its exposure (position + open same-side lots + earlier allowed submits + itself,
    in its own direction) exceeds max_lots, its notional at its price exceeds max_notional
    (> 0), or no token is left; an allowed submit takes a token and counts as open.
    Mutates: cmds["reason"], bucket. Returns: the allowed count.
    """
    b = bucket[0]
    burst = rpf[RPF_BURST]
    if b["started"] == 0:
        b["tokens"] = burst
        b["last_ns"] = now_ns
        b["started"] = 1
    else:
        elapsed = max(0, now_ns - b["last_ns"])
        b["tokens"] = min(burst, b["tokens"] + elapsed * rpf[RPF_RATE_PER_NS])
        b["last_ns"] = max(b["last_ns"], now_ns)
    position = acct[ACCT_POSITION_LOTS]
    buy_lots = acct[ACCT_OPEN_BUY_LOTS]
    sell_lots = acct[ACCT_OPEN_SELL_LOTS]
    stale = acct[ACCT_BOOK_STALE] != 0
    halted = acct[ACCT_HALTED] != 0
    max_lots = acct[ACCT_MAX_LOTS]
    max_notional = rpf[RPF_MAX_NOTIONAL]
    n_ok = 0
    for k in range(n_cmds):
        c = cmds[k]
        if c["kind"] == CMD_CANCEL:
            b["tokens"] = max(0.0, b["tokens"] - 1.0)
            c["reason"] = RISK_OK
            n_ok += 1
            continue
        qty = c["qty_lots"]
        buy = c["side"] == BUY
        exposure = position + buy_lots + qty if buy else -(position - sell_lots - qty)
        reason = RISK_OK
        if halted:
            reason = RISK_HALTED
        elif stale:
            reason = RISK_BOOK_STALE
        elif exposure > max_lots:
            reason = RISK_MAX_POSITION
        elif (
            max_notional > 0
            and exposure * rpf[RPF_LOT] * c["px_ticks"] * rpf[RPF_TICK] > max_notional
        ):
            reason = RISK_MAX_NOTIONAL
        elif b["tokens"] < 1.0:
            reason = RISK_RATE_LIMIT
        c["reason"] = reason
        if reason != RISK_OK:
            continue
        b["tokens"] -= 1.0
        if c["side"] == BUY:
            buy_lots += qty
        else:
            sell_lots += qty
        n_ok += 1
    return n_ok

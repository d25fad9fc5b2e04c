"""The live driver's per-frame work as single compiled calls, composed of the shared kernels.

`advance_book_frame`: one decoded book frame -> the book (snapshot or delta), the crossed check,
the book features and the mids ring, as `MarketHub._on_book` does it step by step.
`decide_symbol_quotes`: one symbol's decision -> calibration from the rings, the refit
schedule, the warm-up gate, the quote decision and the order diff (or cancel-all), as
`SymbolStrategy.step` does it for a strategy without learned models.

Owns no state: the arrays belong to L2Book, FeatureEngine, RingBuffer, IntensityCalibrator and
Quoter, and the callers read the results back from them.
"""

from __future__ import annotations

from numba import njit

from mmd.kernels.book import apply_levels, compute_is_crossed, compute_mid_ticks
from mmd.kernels.features import update_book
from mmd.kernels.strategy import (
    CF_A,
    CF_KAPPA,
    CF_SIGMA,
    CI_CALIBRATED,
    CPI_STEP_NS,
    F64,
    GATE_WAITING,
    I64,
    QPI_TOLERANCE_TICKS,
    MidCols,
    Rec,
    TradeCols,
    Window,
    append_ring_mid,
    compute_cancel_all,
    compute_gate_state,
    compute_order_diff,
    compute_quote_decision,
    update_calibration_from_rings,
    update_calibration_schedule,
)
from mmd.model.codes import OK

Sides = tuple[I64, I64, I64, I64]  # (bid_px, bid_qty, ask_px, ask_qty)
# decide_symbol_quotes' argument groups (its docstring)
CalArgs = tuple[Window, I64, I64, F64, I64, F64]
RingArgs = tuple[MidCols, TradeCols, I64]
QuoteArgs = tuple[I64, F64, I64, F64, F64]
BookArgs = tuple[I64, I64, I64]

# advance_book_frame results (besides OK: applied, features updated)
FRAME_CROSSED = 1  # applied, but the book came out crossed (features and mids untouched)
FRAME_BAD_LEVELS = -40  # a negative size or mismatched lengths: nothing applied
FRAME_BAD_FEATURES = -41  # the feature kernel refused the level counts

# decide_symbol_quotes: dec_i slots written by the call
DI_GATE = 0  # the warm-up gate's state (GATE_*)
DI_CODE = 1  # compute_quote_decision's code; 1 when no decision ran (gate closed or halted)
DI_N_CMDS = 2  # commands in cmds
DI_SIZE = 3
NO_DECISION = 1
ERR_DECIDE_CALIBRATION = -42  # the calibration window refused a trade
ERR_DECIDE_BUFFER = -43  # cmds or done too small


@njit(cache=True, nogil=True)
def advance_book_frame(
    book: Sides,
    counts: I64,
    feat: tuple[F64, I64],
    mids: MidCols,
    mids_total: I64,
    upd: Sides,
    is_snapshot: bool,
    ts_exch_ns: int,
) -> int:
    """Apply one book frame and everything that follows it on the market side.

    A snapshot replaces both sides, a delta merges its levels (`kernels.book.apply_levels`);
    then, unless the book came out crossed, the book features are updated
    (`kernels.features.update_book`) and a two-sided mid is appended to the mids ring.

    Mutates: book, counts, feat, mids, mids_total.

    Args:
        book: (bid_px, bid_qty, ask_px, ask_qty) int64[capacity] arrays of the L2Book.
        counts: int64[2] the live level counts (n_bids, n_asks), updated in place.
        feat: (state float64, istate int64) of the FeatureEngine.
        mids: (ts_ns int64[cap], mid_ticks float64[cap]) columns of the mids ring.
        mids_total: int64[1] rows ever appended to the mids ring (incremented on append).
        upd: (bid_px, bid_qty, ask_px, ask_qty) int64 arrays of the frame's levels.
        is_snapshot: the frame replaces the book.
        ts_exch_ns: the frame's venue time, ns.

    Returns:
        OK, FRAME_CROSSED, FRAME_BAD_LEVELS (the bid side may be changed: the caller clears
        the book) or FRAME_BAD_FEATURES.
    """
    bid_px, bid_qty, ask_px, ask_qty = book
    u_bpx, u_bqty, u_apx, u_aqty = upd
    n_b0 = 0 if is_snapshot else counts[0]
    n_a0 = 0 if is_snapshot else counts[1]
    n_b = apply_levels(bid_px, bid_qty, n_b0, u_bpx, u_bqty, True)
    if n_b < 0:
        return FRAME_BAD_LEVELS
    n_a = apply_levels(ask_px, ask_qty, n_a0, u_apx, u_aqty, False)
    if n_a < 0:
        return FRAME_BAD_LEVELS
    counts[0] = n_b
    counts[1] = n_a
    if compute_is_crossed(bid_px, n_b, ask_px, n_a):
        return FRAME_CROSSED
    state, istate = feat
    if update_book(state, istate, bid_px, bid_qty, n_b, ask_px, ask_qty, n_a, ts_exch_ns) < 0:
        return FRAME_BAD_FEATURES
    mid = compute_mid_ticks(bid_px, n_b, ask_px, n_a)
    if mid == mid:
        append_ring_mid(mids[0], mids[1], mids_total, ts_exch_ns, mid)
    return OK


@njit(cache=True, nogil=True)
def decide_symbol_quotes(
    dec_i: I64,
    cal: CalArgs,
    rings: RingArgs,
    quote: QuoteArgs,
    book: BookArgs,
    orders: Rec,
    cmds: Rec,
    scratch: tuple[I64, I64],
    now_ns: int,
    market_ns: int,
    deadline_ns: int,
    usable: bool,
    halted: bool,
    position_lots: int,
) -> int:
    """One symbol's quote decision, from the market rings to the commands.

    In order (SymbolStrategy.step): feed the calibration window every mid and trade appended
    since its cursors; refit on schedule at market_ns (> 0); the warm-up gate from the facts;
    then, when halted or the gate is closed, cancel every open order; else the quote decision
    (fallbacks, AS/GLFT quotes, ladder) and, when it gives a target, the order diff, else
    cancel everything.

    Mutates: dec_i (slots DI_*), the calibration state (window, cursor, cal_i, cal_f), the
    quoter's tgt and dec_f, orders["keep"], cmds, scratch.

    Args:
        dec_i: int64[DI_SIZE] out: gate state, decision code, command count.
        cal: (win, cursor, cal_i, cal_f, cal_pi, cal_pf): the IntensityCalibrator's window
            and arrays, and the strategy's ring cursors (int64[2]: mids, trades).
        rings: ((ts, mid) columns of the mids ring, (ts, px, qty, side) columns of the trades
            ring, int64[2] their totals).
        quote: (tgt, dec_f, qpi, qpf, ml) of the Quoter.
        book: (bid_px, ask_px, counts int64[2] = n_bids, n_asks) of the L2Book.
        orders: ORDER_DTYPE[n] the open orders (oid = index in the caller's list).
        cmds: COMMAND_DTYPE[>= n + 2 * levels] out commands (oid of a submit: its client id
            number).
        scratch: (next_oid int64[1], the next client id number, updated; done
            int64[>= 2 * levels]).
        now_ns: the daemon clock (warm-up gate, AS horizon).
        market_ns: the book's venue time (the refit clock; <= 0: no book yet).
        deadline_ns: the end of the warm-up.
        usable: the book is synced and not stale.
        halted: the kill switch holds.
        position_lots: the symbol's position.

    Returns:
        OK, ERR_DECIDE_CALIBRATION (nothing decided) or ERR_DECIDE_BUFFER.
    """
    win, cursor, cal_i, cal_f, cal_pi, cal_pf = cal
    mids, trades, totals = rings
    tgt, dec_f, qpi, qpf, ml = quote
    bid_px, ask_px, counts = book
    next_oid, done = scratch
    n_open = orders.shape[0]
    dec_i[DI_CODE] = NO_DECISION
    dec_i[DI_N_CMDS] = 0
    rc = update_calibration_from_rings(
        win, cursor, mids, trades, totals[0], totals[1], cal_pi[CPI_STEP_NS]
    )
    if rc != OK:
        return ERR_DECIDE_CALIBRATION
    if market_ns > 0:
        update_calibration_schedule(win, cal_i, cal_f, cal_pi, cal_pf, market_ns)
    gate = compute_gate_state(now_ns, deadline_ns, usable, cal_i[CI_CALIBRATED] != 0)
    dec_i[DI_GATE] = gate
    if halted or gate == GATE_WAITING:
        n = compute_cancel_all(cmds, orders, n_open)
    else:
        n_bids = counts[0]
        n_asks = counts[1]
        has_book = n_bids > 0 and n_asks > 0
        code = compute_quote_decision(
            tgt,
            dec_f,
            qpi,
            qpf,
            ml,
            now_ns,
            bid_px[0] if has_book else 0,
            ask_px[0] if has_book else 0,
            n_bids,
            n_asks,
            cal_f[CF_SIGMA],
            cal_f[CF_KAPPA],
            cal_f[CF_A],
            position_lots,
        )
        dec_i[DI_CODE] = code
        if code == OK:
            n = compute_order_diff(
                cmds, orders, next_oid, done, tgt, n_open, qpi[QPI_TOLERANCE_TICKS]
            )
        else:
            n = compute_cancel_all(cmds, orders, n_open)
    if n < 0:
        return ERR_DECIDE_BUFFER
    dec_i[DI_N_CMDS] = n
    return OK

"""The backtest loop over the event cache, one jitted call: book sync and apply, the paper
exchange (due commands, crossing, queue updates, trades) and the portfolio, with the orders
given as a command tape.

The exchange steps are composed exactly as the SimExchange wrapper composes them (mmd/sim/
exchange.py): due commands are handled before each market event against the book as of the
last market event (the "shadow" book, copied when the first command of a quiet period is sent
and after a book event while commands are in flight), then the book or trade kernel runs, and
every fill is applied to the portfolio in event order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mmd.kernels.book_sync import (
    SYNC_N_ASKS,
    SYNC_N_BIDS,
    SYNC_SYNCED,
    apply_cached_frame,
    reset_book_sync,
)
from mmd.kernels.exchange import (
    CMD_SUBMIT,
    EVT_FILLED,
    cancel,
    on_book,
    on_trade,
    process_due,
    submit,
)
from mmd.kernels.portfolio import apply_fill
from mmd.model.codes import ERR_FULL, EV_BOOK, EV_INSTRUMENT, EV_TRADE, INST_CHANGED, INST_NEW

# command tape columns (int64[n, TAPE_WIDTH]), rows in sending order
TAPE_AFTER = 0  # stream row after which the command is sent
TAPE_KIND = 1  # exchange.CMD_SUBMIT or CMD_CANCEL
TAPE_SYM = 2
TAPE_ORDER_ID = 3
TAPE_SIDE = 4
TAPE_PX = 5
TAPE_QTY = 6
TAPE_NOW_NS = 7  # exchange time the command is put on the wire
TAPE_WIDTH = 8

# fill output columns (int64[n, FILL_WIDTH]; the fee goes to a parallel float64 column)
FILL_TS_NS = 0
FILL_SYM = 1
FILL_ORDER_ID = 2
FILL_SIDE = 3
FILL_PX = 4
FILL_QTY = 5
FILL_LEAVES = 6
FILL_WIDTH = 7

# run_tape result codes (besides the number of fills)
ERR_FILLS_FULL = -101  # out_fills too small
ERR_KERNEL = -102  # an exchange or portfolio kernel refused (an invariant broke)


@njit(cache=True, nogil=True)
def _drain(ex, events, pos, out_fills, out_fees, n_fills) -> int:
    """Apply the fills in the event buffer to pos, append them to out_fills; empty the buffer.
    Returns the new fill count or a negative code."""
    n = ex[0].n_events
    for j in range(n):
        e = events[j]
        if e.kind != EVT_FILLED:
            continue
        if n_fills >= out_fills.shape[0]:
            return ERR_FILLS_FULL
        if apply_fill(pos, e.sym, e.side, e.px_ticks, e.qty_lots, e.fee_quote) < 0:
            return ERR_KERNEL
        r = out_fills[n_fills]
        r[FILL_TS_NS] = e.ts_ns
        r[FILL_SYM] = e.sym
        r[FILL_ORDER_ID] = e.order_id
        r[FILL_SIDE] = e.side
        r[FILL_PX] = e.px_ticks
        r[FILL_QTY] = e.qty_lots
        r[FILL_LEAVES] = e.leaves_lots
        out_fees[n_fills] = e.fee_quote
        n_fills += 1
    ex[0].n_events = 0
    return n_fills


@njit(cache=True, nogil=True)
def _due(ex, syms, orders, free, cmds, events, sh_px, sh_qty, sh_n, now_ns, pos, out_fills,
         out_fees, n_fills) -> int:
    while True:
        rc = process_due(ex, syms, orders, free, cmds, events, sh_px, sh_qty, sh_n, now_ns)
        n_fills = _drain(ex, events, pos, out_fills, out_fees, n_fills)
        if n_fills < 0:
            return n_fills
        if rc != ERR_FULL:
            break
    if rc < 0:
        return ERR_KERNEL
    return n_fills


@njit(cache=True, nogil=True)
def _copy_shadow(books_px, books_qty, states, sh_px, sh_qty, sh_n, sym) -> None:
    cap = books_px.shape[2]
    for side in range(2):
        for j in range(cap):
            sh_px[sym, side, j] = books_px[sym, side, j]
            sh_qty[sym, side, j] = books_qty[sym, side, j]
    sh_n[sym, 0] = states[sym, SYNC_N_BIDS]
    sh_n[sym, 1] = states[sym, SYNC_N_ASKS]


@njit(cache=True, nogil=True)
def run_tape(
    ex: np.ndarray, syms: np.ndarray, orders: np.ndarray, free: np.ndarray, cmds: np.ndarray,
    events: np.ndarray, pos: np.ndarray, books_px: np.ndarray, books_qty: np.ndarray,
    states: np.ndarray, sh_px: np.ndarray, sh_qty: np.ndarray, sh_n: np.ndarray,
    seen: np.ndarray, stream: np.ndarray, frames: np.ndarray, book_ts: np.ndarray,
    lv_px: np.ndarray, lv_qty: np.ndarray, inst_flags: np.ndarray, trade_ts: np.ndarray,
    trade_px: np.ndarray, trade_qty: np.ndarray, trade_side: np.ndarray, tape: np.ndarray,
    out_fills: np.ndarray, out_fees: np.ndarray,
) -> int:
    """Walk the merged event stream once: rebuild the books, let the paper exchange see every
    synced book frame and every trade, put the tape's commands on the wire after their stream
    row, and apply every fill to the portfolio.

    Mutates: ex, syms, orders, free, cmds, events (the exchange state of
    kernels.exchange.alloc_exchange, symbol ids = the event cache's), pos (POSITION_DTYPE per
    symbol), books_px, books_qty (int64[n_sym, 2, capacity]), states (int64[n_sym,
    SYNC_WIDTH]), sh_px, sh_qty (int64[n_sym, 2, capacity]), sh_n (int64[n_sym, 2]) the
    exchange's book as of the last market event, seen (int64[n_sym], 1 once the exchange saw a
    book), out_fills (int64[k, FILL_WIDTH]), out_fees (float64[k]).

    Args:
        stream: int64[n_events, 3] (ev_kind, ev_sym, ev_idx) (EventArrays.stream_table()).
        frames: int64[n_frames, 6] (EventArrays.book_table()); book_ts: int64[n_frames]
            exchange stamps of the book frames.
        lv_px, lv_qty: level rows (ticks, lots); inst_flags: INST_* per instrument row.
        trade_ts, trade_px, trade_qty, trade_side: the trade columns.
        tape: int64[n_cmd, TAPE_WIDTH] commands in sending order, TAPE_AFTER non-decreasing.

    Returns:
        The number of fills written, ERR_FILLS_FULL or ERR_KERNEL.
    """
    n_fills = 0
    k = 0
    n_tape = tape.shape[0]
    for i in range(stream.shape[0]):
        kind = stream[i, 0]
        sym = stream[i, 1]
        idx = stream[i, 2]
        if kind == EV_INSTRUMENT:
            if inst_flags[idx] & (INST_NEW | INST_CHANGED):
                reset_book_sync(states[sym])
        elif kind == EV_BOOK:
            st = states[sym]
            apply_cached_frame(books_px, books_qty, states, sym, frames, idx, lv_px, lv_qty)
            if st[SYNC_SYNCED]:
                ts = book_ts[idx]
                if ex[0].cmd_tail > ex[0].cmd_head:
                    n_fills = _due(ex, syms, orders, free, cmds, events, sh_px, sh_qty, sh_n,
                                   ts, pos, out_fills, out_fees, n_fills)
                    if n_fills < 0:
                        return n_fills
                seen[sym] = 1
                rc = on_book(ex, syms, orders, free, events, sym, books_px[sym, 0],
                             books_qty[sym, 0], st[SYNC_N_BIDS], books_px[sym, 1],
                             books_qty[sym, 1], st[SYNC_N_ASKS], ts)
                if rc < 0:
                    return ERR_KERNEL
                if rc:
                    n_fills = _drain(ex, events, pos, out_fills, out_fees, n_fills)
                    if n_fills < 0:
                        return n_fills
                if syms[sym].pending:
                    _copy_shadow(books_px, books_qty, states, sh_px, sh_qty, sh_n, sym)
        elif kind == EV_TRADE:
            ts = trade_ts[idx]
            if ex[0].cmd_tail > ex[0].cmd_head:
                n_fills = _due(ex, syms, orders, free, cmds, events, sh_px, sh_qty, sh_n, ts,
                               pos, out_fills, out_fees, n_fills)
                if n_fills < 0:
                    return n_fills
            rc = on_trade(ex, syms, orders, free, events, sym, ts, trade_px[idx],
                          trade_qty[idx], trade_side[idx])
            if rc < 0:
                return ERR_KERNEL
            if rc:
                n_fills = _drain(ex, events, pos, out_fills, out_fees, n_fills)
                if n_fills < 0:
                    return n_fills
        while k < n_tape and tape[k, TAPE_AFTER] <= i:
            c = tape[k]
            s = c[TAPE_SYM]
            if seen[s] and syms[s].pending == 0:
                _copy_shadow(books_px, books_qty, states, sh_px, sh_qty, sh_n, s)
            if c[TAPE_KIND] == CMD_SUBMIT:
                rc = submit(ex, syms, cmds, s, c[TAPE_ORDER_ID], c[TAPE_SIDE], c[TAPE_PX],
                            c[TAPE_QTY], c[TAPE_NOW_NS])
            else:
                rc = cancel(ex, syms, cmds, s, c[TAPE_ORDER_ID], c[TAPE_NOW_NS])
            if rc < 0:
                return ERR_KERNEL
            k += 1
    return n_fills

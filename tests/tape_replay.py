"""Tape replay for tests and benchmarks: the paper exchange and the portfolio over the event cache
in one jitted call, with the orders given as a command tape (the orders a Python driver sent,
with the stream row after which and the exchange time at which each was sent).

The exchange steps are composed exactly as SimExchange composes them (mmd/sim/exchange.py): due
commands are handled before each market event against the book as of the last market event
(the "shadow" book, copied when the first command of a quiet period is sent and after a book
event while commands are in flight), then the book or trade kernel runs, and every fill is
applied to the portfolio in event order. Not cached (numba would not see edits to the kernels
it calls): it compiles once per session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from mmd.config import ExchangeConfig
from mmd.errors import InvariantViolation
from mmd.feeds.convert.events import EventArrays
from mmd.kernels.backtest import (
    ERR_FILLS_FULL,
    ERR_KERNEL,
    FILL_LEAVES,
    FILL_ORDER_ID,
    FILL_PX,
    FILL_QTY,
    FILL_SIDE,
    FILL_SYM,
    FILL_TS_NS,
    FILL_WIDTH,
    _copy_shadow,
)
from mmd.kernels.book_sync import (
    SYNC_N_ASKS,
    SYNC_N_BIDS,
    SYNC_SYNCED,
    SYNC_WIDTH,
    apply_cached_frame,
    reset_book_sync,
)
from mmd.kernels.exchange import (
    CMD_DTYPE,
    CMD_SUBMIT,
    EVENT_DTYPE,
    EVT_FILLED,
    cancel,
    on_book,
    on_trade,
    process_due,
    submit,
)
from mmd.kernels.portfolio import alloc_positions, apply_fill
from mmd.model.codes import ERR_FULL, EV_BOOK, EV_INSTRUMENT, EV_TRADE, INST_CHANGED, INST_NEW
from mmd.sim.exchange import SimExchange
from mmd.sim.strategy_loop import _instruments

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


@njit(nogil=True)
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


@njit(nogil=True)
def _due(
    ex,
    syms,
    orders,
    free,
    cmds,
    events,
    sh_px,
    sh_qty,
    sh_n,
    now_ns,
    pos,
    out_fills,
    out_fees,
    n_fills,
) -> int:
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


@njit(nogil=True)
def run_tape(
    ex: np.ndarray,
    syms: np.ndarray,
    orders: np.ndarray,
    free: np.ndarray,
    cmds: np.ndarray,
    events: np.ndarray,
    pos: np.ndarray,
    books_px: np.ndarray,
    books_qty: np.ndarray,
    states: np.ndarray,
    sh_px: np.ndarray,
    sh_qty: np.ndarray,
    sh_n: np.ndarray,
    seen: np.ndarray,
    stream: np.ndarray,
    frames: np.ndarray,
    book_ts: np.ndarray,
    lv_px: np.ndarray,
    lv_qty: np.ndarray,
    inst_flags: np.ndarray,
    trade_ts: np.ndarray,
    trade_px: np.ndarray,
    trade_qty: np.ndarray,
    trade_side: np.ndarray,
    tape: np.ndarray,
    out_fills: np.ndarray,
    out_fees: np.ndarray,
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
                    n_fills = _due(
                        ex,
                        syms,
                        orders,
                        free,
                        cmds,
                        events,
                        sh_px,
                        sh_qty,
                        sh_n,
                        ts,
                        pos,
                        out_fills,
                        out_fees,
                        n_fills,
                    )
                    if n_fills < 0:
                        return n_fills
                seen[sym] = 1
                rc = on_book(
                    ex,
                    syms,
                    orders,
                    free,
                    events,
                    sym,
                    books_px[sym, 0],
                    books_qty[sym, 0],
                    st[SYNC_N_BIDS],
                    books_px[sym, 1],
                    books_qty[sym, 1],
                    st[SYNC_N_ASKS],
                    ts,
                )
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
                n_fills = _due(
                    ex,
                    syms,
                    orders,
                    free,
                    cmds,
                    events,
                    sh_px,
                    sh_qty,
                    sh_n,
                    ts,
                    pos,
                    out_fills,
                    out_fees,
                    n_fills,
                )
                if n_fills < 0:
                    return n_fills
            rc = on_trade(
                ex,
                syms,
                orders,
                free,
                events,
                sym,
                ts,
                trade_px[idx],
                trade_qty[idx],
                trade_side[idx],
            )
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
                rc = submit(
                    ex,
                    syms,
                    cmds,
                    s,
                    c[TAPE_ORDER_ID],
                    c[TAPE_SIDE],
                    c[TAPE_PX],
                    c[TAPE_QTY],
                    c[TAPE_NOW_NS],
                )
            else:
                rc = cancel(ex, syms, cmds, s, c[TAPE_ORDER_ID], c[TAPE_NOW_NS])
            if rc < 0:
                return ERR_KERNEL
            k += 1
    return n_fills


@dataclass
class TapeResult:
    """What run_tape_fast produced: fills (int64[n, FILL_WIDTH]), their fees (quote) and
    the final positions (POSITION_DTYPE per event-cache symbol)."""

    fills: np.ndarray
    fees: np.ndarray
    positions: np.ndarray


def run_tape_fast(
    ev: EventArrays,
    cfg: ExchangeConfig,
    tape: np.ndarray,
    *,
    entry_latency_ns: int,
    cancel_latency_ns: int,
    book_capacity: int,
    order_capacity: int = 64,
    max_fills: int | None = None,
) -> TapeResult:
    """Replay `tape` (int64[n, TAPE_WIDTH]) over the event cache in one jitted call.

    Symbols must keep their tick and lot over the run (the exchange rows are built from each
    symbol's first instrument).

    Raises:
        InvariantViolation: a kernel refused a step (or the fill buffer was too small).
    """
    first = _instruments(ev)
    n_sym = len(ev.symbols)
    insts = {ev.symbols[s][1]: ev.instrument(first[s]) for s in range(n_sym) if s in first}
    sim = SimExchange(
        cfg,
        insts,
        entry_latency_ns=entry_latency_ns,
        cancel_latency_ns=cancel_latency_ns,
        capacity=order_capacity,
    )
    # SimExchange numbers symbols in instrument order; the loop uses the event cache's ids
    order = [ev.symbols[s][1] for s in range(n_sym)]
    idx = [sim._symbols[name].index for name in order]
    ex = sim._ex.copy()
    syms = np.ascontiguousarray(sim._syms[idx])
    orders = np.ascontiguousarray(sim._orders[idx])
    free = np.ascontiguousarray(sim._free[idx])
    cmds = np.zeros(max(256, len(tape) + 1), CMD_DTYPE)
    events = np.zeros(max(1024, 4 * order_capacity), EVENT_DTYPE)
    qptl = np.array([float(syms[s]["tick"] * syms[s]["lot"]) for s in range(n_sym)])
    pos = alloc_positions(qptl)
    books_px = np.zeros((n_sym, 2, book_capacity), np.int64)
    books_qty = np.zeros_like(books_px)
    states = np.zeros((n_sym, SYNC_WIDTH), np.int64)
    sh_px = np.zeros_like(books_px)
    sh_qty = np.zeros_like(books_px)
    sh_n = np.zeros((n_sym, 2), np.int64)
    seen = np.zeros(n_sym, np.int64)
    if max_fills is None:
        max_fills = len(ev.trade_px_ticks) + len(ev.book_flags) + 16
    out_fills = np.zeros((max_fills, FILL_WIDTH), np.int64)
    out_fees = np.zeros(max_fills, np.float64)
    tape = np.ascontiguousarray(tape, np.int64).reshape(-1, TAPE_WIDTH)
    n = run_tape(
        ex,
        syms,
        orders,
        free,
        cmds,
        events,
        pos,
        books_px,
        books_qty,
        states,
        sh_px,
        sh_qty,
        sh_n,
        seen,
        ev.stream_table(),
        ev.book_table(),
        np.ascontiguousarray(ev.book_ts_exch_ns),
        np.ascontiguousarray(ev.level_px_ticks),
        np.ascontiguousarray(ev.level_qty_lots),
        np.ascontiguousarray(ev.inst_flags),
        np.ascontiguousarray(ev.trade_ts_exch_ns),
        np.ascontiguousarray(ev.trade_px_ticks),
        np.ascontiguousarray(ev.trade_qty_lots),
        np.ascontiguousarray(ev.trade_side),
        tape,
        out_fills,
        out_fees,
    )
    if n < 0:
        raise InvariantViolation(f"backtest.run_tape returned {n}")
    return TapeResult(out_fills[:n].copy(), out_fees[:n].copy(), pos)

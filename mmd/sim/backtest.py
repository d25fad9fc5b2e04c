"""The jitted backtest driver over the event cache (mmd.feeds.events).

`run_tape_fast` replays a command tape (the orders a strategy sent, with the stream row after
which and the exchange time at which each was sent) through the paper exchange and the
portfolio in one jitted call (mmd.kernels.backtest.run_tape). The exchange state comes from
SimExchange's own builder, so the queue model, partial fills, fees and latency are the ones a
live run uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmd.config import ExchangeConfig
from mmd.errors import InvariantViolation
from mmd.feeds.events import EventArrays
from mmd.kernels import backtest as kb
from mmd.kernels.book_sync import SYNC_WIDTH
from mmd.kernels.exchange import CMD_DTYPE, EVENT_DTYPE
from mmd.kernels.portfolio import alloc_positions
from mmd.sim.exchange import SimExchange


@dataclass
class TapeResult:
    """What run_tape_fast produced: fills (int64[n, kb.FILL_WIDTH]), their fees (quote) and
    the final positions (POSITION_DTYPE per event-cache symbol)."""

    fills: np.ndarray
    fees: np.ndarray
    positions: np.ndarray


def _instruments(ev: EventArrays) -> dict[int, int]:
    """The first instrument row of each symbol id."""
    first: dict[int, int] = {}
    for row, s in enumerate(ev.inst_sym.tolist()):
        first.setdefault(int(s), row)
    return first


def run_tape_fast(ev: EventArrays, cfg: ExchangeConfig, tape: np.ndarray, *,
                  entry_latency_ns: int, cancel_latency_ns: int, book_capacity: int,
                  order_capacity: int = 64, max_fills: int | None = None) -> TapeResult:
    """Replay `tape` (int64[n, kb.TAPE_WIDTH]) over the event cache in one jitted call.

    Symbols must keep their tick and lot over the run (the exchange rows are built from each
    symbol's first instrument).

    Raises:
        InvariantViolation: a kernel refused a step (or the fill buffer was too small).
    """
    first = _instruments(ev)
    n_sym = len(ev.symbols)
    insts = {ev.symbols[s][1]: ev.instrument(first[s]) for s in range(n_sym) if s in first}
    sim = SimExchange(cfg, insts, entry_latency_ns=entry_latency_ns,
                      cancel_latency_ns=cancel_latency_ns, capacity=order_capacity)
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
    out_fills = np.zeros((max_fills, kb.FILL_WIDTH), np.int64)
    out_fees = np.zeros(max_fills, np.float64)
    tape = np.ascontiguousarray(tape, np.int64).reshape(-1, kb.TAPE_WIDTH)
    n = kb.run_tape(ex, syms, orders, free, cmds, events, pos, books_px, books_qty, states,
                    sh_px, sh_qty, sh_n, seen, ev.stream_table(), ev.book_table(),
                    np.ascontiguousarray(ev.book_ts_exch_ns),
                    np.ascontiguousarray(ev.level_px_ticks),
                    np.ascontiguousarray(ev.level_qty_lots), np.ascontiguousarray(ev.inst_flags),
                    np.ascontiguousarray(ev.trade_ts_exch_ns),
                    np.ascontiguousarray(ev.trade_px_ticks),
                    np.ascontiguousarray(ev.trade_qty_lots),
                    np.ascontiguousarray(ev.trade_side), tape, out_fills, out_fees)
    if n < 0:
        raise InvariantViolation(f"backtest.run_tape returned {n}")
    return TapeResult(out_fills[:n].copy(), out_fees[:n].copy(), pos)

"""StrategyLoop: the state tuples of the jitted backtest loop (`mmd.kernels.backtest.advance`),
built from the objects the Python driver uses, and its results read back (LoopResult). The
exchange state comes from SimExchange's own builder, so the queue model, partial fills, fees
and latency are the ones a live run uses. Runs nothing by itself but `advance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmd.config import AppConfig
from mmd.feeds.convert.events import EventArrays
from mmd.kernels import backtest as kb
from mmd.kernels.backtest import F64, I64, Arrays, LoopState, Rec
from mmd.kernels.book_sync import SYNC_WIDTH
from mmd.kernels.exchange import CMD_DTYPE, EVENT_DTYPE
from mmd.kernels.portfolio import alloc_positions
from mmd.sim.exchange import SimExchange


def _instruments(ev: EventArrays) -> dict[int, int]:
    """The first instrument row of each symbol id."""
    first: dict[int, int] = {}
    for row, s in enumerate(ev.inst_sym.tolist()):
        first.setdefault(int(s), row)
    return first


OMS_CAPACITY = 256  # non-terminal orders per symbol the loop's order manager holds


@dataclass
class LoopResult:
    """What one run of the jitted strategy loop produced.

    Attributes:
        fills: int64[n, kb.FILL_WIDTH] (ts, sym, order number, side, px, qty, leaves), in the
            order the portfolio applied them; fees: float64[n] (quote).
        client_ids: the client order id of each fill (as the Python driver names it:
            f"{symbol}-{strategy start ms}-{order number}").
        positions: POSITION_DTYPE per event-cache symbol (marks, cash, fees).
        total_pnl_quote: realized + unrealized - fees + funding over the symbols.
        equity_ts_ns, equity_quote, equity_position_lots, equity_sym: the equity curve sampled
            every 100 ms of the book's time (what `mmd backtest` reports).
        mid_ts_ns, mid_ticks: the mids sampled with it.
        quote_ts_ns, quote_bid_ticks, quote_ask_ticks, quote_sym: the quote target's top
            whenever it changed (NaN = no level).
        decisions, submits, cancels: per symbol.
        halted: the kill switch tripped.
    """

    fills: I64
    fees: F64
    client_ids: list[str]
    positions: Rec
    total_pnl_quote: float
    equity_ts_ns: I64
    equity_quote: F64
    equity_position_lots: I64
    equity_sym: I64
    mid_ts_ns: I64
    mid_ticks: F64
    quote_ts_ns: I64
    quote_bid_ticks: F64
    quote_ask_ticks: F64
    quote_sym: I64
    decisions: I64
    submits: I64
    cancels: I64
    halted: bool


class StrategyLoop:
    """The state tuples of `mmd.kernels.backtest.advance` for one event cache and config, built
    from the very objects the Python driver uses (SimExchange, Quoter, IntensityCalibrator,
    the latency model), so both drivers start from the same numbers.

    Args:
        ev: the event cache (every symbol in it is traded).
        cfg: the effective config (strategy model "as" or "glft").
        rl: (q, visits, rpi, rpf, actions, rs, rng) of mmd.kernels.rl, or None (RL off); rs is
            float64[RS_SIZE] (shared by the symbols) or float64[n_sym, RS_SIZE].
        ml: float64[n_sym, ML_SIZE] ML inputs the decisions read (default neutral).
    """

    def __init__(
        self,
        ev: EventArrays,
        cfg: AppConfig,
        *,
        rl: Arrays | None = None,
        ml: F64 | None = None,
        fills_capacity: int | None = None,
    ) -> None:
        from mmd.kernels import rl as krl
        from mmd.kernels.strategy import (
            ACCT_SIZE,
            CI_SIZE,
            COMMAND_DTYPE,
            DF_SIZE,
            ML_SIZE,
            ORDER_DTYPE,
            RISK_BUCKET_DTYPE,
            RPF_BURST,
            RPF_LOT,
            RPF_MAX_NOTIONAL,
            RPF_RATE_PER_NS,
            RPF_SIZE,
            RPF_TICK,
        )
        from mmd.sim.latency import FeedDerivedLatency, build_latency
        from mmd.strategy.calibration import IntensityCalibrator
        from mmd.strategy.quoter import NEUTRAL, Quoter, ml_array

        self.ev = ev
        scfg = cfg.strategy
        first = _instruments(ev)
        n_sym = len(ev.symbols)
        self.n_sym = n_sym
        self.names = [ev.symbols[s][1] for s in range(n_sym)]
        insts = [ev.instrument(first[s]) for s in range(n_sym)]
        self.instruments = insts
        latency = build_latency(cfg.exchange)
        feed = latency if isinstance(latency, FeedDerivedLatency) else FeedDerivedLatency(-1, -1)
        sim = SimExchange(
            cfg.exchange,
            {i.symbol: i for i in insts},
            entry_latency_ns=latency.entry_latency_ns(),
            cancel_latency_ns=latency.cancel_latency_ns(),
        )
        idx = [sim._symbols[name].index for name in self.names]
        cap = cfg.market.book_levels
        exs = (
            sim._ex.copy(),
            np.ascontiguousarray(sim._syms[idx]),
            np.ascontiguousarray(sim._orders[idx]),
            np.ascontiguousarray(sim._free[idx]),
            np.zeros(4096, CMD_DTYPE),
            np.zeros(1024, EVENT_DTYPE),
            np.zeros((n_sym, 2, cap), np.int64),
            np.zeros((n_sym, 2, cap), np.int64),
            np.zeros((n_sym, 2), np.int64),
        )
        m_cap, t_cap = cfg.market.mid_capacity, cfg.market.trade_capacity
        mkt = (
            np.zeros((n_sym, 2, cap), np.int64),
            np.zeros((n_sym, 2, cap), np.int64),
            np.zeros((n_sym, SYNC_WIDTH), np.int64),
            np.zeros((n_sym, m_cap), np.int64),
            np.zeros((n_sym, m_cap), np.float64),
            np.zeros((n_sym, t_cap), np.int64),
            np.zeros((n_sym, t_cap), np.int64),
            np.zeros((n_sym, t_cap), np.int64),
            np.zeros((n_sym, t_cap), np.int64),
        )
        quoters = [Quoter(scfg, inst) for inst in insts]
        cals = [IntensityCalibrator(scfg.calibration) for _ in insts]
        levels = quoters[0].tgt.shape[1]
        si = np.zeros((n_sym, kb.SI_SIZE), np.int64)
        si[:, kb.SI_NEXT_OID] = 1
        self.ml = np.empty((n_sym, ML_SIZE), np.float64)
        for s in range(n_sym):
            ml_array(NEUTRAL, self.ml[s])
        if ml is not None:
            self.ml[:] = ml
        wins = [np.stack([c.win[k] for c in cals]) for k in range(6)]
        strat = (
            si,
            *wins,
            np.stack([c.cal_i for c in cals]),
            np.stack([c.cal_f for c in cals]),
            np.zeros((n_sym, 2), np.int64),
            np.zeros((n_sym, 4, levels), np.int64),
            np.zeros((n_sym, DF_SIZE), np.float64),
            self.ml,
            np.zeros(OMS_CAPACITY + 2 * levels, COMMAND_DTYPE),
            np.zeros(OMS_CAPACITY, ORDER_DTYPE),
            np.zeros(2 * levels, np.int64),
            np.zeros(1, np.int64),
            np.zeros(ACCT_SIZE, np.int64),
        )
        assert strat[7].shape[1] == CI_SIZE
        oms = np.zeros((n_sym, OMS_CAPACITY, kb.OM_WIDTH), np.int64)
        window = feed._recent.maxlen or 1
        g = np.zeros(kb.G_SIZE, np.int64)
        g[kb.G_DAY] = -1
        acct = (
            alloc_positions(np.array([i.tick * i.lot for i in insts], np.float64)),
            np.zeros(n_sym, RISK_BUCKET_DTYPE),
            g,
            np.zeros(kb.GF_SIZE, np.float64),
            np.zeros(window, np.int64),
            np.zeros(window, np.int64),
        )
        rcfg = cfg.risk
        rpf = np.zeros((n_sym, RPF_SIZE), np.float64)
        rpf[:, RPF_MAX_NOTIONAL] = rcfg.max_notional
        rpf[:, RPF_LOT] = [i.lot for i in insts]
        rpf[:, RPF_TICK] = [i.tick for i in insts]
        rpf[:, RPF_RATE_PER_NS] = rcfg.max_orders_per_s / 1e9
        rpf[:, RPF_BURST] = max(1.0, rcfg.max_orders_per_s)
        max_lots = np.array(
            [
                max(max(1, i.qty_to_lots(scfg.order_size)), i.limit_lots(scfg.max_position))
                for i in insts
            ],
            np.int64,
        )
        pi = np.zeros(kb.PI_SIZE, np.int64)
        derive = isinstance(latency, FeedDerivedLatency)
        if isinstance(latency, FeedDerivedLatency):
            pi[kb.PI_ENTRY_NS] = latency._entry_cfg
            pi[kb.PI_CANCEL_NS] = latency._cancel_cfg
        else:
            pi[kb.PI_ENTRY_NS] = latency.entry_latency_ns()
            pi[kb.PI_CANCEL_NS] = latency.cancel_latency_ns()
        pi[kb.PI_DERIVE] = int(derive)
        pi[kb.PI_MIN_SAMPLES] = feed._min_samples
        pi[kb.PI_FALLBACK_NS] = feed._fallback_ns
        pi[kb.PI_WARMUP_NS] = round(scfg.warmup_s * 1e9)
        pi[kb.PI_SAMPLE_NS] = 100_000_000
        pf = np.zeros(kb.PF_SIZE, np.float64)
        pf[kb.PF_MAX_LOSS] = rcfg.max_loss_per_day
        pf[kb.PF_LAT_SCALE] = feed._scale
        prm = (
            np.stack([q.qpi for q in quoters]),
            np.stack([q.qpf for q in quoters]),
            np.stack([c.cal_pi for c in cals]),
            np.stack([c.cal_pf for c in cals]),
            rpf,
            max_lots,
            pi,
            pf,
        )
        if rl is None:
            rpi_off = np.zeros(krl.RPI_SIZE, np.int64)
            rpi_off[krl.RPI_MODE] = krl.MODE_OFF
            rl = (
                np.zeros((1, 1), np.float64),
                np.zeros((1, 1), np.int64),
                rpi_off,
                np.zeros(krl.RPF_SIZE, np.float64),
                np.ones((1, 2), np.float64),
                krl.new_agent_state(),
                np.ones(1, np.uint64),
            )
        q, visits, rpi, rpf_rl, actions, rs, rng = rl
        if rs.ndim == 1:  # one agent state per symbol (views of the caller's for one symbol)
            rs = rs.reshape(1, -1) if n_sym == 1 else np.tile(rs, (n_sym, 1))
        self.rl = (
            q,
            visits,
            rpi,
            rpf_rl,
            actions,
            rs,
            rng,
            np.zeros((n_sym, krl.OBS_SIZE), np.float64),
        )
        self.data = (
            ev.stream_table(),
            np.ascontiguousarray(ev.ev_ts_recv_ns),
            np.ascontiguousarray(ev.ev_frame),
            ev.book_table(),
            np.ascontiguousarray(ev.book_ts_exch_ns),
            np.ascontiguousarray(ev.level_px_ticks),
            np.ascontiguousarray(ev.level_qty_lots),
            np.ascontiguousarray(ev.inst_flags),
            np.ascontiguousarray(ev.trade_ts_exch_ns),
            np.ascontiguousarray(ev.trade_px_ticks),
            np.ascontiguousarray(ev.trade_qty_lots),
            np.ascontiguousarray(ev.trade_side),
        )
        n_books = len(ev.book_flags) + 1
        if fills_capacity is None:
            fills_capacity = len(ev.trade_px_ticks) + n_books + 1024
        nan2 = np.full((n_sym, 2), np.nan)
        self.out = (
            np.zeros((fills_capacity, kb.FILL_WIDTH), np.int64),
            np.zeros(fills_capacity, np.float64),
            np.zeros(n_books, np.int64),
            np.zeros(n_books, np.float64),
            np.zeros(n_books, np.int64),
            np.zeros(n_books, np.int64),
            np.zeros(n_books, np.int64),
            np.zeros(n_books, np.float64),
            np.zeros(n_books, np.int64),
            np.zeros(n_books, np.float64),
            np.zeros(n_books, np.float64),
            np.zeros(n_books, np.int64),
            nan2,
            nan2.copy(),
        )
        self.mkt, self.exs, self.strat, self.oms, self.acct, self.prm = (
            mkt,
            exs,
            strat,
            oms,
            acct,
            prm,
        )

    def state(self) -> LoopState:
        """(data, mkt, exs, strat, oms, acct, prm, rl, out): advance()'s arguments."""
        return (
            self.data,
            self.mkt,
            self.exs,
            self.strat,
            self.oms,
            self.acct,
            self.prm,
            self.rl,
            self.out,
        )

    def advance(self, stop_row: int | None = None) -> int:
        """Run the loop up to stream row stop_row (default: the end). Returns advance()'s code."""
        n = len(self.ev.ev_kind) if stop_row is None else stop_row
        return int(kb.advance(*self.state(), n))

    def result(self) -> LoopResult:
        """The outputs so far."""
        g = self.acct[2]
        si = self.strat[0]
        pos = self.acct[0]
        o = self.out
        n_f, n_eq, n_mid, n_q = (
            int(g[kb.G_N_FILLS]),
            int(g[kb.G_N_EQ]),
            int(g[kb.G_N_MID]),
            int(g[kb.G_N_QUOTE]),
        )
        fills = o[0][:n_f].copy()
        prefix = [
            f"{self.names[s]}-{int(si[s, kb.SI_START_NS]) // 1_000_000}-" for s in range(self.n_sym)
        ]
        ids = [prefix[int(r[kb.FILL_SYM])] + str(int(r[kb.FILL_ORDER_ID])) for r in fills]
        total = sum(_pnl(pos, s) for s in range(self.n_sym))
        return LoopResult(
            fills=fills,
            fees=o[1][:n_f].copy(),
            client_ids=ids,
            positions=pos.copy(),
            total_pnl_quote=total,
            equity_ts_ns=o[2][:n_eq].copy(),
            equity_quote=o[3][:n_eq].copy(),
            equity_position_lots=o[4][:n_eq].copy(),
            equity_sym=o[5][:n_eq].copy(),
            mid_ts_ns=o[6][:n_mid].copy(),
            mid_ticks=o[7][:n_mid].copy(),
            quote_ts_ns=o[8][:n_q].copy(),
            quote_bid_ticks=o[9][:n_q].copy(),
            quote_ask_ticks=o[10][:n_q].copy(),
            quote_sym=o[11][:n_q].copy(),
            decisions=si[:, kb.SI_DECISIONS].copy(),
            submits=si[:, kb.SI_SUBMITS].copy(),
            cancels=si[:, kb.SI_CANCELS].copy(),
            halted=bool(g[kb.G_HALTED]),
        )


def _pnl(pos: Rec, s: int) -> float:
    from mmd.kernels.portfolio import compute_pnl_quote

    return float(compute_pnl_quote(pos, s))

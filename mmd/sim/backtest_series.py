"""What a backtest reports: the series sampled frame by frame (python engine) or taken from the
jitted loop's result (fast engine), each symbol's summary, the book's figures. Core: reads and
writes no file; the caller (mmd.backtest_run) drives the frames and writes the reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mmd.errors import ConfigError
from mmd.model.events import MAKER
from mmd.model.instrument import Instrument
from mmd.sim.net_delta import SymbolPath, net_delta_figures
from mmd.sim.report import (
    FILL_DTYPE,
    QUOTE_DTYPE,
    fills_array,
    mids_array,
    summarize,
)
from mmd.sim.report_charts import ReportSeries

if TYPE_CHECKING:
    from mmd.learn.runtime import LoadedModels
    from mmd.market.hub import MarketHub
    from mmd.sim.strategy_loop import LoopResult
    from mmd.strategy.hedge import PortfolioHedge
    from mmd.trading.trader import Trader

SAMPLE_NS = 100_000_000  # the equity curve and mids, every 100 ms of exchange time


class SeriesSampler:
    """The python engine's series of every symbol, sampled after each frame: the equity, the
    position and the mid every SAMPLE_NS of the book's exchange time, and our quotes' top
    whenever it changes."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.per: dict[str, dict[str, list[Any]]] = {
            s: {"eq_ts": [], "eq": [], "pos": [], "mid_ts": [], "mids": [], "quotes": []}
            for s in symbols
        }
        self.last_q: dict[str, tuple[float, float]] = dict.fromkeys(symbols, (np.nan, np.nan))
        self.next_sample = dict.fromkeys(symbols, 0)

    def sample(self, hub: MarketHub, trader: Trader) -> None:
        """After a frame the trader saw: append what changed or fell due."""
        per, last_q, next_sample = self.per, self.last_q, self.next_sample
        for sym in self.symbols:
            st = hub.states.get(sym)
            if st is None or not st.sync.synced:
                continue
            t = st.book.ts_exch_ns
            d = per[sym]
            if t >= next_sample[sym]:  # the equity curve and mids, every 100 ms of exchange time
                next_sample[sym] = t + SAMPLE_NS
                m = st.book.mid_ticks()
                if m == m:
                    d["mid_ts"].append(t)
                    d["mids"].append(m)
                d["eq_ts"].append(t)
                d["eq"].append(
                    trader.portfolio.position(sym).pnl_quote
                    if sym in trader.portfolio.symbols
                    else 0.0
                )
                d["pos"].append(trader.portfolio.position_lots(sym))
            strat = trader.strategies.get(sym)
            tgt = strat.target if strat is not None else None
            q = (
                (
                    float(tgt.bids[0][0]) if tgt.bids else np.nan,
                    float(tgt.asks[0][0]) if tgt.asks else np.nan,
                )
                if tgt
                else (np.nan, np.nan)
            )
            lq = last_q[sym]
            if q != lq and not (
                q[0] != q[0] and lq[0] != lq[0] and q[1] != q[1] and lq[1] != lq[1]
            ):
                d["quotes"].append((t, q[0], q[1]))
                last_q[sym] = q

    def results(
        self,
        hub: MarketHub,
        trader: Trader,
        models: LoadedModels | None,
        *,
        category: str,
        strategy: str,
        n_frames: int,
        provenance: dict[str, Any],
        start_ns: int | None,
        end_ns: int | None,
    ) -> list[tuple[dict[str, Any], ReportSeries, Instrument]]:
        """(summary, ReportSeries, instrument) per symbol, in the sampler's symbol order."""
        out = []
        for sym in self.symbols:
            st = hub.states.get(sym)
            if st is None:
                raise ConfigError(f"backtest: no instrument frame for {sym} in the recording")
            inst = st.instrument
            d = self.per[sym]
            fills = fills_array(f for f in trader.fills if f.symbol == sym)
            mid_arr = mids_array(d["mid_ts"], d["mids"])
            series = ReportSeries(
                equity_ts_ns=np.array(d["eq_ts"], np.int64),
                equity_quote=np.array(d["eq"], np.float64),
                position_lots=np.array(d["pos"], np.int64),
                fills=fills,
                mids=mid_arr,
                tick=inst.tick,
                lot=inst.lot,
                symbol=sym,
                quotes=(
                    np.array(d["quotes"], dtype=QUOTE_DTYPE)
                    if d["quotes"]
                    else np.empty(0, QUOTE_DTYPE)
                ),
            )
            summary = summarize(
                series.equity_ts_ns,
                series.equity_quote,
                series.position_lots,
                fills,
                mid_arr,
                lot=inst.lot,
                tick=inst.tick,
                strategy=strategy,
                events=n_frames,
            )
            summary.update(symbol=sym, category=category, **provenance)
            if models is not None:
                strat = trader.strategies.get(sym)
                dec = strat.decisions if strat is not None else 0
                summary["models"] = models.versions()
                summary["widened_fraction"] = (strat.widened / dec) if strat and dec else 0.0
            if start_ns is not None or end_ns is not None:
                summary["window_ns"] = [start_ns, end_ns]
            out.append((summary, series, inst))
        return out


def loop_series(r: LoopResult, inst: Instrument, symbol: str) -> ReportSeries:
    """The fast engine's ReportSeries of one symbol, from the jitted loop's result."""
    fills = np.zeros(len(r.fills), FILL_DTYPE)
    fills["ts_ns"] = r.fills[:, 0]
    fills["side"] = r.fills[:, 3]
    fills["px_ticks"] = r.fills[:, 4]
    fills["qty_lots"] = r.fills[:, 5]
    fills["fee_quote"] = r.fees
    fills["liquidity"] = MAKER
    quotes = np.zeros(len(r.quote_ts_ns), QUOTE_DTYPE)
    quotes["ts_ns"] = r.quote_ts_ns
    quotes["bid_ticks"] = r.quote_bid_ticks
    quotes["ask_ticks"] = r.quote_ask_ticks
    return ReportSeries(
        equity_ts_ns=r.equity_ts_ns,
        equity_quote=r.equity_quote,
        position_lots=r.equity_position_lots,
        fills=fills,
        mids=mids_array(r.mid_ts_ns, r.mid_ticks),
        tick=inst.tick,
        lot=inst.lot,
        quotes=quotes,
        symbol=symbol,
    )


def symbol_path(
    pos_ts_ns: npt.NDArray[np.int64],
    position_lots: npt.NDArray[Any],
    mids: npt.NDArray[np.void],
    inst: Instrument,
    pnl_quote: float,
) -> SymbolPath:
    """A symbol's sampled path in base units and quote (mmd.sim.net_delta.SymbolPath)."""
    return SymbolPath(
        position_ts_ns=pos_ts_ns,
        position_base=position_lots * inst.lot,
        mid_ts_ns=mids["ts_ns"],
        mid_quote=mids["mid_ticks"] * inst.tick,
        pnl_quote=float(pnl_quote),
    )


def book_figures(
    paths: dict[str, SymbolPath], hedge: PortfolioHedge | None
) -> dict[str, Any] | None:
    """With more than one symbol, the book's figures: the symbols' total PnL and the net delta
    of the whole book (mmd.sim.net_delta), and the hedge's betas when it ran (else None)."""
    if len(paths) < 2:
        return None
    book = net_delta_figures(paths)
    book["hedge"] = None
    if hedge is not None:
        book["hedge"] = {
            "instrument": hedge.instrument,
            "skew_ticks": hedge.cfg.skew_ticks,
            "betas": {s: {"beta": b, "se": e} for s, (b, e) in hedge.betas().items()},
        }
    return book

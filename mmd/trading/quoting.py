"""Quoting for the Trader: each symbol's strategy decision (with the hedge skew and account
risk), passed through the order state and the risk gate, then sent. No I/O; the Trader owns
every piece of state used here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmd.kernels.strategy import QPI_MAX_LOTS
from mmd.market.hub import SymbolState
from mmd.model.codes import BUY, SELL
from mmd.model.events import Command
from mmd.strategy.engine import AccountRisk, SymbolStrategy
from mmd.trading.happened import Happened

if TYPE_CHECKING:
    from mmd.trading.trader import Trader


def strategy_for(trader: Trader, symbol: str, st: SymbolState, now_ns: int) -> SymbolStrategy:
    """The symbol's strategy (new when the instrument appears or changes)."""
    strat = trader.strategies.get(symbol)
    if strat is None or strat.instrument != st.instrument:
        strat = trader.strategies[symbol] = SymbolStrategy(
            trader.strategy_cfg, st.instrument, now_ns, trader.models
        )
    return strat


def quote(trader: Trader, now_ns: int, symbols: list[str] | None = None) -> list[Command]:
    """Decide quotes for the symbols (default all), pass them through risk, send them.

    Args:
        now_ns: the daemon clock (drives the strategies' warm-up).
        symbols: which symbols to requote.
    """
    sent: list[Command] = []
    if not trader.restored:
        if any(s not in trader.hub.states for s in trader.hub.symbols):
            return []  # restore needs every instrument: wait until all are known
        trader.restore(trader.last_exch_ns)
    feed_ns = max(0, trader.feed.feed_latency_ns())
    hedge = trader.hedge
    if hedge is not None:
        hedge.compute_target(
            {s: trader.portfolio.position_lots(s) for s in trader.hub.states},
            {s: st.instrument for s, st in trader.hub.states.items()},
        )
    for sym in symbols if symbols is not None else list(trader.hub.states):
        st = trader.hub.states.get(sym)
        if st is None:
            continue
        strat = strategy_for(trader, sym, st, now_ns)
        position = trader.portfolio.position_lots(sym)
        pnl = 0.0  # the RL reward's PnL (a symbol never traded has none)
        if strat.rl is not None and sym in trader.portfolio.symbols:
            pnl = trader.portfolio.position(sym).pnl_quote
        skew = 0.0
        if hedge is not None and sym == hedge.instrument:
            skew = hedge.compute_skew(position, int(strat.quoter.qpi[QPI_MAX_LOTS]))
        cmds = strat.step(
            now_ns,
            st,
            trader.oms.open_orders(sym),
            position,
            halted=trader.risk.halted,
            pnl_quote=pnl,
            account=AccountRisk(
                total_pnl_quote=trader.portfolio.total_pnl_quote,
                loss_used=trader.risk.loss_budget_used(trader.day_today),
            )
            if trader.strategy_cfg.risk_size
            else None,
            hedge_skew_ticks=skew,
        )
        if not cmds:
            continue
        cmds = trader.oms.filter_cancels(cmds)
        allowed, rejected = trader.risk.check(
            sym,
            cmds,
            now_ns=now_ns,
            position_lots=position,
            open_buy_lots=trader.oms.open_lots(sym, BUY),
            open_sell_lots=trader.oms.open_lots(sym, SELL),
            book_stale=st.stale or not st.sync.synced,
        )
        # the decision happens on exchange time: after the event it reacted to, plus the
        # feed latency it took to see it
        decided_exch_ns = max(st.book.ts_exch_ns, 0) + feed_ns
        if rejected and trader.happened is not None:
            for rj in rejected:
                trader.note(
                    Happened(
                        kind="rejected",
                        symbol=sym,
                        source="risk",
                        reason=rj.reason,
                        position_lots=position,
                    )
                )
        for cmd in allowed:
            trader.send(cmd, decided_exch_ns)
            sent.append(cmd)
    return sent

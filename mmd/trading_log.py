"""The daemon's trading log (shell): logs what the Trader reports, never deciding anything.

The core never logs. After each step of the trader the daemon calls `TradingLog.after_step`,
which drains `Trader.drain_happened` (fills, rejections, funding, kill-switch trips), diffs the
strategies' state and calibration counters, and writes a `pnl_heartbeat` per symbol once a
minute of the daemon's clock (exchange time for a replay). `restore` runs the ledger restore
and logs its figures. Event names and fields are listed in the README (Trading logs).
"""

from __future__ import annotations

import time
from typing import Any

from mmd.logs import get_logger
from mmd.model.events import FundingPaid, OrderFilled, OrderRejected
from mmd.trading.happened import Happened
from mmd.trading.trader import Trader

HEARTBEAT_NS = 60_000_000_000
_SIDES = {1: "buy", -1: "sell"}
_LIQUIDITY = {1: "maker", 2: "taker"}
# model files the strategy uses: none yet (the ML overlay is not wired in)
MODEL_VERSIONS_NONE = "none"


class TradingLog:
    """Logs one daemon's trading (component `trading`, `symbol` bound per line).

    Args:
        trader: the daemon's trader (it starts keeping what happens).
    """

    def __init__(self, trader: Trader) -> None:
        self.trader = trader
        trader.keep_happened()
        self.log = get_logger("trading")
        self._states: dict[str, str] = {}
        self._fits: dict[str, tuple[int, str]] = {}
        self._next_beat: dict[str, int] = {}
        self._fills: dict[str, int] = {}
        self._risk_logged: set[tuple[str, str]] = set()
        self._risk_rejects: dict[str, int] = {}
        self._halted = trader.risk.halted

    # -- restore ----------------------------------------------------------------------------

    def restore_if_due(self) -> None:
        """Run the ledger restore (as `Trader.quote` would on its first call) once every
        instrument is known, timed, and log `ledger_restored` with its figures."""
        tr = self.trader
        if tr.restored or any(s not in tr.hub.states for s in tr.hub.symbols):
            return
        t0 = time.perf_counter()
        applied = tr.restore(tr.last_exch_ns)
        seconds = time.perf_counter() - t0
        pf = tr.portfolio
        led = tr.ledger
        positions = {
            s: tr.hub.states[s].instrument.lots_to_qty(pf.position_lots(s))
            for s in sorted(tr.hub.states)
            if s in pf.symbols
        }
        self.log.info(
            "ledger_restored",
            symbol=None,
            path=str(led.path) if led is not None else None,
            fills=led.fill_count() if led is not None else 0,
            fills_after_checkpoint=applied,
            resuming_replay=tr.journal.resuming,
            positions=positions,
            realized=pf.realized_quote,
            fees=pf.fees_quote,
            funding=pf.funding_quote,
            total_pnl=pf.total_pnl_quote,
            halted=tr.risk.halted,
            seconds=round(seconds, 6),
        )
        if tr.risk.halted:
            self._halted = True
            self.log.warning("risk_halted", symbol=None, reason=tr.risk.halt_reason, restored=True)

    # -- after every trader step ------------------------------------------------------------

    def after_step(self, now_ns: int) -> None:
        """Log what happened since the last call; a heartbeat per symbol once a minute."""
        tr = self.trader
        for h in tr.drain_happened():
            self._happened(h)
        if self._halted and not tr.risk.halted:
            self._halted = False
            self.log.info("risk_reset", symbol=None, how="kill switch cleared")
        for sym, strat in tr.strategies.items():
            state = strat.gate.state
            if state != self._states.get(sym):
                self.log.info(
                    "strategy_state_changed",
                    symbol=sym,
                    previous=self._states.get(sym),
                    state=state,
                    source=strat.calibrator.source,
                    model_versions=MODEL_VERSIONS_NONE,
                )
                self._states[sym] = state
            cal = strat.calibrator
            seen = self._fits.get(sym, (0, "none"))
            if cal.fits != seen[0]:
                if cal.last_status != "ok" and cal.last_status != seen[1]:
                    self.log.info(
                        "calibration_rejected",
                        symbol=sym,
                        why=cal.last_status,
                        r2=_num(cal.r2),
                        kappa=_num(cal.raw_kappa),
                        a=_num(cal.raw_a),
                        trades=cal.n_trades_window,
                        points=cal.n_points,
                        window_s=cal.window_s_used,
                        kept=cal.source,
                    )
                self._fits[sym] = (cal.fits, cal.last_status)
        for sym in tr.hub.states:
            due = self._next_beat.get(sym)
            if due is None:
                self._next_beat[sym] = now_ns + HEARTBEAT_NS
            elif now_ns >= due:
                self._next_beat[sym] = now_ns + HEARTBEAT_NS
                self._heartbeat(sym, now_ns)

    def _happened(self, h: Happened) -> None:
        tr = self.trader
        st = tr.hub.states.get(h.symbol)
        inst = st.instrument if st is not None else None
        item = h.item
        if h.kind == "filled" and isinstance(item, OrderFilled) and inst is not None:
            self._fills[h.symbol] = self._fills.get(h.symbol, 0) + 1
            self.log.info(
                "order_filled",
                symbol=h.symbol,
                client_order_id=item.client_order_id,
                fill_id=item.fill_id,
                side=_SIDES.get(item.side, str(item.side)),
                price=inst.format_px(item.px_ticks),
                qty=inst.format_qty(item.qty_lots),
                leaves=inst.format_qty(item.leaves_lots),
                fee=item.fee_quote,
                liquidity=_LIQUIDITY.get(item.liquidity, str(item.liquidity)),
                position=inst.format_qty(h.position_lots),
                ts_exch_ns=item.ts_exch_ns,
            )
        elif h.kind == "rejected":
            if h.source == "risk":
                # the gate refuses the same thing every requote: once per (symbol, reason)
                # per heartbeat, the count goes into the heartbeat
                self._risk_rejects[h.symbol] = self._risk_rejects.get(h.symbol, 0) + 1
                if (h.symbol, h.reason) in self._risk_logged:
                    return
                self._risk_logged.add((h.symbol, h.reason))
            self.log.info(
                "order_rejected",
                symbol=h.symbol,
                source=h.source,
                reason=h.reason,
                detail=item.reason if isinstance(item, OrderRejected) else h.reason,
                client_order_id=item.client_order_id if isinstance(item, OrderRejected) else None,
            )
        elif h.kind == "funding" and isinstance(item, FundingPaid):
            self.log.info(
                "funding_paid",
                symbol=h.symbol,
                rate=item.rate,
                amount=item.amount_quote,
                mark_px=item.mark_px,
                position=inst.format_qty(item.position_lots) if inst else item.position_lots,
                ts_exch_ns=item.ts_exch_ns,
            )
        elif h.kind == "halted":
            self._halted = True
            self.log.warning(
                "risk_halted",
                symbol=h.symbol or None,
                reason=h.reason,
                day_pnl=tr.day_today,
                total_pnl=tr.portfolio.total_pnl_quote,
            )

    def _heartbeat(self, sym: str, now_ns: int) -> None:
        tr = self.trader
        st = tr.hub.states[sym]
        inst = st.instrument
        pf = tr.portfolio
        fields: dict[str, Any] = {"position": inst.format_qty(pf.position_lots(sym))}
        if sym in pf.symbols:
            p = pf.position(sym)
            fields.update(
                realized=p.realized_quote,
                unrealized=p.unrealized_quote,
                fees=p.fees_quote,
                funding=p.funding_quote,
                total=p.pnl_quote,
            )
        strat = tr.strategies.get(sym)
        book_ns = st.last_book_recv_ns
        self.log.info(
            "pnl_heartbeat",
            symbol=sym,
            **fields,
            fills=self._fills.get(sym, 0),
            quotes=(strat.submits if strat is not None else 0),
            cancels=(strat.cancels if strat is not None else 0),
            open_orders=len(tr.oms.open_orders(sym)),
            risk_rejected=self._risk_rejects.get(sym, 0),
            state=strat.gate.state if strat is not None else "waiting",
            book_age_s=round((now_ns - book_ns) / 1e9, 3) if book_ns > 0 else None,
            halted=tr.risk.halted,
        )
        self._risk_logged = {k for k in self._risk_logged if k[0] != sym}


def _num(v: float) -> float | None:
    return None if v != v else round(float(v), 6)

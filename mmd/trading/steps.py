"""A symbol's instrument for the Trader: registered everywhere on first sight; new tick/lot
steps close its orders in the journal, forget old-unit state and re-base the position (or halt
when it cannot be). No I/O; the Trader owns every piece of state used here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmd.errors import InvariantViolation
from mmd.market.hub import SymbolState
from mmd.model.events import CancelOrder, OrderCanceled, OrderRejected
from mmd.model.instrument import Instrument
from mmd.trading.happened import REASON_STEP_CHANGE, Happened
from mmd.trading.orders import OrderStatus

if TYPE_CHECKING:
    from mmd.trading.trader import Trader


def ensure_symbol(trader: Trader, st: SymbolState) -> None:
    """Register a symbol's instrument on first sight, and again when the hub has a new one
    (new steps: a step change)."""
    inst = st.instrument
    known = trader.known.get(inst.symbol)
    if known is inst:
        return
    if known is not None and (known.tick_size, known.lot_size) != (
        inst.tick_size,
        inst.lot_size,
    ):
        _step_change(trader, inst)
    trader.known[inst.symbol] = inst
    trader.journal.note_instrument(inst)
    trader.exchange.add_instrument(inst)
    trader.portfolio.add_instrument(inst)
    if trader.restored:
        rebase(trader, inst, trader.last_exch_ns)
    order_lots = max(1, inst.qty_to_lots(trader.strategy_cfg.order_size))
    trader.risk.add_instrument(inst, min_lots=order_lots)


def _step_change(trader: Trader, inst: Instrument) -> None:
    """New tick/lot steps for a known symbol: close its orders in the journal (the paper
    exchange drops them with the old units), forget old-unit state, re-base the position."""
    sym, ts = inst.symbol, trader.last_exch_ns
    trader.step_changes += 1
    for o in trader.oms.orders(sym):
        coid = o.client_order_id
        trader.void.add(coid)
        if o.status is OrderStatus.PENDING_NEW:
            # still travelling: the exchange will accept it in the new units; cancel it
            # there as soon as it is sent on (its events are dropped)
            rej = OrderRejected(
                client_order_id=coid, symbol=sym, reason=REASON_STEP_CHANGE, ts_exch_ns=ts
            )
            trader.journal.write(rej, ts)
            trader.oms.on_event(rej)
            trader.count_reject(rej)
            continue
        if o.status is not OrderStatus.PENDING_CANCEL:
            cmd = CancelOrder(client_order_id=coid, symbol=sym)
            trader.journal.write(cmd, ts)
            trader.oms.on_command(cmd)
        ev = OrderCanceled(client_order_id=coid, symbol=sym, ts_exch_ns=ts)
        trader.journal.write(ev, ts)
        trader.oms.on_event(ev)
    trader.markout.forget(sym)
    trader.trade_cursor[sym] = 0  # the hub's new rings hold only new-unit trades
    trader.strategies.pop(sym, None)
    rebase(trader, inst, ts)


def rebase(trader: Trader, inst: Instrument, ts_ns: int) -> None:
    """Count a symbol's position in inst's steps; halt when it cannot be (see
    Portfolio.rebase: a position that is not a whole number of new lots)."""
    steps = trader.portfolio.steps(inst.symbol)
    if steps is None or steps == (inst.tick_size, inst.lot_size):
        return
    try:
        trader.portfolio.rebase(inst)
    except InvariantViolation as exc:
        was = trader.risk.halted
        trader.risk.halt(ts_ns, f"{REASON_STEP_CHANGE}: {exc}")
        trader.persist_halt()
        if trader.risk.halted and not was:
            trader.note(Happened(kind="halted", symbol=inst.symbol, reason=trader.risk.halt_reason))

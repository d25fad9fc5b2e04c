"""A restart's state: the checkpoint the Trader writes, and the restored ledger state applied to
a fresh portfolio, kill switch and funding settler. Pure; the Ledger does the reading."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from mmd.model.instrument import Instrument
from mmd.trading.funding import FundingSettler
from mmd.trading.ledger import Checkpoint, OrderState, Restored
from mmd.trading.orders import Orders
from mmd.trading.portfolio import Portfolio
from mmd.trading.risk import DayPnl, DayPnlState, HaltState, RiskGate


def checkpoint_of(
    portfolio: Portfolio, orders: Orders, settler: FundingSettler, ts_ns: int
) -> Checkpoint:
    """What the journal folds to now (positions, open orders, funding times)."""
    return Checkpoint(
        ts_ns=ts_ns,
        positions=portfolio.states(),
        orders=[
            OrderState(
                client_order_id=o.client_order_id,
                symbol=o.symbol,
                side=o.side,
                px_ticks=o.px_ticks,
                qty_lots=o.qty_lots,
                leaves_lots=o.leaves_lots,
                status=int(o.status),
                ts_exch_ns=o.ts_exch_ns,
            )
            for o in orders.orders()
        ],
        funded=dict(settler.funded),
    )


def apply_restored(
    r: Restored,
    *,
    portfolio: Portfolio,
    risk: RiskGate,
    settler: FundingSettler,
    category_of: Callable[[str], str],
    now_ns: int,
) -> DayPnl | None:
    """Apply a restored ledger: the kill switch's trip, the checkpoint, then every fill (in the
    steps it was counted in) and funding payment after it.

    Returns:
        The day's PnL baseline the ledger kept, or None when it kept none.
    """
    halt = r.meta.get("halt_state")
    if halt:
        risk.restore_halt(msgspec.json.decode(halt, type=HaltState), now_ns)
    day = r.meta.get("day_pnl")
    day_pnl = DayPnl(msgspec.json.decode(day, type=DayPnlState)) if day else None
    if r.checkpoint is not None:
        portfolio.load_states(r.checkpoint.positions)
        settler.funded.update(r.checkpoint.funded)
    for f, (tick, lot) in zip(r.fills, r.fill_steps, strict=True):
        inst = Instrument(
            symbol=f.symbol, category=category_of(f.symbol), tick_size=tick, lot_size=lot
        )
        portfolio.apply_fill(f, inst)
    for ev in r.funding:
        portfolio.apply_funding(ev)
        settler.funded[ev.symbol] = max(settler.funded.get(ev.symbol, -1), ev.ts_exch_ns)
    return day_pnl

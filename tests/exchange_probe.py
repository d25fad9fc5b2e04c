"""Reads of SimExchange's order slots that only tests and benchmarks need."""

from __future__ import annotations

from mmd.sim.exchange import SimExchange


def queue_ahead_lots(sim: SimExchange, symbol: str, client_order_id: str) -> float:
    """Estimated size ahead of a resting order (lots); NaN when it is not resting."""
    st = sim._symbols[symbol]
    slot = st.slot_of.get(client_order_id)
    if slot is None:
        return float("nan")
    return float(sim._orders[st.index, slot]["queue_ahead"])

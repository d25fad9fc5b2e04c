"""FundingSettler: which perpetual funding payments are due, computed from the hub's ticker state.

Pure: reads SymbolState (rate, next funding time, pending settlements the hub kept when a
ticker moved the next funding time forward) and the position; returns FundingPaid events for
the Trader to journal and apply. Never reads the clock (the exchange time is an argument).
"""

from __future__ import annotations

import math

from mmd.market.hub import SymbolState
from mmd.model.events import FundingPaid


class FundingSettler:
    """One payment per symbol and funding time, in time order.

    A funding time is settled when the exchange clock passes it, or when the hub reports it as
    pending (the post-settlement ticker moved the next time forward before any book or trade
    stamped after it arrived). A non-finite rate or mark is refused (counted in `refused`),
    never journaled.
    """

    def __init__(self) -> None:
        self.funded: dict[str, int] = {}  # symbol -> last funding time settled
        self.refused = 0

    def due(
        self, symbol: str, st: SymbolState, exch_ns: int, position_lots: int
    ) -> list[FundingPaid]:
        """Funding payments now due for one symbol (empty when none or flat)."""
        out: list[FundingPaid] = []
        todo = list(st.pending_funding)
        st.pending_funding.clear()
        if (
            st.next_funding_ns is not None
            and st.funding_rate is not None
            and exch_ns >= st.next_funding_ns
        ):
            todo.append((st.next_funding_ns, st.funding_rate))
        for due, rate in todo:
            if due <= self.funded.get(symbol, -1):
                continue
            self.funded[symbol] = due
            if position_lots == 0:
                continue
            inst = st.instrument
            mark = (
                st.mark_price
                if st.mark_price is not None
                else inst.ticks_to_px(st.book.mid_ticks())
            )
            if not (math.isfinite(rate) and math.isfinite(mark) and mark > 0):
                self.refused += 1
                continue
            base = inst.lots_to_qty(position_lots)
            out.append(
                FundingPaid(
                    funding_id=f"{symbol}@{due}",
                    symbol=symbol,
                    rate=rate,
                    position_lots=position_lots,
                    mark_px=mark,
                    amount_quote=-base * mark * rate,
                    ts_exch_ns=due,
                )
            )
        return out

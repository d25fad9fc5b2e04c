"""What the Trader did that the shell may log or count: `Happened` records and the bounded set
of rejection reasons. Plain data; no trading logic, no I/O."""

from __future__ import annotations

import msgspec

from mmd.model.events import FundingPaid, OrderFilled, OrderRejected

REASON_STEP_CHANGE = "instrument_changed"
# every reason an OrderRejected of the paper exchange (or of a step change) can carry; anything
# else is counted as "other" (a bounded metric label set)
EXCHANGE_REJECT_REASONS = (
    "post_only_would_cross",
    "unknown_symbol",
    "unknown_order",
    "invalid_order",
    "duplicate_client_order_id",
    "no_market_data",
    "too_many_orders",
    REASON_STEP_CHANGE,
)


class Happened(msgspec.Struct, frozen=True, kw_only=True):
    """Something the Trader did that the shell may log (`Trader.drain_happened`).

    Attributes:
        kind: "filled" (item: OrderFilled), "rejected" (item: OrderRejected; source
            "exchange" or "risk"), "funding" (item: FundingPaid), "halted" (reason).
        symbol: the symbol ("" for the portfolio-wide kill switch).
        item: the event, or None.
        position_lots: the symbol's position after the event.
        source: who refused an order ("exchange" or "risk").
        reason: why (a rejection or a halt).
    """

    kind: str
    symbol: str
    item: OrderFilled | OrderRejected | FundingPaid | None = None
    position_lots: int = 0
    source: str = ""
    reason: str = ""

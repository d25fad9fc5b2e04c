"""Commands (imperative) and order events (past tense) exchanged by strategy, risk, the paper
exchange, the order manager, the portfolio and the ledger.

Frozen, tagged msgspec Structs, so the ledger's journal decodes back as a tagged union. Prices in
ticks, sizes in lots, fees and cash in quote currency, times in ns (`ts_exch_ns` on the venue's
clock, `ts_recv_ns` on ours).
"""

from __future__ import annotations

import msgspec

# liquidity flags of a fill
MAKER = 1
TAKER = 2


class SubmitOrder(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Command: place a post-only limit order.

    Attributes:
        client_order_id: our id for the order.
        symbol: venue symbol.
        side: codes.BUY or codes.SELL.
        px_ticks: limit price in ticks.
        qty_lots: size in lots (> 0).
    """

    client_order_id: str
    symbol: str
    side: int
    px_ticks: int
    qty_lots: int


class CancelOrder(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Command: cancel a resting order.

    Attributes:
        client_order_id: our id of the order to cancel.
        symbol: venue symbol.
    """

    client_order_id: str
    symbol: str


class OrderAccepted(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The paper exchange put the order in its book (after the entry latency)."""

    client_order_id: str
    symbol: str
    side: int
    px_ticks: int
    qty_lots: int
    ts_exch_ns: int


class OrderRejected(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The paper exchange refused the order (post-only would cross, risk, unknown symbol)."""

    client_order_id: str
    symbol: str
    reason: str
    ts_exch_ns: int


class OrderFilled(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A fill (possibly partial) of one of our orders.

    Attributes:
        fill_id: unique id of this fill (idempotent journaling and restore).
        qty_lots: size of this fill; leaves_lots what remains open after it.
        liquidity: MAKER or TAKER.
        fee_quote: fee in quote currency (negative = rebate).
    """

    fill_id: str
    client_order_id: str
    symbol: str
    side: int
    px_ticks: int
    qty_lots: int
    leaves_lots: int
    liquidity: int
    fee_quote: float
    ts_exch_ns: int


class OrderCanceled(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The order left the paper book without (further) fills."""

    client_order_id: str
    symbol: str
    ts_exch_ns: int


class FundingPaid(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A funding payment on a perpetual position (amount_quote < 0 = we paid)."""

    funding_id: str
    symbol: str
    rate: float
    position_lots: int
    mark_px: float
    amount_quote: float
    ts_exch_ns: int


Command = SubmitOrder | CancelOrder
OrderEvent = OrderAccepted | OrderRejected | OrderFilled | OrderCanceled

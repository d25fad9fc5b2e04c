"""Position: one symbol's exact accounting (position, cash flow, cost basis, fees, funding)
and its snapshot and checkpoint forms. No I/O, no clock; Portfolio owns one per symbol.

Exactness: cash flow (-sum side*px*qty) and position are Python ints, and realized PnL is computed
as (cash flow + remaining cost basis) * tick * lot rather than accumulated fill by fill. So once a
position is flat its realized PnL is exact and independent of the order of the fills, and there
is no drift over a long run; only the cost basis of a position that was partly reduced is a float.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from mmd.kernels.portfolio import compute_fill


class PositionSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One symbol's accounting at a moment (quote amounts; avg entry and mark in ticks)."""

    symbol: str
    position_lots: int
    avg_entry_ticks: float
    mark_ticks: float | None
    realized_quote: float
    unrealized_quote: float
    fees_quote: float
    funding_quote: float
    pnl_quote: float


class PositionState(msgspec.Struct, frozen=True, kw_only=True):
    """A Position's exact accounting as stored in a ledger checkpoint."""

    symbol: str
    tick_size: str
    lot_size: str
    position_lots: int
    cash_ticks_lots: int
    cost_ticks_lots: float
    realized_carry_quote: float
    fees_quote: float
    funding_quote: float
    mark_ticks: float | None
    fills: int
    volume_lots: int


@dataclass(slots=True)
class Position:
    """Mutable accounting of one symbol.

    Attributes:
        symbol: venue symbol.
        quote_per_tick_lot: tick * lot (quote value of one tick on one lot).
        position_lots: signed position (+ long).
        cash_ticks_lots: -sum(side * px_ticks * qty_lots) over every fill (exact).
        cost_ticks_lots: signed cost basis of the open position (sum side*px*qty of what is
            still open; average entry = cost / position).
        fees_quote: fees paid (negative = net rebate).
        funding_quote: funding received (negative = paid).
        mark_ticks: last mark (mid) in ticks, or None before the first mark.
        fills: number of fills applied.
        volume_lots: traded size.
        realized_carry_quote: realized PnL carried over an instrument step change (the exact
            tick*lot integers restart in the new units; see `Portfolio.rebase`).
        tick_size, lot_size: the steps the tick and lot amounts are counted in.
    """

    symbol: str
    quote_per_tick_lot: float
    position_lots: int = 0
    cash_ticks_lots: int = 0
    cost_ticks_lots: float = 0.0
    fees_quote: float = 0.0
    funding_quote: float = 0.0
    mark_ticks: float | None = None
    fills: int = 0
    volume_lots: int = 0
    realized_carry_quote: float = 0.0
    tick_size: str = ""
    lot_size: str = ""

    @property
    def avg_entry_ticks(self) -> float:
        """Average entry price of the open position in ticks (0.0 when flat)."""
        if self.position_lots == 0:
            return 0.0
        return self.cost_ticks_lots / self.position_lots

    @property
    def realized_quote(self) -> float:
        """Realized PnL (before fees and funding) at average cost."""
        return (
            self.realized_carry_quote
            + (self.cash_ticks_lots + self.cost_ticks_lots) * self.quote_per_tick_lot
        )

    @property
    def unrealized_quote(self) -> float:
        """Open position valued at the last mark against its average entry (0 if unmarked)."""
        if self.mark_ticks is None or self.position_lots == 0:
            return 0.0
        return (self.position_lots * self.mark_ticks - self.cost_ticks_lots) * (
            self.quote_per_tick_lot
        )

    @property
    def pnl_quote(self) -> float:
        """realized + unrealized - fees + funding."""
        return self.realized_quote + self.unrealized_quote - self.fees_quote + self.funding_quote

    def apply(self, side: int, px_ticks: int, qty_lots: int, fee_quote: float) -> None:
        """Apply one fill (validated by the caller)."""
        # the arithmetic is the portfolio kernel's (a jitted backtest applies the same)
        new, cash, cost = compute_fill(
            self.position_lots, self.cash_ticks_lots, self.cost_ticks_lots, side, px_ticks, qty_lots
        )
        self.cash_ticks_lots = cash
        self.cost_ticks_lots = cost
        self.position_lots = new
        self.fees_quote += fee_quote
        self.fills += 1
        self.volume_lots += qty_lots

    def snapshot(self) -> PositionSnapshot:
        """This position as a frozen record."""
        return PositionSnapshot(
            symbol=self.symbol,
            position_lots=self.position_lots,
            avg_entry_ticks=self.avg_entry_ticks,
            mark_ticks=self.mark_ticks,
            realized_quote=self.realized_quote,
            unrealized_quote=self.unrealized_quote,
            fees_quote=self.fees_quote,
            funding_quote=self.funding_quote,
            pnl_quote=self.pnl_quote,
        )

"""Portfolio: per-symbol position, average entry, realized/unrealized PnL, fees and funding.

Owns the accounting of fills and funding for linear (USDT-margined) perpetuals; does no I/O and
never reads the clock. Conventions: position in lots (+ long), prices in ticks, money in quote;
notional = px_ticks * tick * qty_lots * lot.
(Exactness: see `position.py`.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from mmd.errors import InvariantViolation
from mmd.model.codes import BUY, SELL
from mmd.model.events import FundingPaid, OrderFilled
from mmd.model.instrument import Instrument
from mmd.trading.position import Position, PositionSnapshot, PositionState


class PortfolioSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The whole portfolio at ts_ns: one point of the equity curve.

    Attributes:
        ts_ns: when it was sampled (the caller's clock).
        cash_quote: initial cash + realized - fees + funding.
        equity_quote: cash + unrealized.
        total_pnl_quote: realized + unrealized - fees + funding.
        positions: one entry per symbol, sorted by symbol.
    """

    ts_ns: int
    cash_quote: float
    equity_quote: float
    realized_quote: float
    unrealized_quote: float
    fees_quote: float
    funding_quote: float
    total_pnl_quote: float
    positions: tuple[PositionSnapshot, ...] = ()


class Portfolio:
    """Positions of every traded symbol plus the account totals.

    Args:
        instruments: the symbols traded (more are registered by `apply_fill`).
        initial_cash_quote: the starting wallet balance (equity = cash + unrealized).
    """

    def __init__(
        self, instruments: Iterable[Instrument] = (), initial_cash_quote: float = 0.0
    ) -> None:
        self.initial_cash_quote = initial_cash_quote
        self._positions: dict[str, Position] = {}
        for inst in instruments:
            self._register(inst)

    def add_instrument(self, inst: Instrument) -> None:
        """Start accounting for a symbol (idempotent)."""
        self._register(inst)

    def _register(self, inst: Instrument) -> Position:
        pos = self._positions.get(inst.symbol)
        if pos is None:
            pos = Position(
                symbol=inst.symbol,
                quote_per_tick_lot=inst.tick * inst.lot,
                tick_size=inst.tick_size,
                lot_size=inst.lot_size,
            )
            self._positions[inst.symbol] = pos
        return pos

    def steps(self, symbol: str) -> tuple[str, str] | None:
        """(tick_size, lot_size) a symbol's amounts are counted in, or None if unknown."""
        pos = self._positions.get(symbol)
        return None if pos is None else (pos.tick_size, pos.lot_size)

    def rebase(self, inst: Instrument) -> Position:
        """Re-count a symbol in new instrument steps (the venue changed its tick or lot size).

        The position in base units is kept: new lots = old lots * old lot / new lot, which must
        be a whole number (else nothing changes and InvariantViolation says why: the caller
        halts). Realized PnL, fees, funding, the average entry price and the mark are kept in
        quote/price terms; the exact integer cash flow restarts at the remaining cost basis and
        the realized PnL so far moves to `realized_carry_quote`.

        Raises:
            InvariantViolation: the position is not a whole number of new lots.
        """
        pos = self._positions.get(inst.symbol)
        if pos is None:
            return self._register(inst)
        if (pos.tick_size, pos.lot_size) == (inst.tick_size, inst.lot_size):
            return pos
        old_tick, old_lot = float(pos.tick_size), float(pos.lot_size)
        exact = pos.position_lots * old_lot / inst.lot
        new_lots = round(exact)
        if abs(exact - new_lots) > 1e-6:
            raise InvariantViolation(
                f"{inst.symbol}: position {pos.position_lots * old_lot:.12g} is not a whole "
                f"number of lots of {inst.lot_size}"
            )
        realized = pos.realized_quote
        # cost basis in quote, then in the new tick*lot unit
        cost_quote = pos.cost_ticks_lots * old_tick * old_lot
        qtl = inst.tick * inst.lot
        pos.cost_ticks_lots = cost_quote / qtl
        pos.cash_ticks_lots = -round(pos.cost_ticks_lots)
        pos.quote_per_tick_lot = qtl
        pos.realized_carry_quote = 0.0
        pos.realized_carry_quote = realized - pos.realized_quote
        pos.position_lots = new_lots
        pos.volume_lots = round(pos.volume_lots * old_lot / inst.lot)
        if pos.mark_ticks is not None:
            pos.mark_ticks = pos.mark_ticks * old_tick / inst.tick
        pos.tick_size, pos.lot_size = inst.tick_size, inst.lot_size
        return pos

    def states(self) -> list[PositionState]:
        """Every position's exact accounting, for a ledger checkpoint."""
        return [
            PositionState(
                symbol=p.symbol,
                tick_size=p.tick_size,
                lot_size=p.lot_size,
                position_lots=p.position_lots,
                cash_ticks_lots=p.cash_ticks_lots,
                cost_ticks_lots=p.cost_ticks_lots,
                realized_carry_quote=p.realized_carry_quote,
                fees_quote=p.fees_quote,
                funding_quote=p.funding_quote,
                mark_ticks=p.mark_ticks,
                fills=p.fills,
                volume_lots=p.volume_lots,
            )
            for _, p in sorted(self._positions.items())
        ]

    def load_states(self, states: Iterable[PositionState]) -> None:
        """Set positions from a checkpoint (before any fill of this process).

        Raises:
            InvariantViolation: a non-finite amount.
        """
        for s in states:
            floats = (s.cost_ticks_lots, s.realized_carry_quote, s.fees_quote, s.funding_quote)
            if not all(math.isfinite(v) for v in floats):
                raise InvariantViolation(f"checkpoint position {s!r} is not finite")
            tick, lot = float(s.tick_size), float(s.lot_size)
            self._positions[s.symbol] = Position(
                symbol=s.symbol,
                quote_per_tick_lot=tick * lot,
                position_lots=s.position_lots,
                cash_ticks_lots=s.cash_ticks_lots,
                cost_ticks_lots=s.cost_ticks_lots,
                fees_quote=s.fees_quote,
                funding_quote=s.funding_quote,
                mark_ticks=s.mark_ticks,
                fills=s.fills,
                volume_lots=s.volume_lots,
                realized_carry_quote=s.realized_carry_quote,
                tick_size=s.tick_size,
                lot_size=s.lot_size,
            )

    def position(self, symbol: str) -> Position:
        """The accounting of one symbol.

        Raises:
            KeyError: the symbol was never registered.
        """
        return self._positions[symbol]

    def position_lots(self, symbol: str) -> int:
        """Signed position in lots (0 for a symbol never traded)."""
        pos = self._positions.get(symbol)
        return 0 if pos is None else pos.position_lots

    @property
    def symbols(self) -> list[str]:
        """Registered symbols, sorted."""
        return sorted(self._positions)

    def apply_fill(self, fill: OrderFilled, inst: Instrument) -> Position:
        """Apply one fill to its symbol's position.

        Args:
            fill: the fill (apply each fill_id once: the ledger filters duplicates).
            inst: the fill's instrument.

        Returns:
            The updated position.

        Raises:
            InvariantViolation: a non-positive size or price, a bad side, a symbol mismatch, a
                non-finite fee, or new steps the position cannot be re-counted in (`rebase`).
        """
        if (
            fill.symbol != inst.symbol
            or fill.side not in (BUY, SELL)
            or fill.qty_lots <= 0
            or fill.px_ticks <= 0
            or not math.isfinite(fill.fee_quote)
        ):
            raise InvariantViolation(f"bad fill {fill!r} for {inst.symbol}")
        pos = self._register(inst)
        if (pos.tick_size, pos.lot_size) != (inst.tick_size, inst.lot_size):
            pos = self.rebase(inst)
        pos.apply(fill.side, fill.px_ticks, fill.qty_lots, fill.fee_quote)
        return pos

    def apply_funding(self, ev: FundingPaid) -> Position:
        """Book a funding payment (ev.amount_quote, negative = paid) on its symbol.

        Raises:
            InvariantViolation: unknown symbol or a non-finite amount.
        """
        pos = self._positions.get(ev.symbol)
        if pos is None or not math.isfinite(ev.amount_quote):
            raise InvariantViolation(f"funding for unknown symbol or bad amount: {ev!r}")
        pos.funding_quote += ev.amount_quote
        return pos

    def mark(self, symbol: str, mid_ticks: float) -> float:
        """Set the mark (mid) of a symbol and return its unrealized PnL in quote.

        Raises:
            InvariantViolation: unknown symbol or a non-finite / non-positive mid.
        """
        pos = self._positions.get(symbol)
        if pos is None or not (math.isfinite(mid_ticks) and mid_ticks > 0):
            raise InvariantViolation(f"bad mark {symbol} {mid_ticks}")
        pos.mark_ticks = float(mid_ticks)
        return pos.unrealized_quote

    @property
    def realized_quote(self) -> float:
        """Realized PnL of every symbol (before fees and funding)."""
        return sum(p.realized_quote for p in self._positions.values())

    @property
    def unrealized_quote(self) -> float:
        """Unrealized PnL at the last marks."""
        return sum(p.unrealized_quote for p in self._positions.values())

    @property
    def fees_quote(self) -> float:
        """Fees paid (negative = net rebate)."""
        return sum(p.fees_quote for p in self._positions.values())

    @property
    def funding_quote(self) -> float:
        """Funding received (negative = paid)."""
        return sum(p.funding_quote for p in self._positions.values())

    @property
    def total_pnl_quote(self) -> float:
        """realized + unrealized - fees + funding."""
        return sum(p.pnl_quote for p in self._positions.values())

    @property
    def cash_quote(self) -> float:
        """Wallet balance: initial cash + realized - fees + funding."""
        return self.initial_cash_quote + self.realized_quote - self.fees_quote + self.funding_quote

    @property
    def equity_quote(self) -> float:
        """cash + unrealized."""
        return self.initial_cash_quote + self.total_pnl_quote

    def snapshot(self, ts_ns: int) -> PortfolioSnapshot:
        """Sample the equity curve at ts_ns."""
        positions = tuple(self._positions[s].snapshot() for s in sorted(self._positions))
        realized = sum(p.realized_quote for p in positions)
        unrealized = sum(p.unrealized_quote for p in positions)
        fees = sum(p.fees_quote for p in positions)
        funding = sum(p.funding_quote for p in positions)
        total = sum(p.pnl_quote for p in positions)
        return PortfolioSnapshot(
            ts_ns=ts_ns,
            cash_quote=self.initial_cash_quote + realized - fees + funding,
            equity_quote=self.initial_cash_quote + total,
            realized_quote=realized,
            unrealized_quote=unrealized,
            fees_quote=fees,
            funding_quote=funding,
            total_pnl_quote=total,
            positions=positions,
        )

"""Portfolio kernels: position, average entry, realized and unrealized PnL, fees and funding.

The arithmetic of `mmd.trading.portfolio.Position` (which calls `compute_fill` for every fill)
over a structured state array a jitted loop owns: POSITION_DTYPE[n_sym], one row per symbol.
Units: position and volume in lots (+ long), prices in ticks, money in quote (float64).

POSITION_DTYPE fields:
position_lots (i8), cash_ticks_lots (i8: -sum(side * px * qty) over every fill, exact),
cost_ticks_lots (f8: signed cost basis of the open position; average entry = cost / position),
fees_quote (f8, negative = net rebate), funding_quote (f8, negative = paid), mark_ticks (f8,
NaN before the first mark), fills (i8), volume_lots (i8), realized_carry_quote (f8: realized
PnL carried over a change of instrument steps), quote_per_tick_lot (f8: tick * lot).

Realized PnL = carry + (cash + cost) * tick * lot: exact once flat, whatever the fill order.
Return codes: codes.OK, or codes.ERR_BAD_INPUT (nothing changed) for a bad side, a size or
price <= 0, a non-finite fee/amount, a non-positive mark, or a row out of range.
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.model.codes import BUY, ERR_BAD_INPUT, OK, SELL

F64 = npt.NDArray[np.float64]
Rec = npt.NDArray[np.void]  # POSITION_DTYPE rows

POSITION_DTYPE = np.dtype(
    [
        ("position_lots", np.int64),
        ("cash_ticks_lots", np.int64),
        ("cost_ticks_lots", np.float64),
        ("fees_quote", np.float64),
        ("funding_quote", np.float64),
        ("mark_ticks", np.float64),
        ("fills", np.int64),
        ("volume_lots", np.int64),
        ("realized_carry_quote", np.float64),
        ("quote_per_tick_lot", np.float64),
    ],
    align=True,
)


def alloc_positions(quote_per_tick_lot: F64) -> Rec:
    """Flat, unmarked positions, one per symbol, with their tick * lot values."""
    pos = np.zeros(len(quote_per_tick_lot), POSITION_DTYPE)
    pos["mark_ticks"] = np.nan
    pos["quote_per_tick_lot"] = quote_per_tick_lot
    return pos


@njit(cache=True, nogil=True)
def compute_fill(
    position_lots: int,
    cash_ticks_lots: int,
    cost_ticks_lots: float,
    side: int,
    px_ticks: int,
    qty_lots: int,
) -> tuple[int, int, float]:
    """(position_lots, cash_ticks_lots, cost_ticks_lots) after one fill. Pure.

    Open or add: the cost basis grows by the fill's side * px * qty. Reduce: the rest keeps
    its average entry (cost scaled by new / old). Close or flip: the remainder (if any) opens at
    the fill's price. The caller validates the fill.
    """
    signed = side * qty_lots
    old = position_lots
    new = old + signed
    cash = cash_ticks_lots - signed * px_ticks
    if old == 0 or (old > 0) == (signed > 0):
        cost = cost_ticks_lots + signed * px_ticks
    elif (new > 0) == (old > 0) and new != 0:
        cost = cost_ticks_lots * (new / old)
    else:
        cost = float(new * px_ticks)
    return new, cash, cost


@njit(cache=True, nogil=True)
def apply_fill(
    pos: Rec, sym: int, side: int, px_ticks: int, qty_lots: int, fee_quote: float
) -> int:
    """Apply one fill to row sym.

    Mutates: pos[sym] (position, cash, cost, fees, fills, volume).
    Returns: OK, or ERR_BAD_INPUT (nothing changed).
    """
    if sym < 0 or sym >= pos.shape[0]:
        return ERR_BAD_INPUT
    if (side != BUY and side != SELL) or qty_lots <= 0 or px_ticks <= 0:
        return ERR_BAD_INPUT
    if not math.isfinite(fee_quote):
        return ERR_BAD_INPUT
    p = pos[sym]
    new, cash, cost = compute_fill(
        p.position_lots, p.cash_ticks_lots, p.cost_ticks_lots, side, px_ticks, qty_lots
    )
    p.position_lots = new
    p.cash_ticks_lots = cash
    p.cost_ticks_lots = cost
    p.fees_quote += fee_quote
    p.fills += 1
    p.volume_lots += qty_lots
    return OK


@njit(cache=True, nogil=True)
def apply_funding(pos: Rec, sym: int, amount_quote: float) -> int:
    """Book a funding payment (negative = paid) on row sym.

    Mutates: pos[sym].funding_quote. Returns: OK, or ERR_BAD_INPUT (nothing changed).
    """
    if sym < 0 or sym >= pos.shape[0] or not math.isfinite(amount_quote):
        return ERR_BAD_INPUT
    pos[sym].funding_quote += amount_quote
    return OK


@njit(cache=True, nogil=True)
def compute_realized_quote(pos: Rec, sym: int) -> float:
    """Realized PnL of row sym (before fees and funding), quote. Pure."""
    p = pos[sym]
    return float(
        p.realized_carry_quote + (p.cash_ticks_lots + p.cost_ticks_lots) * p.quote_per_tick_lot
    )


@njit(cache=True, nogil=True)
def compute_unrealized_quote(pos: Rec, sym: int) -> float:
    """Row sym valued at its mark against its average entry, quote (0 unmarked or flat). Pure."""
    p = pos[sym]
    if math.isnan(p.mark_ticks) or p.position_lots == 0:
        return 0.0
    return float((p.position_lots * p.mark_ticks - p.cost_ticks_lots) * p.quote_per_tick_lot)


@njit(cache=True, nogil=True)
def update_mark(pos: Rec, sym: int, mid_ticks: float) -> float:
    """Set the mark (mid, ticks) of row sym and return its unrealized PnL (quote).

    Mutates: pos[sym].mark_ticks. Returns: the unrealized PnL, or NaN (nothing changed) for a
    non-finite or non-positive mid or a row out of range.
    """
    if sym < 0 or sym >= pos.shape[0] or not (math.isfinite(mid_ticks) and mid_ticks > 0.0):
        return math.nan
    pos[sym].mark_ticks = mid_ticks
    return compute_unrealized_quote(pos, sym)


@njit(cache=True, nogil=True)
def compute_pnl_quote(pos: Rec, sym: int) -> float:
    """realized + unrealized - fees + funding of row sym, quote. Pure."""
    p = pos[sym]
    return float(
        compute_realized_quote(pos, sym)
        + compute_unrealized_quote(pos, sym)
        - p.fees_quote
        + p.funding_quote
    )

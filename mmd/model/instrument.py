"""Instrument: tick size, lot size, fees; the ONLY price<->ticks and quantity<->lots conversions.

Prices and sizes live in int64 ticks and lots everywhere inside mmd. Conversions round to the
nearest step, which is exact for venue strings with fewer than 15 significant digits.
"""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec
import numpy as np
import numpy.typing as npt


def _decimals(step: str) -> int:
    exp = Decimal(step).normalize().as_tuple().exponent
    return max(0, -int(exp))


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """One tradable symbol on one venue category.

    Attributes:
        symbol: venue symbol, e.g. BTCUSDT.
        category: linear, spot or inverse.
        tick_size: price step as the venue writes it (a decimal string, e.g. "0.10").
        lot_size: quantity step as a decimal string (Bybit `qtyStep` / spot `basePrecision`).
        maker_fee: maker fee rate (negative = rebate).
        taker_fee: taker fee rate.
    """

    symbol: str
    category: str = "linear"
    tick_size: str = "0.1"
    lot_size: str = "0.001"
    maker_fee: float = 0.0002
    taker_fee: float = 0.00055

    @property
    def tick(self) -> float:
        """Tick size as a float."""
        return float(self.tick_size)

    @property
    def lot(self) -> float:
        """Lot size as a float."""
        return float(self.lot_size)

    @property
    def price_decimals(self) -> int:
        """Digits after the decimal point of a price."""
        return _decimals(self.tick_size)

    @property
    def qty_decimals(self) -> int:
        """Digits after the decimal point of a quantity."""
        return _decimals(self.lot_size)

    def px_to_ticks(self, px: str | float) -> int:
        """One price (string or float) to int ticks."""
        return round(float(px) / self.tick)

    def qty_to_lots(self, qty: str | float) -> int:
        """One quantity to int lots."""
        return round(float(qty) / self.lot)

    def limit_lots(self, qty: float) -> int:
        """A limit in base units (e.g. `[strategy] max_position`) in whole lots, rounded down,
        so rounding never lets a position exceed the limit.

        The quotient is exact: qty is read as its shortest decimal repr and the lot as the venue
        string, so 0.3 / 0.1 is 3 lots (float division gives 2.9999999999999996, floored to 2).

        Raises:
            ValueError: qty negative or not finite.
        """
        if not (qty >= 0 and math.isfinite(qty)):
            raise ValueError(f"a limit must be a finite number >= 0, got {qty}")
        return math.floor(Decimal(repr(float(qty))) / Decimal(self.lot_size))

    def ticks_to_px(self, ticks: int | float) -> float:
        """Ticks to a float price (for display, metrics and logs)."""
        return round(float(ticks) * self.tick, self.price_decimals)

    def lots_to_qty(self, lots: int | float) -> float:
        """Lots to a float quantity."""
        return round(float(lots) * self.lot, self.qty_decimals)

    def format_px(self, ticks: int) -> str:
        """Ticks to the venue's price string (e.g. 651142 -> "65114.2")."""
        return f"{ticks * Decimal(self.tick_size):.{self.price_decimals}f}"

    def format_qty(self, lots: int) -> str:
        """Lots to the venue's quantity string."""
        return f"{lots * Decimal(self.lot_size):.{self.qty_decimals}f}"

    def levels_to_arrays(
        self, levels: list[list[str]]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Venue `[[price, size], ...]` string pairs to (px_ticks, qty_lots) int64 arrays.

        Raises:
            ValueError: a level that is not two numbers, a non-finite or non-positive price, or
                a negative or non-finite size (a corrupt frame).
        """
        if not levels:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        tick, lot = float(self.tick_size), float(self.lot_size)
        # plain Python then one array each: numpy's per-call overhead dominates at the typical
        # 1-20 levels of a delta (round() rejects NaN and infinity with ValueError/OverflowError)
        try:
            px_list = [round(float(lvl[0]) / tick) for lvl in levels]
            qty_list = [round(float(lvl[1]) / lot) for lvl in levels]
        except (OverflowError, IndexError, TypeError) as exc:
            raise ValueError(f"bad level: {exc}") from None
        if min(px_list) <= 0 or min(qty_list) < 0:
            raise ValueError("non-positive price or negative size")
        return np.array(px_list, np.int64), np.array(qty_list, np.int64)


def infer_step(values: list[str]) -> str:
    """The coarsest decimal step consistent with every string in values (fallback tick/lot)."""
    most = 0
    for v in values:
        if "." in v:
            frac = v.split(".", 1)[1].rstrip("0")
            most = max(most, len(frac))
    return "1" if most == 0 else "0." + "0" * (most - 1) + "1"

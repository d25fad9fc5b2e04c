"""Instrument: tick size, lot size, fees; the ONLY price<->ticks and quantity<->lots conversions.

Prices and sizes live in int64 ticks and lots everywhere inside mmd. Venue strings are converted
exactly (`count_steps`: off-grid, malformed or huge values are refused, never rounded); floats
computed inside mmd round to the nearest step (`px_to_ticks`, `qty_to_lots`).
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal

import msgspec
import numpy as np
import numpy.typing as npt

# A venue number: ASCII digits, an optional fraction, no sign, exponent, space or underscore.
PLAIN_DECIMAL = re.compile(r"([0-9]{1,20})(?:\.([0-9]{1,20}))?")
# The largest value mmd accepts, in units of the step's last decimal (value * 10**decimals):
# below 2**53, so float64 holds it exactly, and far from int64 overflow.
MAX_SCALED = 10**15
# Steps finer than 1e-18 or coarser than 1e9 are refused (no real instrument has them).
_MAX_STEP_DECIMALS = 18
_MAX_STEP = 10**9


@functools.lru_cache(maxsize=1024)
def step_units(step: str) -> tuple[int, int]:
    """A step as an exact fraction: (units, decimals) with step == units / 10**decimals.

    Raises:
        ValueError: not a plain decimal string, zero, finer than 1e-18 or above 1e9.
    """
    m = PLAIN_DECIMAL.fullmatch(step) if type(step) is str else None
    if m is None:
        raise ValueError(f"step {step!r} is not a plain decimal")
    whole, frac = m.group(1), (m.group(2) or "").rstrip("0")
    if len(frac) > _MAX_STEP_DECIMALS:
        raise ValueError(f"step {step!r} is finer than 1e-{_MAX_STEP_DECIMALS}")
    units = int(whole + frac)
    if units <= 0 or int(whole) >= _MAX_STEP:
        raise ValueError(f"step {step!r} is zero or too large")
    return units, len(frac)


def count_steps(text: str, step: str) -> int:
    """Exactly how many steps `text` is: a plain decimal string that is a whole multiple of step.

    Never rounds: an off-step value, a value above MAX_SCALED units of the step's last decimal,
    or anything but a plain decimal string raises ValueError.
    """
    m = PLAIN_DECIMAL.fullmatch(text) if type(text) is str else None
    if m is None:
        raise ValueError(f"{text!r} is not a plain decimal")
    units, dec = step_units(step)
    whole, frac = m.group(1), m.group(2) or ""
    if len(frac) > dec:
        if frac[dec:].strip("0"):
            raise ValueError(f"{text} is not a multiple of {step}")
        frac = frac[:dec]
    n = int(whole + frac.ljust(dec, "0"))
    if n > MAX_SCALED:
        raise ValueError(f"{text} is too large for step {step}")
    q, r = divmod(n, units)
    if r:
        raise ValueError(f"{text} is not a multiple of {step}")
    return q


@functools.lru_cache(maxsize=1024)
def _grid(step: str) -> tuple[re.Pattern[str], float, int]:
    """For `count_steps_many`: a pattern matching comma-terminated plain decimals with no
    significant digit past the step's last decimal, 10**decimals, and the step's units."""
    units, dec = step_units(step)
    frac = r"(?:\.0{1,20})?" if dec == 0 else rf"(?:\.[0-9]{{1,{dec}}}0{{0,20}})?"
    return re.compile(rf"(?:[0-9]{{1,20}}{frac},)*"), float(10**dec), units


def count_steps_many(texts: list[str], step: str) -> list[int]:
    """`count_steps` over a list, with the same answers, fast (one pattern match per list).

    Once the pattern has matched, every text is n / 10**decimals for an integer n, and n is
    at most MAX_SCALED, so float(text) * 10**decimals is within 0.25 of n and rounds to it.

    Raises:
        ValueError: as `count_steps`, for any text of the list.
    """
    pattern, scale, units = _grid(step)
    try:
        joined = ",".join(texts)
    except TypeError:
        raise ValueError("a value is not a string") from None
    if pattern.fullmatch(joined + ",") is None:
        raise ValueError(f"a value is not a plain decimal on the grid of {step}")
    scaled = [round(float(t) * scale) for t in texts]
    if scaled and max(scaled) > MAX_SCALED:
        raise ValueError(f"a value is too large for step {step}")
    if units == 1:
        return scaled
    if any(n % units for n in scaled):
        raise ValueError(f"a value is not a multiple of {step}")
    return [n // units for n in scaled]


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

    def price_ticks(self, px: str) -> int:
        """A venue price string to ticks, exactly (ValueError when off-tick, malformed or huge)."""
        return count_steps(px, self.tick_size)

    def size_lots(self, qty: str) -> int:
        """A venue size string to lots, exactly (ValueError when not whole lots or malformed)."""
        return count_steps(qty, self.lot_size)

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

        Every price must be a positive whole number of ticks and every size a whole number of
        lots (0 deletes the level), written as plain decimal strings (`count_steps`): nothing
        is rounded, so a level that is off the grid refuses the whole frame.

        Raises:
            ValueError: a level that is not a pair of plain decimal strings on the grid, a zero
                price, or a value above MAX_SCALED units of the step's last decimal (corrupt).
        """
        if not levels:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        tick, lot = self.tick_size, self.lot_size
        # plain Python then one array each: numpy's per-call overhead dominates at the typical
        # 1-20 levels of a delta
        try:
            px_list = count_steps_many([lvl[0] for lvl in levels], tick)
            qty_list = count_steps_many([lvl[1] for lvl in levels], lot)
        except (IndexError, TypeError, KeyError) as exc:
            raise ValueError(f"bad level: {exc}") from None
        if min(px_list) <= 0:
            raise ValueError("zero price")
        return np.array(px_list, np.int64), np.array(qty_list, np.int64)


def infer_step(values: list[str]) -> str:
    """The coarsest decimal step consistent with every string in values (fallback tick/lot)."""
    most = 0
    for v in values:
        if "." in v:
            frac = v.split(".", 1)[1].rstrip("0")
            most = max(most, len(frac))
    return "1" if most == 0 else "0." + "0" * (most - 1) + "1"

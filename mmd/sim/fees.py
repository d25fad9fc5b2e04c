"""Fee arithmetic of the paper exchange: quote-currency fees from a rate, a price and a size.

Pure functions only. Linear and spot instruments (fee = rate x notional in quote currency);
inverse contracts, whose fees are charged in the base coin, are not modelled. The paper
exchange charges fills with `mmd.kernels.exchange.compute_fee_quote`, the same arithmetic
(tests/kernels/test_exchange_kernels.py checks they agree to the bit).
"""

from __future__ import annotations

from mmd.model.events import MAKER, TAKER
from mmd.model.instrument import Instrument


def compute_fee_quote(rate: float, px: float, qty: float) -> float:
    """Fee of one fill in quote currency: rate * px * qty.

    Args:
        rate: fee rate (0.0002 = 2 bp); negative = a rebate.
        px: fill price in quote currency per base unit.
        qty: fill size in base units (> 0).

    Returns:
        The fee; negative when it is a rebate paid to us.
    """
    return rate * px * qty


class FeeSchedule:
    """Maker and taker rates of one venue, applied to fills in ticks and lots.

    Args:
        maker_rate: rate for liquidity we provided (negative = rebate).
        taker_rate: rate for liquidity we took.
    """

    __slots__ = ("maker_rate", "taker_rate")

    def __init__(self, maker_rate: float, taker_rate: float) -> None:
        self.maker_rate = maker_rate
        self.taker_rate = taker_rate

    def rate(self, liquidity: int) -> float:
        """The rate for events.MAKER or events.TAKER.

        Raises:
            ValueError: another liquidity code.
        """
        if liquidity == MAKER:
            return self.maker_rate
        if liquidity == TAKER:
            return self.taker_rate
        raise ValueError(f"unknown liquidity code {liquidity}")

    def fee_quote(
        self, instrument: Instrument, liquidity: int, px_ticks: int, qty_lots: int
    ) -> float:
        """Fee of one fill in quote currency (negative = rebate).

        Args:
            instrument: converts ticks and lots to price and size.
            liquidity: events.MAKER or events.TAKER.
            px_ticks: fill price in ticks.
            qty_lots: fill size in lots.
        """
        return compute_fee_quote(
            self.rate(liquidity), instrument.ticks_to_px(px_ticks), instrument.lots_to_qty(qty_lots)
        )

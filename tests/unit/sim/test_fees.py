"""mmd.sim.fees: quote-currency fees, rebates, maker/taker selection."""

from __future__ import annotations

import pytest

from mmd.model.events import MAKER, TAKER
from mmd.model.instrument import Instrument
from mmd.sim.fees import FeeSchedule, compute_fee_quote

BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")


def test_compute_fee_quote_is_rate_times_notional() -> None:
    # 2 bp on 0.5 BTC at 60000 USDT = 6 USDT
    assert compute_fee_quote(0.0002, 60_000.0, 0.5) == pytest.approx(6.0)


def test_compute_fee_quote_negative_rate_is_rebate() -> None:
    assert compute_fee_quote(-0.00005, 60_000.0, 0.5) == pytest.approx(-1.5)


def test_fee_schedule_picks_rate_by_liquidity() -> None:
    fees = FeeSchedule(-0.0001, 0.00055)
    # 650005 ticks = 65000.5 USDT, 3 lots = 0.003 BTC: notional 195.0015 USDT
    assert fees.fee_quote(BTC, MAKER, 650_005, 3) == pytest.approx(-0.0001 * 195.0015)
    assert fees.fee_quote(BTC, TAKER, 650_005, 3) == pytest.approx(0.00055 * 195.0015)
    with pytest.raises(ValueError):
        fees.rate(0)

"""PortfolioHedge: the hedge target from betas and positions (notional conversion by hand), the
skew toward it, and nothing hedged before a beta exists."""

from __future__ import annotations

import math

import pytest

from mmd.config import HedgeConfig
from mmd.model.instrument import Instrument
from mmd.strategy.hedge import PortfolioHedge

SEC = 1_000_000_000
T0 = 1_721_347_000 * SEC
BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
ETH = Instrument(symbol="ETHUSDT", tick_size="0.01", lot_size="0.01")
INSTRUMENTS = {"BTCUSDT": BTC, "ETHUSDT": ETH}


def feed(h: PortfolioHedge, n: int) -> None:
    """ETH moves exactly twice BTC's log return each second (beta 2, SE 0), alternating."""
    for k in range(n):
        r = 1e-3 if k % 3 else -2e-3
        btc = 60000.0 * math.exp(r * (k % 2))
        eth = 3000.0 * math.exp(2 * r * (k % 2))
        h.on_mid("BTCUSDT", T0 + k * SEC + SEC // 4, btc)
        h.on_mid("ETHUSDT", T0 + k * SEC + SEC // 2, eth)


def test_target_is_minus_beta_times_notional_in_hedge_lots() -> None:
    h = PortfolioHedge(HedgeConfig(enabled=True, halflife_s=1e6, min_samples=5))
    assert math.isnan(h.beta("ETHUSDT")[0])
    feed(h, 40)
    beta, se = h.beta("ETHUSDT")
    assert beta == pytest.approx(2.0, rel=1e-6)
    assert se == pytest.approx(0.0, abs=1e-6)
    # ETH long 30 lots of 0.01 = 0.3 ETH; mids in force: the last fed ones
    eth_mid, btc_mid = h.mids["ETHUSDT"], h.mids["BTCUSDT"]
    target = h.compute_target({"BTCUSDT": 0, "ETHUSDT": 30}, INSTRUMENTS)
    # -2 * 0.3 ETH * eth_mid / (btc_mid * 0.001 BTC per lot); with eth_mid ~ btc_mid / 20:
    # about -2 * 0.3 / 20 / 0.001 = -30 lots of BTC
    assert target == pytest.approx(-2.0 * 30 * 0.01 * eth_mid / (btc_mid * 0.001), rel=1e-6)
    assert -31.0 < target < -29.0
    # short BTC already 10 lots of a needed ~30: still under-hedged on the short side -> sell
    # sooner: a negative skew, (target + 10) / 20 of the 5 ticks, capped at -5
    skew = h.compute_skew(-10, 20)
    assert skew == pytest.approx(5.0 * max(-1.0, (target + 10) / 20))
    assert skew < 0
    # over-hedged (short 50 lots): buy back sooner
    assert h.compute_skew(-50, 20) > 0


def test_no_target_without_a_beta_or_a_hedge_mid() -> None:
    h = PortfolioHedge(HedgeConfig(enabled=True, min_samples=30))
    feed(h, 10)  # fewer than 30 pairs
    assert h.compute_target({"BTCUSDT": 0, "ETHUSDT": 30}, INSTRUMENTS) == 0.0
    assert h.compute_skew(0, 20) == 0.0
    empty = PortfolioHedge(HedgeConfig(enabled=True))
    assert math.isnan(empty.compute_target({"ETHUSDT": 30}, INSTRUMENTS))
    assert empty.compute_skew(0, 20) == 0.0

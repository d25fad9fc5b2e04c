"""mmd.strategy.quoter.Quoter: worked examples from a small book to a QuoteTarget."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest

from mmd.config import CalibrationConfig, StrategyConfig
from mmd.market.book import L2Book
from mmd.model.instrument import Instrument
from mmd.strategy.quoter import NEUTRAL, MlInputs, Quoter, QuoteTarget

# 0.1 tick, 0.001 lot: order_size 0.001 = 1 lot, max_position 0.01 = 10 lots
BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
SESSION_S = 10.0
NOW_NS = 1_700_000_004_000_000_000  # 4 s into a 10 s session: tau = 6 s


def cfg(**overrides: Any) -> StrategyConfig:
    base: dict[str, Any] = {
        "model": "as",
        "gamma": 0.05,
        "session_s": SESSION_S,
        "order_size": 0.001,
        "max_position": 0.01,
    }
    return StrategyConfig(**{**base, **overrides})


def book(bid: int = 1000, ask: int = 1001, capacity: int = 4) -> L2Book:
    b = L2Book(capacity)
    b.apply_snapshot(
        np.array([bid, bid - 1], np.int64),
        np.array([5, 5], np.int64),
        np.array([ask, ask + 1], np.int64),
        np.array([5, 5], np.int64),
        u=1,
        seq=1,
        ts_exch_ns=1,
    )
    return b


def as_quotes(
    mid: float, q: int, sigma: float, gamma: float, kappa: float, tau: float
) -> tuple[float, float, float, float]:
    # the AS formulas, written out here independently of the kernel
    r = mid - q * gamma * sigma**2 * tau
    half = (gamma * sigma**2 * tau + 2 / gamma * math.log(1 + gamma / kappa)) / 2
    return r - half, r + half, r, half


def test_quoter_tau_rolls_with_session() -> None:
    quoter = Quoter(cfg(), BTC)
    assert quoter.tau_s(NOW_NS) == pytest.approx(6.0)
    assert quoter.tau_s(0) == SESSION_S  # a session boundary starts a fresh horizon
    assert quoter.tau_s(10_000_000_000 - 1) == pytest.approx(1e-9)
    assert quoter.tau_s(10_000_000_000) == SESSION_S


def test_quoter_as_long_position_gives_hand_computed_target() -> None:
    quoter = Quoter(cfg(), BTC)
    target = quoter.decide(NOW_NS, book(), sigma_ticks=1.0, kappa=0.5, a=math.nan, position_lots=2)
    # mid 1000.5, q = 2, tau = 6: r = 1000.5 - 2*0.05*1*6 = 999.9,
    # half = (0.3 + 40 ln 1.1)/2 = 2.056, bid 997.84 -> 997, ask 1001.96 -> 1002
    bid, ask, r, half = as_quotes(1000.5, 2, 1.0, 0.05, 0.5, 6.0)
    assert target is not None
    assert target.reservation_ticks == pytest.approx(r)
    assert target.half_spread_ticks == pytest.approx(half)
    assert target == QuoteTarget(
        symbol="BTCUSDT",
        ts_ns=NOW_NS,
        bids=[(math.floor(bid), 1)],
        asks=[(math.ceil(ask), 1)],
        reservation_ticks=target.reservation_ticks,
        half_spread_ticks=target.half_spread_ticks,
        model="as",
        params_source="calibrated",
    )
    assert target.bids == [(997, 1)]
    assert target.asks == [(1002, 1)]
    assert quoter.reject_reason is None


def test_quoter_nan_estimates_use_calibration_fallbacks() -> None:
    cal = CalibrationConfig(fallback_sigma=1.0, fallback_kappa=0.5, fallback_a=2.0)
    quoter = Quoter(cfg(calibration=cal), BTC)
    fallback = quoter.decide(NOW_NS, book(), math.nan, math.nan, math.nan, 2)
    explicit = quoter.decide(NOW_NS, book(), 1.0, 0.5, math.nan, 2)
    assert fallback is not None
    assert explicit is not None
    assert fallback.params_source == "fallback"
    assert explicit.params_source == "calibrated"  # AS does not use A
    assert (fallback.bids, fallback.asks) == (explicit.bids, explicit.asks)


def test_quoter_glft_ignores_time_and_matches_closed_form() -> None:
    quoter = Quoter(cfg(model="glft", gamma=0.1), BTC)
    t1 = quoter.decide(NOW_NS, book(), 2.0, 1.5, 140.0, -3)
    t2 = quoter.decide(NOW_NS + 3_000_000_000, book(), 2.0, 1.5, 140.0, -3)
    assert t1 is not None
    assert t2 is not None
    assert (t1.bids, t1.asks, t1.half_spread_ticks) == (t2.bids, t2.asks, t2.half_spread_ticks)
    c1 = 10 * math.log(1 + 0.1 / 1.5)
    c2 = math.sqrt(0.1 / (2 * 140 * 1.5) * (1 + 0.1 / 1.5) ** (1.5 / 0.1 + 1))
    half, skew = c1 + 0.5 * c2 * 2.0, c2 * 2.0
    assert t1.model == "glft"
    assert t1.half_spread_ticks == pytest.approx(half)
    assert t1.reservation_ticks == pytest.approx(1000.5 + 3 * skew)
    assert t1.bids == [(math.floor(1000.5 - (half - 3 * skew)), 1)]
    assert t1.asks == [(math.ceil(1000.5 + half + 3 * skew), 1)]


def test_quoter_glft_nan_a_uses_fallback() -> None:
    quoter = Quoter(cfg(model="glft"), BTC)
    target = quoter.decide(NOW_NS, book(), 2.0, 1.5, math.nan, 0)
    assert target is not None
    assert target.params_source == "fallback"


def test_quoter_one_sided_book_returns_none() -> None:
    quoter = Quoter(cfg(), BTC)
    b = L2Book(4)
    b.apply_snapshot(
        np.array([1000]),
        np.array([1]),
        np.array([], np.int64),
        np.array([], np.int64),
        u=1,
        seq=1,
        ts_exch_ns=1,
    )
    assert quoter.decide(NOW_NS, b, 1.0, 0.5, 1.0, 0) is None
    assert quoter.reject_reason == "one_sided_book"
    assert quoter.decide(NOW_NS, L2Book(4), 1.0, 0.5, 1.0, 0) is None


def test_quoter_crossed_book_returns_none() -> None:
    quoter = Quoter(cfg(), BTC)
    assert quoter.decide(NOW_NS, book(bid=1002, ask=1001), 1.0, 0.5, 1.0, 0) is None
    assert quoter.reject_reason == "crossed_book"


@pytest.mark.parametrize(
    ("sigma", "kappa", "ml"),
    [
        (-1.0, 0.5, NEUTRAL),
        (math.inf, 0.5, NEUTRAL),
        (1.0, 0.0, NEUTRAL),
        (1.0, 0.5, MlInputs(gamma_mult=0.0)),
        (1.0, 0.5, MlInputs(bid_mult=-1.0)),
        (1.0, 0.5, MlInputs(spread_override_ticks=-2.0)),
    ],
)
def test_quoter_invalid_inputs_return_none(sigma: float, kappa: float, ml: MlInputs) -> None:
    quoter = Quoter(cfg(), BTC)
    assert quoter.decide(NOW_NS, book(), sigma, kappa, 1.0, 0, ml) is None
    assert quoter.reject_reason in ("bad_model_input", "bad_ladder_input")


def test_quoter_at_max_position_quotes_only_asks() -> None:
    quoter = Quoter(cfg(levels=3, level_spacing_ticks=2), BTC)
    target = quoter.decide(NOW_NS, book(), 1.0, 0.5, 1.0, 10)
    assert target is not None
    assert target.bids == []
    assert [qty for _, qty in target.asks] == [1, 1, 1]
    assert [px for px, _ in target.asks][1:] == [target.asks[0][0] + 2, target.asks[0][0] + 4]


def test_quoter_ml_skew_and_override_move_quotes() -> None:
    quoter = Quoter(cfg(), BTC)
    ml = MlInputs(skew_ticks=-0.5, spread_override_ticks=8.0)
    target = quoter.decide(NOW_NS, book(), 1.0, 0.5, 1.0, 0, ml)
    assert target is not None
    # r = 1000.5 (flat), spread 8 around it, shifted -0.5: 996.0 / 1004.0
    assert target.bids == [(996, 1)]
    assert target.asks == [(1004, 1)]


def test_quoter_min_spread_bps_converts_to_ticks_of_mid() -> None:
    # 100 bps of a 1000.5-tick mid = 10.005 ticks around r = 1000.5: 995.4975 / 1005.5025
    quoter = Quoter(cfg(min_spread_bps=100.0), BTC)
    target = quoter.decide(NOW_NS, book(), 0.01, 5.0, 1.0, 0)
    assert target is not None
    assert target.bids == [(995, 1)]
    assert target.asks == [(1006, 1)]


def test_quoter_post_only_clamps_inside_the_book() -> None:
    # a large positive skew would put the bid above the best ask: it rests one tick inside
    quoter = Quoter(cfg(), BTC)
    target = quoter.decide(NOW_NS, book(), 1.0, 0.5, 1.0, 0, MlInputs(skew_ticks=50.0))
    assert target is not None
    assert target.bids == [(1000, 1)]


def test_quoter_order_size_below_one_lot_quotes_one_lot() -> None:
    # one config serves symbols whose lots differ by orders of magnitude
    quoter = Quoter(cfg(order_size=0.0001, max_position=0.0001), BTC)
    target = quoter.decide(NOW_NS, book(), 1.0, 0.5, 1.0, 0)
    assert target is not None
    assert target.bids[0][1] == 1 and target.asks[0][1] == 1


def test_quote_target_roundtrips_through_msgspec() -> None:
    quoter = Quoter(cfg(levels=2), BTC)
    target = quoter.decide(NOW_NS, book(), 1.0, 0.5, 1.0, 1)
    assert target is not None
    data = msgspec.json.encode(target)
    assert msgspec.json.decode(data, type=QuoteTarget) == target


def test_ml_inputs_defaults_are_neutral() -> None:
    quoter = Quoter(cfg(), BTC)
    plain = quoter.decide(NOW_NS, book(), 1.0, 0.5, 1.0, 3)
    neutral = quoter.decide(NOW_NS, book(), 1.0, 0.5, 1.0, 3, MlInputs())
    assert plain == neutral
    assert math.isnan(NEUTRAL.spread_override_ticks)

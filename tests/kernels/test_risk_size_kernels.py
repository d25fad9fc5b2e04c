"""Risk-scaled order size: the formula by hand, the reference volatility, and the size the quote
decision uses (ML_SIZE_MULT): smaller as drawdown and volatility rise, never below one lot,
never above the configured size."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from mmd.config import StrategyConfig
from mmd.kernels.risk_size import (
    RSP_DRAWDOWN_SCALE,
    RSP_HALFLIFE_S,
    RSP_SIZE,
    RSP_W_DRAWDOWN,
    RSP_W_INVENTORY,
    RSP_W_LOSS,
    RSP_W_VOL,
    apply_vol_reference,
    compute_risk_score,
    compute_size_mult,
)
from mmd.market.book import L2Book
from mmd.model.instrument import Instrument
from mmd.strategy.engine import AccountRisk, SymbolStrategy
from mmd.strategy.quoter import MlInputs, Quoter

# 0.1 tick, 0.001 lot: order_size 0.005 = 5 lots, max_position 0.02 = 20 lots
BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
NOW_NS = 1_700_000_004_000_000_000


def rsp(
    w_vol: float = 1.0,
    w_dd: float = 2.0,
    w_loss: float = 0.5,
    w_inv: float = 1.0,
    dd_scale: float = 10.0,
    halflife_s: float = 300.0,
) -> np.ndarray:
    out = np.zeros(RSP_SIZE)
    out[RSP_W_VOL], out[RSP_W_DRAWDOWN], out[RSP_W_LOSS] = w_vol, w_dd, w_loss
    out[RSP_W_INVENTORY], out[RSP_DRAWDOWN_SCALE], out[RSP_HALFLIFE_S] = w_inv, dd_scale, halflife_s
    return out


def test_formula_by_hand() -> None:
    # vol 1 * (30/20 - 1) = 0.5; drawdown 2 * 5/10 = 1.0; loss 0.5 * 0.4 = 0.2;
    # inventory 1 * |-0.3| = 0.3: risk 2.0, multiplier 1 / 3
    assert compute_risk_score(rsp(), 30.0, 20.0, 5.0, 0.4, -0.3) == pytest.approx(2.0)
    assert compute_size_mult(rsp(), 30.0, 20.0, 5.0, 0.4, -0.3) == pytest.approx(1 / 3)
    # volatility below its reference, no drawdown, no loss, flat: no risk
    assert compute_size_mult(rsp(), 10.0, 20.0, 0.0, 0.0, 0.0) == 1.0
    # clipped terms: loss share 3 counts as 1 (0.5), inventory 2.5 as 1 (1.0): risk 1.5
    assert compute_risk_score(rsp(), 20.0, 20.0, 0.0, 3.0, 2.5) == pytest.approx(1.5)
    # NaN inputs add nothing (not calibrated yet: sigma NaN; no reference yet: ref NaN)
    assert compute_risk_score(rsp(), math.nan, 20.0, math.nan, math.nan, math.nan) == 0.0
    assert compute_risk_score(rsp(), 30.0, math.nan, 0.0, 0.0, 0.0) == 0.0


def test_multiplier_falls_as_drawdown_and_volatility_rise() -> None:
    p = rsp()
    by_dd = [compute_size_mult(p, 20.0, 20.0, dd, 0.0, 0.0) for dd in (0.0, 1.0, 5.0, 50.0)]
    by_vol = [compute_size_mult(p, s, 20.0, 0.0, 0.0, 0.0) for s in (20.0, 25.0, 40.0, 200.0)]
    for seq in (by_dd, by_vol):
        assert seq[0] == 1.0
        assert all(a > b for a, b in itertools.pairwise(seq))
        assert all(0.0 < m <= 1.0 for m in seq)
    # drawdown 50 with scale 10, weight 2: risk 10, multiplier 1/11
    assert by_dd[-1] == pytest.approx(1 / 11)


def test_vol_reference_by_hand() -> None:
    ref = np.full(2, np.nan)
    assert math.isnan(apply_vol_reference(ref, math.nan, 0.0, 10.0))  # nothing yet
    assert apply_vol_reference(ref, 20.0, 100.0, 10.0) == 20.0  # the first sigma sets it
    # one half-life later: halfway to 40
    assert apply_vol_reference(ref, 40.0, 110.0, 10.0) == pytest.approx(30.0)
    # two more half-lives at 40: 30 + (1 - 1/4) * 10 = 37.5
    assert apply_vol_reference(ref, 40.0, 130.0, 10.0) == pytest.approx(37.5)
    assert apply_vol_reference(ref, 1000.0, 120.0, 10.0) == pytest.approx(37.5)  # time went back


def book() -> L2Book:
    b = L2Book(4)
    b.apply_snapshot(
        np.array([1000, 999], np.int64),
        np.array([5, 5], np.int64),
        np.array([1001, 1002], np.int64),
        np.array([5, 5], np.int64),
        u=1,
        seq=1,
        ts_exch_ns=1,
    )
    return b


def cfg(**overrides: Any) -> StrategyConfig:
    base: dict[str, Any] = {
        "gamma": 0.05,
        "session_s": 10.0,
        "order_size": 0.005,
        "max_position": 0.02,
    }
    return StrategyConfig(**{**base, **overrides})


@pytest.mark.parametrize(
    ("mult", "lots"),
    [
        (1.0, 5),  # neutral
        (0.5, 2),  # 2.5 lots, rounded down
        (0.39, 1),  # 1.95 -> 1
        (0.1, 1),  # 0.5 lot: floored at one lot
        (1e-9, 1),
        (1.7, 5),  # above 1 never grows the order
        (math.nan, 5),  # NaN: neutral
    ],
)
def test_quote_size_scaled_floored_and_capped(mult: float, lots: int) -> None:
    t = Quoter(cfg(), BTC).decide(NOW_NS, book(), 1.0, 0.5, 1.0, 0, MlInputs(size_mult=mult))
    assert t is not None
    assert [q for _, q in t.bids] == [lots] and [q for _, q in t.asks] == [lots]


def test_glft_uses_the_scaled_size_too() -> None:
    t = Quoter(cfg(model="glft"), BTC).decide(
        NOW_NS, book(), 1.0, 0.5, 1.0, 0, MlInputs(size_mult=0.5)
    )
    assert t is not None and t.bids[0][1] == 2


def test_strategy_multiplier_from_the_account() -> None:
    # weights 1 (vol), 1 (drawdown, scale 10 quote), 1 (loss), 0.5 (inventory) by default
    s = SymbolStrategy(cfg(risk_size=True), BTC, NOW_NS)
    # first decision: the reference is the current sigma (vol term 0), peak = 3 (no drawdown),
    # no loss, flat: 1
    assert s.risk_size_mult(NOW_NS, 20.0, 0, AccountRisk(total_pnl_quote=3.0)) == 1.0
    # PnL 3 -> -2: drawdown 5 -> 0.5; a quarter of the budget lost -> 0.25;
    # 10 of 20 lots -> 0.5 * 0.5 = 0.25; sigma 20 again: risk 1.0, multiplier 0.5
    m = s.risk_size_mult(
        NOW_NS + 10**9, 20.0, 10, AccountRisk(total_pnl_quote=-2.0, loss_used=0.25)
    )
    assert m == pytest.approx(0.5)
    # no account given: no drawdown beyond the peak seen, no loss
    assert s.risk_size_mult(NOW_NS + 2 * 10**9, 20.0, 0, None) == pytest.approx(
        1 / (1 + 3.0 / 10.0)
    )  # PnL 0 against the peak 3: drawdown 3

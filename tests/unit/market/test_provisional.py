"""mmd.market.provisional: the dashboard's stand-ins for Garman-Klass and VPIN while they wait."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmd.config import FeaturesConfig, MarketConfig
from mmd.market.hub import SymbolState
from mmd.market.provisional import (
    open_bucket_imbalance,
    open_kline_gk_log_per_s,
    provisional_values,
)
from mmd.model.instrument import Instrument

S = 1_000_000_000
# O 100, H 101, L 99, C 100.5:
#   ln(101/99) = 0.0200007, squared 0.00040003, half 0.00020001
#   ln(100.5/100) = 0.00498754, squared 2.48756e-5, x (2 ln 2 - 1 = 0.386294) = 9.6093e-6
#   GK variance = 0.00020001 - 0.0000096093 = 0.00019040 per candle
GK_VAR = 0.5 * math.log(101 / 99) ** 2 - (2 * math.log(2) - 1) * math.log(100.5 / 100) ** 2


def test_open_kline_gk() -> None:
    # 30 s into the candle: sqrt(0.00019040 / 30) = sqrt(6.3468e-6) = 0.0025193 per sqrt(s)
    v = open_kline_gk_log_per_s(0, 100.0, 101.0, 99.0, 100.5, 30 * S)
    assert v == pytest.approx(0.0025193, rel=1e-4)
    assert v == pytest.approx(math.sqrt(GK_VAR / 30))
    # past the minute the elapsed time is capped at 60 s: sqrt(0.00019040 / 60) = 0.0017814
    assert open_kline_gk_log_per_s(0, 100.0, 101.0, 99.0, 100.5, 90 * S) == pytest.approx(
        0.0017814, rel=1e-4
    )
    # younger than 1 s, or prices outside [L, H]: nothing to say
    assert math.isnan(open_kline_gk_log_per_s(0, 100.0, 101.0, 99.0, 100.5, S // 2))
    assert math.isnan(open_kline_gk_log_per_s(0, 100.0, 101.0, 99.0, 102.0, 30 * S))
    # a flat candle: zero volatility, not missing
    assert open_kline_gk_log_per_s(0, 100.0, 100.0, 100.0, 100.0, 10 * S) == 0.0


def test_open_bucket_imbalance() -> None:
    # buys 3 + 2 = 5 lots, sells 1 lot: |5 - 1| / 6 = 0.666667
    assert open_bucket_imbalance(np.array([3, 1, 2]), np.array([1, -1, 1])) == pytest.approx(4 / 6)
    assert open_bucket_imbalance(np.array([2, 2]), np.array([1, -1])) == 0.0
    assert math.isnan(open_bucket_imbalance(np.array([], np.int64), np.array([], np.int64)))


def test_provisional_values_only_while_the_feature_waits() -> None:
    inst = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
    # a fixed VPIN bucket of 4 lots (0.004 BTC)
    st = SymbolState(inst, MarketConfig(), FeaturesConfig(vpin_bucket_volume=0.004))
    assert provisional_values(st) == {}  # nothing seen yet
    st.klines.append(start_ns=60 * S, open=100.0, high=101.0, low=99.0, close=100.5, volume=1.0)
    st.book.ts_exch_ns = 90 * S  # 30 s into the open candle
    for side, q in ((1, 1), (-1, 1), (1, 1)):  # 3 lots: the 4-lot bucket is not full
        st.trades.append(ts_ns=61 * S, px_ticks=1000, qty_lots=q, side=side)
        st.features.on_trade(61 * S, 1000, q, side)
    got = provisional_values(st)
    assert got["gk_log_per_s"] == pytest.approx(math.sqrt(GK_VAR / 30))
    assert got["vpin"] == pytest.approx(1 / 3)  # buys 2, sells 1: |2 - 1| / 3
    # the first closed candle and the first full bucket: the features speak for themselves
    st.features.on_kline(0, 100.0, 101.0, 99.0, 100.5, 1.0, True)
    st.features.on_trade(62 * S, 1000, 1, 1)
    assert math.isfinite(st.features.values()["gk_log_per_s"])
    assert math.isfinite(st.features.values()["vpin"])
    assert provisional_values(st) == {}

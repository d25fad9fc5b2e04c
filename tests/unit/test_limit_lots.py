"""One position-limit conversion: Instrument.limit_lots, used by the quoter and the risk gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmd.config import RiskConfig, StrategyConfig
from mmd.market.book import L2Book
from mmd.model.events import SubmitOrder
from mmd.model.instrument import Instrument
from mmd.strategy.quoter import Quoter
from mmd.trading.risk import RiskGate

BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
DOGE = Instrument(symbol="DOGEUSDT", tick_size="0.00001", lot_size="1")
SOL = Instrument(symbol="SOLUSDT", tick_size="0.01", lot_size="0.1")
XRP_SPOT = Instrument(symbol="XRPUSDT", category="spot", tick_size="0.0001", lot_size="0.01")


@pytest.mark.parametrize(
    ("inst", "qty", "lots"),
    [
        (BTC, 0.01, 10),
        (BTC, 0.0149, 14),  # 14.9 lots: down, never up past the limit
        (BTC, 0.0009, 0),  # below one lot
        (BTC, 0.0, 0),
        (DOGE, 2.5, 2),
        (XRP_SPOT, 0.29, 29),  # float division gives 28.999999999999996, which floors to 28
        (SOL, 0.3, 3),  # float: 2.9999999999999996
        (XRP_SPOT, 1e9, 100_000_000_000),  # the config's upper bound stays in int64
    ],
)
def test_instrument_limit_lots_floors_the_exact_quotient(
    inst: Instrument, qty: float, lots: int
) -> None:
    assert inst.limit_lots(qty) == lots


@pytest.mark.parametrize("qty", [-0.001, math.nan, math.inf])
def test_instrument_limit_lots_refuses_negative_or_non_finite(qty: float) -> None:
    with pytest.raises(ValueError):
        BTC.limit_lots(qty)


def _book() -> L2Book:
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


def test_quoter_and_risk_gate_agree_on_the_position_limit() -> None:
    # max_position 0.0149 BTC = 14.9 lots: both sides hold the limit at 14 lots. Before one
    # conversion existed the quoter rounded to 15 and the gate floored to 14, so at 14 lots
    # the quoter still bid and the gate refused every bid.
    cfg = StrategyConfig(order_size=0.001, max_position=0.0149)
    gate = RiskGate(RiskConfig(), cfg.max_position, [BTC])

    def passes(position_lots: int) -> bool:  # one more bid lot at this position
        cmd = SubmitOrder(
            client_order_id=f"b{position_lots}", symbol="BTCUSDT", side=1, px_ticks=1000, qty_lots=1
        )
        allowed, _ = gate.check(
            "BTCUSDT",
            [cmd],
            now_ns=0,
            position_lots=position_lots,
            open_buy_lots=0,
            open_sell_lots=0,
            book_stale=False,
        )
        return allowed == [cmd]

    assert passes(13) and not passes(14)  # the gate's limit is 14 lots
    quoter = Quoter(cfg, BTC)
    now_ns = 1_700_000_004_000_000_000
    at_13 = quoter.decide(now_ns, _book(), 1.0, 0.5, 1.0, 13)
    at_14 = quoter.decide(now_ns, _book(), 1.0, 0.5, 1.0, 14)
    assert at_13 is not None and at_13.bids != []  # one more lot of room
    assert at_14 is not None and at_14.bids == [] and at_14.asks != []  # at the limit

"""The daemon's trading log (mmd.trading_log): what the Trader reports reaches the log with its
fields (a real trader fed real frames through the FrameHandler), and exchange reject reasons
reach `mmd_orders_rejected_total`."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs
from test_trader import SYM, Rig, at, book, config, long_position, ticker

from mmd.metrics import Metrics
from mmd.model.codes import BUY
from mmd.trading_log import HEARTBEAT_NS, TradingLog


@pytest.fixture(autouse=True)
def _plain_structlog() -> None:
    structlog.reset_defaults()


def _events(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


def test_trading_log_fill_reject_funding_halt_and_heartbeat(tmp_path: Path) -> None:
    rig = Rig(config(tmp_path, max_loss_per_day=1.0), ledger=True)
    tlog = TradingLog(rig.trader)
    with capture_logs() as logs:
        long_position(rig, 30)  # restores the (empty) ledger itself, then buys 0.030 at 100.1
        tlog.after_step(at(1002))
        # a post-only buy at the ask (100.2) would cross: the exchange refuses it
        rig.submit("x1", BUY, 1002, 1, 1003)
        rig.feed(book(3, 1003, [["100.0", "3"]], [], "delta"), 1003)
        # funding: 0.03 BTC long * mark 100.1 * 0.0001 = 0.0003003 paid at time 5000
        rig.feed(
            ticker(
                1500, "snapshot", markPrice="100.1", fundingRate="0.0001", nextFundingTime="5000"
            ),
            1500,
        )
        rig.feed(ticker(5001, "delta", fundingRate="0.0002", nextFundingTime="8000"), 5001)
        # the market drops to mid 60.1: -1.2 unrealized trips the 1.0 daily limit
        rig.feed(book(10, 6000, [["60.0", "1"]], [["60.2", "1"]]), 6000)
        tlog.after_step(at(6000))
        tlog.after_step(at(6000) + HEARTBEAT_NS)
    (filled,) = _events(logs, "order_filled")
    assert {
        k: filled[k]
        for k in ("symbol", "component", "side", "price", "qty", "liquidity", "position")
    } == {
        "symbol": SYM,
        "component": "trading",
        "side": "buy",
        "price": "100.1",
        "qty": "0.030",
        "liquidity": "maker",
        "position": "0.030",
    }
    # maker fee 0.02 % of 0.03 * 100.1 = 0.0006006
    assert filled["fee"] == pytest.approx(0.0006006)
    (rej,) = _events(logs, "order_rejected")
    assert (rej["source"], rej["reason"], rej["client_order_id"]) == (
        "exchange",
        "post_only_would_cross",
        "x1",
    )
    (fund,) = _events(logs, "funding_paid")
    assert fund["amount"] == pytest.approx(-0.0003003) and fund["position"] == "0.030"
    (halt,) = _events(logs, "risk_halted")
    assert "max_loss_per_day" in halt["reason"]
    (beat,) = _events(logs, "pnl_heartbeat")
    assert beat["symbol"] == SYM and beat["fills"] == 1 and beat["position"] == "0.030"
    # marked at 60.1: 0.03 * (60.1 - 100.1) = -1.2 unrealized
    assert beat["unrealized"] == pytest.approx(-1.2) and beat["halted"] is True
    assert {"realized", "fees", "funding", "total", "quotes", "book_age_s"} <= set(beat)
    # the metric carries the exchange's reason, one label per known reason
    m = Metrics()
    m.bind_trader(rig.trader)
    samples = {
        (s.labels["source"], s.labels["reason"]): s.value
        for fam in m.registry.collect()
        if fam.name == "mmd_orders_rejected"
        for s in fam.samples
        if s.name.endswith("_total")
    }
    assert samples[("exchange", "post_only_would_cross")] == 1
    assert samples[("exchange", "other")] == 0 and ("exchange", "any") not in samples


def test_trading_log_restore_logs_the_figures(tmp_path: Path) -> None:
    rig = Rig(config(tmp_path, max_loss_per_day=0.0), ledger=True)
    long_position(rig, 30)
    rig.trader.ledger.close()
    rig2 = Rig(config(tmp_path, max_loss_per_day=0.0), ledger=True)
    tlog = TradingLog(rig2.trader)
    with capture_logs() as logs:
        rig2.feed(
            b'{"retCode":0,"retMsg":"OK","time":1,"result":{"category":"linear",'
            b'"list":[{"symbol":"BTCUSDT","priceFilter":{"tickSize":"0.1"},'
            b'"lotSizeFilter":{"qtyStep":"0.001"}}]}}',
            2000,
        )
        tlog.restore_if_due()
    (ev,) = _events(logs, "ledger_restored")
    # one fill of 0.030 at 100.1, fee 0.0006006 (no mark yet: unrealized 0)
    assert ev["fills"] == 1 and ev["positions"] == {SYM: 0.03}
    assert ev["fees"] == pytest.approx(0.0006006) and ev["seconds"] >= 0
    assert ev["total_pnl"] == pytest.approx(-0.0006006)

"""Trader orchestration: Bybit-shaped frames through FrameHandler -> hub -> Trader -> paper
exchange -> OMS/Portfolio/ledger (real SQLite). Kill switch on marks, funding across a ticker
that moves the funding time first, instrument step changes, restart from the ledger."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import orjson
import pytest

from mmd.app import build_trader
from mmd.config import AppConfig
from mmd.frames import FrameHandler
from mmd.market.hub import MarketHub
from mmd.model.codes import BUY, SELL
from mmd.model.events import SubmitOrder
from mmd.trading.happened import REASON_STEP_CHANGE
from mmd.trading.trader import Trader

SYM = "BTCUSDT"
MS = 1_000_000
# frame times are ms after BASE_MS (2026-08-09 01:00 UTC: the codec refuses times before 2000)
BASE_MS = 1_786_237_200_000


def at(ts_ms: int) -> int:
    """BASE_MS + ts_ms, in ns."""
    return (BASE_MS + ts_ms) * MS


def instruments(tick: str, lot: str) -> bytes:
    return orjson.dumps(
        {
            "retCode": 0,
            "retMsg": "OK",
            "time": 1,
            "result": {
                "category": "linear",
                "list": [
                    {
                        "symbol": SYM,
                        "priceFilter": {"tickSize": tick},
                        "lotSizeFilter": {"qtyStep": lot},
                    }
                ],
            },
        }
    )


def book(
    u: int, ts_ms: int, bids: list[list[str]], asks: list[list[str]], typ: str = "snapshot"
) -> bytes:
    ts = BASE_MS + ts_ms
    return orjson.dumps(
        {
            "topic": f"orderbook.50.{SYM}",
            "type": typ,
            "ts": ts,
            "cts": ts,
            "data": {"s": SYM, "b": bids, "a": asks, "u": u, "seq": u},
        }
    )


def trade(ts_ms: int, px: str, qty: str, side: str, tid: str) -> bytes:
    return orjson.dumps(
        {
            "topic": f"publicTrade.{SYM}",
            "type": "snapshot",
            "ts": BASE_MS + ts_ms,
            "data": [{"T": BASE_MS + ts_ms, "s": SYM, "S": side, "v": qty, "p": px, "i": tid}],
        }
    )


def ticker(ts_ms: int, typ: str, **fields: str) -> bytes:
    if "nextFundingTime" in fields:
        fields["nextFundingTime"] = str(BASE_MS + int(fields["nextFundingTime"]))
    return orjson.dumps(
        {
            "topic": f"tickers.{SYM}",
            "type": typ,
            "ts": BASE_MS + ts_ms,
            "data": {"symbol": SYM, **fields},
        }
    )


def config(tmp: Path | None = None, **risk: float) -> AppConfig:
    cfg = AppConfig()
    return msgspec.structs.replace(
        cfg,
        feed=msgspec.structs.replace(cfg.feed, source="synthetic", symbols=[SYM]),
        exchange=msgspec.structs.replace(cfg.exchange, entry_latency_ms=0.0, cancel_latency_ms=0.0),
        risk=msgspec.structs.replace(cfg.risk, **risk),
        state=msgspec.structs.replace(cfg.state, dir=str(tmp or "/nonexistent")),
    )


class Rig:
    """A hub and a trader fed through the daemon's FrameHandler (quoting left to the test)."""

    def __init__(self, cfg: AppConfig, *, ledger: bool) -> None:
        self.hub = MarketHub([SYM], cfg.market, features_cfg=cfg.features)
        self.trader: Trader = build_trader(cfg, self.hub, ledger=ledger)
        self.handle = FrameHandler(self.hub, None, None, self.trader)

    def feed(self, frame: bytes, ts_ms: int) -> None:
        self.handle(frame, at(ts_ms))

    def submit(self, coid: str, side: int, px_ticks: int, qty_lots: int, ts_ms: int) -> None:
        self.trader.send(
            SubmitOrder(
                client_order_id=coid, symbol=SYM, side=side, px_ticks=px_ticks, qty_lots=qty_lots
            ),
            at(ts_ms),
        )


def long_position(rig: Rig, lots: int) -> None:
    """Buy `lots` lots of 0.001 at 100.1 (tick 0.1): a bid inside the spread, hit by a trade."""
    rig.feed(instruments("0.1", "0.001"), 0)
    rig.feed(book(1, 1000, [["100.0", "1"]], [["100.2", "1"]]), 1000)
    rig.trader.restore(at(1000))  # what the daemon's first quote does (an empty ledger)
    # the trader starts reading trades after the first trade frame it sees
    rig.feed(trade(1000, "100.2", "0.001", "Buy", "t0"), 1000)
    rig.submit("b1", BUY, 1001, lots, 1000)
    rig.feed(book(2, 1001, [["100.0", "2"]], [], "delta"), 1001)  # the submit lands: accepted
    rig.feed(trade(1002, "100.1", f"{lots / 1000:.3f}", "Sell", "t1"), 1002)
    assert rig.trader.portfolio.position_lots(SYM) == lots


def test_trader_kill_switch_trips_on_a_mark_without_any_fill() -> None:
    rig = Rig(config(max_loss_per_day=1.0), ledger=False)
    long_position(rig, 30)
    pf = rig.trader.portfolio
    fills_before = rig.trader.oms.counters.fills
    # marked at mid 100.1: total = -fee = -0.0002 * 0.03 * 100.1 = -0.0006006
    rig.feed(book(3, 1003, [["100.0", "3"]], [], "delta"), 1003)
    assert pf.total_pnl_quote == pytest.approx(-0.0006006)
    assert not rig.trader.risk.halted
    # the market drops to mid 60.1: unrealized 0.03 * (60.1 - 100.1) = -1.2 -> total -1.2006
    rig.feed(book(10, 2000, [["60.0", "1"]], [["60.2", "1"]]), 2000)
    assert pf.total_pnl_quote == pytest.approx(-1.2006006)
    assert rig.trader.oms.counters.fills == fills_before  # no order event did it
    assert rig.trader.risk.halted and "max_loss_per_day" in rig.trader.risk.halt_reason


def test_trader_settles_funding_when_the_ticker_moves_the_funding_time_first() -> None:
    rig = Rig(config(max_loss_per_day=0.0), ledger=False)
    long_position(rig, 30)
    rig.feed(
        ticker(1500, "snapshot", markPrice="100.1", fundingRate="0.0001", nextFundingTime="5000"),
        1500,
    )
    # the post-settlement ticker (next time 8000, new rate) comes before any book or trade
    # stamped after 5000: the 5000 settlement is still paid, at the rate shown before it
    rig.feed(ticker(5001, "delta", fundingRate="0.0002", nextFundingTime="8000"), 5001)
    tr = rig.trader
    assert tr.funding_payments == 1
    # 0.03 BTC long * mark 100.1 * 0.0001 = 0.0003003 paid
    assert tr.portfolio.funding_quote == pytest.approx(-0.0003003)
    rig.feed(book(3, 6000, [["100.0", "3"]], [], "delta"), 6000)
    assert tr.funding_payments == 1  # never twice for 5000
    rig.feed(book(4, 8001, [["100.0", "4"]], [], "delta"), 8001)
    # 8000 at its own rate: 0.03 * 100.1 * 0.0002 = 0.0006006 more
    assert tr.funding_payments == 2
    assert tr.portfolio.funding_quote == pytest.approx(-0.0009009)


def test_trader_refuses_a_nan_funding_rate_and_journals_nothing(tmp_path: Path) -> None:
    rig = Rig(config(tmp_path, max_loss_per_day=0.0), ledger=True)
    long_position(rig, 30)
    tr = rig.trader
    st = rig.hub.states[SYM]
    st.funding_rate, st.next_funding_ns, st.mark_price = float("nan"), at(5000), 100.1
    rig.feed(book(3, 5001, [["100.0", "3"]], [], "delta"), 5001)
    assert tr.funding_payments == 0 and tr.settler.refused == 1
    assert tr.portfolio.funding_quote == 0.0
    assert tr.ledger is not None
    con = sqlite3.connect(tr.ledger.path)
    assert con.execute("SELECT COUNT(*) FROM funding").fetchone()[0] == 0
    con.close()


def _step_change_rig(tmp_path: Path, lots: int) -> Rig:
    rig = Rig(config(tmp_path, max_loss_per_day=0.0), ledger=True)
    long_position(rig, lots)
    # a resting sell and a buy, both accepted, and a submit still travelling
    rig.submit("s1", SELL, 1005, 10, 1002)
    rig.submit("b2", BUY, 999, 5, 1002)
    rig.feed(book(3, 1003, [["100.0", "3"]], [], "delta"), 1003)
    assert len(rig.trader.exchange.open_orders(SYM)) == 2
    rig.submit("s2", SELL, 1006, 4, 1003)  # PENDING_NEW when the steps change
    # the venue changes the steps: tick 0.1 -> 0.5, lot 0.001 -> 0.01
    rig.feed(instruments("0.5", "0.01"), 1004)
    rig.feed(book(20, 1005, [["100.0", "1"]], [["100.5", "1"]]), 1005)
    rig.feed(book(21, 1006, [["100.0", "2"]], [], "delta"), 1006)  # the voided submit's cancel
    return rig


def test_trader_step_change_cancels_with_events_and_rebases_the_position(
    tmp_path: Path,
) -> None:
    rig = _step_change_rig(tmp_path, 30)
    tr = rig.trader
    assert tr.step_changes == 1
    # no ghost orders: the OMS, the paper exchange and the journal agree that nothing rests
    assert tr.oms.orders(SYM) == []
    assert tr.exchange.open_orders(SYM) == []
    assert tr.ledger is not None
    restored = tr.ledger.restore()
    assert restored.open_orders == [] and restored.in_flight_ids == []
    con = sqlite3.connect(tr.ledger.path)
    kinds = [
        r[0]
        for r in con.execute(
            "SELECT kind FROM events WHERE client_order_id IN ('s1','b2','s2') ORDER BY seq"
        )
    ]
    steps = con.execute("SELECT tick_size, lot_size FROM instruments ORDER BY rowid").fetchall()
    con.close()
    assert kinds.count("OrderCanceled") == 2 and kinds.count("OrderRejected") == 1
    assert steps == [("0.1", "0.001"), ("0.5", "0.01")]
    # 30 lots of 0.001 = 0.03 BTC = 3 lots of 0.01; bought at 100.1 = 200.2 ticks of 0.5
    pos = tr.portfolio.position(SYM)
    assert pos.position_lots == 3
    assert pos.avg_entry_ticks == pytest.approx(200.2)
    # marked at mid 100.25 (200.5 ticks): unrealized 0.03 * (100.25 - 100.1) = 0.0045
    assert pos.unrealized_quote == pytest.approx(0.0045)
    assert pos.realized_quote == pytest.approx(0.0)
    assert pos.fees_quote == pytest.approx(0.0006006)  # 0.0002 * 0.03 * 100.1, unchanged
    assert not tr.risk.halted
    # a restart counts the journaled fill in its own steps, then in today's: the same state
    again = Rig(config(tmp_path, max_loss_per_day=0.0), ledger=True)
    tr.ledger.close()
    again.feed(instruments("0.5", "0.01"), 2000)
    again.feed(book(1, 2000, [["100.0", "1"]], [["100.5", "1"]]), 2000)
    again.trader.restore(at(2000))
    pos2 = again.trader.portfolio.position(SYM)
    assert (pos2.position_lots, pos2.avg_entry_ticks) == (3, pytest.approx(200.2))
    assert pos2.fees_quote == pytest.approx(0.0006006)


def test_trader_step_change_to_a_lot_the_position_does_not_fill_halts(tmp_path: Path) -> None:
    rig = _step_change_rig(tmp_path, 35)  # 0.035 BTC = 3.5 lots of 0.01: refused
    tr = rig.trader
    assert tr.risk.halted and REASON_STEP_CHANGE in tr.risk.halt_reason
    assert tr.oms.orders(SYM) == [] and tr.exchange.open_orders(SYM) == []
    assert tr.portfolio.position_lots(SYM) == 35  # still counted in the old steps
    assert tr.portfolio.steps(SYM) == ("0.1", "0.001")


def test_trader_restart_restores_the_day_pnl_baseline(tmp_path: Path) -> None:
    """The kill switch's day baseline survives a restart: the day's loss keeps counting."""
    rig = Rig(config(tmp_path, max_loss_per_day=1.0), ledger=True)
    long_position(rig, 30)
    rig.feed(book(10, 2000, [["80.0", "1"]], [["80.2", "1"]]), 2000)
    # mid 80.1: total = 0.03 * (80.1 - 100.1) - 0.0006006 = -0.6006006 (0.6 L, not halted)
    tr = rig.trader
    assert tr.day_today == pytest.approx(-0.6006006) and not tr.risk.halted
    assert tr.ledger is not None
    tr.ledger.close()
    again = Rig(config(tmp_path, max_loss_per_day=1.0), ledger=True)
    again.feed(instruments("0.1", "0.001"), 3000)
    again.feed(book(1, 3000, [["70.0", "1"]], [["70.2", "1"]]), 3000)
    again.trader.restore(at(3000))
    again.feed(book(2, 3001, [["70.0", "2"]], [], "delta"), 3001)
    # mid 70.1: total 0.03 * (70.1 - 100.1) - 0.0006006 = -0.9006006; one more drop trips it
    assert again.trader.day_today == pytest.approx(-0.9006006)
    assert not again.trader.risk.halted
    again.feed(book(3, 3002, [["60.0", "1"]], [["60.2", "1"]]), 3002)
    assert again.trader.risk.halted  # -1.2006006 over the day, across the restart

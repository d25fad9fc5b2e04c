"""`mmd ledger` queries over a real SQLite ledger written by hand: venue units from the steps on
each fill row, order outcomes, the daily PnL table and its sums (golden figures by hand)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmd.model.codes import BUY, SELL
from mmd.model.events import (
    CancelOrder,
    FundingPaid,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.model.instrument import Instrument
from mmd.trading.ledger import Ledger, RunIdentity
from mmd.trading.ledger_query import daily_pnl, fills, orders, summary

SYM = "BTCUSDT"
NS = 1_000_000_000
DAY1_23H = 1_721_343_600 * NS  # 2024-07-18T23:00:00Z
DAY2_01H = DAY1_23H + 2 * 3600 * NS  # 2024-07-19T01:00:00Z


def _write(path: Path) -> None:
    ident = RunIdentity(source="replay", category="linear", symbols=[SYM])
    with Ledger.open(path, identity=ident) as led:
        led.note_instrument(
            Instrument(symbol=SYM, category="linear", tick_size="0.1", lot_size="0.001")
        )
        # o1: buy 2 lots at 1000 ticks (100.0), filled; o2: sell 3 lots at 101.0, filled
        for coid, side, px, qty, ts, fee in (
            ("o1", BUY, 1000, 2, DAY1_23H, 0.01),
            ("o2", SELL, 1010, 3, DAY2_01H, 0.02),
        ):
            cmd = SubmitOrder(
                client_order_id=coid, symbol=SYM, side=side, px_ticks=px, qty_lots=qty
            )
            led.journal(cmd, ts - NS)
            led.journal(
                OrderAccepted(
                    client_order_id=coid,
                    symbol=SYM,
                    side=side,
                    px_ticks=px,
                    qty_lots=qty,
                    ts_exch_ns=ts - NS,
                )
            )
            led.journal(
                OrderFilled(
                    fill_id=f"{coid}#1",
                    client_order_id=coid,
                    symbol=SYM,
                    side=side,
                    px_ticks=px,
                    qty_lots=qty,
                    leaves_lots=0,
                    liquidity=1,
                    fee_quote=fee,
                    ts_exch_ns=ts,
                )
            )
        # o3 refused by the exchange; o4 accepted then canceled
        led.journal(
            SubmitOrder(client_order_id="o3", symbol=SYM, side=BUY, px_ticks=1020, qty_lots=1),
            DAY2_01H + NS,
        )
        led.journal(
            OrderRejected(
                client_order_id="o3",
                symbol=SYM,
                reason="post_only_would_cross",
                ts_exch_ns=DAY2_01H + NS,
            )
        )
        led.journal(
            SubmitOrder(client_order_id="o4", symbol=SYM, side=SELL, px_ticks=1030, qty_lots=1),
            DAY2_01H + 2 * NS,
        )
        led.journal(
            OrderAccepted(
                client_order_id="o4",
                symbol=SYM,
                side=SELL,
                px_ticks=1030,
                qty_lots=1,
                ts_exch_ns=DAY2_01H + 2 * NS,
            )
        )
        led.journal(CancelOrder(client_order_id="o4", symbol=SYM), DAY2_01H + 3 * NS)
        led.journal(OrderCanceled(client_order_id="o4", symbol=SYM, ts_exch_ns=DAY2_01H + 3 * NS))
        led.journal(
            FundingPaid(
                funding_id="BTCUSDT@x",
                symbol=SYM,
                rate=0.0001,
                position_lots=-1,
                mark_px=101.0,
                amount_quote=-0.005,
                ts_exch_ns=DAY2_01H + 4 * NS,
            )
        )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    path = tmp_path / "replay" / "ledger.sqlite"
    _write(path)
    led = Ledger.open(path, create=False)
    yield led
    led.close()


def test_ledger_fills_are_in_venue_units_with_position_after(ledger: Ledger) -> None:
    rows = fills(ledger)
    assert [
        (r["ts"], r["side"], r["price"], r["qty"], r["fee"], r["liquidity"], r["position"])
        for r in rows
    ] == [
        ("2024-07-18T23:00:00.000000000Z", "buy", "100.0", "0.002", 0.01, "maker", "0.002"),
        ("2024-07-19T01:00:00.000000000Z", "sell", "101.0", "0.003", 0.02, "maker", "-0.001"),
    ]
    # the sell closes 2 lots bought 10 ticks lower: 2 * 0.001 * 10 * 0.1 = 0.002
    assert [r["realized"] for r in rows] == [0.0, 0.002]
    assert [r["fill_id"] for r in fills(ledger, since_ns=DAY2_01H)] == ["o2#1"]
    assert fills(ledger, until_ns=DAY2_01H, symbol=SYM)[0]["fill_id"] == "o1#1"
    assert fills(ledger, symbol="ETHUSDT") == []


def test_ledger_orders_show_each_outcome(ledger: Ledger) -> None:
    got = {
        r["client_order_id"]: (r["status"], r["price"], r["qty"], r["filled"], r["reason"])
        for r in orders(ledger)
    }
    assert got == {
        "o1": ("filled", "100.0", "0.002", "0.002", ""),
        "o2": ("filled", "101.0", "0.003", "0.003", ""),
        "o3": ("rejected", "102.0", "0.001", "0.000", "post_only_would_cross"),
        "o4": ("canceled", "103.0", "0.001", "0.000", ""),
    }


def test_ledger_daily_pnl_by_utc_day_sums_to_the_totals(ledger: Ledger) -> None:
    rows = daily_pnl(ledger)
    # day 1: bought 0.002 at 100.0 (notional 0.2), fee 0.01, net -0.01, |position| 0.002
    # day 2: sold 0.003 at 101.0 (notional 0.303), realized 0.002, fee 0.02, funding -0.005,
    #        net 0.002 - 0.02 - 0.005 = -0.023; |position| 0.002 carried in, then 0.001
    assert rows == [
        {
            "day": "2024-07-18",
            "symbol": SYM,
            "fills": 1,
            "volume": 0.002,
            "notional": 0.2,
            "realized": 0.0,
            "fees": 0.01,
            "funding": 0.0,
            "net": -0.01,
            "max_abs_position": 0.002,
        },
        {
            "day": "2024-07-19",
            "symbol": SYM,
            "fills": 1,
            "volume": 0.003,
            "notional": 0.303,
            "realized": 0.002,
            "fees": 0.02,
            "funding": -0.005,
            "net": -0.023,
            "max_abs_position": 0.002,
        },
    ]
    s = summary(ledger, now_ns=DAY2_01H + 3600 * NS)
    for key in ("realized", "fees", "funding", "net"):
        assert sum(r[key] for r in rows) == pytest.approx(s[key], abs=1e-12)
    assert (s["realized"], s["fees"], s["funding"], s["net"]) == (0.002, 0.03, -0.005, -0.033)
    assert s["fills"] == 2 and s["positions"] == {SYM: "-0.001"}
    assert s["run"]["source"] == "replay" and s["kill_switch"]["halted"] is False
    assert daily_pnl(ledger, since_ns=DAY2_01H)[0]["day"] == "2024-07-19"


def _mmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmd", *args], capture_output=True, text=True, timeout=120
    )


def test_mmd_ledger_cli_formats(tmp_path: Path) -> None:
    _write(tmp_path / "replay" / "ledger.sqlite")
    st = str(tmp_path)
    r = _mmd("ledger", "fills", "--state", st, "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["side"], x["price"], x["qty"]) for x in rows] == [
        ("buy", "100.0", "0.002"),
        ("sell", "101.0", "0.003"),
    ]
    r = _mmd("ledger", "pnl", "--state", st, "--format", "json", "--since", "2024-07-19")
    assert r.returncode == 0, r.stderr
    assert [d["day"] for d in json.loads(r.stdout)] == ["2024-07-19"]
    r = _mmd("ledger", "summary", "--state", st)
    assert r.returncode == 0 and "run.source" in r.stdout and "checkpoints" not in r.stderr
    r = _mmd("ledger", "orders", "--state", st, "--since", "yesterday")
    assert r.returncode == 2 and "--since 'yesterday'" in r.stderr
    r = _mmd("ledger", "fills", "--state", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "no ledger under" in r.stderr
    pytest.importorskip("pyarrow", reason="pyarrow (the `export` extra) is not installed")
    import pyarrow.parquet as pq

    out = tmp_path / "fills.parquet"
    r = _mmd("ledger", "fills", "--state", st, "--format", "parquet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert pq.read_table(out).column("price").to_pylist() == ["100.0", "101.0"]

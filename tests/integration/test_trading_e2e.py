"""Paper trading end to end: the live path against `mmd serve-venue` (fills, position and PnL in
/metrics and the ledger), the kill switch, and kill -9 at random moments (no fill lost, none
counted twice, the same state as an uninterrupted run)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import Proc, base_env, daemon, http_json, http_text, metric_values, venue
from sizes import scaled

from mmd.model.events import OrderFilled
from mmd.model.instrument import Instrument
from mmd.trading.portfolio import Portfolio

pytestmark = pytest.mark.slow

BTC = Instrument(symbol="BTCUSDT", tick_size="0.10", lot_size="0.001")
# kill -9 rounds in the random-moments test (MMD_TEST_FULL=1: 20)
KILLS = scaled(8, 20)


def _ledger_fills(state_dir: Path) -> list[tuple]:
    """Fill rows of the one ledger under a `[state] dir` (<dir>/<source>/ledger.sqlite)."""
    found = sorted(state_dir.glob("*/ledger.sqlite"))
    assert len(found) <= 1, found
    db = found[0] if found else state_dir / "none" / "ledger.sqlite"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT fill_id, client_order_id, side, px_ticks, qty_lots, leaves_lots, fee_quote,"
            " ts_exch_ns FROM fills ORDER BY seq"
        ).fetchall()
    finally:
        con.close()


def _portfolio(fills: list[tuple]) -> tuple[int, float, float]:
    """(position lots, realized, fees) recomputed from fill rows."""
    pf = Portfolio([BTC])
    for fid, coid, side, px, qty, leaves, fee, ts in fills:
        pf.apply_fill(
            OrderFilled(
                fill_id=fid,
                client_order_id=coid,
                symbol="BTCUSDT",
                side=side,
                px_ticks=px,
                qty_lots=qty,
                leaves_lots=leaves,
                liquidity=1,
                fee_quote=fee,
                ts_exch_ns=ts,
            ),
            BTC,
        )
    return pf.position_lots("BTCUSDT"), round(pf.realized_quote, 9), round(pf.fees_quote, 9)


def test_trading_live_against_venue_fills_in_metrics_and_ledger(
    binance_btc_rec: Path, tmp_path: Path
) -> None:
    with venue([binance_btc_rec], tmp_path, speed=4.0) as (_, vurl):
        env = {
            "MMD_VENUE__REST_URL": vurl,
            "MMD_VENUE__WS_URL": vurl.replace("http", "ws") + "/v5/public/linear",
            "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
        }
        with daemon(tmp_path, env) as (proc, url):
            deadline = time.monotonic() + 90
            fills = 0.0
            while time.monotonic() < deadline:
                text = http_text(url + "/metrics")
                fills = sum(metric_values(text, "mmd_fills_total").values())
                if fills >= 10:
                    break
                time.sleep(0.5)
            assert fills >= 10, proc.output()[-2000:]
            pnl = metric_values(text, "mmd_pnl_quote")
            assert set(pnl) == {
                f'{{component="{c}"}}'
                for c in ("realized", "unrealized", "fees", "funding", "total")
            }
            assert pnl['{component="fees"}'] > 0  # Bybit linear maker fee 0.02 %
            assert '{symbol="BTCUSDT"}' in metric_values(text, "mmd_position_base")
    rows = _ledger_fills(tmp_path / "state")
    print(f"fills: metrics {fills:.0f} at the check, ledger {len(rows)} at the end")
    assert len(rows) >= fills
    assert len({r[0] for r in rows}) == len(rows)


def test_trading_kill_switch_trips_and_daemon_keeps_reporting(
    binance_btc_rec: Path, tmp_path: Path
) -> None:
    # built to lose: a 0.2 % maker fee on every fill makes PnL fall with each trade
    with venue([binance_btc_rec], tmp_path, speed=4.0) as (_, vurl):
        env = {
            "MMD_VENUE__REST_URL": vurl,
            "MMD_VENUE__WS_URL": vurl.replace("http", "ws") + "/v5/public/linear",
            "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
            "MMD_EXCHANGE__MAKER_FEE": "0.002",
            "MMD_RISK__MAX_LOSS_PER_DAY": "0.5",
        }
        with daemon(tmp_path, env) as (proc, url):
            deadline = time.monotonic() + 90
            halted = 0.0
            while time.monotonic() < deadline and halted != 1.0:
                text = http_text(url + "/metrics")
                halted = metric_values(text, "mmd_risk_halted")[""]
                time.sleep(0.3)
            assert halted == 1.0, proc.output()[-2000:]
            total = metric_values(text, "mmd_pnl_quote")['{component="total"}']
            assert total <= -0.5
            time.sleep(2.0)  # cancels in flight land
            before = metric_values(http_text(url + "/metrics"), "mmd_quote_orders_total")
            time.sleep(3.0)
            text = http_text(url + "/metrics")
            after = metric_values(text, "mmd_quote_orders_total")
            submits = '{kind="submit",symbol="BTCUSDT"}'
            assert after[submits] == before[submits]  # no new quotes once halted
            assert sum(metric_values(text, "mmd_orders_open").values()) == 0
            status, body = http_json(url + "/readyz")
            assert status == 503 and body.get("halted")
            assert proc.alive() and http_json(url + "/healthz")[0] == 200
            assert metric_values(text, "mmd_market_mid_price")  # still reporting the market
            os.kill(proc.p.pid, signal.SIGKILL)
            proc.p.wait(10)
        # a restart on the same UTC day stays halted (the switch is kept in the ledger)
        with daemon(tmp_path, env) as (_, url2):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                halted2 = metric_values(http_text(url2 + "/metrics"), "mmd_risk_halted")[""]
                if halted2 == 1.0:
                    break
                time.sleep(0.3)
            assert halted2 == 1.0
    print(f"halted at total PnL {total:.4f}; still halted after a restart")


def _replay_env(rec: Path, state: Path) -> dict[str, str]:
    return base_env(
        MMD_FEED__REPLAY__PATHS=json.dumps([str(rec)]),
        MMD_FEED__SYMBOLS='["BTCUSDT"]',
        MMD_METRICS__PORT="0",
        MMD_STATE__DIR=str(state),
        MMD_STRATEGY__WARMUP_S="5",
        # 480 s of recording in 8 s: slow enough for every kill to land mid-run
        MMD_FEED__REPLAY__SPEED="60",
    )


def _fill_count(state: Path) -> int:
    try:
        return len(_ledger_fills(state))
    except sqlite3.OperationalError:  # the file is being created
        return 0


def _run_replay(rec: Path, state: Path, log: Path, kill: tuple[int, float] | None) -> int | None:
    """Run the replay; with kill=(fills, delay_s), SIGKILL it delay_s after the ledger holds at
    least that many fills (or when it is about to finish): a random moment that is sure to land
    while it is trading, however fast or loaded the machine is."""
    proc = Proc(
        [sys.executable, "-m", "mmd", "run", "--feed", "replay"], _replay_env(rec, state), log
    )
    if kill is None:
        rc = proc.p.wait(300)
        proc.stop()
        return rc
    target, delay_s = kill
    deadline = time.monotonic() + 120
    while proc.alive() and time.monotonic() < deadline and _fill_count(state) < target:
        time.sleep(0.01)
    time.sleep(delay_s)
    if proc.alive():
        os.kill(proc.p.pid, signal.SIGKILL)
    proc.p.wait(30)
    proc.stop()
    return None


def test_trading_kill9_random_moments_loses_no_fill(binance_btc_rec: Path, tmp_path: Path) -> None:
    ref_state = tmp_path / "reference"
    assert _run_replay(binance_btc_rec, ref_state, tmp_path / "ref.log", None) == 0
    ref = _ledger_fills(ref_state)
    assert len(ref) > 20
    ref_index = {r[0]: i for i, r in enumerate(ref)}
    state = tmp_path / "killed"
    rng = random.Random(20261121)  # the kill moments, reproducible
    kills, checked_prefixes = 0, []
    while kills < KILLS:
        # the next kill lands 0-40 ms after the ledger passes a random point ahead of it
        target = min(len(ref) - 1, len(_ledger_fills(state)) + rng.randint(1, 5))
        _run_replay(
            binance_btc_rec, state, tmp_path / f"kill{kills}.log", (target, rng.uniform(0.0, 0.04))
        )
        kills += 1
        got = _ledger_fills(state)
        # no fill counted twice, and what is there is exactly the uninterrupted run's first fills
        assert len({r[0] for r in got}) == len(got)
        assert got == ref[: len(got)], f"kill {kills}: ledger diverged from the reference"
        if got:
            assert ref_index[got[-1][0]] == len(got) - 1
        # the state a restart restores equals the reference's state after the same fills
        assert _portfolio(got) == _portfolio(ref[: len(got)])
        checked_prefixes.append(len(got))
    assert _run_replay(binance_btc_rec, state, tmp_path / "final.log", None) == 0
    final = _ledger_fills(state)
    assert final == ref
    assert _portfolio(final) == _portfolio(ref)
    con = sqlite3.connect(state / "replay" / "ledger.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    print(
        f"{kills} kills; fills in the ledger after each: {checked_prefixes}; final {len(final)} "
        f"= reference {len(ref)}; position/realized/fees {_portfolio(final)}"
    )
    # kills landed at many different points of the run, all before its end
    assert len(set(checked_prefixes)) >= KILLS // 2 and max(checked_prefixes) < len(ref)


def test_trading_restart_restores_position_and_pnl(binance_btc_rec: Path, tmp_path: Path) -> None:
    """A live restart (not a replay resume) rebuilds portfolio state from the ledger."""
    with venue([binance_btc_rec], tmp_path, speed=4.0) as (_, vurl):
        env = {
            "MMD_VENUE__REST_URL": vurl,
            "MMD_VENUE__WS_URL": vurl.replace("http", "ws") + "/v5/public/linear",
            "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
        }
        with daemon(tmp_path, env) as (proc, url):
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if sum(metric_values(http_text(url + "/metrics"), "mmd_fills_total").values()) >= 5:
                    break
                time.sleep(0.5)
            os.kill(proc.p.pid, signal.SIGKILL)
            proc.p.wait(10)
        rows = _ledger_fills(tmp_path / "state")
        assert rows
        pos, realized, fees = _portfolio(rows)
        with daemon(tmp_path, {**env, "MMD_STRATEGY__WARMUP_S": "600"}) as (_proc2, url2):
            # quoting held back by the long warm-up: the state is exactly the ledger's
            time.sleep(2.0)
            text = http_text(url2 + "/metrics")
            pnl = metric_values(text, "mmd_pnl_quote")
            position = metric_values(text, "mmd_position_base").get('{symbol="BTCUSDT"}')
    assert position == pytest.approx(BTC.lots_to_qty(pos))
    assert pnl['{component="realized"}'] == pytest.approx(realized, abs=1e-9)
    assert pnl['{component="fees"}'] == pytest.approx(fees, abs=1e-9)
    print(f"restored position {pos} lots, realized {realized}, fees {fees} from {len(rows)} fills")


def _risk_cli(state: Path, action: str, limit: float) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mmd", "risk", action, "--state", str(state)],
        env=base_env(MMD_RISK__MAX_LOSS_PER_DAY=str(limit)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_kill_switch_day_loss_survives_kill9_and_mmd_risk_reset_clears_it(
    binance_btc_rec: Path, tmp_path: Path
) -> None:
    """max_loss_per_day = L: lose 0.8 L, kill -9, restart the same UTC day, lose ~0.3 L more:
    halted (a fresh count would have needed a whole L more). `mmd risk reset` clears it,
    journaled, and the next start is not halted."""
    limit = 10.0
    # built to lose: a 1 % maker fee costs ~0.65 quote on each 0.001 BTC fill
    env = {
        "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
        "MMD_EXCHANGE__MAKER_FEE": "0.01",
        "MMD_RISK__MAX_LOSS_PER_DAY": str(limit),
    }
    ledger_dir = tmp_path / "state" / "bybit"
    with venue([binance_btc_rec], tmp_path, speed=4.0) as (_, vurl):
        env.update(
            MMD_VENUE__REST_URL=vurl,
            MMD_VENUE__WS_URL=vurl.replace("http", "ws") + "/v5/public/linear",
        )
        with daemon(tmp_path, env) as (proc, url):
            deadline = time.monotonic() + 120
            total, halted = 0.0, 0.0
            while time.monotonic() < deadline and total > -0.8 * limit:
                text = http_text(url + "/metrics")
                total = metric_values(text, "mmd_pnl_quote")['{component="total"}']
                halted = metric_values(text, "mmd_risk_halted")[""]
                time.sleep(0.05)
            assert total <= -0.8 * limit and halted == 0.0, (total, halted, proc.output()[-2000:])
            os.kill(proc.p.pid, signal.SIGKILL)
            proc.p.wait(10)
        killed_at = total
        with daemon(tmp_path, env) as (proc2, url2):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                text = http_text(url2 + "/metrics")
                if metric_values(text, "mmd_risk_halted")[""] == 1.0:
                    break
                time.sleep(0.05)
            halted_at = metric_values(text, "mmd_pnl_quote")['{component="total"}']
            assert metric_values(text, "mmd_risk_halted")[""] == 1.0, proc2.output()[-2000:]
            status = _risk_cli(ledger_dir, "status", limit)
        # the day's count went on from the restored loss: it tripped near -L overall, not
        # after a whole L more (which would put the total near -1.8 L)
        assert -1.5 * limit < halted_at <= -limit + 1.0, (killed_at, halted_at)
        assert "halted    yes: max_loss_per_day" in status and "limit     -10" in status
        out = _risk_cli(ledger_dir, "reset", limit)
        assert "was halted" in out
        assert "halted    no" in _risk_cli(ledger_dir, "status", limit)
        con = sqlite3.connect(ledger_dir / "ledger.sqlite")
        resets = con.execute("SELECT COUNT(*) FROM events WHERE kind = 'RiskReset'").fetchone()
        con.close()
        assert resets[0] == 1
        # the next start is not halted (no quoting: the long warm-up keeps it from losing more)
        with daemon(tmp_path, {**env, "MMD_STRATEGY__WARMUP_S": "600"}) as (_, url3):
            time.sleep(3.0)
            text = http_text(url3 + "/metrics")
            assert metric_values(text, "mmd_risk_halted")[""] == 0.0
            total3 = metric_values(text, "mmd_pnl_quote")['{component="total"}']
    print(
        f"L={limit}: killed at {killed_at:.3f}, halted after the restart at {halted_at:.3f}, "
        f"after reset and restart: not halted at total {total3:.3f}"
    )

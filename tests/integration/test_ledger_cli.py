"""A replay trading run read back without SQL: `mmd ledger fills` gives the fills `mmd backtest
--fills` gives on the same recording and config, `mmd ledger pnl` sums to the totals and to
the last portfolio snapshot, and the daemon's JSON log holds every trading event with its
fields (the kill switch and its reset, a restart's restore figures included)."""

from __future__ import annotations

import csv
import io
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import Proc, base_env

pytestmark = pytest.mark.slow

FILL_KEYS = ("ts", "symbol", "side", "price", "qty", "fee", "liquidity")


def _env(rec: Path, state: Path, **extra: str) -> dict[str, str]:
    return base_env(
        MMD_FEED__REPLAY__PATHS=json.dumps([str(rec)]),
        MMD_FEED__SYMBOLS='["BTCUSDT"]',
        MMD_METRICS__PORT="0",
        MMD_STATE__DIR=str(state),
        MMD_STRATEGY__WARMUP_S="5",
        MMD_FEED__REPLAY__SPEED="1000",
        **extra,
    )


def _mmd(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "mmd", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, (args, r.stderr[-3000:])
    return r.stdout


def _log(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _of(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


def test_replay_ledger_matches_backtest_fills_pnl_and_logs(
    binance_btc_rec: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    env = _env(binance_btc_rec, state)
    logs = _log(_mmd(env, "run", "--feed", "replay"))

    # Acceptance 1: the same fills as the backtest of the same recording and config
    bt_csv = tmp_path / "bt.csv"
    _mmd(env, "backtest", str(binance_btc_rec), "--fills", str(bt_csv), "--no-progress")
    backtest = [
        tuple(r[k] for k in FILL_KEYS) for r in csv.DictReader(io.StringIO(bt_csv.read_text()))
    ]
    out = _mmd(env, "ledger", "fills", "--state", str(state), "--format", "csv")
    ledger = [tuple(r[k] for k in FILL_KEYS) for r in csv.DictReader(io.StringIO(out))]
    print(f"fills: ledger {len(ledger)}, backtest {len(backtest)}")
    assert len(ledger) >= 20 and ledger == backtest
    assert all("." in row[3] for row in ledger)  # prices in quote units, not ticks

    days = json.loads(_mmd(env, "ledger", "pnl", "--state", str(state), "--format", "json"))
    summary = json.loads(_mmd(env, "ledger", "summary", "--state", str(state), "--format", "json"))
    snap = summary["last_snapshot"]
    assert sum(d["fills"] for d in days) == summary["fills"] == len(ledger)
    for key in ("realized", "fees", "funding"):
        total = sum(d[key] for d in days)
        assert total == pytest.approx(summary[key], abs=1e-9), key
        # the portfolio's own figures, as the daemon snapshotted them at shutdown
        assert total == pytest.approx(snap[key], abs=1e-9), key
    assert summary["net"] == pytest.approx(snap["total_pnl"] - snap["unrealized"], abs=1e-9)
    assert summary["run"]["source"] == "replay" and summary["checkpoints"]

    # Acceptance 2: every trading event of the run, with its fields
    filled = _of(logs, "order_filled")
    assert len(filled) == len(ledger)
    assert [(e["side"], e["price"], e["qty"]) for e in filled] == [r[2:5] for r in ledger]
    assert all(
        e["symbol"] == "BTCUSDT"
        and e["component"] == "trading"
        and "position" in e
        and e["liquidity"] == "maker"
        and e["fee"] > 0
        for e in filled
    )
    (restored,) = _of(logs, "ledger_restored")
    assert restored["fills"] == 0 and restored["seconds"] >= 0
    states = [e["state"] for e in _of(logs, "strategy_state_changed")]
    assert states[0] == "waiting" and "calibrated" in states
    assert all(e["model_versions"] == "none" for e in _of(logs, "strategy_state_changed"))
    assert {e["why"] for e in _of(logs, "calibration_rejected")} <= {
        "too_few_trades",
        "too_few_points",
        "non_positive_slope",
        "poor_fit",
    }
    assert _of(logs, "calibration_rejected")
    beats = _of(logs, "pnl_heartbeat")
    # 8 minutes of recording, one a minute of recorded time after the first
    assert 6 <= len(beats) <= 8, len(beats)
    assert all(
        {
            "position",
            "realized",
            "unrealized",
            "fees",
            "funding",
            "total",
            "fills",
            "quotes",
            "book_age_s",
        }
        <= set(e)
        for e in beats
    )
    rejected = _of(logs, "order_rejected")
    assert all(e["source"] in ("exchange", "risk") and e["reason"] for e in rejected)

    # the kill switch: a second run with a 0.5 daily loss limit trips, a reset is logged
    state2 = tmp_path / "state2"
    logs2 = _log(
        _mmd(
            _env(binance_btc_rec, state2, MMD_RISK__MAX_LOSS_PER_DAY="0.5"),
            "run",
            "--feed",
            "replay",
        )
    )
    (halted,) = _of(logs2, "risk_halted")
    assert halted["reason"].startswith("max_loss_per_day") and halted["total_pnl"] <= -0.5
    out = _mmd(base_env(), "risk", "reset", "--state", str(state2 / "replay"))
    (reset,) = _of(_log(out), "risk_reset")
    # the trip belongs to the recording's UTC day (2024-07-19), not to today: by the wall
    # clock it no longer holds, and the reset says so
    assert reset["ledger"] == str(state2 / "replay" / "ledger.sqlite")
    assert reset["was_halted"] is False and reset["by"] == "mmd risk reset"


def _fills_in(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT COUNT(*) FROM fills").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_restart_logs_the_restored_figures(tmp_path: Path) -> None:
    env = base_env(
        MMD_STATE__DIR=str(tmp_path / "state"),
        MMD_METRICS__PORT="0",
        MMD_FEED__SYMBOLS='["BTCUSDT"]',
        MMD_STRATEGY__WARMUP_S="1",
    )
    db = tmp_path / "state" / "synthetic" / "ledger.sqlite"
    proc = Proc(
        [sys.executable, "-m", "mmd", "run", "--feed", "synthetic"], env, tmp_path / "run1.log"
    )
    deadline = time.monotonic() + 120
    while proc.alive() and time.monotonic() < deadline and _fills_in(db) < 3:
        time.sleep(0.2)
    assert proc.stop(signal.SIGTERM) == 0, proc.output()[-2000:]
    summary = json.loads(
        _mmd(env, "ledger", "summary", "--state", str(tmp_path / "state"), "--format", "json")
    )
    assert summary["fills"] >= 3
    proc = Proc(
        [sys.executable, "-m", "mmd", "run", "--feed", "synthetic"], env, tmp_path / "run2.log"
    )
    deadline = time.monotonic() + 60
    while proc.alive() and time.monotonic() < deadline and "ledger_restored" not in proc.output():
        time.sleep(0.2)
    proc.stop(signal.SIGTERM)
    (ev,) = _of(_log(proc.output()), "ledger_restored")
    assert ev["fills"] == summary["fills"] and ev["seconds"] >= 0
    assert ev["realized"] == pytest.approx(summary["realized"], abs=1e-9)
    assert ev["fees"] == pytest.approx(summary["fees"], abs=1e-9)
    assert {s: f"{q:.3f}" for s, q in ev["positions"].items()} == summary["positions"]

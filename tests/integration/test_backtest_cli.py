"""`mmd backtest` on every real recording in ../shared/data/market: summary and report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from procs import base_env

pytestmark = pytest.mark.slow

REQUIRED = {"pnl", "fees", "sharpe", "sortino", "max_drawdown", "fills", "volume", "win_rate",
            "avg_spread_captured", "markout_1s", "markout_5s", "markout_30s",
            "mean_abs_position", "pnl_to_map", "strategy", "events"}


@pytest.mark.parametrize("which", ["cryptofeed", "btc", "eth", "btc_2023"])
def test_backtest_real_recording_prints_summary_and_writes_report(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fixture = {"cryptofeed": "cryptofeed_dir", "btc": "binance_btc_rec",
               "eth": "binance_eth_rec", "btc_2023": "binance_btc_2023_rec"}[which]
    data: Path = request.getfixturevalue(fixture)
    if which == "cryptofeed":  # the linear BTCUSDT book of the real Bybit capture
        data = next(data.glob("bybit_linear_BTCUSDT_*.rec.gz"))
    report = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "mmd", "backtest", str(data), "--report",
                        str(report), "--no-progress"], env=base_env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "PnL (quote)" in r.stdout and "markout 5 s (ticks)" in r.stdout
    summary = json.loads((report / "summary.json").read_text())
    assert set(summary) >= REQUIRED
    # 453 frames in the 44 s Bybit BTCUSDT capture; thousands in the 8-minute Binance ones
    assert summary["events"] > 400 and summary["strategy"] == "as"
    for name in ("equity.png", "inventory.png", "quotes.png"):
        assert (report / name).stat().st_size > 10_000
    print(which, {k: summary[k] for k in ("pnl", "fees", "fills", "markout_5s", "sharpe")})
    if which != "cryptofeed":  # 44 s of data may legitimately produce no fill
        assert summary["fills"] > 0


def test_backtest_bad_arguments_exit_2(tmp_path: Path) -> None:
    for args in (["backtest", str(tmp_path / "missing.rec.gz")],
                 ["backtest", str(tmp_path), "--strategy", "ml"]):
        r = subprocess.run([sys.executable, "-m", "mmd", *args], env=base_env(),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1

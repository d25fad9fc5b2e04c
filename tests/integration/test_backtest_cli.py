"""`mmd backtest` on every real recording in ../shared/data/market: summary and report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from procs import base_env

pytestmark = pytest.mark.slow

REQUIRED = {
    "pnl",
    "fees",
    "sharpe",
    "sortino",
    "max_drawdown",
    "fills",
    "volume",
    "win_rate",
    "avg_spread_captured",
    "markout_1s",
    "markout_5s",
    "markout_30s",
    "mean_abs_position",
    "pnl_to_map",
    "strategy",
    "events",
}


@pytest.mark.parametrize("which", ["cryptofeed", "btc", "eth", "btc_2023"])
def test_backtest_real_recording_prints_summary_and_writes_report(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fixture = {
        "cryptofeed": "cryptofeed_dir",
        "btc": "binance_btc_rec",
        "eth": "binance_eth_rec",
        "btc_2023": "binance_btc_2023_rec",
    }[which]
    data: Path = request.getfixturevalue(fixture)
    if which == "cryptofeed":  # the linear BTCUSDT book of the real Bybit capture
        data = next(data.glob("bybit_linear_BTCUSDT_*.rec.gz"))
    report = tmp_path / "report"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "backtest",
            str(data),
            "--report",
            str(report),
            "--no-progress",
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
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
    for args in (
        ["backtest", str(tmp_path / "missing.rec.gz")],
        ["backtest", str(tmp_path), "--strategy", "ml"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "mmd", *args],
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def _backtest(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd: a directory without config.toml, so the built-in defaults are the file layer
    return subprocess.run(
        [sys.executable, "-m", "mmd", "backtest", *args, "--no-progress"],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_backtest_set_fills_and_repeat_from_summary(binance_btc_rec: Path, tmp_path: Path) -> None:
    import csv
    import hashlib

    # default gamma (1e-4), with the fills CSV
    r = _backtest([str(binance_btc_rec), "--report", "a", "--fills", "a.csv"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert a["config"]["strategy"]["gamma"] == 1e-4
    assert a["config"]["strategy"]["model"] == "as"
    digest = hashlib.sha256(binance_btc_rec.read_bytes()).hexdigest()
    assert a["recordings"] == [{"path": str(binance_btc_rec), "sha256": digest}]
    assert a["mmd_version"] == __import__("mmd").__version__
    assert a["seed"] == a["config"]["feed"]["synthetic"]["seed"]

    # the fills CSV: one row per fill, figures consistent with the summary
    with open(tmp_path / "a.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "ts",
        "symbol",
        "side",
        "price",
        "qty",
        "fee",
        "liquidity",
        "markout_1s_ticks",
        "markout_1s_quote",
        "markout_5s_ticks",
        "markout_5s_quote",
        "markout_30s_ticks",
        "markout_30s_quote",
    ]
    assert len(rows) == a["fills"] > 0
    assert sum(row["side"] == "buy" for row in rows) == a["buy_fills"]
    assert sum(float(row["fee"]) for row in rows) == pytest.approx(a["fees"], rel=1e-9)
    assert [row["ts"] for row in rows] == sorted(row["ts"] for row in rows)
    for row in rows:
        assert row["symbol"] == "BTCUSDT" and row["liquidity"] in ("maker", "taker")
        assert row["qty"] == "0.001"  # [strategy] order_size, in BTC as the venue writes it
        # the price is on the 0.1 tick, written with the venue's decimals
        assert row["price"].count(".") == 1 and len(row["price"].split(".")[1]) == 1
        for h in (1, 5, 30):
            t, q = row[f"markout_{h}s_ticks"], row[f"markout_{h}s_quote"]
            assert (t == "") == (q == "")
            if t:  # quote = ticks * tick (0.1) * qty (0.001 BTC)
                assert float(q) == pytest.approx(float(t) * 0.1 * 0.001, rel=1e-9)
    for h in (1, 5, 30):
        marks = [float(row[f"markout_{h}s_ticks"]) for row in rows if row[f"markout_{h}s_ticks"]]
        assert sum(marks) / len(marks) == pytest.approx(a[f"markout_{h}s"], rel=1e-9)

    # --set changes the result and the summary shows the value
    r = _backtest(
        [str(binance_btc_rec), "--report", "b", "--set", "strategy.gamma=0.001"], tmp_path
    )
    assert r.returncode == 0, r.stderr[-3000:]
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert b["config"]["strategy"]["gamma"] == 0.001
    assert (b["fills"], b["pnl"]) != (a["fills"], a["pnl"])  # measured: 83 vs 54 fills
    assert {k: v for k, v in b["config"].items() if k != "strategy"} == {
        k: v for k, v in a["config"].items() if k != "strategy"
    }

    # repeated from the recorded config (recordings from the summary too): identical summary,
    # run from another directory, with a config.toml there that --config-from ignores
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "config.toml").write_text("[strategy]\ngamma = 0.5\n")
    r = _backtest(["--config-from", str(tmp_path / "b" / "summary.json"), "--report", "c"], other)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (other / "c" / "summary.json").read_text() == (
        tmp_path / "b" / "summary.json"
    ).read_text()


def test_backtest_config_from_refuses_a_changed_recording(tmp_path: Path) -> None:
    rec = tmp_path / "x.rec.gz"
    rec.write_bytes(b"not the recorded bytes")
    summary = {"config": {}, "recordings": [{"path": str(rec), "sha256": "0" * 64}]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    for args in (
        ["--config-from", "summary.json"],
        ["--config-from", "summary.json", "-c", "config.toml", str(rec)],
        ["--config-from", "missing.json", str(rec)],
    ):
        r = _backtest(args, tmp_path)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _backtest(["--config-from", "summary.json"], tmp_path)
    assert "sha256 mismatch" in r.stderr

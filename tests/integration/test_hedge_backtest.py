"""`mmd backtest` of the real Binance BTCUSDT and ETHUSDT 2024-07-18/19 recordings together, the
beta hedge off and on: with it on both symbols run in one book (the python engine, one
`backtest_engine_python` log line), and the book's mean |net delta| in quote currency is
smaller than with it off; both runs print it with the PnL. The net delta itself is checked on
a hand-made example first."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BINANCE_BTC, BINANCE_ETH, need

from mmd.sim.net_delta import SymbolPath, net_delta_figures, net_delta_path

S = 10**9


def _path(pos: list[tuple[int, float]], mids: list[tuple[int, float]], pnl: float) -> SymbolPath:
    return SymbolPath(
        position_ts_ns=np.array([t * S for t, _ in pos], np.int64),
        position_base=np.array([q for _, q in pos], np.float64),
        mid_ts_ns=np.array([t * S for t, _ in mids], np.int64),
        mid_quote=np.array([m for _, m in mids], np.float64),
        pnl_quote=pnl,
    )


def test_net_delta_by_hand() -> None:
    # A: position 0.002 from 0 s, -0.001 from 2 s; mid 60,000 from 0 s, 61,000 from 3 s.
    # B: position 0.1 from 1 s; mid 3,000 from 1 s.
    # The clock starts when both have a position and a mid: 1 s, and runs to the last sample
    # (3 s) every 1 s:
    #   t=1: A 0.002 x 60,000 = 120, B 0.1 x 3,000 = 300 -> 420
    #   t=2: A -0.001 x 60,000 = -60, B 300 -> 240
    #   t=3: A -0.001 x 61,000 = -61, B 300 -> 239
    # mean |.| = (420 + 240 + 239) / 3 = 299.667; max 420; RMS sqrt((420^2+240^2+239^2)/3)
    # = sqrt((176,400 + 57,600 + 57,121) / 3) = sqrt(97,040.33) = 311.513
    a = _path([(0, 0.002), (2, -0.001)], [(0, 60_000.0), (3, 61_000.0)], 1.5)
    b = _path([(1, 0.1)], [(1, 3_000.0)], -0.25)
    grid, net = net_delta_path({"A": a, "B": b}, S)
    assert grid.tolist() == [1 * S, 2 * S, 3 * S]
    assert net.tolist() == pytest.approx([420.0, 240.0, 239.0])
    f = net_delta_figures({"A": a, "B": b})
    assert f["net_delta_mean_abs_quote"] == pytest.approx(899.0 / 3)
    assert f["net_delta_max_abs_quote"] == pytest.approx(420.0)
    assert f["net_delta_rms_quote"] == pytest.approx(311.513, abs=1e-3)
    assert f["pnl"] == pytest.approx(1.25)
    # legs: A |120|, |-60|, |-61| -> 80.333; B 300
    assert f["leg_mean_abs_quote"] == pytest.approx({"A": 241.0 / 3, "B": 300.0})


def _backtest(
    recs: list[Path], tmp: Path, name: str, *sets: str
) -> tuple[dict[str, float], str, dict]:
    rep = tmp / name
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "backtest",
            *map(str, recs),
            "--no-progress",
            "--report",
            str(rep),
            *[x for s in sets for x in ("--set", s)],
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    print(r.stdout)
    book = r.stdout[r.stdout.index("\nbook (") :]
    figures = {}
    for key, label in (
        ("pnl", "PnL (quote)"),
        ("mean_abs", "net delta mean |.| (quote)"),
        ("rms", "net delta RMS (quote)"),
    ):
        m = re.search(rf"^  {re.escape(label)}\s+(-?[0-9.]+)$", book, re.M)
        assert m, (label, book)
        figures[key] = float(m.group(1))
    summaries = {p.parent.name: json.loads(p.read_text()) for p in rep.glob("*/summary.json")}
    return figures, r.stdout + r.stderr, summaries


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_hedge_on_shrinks_the_books_net_delta(
    binance_btc_rec: Path, binance_eth_rec: Path, tmp_path: Path
) -> None:
    need(BINANCE_BTC + BINANCE_ETH)
    recs = [binance_btc_rec, binance_eth_rec]
    off, out_off, s_off = _backtest(recs, tmp_path, "off", "hedge.enabled=false")
    # skew 50 ticks at a full gap of max_position: with one order size in base units for
    # both symbols ETH's notional is ~1/20 of BTC's, the hedge target stays under one BTC lot,
    # and the default 5 ticks hardly moves BTC's quotes (AS quotes ~25 ticks apart here)
    on, out_on, s_on = _backtest(
        recs,
        tmp_path,
        "on",
        "hedge.enabled=true",
        "hedge.instrument=BTCUSDT",
        "hedge.skew_ticks=50",
    )
    # with the hedge on both symbols share one book: the python engine, said once
    assert out_on.count("backtest_engine_python") == 1 and "[hedge]" in out_on
    assert "hedge: on, through BTCUSDT, skew 50 ticks" in out_on and "hedge: off" in out_off
    assert set(s_on) == set(s_off) == {"BTCUSDT", "ETHUSDT"}
    # the book's PnL is the sum of the symbols' (each summary's own figure)
    for figs, sums in ((off, s_off), (on, s_on)):
        assert figs["pnl"] == pytest.approx(sum(s["pnl"] for s in sums.values()), abs=1e-4)
    # the hedge beta of ETH on BTC came out positive (they co-move)
    beta = s_on["ETHUSDT"]["book"]["hedge"]["betas"]["ETHUSDT"]["beta"]
    assert beta > 0.0
    print(
        f"mean |net delta| off {off['mean_abs']:.4f} on {on['mean_abs']:.4f} quote; "
        f"PnL off {off['pnl']:.4f} on {on['pnl']:.4f}; cost {off['pnl'] - on['pnl']:.4f}; "
        f"beta {beta:.3f}"
    )
    assert on["mean_abs"] < off["mean_abs"]

"""Quoter (AS and GLFT kernels + ladder rules) against a plain-Python reference on a real
recording: the converted Binance USD-M BTCUSDT book, with sigma/kappa/A from the calibrator."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from mmd.config import MarketConfig, StrategyConfig
from mmd.feeds.recording import read_recording
from mmd.market.hub import MarketHub
from mmd.strategy.calibration import IntensityCalibrator
from mmd.strategy.quoter import Quoter


def _reference(
    model: str,
    best_bid: int,
    best_ask: int,
    q: int,
    sigma: float,
    kappa: float,
    a: float,
    gamma: float,
    tau: float,
    lots: int,
) -> tuple[int, int]:
    """Model quotes, 1-tick minimum spread, bid down / ask up, post-only clamp."""
    s = (best_bid + best_ask) / 2
    if model == "as":
        r = s - q * gamma * sigma**2 * tau
        half = (gamma * sigma**2 * tau + (2 / gamma) * math.log(1 + gamma / kappa)) / 2
        bid, ask = r - half, r + half
    else:
        xd = gamma * lots
        c1 = math.log(1 + xd / kappa) / xd
        c2 = math.sqrt(gamma / (2 * a * lots * kappa) * (1 + xd / kappa) ** (kappa / xd + 1))
        half = c1 + lots / 2 * c2 * sigma
        bid, ask = s - half - c2 * sigma * q, s + half - c2 * sigma * q
    if ask - bid < 1:
        c = (bid + ask) / 2
        bid, ask = c - 0.5, c + 0.5
    b, k = math.floor(bid + 1e-9), math.ceil(ask - 1e-9)
    return min(b, best_ask - 1), max(k, best_bid + 1)


@pytest.mark.parametrize("model", ["as", "glft"])
def test_quoter_real_recording_matches_reference(binance_btc_rec: Path, model: str) -> None:
    cfg = msgspec.structs.replace(StrategyConfig(), model=model, max_position=1.0)
    hub = MarketHub(["BTCUSDT"], MarketConfig())
    cal = IntensityCalibrator(cfg.calibration)
    quoter: Quoter | None = None
    checks = clamped = seen = 0
    for i, (ts, raw) in enumerate(read_recording(binance_btc_rec)):
        hub.on_frame(raw, ts)
        st = hub.states.get("BTCUSDT")
        if st is None or not st.sync.synced:
            continue
        if quoter is None:
            quoter = Quoter(cfg, st.instrument)
            lots = st.instrument.qty_to_lots(cfg.order_size)
        t = st.trades.since(seen)
        for k in range(len(t["ts_ns"])):
            cal.on_trade(
                int(t["ts_ns"][k]), int(t["px_ticks"][k]), int(t["qty_lots"][k]), int(t["side"][k])
            )
        seen = st.trades.total
        cal.on_mid(st.book.ts_exch_ns, st.book.mid_ticks())
        cal.maybe_refit(st.book.ts_exch_ns)
        if i % 25:
            continue
        q = (i // 25) % 11 - 5  # positions -5..5 lots
        now = st.book.ts_exch_ns
        target = quoter.decide(now, st.book, cal.sigma, cal.kappa, cal.a, q)
        assert target is not None
        bb, ba = int(st.book.bid_px[0]), int(st.book.ask_px[0])
        want = _reference(
            model, bb, ba, q, cal.sigma, cal.kappa, cal.a, cfg.gamma, quoter.tau_s(now), lots
        )
        assert (target.bids[0][0], target.asks[0][0]) == want, (i, q)
        assert target.bids[0][0] < ba and target.asks[0][0] > bb
        clamped += want[0] == ba - 1 or want[1] == bb + 1
        checks += 1
    print(
        f"{model}: {checks} checkpoints, {clamped} clamped by post-only; "
        f"final sigma {cal.sigma:.2f} ticks/sqrt(s), kappa {cal.kappa:.4f}/tick, A {cal.a:.3f}/s"
    )
    assert checks > 300

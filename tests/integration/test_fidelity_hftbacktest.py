"""Fidelity: the same quoting rule through mmd's SimExchange and through hftbacktest 2.4.4.

The harness and the settings mapping (queue model, no partial fills, fees, entry/response
latency, zero feed latency in both engines, off-grid decision times) are in `tests/fidelity.py`.
On the real Binance BTCUSDT recording (8 min, 141 fills) both engines produce the SAME fills:
same count, same sides and prices in the same order, each seen by the strategy at the same step,
hence the same position, fees and PnL (to float rounding). The acceptance bounds of the brief
(fills within 2 %, PnL within 5 %) are asserted, and the stronger fill-by-fill equality too.

One end-of-data effect is handled explicitly (and asserted): the data ends with one fill whose
response is still in flight. hftbacktest's last elapse hands it to the strategy; the mmd driver
flushes its held-back events at the end likewise (`undelivered_fills` counts it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fidelity import FidelityParams, hbt_zero_feed_latency, run_hftbacktest, run_mmd

pytest.importorskip(
    "hftbacktest", reason="hftbacktest (dev comparison peer) not installed: "
    "pip install hftbacktest==2.4.4"
)

TICK = 0.1
LOT = 0.001


@pytest.mark.parametrize("queue", ["risk_averse", "power2"])
def test_same_rule_same_fills(binance_btc_rec: Path, queue: str) -> None:
    p = FidelityParams(queue=queue)
    rows, t0 = hbt_zero_feed_latency(binance_btc_rec)
    hbt = run_hftbacktest(rows, TICK, LOT, p)
    ours = run_mmd(binance_btc_rec, "BTCUSDT", t0, p)
    print(f"\n[{queue}] hftbacktest: {hbt.summary()}\n[{queue}] mmd:         {ours.summary()}")

    assert hbt.fills >= 50, "too few fills for a meaningful comparison"
    assert hbt.steps == ours.steps
    # the brief's bounds
    assert abs(ours.fills - hbt.fills) <= 0.02 * hbt.fills
    assert abs(ours.pnl - hbt.pnl) <= 0.05 * abs(hbt.pnl)
    # what we actually get: identical behaviour
    assert (ours.fills, ours.buys, ours.sells) == (hbt.fills, hbt.buys, hbt.sells)
    assert ours.position_lots == hbt.position_lots
    assert (ours.submits, ours.cancels, ours.rejects) == (hbt.submits, hbt.cancels, hbt.rejects)
    assert [(s, px) for _, s, px in ours.fill_log] == [(s, px) for _, s, px in hbt.fill_log]
    assert ours.fees == pytest.approx(hbt.fees, rel=1e-9)
    assert ours.notional == pytest.approx(hbt.notional, rel=1e-9)
    assert ours.pnl == pytest.approx(hbt.pnl, abs=1e-6)
    # timing: hftbacktest's strategy sees each fill at the first step at or after the time the
    # mmd driver delivers it (exchange fill time + response latency); the last one is the
    # end-of-data fill both engines hand over when the data runs out
    assert ours.undelivered_fills <= 1
    body = len(ours.fill_log) - ours.undelivered_fills
    grid0 = t0 + p.offset_ns
    for (t_ours, _, _), (t_hbt, _, _) in zip(ours.fill_log[:body], hbt.fill_log[:body],
                                             strict=True):
        k = -(-(t_ours - grid0) // p.step_ns)
        assert t_hbt == grid0 + k * p.step_ns

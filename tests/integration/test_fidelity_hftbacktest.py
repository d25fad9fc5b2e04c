"""Fidelity: the same quoting rule through mmd and through hftbacktest 2.4.4.

The harness and the settings mapping (queue model, partial fills, fees, entry/response
latency, feed latency, off-grid decision times) are in `tests/fidelity.py`.

1. Kernel path, zero feed latency, 1-lot orders, no partial fills (MarketHub + SimExchange):
   on the real Binance BTCUSDT recording (8 min) both engines produce the SAME fills: the same
   multiset of (side, price) at every decision step (within a step the order of a buy and a sell
   is not meaningful), the same position, fees and PnL (to float rounding).
2. Product path (`mmd.app.build_trader`: SimExchange + OMS + Portfolio, as `mmd backtest` builds
   them), the recording fed in receive order (the recorded feed latency on, hftbacktest given
   the converter's local timestamps), 2-lot orders, no partial fills: the same fills again
   (measured: 115 / 133 fills, PnL equal to the float), bounds asserted: fills within 1 %,
   PnL within 2 %.
3. Product path with partial fills on, 2-lot orders: hftbacktest 2.4.4's partial_fill_exchange
   cannot run this recording: `elapse` returns 14 (BacktestError::InvalidOrderStatus) part way
   (risk-averse: at step 120 of 4796, the first fill of a 2-lot order; power-2: step 1178).
   That is the documented reason there is no like-for-like figure; the test asserts it still
   happens (when a later hftbacktest runs it, the test compares within the bounds instead) and
   prints mmd's partial-fill run beside hftbacktest's all-or-nothing one. The difference there
   is the rule, not fidelity: with partial fills a 2-lot order that one lot of a print reaches
   fills 1 lot (measured risk-averse: 223 vs 230 lots, PnL -4.68 vs -4.81; power-2: 266 vs 266
   lots in 138 vs 133 fills, the same PnL).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fidelity import (
    FidelityParams,
    fills_per_step,
    hbt_with_feed_latency,
    hbt_zero_feed_latency,
    run_hftbacktest,
    run_mmd,
    run_mmd_product,
)

pytest.importorskip(
    "hftbacktest",
    reason="hftbacktest (dev comparison peer) not installed: pip install hftbacktest==2.4.4",
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
    assert abs(ours.fills - hbt.fills) <= 0.01 * hbt.fills
    assert abs(ours.pnl - hbt.pnl) <= 0.02 * abs(hbt.pnl)
    # what we actually get: identical behaviour
    assert (ours.fills, ours.buys, ours.sells) == (hbt.fills, hbt.buys, hbt.sells)
    assert ours.position_lots == hbt.position_lots
    assert (ours.submits, ours.cancels, ours.rejects) == (hbt.submits, hbt.cancels, hbt.rejects)
    assert ours.fees == pytest.approx(hbt.fees, rel=1e-9)
    assert ours.notional == pytest.approx(hbt.notional, rel=1e-9)
    assert ours.pnl == pytest.approx(hbt.pnl, abs=1e-6)
    # fill by fill, as multisets per decision step: hftbacktest's strategy sees each fill at
    # the first step at or after the time the mmd driver delivers it (exchange fill time +
    # response latency). The data ends with fills whose response is in flight: hftbacktest's
    # last elapse hands them over, the mmd driver flushes them; those are compared as one
    # multiset.
    assert ours.undelivered_fills <= 1
    grid0 = t0 + p.offset_ns
    ours_steps, ours_end = fills_per_step(ours, grid0, p.step_ns, ours.undelivered_fills)
    hbt_steps, hbt_end = fills_per_step(hbt, grid0, p.step_ns, ours.undelivered_fills)
    assert ours_steps == hbt_steps
    assert ours_end == hbt_end


@pytest.fixture(scope="module")
def feed_rows(binance_btc_rec: Path):  # type: ignore[no-untyped-def]
    """hftbacktest rows with the recorded feed latency, the local shift, and hftbacktest's
    clock start (the product driver's grid starts there too)."""
    rows, shift, _t0, feed_ns = hbt_with_feed_latency(binance_btc_rec)
    start = run_hftbacktest(rows, TICK, LOT, FidelityParams(step_ns=10**12)).start_ns
    return rows, shift, start, feed_ns


def _compare(hbt, ours, tag: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    d_fills = (ours.filled_lots - hbt.filled_lots) / hbt.filled_lots
    d_pnl = (ours.pnl - hbt.pnl) / abs(hbt.pnl)
    print(
        f"\n[{tag}] hftbacktest: {hbt.summary()}\n[{tag}] mmd:         {ours.summary()}"
        f"\n[{tag}] filled lots {d_fills:+.2%}, fill events {ours.fills - hbt.fills:+d}, "
        f"PnL {d_pnl:+.2%}"
    )
    return d_fills, d_pnl


@pytest.mark.parametrize("queue", ["risk_averse", "power2"])
def test_product_path_with_feed_latency_same_fills(
    binance_btc_rec: Path,
    feed_rows,  # type: ignore[no-untyped-def]
    queue: str,
) -> None:
    rows, shift, start, feed_ns = feed_rows
    # the mmd strategy learns of an exchange event when the frame that caused it arrives, about
    # one feed latency later: hftbacktest's response latency is set to the median feed latency
    p = FidelityParams(queue=queue, qty_lots=2, partial=False)
    hbt = run_hftbacktest(rows, TICK, LOT, p, response_ns=feed_ns)
    ours = run_mmd_product(binance_btc_rec, "BTCUSDT", shift, start, p)
    d_fills, d_pnl = _compare(hbt, ours, f"product {queue} 2-lot")
    assert hbt.fills >= 50
    assert abs(ours.fills - hbt.fills) <= 0.01 * hbt.fills
    assert abs(d_fills) <= 0.01
    assert abs(d_pnl) <= 0.02
    assert ours.position_lots == hbt.position_lots


@pytest.mark.parametrize("queue", ["risk_averse", "power2"])
def test_product_path_partial_fills(binance_btc_rec: Path, feed_rows, queue: str) -> None:  # type: ignore[no-untyped-def]
    rows, shift, start, feed_ns = feed_rows
    p = FidelityParams(queue=queue, qty_lots=2, partial=True)
    ours = run_mmd_product(binance_btc_rec, "BTCUSDT", shift, start, p)
    try:
        hbt = run_hftbacktest(rows, TICK, LOT, p, response_ns=feed_ns)
    except RuntimeError as exc:
        # hftbacktest 2.4.4: partial_fill_exchange ends with InvalidOrderStatus (14)
        assert "returned 14" in str(exc), exc
        print(
            f"\n[product {queue} partial] hftbacktest partial_fill_exchange: {exc}: no "
            "like-for-like figure; beside its all-or-nothing exchange (a 2-lot order that "
            "one lot of a print reaches fills 1 lot with partial fills, 2 without):"
        )
        aon = run_hftbacktest(
            rows, TICK, LOT, dataclasses.replace(p, partial=False), response_ns=feed_ns
        )
        d_fills, d_pnl = _compare(aon, ours, f"product {queue} partial vs all-or-nothing")
        # partial fills only split or shrink what all-or-nothing fills: never more volume
        assert ours.filled_lots <= aon.filled_lots * 1.01
        assert ours.fills >= 50
        return
    d_fills, d_pnl = _compare(hbt, ours, f"product {queue} partial")
    assert abs(d_fills) <= 0.01
    assert abs(d_pnl) <= 0.02

"""Fidelity harness throughput: mmd (MarketHub + SimExchange + rule) vs hftbacktest, same data.

Both run the rule of `tests/fidelity.py` (risk-averse queue, no partial fills, 10 ms entry and
response latency, 100 ms steps) over the real Binance BTCUSDT recording (8 min). `events` is the
number of hftbacktest event rows of that data (one per book level change or trade), the same
numerator for both engines; `*_events_per_s` = events / wall seconds of the whole run (mmd:
reading, decoding, sorting and replaying the recording; hftbacktest: building the asset from the
in-memory rows and replaying), `ratio = mmd_events_per_s / hbt_events_per_s` (> 1: mmd faster).
The run's fill counts are reported too (they are equal, see the fidelity test). A second row,
`fidelity_hbt_product`, times the product path (`build_trader`'s stack, frames in receive order
with their feed latency, 2-lot orders) against hftbacktest over the converter's rows as they
are. `--quick` runs
once; the full run takes the best of 3. A row with "skipped" when hftbacktest or the data is
missing (the reason is in the name;
figures stay numeric, as tests/bench/test_bench_smoke.py requires).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
DATA = TESTS.parents[1] / "shared" / "data" / "market" / "binance_usdm_btcusdt_2024-07-18_19"


def run(quick: bool) -> list[dict[str, Any]]:
    try:
        import hftbacktest  # noqa: F401
    except ImportError:
        return [{"name": "fidelity_hbt.skipped_no_hftbacktest", "skipped": 1}]
    inputs = sorted(DATA.glob("*.gz"))
    if not inputs:
        return [{"name": "fidelity_hbt.skipped_no_data", "skipped": 1}]
    os.environ.setdefault("NUMBA_CACHE_DIR", str(TESTS.parent / ".numba_cache"))
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from fidelity import (
        FidelityParams,
        hbt_with_feed_latency,
        hbt_zero_feed_latency,
        run_hftbacktest,
        run_mmd,
        run_mmd_product,
    )

    from mmd.feeds.convert.binance_usdm import convert_binance_usdm

    p = FidelityParams()
    with tempfile.TemporaryDirectory() as tmp:
        (rec,) = convert_binance_usdm(inputs, Path(tmp), progress=False)
        rows, t0 = hbt_zero_feed_latency(rec)
        run_hftbacktest(rows, 0.1, 0.001, p)  # warm-up: numba / library load
        passes = 1 if quick else 3
        hbt = min(
            (run_hftbacktest(rows, 0.1, 0.001, p) for _ in range(passes)), key=lambda r: r.seconds
        )
        ours = min((run_mmd(rec, "BTCUSDT", t0, p) for _ in range(passes)), key=lambda r: r.seconds)
        # the product path (build_trader's SimExchange + OMS + Portfolio, frames in receive
        # order with their feed latency, 2-lot orders): see the fidelity test
        frows, shift, _, feed_ns = hbt_with_feed_latency(rec)
        pp = FidelityParams(qty_lots=2)
        hbt_p = min(
            (run_hftbacktest(frows, 0.1, 0.001, pp, response_ns=feed_ns) for _ in range(passes)),
            key=lambda r: r.seconds,
        )
        ours_p = min(
            (run_mmd_product(rec, "BTCUSDT", shift, hbt_p.start_ns, pp) for _ in range(passes)),
            key=lambda r: r.seconds,
        )
    events = len(rows)
    mmd_eps = events / ours.seconds
    hbt_eps = events / hbt.seconds
    return [
        {
            "name": "fidelity_hbt",
            "events": events,
            "frames": ours.events,
            "steps": ours.steps,
            "mmd_seconds": round(ours.seconds, 4),
            "hbt_seconds": round(hbt.seconds, 4),
            "mmd_events_per_s": round(mmd_eps, 1),
            "hbt_events_per_s": round(hbt_eps, 1),
            "ratio": round(mmd_eps / hbt_eps, 3),
            "mmd_fills": ours.fills,
            "hbt_fills": hbt.fills,
        },
        {
            "name": "fidelity_hbt_product",
            "events": len(frows),
            "frames": ours_p.events,
            "steps": ours_p.steps,
            "mmd_seconds": round(ours_p.seconds, 4),
            "hbt_seconds": round(hbt_p.seconds, 4),
            "mmd_events_per_s": round(len(frows) / ours_p.seconds, 1),
            "hbt_events_per_s": round(len(frows) / hbt_p.seconds, 1),
            "mmd_fills": ours_p.fills,
            "hbt_fills": hbt_p.fills,
            "mmd_filled_lots": ours_p.filled_lots,
            "hbt_filled_lots": hbt_p.filled_lots,
        },
    ]

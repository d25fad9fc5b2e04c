"""The kernel-based SimExchange against the previous driver (reference_exchange.py) on the real
Binance BTCUSDT 2024-07-18 recording (its first SLICE_FRAMES frames): `mmd backtest`'s whole
pipeline runs twice in this process, once with each exchange, and gives the same fills (as a
multiset of rows, fees and markouts included) and the same summary figures. The python engine:
the default jitted loop does not go through SimExchange, so the swap would change nothing."""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import pytest

import mmd.app as app_mod
from mmd.backtest_run import backtest
from mmd.config import load_config
from mmd.feeds.recording import RecordingWriter, read_recording
from tests.unit.sim.reference_exchange import SimExchange as ReferenceExchange

# of 19,801 frames (8 min): the first ~3 min, enough for the strategy to warm up, quote and trade
# (the fill count is asserted below)
SLICE_FRAMES = 8000


@pytest.fixture(scope="module")
def sliced_rec(binance_btc_rec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first SLICE_FRAMES frames of the real BTCUSDT recording, under the same file name."""
    out = tmp_path_factory.mktemp("sliced") / binance_btc_rec.name
    with RecordingWriter(out) as w:
        for i, (ts, raw) in enumerate(read_recording(binance_btc_rec)):
            if i >= SLICE_FRAMES:
                break
            w.write(ts, raw)
    return out


@pytest.mark.parametrize(
    "sets",
    [
        [],
        [
            "exchange.queue_model=prob_log",
            "exchange.partial_fills=false",
            "exchange.entry_latency_ms=5",
        ],
    ],
    ids=["defaults", "prob_log-all_or_nothing-5ms"],
)
def test_backtest_fills_identical_with_the_previous_exchange(
    sliced_rec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sets: list[str]
) -> None:
    cfg = load_config(None, environ={}, sets=sets)
    runs = []
    for name, cls in (("kernels", app_mod.SimExchange), ("previous", ReferenceExchange)):
        monkeypatch.setattr(app_mod, "SimExchange", cls)
        out = tmp_path / f"{name}.csv"
        summaries = backtest(
            cfg,
            [str(sliced_rec)],
            strategy="as",
            report_dir=None,
            progress=False,
            fills_csv=str(out),
            engine="python",
        )
        with out.open() as f:
            fills = collections.Counter(tuple(row.values()) for row in csv.DictReader(f))
        runs.append((fills, summaries))
    (new_fills, new_sum), (old_fills, old_sum) = runs
    print(f"{sum(new_fills.values())} fills")
    assert sum(new_fills.values()) > 10  # the run trades: the comparison means something
    assert new_fills == old_fills
    assert new_sum == old_sum

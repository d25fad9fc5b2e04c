"""Fixed memory: replaying every recording in ../shared/data/market back to back, twice, leaves
the ring buffers' size unchanged and RSS flat (figures printed)."""

from __future__ import annotations

import gc
from pathlib import Path

import psutil
import pytest

from mmd.config import MarketConfig
from mmd.feeds.recording import parse_recording_name
from mmd.feeds.replay import merged_frames
from mmd.market.hub import MarketHub

pytestmark = pytest.mark.slow

# Headroom for allocator noise on the second pass (pymalloc arenas, numpy temporaries). A leak
# of one Python object per frame (~100 B x ~250k frames per pass) would exceed it several times.
RSS_TOLERANCE_MB = 8.0


def test_memory_replay_all_recordings_twice_rss_flat_rings_fixed(
    cryptofeed_dir: Path,
    binance_btc_rec: Path,
    binance_eth_rec: Path,
    binance_btc_2023_rec: Path,
) -> None:
    cfg = MarketConfig(mid_capacity=4096, trade_capacity=4096, kline_capacity=256)
    hubs = {
        "linear": MarketHub(["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"], cfg),
        "spot": MarketHub(["BTCUSDT", "ETHUSDT"], cfg),
    }
    recs = [
        *sorted(cryptofeed_dir.iterdir()),
        binance_btc_rec,
        binance_eth_rec,
        binance_btc_2023_rec,
    ]
    proc = psutil.Process()

    def replay_all() -> int:
        n = 0
        for rec in recs:
            meta = parse_recording_name(rec)
            hub = hubs[meta.category if meta else "linear"]
            for ts, frame in merged_frames([rec]):
                hub.on_frame(frame, ts)
                n += 1
        return n

    def state_bytes() -> int:
        return sum(st.nbytes for h in hubs.values() for st in h.states.values())

    frames1 = replay_all()
    bytes1 = state_bytes()
    gc.collect()
    rss1 = proc.memory_info().rss
    frames2 = replay_all()
    gc.collect()
    rss2 = proc.memory_info().rss
    bytes2 = state_bytes()
    growth_mb = (rss2 - rss1) / 2**20
    print(
        f"frames per pass {frames1}; state bytes {bytes1} -> {bytes2}; "
        f"RSS after pass 1 {rss1 / 2**20:.1f} MB, after pass 2 {rss2 / 2**20:.1f} MB "
        f"(growth {growth_mb:+.2f} MB)"
    )
    assert frames1 == frames2 > 50_000
    assert bytes1 == bytes2 > 0
    # the rings wrapped many times: memory is bounded by capacity, not by run length
    for h in hubs.values():
        for st in h.states.values():
            assert len(st.trades) <= cfg.trade_capacity
    lin = hubs["linear"].states["BTCUSDT"]
    assert lin.mids.total > cfg.mid_capacity
    assert growth_mb < RSS_TOLERANCE_MB
    assert all(h.stats.decode_errors == 0 for h in hubs.values())

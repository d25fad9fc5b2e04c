"""REST-only mode (websocket off) keeps the book equal to the venue's within one polling
interval, over real sockets against `mmd serve-venue` serving the real Bybit capture."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from procs import daemon, http_json, venue
from reference import ReferenceBooks

pytestmark = pytest.mark.slow

POLL_S = 0.25
SPEED = 2.0


def test_rest_only_book_tracks_venue_within_one_poll(cryptofeed_dir: Path, tmp_path: Path) -> None:
    (rec,) = cryptofeed_dir.glob("bybit_linear_BTCUSDT_*.rec.gz")
    ref = ReferenceBooks(rec)
    with venue([rec], tmp_path, speed=SPEED) as (_, vurl):
        env = {
            "MMD_VENUE__REST_URL": vurl,
            "MMD_FEED__WEBSOCKET": "false",
            "MMD_REST__ORDERBOOK_INTERVAL_S": str(POLL_S),
            "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
            "MMD_METRICS__DEBUG": "true",  # /debug/book is off by default
        }
        with daemon(tmp_path, env, ready_timeout=30) as (proc, url):
            checks, lags = 0, []
            finished_at = None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                _, vbook = http_json(
                    vurl + "/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=50"
                )
                _, book = http_json(url + "/debug/book/BTCUSDT?depth=50")
                _, stats = http_json(vurl + "/venue/stats")
                seq = book["seq"]
                bids, asks = ref.top(seq, 50)
                assert book["bids"] == bids and book["asks"] == asks, f"differs at seq {seq}"
                checks += 1
                # how far behind the venue is the daemon, in real (not recorded) seconds
                vseq = int(vbook["result"]["seq"])
                lags.append((ref.ts_recv_ns[vseq] - ref.ts_recv_ns[seq]) / 1e9 / SPEED)
                if stats["finished"]:
                    finished_at = finished_at or time.monotonic()
                    if [bids, asks] == list(ref.top(ref.final_seq, 50)):
                        break
                time.sleep(0.05)
            assert finished_at is not None and [bids, asks] == list(ref.top(ref.final_seq, 50))
            assert time.monotonic() - finished_at <= POLL_S + 0.5
            assert proc.alive()
    lags.sort()
    median = lags[len(lags) // 2]
    p95 = lags[int(0.95 * (len(lags) - 1))]
    print(
        f"checks {checks}; lag behind venue median {median:.3f} s, p95 {p95:.3f} s, "
        f"max {lags[-1]:.3f} s (poll interval {POLL_S} s)"
    )
    assert checks >= 50
    # Polling every POLL_S, the daemon is on average half an interval behind; the venue answer
    # and the daemon's book are read a few ms apart, and the venue applies recorded frames in
    # steps, so allow one interval plus 0.15 s of request and scheduling time at p95.
    assert median <= POLL_S
    assert p95 <= POLL_S + 0.15

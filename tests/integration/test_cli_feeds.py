"""`mmd record`, `mmd run --feed replay` and `mmd run --feed synthetic` as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import base_env, daemon, http_json, http_text, metric_values, venue
from reference import ReferenceBooks

from mmd.feeds.bybit_codec import InstrumentsMsg, decode_frame
from mmd.feeds.recording import parse_recording_name, read_recording

pytestmark = pytest.mark.slow


def _replay(paths: list[Path], tmp: Path, symbols: str) -> dict:
    env = base_env(
        MMD_FEED__REPLAY__PATHS=json.dumps([str(p) for p in paths]),
        MMD_FEED__SYMBOLS=symbols,
        MMD_METRICS__PORT="0",
        MMD_STATE__DIR=str(tmp / "state"),
    )
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "run", "--feed", "replay"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    (done,) = [e for e in events if e["event"] == "replay_finished"]
    return done


def test_replay_is_deterministic_and_ends_on_the_reference_book(
    cryptofeed_dir: Path, tmp_path: Path
) -> None:
    linear = sorted(cryptofeed_dir.glob("bybit_linear_*.rec.gz"))
    syms = '["BTCUSDT","ETHUSDT","SOLUSDT","DOGEUSDT"]'
    a = _replay([cryptofeed_dir], tmp_path, syms)
    b = _replay([cryptofeed_dir], tmp_path, syms)
    assert a["books"] == b["books"] and a["frames"] == b["frames"]
    # the spot files of the same symbols are not replayed into the linear daemon
    assert all("_linear_" in f for f in a["files"]) and len(a["files"]) == 4
    for rec in linear:
        ref = ReferenceBooks(rec)
        book = a["books"][ref.symbol]
        bids, asks = ref.top(ref.final_seq, 1)
        assert book["seq"] == ref.final_seq
        assert book["best_bid"] == bids[0] and book["best_ask"] == asks[0]
    # SOURCES.md: final linear BTCUSDT top 65,114.2 / 65,114.3 (ticks of 0.1)
    assert a["books"]["BTCUSDT"]["best_bid"][0] == 651142
    assert a["books"]["BTCUSDT"]["best_ask"][0] == 651143


def test_record_from_venue_writes_replayable_recordings(
    cryptofeed_dir: Path, tmp_path: Path
) -> None:
    recs = sorted(cryptofeed_dir.glob("bybit_linear_*USDT_*.rec.gz"))[:2]
    out = tmp_path / "rec"
    with venue(recs, tmp_path, speed=4.0) as (_, vurl):
        env = base_env(
            MMD_VENUE__REST_URL=vurl,
            MMD_VENUE__WS_URL=vurl.replace("http", "ws") + "/v5/public/linear",
            MMD_FEED__SYMBOLS=json.dumps([parse_recording_name(p).symbol for p in recs]),
        )  # type: ignore[union-attr]
        r = subprocess.run(
            [sys.executable, "-m", "mmd", "record", "--out", str(out), "--duration", "4"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    files = sorted(out.glob("*.rec.gz"))
    assert len(files) == 2
    for f in files:
        meta = parse_recording_name(f)
        assert meta is not None and meta.venue == "bybit" and meta.category == "linear"
        frames = list(read_recording(f))
        first = decode_frame(frames[0][1])
        assert isinstance(first, InstrumentsMsg) and first.instruments[0].symbol == meta.symbol
        topics = {json.loads(fr).get("topic", "rest").split(".")[0] for _, fr in frames[1:]}
        assert "orderbook" in topics and len(frames) > 20
        ts = [t for t, _ in frames]
        assert ts == sorted(ts)
    # what was recorded replays into synced books
    done = _replay(files, tmp_path, json.dumps([parse_recording_name(f).symbol for f in files]))  # type: ignore[union-attr]
    assert all(b["best_bid"] and b["best_ask"] for b in done["books"].values())


def test_run_synthetic_feed_gets_ready_and_exports_market_metrics(tmp_path: Path) -> None:
    env = {"MMD_FEED__SYMBOLS": '["BTCUSDT","ETHUSDT"]'}
    with daemon(tmp_path, env, ready_timeout=20, args=("--feed", "synthetic")) as (proc, url):
        time.sleep(1.0)
        text = http_text(url + "/metrics")
        mids = metric_values(text, "mmd_market_mid_price")
        assert set(mids) == {'{symbol="BTCUSDT"}', '{symbol="ETHUSDT"}'}
        assert all(v > 0 for v in mids.values())
        assert metric_values(text, "mmd_feed_messages_total")['{topic="orderbook"}'] > 10
        status, body = http_json(url + "/readyz")
        assert status == 200 and body["ok"]
        assert proc.alive()
    assert proc.p.returncode == 0

"""When the live daemon decides quotes: inline after a book frame when no newer frame waits, and
under a flood at least once every `backlog_quote_every_frames` book frames (never starved).

Real processes on loopback: `mmd serve-venue` serving the converted Binance BTC recording and
`mmd run` reading it over the websocket. Figures come from the daemon's own counters, never from
wall-clock thresholds."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import Proc, base_env, daemon, free_port, http_text, metric_values

pytestmark = pytest.mark.slow

EVERY_FRAMES = 8


@contextlib.contextmanager
def _daemon_then_venue(rec: Path, tmp: Path, speed: float) -> Iterator[tuple[Proc, str]]:
    """The daemon first (retrying an unreachable venue every 0.05 s), then the venue: the
    venue's replay clock starts when it does, so none of the short recording is spent while
    the daemon starts."""
    vport = free_port()
    vurl = f"http://127.0.0.1:{vport}"
    with daemon(tmp, _env(vurl)) as (proc, url):
        args = [
            sys.executable,
            "-m",
            "mmd",
            "serve-venue",
            str(rec),
            "--port",
            str(vport),
            "--speed",
            str(speed),
        ]
        ven = Proc(args, base_env(), tmp / f"venue-{time.monotonic_ns()}.log")
        try:
            yield proc, url
        finally:
            ven.stop()


def _env(vurl: str) -> dict[str, str]:
    return {
        "MMD_REST__BACKOFF_BASE_S": "0.05",
        "MMD_REST__BACKOFF_MAX_S": "0.05",
        "MMD_WS__BACKOFF_BASE_S": "0.05",
        "MMD_WS__BACKOFF_MAX_S": "0.05",
        "MMD_VENUE__REST_URL": vurl,
        "MMD_VENUE__WS_URL": vurl.replace("http", "ws") + "/v5/public/linear",
        "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
        "MMD_FEED__STALE_AFTER_S": "60",
        "MMD_STRATEGY__BACKLOG_QUOTE_EVERY_FRAMES": str(EVERY_FRAMES),
        # the time rule as loose as the config allows: only the frame rule bounds the floor
        "MMD_STRATEGY__BACKLOG_QUOTE_EVERY_S": "10",
    }


def _counters(url: str) -> dict[str, float]:
    text = http_text(url + "/metrics", timeout=30)  # a flooded daemon answers slowly
    dec = metric_values(text, "mmd_quote_decisions_total")
    msgs = metric_values(text, "mmd_feed_messages_total")
    cnt = metric_values(text, "mmd_tick_to_quote_seconds_count")
    return {
        "inline": dec.get('{trigger="inline"}', 0.0),
        "backlog": dec.get('{trigger="backlog"}', 0.0),
        "timer": dec.get('{trigger="timer"}', 0.0),
        "books": msgs.get('{topic="orderbook"}', 0.0)
        - metric_values(text, "mmd_feed_dropped_frames_total").get("", 0.0),
        "recv": cnt.get('{stamp="recv"}', 0.0),
        "exch": cnt.get('{stamp="exch"}', 0.0),
    }


def _window(url: str, seconds: float) -> dict[str, float]:
    """Counter increments from the first quote for `seconds`, or until the books stop (the
    venue's recording ended)."""
    deadline = time.monotonic() + 60
    while _counters(url)["recv"] == 0:
        assert time.monotonic() < deadline, "the daemon never quoted"
        time.sleep(0.05)
    a = b = _counters(url)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.5)
        c = _counters(url)
        if c["books"] == b["books"]:
            break
        b = c
    return {k: b[k] - a[k] for k in a}


def test_idle_feed_is_quoted_inline_on_every_book(binance_btc_rec: Path, tmp_path: Path) -> None:
    with _daemon_then_venue(binance_btc_rec, tmp_path, 1.0) as (proc, url):
        d = _window(url, 5.0)
        assert proc.alive()
    print(d)
    decided = d["inline"] + d["backlog"] + d["timer"]
    assert d["books"] > 20  # the venue sent books during the window
    # every decision that reacted to a new book is observed once per stamp
    assert d["recv"] == d["exch"] == decided
    # at real pace the feed is mostly idle between frames: most books are decided inline,
    # each on its own (a coalesced decision covers several books)
    assert d["inline"] >= 0.5 * d["books"]
    assert decided <= d["books"] + 2  # never more decisions than books (+ the window's edge)


def test_flood_never_starves_the_quoter(binance_btc_rec: Path, tmp_path: Path) -> None:
    # 200x: the 8-minute recording in 2.4 s, ~8 k frames/s in bursts
    with _daemon_then_venue(binance_btc_rec, tmp_path, 200.0) as (proc, url):
        d = _window(url, 10.0)
        assert proc.alive()
    print(d)
    assert d["backlog"] > 0  # the flood did build a backlog (else this tests nothing)
    decided = d["inline"] + d["backlog"] + d["timer"]
    # a decision at least every EVERY_FRAMES applied book frames; the window's two edges can
    # each split one batch
    assert decided * EVERY_FRAMES >= d["books"] - 2 * EVERY_FRAMES

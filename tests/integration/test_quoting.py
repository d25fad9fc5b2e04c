"""The daemon quotes both sides within the configured warm-up: on the synthetic feed, and
against `mmd serve-venue` serving a converted real recording (real processes, real sockets)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from procs import daemon, http_json, http_text, metric_values, venue

pytestmark = pytest.mark.slow

WARMUP_S = 4.0
# process start, kernel cache load and the first frames take a little longer than warmup_s
SLACK_S = 6.0


def _wait_quotes(url: str, symbols: list[str], started: float) -> tuple[float, str]:
    deadline = started + WARMUP_S + SLACK_S
    while time.monotonic() < deadline:
        text = http_text(url + "/metrics")
        bids = metric_values(text, "mmd_quote_bid_price")
        asks = metric_values(text, "mmd_quote_ask_price")
        if all(f'{{symbol="{s}"}}' in bids and f'{{symbol="{s}"}}' in asks for s in symbols):
            return time.monotonic() - started, text
        time.sleep(0.1)
    raise AssertionError(f"no two-sided quotes within {WARMUP_S + SLACK_S} s")


def _check_quotes(text: str, symbols: list[str]) -> None:
    bids = metric_values(text, "mmd_quote_bid_price")
    asks = metric_values(text, "mmd_quote_ask_price")
    mids = metric_values(text, "mmd_market_mid_price")
    ready = metric_values(text, "mmd_strategy_ready")
    for s in symbols:
        key = f'{{symbol="{s}"}}'
        assert 0 < bids[key] < asks[key]
        assert bids[key] < mids[key] < asks[key]  # post-only: never crossing the touch
        states = {k for k, v in ready.items() if f'symbol="{s}"' in k and v == 1.0}
        assert len(states) == 1 and 'state="waiting"' not in states.pop()
    counts = metric_values(text, "mmd_tick_to_quote_seconds_count")
    assert counts['{stamp="recv"}'] > 0
    assert counts['{stamp="exch"}'] == counts['{stamp="recv"}']  # one of each per decision
    assert metric_values(text, "mmd_model_kappa")


def test_quoting_synthetic_feed_two_sided_within_warmup(tmp_path: Path) -> None:
    symbols = ["BTCUSDT", "ETHUSDT"]
    env = {"MMD_FEED__SYMBOLS": '["BTCUSDT","ETHUSDT"]', "MMD_STRATEGY__WARMUP_S": str(WARMUP_S)}
    with daemon(tmp_path, env, args=("--feed", "synthetic")) as (proc, url):
        started = time.monotonic()  # the daemon is up (a loaded machine starts it slowly)
        took, text = _wait_quotes(url, symbols, started)
        _check_quotes(text, symbols)
        status, body = http_json(url + "/readyz")
        assert status == 200, body
        assert proc.alive()
    print(f"two-sided quotes after {took:.2f} s (warm-up {WARMUP_S} s)")


def test_quoting_against_venue_two_sided_within_warmup(
    binance_btc_rec: Path, tmp_path: Path
) -> None:
    with venue([binance_btc_rec], tmp_path, speed=1.0) as (_, vurl):
        env = {
            "MMD_VENUE__REST_URL": vurl,
            "MMD_VENUE__WS_URL": vurl.replace("http", "ws") + "/v5/public/linear",
            "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
            "MMD_STRATEGY__WARMUP_S": str(WARMUP_S),
        }
        with daemon(tmp_path, env) as (proc, url):
            started = time.monotonic()  # the daemon is up (a loaded machine starts it slowly)
            took, text = _wait_quotes(url, ["BTCUSDT"], started)
            _check_quotes(text, ["BTCUSDT"])
            assert proc.alive()
    print(f"two-sided quotes after {took:.2f} s (warm-up {WARMUP_S} s)")

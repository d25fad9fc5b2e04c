"""An unreachable venue: the daemon stays up, healthy but not ready, retrying with backoff."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from procs import daemon, free_port, http_json, http_text, metric_values

pytestmark = pytest.mark.slow


def test_unreachable_venue_retried_daemon_alive_not_ready(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    env = {
        "MMD_VENUE__REST_URL": f"http://127.0.0.1:{dead}",
        "MMD_VENUE__WS_URL": f"ws://127.0.0.1:{dead}/v5/public/linear",
        "MMD_REST__BACKOFF_BASE_S": "0.1",
        "MMD_REST__BACKOFF_MAX_S": "0.8",
    }
    with daemon(tmp_path, env) as (proc, url):
        time.sleep(3.0)
        assert proc.alive()
        assert http_json(url + "/healthz")[0] == 200
        status, body = http_json(url + "/readyz")
        assert status == 503 and body["not_ready"] == {"BTCUSDT": "no_instrument"}
        errors = metric_values(http_text(url + "/metrics"), "mmd_feed_rest_requests_total")
        attempts = sum(v for k, v in errors.items() if 'outcome="error"' in k)
    retries = [json.loads(line) for line in proc.output().splitlines() if '"rest_retried"' in line]
    delays = [r["delay_s"] for r in retries]
    print(f"attempts in 3 s: {attempts:.0f}; delays {delays}")
    # capped: never above backoff_max_s; exponential: a handful of tries, not a hot loop
    assert 3 <= attempts <= 15
    assert delays and max(delays) <= 0.8

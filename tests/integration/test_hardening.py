"""Hardening of the daemon as a real process on loopback: no credential in its logs, private
state files, and an unusable state dir refused (exit 2 naming state.dir)."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hardening_venue import MisbehavingVenue
from procs import (
    Proc,
    base_env,
    daemon,
    free_port,
    http_json,
    http_text,
    metric_values,
    venue,
    wait_ready,
)

pytestmark = pytest.mark.slow

SECRET = "s3cretPW0rd"


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_venue_url_credentials_never_reach_the_logs(cryptofeed_dir: Path, tmp_path: Path) -> None:
    with venue([cryptofeed_dir], tmp_path, speed=1.0) as (_, vurl):
        host = vurl.removeprefix("http://")
        env = {
            "MMD_VENUE__REST_URL": f"http://mm:{SECRET}@{host}",
            "MMD_VENUE__WS_URL": f"ws://mm:{SECRET}@{host}/v5/public/linear",
            "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
        }
        with daemon(tmp_path, env, ready_timeout=30) as (proc, _url):
            pass
        out = proc.output()
    connected = [r for r in _json_lines(out) if r.get("event") == "ws_connected"]
    assert connected, out[-2000:]
    # the URL is still logged, only its user info is replaced
    assert connected[0]["url"] == f"ws://***@{host}/v5/public/linear"
    assert SECRET not in out


def test_state_dir_and_ledger_are_private(tmp_path: Path) -> None:
    env = {"MMD_FEED__SOURCE": "synthetic", "MMD_STATE__SNAPSHOT_INTERVAL_S": "0.2"}
    with daemon(tmp_path, env, ready_timeout=30) as (proc, _url):
        pass
    assert proc.p.returncode == 0, proc.output()[-2000:]
    state = tmp_path / "state"
    for d in (state, state / "synthetic"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, (d, oct(d.stat().st_mode))
    files = sorted((state / "synthetic").iterdir())
    assert any(f.name == "ledger.sqlite" for f in files), files
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))


@pytest.mark.parametrize("value", ["", "''", " ", "  "])
def test_blank_state_dir_exits_2_naming_it(tmp_path: Path, value: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mmd", "run", "--feed", "synthetic"],
        env=base_env(MMD_STATE__DIR=value, MMD_METRICS__PORT="0"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mmd: config error: state.dir: "), lines
    assert list(tmp_path.iterdir()) == [], "nothing may be written into the working directory"


# -- the HTTP server -------------------------------------------------------------------------


@contextlib.contextmanager
def _daemon_with_fd_limit(
    tmp: Path, env: dict[str, str], nofile: int
) -> Iterator[tuple[Proc, str]]:
    """`mmd run` (synthetic feed) under `ulimit -n nofile`, healthy; yields (proc, base url)."""
    port = free_port()
    full = base_env(
        MMD_METRICS__PORT=str(port),
        MMD_STATE__DIR=str(tmp / "state"),
        MMD_FEED__SOURCE="synthetic",
        MMD_STRATEGY__WARMUP_S="0.5",
        **env,
    )
    # exec: the pid signalled by Proc.stop is the daemon's own
    argv = ["sh", "-c", f'ulimit -n {nofile} && exec "$0" -m mmd run', sys.executable]
    proc = Proc(argv, full, tmp / f"daemon-{time.monotonic_ns()}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while http_status(url + "/healthz") != 200:
            assert proc.alive(), proc.output()[-3000:]
            assert time.monotonic() < deadline, proc.output()[-3000:]
            time.sleep(0.1)
        yield proc, url
    finally:
        proc.stop()


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        return http_json(url, timeout=timeout)[0]
    except OSError:
        return None


def _raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_http_server_survives_held_connections_and_bad_requests(tmp_path: Path) -> None:
    timeout_s = 1.5
    env = {"MMD_METRICS__REQUEST_TIMEOUT_S": str(timeout_s), "MMD_METRICS__DEBUG": "true"}
    # 64 descriptors, as a small container might allow: held connections must not eat them
    with _daemon_with_fd_limit(tmp_path, env, 64) as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        held = []
        for _ in range(100):  # half-sent requests: the blank line never comes
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        # a probe still gets in while they are held (the oldest half-sent ones make room)
        t0 = time.monotonic()
        assert http_status(url + "/healthz", timeout=5) == 200
        # every held connection is closed by the server within the request timeout
        for s in held:
            s.settimeout(max(0.1, t0 + timeout_s + 5 - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(1024) == b""
            s.close()
        assert time.monotonic() - t0 < timeout_s + 5
        # malformed requests: 400 (or 405/431) with a one-line JSON error, no traceback
        bad = _raw_request(port, b"\x16\x03\x01garbage\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400 "), bad[:200]
        assert _raw_request(port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
        huge = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n"
        assert _raw_request(port, huge).startswith(b"HTTP/1.1 431")
        for depth in ("-1", "0", "abc", "99999999999999999999", "1.5"):
            status, body = http_json(f"{url}/debug/book/BTCUSDT?depth={depth}")
            assert status == 400, (depth, status, body)
            assert body["ok"] is False and "depth" in body["error"]
        assert http_json(f"{url}/debug/book/BTCUSDT?depth=5")[0] == 200
        assert http_status(url + "/healthz") == 200
        metrics = http_text(url + "/metrics")
        assert proc.alive()
    out = proc.output()
    assert "Traceback" not in out, out[-3000:]
    refused = [r for r in _json_lines(out) if r.get("event") == "http_request_refused"]
    assert refused and all(len(json.dumps(r)) < 400 for r in refused), refused[:3]
    assert (
        'mmd_http_refused_total{reason="timeout"}' in metrics
        or 'mmd_http_refused_total{reason="evicted"}' in metrics
    )


def test_debug_endpoint_is_off_by_default(tmp_path: Path) -> None:
    with daemon(tmp_path, {"MMD_FEED__SOURCE": "synthetic"}) as (_proc, url):
        assert http_json(f"{url}/debug/book/BTCUSDT?depth=5")[0] == 404
        assert http_status(url + "/healthz") == 200


# -- the feed --------------------------------------------------------------------------------


def _venue_env(v: MisbehavingVenue, **extra: str) -> dict[str, str]:
    return {
        "MMD_VENUE__REST_URL": v.rest_url,
        "MMD_VENUE__WS_URL": v.ws_url,
        "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
        **extra,
    }


def test_a_book_that_always_fails_is_resubscribed_with_backoff(tmp_path: Path) -> None:
    # every snapshot has an off-tick price: refused, so the book is resynced again and again
    with (
        MisbehavingVenue(off_tick_snapshots=True).running() as v,
        daemon(
            tmp_path, _venue_env(v, MMD_WS__BACKOFF_BASE_S="0.5", MMD_WS__BACKOFF_MAX_S="30")
        ) as (proc, url),
    ):
        t0 = time.monotonic()
        while v.book_subscribes == 0 and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        first = v.book_subscribes
        time.sleep(6.0)
        n = v.book_subscribes - first
        assert proc.alive()
        assert http_status(url + "/healthz") == 200
    # backoff 0.5 s doubling, jittered to [0.5, 1] x: the delays after the first immediate
    # resync sum to at least 0.25 + 0.5 + 1 + 2 = 3.75 s by the 5th, and at least 7.75 s by
    # the 6th, so 6 s hold at most 6 resubscribes; without a backoff there were over 100
    assert 1 <= n <= 6, (n, proc.output()[-2000:])


def test_oversized_frames_and_bodies_are_refused_and_counted(tmp_path: Path) -> None:
    # defaults: [ws] max_frame_bytes 4 MiB, [rest] max_body_bytes 8 MiB
    big_body = 30 << 20
    with (
        MisbehavingVenue(ws_junk_bytes=5 << 20, rest_body_bytes=big_body).running() as v,
        daemon(
            tmp_path, _venue_env(v, MMD_REST__KLINE_INTERVAL_S="0.5", MMD_WS__BACKOFF_BASE_S="0.2")
        ) as (proc, url),
    ):
        deadline = time.monotonic() + 30
        while True:
            text = http_text(url + "/metrics")
            ws_n = metric_values(text, "mmd_feed_oversized_frames_total").get("", 0.0)
            rest_n = metric_values(text, "mmd_feed_rest_requests_total").get(
                '{endpoint="kline",outcome="too_large"}', 0.0
            )
            if ws_n >= 2 and rest_n >= 2:
                break
            assert time.monotonic() < deadline, (ws_n, rest_n, proc.output()[-2000:])
            time.sleep(0.2)
        assert proc.alive()
        assert http_status(url + "/healthz") == 200
        sent, requests = v.rest_bytes_sent, rest_n
    # the client stops reading past the cap: far less than the whole bodies went out
    # (8 MiB read + what the socket buffers held, per request; one more may be under way)
    print("oversized REST bodies:", requests, "requests,", sent, "bytes sent")
    assert sent < (requests + 1) * (big_body // 2), (sent, requests)
    assert "ws_frame_too_large" in proc.output()


def test_a_stalled_socket_is_reconnected_after_stale_after_s(
    cryptofeed_dir: Path, tmp_path: Path
) -> None:
    stale_s = 2.0
    # `stall`: the venue keeps the connection open but sends nothing more, not even pongs;
    # only the idle timeout (60 s here) would notice it without the watchdog
    with venue([cryptofeed_dir], tmp_path, speed=1.0, faults="stall:40") as (_, vurl):
        env = {
            "MMD_VENUE__REST_URL": vurl,
            "MMD_VENUE__WS_URL": vurl.replace("http", "ws") + "/v5/public/linear",
            "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
            "MMD_FEED__STALE_AFTER_S": str(stale_s),
            "MMD_WS__IDLE_TIMEOUT_S": "60",
        }
        with daemon(tmp_path, env, ready_timeout=30) as (proc, url):
            deadline = time.monotonic() + 40
            while http_json(vurl + "/venue/stats")[1]["faults"]["injected"]["stall"] < 1:
                assert time.monotonic() < deadline, "the venue never stalled"
                time.sleep(0.05)
            t_stall = time.monotonic()
            reconnects = 0.0
            # stale after 2 s on a silent socket, checked every 0.5 s: reconnected well within
            # 2 s + 4 s of margin for a loaded machine (without the watchdog: after 60 s)
            while time.monotonic() - t_stall < stale_s + 4:
                reconnects = metric_values(
                    http_text(url + "/metrics"), "mmd_feed_reconnects_total"
                ).get("", 0.0)
                if reconnects >= 1:
                    break
                time.sleep(0.1)
            assert reconnects >= 1, proc.output()[-3000:]
            t_reconnect = time.monotonic() - t_stall
            wait_ready(url, 15, proc)
            print(
                f"stall -> reconnect {t_reconnect:.2f} s, -> ready again "
                f"{time.monotonic() - t_stall:.2f} s (stale_after_s {stale_s})"
            )
            assert proc.alive()
    assert "ws_reconnect_forced" in proc.output()


# the daemon as `mmd run` builds it, with a synthetic load past what the config admits (symbols
# x frame_rate_hz at most 100 frames/s): the feed falls behind its schedule on purpose
_OVERLOADED = """
import sys, msgspec
from mmd import app
from mmd.config import load_config
from mmd.logs import configure_logs
cfg = load_config(None, sets=sys.argv[3:])
feed = msgspec.structs.replace(cfg.feed, symbols=[f"S{i:03d}USDT" for i in range(int(sys.argv[1]))],
    synthetic=msgspec.structs.replace(cfg.feed.synthetic, frame_rate_hz=float(sys.argv[2])))
msgspec.structs.force_setattr(cfg, "feed", feed)  # past AppConfig's frame-rate check
configure_logs("info", "json")
app.run_daemon(cfg, exit_process=True)  # as `mmd run` does
"""


def test_an_overloaded_synthetic_feed_still_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    # 200 symbols x 20 Hz = 4,000 frames/s of 200-level books, 40x the admitted rate
    argv = [
        sys.executable,
        "-c",
        _OVERLOADED,
        "200",
        "20",
        "feed.source=synthetic",
        f"metrics.port={port}",
        f"state.dir={state}",
        "state.snapshot_interval_s=3600",
        "strategy.warmup_s=0.5",
        "feed.synthetic.sigma_ticks=200",
    ]
    proc = Proc(argv, base_env(), tmp_path / "overloaded.log")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while http_status(url + "/healthz") != 200:
            assert proc.alive(), proc.output()[-3000:]
            assert time.monotonic() < deadline, proc.output()[-3000:]
            time.sleep(0.1)
        for _ in range(10):  # /healthz keeps answering while the feed is behind
            assert http_status(url + "/healthz", timeout=2) == 200
            time.sleep(0.3)
        behind = metric_values(http_text(url + "/metrics"), "mmd_quote_decisions_total")
        stop_ns = time.time_ns()
        t0 = time.monotonic()
        proc.p.send_signal(signal.SIGTERM)
        rc = proc.p.wait(5)  # raises TimeoutExpired if SIGTERM is not acted on within 5 s
        assert rc == 0, proc.output()[-3000:]
        assert time.monotonic() - t0 < 5
    finally:
        proc.stop(signal.SIGKILL)
    # under a backlog the quotes are coalesced: the feed was behind its schedule
    assert behind.get('{trigger="backlog"}', 0.0) > 0, behind
    with sqlite3.connect(f"file:{state / 'synthetic' / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        (last,) = db.execute("SELECT MAX(ts_ns) FROM snapshots").fetchone()
    # snapshots every hour: the one after the stop signal is the final snapshot at shutdown
    assert last is not None and last >= stop_ns, (last, stop_ns)

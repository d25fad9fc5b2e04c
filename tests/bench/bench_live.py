"""The live driver: a real `mmd run` against `mmd serve-venue` on loopback.

Rows (figures printed, never asserted):

* `live_tick_to_quote`: per (pace, symbols), the daemon's own `mmd_tick_to_quote_seconds` over a
  window after warm-up: p50/p90/p99/p99.9 per stamp (`recv`: from the frame's receive stamp;
  `exch`: from the venue's exchange stamp, which `serve-venue` sets to the emission time),
  frames/s, decisions/s and their split by trigger (inline / backlog / timer). Quantiles are
  interpolated inside the histogram's buckets (1-2-5 per decade), as Prometheus does.
* `live_stage_share`: one profiled run (`python -m cProfile -m mmd run`, 100x, 1 symbol): the
  share of the daemon's CPU time (own time of every function) by stage, grouped by module:
  receive (websockets, asyncio, uvloop), decode, book, features, quote (strategy, trader, OMS,
  risk, portfolio, ledger), exchange (paper exchange, queue kernels), metrics, other. Compiled
  kernels and builtins count in the stage that calls them; start-up (imports, kernel cache) and
  the event loop's idle wait are left out. The profiler slows Python code down about 2x, so
  read shares, not times.
* `live_ingest_ceiling`: the venue's pace ramped up, one daemon per step, 1 and 10 symbols (the
  BTC/ETH Binance and the 4 linear Bybit recordings, the Bybit ones also duplicated under other
  names to reach 10): frames/s handled and the growth of `mmd_feed_lag_seconds` over the window.
  Each step replays the whole recording (8 minutes of BTC; the Bybit capture) at that pace; the
  offered rate is frames / (recorded span / pace), and the lag of the last book says how far
  behind the daemon ended. The ceiling is the highest offered rate that ended within
  `LAG_GROWTH_S`.
* `live_frame_call`: the per-frame work without the socket: every frame of the BTCUSDT recording
  through the same steps as FrameHandler with an inline decision after each book (decode, hub,
  trader, quote), in this process, no ledger. Per book frame: median ns of the whole
  (handler + decision) and of each step (`decode` = JSON to a typed message, `levels` = its
  level strings to ticks/lots, timed on a second conversion and taken out of `market`,
  `market` = the rest of the hub: book sync and the one compiled book/features/rings call,
  `exchange` = the paper exchange seeing the book, `decision` = strategy, order diff, risk,
  journal-free sends), and the compiled calls alone (`advance_book_frame` on an empty delta,
  `decide_symbol_quotes` with no open order, per call from Python, dispatch included). Every
  figure is a median of single calls, which skips those another job preempted; the load
  average is in the row.
* `ws_receive`: the receive path alone, per client (websockets with one timer per recv, with a
  timer only when nothing is buffered, `async for`; aiohttp's client; picows when importable),
  against a minimal sender writing pre-framed Bybit book frames as fast as the socket takes them:
  frames/s and client CPU µs per frame (min of runs).

The machine is shared, so every figure includes whatever else ran at the time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
DATA = REPO.parent / "shared" / "data" / "market"
BINANCE = {
    "BTCUSDT": DATA / "binance_usdm_btcusdt_2024-07-18_19",
    "ETHUSDT": DATA / "binance_usdm_ethusdt_2024-07-18_19",
}
CRYPTOFEED = DATA / "bybit_v5_linear_spot_2026-08-09_cryptofeed" / "BYBIT.jsonl"
LAG_GROWTH_S = 0.5
sys.path.insert(0, str(BENCH.parent))  # tests/procs.py

# ---------------------------------------------------------------------------------------------
# recordings


def _recordings(out: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """symbol -> converted recording: the Binance BTC/ETH ones, and the Bybit linear ones (one
    capture, so they can be served together)."""
    from mmd.feeds.convert.binance_usdm import convert_binance_usdm
    from mmd.feeds.convert.cryptofeed import convert_cryptofeed
    from mmd.feeds.recording import recording_meta

    binance: dict[str, Path] = {}
    for sym, d in BINANCE.items():
        files = sorted(d.glob("*.gz"))
        if files:
            (out / sym).mkdir(parents=True, exist_ok=True)  # an existing dir: file goes inside
            (p,) = convert_binance_usdm(files, out / sym, progress=False)
            binance[sym] = p
    bybit: dict[str, Path] = {}
    if CRYPTOFEED.exists():
        (out / "bybit").mkdir(parents=True, exist_ok=True)
        for p in convert_cryptofeed(CRYPTOFEED, out / "bybit", progress=False):
            meta = recording_meta(p)
            if meta is not None and meta.category == "linear":
                bybit[meta.symbol] = p
    return binance, bybit


def _span(recs: dict[str, Path], symbols: list[str]) -> float:
    """Seconds of recorded time the symbols' recordings cover together."""
    from mmd.feeds.recording import read_recording

    lo, hi = float("inf"), 0.0
    for s in symbols:
        for ts, _raw in read_recording(recs[s]):
            lo, hi = min(lo, ts), max(hi, ts)
    return max(hi - lo, 1) / 1e9


def _renamed(src: Path, old: str, new: str, out: Path) -> Path:
    """A copy of a recording with every occurrence of the symbol's name replaced."""
    import gzip

    opener = gzip.open if src.suffix == ".gz" else open
    dst = out / src.name.replace(old, new)
    with opener(src, "rb") as fin, opener(dst, "wb") as fout:
        for line in fin:
            fout.write(line.replace(old.encode(), new.encode()))
    return dst


# ---------------------------------------------------------------------------------------------
# metrics


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        return r.read().decode()


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def _sum(text: str, name: str, **match: str) -> float:
    return sum(
        v
        for n, lab, v in _samples(text)
        if n == name and all(lab.get(k) == w for k, w in match.items())
    )


def _buckets(text: str, stamp: str) -> list[tuple[float, float]]:
    return sorted(
        (float(lab["le"]), v)
        for n, lab, v in _samples(text)
        if n == "mmd_tick_to_quote_seconds_bucket" and lab.get("stamp") == stamp
    )


def quantile(
    q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> float:
    """Quantile q of the observations between two scrapes of a cumulative histogram, linear
    inside the bucket (the lower edge of the first bucket is 0)."""
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    lo_le, lo_n = 0.0, 0.0
    for le, n in counts:
        if n >= rank:
            if le == float("inf"):
                return lo_le
            return lo_le + (le - lo_le) * (rank - lo_n) / max(n - lo_n, 1e-12)
        lo_le, lo_n = le, n
    return counts[-2][0]


def _window(url: str, warm_s: float, window_s: float) -> tuple[str, str, float]:
    """Wait for quotes, then scrape twice window_s apart."""
    deadline = time.monotonic() + warm_s + 60
    while time.monotonic() < deadline:
        text = _scrape(url)
        if _sum(text, "mmd_quote_decisions_total") > 0:
            break
        time.sleep(0.2)
    time.sleep(warm_s)
    t0 = time.monotonic()
    a = _scrape(url)
    time.sleep(window_s)
    b = _scrape(url)
    return a, b, time.monotonic() - t0


def _frames(text: str) -> float:
    return _sum(text, "mmd_feed_messages_total")


def _lag(text: str) -> float:
    lags = [v for n, _, v in _samples(text) if n == "mmd_feed_lag_seconds"]
    return max(lags) if lags else float("nan")


# ---------------------------------------------------------------------------------------------
# daemon against the venue


def _env(vurl: str, symbols: list[str]) -> dict[str, str]:
    return {
        "MMD_REST__BACKOFF_BASE_S": "0.05",
        "MMD_REST__BACKOFF_MAX_S": "0.05",
        "MMD_WS__BACKOFF_BASE_S": "0.05",
        "MMD_WS__BACKOFF_MAX_S": "0.05",
        "MMD_VENUE__REST_URL": vurl,
        "MMD_VENUE__WS_URL": vurl.replace("http", "ws") + "/v5/public/linear",
        "MMD_FEED__SYMBOLS": json.dumps(symbols),
        "MMD_STRATEGY__WARMUP_S": "0.5",
        "MMD_FEED__STALE_AFTER_S": "60",
    }


def _live(
    recs: list[Path],
    symbols: list[str],
    speed: float,
    tmp: Path,
    *,
    warm_s: float,
    window_s: float | None,
    profile: Path | None = None,
    max_s: float = 300.0,
) -> tuple[str, str, float]:
    """The daemon first (retrying the unreachable venue every 0.05 s), then the venue, whose
    replay clock starts when it does. With window_s: two scrapes window_s apart once quoting;
    without: the first scrape with frames and the last once the venue's replay has ended."""
    from procs import Proc, base_env, free_port

    port, vport = free_port(), free_port()
    vurl = f"http://127.0.0.1:{vport}"
    env = base_env(
        MMD_METRICS__PORT=str(port),
        MMD_STATE__DIR=str(tmp / f"st{time.time_ns()}"),
        MMD_MODELS__DIR=str(tmp / "models"),
        **_env(vurl, symbols),
    )
    pre = ["-m", "cProfile", "-o", str(profile)] if profile else []
    proc = Proc(
        [sys.executable, *pre, "-m", "mmd", "run"], env, tmp / f"daemon-{time.monotonic_ns()}.log"
    )
    url = f"http://127.0.0.1:{port}"
    ven = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                _scrape(url)
                break
            except OSError:
                if not proc.alive():
                    raise RuntimeError("daemon exited: " + proc.output()[-2000:]) from None
                time.sleep(0.2)
        ven = Proc(
            [
                sys.executable,
                "-m",
                "mmd",
                "serve-venue",
                *map(str, recs),
                "--port",
                str(vport),
                "--speed",
                str(speed),
            ],
            base_env(),
            tmp / f"venue-{time.monotonic_ns()}.log",
        )
        if window_s is not None:
            return _window(url, warm_s, window_s)
        first = ""
        deadline = time.monotonic() + 120
        while not first and time.monotonic() < deadline:
            text = _scrape(url)
            if _sum(text, "mmd_feed_messages_total", topic="orderbook") > 0:
                first = text
            time.sleep(0.05)
        t0 = time.monotonic()  # the window starts at the first book
        last, n, since = first, -1.0, time.monotonic()
        while time.monotonic() - since < 1.5 and time.monotonic() - t0 < max_s:
            time.sleep(0.25)
            text = _scrape(url)
            if _frames(text) != n:
                n, last, since = _frames(text), text, time.monotonic()
        return first, last, since - t0
    finally:
        if ven is not None:
            ven.stop()
        proc.stop()


def _tick_row(a: str, b: str, dt: float, speed: float, symbols: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": "live_tick_to_quote",
        "pace": speed,
        "symbols": len(symbols),
        "window_s": round(dt, 2),
        "frames_per_s": round((_frames(b) - _frames(a)) / dt, 1),
    }
    for stamp in ("recv", "exch"):
        ba, bb = _buckets(a, stamp), _buckets(b, stamp)
        for q, key in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99_9")):
            row[f"{stamp}_{key}_us"] = round(quantile(q, ba, bb) * 1e6, 1)
    for trig in ("inline", "backlog", "timer"):
        d = _sum(b, "mmd_quote_decisions_total", trigger=trig) - _sum(
            a, "mmd_quote_decisions_total", trigger=trig
        )
        if d > 0:  # a trigger that never fired is left out of the row
            row[f"decisions_{trig}_per_s"] = round(d / dt, 1)
    return {k: v for k, v in row.items() if v == v}  # no NaN: a stamp without observations


STAGES = (
    ("receive", ("websockets/", "asyncio/", "uvloop/", "aiohttp/", "selectors", "socket")),
    ("decode", ("feeds/bybit_codec", "msgspec", "decode")),
    ("book", ("market/book", "market/hub", "feeds/book_sync", "kernels/book")),
    ("features", ("market/features", "kernels/features", "calibration", "market/ring")),
    ("exchange", ("sim/", "kernels/exchange")),
    ("metrics", ("mmd/metrics", "prometheus_client")),
    ("quote", ("strategy/", "trading/", "kernels/quotes", "mmd/app.py")),
)


def stage_of(filename: str, func: str) -> str:
    """The stage a profiled function belongs to (by its module path)."""
    key = f"{filename} {func}"
    for stage, needles in STAGES:
        if any(n in key for n in needles):
            return stage
    return "other"


_IDLE = ("run_until_complete", "run_forever", "select", "poll", "epoll", "sleep")
_STARTUP = (
    "kernels/warmup",
    "importlib",
    "numba/",
    "llvmlite/",
    "<frozen",
    "__main__.py",
    "mmd/config/",
    "tomllib",
    "logs.py",
)


def _stage_share(profile: Path) -> dict[str, float]:
    """Own time by stage; a function that belongs to no stage (a builtin, a helper) is charged
    to its callers, in proportion to the time each spent in it. Start-up (imports, kernel cache
    loading) and the event loop's idle wait are left out."""
    import pstats

    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    memo: dict[Any, dict[str, float]] = {}

    def split(func: Any, depth: int = 0) -> dict[str, float]:
        """Fractions of func's own time per stage."""
        if func in memo:
            return memo[func]
        filename, _line, name = func
        key = f"{filename} {name}"
        if any(n in key for n in _STARTUP):
            out = {"startup": 1.0}
        elif filename == "~" and any(n in name for n in _IDLE):
            out = {"idle": 1.0}
        else:
            stage = stage_of(filename, name)
            callers = stats[func][4] if func in stats else {}
            if stage != "other" or not callers or depth > 30:
                out = {stage: 1.0}
            else:
                memo[func] = {"other": 1.0}  # cycles
                weights = {c: v[3] for c, v in callers.items()}
                total = sum(weights.values()) or 1.0
                out = {}
                for c, w in weights.items():
                    for st, f in split(c, depth + 1).items():
                        out[st] = out.get(st, 0.0) + f * w / total
        memo[func] = out
        return out

    by: dict[str, float] = {}
    for func, (_cc, _nc, tt, _ct, _callers) in stats.items():
        for st, f in split(func).items():
            by[st] = by.get(st, 0.0) + tt * f
    by.pop("startup", None)
    by.pop("idle", None)
    total = sum(by.values()) or 1.0
    return {
        k: round(v / total, 3)
        for k, v in sorted(by.items(), key=lambda kv: -kv[1])
        if v / total >= 0.0005
    }


# ---------------------------------------------------------------------------------------------
# receive path alone


def _ws_frames(recs: dict[str, Path], n: int) -> list[bytes]:
    from mmd.feeds.recording import read_recording

    frames = []
    for _ts, raw in read_recording(next(iter(recs.values()))):
        if b'"orderbook.' in raw[:60]:
            frames.append(raw)
        if len(frames) >= 2000:
            break
    return [frames[i % len(frames)] for i in range(n)]


def _frame_bytes(payload: bytes) -> bytes:
    """One unmasked server-to-client text frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, n])
    elif n < 1 << 16:
        head = bytes([0x81, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 127]) + n.to_bytes(8, "big")
    return head + payload


def _sender(port_file: str, frames_file: str) -> None:
    """A minimal websocket server: handshake, then the pre-framed frames as fast as the socket
    takes them, then a close frame."""
    import socket

    blob = Path(frames_file).read_bytes()
    srv = socket.create_server(("127.0.0.1", 0))
    Path(port_file).write_text(str(srv.getsockname()[1]))
    conn, _ = srv.accept()
    req = b""
    while b"\r\n\r\n" not in req:
        req += conn.recv(4096)
    key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", req).group(1)  # type: ignore[union-attr]
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    conn.sendall(blob)
    conn.sendall(b"\x88\x02\x03\xe8")
    time.sleep(1.0)
    conn.close()


async def _client(kind: str, url: str, n: int) -> tuple[float, float]:
    """Receive n frames; returns (wall seconds, process CPU seconds) from the first frame."""
    import asyncio

    got = 0
    t0 = c0 = 0.0

    def on_frame(raw: bytes, ts: int) -> None:
        nonlocal got, t0, c0
        if got == 0:
            t0, c0 = time.perf_counter(), time.process_time()
        got += 1

    if kind.startswith("websockets"):
        from websockets.asyncio.client import connect

        async with connect(url, ping_interval=None, max_size=2**24, max_queue=4096) as ws:
            queued = ws.recv_messages.frames
            if kind == "websockets_async_for":
                async for raw in ws:
                    on_frame(raw, time.time_ns())  # type: ignore[arg-type]
                    if got >= n:
                        break
            else:
                while got < n:
                    if kind == "websockets_timer_per_batch" and len(queued):
                        raw = await ws.recv(decode=False)
                    else:
                        async with asyncio.timeout(30):
                            raw = await ws.recv(decode=False)
                    on_frame(raw, time.time_ns())
    elif kind == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession() as s, s.ws_connect(url, max_msg_size=2**24) as ws:
            while got < n:
                msg = await ws.receive(timeout=30)
                on_frame(msg.data, time.time_ns())
    elif kind == "picows":
        import picows

        done = asyncio.get_running_loop().create_future()

        class Listener(picows.WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                on_frame(frame.get_payload_as_bytes(), time.time_ns())
                if got >= n and not done.done():
                    done.set_result(None)

        transport, _ = await picows.ws_connect(Listener, url)
        await asyncio.wait_for(done, 60)
        transport.disconnect()
    return time.perf_counter() - t0, time.process_time() - c0


def _client_main(kind: str, url: str, n: int) -> None:
    import uvloop

    wall, cpu = uvloop.run(_client(kind, url, n))
    print(json.dumps({"wall_s": wall, "cpu_s": cpu}))


def _ws_receive(recs: dict[str, Path], tmp: Path, n: int, runs: int) -> list[dict[str, Any]]:
    blob = tmp / "frames.bin"
    blob.write_bytes(b"".join(_frame_bytes(f) for f in _ws_frames(recs, n)))
    kinds = [
        "websockets_timer_per_recv",
        "websockets_timer_per_batch",
        "websockets_async_for",
        "aiohttp",
    ]
    env = dict(os.environ)
    extra = os.environ.get("MMD_BENCH_PICOWS_PATH")  # e.g. a `pip install --target` dir
    if extra:
        env["PYTHONPATH"] = env.get("PYTHONPATH", "") + os.pathsep + extra
    probe = subprocess.run(
        [sys.executable, "-c", "import picows"], env=env, capture_output=True, check=False
    )
    if probe.returncode == 0:
        kinds.append("picows")
    rows = []
    for kind in kinds:
        best: dict[str, float] | None = None
        for r in range(runs):
            port_file = tmp / f"port-{kind}-{r}"
            snd = subprocess.Popen(
                [sys.executable, __file__, "--sender", str(port_file), str(blob)], env=env
            )
            try:
                deadline = time.monotonic() + 20
                while not port_file.exists() or not port_file.read_text():
                    if time.monotonic() > deadline:
                        raise RuntimeError("sender did not start")
                    time.sleep(0.02)
                url = f"ws://127.0.0.1:{port_file.read_text()}/"
                out = subprocess.run(
                    [sys.executable, __file__, "--client", kind, url, str(n)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=True,
                )
                res = json.loads(out.stdout.strip().splitlines()[-1])
            finally:
                snd.kill()
                snd.wait(5)
            if best is None or res["cpu_s"] < best["cpu_s"]:
                best = res
        assert best is not None
        rows.append(
            {
                "name": f"ws_receive_{kind}",
                "frames": n,
                "frames_per_s": round(n / best["wall_s"]),
                "cpu_us_per_frame": round(best["cpu_s"] / n * 1e6, 2),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# the per-frame call


def _median(xs: list[int]) -> float:
    xs = sorted(xs)
    return float(xs[len(xs) // 2]) if xs else float("nan")


def _frame_steps(rec: Path, symbol: str, n_frames: int) -> tuple[dict[str, Any], Any, Any]:
    """The steps of `live_frame_call`: one pass to warm up, one timed pass; returns the row,
    the hub and the trader."""
    import msgspec

    from mmd import app
    from mmd.config import AppConfig
    from mmd.feeds.bybit_codec import BookMsg
    from mmd.feeds.recording import read_recording

    frames = []
    for ts, raw in read_recording(rec):
        frames.append((ts, raw))
        if len(frames) >= n_frames:
            break
    cfg = AppConfig()
    cfg = msgspec.structs.replace(cfg, feed=msgspec.structs.replace(cfg.feed, symbols=[symbol]))
    pc = time.perf_counter_ns
    parts: dict[str, list[int]] = {
        k: [] for k in ("total", "decode", "levels", "market", "exchange", "decision")
    }
    for timed in (False, True):
        hub = app.MarketHub([symbol], cfg.market, features_cfg=cfg.features)
        trader = app.build_trader(cfg, hub, ledger=False)
        for ts, raw in frames:
            t0 = pc()
            msg, _ = hub.decode(raw)
            if msg is None:
                continue
            t1 = pc()
            st = hub.states.get(symbol)
            if isinstance(msg, BookMsg) and st is not None:
                # the level strings to ticks/lots, timed apart (the hub converts them again)
                st.instrument.levels_to_arrays(msg.bids)
                st.instrument.levels_to_arrays(msg.asks)
            t1b = pc()
            hub.on_message(msg, ts)
            t2 = pc()
            trader.on_message(msg, ts)
            t3 = pc()
            if not isinstance(msg, BookMsg):
                continue
            trader.quote(ts, [msg.symbol])
            t4 = pc()
            if timed:
                lv = t1b - t1
                for key, dt in (
                    ("total", t4 - t0 - lv),
                    ("decode", t1 - t0),
                    ("levels", lv),
                    ("market", t2 - t1b - lv),
                    ("exchange", t3 - t2),
                    ("decision", t4 - t3),
                ):
                    parts[key].append(dt)
    row: dict[str, Any] = {"name": "live_frame_call", "book_frames": len(parts["total"])}
    for key, xs in parts.items():
        row[f"{key}_ns"] = round(_median(xs))
    return row, hub, trader


def _frame_call(rec: Path, symbol: str, n_frames: int) -> dict[str, Any]:
    """`live_frame_call` (see the module docstring)."""
    from mmd.kernels.frame import advance_book_frame, decide_symbol_quotes
    from mmd.strategy.order_diff import orders_array

    row, hub, trader = _frame_steps(rec, symbol, n_frames)
    pc = time.perf_counter_ns
    # the two compiled calls alone, on the last frame's state (dispatch included)
    st = hub.states[symbol]
    strat = trader.strategies[symbol]
    lv = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # an empty delta: no level changes
    counts = np.array([st.book.n_bids, st.book.n_asks], np.int64)
    total = np.array([st.mids.total], np.int64)
    book_args = (
        st.frame_book,
        counts,
        st.frame_features,
        st.frame_mids,
        total,
        (*lv, *lv),
        False,
        st.book.ts_exch_ns,
    )
    comp = strat.compiled
    assert comp is not None
    args = comp.bind(st)  # its argument tuples
    dec_args = (
        np.zeros(3, np.int64),
        args[1],
        args[2],
        args[3],
        args[4],
        orders_array([]),
        comp.cmds,
        (np.ones(1, np.int64), comp.done),
        st.book.ts_exch_ns,
        st.book.ts_exch_ns,
        0,
        True,
        False,
        0,
    )
    for key, fn, a in (
        ("advance_book_frame", advance_book_frame, book_args),
        ("decide_symbol_quotes", decide_symbol_quotes, dec_args),
    ):
        runs = []
        for _ in range(10_000):  # per call: the median skips the calls another job preempted
            t0 = pc()
            fn(*a)
            runs.append(pc() - t0)
        row[f"{key}_ns"] = round(_median(runs))
    row["load_avg_1m"] = round(max(os.getloadavg()[0], 0.01), 2)
    return row


# ---------------------------------------------------------------------------------------------


def run(quick: bool) -> list[dict[str, Any]]:
    """Every row above; `quick` is one short pass: the receive path on 20 k frames and one
    daemon at 100x on 1 symbol (no profile, no ramp)."""
    if not BINANCE["BTCUSDT"].exists():
        print(f"bench_live: skipped, no recording under {DATA}", file=sys.stderr)
        return []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recs, byb = _recordings(tmp / "rec")
        rows.append(_frame_call(recs["BTCUSDT"], "BTCUSDT", 5_000 if quick else 40_000))
        rows += _ws_receive(recs, tmp, 20_000 if quick else 100_000, 1 if quick else 3)
        bybit = sorted(byb)[:4]
        window = 5.0 if quick else 20.0  # at most this long from the first book
        if quick:  # bounded: one daemon, one pace
            a, b, dt = _live(
                [recs["BTCUSDT"]], ["BTCUSDT"], 100.0, tmp, warm_s=0.0, window_s=None, max_s=window
            )
            return [*rows, _tick_row(a, b, dt, 100.0, ["BTCUSDT"])]
        for symbols, src in ((["BTCUSDT"], recs), (bybit, byb)):
            for speed in (10.0, 100.0):
                a, b, dt = _live(
                    [src[s] for s in symbols],
                    symbols,
                    speed,
                    tmp,
                    warm_s=0.0,
                    window_s=None,
                    max_s=window,
                )
                rows.append(_tick_row(a, b, dt, speed, symbols))
        prof = tmp / "daemon.prof"
        _live(
            [recs["BTCUSDT"]],
            ["BTCUSDT"],
            100.0,
            tmp,
            warm_s=0.0,
            window_s=None,
            max_s=window,
            profile=prof,
        )
        rows.append({"name": "live_stage_share", "pace": 100.0, "symbols": 1, **_stage_share(prof)})
        # 10 symbols from one capture (the venue's clock starts at the earliest file): the Bybit
        # linear symbols, duplicated under other names
        ten = list(bybit)
        extra = 0
        while len(ten) < 10 and bybit:
            src = bybit[extra % len(bybit)]
            new = src.replace("USDT", f"X{extra}USDT")
            byb[new] = _renamed(byb[src], src, new, tmp / "rec" / "bybit")
            ten.append(new)
            extra += 1
        ramps = {1: (30.0, 100.0, 300.0, 1000.0), 10: (10.0, 30.0, 100.0, 300.0)}
        for n_sym, speeds in ramps.items():
            symbols, src_recs = (["BTCUSDT"], recs) if n_sym == 1 else (ten, byb)
            ok = []
            for speed in speeds:
                a, b, _dt = _live(
                    [src_recs[s] for s in symbols], symbols, speed, tmp, warm_s=0.0, window_s=None
                )
                frames = _frames(b) - _frames(a)
                span = _span(src_recs, symbols) / speed  # seconds the venue takes to send them
                offered = frames / span
                lag = _lag(b)  # the last book's lag: how far behind the daemon ended
                rows.append(
                    {
                        "name": "live_ingest_step",
                        "symbols": n_sym,
                        "pace": speed,
                        "frames": frames,
                        "offered_frames_per_s": round(offered),
                        "final_lag_s": round(max(lag, 1e-4), 4),
                    }
                )
                if lag <= LAG_GROWTH_S:
                    ok.append(round(offered))
            rows.append(
                {
                    "name": "live_ingest_ceiling",
                    "symbols": n_sym,
                    "ceiling_frames_per_s": max(ok) if ok else 1,
                }
            )
    return rows


if __name__ == "__main__":
    if sys.argv[1] == "--sender":
        _sender(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--client":
        _client_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))

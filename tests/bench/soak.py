"""Soak: real `mmd run` daemons for a long time, one JSON line per daemon per interval.

Two daemons run side by side: `venue` reads a `mmd serve-venue` that replays the real Binance
USD-M BTCUSDT and ETHUSDT recordings (converted once) at `--speed` x, restarted on the same
port whenever it reaches the end (a replay in a loop: the daemon sees a disconnect and a fresh
`u == 1` snapshot each time), and `synthetic` reads the seeded generator (endless). Every
interval each daemon's /metrics is scraped: RSS, open fds, asyncio tasks, event-loop lag p99
over the interval (from the `mmd_event_loop_lag_seconds` buckets), frames, fills and the size of
its ledger files. At the end both get SIGTERM (exit 0 expected), are started again on the same
state, and the `ledger_restored` figures of that restart are printed, then the slopes (least
squares per hour, the first interval left out as warm-up).

Not a `bench_*.py` module, so `tests/bench/run.py` and CI never run it. Usage:

    nice -n 10 python tests/bench/soak.py --minutes 30
    nice -n 10 python tests/bench/soak.py --minutes 1440 --out soak-24h.jsonl   # 24 h
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: procs.py

from procs import Proc, base_env, free_port  # noqa: E402

ROOT = HERE.parents[1]
DATA = ROOT.parent / "shared" / "data" / "market"
RECORDINGS = {
    "BTCUSDT": DATA / "binance_usdm_btcusdt_2024-07-18_19",
    "ETHUSDT": DATA / "binance_usdm_ethusdt_2024-07-18_19",
}
LAG_RE = re.compile(r'^mmd_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)


def emit(row: dict[str, Any], out: Any) -> None:
    line = json.dumps(row)
    print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def convert(work: Path) -> list[Path]:
    """The real recordings as our format (cached in work/rec)."""
    from mmd.feeds.convert.binance_usdm import convert_binance_usdm

    out: list[Path] = []
    for sym, folder in RECORDINGS.items():
        have = sorted((work / "rec").glob(f"*_{sym}_*.rec.gz"))
        if have:
            out.append(have[0])
            continue
        files = sorted(folder.glob("*.gz"))
        if not files:
            raise SystemExit(f"soak: real data not present ({folder})")
        out.extend(convert_binance_usdm(files, work / "rec" / ""))
    return out


class Venue:
    """`mmd serve-venue` on a fixed port, restarted whenever its replay has finished."""

    def __init__(self, recs: list[Path], work: Path, speed: float) -> None:
        self.recs, self.work, self.speed = recs, work, speed
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loops = 0
        self.proc: Proc | None = None

    def start(self) -> None:
        self.proc = Proc(
            [
                sys.executable,
                "-m",
                "mmd",
                "serve-venue",
                *map(str, self.recs),
                "--port",
                str(self.port),
                "--speed",
                str(self.speed),
            ],
            base_env(),
            self.work / f"serve-venue-{self.loops}.log",
        )
        deadline = time.monotonic() + 120
        while "listening on" not in self.proc.output():
            if not self.proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"venue did not start: {self.proc.output()[-2000:]}")
            time.sleep(0.1)

    def restart_if_finished(self) -> None:
        assert self.proc is not None
        try:
            _, body = get(self.url + "/venue/stats", timeout=2)
            finished = json.loads(body)["finished"]
        except (OSError, ValueError, KeyError):
            finished = not self.proc.alive()
        if finished:
            self.proc.stop()
            self.loops += 1
            self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


class Daemon:
    """One `mmd run` process on its own state dir; scraped and restarted by name."""

    def __init__(self, name: str, work: Path, env: dict[str, str]) -> None:
        self.name = name
        self.state = work / name / "state"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = base_env(
            MMD_METRICS__PORT=str(self.port),
            MMD_STATE__DIR=str(self.state),
            MMD_MODELS__DIR=str(work / name / "models"),
            MMD_RECORD__ENABLED="false",
            **env,
        )
        self.work = work
        self.starts = 0
        self.proc: Proc | None = None
        self.lag_prev: dict[float, float] = {}

    def start(self) -> float:
        """Start and wait for /healthz; returns the seconds it took."""
        self.starts += 1
        t0 = time.monotonic()
        self.proc = Proc(
            [sys.executable, "-m", "mmd", "run"],
            self.env,
            self.work / f"daemon-{self.name}-{self.starts}.log",
        )
        while True:
            if not self.proc.alive():
                raise RuntimeError(f"{self.name} exited: {self.proc.output()[-3000:]}")
            try:
                if get(self.url + "/healthz", timeout=1)[0] == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            if time.monotonic() - t0 > 600:
                raise RuntimeError(f"{self.name} never healthy: {self.proc.output()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> int:
        assert self.proc is not None
        return self.proc.stop(signal.SIGTERM, timeout=30)

    def ledger_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.state.rglob("ledger.sqlite*") if p.is_file())

    def sample(self) -> dict[str, Any]:
        _, body = get(self.url + "/metrics", timeout=10)
        text = body.decode()

        def value(name: str) -> float:
            """The sum over the metric's series (0 when it has none yet)."""
            total = 0.0
            for m in re.finditer(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.M):
                total += float(m.group(1))
            return total

        buckets = {float(le): float(n) for le, n in LAG_RE.findall(text)}
        delta = {le: n - self.lag_prev.get(le, 0.0) for le, n in buckets.items()}
        self.lag_prev = buckets
        return {
            "rss_mb": round(value("process_resident_memory_bytes") / 2**20, 2),
            "open_fds": int(value("process_open_fds")),
            "tasks": int(value("mmd_event_loop_tasks")),
            "loop_lag_p99_ms": round(1e3 * quantile(delta, 0.99), 3),
            # samples taken (one per 100 ms of a free loop): fewer = the loop was held
            "loop_lag_samples": int(delta.get(float("inf"), 0.0)),
            "ledger_mb": round(self.ledger_bytes() / 2**20, 3),
            "frames": int(value("mmd_feed_messages_total")),
            "fills": int(value("mmd_fills_total")),
            "resyncs": int(value("mmd_feed_resyncs_total")),
            "frame_errors": int(value("mmd_feed_frame_errors_total")),
            "cpu_s": round(value("process_cpu_seconds_total"), 1),
            # the machine's 1-minute load: a starved process shows as loop lag
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }

    def restore_figures(self) -> dict[str, Any]:
        """The `ledger_restored` line of the current process (waits for it up to 60 s)."""
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.proc.output().splitlines():
                if '"ledger_restored"' in line:
                    rec = json.loads(line)
                    return {"restore_s": rec["seconds"], "restored_fills": rec["fills"]}
            time.sleep(0.2)
        return {"restore_s": None, "restored_fills": None}


def quantile(delta: dict[float, float], q: float) -> float:
    """The q-quantile of a cumulative histogram's interval counts (linear inside a bucket,
    as Prometheus' histogram_quantile); NaN without samples."""
    les = sorted(le for le in delta if le != float("inf"))
    total = delta.get(float("inf"), 0.0)
    if total <= 0:
        return float("nan")
    rank, lo, below = q * total, 0.0, 0.0
    for le in les:
        if delta[le] >= rank:
            inside = delta[le] - below
            return lo + (le - lo) * ((rank - below) / inside if inside > 0 else 1.0)
        lo, below = le, delta[le]
    return les[-1] if les else float("nan")


def slope_per_h(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over xs (minutes), per hour."""
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y == y]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    return round(60.0 * sxy / sxx, 4) if sxx > 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument(
        "--interval-s",
        type=float,
        default=60.0,
        help="seconds between samples (default one a minute)",
    )
    ap.add_argument("--speed", type=float, default=10.0, help="venue replay speed")
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="keep recordings, state and logs here (default: a temporary dir)",
    )
    ap.add_argument("--out", type=Path, default=None, help="also append the lines to this file")
    args = ap.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="mmd-soak-")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    out = open(args.out, "a") if args.out else None  # noqa: SIM115 - closed below
    recs = convert(work)
    venue = Venue(recs, work, args.speed)
    venue.start()
    daemons = [
        Daemon(
            "venue",
            work,
            {
                "MMD_FEED__SOURCE": "bybit",
                "MMD_FEED__SYMBOLS": '["BTCUSDT","ETHUSDT"]',
                "MMD_VENUE__REST_URL": venue.url,
                "MMD_VENUE__WS_URL": f"ws://127.0.0.1:{venue.port}/v5/public/linear",
            },
        ),
        Daemon(
            "synthetic",
            work,
            {"MMD_FEED__SOURCE": "synthetic", "MMD_FEED__SYMBOLS": '["BTCUSDT","ETHUSDT"]'},
        ),
    ]
    rows: dict[str, list[dict[str, Any]]] = {d.name: [] for d in daemons}
    try:
        for d in daemons:
            emit(
                {"name": "soak_start", "daemon": d.name, "healthy_after_s": round(d.start(), 2)},
                out,
            )
        t0 = time.monotonic()
        n = max(1, round(args.minutes * 60 / args.interval_s))
        for i in range(1, n + 1):
            due = t0 + i * args.interval_s
            while time.monotonic() < due:
                venue.restart_if_finished()
                for d in daemons:
                    assert d.proc is not None
                    if not d.proc.alive():
                        raise RuntimeError(f"{d.name} died: {d.proc.output()[-3000:]}")
                time.sleep(min(2.0, max(0.0, due - time.monotonic())))
            minute = round((time.monotonic() - t0) / 60, 3)
            for d in daemons:
                row = {"name": "soak", "daemon": d.name, "minute": minute, **d.sample()}
                if d.name == "venue":
                    row["venue_loops"] = venue.loops
                rows[d.name].append(row)
                emit(row, out)
        for d in daemons:
            rc = d.stop()
            log = d.proc.output() if d.proc else ""
            healthy_s = d.start()
            restore = d.restore_figures()
            rc2 = d.stop()
            series = rows[d.name][1:] if len(rows[d.name]) > 2 else rows[d.name]
            xs = [r["minute"] for r in series]
            lags = [
                r["loop_lag_p99_ms"]
                for r in rows[d.name]
                if r["loop_lag_p99_ms"] == r["loop_lag_p99_ms"]
            ]
            emit(
                {
                    "name": "soak_slopes",
                    "daemon": d.name,
                    "minutes": xs[-1] if xs else 0,
                    "samples": len(series),
                    "rss_mb_per_h": slope_per_h(xs, [r["rss_mb"] for r in series]),
                    "open_fds_per_h": slope_per_h(xs, [r["open_fds"] for r in series]),
                    "tasks_per_h": slope_per_h(xs, [r["tasks"] for r in series]),
                    "ledger_mb_per_h": slope_per_h(xs, [r["ledger_mb"] for r in series]),
                    "loop_lag_p99_ms_per_h": slope_per_h(
                        xs, [r["loop_lag_p99_ms"] for r in series]
                    ),
                    "loop_lag_p99_ms_max": max(lags) if lags else None,
                    "rss_mb_first": series[0]["rss_mb"] if series else None,
                    "rss_mb_last": series[-1]["rss_mb"] if series else None,
                    "exit_code": rc,
                    "traceback": "Traceback" in log,
                    "restart_healthy_s": round(healthy_s, 2),
                    **restore,
                    "restart_exit_code": rc2,
                },
                out,
            )
    finally:
        for d in daemons:
            if d.proc is not None:
                d.proc.stop()
        venue.stop()
        if out is not None:
            out.close()
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Long fuzz run (outside CI): millions of generated inputs through the daemon's real path,
in-process.

A daemon is built as `mmd run` builds it (hub, trader with its SQLite ledger, quote scheduler;
no sockets) and every input goes where the feed tasks would put it:

- websocket frames of every topic (orderbook snapshot and delta, publicTrade, kline, tickers,
  op acks and pongs) and REST bodies (orderbook, recent-trade, kline, instruments-info), each a
  valid template with one to three fields replaced by hostile values (ints beyond 64 bits,
  NaN/infinity literals, huge and negative numbers, wrong types, deep nesting) or deleted, cut
  short, flipped bytes, or not an object at all: into `Daemon.handle_frame` (decode, hub,
  trader, quote scheduler);
- valid traffic between them (deltas continuing the book's update id, a snapshot after every
  resync the handler asks for), so hostile deltas meet a live, synced book and the trader
  quotes and fills;
- config inputs: `MMD_*` environments (known keys, hostile values, unknown names) through
  `load_config`, and decoded tables through `config_from_mapping`.

Nothing may escape but the documented types: ConfigError for config inputs, none for frames
and bodies (the frame handler absorbs and counts input errors). Prints a progress bar, then one
JSON line: inputs by kind, rate, exceptions that escaped by type, errors the handler absorbed
by stage, refusals counted by the decoder, RSS after warm-up, at the middle and at the end.
Exit 1 when an undocumented exception escaped or RSS grew more than --rss-tolerance-mb.
SIGTERM or Ctrl-C stops it early, with the report of what ran. On a busy machine, shards with
distinct seeds run in parallel and their counts add up:

    nice -n 10 python tests/fuzz/long_run.py --inputs 1000000
    for s in 1 2 3; do nice -n 10 python tests/fuzz/long_run.py --inputs 340000 --seed $s & done
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "integration"), str(HERE.parent / "unit")]

import orjson  # noqa: E402
import psutil  # noqa: E402
from test_config_fuzz import LEAVES, invalid_values  # noqa: E402
from test_env_fuzz import RAW_HOSTILE, _toml_value, env_name  # noqa: E402
from test_hostile_input import (  # noqa: E402
    INTS,
    SYM,
    Raw,
    _deep,
    _paths,
    dumps,
    rest_templates,
    valid_book,
    ws_book,
    ws_templates,
)
from tqdm import tqdm  # noqa: E402

from mmd.config import config_from_mapping, load_config  # noqa: E402
from mmd.errors import ConfigError  # noqa: E402

# the hostile values a field may get (the integration test draws the same kinds with hypothesis)
VALUES: list[Any] = [
    *(Raw(str(n)) for n in INTS),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    Raw("1e999"),
    Raw("-1e999"),
    Raw("1e30"),
    Raw("-1e30"),
    Raw("1.5"),
    Raw("5e-324"),
    _deep(3000),
    _deep(40),
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "1e30",
    "1E5",
    " 100.0",
    "100.0 ",
    "-1",
    "-100.0",
    "0",
    "0.0",
    "0x10",
    "1_000",
    "",
    "+1",
    "100.05",
    "0.0005",
    "100.00000000000000000001",
    "9" * 25,
    "1" * 400,
    "\u0661\u0662",
    "true",
    "null",
    "Buy",
    "Sell",
    "BTCUSDT",
    "ETHUSDT",
    "btc.usdt",
    "snapshot",
    "delta",
    True,
    False,
    None,
    [],
    {},
    [1, 2],
    {"a": 1},
    0.0,
    -0.0,
    1e308,
    -1e308,
    3.14,
    [["100.0", "1.000"]],
    [["1e30", "1"]],
    [["100.0"]],
]
OPS = [
    {"success": True, "ret_msg": "pong", "conn_id": "c-1", "req_id": "1", "op": "ping"},
    {"success": True, "ret_msg": "", "conn_id": "c-1", "req_id": "2", "op": "subscribe"},
    {"success": False, "ret_msg": "error:handler not found", "conn_id": "c-1", "op": "subscribe"},
]


class Inputs:
    """A seeded stream of hostile inputs and the valid traffic between them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        # templates kept as JSON bytes: decoding them is a cheap deep copy
        self.ws = [orjson.dumps(t) for t in [*ws_templates(), *OPS]]
        self.rest = [orjson.dumps(t) for ts in rest_templates().values() for t in ts]
        self.u = 7  # the book's last update id
        self.need_snapshot = True

    def value(self) -> Any:
        rng = self.rng
        r = rng.random()
        if r < 0.7:
            v = rng.choice(VALUES)
            # a fresh copy: a later mutation of the frame may write inside it
            return orjson.loads(orjson.dumps(v)) if isinstance(v, list | dict) else v
        if r < 0.8:
            return Raw(str(rng.randint(-(2**80), 2**80)))
        if r < 0.9:
            return rng.uniform(-1e6, 1e6)
        return "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 12)))

    def mutated(self, templates: list[bytes]) -> bytes:
        rng = self.rng
        obj = orjson.loads(rng.choice(templates))
        how = rng.random()
        if how < 0.05:
            return dumps(self.value())
        for _ in range(rng.randint(1, 3)):
            paths = _paths(obj)
            if not paths:
                break
            path = rng.choice(paths)
            parent = obj
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict) and rng.random() < 0.15:
                del parent[path[-1]]
            else:
                parent[path[-1]] = self.value()
        raw = dumps(obj)
        if how > 0.93:
            raw = raw[: rng.randint(0, max(0, len(raw) - 1))]
        elif how > 0.88:
            buf = bytearray(raw)
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            raw = bytes(buf)
        return raw

    def valid_book(self, now_ms: int) -> bytes:
        """A snapshot when one is due, else the next delta."""
        bids, asks = valid_book(self.rng)
        self.u += 1
        if self.need_snapshot:
            self.need_snapshot = False
            frame = ws_book("snapshot", self.u, bids, asks)
        else:
            # a delta that keeps the book uncrossed: replace the top few levels
            frame = ws_book("delta", self.u, bids[:2], asks[:2])
        frame["ts"] = now_ms
        frame["cts"] = now_ms - 1
        return orjson.dumps(frame)

    def environment(self) -> dict[str, str]:
        rng = self.rng
        env: dict[str, str] = {}
        for _ in range(rng.randint(1, 3)):
            path, t = rng.choice(LEAVES)
            r = rng.random()
            if r < 0.5:
                value = _toml_value(rng.choice(invalid_values(path, t)))
            elif r < 0.8:
                value = rng.choice(RAW_HOSTILE)
            else:
                drawn = _plain(self.value())
                value = "" if drawn is None else _toml_value(drawn)  # TOML has no null
            env[env_name(path)] = value
        if rng.random() < 0.2:
            env[rng.choice(["MMD_FEED__TYPO", "MMD_X__Y", "MMD_FEED__", "MMD_Z"])] = "1"
        return env

    def table(self) -> dict[str, Any]:
        rng = self.rng
        table: dict[str, Any] = {}
        for _ in range(rng.randint(1, 3)):
            path, t = rng.choice(LEAVES)
            node = table
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = rng.choice([*invalid_values(path, t), self.value()])
        return _plain(table)


def _plain(x: Any) -> Any:
    """Raw tokens as the strings they spell (a decoded table holds no Raw)."""
    if isinstance(x, Raw):
        return x.text
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--rss-tolerance-mb",
        type=float,
        default=32.0,
        help="RSS growth from the warm-up mark to the end that fails the run",
    )
    ap.add_argument(
        "--log",
        type=Path,
        default=None,
        help="the daemon's JSON log (default: in the temporary directory)",
    )
    args = ap.parse_args()

    from mmd.app import Daemon
    from mmd.logs import configure_logs

    tmp = tempfile.TemporaryDirectory(prefix="mmd-fuzz-")
    log_path = args.log or Path(tmp.name) / "daemon.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed below
    with contextlib.redirect_stdout(log_file):
        configure_logs("info", "json", cache=False)
    cfg = config_from_mapping(
        {
            "feed": {"symbols": [SYM], "source": "synthetic", "stale_after_s": 3600.0},
            "strategy": {"warmup_s": 0.1},
            "state": {"dir": f"{tmp.name}/state"},
            "models": {"dir": f"{tmp.name}/models"},
        }
    )
    daemon = Daemon(cfg, serve_http=False)
    trader = daemon.trader
    assert trader is not None
    gen = Inputs(args.seed)
    kinds: Counter[str] = Counter()
    escaped: Counter[str] = Counter()
    documented: Counter[str] = Counter()
    samples: dict[str, str] = {}
    rss: dict[str, float] = {}
    warm = min(20_000, args.inputs // 10)
    inst = dumps(rest_templates()["instruments-info"][0])
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    bar = tqdm(total=args.inputs, unit="in", mininterval=1.0, file=sys.stderr)
    interrupted = False
    signal.signal(signal.SIGTERM, _interrupt)  # stopped early: still report what ran
    try:
        daemon.handle_frame(inst, time.time_ns())
        for i in range(args.inputs):
            if i == warm:
                rss["warm"] = rss_mb()
            elif i == args.inputs // 2:
                rss["middle"] = rss_mb()
            now_ns = time.time_ns()
            r = gen.rng.random()
            try:
                if r < 0.03:
                    kind = "config_env"
                    try:
                        load_config(None, environ=gen.environment())
                    except ConfigError:
                        documented["ConfigError"] += 1
                elif r < 0.04:
                    kind = "config_table"
                    try:
                        config_from_mapping(gen.table())
                    except ConfigError:
                        documented["ConfigError"] += 1
                else:
                    if r < 0.18:
                        kind = "rest_body"
                        raw = gen.mutated(gen.rest)
                    elif r < 0.36 or gen.need_snapshot:
                        kind = "valid_book"
                        raw = gen.valid_book(now_ns // 1_000_000)
                    else:
                        kind = "ws_frame"
                        raw = gen.mutated(gen.ws)
                    if daemon.handle_frame(raw, now_ns):
                        gen.need_snapshot = True  # the feed resubscribes: a snapshot follows
                    elif kind == "valid_book":
                        st = daemon.hub.states.get(SYM)
                        if st is not None and st.sync.synced and st.book.u == gen.u:
                            kinds["valid_book_applied"] += 1
                    if i % 64 == 0:  # the quoter task's timer
                        assert daemon.scheduler is not None
                        daemon.scheduler.tick(0)
            except Exception as exc:  # count every escape by type, keep the first of each
                name = type(exc).__name__
                escaped[name] += 1
                samples.setdefault(name, traceback.format_exc())
            kinds[kind] += 1
            if i % 4096 == 4095:
                bar.update(4096)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.update(max(0, sum(kinds.values()) - kinds["valid_book_applied"] - bar.n))
        bar.close()
        rss["end"] = rss_mb()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        stats = daemon.hub.stats
        if daemon.recorder is not None:
            daemon.recorder.close()
        if trader.ledger is not None:
            trader.ledger.close()
        log_file.close()
    log_text = log_path.read_text(errors="replace")
    total = sum(n for k, n in kinds.items() if k != "valid_book_applied")
    growth = rss["end"] - rss.get("warm", rss["end"])
    report = {
        "name": "fuzz_long_run",
        "seed": args.seed,
        "inputs": total,
        "by_kind": dict(kinds),
        "interrupted": interrupted,
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "inputs_per_s": round(total / wall),
        "escaped": dict(escaped),
        "documented_refusals": dict(documented),
        "decode_errors_counted": stats.decode_errors,
        "frame_errors_absorbed": dict(stats.frame_errors),
        "resyncs": sum(stats.resyncs.values()),
        "tick_size_at_end": {sym: st.instrument.tick_size for sym, st in daemon.hub.states.items()},
        "last_refusal": stats.last_refusal[:120],
        "book_at_end": {
            sym: {"u": st.book.u, "synced": st.sync.synced} for sym, st in daemon.hub.states.items()
        },
        "generator_u": gen.u,
        "dropped_frames": stats.dropped_frames,
        "fills": trader.fills_by_side[1] + trader.fills_by_side[-1],
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "rss_growth_mb": round(growth, 1),
        "traceback_in_log": "Traceback" in log_text,
    }
    print(json.dumps(report), flush=True)
    for name, text in samples.items():
        print(f"--- first {name} ---\n{text}", file=sys.stderr)
    tmp.cleanup()
    ok = not escaped and growth <= args.rss_tolerance_mb and not report["traceback_in_log"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

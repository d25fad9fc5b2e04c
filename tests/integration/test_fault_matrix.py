"""The fault matrix: every fault kind of the local venue against the daemon, over real loopback
sockets on the real Bybit capture, in websocket mode and REST-only mode where the kind applies.

`CASES` writes down the reaction expected per kind: the metric that counts it (and how its
count compares with what the venue injected), the resync reason (or none), and whether the bad
data lasts long enough that the quotes must be pulled. Every case also checks: the daemon keeps
running, no order is submitted for a symbol whose book is unsynced or stale, a symbol that stays
bad past a requote has no open quote, every failed REST poll waited before its retry (capped,
at least `forbidden_backoff_s` after a 403), the ledger holds each fill once, the book equals
the offline reference after EVERY frame and at the end (the `Tap` of test_faults.py); and it
records the figures of the README's Reliability table (one JSON line per case: injected,
counted, max recovery seconds).

`test_fault_matrix_replay_keeps_position_and_pnl` places faults deterministically in a
recording (every N-th book delta, as the venue does) and replays it: for the kinds that do not
change what the market showed, position and PnL equal the fault-free replay's.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from procs import free_port, metric_values
from reference import ReferenceBooks
from test_faults import SPEED, SYMBOLS, Tap, _recs, _resyncs, finish_run

from mmd.app import Daemon
from mmd.config import config_from_mapping
from mmd.feeds.recording import read_recording
from mmd.model.events import SubmitOrder
from mmd.venue import GARBAGE_FRAME, VenueServer

pytestmark = pytest.mark.slow

REQUOTE_S = 0.25  # the quote timer: a bad book is found and its quotes cancelled by then
PULL_AFTER_S = REQUOTE_S + 0.5  # a symbol bad this long must have no open quote
REFUSED_FOR_S = 1.5  # `refused_start`: the venue comes up this long after the daemon
OUTAGE_S = 2.5  # the venue's `outage`: longer than stale_after_s, so quotes are pulled
# `outage` counts source book frames: the two recordings hold 414 + 421, so N = 500 is one
# outage, about 60 % into the replay
MAX_FRAME = 128 << 10  # the daemon's [ws] max_frame_bytes here; `oversized` sends twice that
REST_TIMEOUT_S = 0.3  # the daemon's [rest] timeout_s here; `slow` answers after 0.6 s
BACKOFF_MAX_S = 0.4  # the daemon's [rest] and [ws] backoff_max_s here
FORBIDDEN_S = 0.2  # the daemon's [rest] forbidden_backoff_s here: the floor after an HTTP 403


@dataclass(frozen=True)
class Case:
    """One kind in one mode and the reaction written down for it.

    counter: (metric, label text) the daemon counts the event in; count: how the count compares
    with the venue's injected number ("=": equal, but for one REST answer or one frame still in
    flight at the stop; ">=": at least; ">=1": at least once, one count per connection).
    resync: the resync reason the event causes (mmd_feed_resyncs_total), None = none.
    pulled: the bad data outlasts a requote, so its quotes are cancelled while it lasts.
    """

    mode: str
    kind: str
    n: int
    counter: tuple[str, str]
    count: str
    resync: str | None
    pulled: bool
    reaction: str
    cfg: dict[str, dict[str, Any]] = field(default_factory=dict)
    venue: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.mode}-{self.kind}"


RECONNECTS = ("mmd_feed_reconnects_total", "")
DECODE = ("mmd_feed_decode_errors_total", "")
STALE_1S = {"feed": {"stale_after_s": 1.0}}


def _rest(outcome: str) -> tuple[str, str]:
    return ("mmd_feed_rest_requests_total", f'outcome="{outcome}"')


CASES = [
    Case(
        "ws",
        "disconnect",
        120,
        RECONNECTS,
        ">=1",
        "disconnect",
        False,
        "reconnect with backoff, resubscribe, snapshot",
    ),
    Case(
        "ws",
        "stall",
        120,
        RECONNECTS,
        ">=1",
        "disconnect",
        False,
        "silent: stale after stale_after_s, socket recycled, resubscribe",
        cfg=STALE_1S,
    ),
    Case(
        "ws",
        "gap",
        40,
        ("mmd_feed_resyncs_total", 'reason="gap"'),
        "gap",
        "gap",
        False,
        "that symbol resynced (resubscribe, snapshot)",
    ),
    Case(
        "ws",
        "restart",
        40,
        ("mmd_feed_resyncs_total", 'reason="restart"'),
        "=",
        "restart",
        False,
        "`u == 1` snapshot resets the book",
    ),
    Case("ws", "garbage", 25, DECODE, "=", None, False, "counted and skipped"),
    Case("ws", "truncate", 25, DECODE, "=", None, False, "counted and skipped"),
    Case("ws", "types", 40, DECODE, "=", "bad_frame", False, "refused, that symbol resynced"),
    Case(
        "ws",
        "oversized",
        120,
        ("mmd_feed_oversized_frames_total", ""),
        "=",
        "disconnect",
        False,
        "connection closed unread, reconnect, resubscribe",
        cfg={"ws": {"max_frame_bytes": MAX_FRAME}},
        venue={"oversized_frame_bytes": 2 * MAX_FRAME},
    ),
    Case(
        "ws",
        "duplicate",
        25,
        ("mmd_feed_dropped_frames_total", ""),
        ">=",
        None,
        False,
        "dropped (u already applied)",
    ),
    Case(
        "ws",
        "reorder",
        40,
        ("mmd_feed_resyncs_total", 'reason="gap"'),
        "gap",
        "gap",
        False,
        "seen as a gap: that symbol resynced",
    ),
    Case(
        "ws",
        "outage",
        500,
        RECONNECTS,
        ">=1",
        "disconnect",
        True,
        "refused mid-run: quotes pulled, reconnect with backoff until it listens again",
        cfg=STALE_1S,
        venue={"outage_s": OUTAGE_S},
    ),
    Case(
        "ws",
        "refused_start",
        0,
        _rest("error"),
        ">=1",
        None,
        False,
        "up before the venue: not ready, retried with backoff",
    ),
    Case("rest", "http5xx", 7, _rest("http_5xx"), "=", None, False, "retried with backoff"),
    Case("rest", "http429", 7, _rest("http_429"), "=", None, False, "retried with backoff"),
    Case(
        "rest",
        "http403",
        7,
        _rest("http_403"),
        "=",
        None,
        False,
        "waits forbidden_backoff_s, retried",
    ),
    Case("rest", "retcode", 7, _rest("retcode"), "=", None, False, "retried with backoff"),
    Case(
        "rest",
        "slow",
        9,
        _rest("error"),
        "=",
        None,
        False,
        "timed out after [rest] timeout_s, retried",
        cfg={"rest": {"timeout_s": REST_TIMEOUT_S}},
        venue={"slow_response_s": 2 * REST_TIMEOUT_S},
    ),
    Case(
        "rest",
        "outage",
        500,
        _rest("error"),
        ">=1",
        None,
        True,
        "refused mid-run: book stale, quotes pulled, polls retried",
        cfg=STALE_1S,
        venue={"outage_s": OUTAGE_S},
    ),
    Case(
        "rest",
        "refused_start",
        0,
        _rest("error"),
        ">=1",
        None,
        False,
        "up before the venue: not ready, retried with backoff",
    ),
]


def _ledger_fills(state_dir: Path) -> list[tuple[Any, ...]]:
    """The fill rows of the one ledger under a `[state] dir`, in journal order."""
    (db,) = state_dir.glob("*/ledger.sqlite")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT fill_id, client_order_id, side, px_ticks, qty_lots, "
            "fee_quote, ts_exch_ns FROM fills ORDER BY seq"
        ).fetchall()
    finally:
        con.close()


def _config(case: Case, rest_url: str, ws_url: str, metrics_port: int, tmp: Path) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "feed": {"symbols": SYMBOLS, "websocket": case.mode == "ws", "stale_after_s": 5.0},
        "venue": {"rest_url": rest_url, "ws_url": ws_url},
        "rest": {
            "orderbook_interval_s": 0.1,
            "backoff_base_s": 0.05,
            "backoff_max_s": BACKOFF_MAX_S,
            "forbidden_backoff_s": FORBIDDEN_S,
            "max_requests_per_s": 100.0,
            "trades_interval_s": 0.5,
            "kline_interval_s": 1.0,
        },
        "ws": {
            "idle_timeout_s": 60.0,
            "ping_interval_s": 20.0,
            "backoff_base_s": 0.05,
            "backoff_max_s": BACKOFF_MAX_S,
        },
        "metrics": {"port": metrics_port},
        "strategy": {"warmup_s": 0.5, "requote_interval_s": REQUOTE_S},
        "state": {"dir": str(tmp / "state")},
    }
    for section, values in case.cfg.items():
        cfg[section] = {**cfg[section], **values}
    return cfg


class Watch:
    """Samples the daemon every 20 ms: how long each symbol stays bad (unsynced or stale),
    whether it still has open quotes past PULL_AFTER_S, and (wrapping `trader.send`) every
    order submitted while its symbol is bad."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.bad_since: dict[str, float] = {}
        self.good_seen: set[str] = set()
        self.recoveries: list[float] = []
        self.first_ready_at: float | None = None
        self.pull_checks: list[int] = []  # open quotes of a symbol bad for PULL_AFTER_S
        self.submits = 0
        self.submits_while_bad: list[str] = []
        trader = daemon.trader
        assert trader is not None
        inner = trader.send

        def send(cmd: Any, exch_ns: int) -> None:
            if isinstance(cmd, SubmitOrder):
                self.submits += 1
                if self._bad(cmd.symbol):
                    self.submits_while_bad.append(cmd.symbol)
            inner(cmd, exch_ns)

        trader.send = send  # type: ignore[method-assign]

    def _bad(self, sym: str) -> bool:
        st = self.daemon.hub.states.get(sym)
        return st is None or not st.sync.synced or st.stale

    def sample(self) -> None:
        now = time.monotonic()
        if self.first_ready_at is None and self.daemon.ready()[0]:
            self.first_ready_at = now
        trader = self.daemon.trader
        assert trader is not None
        for sym in SYMBOLS:
            if not self._bad(sym):
                since = self.bad_since.pop(sym, None)
                if since is not None and sym in self.good_seen:
                    self.recoveries.append(now - since)
                self.good_seen.add(sym)
                continue
            since = self.bad_since.setdefault(sym, now)
            if sym in self.good_seen and now - since >= PULL_AFTER_S:
                self.pull_checks.append(len(trader.oms.open_orders(sym)))


async def _run_case(case: Case, recs: list[Path], tmp: Path) -> dict[str, Any]:
    refs = {ReferenceBooks(p).symbol: ReferenceBooks(p) for p in recs}
    faults = {} if case.kind == "refused_start" else {case.kind: case.n}
    venue_port = free_port()
    server = VenueServer(recs, port=venue_port, speed=SPEED, faults=faults, **case.venue)
    port = free_port()
    cfg = config_from_mapping(_config(case, server.url, server.ws_url("linear"), port, tmp))
    daemon = Daemon(cfg)
    tap = Tap(daemon, refs)
    daemon.handle_frame = tap  # type: ignore[assignment]
    watch = Watch(daemon)
    t0 = time.monotonic()
    venue_up_at = t0
    if case.kind == "refused_start":
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(REFUSED_FOR_S)  # nothing listens on the venue's port meanwhile
        assert not task.done(), task
        venue_up_at = time.monotonic()
        await server.start()
    else:
        await server.start()
        task = asyncio.create_task(daemon.run())
    stats, text = await finish_run(
        server, daemon, task, tap, f"http://127.0.0.1:{port}", sample=watch.sample
    )
    injected = stats["faults"]["injected"].get(case.kind, 0)
    name, label = case.counter
    counted = sum(v for k, v in metric_values(text, name).items() if label in k)
    recovery = max(watch.recoveries, default=0.0)
    if case.kind == "refused_start":
        assert watch.first_ready_at is not None
        recovery = watch.first_ready_at - venue_up_at
    trader = daemon.trader
    assert trader is not None
    fills = _ledger_fills(tmp / "state")
    # no fill lost or doubled: the ledger holds each fill the portfolio applied, once
    assert len({f[0] for f in fills}) == len(fills) == sum(trader.fills_by_side.values())
    resyncs = {
        r: sum(_resyncs(text, r).values())
        for r in ("gap", "restart", "bad_frame", "disconnect", "stale", "frame_error")
    }
    return {
        "mode": case.mode,
        "kind": case.kind,
        "n": case.n,
        "reaction": case.reaction,
        "injected": injected,
        "counter": f"{name}{{{label}}}" if label else name,
        "counted": counted,
        "resyncs": {r: v for r, v in resyncs.items() if v},
        "reconnects": sum(metric_values(text, "mmd_feed_reconnects_total").values()),
        "max_recovery_s": round(recovery, 3),
        "recoveries": len(watch.recoveries),
        "checked": dict(tap.checked),
        "submits": watch.submits,
        "fills": len(fills),
        "submits_while_bad": len(watch.submits_while_bad),
        "pull_checks": len(watch.pull_checks),
        "open_when_pulled": sum(watch.pull_checks),
        "crashed": task.done() and not task.cancelled(),
        "wall_s": round(time.monotonic() - t0, 1),
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_fault_matrix_reaction(cryptofeed_dir: Path, tmp_path: Path, case: Case) -> None:
    with structlog.testing.capture_logs() as logs:
        row = await _run_case(case, _recs(cryptofeed_dir), tmp_path)
    # every failed poll waited before its retry: capped, and at least the 403 floor after a 403
    retries = [(e["error"], e["delay_s"]) for e in logs if e["event"] == "rest_poll_failed"]
    row["rest_retries"] = len(retries)
    row["rest_retry_delay_s"] = [
        min((d for _, d in retries), default=0.0),
        max((d for _, d in retries), default=0.0),
    ]
    print("\nfault_matrix " + json.dumps(row))
    injected, counted = row["injected"], row["counted"]
    if case.kind == "refused_start":
        injected = 1  # the start itself
    assert injected >= 1, row  # the fault did happen
    if case.count == "=":
        assert injected - 1 <= counted <= injected, row
    elif case.count == ">=":
        assert counted >= injected, row
    elif case.count == "gap":
        # a gap landing while its symbol still waits out a resync backoff is no new resync
        assert injected - 2 <= counted <= injected, row
    else:
        assert counted >= 1, row
    resynced = row["resyncs"]
    if case.resync is None:
        assert not resynced, row
    else:
        assert resynced.get(case.resync, 0) >= 1, row
    # never an order on a book the daemon does not trust; none left open on it past a requote
    assert all(0 < d <= max(BACKOFF_MAX_S, FORBIDDEN_S) for _, d in retries), retries
    forbidden = [d for err, d in retries if "HTTP 403" in err]
    assert all(d >= FORBIDDEN_S for d in forbidden), forbidden
    if case.mode == "rest" and case.kind != "refused_start":
        assert retries, row  # the failed polls were retried (after a wait)
    if case.kind == "http403":
        assert forbidden, row
    assert row["submits"] > 0 and row["submits_while_bad"] == 0, row
    assert row["open_when_pulled"] == 0, row
    if case.pulled:
        assert row["pull_checks"] > 0, row  # the bad spell was long enough to see it


# -- replay: deterministic placement, position and PnL against the fault-free run -----------

# kinds placed in the recording that leave every recorded frame in place (extra frames, or a
# frame only padded): the market the daemon sees is unchanged, so position and PnL must be too
REPLAY_EQUAL = ("garbage", "truncate", "duplicate", "retcode", "oversized")
# not checked for equality, and why (they change what the market showed the daemon):
REPLAY_EXCLUDED = {
    "gap": "a delta is lost: the book resyncs, no quotes meanwhile",
    "reorder": "seen as a gap: resync",
    "restart": "the snapshot restarts the book's features: other quotes",
    "types": "refused: the symbol resyncs",
    "disconnect/stall/outage/refused_start": "frames are lost while the connection is down",
    "http5xx/http429/http403/slow": "the retried poll comes later: the daemon sees other data",
}
REPLAY_LINES = 7000  # the first 7,000 frames of the Binance BTCUSDT recording (~2 s a replay)
REPLAY_N = 31
REPLAY_PAD_BYTES = 64 << 10  # `oversized` in a replay: only padded (no socket limits a file)


def _place_faults(rec: Path, out: Path, kind: str | None, n: int) -> tuple[int, int]:
    """Copy the first REPLAY_LINES frames of a recording, placing `kind` (None: none) at every
    n-th book delta as the venue does; returns (deltas, faults placed)."""
    placed = deltas = 0
    with gzip.open(out, "wt") as fh:
        for i, (ts, raw) in enumerate(read_recording(rec)):
            if i == REPLAY_LINES:
                break
            frame = raw.decode()
            extra: list[str] = []
            if b'"topic":"orderbook.' in raw and b'"type":"delta"' in raw:
                deltas += 1
                if kind is not None and deltas % n == 0:
                    placed += 1
                    extra = {
                        "garbage": [GARBAGE_FRAME],
                        "truncate": [frame[: len(frame) // 2]],
                        "duplicate": [],
                        "oversized": [],
                        "retcode": [
                            orjson.dumps(
                                {
                                    "retCode": 10016,
                                    "retMsg": "service restarting",
                                    "result": {},
                                    "retExtInfo": {},
                                    "time": ts // 1_000_000,
                                }
                            ).decode()
                        ],
                    }[kind]
                    if kind == "duplicate":
                        fh.write(f"{ts} {frame}\n")
                    if kind == "oversized":
                        frame = frame[:-1] + " " * (REPLAY_PAD_BYTES - len(frame)) + "}"
            for e in extra:
                fh.write(f"{ts} {e}\n")
            fh.write(f"{ts} {frame}\n")
    return deltas, placed


async def _replay(paths: list[Path], tmp: Path) -> dict[str, Any]:
    cfg = config_from_mapping(
        {
            "feed": {
                "source": "replay",
                "symbols": ["BTCUSDT"],
                "replay": {"paths": [str(p) for p in paths]},
            },
            "metrics": {"port": free_port()},
            "strategy": {"warmup_s": 5.0},
            "state": {"dir": str(tmp / "state")},
        }
    )
    daemon = Daemon(cfg)
    async with asyncio.timeout(120):
        await daemon.run()
    trader = daemon.trader
    assert trader is not None and daemon.replay_done
    pf = trader.portfolio
    return {
        "position_lots": pf.position_lots("BTCUSDT"),
        "fills": sum(trader.fills_by_side.values()),
        "realized_quote": pf.realized_quote,
        "fees_quote": pf.fees_quote,
        "total_pnl_quote": pf.total_pnl_quote,
        "decode_errors": daemon.hub.stats.decode_errors,
        "ledger_fills": _ledger_fills(tmp / "state"),
    }


@pytest.fixture(scope="module")
def fault_free_replay(
    binance_btc_rec: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("clean")
    _place_faults(binance_btc_rec, tmp / binance_btc_rec.name, None, REPLAY_N)
    return asyncio.run(_replay([tmp / binance_btc_rec.name], tmp))


@pytest.mark.parametrize("kind", REPLAY_EQUAL)
async def test_fault_matrix_replay_keeps_position_and_pnl(
    binance_btc_rec: Path, tmp_path: Path, fault_free_replay: dict[str, Any], kind: str
) -> None:
    out = tmp_path / binance_btc_rec.name
    deltas, placed = _place_faults(binance_btc_rec, out, kind, REPLAY_N)
    got = await _replay([out], tmp_path)
    ref = fault_free_replay
    for run, row in ((kind, got), ("none", ref)):
        print(
            "\nfault_matrix_replay "
            + json.dumps(
                {
                    "kind": run,
                    "placed": placed if run == kind else 0,
                    **{k: v for k, v in row.items() if k != "ledger_fills"},
                }
            )
        )
    assert placed == deltas // REPLAY_N and placed >= 50
    # the fault-free run trades and ends with a position: the comparison means something
    assert ref["fills"] >= 20 and ref["position_lots"] != 0
    # the very same fills (ids, prices, sizes, fees, times): none lost, none doubled
    assert got["ledger_fills"] == ref["ledger_fills"]
    for key in ("position_lots", "fills", "realized_quote", "fees_quote", "total_pnl_quote"):
        assert got[key] == ref[key], (key, got[key], ref[key])
    if kind in ("garbage", "truncate"):
        assert got["decode_errors"] == ref["decode_errors"] + placed

"""Hostile venue input against a running daemon, over real loopback sockets.

A small Bybit-shaped venue (aiohttp: REST + one websocket) lives in this test's event loop next
to the daemon (`Daemon`, the object `mmd run` builds). Hypothesis draws frames and REST bodies
with extreme and wrongly typed values in every field (ints near and above 2**63, 1e30, NaN and
infinity literals, negatives, strings, bools, null, empty and deeply nested values). Each batch
is followed by a fresh snapshot and two deltas. Checked after every batch: the daemon's tasks
still run, every frame the codec refuses offline was counted, and the book equals a plain-dict
reference built from that snapshot and those deltas.
"""

from __future__ import annotations

import asyncio
import copy
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from procs import free_port, metric_values
from sizes import scaled

from mmd.app import Daemon
from mmd.config import config_from_mapping
from mmd.feeds.bybit_codec import DecodeError, decode_frame

pytestmark = pytest.mark.slow

SYM = "BTCUSDT"
TICK, LOT = "0.1", "0.001"
T0 = 1_786_310_817_000  # ms; the real capture's start (venue times must lie in 2000..2200)
# hypothesis batches (MMD_TEST_FULL=1: 150 and 60, about 15 s per transport on a loaded 2-core
# machine)
WS_CASES = scaled(50, 150)
REST_CASES = scaled(20, 60)


class Raw:
    """A JSON token written verbatim (NaN, 1e999, ints beyond 64 bits, deep nesting)."""

    def __init__(self, text: str) -> None:
        self.text = text


def dumps(obj: Any) -> bytes:
    """orjson with Raw tokens substituted (orjson cannot write them itself)."""
    raws: list[str] = []

    def sub(x: Any) -> Any:
        if isinstance(x, Raw):
            raws.append(x.text)
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(x, dict):
            return {k: sub(v) for k, v in x.items()}
        if isinstance(x, list):
            return [sub(v) for v in x]
        return x

    out = orjson.dumps(sub(obj))
    for i, text in enumerate(raws):
        out = out.replace(f'"@@RAW{i}@@"'.encode(), text.encode())
    return out


# -- valid templates: what the venue sends, field by field ----------------------------------


def ws_book(typ: str, u: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return {
        "topic": f"orderbook.50.{SYM}",
        "type": typ,
        "ts": T0 + u,
        "cts": T0 + u - 1,
        "data": {"s": SYM, "b": bids, "a": asks, "u": u, "seq": 1000 + u},
    }


def ws_templates() -> list[dict[str, Any]]:
    return [
        ws_book("delta", 7, [["100.0", "1.000"]], [["100.5", "0"]]),
        ws_book("snapshot", 7, [["100.0", "1.000"]], [["100.5", "2.000"]]),
        {
            "topic": f"publicTrade.{SYM}",
            "type": "snapshot",
            "ts": T0,
            "data": [
                {
                    "T": T0,
                    "s": SYM,
                    "S": "Buy",
                    "v": "0.002",
                    "p": "100.1",
                    "L": "PlusTick",
                    "i": "t-1",
                    "BT": False,
                    "seq": 1,
                }
            ],
        },
        {
            "topic": f"kline.1.{SYM}",
            "type": "snapshot",
            "ts": T0,
            "data": [
                {
                    "start": T0 // 60_000 * 60_000,
                    "end": T0 // 60_000 * 60_000 + 59_999,
                    "interval": "1",
                    "open": "100.0",
                    "close": "100.2",
                    "high": "100.4",
                    "low": "99.9",
                    "volume": "3.5",
                    "turnover": "350",
                    "confirm": True,
                    "timestamp": T0,
                }
            ],
        },
        {
            "topic": f"tickers.{SYM}",
            "type": "snapshot",
            "ts": T0,
            "data": {
                "symbol": SYM,
                "markPrice": "100.1",
                "fundingRate": "0.0001",
                "nextFundingTime": str(T0 + 3_600_000),
            },
        },
    ]


def rest_env(result: dict[str, Any]) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "OK", "result": result, "time": T0}


def rest_book(u: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return rest_env(
        {"s": SYM, "b": bids, "a": asks, "ts": T0 + u, "u": u, "seq": 1000 + u, "cts": T0 + u - 1}
    )


def rest_instruments(tick: Any = TICK, lot: Any = LOT) -> dict[str, Any]:
    return rest_env(
        {
            "category": "linear",
            "list": [
                {
                    "symbol": SYM,
                    "status": "Trading",
                    "priceFilter": {"tickSize": tick},
                    "lotSizeFilter": {"qtyStep": lot},
                }
            ],
        }
    )


def rest_templates() -> dict[str, list[dict[str, Any]]]:
    start = T0 // 60_000 * 60_000
    return {
        "orderbook": [rest_book(7, [["100.0", "1.000"]], [["100.5", "2.000"]])],
        "recent-trade": [
            rest_env(
                {
                    "category": "linear",
                    "list": [
                        {
                            "execId": "r-1",
                            "symbol": SYM,
                            "price": "100.1",
                            "size": "0.003",
                            "side": "Sell",
                            "time": str(T0),
                            "isBlockTrade": False,
                        }
                    ],
                }
            )
        ],
        "kline": [
            rest_env(
                {
                    "category": "linear",
                    "symbol": SYM,
                    "list": [
                        [str(start), "100.0", "100.4", "99.9", "100.2", "3.5", "350"],
                        [str(start - 60_000), "99.8", "100.1", "99.7", "100.0", "2.0", "200"],
                    ],
                }
            )
        ],
        "instruments-info": [rest_instruments()],
    }


# -- hostile values ------------------------------------------------------------------------


def _with(template: dict[str, Any], path: tuple[Any, ...], value: Any) -> bytes:
    obj = copy.deepcopy(template)
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return dumps(obj)


def fixed_hostile() -> list[bytes]:
    """Hand-picked non-book frames that once ended the daemon (each alone), always sent."""
    _, _, trade, kline, ticker = ws_templates()
    return [
        _with(trade, ("data", 0, "T"), Raw(str(10**25))),
        _with(trade, ("data", 0, "p"), "1e30"),
        _with(trade, ("data", 0, "T"), Raw(str(2**63))),
        _with(trade, ("data", 0, "s"), [SYM]),
        _with(kline, ("data", 0, "start"), Raw(str(10**20))),
        _with(kline, ("data", 0, "confirm"), "false"),
        _with(kline, ("data", 0, "high"), "1"),
        _with(ticker, ("data", "fundingRate"), "NaN"),
        _with(ticker, ("data", "nextFundingTime"), "9" * 25),
        _with(ticker, ("data", "symbol"), {"a": 1}),
    ]


def _deep(n: int) -> Raw:
    return Raw("[" * n + "]" * n)


INTS = [
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    2**70,
    -(2**63) - 1,
    -(2**63),
    -1,
    0,
    1,
    10**30,
    2**53,
    2**53 + 1,
]
HOSTILE = st.one_of(
    st.sampled_from(INTS).map(lambda n: Raw(str(n))),
    st.integers(-(2**80), 2**80).map(lambda n: Raw(str(n))),
    st.sampled_from(
        [
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
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
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
            "BTCUSDT",
            "ETHUSDT",
            "btc.usdt",
        ]
    ),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-5, 5), max_size=2),
    st.just([]),
    st.just({}),
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path of a JSON value, leaves and containers."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, templates: list[dict[str, Any]]) -> bytes:
    """One template with one to three fields replaced by hostile values (or deleted), or the
    whole frame cut short, or not an object at all."""
    obj = copy.deepcopy(draw(st.sampled_from(templates)))
    how = draw(st.sampled_from(["fields"] * 8 + ["truncate", "root"]))
    if how == "root":
        return dumps(draw(HOSTILE))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(obj)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.integers(0, 5)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(HOSTILE)
    raw = dumps(obj)
    if how == "truncate":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    return raw


def draw_batches(strategy: st.SearchStrategy[list[bytes]], n: int) -> list[list[bytes]]:
    """n batches drawn by hypothesis (generation only: the daemon runs outside hypothesis)."""
    out: list[list[bytes]] = []

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(batch: list[bytes]) -> None:
        out.append(batch)

    collect()
    return out


# -- the reference book and valid traffic ---------------------------------------------------


class DictBook:
    """A plain-dict book: ticks -> lots per side, from Bybit level strings."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def apply(self, bids: list[list[str]], asks: list[list[str]], *, snapshot: bool) -> None:
        if snapshot:
            self.bids.clear()
            self.asks.clear()
        for levels, side in ((bids, self.bids), (asks, self.asks)):
            for px, qty in levels:
                p, q = int(Decimal(px) / Decimal(TICK)), int(Decimal(qty) / Decimal(LOT))
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = q

    def top(self, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return (sorted(self.bids.items(), reverse=True)[:depth], sorted(self.asks.items())[:depth])


def valid_book(rng: random.Random) -> tuple[list[list[str]], list[list[str]]]:
    """A random uncrossed book around 100.0 (best bid < best ask)."""
    mid = rng.randint(900, 1100)
    bids = [
        [f"{(mid - 1 - i) / 10:.1f}", f"{rng.randint(1, 5000) / 1000:.3f}"]
        for i in range(rng.randint(1, 8))
    ]
    asks = [
        [f"{(mid + 1 + i) / 10:.1f}", f"{rng.randint(1, 5000) / 1000:.3f}"]
        for i in range(rng.randint(1, 8))
    ]
    return bids, asks


def passes_http_checks(raw: bytes) -> bool:
    """A body the REST client hands on (JSON object with integer retCode 0); others are
    counted as malformed or rejected requests, not as frames."""
    try:
        env = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(env, dict) and type(env.get("retCode")) is int and env["retCode"] == 0


def refused_offline(raw: bytes) -> bool:
    """True when the codec alone refuses the frame (it must then be counted)."""
    try:
        decode_frame(raw)
    except DecodeError:
        return True
    return False


# -- the venue ------------------------------------------------------------------------------


class HostileVenue:
    """REST endpoints that answer from per-endpoint queues (a valid body when empty) and one
    websocket that acks subscriptions and sends whatever the test pushes."""

    def __init__(self) -> None:
        self.queues: dict[str, list[bytes]] = {k: [] for k in rest_templates()}
        self.defaults = {k: dumps(v[0]) for k, v in rest_templates().items()}
        self.ws: web.WebSocketResponse | None = None
        self.subscribed = asyncio.Event()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v5/market/{endpoint}", self._rest)
        app.router.add_get("/v5/public/linear", self._ws)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _rest(self, request: web.Request) -> web.Response:
        ep = request.match_info["endpoint"]
        q = self.queues.get(ep)
        if q is None:
            return web.Response(status=404)
        body = q.pop(0) if q else self.defaults[ep]
        return web.Response(body=body, content_type="application/json")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        async for msg in ws:
            req = orjson.loads(msg.data)
            if req.get("op") == "ping":
                await ws.send_bytes(
                    orjson.dumps(
                        {"success": True, "ret_msg": "pong", "op": "ping", "req_id": req["req_id"]}
                    )
                )
            else:
                await ws.send_str(
                    orjson.dumps(
                        {
                            "success": True,
                            "ret_msg": "",
                            "op": req["op"],
                            "req_id": req.get("req_id", ""),
                        }
                    ).decode()
                )
                if req.get("op") == "subscribe":
                    self.subscribed.set()
        return ws

    async def send(self, raw: bytes) -> None:
        assert self.ws is not None
        try:
            await self.ws.send_str(raw.decode())
        except UnicodeDecodeError:
            await self.ws.send_bytes(raw)


# -- the daemon -----------------------------------------------------------------------------


def daemon_config(venue: HostileVenue, tmp: Path, *, websocket: bool) -> Any:
    return config_from_mapping(
        {
            "feed": {"symbols": [SYM], "websocket": websocket, "stale_after_s": 30.0},
            "venue": {
                "rest_url": f"http://127.0.0.1:{venue.port}",
                "ws_url": f"ws://127.0.0.1:{venue.port}/v5/public/linear",
            },
            "rest": {
                "orderbook_interval_s": 0.03,
                "backoff_base_s": 0.01,
                "backoff_max_s": 0.05,
                "forbidden_backoff_s": 0.05,
                "max_requests_per_s": 100.0,
                "trades_interval_s": 0.05,
                "kline_interval_s": 0.05,
            },
            "ws": {
                "idle_timeout_s": 60.0,
                "ping_interval_s": 20.0,
                "backoff_base_s": 0.05,
                "backoff_max_s": 0.2,
            },
            "metrics": {"port": free_port()},
            "strategy": {"warmup_s": 0.5},
            "state": {"dir": str(tmp / "state")},
        }
    )


def counted(daemon: Daemon) -> int:
    stats = daemon.hub.stats
    return stats.decode_errors + sum(stats.frame_errors.values())


async def wait_book(
    daemon: Daemon, task: asyncio.Task[None], ref: DictBook, u: int, what: str
) -> None:
    """Until the daemon's book is synced at update id u and equals the reference."""
    want = [[list(lvl) for lvl in side] for side in ref.top(50)]
    try:
        async with asyncio.timeout(15.0):
            while True:
                assert not task.done(), f"daemon ended: {task.exception()!r} ({what})"
                st_ = daemon.hub.states.get(SYM)
                if st_ is not None and st_.sync.synced and st_.book.u == u:
                    got = st_.book.levels(50)
                    held = [[list(lvl) for lvl in got[k]] for k in ("bids", "asks")]
                    assert held == want, what
                    return
                await asyncio.sleep(0.005)
    except TimeoutError:
        st_ = daemon.hub.states.get(SYM)
        raise AssertionError(
            f"book never reached u={u} ({what}); holds u={st_.book.u if st_ else None}"
        ) from None


async def scrape(daemon: Daemon) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{daemon.cfg.metrics.port}/metrics") as r,
    ):
        return await r.text()


# -- the tests ------------------------------------------------------------------------------

WS_BATCHES = st.lists(mutated(ws_templates()), min_size=1, max_size=6)


async def test_hostile_ws_frames_never_end_the_daemon_and_books_recover(tmp_path: Path) -> None:
    batches = [fixed_hostile(), *draw_batches(WS_BATCHES, WS_CASES)]
    venue = HostileVenue()
    await venue.start()
    daemon = Daemon(daemon_config(venue, tmp_path, websocket=True))
    task = asyncio.create_task(daemon.run())
    rng = random.Random(7)
    refused_total = 0
    try:
        async with asyncio.timeout(30.0):
            await venue.subscribed.wait()
        u = 100
        for i, batch in enumerate(batches):
            before = counted(daemon)
            refused = sum(refused_offline(raw) for raw in batch)
            for raw in batch:
                await venue.send(raw)
            # a fresh snapshot then two deltas: the book must equal the dict reference
            u += 1000
            ref = DictBook()
            bids, asks = valid_book(rng)
            ref.apply(bids, asks, snapshot=True)
            await venue.send(dumps(ws_book("snapshot", u, bids, asks)))
            for k in (1, 2):
                # change the size at the best levels (never crosses the book)
                d_b = [[bids[0][0], f"{rng.randint(0, 3000) / 1000:.3f}"]]
                d_a = [[asks[-1][0], f"{rng.randint(1, 3000) / 1000:.3f}"]]
                ref.apply(d_b, d_a, snapshot=False)
                await venue.send(dumps(ws_book("delta", u + k, d_b, d_a)))
            await wait_book(daemon, task, ref, u + 2, f"batch {i}: {batch!r:.300}")
            assert counted(daemon) - before >= refused, f"batch {i} not all counted: {batch!r:.300}"
            refused_total += refused
        assert daemon.tasks_running and not task.done()
        text = await scrape(daemon)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await venue.stop()
    decode = metric_values(text, "mmd_feed_decode_errors_total")
    assert sum(decode.values()) >= refused_total > WS_CASES // 2
    assert "mmd_feed_frame_errors_total" in text or "# TYPE mmd_feed_frame_errors" in text
    print(
        f"ws: {len(batches)} batches, {sum(map(len, batches))} hostile frames, "
        f"{refused_total} refused by the codec, decode_errors={daemon.hub.stats.decode_errors} "
        f"frame_errors={dict(daemon.hub.stats.frame_errors)}"
    )


REST_KINDS = ["orderbook", "recent-trade", "kline"]
REST_BATCHES = st.lists(
    st.sampled_from(REST_KINDS).flatmap(
        lambda k: mutated(rest_templates()[k]).map(lambda raw: (k, raw))
    ),
    min_size=1,
    max_size=6,
)


async def test_hostile_rest_bodies_in_rest_only_mode(tmp_path: Path) -> None:
    batches = draw_batches(REST_BATCHES, REST_CASES)  # type: ignore[arg-type]
    venue = HostileVenue()
    # the first instruments answers are refused (tick 0, NaN lot, negative tick): the daemon
    # asks again instead of exiting or guessing steps
    venue.queues["instruments-info"] += [
        dumps(rest_instruments(tick="0")),
        dumps(rest_instruments(lot=Raw("NaN"))),
        dumps(rest_instruments(tick="-0.1")),
        dumps(rest_instruments(tick="1e-1")),
    ]
    await venue.start()
    daemon = Daemon(daemon_config(venue, tmp_path, websocket=False))
    task = asyncio.create_task(daemon.run())
    rng = random.Random(11)
    try:
        u = 100
        for i, batch in enumerate(batches):
            before = counted(daemon)
            refused = 0
            for kind, raw in batch:  # type: ignore[misc]
                venue.queues[kind].append(raw)
                refused += passes_http_checks(raw) and refused_offline(raw)
            async with asyncio.timeout(15.0):
                while any(venue.queues.values()):
                    assert not task.done(), f"daemon ended: {task.exception()!r}"
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # the last bodies served are handled
            assert counted(daemon) - before >= refused, f"batch {i}: {batch!r:.300}"
            # a fresh snapshot; a REST snapshot older (lower seq) than the book is dropped by
            # rule, so it carries the next seq after anything a hostile body got accepted with
            u += 1000
            seq = max(1000 + u, daemon.hub.states[SYM].sync.last_seq + 1)
            ref = DictBook()
            bids, asks = valid_book(rng)
            ref.apply(bids, asks, snapshot=True)
            body = rest_book(u, bids, asks)
            body["result"]["seq"] = seq
            venue.defaults["orderbook"] = dumps(body)
            await wait_book(daemon, task, ref, u, f"batch {i}: {batch!r:.300}")
        assert daemon.tasks_running and not task.done()
        assert daemon.hub.states[SYM].instrument.tick_size == TICK
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await venue.stop()


REPLAY_CASES = scaled(40, 120)


async def test_hostile_frames_in_a_replayed_recording_never_end_the_run(
    cryptofeed_dir: Path, tmp_path: Path
) -> None:
    """`--feed replay` goes through the same frame handler: a recording with hostile frames
    spliced in (one after every 4th real frame) replays to its end, every frame the codec
    refuses is counted, the book ends equal to a clean replay's, and no real trade is lost."""
    from mmd.feeds.recording import RecordingWriter, read_recording

    (src,) = cryptofeed_dir.glob("bybit_linear_BTCUSDT_*")  # noqa: ASYNC240
    hostile = [raw for batch in draw_batches(WS_BATCHES, REPLAY_CASES) for raw in batch]
    # book frames are left out: a refused one voids the book, and this capture has only one
    # snapshot per symbol (the websocket test above covers book frames and their resync)
    hostile = [raw for raw in hostile if not raw.startswith(b'{"topic":"orderbook')]
    hostile += fixed_hostile()  # popped from the end: these go first
    real = list(read_recording(src))
    out = tmp_path / src.name
    refused = 0
    with RecordingWriter(out) as w:
        for i, (ts, raw) in enumerate(real):
            w.write(ts, raw)
            if i % 4 == 3 and hostile:
                extra = hostile.pop()
                refused += refused_offline(extra)
                w.write(ts, extra)
    cfg = config_from_mapping(
        {
            "feed": {"source": "replay", "symbols": [SYM], "replay": {"paths": [str(out)]}},
            "metrics": {"port": free_port()},
            "state": {"dir": str(tmp_path / "state")},
        }
    )
    clean = Daemon(msgspec_replace_paths(cfg, src, tmp_path / "clean_state"))
    await clean.run()
    daemon = Daemon(cfg)
    await daemon.run()  # returns at the recording's end; an escaped exception fails the test
    assert daemon.replay_done and refused > 20
    assert daemon.hub.stats.decode_errors >= refused
    st_, ref = daemon.hub.states[SYM], clean.hub.states[SYM]
    assert st_.sync.synced and st_.book.levels(50) == ref.book.levels(50)
    # every real trade is kept (accepted hostile trades can only add to them)
    assert ref.trades.total > 0 and st_.trades.total >= ref.trades.total


def msgspec_replace_paths(cfg: Any, path: Path, state_dir: Path) -> Any:
    """cfg replaying `path` instead, journaling into state_dir."""
    import msgspec

    feed = msgspec.structs.replace(
        cfg.feed, replay=msgspec.structs.replace(cfg.feed.replay, paths=[str(path)])
    )
    state = msgspec.structs.replace(cfg.state, dir=str(state_dir))
    metrics = msgspec.structs.replace(cfg.metrics, port=free_port())
    return msgspec.structs.replace(cfg, feed=feed, state=state, metrics=metrics)

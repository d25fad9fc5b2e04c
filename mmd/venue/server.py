"""`mmd serve-venue`: a loopback venue speaking the Bybit V5 PUBLIC protocol over recordings.

Wiring only: builds the catalog, markets, fan-out, views, REST API and replay, binds the port
and runs the `outage` fault; the behaviour lives in those modules. It never talks to the
internet and holds no trading logic.

Endpoints: Bybit `GET /v5/public/{linear|spot|inverse}` (websocket, `ws.py`),
`GET /v5/market/{instruments-info,orderbook,kline,recent-trade,time}` (`rest.py`); not Bybit
(introspection for tests and operators): `GET /venue/stats`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web

from mmd.clock import Clock, LiveClock
from mmd.errors import ConfigError
from mmd.feeds.recording import expand_paths
from mmd.venue.catalog import FileScan, market_specs, scan_file
from mmd.venue.faults import (
    OUTAGE_S,
    OVERSIZED_FRAME_BYTES,
    SLOW_RESPONSE_S,
    FaultPlan,
    parse_faults,
)
from mmd.venue.market import MS_NS, Market, VenueClock
from mmd.venue.replay import Replay
from mmd.venue.rest import RestApi
from mmd.venue.views import BookViews
from mmd.venue.ws import Connection, Fanout

# a lazy proxy: the configuration made later by the CLI applies (`.bind()` here would freeze it)
log = structlog.get_logger(component="venue")


class VenueServer:
    """A loopback Bybit V5 public venue replaying recordings (see the module docstrings).

    Attributes:
        port: the bound port (real after `start()`, also when constructed with port 0).
    """

    def __init__(
        self,
        paths: Iterable[str | Path],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        faults: dict[str, int] | None = None,
        keep_timestamps: bool = False,
        idle_timeout_s: float = 600.0,
        max_queue_frames: int = 20_000,
        clock: Clock | None = None,
        oversized_frame_bytes: int = OVERSIZED_FRAME_BYTES,
        slow_response_s: float = SLOW_RESPONSE_S,
        outage_s: float = OUTAGE_S,
    ) -> None:
        """Configure the venue; nothing is read or bound before `start()`.

        Args:
            paths: recording files and/or directories of `*.rec.gz`.
            host: interface to bind.
            port: TCP port; 0 picks a free one.
            speed: replay speed, venue seconds per real second (> 0).
            faults: {kind: N} as returned by `parse_faults`.
            keep_timestamps: serve the recorded timestamps instead of re-basing them.
            idle_timeout_s: drop a websocket client that sends nothing for this long.
            max_queue_frames: abort a websocket client whose send queue grows past this.
            clock: wall and monotonic time source (default: the real clock).
            oversized_frame_bytes: size of a frame made by the `oversized` fault.
            slow_response_s: delay of an answer made by the `slow` fault.
            outage_s: how long an `outage` fault refuses connections.

        Raises:
            ConfigError: speed <= 0, an unknown fault kind or N <= 0, no paths, a fault
                parameter out of range.
        """
        self._paths = [Path(p) for p in paths]
        if not self._paths:
            raise ConfigError("serve-venue: no recordings given")
        if not speed > 0:
            raise ConfigError(f"serve-venue: --speed must be > 0, got {speed}")
        self._faults = FaultPlan(
            dict(faults or {}),
            oversized_frame_bytes=oversized_frame_bytes,
            slow_response_s=slow_response_s,
            outage_s=outage_s,
        )
        self._host = host
        self.port = port
        self._clock = VenueClock(clock or LiveClock(), speed, keep_timestamps)
        self._site: web.TCPSite | None = None
        self._down = False  # an `outage` is under way: nothing listens, connections are cut
        self._source_books = 0  # source book frames applied (the `outage` counter)
        self._files: list[FileScan] = []
        self._markets: dict[tuple[str, str], Market] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fanout = Fanout(
            self._markets,
            spawn=self._spawn,
            on_book_subscribed=self._on_book_subscribed,
            is_down=self._is_down,
            idle_timeout_s=idle_timeout_s,
            max_queue_frames=max_queue_frames,
        )
        self._views = BookViews(self._fanout, self._faults, self._clock)
        self._rest = RestApi(self._markets, self._clock, self._faults, self._is_down)
        self._replay: Replay | None = None
        self._runner: web.AppRunner | None = None
        self._done = asyncio.Event()
        self._replay_error: BaseException | None = None
        self._started = False
        self._stopped = False
        self._events_total = 0

    # ---- public API ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The HTTP base URL, e.g. `http://127.0.0.1:8800` (the REST host to configure)."""
        return f"http://{self._host_for_url()}:{self.port}"

    def ws_url(self, category: str = "linear") -> str:
        """The public websocket URL of a category, e.g. `ws://127.0.0.1:8800/v5/public/linear`."""
        return f"ws://{self._host_for_url()}:{self.port}/v5/public/{category}"

    @property
    def symbols(self) -> int:
        """Number of (category, symbol) markets served (after `start()`)."""
        return len(self._markets)

    @property
    def events_total(self) -> int:
        """Number of recorded events the replay will apply (after `start()`)."""
        return self._events_total

    @property
    def finished(self) -> bool:
        """True once every recorded event has been applied."""
        return self._replay is not None and self._replay.finished

    async def start(self) -> None:
        """Load the recordings, bind the port and start the replay clock.

        Raises:
            ConfigError: a path that does not exist, no recordings, a file without frames.
            OSError: the port cannot be bound.
        """
        if self._started:
            raise RuntimeError("VenueServer.start() called twice")
        self._started = True
        files = expand_paths(self._paths)
        for p in files:
            if not p.is_file():
                raise ConfigError(f"serve-venue: no such recording: {p}")
        if not files:
            raise ConfigError(f"serve-venue: no recordings in {', '.join(map(str, self._paths))}")
        self._files = await asyncio.to_thread(
            lambda: [scan_file(p, i) for i, p in enumerate(files)]
        )
        specs = await asyncio.to_thread(market_specs, self._files)
        for spec in specs:
            self._markets[(spec.category, spec.symbol)] = Market(spec)
        if not self._markets:
            raise ConfigError("serve-venue: the recordings hold no symbol to serve")
        await asyncio.to_thread(Market.warm_up)
        self._events_total = sum(f.events for f in self._files)
        self._clock.t0_ns = min(f.first_ts_ns for f in self._files)
        self._replay = Replay(
            self._files,
            self._markets,
            self._clock,
            self._fanout,
            self._views,
            self._on_source_book,
        )

        app = web.Application()
        app.router.add_get("/v5/public/{category}", self._fanout.handle)
        self._rest.add_routes(app)
        app.router.add_get("/venue/stats", self._stats_handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self._host, self.port)
        await site.start()
        self._site = site
        self.port = int(runner.addresses[0][1])
        self._clock.start_mono_ns = self._clock.clock.mono_ns()
        self._spawn(self._run_replay(), "venue.replay")

    async def stop(self) -> None:
        """Stop the replay, close every connection (1001 going away) and unbind."""
        if self._stopped:
            return
        self._stopped = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._fanout.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        self._done.set()

    async def wait_finished(self) -> None:
        """Wait until the replay has applied every event.

        Raises:
            RuntimeError: the replay task failed (its exception is the cause).
        """
        await self._done.wait()
        if self._replay_error is not None:
            raise RuntimeError("venue replay failed") from self._replay_error

    def stats(self) -> dict[str, Any]:
        """What `GET /venue/stats` answers (not part of the Bybit API).

        Keys: started, finished, speed, keep_timestamps, venue_time_ms (keeps advancing after
        the end), replay_time_ms (stamp of the last applied event), start_time_ms,
        events_applied/events_total, bad_frames/ignored_frames (recorded frames skipped),
        markets["<category>:<SYMBOL>"] (source seq, u = source book frames applied, best
        bid/ask, levels, source stream, trades, and per subscribed view its u, deltas and
        subscribers), faults.configured/faults.injected (per kind), connections
        (open, total, dropped_slow), frames_sent, rest_requests.
        """
        markets = {
            f"{cat}:{sym}": m.stats(self._fanout.subscriber_count)
            for (cat, sym), m in sorted(self._markets.items())
        }
        replay = self._replay
        fanout = self._fanout
        return {
            "venue": "mmd serve-venue (not part of the Bybit API)",
            "started": self._started,
            "finished": self.finished,
            "speed": self._clock.speed,
            "keep_timestamps": self._clock.keep,
            "venue_time_ms": self._clock.venue_time_ns() // MS_NS,
            "replay_time_ms": (replay.replay_ts_ns if replay else 0) // MS_NS,
            "start_time_ms": self._clock.t0_ns // MS_NS,
            "events_applied": replay.events_applied if replay else 0,
            "events_total": self._events_total,
            "bad_frames": replay.bad_frames if replay else 0,
            "ignored_frames": replay.ignored_frames if replay else 0,
            "markets": markets,
            "faults": {
                "configured": dict(self._faults.configured),
                "injected": dict(self._faults.injected),
            },
            "connections": {
                "open": len(fanout.conns),
                "total": fanout.conns_total,
                "dropped_slow": fanout.conns_dropped_slow,
            },
            "frames_sent": fanout.frames_sent,
            "rest_requests": self._rest.requests,
        }

    # ---- wiring ----------------------------------------------------------------------------

    def _host_for_url(self) -> str:
        return f"[{self._host}]" if ":" in self._host else self._host

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _is_down(self) -> bool:
        return self._down

    def _on_book_subscribed(self, c: Connection, m: Market, depth: int, topic: str) -> None:
        self._views.subscribe(c, m, depth, topic)

    async def _run_replay(self) -> None:
        replay = self._replay
        assert replay is not None
        try:
            await replay.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._replay_error = exc
            log.error("venue_replay_failed", exc_info=True)
            raise
        finally:
            self._done.set()

    async def _stats_handler(self, request: web.Request) -> web.Response:
        """`GET /venue/stats`: replay progress, per-symbol state, faults, connections."""
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")

    # ---- the `outage` fault ----------------------------------------------------------------

    def _on_source_book(self) -> None:
        self._source_books += 1
        if self._faults.outage_due(self._source_books) and not self._down and self._site:
            self._begin_outage()

    def _begin_outage(self) -> None:
        """The `outage` fault, at once: cut every connection after what is queued."""
        self._faults.count("outage")
        self._down = True
        self._fanout.abort_all()
        self._spawn(self._run_outage(), "venue.outage")

    async def _run_outage(self) -> None:
        """Stop listening for `outage_s`, then listen on the same port again."""
        runner, site = self._runner, self._site
        assert runner is not None and site is not None
        log.info("venue_outage_started", seconds=self._faults.outage_s)
        try:
            await site.stop()
            await asyncio.sleep(self._faults.outage_s)
            site = web.TCPSite(runner, self._host, self.port)
            await site.start()
            self._site = site
        finally:
            self._down = False
        log.info("venue_outage_ended")


async def serve(
    paths: Iterable[str | Path],
    host: str = "127.0.0.1",
    port: int = 8800,
    speed: float = 1.0,
    faults_spec: str | None = "",
    keep_timestamps: bool = False,
) -> None:
    """`mmd serve-venue`: run a venue until cancelled, SIGTERM or SIGINT, then stop cleanly.

    Prints one line `mmd venue listening on http://HOST:PORT (N symbols, M events)` to stdout
    (flushed) once bound; tests and scripts read the port from it.

    Args:
        paths: recording files and/or directories.
        host: interface to bind.
        port: TCP port (0 = any free port).
        speed: replay speed (> 0).
        faults_spec: the `--faults` value (see `parse_faults`).
        keep_timestamps: serve recorded timestamps instead of re-basing them to now.

    Raises:
        ConfigError: bad arguments (unknown fault, speed <= 0, missing recordings).
        RuntimeError: the replay failed.
    """
    server = VenueServer(
        paths,
        host=host,
        port=port,
        speed=speed,
        faults=parse_faults(faults_spec),
        keep_timestamps=keep_timestamps,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread / not supported: rely on cancellation
    stop_wait = asyncio.create_task(stop.wait(), name="venue.serve.stop")
    done_wait: asyncio.Task[None] | None = None
    try:
        await server.start()
        sys.stdout.write(
            f"mmd venue listening on {server.url} "
            f"({server.symbols} symbols, {server.events_total} events)\n"
        )
        sys.stdout.flush()
        log.info(
            "venue_started",
            url=server.url,
            symbols=server.symbols,
            events=server.events_total,
            speed=speed,
        )
        done_wait = asyncio.create_task(server.wait_finished(), name="venue.serve.replay")
        done, _ = await asyncio.wait({stop_wait, done_wait}, return_when=asyncio.FIRST_COMPLETED)
        if done_wait in done:
            done_wait.result()  # raises when the replay failed
            await stop_wait
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        pending = [t for t in (stop_wait, done_wait) if t is not None]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await server.stop()
        log.info("venue_stopped")

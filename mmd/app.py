"""Composition root: builds and wires every component, runs them in one TaskGroup, shuts down.

The only module that names concrete classes. Commands `run` and `record` start here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from mmd.clock import Clock, LiveClock, ManualClock
from mmd.config import AppConfig
from mmd.errors import ConfigError
from mmd.feed_tasks import bybit_jobs, run_replay_feed, run_synthetic
from mmd.feeds.bybit_ws import BybitStream
from mmd.feeds.recorder import FrameRecorder
from mmd.feeds.recording import file_sha256
from mmd.feeds.replay import select_recordings
from mmd.frames import FrameHandler, QuoteScheduler
from mmd.kernels.warmup import warmup
from mmd.logs import get_logger
from mmd.market.hub import MarketHub
from mmd.metrics import HttpServer, LoopMonitor, Metrics
from mmd.quote_models import load_quote_models
from mmd.sim.exchange import SimExchange
from mmd.sim.latency import FeedDerivedLatency, build_latency
from mmd.strategy.hedge import PortfolioHedge
from mmd.trading.ledger import Ledger, RecordingDigest, RunIdentity, ledger_path
from mmd.trading.orders import Orders
from mmd.trading.portfolio import Portfolio
from mmd.trading.risk import RiskGate
from mmd.trading.trader import Trader
from mmd.trading_log import TradingLog

_Job = tuple[str, Coroutine[Any, Any, None]]  # a task's name and its coroutine


class Daemon:
    """Everything `mmd run` (and `mmd record`) runs, wired from one AppConfig."""

    def __init__(
        self, cfg: AppConfig, *, record_dir: str | None = None, serve_http: bool = True
    ) -> None:
        self.cfg = cfg
        self.log = get_logger("app")
        self.clock: Clock = ManualClock() if cfg.feed.source == "replay" else LiveClock()
        self.metrics = Metrics()
        self.hub = MarketHub(cfg.feed.symbols, cfg.market, features_cfg=cfg.features)
        self.metrics.bind_hub(self.hub)
        rec_dir = record_dir or (cfg.record.dir if cfg.record.enabled else None)
        venue = "bybit" if cfg.feed.source == "bybit" else cfg.feed.source
        self.recorder = (
            FrameRecorder(rec_dir, venue, cfg.feed.category, cfg.record.rotate_s)
            if rec_dir
            else None
        )
        self.book_updated = asyncio.Event()
        self.trader = None if record_dir else build_trader(cfg, self.hub, ledger=True)
        self.trading_log = TradingLog(self.trader) if self.trader is not None else None
        if self.trader is not None:
            self.trader.models = load_quote_models(
                cfg, self.trader, self.clock.now_ns(), metrics=self.metrics
            )
            if cfg.hedge.enabled:
                self.trader.hedge = PortfolioHedge(cfg.hedge)
        replay = cfg.feed.source == "replay"
        self.scheduler = None
        if self.trader is not None and not replay:
            self.scheduler = QuoteScheduler(
                self.trader,
                self.hub,
                self.clock,
                self.metrics,
                every_frames=cfg.strategy.backlog_quote_every_frames,
                every_s=cfg.strategy.backlog_quote_every_s,
            )
            self.scheduler.wake = self.book_updated.set
            self.scheduler.trading_log = self.trading_log
        self.handle_frame = FrameHandler(
            self.hub,
            self.recorder,
            self.scheduler,
            self.trader,
            quote_inline=replay,
            trading_log=self.trading_log,
        )
        if self.trader is not None:
            self.metrics.bind_trader(self.trader)
            if replay:
                n = self.trader.start_catchup()
                if n:
                    self.log.info("replay_resuming", journaled_items=n)
        self.start_ns = self.clock.now_ns()
        self.serve_http = serve_http
        self.streams: list[BybitStream] = []
        self.tasks_running = False
        self.replay_done = False
        self._http: HttpServer | None = None
        self.metrics.up_since.set(time.time())

    # -- health ----------------------------------------------------------------------------

    def healthy(self) -> tuple[bool, dict[str, Any]]:
        """/healthz: alive and its tasks run."""
        return self.tasks_running, {"tasks_running": self.tasks_running}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """/readyz: every symbol's book synced and fresh, and its strategy warmed up."""
        reasons = self.hub.readiness()
        strategies = self.trader.strategies if self.trader is not None else {}
        for sym in self.cfg.feed.symbols:
            strat = strategies.get(sym)
            if sym not in reasons and (strat is None or not strat.gate.ready):
                reasons[sym] = f"warming_up:{strat.gate.state if strat else 'waiting'}"
        halted = self.trader is not None and self.trader.risk.halted
        detail: dict[str, Any] = {"not_ready": reasons}
        if halted:
            assert self.trader is not None
            detail["halted"] = self.trader.risk.halt_reason
        return not reasons and not halted and self.tasks_running, detail

    def book_json(self, symbol: str, depth: int) -> dict[str, Any] | None:
        """/debug/book/{symbol}: the book as the daemon holds it (ticks and lots)."""
        st = self.hub.states.get(symbol)
        if st is None:
            return None
        out = st.book.levels(depth)
        out.update(
            symbol=symbol,
            synced=st.sync.synced,
            stale=st.stale,
            tick_size=st.instrument.tick_size,
            lot_size=st.instrument.lot_size,
        )
        return out

    # -- run -------------------------------------------------------------------------------

    async def _start_http(self) -> None:
        mc = self.cfg.metrics
        self._http = HttpServer(
            self.metrics,
            healthy=self.healthy,
            ready=self.ready,
            book=self.book_json if mc.debug else None,
            request_timeout_s=mc.request_timeout_s,
            max_connections=mc.max_connections,
        )
        try:
            await self._http.start(mc.host, mc.port)
        except OSError as exc:
            raise ConfigError(
                f"metrics.port: cannot listen on {mc.host}:{mc.port} ({exc.strerror})"
            ) from None
        self.log.info("http_started", host=mc.host, port=self._http.port, debug=mc.debug)

    async def run(self, duration_s: float | None = None) -> None:
        """Run until cancelled (or for duration_s, or until a replay ends)."""
        # compile (or load from NUMBA_CACHE_DIR) every kernel before the first frame arrives
        self.log.info("kernels_warmed_up", seconds=round(warmup(offline=False), 3))
        if self.serve_http:
            await self._start_http()
        try:
            async with aiohttp.ClientSession() as session:
                jobs = self._build_jobs(session)
                async with asyncio.TaskGroup() as tg:
                    self.tasks_running = True
                    for name, job in jobs:
                        tg.create_task(job, name=name)
                    if duration_s is not None:
                        tg.create_task(self._stop_after(duration_s), name="app.duration")
        except* _Stop:
            pass
        finally:
            self.tasks_running = False
            if self.recorder is not None:
                self.recorder.close()
            if self.trader is not None and self.trader.ledger is not None:
                # on the clock the run's snapshots were taken on (exchange time for a replay)
                _final_snapshot(
                    self.trader,
                    self.trader.last_exch_ns
                    if self.cfg.feed.source == "replay"
                    else self.clock.now_ns(),
                )
                self.trader.ledger.close()
            if self._http is not None:
                await self._http.close()
            self.log.info("daemon_stopped")

    async def _stop_after(self, duration_s: float) -> None:
        await asyncio.sleep(duration_s)
        raise _Stop

    def _build_jobs(self, session: aiohttp.ClientSession) -> list[_Job]:
        src = self.cfg.feed.source
        jobs: list[_Job] = [
            ("app.watchdog", self._watchdog()),
            ("strategy.quoter", self._quoter()),
            ("app.loop_monitor", LoopMonitor(self.metrics).run()),
        ]
        if src == "bybit":
            jobs.append(("feed.bybit", self._bybit(session)))
        elif src == "synthetic":
            jobs.append(("feed.synthetic", run_synthetic(self)))
        else:
            jobs.append(("feed.replay", self._replay()))
        return jobs

    async def _bybit(self, session: aiohttp.ClientSession) -> None:
        """Load instruments (retrying while the venue is unreachable), then run the feeds."""
        jobs = await bybit_jobs(self, session)
        async with asyncio.TaskGroup() as tg:
            for name, job in jobs:
                tg.create_task(job, name=name)

    async def _replay(self) -> None:
        await run_replay_feed(self)
        raise _Stop

    async def _quoter(self) -> None:
        """The requote timer (every requote_interval_s without a decision), and the flush of
        books a backlog left unquoted; the reader quotes everything else inline."""
        sched = self.scheduler
        if sched is None:
            return  # recording only, or a replay (it quotes inline, on recorded time)
        interval = self.cfg.strategy.requote_interval_s
        quiet_ns = int(interval * 1e9)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self.book_updated.wait()
            self.book_updated.clear()
            sched.tick(quiet_ns)

    async def _watchdog(self) -> None:
        stale_s = self.cfg.feed.stale_after_s
        while True:
            await asyncio.sleep(min(1.0, stale_s / 4))
            if self.cfg.feed.source == "replay":
                continue  # a replayed book is never stale on the wall clock
            now_ns = self.clock.now_ns()
            for sym in self.hub.check_stale(now_ns, stale_s):
                self.metrics.stale_events.labels(sym).inc()
                self.log.warning("book_went_stale", symbol=sym, stale_after_s=stale_s)
                for stream in self.streams:
                    stream.request_resync(sym)
            book_recv_ns = {s: st.last_book_recv_ns for s, st in self.hub.states.items()}
            for stream in self.streams:
                stream.reconnect_if_stalled(book_recv_ns, now_ns, stale_s)


def _final_snapshot(trader: Trader, ts_ns: int) -> None:
    """A last portfolio snapshot at shutdown, so the ledger's last snapshot holds every fill
    (none while a resumed replay is still re-checking, or before the restore)."""
    if trader.ledger is None or not trader.restored or trader.catching_up():
        return
    # a full disk or a locked file must not stop the shutdown: the journal is already complete
    with contextlib.suppress(sqlite3.Error, OSError):
        trader.ledger.snapshot(trader.portfolio.snapshot(ts_ns))


def run_identity(cfg: AppConfig) -> RunIdentity:
    """What a ledger belongs to: the feed source, category, symbols and, for a replay, the
    recordings it replays (name and sha256 of their bytes)."""
    recordings: list[RecordingDigest] = []
    if cfg.feed.source == "replay":
        for f in select_recordings(cfg.feed.replay.paths, cfg.feed.category, cfg.feed.symbols):
            recordings.append(RecordingDigest(name=Path(f).name, sha256=file_sha256(f)))
    return RunIdentity(
        source=cfg.feed.source,
        category=cfg.feed.category,
        symbols=sorted(cfg.feed.symbols),
        recordings=recordings,
    )


def open_ledger(cfg: AppConfig) -> Ledger:
    """The daemon's ledger, `<[state] dir>/<source>/ledger.sqlite`, checked against this run's
    identity (StateError, exit 2, when it belongs to another run)."""
    return Ledger.open(ledger_path(cfg.state.dir, cfg.feed.source), identity=run_identity(cfg))


def build_trader(cfg: AppConfig, hub: MarketHub, *, ledger: bool) -> Trader:
    """The paper-trading stack for a daemon (ledger=True) or a backtest (ledger=False)."""
    latency = build_latency(cfg.exchange)
    feed = latency if isinstance(latency, FeedDerivedLatency) else FeedDerivedLatency(-1, -1)
    exchange = SimExchange(
        cfg.exchange,
        {},
        entry_latency_ns=latency.entry_latency_ns(),
        cancel_latency_ns=latency.cancel_latency_ns(),
    )
    return Trader(
        hub,
        exchange,
        latency,
        feed,
        Orders(),
        Portfolio(),
        RiskGate(cfg.risk, cfg.strategy.max_position, {}),
        cfg.strategy,
        open_ledger(cfg) if ledger else None,
        snapshot_interval_s=cfg.state.snapshot_interval_s,
        derive_latency=isinstance(latency, FeedDerivedLatency),
        funding=cfg.exchange.funding,
    )


class _Stop(Exception):
    """Raised inside the TaskGroup to end the run cleanly."""


async def run_until_signalled(main: Callable[[], Awaitable[None]]) -> None:
    """Run main(); SIGTERM/SIGINT cancel it and let it clean up."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(main())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_daemon(cfg: AppConfig, *, exit_process: bool = False) -> None:
    """`mmd run`.

    Args:
        cfg: the config.
        exit_process: end the process as soon as the daemon has stopped cleanly (ledger
            closed, output flushed), with status 0. The interpreter's own teardown of the
            compiled kernels takes ~3 s on an idle core and far longer on a busy one, which a
            SIGTERM from a supervisor with a deadline must not wait for.
    """
    _run(lambda: Daemon(cfg).run())
    if exit_process:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def record(cfg: AppConfig, out_dir: str, duration_s: float | None) -> list[Path]:
    """`mmd record`: the configured feed's raw frames into out_dir; returns the files."""
    daemon = Daemon(cfg, record_dir=out_dir, serve_http=False)
    _run(lambda: daemon.run(duration_s))
    assert daemon.recorder is not None
    return daemon.recorder.paths


def _run(main: Callable[[], Awaitable[None]]) -> None:
    try:
        import uvloop

        runner: Callable[[Awaitable[None]], None] = uvloop.run  # type: ignore[assignment]
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep asyncio as fallback
        runner = asyncio.run  # type: ignore[assignment]
    runner(run_until_signalled(main))

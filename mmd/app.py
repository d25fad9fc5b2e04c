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
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from mmd.clock import Clock, LiveClock, ManualClock
from mmd.config import AppConfig
from mmd.errors import ConfigError, PermanentRequestError
from mmd.feeds.bybit_codec import (
    BookMsg,
    InstrumentsMsg,
    KlineMsg,
    Message,
    TradesMsg,
)
from mmd.feeds.bybit_rest import BybitRest
from mmd.feeds.bybit_ws import BybitStream
from mmd.feeds.recorder import FrameRecorder
from mmd.feeds.recording import file_sha256
from mmd.feeds.replay import merged_frames, run_replay, select_recordings
from mmd.feeds.synthetic import SyntheticMarket
from mmd.kernels.warmup import warmup
from mmd.logs import get_logger
from mmd.market.hub import MarketHub
from mmd.metrics import HttpServer, LoopMonitor, Metrics
from mmd.sim.exchange import SimExchange
from mmd.sim.latency import FeedDerivedLatency, build_latency
from mmd.strategy.hedge import PortfolioHedge
from mmd.trading.ledger import Ledger, RecordingDigest, RunIdentity, ledger_path
from mmd.trading.oms import OrderManager
from mmd.trading.portfolio import Portfolio
from mmd.trading.risk import RiskGate
from mmd.trading.trader import Trader

if TYPE_CHECKING:
    from mmd.learn.runtime import LoadedModels
from mmd.trading_log import TradingLog

# Exceptions a hostile or corrupt frame can provoke while it is handled: absorbed at the frame
# boundary (counted, logged once per kind, the symbol resynced). Anything else, InvariantViolation
# above all (illegal state = crash), still ends the daemon.
_INPUT_ERRORS = (ArithmeticError, ValueError, TypeError, KeyError, IndexError)
_FRAME_HEAD = 200  # bytes of a frame shown in the log


class FrameHandler:
    """Every frame, live or replayed: decode once, record, apply to the hub, then let the
    paper exchange see the market (fills are journaled and applied inside the trader).

    Returns the symbols the feed must resync (the websocket client resubscribes them). With
    `quote_inline` (replay) the strategy requotes right after every book frame, on the frame's
    time, which makes a replay deterministic; live, `after_frame(symbol)` is called after every
    frame (symbol = the book it changed, else None) and the QuoteScheduler decides when to quote.

    It is the crash barrier of the feed tasks: an input-caused exception while one frame is
    handled is counted in `hub.stats.frame_errors[stage]`, logged once per (stage, kind) with
    the frame's head, resyncs that frame's symbol, and the next frame is handled as usual.
    """

    def __init__(
        self,
        hub: MarketHub,
        recorder: FrameRecorder | None = None,
        after_frame: Callable[[str | None], None] | None = None,
        trader: Trader | None = None,
        *,
        quote_inline: bool = False,
        trading_log: TradingLog | None = None,
    ) -> None:
        self.hub = hub
        self.trading_log = trading_log
        self.recorder = recorder
        self.after_frame = after_frame or (lambda _symbol: None)
        self.trader = trader
        self.quote_inline = quote_inline
        self.log = get_logger("feed.frames")
        self._logged: set[tuple[str, str]] = set()

    def __call__(self, raw: bytes, ts_recv_ns: int) -> list[str]:
        hub = self.hub
        stage, msg = "decode", None
        try:
            errors = hub.stats.decode_errors
            msg, refused = hub.decode(raw)
            if msg is None:
                if hub.stats.decode_errors != errors:
                    why = hub.stats.last_refusal
                    # kind = the rule's field (the reason's first word): one log line each
                    self._log_once(
                        "refused",
                        why.split(" ", 1)[0],
                        raw,
                        refused[0].symbol if refused else None,
                        reason=why[:200],
                    )
                return [r.symbol for r in refused]
            if self.recorder is not None:
                stage = "record"
                self._record(msg, raw, ts_recv_ns)
            stage = "hub"
            resyncs = [r.symbol for r in hub.on_message(msg, ts_recv_ns)]
            trader = self.trader
            if trader is not None:
                stage = "trader"
                trader.on_message(msg, ts_recv_ns)
            if isinstance(msg, BookMsg):
                if self.quote_inline and trader is not None:
                    _restore_logged(self.trading_log)
                    trader.quote(ts_recv_ns, [msg.symbol])
                    trader.maybe_snapshot(trader.last_exch_ns)
                else:
                    st = hub.states.get(msg.symbol)
                    applied = st is not None and st.last_book_recv_ns == ts_recv_ns
                    stage = "quote"
                    self.after_frame(msg.symbol if applied and not resyncs else None)
            elif not self.quote_inline:
                stage = "quote"
                self.after_frame(None)
            if trader is not None:
                _log_trading(self.trading_log, ts_recv_ns)
            return resyncs
        except _INPUT_ERRORS as exc:
            hub.stats.frame_errors[stage] += 1
            symbol = getattr(msg, "symbol", None)
            self._log_once(stage, type(exc).__name__, raw, symbol, error=str(exc)[:200])
            return [r.symbol for r in hub.resync_symbol(symbol, "frame_error")]

    def _log_once(
        self, stage: str, kind: str, raw: bytes | str, symbol: str | None, **kw: Any
    ) -> None:
        if (stage, kind) in self._logged:
            return
        self._logged.add((stage, kind))
        head = raw[:_FRAME_HEAD]
        text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
        self.log.warning(
            "frame_refused" if stage == "refused" else "frame_error",
            stage=stage,
            kind=kind,
            symbol=symbol,
            head=text,
            **kw,
        )

    def _record(self, msg: Message, raw: bytes, ts_recv_ns: int) -> None:
        rec = self.recorder
        assert rec is not None
        if isinstance(msg, BookMsg | TradesMsg | KlineMsg):
            if msg.symbol in self.hub.symbols:
                rec.write(msg.symbol, raw, ts_recv_ns)
        elif isinstance(msg, InstrumentsMsg):
            for info in msg.instruments:
                if info.symbol in self.hub.symbols:
                    rec.write(info.symbol, raw, ts_recv_ns, header=True)


class QuoteScheduler:
    """Decides WHEN the trader quotes, live (the trader decides WHAT).

    After a book frame, when the feed holds no newer frame (`backlog()` is False), the symbol is
    quoted at once, in the reader's own call: no task hand-off. Under a backlog the changed
    symbols are coalesced (the latest book wins) and quoted once every `every_frames` book
    frames or every `every_s` seconds, whichever comes first, so a flood delays decisions but
    never starves them; when the backlog drains, the next frame quotes what is left. The
    quoter task adds the requote timer for a quiet market (`tick()`).

    Every decision that reacted to a new book is counted by trigger (`decisions`) and observed
    in `mmd_tick_to_quote_seconds` from the frame's receive stamp and from its exchange stamp.
    """

    TRIGGERS = ("inline", "backlog", "timer")

    def __init__(
        self,
        trader: Trader,
        hub: MarketHub,
        clock: Clock,
        metrics: Metrics,
        *,
        every_frames: int,
        every_s: float,
    ) -> None:
        self.trader = trader
        self.hub = hub
        self.clock = clock
        self.every_frames = every_frames
        self.every_ns = int(every_s * 1e9)
        self.backlog: Callable[[], bool] = lambda: False
        self.dirty: dict[str, None] = {}  # symbols with a book not yet quoted (ordered set)
        self.pending = 0  # book frames coalesced since the last decision
        self.last_mono_ns = self.last_timer_ns = clock.mono_ns()
        self.decisions = dict.fromkeys(self.TRIGGERS, 0)
        self._quoted_recv_ns: dict[str, int] = {}
        self._recv = metrics.tick_to_quote.labels("recv")
        self._exch = metrics.tick_to_quote.labels("exch")
        self._counted = {t: metrics.quote_decisions.labels(t) for t in self.TRIGGERS}
        self.wake: Callable[[], None] = lambda: None  # the quoter task's flush under backlog
        self.trading_log: TradingLog | None = None  # logs what the trader reports (the shell's)

    def __call__(self, symbol: str | None) -> None:
        """After every live frame: symbol is the book it changed (None: no book changed)."""
        if symbol is not None:
            self.dirty[symbol] = None
            self.pending += 1
        if not self.dirty:
            return
        if not self.backlog():
            self.decide("inline")
        elif (
            self.pending >= self.every_frames
            or self.clock.mono_ns() - self.last_mono_ns >= self.every_ns
        ):
            self.decide("backlog")
        else:
            self.wake()

    def tick(self, quiet_ns: int) -> None:
        """From the quoter task: quote what a backlog left, and every symbol once per quiet_ns
        (a quiet market still gets requoted: warm-up ends, the session clock moves)."""
        if self.dirty:
            self.decide("backlog")
        if self.clock.mono_ns() - self.last_timer_ns >= quiet_ns:
            self.last_timer_ns = self.clock.mono_ns()
            self.decide("timer", list(self.hub.states))

    def decide(self, trigger: str, symbols: list[str] | None = None) -> None:
        """Advance the paper exchange, quote the symbols (default: the changed ones), observe."""
        trader = self.trader
        syms = list(self.dirty) if symbols is None else symbols
        self.dirty.clear()
        self.pending = 0
        now = self.clock.now_ns()
        trader.apply_events(trader.exchange.advance(trader.last_exch_ns))
        _restore_logged(self.trading_log)
        trader.quote(now, syms)
        trader.maybe_snapshot(now)
        done_ns = self.clock.now_ns()
        _log_trading(self.trading_log, done_ns)
        self.last_mono_ns = self.clock.mono_ns()
        states, strategies, quoted = self.hub.states, trader.strategies, self._quoted_recv_ns
        n = 0
        for sym in syms:
            st = states.get(sym)
            strat = strategies.get(sym)
            if st is None or strat is None or not strat.has_target:
                continue
            recv = st.last_book_recv_ns
            if recv == quoted.get(sym):
                continue  # no new book since the last decision (the requote timer)
            quoted[sym] = recv
            n += 1
            self._recv.observe((done_ns - recv) / 1e9)
            self._exch.observe(max(done_ns - st.book.ts_exch_ns, 0) / 1e9)
        if n:
            self.decisions[trigger] += n
            self._counted[trigger].inc(n)


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

    def _build_jobs(self, session: aiohttp.ClientSession) -> list[tuple[str, Awaitable[None]]]:
        src = self.cfg.feed.source
        jobs: list[tuple[str, Awaitable[None]]] = [
            ("app.watchdog", self._watchdog()),
            ("strategy.quoter", self._quoter()),
            ("app.loop_monitor", LoopMonitor(self.metrics).run()),
        ]
        if src == "bybit":
            jobs.append(("feed.bybit", self._bybit(session)))
        elif src == "synthetic":
            jobs.append(("feed.synthetic", self._synthetic()))
        else:
            jobs.append(("feed.replay", self._replay()))
        return jobs

    async def _bybit(self, session: aiohttp.ClientSession) -> None:
        """Load instruments (retrying while the venue is unreachable), then run the feeds."""
        jobs = await self._bybit_jobs(session)
        async with asyncio.TaskGroup() as tg:
            for name, job in jobs:
                tg.create_task(job, name=name)

    async def _bybit_jobs(
        self, session: aiohttp.ClientSession
    ) -> list[tuple[str, Awaitable[None]]]:
        cfg = self.cfg
        rest = BybitRest(
            cfg.venue.rest_url,
            cfg.feed.category,
            cfg.rest,
            session,
            self.clock,
            on_outcome=lambda e, o: self.metrics.rest_requests.labels(e, o).inc(),
        )
        for sym in cfg.feed.symbols:
            refused = 0
            while True:
                try:
                    body, ts = await rest.instruments(sym)
                except PermanentRequestError as exc:
                    raise ConfigError(f"feed.symbols: {sym}: {exc}") from None
                errors = self.hub.stats.decode_errors + sum(self.hub.stats.frame_errors.values())
                self.handle_frame(body, ts)
                if errors == (
                    self.hub.stats.decode_errors + sum(self.hub.stats.frame_errors.values())
                ):
                    break
                # a refused answer says nothing about the symbol: ask again, never guess steps
                refused += 1
                delay = min(cfg.rest.backoff_max_s, cfg.rest.backoff_base_s * 2 ** min(refused, 16))
                self.log.warning("instruments_refused", symbol=sym, retry_in_s=delay)
                await asyncio.sleep(delay)
            if sym not in self.hub.states:
                raise ConfigError(
                    f"feed.symbols: {sym} is not listed by the venue for category "
                    f"{cfg.feed.category}"
                )
        self.log.info("instruments_loaded", symbols=list(self.hub.states))
        jobs: list[tuple[str, Awaitable[None]]] = []
        sink = self.handle_frame
        for sym in cfg.feed.symbols:
            jobs.append(
                (
                    f"feed.rest.kline.{sym}",
                    rest.poll(
                        "/v5/market/kline", rest.kline_params(sym), cfg.rest.kline_interval_s, sink
                    ),
                )
            )
            jobs.append(
                (
                    f"feed.rest.trades.{sym}",
                    rest.poll(
                        "/v5/market/recent-trade",
                        rest.trades_params(sym),
                        cfg.rest.trades_interval_s,
                        sink,
                    ),
                )
            )
            if not cfg.feed.websocket:
                jobs.append(
                    (
                        f"feed.rest.orderbook.{sym}",
                        rest.poll(
                            "/v5/market/orderbook",
                            rest.orderbook_params(sym),
                            cfg.rest.orderbook_interval_s,
                            sink,
                        ),
                    )
                )
        if cfg.feed.websocket:
            stream = BybitStream(
                cfg.venue.ws_url,
                cfg.feed.symbols,
                cfg.feed.book_depth,
                cfg.ws,
                self.clock,
                on_frame=self.handle_frame,
                on_disconnected=self.hub.mark_unsynced,
                on_reconnect=self.metrics.reconnects.inc,
                on_oversized=self.metrics.oversized_frames.inc,
                # funding rate and times for perpetual positions (spot has no funding)
                tickers=cfg.exchange.funding and cfg.feed.category != "spot",
            )
            self.streams.append(stream)
            if self.scheduler is not None:
                self.scheduler.backlog = stream.backlog
            jobs.append(("feed.bybit.ws", stream.run()))
        return jobs

    async def _synthetic(self) -> None:
        cfg = self.cfg
        start_ns = self.clock.now_ns()
        gens = [
            SyntheticMarket(
                sym,
                cfg.feed.synthetic,
                category=cfg.feed.category,
                depth=cfg.feed.book_depth,
                start_ns=start_ns,
            ).frames()
            for sym in cfg.feed.symbols
        ]
        import heapq

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        behind = [False]  # the next frame is already due: the quotes may be coalesced
        if self.scheduler is not None:
            self.scheduler.backlog = lambda: behind[0]
        frames = heapq.merge(*gens, key=lambda x: x[0])
        nxt = next(frames, None)
        while nxt is not None:
            ts, frame = nxt
            delay = t0 + (ts - start_ns) / 1e9 - loop.time()
            # behind schedule: still yield, so /healthz, the quoter and SIGTERM get the loop
            await asyncio.sleep(delay if delay > 0 else 0)
            nxt = next(frames, None)
            behind[0] = nxt is not None and t0 + (nxt[0] - start_ns) / 1e9 <= loop.time()
            # stamp with the real receive time so lag figures mean something
            self.handle_frame(frame, self.clock.now_ns())

    async def _replay(self) -> None:
        cfg = self.cfg
        files = select_recordings(cfg.feed.replay.paths, cfg.feed.category, cfg.feed.symbols)
        if not files:
            raise ConfigError(
                "feed.replay.paths: no recording of category "
                f"{cfg.feed.category} for {', '.join(cfg.feed.symbols)}"
            )
        assert isinstance(self.clock, ManualClock)
        trader = self.trader
        n = await run_replay(
            files,
            self.clock,
            self.handle_frame,
            speed=cfg.feed.replay.speed,
            catching_up=trader.catching_up if trader is not None else bool,
        )
        if trader is not None:
            trader.finish_replay()  # the whole journal must have been reproduced
        self.replay_done = True
        books = {}
        for sym, st in self.hub.states.items():
            bb, ba = st.book.best_bid(), st.book.best_ask()
            books[sym] = {
                "seq": st.book.seq,
                "u": st.book.u,
                "best_bid": bb,
                "best_ask": ba,
                "trades": st.trades.total,
                "klines": st.klines.total,
            }
        self.log.info(
            "replay_finished",
            frames=n,
            files=[str(f) for f in files],
            decode_errors=self.hub.stats.decode_errors,
            books=books,
        )
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
            for stream in self.streams:
                self._reconnect_if_stalled(stream, now_ns, stale_s)

    def _reconnect_if_stalled(self, stream: BybitStream, now_ns: int, stale_s: float) -> None:
        """Drop a connection whose books get no data: a symbol's book (synced or waiting for
        its snapshot) older than stale_after_s on a socket silent that long (a resubscribe
        would wait for a frame that never comes), or older than twice that whatever the socket
        does (the resubscribe did not help). Ages count from the connection's start, so a new
        connection gets its own stale_after_s."""
        if not stream.connected:
            return
        limit_ns = int(stale_s * 1e9)
        silent_ns = now_ns - stream.last_message_ns
        stalled = []
        for sym in stream.symbols:
            st = self.hub.states.get(sym)
            last = max(st.last_book_recv_ns if st is not None else 0, stream.connected_at_ns)
            age_ns = now_ns - last
            if age_ns > 2 * limit_ns or (age_ns > limit_ns and silent_ns > limit_ns):
                stalled.append(sym)
        if stalled:
            self.log.warning(
                "ws_reconnect_forced",
                symbols=stalled,
                stale_after_s=stale_s,
                silent_s=round(silent_ns / 1e9, 3),
            )
            stream.force_reconnect()


def _restore_logged(tlog: TradingLog | None) -> None:
    """Restore the trader from its ledger (once, when due) and log the figures."""
    if tlog is not None and not tlog.trader.restored:
        tlog.restore_if_due()


def _log_trading(tlog: TradingLog | None, now_ns: int) -> None:
    """Log what the trader reports since the last call (fills, rejections, heartbeats...)."""
    if tlog is not None:
        tlog.after_step(now_ns)


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


def load_quote_models(
    cfg: AppConfig,
    trader: Trader | None,
    now_ns: int,
    *,
    force: bool = False,
    metrics: Metrics | None = None,
    deep: bool = False,
) -> LoadedModels | None:
    """Load the [models] the strategy quotes with, once (force: the adverse and spread models,
    as `--strategy ml`; deep: the deep order-flow model, as `--strategy deep`; the RL table
    only when [models] rl is on).

    Logs model_loaded per model; with a ledger, records each version and logs model_changed
    when it differs from the version recorded last (a restart with the same files records
    nothing new). A missing or incompatible model raises IncompatibleModel (exit 2) unless
    [models] missing = "neutral" (then model_missing is logged and that model is left out).
    """
    from mmd.learn.model_loader import load_models

    mc = cfg.models
    adverse, spread, lstm = mc.adverse or force, mc.spread or force, mc.lstm or deep
    if not (adverse or spread or mc.rl or lstm):
        return None
    log = get_logger("models")
    models = load_models(
        mc.dir,
        adverse=adverse,
        spread=spread,
        missing=mc.missing,
        on_missing=lambda name, reason: log.warning(
            "model_missing", model=name, reason=reason, fallback="neutral"
        ),
        rl=mc.rl,
        rl_options=rl_options(cfg),
        lstm=lstm,
        deep_skew_ticks=mc.deep_skew_ticks,
    )
    ledger = trader.ledger if trader is not None else None
    before = ledger.model_versions() if ledger is not None else {}
    for name, version in models.versions().items():
        path = str(Path(mc.dir) / name)
        log.info("model_loaded", model=name, version=version, path=path)
        if metrics is not None:
            metrics.model_info.labels(name, version).set(1)
        if ledger is not None and before.get(name) != version:
            if name in before:
                log.warning("model_changed", model=name, previous=before[name], version=version)
            ledger.record_model(name, version, path, now_ns)
    return models


def rl_options(cfg: AppConfig) -> dict[str, Any]:
    """RlPolicy options from [models]: online learning and its parameters (exploration
    seeded by feed.synthetic.seed, the config's seed)."""
    mc = cfg.models
    return {
        "online": mc.rl_online,
        "seed": cfg.feed.synthetic.seed,
        "learning": {
            "alpha": mc.rl_alpha,
            "discount": mc.rl_discount,
            "epsilon": mc.rl_epsilon,
            "damp": mc.rl_damp,
            "penalty": mc.rl_penalty_ticks,
        },
    }


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
        OrderManager(),
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


def config_table(cfg: AppConfig) -> dict[str, Any]:
    """The config as the table config.toml would hold (what `mmd check-config` prints, read
    back): JSON- and TOML-compatible, and `--config-from` loads it as a config file."""
    import tomllib

    from mmd.config import dump_config

    return tomllib.loads(dump_config(cfg))


def backtest(
    cfg: AppConfig,
    paths: list[str],
    *,
    strategy: str,
    report_dir: str | None,
    progress: bool = True,
    fills_csv: str | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    engine: str = "fast",
) -> list[dict[str, Any]]:
    """`mmd backtest`: the daemon's strategy and paper exchange over recordings, as fast as
    possible, one symbol at a time; returns one summary per symbol (and writes reports).

    Quotes are decided after every book frame on the frame's time, exactly as `--feed replay`
    does; fills come from the same SimExchange as a live run. Nothing is journaled.

    Each summary also records what reproduces it: `config` (the effective config of that
    symbol's run, as a TOML table), `recordings` (path and sha256 of each file), `mmd_version`
    and `seed` (`feed.synthetic.seed`, the config's only seed: the backtest itself draws no
    random numbers). With fills_csv, every fill of every symbol is written there, one row per
    fill with its markouts (mmd.sim.fill_table), in time order.

    start_ns/end_ns restrict trading to the frames received in [start_ns, end_ns) (receive
    stamps, ns; None = open end). Frames before start_ns still build the market state (book,
    features) so the book is synced at the window start, but the trader (strategy,
    calibration, paper exchange, portfolio) starts fresh at start_ns, as a daemon started then
    would; `events` counts the frames in the window only. A window is recorded in the summary
    as `window_ns` ([start_ns, end_ns]) only when one is given.

    engine "fast" (the default) runs each symbol in one jitted loop over the event cache
    (mmd.sim.backtest.run_backtest_fast: the same kernels, the same results); "python" drives
    FrameHandler + Trader frame by frame (the reference). What the fast loop does not do
    (`--strategy ml` or `deep`, a window, funding from tickers, an instrument step change)
    runs on the python engine, with one log line saying why.
    """

    from mmd.feeds.recording import expand_paths, recording_meta
    from mmd.sim.fill_table import FILL_COLUMNS, fill_rows
    from mmd.sim.report import summarize
    from mmd.sim.report import write_report as write_report_files

    if strategy not in ("as", "glft", "ml", "deep"):
        raise ConfigError(f"--strategy {strategy}: expected as, glft, ml or deep")
    models = None
    if strategy == "ml":  # AS quotes with both models from [models] dir
        models = load_quote_models(cfg, None, 0, force=True)
    elif strategy == "deep":  # AS quotes with the deep model ([models] dir/lstm)
        models = load_quote_models(cfg, None, 0, deep=True)
    ml_quoted = strategy in ("ml", "deep")
    cfg = msgspec.structs.replace(
        cfg, strategy=msgspec.structs.replace(cfg.strategy, model="as" if ml_quoted else strategy)
    )
    files = expand_paths(paths)
    if not files:
        raise ConfigError("backtest: no recordings found in " + ", ".join(paths))
    by_symbol: dict[tuple[str, str], list[Path]] = {}
    for f in files:
        if not f.exists():
            raise ConfigError(f"backtest: {f} does not exist")
        meta = recording_meta(f)  # from the first line, whatever the file is called
        if meta is None:
            raise ConfigError(
                f"backtest: {f}: not a recording (its first line is not the "
                "instruments-info answer of one symbol)"
            )
        by_symbol.setdefault((meta.category, meta.symbol), []).append(f)
    if engine not in ("fast", "python"):
        raise ConfigError(f"--engine {engine}: expected fast or python")
    why_not = (
        f"--strategy {strategy}"
        if ml_quoted
        else "a --start-ns/--end-ns window"
        if start_ns is not None or end_ns is not None
        else None
    )
    joint = cfg.hedge.enabled and len(by_symbol) > 1  # the beta hedge needs one book
    if joint:
        why_not = why_not or "[hedge] enabled (one joint book of every symbol)"
    if engine == "fast" and why_not is not None:
        get_logger("backtest").info(
            "backtest_engine_python", reason=f"{why_not} is not in the fast engine"
        )
        engine = "python"
    summaries: list[dict[str, Any]] = []
    fill_table: list[dict[str, Any]] = []
    paths: dict[str, Any] = {}  # symbol -> its sampled path (the book's net delta)
    hedge = None
    if joint:  # every symbol in one book, so the beta hedge sees the whole of it
        categories = {c for c, _ in by_symbol}
        if len(categories) > 1:
            raise ConfigError(
                "backtest: [hedge] needs recordings of one category, got "
                + ", ".join(sorted(categories))
            )
        hedge = PortfolioHedge(cfg.hedge)
        groups = [
            (
                categories.pop(),
                sorted(s for _, s in by_symbol),
                sorted(f for fs in by_symbol.values() for f in fs),
            )
        ]
    else:
        groups = [(c, [s], sorted(recs)) for (c, s), recs in sorted(by_symbol.items())]
    single = len(by_symbol) == 1
    for category, symbols, recs in groups:
        run_cfg = msgspec.structs.replace(
            cfg, feed=msgspec.structs.replace(cfg.feed, category=category, symbols=symbols)
        )
        fast = (
            _backtest_fast(run_cfg, recs, symbols[0])
            if engine == "fast" and len(symbols) == 1
            else None
        )
        if fast is not None:
            n_frames, series, inst = fast
            summary = summarize(
                series.equity_ts_ns,
                series.equity_quote,
                series.position_lots,
                series.fills,
                series.mids,
                lot=inst.lot,
                tick=inst.tick,
                strategy=strategy,
                events=n_frames,
            )
            summary.update(symbol=symbols[0], category=category, **_provenance(run_cfg, recs))
            results = [(summary, series, inst)]
        else:
            results = _backtest_python(
                run_cfg,
                category,
                symbols,
                recs,
                models,
                hedge,
                strategy=strategy,
                progress=progress,
                start_ns=start_ns,
                end_ns=end_ns,
            )
        for summary, series, inst in results:
            symbol = summary["symbol"]
            if fills_csv:
                fill_table.extend(
                    fill_rows(
                        series.fills,
                        series.mids,
                        symbol=symbol,
                        tick=inst.tick,
                        lot=inst.lot,
                        format_px=inst.format_px,
                        format_qty=inst.format_qty,
                    )
                )
            summaries.append(summary)
            paths[symbol] = _symbol_path(
                series.equity_ts_ns, series.position_lots, series.mids, inst, summary["pnl"]
            )
            if report_dir:
                write_report_files(
                    summary, series, Path(report_dir) if single else Path(report_dir) / symbol
                )
    if fills_csv:
        _write_csv(Path(fills_csv), FILL_COLUMNS, sorted(fill_table, key=lambda r: r["ts"]))
    _add_book_figures(summaries, paths, hedge, report_dir)
    return summaries


def _provenance(run_cfg: AppConfig, recs: list[Path]) -> dict[str, Any]:
    """What reproduces a backtest summary: the recordings with their sha256, the effective
    config, the mmd version and the seed (the config's only one)."""
    from mmd import __version__

    return {
        "recordings": [{"path": str(r), "sha256": file_sha256(r)} for r in recs],
        "config": config_table(run_cfg),
        "mmd_version": __version__,
        "seed": run_cfg.feed.synthetic.seed,
    }


def window_frames(
    hub: MarketHub,
    trader: Trader,
    frames: Iterable[tuple[int, bytes]],
    start_ns: int | None,
    end_ns: int | None,
) -> Iterator[int]:
    """The per-frame backtest loop: frames received before start_ns only build the market
    state, frames in [start_ns, end_ns) go through the trader too (quoting inline, as
    `--feed replay`), the first one at or after end_ns stops it (None = open end). Yields
    each traded frame's receive time once the trader has handled it."""
    handler = FrameHandler(hub, None, None, trader, quote_inline=True)
    market_only = FrameHandler(hub)  # before start_ns: the market state, no trader
    for ts, raw in frames:
        if end_ns is not None and ts >= end_ns:
            break
        if start_ns is not None and ts < start_ns:
            market_only(raw, ts)
            continue
        handler(raw, ts)
        yield ts


def _backtest_python(
    run_cfg: AppConfig,
    category: str,
    symbols: list[str],
    recs: list[Path],
    models: LoadedModels | None,
    hedge: PortfolioHedge | None,
    *,
    strategy: str,
    progress: bool,
    start_ns: int | None,
    end_ns: int | None,
) -> list[tuple[dict[str, Any], Any, Any]]:
    """The python engine of `mmd backtest`: FrameHandler + Trader frame by frame over the
    recordings merged by receive time (the `--feed replay` order), every symbol of `symbols` in
    one MarketHub and one Trader (one symbol unless the beta hedge needs the whole book).
    Returns (summary, ReportSeries, instrument) per symbol, in `symbols` order."""
    import numpy as np
    from tqdm import tqdm

    from mmd.sim.report import QUOTE_DTYPE, ReportSeries, fills_array, mids_array, summarize

    hub = MarketHub(symbols, run_cfg.market, features_cfg=run_cfg.features)
    trader = build_trader(run_cfg, hub, ledger=False)
    trader.models = models
    if hedge is not None:
        trader.hedge = hedge
    per: dict[str, dict[str, list[Any]]] = {
        s: {"eq_ts": [], "eq": [], "pos": [], "mid_ts": [], "mids": [], "quotes": []}
        for s in symbols
    }
    last_q: dict[str, tuple[float, float]] = dict.fromkeys(symbols, (np.nan, np.nan))
    next_sample = dict.fromkeys(symbols, 0)
    n_frames = 0
    frames = tqdm(
        merged_frames(recs),
        desc="backtest " + "+".join(symbols),
        unit="frame",
        disable=not progress,
        mininterval=0.5,
    )
    for _ in window_frames(hub, trader, frames, start_ns, end_ns):
        n_frames += 1
        for sym in symbols:
            st = hub.states.get(sym)
            if st is None or not st.sync.synced:
                continue
            t = st.book.ts_exch_ns
            d = per[sym]
            if t >= next_sample[sym]:  # the equity curve and mids, every 100 ms of exchange time
                next_sample[sym] = t + 100_000_000
                m = st.book.mid_ticks()
                if m == m:
                    d["mid_ts"].append(t)
                    d["mids"].append(m)
                d["eq_ts"].append(t)
                d["eq"].append(
                    trader.portfolio.position(sym).pnl_quote
                    if sym in trader.portfolio.symbols
                    else 0.0
                )
                d["pos"].append(trader.portfolio.position_lots(sym))
            strat = trader.strategies.get(sym)
            tgt = strat.target if strat is not None else None
            q = (
                (
                    float(tgt.bids[0][0]) if tgt.bids else np.nan,
                    float(tgt.asks[0][0]) if tgt.asks else np.nan,
                )
                if tgt
                else (np.nan, np.nan)
            )
            lq = last_q[sym]
            if q != lq and not (
                q[0] != q[0] and lq[0] != lq[0] and q[1] != q[1] and lq[1] != lq[1]
            ):
                d["quotes"].append((t, q[0], q[1]))
                last_q[sym] = q
    out = []
    for sym in symbols:
        st = hub.states.get(sym)
        if st is None:
            raise ConfigError(f"backtest: no instrument frame for {sym} in the recording")
        inst = st.instrument
        d = per[sym]
        fills = fills_array(f for f in trader.fills if f.symbol == sym)
        mid_arr = mids_array(d["mid_ts"], d["mids"])
        series = ReportSeries(
            equity_ts_ns=np.array(d["eq_ts"], np.int64),
            equity_quote=np.array(d["eq"], np.float64),
            position_lots=np.array(d["pos"], np.int64),
            fills=fills,
            mids=mid_arr,
            tick=inst.tick,
            lot=inst.lot,
            symbol=sym,
            quotes=(
                np.array(d["quotes"], dtype=QUOTE_DTYPE)
                if d["quotes"]
                else np.empty(0, QUOTE_DTYPE)
            ),
        )
        summary = summarize(
            series.equity_ts_ns,
            series.equity_quote,
            series.position_lots,
            fills,
            mid_arr,
            lot=inst.lot,
            tick=inst.tick,
            strategy=strategy,
            events=n_frames,
        )
        summary.update(symbol=sym, category=category, **_provenance(run_cfg, recs))
        if models is not None:
            strat = trader.strategies.get(sym)
            dec = strat.decisions if strat is not None else 0
            summary["models"] = models.versions()
            summary["widened_fraction"] = (strat.widened / dec) if strat and dec else 0.0
        if start_ns is not None or end_ns is not None:
            summary["window_ns"] = [start_ns, end_ns]
        out.append((summary, series, inst))
    return out


def _symbol_path(pos_ts_ns: Any, position_lots: Any, mids: Any, inst: Any, pnl_quote: float) -> Any:
    """A symbol's sampled path in base units and quote (mmd.sim.net_delta.SymbolPath)."""
    from mmd.sim.net_delta import SymbolPath

    return SymbolPath(
        position_ts_ns=pos_ts_ns,
        position_base=position_lots * inst.lot,
        mid_ts_ns=mids["ts_ns"],
        mid_quote=mids["mid_ticks"] * inst.tick,
        pnl_quote=float(pnl_quote),
    )


def _add_book_figures(
    summaries: list[dict[str, Any]],
    paths: dict[str, Any],
    hedge: PortfolioHedge | None,
    report_dir: str | None,
) -> None:
    """With more than one symbol, every summary gets `book`: the symbols' total PnL and the
    net delta of the whole book (mmd.sim.net_delta), and the hedge's betas when it ran; each
    report's summary.json (report_dir/<symbol>/) is rewritten with it."""
    import json

    if len(paths) < 2:
        return
    from mmd.sim.net_delta import net_delta_figures

    book = net_delta_figures(paths)
    book["hedge"] = None
    if hedge is not None:
        book["hedge"] = {
            "instrument": hedge.instrument,
            "skew_ticks": hedge.cfg.skew_ticks,
            "betas": {s: {"beta": b, "se": e} for s, (b, e) in hedge.betas().items()},
        }
    for s in summaries:
        s["book"] = book
        js = Path(report_dir) / s["symbol"] / "summary.json" if report_dir else None
        if js is not None and js.exists():
            written = json.loads(js.read_text())
            written["book"] = book
            js.write_text(json.dumps(written, indent=2) + "\n")


def _backtest_fast(cfg: AppConfig, recs: list[Path], symbol: str) -> tuple[int, Any, Any] | None:
    """One symbol's backtest in the jitted loop over its event cache: (frames, ReportSeries,
    Instrument), or None (with a log line) when the loop cannot run it."""
    import numpy as np

    from mmd.feeds.events import load_events
    from mmd.model.events import MAKER
    from mmd.sim.backtest import run_backtest_fast, unsupported
    from mmd.sim.report import FILL_DTYPE, QUOTE_DTYPE, ReportSeries, mids_array

    ev = load_events(recs)
    if not len(ev.inst_sym):
        raise ConfigError(f"backtest: no instrument frame for {symbol} in the recording")
    why = unsupported(ev, cfg)
    if why is not None:
        get_logger("backtest").info("backtest_engine_python", symbol=symbol, reason=why)
        return None
    r = run_backtest_fast(ev, cfg)
    inst = ev.instrument(len(ev.inst_sym) - 1)
    fills = np.zeros(len(r.fills), FILL_DTYPE)
    fills["ts_ns"] = r.fills[:, 0]
    fills["side"] = r.fills[:, 3]
    fills["px_ticks"] = r.fills[:, 4]
    fills["qty_lots"] = r.fills[:, 5]
    fills["fee_quote"] = r.fees
    fills["liquidity"] = MAKER
    quotes = np.zeros(len(r.quote_ts_ns), QUOTE_DTYPE)
    quotes["ts_ns"] = r.quote_ts_ns
    quotes["bid_ticks"] = r.quote_bid_ticks
    quotes["ask_ticks"] = r.quote_ask_ticks
    series = ReportSeries(
        equity_ts_ns=r.equity_ts_ns,
        equity_quote=r.equity_quote,
        position_lots=r.equity_position_lots,
        fills=fills,
        mids=mids_array(r.mid_ts_ns, r.mid_ticks),
        tick=inst.tick,
        lot=inst.lot,
        quotes=quotes,
        symbol=symbol,
    )
    return int(ev.meta["frames"]), series, inst


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)

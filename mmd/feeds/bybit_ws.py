"""Bybit V5 public websocket: connect, subscribe, ping every 20 s, reconnect, resubscribe.

Stamps ts_recv_ns on every frame and hands it to a synchronous callback; the socket read is the
hot path's only await. A callback may ask for symbols to be resynced; this module then
unsubscribes and resubscribes that symbol's book topic (the venue answers with a new snapshot).
No trading logic lives here.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping

import websockets
from websockets.asyncio.client import ClientConnection, connect

from mmd.clock import Clock
from mmd.config import WsConfig
from mmd.feeds.backoff import Backoff
from mmd.feeds.bybit_codec import (
    book_topic,
    encode_ping,
    encode_subscribe,
    kline_topic,
    ticker_topic,
    trade_topic,
)
from mmd.logs import get_logger, redact_url

# Linear topics are limited by total length of args (21,000 characters); keep requests small.
_TOPICS_PER_REQUEST = 10
# under a backlog, yield to the event loop after this many frames handled back to back
_FRAMES_PER_YIELD = 256
# the close code websockets sends when a message exceeds max_size (RFC 6455 1009)
_MESSAGE_TOO_BIG = 1009

OnFrame = Callable[[bytes, int], list[str]]  # returns symbols to resync
OnState = Callable[[list[str], str], None]


class BybitStream:
    """One websocket connection carrying book, trade and kline topics for a set of symbols.

    Args:
        url: e.g. wss://stream.bybit.com/v5/public/linear.
        symbols: symbols to subscribe.
        depth: orderbook.N depth.
        cfg: ping interval, idle timeout, backoff.
        clock: stamps ts_recv_ns.
        on_frame: (raw, ts_recv_ns) -> symbols to resync; called for every frame.
        on_disconnected: (symbols, reason) when the connection is lost (their books are void).
        on_reconnect: called before every reconnect attempt that follows a failure.
    """

    def __init__(
        self,
        url: str,
        symbols: list[str],
        depth: int,
        cfg: WsConfig,
        clock: Clock,
        on_frame: OnFrame,
        on_disconnected: OnState,
        on_reconnect: Callable[[], None] | None = None,
        *,
        tickers: bool = False,
        on_oversized: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.symbols = list(symbols)
        self.depth = depth
        self.cfg = cfg
        self.clock = clock
        self.on_frame = on_frame
        self.on_disconnected = on_disconnected
        self.on_reconnect = on_reconnect or (lambda: None)
        self.on_oversized = on_oversized or (lambda: None)
        self.oversized = 0  # messages over cfg.max_frame_bytes (each closed its connection)
        self._last_too_large = False
        self._forced = False  # force_reconnect() dropped the connection
        self.tickers = tickers
        self.connected = False
        self.connects = 0
        # wall-clock ns (the clock's now_ns) of the current connection's start and of its last
        # message: the daemon's watchdog tells a silent socket from one quiet symbol with them
        self.connected_at_ns = 0
        self.last_message_ns = 0
        self._ws: ClientConnection | None = None
        self._req_ids = itertools.count(1)
        self._pending_resync: set[str] = set()
        # per symbol: its resubscribe backoff, when it was last resubscribed and when the next
        # one may go (a frame that always fails must not resubscribe in a tight loop)
        self._resync_backoff: dict[str, Backoff] = {}
        self._resync_last_ns: dict[str, int] = {}
        self._resync_due_ns: dict[str, int] = {}
        self.log = get_logger("feed.ws", url=redact_url(url))

    def topics(self) -> list[str]:
        """Every topic this stream subscribes to."""
        out = []
        for s in self.symbols:
            out += [book_topic(self.depth, s), trade_topic(s), kline_topic(s)]
            if self.tickers:
                out.append(ticker_topic(s))
        return out

    async def run(self) -> None:
        """Connect and read forever; reconnect with capped jittered backoff on any failure."""
        backoff = Backoff(self.cfg.backoff_base_s, self.cfg.backoff_max_s)
        while True:
            reason = "closed"
            try:
                async with connect(
                    self.url,
                    open_timeout=self.cfg.connect_timeout_s,
                    ping_interval=None,  # Bybit wants application-level pings (op: ping)
                    close_timeout=2,
                    max_size=self.cfg.max_frame_bytes,
                    max_queue=4096,
                ) as ws:
                    self._ws = ws
                    self.connected_at_ns = self.last_message_ns = self.clock.now_ns()
                    self.connected = True
                    self.connects += 1
                    self.log.info("ws_connected", connects=self.connects)
                    self._resync_due_ns.clear()  # the subscribe below brings every snapshot
                    await self._subscribe(ws, self.topics())
                    reason = await self._read(ws, backoff)
                    self._last_too_large = reason == "too_large"
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                reason = f"{type(exc).__name__}"
                self.log.warning("ws_failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                self._ws = None
                if self.connected:
                    self.connected = False
                    self.on_disconnected(self.symbols, "disconnect")
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # closing the socket during a cancel can raise a websockets error that replaced
                # the CancelledError above: never turn a shutdown into a reconnect
                raise asyncio.CancelledError
            delay = backoff.next_delay()
            self.log.info("ws_reconnecting", reason=reason, delay_s=round(delay, 3))
            await asyncio.sleep(delay)
            self.on_reconnect()

    async def _subscribe(
        self, ws: ClientConnection, topics: list[str], op: str = "subscribe"
    ) -> None:
        for i in range(0, len(topics), _TOPICS_PER_REQUEST):
            chunk = topics[i : i + _TOPICS_PER_REQUEST]
            await ws.send(encode_subscribe(chunk, f"{op}-{next(self._req_ids)}", op).decode())

    async def _read(self, ws: ClientConnection, backoff: Backoff) -> str:
        """Read until the connection dies; returns why."""
        ping_every_ns = int(self.cfg.ping_interval_s * 1e9)
        idle_ns = int(self.cfg.idle_timeout_s * 1e9)
        last_msg = last_ping = self.clock.mono_ns()
        got_data = False
        queued = ws.recv_messages.frames  # frames read off the socket, not yet received
        recv = ws.recv
        mono_ns = self.clock.mono_ns
        unyielded = 0
        while True:
            now = mono_ns()
            if unyielded >= _FRAMES_PER_YIELD:
                # a long backlog is read without awaiting anything: let /metrics, /healthz,
                # the quoter's timer and SIGTERM in now and then
                unyielded = 0
                await asyncio.sleep(0)
            if now - last_ping >= ping_every_ns:
                await ws.send(encode_ping(f"ping-{next(self._req_ids)}").decode())
                last_ping = now
            try:
                if len(queued):
                    # already buffered: recv returns without waiting, so no timer is armed
                    # (one timer per socket read, not one per frame)
                    raw = await recv(decode=False)
                else:
                    wait_ns = (
                        min(
                            last_ping + ping_every_ns,
                            last_msg + idle_ns,
                            min(self._resync_due_ns.values(), default=now + idle_ns),
                        )
                        - now
                    )
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that arrives just as a frame does; shutdown would then hang
                    async with asyncio.timeout(max(wait_ns, 1) / 1e9):
                        raw = await recv(decode=False)
            except TimeoutError:
                if self.clock.mono_ns() - last_msg >= idle_ns:
                    self.log.warning("ws_idle_timed_out", idle_s=self.cfg.idle_timeout_s)
                    return "idle"
                if self._pending_resync:
                    self._schedule_resync(set(self._pending_resync))
                await self._resync_due(ws)
                continue
            except websockets.exceptions.ConnectionClosed as exc:
                if exc.sent is not None and exc.sent.code == _MESSAGE_TOO_BIG:
                    self.oversized += 1
                    self.on_oversized()
                    self.log.warning("ws_frame_too_large", max_bytes=self.cfg.max_frame_bytes)
                    return "too_large"
                if self._forced:
                    self._forced = False
                    return "forced"
                return f"closed:{exc.rcvd.code if exc.rcvd else 'none'}"
            ts_recv_ns = self.last_message_ns = self.clock.now_ns()
            last_msg = mono_ns()
            if not got_data:
                got_data = True
                if not self._last_too_large:
                    backoff.reset()  # not after an oversized message: that venue keeps sending it
            unyielded = unyielded + 1 if len(queued) else 0
            resync = self.on_frame(raw, ts_recv_ns)
            if resync or self._pending_resync:
                self._schedule_resync(set(resync) | self._pending_resync)
            if self._resync_due_ns:
                await self._resync_due(ws)

    def _schedule_resync(self, symbols: set[str]) -> None:
        """Give each symbol to resync a time: now for the first resync after a quiet spell
        (2 x backoff_max_s without one), else after its own capped, jittered backoff."""
        self._pending_resync.clear()
        now = self.clock.mono_ns()
        quiet_ns = int(2 * self.cfg.backoff_max_s * 1e9)
        for sym in sorted(symbols):
            if sym not in self.symbols or sym in self._resync_due_ns:
                continue
            backoff = self._resync_backoff.get(sym)
            if backoff is None:
                backoff = self._resync_backoff[sym] = Backoff(
                    self.cfg.backoff_base_s, self.cfg.backoff_max_s
                )
            last = self._resync_last_ns.get(sym)
            if last is None or now - last >= quiet_ns:
                backoff.reset()
                delay_s = 0.0
            else:
                delay_s = backoff.next_delay()
                self.log.info(
                    "ws_resync_delayed",
                    symbol=sym,
                    delay_s=round(delay_s, 3),
                    attempt=backoff.attempt,
                )
            self._resync_due_ns[sym] = now + int(delay_s * 1e9)

    async def _resync_due(self, ws: ClientConnection) -> None:
        now = self.clock.mono_ns()
        due = sorted(s for s, t in self._resync_due_ns.items() if t <= now)
        if not due:
            return
        for sym in due:
            del self._resync_due_ns[sym]
            self._resync_last_ns[sym] = now
        topics = [book_topic(self.depth, s) for s in due]
        self.log.info("ws_resubscribed", topics=topics)
        await self._subscribe(ws, topics, "unsubscribe")
        await self._subscribe(ws, topics, "subscribe")

    def backlog(self) -> bool:
        """True when a newer frame is already buffered (read off the socket, not yet handed
        on): the caller may coalesce work that only the latest frame needs."""
        ws = self._ws
        return ws is not None and len(ws.recv_messages.frames) > 0

    def request_resync(self, symbol: str) -> None:
        """Resubscribe symbol's book after the next frame (used for stale books), subject to
        the symbol's resync backoff."""
        self._pending_resync.add(symbol)

    def force_reconnect(self) -> None:
        """Drop the current connection at once (a stalled stream: a close handshake would wait
        for a peer that no longer answers); run() reconnects with its backoff."""
        ws = self._ws
        if ws is not None:
            self._forced = True
            ws.transport.abort()

    def reconnect_if_stalled(
        self, last_book_recv_ns: Mapping[str, int], now_ns: int, stale_s: float
    ) -> None:
        """Drop a connection whose books get no data: a symbol's book (synced or waiting for
        its snapshot; last_book_recv_ns: its last book frame's receive stamp, absent or 0 when
        none) older than stale_after_s on a socket silent that long (a resubscribe would wait
        for a frame that never comes), or older than twice that whatever the socket does (the
        resubscribe did not help). Ages count from the connection's start, so a new connection
        gets its own stale_after_s."""
        if not self.connected:
            return
        limit_ns = int(stale_s * 1e9)
        silent_ns = now_ns - self.last_message_ns
        stalled = []
        for sym in self.symbols:
            last = max(last_book_recv_ns.get(sym, 0), self.connected_at_ns)
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
            self.force_reconnect()

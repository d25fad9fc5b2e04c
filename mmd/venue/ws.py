"""The venue's websocket side: connections, subscriptions, per-connection send queues, fan-out.

Speaks the Bybit V5 public websocket protocol (ops, acks, pongs) and never builds market data:
book views come from `views.py`, trades and klines from `replay.py`.

* **Protocol.** A subscribe/unsubscribe request is all-or-nothing: one unknown topic, depth,
  interval or symbol refuses the whole request (`success:false`, the reasons in `ret_msg`).
  Subscribing again to a subscribed topic succeeds and re-sends the snapshot. Spot acks carry
  `ret_msg` "subscribe" and spot pongs no `req_id`, as on Bybit; spot takes at most 10 args
  per request. Invalid JSON, unknown ops and binary frames get `success:false`; the venue only
  sends text frames.
* **Slow clients.** Each connection has its own send queue and writer task; broadcasting never
  awaits a socket. A connection whose queue exceeds `max_queue_frames` is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from mmd.venue.catalog import CATEGORIES
from mmd.venue.klines import KLINE_INTERVALS
from mmd.venue.market import BOOK_DEPTHS, Market

# a lazy proxy: the configuration made later by the CLI applies (`.bind()` here would freeze it)
log = structlog.get_logger(component="venue")


@dataclass(slots=True, frozen=True)
class Pong:
    """A websocket protocol pong to send."""

    payload: bytes


@dataclass(slots=True, frozen=True)
class Close:
    """Close the connection (handshake) once what was queued before is sent."""

    code: int
    reason: str


@dataclass(slots=True, frozen=True)
class Stall:
    """Marks where a `stall` fault starts: what was queued before it is still sent."""


@dataclass(slots=True, frozen=True)
class Abort:
    """Cut the connection without a close handshake (an `outage` fault)."""


Item = str | Pong | Close | Stall | Abort


class Connection:
    """One websocket client: its subscriptions, its send queue and its fault state."""

    __slots__ = (
        "category",
        "closing",
        "conn_id",
        "frames_sent",
        "held",
        "queue",
        "stalled",
        "topics",
        "transport",
        "ws",
    )

    def __init__(
        self,
        conn_id: str,
        category: str,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
    ) -> None:
        self.conn_id = conn_id
        self.category = category
        self.ws = ws
        self.transport = transport
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.topics: set[str] = set()
        self.held: dict[str, str] = {}  # topic -> delta held back by a `reorder` fault
        self.stalled = False
        self.closing = False
        self.frames_sent = 0


BookSubscribed = Callable[[Connection, Market, int, str], None]
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class Fanout:
    """Every websocket connection of the venue and who is subscribed to what.

    Args:
        markets: the served markets by (category, symbol).
        spawn: starts a named task the venue tracks (and cancels at stop).
        on_book_subscribed: called after the ack of each `orderbook.N.SYM` subscription with
            (connection, market, depth, topic); it sends the view's snapshot.
        is_down: True while an `outage` fault has the venue down.
        idle_timeout_s: drop a client that sends nothing for this long.
        max_queue_frames: abort a client whose send queue grows past this.
    """

    def __init__(
        self,
        markets: dict[tuple[str, str], Market],
        *,
        spawn: Spawn,
        on_book_subscribed: BookSubscribed,
        is_down: Callable[[], bool],
        idle_timeout_s: float,
        max_queue_frames: int,
    ) -> None:
        self._markets = markets
        self._spawn = spawn
        self._on_book_subscribed = on_book_subscribed
        self._is_down = is_down
        self._idle_timeout_s = idle_timeout_s
        self._max_queue = max_queue_frames
        self._subs: dict[tuple[str, str], dict[Connection, None]] = {}
        self.conns: dict[Connection, None] = {}
        self.conns_total = 0
        self.conns_dropped_slow = 0
        self.frames_sent = 0
        self._conn_seq = 0

    # ---- fan-out ---------------------------------------------------------------------------

    def subscribers(self, category: str, topic: str) -> dict[Connection, None]:
        """The connections subscribed to a topic (empty when none; do not mutate)."""
        return self._subs.get((category, topic)) or {}

    def subscriber_count(self, category: str, topic: str) -> int:
        """How many connections are subscribed to a topic."""
        return len(self._subs.get((category, topic)) or ())

    def send(self, c: Connection, item: Item) -> None:
        """Queue one item for a connection; never blocks; aborts a client that falls behind."""
        if c.stalled or c.closing:
            return
        if c.queue.qsize() >= self._max_queue:
            self.conns_dropped_slow += 1
            log.warning("venue_slow_client_dropped", conn_id=c.conn_id, queued=c.queue.qsize())
            self.forget(c)
            if c.transport is not None:
                c.transport.abort()
            return
        c.queue.put_nowait(item)

    def broadcast(self, category: str, topic: str, frame: str) -> None:
        """Queue a frame for every subscriber of a topic."""
        for c in list(self._subs.get((category, topic), ())):
            self.send(c, frame)

    def stall(self, subs: list[Connection]) -> None:
        """The `stall` fault: nothing more goes out on these connections after what is queued."""
        for c in subs:
            if not (c.stalled or c.closing):
                c.queue.put_nowait(Stall())
            c.stalled = True
            c.held.clear()

    def close_after_queue(self, c: Connection, code: int, reason: str) -> None:
        """Close a connection once what is queued before now has been sent."""
        if c.closing:
            return
        c.queue.put_nowait(Close(code, reason))
        self.forget(c)

    def abort_all(self) -> None:
        """The `outage` fault: cut every connection once what is queued has gone out."""
        for c in list(self.conns):
            self.forget(c)
            c.queue.put_nowait(Abort())

    def flush_held(self) -> None:
        """Send every frame still held back by a `reorder` fault (the replay has ended)."""
        for c in list(self.conns):
            for topic in list(c.held):
                self.send(c, c.held.pop(topic))

    def forget(self, c: Connection) -> None:
        """Take a connection out of every subscription (it receives nothing more)."""
        c.closing = True
        for topic in c.topics:
            subs = self._subs.get((c.category, topic))
            if subs is not None:
                subs.pop(c, None)
        c.topics.clear()
        c.held.clear()

    async def _run_writer(self, c: Connection) -> None:
        ws = c.ws
        silent = False  # past a stall marker: send nothing more
        try:
            while True:
                item = await c.queue.get()
                if isinstance(item, Close):
                    await ws.close(code=item.code, message=item.reason.encode())
                    return
                if isinstance(item, Stall):
                    silent = True
                    continue
                if isinstance(item, Abort):
                    if c.transport is not None:
                        c.transport.abort()
                    return
                if silent or ws.closed:
                    continue
                if isinstance(item, str):
                    await ws.send_str(item)
                    c.frames_sent += 1
                    self.frames_sent += 1
                else:
                    await ws.pong(item.payload)
        except ConnectionError as exc:
            log.debug("venue_send_failed", conn_id=c.conn_id, error=str(exc))

    async def close_all(self) -> None:
        """Close every connection (1001 going away), waiting at most 2 s for each."""
        conns = list(self.conns)
        for c in conns:
            c.closing = True
        await asyncio.gather(
            *(
                asyncio.wait_for(c.ws.close(code=1001, message=b"venue stopping"), 2.0)
                for c in conns
                if not c.ws.closed
            ),
            return_exceptions=True,
        )

    # ---- websocket -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """`GET /v5/public/{category}`: one websocket client, until it or the venue closes."""
        category = request.match_info["category"]
        if category not in CATEGORIES:
            raise web.HTTPNotFound(text=f"this venue serves /v5/public/{{{','.join(CATEGORIES)}}}")
        ws = web.WebSocketResponse(
            autoping=False, compress=False, max_msg_size=1 << 16, timeout=5.0
        )
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="expected a websocket upgrade")
        if self._is_down():  # accepted just before the listening socket closed: cut it
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        await ws.prepare(request)
        self._conn_seq += 1
        conn = Connection(
            f"{secrets.token_hex(8)}-{self._conn_seq}", category, ws, request.transport
        )
        self.conns[conn] = None
        self.conns_total += 1
        log.debug("venue_connection_opened", conn_id=conn.conn_id, category=category)
        writer = self._spawn(self._run_writer(conn), f"venue.ws.{conn.conn_id}")
        try:
            await self._read_loop(conn)
        finally:
            closing_by_us = conn.closing
            self.forget(conn)
            self.conns.pop(conn, None)
            if closing_by_us and not writer.done():
                # a close handshake we started (fault, idle): let it finish
                await asyncio.wait([writer], timeout=2.0)
            writer.cancel()
            (outcome,) = await asyncio.gather(writer, return_exceptions=True)
            if isinstance(outcome, Exception):
                log.error("venue_writer_failed", conn_id=conn.conn_id, exc_info=outcome)
            if not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.close()
            log.debug("venue_connection_closed", conn_id=conn.conn_id, sent=conn.frames_sent)
        return ws

    async def _read_loop(self, c: Connection) -> None:
        ws = c.ws
        while True:
            try:
                msg = await ws.receive(timeout=self._idle_timeout_s)
            except TimeoutError:
                if c.closing:
                    return
                log.info("venue_idle_client_dropped", conn_id=c.conn_id)
                self.close_after_queue(c, 1000, "idle timeout")
                continue
            if msg.type is WSMsgType.TEXT:
                self._on_request(c, msg.data)
            elif msg.type is WSMsgType.PING:
                self.send(c, Pong(msg.data))
            elif msg.type is WSMsgType.PONG:
                continue
            elif msg.type is WSMsgType.BINARY:
                self._reply(c, "", False, "text frames only", None)
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return

    def _reply(self, c: Connection, op: str, success: bool, ret_msg: str, req_id: Any) -> None:
        obj: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": c.conn_id}
        # spot pongs carry no req_id (BYBIT_V5_NOTES 3.1)
        if not (c.category == "spot" and op == "ping"):
            obj["req_id"] = "" if req_id is None else req_id
        obj["op"] = op
        self.send(c, orjson.dumps(obj).decode())

    def _on_request(self, c: Connection, text: str) -> None:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._reply(c, "", False, "invalid request: not JSON", None)
            return
        if not isinstance(req, dict):
            self._reply(c, "", False, "invalid request: not a JSON object", None)
            return
        op = req.get("op")
        req_id = req.get("req_id")
        if op == "ping":
            self._reply(c, "ping", True, "pong", req_id)
        elif op in ("subscribe", "unsubscribe"):
            self._on_subscription(c, str(op), req.get("args"), req_id)
        else:
            self._reply(c, str(op or ""), False, f"unsupported op: {op!r}", req_id)

    def _resolve_topic(self, category: str, topic: str) -> tuple[Market, int] | str:
        """(market, book depth or 0) for a valid topic, else the reason it is refused."""
        parts = topic.split(".")
        head = parts[0]
        if head == "orderbook" and len(parts) == 3:
            if not parts[1].isdigit() or int(parts[1]) not in BOOK_DEPTHS:
                return (
                    f"invalid topic {topic}: orderbook depth must be one of "
                    f"{', '.join(map(str, BOOK_DEPTHS))}"
                )
            depth = int(parts[1])
        elif head in ("publicTrade", "tickers") and len(parts) == 2:
            depth = 0
        elif head == "kline" and len(parts) == 3:
            if parts[1] not in KLINE_INTERVALS:
                return f"invalid topic {topic}: kline interval must be one of " + " ".join(
                    KLINE_INTERVALS
                )
            depth = 0
        else:
            return (
                f"error:handler not found,topic:{topic} (served: orderbook.N.SYM, "
                "publicTrade.SYM, kline.I.SYM, tickers.SYM)"
            )
        m = self._markets.get((category, parts[-1]))
        if m is None:
            served = sorted(s for cat, s in self._markets if cat == category)
            return (
                f"invalid topic {topic}: unknown symbol {parts[-1]} on {category} "
                f"(served: {', '.join(served) or 'none'})"
            )
        return m, depth

    def _on_subscription(self, c: Connection, op: str, args: Any, req_id: Any) -> None:
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            self._reply(c, op, False, "args must be a non-empty list of topics", req_id)
            return
        if c.category == "spot" and len(args) > 10:
            self._reply(c, op, False, "spot allows at most 10 args per request", req_id)
            return
        topics = list(dict.fromkeys(args))
        resolved: list[tuple[str, Market, int]] = []
        errors: list[str] = []
        for topic in topics:
            r = self._resolve_topic(c.category, topic)
            if isinstance(r, str):
                errors.append(r)
            else:
                resolved.append((topic, *r))
        if op == "unsubscribe":
            errors += [
                f"not subscribed: {t}"
                for t in topics
                if t not in c.topics and not any(t in e for e in errors)
            ]
        if errors:
            self._reply(c, op, False, "; ".join(errors), req_id)
            return
        ok_msg = op if c.category == "spot" else ""
        if op == "unsubscribe":
            for topic in topics:
                c.topics.discard(topic)
                c.held.pop(topic, None)
                self._subs.get((c.category, topic), {}).pop(c, None)
            self._reply(c, op, True, ok_msg, req_id)
            return
        for topic, _, _ in resolved:
            c.topics.add(topic)
            self._subs.setdefault((c.category, topic), {})[c] = None
        self._reply(c, op, True, ok_msg, req_id)
        for topic, m, depth in resolved:
            if depth:
                self._on_book_subscribed(c, m, depth, topic)

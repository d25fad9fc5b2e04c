"""The metrics shell: the HTTP server for /metrics, /healthz, /readyz and /debug/book, and the
event-loop sampler. I/O only; the metrics themselves are defined in registry.py and collectors.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from mmd.logs import get_logger
from mmd.metrics.registry import CONTENT_TYPE, Metrics


class LoopMonitor:
    """Samples the event loop: sleeps `interval_s`, records how late it woke
    (`mmd_event_loop_lag_seconds`) and how many tasks are alive (`mmd_event_loop_tasks`)."""

    def __init__(self, metrics: Metrics, interval_s: float = 0.1) -> None:
        self.metrics = metrics
        self.interval_s = interval_s

    async def run(self) -> None:
        """Sample until cancelled."""
        loop = asyncio.get_running_loop()
        lag, tasks = self.metrics.loop_lag, self.metrics.loop_tasks
        while True:
            # the monotonic clock, not loop.time(): uvloop's is cached at 1 ms resolution
            t0 = _monotonic_s()
            await asyncio.sleep(self.interval_s)
            lag.observe(max(0.0, _monotonic_s() - t0 - self.interval_s))
            tasks.set(len(asyncio.all_tasks(loop)))


HealthFn = Callable[[], tuple[bool, dict[str, Any]]]
BookFn = Callable[[str, int], dict[str, Any] | None]

# request line + headers of one request; a GET needs far less
MAX_REQUEST_BYTES = 8192
# /debug/book/{symbol}?depth=N accepts 1..MAX_BOOK_DEPTH
MAX_BOOK_DEPTH = 10_000
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class _Conn:
    """One client connection: reading its request until `reading` turns False."""

    __slots__ = ("reading", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.reading = True


class HttpServer:
    """/metrics, /healthz, /readyz and (when enabled) /debug/book/{symbol} over HTTP/1.1.

    A deliberately small server on asyncio streams: GET and HEAD only, one request per
    connection (`Connection: close`), request line and headers at most MAX_REQUEST_BYTES. Every
    connection must deliver its request within `request_timeout_s` and take the answer within
    it too, else it is closed. At most `max_connections` are open: a new connection over the cap
    closes the oldest one still sending its request (a half-sent request cannot hold a slot
    from a health probe), or gets 503 when all are being answered. A refused request is
    answered (400/404/405/431, JSON `{"ok": false, "error": ...}`), counted in
    `mmd_http_refused_total{reason}` and logged on one line (at most once a second per reason,
    with the number left out), never with a traceback.

    Args:
        metrics: the registry to render (and where the refusals are counted).
        healthy: () -> (ok, detail) for /healthz.
        ready: () -> (ok, detail) for /readyz (503 with the JSON detail when not ready).
        book: (symbol, depth) -> the book as JSON, for /debug/book/{symbol}?depth=N; None
            (the default config) answers 404 there.
        request_timeout_s: the request must arrive, and the answer be taken, within this.
        max_connections: open connections at most.
        clock_s: monotonic seconds, for the log rate limit.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        healthy: HealthFn,
        ready: HealthFn,
        book: BookFn | None = None,
        request_timeout_s: float = 5.0,
        max_connections: int = 32,
        clock_s: Callable[[], float] | None = None,
    ) -> None:
        self.metrics = metrics
        self.healthy = healthy
        self.ready = ready
        self.book = book
        self.timeout_s = request_timeout_s
        self.max_connections = max_connections
        self.log = get_logger("http")
        self.port = 0
        self._conns: dict[asyncio.StreamWriter, _Conn] = {}  # insertion order = age
        self._server: asyncio.Server | None = None
        self._clock_s = clock_s or _monotonic_s
        self._last_log_s: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (0 = any free port; `self.port` is the bound one)."""
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._conns):
            writer.transport.abort()
        self._conns.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- one connection ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= self.max_connections and not self._evict_one():
            self._refuse("too_many_connections", writer)
            try:
                await self._send(writer, 503, _error("too many connections"), head_only=False)
            finally:
                if not writer.is_closing():
                    writer.transport.abort()
            return
        conn = _Conn(writer)
        self._conns[writer] = conn
        try:
            await self._handle(reader, writer, conn)
        finally:
            self._conns.pop(writer, None)
            if not writer.is_closing():
                writer.transport.abort()

    def _evict_one(self) -> bool:
        for writer, conn in self._conns.items():
            if conn.reading:
                self._refuse("evicted", writer)
                writer.transport.abort()
                del self._conns[writer]
                return True
        return False

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn
    ) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            self._refuse("timeout", writer)
            return
        except asyncio.LimitOverrunError:
            self._refuse("too_large", writer)
            await self._send(writer, 431, _error("request head too large"), head_only=False)
            return
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the client went away before finishing its request: nothing to answer
        conn.reading = False
        method, status, body, ctype = self._route(head, writer)
        await self._send(writer, status, body, head_only=method == "HEAD", ctype=ctype)

    def _route(self, head: bytes, writer: asyncio.StreamWriter) -> tuple[str, int, bytes, str]:
        line = head.split(b"\r\n", 1)[0]
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1].startswith(b"/"):
            self._refuse("bad_request", writer)
            return "GET", 400, _error("malformed request line"), _JSON
        method = parts[0].decode("ascii", "replace")
        if method not in ("GET", "HEAD"):
            self._refuse("method", writer)
            return "GET", 405, _error("only GET and HEAD"), _JSON
        try:
            target = urlsplit(parts[1].decode("ascii"))
            query = parse_qs(target.query, keep_blank_values=True, max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            self._refuse("bad_request", writer)
            return method, 400, _error("malformed request target"), _JSON
        path = target.path
        if path == "/metrics":
            return method, 200, self.metrics.render(), CONTENT_TYPE
        if path == "/healthz":
            return method, *_health(*self.healthy()), _JSON
        if path == "/readyz":
            return method, *_health(*self.ready()), _JSON
        if path.startswith("/debug/book/") and self.book is not None:
            symbol = path[len("/debug/book/") :]
            raw = query.get("depth", ["50"])
            ok = len(raw) == 1 and raw[0].isascii() and raw[0].isdigit() and len(raw[0]) < 7
            depth = int(raw[0]) if ok else 0
            if not 1 <= depth <= MAX_BOOK_DEPTH:
                self._refuse("bad_request", writer)
                return (
                    method,
                    400,
                    _error(f"depth must be an integer in 1..{MAX_BOOK_DEPTH}"),
                    _JSON,
                )
            out = self.book(symbol, depth) if _SYMBOL_RE.match(symbol) else None
            if out is None:
                return method, 404, _error("unknown symbol"), _JSON
            return method, 200, orjson.dumps(out), _JSON
        self._refuse("not_found", writer)
        return method, 404, _error("not found"), _JSON

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        *,
        head_only: bool,
        ctype: str = "application/json",
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            writer.write(head if head_only else head + body)
            async with asyncio.timeout(self.timeout_s):
                await writer.drain()
            writer.close()
        except TimeoutError:
            self._refuse("slow_reader", writer)
        except ConnectionError:
            pass  # the client left: nothing more to do for it

    def _refuse(self, reason: str, writer: asyncio.StreamWriter) -> None:
        self.metrics.http_refused.labels(reason).inc()
        now = self._clock_s()
        if now - self._last_log_s.get(reason, -1e18) < 1.0:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            return
        self._last_log_s[reason] = now
        peer = writer.get_extra_info("peername")
        self.log.warning(
            "http_request_refused",
            reason=reason,
            peer=f"{peer[0]}:{peer[1]}" if peer else None,
            not_logged_before=self._unlogged.pop(reason, 0),
        )


_JSON = "application/json"


def _monotonic_s() -> float:
    return time.monotonic()


def _error(message: str) -> bytes:
    return orjson.dumps({"ok": False, "error": message})


def _health(ok: bool, detail: dict[str, Any]) -> tuple[int, bytes]:
    return (200 if ok else 503), orjson.dumps({"ok": ok, **detail})

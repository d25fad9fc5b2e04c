"""A tiny Bybit-shaped venue on loopback, run in its own thread, that misbehaves on purpose:
every book snapshot off the tick grid, oversized websocket frames, oversized REST bodies.
It counts what the client asked for, so a test can read how often it resubscribed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

SYM = "BTCUSDT"
T0 = 1_786_310_817_000  # ms, inside the codec's accepted range


def envelope(result: dict[str, Any]) -> bytes:
    return orjson.dumps({"retCode": 0, "retMsg": "OK", "result": result, "time": T0})


INSTRUMENTS = envelope(
    {
        "category": "linear",
        "list": [
            {
                "symbol": SYM,
                "status": "Trading",
                "priceFilter": {"tickSize": "0.1"},
                "lotSizeFilter": {"qtyStep": "0.001"},
            }
        ],
    }
)
KLINE = envelope(
    {
        "category": "linear",
        "symbol": SYM,
        "list": [[str(T0 // 60_000 * 60_000), "100.0", "100.4", "99.9", "100.2", "3.5", "350"]],
    }
)
TRADES = envelope({"category": "linear", "list": []})


def book_frame(typ: str, u: int, bids: list[list[str]], asks: list[list[str]]) -> bytes:
    return orjson.dumps(
        {
            "topic": f"orderbook.50.{SYM}",
            "type": typ,
            "ts": T0 + u,
            "cts": T0 + u - 1,
            "data": {"s": SYM, "b": bids, "a": asks, "u": u, "seq": 1000 + u},
        }
    )


class MisbehavingVenue:
    """Args:
    off_tick_snapshots: every book snapshot holds a price off the 0.1 tick (always refused).
    ws_junk_bytes: after a good snapshot, one text frame of this many bytes (0 = none).
    rest_body_bytes: /v5/market/kline answers a body of this many bytes (0 = a valid one).
    """

    def __init__(
        self, *, off_tick_snapshots: bool = False, ws_junk_bytes: int = 0, rest_body_bytes: int = 0
    ) -> None:
        self.off_tick = off_tick_snapshots
        self.ws_junk_bytes = ws_junk_bytes
        self.rest_body_bytes = rest_body_bytes
        self.book_subscribes = 0
        self.rest_bytes_sent = 0  # of the oversized bodies: what the client let through
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[MisbehavingVenue]:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v5/public/linear"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v5/market/{endpoint}", self._rest)
        app.router.add_get("/v5/public/linear", self._ws)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        ep = request.match_info["endpoint"]
        if ep == "instruments-info":
            return web.Response(body=INSTRUMENTS, content_type="application/json")
        if ep == "kline" and self.rest_body_bytes:
            resp = web.StreamResponse()
            resp.content_type = "application/json"
            await resp.prepare(request)
            chunk = b" " * 65536
            with contextlib.suppress(ConnectionError):
                for _ in range(self.rest_body_bytes // len(chunk)):
                    await resp.write(chunk)
                    self.rest_bytes_sent += len(chunk)
            return resp
        if ep == "kline":
            return web.Response(body=KLINE, content_type="application/json")
        return web.Response(body=TRADES, content_type="application/json")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        self.connections += 1
        u = 0
        async for msg in ws:
            req = orjson.loads(msg.data)
            op = req.get("op")
            await ws.send_str(
                orjson.dumps(
                    {
                        "success": True,
                        "ret_msg": "pong" if op == "ping" else "",
                        "op": op,
                        "req_id": req.get("req_id", ""),
                    }
                ).decode()
            )
            if op != "subscribe" or not any(a.startswith("orderbook.") for a in req["args"]):
                continue
            self.book_subscribes += 1
            u += 1
            price = "100.05" if self.off_tick else "100.0"
            await ws.send_str(
                book_frame("snapshot", u, [[price, "1.000"]], [["100.5", "2.000"]]).decode()
            )
            if self.ws_junk_bytes:
                await ws.send_str("x" * self.ws_junk_bytes)
        return ws

"""The venue's REST side: the Bybit V5 `/v5/market/*` handlers over the served markets.

Answers from the market state with the REST faults applied (`faults.py` decides); it never
changes a market.

REST `result.ts` is the answer time, `cts` and trade `time` carry the shift they were served
with. The envelope `time` and `/v5/market/time` are the wall clock, or the venue clock
(recorded time domain) with `keep_timestamps`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from mmd.venue.catalog import CATEGORIES
from mmd.venue.faults import FaultPlan
from mmd.venue.klines import KLINE_INTERVALS
from mmd.venue.market import MS_NS, Market, VenueClock

_Handler = Callable[[web.Request], web.Response]


class _ParamError(Exception):
    """A REST request Bybit would answer with retCode 10001."""


class RestApi:
    """The `/v5/market/*` endpoints.

    Args:
        markets: the served markets by (category, symbol).
        clock: the venue clock.
        faults: the configured faults (REST kinds are applied here).
        is_down: True while an `outage` fault has the venue down.
    """

    def __init__(
        self,
        markets: dict[tuple[str, str], Market],
        clock: VenueClock,
        faults: FaultPlan,
        is_down: Callable[[], bool],
    ) -> None:
        self._markets = markets
        self._clock = clock
        self._faults = faults
        self._is_down = is_down
        self.requests = 0

    def add_routes(self, app: web.Application) -> None:
        """Register `GET /v5/market/{instruments-info,orderbook,kline,recent-trade,time}`."""
        market: dict[str, _Handler] = {
            "instruments-info": self._instruments,
            "orderbook": self._orderbook,
            "kline": self._kline,
            "recent-trade": self._recent_trade,
            "time": self._time,
        }
        for name, handler in market.items():
            app.router.add_get(f"/v5/market/{name}", self._wrap(handler))

    def _envelope(
        self, result: dict[str, Any], ret_code: int = 0, ret_msg: str = "OK"
    ) -> web.Response:
        body = {
            "retCode": ret_code,
            "retMsg": ret_msg,
            "result": result,
            "retExtInfo": {},
            "time": self._clock.server_ms(),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _wrap(self, handler: _Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap a REST handler: count the request, inject REST faults, map param errors."""

        async def wrapped(request: web.Request) -> web.Response:
            if self._is_down():
                # a keep-alive connection opened before the outage: cut it, answer nothing
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=503)
            self.requests += 1
            kind = self._faults.rest_hit(self.requests)
            if kind == "http5xx":
                return web.Response(status=503, text="Service Unavailable")
            if kind == "http429":
                return web.Response(status=429, text="Too Many Requests")
            if kind == "http403":
                return web.Response(status=403, text="access too frequent")
            if kind == "retcode":
                return self._envelope({}, 10016, "service restarting")
            if kind == "slow":
                await asyncio.sleep(self._faults.slow_s)
            try:
                return handler(request)
            except _ParamError as exc:
                return self._envelope({}, 10001, str(exc))

        return wrapped

    def _category_param(self, request: web.Request, default: str | None = None) -> str:
        cat = request.query.get("category", default)
        if not cat:
            raise _ParamError("params error: category is required")
        if cat not in CATEGORIES:
            raise _ParamError(
                f"params error: category {cat!r} is not served (one of {', '.join(CATEGORIES)})"
            )
        return cat

    def _market_param(self, request: web.Request, default_category: str | None = None) -> Market:
        cat = self._category_param(request, default_category)
        sym = request.query.get("symbol", "").upper()
        if not sym:
            raise _ParamError("params error: symbol is required")
        m = self._markets.get((cat, sym))
        if m is None:
            raise _ParamError(f"params error: symbol invalid: {sym} is not served on {cat}")
        return m

    @staticmethod
    def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            v = int(raw)
        except ValueError:
            raise _ParamError(f"params error: {name} must be an integer") from None
        if not lo <= v <= hi:
            raise _ParamError(f"params error: {name} must be in [{lo}, {hi}]")
        return v

    def _instruments(self, request: web.Request) -> web.Response:
        cat = self._category_param(request)
        sym = request.query.get("symbol", "").upper()
        if sym:
            m = self._markets.get((cat, sym))
            if m is None:
                raise _ParamError(f"params error: symbol invalid: {sym} is not served on {cat}")
            rows = [m.row]
        else:
            rows = [m.row for (c, _), m in sorted(self._markets.items()) if c == cat]
        return self._envelope({"category": cat, "list": rows, "nextPageCursor": ""})

    def _orderbook(self, request: web.Request) -> web.Response:
        m = self._market_param(request)
        limit = self._int_param(request, "limit", 1 if m.category == "spot" else 25, 1, 1000)
        bids, asks = m.book.top(limit)
        return self._envelope(
            {
                "s": m.symbol,
                "b": m.levels(bids.items()),
                "a": m.levels(asks.items()),
                "ts": m.ts_ms if self._clock.keep else self._clock.now_ms(),
                "u": m.book_u,
                "seq": m.seq,
                "cts": m.cts_ms + m.shift_ms,
            }
        )

    def _kline(self, request: web.Request) -> web.Response:
        m = self._market_param(request, default_category="linear")
        interval = request.query.get("interval", "")
        if interval not in KLINE_INTERVALS:
            raise _ParamError(f"params error: interval must be one of {' '.join(KLINE_INTERVALS)}")
        limit = self._int_param(request, "limit", 200, 1, 1000)
        start = self._int_param(request, "start", 0, 0, 1 << 62)
        end = self._int_param(request, "end", 1 << 62, 0, 1 << 62)
        rows = [r for r in m.kline_rows(interval) if start <= int(r[0]) <= end]
        return self._envelope(
            {"category": m.category, "symbol": m.symbol, "list": rows[-limit:][::-1]}
        )

    def _recent_trade(self, request: web.Request) -> web.Response:
        m = self._market_param(request)
        spot = m.category == "spot"
        limit = self._int_param(request, "limit", 60 if spot else 500, 1, 60 if spot else 1000)
        out = []
        for tid, t, shift in list(m.trades)[-limit:][::-1]:
            out.append(
                {
                    "execId": tid,
                    "symbol": m.symbol,
                    "price": t["p"],
                    "size": t["v"],
                    "side": t["S"],
                    "time": str(int(t["T"]) + shift),
                    "isBlockTrade": bool(t.get("BT", False)),
                    "isRPITrade": bool(t.get("RPI", False)),
                    "seq": str(t.get("seq") or 0),
                }
            )
        return self._envelope({"category": m.category, "list": out})

    def _time(self, request: web.Request) -> web.Response:
        ms = self._clock.server_ms()
        return self._envelope({"timeSecond": str(ms // 1000), "timeNano": str(ms * MS_NS)})

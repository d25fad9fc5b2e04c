"""Bybit V5 public REST over one aiohttp ClientSession: instruments-info and market polls.

Checks both the HTTP status and `retCode`, applies a client-side rate limit well under Bybit's
600 requests / 5 s per IP, and retries transient failures with capped, jittered backoff. It hands
raw bodies to a callback (the same path websocket frames take) and holds no trading logic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from mmd.clock import Clock
from mmd.config import RestConfig
from mmd.errors import PermanentRequestError, TransientError
from mmd.feeds.backoff import Backoff
from mmd.logs import get_logger

# retCodes worth retrying (BYBIT_V5_NOTES.md 2.5); 10001/10017/10029 and others are permanent
RETRY_RETCODES = frozenset({10000, 10006, 10016})

OnBody = Callable[[bytes, int], None]
OnOutcome = Callable[[str, str], None]


class RateLimiter:
    """A token bucket: at most `rate_per_s` requests per second, bursts of up to `burst`."""

    def __init__(self, rate_per_s: float, clock: Clock, burst: float = 5.0) -> None:
        self.rate = rate_per_s
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self._clock = clock
        self._last_ns = clock.mono_ns()

    def delay_s(self) -> float:
        """Take a token; return how long to wait first (0 when one was available)."""
        now = self._clock.mono_ns()
        self.tokens = min(self.burst, self.tokens + (now - self._last_ns) / 1e9 * self.rate)
        self._last_ns = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class VenueForbidden(TransientError):
    """HTTP 403: Bybit's per-IP ban ("access too frequent"); wait before asking again."""


class BybitRest:
    """Public market REST client.

    Args:
        base_url: e.g. https://api.bybit.com or http://127.0.0.1:8800 (serve-venue).
        category: linear, spot or inverse.
        cfg: timeouts, intervals, rate limit and backoff.
        session: the process's one ClientSession.
        clock: for stamping ts_recv_ns and the rate limiter.
        on_outcome: (endpoint, outcome) callback for metrics (ok, http_5xx, retcode, ...).
    """

    def __init__(
        self,
        base_url: str,
        category: str,
        cfg: RestConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        on_outcome: OnOutcome | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.category = category
        self.cfg = cfg
        self.session = session
        self.clock = clock
        self.limiter = RateLimiter(cfg.max_requests_per_s, clock)
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        self._on_outcome = on_outcome or (lambda e, o: None)
        self.log = get_logger("feed.rest")

    async def get(self, path: str, params: dict[str, Any]) -> tuple[bytes, int]:
        """One GET; returns (body, ts_recv_ns) for a retCode-0 answer.

        Raises:
            TransientError: timeout, connection failure, HTTP 5xx/429/403, retryable retCode.
            PermanentRequestError: a retCode that retrying will not fix (bad symbol, ...).
        """
        wait = self.limiter.delay_s()
        if wait > 0:
            await asyncio.sleep(wait)
        endpoint = path.rsplit("/", 1)[-1]
        url = f"{self.base_url}{path}"
        try:
            async with self.session.get(url, params=params, timeout=self._timeout) as resp:
                body = await self._read_capped(resp)
                ts_recv_ns = self.clock.now_ns()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._on_outcome(endpoint, "error")
            raise TransientError(f"GET {path}: {type(exc).__name__}: {exc}") from None
        if body is None:
            self._on_outcome(endpoint, "too_large")
            raise TransientError(
                f"GET {path}: body larger than {self.cfg.max_body_bytes} bytes "
                "(rest.max_body_bytes)"
            )
        if status != 200:
            outcome = "http_5xx" if status >= 500 else f"http_{status}"
            self._on_outcome(endpoint, outcome)
            if status == 403:
                raise VenueForbidden(f"GET {path}: HTTP 403")
            if status == 429 or status >= 500:
                raise TransientError(f"GET {path}: HTTP {status}")
            raise PermanentRequestError(f"GET {path}: HTTP {status}")
        try:
            env = orjson.loads(body)
            ret_code = env["retCode"]
            if type(ret_code) is not int:
                raise TypeError("retCode is not an integer")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
            self._on_outcome(endpoint, "malformed")
            raise TransientError(f"GET {path}: malformed body") from None
        if ret_code != 0:
            self._on_outcome(endpoint, "retcode")
            msg = f"GET {path}: retCode {ret_code} {env.get('retMsg', '')!r}"
            if ret_code in RETRY_RETCODES:
                raise TransientError(msg)
            raise PermanentRequestError(msg)
        self._on_outcome(endpoint, "ok")
        return body, ts_recv_ns

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes | None:
        """The body, or None (the connection dropped) once it exceeds max_body_bytes: the
        declared length is checked first, then the bytes as they arrive (decompressed)."""
        limit = self.cfg.max_body_bytes
        if resp.content_length is not None and resp.content_length > limit:
            resp.close()
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                resp.close()
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _floor(self, exc: TransientError) -> float:
        return self.cfg.forbidden_backoff_s if isinstance(exc, VenueForbidden) else 0.0

    async def get_retrying(
        self, path: str, params: dict[str, Any], *, attempts: int | None = None
    ) -> tuple[bytes, int]:
        """GET with capped jittered backoff on transient errors (forever when attempts is None)."""
        backoff = Backoff(self.cfg.backoff_base_s, self.cfg.backoff_max_s)
        n = 0
        while True:
            try:
                return await self.get(path, params)
            except TransientError as exc:
                n += 1
                if attempts is not None and n >= attempts:
                    raise
                floor = self._floor(exc)
                delay = backoff.next_delay(floor)
                self.log.warning("rest_retried", error=str(exc), delay_s=round(delay, 3))
                await asyncio.sleep(delay)

    async def instruments(self, symbol: str) -> tuple[bytes, int]:
        """`/v5/market/instruments-info` for one symbol."""
        return await self.get_retrying(
            "/v5/market/instruments-info", {"category": self.category, "symbol": symbol}
        )

    async def poll(
        self, path: str, params: dict[str, Any], interval_s: float, on_body: OnBody
    ) -> None:
        """Poll forever at interval_s; failures back off (capped, jittered) and are logged."""
        backoff = Backoff(self.cfg.backoff_base_s, self.cfg.backoff_max_s)
        while True:
            try:
                body, ts = await self.get(path, params)
            except TransientError as exc:
                floor = self._floor(exc)
                delay = backoff.next_delay(floor)
                self.log.warning(
                    "rest_poll_failed", path=path, error=str(exc), delay_s=round(delay, 3)
                )
                await asyncio.sleep(delay)
                continue
            except PermanentRequestError as exc:
                # a bad request stays bad: log it and slow right down rather than hammer
                self.log.error("rest_poll_rejected", path=path, error=str(exc))
                await asyncio.sleep(max(interval_s, self.cfg.backoff_max_s))
                continue
            backoff.reset()
            on_body(body, ts)
            await asyncio.sleep(interval_s)

    def orderbook_params(self, symbol: str) -> dict[str, Any]:
        """Query of `/v5/market/orderbook`."""
        return {"category": self.category, "symbol": symbol, "limit": self.cfg.orderbook_limit}

    def kline_params(self, symbol: str) -> dict[str, Any]:
        """Query of `/v5/market/kline` (1-minute candles, the last 10)."""
        return {"category": self.category, "symbol": symbol, "interval": "1", "limit": 10}

    def trades_params(self, symbol: str) -> dict[str, Any]:
        """Query of `/v5/market/recent-trade` (the last 100 trades)."""
        return {"category": self.category, "symbol": symbol, "limit": 100}

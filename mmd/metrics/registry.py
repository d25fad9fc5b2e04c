"""The registry: the metrics shell components update directly, and the binding of the scrape-time
collectors. With collectors.py, the only place a metric (`mmd_*`) is defined; no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from mmd.market.hub import MarketHub
from mmd.metrics.collectors import HubCollector, StrategyCollector, TraderCollector
from mmd.strategy.engine import SymbolStrategy
from mmd.trading.trader import Trader

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# 1 µs .. 60 s, log-spaced (1, 2, 5 per decade): resolves a fast decision and a starved one
TICK_TO_QUOTE_BUCKETS = (
    *(round(m * 10.0**e, 12) for e in range(-6, 2) for m in (1, 2, 5) if m * 10.0**e < 50),
    60.0,
)


# 0.5 ms .. 10 s: a loop that keeps up stays in the first buckets; a stalled one shows in full
LOOP_LAG_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)


class Metrics:
    """Owns the registry. Shell components get the few metrics they update directly."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconnects = Counter(
            "mmd_feed_reconnects",
            "Websocket (re)connections after a failure or stall",
            registry=r,
        )
        self.rest_requests = Counter(
            "mmd_feed_rest_requests",
            "REST requests by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.stale_events = Counter(
            "mmd_feed_stale", "Times a symbol's book was flagged stale", ["symbol"], registry=r
        )
        self.tick_to_quote = Histogram(
            "mmd_tick_to_quote_seconds",
            "Book frame to quotes decided, from its receive stamp (stamp=recv) or its exchange "
            "stamp (stamp=exch)",
            ["stamp"],
            buckets=TICK_TO_QUOTE_BUCKETS,
            registry=r,
        )
        self.quote_decisions = Counter(
            "mmd_quote_decisions",
            "Quote decisions that reacted to a new book, per symbol, by trigger (inline: no "
            "newer frame waiting; backlog: coalesced under a backlog; timer: requote timer)",
            ["trigger"],
            registry=r,
        )
        self.up_since = Gauge("mmd_start_time_seconds", "Unix time the daemon started", registry=r)
        self.oversized_frames = Counter(
            "mmd_feed_oversized_frames",
            "Websocket messages over [ws] max_frame_bytes (each closed its connection)",
            registry=r,
        )
        self.http_refused = Counter(
            "mmd_http_refused",
            "HTTP requests or connections refused by the metrics server, by "
            "reason (timeout, too_large, bad_request, method, not_found, evicted, "
            "too_many_connections, slow_reader)",
            ["reason"],
            registry=r,
        )
        self.model_info = Gauge(
            "mmd_model_info",
            "1 per learned model in use (model: adverse|spread|rl, version: its content hash)",
            ["model", "version"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "mmd_event_loop_lag_seconds",
            "How late the event loop woke a sleep of LoopMonitor.interval_s (lag of every "
            "callback at that moment)",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.loop_tasks = Gauge(
            "mmd_event_loop_tasks", "asyncio tasks alive in the event loop", registry=r
        )
        # process_open_fds, process_resident_memory_bytes, process_cpu_seconds_total, ...
        ProcessCollector(registry=r)

    def bind_trader(self, trader: Trader) -> None:
        """Export positions, PnL, fills, the kill switch, quotes and model state."""
        self.registry.register(TraderCollector(trader))
        self.bind_strategies(trader.strategies)

    def bind_strategies(self, strategies: Mapping[str, SymbolStrategy]) -> None:
        """Export quotes, model parameters and warm-up state at scrape time."""
        self.registry.register(StrategyCollector(strategies))

    def bind_hub(self, hub: MarketHub) -> None:
        """Export the hub's counters and per-symbol state at scrape time."""
        self.registry.register(HubCollector(hub))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

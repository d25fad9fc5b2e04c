"""Every Prometheus metric (`mmd_*`) and the HTTP endpoints /metrics, /healthz, /readyz.

Nobody else creates metrics. Counters that change per frame live as plain ints in the core
(MarketHub) and are read here at scrape time, so the hot path never touches prometheus_client.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from mmd.logs import get_logger
from mmd.market.hub import MarketHub
from mmd.market.provisional import provisional_values
from mmd.strategy.engine import SymbolStrategy
from mmd.strategy.hedge import PortfolioHedge
from mmd.trading.happened import EXCHANGE_REJECT_REASONS
from mmd.trading.trader import Trader

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _HubCollector(Collector):
    """Reads MarketHub counters and per-symbol state at scrape time."""

    def __init__(self, hub: MarketHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        stats = hub.stats
        msgs = CounterMetricFamily(
            "mmd_feed_messages", "Frames received and decoded, by topic kind", labels=["topic"]
        )
        for topic, n in sorted(stats.messages.items()):
            msgs.add_metric([topic], n)
        yield msgs
        yield CounterMetricFamily(
            "mmd_feed_decode_errors",
            "Malformed or truncated frames counted and skipped",
            value=stats.decode_errors,
        )
        frame_errors = CounterMetricFamily(
            "mmd_feed_frame_errors",
            "Exceptions absorbed while handling one frame (counted, logged, symbol resynced), "
            "by stage",
            labels=["stage"],
        )
        for stage, n in sorted(stats.frame_errors.items()):
            frame_errors.add_metric([stage], n)
        yield frame_errors
        yield CounterMetricFamily(
            "mmd_feed_dropped_frames",
            "Book frames dropped (duplicate or stale update id, or waiting for a snapshot)",
            value=stats.dropped_frames,
        )
        resyncs = CounterMetricFamily(
            "mmd_feed_resyncs",
            "Book resyncs started, by symbol and reason",
            labels=["symbol", "reason"],
        )
        for (sym, reason), n in sorted(stats.resyncs.items()):
            resyncs.add_metric([sym, reason], n)
        yield resyncs
        rest_err = CounterMetricFamily(
            "mmd_feed_rest_retcode_errors",
            "REST answers with a non-zero retCode",
            labels=["retcode"],
        )
        for code, n in sorted(stats.rest_errors.items()):
            rest_err.add_metric([str(code)], n)
        yield rest_err

        lag = GaugeMetricFamily(
            "mmd_feed_lag_seconds",
            "Receive time minus venue time of the last book frame",
            labels=["symbol"],
        )
        synced = GaugeMetricFamily(
            "mmd_feed_book_synced", "1 while the symbol's book is in sync", labels=["symbol"]
        )
        stale = GaugeMetricFamily(
            "mmd_feed_book_stale",
            "1 while the symbol's book had no recent update",
            labels=["symbol"],
        )
        updates = CounterMetricFamily(
            "mmd_feed_book_updates", "Book frames applied", labels=["symbol"]
        )
        mid = GaugeMetricFamily("mmd_market_mid_price", "Mid price", labels=["symbol"])
        spread = GaugeMetricFamily(
            "mmd_market_spread_bps",
            "Best ask minus best bid over mid, in basis points",
            labels=["symbol"],
        )
        levels = GaugeMetricFamily(
            "mmd_market_book_levels", "Price levels held in the book", labels=["symbol", "side"]
        )
        ring_bytes = GaugeMetricFamily(
            "mmd_market_state_bytes",
            "Bytes held by the book and ring buffers (fixed)",
            labels=["symbol"],
        )
        trades = CounterMetricFamily(
            "mmd_market_trades", "Public trades recorded", labels=["symbol"]
        )
        feats = GaugeMetricFamily(
            "mmd_feature_value",
            "Microstructure features (units in the feature name; see the README)",
            labels=["symbol", "feature"],
        )
        ready = GaugeMetricFamily(
            "mmd_feature_ready",
            "1 once the feature has a value, 0 while it waits for data (e.g. gk_log_per_s for "
            "the first closed 1-minute kline, vpin for its first full volume bucket)",
            labels=["symbol", "feature"],
        )
        provisional = GaugeMetricFamily(
            "mmd_feature_provisional",
            "Stand-in for a feature that has no value yet, only while it has none: "
            "gk_log_per_s of the open 1-minute kline, vpin as |buy - sell| / volume of the "
            "trades so far (one open bucket); never used for trading",
            labels=["symbol", "feature"],
        )
        for sym, st in sorted(hub.states.items()):
            lag.add_metric([sym], st.lag_s)
            synced.add_metric([sym], 1.0 if st.sync.synced else 0.0)
            stale.add_metric([sym], 1.0 if st.stale else 0.0)
            updates.add_metric([sym], st.book_updates)
            trades.add_metric([sym], st.trades.total)
            for name, value in st.features.values().items():
                ready.add_metric([sym, name], 1.0 if value == value else 0.0)
                if value == value:  # NaN until defined: leave the series out
                    feats.add_metric([sym, name], value)
            for name, value in provisional_values(st).items():
                provisional.add_metric([sym, name], value)
            levels.add_metric([sym, "bid"], st.book.n_bids)
            levels.add_metric([sym, "ask"], st.book.n_asks)
            ring_bytes.add_metric([sym], st.nbytes)
            m = st.book.mid_ticks()
            if st.sync.synced and m == m:
                mid.add_metric([sym], m * st.instrument.tick)
                spread.add_metric([sym], 1e4 * st.book.spread_ticks() / m)
        yield from (
            lag,
            synced,
            stale,
            updates,
            mid,
            spread,
            levels,
            ring_bytes,
            trades,
            feats,
            ready,
            provisional,
        )


_GATE_STATES = ("waiting", "fallback", "calibrated")


class _StrategyCollector(Collector):
    """Reads each symbol's strategy (quotes, model parameters, warm-up) at scrape time."""

    def __init__(self, strategies: Mapping[str, SymbolStrategy]) -> None:
        self.strategies = strategies

    def collect(self) -> Iterator[Metric]:
        bid = GaugeMetricFamily("mmd_quote_bid_price", "Our best bid quote", labels=["symbol"])
        ask = GaugeMetricFamily("mmd_quote_ask_price", "Our best ask quote", labels=["symbol"])
        half = GaugeMetricFamily(
            "mmd_quote_half_spread_bps",
            "Half of our quoted spread over the mid, in bps",
            labels=["symbol"],
        )
        resv = GaugeMetricFamily(
            "mmd_quote_reservation_price",
            "The model's reservation (indifference) price",
            labels=["symbol"],
        )
        vol = GaugeMetricFamily(
            "mmd_model_volatility",
            "Volatility used for quoting: std of relative mid changes per sqrt(second)",
            labels=["symbol"],
        )
        kappa = GaugeMetricFamily(
            "mmd_model_kappa",
            "Fill-intensity decay kappa, per tick from the mid",
            labels=["symbol"],
        )
        a = GaugeMetricFamily(
            "mmd_model_intensity_a", "Fill intensity at the mid A, per second", labels=["symbol"]
        )
        ready = GaugeMetricFamily(
            "mmd_strategy_ready",
            "1 for the strategy's current warm-up state: waiting, fallback (quoting from "
            "fallback parameters after warmup_s) or calibrated",
            labels=["symbol", "state"],
        )
        fits = CounterMetricFamily(
            "mmd_model_fits", "Intensity refits by outcome", labels=["symbol", "outcome"]
        )
        orders = CounterMetricFamily(
            "mmd_quote_orders", "Quote orders sent by kind", labels=["symbol", "kind"]
        )
        p_adv = GaugeMetricFamily(
            "mmd_adverse_selection_probability",
            "The adverse-selection detector's probability that a fill of our quote on this "
            "side is adverse, at the last decision (side=ask: a buyer lifts it)",
            labels=["symbol", "side"],
        )
        rl_actions = CounterMetricFamily(
            "mmd_rl_action",
            "RL decisions by the action chosen (g<gamma multiplier>_s<skew ticks>), every symbol",
            labels=["action"],
        )
        rl_counts: dict[str, int] = {}
        for sym, s in sorted(self.strategies.items()):
            if s.rl is not None:
                for label, n in zip(s.rl.policy.labels, s.rl.counts.tolist(), strict=True):
                    rl_counts[label] = rl_counts.get(label, 0) + n
            p_buy, p_sell = s.p_adverse
            if p_buy == p_buy and p_sell == p_sell:
                p_adv.add_metric([sym, "ask"], p_buy)
                p_adv.add_metric([sym, "bid"], p_sell)
            cal = s.calibrator
            inst = s.instrument
            for state in _GATE_STATES:
                ready.add_metric([sym, state], 1.0 if s.gate.state == state else 0.0)
            kappa.add_metric([sym], cal.kappa)
            a.add_metric([sym], cal.a)
            fits.add_metric([sym, "good"], cal.fits - cal.poor_fits)
            fits.add_metric([sym, "poor"], cal.poor_fits)
            orders.add_metric([sym, "submit"], s.submits)
            orders.add_metric([sym, "cancel"], s.cancels)
            t = s.target
            if t is None:
                continue
            mid = (t.bids[0][0] + t.asks[0][0]) / 2 if t.bids and t.asks else t.reservation_ticks
            if mid > 0:
                vol.add_metric([sym], cal.sigma / mid)
                half.add_metric([sym], 1e4 * t.half_spread_ticks / mid)
            resv.add_metric([sym], inst.ticks_to_px(t.reservation_ticks))
            if t.bids:
                bid.add_metric([sym], inst.ticks_to_px(t.bids[0][0]))
            if t.asks:
                ask.add_metric([sym], inst.ticks_to_px(t.asks[0][0]))
        for label, n in sorted(rl_counts.items()):
            rl_actions.add_metric([label], n)
        yield from (bid, ask, half, resv, vol, kappa, a, ready, fits, orders, p_adv, rl_actions)


class _TraderCollector(Collector):
    """Reads positions, PnL, fills, open orders and the kill switch at scrape time."""

    def __init__(self, trader: Trader) -> None:
        self.trader = trader

    def collect(self) -> Iterator[Metric]:
        tr = self.trader
        pf = tr.portfolio
        pos = GaugeMetricFamily(
            "mmd_position_base", "Position in base units (+ long)", labels=["symbol"]
        )
        pnl = GaugeMetricFamily(
            "mmd_pnl_quote",
            "PnL in quote currency: realized, unrealized (marked to mid), fees (paid, so "
            "subtracted from total; negative = rebates), funding, total",
            labels=["component"],
        )
        sym_pnl = GaugeMetricFamily(
            "mmd_symbol_pnl_quote", "Total PnL per symbol", labels=["symbol"]
        )
        open_orders = GaugeMetricFamily(
            "mmd_orders_open", "Our resting or in-flight orders", labels=["symbol", "side"]
        )
        net_delta = 0.0  # sum of position x mid, quote currency
        for sym, st in sorted(tr.hub.states.items()):
            inst = st.instrument
            lots = pf.position_lots(sym)
            pos.add_metric([sym], inst.lots_to_qty(lots))
            if lots != 0:
                net_delta += lots * inst.lot * st.book.mid_ticks() * inst.tick
            if sym in pf.symbols:
                sym_pnl.add_metric([sym], pf.position(sym).pnl_quote)
            orders = tr.oms.open_orders(sym)
            for side, name in ((1, "buy"), (-1, "sell")):
                open_orders.add_metric([sym, name], sum(1 for o in orders if o.side == side))
        pnl.add_metric(["realized"], pf.realized_quote)
        pnl.add_metric(["unrealized"], pf.unrealized_quote)
        pnl.add_metric(["fees"], pf.fees_quote)
        pnl.add_metric(["funding"], pf.funding_quote)
        pnl.add_metric(["total"], pf.total_pnl_quote)
        fills = CounterMetricFamily("mmd_fills", "Paper fills by side", labels=["side"])
        fills.add_metric(["buy"], tr.fills_by_side[1])
        fills.add_metric(["sell"], tr.fills_by_side[-1])
        rej = CounterMetricFamily(
            "mmd_orders_rejected",
            "Commands refused by the paper exchange or the risk gate",
            labels=["source", "reason"],
        )
        # every label of the bounded sets, zeros included (a stable series set)
        for reason in (*EXCHANGE_REJECT_REASONS, "other"):
            rej.add_metric(["exchange", reason], tr.rejected_by_reason.get(reason, 0))
        for reason, n in sorted(tr.risk.rejections.items()):
            rej.add_metric(["risk", reason], n)
        markout = SummaryMetricFamily(
            "mmd_fill_markout_ticks",
            "Markout of our fills: side * (mid h seconds after the fill - fill price), in ticks "
            "(negative = adverse selection); mean = _sum / _count",
            labels=["symbol", "horizon"],
        )
        for (sym, h), (total, n) in sorted(tr.markouts.items()):
            markout.add_metric([sym, f"{h}s"], count_value=n, sum_value=total)
        halted = GaugeMetricFamily("mmd_risk_halted", "1 while the kill switch holds quotes")
        halted.add_metric([], 1.0 if tr.risk.halted else 0.0)
        net = GaugeMetricFamily(
            "mmd_net_delta_quote",
            "Net delta of the book: sum of position x mid over the symbols, "
            "quote currency (NaN while a held symbol has no mid)",
        )
        net.add_metric([], net_delta)
        yield from (pos, pnl, sym_pnl, open_orders, fills, rej, markout, halted, net)
        if tr.hedge is not None:
            yield from _hedge_metrics(tr.hedge)


def _hedge_metrics(hedge: PortfolioHedge) -> Iterator[Metric]:
    """The beta hedge's betas, their standard errors and the hedge target ([hedge] enabled)."""
    beta = GaugeMetricFamily(
        "mmd_hedge_beta",
        "Beta of the symbol's log returns on the hedge instrument's (NaN until min_samples)",
        labels=["symbol"],
    )
    se = GaugeMetricFamily(
        "mmd_hedge_beta_se", "Standard error of mmd_hedge_beta", labels=["symbol"]
    )
    for sym, (b, s) in hedge.betas().items():
        beta.add_metric([sym], b)
        se.add_metric([sym], s)
    target = GaugeMetricFamily(
        "mmd_hedge_target_lots",
        "Hedge target in the hedge instrument's lots: -sum beta_i x "
        "notional_i / (mid x lot) of the hedge instrument",
    )
    target.add_metric([], hedge.target_lots)
    skew = GaugeMetricFamily(
        "mmd_hedge_skew_ticks", "Skew given to the hedge instrument's quotes, ticks"
    )
    skew.add_metric([], hedge.skew_ticks)
    yield from (beta, se, target, skew)


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
        self.registry.register(_TraderCollector(trader))
        self.bind_strategies(trader.strategies)

    def bind_strategies(self, strategies: Mapping[str, SymbolStrategy]) -> None:
        """Export quotes, model parameters and warm-up state at scrape time."""
        self.registry.register(_StrategyCollector(strategies))

    def bind_hub(self, hub: MarketHub) -> None:
        """Export the hub's counters and per-symbol state at scrape time."""
        self.registry.register(_HubCollector(hub))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


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

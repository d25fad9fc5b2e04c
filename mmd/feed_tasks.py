"""The daemon's feed coroutines: Bybit (instruments, REST polls, websocket), the synthetic market
paced in real time, a replay. Shell: every frame goes to the daemon's handle_frame; no trading
logic.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp

from mmd.clock import ManualClock
from mmd.errors import ConfigError, PermanentRequestError
from mmd.feeds.bybit_rest import BybitRest
from mmd.feeds.bybit_ws import BybitStream
from mmd.feeds.replay import run_replay, select_recordings
from mmd.feeds.synthetic import SyntheticMarket

if TYPE_CHECKING:
    from mmd.app import Daemon


async def bybit_jobs(
    d: Daemon, session: aiohttp.ClientSession
) -> list[tuple[str, Coroutine[Any, Any, None]]]:
    """Load instruments (retrying while the venue is unreachable); the Bybit feed's jobs."""
    cfg = d.cfg
    rest = BybitRest(
        cfg.venue.rest_url,
        cfg.feed.category,
        cfg.rest,
        session,
        d.clock,
        on_outcome=lambda e, o: d.metrics.rest_requests.labels(e, o).inc(),
    )
    for sym in cfg.feed.symbols:
        refused = 0
        while True:
            try:
                body, ts = await rest.instruments(sym)
            except PermanentRequestError as exc:
                raise ConfigError(f"feed.symbols: {sym}: {exc}") from None
            errors = d.hub.stats.decode_errors + sum(d.hub.stats.frame_errors.values())
            d.handle_frame(body, ts)
            if errors == (d.hub.stats.decode_errors + sum(d.hub.stats.frame_errors.values())):
                break
            # a refused answer says nothing about the symbol: ask again, never guess steps
            refused += 1
            delay = min(cfg.rest.backoff_max_s, cfg.rest.backoff_base_s * 2 ** min(refused, 16))
            d.log.warning("instruments_refused", symbol=sym, retry_in_s=delay)
            await asyncio.sleep(delay)
        if sym not in d.hub.states:
            raise ConfigError(
                f"feed.symbols: {sym} is not listed by the venue for category {cfg.feed.category}"
            )
    d.log.info("instruments_loaded", symbols=list(d.hub.states))
    jobs: list[tuple[str, Coroutine[Any, Any, None]]] = []

    def sink(raw: bytes, ts_recv_ns: int) -> None:
        d.handle_frame(raw, ts_recv_ns)

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
            d.clock,
            on_frame=d.handle_frame,
            on_disconnected=d.hub.mark_unsynced,
            on_reconnect=d.metrics.reconnects.inc,
            on_oversized=d.metrics.oversized_frames.inc,
            # funding rate and times for perpetual positions (spot has no funding)
            tickers=cfg.exchange.funding and cfg.feed.category != "spot",
        )
        d.streams.append(stream)
        if d.scheduler is not None:
            d.scheduler.backlog = stream.backlog
        jobs.append(("feed.bybit.ws", stream.run()))
    return jobs


async def run_synthetic(d: Daemon) -> None:
    """The synthetic market's frames, paced in real time."""
    cfg = d.cfg
    start_ns = d.clock.now_ns()
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

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    behind = [False]  # the next frame is already due: the quotes may be coalesced
    if d.scheduler is not None:
        d.scheduler.backlog = lambda: behind[0]
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
        d.handle_frame(frame, d.clock.now_ns())


async def run_replay_feed(d: Daemon) -> None:
    """Replay the configured recordings on the daemon's ManualClock, then log the books."""
    cfg = d.cfg
    files = select_recordings(cfg.feed.replay.paths, cfg.feed.category, cfg.feed.symbols)
    if not files:
        raise ConfigError(
            "feed.replay.paths: no recording of category "
            f"{cfg.feed.category} for {', '.join(cfg.feed.symbols)}"
        )
    assert isinstance(d.clock, ManualClock)
    trader = d.trader
    n = await run_replay(
        files,
        d.clock,
        d.handle_frame,
        speed=cfg.feed.replay.speed,
        catching_up=trader.catching_up if trader is not None else bool,
    )
    if trader is not None:
        trader.finish_replay()  # the whole journal must have been reproduced
    d.replay_done = True
    books = {}
    for sym, st in d.hub.states.items():
        bb, ba = st.book.best_bid(), st.book.best_ask()
        books[sym] = {
            "seq": st.book.seq,
            "u": st.book.u,
            "best_bid": bb,
            "best_ask": ba,
            "trades": st.trades.total,
            "klines": st.klines.total,
        }
    d.log.info(
        "replay_finished",
        frames=n,
        files=[str(f) for f in files],
        decode_errors=d.hub.stats.decode_errors,
        books=books,
    )

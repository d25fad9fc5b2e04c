"""The venue's replay: applies the recorded events to the markets as venue time passes them.

Reads frames (through `catalog.iter_events`), updates the market state and hands what changed
to the fan-out; it never answers a request or touches a socket itself.

* **One replay clock.** Venue time starts at the earliest `ts_recv_ns` of all files when the
  venue starts and advances at `speed` x real time. A single task applies the events in
  recorded order as venue time passes them. After the last event the venue keeps serving the
  final state (REST, pings, subscriptions) and reports `finished`.
* **Source streams.** Per symbol, the deepest recorded `orderbook.N` topic is the source of the
  full book (other depths are ignored: an `orderbook.1` snapshot would otherwise wipe a
  200-level book); recorded REST orderbook answers are used only when no websocket book was
  recorded. Likewise websocket `publicTrade`/`kline` frames win over recorded REST
  recent-trade/kline answers. Without any recorded klines, 1-minute candles are built from the
  trades (REST `kline` and `kline.1.SYM` frames).
* **Trades and klines.** `publicTrade.SYM` frames are broadcast as the replay passes them
  (ids and fields kept). Recorded `kline.I.SYM` frames are passed through to `kline.I.SYM`
  subscribers; `tickers.SYM` frames are passed through as recorded (`ts` re-based).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import structlog

from mmd.feeds.bybit_codec import BookMsg, DecodeError, KlineMsg, TradesMsg, decode_frame
from mmd.venue.catalog import FileScan, iter_events, rest_symbol
from mmd.venue.klines import MINUTE_MS, TradeCandle, kline_interval_from_rows
from mmd.venue.market import Market, VenueClock
from mmd.venue.views import BookViews
from mmd.venue.ws import Fanout

# a lazy proxy: the configuration made later by the CLI applies (`.bind()` here would freeze it)
log = structlog.get_logger(component="venue")


class BadFrame(Exception):
    """A recorded frame with missing or ill-typed fields (counted in stats, skipped)."""


@contextlib.contextmanager
def _frame_fields() -> Iterator[None]:
    """Turn the errors of reading a recorded frame's fields into BadFrame.

    Only field extraction runs inside it, before any state changes, so a bug in the venue's own
    code is never mistaken for a bad recording.
    """
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise BadFrame(f"{type(exc).__name__}: {exc}") from None


class Replay:
    """Applies every recorded event to its market, on the venue clock.

    Args:
        files: the scanned recordings.
        markets: the served markets by (category, symbol).
        clock: the venue clock.
        fanout: the websocket connections (trade, kline and ticker frames are broadcast).
        views: the book views (updated after every source book frame).
        on_source_book: called after every applied source book frame (the `outage` counter).
    """

    def __init__(
        self,
        files: list[FileScan],
        markets: dict[tuple[str, str], Market],
        clock: VenueClock,
        fanout: Fanout,
        views: BookViews,
        on_source_book: Callable[[], None],
    ) -> None:
        self._files = files
        self._markets = markets
        self._clock = clock
        self._fanout = fanout
        self._views = views
        self._on_source_book = on_source_book
        self.finished = False
        self.events_applied = 0
        self.replay_ts_ns = clock.t0_ns  # stamp of the last applied event
        self.bad_frames = 0
        self.ignored_frames = 0

    async def run(self) -> None:
        """Apply every recorded event when venue time passes its ts_recv_ns."""
        since_yield = 0
        for ts, fi, raw in iter_events(self._files):
            delay_ns = self._clock.delay_ns(ts)
            if delay_ns > 0:
                await asyncio.sleep(delay_ns / 1e9)
                since_yield = 0
            elif since_yield >= 64:
                # running behind: let the writers and the REST handlers breathe
                await asyncio.sleep(0)
                since_yield = 0
            self.replay_ts_ns = max(self.replay_ts_ns, ts)
            self._apply_event(fi, raw)
            self.events_applied += 1
            since_yield += 1
        self._fanout.flush_held()
        self.finished = True
        log.info("venue_replay_finished", events=self.events_applied, bad_frames=self.bad_frames)

    def _apply_event(self, fi: int, raw: bytes) -> None:
        category = self._files[fi].category
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.bad_frames += 1
            return
        if not isinstance(obj, dict):
            self.bad_frames += 1
            return
        try:
            topic = obj.get("topic")
            if isinstance(topic, str):
                self._apply_ws(category, topic, obj)
            elif "retCode" in obj:
                self._apply_rest(category, raw, obj)
            else:
                self.ignored_frames += 1
        except (BadFrame, DecodeError) as exc:
            self.bad_frames += 1
            log.debug("venue_bad_frame", error=str(exc))

    def _apply_ws(self, category: str, topic: str, obj: dict[str, Any]) -> None:
        parts = topic.split(".")
        m = self._markets.get((category, parts[-1]))
        if m is None or len(parts) < 2:
            self.ignored_frames += 1
            return
        head = parts[0]
        if head == "orderbook" and parts[1] == str(m.book_source):
            with _frame_fields():
                data = obj["data"]
                ts_ms = int(obj["ts"])
                args = (
                    obj["type"] == "snapshot",
                    data["b"],
                    data["a"],
                    int(data.get("seq") or 0),
                    ts_ms,
                    int(obj.get("cts") or ts_ms),
                )
            self._apply_book(m, *args)
        elif head == "publicTrade" and m.trade_source == "ws":
            with _frame_fields():
                items = obj["data"]
                if not isinstance(items, list):
                    raise TypeError("publicTrade data is not a list")
                ts_ms = int(obj["ts"])
            self._apply_trades(m, items, ts_ms)
        elif head == "kline" and m.kline_source == "ws":
            self._apply_ws_kline(m, topic, parts[1], obj)
        elif head == "tickers":
            # passed through as recorded (ts re-based); funding fields drive paper funding
            if self._fanout.subscribers(m.category, topic):
                with _frame_fields():
                    ts_ms = int(obj["ts"])
                shift = self._clock.shift(ts_ms)
                out = {**obj, "ts": ts_ms + shift} if shift else obj
                self._fanout.broadcast(m.category, topic, orjson.dumps(out).decode())
        else:
            self.ignored_frames += 1

    def _apply_rest(self, category: str, raw: bytes, obj: dict[str, Any]) -> None:
        msg = decode_frame(raw)
        sym = rest_symbol(msg)
        m = self._markets.get((category, sym)) if sym is not None else None
        if m is None:
            self.ignored_frames += 1
            return
        with _frame_fields():
            res = obj["result"]
            time_ms = int(obj.get("time") or 0)
        if isinstance(msg, BookMsg) and m.book_source == 0:
            with _frame_fields():
                ts_ms = int(res.get("ts") or time_ms)
                args = (
                    True,
                    res["b"],
                    res["a"],
                    int(res.get("seq") or 0),
                    ts_ms,
                    int(res.get("cts") or ts_ms),
                )
            self._apply_book(m, *args)
        elif isinstance(msg, TradesMsg) and m.trade_source == "rest":
            with _frame_fields():
                rows = sorted(res["list"], key=lambda r: int(r["time"]))
                items = [
                    {
                        "T": int(r["time"]),
                        "s": m.symbol,
                        "S": r["side"],
                        "v": r["size"],
                        "p": r["price"],
                        "i": str(r["execId"]),
                        "BT": bool(r.get("isBlockTrade", False)),
                        "RPI": bool(r.get("isRPITrade", False)),
                        "seq": int(r.get("seq") or 0),
                    }
                    for r in rows
                ]
            self._apply_trades(m, items, time_ms or items[-1]["T"])
        elif isinstance(msg, KlineMsg) and m.kline_source == "rest":
            with _frame_fields():
                krows = [(int(r[0]), [str(x) for x in r[:7]]) for r in res["list"]]
                interval = kline_interval_from_rows(res["list"])
            for start, row in krows:
                m.upsert_kline(interval, start, row)
        else:
            self.ignored_frames += 1

    def _apply_book(
        self,
        m: Market,
        is_snapshot: bool,
        bids: list[Any],
        asks: list[Any],
        seq: int,
        ts_ms: int,
        cts_ms: int,
    ) -> None:
        if not is_snapshot and not m.initialized:
            m.skipped_deltas += 1
            return
        inst = m.instrument
        with _frame_fields():
            # a negative size deletes, as size 0 (the kernels refuse negative sizes)
            levels = [
                np.array(v, dtype=np.int64)
                for v in (
                    [inst.px_to_ticks(lvl[0]) for lvl in bids],
                    [max(0, inst.qty_to_lots(lvl[1])) for lvl in bids],
                    [inst.px_to_ticks(lvl[0]) for lvl in asks],
                    [max(0, inst.qty_to_lots(lvl[1])) for lvl in asks],
                )
            ]
        m.book.apply(is_snapshot, *levels, u=m.book_u + 1, seq=seq, ts_ms=ts_ms)
        m.initialized = True
        m.book_u += 1
        m.seq = seq if seq > 0 else m.book_u
        m.ts_ms = ts_ms
        m.cts_ms = cts_ms
        m.shift_ms = self._clock.shift(ts_ms)
        self._views.update(m)
        self._on_source_book()

    # ---- trades and klines -----------------------------------------------------------------

    def _apply_trades(self, m: Market, items: list[dict[str, Any]], frame_ts_ms: int) -> None:
        inst = m.instrument
        with _frame_fields():
            parsed = [
                (int(t["T"]), inst.px_to_ticks(t["p"]), inst.qty_to_lots(t["v"]), str(t["i"]), t)
                for t in items
            ]
        shift = self._clock.shift(frame_ts_ms)
        fresh = [
            (t_ms, px, lots, t) for t_ms, px, lots, tid, t in parsed if m.add_trade(tid, t, shift)
        ]
        if not fresh:
            return
        topic = f"publicTrade.{m.symbol}"
        if self._fanout.subscribers(m.category, topic):
            data = [t if shift == 0 else {**t, "T": t_ms + shift} for t_ms, _, _, t in fresh]
            self._fanout.broadcast(
                m.category,
                topic,
                orjson.dumps(
                    {"topic": topic, "type": "snapshot", "ts": frame_ts_ms + shift, "data": data}
                ).decode(),
            )
        if m.kline_source != "trades":
            return
        touched: dict[int, TradeCandle] = {}
        for t_ms, px, lots, _ in fresh:
            for closed in m.add_candle_trade(t_ms, px, lots):
                touched[closed.start_ms] = closed
            c = m.candles[t_ms - t_ms % MINUTE_MS]
            touched[c.start_ms] = c
        ktopic = f"kline.1.{m.symbol}"
        if self._fanout.subscribers(m.category, ktopic):
            ts = frame_ts_ms + shift
            data = []
            for c in sorted(touched.values(), key=lambda c: c.start_ms):
                row = m.candle_row(c)
                data.append(
                    {
                        "start": c.start_ms,
                        "end": c.start_ms + MINUTE_MS - 1,
                        "interval": "1",
                        "open": row[1],
                        "close": row[4],
                        "high": row[2],
                        "low": row[3],
                        "volume": row[5],
                        "turnover": row[6],
                        "confirm": c.start_ms < m.last_candle_ms,
                        "timestamp": ts,
                    }
                )
            self._fanout.broadcast(
                m.category,
                ktopic,
                orjson.dumps(
                    {"topic": ktopic, "type": "snapshot", "ts": ts, "data": data}
                ).decode(),
            )

    def _apply_ws_kline(self, m: Market, topic: str, interval: str, obj: dict[str, Any]) -> None:
        with _frame_fields():
            items = obj["data"]
            if not isinstance(items, list):
                raise TypeError("kline data is not a list")
            rows = [
                (
                    int(k["start"]),
                    [
                        str(k["start"]),
                        str(k["open"]),
                        str(k["high"]),
                        str(k["low"]),
                        str(k["close"]),
                        str(k["volume"]),
                        str(k.get("turnover", "0")),
                    ],
                )
                for k in items
            ]
            ts_ms = int(obj["ts"])
            shift = self._clock.shift(ts_ms)
            if shift:
                obj = {
                    **obj,
                    "ts": ts_ms + shift,
                    "data": [
                        {**k, "timestamp": int(k["timestamp"]) + shift} if "timestamp" in k else k
                        for k in items
                    ],
                }
        for start, row in rows:
            m.upsert_kline(interval, start, row)
        if self._fanout.subscribers(m.category, topic):
            self._fanout.broadcast(m.category, topic, orjson.dumps(obj).decode())

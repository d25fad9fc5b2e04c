"""Binance USD-M captures (hftbacktest's collector) -> one Bybit-shaped recording.

Core: `BinanceUsdmConverter`, a pure state machine from collector lines to Bybit V5 linear frames.
Shell: reading the collector files and writing the recording (convert_binance_usdm).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from mmd.feeds.convert.book import BookSide
from mmd.feeds.convert.frames import (
    FrameFormat,
    KlineBuilder,
    TickDirection,
    instruments_info_envelope,
    orderbook_frame,
    trade_frame,
    trade_item,
)
from mmd.feeds.convert.output import (
    AtomicRecording,
    ConvertResult,
    open_maybe_gzip,
    output_path,
    progress_bar,
)
from mmd.feeds.recording import recording_name
from mmd.model.instrument import Instrument, infer_step


class BinanceUsdmConverter:
    """Pure state machine: hftbacktest-collector lines of one symbol -> Bybit V5 linear frames.

    Feed every input line to `on_line`; it returns the frames that line produces. Depth
    messages are synced to the REST snapshot line by Binance's rule (SOURCES.md), the full book
    is kept in int ticks/lots, and only changes of the top-`depth` view are emitted. Depth
    messages that arrive before the snapshot line are also written where they arrived, whole,
    as `delta` frames ahead of the snapshot (see _pre_snapshot_frame); the book itself is
    built from the snapshot and the buffered messages that bridge it.
    """

    def __init__(self, inst: Instrument, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.inst = inst
        self.fmt = FrameFormat(inst)
        self.depth = depth
        self.dropped_trades = 0
        self.skipped = 0
        self._bids = BookSide[int](is_bid=True)
        self._asks = BookSide[int](is_bid=False)
        self._buffer: list[dict[str, Any]] | None = []  # depth msgs before the snapshot
        self._snapshot_id = 0
        self._last_u: int | None = None  # last applied Binance u (None: first not yet kept)
        self._u = 0  # our renumbered orderbook u
        self._klines = KlineBuilder(self.fmt)
        self._ticks = TickDirection()
        self._px_cache: dict[str, int] = {}
        self._qty_cache: dict[str, int] = {}
        self._where = ""

    @property
    def synced(self) -> bool:
        """True once the REST snapshot line has been seen."""
        return self._buffer is None

    def on_line(self, raw: bytes, where: str = "") -> list[bytes]:
        """Frames produced by one collector JSON line (without its stamp).

        Args:
            raw: the JSON text as recorded.
            where: `file:line`, used in error messages.

        Raises:
            ValueError: a broken `pu` chain, a first message not bridging the snapshot, or a
                message for another symbol.
        """
        self._where = where
        if raw.startswith(b'{"stream":"'):
            # "btcusdt@depth@0ms" -> depth, "btcusdt@trade" -> trade
            kind = raw[11 : raw.index(b'"', 11)].split(b"@")[1:2]
            if kind == [b"depth"]:
                return self._on_depth(orjson.loads(raw)["data"])
            if kind == [b"trade"]:
                return self._on_trade(orjson.loads(raw)["data"])
            self.skipped += 1  # bookTicker, markPrice@1s, anything else
            return []
        msg = orjson.loads(raw)
        if isinstance(msg, dict) and "lastUpdateId" in msg:
            return self._on_snapshot(msg)
        self.skipped += 1
        return []

    # -- helpers ------------------------------------------------------------------------------

    def _levels(self, pairs: list[list[str]]) -> list[tuple[int, int]]:
        pc, qc, inst = self._px_cache, self._qty_cache, self.inst
        out = []
        for px_s, qty_s in pairs:
            px = pc.get(px_s)
            if px is None:
                px = pc[px_s] = inst.px_to_ticks(px_s)
            qty = qc.get(qty_s)
            if qty is None:
                qty = qc[qty_s] = inst.qty_to_lots(qty_s)
            out.append((px, qty))
        return out

    def _check_symbol(self, s: str) -> None:
        if s != self.inst.symbol:
            raise ValueError(f"{self._where}: message for {s} in a {self.inst.symbol} recording")

    def _book_frame(
        self,
        kind: str,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
        seq: int,
        ts_ms: int,
        cts_ms: int,
    ) -> bytes:
        self._u += 1
        return orderbook_frame(
            self.fmt, self.depth, kind, bids, asks, u=self._u, seq=seq, ts_ms=ts_ms, cts_ms=cts_ms
        )

    # -- message kinds ------------------------------------------------------------------------

    def _on_snapshot(self, msg: dict[str, Any]) -> list[bytes]:
        out = self._klines.on_time(int(msg["E"]))
        pending = self._buffer or []
        self._buffer = None
        self._snapshot_id = int(msg["lastUpdateId"])
        self._last_u = None
        self._bids.reset(self._levels(msg["bids"]))
        self._asks.reset(self._levels(msg["asks"]))
        out.append(
            self._book_frame(
                "snapshot",
                self._bids.top(self.depth),
                self._asks.top(self.depth),
                self._snapshot_id,
                int(msg["E"]),
                int(msg["T"]),
            )
        )
        for data in pending:
            out.extend(self._apply_depth(data))
        return out

    def _on_depth(self, data: dict[str, Any]) -> list[bytes]:
        self._check_symbol(data["s"])
        out = self._klines.on_time(int(data["E"]))
        if self._buffer is not None:
            self._buffer.append(data)
            out.append(self._pre_snapshot_frame(data))
            return out
        out.extend(self._apply_depth(data))
        return out

    def _pre_snapshot_frame(self, data: dict[str, Any]) -> bytes:
        """A depth message that came before the REST snapshot, kept as it is: a `delta` with
        every level of the message (there is no book yet to cut a top-`depth` view from).

        Bybit readers drop deltas until the first snapshot (book_sync, the venue server), so
        they change nothing there; hftbacktest's own converter keeps them, and keeping them
        too makes both event files start at the same stamp (hftbacktest_events).
        """
        bids = sorted(self._levels(data["b"]), reverse=True)
        asks = sorted(self._levels(data["a"]))
        return self._book_frame("delta", bids, asks, int(data["u"]), int(data["E"]), int(data["T"]))

    def _apply_depth(self, data: dict[str, Any]) -> list[bytes]:
        u = int(data["u"])
        if self._last_u is None:
            if u < self._snapshot_id:
                return []  # already contained in the snapshot
            if not int(data["U"]) <= self._snapshot_id <= u:
                raise ValueError(
                    f"{self._where}: first depth message after the snapshot does not bridge it "
                    f"(U={data['U']}, u={u}, lastUpdateId={self._snapshot_id})"
                )
        elif int(data["pu"]) != self._last_u:
            raise ValueError(
                f"{self._where}: depth chain broken for {self.inst.symbol}: "
                f"pu={data['pu']} but the previous u={self._last_u} (a message is missing)"
            )
        self._last_u = u
        bids = self._bids.apply(self._levels(data["b"]), self.depth)
        asks = self._asks.apply(self._levels(data["a"]), self.depth)
        if not bids and not asks:
            return []
        return [self._book_frame("delta", bids, asks, u, int(data["E"]), int(data["T"]))]

    def _on_trade(self, data: dict[str, Any]) -> list[bytes]:
        self._check_symbol(data["s"])
        if data.get("X", "MARKET") != "MARKET":
            self.dropped_trades += 1  # insurance-fund / ADL prints are not market trades
            return []
        t_ms, e_ms = int(data["T"]), int(data["E"])
        px = self.inst.px_to_ticks(data["p"])
        qty = self.inst.qty_to_lots(data["q"])
        out = self._klines.on_time(max(e_ms, t_ms))
        item = trade_item(
            self.fmt,
            t_ms=t_ms,
            taker_buy=not data["m"],  # m: the buyer was the maker, so the taker sold
            px_ticks=px,
            qty_lots=qty,
            trade_id=str(data["t"]),
            seq=int(data["t"]),
            tick_direction=self._ticks.next(px),
        )
        out.append(trade_frame(self.inst.symbol, e_ms, [item]))
        self._klines.add_trade(t_ms, px, qty)
        return out


def _stamp_to_ns(stamp: int) -> int:
    """Collector stamps are ns (19 digits) or, in the 2023 format, us (16 digits)."""
    if stamp >= 10**17:
        return stamp
    if stamp >= 10**14:
        return stamp * 1_000
    if stamp >= 10**11:
        return stamp * 1_000_000
    raise ValueError(f"local stamp {stamp} is not an epoch time in ns, us or ms")


def _collector_lines(
    paths: list[Path], on_bytes: Callable[[int], object] | None = None
) -> Iterator[tuple[str, int, bytes]]:
    """(where, ts_recv_ns, json) for each `<stamp> <json>` line of the files, in order."""
    for path in paths:
        with open(path, "rb") as raw:
            fh = open_maybe_gzip(raw)
            done = 0
            try:
                for lineno, line in enumerate(fh, 1):
                    head, sep, body = line.rstrip(b"\r\n").partition(b" ")
                    if not sep or not head.isdigit():
                        if not line.strip():
                            continue
                        raise ValueError(f"{path}:{lineno}: not a `<stamp> <json>` line")
                    yield f"{path.name}:{lineno}", _stamp_to_ns(int(head)), body
                    if on_bytes is not None and lineno % 2048 == 0:
                        pos = raw.tell()
                        on_bytes(pos - done)
                        done = pos
            except (EOFError, gzip.BadGzipFile) as exc:
                raise ValueError(f"{path}: truncated or corrupt gzip ({exc})") from None
            if on_bytes is not None:
                on_bytes(raw.tell() - done)


def _written_decimals(values: Iterable[str]) -> int:
    return max((len(v.partition(".")[2]) for v in values), default=0)


def _step_string(values: list[str]) -> str:
    """infer_step, written with as many decimals as the venue writes (Binance "0.10")."""
    step = infer_step(values)
    if "." in step:
        step += "0" * max(0, _written_decimals(values) - len(step.partition(".")[2]))
    return step


def _probe_binance(inputs: list[Path]) -> tuple[Instrument, int]:
    """Symbol, tick and lot (from the REST snapshot line) and the first local stamp in ns."""
    first_ts: int | None = None
    symbol: str | None = None
    prices: list[str] = []
    qtys: list[str] = []
    for where, ts_ns, body in _collector_lines(inputs):
        if first_ts is None:
            first_ts = ts_ns
        if body.startswith(b'{"stream":"'):
            data = orjson.loads(body)["data"]
            symbol = symbol or data.get("s")
            if data.get("e") == "trade":
                prices.append(data["p"])
                qtys.append(data["q"])
            continue
        msg = orjson.loads(body)
        if isinstance(msg, dict) and "lastUpdateId" in msg:
            for px, qty in (*msg["bids"], *msg["asks"]):
                prices.append(px)
                qtys.append(qty)
            if symbol is None:
                raise ValueError(f"{where}: no symbol seen before the REST snapshot")
            inst = Instrument(
                symbol=symbol.upper(),
                category="linear",
                tick_size=_step_string(prices),
                lot_size=_step_string(qtys),
            )
            assert first_ts is not None
            return inst, first_ts
    raise ValueError(f"{', '.join(map(str, inputs))}: no REST depth snapshot line found")


def convert_binance_usdm(
    inputs: list[Path], out: Path | str, *, depth: int = 200, progress: bool = False
) -> ConvertResult:
    """Convert one continuous hftbacktest-collector recording into one Bybit-shaped recording.

    Args:
        inputs: the files of one recording in time order (e.g. btcusdt_20240718.gz then
            btcusdt_20240719.gz); ns-stamped (2024) and us-stamped (2023) formats both work.
        out: the file to write, or a directory (existing, or given with a trailing "/") to
            write `binanceusdm_linear_<SYM>_<start>.rec.gz` into.
        depth: the `orderbook.{depth}` view to emit.
        progress: show a tqdm bar (only on a TTY).

    Returns:
        The written path (a ConvertResult: also carries frames and dropped_trades).

    Raises:
        ValueError: no snapshot line, a depth chain break, mixed symbols, unreadable lines.
    """
    inputs = [Path(p) for p in inputs]
    inst, first_ts = _probe_binance(inputs)
    conv = BinanceUsdmConverter(inst, depth)
    path = output_path(out, recording_name("binanceusdm", "linear", inst.symbol, first_ts))
    rec = AtomicRecording(path)
    total = sum(p.stat().st_size for p in inputs)
    try:
        with progress_bar(total, f"convert {inst.symbol}", progress) as bar:
            rec.write(first_ts, instruments_info_envelope(inst, first_ts // 1_000_000))
            for where, ts_ns, body in _collector_lines(inputs, bar.update):
                for frame in conv.on_line(body, where):
                    rec.write(ts_ns, frame)
            if not conv.synced:
                raise ValueError(f"{path.name}: input ended before the REST snapshot line")
    except BaseException:
        rec.abort()
        raise
    frames = rec.writer.lines
    rec.commit()
    return ConvertResult(
        [path], frames=frames, dropped_trades=conv.dropped_trades, skipped=conv.skipped
    )

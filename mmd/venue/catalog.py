"""The venue's catalog: what the recordings hold, per (category, symbol), and their merged events.

Reads recording files (the venue's only file input) and infers instruments; it keeps no
served state and knows nothing of sockets.

Recordings (files or directories, see `mmd.feeds.recording`) are grouped by (category,
symbol): the category comes from the file name, else from the instruments-info frame, else
"linear"; the symbol comes from each frame's topic (or REST result). Tick and lot size come from
the first instruments-info frame listing the symbol; without one they are inferred from every
price and size in the recording (`infer_step`).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mmd.errors import ConfigError
from mmd.feeds.bybit_codec import (
    BookMsg,
    DecodeError,
    InstrumentsMsg,
    KlineMsg,
    TradesMsg,
    decode_frame,
)
from mmd.feeds.recording import parse_recording_name, read_recording
from mmd.model.instrument import Instrument, infer_step

CATEGORIES = ("linear", "spot", "inverse")

_TOPIC_RE = re.compile(rb'"topic"\s*:\s*"([^"]*)"')


@dataclass(slots=True)
class SymbolScan:
    """What one file holds for one symbol (decides the source streams)."""

    book_depths: set[int] = field(default_factory=set)
    ws_trades: bool = False
    ws_klines: bool = False
    rest_book: bool = False
    rest_trades: bool = False
    rest_klines: bool = False

    def merge(self, other: SymbolScan) -> None:
        """Fold another file's findings into this one."""
        self.book_depths |= other.book_depths
        self.ws_trades |= other.ws_trades
        self.ws_klines |= other.ws_klines
        self.rest_book |= other.rest_book
        self.rest_trades |= other.rest_trades
        self.rest_klines |= other.rest_klines


@dataclass(slots=True)
class FileScan:
    """One recording file after the loading pass."""

    path: Path
    index: int
    category: str
    first_ts_ns: int
    skip_first: bool  # the first line is the instruments envelope, consumed at load time
    events: int
    rows: dict[str, dict[str, Any]]
    symbols: dict[str, SymbolScan]


@dataclass(slots=True, frozen=True)
class MarketSpec:
    """One (category, symbol) to serve: its instrument, instruments-info row and streams."""

    category: str
    symbol: str
    instrument: Instrument
    row: dict[str, Any]
    scan: SymbolScan


def _instrument_rows(raw: bytes) -> tuple[str, dict[str, dict[str, Any]]]:
    obj = orjson.loads(raw)
    res = obj["result"]
    rows = {str(r["symbol"]): r for r in res["list"] if isinstance(r, dict) and "symbol" in r}
    return str(res.get("category") or ""), rows


def rest_symbol(msg: object) -> str | None:
    """The symbol of a decoded REST book/trades/kline answer, else None."""
    if isinstance(msg, BookMsg | TradesMsg | KlineMsg):
        return msg.symbol
    return None


def scan_file(path: Path, index: int) -> FileScan:
    """Read one recording once: first stamp, event count, instruments rows, topics per symbol.

    Raises:
        ConfigError: the file holds no frames.
    """
    meta = parse_recording_name(path)
    rows: dict[str, dict[str, Any]] = {}
    symbols: dict[str, SymbolScan] = {}
    env_category = ""
    first_ts: int | None = None
    skip_first = False
    events = 0
    for line_no, (ts, raw) in enumerate(read_recording(path)):
        if first_ts is None:
            first_ts = ts
        m = _TOPIC_RE.search(raw)
        if m is not None:
            events += 1
            parts = m.group(1).decode("utf-8", "replace").split(".")
            if len(parts) < 2:
                continue
            sc = symbols.setdefault(parts[-1], SymbolScan())
            if parts[0] == "orderbook" and parts[1].isdigit():
                sc.book_depths.add(int(parts[1]))
            elif parts[0] == "publicTrade":
                sc.ws_trades = True
            elif parts[0] == "kline":
                sc.ws_klines = True
            continue
        try:
            msg = decode_frame(raw) if b'"retCode"' in raw else None
        except DecodeError:
            msg = None
        if isinstance(msg, InstrumentsMsg) and msg.instruments:
            cat, found = _instrument_rows(raw)
            env_category = env_category or cat
            for sym, row in found.items():
                rows.setdefault(sym, row)
            if line_no == 0:
                skip_first = True
                continue
        events += 1
        rest_sym = rest_symbol(msg)
        if rest_sym is None:
            continue
        sc = symbols.setdefault(rest_sym, SymbolScan())
        if isinstance(msg, BookMsg):
            sc.rest_book = True
        elif isinstance(msg, TradesMsg):
            sc.rest_trades = True
        elif isinstance(msg, KlineMsg):
            sc.rest_klines = True
    if first_ts is None:
        raise ConfigError(f"{path}: no frames (not a recording `<ts_recv_ns> <frame>` per line?)")
    if meta is not None:
        category = meta.category
        symbols.setdefault(meta.symbol, SymbolScan())
    else:
        category = env_category if env_category in CATEGORIES else "linear"
        if not symbols and len(rows) == 1:
            symbols[next(iter(rows))] = SymbolScan()
    return FileScan(
        path=path,
        index=index,
        category=category,
        first_ts_ns=first_ts,
        skip_first=skip_first,
        events=events,
        rows=rows,
        symbols=symbols,
    )


def infer_instrument(paths: list[Path], category: str, symbol: str) -> Instrument:
    """Tick and lot size inferred from every price and size of `symbol` (no instruments row)."""
    prices: list[str] = []
    sizes: list[str] = []
    for path in paths:
        for _, raw in read_recording(path):
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            res = obj.get("result")
            if isinstance(res, dict):  # a recorded REST answer: orderbook or recent-trade
                if res.get("s") == symbol:
                    for side in ("b", "a"):
                        for lvl in res.get(side) or ():
                            prices.append(str(lvl[0]))
                            sizes.append(str(lvl[1]))
                for row in res.get("list") or ():
                    if isinstance(row, dict) and row.get("symbol") == symbol and "price" in row:
                        prices.append(str(row["price"]))
                        sizes.append(str(row.get("size", "0")))
                continue
            topic = obj.get("topic")
            data = obj.get("data")
            if not isinstance(topic, str) or topic.split(".")[-1] != symbol:
                continue
            if topic.startswith("orderbook.") and isinstance(data, dict):
                for side in ("b", "a"):
                    for lvl in data.get(side) or ():
                        prices.append(str(lvl[0]))
                        sizes.append(str(lvl[1]))
            elif topic.startswith("publicTrade.") and isinstance(data, list):
                for t in data:
                    prices.append(str(t.get("p", "0")))
                    sizes.append(str(t.get("v", "0")))
    tick = infer_step(prices) if prices else "0.01"
    lot = infer_step(sizes) if sizes else "0.001"
    return Instrument(symbol=symbol, category=category, tick_size=tick, lot_size=lot)


def _synth_row(inst: Instrument) -> dict[str, Any]:
    """An instruments-info row for an instrument the recording did not describe."""
    lot: dict[str, Any] = {
        "maxOrderQty": "1000000",
        "minOrderQty": inst.lot_size,
        "qtyStep": inst.lot_size,
    }
    if inst.category == "spot":
        lot["basePrecision"] = inst.lot_size
    return {
        "symbol": inst.symbol,
        "status": "Trading",
        "priceFilter": {
            "minPrice": inst.tick_size,
            "maxPrice": "10000000",
            "tickSize": inst.tick_size,
        },
        "lotSizeFilter": lot,
    }


def market_specs(files: list[FileScan]) -> list[MarketSpec]:
    """Every (category, symbol) of the scanned files, with its instrument and streams."""
    scans: dict[tuple[str, str], SymbolScan] = {}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    paths: dict[tuple[str, str], list[Path]] = {}
    for f in files:
        for sym, sc in f.symbols.items():
            key = (f.category, sym)
            scans.setdefault(key, SymbolScan()).merge(sc)
            paths.setdefault(key, []).append(f.path)
            if key not in rows and sym in f.rows:
                rows[key] = f.rows[sym]
    out: list[MarketSpec] = []
    for key, sc in scans.items():
        cat, sym = key
        row = rows.get(key)
        if row is not None:
            lot = row.get("lotSizeFilter") or {}
            inst = Instrument(
                symbol=sym,
                category=cat,
                tick_size=str(row["priceFilter"]["tickSize"]),
                lot_size=str(lot.get("qtyStep") or lot.get("basePrecision") or "0.001"),
            )
            row = dict(row)
            row["status"] = "Trading"
            lot = dict(lot)
            lot.setdefault("qtyStep", inst.lot_size)
            lot.setdefault("minOrderQty", inst.lot_size)
            row["lotSizeFilter"] = lot
        else:
            inst = infer_instrument(paths[key], cat, sym)
            row = _synth_row(inst)
        out.append(MarketSpec(cat, sym, inst, row, sc))
    return out


def iter_events(files: list[FileScan]) -> Iterator[tuple[int, int, bytes]]:
    """(ts_recv_ns, file index, raw frame) of every file, merged in recorded order."""

    def one(f: FileScan) -> Iterator[tuple[int, int, bytes]]:
        first = True
        for ts, raw in read_recording(f.path):
            if first:
                first = False
                if f.skip_first:
                    continue
            yield ts, f.index, raw

    return heapq.merge(*(one(f) for f in files), key=lambda e: (e[0], e[1]))

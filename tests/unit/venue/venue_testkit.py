"""Helpers for the venue tests: small recordings made of real Bybit frames, an offline reference
book (plain dicts, no mmd code), a client-side book and a frame collector."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import zipfile
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from mmd.feeds.recording import RecordingWriter, recording_name
from mmd.venue import VenueServer

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = ROOT.parent / "shared" / "data"
XRP_ZIP = DATA / "bybit_samples" / "nautilus_test_data" / "xrpusdt-ob500.data.zip"
MS = 1_000_000


def xrp_frames() -> list[bytes]:
    """The real Bybit archive excerpt: an orderbook.500.XRPUSDT snapshot then 49 deltas."""
    if not XRP_ZIP.exists():
        pytest.skip(
            f"real Bybit sample not present ({XRP_ZIP}): run with ../shared/data beside the repo"
        )
    with zipfile.ZipFile(XRP_ZIP) as z:
        raw = z.read(z.namelist()[0])
    return [line.strip() for line in raw.splitlines() if line.strip()]


def instruments_envelope(category: str, symbol: str, tick: str, lot: str, time_ms: int) -> bytes:
    """A `/v5/market/instruments-info` answer for one symbol (what a recording starts with)."""
    return json.dumps(
        {
            "retCode": 0,
            "retMsg": "OK",
            "result": {
                "category": category,
                "list": [
                    {
                        "symbol": symbol,
                        "status": "Trading",
                        "priceFilter": {"minPrice": tick, "maxPrice": "199.9998", "tickSize": tick},
                        "lotSizeFilter": {
                            "maxOrderQty": "1000000",
                            "minOrderQty": lot,
                            "qtyStep": lot,
                        },
                    }
                ],
                "nextPageCursor": "",
            },
            "retExtInfo": {},
            "time": time_ms,
        }
    ).encode()


def write_xrp_recording(out_dir: Path, lead_ms: int = 2000) -> Path:
    """The XRP sample as a recording; the instruments line comes `lead_ms` before the book.

    The lead gives clients (venue time / speed) of real time to subscribe before the first
    snapshot, so fault counts start at the first delta.
    """
    frames = xrp_frames()
    ts0 = json.loads(frames[0])["ts"]
    path = out_dir / recording_name("bybit", "linear", "XRPUSDT", ts0 * MS)
    with RecordingWriter(path) as w:
        w.write(
            (ts0 - lead_ms) * MS,
            instruments_envelope("linear", "XRPUSDT", "0.0001", "1", ts0 - lead_ms),
        )
        for f in frames:
            w.write((json.loads(f)["ts"] + 3) * MS, f)
    return path


# synthetic trades for BTCUSDT (hand-made, exactly the publicTrade shape of BYBIT_V5_NOTES 3.3):
# (offset s from BASE_MS, price, size, side); they span three 1-minute candles
BASE_MS = 1_786_310_700_000  # a minute boundary
TRADES = [
    (50.0, "65110.5", "0.010", "Buy"),
    (55.0, "65112.0", "0.002", "Sell"),
    (60.0, "65111.0", "0.100", "Sell"),
    (75.0, "65120.3", "0.040", "Buy"),
    (90.0, "65105.1", "0.007", "Sell"),
    (119.0, "65108.8", "1.500", "Buy"),
    (121.0, "65109.9", "0.003", "Buy"),
    (121.0, "65109.8", "0.004", "Sell"),
    (125.0, "65101.0", "0.250", "Sell"),
]


def trade_items() -> list[dict[str, Any]]:
    """The synthetic trades as Bybit publicTrade items, oldest first."""
    return [
        {
            "T": BASE_MS + int(off * 1000),
            "s": "BTCUSDT",
            "S": side,
            "v": size,
            "p": px,
            "L": "PlusTick",
            "i": f"5b0c{n:04d}-1ed0-4f37-83e4-9c73a2fe2f01",
            "BT": False,
            "RPI": False,
            "seq": 753844900000 + n,
        }
        for n, (off, px, size, side) in enumerate(TRADES)
    ]


def write_trades_recording(out_dir: Path, lead_ms: int = 40_000) -> Path:
    """A BTCUSDT recording of publicTrade frames only (trades at the same T share a frame)."""
    items = trade_items()
    first = items[0]["T"]
    path = out_dir / recording_name("bybit", "linear", "BTCUSDT", (first - lead_ms) * MS)
    by_t: dict[int, list[dict[str, Any]]] = {}
    for t in items:
        by_t.setdefault(t["T"], []).append(t)
    with RecordingWriter(path) as w:
        w.write(
            (first - lead_ms) * MS,
            instruments_envelope("linear", "BTCUSDT", "0.1", "0.001", first - lead_ms),
        )
        for t_ms, batch in by_t.items():
            frame = {
                "topic": "publicTrade.BTCUSDT",
                "type": "snapshot",
                "ts": t_ms + 4,
                "data": batch,
            }
            w.write((t_ms + 6) * MS, json.dumps(frame))
    return path


class ReferenceBook:
    """Every book state of one recording rebuilt offline, keyed by the source frame's seq."""

    def __init__(self, path: Path, depth_topic: str | None = None) -> None:
        with gzip.open(path) as fh:
            lines = [json.loads(line.split(b" ", 1)[1]) for line in fh if line.strip()]
        frames = [o for o in lines if str(o.get("topic", "")).startswith("orderbook.")]
        if depth_topic is None:  # the venue's source: the deepest recorded depth
            depth_topic = max((o["topic"] for o in frames), key=lambda t: int(t.split(".")[1]))
        inst = next(o for o in lines if "retCode" in o)["result"]["list"][0]
        self.tick = Decimal(inst["priceFilter"]["tickSize"])
        self.lot = Decimal(inst["lotSizeFilter"]["qtyStep"])
        self.states: dict[int, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
        self.gaps: dict[int, int] = {}  # seq -> recorded ts - cts
        self.seqs: list[int] = []
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for o in frames:
            if o["topic"] != depth_topic:
                continue
            if o["type"] == "snapshot":
                bids.clear()
                asks.clear()
            for side, book in ((o["data"]["b"], bids), (o["data"]["a"], asks)):
                for px, qty in side:
                    p, q = self.ticks(px), self.lots(qty)
                    if q == 0:
                        book.pop(p, None)
                    else:
                        book[p] = q
            seq = int(o["data"]["seq"])
            self.seqs.append(seq)
            self.states[seq] = (sorted(bids.items(), reverse=True), sorted(asks.items()))
            self.gaps[seq] = o["ts"] - o.get("cts", o["ts"])

    def ticks(self, px: str) -> int:
        """A price string in ticks."""
        return int(Decimal(px) / self.tick)

    def lots(self, qty: str) -> int:
        """A size string in lots."""
        return int(Decimal(qty) / self.lot)

    def top(self, seq: int, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids best first, asks best first) after the frame with this seq."""
        b, a = self.states[seq]
        return b[:depth], a[:depth]


class Steps:
    """Price/size strings to ticks/lots for given tick and lot strings."""

    def __init__(self, tick: str, lot: str) -> None:
        self.tick = Decimal(tick)
        self.lot = Decimal(lot)

    def ticks(self, px: str) -> int:
        """A price string in ticks."""
        return int(Decimal(px) / self.tick)

    def lots(self, qty: str) -> int:
        """A size string in lots."""
        return int(Decimal(qty) / self.lot)


class ClientBook:
    """What a Bybit client rebuilds from one orderbook topic (plain dicts)."""

    def __init__(self, ref: ReferenceBook | Steps) -> None:
        self.ref = ref
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.u = 0

    def apply(self, frame: dict[str, Any]) -> None:
        """Apply one snapshot or delta frame."""
        data = frame["data"]
        if frame["type"] == "snapshot":
            self.bids.clear()
            self.asks.clear()
        for side, book in ((data["b"], self.bids), (data["a"], self.asks)):
            for px, qty in side:
                p, q = self.ref.ticks(px), self.ref.lots(qty)
                if q == 0:
                    book.pop(p, None)
                else:
                    book[p] = q
        self.u = data["u"]

    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids best first, asks best first) of everything held."""
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


@contextlib.asynccontextmanager
async def running_venue(paths: list[Path], **kw: Any) -> AsyncIterator[VenueServer]:
    """A started VenueServer, stopped on exit."""
    server = VenueServer(paths, **kw)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def ws_request(
    ws: ClientConnection, op: str, args: list[str] | None = None, req_id: str = "r1"
) -> dict[str, Any]:
    """Send one op and return its reply (skipping any data frame before it)."""
    msg: dict[str, Any] = {"req_id": req_id, "op": op}
    if args is not None:
        msg["args"] = args
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await ws.recv())
        if "topic" not in reply:
            return reply  # type: ignore[no-any-return]


async def collect(
    ws: ClientConnection, server: VenueServer, quiet_s: float = 0.3
) -> tuple[list[str], bool]:
    """Every text frame until the replay is finished and the socket went quiet, or it closed.

    Returns:
        (frames, closed by the server).
    """
    frames: list[str] = []
    while True:
        try:
            msg = await asyncio.wait_for(ws.recv(), quiet_s)
        except TimeoutError:
            if server.finished:
                return frames, False
            continue
        except ConnectionClosed:
            return frames, True
        frames.append(msg if isinstance(msg, str) else msg.decode())


def parse_or_none(frame: str) -> dict[str, Any] | None:
    """The JSON object in a frame, None when it is not JSON."""
    try:
        obj = json.loads(frame)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None

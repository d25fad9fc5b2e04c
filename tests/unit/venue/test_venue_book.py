"""The venue's full book is the product's L2Book, regrown so that no level is ever dropped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import numpy as np
from venue_testkit import BASE_MS, MS, instruments_envelope, running_venue

from mmd.feeds.recording import RecordingWriter, recording_name
from mmd.venue.market import FullBook


def _i64(values: range | list[int]) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    return np.array(list(values), dtype=np.int64)


def test_full_book_grows_past_its_start_capacity_and_keeps_deep_levels() -> None:
    book = FullBook()
    # snapshot: bids at 1..300 ticks with as many lots as ticks, asks 1001..1300 with 1 lot
    book.apply(
        True,
        _i64(range(1, 301)),
        _i64(range(1, 301)),
        _i64(range(1001, 1301)),
        _i64([1] * 300),
        u=1,
        seq=1,
        ts_ms=0,
    )
    # 300 more bids above (301..600): 600 bids, more than twice the 256 levels it starts with
    book.apply(
        False,
        _i64(range(301, 601)),
        _i64(range(301, 601)),
        _i64([]),
        _i64([]),
        u=2,
        seq=2,
        ts_ms=0,
    )
    assert (book.n_bids, book.n_asks) == (600, 300)
    # the best 200 bids deleted: 600 - 200 = 400 left, best 400; no deep level was lost
    book.apply(
        False, _i64(range(401, 601)), _i64([0] * 200), _i64([]), _i64([]), u=3, seq=3, ts_ms=0
    )
    bids, asks = book.top(3)
    assert bids == {400: 400, 399: 399, 398: 398}
    assert asks == {1001: 1, 1002: 1, 1003: 1}
    assert book.n_bids == 400
    assert book.best() == (400, 1001)
    assert list(book.top(1000)[0].items())[-1] == (1, 1)  # the deepest bid of the snapshot
    # a snapshot replaces everything
    book.apply(True, _i64([7]), _i64([2]), _i64([9]), _i64([3]), u=4, seq=4, ts_ms=0)
    assert book.top(5) == ({7: 2}, {9: 3})


def _levels(px: range, qty: list[int] | None = None) -> list[list[str]]:
    return [[str(p), str(p if qty is None else q)] for p, q in zip(px, qty or px, strict=True)]


def _book_frame(typ: str, bids: list[list[str]], asks: list[list[str]], u: int, ts: int) -> bytes:
    return json.dumps(
        {
            "topic": "orderbook.1000.TESTUSDT",
            "type": typ,
            "ts": ts,
            "data": {"s": "TESTUSDT", "b": bids, "a": asks, "u": u, "seq": u},
            "cts": ts,
        }
    ).encode()


async def test_venue_serves_levels_beyond_the_start_capacity(tmp_path: Path) -> None:
    # tick and lot 1, so prices and sizes are their own ticks and lots
    path = tmp_path / recording_name("bybit", "linear", "TESTUSDT", BASE_MS * MS)
    with RecordingWriter(path) as w:
        w.write(BASE_MS * MS, instruments_envelope("linear", "TESTUSDT", "1", "1", BASE_MS))
        snap = _book_frame(
            "snapshot", _levels(range(1, 301)), _levels(range(1001, 1301), [1] * 300), 1, BASE_MS
        )
        w.write((BASE_MS + 1) * MS, snap)
        w.write((BASE_MS + 2) * MS, _book_frame("delta", _levels(range(301, 601)), [], 2, BASE_MS))
        gone = _levels(range(401, 601), [0] * 200)
        w.write((BASE_MS + 3) * MS, _book_frame("delta", gone, [], 3, BASE_MS))
    async with asyncio.timeout(30), running_venue([path], speed=1000.0) as venue:
        await venue.wait_finished()
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                venue.url + "/v5/market/orderbook",
                params={"category": "linear", "symbol": "TESTUSDT", "limit": "1000"},
            ) as r,
        ):
            res = (await r.json())["result"]
        market = venue.stats()["markets"]["linear:TESTUSDT"]
    # 300 snapshot bids + 300 inserted - 200 deleted = 400, from 400 down to 1, size = price
    assert res["b"] == [[str(p), str(p)] for p in range(400, 0, -1)]
    assert res["a"] == [[str(p), "1"] for p in range(1001, 1301)]
    assert (market["bid_levels"], market["ask_levels"], market["best_bid"]) == (400, 300, "400")

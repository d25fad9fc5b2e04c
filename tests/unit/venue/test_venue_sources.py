"""What the venue accepts as a recording: bad lines, REST-polled files, no instruments frame."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import aiohttp
from venue_testkit import (
    MS,
    ClientBook,
    ReferenceBook,
    Steps,
    running_venue,
    write_xrp_recording,
    ws_request,
    xrp_frames,
)
from websockets.asyncio.client import connect

from mmd.feeds.recording import RecordingWriter, recording_name


async def _get(http: aiohttp.ClientSession, url: str, **params: str) -> dict[str, Any]:
    async with http.get(url, params=params) as r:
        assert r.status == 200
        return await r.json()  # type: ignore[no-any-return]


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path) as fh:
        return fh.read().splitlines()


async def test_venue_malformed_recorded_frames_are_counted_and_skipped(tmp_path: Path) -> None:
    frames = xrp_frames()
    ts0 = json.loads(frames[0])["ts"]
    good = write_xrp_recording(tmp_path / "good")
    path = tmp_path / recording_name("bybit", "linear", "XRPUSDT", ts0 * MS)
    broken = json.loads(frames[5])
    del broken["data"]["b"]
    with RecordingWriter(path) as w:
        for line in _lines(good):
            ts, frame = line.split(b" ", 1)
            w.write(int(ts), frame)
            if frame == frames[3]:
                w.write(int(ts) + 1, b'{"topic":"orderbook.500.XRPUSDT","type":"delta","da')
                w.write(int(ts) + 2, json.dumps(broken))
                w.write(int(ts) + 3, b"[1, 2, 3]")
    ref = ReferenceBook(good)
    async with asyncio.timeout(3 * 10), running_venue([path], speed=1000.0) as venue:
        await venue.wait_finished()
        stats = venue.stats()
        async with aiohttp.ClientSession() as http:
            body = await _get(
                http,
                venue.url + "/v5/market/orderbook",
                category="linear",
                symbol="XRPUSDT",
                limit="200",
            )
    assert stats["bad_frames"] == 3 and stats["events_applied"] == stats["events_total"] == 53
    res = body["result"]
    assert res["seq"] == ref.seqs[-1] and res["u"] == 50
    assert (
        [(ref.ticks(p), ref.lots(q)) for p, q in res["b"]],
        [(ref.ticks(p), ref.lots(q)) for p, q in res["a"]],
    ) == ref.top(ref.seqs[-1], 200)


def _rest_book(t_ms: int, seq: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    return json.dumps(
        {
            "retCode": 0,
            "retMsg": "OK",
            "result": {
                "s": "BTCUSDT",
                "b": bids,
                "a": asks,
                "ts": t_ms,
                "u": seq // 10,
                "seq": seq,
                "cts": t_ms - 3,
            },
            "retExtInfo": {},
            "time": t_ms + 1,
        }
    )


def _rest_trades(t_ms: int, trades: list[tuple[str, str, str, int]]) -> str:
    rows = [
        {
            "execId": i,
            "symbol": "BTCUSDT",
            "price": p,
            "size": v,
            "side": "Buy",
            "time": str(t),
            "isBlockTrade": False,
            "isRPITrade": False,
            "seq": "7",
        }
        for i, p, v, t in trades
    ]
    return json.dumps(
        {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": "linear", "list": rows[::-1]},
            "retExtInfo": {},
            "time": t_ms,
        }
    )


async def test_venue_rest_polled_recording_without_instruments_infers_steps(tmp_path: Path) -> None:
    t0 = 1_786_310_800_000
    path = tmp_path / "polled.rec.gz"  # no name convention, no instruments frame
    t1 = [("a1", "65114.5", "0.010", t0 - 500), ("a2", "65114.0", "0.250", t0 - 100)]
    t2 = [*t1, ("a3", "65115.5", "1.002", t0 + 900)]
    with RecordingWriter(path) as w:
        # a lead of 2 s (0.2 s real) with a frame the venue ignores, so the client subscribes
        # before the first book
        w.write(
            (t0 - 2000) * MS,
            json.dumps(
                {
                    "retCode": 0,
                    "retMsg": "OK",
                    "result": {"timeSecond": str(t0 // 1000 - 2)},
                    "retExtInfo": {},
                    "time": t0 - 2000,
                }
            ),
        )
        w.write(
            t0 * MS,
            _rest_book(t0, 110, [["65114.0", "1.5"], ["65113.5", "0.002"]], [["65114.5", "0.7"]]),
        )
        w.write((t0 + 10) * MS, _rest_trades(t0 + 10, t1))
        w.write(
            (t0 + 1000) * MS,
            _rest_book(
                t0 + 1000, 150, [["65114.5", "0.001"]], [["65115.0", "2.25"], ["65116.5", "3"]]
            ),
        )
        w.write((t0 + 1010) * MS, _rest_trades(t0 + 1010, t2))
    async with asyncio.timeout(3 * 10), running_venue([path], speed=10.0) as venue:
        async with connect(venue.ws_url("linear")) as ws:
            assert (await ws_request(ws, "subscribe", ["orderbook.50.BTCUSDT"]))["success"]
            await venue.wait_finished()
            frames: list[dict[str, Any]] = []
            while len(frames) < 2:
                frames.append(json.loads(await ws.recv()))
        async with aiohttp.ClientSession() as http:
            inst = await _get(
                http, venue.url + "/v5/market/instruments-info", category="linear", symbol="BTCUSDT"
            )
            book = await _get(
                http, venue.url + "/v5/market/orderbook", category="linear", symbol="BTCUSDT"
            )
            trades = await _get(
                http, venue.url + "/v5/market/recent-trade", category="linear", symbol="BTCUSDT"
            )
        stats = venue.stats()
    (row,) = inst["result"]["list"]
    # inferred: the coarsest decimal steps consistent with every recorded price and size
    assert row["priceFilter"]["tickSize"] == "0.1" and row["lotSizeFilter"]["qtyStep"] == "0.001"
    res = book["result"]
    assert res["b"] == [["65114.5", "0.001"]]
    assert res["a"] == [["65115.0", "2.250"], ["65116.5", "3.000"]]
    assert res["seq"] == 150 and res["u"] == 2
    assert [t["execId"] for t in trades["result"]["list"]] == ["a3", "a2", "a1"]  # deduped
    assert stats["markets"]["linear:BTCUSDT"]["book_source"] == "rest"
    assert stats["ignored_frames"] == 1 and stats["events_total"] == 5
    # the websocket view follows the REST snapshots: snapshot, then one delta to the new state
    assert [f["type"] for f in frames] == ["snapshot", "delta"]

    client = ClientBook(Steps("0.1", "0.001"))
    for f in frames:
        client.apply(f)
    assert client.top() == ([(651145, 1)], [(651150, 2250), (651165, 3000)])

"""The venue's `types`, `oversized`, `outage` and `slow` faults, seen by a real client on
loopback: each at the right count, the rest of the stream untouched."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from venue_testkit import (
    ClientBook,
    ReferenceBook,
    collect,
    parse_or_none,
    running_venue,
    write_xrp_recording,
    ws_request,
)
from websockets.asyncio.client import connect

from mmd.errors import ConfigError
from mmd.venue import VenueServer

N = 5
TOPIC = "orderbook.50.XRPUSDT"
SPEED = 20.0


def _book(frames: list[str]) -> list[dict[str, Any]]:
    return [f for f in map(parse_or_none, frames) if f is not None and f.get("topic") == TOPIC]


def _deltas(stats: dict[str, Any]) -> int:
    return int(stats["markets"]["linear:XRPUSDT"]["views"][TOPIC]["deltas"])


async def test_fault_types_sends_nth_delta_mistyped_its_u_consumed(tmp_path: Path) -> None:
    rec = write_xrp_recording(tmp_path)
    async with asyncio.timeout(30), running_venue([rec], speed=SPEED, faults={"types": N}) as venue:
        async with connect(venue.ws_url("linear")) as ws:
            assert (await ws_request(ws, "subscribe", [TOPIC]))["success"]
            frames, closed = await collect(ws, venue)
        stats = venue.stats()
    book = _book(frames)
    deltas = _deltas(stats)
    assert deltas >= 40 and not closed
    u0 = book[0]["data"]["u"]
    bad = [f for f in book if isinstance(f["data"]["u"], str)]
    assert len(bad) == deltas // N == stats["faults"]["injected"]["types"]
    for f in bad:
        # the N-th update, with every price a JSON number instead of a string
        assert (int(f["data"]["u"]) - u0) % N == 0
        levels = f["data"]["b"] + f["data"]["a"]
        assert levels and all(isinstance(px, float) and isinstance(q, str) for px, q in levels)
    good = [f for f in book if not isinstance(f["data"]["u"], str)]
    assert [f["data"]["u"] - u0 for f in good[1:]] == [k for k in range(1, deltas + 1) if k % N]


async def test_fault_oversized_pads_nth_delta_to_the_size_still_valid(tmp_path: Path) -> None:
    rec = write_xrp_recording(tmp_path)
    size = 50_000
    async with (
        asyncio.timeout(30),
        running_venue(
            [rec], speed=SPEED, faults={"oversized": N}, oversized_frame_bytes=size
        ) as venue,
    ):
        async with connect(venue.ws_url("linear"), max_size=1 << 20) as ws:
            assert (await ws_request(ws, "subscribe", [TOPIC]))["success"]
            frames, _ = await collect(ws, venue)
        stats = venue.stats()
    ref = ReferenceBook(rec)
    book = _book(frames)
    deltas = _deltas(stats)
    big = [i for i, f in enumerate(frames) if len(f) >= size]
    assert len(big) == deltas // N == stats["faults"]["injected"]["oversized"]
    assert all(len(frames[i]) == size for i in big)
    # only padded: the stream (u continuous) still rebuilds the reference book
    u0 = book[0]["data"]["u"]
    assert [f["data"]["u"] - u0 for f in book] == list(range(deltas + 1))
    client = ClientBook(ref)
    for f in book:
        client.apply(f)
        assert client.top() == ref.top(f["data"]["seq"], 50)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_fault_outage_refuses_connections_then_listens_on_the_same_port(
    tmp_path: Path,
) -> None:
    rec = write_xrp_recording(tmp_path)
    outage_s = 0.5
    async with (
        asyncio.timeout(30),
        running_venue([rec], speed=SPEED, faults={"outage": N}, outage_s=outage_s) as venue,
        aiohttp.ClientSession() as http,
    ):
        port = venue.port
        url = venue.url + "/v5/market/time"
        async with http.get(url) as r:  # a keep-alive connection opened before the outage
            assert r.status == 200
        async with connect(venue.ws_url("linear")) as ws:
            assert (await ws_request(ws, "subscribe", [TOPIC]))["success"]
            frames, closed = await collect(ws, venue)
        t_cut = time.monotonic()
        # the socket was cut without a close frame, after the N-th source book frame (the
        # first is the snapshot; the next N - 1 make at most N - 1 deltas of the top 50)
        assert closed and ws.close_code == 1006
        book = _book(frames)
        assert book[0]["type"] == "snapshot"
        assert 1 <= len(book) - 1 <= N - 1 and all(f["type"] == "delta" for f in book[1:])
        assert await asyncio.to_thread(_refused, port)
        with pytest.raises(aiohttp.ClientError):  # the pooled connection is cut as well
            async with http.get(url) as r:
                await r.read()
        for _ in range(100):  # polled every 0.05 s, at most 5 s
            if not await asyncio.to_thread(_refused, port):
                break
            await asyncio.sleep(0.05)
        assert time.monotonic() - t_cut <= outage_s + 1.0
        async with http.get(url) as r:
            assert r.status == 200
        assert venue.stats()["faults"]["injected"]["outage"] == 1


async def test_fault_slow_answers_every_nth_request_late_and_right(tmp_path: Path) -> None:
    rec = write_xrp_recording(tmp_path)
    slow_s = 0.4
    async with (
        asyncio.timeout(30),
        running_venue([rec], speed=SPEED, faults={"slow": 3}, slow_response_s=slow_s) as venue,
        aiohttp.ClientSession() as http,
    ):
        took = []
        for _ in range(6):
            t0 = time.monotonic()
            async with http.get(
                venue.url + "/v5/market/orderbook",
                params={"category": "linear", "symbol": "XRPUSDT"},
            ) as r:
                body = await r.json()
            took.append(time.monotonic() - t0)
            assert r.status == 200 and body["retCode"] == 0 and body["result"]["s"] == "XRPUSDT"
        stats = venue.stats()
    late = [i for i, t in enumerate(took) if t >= slow_s]
    assert late == [2, 5], took
    assert stats["faults"]["injected"]["slow"] == 2


@pytest.mark.parametrize(
    "kw", [{"oversized_frame_bytes": 100}, {"slow_response_s": 0.0}, {"outage_s": -1.0}]
)
def test_venue_server_bad_fault_parameter_raises_config_error(
    tmp_path: Path, kw: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError):
        VenueServer([tmp_path], **kw)

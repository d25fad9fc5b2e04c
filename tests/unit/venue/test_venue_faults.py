"""Fault injection of the loopback venue (`--faults`): each kind at the right count, as seen by
a client and by /venue/stats."""

from __future__ import annotations

import asyncio
import itertools
import json
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
from websockets.protocol import State

from mmd.errors import ConfigError
from mmd.venue import FAULT_KINDS, VenueServer, parse_faults

N = 5
TOPIC = "orderbook.50.XRPUSDT"
SPEED = 20.0  # 2 s lead -> 0.1 s to subscribe, then 4.8 s of book frames in 0.24 s


def _book_frames(frames: list[str]) -> list[dict[str, Any]]:
    return [f for f in map(parse_or_none, frames) if f is not None and f.get("topic") == TOPIC]


async def _run(tmp_path: Path, kind: str) -> tuple[list[str], bool, dict[str, Any], Path]:
    """One client subscribed to TOPIC through the whole replay with fault `kind:N`."""
    rec = write_xrp_recording(tmp_path)
    async with running_venue([rec], speed=SPEED, faults={kind: N}) as venue:
        async with connect(venue.ws_url("linear")) as ws:
            assert (await ws_request(ws, "subscribe", [TOPIC]))["success"]
            frames, closed = await collect(ws, venue)
        return frames, closed, venue.stats(), rec


def _deltas(stats: dict[str, Any]) -> int:
    return int(stats["markets"]["linear:XRPUSDT"]["views"][TOPIC]["deltas"])


def test_parse_faults_product_example_parses() -> None:
    assert parse_faults("disconnect:500,gap:700,garbage:300,http5xx:5") == {
        "disconnect": 500,
        "gap": 700,
        "garbage": 300,
        "http5xx": 5,
    }
    assert parse_faults("") == {} and parse_faults(None) == {}
    assert parse_faults(" stall:3 , restart:1 ,") == {"stall": 3, "restart": 1}
    assert set(FAULT_KINDS) == {
        "disconnect",
        "stall",
        "gap",
        "restart",
        "garbage",
        "truncate",
        "duplicate",
        "reorder",
        "types",
        "oversized",
        "outage",
        "http5xx",
        "http429",
        "http403",
        "retcode",
        "slow",
    }


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("gap:5,explode:3", "explode"),
        ("gap:0", "gap:0"),
        ("gap:-2", "gap:-2"),
        ("gap", "gap"),
        ("gap:x", "gap:x"),
        ("gap:1,gap:2", "gap"),
    ],
)
def test_parse_faults_bad_part_raises_config_error_naming_it(spec: str, names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        parse_faults(spec)


def test_venue_server_bad_fault_dict_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        VenueServer([tmp_path], faults={"gap": 0})


async def test_fault_gap_skips_every_nth_delta_u_jumps_by_two(tmp_path: Path) -> None:
    async with asyncio.timeout(3 * 10):
        frames, closed, stats, _ = await _run(tmp_path, "gap")
    book = _book_frames(frames)
    deltas = _deltas(stats)
    assert deltas >= 40 and not closed
    assert stats["faults"]["injected"]["gap"] == deltas // N
    # u: snapshot at VIEW_U0, then every delta but the N-th ones
    u0 = book[0]["data"]["u"]
    assert [f["data"]["u"] - u0 for f in book[1:]] == [k for k in range(1, deltas + 1) if k % N]


async def test_fault_restart_replaces_nth_delta_by_u1_snapshot(tmp_path: Path) -> None:
    async with asyncio.timeout(3 * 10):
        frames, _, stats, rec = await _run(tmp_path, "restart")
    ref = ReferenceBook(rec)
    book = _book_frames(frames)
    deltas = _deltas(stats)
    restarts = [f for f in book if f["type"] == "snapshot" and f["data"]["u"] == 1]
    assert len(restarts) == deltas // N == stats["faults"]["injected"]["restart"]
    # after a restart u continues from 1; the stream rebuilds the reference book throughout
    client = ClientBook(ref)
    for prev, f in itertools.pairwise(book):
        if f["type"] == "delta":
            assert f["data"]["u"] == prev["data"]["u"] + 1
    for k, f in enumerate(book[1:], start=1):
        assert (f["type"] == "snapshot") == (k % N == 0)
    for f in book:
        client.apply(f)
        assert client.top() == ref.top(f["data"]["seq"], 50)


async def test_fault_disconnect_closes_after_nth_delta_each_connection(tmp_path: Path) -> None:
    rec = write_xrp_recording(tmp_path)
    async with (
        asyncio.timeout(3 * 15),
        running_venue([rec], speed=SPEED, faults={"disconnect": N}) as venue,
    ):
        closes = 0
        while True:
            async with connect(venue.ws_url("linear")) as ws:
                assert (await ws_request(ws, "subscribe", [TOPIC]))["success"]
                frames, closed = await collect(ws, venue)
                code = ws.close_code
            book = _book_frames(frames)
            n_deltas = sum(f["type"] == "delta" for f in book)
            if not closed:
                assert n_deltas < N
                break
            closes += 1
            assert code == 1001
            assert book[0]["type"] == "snapshot" and n_deltas == N
        stats = venue.stats()
    assert closes >= 2
    assert stats["faults"]["injected"]["disconnect"] == closes
    assert stats["connections"]["open"] == 0 and stats["connections"]["total"] == closes + 1


async def test_fault_stall_goes_silent_from_nth_delta_and_keeps_socket_open(tmp_path: Path) -> None:
    rec = write_xrp_recording(tmp_path)
    async with (
        asyncio.timeout(3 * 10),
        running_venue([rec], speed=SPEED, faults={"stall": N}) as venue,
    ):
        async with connect(venue.ws_url("linear")) as ws:
            assert (await ws_request(ws, "subscribe", [TOPIC]))["success"]
            frames, closed = await collect(ws, venue)
            assert not closed and ws.state is State.OPEN
            book = _book_frames(frames)
            assert [f["type"] for f in book] == ["snapshot"] + ["delta"] * (N - 1)
            await ws.send(json.dumps({"op": "ping", "req_id": "p"}))
            with pytest.raises(TimeoutError):  # not even a pong
                await asyncio.wait_for(ws.recv(), 0.5)
            stats = venue.stats()
            assert stats["connections"]["open"] == 1
        deltas = _deltas(stats)
        assert stats["faults"]["injected"]["stall"] == deltas // N >= 1
        await asyncio.sleep(0.1)
        assert venue.stats()["connections"]["open"] == 0  # the client closed it


@pytest.mark.parametrize("kind", ["garbage", "truncate"])
async def test_fault_bad_frame_precedes_nth_delta_stream_intact(tmp_path: Path, kind: str) -> None:
    async with asyncio.timeout(3 * 10):
        frames, _, stats, rec = await _run(tmp_path, kind)
    ref = ReferenceBook(rec)
    deltas = _deltas(stats)
    book = _book_frames(frames)
    u0 = book[0]["data"]["u"]
    bad = [i for i, f in enumerate(frames) if parse_or_none(f) is None]
    assert len(bad) == deltas // N == stats["faults"]["injected"][kind]
    for i in bad:
        nxt = json.loads(frames[i + 1])
        assert nxt["type"] == "delta" and (nxt["data"]["u"] - u0) % N == 0
        if kind == "truncate":
            assert frames[i] == frames[i + 1][: len(frames[i + 1]) // 2]
    client = ClientBook(ref)
    for prev, f in itertools.pairwise(book):
        assert f["data"]["u"] == prev["data"]["u"] + 1
    for f in book:
        client.apply(f)
        assert client.top() == ref.top(f["data"]["seq"], 50)


async def test_fault_duplicate_sends_nth_delta_twice(tmp_path: Path) -> None:
    async with asyncio.timeout(3 * 10):
        frames, _, stats, _ = await _run(tmp_path, "duplicate")
    book = _book_frames(frames)
    deltas = _deltas(stats)
    u0 = book[0]["data"]["u"]
    expected = []
    for k in range(1, deltas + 1):
        expected += [k, k] if k % N == 0 else [k]
    assert [f["data"]["u"] - u0 for f in book[1:]] == expected
    assert stats["faults"]["injected"]["duplicate"] == deltas // N


async def test_fault_reorder_sends_nth_delta_after_the_next(tmp_path: Path) -> None:
    async with asyncio.timeout(3 * 10):
        frames, _, stats, _ = await _run(tmp_path, "reorder")
    book = _book_frames(frames)
    deltas = _deltas(stats)
    u0 = book[0]["data"]["u"]
    expected = list(range(1, deltas + 1))
    for k in range(N, deltas, N):  # the N-th swaps with its successor (when there is one)
        i = expected.index(k)
        expected[i], expected[i + 1] = expected[i + 1], expected[i]
    assert [f["data"]["u"] - u0 for f in book[1:]] == expected
    assert stats["faults"]["injected"]["reorder"] == deltas // N


@pytest.mark.parametrize(
    ("kind", "status", "check"),
    [
        ("http5xx", 503, None),
        ("http429", 429, None),
        ("http403", 403, "access too frequent"),
        ("retcode", 200, 10016),
    ],
)
async def test_fault_rest_every_nth_request_fails(
    tmp_path: Path, kind: str, status: int, check: object
) -> None:
    rec = write_xrp_recording(tmp_path)
    async with (
        asyncio.timeout(3 * 10),
        running_venue([rec], speed=SPEED, faults={kind: 3}) as venue,
        aiohttp.ClientSession() as http,
    ):
        seen = []
        for _ in range(7):
            async with http.get(
                venue.url + "/v5/market/orderbook",
                params={"category": "linear", "symbol": "XRPUSDT"},
            ) as r:
                text = await r.text()
                seen.append(r.status)
                body = parse_or_none(text)
                failed = r.status != 200 or (body is not None and body["retCode"] != 0)
                if failed and isinstance(check, str):
                    assert text == check
                if failed and isinstance(check, int):
                    assert body is not None and body["retCode"] == check
                    assert body["retMsg"] == "service restarting"
            if kind == "retcode":
                seen[-1] = 10016 if failed else 0
        async with http.get(venue.url + "/venue/stats") as r:
            stats = await r.json()
    ok = 0 if kind == "retcode" else 200
    bad = 10016 if kind == "retcode" else status
    assert seen == [ok, ok, bad, ok, ok, bad, ok]
    assert stats["faults"]["injected"][kind] == 2
    assert stats["rest_requests"] == 7  # /venue/stats is not counted

"""The loopback Bybit V5 venue over real sockets: books, protocol, REST, CLI entry point."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from venue_testkit import (
    ROOT,
    ClientBook,
    ReferenceBook,
    collect,
    running_venue,
    trade_items,
    write_trades_recording,
    write_xrp_recording,
    ws_request,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mmd.errors import ConfigError
from mmd.venue import VenueServer

DEPTHS = (1, 50, 200, 1000)


async def _rest(
    session: aiohttp.ClientSession, base: str, path: str, **params: str
) -> tuple[int, Any]:
    async with session.get(base + path, params=params) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


def _check_stream(frames: list[str], ref: ReferenceBook, late: bool = False) -> dict[str, int]:
    """Rebuild every orderbook topic in `frames` and compare it with the reference at each seq."""
    books: dict[str, ClientBook] = {}
    counts: dict[str, int] = {}
    now_ms = time.time() * 1000
    for raw in frames:
        f = json.loads(raw)
        if not str(f.get("topic", "")).startswith("orderbook."):
            continue
        topic = f["topic"]
        depth = int(topic.split(".")[1])
        book = books.get(topic)
        if book is None:
            assert f["type"] == "snapshot", f"{topic}: first frame must be a snapshot"
            book = books[topic] = ClientBook(ref)
        elif f["type"] == "delta":
            assert depth > 1, "depth 1 sends snapshots only"
            assert f["data"]["u"] == book.u + 1, f"{topic}: u not contiguous"
        else:
            assert depth == 1 or late, f"{topic}: unexpected snapshot"
        book.apply(f)
        seq = f["data"]["seq"]
        assert book.top() == ref.top(seq, depth), f"{topic} differs from the reference at {seq}"
        assert set(f) == {"topic", "type", "ts", "data", "cts"}
        assert set(f["data"]) == {"s", "b", "a", "u", "seq"}
        # re-based: ts is the emission time, and a delta keeps the recorded ts - cts gap
        assert abs(f["ts"] - now_ms) < 30_000
        if f["type"] == "delta":
            assert f["ts"] - f["cts"] == ref.gaps[seq]
        counts[topic] = counts.get(topic, 0) + 1
    return counts


async def test_venue_orderbook_stream_matches_offline_reference_at_every_seq(
    tmp_path: Path,
) -> None:
    rec = write_xrp_recording(tmp_path)
    ref = ReferenceBook(rec)
    async with asyncio.timeout(3 * 15), running_venue([rec], speed=10.0) as venue:
        topics = [f"orderbook.{d}.XRPUSDT" for d in DEPTHS]

        async def late_client() -> list[str]:
            await asyncio.sleep(0.35)  # mid-replay: 0.2 s lead + 0.48 s of book frames
            async with connect(venue.ws_url("linear")) as ws:
                assert (await ws_request(ws, "subscribe", ["orderbook.50.XRPUSDT"]))["success"]
                frames, closed = await collect(ws, venue)
                assert not closed
                return frames

        late = asyncio.create_task(late_client())
        async with connect(venue.ws_url("linear")) as ws:
            ack = await ws_request(ws, "subscribe", topics)
            assert ack["success"] is True
            frames, closed = await collect(ws, venue)
        late_frames = await late
        assert not closed
        counts = _check_stream(frames, ref)
        assert set(counts) == set(topics)
        # subscribed during the 2 s lead: the first snapshot is the source snapshot's state
        assert json.loads(frames[0])["data"]["seq"] == ref.seqs[0]
        assert counts["orderbook.50.XRPUSDT"] >= 40  # snapshot + one delta per changing frame
        late_counts = _check_stream(late_frames, ref, late=True)
        assert 0 < late_counts["orderbook.50.XRPUSDT"] < counts["orderbook.50.XRPUSDT"]

        async with aiohttp.ClientSession() as http:
            for depth in (50, 1000):
                status, body = await _rest(
                    http,
                    venue.url,
                    "/v5/market/orderbook",
                    category="linear",
                    symbol="XRPUSDT",
                    limit=str(depth),
                )
                assert status == 200 and body["retCode"] == 0
                res = body["result"]
                assert res["seq"] == ref.seqs[-1]
                assert res["u"] == len(ref.seqs)  # one per applied source book frame
                bids = [(ref.ticks(p), ref.lots(q)) for p, q in res["b"]]
                asks = [(ref.ticks(p), ref.lots(q)) for p, q in res["a"]]
                assert (bids, asks) == ref.top(ref.seqs[-1], depth)
                assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
            status, body = await _rest(
                http, venue.url, "/v5/market/orderbook", category="linear", symbol="XRPUSDT"
            )
            assert len(body["result"]["b"]) == 25  # Bybit's default limit
            status, stats = await _rest(http, venue.url, "/venue/stats")
        market = stats["markets"]["linear:XRPUSDT"]
        assert stats["finished"] is True
        assert stats["events_applied"] == stats["events_total"] == 50
        assert market["seq"] == ref.seqs[-1] and market["u"] == 50
        assert market["best_bid"] == "1.9537" and market["best_ask"] == "1.9538"


async def test_venue_ws_protocol_acks_pongs_and_refusals_have_bybit_shapes(tmp_path: Path) -> None:
    rec = write_xrp_recording(tmp_path)
    async with asyncio.timeout(3 * 10), running_venue([rec], speed=10.0) as venue:
        async with connect(venue.ws_url("linear")) as ws:
            ack = await ws_request(ws, "subscribe", ["orderbook.50.XRPUSDT"], req_id="sub-1")
            assert set(ack) == {"success", "ret_msg", "conn_id", "req_id", "op"}
            assert ack["success"] is True and ack["ret_msg"] == ""
            assert ack["req_id"] == "sub-1" and ack["op"] == "subscribe"
            assert isinstance(ack["conn_id"], str) and ack["conn_id"]
            pong = await ws_request(ws, "ping", req_id="hb-7")
            assert pong == {
                "success": True,
                "ret_msg": "pong",
                "conn_id": ack["conn_id"],
                "req_id": "hb-7",
                "op": "ping",
            }
            bad = await ws_request(ws, "subscribe", ["orderbook.50.FOOUSDT"], req_id="s2")
            assert bad["success"] is False and "FOOUSDT" in bad["ret_msg"]
            assert bad["op"] == "subscribe" and bad["req_id"] == "s2"
            bad = await ws_request(ws, "subscribe", ["orderbook.5.XRPUSDT"])
            assert bad["success"] is False and "depth" in bad["ret_msg"]
            bad = await ws_request(ws, "subscribe", ["liquidation.XRPUSDT"])
            assert bad["success"] is False and "liquidation.XRPUSDT" in bad["ret_msg"]
            bad = await ws_request(ws, "subscribe", [])
            assert bad["success"] is False
            bad = await ws_request(ws, "auth")
            assert bad["success"] is False and "auth" in bad["ret_msg"]
            await ws.send("not json")
            assert json.loads(await ws.recv())["success"] is False
            ok = await ws_request(ws, "unsubscribe", ["orderbook.50.XRPUSDT"], req_id="u1")
            assert ok["success"] is True and ok["op"] == "unsubscribe"
            bad = await ws_request(ws, "unsubscribe", ["orderbook.50.XRPUSDT"])
            assert bad["success"] is False and "not subscribed" in bad["ret_msg"]
        # XRPUSDT is a linear recording: unknown on the spot endpoint
        async with connect(venue.ws_url("spot")) as ws:
            bad = await ws_request(ws, "subscribe", ["publicTrade.XRPUSDT"])
            assert bad["success"] is False and "XRPUSDT" in bad["ret_msg"]
            pong = await ws_request(ws, "ping")
            assert "req_id" not in pong and pong["ret_msg"] == "pong"  # spot shape
        with pytest.raises(InvalidStatus):
            async with connect(venue.ws_url("option")):
                pass
        async with aiohttp.ClientSession() as http:
            for params in (
                {"category": "linear", "symbol": "FOOUSDT"},
                {"symbol": "XRPUSDT"},
                {"category": "option", "symbol": "XRPUSDT"},
                {"category": "linear"},
            ):
                status, body = await _rest(http, venue.url, "/v5/market/orderbook", **params)
                assert status == 200 and body["retCode"] == 10001, params
                assert body["retMsg"] and body["result"] == {}
            status, body = await _rest(
                http,
                venue.url,
                "/v5/market/orderbook",
                category="linear",
                symbol="XRPUSDT",
                limit="1001",
            )
            assert body["retCode"] == 10001
            status, _ = await _rest(http, venue.url, "/v5/market/tickers", category="linear")
            assert status == 404
            status, body = await _rest(
                http, venue.url, "/v5/market/instruments-info", category="linear"
            )
            assert status == 200 and body["retCode"] == 0 and body["retMsg"] == "OK"
            assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
            (row,) = body["result"]["list"]
            assert row["symbol"] == "XRPUSDT" and row["status"] == "Trading"
            assert row["priceFilter"]["tickSize"] == "0.0001"
            assert row["lotSizeFilter"]["qtyStep"] == "1"
            assert row["lotSizeFilter"]["minOrderQty"] == "1"
            status, body = await _rest(
                http, venue.url, "/v5/market/instruments-info", category="linear", symbol="BTCUSDT"
            )
            assert body["retCode"] == 10001
            status, body = await _rest(http, venue.url, "/v5/market/time")
            assert abs(int(body["result"]["timeSecond"]) - time.time()) < 30


async def test_venue_kline_rest_is_newest_first_and_built_from_trades(tmp_path: Path) -> None:
    rec = write_trades_recording(tmp_path)
    items = trade_items()
    async with asyncio.timeout(3 * 10), running_venue([rec], speed=400.0) as venue:
        async with connect(venue.ws_url("linear")) as ws:
            ack = await ws_request(ws, "subscribe", ["publicTrade.BTCUSDT", "kline.1.BTCUSDT"])
            assert ack["success"]
            frames, _ = await collect(ws, venue)
        async with aiohttp.ClientSession() as http:
            _, body = await _rest(
                http,
                venue.url,
                "/v5/market/kline",
                category="linear",
                symbol="BTCUSDT",
                interval="1",
            )
            _, body3 = await _rest(
                http, venue.url, "/v5/market/kline", symbol="BTCUSDT", interval="3", limit="10"
            )
            _, last2 = await _rest(
                http,
                venue.url,
                "/v5/market/kline",
                category="linear",
                symbol="BTCUSDT",
                interval="1",
                limit="2",
            )
            _, bad = await _rest(
                http,
                venue.url,
                "/v5/market/kline",
                category="linear",
                symbol="BTCUSDT",
                interval="7",
            )

    # expected candles, offline (Decimal)
    candles: dict[int, list[Decimal]] = {}
    for t in items:
        start = t["T"] - t["T"] % 60_000
        p, v = Decimal(t["p"]), Decimal(t["v"])
        cur = candles.setdefault(start, [p, p, p, p, Decimal(0), Decimal(0)])
        cur[1], cur[2], cur[3] = max(cur[1], p), min(cur[2], p), p
        cur[4] += v
        cur[5] += p * v
    rows = body["result"]["list"]
    assert body["result"]["symbol"] == "BTCUSDT" and body["result"]["category"] == "linear"
    assert [int(r[0]) for r in rows] == sorted(candles, reverse=True)  # newest first
    for r in rows:
        assert len(r) == 7 and all(isinstance(x, str) for x in r)
        o, h, lo, c, vol, turnover = candles[int(r[0])]
        assert [Decimal(x) for x in r[1:]] == [o, h, lo, c, vol, turnover]
    assert last2["result"]["list"] == rows[:2]
    # 3-minute candles aggregated from the 1-minute ones (buckets aligned to the epoch)
    buckets: dict[int, list[Decimal]] = {}
    for start in sorted(candles):
        one = candles[start]
        b = buckets.get(start - start % 180_000)
        if b is None:
            buckets[start - start % 180_000] = list(one)
        else:
            b[1], b[2], b[3] = max(b[1], one[1]), min(b[2], one[2]), one[3]
            b[4] += one[4]
            b[5] += one[5]
    rows3 = body3["result"]["list"]
    assert [int(r[0]) for r in rows3] == sorted(buckets, reverse=True)
    assert [[Decimal(x) for x in r[1:]] for r in rows3] == [buckets[int(r[0])] for r in rows3]
    assert bad["retCode"] == 10001

    # the websocket saw every trade, ids and fields kept, T re-based
    received = [json.loads(f) for f in frames]
    trades = [t for f in received if f.get("topic") == "publicTrade.BTCUSDT" for t in f["data"]]
    assert [t["i"] for t in trades] == [t["i"] for t in items]
    assert all(set(t) == set(items[0]) for t in trades)
    assert all(abs(t["T"] - time.time() * 1000) < 30_000 for t in trades)
    klines = [k for f in received if f.get("topic") == "kline.1.BTCUSDT" for k in f["data"]]
    assert klines and {k["start"] for k in klines} == set(candles)
    final = {k["start"]: k for k in klines}
    for start, (o, h, lo, c, vol, _) in candles.items():
        k = final[start]
        assert [Decimal(k[x]) for x in ("open", "high", "low", "close", "volume")] == [
            o,
            h,
            lo,
            c,
            vol,
        ]
        assert k["end"] == start + 59_999 and k["interval"] == "1"
    assert [k["start"] for k in klines if k["confirm"]] == sorted(candles)[:-1]


@pytest.mark.parametrize("keep", [False, True])
async def test_venue_recent_trade_shape_newest_first_and_timestamps(
    tmp_path: Path, keep: bool
) -> None:
    rec = write_trades_recording(tmp_path)
    items = trade_items()
    async with (
        asyncio.timeout(3 * 10),
        running_venue([rec], speed=1000.0, keep_timestamps=keep) as venue,
    ):
        await venue.wait_finished()
        async with aiohttp.ClientSession() as http:
            _, body = await _rest(
                http,
                venue.url,
                "/v5/market/recent-trade",
                category="linear",
                symbol="BTCUSDT",
                limit="4",
            )
            _, full = await _rest(
                http, venue.url, "/v5/market/recent-trade", category="linear", symbol="BTCUSDT"
            )
            _, bad = await _rest(
                http,
                venue.url,
                "/v5/market/recent-trade",
                category="linear",
                symbol="BTCUSDT",
                limit="0",
            )
    assert body["retCode"] == 0 and body["result"]["category"] == "linear"
    got = body["result"]["list"]
    assert [t["execId"] for t in got] == [t["i"] for t in items[::-1][:4]]
    assert len(full["result"]["list"]) == len(items)
    assert bad["retCode"] == 10001
    for g, t in zip(got, items[::-1], strict=False):
        assert set(g) == {
            "execId",
            "symbol",
            "price",
            "size",
            "side",
            "time",
            "isBlockTrade",
            "isRPITrade",
            "seq",
        }
        assert (g["symbol"], g["price"], g["size"], g["side"]) == (
            "BTCUSDT",
            t["p"],
            t["v"],
            t["S"],
        )
        assert isinstance(g["time"], str) and g["seq"] == str(t["seq"])
        assert g["isBlockTrade"] is False and g["isRPITrade"] is False
        if keep:
            assert int(g["time"]) == t["T"]
        else:
            assert abs(int(g["time"]) - time.time() * 1000) < 30_000
    times = [int(g["time"]) for g in full["result"]["list"]]
    assert times == sorted(times, reverse=True)


async def test_venue_idle_client_is_dropped_pinging_client_stays(tmp_path: Path) -> None:
    rec = write_xrp_recording(tmp_path)
    async with (
        asyncio.timeout(3 * 10),
        running_venue([rec], speed=10.0, idle_timeout_s=0.3) as venue,
        connect(venue.ws_url("linear")) as idle,
        connect(venue.ws_url("linear")) as busy,
    ):
        t0 = time.monotonic()
        for _ in range(8):
            pong = await ws_request(busy, "ping")
            assert pong["ret_msg"] == "pong"
            await asyncio.sleep(0.1)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(idle.recv(), 2.0)
        assert idle.close_reason == "idle timeout"
        assert time.monotonic() - t0 < 2.5
        assert (await ws_request(busy, "ping"))["success"] is True


async def test_venue_client_past_queue_bound_is_disconnected(tmp_path: Path) -> None:
    rec = write_xrp_recording(tmp_path)
    async with (
        asyncio.timeout(3 * 10),
        running_venue([rec], speed=1000.0, max_queue_frames=3) as venue,
    ):
        await venue.wait_finished()
        async with connect(venue.ws_url("linear")) as ws:
            # ack + 4 snapshots are queued at once: past the bound of 3
            await ws.send(
                json.dumps({"op": "subscribe", "args": [f"orderbook.{d}.XRPUSDT" for d in DEPTHS]})
            )
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 2.0)
        stats = venue.stats()
        assert stats["connections"]["dropped_slow"] == 1


async def test_venue_bad_arguments_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="speed"):
        VenueServer([tmp_path], speed=0)
    with pytest.raises(ConfigError, match="no recordings"):
        await VenueServer([tmp_path]).start()
    with pytest.raises(ConfigError, match="no such recording"):
        await VenueServer([tmp_path / "missing.rec.gz"]).start()


async def test_serve_prints_port_answers_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    rec = write_xrp_recording(tmp_path)
    code = (
        "import asyncio, sys; from mmd.venue import serve; "
        "asyncio.run(serve(sys.argv[1:], '127.0.0.1', 0, 50.0, 'gap:5', False))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        str(rec),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(3 * 20):
            assert proc.stdout is not None
            line = (await proc.stdout.readline()).decode()
            m = re.fullmatch(
                r"mmd venue listening on http://127\.0\.0\.1:(\d+) "
                r"\(1 symbols, 50 events\)\n",
                line,
            )
            assert m, line
            async with aiohttp.ClientSession() as http:
                status, body = await _rest(
                    http, f"http://127.0.0.1:{m.group(1)}", "/v5/market/time"
                )
            assert status == 200 and body["retCode"] == 0
            proc.send_signal(signal.SIGTERM)
            _, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _one(folder: Path, pattern: str) -> Path:
    (path,) = folder.glob(pattern)
    return path


def _convert_available() -> bool:
    return importlib.util.find_spec("mmd.feeds.convert") is not None


@pytest.mark.skipif(not _convert_available(), reason="mmd.feeds.convert not present yet")
async def test_venue_converted_capture_stream_matches_reference(
    request: pytest.FixtureRequest,
) -> None:
    cryptofeed_dir: Path = request.getfixturevalue("cryptofeed_dir")
    rec = _one(cryptofeed_dir, "bybit_linear_BTCUSDT_*.rec.gz")
    ref = ReferenceBook(rec)
    async with asyncio.timeout(3 * 20), running_venue([rec], speed=40.0) as venue:
        async with connect(venue.ws_url("linear")) as ws:
            topics = ["orderbook.50.BTCUSDT", "orderbook.200.BTCUSDT"]
            assert (await ws_request(ws, "subscribe", topics))["success"]
            frames, closed = await collect(ws, venue)
        assert not closed
        counts = _check_stream(frames, ref)
        assert counts["orderbook.200.BTCUSDT"] > 100
        async with aiohttp.ClientSession() as http:
            _, body = await _rest(
                http,
                venue.url,
                "/v5/market/orderbook",
                category="linear",
                symbol="BTCUSDT",
                limit="200",
            )
        res = body["result"]
        assert res["seq"] == ref.seqs[-1]
        assert (
            [(ref.ticks(p), ref.lots(q)) for p, q in res["b"]],
            [(ref.ticks(p), ref.lots(q)) for p, q in res["a"]],
        ) == ref.top(ref.seqs[-1], 200)

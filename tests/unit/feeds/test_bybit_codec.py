"""Codec tests on the real Bybit V5 frames of ../shared/data (and docs-shaped samples)."""

from __future__ import annotations

import json
import zipfile

import pytest
from conftest import CRYPTOFEED, DATA, need

from mmd.feeds.bybit_codec import (
    BookMsg,
    ControlMsg,
    DecodeError,
    InstrumentsMsg,
    KlineMsg,
    RestError,
    TradesMsg,
    decode_frame,
    encode_subscribe,
)
from mmd.model import codes

SAMPLES = DATA / "bybit_samples"


def test_codec_real_ob500_archive_decodes_snapshot_then_contiguous_deltas() -> None:
    path = SAMPLES / "nautilus_test_data" / "xrpusdt-ob500.data.zip"
    need(path)
    with zipfile.ZipFile(path) as zf:
        lines = zf.read(zf.namelist()[0]).splitlines()
    msgs = [decode_frame(line) for line in lines]
    assert all(isinstance(m, BookMsg) for m in msgs)
    assert msgs[0].is_snapshot and len(msgs[0].bids) == 500 and len(msgs[0].asks) == 500
    assert not any(m.is_snapshot for m in msgs[1:])
    us = [m.u for m in msgs]
    assert us == list(range(us[0], us[0] + len(us)))  # u +1 per message in the real archive
    first = json.loads(lines[0])
    assert msgs[0].ts_exch_ns == first["cts"] * 1_000_000  # matching-engine time preferred
    assert msgs[0].depth == 500 and msgs[0].symbol == "XRPUSDT"


def test_codec_real_cryptofeed_capture_decodes_every_frame_kind() -> None:
    need(CRYPTOFEED)
    kinds: dict[str, int] = {}
    with open(CRYPTOFEED, "rb") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("t") not in ("recv", "http"):
                continue
            msg = decode_frame(rec["data"])
            kinds[type(msg).__name__] = kinds.get(type(msg).__name__, 0) + 1
            if isinstance(msg, TradesMsg):
                assert msg.trades and all(t.side in (codes.BUY, codes.SELL) for t in msg.trades)
            if isinstance(msg, InstrumentsMsg):
                assert {i.symbol for i in msg.instruments} >= {"BTCUSDT", "ETHUSDT"}
    # SOURCES.md section D: 6 books (1 snapshot + deltas each), trades, klines, 24 acks,
    # tickers (1 snapshot + deltas per linear symbol, snapshots on spot), 2 instruments-info
    # answers, and known-but-unused kinds (liquidations) decoded as None
    assert kinds["BookMsg"] == 6 + 413 + 420 + 382 + 379 + 299 + 249
    assert kinds["TradesMsg"] == 16 + 12 + 57 + 17 + 11 + 7
    assert kinds["KlineMsg"] == 22 + 12 + 25 + 12 + 15 + 10
    assert kinds["ControlMsg"] == 24
    assert kinds["TickerMsg"] == 4 + 184 + 215 + 192 + 163 + 41 + 40
    assert kinds["InstrumentsMsg"] == 2


def test_codec_spot_instrument_uses_base_precision_as_lot() -> None:
    need(CRYPTOFEED)
    with open(CRYPTOFEED, "rb") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("t") == "http" and "category=spot" in rec["url"]:
                msg = decode_frame(rec["data"])
                break
    assert isinstance(msg, InstrumentsMsg)
    btc = next(i for i in msg.instruments if i.symbol == "BTCUSDT")
    assert btc.tick_size and btc.lot_size and float(btc.lot_size) > 0


def test_codec_rest_samples_decode_kline_newest_first_to_oldest_first() -> None:
    path = SAMPLES / "nautilus_python_resources" / "http_responses" / "linear" / "klines_btc.json"
    need(path)
    msg = decode_frame(path.read_bytes())
    assert isinstance(msg, KlineMsg) and msg.from_rest
    starts = [k.start_ns for k in msg.klines]
    assert starts == sorted(starts) and len(starts) == 3
    # the newest row is the still-open candle
    assert [k.confirm for k in msg.klines] == [True, True, False]


def test_codec_rest_orderbook_and_trades_samples_decode() -> None:
    ob = SAMPLES / "nautilus_rust_test_data" / "http_get_orderbook.json"
    tr = SAMPLES / "nautilus_rust_test_data" / "http_get_trades_recent.json"
    need([ob, tr])
    book = decode_frame(ob.read_bytes())
    assert isinstance(book, BookMsg) and book.from_rest and book.is_snapshot
    assert book.bids[0] == ["27450.50", "1.500"] and book.u == 1234567
    trades = decode_frame(tr.read_bytes())
    assert isinstance(trades, TradesMsg) and trades.trades[0].side == codes.BUY


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00garbage{{",
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[',
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT"}}',
        b'{"topic":"orderbook.50.BTCUSDT","type":"weird","ts":1,"data":{}}',
        b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"S":"Up"}]}',
        b"[1,2,3]",
        b'{"hello":"world"}',
    ],
)
def test_codec_malformed_frame_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_frame(raw)


def test_codec_control_and_retcode_frames() -> None:
    pong = decode_frame(b'{"success":true,"ret_msg":"pong","conn_id":"x","req_id":"","op":"ping"}')
    assert isinstance(pong, ControlMsg) and pong.ret_msg == "pong"
    err = decode_frame(b'{"retCode":10016,"retMsg":"service restarting","result":{},"time":1}')
    assert isinstance(err, RestError) and err.ret_code == 10016
    sub = json.loads(encode_subscribe(["orderbook.50.BTCUSDT"], "r1"))
    assert sub == {"req_id": "r1", "op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}

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


# -- field rules (README "Input rules"): one refused and, where useful, one accepted case each --

T0 = 1_786_310_817_000  # ms, the real capture's start


def _ws_book(**over: object) -> dict[str, object]:
    frame: dict[str, object] = {
        "topic": "orderbook.50.BTCUSDT",
        "type": "delta",
        "ts": T0 + 1,
        "cts": T0,
        "data": {
            "s": "BTCUSDT",
            "b": [["65114.2", "1.2"]],
            "a": [["65114.3", "0"]],
            "u": 15076953,
            "seq": 131139541218,
        },
    }
    data = dict(frame["data"])  # type: ignore[call-overload]
    for k, v in over.items():
        if k.startswith("data."):
            data[k[5:]] = v
        else:
            frame[k] = v
    frame["data"] = data
    return frame


def _ws_trade(**over: object) -> dict[str, object]:
    item = {
        "T": T0,
        "s": "BTCUSDT",
        "S": "Buy",
        "v": "0.001",
        "p": "65114.3",
        "i": "5b0c",
        "BT": False,
    }
    item.update(over)
    return {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": T0, "data": [item]}


def _ws_kline(**over: object) -> dict[str, object]:
    start = T0 // 60_000 * 60_000
    item = {
        "start": start,
        "end": start + 59_999,
        "interval": "1",
        "open": "100.0",
        "close": "100.2",
        "high": "100.4",
        "low": "99.9",
        "volume": "3.5",
        "turnover": "350",
        "confirm": True,
        "timestamp": T0,
    }
    item.update(over)
    return {"topic": "kline.1.BTCUSDT", "type": "snapshot", "ts": T0, "data": [item]}


def _ws_ticker(**over: object) -> dict[str, object]:
    data = {
        "symbol": "BTCUSDT",
        "markPrice": "65117.44",
        "fundingRate": "0.0001",
        "nextFundingTime": str(T0 + 3_600_000),
    }
    data.update(over)
    return {"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": T0, "data": data}


def _rest(result: dict[str, object], **env: object) -> dict[str, object]:
    out: dict[str, object] = {"retCode": 0, "retMsg": "OK", "result": result, "time": T0}
    out.update(env)
    return out


def _rest_instr(tick: object = "0.10", lot: object = "0.001") -> dict[str, object]:
    return _rest(
        {
            "category": "linear",
            "list": [
                {
                    "symbol": "BTCUSDT",
                    "status": "Trading",
                    "priceFilter": {"tickSize": tick},
                    "lotSizeFilter": {"qtyStep": lot},
                }
            ],
        }
    )


def _rest_trades(*rows: object) -> dict[str, object]:
    return _rest({"category": "linear", "list": list(rows)})


_TRADE_ROW = {
    "execId": "e1",
    "symbol": "BTCUSDT",
    "price": "100.1",
    "size": "0.003",
    "side": "Buy",
    "time": str(T0),
    "isBlockTrade": False,
}
_KLINE_ROW = [str(T0 // 60_000 * 60_000), "100.0", "100.4", "99.9", "100.2", "3.5", "350"]

REFUSED = {
    # ids and times: JSON integers in range, never strings, bools, floats or negatives
    "u as string": _ws_book(**{"data.u": "15076953"}),
    "u as bool": _ws_book(**{"data.u": True}),
    "u as float": _ws_book(**{"data.u": 15076953.0}),
    "u negative": _ws_book(**{"data.u": -1}),
    "u above 2**53": _ws_book(**{"data.u": 2**53}),
    "u above 2**63": _ws_book(**{"data.u": 2**63}),
    "seq negative": _ws_book(**{"data.seq": -5}),
    "cts negative": _ws_book(cts=-1),
    "cts before 2000": _ws_book(cts=1),
    "ts after 2200 (no cts)": {k: v for k, v in _ws_book(ts=10**16).items() if k != "cts"},
    "ts as 1e30 float": {k: v for k, v in _ws_book(ts=1e30).items() if k != "cts"},
    "cts as bool": _ws_book(cts=True),
    # routing: the topic is the symbol; data must agree
    "data.s disagrees with topic": _ws_book(**{"data.s": "ETHUSDT"}),
    "data.s as list": _ws_book(**{"data.s": ["BTCUSDT"]}),
    "topic symbol malformed": _ws_book(topic="orderbook.50.BTC USDT"),
    "depth not a number": _ws_book(topic="orderbook.x.BTCUSDT"),
    "book type unknown": _ws_book(type="weird"),
    "level price as number": _ws_book(**{"data.b": [[65114.2, "1.2"]]}),
    "level of three": _ws_book(**{"data.b": [["65114.2", "1.2", "x"]]}),
    "levels not a list": _ws_book(**{"data.a": {"65114.3": "0"}}),
    # trades
    "trade price 1e30": _ws_trade(p="1e30"),
    "trade price NaN": _ws_trade(p="NaN"),
    "trade price negative": _ws_trade(p="-65114.3"),
    "trade price with spaces": _ws_trade(p=" 65114.3"),
    "trade size zero": _ws_trade(v="0"),
    "trade size as number": _ws_trade(v=0.001),
    "trade time 1e25": _ws_trade(T=10**25),
    "trade time as string": _ws_trade(T=str(T0)),
    "trade side unknown": _ws_trade(S="Up"),
    "trade symbol disagrees": _ws_trade(s="ETHUSDT"),
    "trade id not a string": _ws_trade(i=["x"]),
    "trade block flag as string": _ws_trade(BT="false"),
    # klines
    "kline confirm as string": _ws_kline(confirm="false"),
    "kline high below low": _ws_kline(high="99.0", low="100.5"),
    "kline high below close": _ws_kline(high="100.1"),
    "kline low above open": _ws_kline(low="100.1"),
    "kline start 1e20": _ws_kline(start=10**20),
    "kline open exponent": _ws_kline(open="1e2"),
    "kline volume negative": _ws_kline(volume="-1"),
    # tickers: nothing non-finite or absurd reaches funding
    "funding rate NaN": _ws_ticker(fundingRate="NaN"),
    "funding rate inf": _ws_ticker(fundingRate="inf"),
    "funding rate absurd": _ws_ticker(fundingRate="5"),
    "funding rate as number": _ws_ticker(fundingRate=0.0001),
    "mark price NaN": _ws_ticker(markPrice="NaN"),
    "mark price zero": _ws_ticker(markPrice="0"),
    "next funding 1e20": _ws_ticker(nextFundingTime="100000000000000000000"),
    "ticker symbol disagrees": _ws_ticker(symbol="ETHUSDT"),
    # REST
    "retCode as string": {"retCode": "0", "retMsg": "OK", "result": {}},
    "rest book u as string": _rest({"s": "BTCUSDT", "b": [], "a": [], "ts": T0, "u": "1"}),
    "rest book without time": {"retCode": 0, "result": {"s": "BTCUSDT", "b": [], "a": [], "u": 1}},
    "rest book symbol as list": _rest({"s": ["BTCUSDT"], "b": [], "a": [], "ts": T0, "u": 1}),
    "rest trades with null": _rest_trades(_TRADE_ROW, None),
    "rest trades null first": _rest_trades(None, _TRADE_ROW),
    "rest trades mixed symbols": _rest_trades(_TRADE_ROW, {**_TRADE_ROW, "symbol": "ETHUSDT"}),
    "rest trade time as int": _rest_trades({**_TRADE_ROW, "time": T0}),
    "rest klines with null": _rest(
        {"category": "linear", "symbol": "BTCUSDT", "list": [_KLINE_ROW, None]}
    ),
    "rest kline start 1e20": _rest(
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "list": [["100000000000000000000", *_KLINE_ROW[1:]]],
        }
    ),
    "instrument tick 0": _rest_instr(tick="0"),
    "instrument tick negative": _rest_instr(tick="-0.1"),
    "instrument tick NaN": _rest_instr(tick="NaN"),
    "instrument tick exponent": _rest_instr(tick="1e-1"),
    "instrument tick as number": _rest_instr(tick=0.1),
    "instrument lot 0": _rest_instr(lot="0.000"),
    "instrument lot non-numeric": _rest_instr(lot="lots"),
    "instrument lot finer than 1e-18": _rest_instr(lot="0." + "0" * 19 + "1"),
}


@pytest.mark.parametrize("frame", list(REFUSED.values()), ids=list(REFUSED))
def test_codec_refuses_field_rule_violations(frame: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        decode_frame(json.dumps(frame))


def test_codec_refused_book_frame_names_its_symbol_for_resync() -> None:
    with pytest.raises(DecodeError) as err:
        decode_frame(json.dumps(_ws_book(**{"data.u": "7"})))
    assert err.value.book_symbol == "BTCUSDT"
    with pytest.raises(DecodeError) as err:
        decode_frame(json.dumps(_ws_trade(p="1e30")))
    assert err.value.book_symbol is None  # not a book frame: nothing to resync


def test_codec_accepts_the_valid_forms_of_the_same_fields() -> None:
    book = decode_frame(json.dumps(_ws_book()))
    assert isinstance(book, BookMsg) and book.u == 15076953 and book.ts_exch_ns == T0 * 1_000_000
    # u at the documented bound is still accepted
    assert decode_frame(json.dumps(_ws_book(**{"data.u": 2**53 - 1}))).u == 2**53 - 1  # type: ignore[union-attr]
    kl = decode_frame(json.dumps(_ws_kline(high="100.2", low="100.0", confirm=False)))
    assert isinstance(kl, KlineMsg) and kl.klines[0].confirm is False  # high == close is fine
    tk = decode_frame(json.dumps(_ws_ticker(fundingRate="-0.00375")))
    assert tk.funding_rate == -0.00375  # type: ignore[union-attr]  # negative rates are real
    partial = decode_frame(json.dumps(_ws_ticker(fundingRate="", markPrice="")))
    assert partial.funding_rate is None and partial.mark_price is None  # type: ignore[union-attr]
    tr = decode_frame(json.dumps(_rest_trades(_TRADE_ROW)))
    assert isinstance(tr, TradesMsg) and tr.trades[0].price == "100.1"  # kept as written
    ins = decode_frame(json.dumps(_rest_instr(tick="0.10")))
    assert isinstance(ins, InstrumentsMsg) and ins.instruments[0].tick_size == "0.10"


def test_real_levels_convert_exactly_as_plain_rounding_did() -> None:
    """The exact conversion refuses nothing real and changes no real value: every level of the
    real XRPUSDT archive (tick 0.0001, lot 1, as in the venue's instruments-info) gives the
    same ticks and lots as round(value / step)."""
    from mmd.model.instrument import Instrument

    path = SAMPLES / "nautilus_test_data" / "xrpusdt-ob500.data.zip"
    need(path)
    with zipfile.ZipFile(path) as zf:
        lines = zf.read(zf.namelist()[0]).splitlines()
    inst = Instrument(symbol="XRPUSDT", tick_size="0.0001", lot_size="1")
    n = 0
    for line in lines:
        msg = decode_frame(line)
        assert isinstance(msg, BookMsg)
        for levels in (msg.bids, msg.asks):
            px, qty = inst.levels_to_arrays(levels)
            assert px.tolist() == [round(float(p) / 0.0001) for p, _ in levels]
            assert qty.tolist() == [round(float(q)) for _, q in levels]
            n += len(levels)
    assert n > 1000

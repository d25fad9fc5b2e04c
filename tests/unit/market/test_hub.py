"""MarketHub: continuity, readiness, dedupe, upserts, and no exception on any corrupt frame."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmd.config import MarketConfig
from mmd.feeds.bybit_codec import decode_frame
from mmd.market.hub import MarketHub
from mmd.model.instrument import Instrument

CFG = MarketConfig(mid_capacity=64, trade_capacity=64, kline_capacity=8)
INST = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
# venue times must lie in 2000..2200 (codec rule): frames are stamped from the real capture's start
T0 = 1_786_310_817_000


def _book(
    typ: str,
    u: int,
    bids: list[list[str]],
    asks: list[list[str]],
    sym: str = "BTCUSDT",
    seq: int | None = None,
) -> bytes:
    return orjson.dumps(
        {
            "topic": f"orderbook.50.{sym}",
            "type": typ,
            "ts": T0 + 1_000 + u,
            "data": {
                "s": sym,
                "b": bids,
                "a": asks,
                "u": u,
                "seq": seq if seq is not None else 100 + u,
            },
            "cts": T0 + 999 + u,
        }
    )


def _hub(*symbols: str) -> MarketHub:
    syms = symbols or ("BTCUSDT",)
    return MarketHub(
        list(syms), CFG, [Instrument(symbol=s, tick_size="0.1", lot_size="0.001") for s in syms]
    )


def test_hub_gap_resyncs_only_that_symbol_and_reports_not_ready() -> None:
    hub = _hub("BTCUSDT", "ETHUSDT")
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert hub.on_frame(_book("snapshot", 10, [["100.0", "1"]], [["100.1", "1"]], sym), 1) == []
    assert hub.readiness() == {}
    out = hub.on_frame(_book("delta", 12, [["100.0", "2"]], [], "BTCUSDT"), 2)
    assert [(r.symbol, r.reason) for r in out] == [("BTCUSDT", "gap")]
    assert hub.readiness() == {"BTCUSDT": "unsynced:gap"}
    assert hub.stats.resyncs[("BTCUSDT", "gap")] == 1 and not hub.stats.resyncs[("ETHUSDT", "gap")]
    # ETH keeps applying while BTC waits for its snapshot
    assert hub.on_frame(_book("delta", 11, [["100.0", "3"]], [], "ETHUSDT"), 3) == []
    assert hub.states["ETHUSDT"].book.best_bid() == (1000, 3000)
    hub.on_frame(_book("snapshot", 20, [["99.0", "1"]], [["99.1", "1"]], "BTCUSDT"), 4)
    assert hub.readiness() == {}


def test_hub_crossed_book_after_delta_resyncs() -> None:
    hub = _hub()
    hub.on_frame(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1)
    out = hub.on_frame(_book("delta", 2, [["100.3", "1"]], []), 2)
    assert [(r.symbol, r.reason) for r in out] == [("BTCUSDT", "crossed")]
    assert hub.readiness() == {"BTCUSDT": "unsynced:crossed"}


def test_hub_negative_size_counts_decode_error_and_resyncs() -> None:
    hub = _hub()
    hub.on_frame(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1)
    out = hub.on_frame(_book("delta", 2, [["100.0", "-1"]], []), 2)
    assert [(r.symbol, r.reason) for r in out] == [("BTCUSDT", "bad_frame")]
    assert hub.stats.decode_errors == 1


def test_hub_trades_deduplicated_across_ws_and_rest() -> None:
    hub = _hub()
    ws = orjson.dumps(
        {
            "topic": "publicTrade.BTCUSDT",
            "type": "snapshot",
            "ts": T0 + 5,
            "data": [
                {"T": T0 + 5, "s": "BTCUSDT", "S": "Buy", "v": "0.002", "p": "100.1", "i": "a"},
                {"T": T0 + 6, "s": "BTCUSDT", "S": "Sell", "v": "0.001", "p": "100.0", "i": "b"},
            ],
        }
    )
    rest = orjson.dumps(
        {
            "retCode": 0,
            "retMsg": "OK",
            "time": T0 + 9,
            "result": {
                "category": "linear",
                "list": [
                    {
                        "execId": "c",
                        "symbol": "BTCUSDT",
                        "price": "100.2",
                        "size": "0.003",
                        "side": "Buy",
                        "time": str(T0 + 7),
                    },
                    {
                        "execId": "b",
                        "symbol": "BTCUSDT",
                        "price": "100.0",
                        "size": "0.001",
                        "side": "Sell",
                        "time": str(T0 + 6),
                    },
                ],
            },
        }
    )
    hub.on_frame(ws, 1)
    hub.on_frame(rest, 2)
    tr = hub.states["BTCUSDT"].trades.array("px_ticks")
    assert tr.tolist() == [1001, 1000, 1002]
    assert hub.states["BTCUSDT"].trades.array("side").tolist() == [1, -1, 1]


def test_hub_kline_same_start_upserts() -> None:
    hub = _hub()

    def kl(close: str, confirm: bool) -> bytes:
        start = T0 // 60_000 * 60_000
        return orjson.dumps(
            {
                "topic": "kline.1.BTCUSDT",
                "type": "snapshot",
                "ts": T0,
                "data": [
                    {
                        "start": start,
                        "end": start + 59_999,
                        "interval": "1",
                        "open": "100",
                        "close": close,
                        "high": "101",
                        "low": "99",
                        "volume": "2",
                        "turnover": "200",
                        "confirm": confirm,
                        "timestamp": T0,
                    }
                ],
            }
        )

    hub.on_frame(kl("100.5", False), 1)
    hub.on_frame(kl("100.7", True), 2)
    ring = hub.states["BTCUSDT"].klines
    assert len(ring) == 1 and ring.latest("close") == 100.7


def _real_frames(limit: int = 400) -> list[bytes]:
    path = (
        Path(__file__).resolve().parents[3].parent
        / "shared"
        / "data"
        / "market"
        / "bybit_v5_linear_spot_2026-08-09_cryptofeed"
        / "BYBIT.jsonl"
    )
    if not path.exists():
        return [_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]])]
    out = []
    with open(path, "rb") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("t") in ("recv", "http") and rec.get("conn") != "BYBIT.ws.3":
                out.append(rec["data"].encode())
            if len(out) >= limit:
                break
    return out


FRAMES = _real_frames()


@settings(max_examples=300, deadline=None)
@given(
    idx=st.integers(0, len(FRAMES) - 1),
    cut=st.floats(0, 1),
    pos=st.floats(0, 1),
    junk=st.binary(min_size=0, max_size=6),
)
def test_hub_corrupt_real_frame_never_raises(idx: int, cut: float, pos: float, junk: bytes) -> None:
    hub = MarketHub(["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"], CFG, [INST])
    for f in FRAMES[: min(idx, 40)]:
        hub.on_frame(f, 1)
    frame = FRAMES[idx]
    truncated = frame[: int(len(frame) * cut)]
    at = int(len(truncated) * pos)
    corrupt = truncated[:at] + junk + truncated[at + len(junk) :]
    hub.on_frame(corrupt, 2)  # must not raise whatever the bytes
    hub.on_frame(frame, 3)


def test_hub_instrument_with_new_steps_restarts_symbol_state() -> None:
    hub = _hub()
    hub.on_frame(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1)
    info = orjson.dumps(
        {
            "retCode": 0,
            "retMsg": "OK",
            "time": T0,
            "result": {
                "category": "linear",
                "list": [
                    {
                        "symbol": "BTCUSDT",
                        "status": "Trading",
                        "priceFilter": {"tickSize": "0.01"},
                        "lotSizeFilter": {"qtyStep": "0.0001"},
                    }
                ],
            },
        }
    )
    hub.on_frame(info, 2)
    st = hub.states["BTCUSDT"]
    assert st.instrument.tick_size == "0.01" and not st.sync.synced
    assert hub.stats.instrument_changes == 1
    hub.on_frame(_book("snapshot", 1, [["100.00", "1"]], [["100.02", "1"]]), 3)
    assert st.book.best_bid() == (10000, 10000)
    hub.on_frame(info, 4)  # the same steps again: state kept
    assert hub.states["BTCUSDT"] is st


def test_hub_book_without_updates_goes_stale_and_not_ready() -> None:
    hub = _hub()
    hub.on_frame(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1_000_000_000)
    assert hub.check_stale(1_500_000_000, stale_after_s=1.0) == []
    assert hub.check_stale(2_500_000_000, stale_after_s=1.0) == ["BTCUSDT"]
    assert hub.check_stale(3_000_000_000, stale_after_s=1.0) == []  # flagged once
    assert hub.readiness() == {"BTCUSDT": "stale"}
    hub.on_frame(_book("delta", 2, [["100.0", "2"]], []), 3_100_000_000)
    assert hub.readiness() == {}


def test_trader_funding_charged_once_per_funding_time() -> None:
    """A long position pays funding = position * mark * rate when exchange time passes the
    funding time; the same funding time is never charged twice."""
    from mmd.app import build_trader
    from mmd.config import AppConfig
    from mmd.model.events import OrderFilled
    from mmd.trading.steps import ensure_symbol

    hub = _hub()
    trader = build_trader(AppConfig(), hub, ledger=False)
    hub.on_frame(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1)
    ticker = orjson.dumps(
        {
            "topic": "tickers.BTCUSDT",
            "type": "snapshot",
            "ts": T0,
            "data": {
                "symbol": "BTCUSDT",
                "markPrice": "100.1",
                "fundingRate": "0.0001",
                "nextFundingTime": str(T0 + 5000),
            },
        }
    )
    hub.on_frame(ticker, 2)
    st = hub.states["BTCUSDT"]
    assert st.funding_rate == 0.0001 and st.next_funding_ns == (T0 + 5000) * 1_000_000
    ensure_symbol(trader, st)
    trader.portfolio.apply_fill(
        OrderFilled(
            fill_id="x#1",
            client_order_id="x",
            symbol="BTCUSDT",
            side=1,
            px_ticks=1001,
            qty_lots=2000,
            leaves_lots=0,
            liquidity=1,
            fee_quote=0.0,
            ts_exch_ns=1,
        ),
        st.instrument,
    )
    for u, ts_ms in ((2, T0 + 4000), (3, T0 + 5001), (4, T0 + 6000)):  # before, after, again
        frame = _book("delta", u, [["100.0", str(u)]], [])
        msg = decode_frame(frame)
        hub.on_frame(frame, ts_ms * 1_000_000)
        # the book frame's venue time is T0 + 1000 + u ms: move the exchange clock explicitly
        trader.last_exch_ns = ts_ms * 1_000_000
        trader.on_message(msg, ts_ms * 1_000_000)
    # 2 BTC long (2000 lots of 0.001) pays 2 * 100.1 * 0.0001 = 0.02002 once
    assert trader.funding_payments == 1
    assert trader.portfolio.funding_quote == pytest.approx(-0.02002)


def test_trader_markouts_settle_at_first_mid_after_each_horizon() -> None:
    from mmd.app import build_trader
    from mmd.config import AppConfig
    from mmd.model.events import OrderAccepted, OrderFilled, SubmitOrder
    from mmd.trading.steps import ensure_symbol

    hub = _hub()
    trader = build_trader(AppConfig(), hub, ledger=False)
    hub.on_frame(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1)
    ensure_symbol(trader, hub.states["BTCUSDT"])
    sub = SubmitOrder(client_order_id="b1", symbol="BTCUSDT", side=1, px_ticks=1000, qty_lots=1)
    trader.oms.on_command(sub)
    trader.apply_events(
        [
            OrderAccepted(
                client_order_id="b1",
                symbol="BTCUSDT",
                side=1,
                px_ticks=1000,
                qty_lots=1,
                ts_exch_ns=0,
            ),
            OrderFilled(
                fill_id="b1#1",
                client_order_id="b1",
                symbol="BTCUSDT",
                side=1,
                px_ticks=1000,
                qty_lots=1,
                leaves_lots=0,
                liquidity=1,
                fee_quote=0.0,
                ts_exch_ns=1_000_000_000,
            ),
        ]
    )
    # mids after the fill at t=1 s: 1000.5 at 1.5 s, 999.5 at 2.5 s (1 s horizon due at 2 s),
    # 1003.0 at 6.0 s (5 s horizon due at 6 s); the 30 s horizon never comes
    for t_s, mid in ((1.5, 1000.5), (2.5, 999.5), (6.0, 1003.0)):
        trader.markout.on_mid("BTCUSDT", int(t_s * 1e9), mid)
    # a buy at 1000: markout = mid - 1000 -> 1 s: -0.5 (the 2.5 s mid), 5 s: +3.0
    assert trader.markouts[("BTCUSDT", 1)] == [-0.5, 1]
    assert trader.markouts[("BTCUSDT", 5)] == [3.0, 1]
    assert ("BTCUSDT", 30) not in trader.markouts


def test_hub_off_tick_price_or_part_lot_refuses_the_frame_never_rounds() -> None:
    hub = _hub()
    hub.on_frame(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1)
    # 100.05 is half a tick of 0.1; 0.0005 is half a lot of 0.001 (rounding used to turn it
    # into 0 and delete the level while the book stayed "synced")
    for u, bids in ((2, [["100.05", "1"]]), (2, [["100.0", "0.0005"]]), (2, [["1e2", "1"]])):
        out = hub.on_frame(_book("delta", u, bids, []), 2)
        assert [(r.symbol, r.reason) for r in out] == [("BTCUSDT", "bad_frame")]
        assert hub.states["BTCUSDT"].book.best_bid() == (1000, 1000)  # untouched
        hub.on_frame(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 3)
    assert hub.stats.decode_errors == 3


def test_hub_refused_book_frame_resyncs_its_symbol_at_decode() -> None:
    hub = _hub()
    hub.on_frame(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1)
    bad = orjson.loads(_book("delta", 2, [["100.0", "2"]], []))
    bad["data"]["u"] = "2"  # a string id is refused by the codec
    out = hub.on_frame(orjson.dumps(bad), 2)
    assert [(r.symbol, r.reason) for r in out] == [("BTCUSDT", "bad_frame")]
    assert hub.readiness() == {"BTCUSDT": "unsynced:bad_frame"} and hub.stats.decode_errors == 1
    assert hub.on_frame(orjson.dumps(bad), 3) == []  # already waiting: no second resync


def test_hub_trade_off_tick_is_counted_and_skipped() -> None:
    hub = _hub()
    frame = orjson.dumps(
        {
            "topic": "publicTrade.BTCUSDT",
            "type": "snapshot",
            "ts": T0,
            "data": [
                {"T": T0, "s": "BTCUSDT", "S": "Buy", "v": "0.002", "p": "100.15", "i": "a"},
                {"T": T0, "s": "BTCUSDT", "S": "Buy", "v": "0.0025", "p": "100.1", "i": "b"},
                {"T": T0, "s": "BTCUSDT", "S": "Sell", "v": "0.001", "p": "100.0", "i": "c"},
            ],
        }
    )
    hub.on_frame(frame, 1)
    assert hub.states["BTCUSDT"].trades.array("px_ticks").tolist() == [1000]
    assert hub.stats.decode_errors == 2


def test_hub_refused_instruments_never_replace_a_good_instrument() -> None:
    hub = _hub()
    for tick in ("0", "-0.1", "NaN", "1e-2"):
        info = orjson.dumps(
            {
                "retCode": 0,
                "retMsg": "OK",
                "time": T0,
                "result": {
                    "category": "linear",
                    "list": [
                        {
                            "symbol": "BTCUSDT",
                            "status": "Trading",
                            "priceFilter": {"tickSize": tick},
                            "lotSizeFilter": {"qtyStep": "0.001"},
                        }
                    ],
                },
            }
        )
        hub.on_frame(info, 1)
    assert hub.states["BTCUSDT"].instrument.tick_size == "0.1"
    assert hub.stats.decode_errors == 4 and hub.stats.instrument_changes == 0


class _Exploding:
    """A trader stand-in whose on_message raises the given exception (the barrier's input)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def on_message(self, msg: object, ts: int) -> None:
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [
        TypeError("x"),
        OverflowError("x"),
        ZeroDivisionError("x"),
        KeyError("x"),
        IndexError("x"),
        ValueError("x"),
    ],
)
def test_frame_handler_absorbs_input_errors_counts_and_resyncs(exc: Exception) -> None:
    from mmd.frames import FrameHandler

    hub = _hub()
    handler = FrameHandler(hub, trader=_Exploding(exc))  # type: ignore[arg-type]
    assert handler(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1) == ["BTCUSDT"]
    assert hub.stats.frame_errors == {"trader": 1}
    assert hub.readiness() == {"BTCUSDT": "unsynced:frame_error"}


def test_frame_handler_lets_invariant_violations_crash() -> None:
    from mmd.errors import InvariantViolation
    from mmd.frames import FrameHandler

    hub = _hub()
    handler = FrameHandler(hub, trader=_Exploding(InvariantViolation("bug")))  # type: ignore[arg-type]
    with pytest.raises(InvariantViolation):
        handler(_book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]]), 1)

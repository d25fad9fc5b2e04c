"""SyntheticMarket: determinism, Bybit frame shapes, book invariants and dynamics."""

from __future__ import annotations

import itertools
import json
import re
from decimal import Decimal
from typing import Any

import pytest

from mmd.config import SyntheticConfig
from mmd.feeds.synthetic import SyntheticMarket

START_NS = 1_786_310_816_000_000_000  # 2026-08-09 21:26:56 UTC
DEPTH = 50


def _market(seed: int = 7, **kw: Any) -> SyntheticMarket:
    return SyntheticMarket("BTCUSDT", SyntheticConfig(seed=seed), start_ns=START_NS, **kw)


def _take(market: SyntheticMarket, n: int) -> list[tuple[int, bytes]]:
    return list(itertools.islice(market.frames(), n))


class Replayed:
    """Frames decoded and applied to a plain-dict book, with invariants checked per frame."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.mids: list[tuple[int, Decimal]] = []  # (cts ms, mid) after each book frame
        self.trades: list[dict[str, Any]] = []
        self.klines: list[dict[str, Any]] = []
        self.last_u = 0
        self.last_seq = 0
        self.last_recv = 0

    def feed(self, recv_ns: int, raw: bytes) -> None:
        assert recv_ns >= self.last_recv
        self.last_recv = recv_ns
        frame = json.loads(raw)
        topic = frame.get("topic", "")
        if topic.startswith("orderbook."):
            self._book(frame)
        elif topic.startswith("publicTrade."):
            assert frame["type"] == "snapshot" and isinstance(frame["ts"], int)
            for item in frame["data"]:
                assert item["seq"] > self.last_seq  # one cross sequence for book and trades
                self.last_seq = item["seq"]
                self.trades.append(item)
        elif topic.startswith("kline."):
            self.klines.append(frame)

    def _book(self, frame: dict[str, Any]) -> None:
        data = frame["data"]
        assert set(frame) == {"topic", "type", "ts", "data", "cts"}
        assert isinstance(frame["ts"], int) and isinstance(frame["cts"], int)
        assert frame["ts"] >= frame["cts"]
        assert data["u"] == self.last_u + 1
        assert data["seq"] > self.last_seq
        self.last_u, self.last_seq = data["u"], data["seq"]
        if frame["type"] == "snapshot":
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, data["b"]), (self.asks, data["a"])):
            for px_s, qty_s in levels:
                assert re.fullmatch(r"\d+\.\d", px_s), px_s  # tick 0.1
                assert qty_s == "0" or re.fullmatch(r"\d+\.\d{3}", qty_s), qty_s  # lot 0.001
                px, qty = Decimal(px_s), Decimal(qty_s)
                if frame["type"] == "delta":
                    # a delta carries changes only: no no-op sizes, no deletes of absent levels
                    assert side.get(px, Decimal(0)) != qty, (px_s, qty_s)
                if qty:
                    side[px] = qty
                else:
                    del side[px]
        assert len(self.bids) == len(self.asks) == self.depth
        bid, ask = max(self.bids), min(self.asks)
        assert bid < ask
        self.mids.append((frame["cts"], (bid + ask) / 2))


def test_synthetic_same_seed_first_2000_frames_identical_bytes() -> None:
    first = _take(_market(seed=11), 2000)
    again = _take(_market(seed=11), 2000)
    assert first == again
    market = _market(seed=11)
    assert _take(market, 2000) == _take(market, 2000)  # frames() restarts from the seed


def test_synthetic_different_seed_frames_differ() -> None:
    a = _take(_market(seed=1), 200)
    b = _take(_market(seed=2), 200)
    assert a[0] == b[0]  # the instruments-info line does not depend on the seed
    assert sum(x != y for x, y in zip(a[1:], b[1:], strict=True)) > 190


def test_synthetic_first_frames_instruments_info_then_snapshot_of_depth_levels() -> None:
    frames = _take(_market(depth=DEPTH), 2)
    (ts0, env), (ts1, snap) = frames
    envelope = json.loads(env)
    (item,) = envelope["result"]["list"]
    assert envelope["retCode"] == 0 and envelope["result"]["category"] == "linear"
    assert item["symbol"] == "BTCUSDT"
    assert item["priceFilter"]["tickSize"] == "0.1"
    assert item["lotSizeFilter"]["qtyStep"] == "0.001"
    book = json.loads(snap)
    assert book["topic"] == f"orderbook.{DEPTH}.BTCUSDT" and book["type"] == "snapshot"
    assert book["data"]["u"] == 1
    assert len(book["data"]["b"]) == len(book["data"]["a"]) == DEPTH
    best_bid, best_ask = Decimal(book["data"]["b"][0][0]), Decimal(book["data"]["a"][0][0])
    assert best_bid < Decimal("65000.05") < best_ask  # cfg.mid_price 65000 (+ half a tick)
    assert ts0 <= ts1


def test_synthetic_deltas_keep_book_uncrossed_with_depth_levels_and_u_contiguous() -> None:
    seen = Replayed(DEPTH)
    for recv_ns, raw in _take(_market(depth=DEPTH), 5000):
        seen.feed(recv_ns, raw)
    assert seen.last_u > 3000  # most frames are book deltas


def test_synthetic_depth_200_spot_keeps_invariants_and_omits_tick_direction() -> None:
    seen = Replayed(200)
    for recv_ns, raw in _take(_market(depth=200, category="spot"), 1500):
        seen.feed(recv_ns, raw)
    assert seen.trades
    assert all("L" not in t for t in seen.trades)


def test_synthetic_trades_occur_and_consume_the_touch() -> None:
    frames = _take(_market(depth=DEPTH), 6000)
    seen = Replayed(DEPTH)
    pending: list[dict[str, Any]] = []  # trades of a step, checked against the step's book
    checked = 0
    for recv_ns, raw in frames:
        seen.feed(recv_ns, raw)
        frame = json.loads(raw)
        topic = frame.get("topic", "")
        if topic.startswith("publicTrade."):
            pending = frame["data"]
        elif topic.startswith("orderbook.") and pending:
            # orders sweep from the touch: what is left starts at or beyond the last fill
            buys = [Decimal(t["p"]) for t in pending if t["S"] == "Buy"]
            sells = [Decimal(t["p"]) for t in pending if t["S"] == "Sell"]
            assert not buys or min(seen.asks) >= max(buys)
            assert not sells or max(seen.bids) <= min(sells)
            checked += 1
            pending = []
    sides = {t["S"] for t in seen.trades}
    assert sides == {"Buy", "Sell"}
    assert checked > 500
    assert {t["L"] for t in seen.trades} <= {
        "PlusTick",
        "MinusTick",
        "ZeroPlusTick",
        "ZeroMinusTick",
    }
    assert all(t["BT"] is False and t["RPI"] is False and t["i"] for t in seen.trades)
    # klines: an open-candle push every 5 s of exchange time, confirm:true at each minute
    pushes = [k["ts"] for k in seen.klines if not k["data"][0]["confirm"]]
    assert pushes and max(b - a for a, b in itertools.pairwise(pushes)) <= 5_000 + 1_000
    confirmed = [k["data"][0] for k in seen.klines if k["data"][0]["confirm"]]
    span_s = (seen.mids[-1][0] - seen.mids[0][0]) / 1000
    assert len(confirmed) >= int(span_s // 60) - 1
    assert all(c["start"] % 60_000 == 0 and c["end"] == c["start"] + 59_999 for c in confirmed)


def test_synthetic_mid_realized_variance_close_to_sigma_squared() -> None:
    cfg = SyntheticConfig(seed=3)
    market = SyntheticMarket("BTCUSDT", cfg, depth=DEPTH, start_ns=START_NS)
    seen = Replayed(DEPTH)
    for recv_ns, raw in itertools.islice(market.frames(), 16_000):
        seen.feed(recv_ns, raw)
    times = [t for t, _ in seen.mids]
    mids = [m / Decimal(str(cfg.tick_size)) for _, m in seen.mids]  # in ticks
    span_s = (times[-1] - times[0]) / 1000
    steps = len(mids) - 1
    realized = float(sum((b - a) ** 2 for a, b in itertools.pairwise(mids))) / span_s
    expected = cfg.sigma_ticks**2
    # Tolerance. With N steps of exponential length dt (mean 1/rate), sum(dmid^2) =
    # sigma^2 * sum(dt * z^2); its relative sd is sqrt(N * Var(dt z^2)) / (N E[dt]) = sqrt(5/N)
    # (E[dt^2] E[z^4] = 6/rate^2, minus (1/rate)^2), about 2% for N ~ 12,000 book steps.
    # Biases: the mid sits on a half-tick grid (rounding adds < 2 * 1/12 tick^2 per step,
    # ~3 tick^2/s at 20 Hz) and touches eaten by trades move it by 0.5-1 tick for a step or
    # two (a few tick^2/s): together under 5% of sigma^2 = 400 tick^2/s. 4 sd + 5% -> 15%.
    assert steps > 10_000
    assert 0.85 * expected < realized < 1.15 * expected, (realized, expected, steps)


def test_synthetic_bad_depth_or_category_raises_value_error() -> None:
    with pytest.raises(ValueError, match="depth"):
        _market(depth=0)
    with pytest.raises(ValueError, match="category"):
        _market(category="option")

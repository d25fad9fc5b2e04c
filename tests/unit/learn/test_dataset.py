"""Datasets: labels checked by hand on a hand-built recording; no look-ahead on a real one."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from mmd.feeds.recording import read_recording
from mmd.kernels import models as km
from mmd.learn.dataset import (
    LabelParams,
    adverse_dataset,
    extract_market,
    spread_dataset,
    walk_forward_splits,
)
from mmd.learn.features import market_matrix, side_matrix
from mmd.model.instrument import Instrument

INST = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
S = 10**9
# venue stamps are ms after T0 (2026-08-09 01:00 UTC: the codec refuses times before 2000);
# the dataset works on receive times, which stay the small ones below
T0 = 1_786_237_200_000


def _book(typ: str, u: int, bids: list[list[str]], asks: list[list[str]]) -> bytes:
    return orjson.dumps(
        {
            "topic": "orderbook.50.BTCUSDT",
            "type": typ,
            "ts": T0 + u,
            "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": u},
        }
    )


def _trade(ts_ms: int, side: str, px: str, tid: str) -> bytes:
    return orjson.dumps(
        {
            "topic": "publicTrade.BTCUSDT",
            "type": "snapshot",
            "ts": T0 + ts_ms,
            "data": [{"T": T0 + ts_ms, "s": "BTCUSDT", "S": side, "v": "0.001", "p": px, "i": tid}],
        }
    )


# Receive times in seconds; mids in ticks of 0.1:
#   1 s  snapshot bid 100.0 / ask 100.2             mid 1001
#   2 s  trade: buy 1 lot at 100.2 (1002 ticks)
#   3 s  book: bid 100.4, ask 100.6 (old levels out) mid 1005
#   4 s  trade: sell 1 lot at 100.4 (1004)
#   8 s  book: bid 99.6, ask 99.8                   mid 997
#   9 s  trade: buy 1 lot at 99.8 (998)
#  15 s  book: bid size 2 at 99.6                   mid 997
FRAMES = [
    (1 * S, _book("snapshot", 1, [["100.0", "1"]], [["100.2", "1"]])),
    (2 * S, _trade(2000, "Buy", "100.2", "a")),
    (3 * S, _book("delta", 2, [["100.4", "1"]], [["100.2", "0"], ["100.6", "1"]])),
    (4 * S, _trade(4000, "Sell", "100.4", "b")),
    (
        8 * S,
        _book(
            "delta",
            3,
            [["100.4", "0"], ["100.0", "0"], ["99.6", "1"]],
            [["100.6", "0"], ["99.8", "1"]],
        ),
    ),
    (9 * S, _trade(9000, "Buy", "99.8", "c")),
    (15 * S, _book("delta", 4, [["99.6", "2"]], [])),
]


def _series():  # type: ignore[no-untyped-def]
    return extract_market(iter(FRAMES), "BTCUSDT", instrument=INST)


def test_series_rows_follow_the_frames() -> None:
    ms = _series()
    assert ms.ts_ns.tolist() == [1 * S, 2 * S, 3 * S, 4 * S, 8 * S, 9 * S, 15 * S]
    assert ms.mid_ticks.tolist() == [1001, 1001, 1005, 1005, 997, 997, 997]
    assert ms.is_book.tolist() == [True, False, True, False, True, False, True]
    assert ms.trade_ts_ns.tolist() == [2 * S, 4 * S, 9 * S]
    assert ms.trade_px_ticks.tolist() == [1002, 1004, 998]
    assert ms.trade_side.tolist() == [1, -1, 1]


def test_adverse_labels_by_hand() -> None:
    ms = _series()
    ds = adverse_dataset(ms, LabelParams(horizon_s=5.0, threshold_ticks=1.0))
    # trade 1 (buy, we sold at 1002): mid at 2 + 5 = 7 s is the 4 s row's 1005 -> 3 against
    # trade 2 (sell, we bought at 1004): mid at 9 s is 997 -> 1004 - 997 = 7 against
    # trade 3 (buy, we sold at 998): mid at 14 s is 997 -> -1 (in our favour)
    assert ds.aux.tolist() == [3.0, 7.0, -1.0]
    assert ds.y.tolist() == [1, 1, 0]
    assert ds.t_ns.tolist() == [2 * S, 4 * S, 9 * S]
    assert ds.label_end_ns.tolist() == [7 * S, 9 * S, 14 * S]
    names = list(ds.names)
    cum, spread, side = (names.index(n) for n in ("cum_delta_lots", "spread_ticks", "side"))
    # features are those before each trade: trade 1 sees no trade yet, trade 2 sees trade 1's
    # +1 lot, oriented by its own side (-1 * 1), trade 3 sees +1 - 1 = 0; spreads 2 ticks
    # (1002 - 1000, 1006 - 1004, 998 - 996)
    assert ds.x[:, cum].tolist() == [0.0, -1.0, 0.0]
    assert ds.x[:, spread].tolist() == [2.0, 2.0, 2.0]
    assert ds.x[:, side].tolist() == [1.0, -1.0, 1.0]
    # a threshold of 5 ticks keeps only trade 2 adverse; a 6 s horizon reads trade 1 at 8 s
    # (997 - 1002 = -5) and keeps trade 3 (9 + 6 = 15 s, the last row)
    assert adverse_dataset(ms, LabelParams(threshold_ticks=5.0)).y.tolist() == [0, 1, 0]
    six = adverse_dataset(ms, LabelParams(horizon_s=6.0))
    assert six.aux.tolist() == [-5.0, 7.0, -1.0]
    seven = adverse_dataset(ms, LabelParams(horizon_s=7.0))
    assert seven.t_ns.tolist() == [2 * S, 4 * S]  # 9 + 7 = 16 s is past the data


def test_adverse_quote_depth_by_hand() -> None:
    ms = _series()
    # depth 1: quotes at 1001 + 1, 1005 - 1, 997 + 1 -> every trade reaches its quote exactly
    one = adverse_dataset(ms, LabelParams(depth_ticks=1.0))
    assert one.aux.tolist() == [3.0, 7.0, -1.0]
    # depth 2: quotes 1003, 1003, 999: no trade reaches them
    assert len(adverse_dataset(ms, LabelParams(depth_ticks=2.0))) == 0


def test_spread_labels_by_hand() -> None:
    ms = _series()
    p = LabelParams(
        decision="clock",
        interval_s=1.0,
        window_s=5.0,
        grid_ticks=(1.0, 3.0),
        inventory_penalty_ticks=0.5,
    )
    ds = spread_dataset(ms, p)
    # t = 1 s, mid 1001: in (1, 6] the buy at 1002 fills an ask at h = 1 (q = -1), the sell at
    #   1004 fills nothing; mid at 6 s 1005: PnL(1) = 1 - (1005 - 1001) - 0.5 = -3.5,
    #   PnL(3) = 0 (no fill) -> 3.
    # t = 2 s: only the sell at 1004 (3 ticks above mid 1001: no bid fill) -> no fill, left out.
    # t = 3 s, mid 1005: the sell at 1004 fills a bid at h = 1 (q = +1); mid at 8 s 997:
    #   PnL(1) = 1 + (997 - 1005) - 0.5 = -7.5; PnL(3) = 0 -> 3.
    # t = 4..7 s: only the buy at 998, 7 ticks below mid 1005 -> left out.
    # t = 8 s, mid 997: the buy at 998 fills an ask at h = 1 (q = -1), mid at 13 s 997:
    #   PnL(1) = 1 + 0 - 0.5 = 0.5 -> 1.
    # t = 9, 10 s: no trade after; t >= 11 s: the window runs past 15 s.
    assert ds.t_ns.tolist() == [1 * S, 3 * S, 8 * S]
    assert ds.y.tolist() == [3.0, 3.0, 1.0]
    assert ds.aux.tolist() == [0.0, 0.0, 0.5]


def test_walk_forward_splits_purge_each_boundary() -> None:
    t = np.arange(0, 100, dtype=np.int64)  # ns, evenly spaced
    splits = walk_forward_splits(t, 4, purge_ns=3)
    # blocks of 99 / 5 = 19.8: boundaries 19.8, 39.6, 59.4, 79.2
    assert len(splits) == 4
    (a1, b1), (a2, b2), (a4, b4) = splits[0], splits[1], splits[3]
    assert a1.max() == 16 and b1.min() == 23 and b1.max() == 39  # t < 16.8; 22.8 <= t < 39.6
    assert a2.max() == 36 and b2.min() == 43
    assert a4.max() == 76 and b4.min() == 83 and b4.max() == 99  # last block keeps t_max
    for a, b in splits:
        assert t[b].min() - t[a].max() > 2 * 3 - 1  # a gap of at least twice the purge
    assert walk_forward_splits(np.zeros(0, np.int64), 3, 1) == []


def test_features_at_t_use_nothing_after_t(cryptofeed_dir: Path) -> None:
    """Perturbing every frame after t leaves every row and sample up to t unchanged."""
    rec = next(cryptofeed_dir.glob("*linear_BTCUSDT*"))
    frames = list(read_recording(rec))
    cut = len(frames) // 2
    t_cut = frames[cut][0]
    scrambled = [(ts, raw.replace(b"1", b"7").replace(b"2", b"3")) for ts, raw in frames[cut + 1 :]]
    a = extract_market(iter(frames), "BTCUSDT", "linear")
    b = extract_market(iter(frames[: cut + 1] + scrambled), "BTCUSDT", "linear")
    na = int(np.searchsorted(a.ts_ns, t_cut, side="right"))
    assert na > 50
    assert np.array_equal(a.ts_ns[:na], b.ts_ns[:na])
    assert np.array_equal(a.fx[:na], b.fx[:na], equal_nan=True)
    assert not np.array_equal(a.fx, b.fx, equal_nan=True)  # the perturbation did something
    # every adverse sample's features are those computed from the frames strictly before it
    ds = adverse_dataset(a, LabelParams(horizon_s=2.0))
    assert len(ds) >= 5
    for i in range(len(ds)):
        before = [f for f in frames if f[0] < ds.t_ns[i]]
        alone = extract_market(iter(before), "BTCUSDT", "linear")
        xm = market_matrix(alone.fx[-1:], alone.ts_ns[-1:])
        want = side_matrix(xm, ds.x[i : i + 1, km.SIDE_INPUT])
        want[~np.isfinite(want)] = np.nan
        assert np.array_equal(ds.x[i], want[0], equal_nan=True)


def test_label_params_are_strict() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"horizon": 5}, LabelParams)
    assert math.isclose(LabelParams().horizon_s, 5.0)
    assert list(itertools.islice(LabelParams().grid_ticks, 2)) == [1, 2]

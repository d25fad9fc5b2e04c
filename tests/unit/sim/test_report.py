"""mmd.sim.report: each statistic on a tiny hand-made run, and the report files."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest

from mmd.report_files import write_report
from mmd.sim.report import (
    FILL_DTYPE,
    QUOTE_DTYPE,
    REQUIRED_KEYS,
    fifo_round_trips,
    fills_array,
    markout_curve,
    max_drawdown,
    mids_array,
    sampled_returns,
    sharpe_sortino,
    summarize,
)
from mmd.sim.report_charts import ReportSeries, render_charts, risk_text

S = 1_000_000_000
H = 3600.0
ANN_1H = math.sqrt(365 * 24)  # sqrt(8760) = 93.5949


def _fills(*rows: tuple[float, int, int, int, float]) -> np.ndarray:
    """(t seconds, side, px ticks, qty lots, fee quote) -> FILL_DTYPE, maker."""
    out = np.zeros(len(rows), FILL_DTYPE)
    for i, (t, side, px, q, fee) in enumerate(rows):
        out[i] = (round(t * S), side, px, q, fee, 1)
    return out


def _secs(*ts: float) -> np.ndarray:
    return np.array([round(t * S) for t in ts], np.int64)


def _run(
    eq: list[float],
    pos: list[int] | None = None,
    ts: list[float] | None = None,
    fills: np.ndarray | None = None,
    mids: np.ndarray | None = None,
    **kw: object,
) -> dict:
    ts = ts if ts is not None else list(range(len(eq)))
    return summarize(
        _secs(*ts),
        np.array(eq, float),
        np.array(pos or [0] * len(eq)),
        fills if fills is not None else np.empty(0, FILL_DTYPE),
        mids if mids is not None else mids_array([], []),
        **{"lot": 0.01, "tick": 0.5, **kw},  # type: ignore[arg-type]
    )


def test_sharpe_and_sortino_hourly() -> None:
    # 25 hourly points (24 h): equity steps r = [1, -1, 2, 1] repeated 6 times -> 24 changes
    # mean 0.75; squared deviations per block 0.0625 + 3.0625 + 1.5625 + 0.0625 = 4.75, so
    # std(ddof=1) = sqrt(6 * 4.75 / 23) = sqrt(1.239130) = 1.113162
    # Sharpe = 0.75 / 1.113162 * sqrt(8760) = 0.673756 * 93.5949 = 63.06
    # downside deviation = sqrt(6 * 1 / 24) = 0.5 -> Sortino = 0.75 / 0.5 * 93.5949 = 140.39
    eq = np.concatenate([[0.0], np.cumsum([1.0, -1.0, 2.0, 1.0] * 6)])
    s = _run(list(eq), ts=[i * H for i in range(25)])
    assert s["sharpe_samples"] == 24 and s["sharpe_min_samples"] == 24
    assert s["sharpe"] == pytest.approx(63.06, abs=0.01)
    assert s["sharpe"] == pytest.approx(0.75 / math.sqrt(28.5 / 23) * ANN_1H)
    assert s["sortino"] == pytest.approx(140.39, abs=0.01)
    assert s["sharpe_basis"] == "hourly PnL changes, annualised x sqrt(8760)"
    assert s["sharpe_period_s"] == 3600.0 and s["sharpe_note"] is None
    assert s["pnl"] == 18.0  # 6 blocks of +3


def test_sharpe_needs_24_hours() -> None:
    # an 8-minute run (480 s = 0.13 h): no hourly change at all -> no figures, a reason
    s = _run([0, 1, -3, 2], ts=[0, 100, 300, 480])
    assert math.isnan(s["sharpe"]) and math.isnan(s["sortino"])
    assert s["sharpe_samples"] == 0
    assert s["sharpe_note"] == ("needs >= 24 PnL changes of 1 h (24 h of data), run spans 0.13 h")
    assert "n/a (needs >= 24 PnL changes" in risk_text(s)
    # 23.5 h: 23 hourly changes (the last half hour is a partial period) -> still none
    s = _run([0, 1, 0, 2], ts=[0, 3600, 7200, 23.5 * H])
    assert s["sharpe_samples"] == 23 and math.isnan(s["sharpe"])
    assert "run spans 23.50 h" in s["sharpe_note"]
    # 24 h of flat PnL: enough data, but std 0 -> undefined, said so
    s = _run([0.0] * 25, ts=[i * H for i in range(25)])
    assert s["sharpe_samples"] == 24 and math.isnan(s["sharpe"])
    assert s["sharpe_note"] == "undefined: the PnL never changed between samples"


def test_sharpe_on_another_basis() -> None:
    # equity 0, 1, 0, 2, 3 at t = 0..4 s read every 2 s: grid 0, 2, 4 -> [0, 0, 3] -> r = [0, 3]
    # mean 1.5, std(ddof=1) = 2.12132 -> Sharpe = 0.707107 * sqrt(365 * 86400 / 2) = 2807.9
    # no losing sample -> Sortino undefined (NaN)
    s = _run([0, 1, 0, 2, 3], sharpe_period_s=2.0, sharpe_min_samples=2)
    assert s["sharpe_samples"] == 2
    assert s["sharpe"] == pytest.approx(1.5 / math.sqrt(4.5) * math.sqrt(365 * 86_400 / 2))
    assert s["sharpe"] == pytest.approx(2807.9, abs=0.1)
    assert math.isnan(s["sortino"])
    assert s["sharpe_note"] == "Sortino undefined: no losing period"
    assert s["sharpe_basis"] == "2 s PnL changes, annualised x sqrt(1.5768e+07)"


def test_returns_read_the_equity_step_function() -> None:
    # points at 0, 0.5, 2.5 s with equity 0, 1, 4; the 1 s grid 0, 1, 2 reads 0, 1, 1
    # (a value holds until the next point; the partial interval 2..2.5 s is dropped) -> [1, 0]
    r = sampled_returns(_secs(0, 0.5, 2.5), np.array([0.0, 1.0, 4.0]), 1.0)
    assert r.tolist() == [1.0, 0.0]
    # flat equity: std 0 -> both NaN; one sample -> NaN
    assert all(math.isnan(x) for x in sharpe_sortino(np.zeros(5), 1.0))
    assert all(math.isnan(x) for x in sharpe_sortino(np.array([1.0]), 1.0))


def test_max_drawdown() -> None:
    # equity 0, 5, 2, 6, 1, 3: running peak 0, 5, 5, 6, 6, 6 -> drops 0, 0, 3, 0, 5, 3 -> 5
    assert max_drawdown(np.array([0, 5, 2, 6, 1, 3], float)) == 5.0
    assert _run([0, 5, 2, 6, 1, 3])["max_drawdown"] == 5.0
    assert _run([0, 1, 2])["max_drawdown"] == 0.0


def test_fifo_win_rate() -> None:
    # buy 2 @100, buy 1 @102            -> long [100 x2, 102 x1]
    # sell 2 @101: closes 2 @100, +1 tick/lot (win, 2 lots)   -> long [102 x1]
    # sell 2 @101: closes 1 @102, -1 tick (loss, 1 lot); 1 lot opens short @101
    # buy 1 @99:  closes the short @101, +2 ticks (win, 1 lot)
    # -> 3 round trips, 4 closed lots, 3 winning lots: win_rate 0.75
    # realized gross = (2*1 - 1 + 2) = 3 tick-lots = 3 * 0.5 * 0.01 = 0.015 quote
    f = _fills(
        (1, 1, 100, 2, 0.0),
        (2, 1, 102, 1, 0.0),
        (3, -1, 101, 2, 0.0),
        (4, -1, 101, 2, 0.0),
        (5, 1, 99, 1, 0.0),
    )
    lots, pnl = fifo_round_trips(f)
    assert lots.tolist() == [2, 1, 1]
    assert pnl.tolist() == [1.0, -1.0, 2.0]
    s = _run([0] * 6, fills=f)
    assert s["win_rate"] == 0.75
    assert s["round_trips"] == 3 and s["closed_lots"] == 4
    assert s["realized_pnl_fifo"] == pytest.approx(0.015)
    # a break-even round trip is not a win; nothing closed -> NaN
    even = _fills((1, 1, 100, 1, 0.0), (2, -1, 100, 1, 0.0))
    assert _run([0, 0, 0], fills=even)["win_rate"] == 0.0
    assert math.isnan(_run([0, 0], fills=_fills((1, 1, 100, 1, 0.0)))["win_rate"])


def test_fifo_uses_time_order() -> None:
    # given out of order: the sell at t=2 closes the buy at t=1 (+3 ticks)
    f = _fills((2, -1, 103, 1, 0.0), (1, 1, 100, 1, 0.0))
    lots, pnl = fifo_round_trips(f)
    assert lots.tolist() == [1] and pnl.tolist() == [3.0]


def test_spread_captured_and_markouts() -> None:
    # mid (ticks): 100 from 0 s, 101 from 1 s, 99.5 from 3 s, 100 from 10 s (last mid)
    mids = mids_array(_secs(0, 1, 3, 10), [100.0, 101.0, 99.5, 100.0])
    # buy @99 at 0.5 s, sell @102 at 2 s
    f = _fills((0.5, 1, 99, 1, 0.0), (2, -1, 102, 1, 0.0))
    s = _run([0, 0, 0], ts=[0, 1, 40], fills=f, mids=mids)
    # captured: buy +1*(100 - 99) = 1; sell -1*(101 - 102) = 1 -> 1.0 tick
    assert s["avg_spread_captured"] == 1.0
    # 1 s: buy reads mid at 1.5 s = 101 -> +2; sell at 3 s = 99.5 (a step at exactly t+h
    # counts) -> -(99.5 - 102) = 2.5; mean 2.25
    assert s["markout_1s"] == 2.25
    # 5 s: buy at 5.5 s -> 99.5 - 99 = 0.5; sell at 7 s -> 2.5; mean 1.5
    assert s["markout_5s"] == 1.5
    # 30 s: 30.5 s and 32 s are past the last mid (10 s): no fill counts -> NaN
    assert math.isnan(s["markout_30s"])


def test_markout_curve_by_side() -> None:
    # the run of test_spread_captured_and_markouts: mid 100 (0 s), 101 (1 s), 99.5 (3 s),
    # 100 (10 s, last); buy @99 at 0.5 s, sell @102 at 2 s
    mids = mids_array(_secs(0, 1, 3, 10), [100.0, 101.0, 99.5, 100.0])
    f = _fills((0.5, 1, 99, 1, 0.0), (2, -1, 102, 1, 0.0))
    mean, sem, n = markout_curve(f, mids, (0, 1, 9, 30))
    # 0 s: buy 100 - 99 = 1, sell -(101 - 102) = 1 -> mean 1, std 0 -> sem 0
    # 1 s: buy at 1.5 s 101 - 99 = 2, sell at 3 s -(99.5 - 102) = 2.5 -> mean 2.25,
    #      sem = std(ddof=1) / sqrt(2) = 0.353553 / 1.414214 = 0.25
    # 9 s: buy at 9.5 s 99.5 - 99 = 0.5; the sell at 11 s is past the last mid -> 1 fill, no sem
    # 30 s: nothing counts
    assert mean[:3].tolist() == [1.0, 2.25, 0.5] and math.isnan(mean[3])
    assert sem[0] == 0.0 and sem[1] == pytest.approx(0.25) and math.isnan(sem[2])
    assert n.tolist() == [2, 2, 1, 0]
    buy_mean, _, buy_n = markout_curve(f, mids, (1,), side=1)
    sell_mean, _, sell_n = markout_curve(f, mids, (1,), side=-1)
    assert buy_mean.tolist() == [2.0] and sell_mean.tolist() == [2.5]
    assert buy_n.tolist() == sell_n.tolist() == [1]


def test_fills_before_first_mid_are_left_out() -> None:
    mids = mids_array(_secs(1), [100.0])
    f = _fills((0.5, 1, 90, 1, 0.0), (1.5, 1, 99, 1, 0.0))
    s = _run([0, 0], ts=[0, 2], fills=f, mids=mids)
    assert s["avg_spread_captured"] == 1.0  # only the second fill: 100 - 99


def test_fees_volume_counts() -> None:
    # 2 lots @100 ticks and 1 lot @102, tick 0.5, lot 0.01:
    # volume = 3 * 0.01 = 0.03 base; notional = (100*2 + 102*1) * 0.5 * 0.01 = 1.51
    f = _fills((1, 1, 100, 2, -0.0002), (2, -1, 102, 1, 0.0005))
    f["liquidity"][1] = 2
    s = _run([0, 0, 0], fills=f)
    assert s["fills"] == 2 and s["buy_fills"] == 1 and s["sell_fills"] == 1
    assert s["maker_fills"] == 1 and s["taker_fills"] == 1
    assert s["fees"] == pytest.approx(0.0003)
    assert s["volume"] == pytest.approx(0.03)
    assert s["volume_quote"] == pytest.approx(1.51)
    assert s["pnl_per_notional_bps"] == 0.0  # flat equity: 0 PnL on 1.51 traded
    # net PnL 0.0302 on 1.51 traded: 0.0302 / 1.51 = 0.02 = 200 bps
    s = _run([0, 0.01, 0.0302], fills=f)
    assert s["pnl_per_notional_bps"] == pytest.approx(200.0)
    # nothing traded -> NaN
    assert math.isnan(_run([0, 1])["pnl_per_notional_bps"])


def test_mean_abs_position_and_pnl_to_map() -> None:
    # position 0 on [0,1), 2 on [1,3), -1 on [3,4) s (the last point, 5 lots at 4 s, ends
    # the run): time-weighted |pos| = (0*1 + 2*2 + 1*1) / 4 = 1.25 lots = 0.0125 base
    # pnl = 0.5 -> pnl_to_map = 0.5 / 0.0125 = 40 quote per base unit
    s = _run([0, 0.1, 0.2, 0.5], pos=[0, 2, -1, 5], ts=[0, 1, 3, 4])
    assert s["mean_abs_position_lots"] == 1.25
    assert s["mean_abs_position"] == pytest.approx(0.0125)
    assert s["pnl_to_map"] == pytest.approx(40.0)
    assert s["max_abs_position_lots"] == 5 and s["final_position_lots"] == 5
    # never any position -> NaN
    assert math.isnan(_run([0, 1])["pnl_to_map"])


def test_pass_through_and_validation() -> None:
    s = _run([0, 1], strategy="glft", events=1234)
    assert s["strategy"] == "glft" and s["events"] == 1234
    assert set(REQUIRED_KEYS) <= set(s)
    with pytest.raises(ValueError):
        _run([0, 1], pos=[0])
    with pytest.raises(ValueError):
        summarize(
            _secs(1, 0),
            np.zeros(2),
            np.zeros(2),
            np.empty(0, FILL_DTYPE),
            mids_array([], []),
            lot=1.0,
            tick=1.0,
        )


def test_fills_array_from_events() -> None:
    from mmd.model.events import MAKER, OrderFilled

    ev = OrderFilled(
        fill_id="f1",
        client_order_id="c1",
        symbol="BTCUSDT",
        side=-1,
        px_ticks=651142,
        qty_lots=3,
        leaves_lots=0,
        liquidity=MAKER,
        fee_quote=-0.01,
        ts_exch_ns=5 * S,
    )
    a = fills_array([ev])
    assert a.dtype == FILL_DTYPE
    assert a[0].tolist() == (5 * S, -1, 651142, 3, -0.01, MAKER)
    assert fills_array([]).size == 0


def _png_ok(p: Path) -> tuple[int, int]:
    import matplotlib.image as mpimg

    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert p.stat().st_size > 10_000
    img = mpimg.imread(p)
    # not a blank canvas
    assert float(np.std(img[..., :3])) > 0.01
    return img.shape[1], img.shape[0]


def test_write_report_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 600
    ts = np.arange(n, dtype=np.int64) * S + 1_721_347_000 * S
    mid = 639_400 + np.cumsum(rng.integers(-2, 3, n)).astype(float) + 0.5
    pos = np.cumsum(rng.integers(-1, 2, n))
    eq = np.cumsum(rng.normal(0, 0.01, n))
    k = np.sort(rng.choice(n, 80, replace=False))
    side = np.where(rng.random(80) < 0.5, 1, -1)
    f = np.zeros(80, FILL_DTYPE)
    f["ts_ns"] = ts[k]
    f["side"] = side
    f["px_ticks"] = (mid[k] - side * 0.5).astype(np.int64)
    f["qty_lots"] = 1
    f["fee_quote"] = -0.0001
    f["liquidity"] = 1
    mids = mids_array(ts, mid)
    quotes = np.zeros(n, QUOTE_DTYPE)
    quotes["ts_ns"] = ts
    quotes["bid_ticks"] = mid - 1.5
    quotes["ask_ticks"] = mid + 1.5
    quotes["ask_ticks"][::7] = np.nan  # one side pulled now and then
    s = summarize(ts, eq, pos, f, mids, lot=0.001, tick=0.1, strategy="as", events=9999)
    series = ReportSeries(
        ts,
        eq,
        pos,
        f,
        mids,
        tick=0.1,
        lot=0.001,
        quotes=quotes,
        symbol="BTCUSDT",
        quote_ccy="USDT",
        base_ccy="BTC",
    )
    paths = write_report(s, series, tmp_path / "rep")
    names = [p.name for p in paths]
    assert names == [
        "summary.json",
        "equity.png",
        "inventory.png",
        "quotes.png",
        "markouts.png",
        "report.html",
    ]
    for p in paths[1:-1]:
        w, h = _png_ok(p)
        assert w >= 1000 and h >= 400
    js = json.loads(paths[0].read_text())
    assert set(REQUIRED_KEYS) <= set(js)
    assert js["strategy"] == "as" and js["events"] == 9999 and js["fills"] == 80
    # 600 s of data: no Sharpe, the reason and the basis recorded
    assert js["sharpe"] is None and js["sharpe_samples"] == 0
    assert js["sharpe_note"] == "needs >= 24 PnL changes of 1 h (24 h of data), run spans 0.17 h"
    assert js["sharpe_basis"] == "hourly PnL changes, annualised x sqrt(8760)"
    # the page carries each PNG byte for byte as a data URI
    page = paths[-1].read_text()
    for p in paths[1:-1]:
        assert base64.b64encode(p.read_bytes()).decode() in page
    assert page.count('src="data:image/png;base64,') == 4
    assert "http://" not in page and "https://" not in page


def test_render_charts_are_the_written_files_and_differ() -> None:
    rng = np.random.default_rng(3)
    ts = np.arange(50, dtype=np.int64) * S
    mids = mids_array(ts, 1000 + np.cumsum(rng.integers(-1, 2, 50)).astype(float))
    f = _fills((5, 1, 999, 1, 0.0), (9, -1, 1002, 1, 0.0), (20, 1, 998, 2, 0.0))
    s = summarize(ts, np.cumsum(rng.normal(0, 1, 50)), np.zeros(50), f, mids, lot=1.0, tick=1.0)
    charts = render_charts(
        s, ReportSeries(ts, np.zeros(50), np.zeros(50), f, mids, tick=1.0, lot=1.0)
    )
    assert list(charts) == ["equity.png", "inventory.png", "quotes.png", "markouts.png"]
    assert all(v[:8] == b"\x89PNG\r\n\x1a\n" for v in charts.values())
    assert len({v for v in charts.values()}) == 4


def test_write_report_without_fills_or_quotes(tmp_path: Path) -> None:
    ts = np.arange(5, dtype=np.int64) * S
    s = summarize(
        ts,
        np.zeros(5),
        np.zeros(5),
        np.empty(0, FILL_DTYPE),
        mids_array(ts, [10.0] * 5),
        lot=1.0,
        tick=1.0,
    )
    assert math.isnan(s["sharpe"]) and math.isnan(s["win_rate"])
    series = ReportSeries(
        ts,
        np.zeros(5),
        np.zeros(5),
        np.empty(0, FILL_DTYPE),
        mids_array(ts, [10.0] * 5),
        tick=1.0,
        lot=1.0,
    )
    paths = write_report(s, series, tmp_path)
    assert paths[-2].name == "markouts.png" and paths[-1].name == "report.html"
    assert "no fills: no markouts" not in paths[-1].read_text()  # drawn into the PNG, not HTML
    text = paths[0].read_text()
    assert "NaN" not in text
    js = json.loads(text)  # strict JSON: NaN written as null
    assert js["sharpe"] is None and js["win_rate"] is None and js["pnl"] == 0.0
    for p in paths[1:-1]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

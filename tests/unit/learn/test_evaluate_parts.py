"""mmd.learn.evaluate's pure parts by hand: splits, series slicing, aggregation of summaries,
figures over splits, the paired Wilcoxon test, the strategy list with and without RL."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmd.learn.dataset import MarketSeries
from mmd.learn.evaluate.spec import strategy_specs
from mmd.learn.evaluate.stats import aggregate, eval_splits, overall, paired_test, slice_series

pytest.importorskip("scipy", reason="scipy (with scikit-learn, the `train` extra) is absent")


def test_expanding_splits() -> None:
    folds = [[(0, 10)], [(15, 20)], [(25, 30), (40, 45)]]
    assert eval_splits(folds) == [
        ([[(0, 10)]], [(15, 20)]),
        ([[(0, 10)], [(15, 20)]], [(25, 30), (40, 45)]),
    ]


def test_slice_series_keeps_rows_and_trades_in_the_window() -> None:
    ms = MarketSeries(
        symbol="X",
        category="linear",
        tick_size=0.1,
        ts_ns=np.array([1, 5, 9, 12], np.int64),
        fx=np.arange(8.0).reshape(4, 2),
        is_book=np.array([True, False, True, True]),
        trade_ts_ns=np.array([4, 9, 10], np.int64),
        trade_px_ticks=np.array([7, 8, 9], np.int64),
        trade_qty_lots=np.array([1, 2, 3], np.int64),
        trade_side=np.array([1, -1, 1], np.int64),
        frames=4,
    )
    s = slice_series(ms, 5, 10)  # [5, 10)
    assert s.ts_ns.tolist() == [5, 9] and s.fx.tolist() == [[2.0, 3.0], [4.0, 5.0]]
    assert s.is_book.tolist() == [False, True]
    assert s.trade_ts_ns.tolist() == [9] and s.trade_px_ticks.tolist() == [8]
    assert s.trade_qty_lots.tolist() == [2] and s.trade_side.tolist() == [-1]
    assert slice_series(ms, None, 5).ts_ns.tolist() == [1]


S1 = {
    "pnl": 1.0,
    "volume_quote": 1000.0,
    "fills": 2,
    "duration_s": 10.0,
    "mean_abs_position": 0.002,
    "max_drawdown": 0.5,
    "markout_1s": 1.0,
    "markout_5s": 2.0,
    "markout_30s": float("nan"),
    "fees": 0.1,
    "sharpe": float("nan"),
    "pnl_to_map": 500.0,
    "pnl_per_notional_bps": 10.0,
}
S2 = {
    "pnl": -3.0,
    "volume_quote": 3000.0,
    "fills": 6,
    "duration_s": 30.0,
    "mean_abs_position": 0.004,
    "max_drawdown": 1.5,
    "markout_1s": 3.0,
    "markout_5s": -2.0,
    "markout_30s": -4.0,
    "fees": 0.3,
    "sharpe": float("nan"),
    "pnl_to_map": -750.0,
    "pnl_per_notional_bps": -10.0,
}


def test_aggregate_one_summary_is_the_summary() -> None:
    a = aggregate([S1])
    assert (a["pnl"], a["pnl_bps"], a["pnl_to_map"], a["fills"]) == (1.0, 10.0, 500.0, 2)
    assert a["sharpe"] is None and a["markout_30s"] is None  # NaN -> n/a


def test_aggregate_two_windows_by_hand() -> None:
    a = aggregate([S1, S2])
    assert a["pnl"] == -2.0 and a["fills"] == 8
    assert a["pnl_bps"] == pytest.approx(-2.0 / 4000.0 * 1e4)  # -5 bps
    assert a["max_drawdown"] == 1.5
    # duration-weighted |position|: (0.002 * 10 + 0.004 * 30) / 40 = 0.0035
    assert a["mean_abs_position"] == pytest.approx(0.0035)
    assert a["pnl_to_map"] == pytest.approx(-2.0 / 0.0035)
    # fill-weighted markouts: (2*2 - 2*6) / 8 = -1; 1 s: (1*2 + 3*6) / 8 = 2.5; 30 s: S2 only
    assert a["markout_5s"] == pytest.approx(-1.0)
    assert a["markout_1s"] == pytest.approx(2.5)
    assert a["markout_30s"] == pytest.approx(-4.0)
    assert a["fees"] == pytest.approx(0.4) and a["sharpe"] is None


def test_overall_sharpe_over_splits_by_hand() -> None:
    rows = [
        aggregate([S1]) | {"detector_auc": 0.6, "detector_logloss": 0.7},
        aggregate([S2]) | {"detector_auc": 0.5, "detector_logloss": None},
    ]
    o = overall(rows)
    # split PnL 1 and -3: mean -1, std (ddof 1) sqrt(8) = 2.828...
    assert o["sharpe"] == pytest.approx(-1.0 / math.sqrt(8.0))
    assert o["pnl"] == -2.0 and o["fills"] == 8 and o["max_drawdown"] == 1.5
    assert o["detector_auc"] == pytest.approx(0.55) and o["detector_logloss"] == 0.7
    assert overall(rows[:1])["sharpe"] is None  # one split: no spread to divide by


def test_paired_wilcoxon_by_hand() -> None:
    # differences +1, +2, +3: all 8 sign patterns are equally likely under H0; W- = 0 only
    # for this one, so the two-sided p is 2 / 8 = 0.25
    t = paired_test([3.0, 4.0, 5.0], [2.0, 2.0, 2.0])
    assert t["n"] == 3 and t["differences"] == [1.0, 2.0, 3.0]
    assert t["p_value"] == pytest.approx(0.25) and t["min_attainable_p"] == 0.25
    assert "little power" in t["note"]
    same = paired_test([1.0, 2.0], [1.0, 2.0])
    assert same["p_value"] == 1.0
    # a split missing on one side drops out of the pairs
    assert paired_test([1.0, None, 3.0], [0.0, 1.0, None])["n"] == 1
    assert paired_test([None], [1.0])["p_value"] is None
    mixed = paired_test([1.0, -2.0, 4.0, -1.5, 0.5, 3.0, -0.2], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert 0.0 <= mixed["p_value"] <= 1.0 and mixed["note"] == ""


def test_strategy_list_with_and_without_rl() -> None:
    plain = {s.key: s for s in strategy_specs(False)}
    with_rl = {s.key: s for s in strategy_specs(True)}
    assert list(plain) == [
        "as",
        "glft",
        "as_tuned",
        "as_adverse",
        "as_adverse_rl",
        "as_adverse_spread",
        "full",
        "as_lstm",
        "as_multitask",
        "full_deep",
        "as_hedge",
    ]
    assert plain["as_adverse_rl"].unavailable.startswith("not available")
    assert plain["full"].models == ("adverse", "spread") and plain["full"].tuned
    assert plain["full"].risk_size and not plain["as_tuned"].models
    assert with_rl["as_adverse_rl"].unavailable == ""
    assert with_rl["full"].models == ("adverse", "spread", "rl")


def test_deep_and_hedge_rows() -> None:
    specs = {s.key: s for s in strategy_specs(False, True, ("BTCUSDT", "ETHUSDT"))}
    # the deep full stack is the full stack plus the multi-task model, on the tuned AS
    assert specs["full_deep"].models == (*specs["full"].models, "multitask")
    assert specs["full_deep"].tuned and specs["full_deep"].risk_size
    assert specs["full_deep"].model == specs["as_lstm"].model == "deep"
    assert specs["as_hedge"].hedge == "BTCUSDT" and specs["as_hedge"].unavailable == ""
    assert specs["as_hedge"].model == "as" and not specs["as_hedge"].models
    # without torch the deep rows say why; with one symbol the hedge row does
    alone = {s.key: s for s in strategy_specs(False, False, ("ETHUSDT",))}
    for key in ("as_lstm", "as_multitask", "full_deep"):
        assert "PyTorch" in alone[key].unavailable
    assert "one symbol" in alone["as_hedge"].unavailable
    # no BTCUSDT: hedged through the first symbol by name
    assert strategy_specs(False, True, ("SOLUSDT", "ETHUSDT"))[-1].hedge == "ETHUSDT"


def test_macro_f1_by_hand() -> None:
    from mmd.learn.deep_direction import macro_f1

    # y = 1 1 1 0 0, predicted 1 1 0 0 1: class 1 tp 2 fp 1 fn 1 -> F1 4/6; class 0 tp 1 fp 1
    # fn 1 -> F1 2/4; macro (2/3 + 1/2) / 2 = 7/12
    y = np.array([1.0, 1, 1, 0, 0])
    p = np.array([0.9, 0.6, 0.4, 0.1, 0.7])
    assert macro_f1(y, p) == pytest.approx(7 / 12)
    # always answering 1: class 1 F1 = 2 x 3 / (6 + 2) = 0.75, class 0 never predicted: 0
    assert macro_f1(y, np.ones(5)) == pytest.approx(0.375)

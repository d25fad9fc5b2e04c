"""Quoting with the learned models: the decision-time feature vector equals the dataset's,
the detector widens/withdraws sides, the spread predictor overrides the spread, and a
missing model is an exit 2 (or a neutral fallback when configured so).

The models here are written by hand with `save_model` (known weights, no training), so the
tests need neither scikit-learn nor minutes of fitting; `mmd train` models are used by
tests/integration/test_ml_quoting.py.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import pytest
from procs import base_env, split_recording

from mmd import app as app_mod
from mmd.backtest_run import backtest
from mmd.config import AppConfig, ModelsConfig
from mmd.errors import ConfigError
from mmd.feeds.recording import read_recording
from mmd.learn.dataset import extract_market
from mmd.learn.features import ADVERSE_FEATURES, MARKET_FEATURES, market_matrix, orient_vector
from mmd.learn.model_file import IncompatibleModel, save_model
from mmd.learn.model_loader import load_models
from mmd.quote_models import load_quote_models
from mmd.strategy.engine import SymbolStrategy

# ~100 s of the Binance BTCUSDT recording (about 41 frames/s)
SLICE_FRAMES = 4000
N_IN = len(ADVERSE_FEATURES)
SPREAD_HALF_TICKS = 40.0


@pytest.fixture(scope="module")
def small_rec(binance_btc_rec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlq") / "binanceusdm_linear_BTCUSDT_20240718T235700Z.rec.gz"
    split_recording(binance_btc_rec, out, SLICE_FRAMES, 0)
    return out


def write_models(root: Path) -> Path:
    """Hand-made models: a logistic detector on the (side-oriented) touch imbalance and a
    constant spread predictor of SPREAD_HALF_TICKS ticks."""
    n_mkt = len(MARKET_FEATURES)
    w = np.zeros(N_IN)
    # a buyer hitting a bid-heavy book is "informed": p = sigmoid(3 * imbalance * side - 1)
    w[ADVERSE_FEATURES.index("imbalance_touch")] = 3.0
    save_model(
        root / "adverse",
        kind="adverse_logistic",
        features=list(ADVERSE_FEATURES),
        arrays={
            "stats": np.concatenate([np.zeros(N_IN), np.ones(N_IN)]),
            "weights": w,
            "biases": np.array([-1.0]),
            "sizes": np.array([N_IN, 1], np.int64),
        },
        orient=orient_vector().tolist(),
        # multiplier 1 + 4 * max(0, p - 0.3); withdraw at p >= 0.85
        policy={"p0": 0.3, "k": 4.0, "p_withdraw": 0.85},
        mmd_version="test",
    )
    save_model(
        root / "spread",
        kind="spread_mlp",
        features=list(MARKET_FEATURES),
        arrays={
            "stats": np.concatenate([np.zeros(n_mkt), np.ones(n_mkt)]),
            "weights": np.zeros(n_mkt),
            "biases": np.array([math.log(SPREAD_HALF_TICKS)]),
            "sizes": np.array([n_mkt, 1], np.int64),
        },
        hyper_parameters={"clip_ticks": [1.0, 1000.0]},
        mmd_version="test",
    )
    return root


def _cfg(models_dir: Path, **models: object) -> AppConfig:
    cfg = AppConfig()
    return msgspec.structs.replace(cfg, models=ModelsConfig(dir=str(models_dir), **models))  # type: ignore[arg-type]


def test_decision_vector_equals_dataset_vector(
    small_rec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vector the strategy feeds the models at each decision is the dataset builder's
    vector at the same frame (same FeatureEngine state, same market_matrix layout)."""
    seen: list[tuple[int, np.ndarray]] = []
    orig = SymbolStrategy.ml_inputs

    def spy(self: SymbolStrategy, now_ns: int, st: object) -> object:
        out = orig(self, now_ns, st)  # type: ignore[arg-type]
        seen.append((now_ns, self.xm.copy()))
        return out

    monkeypatch.setattr(SymbolStrategy, "ml_inputs", spy)
    cfg = _cfg(write_models(tmp_path / "models"))
    (summary,) = backtest(cfg, [str(small_rec)], strategy="ml", report_dir=None, progress=False)
    ms = extract_market(read_recording(small_rec), "BTCUSDT", "linear")
    xm = market_matrix(ms.fx, ms.ts_ns)
    # frames sharing a receive stamp are ambiguous: compare the stamps that occur once
    ts_d, count_d = np.unique(ms.ts_ns, return_counts=True)
    unique_d = {int(t) for t, c in zip(ts_d, count_d, strict=True) if c == 1}
    live_count = Counter(t for t, _ in seen)
    unique_l = {t for t, c in live_count.items() if c == 1}
    row = {int(t): i for i, t in enumerate(ms.ts_ns)}
    compared = 0
    for t, v in seen:
        if t in unique_d and t in unique_l:
            np.testing.assert_array_equal(v, xm[row[t]])
            compared += 1
    print(f"{len(seen)} decisions, {compared} compared with the dataset rows")
    assert compared > 1000
    assert summary["models"] == {
        "adverse": summary["models"]["adverse"],
        "spread": summary["models"]["spread"],
    }
    # the hand-made detector widens a side whenever imbalance*side > 0.44 on either side
    assert 0.0 < summary["widened_fraction"] <= 1.0


def test_adjustments_widen_withdraw_and_override(small_rec: Path, tmp_path: Path) -> None:
    models = load_models(write_models(tmp_path / "m"), adverse=True, spread=True, missing="error")
    cfg = AppConfig()
    from mmd.market.hub import MarketHub

    hub = MarketHub(["BTCUSDT"], cfg.market, features_cfg=cfg.features)
    strat = None
    mls = []
    for i, (ts, raw) in enumerate(read_recording(small_rec)):
        hub.on_frame(raw, ts)
        st = hub.states.get("BTCUSDT")
        if st is None or not st.sync.synced or i % 10:
            continue
        if strat is None:
            strat = SymbolStrategy(cfg.strategy, st.instrument, ts, models)
        mls.append((strat.ml_inputs(ts, st), strat.p_adverse))
    assert len(mls) > 100
    for ml, (p_buy, p_sell) in mls:
        # policy by hand: mult = 1 + 4 * max(0, p - 0.3); withdrawn at p >= 0.85
        assert ml.ask_mult == pytest.approx(1 + 4 * max(0.0, p_buy - 0.3))
        assert ml.bid_mult == pytest.approx(1 + 4 * max(0.0, p_sell - 0.3))
        assert ml.quote_ask == (p_buy < 0.85) and ml.quote_bid == (p_sell < 0.85)
        # no previous target: the constant predictor's spread, total = 2 * half
        assert ml.spread_override_ticks == pytest.approx(2 * SPREAD_HALF_TICKS)
    assert any(ml.ask_mult > 1 or ml.bid_mult > 1 for ml, _ in mls)


def test_quoter_drops_a_withdrawn_side(small_rec: Path) -> None:
    from mmd.market.hub import MarketHub
    from mmd.strategy.quoter import MlInputs, Quoter

    cfg = AppConfig()
    hub = MarketHub(["BTCUSDT"], cfg.market, features_cfg=cfg.features)
    for ts, raw in read_recording(small_rec):
        hub.on_frame(raw, ts)
    st = hub.states["BTCUSDT"]
    q = Quoter(cfg.strategy, st.instrument)
    both = q.decide(ts, st.book, 20.0, 0.1, math.nan, 0)
    no_bid = q.decide(ts, st.book, 20.0, 0.1, math.nan, 0, MlInputs(quote_bid=False))
    no_ask = q.decide(ts, st.book, 20.0, 0.1, math.nan, 0, MlInputs(quote_ask=False))
    assert both is not None and no_bid is not None and no_ask is not None
    assert both.bids and both.asks
    assert no_bid.bids == [] and no_bid.asks == both.asks
    assert no_ask.asks == [] and no_ask.bids == both.bids


def test_missing_model_error_or_neutral(small_rec: Path, tmp_path: Path) -> None:
    empty = tmp_path / "none"
    with pytest.raises(IncompatibleModel, match=str(empty / "adverse")):
        load_models(empty, adverse=True, spread=False, missing="error")
    assert issubclass(IncompatibleModel, ConfigError)  # exit 2
    told: list[str] = []
    m = load_models(
        empty,
        adverse=True,
        spread=True,
        missing="neutral",
        on_missing=lambda name, reason: told.append(name),
    )
    assert told == ["adverse", "spread"] and not m.active
    # neutral fallback: --strategy ml quotes exactly like plain AS
    cfg = _cfg(empty, missing="neutral")
    (ml,) = backtest(cfg, [str(small_rec)], strategy="ml", report_dir=None, progress=False)
    (plain,) = backtest(cfg, [str(small_rec)], strategy="as", report_dir=None, progress=False)
    assert ml["models"] == {} and ml["widened_fraction"] == 0.0
    for key in ("pnl", "fills", "max_drawdown"):
        assert ml[key] == plain[key], key


@pytest.mark.parametrize(
    "cmd", [["backtest", "--strategy", "ml", "--no-progress"], ["run", "--feed", "synthetic"]]
)
def test_missing_model_exits_2_with_one_line(
    cmd: list[str], small_rec: Path, tmp_path: Path
) -> None:
    env = base_env(
        MMD_MODELS__DIR=str(tmp_path / "nothing"),
        MMD_MODELS__ADVERSE="true",
        MMD_STATE__DIR=str(tmp_path / "state"),
        MMD_METRICS__PORT="0",
    )
    args = [sys.executable, "-m", "mmd", *cmd]
    if cmd[0] == "backtest":
        args.append(str(small_rec))
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert str(tmp_path / "nothing" / "adverse") in lines[0]


def test_ledger_records_versions_once_and_a_change(tmp_path: Path) -> None:
    """Same files at restart: nothing new recorded; other files: model_changed, new row."""
    from mmd.market.hub import MarketHub

    models = write_models(tmp_path / "models")
    cfg = msgspec.structs.replace(
        _cfg(models, adverse=True, spread=True),
        state=msgspec.structs.replace(AppConfig().state, dir=str(tmp_path / "state")),
    )

    def start() -> dict[str, str]:
        trader = app_mod.build_trader(cfg, MarketHub(["BTCUSDT"], cfg.market), ledger=True)
        try:
            m = load_quote_models(cfg, trader, 1)
            assert m is not None
            return m.versions()
        finally:
            assert trader.ledger is not None
            trader.ledger.close()

    first = start()
    second = start()
    assert first == second
    # a retrained spread model: another constant, another content hash
    n_mkt = len(MARKET_FEATURES)
    save_model(
        models / "spread",
        kind="spread_mlp",
        features=list(MARKET_FEATURES),
        arrays={
            "stats": np.concatenate([np.zeros(n_mkt), np.ones(n_mkt)]),
            "weights": np.zeros(n_mkt),
            "biases": np.array([math.log(7.0)]),
            "sizes": np.array([n_mkt, 1], np.int64),
        },
        hyper_parameters={"clip_ticks": [1.0, 1000.0]},
        mmd_version="test",
    )
    third = start()
    assert third["spread"] != first["spread"] and third["adverse"] == first["adverse"]
    import sqlite3

    from mmd.trading.ledger import ledger_path

    with sqlite3.connect(ledger_path(tmp_path / "state", cfg.feed.source)) as conn:
        rows = conn.execute("SELECT name, version FROM model_versions ORDER BY rowid").fetchall()
    assert rows == [
        ("adverse", first["adverse"]),
        ("spread", first["spread"]),
        ("spread", third["spread"]),
    ]

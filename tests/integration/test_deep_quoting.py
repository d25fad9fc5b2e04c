"""Quoting with the deep order-flow model: a tiny LSTM trained by `mmd train lstm` on an
earlier slice of a real recording, then stepped live once per book update (parity with the
runtime's window run on the same frames), mapped to a skew, and used by `mmd backtest
--strategy deep` on a later window."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest
from procs import base_env, split_recording

from mmd.app import build_trader
from mmd.config import AppConfig, ModelsConfig
from mmd.feeds.recording import read_recording
from mmd.frames import FrameHandler
from mmd.kernels.strategy import QPI_MAX_LOTS
from mmd.learn.dataset import extract_market
from mmd.learn.deep_data import DeepParams, sequence_dataset
from mmd.learn.model_file import IncompatibleModel
from mmd.market.hub import MarketHub
from mmd.quote_models import load_quote_models
from mmd.strategy.quoter import NEUTRAL

pytestmark = pytest.mark.slow
pytest.importorskip("torch", reason="PyTorch (the `deep` extra) is not installed")
pytest.importorskip("sklearn", reason="scikit-learn (the `train` extra) is not installed")

TRAIN_FRAMES = 4000  # ~100 s of the Binance BTCUSDT recording (about 41 frames/s)
TEST_FRAMES = 3000  # the backtest window: the next ~75 s, never seen by the trainer
TINY = (
    "window=16",
    "hidden=[8,4]",
    "head=4",
    "epochs=2",
    "patience=2",
    "n_splits=1",
    "stride=2",
    "horizon_s=2",
    "window_s=4",
    "baselines=false",
)


@pytest.fixture(scope="module")
def trained(
    binance_btc_rec: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str, int, int]:
    """(models dir, training recording, lstm version, window start_ns, window end_ns)."""
    tmp = tmp_path_factory.mktemp("deepq_int")
    train_rec = tmp / "binanceusdm_linear_BTCUSDT_20240718T235700Z.rec.gz"
    start, end = split_recording(binance_btc_rec, train_rec, TRAIN_FRAMES, TEST_FRAMES)
    models = tmp / "models"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "train",
            "lstm",
            str(train_rec),
            "--out",
            str(models),
            "--no-progress",
            *(x for s in TINY for x in ("--set", s)),
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    version = json.loads((models / "lstm" / "model.json").read_text())["version"]
    return models, train_rec, version, start, end


def _cfg(models: Path, **keys: object) -> AppConfig:
    return AppConfig(models=ModelsConfig(dir=str(models), lstm=True, **keys))  # type: ignore


def test_live_step_matches_the_window_run_and_maps_to_a_skew(
    trained: tuple[Path, Path, str, int, int],
) -> None:
    models_dir, train_rec, version, _, _ = trained
    cfg = _cfg(models_dir, deep_skew_ticks=3.0)
    models = load_quote_models(cfg, None, 0)
    assert models is not None and models.versions() == {"lstm": version}
    hub = MarketHub(["BTCUSDT"], cfg.market, features_cfg=cfg.features)
    trader = build_trader(cfg, hub, ledger=False)
    trader.models = models
    handler = FrameHandler(hub, None, None, trader, quote_inline=True)
    stepped: list[int] = []  # receive stamps of the book updates the strategy stepped on
    live_p: dict[int, float] = {}
    checks = {16, 200, 1000}
    for ts, raw in read_recording(train_rec):
        handler(raw, ts)
        strat = trader.strategies.get("BTCUSDT")
        if strat is None or strat.deep is None or strat.deep.updates == len(stepped):
            continue
        assert strat.deep.updates == len(stepped) + 1  # one step per book update
        stepped.append(ts)
        if len(stepped) in checks:
            live_p[len(stepped)] = strat.deep.head("price")
        if len(stepped) == max(checks):
            break
    assert set(live_p) == checks
    # the trainer's vectors of the same book updates, run from the zero state by the runtime
    d = sequence_dataset(
        extract_market(read_recording(train_rec), "BTCUSDT"), DeepParams(window=16)
    )
    ms = extract_market(read_recording(train_rec), "BTCUSDT")
    book_ts = ms.ts_ns[np.flatnonzero(ms.is_book)]
    rows = np.searchsorted(book_ts, np.array(stepped))
    assert np.array_equal(book_ts[rows], np.array(stepped))
    for n, p in live_p.items():
        ref = models.deep.predict_windows(d.x[rows[:n]][None])["price"][0]
        assert abs(p - ref) < 1e-5, (n, p, ref)
    # the skew: (2 p - 1) x deep_skew_ticks on top of what ml already carries
    strat = trader.strategies["BTCUSDT"]
    p = strat.deep.head("price")
    ml = strat.deep_inputs(NEUTRAL, 0)
    assert ml.skew_ticks == pytest.approx((2 * p - 1) * 3.0, abs=1e-12)
    assert strat.deep_heads == {"price": p}
    assert ml.spread_override_ticks != ml.spread_override_ticks  # an LSTM has no spread head


def test_missing_model_exits_2_or_quotes_neutral(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleModel, match=r"models\.lstm"):
        load_quote_models(_cfg(tmp_path), None, 0)
    neutral = load_quote_models(_cfg(tmp_path, missing="neutral"), None, 0)
    assert neutral is not None and not neutral.active and neutral.versions() == {}


def _backtest(
    rec: Path, strategy: str, models: Path, start: int, end: int, report: Path
) -> tuple[dict, str]:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "backtest",
            str(rec),
            "--strategy",
            strategy,
            "--start-ns",
            str(start),
            "--end-ns",
            str(end),
            "--report",
            str(report),
            "--no-progress",
        ],
        env=base_env(MMD_MODELS__DIR=str(models), MMD_MODELS__DEEP_SKEW_TICKS="3.0"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    print(r.stdout)
    return json.loads((report / "summary.json").read_text()), r.stdout + r.stderr


def test_backtest_deep_on_a_later_window_skews_quotes(
    binance_btc_rec: Path, trained: tuple[Path, Path, str, int, int], tmp_path: Path
) -> None:
    models, _, version, start, end = trained
    deep, log = _backtest(binance_btc_rec, "deep", models, start, end, tmp_path / "deep")
    plain, _ = _backtest(binance_btc_rec, "as", models, start, end, tmp_path / "as")
    assert deep["strategy"] == "deep" and deep["models"] == {"lstm": version}
    assert "backtest_engine_python" in log
    assert deep["events"] == plain["events"] > 1000
    differs = [
        k
        for k in ("fills", "volume", "pnl", "avg_spread_captured", "mean_abs_position")
        if deep[k] != plain[k]
    ]
    assert differs, (deep, plain)
    print(
        f"fills {deep['fills']} vs {plain['fills']} (plain AS), pnl {deep['pnl']} vs {plain['pnl']}"
    )


def test_multitask_heads_set_spread_and_position_skew(
    trained: tuple[Path, Path, str, int, int], tmp_path: Path
) -> None:
    _, train_rec, _, _, _ = trained
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "train",
            "multitask",
            str(train_rec),
            "--out",
            str(tmp_path / "mt"),
            "--no-progress",
            *(x for s in TINY for x in ("--set", s)),
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (tmp_path / "mt" / "multitask").rename(tmp_path / "mt" / "lstm")  # [models] dir/lstm
    cfg = _cfg(tmp_path / "mt", deep_skew_ticks=2.0)
    models = load_quote_models(cfg, None, 0)
    assert models is not None and models.deep is not None
    assert models.deep.heads == ("price", "spread", "position")
    hub = MarketHub(["BTCUSDT"], cfg.market, features_cfg=cfg.features)
    trader = build_trader(cfg, hub, ledger=False)
    trader.models = models
    handler = FrameHandler(hub, None, None, trader, quote_inline=True)
    for i, (ts, raw) in enumerate(read_recording(train_rec)):
        handler(raw, ts)
        if i >= 600:
            break
    strat = trader.strategies["BTCUSDT"]
    assert strat.deep is not None and strat.deep.updates > 100
    max_lots = int(strat.quoter.qpi[QPI_MAX_LOTS])
    pos = max_lots // 2  # q = 0.5
    q = pos / max_lots
    p, h, q_star = (
        strat.deep.head("price"),
        strat.deep.head("spread", q),
        strat.deep.head("position", q),
    )
    strat.target = None  # no model spread to compare with: the head's spread is used
    ml = strat.deep_inputs(NEUTRAL, pos)
    want = (2 * p - 1) * 2.0 + min(max(q_star - q, -1.0), 1.0) * 2.0
    assert ml.skew_ticks == pytest.approx(want, abs=1e-12)
    assert ml.spread_override_ticks == pytest.approx(2 * h, abs=1e-12)
    # a spread override already wider than the head's is kept
    wide = strat.deep_inputs(msgspec.structs.replace(NEUTRAL, spread_override_ticks=4 * h), pos)
    assert wide.spread_override_ticks == 4 * h

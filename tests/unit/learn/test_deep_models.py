"""Deep order-flow models: sequence labels by hand, no look-ahead, `mmd train lstm|multitask` on
a short synthetic session with informed flow, reload, determinism, and the real recordings."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from procs import base_env

from mmd.config import RegimesConfig, SyntheticConfig
from mmd.errors import ConfigError
from mmd.feeds.recording import RecordingWriter, read_recording
from mmd.feeds.synthetic import SyntheticMarket
from mmd.kernels.features import F_IMBALANCE_TOUCH, F_MID_TICKS, F_SPREAD_TICKS, N_FEATURES
from mmd.learn.dataset import MarketSeries, extract_market
from mmd.learn.deep_data import (
    N_SEQUENCE,
    SEQUENCE_FEATURES,
    DeepParams,
    gather_windows,
    pool_sequences,
    position_label,
    sequence_dataset,
)
from mmd.learn.features import MARKET_FEATURES

S = 10**9


def _series(
    mids: list[float], book: list[bool], trades: list[tuple[float, int, int]]
) -> MarketSeries:
    """Rows one second apart (t = 0, 1, 2, ... s) with these mids (ticks), a 2-tick spread, a
    distinct imbalance per row (to trace windows), and trades (t_s, side, px_ticks)."""
    n = len(mids)
    fx = np.full((n, N_FEATURES), np.nan)
    fx[:, F_MID_TICKS] = mids
    fx[:, F_SPREAD_TICKS] = 2.0
    fx[:, F_IMBALANCE_TOUCH] = np.arange(n) / 100.0  # -> market vector column 0
    return MarketSeries(
        symbol="BTCUSDT",
        category="linear",
        tick_size=0.1,
        ts_ns=np.arange(n, dtype=np.int64) * S,
        fx=fx,
        is_book=np.array(book),
        trade_ts_ns=np.array([round(t * S) for t, _, _ in trades], np.int64),
        trade_px_ticks=np.array([p for _, _, p in trades], np.int64),
        trade_qty_lots=np.ones(len(trades), np.int64),
        trade_side=np.array([s for _, s, _ in trades], np.int64),
        frames=n,
    )


def test_sequence_labels_by_hand() -> None:
    # rows at 0..6 s; row 2 is a trade-only row. mids 100, 101, 101, 99, 99, 102, 99.
    # Book rows (updates) 0, 1, 3, 4, 5, 6 at 0, 1, 3, 4, 5, 6 s. window T = 2, stride 1: samples
    # end at updates 1.. ; horizon 2 s and window_s 1 s: kept while t + 2 <= 6 (the last row),
    # so t = 1, 3, 4.
    #   t=1: m0 101, mid at 3 s (row 3) 99 -> move -2, y 0
    #   t=3: m0 99, mid at 5 s 102 -> +3, y 1
    #   t=4: m0 99, mid at 6 s 99 -> 0, y NaN (left out of the direction loss)
    # spread (grid 1, 2, 3, lambda 0.5): one buy at 3.5 s at 101 (2 ticks above the t=3 mid):
    #   t=3: h=1 fills the ask: q=-1, mid at 4 s is 99 (no move): 1 - 0.5 = 0.5; h=2: 2 - 0.5 =
    #   1.5; h=3: no fill, 0 -> best h 2, label log 2. t=1, t=4: no trade in the window: NaN.
    ms = _series(
        [100, 101, 101, 99, 99, 102, 99],
        [True, True, False, True, True, True, True],
        [(3.5, 1, 101)],
    )
    dp = DeepParams(
        window=2,
        stride=1,
        horizon_s=2.0,
        window_s=1.0,
        grid_ticks=(1, 2, 3),
        inventory_penalty_ticks=0.5,
    )
    d = sequence_dataset(ms, dp)
    assert d.t_ns.tolist() == [1 * S, 3 * S, 4 * S]
    assert d.ends.tolist() == [1, 2, 3]  # indices into the book updates
    assert d.move_ticks.tolist() == [-2.0, 3.0, 0.0]
    assert d.y_dir[:2].tolist() == [0.0, 1.0] and math.isnan(d.y_dir[2])
    assert math.isnan(d.y_spread[0]) and d.y_spread[1] == math.log(2) and math.isnan(d.y_spread[2])
    assert d.half_spread_ticks.tolist() == [1.0, 1.0, 1.0]
    assert d.label_end_ns.tolist() == [3 * S, 5 * S, 6 * S]
    # the window of the t=3 sample: updates at 1 s and 3 s (imbalance 0.01 and 0.03), oldest
    # first; nothing after t
    assert d.x.shape == (6, N_SEQUENCE)
    w = gather_windows(d.x.astype(np.float32), d.ends, 2)
    assert w[1, :, 0].tolist() == pytest.approx([0.01, 0.03])
    assert MARKET_FEATURES[:-1] == SEQUENCE_FEATURES and "inventory_lots" not in SEQUENCE_FEATURES


def test_labels_never_leak_into_features() -> None:
    # change everything after t = 3 s: the t=3 sample's window is unchanged, its label is not
    base = [100, 101, 101, 99, 99, 102, 99]
    dp = DeepParams(window=2, stride=1, horizon_s=2.0, window_s=1.0)
    a = sequence_dataset(_series(base, [True] * 7, []), dp)
    b = sequence_dataset(_series([*base[:4], 90, 80, 70], [True] * 7, []), dp)
    ia, ib = a.t_ns.tolist().index(3 * S), b.t_ns.tolist().index(3 * S)
    wa = gather_windows(a.x.astype(np.float32), a.ends[ia : ia + 1], 2)
    wb = gather_windows(b.x.astype(np.float32), b.ends[ib : ib + 1], 2)
    assert np.array_equal(wa, wb, equal_nan=True)
    assert a.move_ticks[ia] == 3.0 and b.move_ticks[ib] == -19.0  # 102 - 99 vs 80 - 99


def test_pooled_windows_stay_inside_their_recording() -> None:
    dp = DeepParams(window=3, stride=1, horizon_s=1.0, window_s=1.0)
    a = sequence_dataset(_series([100] * 6, [True] * 6, []), dp)
    b = sequence_dataset(_series([100] * 5, [True] * 5, []), dp)
    p = pool_sequences([a, b], [0, 0], seed=1)
    # recording a: 6 updates, samples end at 2, 3, 4 (t + 1 <= 5); b: rows 6..10, ends 8, 9
    assert p.ends.tolist() == [2, 3, 4, 8, 9]
    assert p.group.tolist() == [0, 0, 0, 1, 1]
    assert (p.ends - 2 >= np.array([0, 0, 0, 6, 6])).all()
    assert np.all(np.abs(p.inventory) <= 1.0)
    assert np.array_equal(p.inventory, pool_sequences([a, b], [0, 0], seed=1).inventory)


def test_position_label_by_hand() -> None:
    # q = clip(min(max(inv, (move - k) / 2l), (move + k) / 2l), -1, 1):
    #   move 3, k 1, l 1, inv 0: q_up 1, q_down 2 -> 1
    #   move 1, k 1, l 1: band [0, 1]: inv 0.5 stays 0.5, inv -0.5 -> 0
    #   move -0.4, k 0.2, l 1: band [-0.3, -0.1]: inv 0.5 -> -0.1
    #   move -10, k 1, l 1: q_down -4.5 -> clipped -1
    q = position_label(
        np.array([3.0, 1.0, 1.0, -0.4, -10.0]),
        np.array([1.0, 1, 1, 0.2, 1]),
        np.array([0.0, 0.5, -0.5, 0.5, 0.0]),
        1.0,
    )
    assert q.tolist() == pytest.approx([1.0, 0.5, 0.0, -0.1, -1.0])


def test_deep_params_are_strict() -> None:
    from mmd.learn.deep_cli import parse_deep_sets

    dp, cfg_sets = parse_deep_sets(["window=8", "hidden=[4,2]", "features.vol_window=60"])
    assert dp.window == 8 and dp.hidden == (4, 2) and cfg_sets == ["features.vol_window=60"]
    with pytest.raises(ConfigError, match="unknown training key"):
        parse_deep_sets(["windw=8"])
    with pytest.raises(ConfigError):
        parse_deep_sets(["valid_share=1.5"])


def test_the_daemon_side_never_imports_torch() -> None:
    # the run-time model, the strategy wiring and the composition root load without torch
    code = (
        "import sys, mmd.app, mmd.learn.runtime, mmd.learn.deep_runtime, mmd.kernels.lstm; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=base_env(), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:] or "torch was imported"


torch = pytest.importorskip("torch", reason="PyTorch (the `deep` extra) is not installed")
pytest.importorskip("sklearn", reason="scikit-learn (the `train` extra) is not installed")

START_NS = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
TINY = (
    "window=16",
    "hidden=[8,4]",
    "head=4",
    "epochs=3",
    "patience=2",
    "n_splits=2",
    "stride=2",
    "horizon_s=2",
    "window_s=4",
)


@pytest.fixture(scope="module")
def synth_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 simulated seconds with 30 % informed flow (about 3,000 book updates)."""
    cfg = SyntheticConfig(seed=11, sigma_ticks=2.0, regimes=RegimesConfig(informed_share=0.3))
    out = tmp_path_factory.mktemp("synth") / "synthetic_linear_BTCUSDT_20260101T000000Z.rec.gz"
    end = START_NS + 150 * S
    with RecordingWriter(out) as w:
        for ts, frame in SyntheticMarket("BTCUSDT", cfg, depth=20, start_ns=START_NS).frames():
            if ts >= end:
                break
            w.write(ts, frame)
    return out


def _train(kind: str, data: Path, out: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable,
        "-m",
        "mmd",
        "train",
        kind,
        str(data),
        "--out",
        str(out),
        "--no-progress",
        *(x for s in sets for x in ("--set", s)),
    ]
    return subprocess.run(
        args, env=base_env(), capture_output=True, text=True, timeout=600, cwd=out.parent
    )


def _windows(rec: Path, dp: DeepParams) -> np.ndarray:
    d = sequence_dataset(extract_market(read_recording(rec), "BTCUSDT"), dp)
    return d.x[d.ends[:, None] + np.arange(1 - dp.window, 1)[None, :]]


def test_train_lstm_writes_a_model_that_reloads(synth_rec: Path, tmp_path: Path) -> None:
    from mmd.learn.model_loader import load_deep_model

    r = _train("lstm", synth_rec, tmp_path / "models", *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    print(r.stdout)
    assert "out-of-sample AUC, LSTM direction head" in r.stdout
    assert "logistic on the flattened window" in r.stdout
    assert "logistic on the last vector" in r.stdout
    d = tmp_path / "models" / "lstm"
    assert (d / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((d / "model.json").read_text())
    assert meta["kind"] == "deep_lstm" and meta["features"] == list(SEQUENCE_FEATURES)
    assert meta["hyper_parameters"]["window"] == 16
    assert len(meta["metrics"]["splits"]) == 2
    for s in meta["metrics"]["splits"]:
        for key in ("auc_lstm", "auc_logistic_window", "auc_logistic_last"):
            assert 0.0 <= s[key] <= 1.0, key
        assert s["n_test_labelled"] > 100
    hist = meta["metrics"]["history"]
    assert 1 <= len(hist["train_total"]) <= 3 and len(hist["valid_price"]) == len(
        hist["train_total"]
    )
    m = load_deep_model(d)
    assert m.version == meta["version"] and m.heads == ("price",)
    p = m.predict_windows(
        _windows(synth_rec, DeepParams(window=16, horizon_s=2, window_s=4, stride=50))
    )["price"]
    assert np.all((p > 0) & (p < 1)) and np.std(p) > 0


def test_train_multitask_has_three_heads(synth_rec: Path, tmp_path: Path) -> None:
    from mmd.learn.model_loader import load_deep_model

    r = _train("multitask", synth_rec, tmp_path / "models", *TINY, "baselines=false")
    assert r.returncode == 0, r.stderr[-3000:]
    print(r.stdout)
    assert "RMSE of log half spread, spread head" in r.stdout
    assert "MSE of the position head" in r.stdout
    d = tmp_path / "models" / "multitask"
    meta = json.loads((d / "model.json").read_text())
    assert meta["kind"] == "deep_multitask"
    assert {"train_spread", "train_position", "valid_price"} <= set(meta["metrics"]["history"])
    m = load_deep_model(d)
    w = _windows(synth_rec, DeepParams(window=16, horizon_s=2, window_s=4, stride=80))
    out = m.predict_windows(w, np.linspace(-1, 1, len(w)))
    assert set(out) == {"price", "spread", "position"}
    assert np.all(out["spread"] > 0) and np.all(np.abs(out["position"]) <= 1.0)
    assert (d / "loss.png").exists()


def test_training_is_seeded(synth_rec: Path, tmp_path: Path) -> None:
    from mmd.learn.deep_cli import parse_deep_sets, train_deep
    from mmd.learn.train_data import Recording

    dp, _ = parse_deep_sets([*TINY, "baselines=false", "n_splits=1", "epochs=2"])
    rec = Recording("synth", [synth_rec], extract_market(read_recording(synth_rec), "BTCUSDT"))
    a = train_deep("lstm", [rec], dp, tmp_path / "a", "test", False, lambda _: None)
    b = train_deep("lstm", [rec], dp, tmp_path / "b", "test", False, lambda _: None)
    assert a.version == b.version
    c = train_deep(
        "lstm",
        [rec],
        parse_deep_sets([*TINY, "baselines=false", "n_splits=1", "epochs=2", "seed=8"])[0],
        tmp_path / "c",
        "test",
        False,
        lambda _: None,
    )
    assert c.version != a.version


def test_sequences_on_a_real_recording(binance_btc_rec: Path) -> None:
    # the first 3,000 frames of the real BTCUSDT recording: labels agree with the mids read
    # directly from the market series at t and at t + horizon
    ms = extract_market(itertools.islice(read_recording(binance_btc_rec), 3000), "BTCUSDT")
    dp = DeepParams(window=32, stride=8, horizon_s=2.0, window_s=2.0)
    d = sequence_dataset(ms, dp)
    assert len(d) > 50
    for i in range(0, len(d), 17):
        t = int(d.t_ns[i])
        m0 = ms.mid_ticks[np.flatnonzero(ms.ts_ns <= t)[-1]]
        mh = ms.mid_ticks[np.flatnonzero(ms.ts_ns <= t + 2 * S)[-1]]
        assert d.move_ticks[i] == mh - m0
    # a quiet start: the mid moved within 2 s for a few of these samples only
    assert np.isfinite(d.y_dir).any()

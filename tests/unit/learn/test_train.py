"""`mmd train` on a small slice of a real recording; model files: reload, identity, refusal."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from procs import base_env, split_recording

from mmd.errors import ConfigError
from mmd.feeds.recording import read_recording
from mmd.learn.dataset import LabelParams, adverse_dataset, extract_market, spread_dataset
from mmd.learn.features import ADVERSE_FEATURES, MARKET_FEATURES
from mmd.learn.model_file import IncompatibleModel, load_model
from mmd.learn.model_loader import load_detector, load_spread_predictor
from mmd.learn.runtime import SpreadPredictor

pytest.importorskip("sklearn", reason="scikit-learn (the `train` extra) is not installed")

from mmd.learn import train as tr

# ~100 s of the Binance BTCUSDT recording (about 41 frames/s): thousands of trades
SLICE_FRAMES = 4000


@pytest.fixture(scope="module")
def small_rec(binance_btc_rec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first SLICE_FRAMES frames of the real BTCUSDT recording (instruments-info first)."""
    out = tmp_path_factory.mktemp("small") / "binanceusdm_linear_BTCUSDT_20240718T235700Z.rec.gz"
    split_recording(binance_btc_rec, out, SLICE_FRAMES, 0)
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
        args, env=base_env(), capture_output=True, text=True, timeout=300, cwd=out.parent
    )


def test_train_adverse_writes_a_model_that_reloads(small_rec: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    r = _train("adverse", small_rec, models, "n_splits=2", "horizon_s=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "out-of-sample AUC, logistic" in r.stdout and "MLP earns its place" in r.stdout
    print(r.stdout)
    d = models / "adverse"
    meta = json.loads((d / "model.json").read_text())
    assert meta["kind"] in ("adverse_logistic", "adverse_mlp")
    assert meta["features"] == list(ADVERSE_FEATURES)
    assert meta["training_data"][0]["sha256"] == hashlib.sha256(small_rec.read_bytes()).hexdigest()
    assert meta["hyper_parameters"]["labels"]["horizon_s"] == 2
    assert len(meta["metrics"]["splits"]) == 2
    for s in meta["metrics"]["splits"]:
        assert 0.0 <= s["auc_logistic"] <= 1.0 and s["n_test"] > 100
    assert 0 < meta["policy"]["p0"] < 1
    # reload twice: the same version and the same predictions on the training rows
    ms = extract_market(read_recording(small_rec), "BTCUSDT", "linear")
    ds = adverse_dataset(ms, LabelParams(horizon_s=2.0))
    a = load_detector(d)
    b = load_detector(d)
    assert a.version == b.version == meta["version"]
    pa, pb = a.predict_rows(ds.x), b.predict_rows(ds.x)
    assert np.array_equal(pa, pb) and 0 < pa.mean() < 1
    adj = a.adjust(np.ascontiguousarray(ds.x[0, :-1]))
    assert adj.bid_mult >= 1.0 and adj.ask_mult >= 1.0


def test_saved_model_predicts_as_the_fitted_one(small_rec: Path, tmp_path: Path) -> None:
    from mmd.learn.model_file import save_model

    ms = extract_market(read_recording(small_rec), "BTCUSDT", "linear")
    ds = adverse_dataset(ms, LabelParams(horizon_s=2.0))
    half = len(ds) // 2
    pipe, _ = tr.fit_logistic(ds.x[:half], ds.y[:half], ds.t_ns[:half], purge_ns=2 * 10**9)
    save_model(
        tmp_path / "m",
        kind="adverse_logistic",
        features=list(ADVERSE_FEATURES),
        arrays=tr.export_network(pipe),
        mmd_version="test",
        orient=[0.0] * len(MARKET_FEATURES),
        policy={"p0": 0.5, "k": 1.0, "p_withdraw": 0.9},
    )
    det = load_detector(tmp_path / "m")
    held = ds.x[half:]
    assert np.max(np.abs(det.predict_rows(held) - pipe.predict_proba(held)[:, 1])) < 1e-9


def test_train_spread_writes_a_model_that_reloads(small_rec: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    r = _train("spread", small_rec, models, "n_splits=2", "window_s=5", "interval_s=0.25")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "out-of-sample RMSE of log h" in r.stdout
    print(r.stdout)
    pred = load_spread_predictor(models / "spread")
    assert pred.meta.features == list(MARKET_FEATURES)
    ms = extract_market(read_recording(small_rec), "BTCUSDT", "linear")
    ds = spread_dataset(ms, LabelParams(window_s=5.0, interval_s=0.25))
    h = _half_spreads(pred, ds.x)
    assert np.all(h > 0) and np.array_equal(
        h, _half_spreads(load_spread_predictor(models / "spread"), ds.x)
    )


def _half_spreads(pred: SpreadPredictor, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The predictor's half spread (ticks) of each row of x, as the quoter asks for it."""
    return np.array([pred.half_spread_ticks(np.ascontiguousarray(r)) for r in x])


def _model(tmp_path: Path) -> Path:
    from mmd.learn.model_file import save_model

    arrays = {
        "stats": np.r_[np.zeros(21), np.ones(21)],
        "weights": np.arange(21.0),
        "biases": np.array([0.5]),
        "sizes": np.array([21, 1], np.int64),
    }
    save_model(
        tmp_path / "adverse",
        kind="adverse_logistic",
        features=list(ADVERSE_FEATURES),
        arrays=arrays,
        mmd_version="test",
        orient=[1.0] * 20,
        policy={"p0": 0.5, "k": 1.0, "p_withdraw": 0.9},
    )
    return tmp_path / "adverse"


def test_loader_refuses_incompatible_models(tmp_path: Path) -> None:
    d = _model(tmp_path)
    load_model(d, ("adverse_logistic",), ADVERSE_FEATURES)  # fine as written
    assert issubclass(IncompatibleModel, ConfigError)  # -> exit 2 with one line
    with pytest.raises(IncompatibleModel, match="kind 'adverse_logistic'"):
        load_spread_predictor(d)
    with pytest.raises(IncompatibleModel, match="another order"):
        load_model(d, ("adverse_logistic",), tuple(reversed(ADVERSE_FEATURES)))
    with pytest.raises(
        IncompatibleModel, match=r"lacks \['depth'\], this mmd does not compute \['side'\]"
    ):
        load_model(d, ("adverse_logistic",), (*ADVERSE_FEATURES[:-1], "depth"))
    with pytest.raises(IncompatibleModel, match="cannot read"):
        load_model(tmp_path / "nothing", ("adverse_logistic",), ADVERSE_FEATURES)
    meta = json.loads((d / "model.json").read_text())
    meta["policy"]["p_withdraw"] = 0.1  # an edit the version does not cover
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(IncompatibleModel, match="do not match version"):
        load_model(d, ("adverse_logistic",), ADVERSE_FEATURES)
    (d / "model.json").write_text("{not json")
    with pytest.raises(IncompatibleModel, match=r"bad model\.json"):
        load_model(d, ("adverse_logistic",), ADVERSE_FEATURES)


def test_train_bad_arguments_exit_2(tmp_path: Path, small_rec: Path) -> None:
    for sets in (["bogus=1"], ["horizon_s=soon"]):
        r = _train("adverse", small_rec, tmp_path / "m", *sets)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    r = _train("adverse", tmp_path / "missing.rec.gz", tmp_path / "m")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_each_recording_file_is_its_own_recording(cryptofeed_dir: Path, tmp_path: Path) -> None:
    import shutil

    from mmd.config import AppConfig
    from mmd.learn.train_data import read_recordings

    src = next(cryptofeed_dir.glob("bybit_linear_BTCUSDT_*"))
    for day in ("a", "b"):  # the same symbol twice: two recordings, never one merged series
        (tmp_path / day).mkdir()
        shutil.copy(src, tmp_path / day / src.name)
    recs = read_recordings(AppConfig(), [str(tmp_path / "a"), str(tmp_path / "b")], False)
    assert len(recs) == 2
    assert np.array_equal(recs[0].series.ts_ns, recs[1].series.ts_ns)

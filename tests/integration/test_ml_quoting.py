"""Models trained by `mmd train` on an earlier slice of a real recording, then used: by
`mmd backtest --strategy ml` on a later window, and by the daemon against `mmd serve-venue`
(metrics, logs, ledger versions across a restart)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import base_env, daemon, http_text, metric_values, split_recording, venue

pytestmark = pytest.mark.slow
pytest.importorskip("sklearn", reason="scikit-learn (the `train` extra) is not installed")

TRAIN_FRAMES = 4000  # ~100 s of the Binance BTCUSDT recording (about 41 frames/s)
TEST_FRAMES = 6000  # the backtest window: the next ~150 s, never seen by the trainer


@pytest.fixture(scope="module")
def trained(
    binance_btc_rec: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str], int, int]:
    """(models dir, {model: version}, window start_ns, window end_ns)."""
    tmp = tmp_path_factory.mktemp("mlq_int")
    train_rec = tmp / "binanceusdm_linear_BTCUSDT_20240718T235700Z.rec.gz"
    start, end = split_recording(binance_btc_rec, train_rec, TRAIN_FRAMES, TEST_FRAMES)
    models = tmp / "models"
    versions = {}
    for kind in ("adverse", "spread"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "mmd",
                "train",
                kind,
                str(train_rec),
                "--out",
                str(models),
                "--no-progress",
                "--set",
                "n_splits=2",
                "--set",
                "horizon_s=2",
            ],
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        versions[kind] = json.loads((models / kind / "model.json").read_text())["version"]
    # the Q-table, on the same training slice (a few episodes of the jitted loop)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "train",
            "rl",
            str(train_rec),
            "--out",
            str(models),
            "--no-progress",
            "--episodes",
            "3",
            "--seed",
            "1",
            "--set",
            "n_splits=2",
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    versions["rl"] = json.loads((models / "rl" / "model.json").read_text())["version"]
    # the window starts after the last training frame
    return models, versions, start, end


def _backtest(rec: Path, strategy: str, models: Path, start: int, end: int, report: Path) -> dict:
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
        env=base_env(MMD_MODELS__DIR=str(models)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    print(r.stdout)
    return json.loads((report / "summary.json").read_text())


def test_backtest_ml_on_a_later_window_adjusts_quotes(
    binance_btc_rec: Path, trained: tuple[Path, dict[str, str], int, int], tmp_path: Path
) -> None:
    models, versions, start, end = trained
    ml = _backtest(binance_btc_rec, "ml", models, start, end, tmp_path / "ml")
    plain = _backtest(binance_btc_rec, "as", models, start, end, tmp_path / "as")
    # --strategy ml quotes with both models; the RL table only when [models] rl is on
    assert ml["strategy"] == "ml" and ml["models"] == {
        k: versions[k] for k in ("adverse", "spread")
    }
    assert ml["events"] == plain["events"] > 1000
    # the models changed the quotes: spread override and/or widened sides
    assert (tmp_path / "ml" / "quotes.png").exists()
    differs = [
        k
        for k in ("fills", "volume", "pnl", "avg_spread_captured", "mean_abs_position")
        if ml[k] != plain[k]
    ]
    assert differs, (ml, plain)
    print(
        f"widened or withdrawn in {100 * ml['widened_fraction']:.1f}% of decisions; "
        f"fills {ml['fills']} vs {plain['fills']} (plain AS)"
    )


def test_daemon_quotes_with_models_and_keeps_versions(
    binance_btc_rec: Path, trained: tuple[Path, dict[str, str], int, int], tmp_path: Path
) -> None:
    models, versions, _, _ = trained
    (tmp_path / "models").symlink_to(models)  # procs.daemon points [models] dir here
    env = {
        "MMD_MODELS__ADVERSE": "true",
        "MMD_MODELS__SPREAD": "true",
        "MMD_MODELS__RL": "true",
        "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
    }
    logs = []
    with venue([binance_btc_rec], tmp_path, speed=1.0) as (_, vurl):
        env.update(
            MMD_VENUE__REST_URL=vurl,
            MMD_VENUE__WS_URL=vurl.replace("http", "ws") + "/v5/public/linear",
        )
        for _ in range(2):  # a restart keeps the same versions
            with daemon(tmp_path, env, ready_timeout=30) as (proc, url):
                deadline = time.monotonic() + 20
                probs: dict[str, float] = {}
                actions: dict[str, float] = {}
                while time.monotonic() < deadline and (len(probs) < 2 or sum(actions.values()) < 1):
                    text = http_text(url + "/metrics")
                    probs = metric_values(text, "mmd_adverse_selection_probability")
                    actions = metric_values(text, "mmd_rl_action_total")
                    time.sleep(0.2)
                # the table acts: its decisions are counted by action
                assert sum(actions.values()) >= 1, actions
                assert set(probs) == {
                    '{side="ask",symbol="BTCUSDT"}',
                    '{side="bid",symbol="BTCUSDT"}',
                }, probs
                assert all(0.0 <= p <= 1.0 for p in probs.values())
                info = metric_values(text, "mmd_model_info")
                assert info == {
                    f'{{model="{m}",version="{v}"}}': 1.0 for m, v in versions.items()
                }, info
                logs.append(proc.output())
    loaded = [json.loads(ln) for out in logs for ln in out.splitlines() if '"model_loaded"' in ln]
    assert sorted((e["model"], e["version"]) for e in loaded) == sorted(list(versions.items()) * 2)
    assert not any('"model_changed"' in out for out in logs)
    ledger = next((tmp_path / "state").rglob("ledger.sqlite"))
    with sqlite3.connect(ledger) as conn:
        rows = conn.execute("SELECT name, version FROM model_versions ORDER BY rowid").fetchall()
    assert sorted(rows) == sorted(versions.items())  # recorded once, not again on restart

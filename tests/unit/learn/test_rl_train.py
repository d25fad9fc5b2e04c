"""`mmd train rl` on a short synthetic session: the table learns, is saved with its curves,
plot and provenance, training is reproducible from its seed, and `mmd backtest --strategy ml`
quotes greedily with the saved table (the same path the trainer's episodes run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest
from procs import base_env

from mmd.backtest_run import backtest
from mmd.config import AppConfig, ModelsConfig
from mmd.errors import ConfigError
from mmd.feeds.recording import file_sha256
from mmd.feeds.synth_session import write_session
from mmd.kernels import rl as krl
from mmd.learn import rl as lrl
from mmd.learn import rl_episode as lre
from mmd.learn.model_loader import load_rl_policy

SETS = ["episodes=3", "seed=5", "models.rl_step_s=2.0"]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 simulated seconds of the default synthetic BTCUSDT market."""
    out = tmp_path_factory.mktemp("rltrain")
    write_session(AppConfig(), out, 90.0)
    return out


@pytest.fixture(autouse=True)
def _event_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMD_EVENT_CACHE", str(tmp_path_factory.getbasetemp() / "evcache"))


def test_train_rl_learns_saves_and_reproduces(session: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    meta = lrl.run_train_rl([str(session)], str(tmp_path / "a"), SETS, None, False, lines.append)
    rl_dir = tmp_path / "a" / "rl"
    assert meta.kind == "rl_q"
    p = load_rl_policy(rl_dir)
    assert p.version == meta.version
    # learnt: updates happened, some values moved off zero, the time-split recorded
    n_updates = int(p.visits.sum())
    assert n_updates == meta.metrics["updates"] > 10
    assert np.count_nonzero(p.q) > 0 and meta.metrics["states_visited"] >= 1
    curves = meta.metrics["curves"]
    assert len(curves["reward"]) == len(curves["pnl"]) == 3
    # 2 s steps over ~80 % of 90 s (about 72 s): some 36 decisions per episode
    assert all(25 <= d <= 40 for d in curves["decisions"]), curves["decisions"]
    (win,) = meta.hyper_parameters["windows"]
    assert win["train_ns"][1] < win["holdout_ns"][0]  # held out: the later part
    assert meta.hyper_parameters["config"]["rl_step_s"] == 2.0
    assert meta.hyper_parameters["train"]["seed"] == 5
    (rec,) = sorted(session.glob("*.rec.gz"))
    assert meta.training_data == [
        {"path": str(rec), "sha256": file_sha256(rec), "symbol": "BTCUSDT", "category": "linear"}
    ]
    (hold,) = meta.metrics["holdout"]
    assert {"greedy", "off"} <= hold.keys()
    assert (rl_dir / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("Q-learning: 3 episodes" in ln for ln in lines)
    # the same seed and data learn the same table: the same content hash
    again = lrl.run_train_rl(
        [str(session)], str(tmp_path / "b"), SETS, None, False, lambda _s: None
    )
    assert again.version == meta.version

    # `mmd backtest --strategy ml` with [models] rl quotes greedily from the table: the same
    # fills as a greedy episode of the trainer's runner over the whole recording
    cfg = msgspec.structs.replace(
        AppConfig(), models=ModelsConfig(dir=str(tmp_path / "a"), rl=True, missing="neutral")
    )
    (summary,) = backtest(cfg, [str(rec)], strategy="ml", report_dir=None, progress=False)
    assert summary["models"] == {"rl": meta.version}
    win_all = lre.Window(
        name="all", symbol="BTCUSDT", category="linear", files=[rec], start_ns=0, end_ns=2**62
    )
    out = lre.run_episode_python(
        win_all,
        cfg,
        p.q.copy(),
        p.visits.copy(),
        p.rpi.copy(),
        p.rpf.copy(),
        p.actions,
        krl.new_agent_state(),
        krl.new_rng(1),
    )
    assert out["fills"] == summary["fills"]
    assert sum(out["action_counts"]) == out["decisions"] > 30
    # greedy: only actions tried in their state, or the neutral one
    tried = set(np.flatnonzero(p.visits.sum(axis=0)).tolist()) | {0}
    assert {i for i, n in enumerate(out["action_counts"]) if n} <= tried


def test_train_rl_cli_and_bad_settings(session: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown training key"):
        lrl.parse_rl_sets(["alpha=0.2"])
    with pytest.raises(ConfigError, match="episodes"):
        lrl.parse_rl_sets(["episodes=0"])
    tp, config_sets = lrl.parse_rl_sets(["episodes=4", "models.rl_alpha=0.2"])
    assert tp.episodes == 4 and config_sets == ["models.rl_alpha=0.2"]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "train",
            "rl",
            str(session),
            "--out",
            str(tmp_path),
            "--episodes",
            "1",
            "--seed",
            "2",
            "--no-progress",
            "--set",
            "models.rl_step_s=3",
        ],
        env=base_env(MMD_EVENT_CACHE=str(tmp_path / "ev")),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Q-learning: 1 episodes" in r.stdout and "model written to" in r.stdout
    p = load_rl_policy(tmp_path / "rl")
    assert p.step_ns == 3_000_000_000 and p.meta is not None
    assert p.meta.hyper_parameters["train"]["seed"] == 2
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "train",
            "rl",
            str(session),
            "--out",
            str(tmp_path),
            "--set",
            "bogus=1",
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "bogus" in r.stderr


def test_jitted_and_per_frame_episodes_learn_the_same_table(session: Path, tmp_path: Path) -> None:
    """The two episode runners make the same decisions on the same observations: two learning
    episodes (seeded exploration) give the same PnL, fills, rewards and table, bit for bit."""
    if lre.fast_episode() is None:
        pytest.skip("this mmd has no jitted episode loop (mmd.sim.backtest.run_episode)")
    cfg = AppConfig()
    (w,), _, _ = lre.split_windows(cfg, [str(session)], 4, 5_000_000_000, False)
    w.part_dir = tmp_path / "part"
    assert lre.fast_unsupported(cfg, [w]) is None
    tables = []
    for runner in (lre.run_episode_python, lre.run_episode_fast):
        q, visits, rpi, rpf, actions = lre.rl_arrays(cfg, krl.MODE_LEARN)
        rng = krl.new_rng(3)
        outs = [
            runner(w, cfg, q, visits, rpi, rpf, actions, krl.new_agent_state(), rng)
            for _ in range(2)
        ]
        tables.append(
            (q, visits, [(o["pnl"], o["fills"], o["reward_sum"], o["decisions"]) for o in outs])
        )
    (q_py, v_py, o_py), (q_fast, v_fast, o_fast) = tables
    # ~72 s of training part at 5 s steps: 13-15 decisions an episode, all but the first an
    # update
    assert o_py == o_fast and 13 <= o_py[0][3] <= 15
    assert np.array_equal(q_py, q_fast) and np.array_equal(v_py, v_fast)
    assert v_py.sum() == o_py[0][3] + o_py[1][3] - 2
    # OFI bins need the feature engine: auto falls back to the per-frame driver
    ofi = msgspec.structs.replace(cfg, models=msgspec.structs.replace(cfg.models, rl_ofi_bins=3))
    assert "rl_ofi_bins" in (lre.fast_unsupported(ofi, [w]) or "")


def test_train_rl_as_train_all_and_evaluate_call_it(session: Path, tmp_path: Path) -> None:
    """`mmd train all` and `mmd evaluate` call train_rl(recs, lp, tp, out_dir, version,
    progress, echo) like the other trainers; it trains on the recordings' series span only."""
    from mmd.learn.train_data import TrainParams, read_recordings

    recs = read_recordings(AppConfig(), [str(session)], False)
    meta = lrl.train_rl(recs, None, TrainParams(seed=5), tmp_path, "test", False, lambda _s: None)
    assert meta.kind == "rl_q" and (tmp_path / "rl" / "model.json").is_file()
    assert meta.hyper_parameters["train"]["seed"] == 5
    (win,) = meta.hyper_parameters["windows"]
    assert win["holdout_ns"][1] <= int(recs[0].series.ts_ns[-1]) + 1

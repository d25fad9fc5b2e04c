"""`mmd synth`: synthetic sessions written in simulated time, with their truth sidecar, read by
`mmd backtest`, `mmd run --feed replay` and `mmd serve-venue`."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from procs import base_env, venue

from mmd.feeds.recording import read_recording
from mmd.feeds.synthetic import load_truth, truth_path

pytestmark = pytest.mark.slow

REC = "synthetic_linear_BTCUSDT_20260101T000000Z.rec.gz"  # the default --start


def _mmd(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # cwd: a directory without config.toml, so the built-in defaults are the file layer
    return subprocess.run(
        [sys.executable, "-m", "mmd", *args],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def _synth(out: Path, duration: float, *sets: str, seed: int = 7) -> Path:
    args = ["synth", "--duration", str(duration), "--seed", str(seed), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    r = _mmd(args, out.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = out / REC
    assert r.stdout.split() == [str(rec), str(truth_path(rec))]
    return rec


def test_synth_writes_a_recording_and_its_truth_and_the_same_command_the_same_frames(
    tmp_path: Path,
) -> None:
    sets = (
        "feed.synthetic.regimes.informed_share=0.3",
        "feed.synthetic.regimes.switching=true",
        "feed.synthetic.regimes.hawkes_branching=0.5",
        "feed.synthetic.regimes.info_rate_hz=0.1",
        "feed.synthetic.regimes.info_jump_ticks=10",
    )
    rec = _synth(tmp_path / "a", 60, *sets)
    again = _synth(tmp_path / "b", 60, *sets)
    lines = list(read_recording(rec))
    assert lines == list(read_recording(again))  # the frames (gzip headers carry a time)
    assert b'"instruments-info"' in lines[0][1] or b'"priceFilter"' in lines[0][1]
    # simulated time: 60 s from the default start, not the wall clock
    start_ns = 1_767_225_600_000_000_000
    assert lines[0][0] >= start_ns and start_ns + 59e9 < lines[-1][0] < start_ns + 60e9
    # one truth row per recorded trade, same ids in the same order
    ids = [
        i["i"]
        for _, f in lines
        if f.startswith(b'{"topic":"publicTrade.')
        for i in json.loads(f)["data"]
    ]
    truth = load_truth(truth_path(rec))
    assert len(ids) > 100 and list(truth["trade_id"]) == ids
    assert float(truth["horizon_s"]) == 5.0
    assert np.all(np.isfinite(truth["trade_future_mid"]))
    assert truth["regime_start_ns"][0] == lines[0][0] - 20_000_000  # receive latency 20 ms
    assert len(truth["order_informed"]) == truth["trade_order"].max()
    # information episodes: 10 ticks at the default 0.5 tick per informed order = 20 orders
    # at 2/s, about 10 s each, one every ~20 s: a few in 60 s
    starts, ends = truth["episode_start_ns"], truth["episode_end_ns"]
    assert len(starts) >= 1 and len(starts) == len(ends) == len(truth["episode_dir"])
    # cut at the recording's end like the trades: an episode still running then is open (-1)
    end_ns = start_ns + 60 * 10**9
    assert np.all(starts < end_ns) and np.all((ends == -1) | ((ends > starts) & (ends < end_ns)))
    assert np.all(ends[:-1] >= 0)
    traded = set(truth["trade_episode"][truth["trade_episode"] > 0].tolist())
    assert 1 in traded and traded <= set(range(1, len(starts) + 1))
    # a second run into the same directory would append to the recording: refused
    r = _mmd(["synth", "--duration", "1", "--out", str(tmp_path / "a")], tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr


def test_synth_bad_arguments_exit_2(tmp_path: Path) -> None:
    for args in (
        ["--duration", "0"],
        ["--duration", "5", "--set", "feed.synthetic.regimes.informed_share=1.5"],
        ["--duration", "5", "--start", "yesterday"],
        ["--duration", "5", "--start", "9999-01-01T00:00:00Z"],
    ):
        r = _mmd(["synth", *args, "--out", str(tmp_path / "x")], tmp_path, timeout=60)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_backtest_fills_are_marked_out_worse_with_informed_flow(tmp_path: Path) -> None:
    # the same seed and 10 simulated minutes, with and without informed traders; sigma 2
    # ticks/sqrt(s) so that fills come from trades more than from the book moving through
    # the quotes (which is adverse whoever trades)
    base = ("feed.synthetic.sigma_ticks=2",)
    markout = {}
    for share in (0.0, 0.3):
        rec = _synth(
            tmp_path / f"s{share}", 600, *base, f"feed.synthetic.regimes.informed_share={share}"
        )
        report = tmp_path / f"report{share}"
        r = _mmd(["backtest", str(rec), "--report", str(report), "--no-progress"], tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        summary = json.loads((report / "summary.json").read_text())
        assert summary["fills"] > 100
        markout[share] = summary["markout_5s"]
    print(f"markout 5 s (ticks): informed_share 0 -> {markout[0.0]:.3f}, 0.3 -> {markout[0.3]:.3f}")
    assert markout[0.3] < markout[0.0]


def test_synthetic_session_replays_and_is_served(tmp_path: Path) -> None:
    rec = _synth(tmp_path / "s", 30, "feed.synthetic.regimes.informed_share=0.2")
    env = base_env(
        MMD_FEED__REPLAY__PATHS=json.dumps([str(rec)]),
        MMD_METRICS__PORT="0",
        MMD_STATE__DIR=str(tmp_path / "state"),
    )
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "run", "--feed", "replay"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    (done,) = [e for e in events if e["event"] == "replay_finished"]
    assert done["files"] == [str(rec)]
    book = done["books"]["BTCUSDT"]
    assert book["best_bid"] and book["best_ask"] and book["best_bid"][0] < book["best_ask"][0]
    with venue([rec], tmp_path, speed=4.0) as (_, url):
        with urllib.request.urlopen(
            url + "/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=50", timeout=10
        ) as resp:
            served = json.loads(resp.read())
        assert served["retCode"] == 0 and served["result"]["b"] and served["result"]["a"]

"""`mmd tune` end to end on a real recording: the same best trial on a local process pool and on
a real Dask LocalCluster (2 worker processes) for the same seed; its best.toml, run by
`mmd backtest` over the out-of-sample window, gives the reported out-of-sample score exactly;
a bad space key exits 2 naming it. Plus the walk-forward cuts and the objective by hand.

The recording is the first 120 s of the converted Binance BTCUSDT 2024-07-18/19 recording (the
conftest fixture), so a trial is two short backtests.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mmd.tune.objective import NO_FILL_SCORE, fold_score, summary_score
from mmd.tune.splits import walk_forward

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SPACE = """
[space]
"strategy.gamma" = {low = 1e-6, high = 1e-2, log = true}
"strategy.requote_tolerance_ticks" = {low = 0, high = 4}
"strategy.levels" = {choices = [1, 2]}
"""
TUNE_ARGS = [
    "--trials",
    "6",
    "--batch",
    "3",
    "--sampler",
    "tpe",
    "--seed",
    "7",
    "--splits",
    "1",
    "--purge",
    "2",
    "--top",
    "2",
    "--no-progress",
]

CLUSTER = """
import sys
from distributed import LocalCluster

if __name__ == "__main__":
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                           dashboard_address=None, host="127.0.0.1")
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    cluster.close()
"""


def _mmd(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def short_rec(binance_btc_rec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recording's first 120 s of receive time, as a recording (header line included)."""
    out = tmp_path_factory.mktemp("tune_rec") / "btc_120s.rec.gz"
    first = None
    with gzip.open(binance_btc_rec, "rb") as src, gzip.open(out, "wb") as dst:
        for line in src:
            ts = int(line.split(b" ", 1)[0]) if line[:1].isdigit() else None
            if ts is not None:
                first = ts if first is None else first
                if ts - first >= 120_000_000_000:
                    break
            dst.write(line)
    return out


@pytest.fixture(scope="module")
def space_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("tune_space") / "space.toml"
    p.write_text(SPACE)
    return p


@pytest.fixture(scope="module")
def pool_run(short_rec: Path, space_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tune_pool")
    r = _mmd(
        "tune",
        str(short_rec),
        "--space",
        str(space_file),
        *TUNE_ARGS,
        "--workers",
        "2",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def _trials(out: Path) -> list[dict[str, Any]]:
    return [
        {k: t[k] for k in ("number", "params", "score", "fold_scores")}
        for t in json.loads((out / "results.json").read_text())["trials"]
    ]


def test_local_pool_and_dask_cluster_give_the_same_best_trial(
    pool_run: Path, short_rec: Path, space_file: Path, tmp_path: Path
) -> None:
    cluster = subprocess.Popen(
        [sys.executable, "-c", CLUSTER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert cluster.stdout is not None
        address = cluster.stdout.readline().strip()
        assert address.startswith("tcp://127.0.0.1:"), address
        out = tmp_path / "dask"
        r = _mmd(
            "tune",
            str(short_rec),
            "--space",
            str(space_file),
            *TUNE_ARGS,
            "--scheduler",
            address,
            "--out",
            str(out),
        )
        assert r.returncode == 0, r.stderr[-3000:]
        assert "dask tcp://127.0.0.1" in r.stderr and "(2 workers)" in r.stderr
    finally:
        assert cluster.stdin is not None
        cluster.stdin.close()
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait()
        if cluster.stdout is not None:
            cluster.stdout.close()
    pool, dask = _trials(pool_run), _trials(out)
    assert len(pool) == 6
    # not vacuous: some trials traded (a score above the no-fill penalty) and scores differ
    assert any(t["score"] > NO_FILL_SCORE for t in pool)
    assert len({t["score"] for t in pool}) > 1
    assert pool == dask  # every trial: the same params and scores, in the same order
    best_pool = json.loads((pool_run / "oos.json").read_text())["best"]
    best_dask = json.loads((out / "oos.json").read_text())["best"]
    for key in ("number", "params", "train_score", "oos_score"):
        assert best_pool[key] == best_dask[key], key
    assert (pool_run / "best.toml").read_text() == (out / "best.toml").read_text()


def test_best_toml_reproduces_the_out_of_sample_score(
    pool_run: Path, short_rec: Path, tmp_path: Path
) -> None:
    oos = json.loads((pool_run / "oos.json").read_text())
    ((start, end),) = oos["test_windows"]  # one recording: one out-of-sample window
    best = oos["best"]
    assert best["oos_score"] is not None
    for name in ("results.csv", "history.png", "importance.png", "oos.png"):
        assert (pool_run / name).stat().st_size > 0, name
    r = _mmd(
        "backtest",
        "-c",
        str(pool_run / "best.toml"),
        str(short_rec),
        "--start-ns",
        str(start),
        "--end-ns",
        str(end),
        "--report",
        str(tmp_path / "rep"),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["window_ns"] == [start, end]
    assert summary["config"]["strategy"]["gamma"] == best["params"]["strategy.gamma"]
    got = fold_score([summary], oos["objective"], oos["dd_lambda"])
    assert got == best["oos_score"]  # exactly: same config, same frames, same arithmetic
    assert summary["fills"] == best["oos_figures"]["fills"]


def test_bad_space_key_exits_2_naming_it(short_rec: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[space]\n"strategy.gama" = {low = 1e-5, high = 1e-2, log = true}\n')
    r = _mmd("tune", str(short_rec), "--space", str(bad), "--out", str(tmp_path / "o"), timeout=60)
    assert r.returncode == 2, r.stderr
    assert "strategy.gama" in r.stderr and "unknown config key" in r.stderr
    assert "Traceback" not in r.stderr
    # a known key whose bound the config rejects names it too (levels is 1..20)
    bad.write_text('[space]\n"strategy.levels" = {low = 1, high = 50}\n')
    r = _mmd("tune", str(short_rec), "--space", str(bad), "--out", str(tmp_path / "o"), timeout=60)
    assert r.returncode == 2 and "strategy.levels" in r.stderr, r.stderr


def test_walk_forward_cuts_covered_time_by_hand() -> None:
    # two recordings [0, 100) and [200, 260): 160 ns covered; K=2 -> 3 folds cut at
    # 160*1//3 = 53 and 160*2//3 = 106 ns of covered time; purge 5 trims folds 1 and 2.
    s = walk_forward([(200, 260), (0, 100)], 2, purge_ns=5)
    assert s.train == [[(0, 53)], [(58, 100), (200, 206)]]  # offsets 58..106: 42 + 6 ns
    assert s.test == [(211, 260)]  # offsets 111..160 -> 200 + 11 .. 200 + 60
    with pytest.raises(ValueError, match="empty"):
        walk_forward([(0, 10)], 2, purge_ns=5)  # folds of 3 ns cannot lose 5


def test_objective_by_hand() -> None:
    s = {"fills": 4, "pnl": 2.0, "max_drawdown": 0.5, "pnl_to_map": 40.0, "sharpe": float("nan")}
    assert summary_score(s, "pnl_dd", dd_lambda=2.0) == 1.0  # 2 - 2 * 0.5
    assert summary_score(s, "pnl_to_map") == 40.0
    assert summary_score(s, "sharpe") == NO_FILL_SCORE  # NaN (short data) -> the penalty
    assert summary_score({**s, "fills": 0}, "pnl_to_map") == NO_FILL_SCORE
    assert fold_score([s, {**s, "pnl_to_map": 20.0}], "pnl_to_map") == 30.0  # mean
    # a window without fills is left out of the fold's mean; a fold with none scores the penalty
    assert fold_score([s, {**s, "fills": 0}], "pnl_to_map") == 40.0
    assert fold_score([{**s, "fills": 0}], "pnl_to_map") == NO_FILL_SCORE
    assert fold_score([], "pnl_to_map") == NO_FILL_SCORE


ROOT = Path(__file__).resolve().parents[2]


def test_tune_deploy_files_validate() -> None:
    # the Dask variants of deploy/: k8s manifests pass `kubernetes-validate --strict` (as
    # tests/ops/test_k8s.py checks the daemon's), and the compose file with the tune profile
    # passes `docker-compose config -q` (as tests/ops/test_docker.py builds the others)
    import shutil

    manifests = sorted((ROOT / "deploy" / "k8s" / "tune").glob("*.yaml"))
    assert len(manifests) == 3
    kv = shutil.which("kubernetes-validate")
    dc = shutil.which("docker-compose")
    if kv is None and dc is None:
        pytest.skip("neither kubernetes-validate nor docker-compose is installed")
    if kv is not None:
        r = subprocess.run(
            [kv, "--strict", "-k", "1.30.0", *map(str, manifests)],
            capture_output=True,
            text=True,
            check=False,
        )
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert out.count(" passed ") == 5, out  # service + 2 deployments + pvc + job
    if dc is not None:
        compose = ROOT / "deploy" / "docker-compose.yml"
        # the compose file requires Grafana's admin password (no default)
        env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "test-only-pw"}
        r = subprocess.run(
            [dc, "-f", str(compose), "--profile", "tune", "config", "--services"],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert r.returncode == 0, r.stderr
        assert {"tune-scheduler", "tune-worker", "tune"} <= set(r.stdout.split())

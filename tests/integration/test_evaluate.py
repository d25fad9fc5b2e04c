"""`mmd evaluate` end to end as a subprocess: on a short synthetic session with informed flow
and on the first minutes of a real recording. Checks: every strategy has a row for every split
and overall (CSV, JSON, terminal), the plots are written, a row equals a direct `mmd backtest`
of the same window (its summary.json, not evaluate's code), the tuned AS's trials ran only on
training windows, and the Wilcoxon p-value is in [0, 1].

Kept small for the test budget: 2 tuning trials, one inner training split, 2-minute sessions.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
pytest.importorskip("sklearn", reason="scikit-learn (the `train` extra) is not installed")
pytest.importorskip("optuna", reason="optuna (the `train` extra) is not installed")

KEYS = [
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
# tiny deep models (a few seconds each): the rows' plumbing, not the models' worth
DEEP_FAST = [
    "deep.window=8",
    "deep.stride=8",
    "deep.hidden=[8]",
    "deep.head=4",
    "deep.epochs=2",
    "deep.patience=1",
    "deep.horizon_s=2",
]
FAST = [
    "--trials",
    "2",
    "--batch",
    "2",
    "--set",
    "n_splits=1",
    "--set",
    "horizon_s=2",
    *[x for s in DEEP_FAST for x in ("--set", s)],
    "--no-progress",
]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _mmd(*args: str, cwd: Path, timeout: float = 800) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "mmd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _evaluate(
    data: Path, tmp: Path, splits: int
) -> tuple[dict[str, Any], list[dict[str, str]], str]:
    r = _mmd(
        "evaluate",
        str(data),
        "--models",
        str(tmp / "models"),
        "--out",
        str(tmp / "out"),
        "--splits",
        str(splits),
        *FAST,
        cwd=tmp,
    )
    print(r.stdout)
    result = json.loads((tmp / "out" / "evaluation.json").read_text())
    with open(tmp / "out" / "evaluation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return result, rows, r.stdout


def _check_table(
    result: dict[str, Any], rows: list[dict[str, str]], stdout: str, splits: int, tmp: Path
) -> None:
    want = {(k, str(s)) for k in KEYS for s in [*range(1, splits + 1), "all"]}
    assert {(r["strategy"], r["split"]) for r in rows} == want
    assert len(rows) == len(want)
    for label in (
        "AS",
        "GLFT",
        "tuned AS",
        "AS + adverse",
        "AS + adverse + RL",
        "AS + adverse + spread",
        "full stack",
        "AS + LSTM",
        "AS + multitask",
        "deep full stack",
        "AS + hedge",
    ):
        assert f"\n{label} " in "\n" + stdout
    ran = {r["strategy"] for r in rows if r["available"] == "True"}
    assert {"as", "glft", "as_tuned", "full"} <= ran
    # one symbol in the data: the hedge row says why it did not run
    hedge = [r for r in rows if r["strategy"] == "as_hedge"]
    assert all(r["available"] == "False" and "one symbol" in r["note"] for r in hedge)
    if HAS_TORCH:
        assert {"as_lstm", "as_multitask", "full_deep"} <= ran
        for sp in result["splits"]:
            assert {"lstm", "multitask"} <= set(sp["models"]), sp["model_errors"]
            # the deep full stack quoted with the multi-task model: its version in the summary
            variant = Path(sp["models_dir"], "variants")
            assert any((d / "lstm" / "model.json").exists() for d in variant.iterdir())
        # direction figures of both deep models and the baselines, per split and overall
        models = {"lstm", "multitask", "logistic_window", "logistic_last", "majority"}
        got = {(r["model"], str(r["split"])) for r in result["direction"]}
        assert {(m, str(s)) for m in models for s in [*range(1, splits + 1), "all"]} <= got
        for r in result["direction"]:
            assert r["n"] > 0
            for k in ("accuracy", "macro_f1"):
                assert 0.0 <= r[k] <= 1.0
        assert (tmp / "out" / "direction.csv").exists()
        assert "macro-F1" in stdout
    else:
        assert not {"as_lstm", "as_multitask", "full_deep"} & ran
    for png in ("pnl_to_map.png", "markouts.png"):
        assert (tmp / "out" / png).stat().st_size > 1000
    t = result["paired_test"]
    assert t["a"] == "full" and t["b"] == "as_tuned"
    assert t["n"] == splits and 0.0 <= t["p_value"] <= 1.0
    assert "Wilcoxon" in stdout


def _check_tuning_windows(result: dict[str, Any]) -> None:
    """Every trial backtest window lies inside the split's training windows, before its test."""
    for sp in result["splits"]:
        train = [w for fold in sp["train_windows"] for w in fold]
        test_start = min(a for a, _ in sp["test_windows"])
        trial = sp["tune"]["trial_windows"]
        assert trial, sp["tune"]
        assert sp["tune"]["trials"] == 2
        for a, b in trial:
            assert b <= sp["train_end_ns"] < test_start
            assert any(ta <= a and b <= tb for ta, tb in train), (a, b, train)


def _check_against_backtest(
    rec: Path, tmp: Path, row: dict[str, str], window: list[int], extra: list[str]
) -> None:
    """The row's figures equal `mmd backtest` over its window (one window, one symbol)."""
    rep = tmp / f"bt_{row['strategy']}_{row['split']}"
    _mmd(
        "backtest",
        str(rec),
        "--start-ns",
        str(window[0]),
        "--end-ns",
        str(window[1]),
        "--report",
        str(rep),
        "--no-progress",
        *extra,
        cwd=tmp,
    )
    s = json.loads((rep / "summary.json").read_text())
    pairs = {
        "pnl": "pnl",
        "pnl_bps": "pnl_per_notional_bps",
        "max_drawdown": "max_drawdown",
        "mean_abs_position": "mean_abs_position",
        "pnl_to_map": "pnl_to_map",
        "markout_1s": "markout_1s",
        "markout_5s": "markout_5s",
        "markout_30s": "markout_30s",
        "volume_quote": "volume_quote",
        "fees": "fees",
    }
    assert int(row["fills"]) == s["fills"]
    for mine, theirs in pairs.items():
        v = s[theirs]
        if v is None or v != v:  # n/a
            assert row[mine] == ""
        else:
            assert float(row[mine]) == pytest.approx(v, rel=1e-12, abs=1e-12), mine


@pytest.fixture(scope="module")
def synth_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 simulated seconds with 30 % informed flow (seed 7)."""
    tmp = tmp_path_factory.mktemp("eval_synth")
    _mmd(
        "synth",
        "--duration",
        "150",
        "--seed",
        "7",
        "--out",
        str(tmp / "synth"),
        "--set",
        "feed.synthetic.regimes.informed_share=0.3",
        cwd=tmp,
    )
    (rec,) = sorted((tmp / "synth").glob("*.rec.gz"))
    return rec


def test_train_all_writes_every_model_with_one_summary(synth_rec: Path, tmp_path: Path) -> None:
    r = _mmd(
        "train",
        "all",
        str(synth_rec),
        "--out",
        str(tmp_path / "m"),
        "--no-progress",
        "--set",
        "n_splits=1",
        "--set",
        "horizon_s=2",
        cwd=tmp_path,
    )
    summary = r.stdout[r.stdout.index("summary (") :]
    for name in ("adverse", "spread"):
        version = json.loads((tmp_path / "m" / name / "model.json").read_text())["version"]
        assert f"  {name} " in summary and f"version {version}" in summary
    has_rl = (tmp_path / "m" / "rl").exists()
    assert ("rl       not trained" in summary) != has_rl
    assert f"models written to {tmp_path / 'm'}" in summary


def test_evaluate_on_a_synthetic_session(synth_rec: Path, tmp_path: Path) -> None:
    rec = synth_rec
    result, rows, stdout = _evaluate(rec, tmp_path, splits=2)
    _check_table(result, rows, stdout, splits=2, tmp=tmp_path)
    _check_tuning_windows(result)
    # the models were trained on the training part only: every split has its own directory
    for sp in result["splits"]:
        assert (
            {"adverse", "spread"}
            <= set(sp["models"])
            <= {"adverse", "spread", "rl", "lstm", "multitask"}
        ), sp["model_errors"]
        assert Path(sp["models_dir"], "adverse", "model.json").exists()
        assert sp["detector"]["n"] > 0 and 0.0 <= sp["detector"]["auc"] <= 1.0
    row = next(r for r in rows if r["strategy"] == "as" and r["split"] == "2")
    _check_against_backtest(
        rec, tmp_path, row, result["splits"][1]["test_windows"][0], ["--strategy", "as"]
    )


@pytest.fixture(scope="module")
def short_btc(binance_btc_2023_rec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real BTCUSDT 2023-04-04/05 recording's first 150 s of receive time (header line
    included). That one trades busily from its start (the 2024 one is quiet for its first
    ~3 minutes: no adverse label in a training part that short)."""
    out = tmp_path_factory.mktemp("eval_rec") / "btc_150s.rec.gz"
    first = None
    with gzip.open(binance_btc_2023_rec, "rb") as src, gzip.open(out, "wb") as dst:
        for line in src:
            head = line.split(b" ", 1)[0]
            if head.isdigit():
                ts = int(head)
                first = ts if first is None else first
                if ts - first > 150 * 10**9:
                    break
            dst.write(line)
    return out


def test_evaluate_on_a_real_recording(short_btc: Path, tmp_path: Path) -> None:
    result, rows, stdout = _evaluate(short_btc, tmp_path, splits=1)
    _check_table(result, rows, stdout, splits=1, tmp=tmp_path)
    _check_tuning_windows(result)
    # the tuned AS row is `mmd backtest` with the best trial's parameters
    best = result["splits"][0]["tune"]["best"]
    assert best is not None
    sets = [x for k, v in best["params"].items() for x in ("--set", f"{k}={v}")]
    row = next(r for r in rows if r["strategy"] == "as_tuned" and r["split"] == "1")
    _check_against_backtest(
        short_btc,
        tmp_path,
        row,
        result["splits"][0]["test_windows"][0],
        ["--strategy", "as", *sets],
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nowhere/"], "evaluate: nowhere does not exist"),
        (["{rec}", "--splits", "0"], "--splits must be >= 1"),
        (["{rec}", "--space", "missing.toml"], "--space missing.toml"),
    ],
)
def test_evaluate_errors_are_one_line(
    synth_rec: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    argv = [a.replace("{rec}", str(synth_rec)) for a in args]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "evaluate",
            *argv,
            "--models",
            str(tmp_path / "m"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr

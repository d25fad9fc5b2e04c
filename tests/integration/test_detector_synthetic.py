"""The adverse-selection detector on synthetic sessions whose informed flow is known: trained with
`mmd train adverse` on one session, judged on another seed's session (held out: every setting was
fixed before it was scored), and quoting with it (`mmd backtest --strategy ml`) against plain AS.

The sessions use information events (`[feed.synthetic.regimes] info_*`): the value jumps, and
informed traders trade it into the public mid over the next half minute, on one side, at a
higher rate than the background.

Measured (2026-12-01, 2-core machine shared with other runs: 1 min 52 s wall at load 6, 5 min
at load 7-14; the figures are the same each run, every seed being fixed): training on seed 1
(1200 s, 3,966 trades, adverse base rate 0.546; walk-forward AUC 0.897 +- 0.013, logistic
kept), held out seed 3 (900 s, 17 episodes, 3,185 trades, base rate 0.595): AUC 0.835 +- 0.007
(Hanley-McNeil). A detector told the episode state reaches 0.965 (trades on an episode's side
are adverse 0.968 of the time, against it 0.010, outside episodes 0.072): what is left is the
flow features' lag at an episode's start and after its end. 5 s markout per fill (+ = in our
favour): AS -4.884 +- 0.353 ticks (466 fills), ML -3.725 +- 0.402 (356 fills), a difference of
1.159 +- 0.535 ticks (2.2 standard errors) for the ML quoter.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from procs import base_env

from mmd.feeds.recording import read_recording
from mmd.feeds.synthetic import load_truth, truth_path
from mmd.learn.dataset import LabelParams, adverse_dataset, extract_market
from mmd.learn.model_loader import load_detector

pytestmark = pytest.mark.slow

REC = "synthetic_linear_BTCUSDT_20260101T000000Z.rec.gz"  # the default --start
# background noise 0.3 ticks/sqrt(s) (0.7 ticks over the 5 s label horizon, under its 1 tick
# threshold), 1 order per second per side reaching Exp(1 tick) from the mid; information events
# every 33 s on average after the previous episode's end: 60 ticks that 2 informed orders a
# second, each moving the public mid 1 tick, trade into the mid in about 30 s. The design was
# settled on seeds 1 and 2; seed 3 is held out (never looked at before these settings were fixed).
SESSION = (
    "feed.synthetic.sigma_ticks=0.3",
    "feed.synthetic.trade_rate_hz=1",
    "feed.synthetic.trade_decay_per_tick=1",
    "feed.synthetic.regimes.info_rate_hz=0.03",
    "feed.synthetic.regimes.info_jump_ticks=60",
    "feed.synthetic.regimes.info_order_rate_hz=2",
    "feed.synthetic.regimes.info_impact_ticks=1",
)
TRAIN_SEED, TRAIN_S = 1, 1200
HELD_SEED, HELD_S = 3, 900


def _mmd(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # cwd: a directory without config.toml, so the built-in defaults are the file layer
    return subprocess.run(
        [sys.executable, "-m", "mmd", *args],
        env=base_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


def _synth(out: Path, seed: int, duration: float) -> Path:
    args = ["synth", "--duration", str(duration), "--seed", str(seed), "--out", str(out)]
    for s in SESSION:
        args += ["--set", s]
    r = _mmd(args, out.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    return out / REC


def auc_and_se(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """AUC as the Mann-Whitney statistic (average ranks for ties), Hanley-McNeil standard error."""
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p))
    sp = p[order]
    i = 0
    while i < len(sp):  # average ranks over runs of equal scores
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n1 = int(y.sum())
    n0 = len(y) - n1
    a = (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    return float(a), math.sqrt(var)


def test_auc_by_hand() -> None:
    # 2 positives (scores 0.9, 0.4), 2 negatives (0.5, 0.1): of the 4 pairs, 3 are ordered
    # right (0.9>0.5, 0.9>0.1, 0.4>0.1) -> 0.75; a tie counts one half: (0.5, 0.5) pair -> 0.5
    assert auc_and_se(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1]))[0] == 0.75
    assert auc_and_se(np.array([1, 0]), np.array([0.5, 0.5]))[0] == 0.5


def _markouts_5s(fills_csv: Path) -> np.ndarray:
    with fills_csv.open() as f:
        return np.array(
            [float(r["markout_5s_ticks"]) for r in csv.DictReader(f) if r["markout_5s_ticks"]]
        )


def _episode_side(truth: dict[str, np.ndarray], t_ns: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Told the episode state at each trade: +1 an episode runs and the trade is on its side,
    -1 it runs against the trade, 0 no episode (an open episode runs to the end)."""
    start, end = truth["episode_start_ns"], truth["episode_end_ns"].copy()
    end[end < 0] = np.iinfo(np.int64).max
    k = np.searchsorted(start, t_ns, side="right") - 1
    inside = (k >= 0) & (t_ns < end[np.maximum(k, 0)])
    return np.where(inside, truth["episode_dir"][np.maximum(k, 0)] * side, 0).astype(np.float64)


@pytest.mark.timeout(1200)  # about 2 CPU minutes; the machine may be shared
def test_detector_ranks_held_out_trades_and_widening_cuts_adverse_markouts(
    tmp_path: Path,
) -> None:
    train_rec = _synth(tmp_path / "train", TRAIN_SEED, TRAIN_S)
    held_rec = _synth(tmp_path / "held", HELD_SEED, HELD_S)
    models = tmp_path / "models"
    # the default labels (5 s horizon, 1 tick threshold, quote at the trade's price), features
    # and training settings but the policy's withdraw share. Chosen on the training session:
    # its adverse base rate is 0.55, and with the default 0.05 its own walk-forward splits
    # withdrew 0.3-2.4 % of the test trades (p_withdraw 0.976); 0.3 is about half the base rate
    r = _mmd(
        [
            "train",
            "adverse",
            str(train_rec),
            "--out",
            str(models),
            "--no-progress",
            "--set",
            "withdraw_share=0.3",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    print(r.stdout)

    det = load_detector(models / "adverse")
    ms = extract_market(read_recording(held_rec), "BTCUSDT", "linear")
    ds = adverse_dataset(ms, LabelParams())
    auc, se = auc_and_se(ds.y, det.predict_rows(ds.x))
    truth = load_truth(truth_path(held_rec))
    n_episodes = len(truth["episode_start_ns"])
    print(
        f"held-out: {len(ds)} trades, {n_episodes} episodes, base rate {ds.y.mean():.3f}, "
        f"AUC {auc:.3f} +- {se:.3f}"
    )
    assert len(ds) > 3000 and n_episodes >= 8
    # the acceptance level; trades within an episode are not independent, so the
    # Hanley-McNeil error understates the spread from one session to the next
    assert auc - 2 * se > 0.8
    # the ceiling from the truth: a detector told the episode state. The dataset's rows are the
    # recording's trades in order without the last horizon_s, whose label is unknown
    assert len(ms.trade_side) == len(truth["trade_buy"])
    assert np.array_equal(ms.trade_side > 0, truth["trade_buy"].astype(bool))
    assert np.array_equal(ds.t_ns, ms.trade_ts_ns[: len(ds)])
    told = _episode_side(
        truth, truth["trade_ts_ms"][: len(ds)] * 1_000_000, ms.trade_side[: len(ds)]
    )
    oracle, oracle_se = auc_and_se(ds.y, told)
    print(
        f"told the episode state: AUC {oracle:.3f} +- {oracle_se:.3f}; adverse rate on the "
        f"episode's side {ds.y[told > 0].mean():.3f}, against it {ds.y[told < 0].mean():.3f},"
        f" no episode {ds.y[told == 0].mean():.3f}"
    )
    assert auc < oracle

    marks = {}
    for strategy in ("as", "ml"):
        fills = tmp_path / f"fills_{strategy}.csv"
        report = tmp_path / f"report_{strategy}"
        r = _mmd(
            [
                "backtest",
                str(held_rec),
                "--strategy",
                strategy,
                "--fills",
                str(fills),
                "--report",
                str(report),
                "--no-progress",
            ],
            tmp_path,
            MMD_MODELS__DIR=str(models),
            MMD_MODELS__MISSING="neutral",
        )
        assert r.returncode == 0, r.stderr[-3000:]
        marks[strategy] = _markouts_5s(fills)
        summary = json.loads((report / "summary.json").read_text())
        assert abs(summary["markout_5s"] - marks[strategy].mean()) < 1e-9
        if strategy == "ml":
            assert summary["models"]["adverse"] == det.version
            print(
                f"ML: widened or withdrew a side at {summary['widened_fraction']:.3f} of decisions"
            )
            assert summary["widened_fraction"] > 0.05
    a, m = marks["as"], marks["ml"]
    assert len(a) > 300 and len(m) > 100
    diff = m.mean() - a.mean()
    se_a, se_m = a.std(ddof=1) / math.sqrt(len(a)), m.std(ddof=1) / math.sqrt(len(m))
    se_diff = math.hypot(se_a, se_m)
    print(
        f"5 s markout per fill (ticks, + = in our favour): AS {a.mean():.3f} +- {se_a:.3f} "
        f"({len(a)} fills), ML {m.mean():.3f} +- {se_m:.3f} ({len(m)} fills), difference "
        f"{diff:.3f} +- {se_diff:.3f}"
    )
    # widening on the detector's warnings leaves fills that are less adversely marked out
    assert diff > 2 * se_diff

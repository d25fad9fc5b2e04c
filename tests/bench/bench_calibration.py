"""Calibration benchmarks: IntensityCalibrator.on_mid / on_trade per event, and one refit.

Input: a seeded synthetic flow shaped like the real BTCUSDT recording (one mid every 50 ms
drifting by a random walk, about 25 trades per second at depths floor(Exponential(mean 10))
beyond the touch), long enough to fill the default 600 s window (6000 steps, depths 0..50).
Figures: `ns_per_call` (wall time per call, glue included, median over passes, minus the cost
of the perf_counter_ns pair around it) for `on_mid` and `on_trade`, and `kernel_ns_per_call` for
the bare kernels (`update_mid`/`update_trade`): most of it is numba's dispatch of nine arguments;
`us_per_refit` for one `refit` on the full window (close the open steps, count arrivals, OLS,
sigma); `peer_us_per_fit` for the same counts + OLS in plain Python over the same step depths in
the same process, with `ratio = peer / kernel` (how many times faster the kernels are).
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np

from mmd.config import CalibrationConfig
from mmd.kernels.calibration import (
    compute_intensity_fit,
    update_arrival_counts,
    update_mid,
    update_trade,
)
from mmd.model.codes import BUY, SELL
from mmd.strategy.calibration import IntensityCalibrator

S = 1_000_000_000


def make_flow(seconds: float, seed: int = 11) -> tuple[list[tuple[int, float]], list[tuple]]:
    """(mids, trades): [(ts_ns, mid_ticks)] every 50 ms, [(ts_ns, px_ticks, qty, side)]."""
    rng = np.random.default_rng(seed)
    n_mid = round(seconds * 20)
    t0 = 1_700_000_000 * S
    moves = rng.choice([-1.0, 0.0, 0.0, 1.0], n_mid).cumsum()
    mids = [(t0 + i * 50_000_000, 640_000.5 + m) for i, m in enumerate(moves.tolist())]
    n_tr = rng.poisson(25 * seconds)
    ts = np.sort(rng.integers(t0, t0 + round(seconds * S), n_tr))
    depth = np.floor(rng.exponential(10.0, n_tr)).astype(np.int64)
    buy = rng.random(n_tr) < 0.5
    trades = []
    for t, d, b in zip(ts.tolist(), depth.tolist(), buy.tolist(), strict=True):
        mid = mids[min((t - t0) // 50_000_000, n_mid - 1)][1]
        px = int(mid + 0.5) + d if b else int(mid - 0.5) - d
        trades.append((t, px, 1, BUY if b else SELL))
    return mids, trades


def peer_fit(depths: list[int], top: int, window_s: float) -> tuple[float, float, float]:
    """Plain-Python counts(d) = steps with depth >= d, then OLS of ln(count / window) on d."""
    hist = [0] * (top + 1)
    for d in depths:
        if d >= 0:
            hist[min(d, top)] += 1
    counts = [0] * (top + 1)
    run = 0
    for d in range(top, -1, -1):
        run += hist[d]
        counts[d] = run
    xs = [float(d) for d in range(top + 1) if counts[d] > 0]
    ys = [math.log(counts[d] / window_s) for d in range(top + 1) if counts[d] > 0]
    mx = sum(xs) / len(xs)
    my = sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    return -slope, math.exp(my - slope * mx), sxy * sxy / (sxx * syy)


def time_calls(cal: IntensityCalibrator, mids: list, trades: list) -> tuple[int, int]:
    """ns for all on_mid calls and for all on_trade calls, fed interleaved in time order."""
    mid_ns = trade_ns = 0
    j = 0
    clock = time.perf_counter_ns
    for ts, mid in mids:
        while j < len(trades) and trades[j][0] < ts:
            t, px, qty, side = trades[j]
            t0 = clock()
            cal.on_trade(t, px, qty, side)
            trade_ns += clock() - t0
            j += 1
        t0 = clock()
        cal.on_mid(ts, mid)
        mid_ns += clock() - t0
    return mid_ns, trade_ns


def time_kernels(cal: IntensityCalibrator, mids: list, trades: list) -> tuple[int, int]:
    """Same stream straight into the kernels (no glue): ns for all mids and all trades."""
    arrays = (cal.step_depth, cal.step_trades, cal.step_dmid, cal.state_i, cal.state_f)
    step_ns = cal.step_ns
    clock = time.perf_counter_ns
    mid_ns = trade_ns = 0
    j = 0
    for ts, mid in mids:
        while j < len(trades) and trades[j][0] < ts:
            t, px, _, side = trades[j]
            t0 = clock()
            update_trade(*arrays, t, px, side, step_ns)
            trade_ns += clock() - t0
            j += 1
        t0 = clock()
        update_mid(*arrays, ts, mid, step_ns)
        mid_ns += clock() - t0
    return mid_ns, trade_ns


def clock_overhead_ns(samples: int = 20_000) -> float:
    """Median cost of one `t0 = clock(); clock() - t0` pair, subtracted from per-call figures."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(samples):
        t0 = clock()
        out.append(clock() - t0)
    return float(statistics.median(out))


def run(quick: bool) -> list[dict[str, Any]]:
    """Benchmark rows for run.py."""
    cfg = CalibrationConfig()
    seconds = cfg.window_s + 10.0
    mids, trades = make_flow(seconds)
    passes, refits = (2, 50) if quick else (5, 1000)
    # warm the jit (or the numba cache) before timing anything
    IntensityCalibrator(cfg).maybe_refit(S)

    overhead = clock_overhead_ns()
    glue_mid, glue_trade, bare_mid, bare_trade = [], [], [], []
    cal = IntensityCalibrator(cfg)
    for _ in range(passes):
        cal = IntensityCalibrator(cfg)
        m, t = time_calls(cal, mids, trades)
        glue_mid.append(m / len(mids))
        glue_trade.append(t / len(trades))
        bare = IntensityCalibrator(cfg)
        m, t = time_kernels(bare, mids, trades)
        bare_mid.append(m / len(mids))
        bare_trade.append(t / len(trades))

    end = mids[-1][0] + 1
    refit_ns = []
    for _ in range(refits):
        t0 = time.perf_counter_ns()
        cal.refit(end)
        refit_ns.append(time.perf_counter_ns() - t0)
    if cal.last_status != "ok":
        raise RuntimeError(f"benchmark flow did not fit: {cal.last_status}")

    # the fit alone (counts + OLS), kernels vs plain Python over the same step depths
    depths = cal.step_depth.tolist()
    top = cfg.max_depth_ticks
    window_s = cal.window_s_used
    counts = np.empty(top + 1, np.int64)
    fit_ns = []
    for _ in range(refits):
        t0 = time.perf_counter_ns()
        update_arrival_counts(counts, cal.step_depth)
        fit = compute_intensity_fit(counts, window_s, 10**6, 30, 3, 0.5)
        fit_ns.append(time.perf_counter_ns() - t0)
    peer_ns = []
    for _ in range(max(refits // 10, 5)):
        t0 = time.perf_counter_ns()
        peer = peer_fit(depths, top, window_s)
        peer_ns.append(time.perf_counter_ns() - t0)
    if not math.isclose(peer[0], fit[1], rel_tol=1e-9):
        raise RuntimeError(f"peer fit disagrees: kappa {peer[0]} vs {fit[1]}")

    kernel_fit_us = statistics.median(fit_ns) / 1e3
    peer_fit_us = statistics.median(peer_ns) / 1e3
    return [
        {
            "name": "calibration.on_mid",
            "ns_per_call": max(statistics.median(glue_mid) - overhead, 1.0),
            "kernel_ns_per_call": max(statistics.median(bare_mid) - overhead, 1.0),
            "calls": len(mids),
            "passes": passes,
        },
        {
            "name": "calibration.on_trade",
            "ns_per_call": max(statistics.median(glue_trade) - overhead, 1.0),
            "kernel_ns_per_call": max(statistics.median(bare_trade) - overhead, 1.0),
            "calls": len(trades),
            "passes": passes,
            "clock_overhead_ns": max(overhead, 1.0),
        },
        {
            "name": "calibration.refit",
            "us_per_refit": statistics.median(refit_ns) / 1e3,
            "window_steps": cal.n_steps,
            "depths": top + 1,
            "refits": refits,
        },
        {
            "name": "calibration.fit",
            "us_per_fit": kernel_fit_us,
            "peer_us_per_fit": peer_fit_us,
            "ratio": peer_fit_us / kernel_fit_us,
            "window_steps": cal.n_steps,
        },
    ]

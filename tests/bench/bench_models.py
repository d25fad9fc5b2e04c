"""Model inference benchmarks: the adverse detector (logistic, MLP), policy and spread network.

Figures: `ns_per_call`, the median over passes of one call's wall time. Rows without a suffix
call through the run-time classes from Python (mmd.learn.runtime: one numba dispatch per call,
what the daemon pays per book update); `[in_njit]` rows call the same kernels from a jitted
loop (the dispatch cost gone, as in a compiled backtest). The `models.ml_stack` rows are one
decision's model work: market vector, both sides' probabilities, the policy and the spread
network. The `models.full_decision` rows add what the strategy does with them at a book
update: the RL observation and `rl_decide` (greedy, the default 20-action grid and bins) and
the AS quote decision itself (`compute_quote_decision`, one level each side): the whole ML quote
decision per book update, compiled. Weights are random with the shapes `mmd train` writes
(arithmetic cost does not depend on the values).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from mmd.kernels import models as km
from mmd.kernels import rl as krl
from mmd.kernels import strategy as ks
from mmd.kernels.features import N_FEATURES
from mmd.learn.features import ADVERSE_FEATURES, MARKET_FEATURES, orient_vector
from mmd.learn.model_file import ModelMeta
from mmd.learn.runtime import AdverseSelectionDetector, SpreadPredictor


def _arrays(sizes: list[int], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_w = sum(a * b for a, b in itertools.pairwise(sizes))
    return {
        "stats": np.r_[rng.normal(size=sizes[0]), rng.uniform(0.5, 2, sizes[0])],
        "weights": rng.normal(scale=0.1, size=n_w),
        "biases": rng.normal(size=sum(sizes[1:])),
        "sizes": np.array(sizes, np.int64),
    }


def _meta(kind: str, features: tuple[str, ...]) -> ModelMeta:
    return ModelMeta(
        kind=kind,
        format_version=1,
        version="bench",
        features=list(features),
        orient=orient_vector().tolist() if kind != "spread_mlp" else None,
        policy={"p0": 0.5, "k": 4.0, "p_withdraw": 0.9},
    )


def per_call_ns(fn: Callable[[], Any], n: int, passes: int) -> float:
    """Median over passes of ns per call of fn() from Python."""
    fn()
    out = []
    for _ in range(passes):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        out.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(out)


@njit(cache=False)  # run.py loads this file under a private, non-importable module name
def _loop_stack(
    n: int,
    fx: np.ndarray,
    xm: np.ndarray,
    buf_a: np.ndarray,
    buf_b: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    orient: np.ndarray,
    adv: tuple,
    spr: tuple,
) -> float:
    acc = 0.0
    for i in range(n):
        km.apply_market_features(xm, fx, 1_700_000_000_000_000_000 + i, 0.0)
        p_buy, p_sell = km.apply_adverse_pair(
            buf_a, buf_b, v, z, xm, orient, adv[0], adv[1], adv[2], adv[3]
        )
        bm, am, _, _ = km.compute_adverse_policy(p_buy, p_sell, 0.5, 4.0, 0.9)
        h = km.apply_spread_model(buf_a, buf_b, z, xm, spr[0], spr[1], spr[2], spr[3])
        acc += bm + am + h
    return acc


@njit(cache=False)
def _loop_decision(
    n: int,
    fx: np.ndarray,
    xm: np.ndarray,
    buf_a: np.ndarray,
    buf_b: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    orient: np.ndarray,
    adv: tuple,
    spr: tuple,
    rl: tuple,
    obs: np.ndarray,
    ml: np.ndarray,
    tgt: np.ndarray,
    dec_f: np.ndarray,
    qpi: np.ndarray,
    qpf: np.ndarray,
    t0: int,
) -> float:
    acc = 0.0
    for i in range(n):
        now = t0 + i * 100_000_000  # a book update every 100 ms: an RL step every 50
        km.apply_market_features(xm, fx, now, 0.0)
        p_buy, p_sell = km.apply_adverse_pair(
            buf_a, buf_b, v, z, xm, orient, adv[0], adv[1], adv[2], adv[3]
        )
        bm, am, _, _ = km.compute_adverse_policy(p_buy, p_sell, 0.5, 4.0, 0.9)
        h = km.apply_spread_model(buf_a, buf_b, z, xm, spr[0], spr[1], spr[2], spr[3])
        ml[ks.ML_BID_MULT] = bm
        ml[ks.ML_ASK_MULT] = am
        pos = i % 7 - 3
        krl.fill_rl_obs(obs, pos, 10, 2.0, 0.5, max(p_buy, p_sell), now, qpi[ks.QPI_SESSION_NS])
        krl.rl_decide(
            rl[0],
            rl[1],
            rl[2],
            rl[3],
            rl[4],
            rl[5],
            rl[6],
            ml,
            obs,
            now,
            0.0,
            600_000.5,
            pos,
            10,
            0.01,
        )
        code = ks.compute_quote_decision(
            tgt, dec_f, qpi, qpf, ml, now, 600_000, 600_001, 20, 20, 2.0, 0.5, 1.0, pos
        )
        if code != ks.OK:  # every decision must quote (the bench times the full path)
            return -1.0
        acc += h + tgt[ks.TG_BID_PX, 0]
    return acc


def run(quick: bool) -> list[dict[str, Any]]:
    n, passes = (2_000, 3) if quick else (50_000, 7)
    rng = np.random.default_rng(1)
    fx = rng.normal(size=N_FEATURES)
    xm = np.zeros(km.N_MARKET)
    km.apply_market_features(xm, fx, 1_700_000_000_000_000_000, 0.0)
    n_in = len(ADVERSE_FEATURES)
    logistic = AdverseSelectionDetector(
        _meta("adverse_logistic", ADVERSE_FEATURES), _arrays([n_in, 1], 2)
    )
    mlp = AdverseSelectionDetector(
        _meta("adverse_mlp", ADVERSE_FEATURES), _arrays([n_in, 128, 64, 32, 1], 3)
    )
    spread_arrays = _arrays([km.N_MARKET, 64, 32, 1], 4)
    spread = SpreadPredictor(_meta("spread_mlp", MARKET_FEATURES), spread_arrays)
    rows: list[dict[str, Any]] = [
        {
            "name": "models.adverse_pair[logistic]",
            "ns_per_call": per_call_ns(lambda: logistic.probabilities(xm), n, passes),
        },
        {
            "name": "models.adverse_pair[mlp]",
            "ns_per_call": per_call_ns(lambda: mlp.probabilities(xm), n // 4, passes),
        },
        {
            "name": "models.adverse_adjust[logistic]",
            "ns_per_call": per_call_ns(lambda: logistic.adjust(xm), n, passes),
        },
        {
            "name": "models.spread",
            "ns_per_call": per_call_ns(lambda: spread.half_spread_ticks(xm), n, passes),
        },
    ]
    width = 128
    bufs = (np.zeros(width), np.zeros(width), np.zeros(n_in), np.zeros(n_in))
    spr = tuple(spread_arrays[k] for k in ("stats", "weights", "biases", "sizes"))
    for label, det_arrays in (
        ("logistic", _arrays([n_in, 1], 2)),
        ("mlp", _arrays([n_in, 128, 64, 32, 1], 3)),
    ):
        adv = tuple(det_arrays[k] for k in ("stats", "weights", "biases", "sizes"))

        def loop(k: int, adv: tuple = adv) -> float:
            return _loop_stack(k, fx, xm, *bufs, orient_vector(), adv, spr)

        loop(1)
        samples = []
        for _ in range(passes):
            t0 = time.perf_counter_ns()
            loop(n)
            samples.append((time.perf_counter_ns() - t0) / n)
        rows.append(
            {
                "name": f"models.ml_stack[{label}][in_njit]",
                "ns_per_call": statistics.median(samples),
            }
        )
        rows.append(_full_decision(label, n, passes, fx, xm, bufs, adv, spr))
    return rows


def decision_arrays() -> tuple[np.ndarray, ...]:
    """The quote decision's inputs for the full-stack benches (here and bench_deep.py): neutral
    model multipliers, one level of one lot, max 10 lots, gamma 0.1 and fallback sigma 2,
    kappa 0.5, A 1; returns (ml, target, dec_f, qpi, qpf)."""
    ml = np.array([1.0, 1.0, 1.0, 0.0, np.nan, 1.0])[: ks.ML_SIZE]
    tgt = np.zeros((4, 1), np.int64)
    dec_f = np.zeros(ks.DF_SIZE)
    qpi = np.zeros(ks.QPI_SIZE, np.int64)
    qpi[ks.QPI_SESSION_NS] = 86_400_000_000_000
    qpi[ks.QPI_ORDER_LOTS] = 1
    qpi[ks.QPI_MAX_LOTS] = 10
    qpi[ks.QPI_LEVELS] = 1
    qpi[ks.QPI_SPACING_TICKS] = 1
    qpf = np.zeros(ks.QPF_SIZE)
    qpf[ks.QPF_GAMMA] = 0.1
    qpf[ks.QPF_FALLBACK_SIGMA] = 2.0
    qpf[ks.QPF_FALLBACK_KAPPA] = 0.5
    qpf[ks.QPF_FALLBACK_A] = 1.0
    return ml, tgt, dec_f, qpi, qpf


def _full_decision(
    label: str,
    n: int,
    passes: int,
    fx: np.ndarray,
    xm: np.ndarray,
    bufs: tuple,
    adv: tuple,
    spr: tuple,
) -> dict[str, Any]:
    rpi, rpf = krl.make_params((5, 3, 1, 3, 3), 5_000_000_000, krl.MODE_GREEDY)
    actions = krl.default_actions()
    n_s = krl.n_states(rpi)
    rng = np.random.default_rng(5)
    q = rng.normal(size=(n_s, len(actions)))
    visits = np.ones((n_s, len(actions)), np.int64)  # every action tried: greedy uses them all
    rl = (q, visits, rpi, rpf, actions, krl.new_agent_state(), krl.new_rng(1))
    obs = np.zeros(krl.OBS_SIZE)
    ml, tgt, dec_f, qpi, qpf = decision_arrays()

    clock = [1_700_000_000_000_000_000]

    def loop(k: int) -> float:  # each pass goes on in time, so RL steps keep coming
        t0 = clock[0]
        clock[0] += k * 100_000_000
        return _loop_decision(
            k, fx, xm, *bufs, orient_vector(), adv, spr, rl, obs, ml, tgt, dec_f, qpi, qpf, t0
        )

    if loop(n) < 0:
        raise RuntimeError("full_decision: a quote decision did not quote")
    samples = []
    for _ in range(passes):
        t0 = time.perf_counter_ns()
        loop(n)
        samples.append((time.perf_counter_ns() - t0) / n)
    return {
        "name": f"models.full_decision[{label}][in_njit]",
        "ns_per_call": statistics.median(samples),
    }

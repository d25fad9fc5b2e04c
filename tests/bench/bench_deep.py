"""Deep order-flow model inference: one LSTM step per book update (2 layers, 64/32 units).

Figures: `ns_per_call`, the median over chunks of calls of one call's wall time, and
`ns_per_call_min`, the fastest chunk (on a shared machine the chunks a busy neighbour did not
interrupt: closer to what the code costs on an idle core). `deep.lstm_step` calls
through mmd.learn.deep_runtime from Python (one numba dispatch per book update, what the
daemon pays); `[in_njit]` rows run the same kernels in a jitted loop (the dispatch gone, as
in a compiled backtest), with and without the direction head. `deep.torch_step` is PyTorch
doing the same incremental step in the same process (batch 1, state carried, inference
mode, one thread), for comparison; it is left out when torch is not installed. The target
for the kernel step is <= 5 us. Weights are random with the shapes `mmd train lstm` writes
(the cost does not depend on the values).

`deep.quote_decision[multitask][in_njit]` is the whole quote decision per book update with the
deep stack, compiled: the market vector, one LSTM step, the three multi-task heads (P(up),
spread, position, at the current inventory), the skew and spread override the strategy
derives from them (mmd.strategy.engine.deep_inputs) and the AS quote decision itself
(`compute_quote_decision`, one level each side).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from mmd.kernels import lstm as kl
from mmd.kernels import models as km
from mmd.kernels import strategy as ks
from mmd.kernels.features import N_FEATURES
from mmd.learn.deep_data import N_SEQUENCE, SEQUENCE_FEATURES
from mmd.learn.deep_runtime import DeepOrderFlowModel
from mmd.learn.model_file import ModelMeta

# a sibling bench module (run.py loads benches by path; this folder is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import decision_arrays

HIDDEN = (64, 32)
HEAD = 16


def _arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [N_SEQUENCE, *HIDDEN]
    n_w = sum(4 * sizes[i] * (sizes[i - 1] + sizes[i]) for i in range(1, len(sizes)))
    n_b = 4 * sum(HIDDEN)
    return {
        "stats": np.r_[rng.normal(size=N_SEQUENCE), rng.uniform(0.5, 2, N_SEQUENCE)],
        "lstm_sizes": np.array(sizes, np.int64),
        "lstm_weights": rng.normal(scale=0.2, size=n_w).astype(np.float32),
        "lstm_biases": rng.normal(scale=0.2, size=n_b).astype(np.float32),
        "price_weights": rng.normal(scale=0.2, size=HIDDEN[-1] * HEAD + HEAD),
        "price_biases": rng.normal(size=HEAD + 1),
        "price_sizes": np.array([HIDDEN[-1], HEAD, 1], np.int64),
    }


CHUNK = 100


def per_call_ns(fn: Callable[[], Any], n: int) -> dict[str, float]:
    """ns per call of fn() from Python over n calls timed in chunks of CHUNK: the median and
    the fastest chunk."""
    fn()
    out = []
    for _ in range(max(1, n // CHUNK)):
        t0 = time.perf_counter_ns()
        for _ in range(CHUNK):
            fn()
        out.append((time.perf_counter_ns() - t0) / CHUNK)
    return {"ns_per_call": statistics.median(out), "ns_per_call_min": min(out)}


@njit(cache=False)  # run.py loads this file under a private, non-importable module name
def _loop(
    n: int,
    rows: np.ndarray,
    state: np.ndarray,
    gates: np.ndarray,
    xbuf: np.ndarray,
    z: np.ndarray,
    stats: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    sizes: np.ndarray,
    head: tuple,
) -> float:
    acc = 0.0
    bufs = np.zeros(64), np.zeros(64)
    for i in range(n):
        kl.apply_lstm_update(state, gates, xbuf, z, rows[i % rows.shape[0]], stats, w, b, sizes)
        if head[2].shape[0] > 1:
            acc += kl.compute_head(bufs[0], bufs[1], state, sizes, 0.0, head[0], head[1], head[2])
    return acc


def _timed_loop(n: int, *args: Any) -> dict[str, float]:
    _loop(10, *args)
    out = []
    for _ in range(max(1, n // CHUNK)):
        t0 = time.perf_counter_ns()
        _loop(CHUNK, *args)
        out.append((time.perf_counter_ns() - t0) / CHUNK)
    return {"ns_per_call": statistics.median(out), "ns_per_call_min": min(out)}


def _torch_row(rows: np.ndarray, n: int) -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    l1 = torch.nn.LSTM(N_SEQUENCE, HIDDEN[0], batch_first=True)
    l2 = torch.nn.LSTM(HIDDEN[0], HIDDEN[1], batch_first=True)
    head = torch.nn.Sequential(
        torch.nn.Linear(HIDDEN[1], HEAD), torch.nn.ReLU(), torch.nn.Linear(HEAD, 1)
    )
    xs = [torch.from_numpy(r.astype(np.float32)).view(1, 1, -1) for r in rows[:64]]
    st: dict[str, Any] = {"s1": None, "s2": None, "i": 0}

    def step() -> None:
        with torch.inference_mode():
            h1, st["s1"] = l1(xs[st["i"] % len(xs)], st["s1"])
            h2, st["s2"] = l2(h1, st["s2"])
            torch.sigmoid(head(h2[:, -1, :]))
        st["i"] += 1

    return {
        "name": "deep.torch_step",
        **per_call_ns(step, n),
        "threads": 1,
        "hidden_1": HIDDEN[0],
        "hidden_2": HIDDEN[1],
    }


def run(quick: bool) -> list[dict[str, Any]]:
    n = 3_000 if quick else 100_000
    arrays = _arrays(1)
    meta = ModelMeta(
        kind="deep_lstm", format_version=1, version="bench", features=list(SEQUENCE_FEATURES)
    )
    model = DeepOrderFlowModel(meta, arrays)
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(256, N_SEQUENCE)) * 2.0
    it = iter(range(10**12))

    def update() -> None:
        model.update(rows[next(it) % 256])

    out = [
        {
            "name": "deep.lstm_step",
            **per_call_ns(update, n),
            "hidden_1": HIDDEN[0],
            "hidden_2": HIDDEN[1],
            "target_ns": 5000,
        }
    ]
    out.append({"name": "deep.price_head", **per_call_ns(lambda: model.head("price"), n)})
    head = (arrays["price_weights"], arrays["price_biases"], arrays["price_sizes"])
    no_head = (head[0], head[1], np.zeros(1, np.int64))
    args = (
        rows,
        model.state,
        model._gates,
        model._xbuf,
        model._z,
        model.stats,
        model.weights,
        model.biases,
        model.sizes,
    )
    out.append(
        {"name": "deep.lstm_step[in_njit]", **_timed_loop(n, *args, no_head), "target_ns": 5000}
    )
    out.append({"name": "deep.lstm_step_and_head[in_njit]", **_timed_loop(n, *args, head)})
    out.append(_quote_decision(n))
    torch_row = _torch_row(rows, max(n // 10, CHUNK))  # ~100x the kernel's cost per call
    if torch_row is not None:
        out.append(torch_row)
    return out


@njit(cache=False)
def _loop_decision(
    n: int,
    fx: np.ndarray,
    xm: np.ndarray,
    state: np.ndarray,
    gates: np.ndarray,
    xbuf: np.ndarray,
    z: np.ndarray,
    lstm: tuple,
    heads: tuple,
    ml: np.ndarray,
    tgt: np.ndarray,
    dec_f: np.ndarray,
    qpi: np.ndarray,
    qpf: np.ndarray,
    t0: int,
    skew_k: float,
) -> float:
    acc = 0.0
    ba, bb = np.zeros(64), np.zeros(64)
    for i in range(n):
        now = t0 + i * 100_000_000  # a book update every 100 ms
        km.apply_market_features(xm, fx, now, 0.0)
        kl.apply_lstm_update(
            state, gates, xbuf, z, xm[:N_SEQUENCE], lstm[0], lstm[1], lstm[2], lstm[3]
        )
        pos = i % 7 - 3
        q = pos / qpi[ks.QPI_MAX_LOTS]
        p_up = km.compute_sigmoid(
            kl.compute_head(ba, bb, state, lstm[3], q, heads[0], heads[1], heads[2])
        )
        h = np.exp(kl.compute_head(ba, bb, state, lstm[3], q, heads[3], heads[4], heads[5]))
        q_star = np.tanh(kl.compute_head(ba, bb, state, lstm[3], q, heads[6], heads[7], heads[8]))
        ml[ks.ML_SKEW_TICKS] = ((2.0 * p_up - 1.0) + min(max(q_star - q, -1.0), 1.0)) * skew_k
        ml[ks.ML_SPREAD_OVERRIDE_TICKS] = 2.0 * h if h > dec_f[ks.DF_HALF_SPREAD] else np.nan
        code = ks.compute_quote_decision(
            tgt, dec_f, qpi, qpf, ml, now, 600_000, 600_001, 20, 20, 2.0, 0.5, 1.0, pos
        )
        if code != ks.OK:  # every decision must quote (the bench times the full path)
            return -1.0
        acc += tgt[ks.TG_BID_PX, 0]
    return acc


def _quote_decision(n: int) -> dict[str, Any]:
    """One book update's quote decision with the multi-task deep model (see the docstring)."""
    rng = np.random.default_rng(3)
    a = _arrays(1)
    lstm = (a["stats"], a["lstm_weights"], a["lstm_biases"], a["lstm_sizes"])
    heads: tuple = ()
    for _ in ("price", "spread", "position"):  # multi-task heads read the inventory too
        w = rng.normal(scale=0.1, size=(HIDDEN[-1] + 1) * HEAD + HEAD)
        heads += (
            w,
            rng.normal(scale=0.1, size=HEAD + 1),
            np.array([HIDDEN[-1] + 1, HEAD, 1], np.int64),
        )
    state = np.zeros(kl.compute_state_size(a["lstm_sizes"]), np.float32)
    width = max(HIDDEN)
    scratch = (
        np.zeros(4 * width, np.float32),
        np.zeros(width, np.float32),
        np.zeros(N_SEQUENCE, np.float32),
    )
    fx = rng.normal(size=N_FEATURES)
    xm = np.zeros(km.N_MARKET)
    ml, tgt, dec_f, qpi, qpf = decision_arrays()
    clock = [1_700_000_000_000_000_000]

    def loop(k: int) -> float:  # each chunk goes on in time
        t0 = clock[0]
        clock[0] += k * 100_000_000
        return _loop_decision(
            k, fx, xm, state, *scratch, lstm, heads, ml, tgt, dec_f, qpi, qpf, t0, 2.0
        )

    if loop(10) < 0:
        raise RuntimeError("deep quote_decision: a decision did not quote")
    out = []
    for _ in range(max(1, n // CHUNK)):
        t0 = time.perf_counter_ns()
        loop(CHUNK)
        out.append((time.perf_counter_ns() - t0) / CHUNK)
    return {
        "name": "deep.quote_decision[multitask][in_njit]",
        "ns_per_call": statistics.median(out),
        "ns_per_call_min": min(out),
    }

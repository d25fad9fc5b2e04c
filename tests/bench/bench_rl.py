"""Q-learning benchmarks: rl_decide and the Q update inside a jitted loop, and the live path.

Figures: `per_s` (calls per second) and `ns_per_call`, the median over passes. The table has
the default shape ([models] bins 5 x 3 x 3 x 3 x 2 = 270 states, 20 actions).

- `rl.rl_decide[in_njit, learn, every call decides]`: every call is a decision time (the step is
  one nanosecond of the loop's clock): the state bins, the reward, one Q update and an
  epsilon-greedy choice; the worst case a learning episode pays per decision.
- `rl.rl_decide[in_njit, greedy, held]`: calls between decisions (a 5 s step, a call every
  50 ms): what most quote decisions pay.
- `rl.update_q[in_njit]`: one Q-learning step (update_q) on random transitions.
- `rl.agent_decide[python, ...]`: RlAgent.decide from Python, what the daemon pays per quote
  decision: at a decision time the observation kernel and rl_decide (two numba dispatches);
  between decisions (a 5 s step, a call every 50 ms: 99 calls in 100) the held action without
  a dispatch.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from mmd.kernels import rl as krl
from mmd.kernels.features import F_AVG_TRADE_LOTS, F_OFI, N_FEATURES
from mmd.kernels.strategy import ML_SIZE
from mmd.learn.model_file import ModelMeta
from mmd.learn.runtime import RL_OBSERVATIONS, RlPolicy

BINS = (5, 3, 3, 3, 2)


@njit(cache=False)  # run.py loads this file under a private, non-importable module name
def _loop_decide(n: int, q, visits, rpi, rpf, actions, rs, rng, ml, obs, t0: int, dt: int) -> float:
    acc = 0.0
    for i in range(n):
        # a wandering observation, so the states (and Q rows) change
        obs[krl.OBS_INV_FRAC] = ((i * 7) % 21 - 10) / 10.0
        obs[krl.OBS_SIGMA] = 5.0 + (i % 13) * 3.0
        obs[krl.OBS_OFI] = ((i * 5) % 17) - 8.0
        obs[krl.OBS_P_ADVERSE] = (i % 11) / 10.0
        obs[krl.OBS_TIME_FRAC] = (i % 101) / 100.0
        acc += krl.rl_decide(
            q,
            visits,
            rpi,
            rpf,
            actions,
            rs,
            rng,
            ml,
            obs,
            t0 + i * dt,
            0.01 * (i % 37),
            60_000.0 + (i % 9),
            (i % 21) - 10,
            10,
            1e-4,
        )
    return acc


@njit(cache=False)
def _loop_update(n: int, q, visits, states, acts, rewards, nexts) -> float:
    m = len(states)
    for i in range(n):
        j = i % m
        krl.update_q(q, visits, states[j], acts[j], rewards[j], nexts[j], 0.1, 0.9)
    return q[0, 0]


def _timed(fn: Callable[[], Any], n: int, passes: int) -> float:
    """Median over passes of ns per call, fn() making n calls."""
    fn()  # compile / warm
    out = []
    for _ in range(passes):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(out)


def _row(name: str, ns: float) -> dict[str, Any]:
    return {"name": name, "per_s": round(1e9 / ns), "ns_per_call": round(ns, 2)}


def run(quick: bool) -> list[dict[str, Any]]:
    """The rows (see the module docstring)."""
    n = 20_000 if quick else 2_000_000
    passes = 3 if quick else 7
    actions = krl.default_actions()
    t0 = 1_767_225_600_000_000_000
    rows = []
    for label, mode, step_ns, dt in (
        ("learn, every call decides", krl.MODE_LEARN, 1, 1),
        ("greedy, held", krl.MODE_GREEDY, 5_000_000_000, 50_000_000),
    ):
        rpi, rpf = krl.make_params(BINS, step_ns, mode)
        q = np.zeros((krl.n_states(rpi), len(actions)))
        visits = np.ones(q.shape, np.int64)
        rs, rng = krl.new_agent_state(), krl.new_rng(1)
        ml, obs = np.ones(ML_SIZE), np.zeros(krl.OBS_SIZE)

        def call(
            rpi: np.ndarray = rpi,
            rpf: np.ndarray = rpf,
            q: np.ndarray = q,
            visits: np.ndarray = visits,
            rs: np.ndarray = rs,
            rng: np.ndarray = rng,
            ml: np.ndarray = ml,
            obs: np.ndarray = obs,
            dt: int = dt,
        ) -> float:
            rs[:] = krl.new_agent_state()
            return _loop_decide(n, q, visits, rpi, rpf, actions, rs, rng, ml, obs, t0, dt)

        rows.append(_row(f"rl.rl_decide[in_njit, {label}]", _timed(call, n, passes)))
    rng_np = np.random.default_rng(3)
    n_states = krl.n_states(krl.make_params(BINS, 1, krl.MODE_LEARN)[0])
    m = 4096
    states = rng_np.integers(0, n_states, m)
    acts = rng_np.integers(0, len(actions), m)
    nexts = rng_np.integers(0, n_states, m)
    rewards = rng_np.normal(size=m)
    q = np.zeros((n_states, len(actions)))
    visits = np.zeros(q.shape, np.int64)
    rows.append(
        _row(
            "rl.update_q[in_njit]",
            _timed(lambda: _loop_update(n, q, visits, states, acts, rewards, nexts), n, passes),
        )
    )
    # the daemon's path: one RlAgent.decide per quote decision, from Python
    n_py = 2_000 if quick else 200_000
    for label, dt in (
        ("python, every call decides", 5_000_000_000),
        ("python, a call every 50 ms", 50_000_000),
    ):
        rpi, rpf = krl.make_params(BINS, 5_000_000_000, krl.MODE_GREEDY)
        meta = ModelMeta(
            kind="rl_q", format_version=1, version="bench", features=list(RL_OBSERVATIONS)
        )
        shape = (krl.n_states(rpi), len(actions))
        agent = RlPolicy(
            meta, np.zeros(shape), np.ones(shape, np.int64), rpi, rpf, actions
        ).new_agent()
        fx = np.full(N_FEATURES, np.nan)
        fx[F_OFI], fx[F_AVG_TRADE_LOTS] = -12.0, 3.0
        clock = [t0]

        def py_calls(
            agent: Any = agent, fx: np.ndarray = fx, clock: list[int] = clock, dt: int = dt
        ) -> None:
            for _ in range(n_py):
                clock[0] += dt
                agent.decide(clock[0], fx, 3, 10, 18.0, 0.4, 300_000_000_000, 0.5, 60_000.5, 1e-4)

        rows.append(_row(f"rl.agent_decide[{label}]", _timed(py_calls, n_py, passes)))
    return rows

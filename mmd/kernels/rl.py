"""Tabular Q-learning kernels: state bins, epsilon-greedy actions, the Q update and the reward.

The RL layer adjusts the AS/GLFT quotes through the quote decision's ML inputs (slots
ML_GAMMA_MULT and ML_SKEW_TICKS of `mmd.kernels.strategy`): an action is one row of an action
grid (gamma multiplier, skew shift in ticks), held until the next RL decision (every
RPI_STEP_NS of exchange time). Both drivers make the same call at each quote decision,
`rl_decide`, before `compute_quote_decision`: the backtest loop (learning or greedy) and the live
strategy (greedy, or learning online when configured).

Layouts:
    rpi int64[RPI_SIZE], rpf float64[RPF_SIZE]: parameters (slots RPI_*, RPF_*).
    actions float64[n_actions, 2]: (gamma multiplier > 0, skew shift in ticks).
    q float64[n_states, n_actions]; visits int64[n_states, n_actions].
    rs float64[RS_SIZE]: the agent's running state (slots RS_*), from new_agent_state().
    obs float64[OBS_SIZE]: what the state is binned from (slots OBS_*), filled by the caller.
    rng uint64[1]: xorshift64* state (non-zero), so runs are reproducible in and out of numba.

Reward (Spooner et al. 2018, "asymmetrically dampened" PnL): over the last step,
    r = dPnL - damp * max(0, dInventoryPnL) - penalty * |q| / max_lots,
where dPnL is the change of total PnL (quote), dInventoryPnL the part of it that came from
holding inventory through mid moves (position x mid change): the speculative gain is dampened,
its loss is not, and holding inventory costs `penalty` per step at the position limit.
"""

import math

import numpy as np
from numba import njit

from mmd.kernels.strategy import ML_GAMMA_MULT, ML_SKEW_TICKS

RPI_INV_BINS = 0  # bins of position / max position over [-1, 1]
RPI_VOL_BINS = 1  # bins of sigma / RPF_VOL_REF over [0, 2]
RPI_OFI_BINS = 2  # bins of tanh(ofi / RPF_OFI_SCALE) over [-1, 1]
RPI_PADV_BINS = 3  # bins of the adverse-selection probability over [0, 1]
RPI_TIME_BINS = 4  # bins of the session's elapsed fraction over [0, 1]
RPI_STEP_NS = 5  # exchange time between RL decisions
RPI_MODE = 6  # MODE_*
RPI_SIZE = 7

MODE_OFF = 0
MODE_GREEDY = 1
MODE_LEARN = 2

RPF_ALPHA = 0  # learning rate
RPF_DISCOUNT = 1
RPF_EPSILON = 2  # exploration probability (MODE_LEARN only)
RPF_DAMP = 3  # share of a speculative gain taken off the reward
RPF_INV_PENALTY = 4  # quote units per step at |q| = max lots
RPF_VOL_REF = 5  # sigma (ticks / sqrt s) that maps to the middle of the volatility range
RPF_OFI_SCALE = 6
RPF_SIZE = 7

OBS_INV_FRAC = 0  # position / max position
OBS_SIGMA = 1  # ticks / sqrt(s)
OBS_OFI = 2
OBS_P_ADVERSE = 3  # NaN when no detector: the middle bin
OBS_TIME_FRAC = 4
OBS_SIZE = 5

RS_STATE = 0  # state of the last decision (-1 before the first)
RS_ACTION = 1
RS_NEXT_NS = 2  # exchange time of the next decision
RS_PNL = 3  # total PnL at the last decision
RS_MID = 4  # mid (ticks) at the last decision
RS_POSITION = 5  # position (lots) at the last decision
RS_DECISIONS = 6
RS_REWARD_SUM = 7
RS_SIZE = 8


def new_agent_state() -> np.ndarray:
    """A fresh running state (no decision yet)."""
    rs = np.zeros(RS_SIZE, np.float64)
    rs[RS_STATE] = -1.0
    rs[RS_ACTION] = -1.0
    rs[RS_NEXT_NS] = -1.0
    return rs


def n_states(rpi: np.ndarray) -> int:
    """Rows of the Q table the parameters imply."""
    return int(rpi[RPI_INV_BINS] * rpi[RPI_VOL_BINS] * rpi[RPI_OFI_BINS] * rpi[RPI_PADV_BINS]
               * rpi[RPI_TIME_BINS])


@njit(cache=True, nogil=True)
def _bin(x: float, lo: float, hi: float, n: int) -> int:
    if n <= 1 or math.isnan(x):
        return n // 2
    k = math.floor((x - lo) / (hi - lo) * n)
    if k < 0:
        return 0
    if k >= n:
        return n - 1
    return k


@njit(cache=True, nogil=True)
def compute_rl_state(rpi, rpf, obs) -> int:
    """The state index of an observation (mixed radix over the five bins, inventory slowest)."""
    s = _bin(obs[OBS_INV_FRAC], -1.0, 1.0, rpi[RPI_INV_BINS])
    s = s * rpi[RPI_VOL_BINS] + _bin(obs[OBS_SIGMA] / rpf[RPF_VOL_REF], 0.0, 2.0,
                                     rpi[RPI_VOL_BINS])
    s = s * rpi[RPI_OFI_BINS] + _bin(math.tanh(obs[OBS_OFI] / rpf[RPF_OFI_SCALE]), -1.0, 1.0,
                                     rpi[RPI_OFI_BINS])
    s = s * rpi[RPI_PADV_BINS] + _bin(obs[OBS_P_ADVERSE], 0.0, 1.0, rpi[RPI_PADV_BINS])
    s = s * rpi[RPI_TIME_BINS] + _bin(obs[OBS_TIME_FRAC], 0.0, 1.0, rpi[RPI_TIME_BINS])
    return s


@njit(cache=True, nogil=True)
def next_uniform(rng) -> float:
    """A uniform draw in [0, 1) from the xorshift64* state rng (uint64[1], non-zero)."""
    x = rng[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[0] = x
    y = x * np.uint64(2685821657736338717)
    return float(y >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def greedy_action(q, s: int) -> int:
    """The best action of state s (the lowest index among ties)."""
    best = 0
    for a in range(1, q.shape[1]):
        if q[s, a] > q[s, best]:
            best = a
    return best


@njit(cache=True, nogil=True)
def select_action(q, s: int, epsilon: float, rng) -> int:
    """Epsilon-greedy: a uniformly random action with probability epsilon, else greedy."""
    if epsilon > 0.0 and next_uniform(rng) < epsilon:
        return min(int(next_uniform(rng) * q.shape[1]), q.shape[1] - 1)
    return greedy_action(q, s)


@njit(cache=True, nogil=True)
def update_q(q, visits, s: int, a: int, reward: float, s_next: int, alpha: float,
             discount: float) -> None:
    """One Q-learning step: Q(s,a) += alpha (r + discount max_a' Q(s',a') - Q(s,a))."""
    target = reward + discount * q[s_next, greedy_action(q, s_next)]
    q[s, a] += alpha * (target - q[s, a])
    visits[s, a] += 1


@njit(cache=True, nogil=True)
def compute_reward(d_pnl: float, d_inventory_pnl: float, position_lots: float, max_lots: float,
                   damp: float, penalty: float) -> float:
    """The dampened-PnL reward of one step (see the module docstring)."""
    r = d_pnl - damp * max(0.0, d_inventory_pnl)
    if max_lots > 0:
        r -= penalty * abs(position_lots) / max_lots
    return r


@njit(cache=True, nogil=True)
def rl_decide(q, visits, rpi, rpf, actions, rs, rng, ml, obs, now_ns: int, pnl_quote: float,
              mid_ticks: float, position_lots: int, max_lots: int, qty_per_tick_lot: float) -> int:
    """The RL call of one quote decision: at a decision time, learn from the last step (MODE_LEARN),
    pick the next action (epsilon-greedy when learning, greedy otherwise), and write its gamma
    multiplier and skew into ml. Between decisions ml keeps the held action.

    qty_per_tick_lot: quote value of one tick on one lot (the inventory-PnL scale).
    Returns the action in force (-1 when MODE_OFF).
    """
    mode = rpi[RPI_MODE]
    if mode == MODE_OFF:
        return -1
    if rs[RS_NEXT_NS] >= 0 and now_ns < rs[RS_NEXT_NS]:
        return int(rs[RS_ACTION])
    s = compute_rl_state(rpi, rpf, obs)
    prev = int(rs[RS_STATE])
    if mode == MODE_LEARN and prev >= 0:
        d_pnl = pnl_quote - rs[RS_PNL]
        d_inv = rs[RS_POSITION] * (mid_ticks - rs[RS_MID]) * qty_per_tick_lot
        r = compute_reward(d_pnl, d_inv, rs[RS_POSITION], max_lots, rpf[RPF_DAMP],
                           rpf[RPF_INV_PENALTY])
        update_q(q, visits, prev, int(rs[RS_ACTION]), r, s, rpf[RPF_ALPHA], rpf[RPF_DISCOUNT])
        rs[RS_REWARD_SUM] += r
    eps = rpf[RPF_EPSILON] if mode == MODE_LEARN else 0.0
    a = select_action(q, s, eps, rng)
    rs[RS_STATE] = s
    rs[RS_ACTION] = a
    rs[RS_PNL] = pnl_quote
    rs[RS_MID] = mid_ticks
    rs[RS_POSITION] = position_lots
    rs[RS_DECISIONS] += 1
    step = rpi[RPI_STEP_NS]
    rs[RS_NEXT_NS] = now_ns + step if rs[RS_NEXT_NS] < 0 else rs[RS_NEXT_NS] + step * (
        1 + (now_ns - rs[RS_NEXT_NS]) // step)
    ml[ML_GAMMA_MULT] = actions[a, 0]
    ml[ML_SKEW_TICKS] = actions[a, 1]
    return a


def default_actions() -> np.ndarray:
    """Alpha-AS's grid: 4 risk-aversion multipliers x 5 skews (ticks)."""
    rows = [(g, k) for g in (0.25, 0.5, 1.0, 2.0) for k in (-2.0, -1.0, 0.0, 1.0, 2.0)]
    return np.array(rows, np.float64)

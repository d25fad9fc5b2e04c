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
    rs float64[RS_SIZE]: the agent's running state (slots RS_*), from new_agent_state(); times
        in it are float64, exact to about 0.5 us at today's epoch.
    obs float64[OBS_SIZE]: what the state is binned from (slots OBS_*), filled by the caller.
    rng uint64[1]: xorshift64* state (non-zero), so runs are reproducible in and out of numba.

Reward (Spooner et al. 2018, "asymmetrically dampened" PnL), in ticks x lots (quote amounts
divided by the value of one tick on one lot, so it reads the same on every instrument):
    r = dPnL - damp * max(0, dInventoryPnL) - penalty * q^2 / max_lots,
where q is the position held over the step (at its start), dPnL the change of total PnL over
the step (spread capture, fees and inventory moves), dInventoryPnL = q x (mid - mid_prev) the
part of it that came from holding inventory through the mid's move: a speculative gain is
dampened (the agent is not paid for luck on direction), a speculative loss is not; q^2 /
max_lots is a running inventory cost of `penalty` ticks per lot at the position limit,
quadratic so small positions cost little.
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.kernels.features import F_AVG_TRADE_LOTS, F_OFI
from mmd.kernels.strategy import ML_GAMMA_MULT, ML_SKEW_TICKS

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]

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
RPF_INV_PENALTY = 4  # ticks per lot per step at |q| = max lots (quadratic in q)
RPF_VOL_REF = 5  # sigma (ticks / sqrt s) that maps to the middle of the volatility range
RPF_OFI_SCALE = 6  # OFI (in average trade sizes) that maps to tanh = 0.76
RPF_SIZE = 7

OBS_INV_FRAC = 0  # position / max position
OBS_SIGMA = 1  # the calibrated sigma, ticks / sqrt(s)
OBS_OFI = 2  # order-flow imbalance in average trade sizes
OBS_P_ADVERSE = 3  # NaN when no detector: the middle bin
OBS_TIME_FRAC = 4
OBS_SIZE = 5

RS_STATE = 0  # state of the last decision (-1 before the first)
RS_ACTION = 1
RS_NEXT_NS = 2  # time of the next decision (now_ns clock)
RS_PNL = 3  # total PnL at the last decision
RS_MID = 4  # mid (ticks) at the last decision
RS_POSITION = 5  # position (lots) at the last decision
RS_DECISIONS = 6
RS_REWARD_SUM = 7
RS_SIZE = 8


def new_agent_state() -> F64:
    """A fresh running state (no decision yet)."""
    rs = np.zeros(RS_SIZE, np.float64)
    rs[RS_STATE] = -1.0
    rs[RS_ACTION] = -1.0
    rs[RS_NEXT_NS] = -1.0
    return rs


def n_states(rpi: I64) -> int:
    """Rows of the Q table the parameters imply."""
    return int(
        rpi[RPI_INV_BINS]
        * rpi[RPI_VOL_BINS]
        * rpi[RPI_OFI_BINS]
        * rpi[RPI_PADV_BINS]
        * rpi[RPI_TIME_BINS]
    )


@njit(cache=True, nogil=True)
def _bin(x: float, lo: float, hi: float, n: int) -> int:
    # n equal bins over [lo, hi]; outside values go to the end bins, NaN to the middle one
    if n <= 1 or math.isnan(x):
        return n // 2
    if x <= lo:
        return 0
    if x >= hi:
        return n - 1
    return min(int((x - lo) / (hi - lo) * n), n - 1)


@njit(cache=True, nogil=True)
def compute_rl_state(rpi: I64, rpf: F64, obs: F64) -> int:
    """The state index of an observation: mixed radix over the five bins, inventory slowest.

    Bins: position fraction over [-1, 1], sigma / RPF_VOL_REF over [0, 2], tanh(OFI /
    RPF_OFI_SCALE) over [-1, 1], P(adverse) over [0, 1], the session's elapsed fraction over
    [0, 1]; each range is cut into RPI_*_BINS equal bins, values outside it go to the end bins
    and NaN to the middle bin (n // 2). Returns an index in [0, n_states(rpi)).
    """
    s = _bin(obs[OBS_INV_FRAC], -1.0, 1.0, rpi[RPI_INV_BINS])
    s = s * rpi[RPI_VOL_BINS] + _bin(obs[OBS_SIGMA] / rpf[RPF_VOL_REF], 0.0, 2.0, rpi[RPI_VOL_BINS])
    s = s * rpi[RPI_OFI_BINS] + _bin(
        math.tanh(obs[OBS_OFI] / rpf[RPF_OFI_SCALE]), -1.0, 1.0, rpi[RPI_OFI_BINS]
    )
    s = s * rpi[RPI_PADV_BINS] + _bin(obs[OBS_P_ADVERSE], 0.0, 1.0, rpi[RPI_PADV_BINS])
    s = s * rpi[RPI_TIME_BINS] + _bin(obs[OBS_TIME_FRAC], 0.0, 1.0, rpi[RPI_TIME_BINS])
    return int(s)


@njit(cache=True, nogil=True)
def fill_rl_obs(
    obs: F64,
    position_lots: int,
    max_lots: int,
    sigma_ticks: float,
    ofi_trades: float,
    p_adverse: float,
    now_ns: int,
    session_ns: int,
) -> None:
    """The observation of one quote decision, the same in both drivers.

    sigma_ticks: the calibrated volatility the quote uses (ticks / sqrt s; NaN before a fit).
    ofi_trades: order-flow imbalance in average trade sizes (compute_ofi_trades; NaN when
    unknown). p_adverse: the detector's larger side probability, NaN without a detector. The
    time is the elapsed fraction of the AS session (session_ns, aligned to the epoch as the
    quoter's horizon). NaN inputs fall in the middle bin.

    Mutates: obs (float64[OBS_SIZE]).
    """
    obs[OBS_INV_FRAC] = position_lots / max_lots if max_lots > 0 else 0.0
    obs[OBS_SIGMA] = sigma_ticks
    obs[OBS_OFI] = ofi_trades
    obs[OBS_P_ADVERSE] = p_adverse
    obs[OBS_TIME_FRAC] = (now_ns % session_ns) / session_ns if session_ns > 0 else math.nan


@njit(cache=True, nogil=True)
def compute_ofi_trades(fx: F64) -> float:
    """The FeatureEngine's OFI (lots) in EW mean trade sizes; NaN before the first trade."""
    avg = fx[F_AVG_TRADE_LOTS]
    return fx[F_OFI] / avg if avg > 0 else math.nan


@njit(cache=True, nogil=True)
def next_uniform(rng: U64) -> float:
    """A uniform draw in [0, 1) from the xorshift64* state rng (uint64[1], non-zero)."""
    x = rng[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[0] = x
    y = x * np.uint64(2685821657736338717)
    return float(y >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def greedy_action(q: F64, s: int) -> int:
    """The best action of state s (the lowest index among ties)."""
    best = 0
    for a in range(1, q.shape[1]):
        if q[s, a] > q[s, best]:
            best = a
    return best


@njit(cache=True, nogil=True)
def greedy_visited_action(q: F64, visits: I64, s: int) -> int:
    """The best action of state s among those tried in training; action 0 (the neutral one of
    default_actions) when none was: the greedy policy never acts on a value it never learnt."""
    best = -1
    for a in range(q.shape[1]):
        if visits[s, a] > 0 and (best < 0 or q[s, a] > q[s, best]):
            best = a
    return 0 if best < 0 else best


@njit(cache=True, nogil=True)
def select_action(q: F64, s: int, epsilon: float, rng: U64) -> int:
    """Epsilon-greedy: a uniformly random action with probability epsilon, else greedy."""
    if epsilon > 0.0 and next_uniform(rng) < epsilon:
        return int(min(int(next_uniform(rng) * q.shape[1]), q.shape[1] - 1))
    return greedy_action(q, s)


@njit(cache=True, nogil=True)
def update_q(
    q: F64, visits: I64, s: int, a: int, reward: float, s_next: int, alpha: float, discount: float
) -> None:
    """One Q-learning step: Q(s,a) += alpha (r + discount max_a' Q(s',a') - Q(s,a))."""
    target = reward + discount * q[s_next, greedy_action(q, s_next)]
    q[s, a] += alpha * (target - q[s, a])
    visits[s, a] += 1


@njit(cache=True, nogil=True)
def compute_reward(
    d_pnl: float,
    d_inventory_pnl: float,
    position_lots: float,
    max_lots: float,
    damp: float,
    penalty: float,
) -> float:
    """The dampened-PnL reward of one step (see the module docstring).

    d_pnl, d_inventory_pnl: ticks x lots; position_lots: held over the step; penalty: ticks
    per lot at |position| = max_lots (none when max_lots <= 0). Returns ticks x lots.
    """
    r = d_pnl - damp * max(0.0, d_inventory_pnl)
    if max_lots > 0:
        r -= penalty * position_lots * position_lots / max_lots
    return r


@njit(cache=True, nogil=True)
def rl_decide(
    q: F64,
    visits: I64,
    rpi: I64,
    rpf: F64,
    actions: F64,
    rs: F64,
    rng: U64,
    ml: F64,
    obs: F64,
    now_ns: int,
    pnl_quote: float,
    mid_ticks: float,
    position_lots: int,
    max_lots: int,
    qty_per_tick_lot: float,
) -> int:
    """The RL call of one quote decision.

    At a decision time (the first call, then every RPI_STEP_NS of now_ns): reward the last
    step's action (summed in RS_REWARD_SUM; skipped when not finite) and, in MODE_LEARN,
    update its Q value; then pick the next action (epsilon-greedy in MODE_LEARN; in
    MODE_GREEDY the best action tried in training, greedy_visited_action). Every call writes
    the action in force (gamma multiplier, skew) into ml, so a caller that rebuilds ml per
    decision still quotes with the held action.

    Args:
        obs: float64[OBS_SIZE] (fill_rl_obs). now_ns: the decision's time (the now the quote
        decision gets; the replay drivers use the frame's receive time). pnl_quote: the symbol's
        total PnL (quote). mid_ticks: the mid. position_lots, max_lots: position and limit.
        qty_per_tick_lot: quote value of one tick on one lot (the reward's unit).

    Mutates: q, visits (MODE_LEARN), rs, rng (exploration draws), ml (slots ML_GAMMA_MULT,
    ML_SKEW_TICKS). Returns the action in force (-1 when MODE_OFF: ml untouched).
    """
    mode = rpi[RPI_MODE]
    if mode == MODE_OFF:
        return -1
    if rs[RS_NEXT_NS] >= 0 and now_ns < rs[RS_NEXT_NS]:
        a = int(rs[RS_ACTION])
        ml[ML_GAMMA_MULT] = actions[a, 0]
        ml[ML_SKEW_TICKS] = actions[a, 1]
        return a
    s = compute_rl_state(rpi, rpf, obs)
    prev = int(rs[RS_STATE])
    if prev >= 0:
        unit = qty_per_tick_lot if qty_per_tick_lot > 0 else 1.0
        d_pnl = (pnl_quote - rs[RS_PNL]) / unit
        d_inv = rs[RS_POSITION] * (mid_ticks - rs[RS_MID])
        r = compute_reward(
            d_pnl, d_inv, rs[RS_POSITION], max_lots, rpf[RPF_DAMP], rpf[RPF_INV_PENALTY]
        )
        if math.isfinite(r):
            rs[RS_REWARD_SUM] += r
            if mode == MODE_LEARN:
                update_q(
                    q, visits, prev, int(rs[RS_ACTION]), r, s, rpf[RPF_ALPHA], rpf[RPF_DISCOUNT]
                )
    if mode == MODE_LEARN:
        a = select_action(q, s, rpf[RPF_EPSILON], rng)
    else:
        a = greedy_visited_action(q, visits, s)
    rs[RS_STATE] = s
    rs[RS_ACTION] = a
    rs[RS_PNL] = pnl_quote
    rs[RS_MID] = mid_ticks
    rs[RS_POSITION] = position_lots
    rs[RS_DECISIONS] += 1
    step = rpi[RPI_STEP_NS]
    # the next grid point strictly after now (a late call does not shift the grid)
    rs[RS_NEXT_NS] = (
        now_ns + step
        if rs[RS_NEXT_NS] < 0
        else rs[RS_NEXT_NS] + step * (1 + (now_ns - rs[RS_NEXT_NS]) // step)
    )
    ml[ML_GAMMA_MULT] = actions[a, 0]
    ml[ML_SKEW_TICKS] = actions[a, 1]
    return a


def default_actions() -> F64:
    """Alpha-AS's grid: 4 risk-aversion multipliers x 5 skews (ticks), the neutral action
    (1, 0) first, so a state with nothing learnt quotes the plain model."""
    rows = [(1.0, 0.0)] + [
        (g, k)
        for g in (0.25, 0.5, 1.0, 2.0)
        for k in (-2.0, -1.0, 0.0, 1.0, 2.0)
        if (g, k) != (1.0, 0.0)
    ]
    return np.array(rows, np.float64)


def make_params(
    bins: tuple[int, int, int, int, int],
    step_ns: int,
    mode: int,
    *,
    alpha: float = 0.1,
    discount: float = 0.9,
    epsilon: float = 0.1,
    damp: float = 0.5,
    penalty: float = 1.0,
    vol_ref: float = 20.0,
    ofi_scale: float = 5.0,
) -> tuple[I64, F64]:
    """(rpi, rpf) from plain values; bins = (inventory, volatility, ofi, adverse, time)."""
    rpi = np.zeros(RPI_SIZE, np.int64)
    for slot, n in zip(
        (RPI_INV_BINS, RPI_VOL_BINS, RPI_OFI_BINS, RPI_PADV_BINS, RPI_TIME_BINS), bins, strict=True
    ):
        rpi[slot] = int(n)
    rpi[RPI_STEP_NS] = int(step_ns)
    rpi[RPI_MODE] = int(mode)
    rpf = np.zeros(RPF_SIZE, np.float64)
    rpf[RPF_ALPHA], rpf[RPF_DISCOUNT], rpf[RPF_EPSILON] = alpha, discount, epsilon
    rpf[RPF_DAMP], rpf[RPF_INV_PENALTY] = damp, penalty
    rpf[RPF_VOL_REF], rpf[RPF_OFI_SCALE] = vol_ref, ofi_scale
    return rpi, rpf


def new_rng(seed: int) -> U64:
    """An xorshift64* state (uint64[1]) from a seed (0 is mapped to a fixed non-zero value)."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) % (1 << 64)
    return np.array([x or 0x2545F4914F6CDD1D], np.uint64)

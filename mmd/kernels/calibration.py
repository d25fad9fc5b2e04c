"""Calibration kernels: per-step trade arrival depth, the fit of lambda(d) = A exp(-kappa d), sigma.

Owns no state (`mmd.strategy.calibration.IntensityCalibrator` owns the arrays and calls these).
The recipe is the hftbacktest GLFT tutorial's, in event time and in whole ticks: time is cut
into fixed steps of `step_ns` (step id = ts_ns // step_ns); for each step we keep the largest
distance between a trade and the mid at the START of the step (the last mid seen before the
step began, so a trade's own impact on the mid does not shrink its depth), both sides combined:
a buy (taker bought) at px has depth px - mid, a sell mid - px. Depths are stored as
floor(depth) in int64 ticks, so "floor(depth) >= d" is exactly "depth >= d" for every integer
d (a trade at the touch of a one-tick book, depth 0.5, counts for d = 0 only; no half-tick
units). Trade sizes are not used: a step counts once however much traded (the Poisson arrival
count, not Hummingbot's volume weighting, issue #6144).

Window layout (preallocated by the caller, n = window_s / step_s steps, slot = step id % n):
    step_depth: int64[n]  max floor depth of the step, -1 = no trade at or beyond the mid.
    step_trades: int64[n] trades counted in the step.
    step_dmid: float64[n] mid change over the step (end mid - start mid) in ticks; NaN marks a
        step that was not observed (no mid known at its start).
    state_i: int64[STATE_I_SIZE], state_f: float64[STATE_F_SIZE]: the scalars below.
Only completed steps are in the window; the step holding the newest event is "open".
Steps with no event at all are written as quiet (no trade, mid unchanged): the kernels cannot
tell a quiet market from a dead feed, so after a feed outage the owner calls reset_window.
"""

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.model.codes import BUY, ERR_BAD_INPUT, OK, SELL

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# state_i slots
I_STEP = 0  # id of the open step, -1 before the first event
I_CUR_DEPTH = 1  # max floor depth in the open step, -1 = none at or beyond the mid
I_CUR_TRADES = 2  # trades counted in the open step
I_WIN_TRADES = 3  # trades in the window's completed steps (running sum)
# observed steps in the window: those whose start mid was known (so their trades were measured
# and their mid change is known). Steps before the first mid do not count: window seconds =
# I_N_OBS * step_s, which grows from 0 to window_s while the calibrator warms up.
I_N_OBS = 4
STATE_I_SIZE = 5

# state_f slots
F_REF_MID = 0  # mid at the start of the open step (ticks), NaN = unknown
F_LAST_MID = 1  # newest mid (ticks), NaN = none yet
F_SUM_DMID = 2  # sum of the window's known mid changes (ticks)
F_SUM_DMID2 = 3  # sum of their squares (ticks^2)
STATE_F_SIZE = 4

# compute_intensity_fit status codes (OK = 0 from codes.py; failures are negative)
FIT_OK = OK
FIT_TOO_FEW_TRADES = -20
FIT_TOO_FEW_POINTS = -21
FIT_NON_POSITIVE_SLOPE = -22
FIT_POOR_R2 = -23

# floor depths are clamped to this so a garbage price cannot overflow the int64 cast
_DEPTH_CAP = 1 << 40


@njit(cache=True, nogil=True)
def reset_window(
    step_depth: I64, step_trades: I64, step_dmid: F64, state_i: I64, state_f: F64
) -> int:
    """Empty the window and forget every mid: the state a new calibrator starts from.

    Mutates: step_depth (-1), step_trades (0), step_dmid (NaN), state_i, state_f.

    Args:
        step_depth: int64[n] per-step max floor depth in ticks.
        step_trades: int64[n] per-step trade counts.
        step_dmid: float64[n] per-step mid changes in ticks.
        state_i: int64[STATE_I_SIZE] integer scalars (layout in the module docstring).
        state_f: float64[STATE_F_SIZE] float scalars.

    Returns:
        OK, or ERR_BAD_INPUT when the arrays have the wrong lengths (nothing is changed).
    """
    n = step_depth.shape[0]
    if (
        n < 1
        or step_trades.shape[0] != n
        or step_dmid.shape[0] != n
        or state_i.shape[0] != STATE_I_SIZE
        or state_f.shape[0] != STATE_F_SIZE
    ):
        return ERR_BAD_INPUT
    for i in range(n):
        step_depth[i] = -1
        step_trades[i] = 0
        step_dmid[i] = np.nan
    state_i[I_STEP] = -1
    state_i[I_CUR_DEPTH] = -1
    state_i[I_CUR_TRADES] = 0
    state_i[I_WIN_TRADES] = 0
    state_i[I_N_OBS] = 0
    state_f[F_REF_MID] = np.nan
    state_f[F_LAST_MID] = np.nan
    state_f[F_SUM_DMID] = 0.0
    state_f[F_SUM_DMID2] = 0.0
    return OK


@njit(cache=True, nogil=True)
def _write_slot(
    step_depth: I64,
    step_trades: I64,
    step_dmid: F64,
    state_i: I64,
    state_f: F64,
    step: int,
    depth: int,
    trades: int,
    dmid: float,
) -> None:
    # store one completed step over the one n steps older, keeping the running sums in step
    n = step_depth.shape[0]
    i = step % n
    state_i[I_WIN_TRADES] += trades - step_trades[i]
    old = step_dmid[i]
    if old == old:
        state_f[F_SUM_DMID] -= old
        state_f[F_SUM_DMID2] -= old * old
        state_i[I_N_OBS] -= 1
    if dmid == dmid:
        state_f[F_SUM_DMID] += dmid
        state_f[F_SUM_DMID2] += dmid * dmid
        state_i[I_N_OBS] += 1
    step_depth[i] = depth
    step_trades[i] = trades
    step_dmid[i] = dmid
    if i == n - 1:
        # once per lap, re-add the sums from scratch: mids that are not multiples of a
        # half tick would otherwise let add/subtract rounding drift for ever (amortised O(1))
        s1 = 0.0
        s2 = 0.0
        for j in range(n):
            v = step_dmid[j]
            if v == v:
                s1 += v
                s2 += v * v
        state_f[F_SUM_DMID] = s1
        state_f[F_SUM_DMID2] = s2


@njit(cache=True, nogil=True)
def advance_steps(
    step_depth: I64,
    step_trades: I64,
    step_dmid: F64,
    state_i: I64,
    state_f: F64,
    ts_ns: int,
    step_ns: int,
) -> int:
    """Move the open step forward to the step holding ts_ns, completing the steps in between.

    The open step is written to the window with its max depth, its trade count and its mid
    change (last mid - mid at its start); each empty step after it is written with no trades
    and a mid change of 0 (NaN while no mid is known). A gap longer than the window only
    writes the last n steps. The new open step starts from the last mid. A ts_ns in the open
    step or before it (a late event) changes nothing: time never goes back.

    Mutates: step_depth, step_trades, step_dmid, state_i, state_f.

    Args:
        step_depth, step_trades, step_dmid, state_i, state_f: the window (module docstring).
        ts_ns: event time in ns (>= 0).
        step_ns: step length in ns (> 0).

    Returns:
        The number of steps completed (>= 0), or ERR_BAD_INPUT for a negative ts_ns, a
        non-positive step_ns or wrong array lengths (nothing is changed).
    """
    n = step_depth.shape[0]
    if (
        ts_ns < 0
        or step_ns <= 0
        or n < 1
        or step_trades.shape[0] != n
        or step_dmid.shape[0] != n
        or state_i.shape[0] != STATE_I_SIZE
        or state_f.shape[0] != STATE_F_SIZE
    ):
        return ERR_BAD_INPUT
    sid = ts_ns // step_ns
    cur = state_i[I_STEP]
    if cur < 0:
        state_i[I_STEP] = sid
        state_i[I_CUR_DEPTH] = -1
        state_i[I_CUR_TRADES] = 0
        state_f[F_REF_MID] = state_f[F_LAST_MID]
        return 0
    if sid <= cur:
        return 0
    last = state_f[F_LAST_MID]
    _write_slot(
        step_depth,
        step_trades,
        step_dmid,
        state_i,
        state_f,
        cur,
        state_i[I_CUR_DEPTH],
        state_i[I_CUR_TRADES],
        last - state_f[F_REF_MID],  # NaN when either end is unknown
    )
    flat = 0.0 if last == last else np.nan
    first_empty = max(cur + 1, sid - n)
    for s in range(first_empty, sid):
        _write_slot(step_depth, step_trades, step_dmid, state_i, state_f, s, -1, 0, flat)
    state_i[I_STEP] = sid
    state_i[I_CUR_DEPTH] = -1
    state_i[I_CUR_TRADES] = 0
    state_f[F_REF_MID] = last
    return int(sid - cur)


@njit(cache=True, nogil=True)
def update_mid(
    step_depth: I64,
    step_trades: I64,
    step_dmid: F64,
    state_i: I64,
    state_f: F64,
    ts_ns: int,
    mid_ticks: float,
    step_ns: int,
) -> int:
    """Record a new mid: advance to ts_ns's step, then make mid_ticks the newest mid.

    The mid becomes the reference of trades only from the next step on (the reference of a
    step is the mid at its start).

    Mutates: step_depth, step_trades, step_dmid, state_i, state_f.

    Args:
        step_depth, step_trades, step_dmid, state_i, state_f: the window (module docstring).
        ts_ns: time of the book update in ns (>= 0).
        mid_ticks: the mid in ticks (finite, > 0).
        step_ns: step length in ns (> 0).

    Returns:
        OK, or ERR_BAD_INPUT for a non-finite or non-positive mid or a bad ts_ns/step_ns/array
        length (nothing is changed).
    """
    if not (mid_ticks > 0.0 and mid_ticks < np.inf):
        return ERR_BAD_INPUT
    rc = advance_steps(step_depth, step_trades, step_dmid, state_i, state_f, ts_ns, step_ns)
    if rc < 0:
        return rc
    state_f[F_LAST_MID] = mid_ticks
    return OK


@njit(cache=True, nogil=True)
def update_trade(
    step_depth: I64,
    step_trades: I64,
    step_dmid: F64,
    state_i: I64,
    state_f: F64,
    ts_ns: int,
    px_ticks: int,
    side: int,
    step_ns: int,
) -> int:
    """Record a public trade: advance to ts_ns's step, then raise the step's max arrival depth.

    depth = px_ticks - ref_mid for a buy (taker bought), ref_mid - px_ticks for a sell, where
    ref_mid is the mid at the start of the open step; the step keeps max(floor(depth)) clamped
    to >= -1 (a trade on the near side of the mid never counts as an arrival). A trade before
    any reference mid is ignored.

    Mutates: step_depth, step_trades, step_dmid, state_i, state_f.

    Args:
        step_depth, step_trades, step_dmid, state_i, state_f: the window (module docstring).
        ts_ns: trade time in ns (>= 0).
        px_ticks: trade price in ticks.
        side: codes.BUY or codes.SELL (the taker's side).
        step_ns: step length in ns (> 0).

    Returns:
        1 when the trade was counted, 0 when it was ignored (no reference mid yet), or
        ERR_BAD_INPUT for a bad side, ts_ns, step_ns or array length (nothing is changed).
    """
    if side != BUY and side != SELL:
        return ERR_BAD_INPUT
    rc = advance_steps(step_depth, step_trades, step_dmid, state_i, state_f, ts_ns, step_ns)
    if rc < 0:
        return rc
    ref = state_f[F_REF_MID]
    if ref != ref:
        return 0
    depth = float(px_ticks) - ref if side == BUY else ref - float(px_ticks)
    if depth < -1.0:
        depth = -1.0
    elif depth > _DEPTH_CAP:
        depth = float(_DEPTH_CAP)
    d = int(np.floor(depth))
    if d > state_i[I_CUR_DEPTH]:
        state_i[I_CUR_DEPTH] = d
    state_i[I_CUR_TRADES] += 1
    return 1


@njit(cache=True, nogil=True)
def update_arrival_counts(counts: I64, step_depth: I64) -> int:
    """Count, for every integer depth d = 0..D, the window's steps whose max depth is >= d.

    D = len(counts) - 1 (the config's max_depth_ticks); deeper steps count for every d.
    lambda(d) = counts[d] / window seconds is then the arrival rate at distance d.

    Mutates: counts.

    Args:
        counts: int64[D + 1] output, overwritten.
        step_depth: int64[n] per-step max floor depth in ticks (-1 = none).

    Returns:
        counts[0] (steps with an arrival at or beyond the mid), or ERR_BAD_INPUT when counts
        is empty.
    """
    m = counts.shape[0]
    if m < 1:
        return ERR_BAD_INPUT
    for j in range(m):
        counts[j] = 0
    top = m - 1
    for i in range(step_depth.shape[0]):
        d = step_depth[i]
        if d >= 0:
            counts[min(d, top)] += 1
    for j in range(top - 1, -1, -1):
        counts[j] += counts[j + 1]
    return int(counts[0])


@njit(cache=True, nogil=True)
def compute_intensity_fit(
    counts: I64,
    window_s: float,
    n_trades: int,
    min_trades: int,
    min_points: int,
    min_r2: float,
) -> tuple[int, float, float, float, int]:
    """Fit ln lambda(d) = ln A - kappa d by OLS over the depths d with counts[d] > 0. Pure.

    lambda(d) = counts[d] / window_s (per second); x = d in ticks, y = ln lambda(d);
    slope = sum((x - mx)(y - my)) / sum((x - mx)^2), intercept = my - slope mx,
    kappa = -slope (per tick), A = exp(intercept) (per second),
    R^2 = 1 - SS_res / SS_tot (0 when SS_tot = 0).

    Args:
        counts: int64[D + 1] from update_arrival_counts.
        window_s: seconds the counts cover (> 0): completed steps x step length.
        n_trades: trades in the window.
        min_trades: fewer trades than this = FIT_TOO_FEW_TRADES.
        min_points: fewer depths with counts > 0 than this = FIT_TOO_FEW_POINTS (>= 2).
        min_r2: an R^2 below this = FIT_POOR_R2.

    Returns:
        (status, kappa, a, r2, n_points). status is FIT_OK, FIT_TOO_FEW_TRADES,
        FIT_TOO_FEW_POINTS, FIT_NON_POSITIVE_SLOPE (slope >= 0), FIT_POOR_R2 or ERR_BAD_INPUT
        (empty counts, window_s <= 0 or not finite, min_points < 2). kappa, a and r2 are
        those of the regression whenever it ran (also for the last two failures), NaN
        otherwise; n_points is the number of depths used (0 when it did not run).
    """
    m = counts.shape[0]
    if m < 1 or not (window_s > 0.0 and window_s < np.inf) or min_points < 2:
        return ERR_BAD_INPUT, np.nan, np.nan, np.nan, 0
    if n_trades < min_trades:
        return FIT_TOO_FEW_TRADES, np.nan, np.nan, np.nan, 0
    npts = 0
    sx = 0.0
    sy = 0.0
    c_min = -1
    c_max = -1
    for d in range(m):
        c = counts[d]
        if c > 0:
            npts += 1
            sx += d
            sy += np.log(c / window_s)
            if c_min < 0 or c < c_min:
                c_min = c
            c_max = max(c_max, c)
    if npts < min_points:
        return FIT_TOO_FEW_POINTS, np.nan, np.nan, np.nan, npts
    if c_min == c_max:
        # a flat lambda: the slope is exactly 0 (rounding of the mean could fake a sign)
        return FIT_NON_POSITIVE_SLOPE, 0.0, c_max / window_s, 0.0, npts
    mx = sx / npts
    my = sy / npts
    sxx = 0.0
    sxy = 0.0
    syy = 0.0
    for d in range(m):
        c = counts[d]
        if c > 0:
            dx = d - mx
            dy = np.log(c / window_s) - my
            sxx += dx * dx
            sxy += dx * dy
            syy += dy * dy
    slope = sxy / sxx  # sxx > 0: at least two distinct depths
    intercept = my - slope * mx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0.0 else 0.0
    kappa = -slope
    a = np.exp(intercept)
    if slope >= 0.0:
        return FIT_NON_POSITIVE_SLOPE, kappa, a, r2, npts
    if r2 < min_r2:
        return FIT_POOR_R2, kappa, a, r2, npts
    return FIT_OK, kappa, a, r2, npts


@njit(cache=True, nogil=True)
def compute_sigma(state_i: I64, state_f: F64, step_s: float) -> float:
    """Volatility of the mid in ticks per sqrt(second) from the window's step mid changes. Pure.

    sigma = sqrt(var / step_s), var = (S2 - S1^2 / k) / (k - 1) over the k known mid
    changes (S1 their sum, S2 the sum of squares, both kept by the update kernels), so a
    call costs O(1).

    Args:
        state_i: int64[STATE_I_SIZE] window scalars.
        state_f: float64[STATE_F_SIZE] window scalars.
        step_s: step length in seconds (> 0).

    Returns:
        sigma (>= 0), or NaN with fewer than two known mid changes, step_s <= 0 or wrong
        array lengths.
    """
    if state_i.shape[0] != STATE_I_SIZE or state_f.shape[0] != STATE_F_SIZE:
        return np.nan
    k = state_i[I_N_OBS]
    if k < 2 or not step_s > 0.0:
        return np.nan
    s1 = state_f[F_SUM_DMID]
    var = (state_f[F_SUM_DMID2] - s1 * s1 / k) / (k - 1)
    if var < 0.0:
        var = 0.0  # rounding of an all-equal window
    return float(np.sqrt(var / step_s))

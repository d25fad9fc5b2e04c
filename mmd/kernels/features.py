"""Feature kernels: incremental microstructure features over one float64 and one int64 state array.

Owns no state (`mmd.market.features.FeatureEngine` owns the arrays) and never reads a clock:
every time is an int64 ns argument. Everything lives in two preallocated arrays (few arguments
keep numba's per-call dispatch cheap, which dominates the cost of an update):

- `state`, float64[n_float] (`compute_state_sizes`): the published features `x = state[:N_FEATURES]`
  (`F_*`, NaN until defined), then float parameters (`P_*`) and working values (`S_*`), then the
  float windows (mid log returns, mid changes, spreads, Garman-Klass terms) at the offsets
  `istate[Q_*_OFF]`.
- `istate`, int64[n_int]: int parameters and window offsets/capacities (`Q_*`), times in ns,
  ticks, lots, ring cursors (`I_*`), then the VPIN ring. Times live here because float64 cannot
  hold epoch nanoseconds exactly.

Windows are circular buffers with running sums (`_ring_push`); the float ones are re-summed
from the buffer once per `capacity` pushes, so add/subtract rounding cannot build up.

Time: every exponentially weighted (EW) quantity is decayed to the latest event time seen,
book or trade, by `advance_decay`; an event stamped earlier than that is applied at that time
(no decay, no rewind). Decay factor over dt seconds: a = exp(-lambda dt), lambda = ln 2 / half-life.
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.model.codes import BUY, ERR_BAD_INPUT, OK, SELL

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# -- state[:N_FEATURES]: the published features x --------------------------------------------
F_MID_TICKS = 0  # (best bid + best ask) / 2, ticks
F_SPREAD_TICKS = 1  # best ask - best bid, ticks
F_SPREAD_BPS = 2  # spread / mid * 1e4, basis points
F_SPREAD_Z = 3  # z-score of the spread (ticks) against the sampled window, dimensionless
F_IMBALANCE_TOUCH = 4  # (qb - qa) / (qb + qa) at the touch, in [-1, 1]
F_IMBALANCE_K = 5  # the same over the best k levels of each side
F_DEPTH_RATIO = 6  # ln(sum bid qty / sum ask qty) over k levels (natural log)
F_MICROPRICE_TICKS = 7  # touch-size weighted mid (Pb qa + Pa qb) / (qb + qa), ticks
F_QUEUE_PRESSURE = 8  # bid minus ask queue pressure, lots/s
F_QUEUE_PRESSURE_BID = 9  # EW rate of change of the bid touch size at an unchanged price, lots/s
F_QUEUE_PRESSURE_ASK = 10  # the same for the ask, lots/s
F_OFI = 11  # EW-decayed sum of Cont-Kukanov-Stoikov OFI increments, lots
F_CUM_DELTA_LOTS = 12  # aggressor buy minus sell volume since start, lots
F_DELTA_EW_LOTS = 13  # EW-decayed sum of signed trade volume, lots
F_TRADE_RATE_HZ = 14  # EW trade arrival rate, trades/s
F_AVG_TRADE_LOTS = 15  # EW mean trade size, lots
F_RV_TICKS_PER_SQRT_S = 16  # std of sampled mid changes / sqrt(sample period), ticks/sqrt(s)
F_RV_LOG_PER_S = 17  # std of sampled mid log returns / sqrt(sample period), per sqrt(s)
F_GK_LOG_PER_S = 18  # Garman-Klass volatility of 1-minute klines, per sqrt(s)
F_VPIN = 19  # mean |buy - sell| / bucket volume over the last full volume buckets, in [0, 1]
N_FEATURES = 20

# -- state[N_FEATURES:N_FHEAD]: float parameters (set by apply_reset) and working values -------
P_FLOW_LAMBDA = 20  # ln 2 / flow half-life, 1/s
P_QUEUE_LAMBDA = 21  # ln 2 / queue half-life, 1/s
P_SAMPLE_S = 22  # sampling clock period, s
P_KLINE_S = 23  # kline duration, s
S_FLOW_NORM = 24  # integral of the flow decay kernel since the first event, s
S_QUEUE_NORM = 25  # the same with the queue half-life, s
S_QUEUE_BID = 26  # EW-decayed sum of same-price bid touch size changes, lots
S_QUEUE_ASK = 27  # the same for the ask, lots
S_TRADE_COUNT = 28  # EW-decayed trade count
S_TRADE_VOLUME = 29  # EW-decayed trade volume, lots
S_LAST_MID = 30  # mid in force since the last book update, ticks (NaN: no two-sided book)
S_LAST_SPREAD = 31  # spread in force, ticks (NaN: no two-sided book)
S_SAMPLE_MID = 32  # mid at the previous clock sample, ticks (NaN: none, or a gap)
S_VOL_LOG_SUM = 33  # running sum (and, next slot, sum of squares) of the log-return window
S_VOL_TICK_SUM = 35  # ... of the mid-change window (ticks)
S_SPREAD_SUM = 37  # ... of the spread window (ticks)
S_GK_SUM = 39  # ... of the per-candle Garman-Klass variance window
N_FHEAD = 41  # the float windows start here

# -- istate[:N_IHEAD]: int parameters, window layout and int working values ------------------
Q_LEVELS = 0  # k, levels summed for imbalance_k and the depth ratio
Q_SAMPLE_NS = 1  # sampling clock period, ns
Q_VOL_LOG_OFF = 2  # offsets of the windows: log returns, mid changes, spreads, GK (in state)
Q_VOL_TICK_OFF = 3
Q_SPREAD_OFF = 4
Q_GK_OFF = 5
Q_VPIN_OFF = 6  # offset of the VPIN ring (in istate)
Q_VOL_WINDOW = 7  # window capacities: returns (both series), spreads, GK candles, VPIN buckets
Q_SPREAD_WINDOW = 8
Q_GK_WINDOW = 9
Q_VPIN_WINDOW = 10
I_EW_LAST_NS = 11  # time the EW quantities are decayed to, ns (-1: no event yet)
I_NEXT_SAMPLE_NS = 12  # next clock point to sample, ns (-1: clock not started)
I_PREV_VALID = 13  # 1 when the I_PREV_* touch below is a two-sided book
I_PREV_BID_PX = 14  # previous best bid price (ticks) and size (lots), best ask likewise
I_PREV_BID_QTY = 15
I_PREV_ASK_PX = 16
I_PREV_ASK_QTY = 17
I_CUM_DELTA = 18  # aggressor buy minus sell volume, lots
I_VOL_LOG_RING = 19  # ring cursor blocks: head, count, pushes since the last re-sum
I_VOL_TICK_RING = 22
I_SPREAD_RING = 25
I_GK_RING = 28
I_GK_LAST_START_NS = 31  # start of the newest kline taken, ns (-1: none)
I_VPIN_BUCKET_LOTS = 32  # bucket volume, lots (0: still measuring it, auto mode)
I_VPIN_T0_NS = 33  # first trade time in auto mode, ns (-1: no trade yet)
I_VPIN_CALIB_LOTS = 34  # volume of the auto-mode measuring window so far, lots
I_VPIN_BUY = 35  # aggressor buy and sell volume in the open bucket, lots
I_VPIN_SELL = 36
I_VPIN_HEAD = 37  # VPIN ring cursor and the sum of |buy - sell| over the ring, lots
I_VPIN_COUNT = 38
I_VPIN_SUM = 39
N_IHEAD = 40  # the VPIN ring starts here

# VPIN auto mode: bucket volume = volume of the first 60 s of trades / 10
VPIN_AUTO_WINDOW_NS = 60_000_000_000
VPIN_AUTO_DIVISOR = 10

_NAN = np.nan
_LN2 = math.log(2.0)
_GK_C = 2.0 * math.log(2.0) - 1.0  # Garman-Klass (1980) weight of the squared open-close term


# -- pure helpers ------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def compute_imbalance(bid_qty: I64, n_bids: int, ask_qty: I64, n_asks: int, k: int) -> float:
    """Size imbalance of the best k levels: (B - A) / (B + A), B and A the summed sizes. Pure.

    Args:
        bid_qty: int64[capacity] bid sizes in lots, best first.
        n_bids: live bid levels.
        ask_qty: int64[capacity] ask sizes in lots, best first.
        n_asks: live ask levels.
        k: levels per side (k = 1 is the touch); fewer are used when a side has fewer.

    Returns:
        A dimensionless float in [-1, 1] (+1: only bids), or NaN when a side is empty or k < 1.
    """
    if n_bids <= 0 or n_asks <= 0 or k < 1:
        return _NAN
    b = 0
    for i in range(min(k, n_bids)):
        b += bid_qty[i]
    a = 0
    for i in range(min(k, n_asks)):
        a += ask_qty[i]
    if b + a <= 0:
        return _NAN
    return float(b - a) / float(b + a)


@njit(cache=True, nogil=True)
def compute_log_depth_ratio(bid_qty: I64, n_bids: int, ask_qty: I64, n_asks: int, k: int) -> float:
    """Log depth ratio of the best k levels: ln(B / A), B and A the summed sizes in lots. Pure.

    The log makes it symmetric (bid-heavy > 0, ask-heavy < 0); ln(B/A) = 2 atanh(imbalance_k).

    Args:
        bid_qty: int64[capacity] bid sizes in lots, best first.
        n_bids: live bid levels.
        ask_qty: int64[capacity] ask sizes in lots, best first.
        n_asks: live ask levels.
        k: levels per side; fewer are used when a side has fewer.

    Returns:
        A dimensionless float, or NaN when a side is empty, a sum is 0 or k < 1.
    """
    if n_bids <= 0 or n_asks <= 0 or k < 1:
        return _NAN
    b = 0
    for i in range(min(k, n_bids)):
        b += bid_qty[i]
    a = 0
    for i in range(min(k, n_asks)):
        a += ask_qty[i]
    if b <= 0 or a <= 0:
        return _NAN
    return math.log(float(b) / float(a))


@njit(cache=True, nogil=True)
def compute_weighted_mid_ticks(
    bid_px: I64, bid_qty: I64, n_bids: int, ask_px: I64, ask_qty: I64, n_asks: int
) -> float:
    """Touch-size weighted mid ("microprice"): (Pb qa + Pa qb) / (qb + qa), in ticks. Pure.

    The price leans towards the side with less size (the one more likely to be taken first).
    This is the weighted mid, not Stoikov's (2018) martingale micro-price.

    Args:
        bid_px, bid_qty: int64[capacity] bid prices (ticks) and sizes (lots), best first.
        n_bids: live bid levels.
        ask_px, ask_qty: int64[capacity] ask prices (ticks) and sizes (lots), best first.
        n_asks: live ask levels.

    Returns:
        Ticks as float64, between the best bid and the best ask; NaN when a side is empty.
    """
    if n_bids <= 0 or n_asks <= 0:
        return _NAN
    qb = float(bid_qty[0])
    qa = float(ask_qty[0])
    if qb + qa <= 0.0:
        return _NAN
    return (float(bid_px[0]) * qa + float(ask_px[0]) * qb) / (qb + qa)


@njit(cache=True, nogil=True)
def compute_ofi_increment(
    bid_px0: int,
    bid_qty0: int,
    ask_px0: int,
    ask_qty0: int,
    bid_px1: int,
    bid_qty1: int,
    ask_px1: int,
    ask_qty1: int,
) -> int:
    """One order-flow-imbalance increment of Cont, Kukanov and Stoikov (2014), in lots. Pure.

    From the touch before (0) and after (1) an update, with P prices in ticks and q sizes in lots:
    e = 1{Pb1 >= Pb0} qb1 - 1{Pb1 <= Pb0} qb0 - 1{Pa1 <= Pa0} qa1 + 1{Pa1 >= Pa0} qa0.
    Positive = buying pressure (bid size added or ask size removed).

    Args:
        bid_px0, bid_qty0, ask_px0, ask_qty0: previous best bid/ask price (ticks), size (lots).
        bid_px1, bid_qty1, ask_px1, ask_qty1: current best bid/ask price (ticks), size (lots).

    Returns:
        e in lots (int64).
    """
    e = 0
    if bid_px1 >= bid_px0:
        e += bid_qty1
    if bid_px1 <= bid_px0:
        e -= bid_qty0
    if ask_px1 <= ask_px0:
        e -= ask_qty1
    if ask_px1 >= ask_px0:
        e += ask_qty0
    return e


@njit(cache=True, nogil=True)
def compute_gk_variance(open_: float, high: float, low: float, close: float) -> float:
    """Garman-Klass (1980) variance of the log price over one candle. Pure.

    sigma^2 = 0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2, in (log return)^2 per candle; it is >= 0
    whenever O and C lie in [L, H].

    Args:
        open_, high, low, close: candle prices (any one unit, > 0).

    Returns:
        The variance per candle, or NaN when a price is not > 0 or O/C lie outside [L, H].
    """
    if not (low > 0.0 and low <= open_ <= high and low <= close <= high):
        return _NAN
    hl = math.log(high / low)
    co = math.log(close / open_)
    return 0.5 * hl * hl - _GK_C * co * co


@njit(cache=True, nogil=True)
def compute_window_std(total: float, total_sq: float, n: int) -> float:
    """Sample standard deviation (ddof = 1) of a window from its sum and sum of squares. Pure.

    std = sqrt((n S2 - S1^2) / (n (n - 1))); exact for integer or half-integer data whose sums
    fit in 2^53 (so a constant window gives exactly 0), clamped at 0 against rounding.

    Args:
        total: sum of the n values.
        total_sq: sum of their squares.
        n: number of values.

    Returns:
        The std in the values' unit, or NaN when n < 2.
    """
    if n < 2:
        return _NAN
    num = n * total_sq - total * total
    if num <= 0.0:
        return 0.0
    return math.sqrt(num / (float(n) * float(n - 1)))


# -- layout and rings -------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def compute_state_sizes(
    vol_window: int, spread_window: int, gk_window: int, vpin_buckets: int
) -> tuple[int, int]:
    """Lengths of the state arrays for the given window capacities. Pure.

    Args:
        vol_window: sampled returns kept (>= 1).
        spread_window: sampled spreads kept (>= 1).
        gk_window: closed klines kept (>= 1).
        vpin_buckets: full VPIN buckets kept (>= 1).

    Returns:
        (n_float, n_int): float64 `state` length and int64 `istate` length.
    """
    n_float = N_FHEAD + 2 * vol_window + spread_window + gk_window
    return n_float, N_IHEAD + vpin_buckets


# inlined: its callers pass constant slot indices, which numba would otherwise compile into one
# literal-typed specialisation per call site
@njit(cache=True, nogil=True, inline="always")
def _ring_push(
    state: F64, istate: I64, q_off: int, q_cap: int, s_sum: int, i_ring: int, value: float
) -> None:
    # push value into the circular window at state[istate[q_off]:][:istate[q_cap]];
    # state[s_sum], state[s_sum + 1] are its running sum and sum of squares,
    # istate[i_ring .. i_ring + 2] its head, count and pushes since a re-sum
    off = istate[q_off]
    cap = istate[q_cap]
    head = istate[i_ring]
    n = istate[i_ring + 1]
    if n == cap:
        old = state[off + head]
        state[s_sum] -= old
        state[s_sum + 1] -= old * old
    else:
        n += 1
        istate[i_ring + 1] = n
    state[off + head] = value
    state[s_sum] += value
    state[s_sum + 1] += value * value
    istate[i_ring] = head + 1 if head + 1 < cap else 0
    since = istate[i_ring + 2] + 1
    if since >= cap:
        # re-sum from the buffer (amortised O(1)): removes the add/subtract rounding drift
        s1 = 0.0
        s2 = 0.0
        for j in range(off, off + n):
            v = state[j]
            s1 += v
            s2 += v * v
        state[s_sum] = s1
        state[s_sum + 1] = s2
        since = 0
    istate[i_ring + 2] = since


@njit(cache=True, nogil=True)
def _vpin_push(state: F64, istate: I64, imbalance_lots: int) -> None:
    # one full bucket's |buy - sell| (lots) into the VPIN ring; integer sums are exact
    off = istate[Q_VPIN_OFF]
    cap = istate[Q_VPIN_WINDOW]
    head = istate[I_VPIN_HEAD]
    n = istate[I_VPIN_COUNT]
    if n == cap:
        istate[I_VPIN_SUM] -= istate[off + head]
    else:
        n += 1
        istate[I_VPIN_COUNT] = n
    istate[off + head] = imbalance_lots
    istate[I_VPIN_SUM] += imbalance_lots
    istate[I_VPIN_HEAD] = head + 1 if head + 1 < cap else 0
    state[F_VPIN] = float(istate[I_VPIN_SUM]) / (float(n) * float(istate[I_VPIN_BUCKET_LOTS]))


# -- state transitions -------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def apply_reset(
    state: F64,
    istate: I64,
    levels: int,
    sample_ns: int,
    flow_halflife_s: float,
    queue_halflife_s: float,
    kline_s: float,
    vpin_bucket_lots: int,
    vol_window: int,
    spread_window: int,
    gk_window: int,
    vpin_buckets: int,
) -> int:
    """Store the parameters and window layout, and put every feature in its initial state.

    Mutates: state (x NaN, except the empty sums OFI, EW delta and cumulative delta = 0; the
    windows are left as they are, their counts restart at 0), istate.

    Args:
        state: float64[n_float] float state (`compute_state_sizes`).
        istate: int64[n_int] int state.
        levels: k >= 1, levels per side for imbalance_k and the depth ratio.
        sample_ns: sampling clock period in ns (> 0); clock points are multiples of it.
        flow_halflife_s: half-life in s (> 0) of OFI, EW delta, trade rate and trade size.
        queue_halflife_s: half-life in s (> 0) of queue pressure.
        kline_s: kline duration in s (> 0), 60 for 1-minute klines.
        vpin_bucket_lots: VPIN bucket volume in lots; 0 = auto (first 60 s of volume / 10).
        vol_window: sampled returns in the volatility window (>= 1).
        spread_window: sampled spreads in the spread z-score window (>= 1).
        gk_window: closed klines in the Garman-Klass window (>= 1).
        vpin_buckets: full buckets averaged by VPIN (>= 1).

    Returns:
        OK, or ERR_BAD_INPUT when a parameter is out of range or an array length does not match
        `compute_state_sizes` (nothing is changed then).
    """
    if vol_window < 1 or spread_window < 1 or gk_window < 1 or vpin_buckets < 1:
        return ERR_BAD_INPUT
    n_float, n_int = compute_state_sizes(vol_window, spread_window, gk_window, vpin_buckets)
    if state.shape[0] != n_float or istate.shape[0] != n_int:
        return ERR_BAD_INPUT
    if (
        levels < 1
        or sample_ns <= 0
        or not flow_halflife_s > 0.0
        or not queue_halflife_s > 0.0
        or not kline_s > 0.0
        or vpin_bucket_lots < 0
    ):
        return ERR_BAD_INPUT
    state[:N_FHEAD] = 0.0
    state[:N_FEATURES] = _NAN
    state[F_OFI] = 0.0
    state[F_CUM_DELTA_LOTS] = 0.0
    state[F_DELTA_EW_LOTS] = 0.0
    state[P_FLOW_LAMBDA] = _LN2 / flow_halflife_s
    state[P_QUEUE_LAMBDA] = _LN2 / queue_halflife_s
    state[P_SAMPLE_S] = sample_ns * 1e-9
    state[P_KLINE_S] = kline_s
    state[S_LAST_MID] = _NAN
    state[S_LAST_SPREAD] = _NAN
    state[S_SAMPLE_MID] = _NAN
    istate[:N_IHEAD] = 0
    istate[Q_LEVELS] = levels
    istate[Q_SAMPLE_NS] = sample_ns
    istate[Q_VOL_LOG_OFF] = N_FHEAD
    istate[Q_VOL_TICK_OFF] = N_FHEAD + vol_window
    istate[Q_SPREAD_OFF] = N_FHEAD + 2 * vol_window
    istate[Q_GK_OFF] = N_FHEAD + 2 * vol_window + spread_window
    istate[Q_VPIN_OFF] = N_IHEAD
    istate[Q_VOL_WINDOW] = vol_window
    istate[Q_SPREAD_WINDOW] = spread_window
    istate[Q_GK_WINDOW] = gk_window
    istate[Q_VPIN_WINDOW] = vpin_buckets
    istate[I_EW_LAST_NS] = -1
    istate[I_NEXT_SAMPLE_NS] = -1
    istate[I_GK_LAST_START_NS] = -1
    istate[I_VPIN_BUCKET_LOTS] = vpin_bucket_lots
    istate[I_VPIN_T0_NS] = -1
    return OK


@njit(cache=True, nogil=True)
def _refresh_flow(state: F64) -> None:
    # rates = EW-decayed sums / integral of the decay kernel: unbiased from the first event on
    w_f = state[S_FLOW_NORM]
    w_q = state[S_QUEUE_NORM]
    count = state[S_TRADE_COUNT]
    state[F_TRADE_RATE_HZ] = count / w_f if w_f > 0.0 else _NAN
    state[F_AVG_TRADE_LOTS] = state[S_TRADE_VOLUME] / count if count > 0.0 else _NAN
    if w_q > 0.0:
        qb = state[S_QUEUE_BID] / w_q
        qa = state[S_QUEUE_ASK] / w_q
        state[F_QUEUE_PRESSURE_BID] = qb
        state[F_QUEUE_PRESSURE_ASK] = qa
        state[F_QUEUE_PRESSURE] = qb - qa
    else:
        state[F_QUEUE_PRESSURE_BID] = _NAN
        state[F_QUEUE_PRESSURE_ASK] = _NAN
        state[F_QUEUE_PRESSURE] = _NAN


@njit(cache=True, nogil=True)
def advance_decay(state: F64, istate: I64, ts_ns: int) -> None:
    """Decay every EW quantity from the last event time to ts_ns (no-op when ts_ns is not later).

    With a = exp(-lambda dt), dt = (ts_ns - last) / 1e9 s, each EW sum S becomes a S, and each
    normaliser W (the integral of the decay kernel since the first event, seconds) becomes
    a W + (1 - a) / lambda; rates are S / W (for a steady stream of marks m every h seconds
    this tends to m / h, and it is unbiased from the start). The first event only starts the
    clock (W = 0: rates are NaN until time passes).

    Mutates: state (OFI, EW delta, trade rate, average trade size, queue pressures, EW sums and
    normalisers), istate[I_EW_LAST_NS].

    Args:
        state: float64[n_float] float state.
        istate: int64[n_int] int state.
        ts_ns: event time in ns (int64).
    """
    last = istate[I_EW_LAST_NS]
    if last < 0:
        istate[I_EW_LAST_NS] = ts_ns
        return
    if ts_ns <= last:
        return
    dt = (ts_ns - last) * 1e-9
    lam_f = state[P_FLOW_LAMBDA]
    lam_q = state[P_QUEUE_LAMBDA]
    a_f = math.exp(-lam_f * dt)
    a_q = math.exp(-lam_q * dt)
    state[F_OFI] *= a_f
    state[F_DELTA_EW_LOTS] *= a_f
    state[S_TRADE_COUNT] *= a_f
    state[S_TRADE_VOLUME] *= a_f
    state[S_FLOW_NORM] = state[S_FLOW_NORM] * a_f - math.expm1(-lam_f * dt) / lam_f
    state[S_QUEUE_BID] *= a_q
    state[S_QUEUE_ASK] *= a_q
    state[S_QUEUE_NORM] = state[S_QUEUE_NORM] * a_q - math.expm1(-lam_q * dt) / lam_q
    istate[I_EW_LAST_NS] = ts_ns
    _refresh_flow(state)


@njit(cache=True, nogil=True)
def _take_sample(state: F64, istate: I64) -> None:
    # one clock point: the mid and spread in force go into the windows
    mid = state[S_LAST_MID]
    if mid != mid:  # no two-sided book: no sample, and the next return does not bridge the gap
        state[S_SAMPLE_MID] = _NAN
        return
    prev = state[S_SAMPLE_MID]
    if prev == prev:
        r = math.log(mid / prev)
        _ring_push(state, istate, Q_VOL_LOG_OFF, Q_VOL_WINDOW, S_VOL_LOG_SUM, I_VOL_LOG_RING, r)
        d = mid - prev
        _ring_push(state, istate, Q_VOL_TICK_OFF, Q_VOL_WINDOW, S_VOL_TICK_SUM, I_VOL_TICK_RING, d)
    state[S_SAMPLE_MID] = mid
    s = state[S_LAST_SPREAD]
    _ring_push(state, istate, Q_SPREAD_OFF, Q_SPREAD_WINDOW, S_SPREAD_SUM, I_SPREAD_RING, s)


@njit(cache=True, nogil=True)
def advance_clock(state: F64, istate: I64, ts_ns: int) -> int:
    """Take the fixed-clock samples of every clock point strictly before ts_ns.

    Clock points are the multiples of the period T = istate[Q_SAMPLE_NS] from the first one at
    or after the first two-sided book. The sample at point t is the book in force at t: the last
    update stamped <= t (the one before the update now arriving at ts_ns > t). Each sample pushes
    the spread (ticks) into the spread window and, when the previous point was sampled too, the
    mid log return r = ln(m_t / m_{t-T}) and change d = m_t - m_{t-T} (ticks) into the
    volatility windows. A point without a two-sided book is skipped and breaks the return chain.
    After a gap longer than the windows, only enough points to refill them are pushed (the rest
    would repeat the same mid and spread), so the cost is bounded.

    rv_log_per_s = std(r) / sqrt(T_s), rv_ticks_per_sqrt_s = std(d) / sqrt(T_s) (ddof = 1).

    Mutates: state (the two RV features, the windows and their sums), istate.

    Args:
        state: float64[n_float] float state.
        istate: int64[n_int] int state.
        ts_ns: time of the book update now arriving, ns.

    Returns:
        The number of clock points passed (>= 0).
    """
    nxt = istate[I_NEXT_SAMPLE_NS]
    if nxt < 0 or ts_ns <= nxt:
        return 0
    step = istate[Q_SAMPLE_NS]
    m = (ts_ns - 1 - nxt) // step + 1
    cap = max(istate[Q_VOL_WINDOW], istate[Q_SPREAD_WINDOW]) + 1
    for _ in range(min(m, cap)):
        _take_sample(state, istate)
    istate[I_NEXT_SAMPLE_NS] = nxt + m * step
    n = istate[I_VOL_LOG_RING + 1]
    root_t = math.sqrt(state[P_SAMPLE_S])
    state[F_RV_LOG_PER_S] = (
        compute_window_std(state[S_VOL_LOG_SUM], state[S_VOL_LOG_SUM + 1], n) / root_t
    )
    state[F_RV_TICKS_PER_SQRT_S] = (
        compute_window_std(state[S_VOL_TICK_SUM], state[S_VOL_TICK_SUM + 1], n) / root_t
    )
    return int(m)


@njit(cache=True, nogil=True)
def _refresh_spread_z(state: F64, istate: I64) -> None:
    # z of the current spread (ticks) against the sampled spread window
    n = istate[I_SPREAD_RING + 1]
    s = state[S_LAST_SPREAD]
    if n < 2 or s != s:
        state[F_SPREAD_Z] = _NAN
        return
    total = state[S_SPREAD_SUM]
    std = compute_window_std(total, state[S_SPREAD_SUM + 1], n)
    mean = total / n
    if std > 0.0:
        state[F_SPREAD_Z] = (s - mean) / std
    else:
        state[F_SPREAD_Z] = 0.0 if s == mean else _NAN


@njit(cache=True, nogil=True)
def _clear_book_features(state: F64, istate: I64) -> None:
    # no two-sided book: its features are undefined and the OFI/queue chain is cut
    state[F_MID_TICKS] = _NAN
    state[F_SPREAD_TICKS] = _NAN
    state[F_SPREAD_BPS] = _NAN
    state[F_SPREAD_Z] = _NAN
    state[F_IMBALANCE_TOUCH] = _NAN
    state[F_IMBALANCE_K] = _NAN
    state[F_DEPTH_RATIO] = _NAN
    state[F_MICROPRICE_TICKS] = _NAN
    state[S_LAST_MID] = _NAN
    state[S_LAST_SPREAD] = _NAN
    istate[I_PREV_VALID] = 0


@njit(cache=True, nogil=True)
def update_book(
    state: F64,
    istate: I64,
    bid_px: I64,
    bid_qty: I64,
    n_bids: int,
    ask_px: I64,
    ask_qty: I64,
    n_asks: int,
    ts_ns: int,
) -> int:
    """Update every book feature after one book update stamped ts_ns.

    In order: `advance_clock(ts_ns)` (samples with the book before this update), then
    `advance_decay(ts_ns)`, then from the new book (prices P in ticks, sizes q in lots):
    mid, spread (ticks), spread_bps = (Pa - Pb) / mid * 1e4, imbalance at the touch and over
    k levels, ln depth ratio, weighted mid, and against the previous two-sided touch:
    OFI += e (`compute_ofi_increment`, lots) and, per side whose best price is unchanged, the
    queue sum += q1 - q0 (lots; a price change starts a new queue and adds nothing: that move
    is OFI's). queue_pressure_{bid,ask} = EW sum / normaliser (lots/s, half-life from
    `queue_halflife_s`), queue_pressure = bid - ask. spread_z = (spread - mean) / std of the
    sampled spread window (ticks; 0 when the window is constant and equal, NaN when constant and
    different). An empty side makes the book features NaN and breaks the OFI chain.

    Mutates: state, istate.

    Args:
        state: float64[n_float] float state.
        istate: int64[n_int] int state.
        bid_px, bid_qty: int64[capacity] bid prices (ticks) and sizes (lots), best first.
        n_bids: live bid levels.
        ask_px, ask_qty: int64[capacity] ask prices (ticks) and sizes (lots), best first.
        n_asks: live ask levels.
        ts_ns: the update's time in ns.

    Returns:
        The number of clock points passed (>= 0), or ERR_BAD_INPUT when a level count is out of
        range (nothing is changed then).
    """
    if n_bids < 0 or n_asks < 0 or n_bids > bid_px.shape[0] or n_asks > ask_px.shape[0]:
        return ERR_BAD_INPUT
    if bid_qty.shape[0] < n_bids or ask_qty.shape[0] < n_asks:
        return ERR_BAD_INPUT
    passed = advance_clock(state, istate, ts_ns)
    advance_decay(state, istate, ts_ns)
    if n_bids == 0 or n_asks == 0:
        _clear_book_features(state, istate)
        return passed

    pb = bid_px[0]
    qb = bid_qty[0]
    pa = ask_px[0]
    qa = ask_qty[0]
    mid = 0.5 * (float(pb) + float(pa))
    spread = float(pa - pb)
    k = istate[Q_LEVELS]
    state[F_MID_TICKS] = mid
    state[F_SPREAD_TICKS] = spread
    state[F_SPREAD_BPS] = spread / mid * 1e4 if mid > 0.0 else _NAN
    state[F_IMBALANCE_TOUCH] = float(qb - qa) / float(qb + qa) if qb + qa > 0 else _NAN
    state[F_IMBALANCE_K] = compute_imbalance(bid_qty, n_bids, ask_qty, n_asks, k)
    state[F_DEPTH_RATIO] = compute_log_depth_ratio(bid_qty, n_bids, ask_qty, n_asks, k)
    state[F_MICROPRICE_TICKS] = compute_weighted_mid_ticks(
        bid_px, bid_qty, n_bids, ask_px, ask_qty, n_asks
    )

    if istate[I_PREV_VALID] == 1:
        pb0 = istate[I_PREV_BID_PX]
        qb0 = istate[I_PREV_BID_QTY]
        pa0 = istate[I_PREV_ASK_PX]
        qa0 = istate[I_PREV_ASK_QTY]
        state[F_OFI] += compute_ofi_increment(pb0, qb0, pa0, qa0, pb, qb, pa, qa)
        if pb == pb0:
            state[S_QUEUE_BID] += qb - qb0
        if pa == pa0:
            state[S_QUEUE_ASK] += qa - qa0
    istate[I_PREV_VALID] = 1
    istate[I_PREV_BID_PX] = pb
    istate[I_PREV_BID_QTY] = qb
    istate[I_PREV_ASK_PX] = pa
    istate[I_PREV_ASK_QTY] = qa
    _refresh_flow(state)

    state[S_LAST_MID] = mid
    state[S_LAST_SPREAD] = spread
    if istate[I_NEXT_SAMPLE_NS] < 0:
        step = istate[Q_SAMPLE_NS]
        istate[I_NEXT_SAMPLE_NS] = (ts_ns + step - 1) // step * step
    _refresh_spread_z(state, istate)
    return passed


@njit(cache=True, nogil=True)
def apply_book_gap(state: F64, istate: I64, ts_ns: int) -> int:
    """Mark the book as lost at ts_ns (resync, disconnect): no feature bridges the gap.

    Clock points before ts_ns are sampled with the book in force, then the book features become
    NaN, the OFI/queue chain is cut (the next book starts a new reference touch) and the next
    clock sample starts a new return chain. EW sums, windows and trade features are kept.

    Mutates: state, istate.

    Args:
        state: float64[n_float] float state.
        istate: int64[n_int] int state.
        ts_ns: when the book was lost, ns.

    Returns:
        The number of clock points passed (>= 0).
    """
    passed = advance_clock(state, istate, ts_ns)
    _clear_book_features(state, istate)
    state[S_SAMPLE_MID] = _NAN
    return passed


@njit(cache=True, nogil=True)
def update_vpin(state: F64, istate: I64, ts_ns: int, qty_lots: int, side: int) -> int:
    """Fold one trade into the VPIN volume buckets (Easley, Lopez de Prado, O'Hara 2012).

    Buckets hold V lots of volume each (V = istate[I_VPIN_BUCKET_LOTS]). In auto mode (V = 0)
    the trades of the first 60 s after the first trade only measure the volume:
    V = max(1, round(volume / 10)), and bucketing starts with the first trade at or after that.
    The venue gives the aggressor side, so each bucket's buy and sell volume is exact; a trade
    that crosses a bucket boundary is split. vpin = sum |buy - sell| / (n V) over the last n
    full buckets (n = min(full buckets, vpin_buckets)), dimensionless in [0, 1].

    Mutates: state[F_VPIN], istate (VPIN block and ring).

    Args:
        state: float64[n_float] float state.
        istate: int64[n_int] int state.
        ts_ns: trade time in ns.
        qty_lots: trade size in lots (> 0).
        side: aggressor side, BUY or SELL.

    Returns:
        The number of buckets completed by this trade (>= 0), or ERR_BAD_INPUT for a size
        <= 0 or an unknown side (nothing is changed then).
    """
    if qty_lots <= 0 or (side != BUY and side != SELL):
        return ERR_BAD_INPUT
    v = istate[I_VPIN_BUCKET_LOTS]
    if v == 0:
        t0 = istate[I_VPIN_T0_NS]
        if t0 < 0:
            istate[I_VPIN_T0_NS] = ts_ns
            t0 = ts_ns
        if ts_ns < t0 + VPIN_AUTO_WINDOW_NS:
            istate[I_VPIN_CALIB_LOTS] += qty_lots
            return 0
        calib = istate[I_VPIN_CALIB_LOTS]
        v = max(1, (calib + VPIN_AUTO_DIVISOR // 2) // VPIN_AUTO_DIVISOR)
        istate[I_VPIN_BUCKET_LOTS] = v
    q = qty_lots
    done = 0
    while q > 0:
        buy = istate[I_VPIN_BUY]
        sell = istate[I_VPIN_SELL]
        take = min(q, v - buy - sell)
        if side == BUY:
            buy += take
        else:
            sell += take
        q -= take
        if buy + sell == v:
            _vpin_push(state, istate, abs(buy - sell))
            done += 1
            buy = 0
            sell = 0
            # whole buckets of this one-sided trade: each has |buy - sell| = V; past the ring's
            # size, more of them would only push identical entries out
            full = q // v
            if full > 0:
                for _ in range(min(full, istate[Q_VPIN_WINDOW])):
                    _vpin_push(state, istate, v)
                done += full
                q -= full * v
        istate[I_VPIN_BUY] = buy
        istate[I_VPIN_SELL] = sell
    return int(done)


@njit(cache=True, nogil=True)
def update_trade(state: F64, istate: I64, ts_ns: int, qty_lots: int, side: int) -> int:
    """Update every trade feature after one public trade stamped ts_ns.

    `advance_decay(ts_ns)`, then with s = +1 for an aggressor buy, -1 for a sell and q in lots:
    cum_delta += s q (lots, exact); delta_ew += s q (EW-decayed sum, lots); the EW count += 1
    and EW volume += q, so trade_rate_hz = EW count / normaliser (trades/s) and avg_trade_lots
    = EW volume / EW count (lots), all with the flow half-life; then `update_vpin`.

    Mutates: state, istate.

    Args:
        state: float64[n_float] float state.
        istate: int64[n_int] int state.
        ts_ns: trade time in ns.
        qty_lots: trade size in lots (> 0).
        side: aggressor side, BUY or SELL.

    Returns:
        OK, or ERR_BAD_INPUT for a size <= 0 or an unknown side (nothing is changed then).
    """
    if qty_lots <= 0 or (side != BUY and side != SELL):
        return ERR_BAD_INPUT
    advance_decay(state, istate, ts_ns)
    signed = qty_lots if side == BUY else -qty_lots
    istate[I_CUM_DELTA] += signed
    state[F_CUM_DELTA_LOTS] = float(istate[I_CUM_DELTA])
    state[F_DELTA_EW_LOTS] += signed
    state[S_TRADE_COUNT] += 1.0
    state[S_TRADE_VOLUME] += qty_lots
    _refresh_flow(state)
    update_vpin(state, istate, ts_ns, qty_lots, side)
    return OK


@njit(cache=True, nogil=True)
def update_kline(
    state: F64,
    istate: I64,
    start_ns: int,
    open_: float,
    high: float,
    low: float,
    close: float,
) -> int:
    """Take one closed kline into the Garman-Klass window.

    A kline whose start is not later than the newest one taken is a repeat and is ignored.
    gk_log_per_s = sqrt(mean of `compute_gk_variance` over the last n candles / kline_s), with
    n = min(candles taken, gk_window): the std of the log price per sqrt(second).

    Mutates: state (F_GK_LOG_PER_S, the GK window and its sums), istate (GK block).

    Args:
        state: float64[n_float] float state.
        istate: int64[n_int] int state.
        start_ns: candle start in ns.
        open_, high, low, close: candle prices (any one unit, > 0).

    Returns:
        1 when taken, 0 when ignored as a repeat, ERR_BAD_INPUT when the prices are not > 0 or
        O/C lie outside [L, H] (nothing is changed then).
    """
    var = compute_gk_variance(open_, high, low, close)
    if var != var:
        return ERR_BAD_INPUT
    if start_ns <= istate[I_GK_LAST_START_NS]:
        return 0
    istate[I_GK_LAST_START_NS] = start_ns
    _ring_push(state, istate, Q_GK_OFF, Q_GK_WINDOW, S_GK_SUM, I_GK_RING, var)
    n = istate[I_GK_RING + 1]
    mean = state[S_GK_SUM] / n
    state[F_GK_LOG_PER_S] = math.sqrt(max(mean, 0.0) / state[P_KLINE_S])
    return 1

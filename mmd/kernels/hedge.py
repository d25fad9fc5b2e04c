"""Hedge kernels: an online beta of one symbol against a hedge instrument, and the hedge skew.

Owns no state (`mmd.strategy.hedge.PortfolioHedge` owns the arrays) and never reads a clock:
every time is an int64 ns argument (exchange time).

Beta: both mids are sampled on a fixed clock (every `sample_ns` of exchange time, the last mid
in force of each at the clock tick); y = log return of the symbol, x = log return of the hedge
instrument between consecutive samples. The regression y = alpha + beta x + e is fitted by
exponentially weighted least squares: a sample k steps old weighs d^k, d = 0.5^(sample / half-life).
Running sums (decayed by d at every sample):

    W = sum w, Sx = sum w x, Sy = sum w y, Sxx, Sxy, Syy, W2 = sum w^2

    beta = Cxy / Cxx with Cxx = Sxx - Sx^2 / W, Cxy = Sxy - Sx Sy / W, Cyy = Syy - Sy^2 / W
    n_eff = W^2 / W2 (effective sample count; n with equal weights)
    SE(beta)^2 = (Cyy - beta Cxy) / (n_eff - 2) / Cxx

With equal weights this is the textbook OLS standard error sum(e^2) / ((n - 2) sum (x - xbar)^2).

State: `hf` float64[HF_SIZE] (sums and last mids), `hi` int64[HI_SIZE] (clock and counts).
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# -- hf: float state -------------------------------------------------------------------------
HF_DECAY = 0  # weight factor per sample d = 0.5 ** (sample_s / halflife_s), in (0, 1]
HF_LAST_Y = 1  # the symbol's mid in force (NaN: none), quote currency
HF_LAST_X = 2  # the hedge instrument's mid in force (NaN: none)
HF_SAMPLE_Y = 3  # the symbol's mid at the previous clock sample (NaN: none)
HF_SAMPLE_X = 4  # the hedge instrument's mid at the previous clock sample (NaN: none)
HF_W = 5
HF_SX = 6
HF_SY = 7
HF_SXX = 8
HF_SXY = 9
HF_SYY = 10
HF_W2 = 11
HF_SIZE = 12

# -- hi: int state ---------------------------------------------------------------------------
HI_SAMPLE_NS = 0  # clock period, ns
HI_NEXT_NS = 1  # the next clock tick, ns (0: not started)
HI_SAMPLES = 2  # return pairs folded into the sums
HI_SIZE = 3


@njit(cache=True, nogil=True)
def reset_hedge_pair(hf: F64, hi: I64, sample_ns: int, halflife_s: float) -> None:
    """Empty the state; sample every sample_ns, weights halve every halflife_s.

    Mutates: hf, hi.
    """
    hf[:] = 0.0
    hf[HF_DECAY] = 0.5 ** ((sample_ns * 1e-9) / halflife_s)
    hf[HF_LAST_Y] = np.nan
    hf[HF_LAST_X] = np.nan
    hf[HF_SAMPLE_Y] = np.nan
    hf[HF_SAMPLE_X] = np.nan
    hi[HI_SAMPLE_NS] = sample_ns
    hi[HI_NEXT_NS] = 0
    hi[HI_SAMPLES] = 0


@njit(cache=True, nogil=True)
def apply_return_pair(hf: F64, hi: I64, x: float, y: float) -> None:
    """Fold one (hedge return x, symbol return y) pair into the weighted sums.

    Mutates: hf (sums), hi[HI_SAMPLES].
    """
    d = hf[HF_DECAY]
    hf[HF_W] = d * hf[HF_W] + 1.0
    hf[HF_W2] = d * d * hf[HF_W2] + 1.0
    hf[HF_SX] = d * hf[HF_SX] + x
    hf[HF_SY] = d * hf[HF_SY] + y
    hf[HF_SXX] = d * hf[HF_SXX] + x * x
    hf[HF_SXY] = d * hf[HF_SXY] + x * y
    hf[HF_SYY] = d * hf[HF_SYY] + y * y
    hi[HI_SAMPLES] += 1


@njit(cache=True, nogil=True)
def update_hedge_pair(hf: F64, hi: I64, ts_ns: int, mid_y: float, mid_x: float) -> int:
    """A new mid of either instrument at ts_ns (pass the other's mid in force; NaN = none).

    When ts_ns reaches the clock tick, the mids in force before this update are sampled
    (a return pair from the previous sample, when both sides had a mid at both samples), and
    the next tick is the first multiple of the period after ts_ns. Then the new mids replace
    the ones in force (a NaN one removes it: no return spans a one-sided book).
    Mutates: hf, hi. Returns: 1 when a return pair was folded in, else 0.
    """
    period = hi[HI_SAMPLE_NS]
    folded = 0
    if hi[HI_NEXT_NS] == 0:
        hi[HI_NEXT_NS] = (ts_ns // period + 1) * period
    elif ts_ns >= hi[HI_NEXT_NS]:
        y1 = hf[HF_LAST_Y]
        x1 = hf[HF_LAST_X]
        y0 = hf[HF_SAMPLE_Y]
        x0 = hf[HF_SAMPLE_X]
        if y0 > 0.0 and x0 > 0.0 and y1 > 0.0 and x1 > 0.0:  # False for NaN
            apply_return_pair(hf, hi, math.log(x1 / x0), math.log(y1 / y0))
            folded = 1
        hf[HF_SAMPLE_Y] = y1
        hf[HF_SAMPLE_X] = x1
        hi[HI_NEXT_NS] = (ts_ns // period + 1) * period
    hf[HF_LAST_Y] = mid_y
    hf[HF_LAST_X] = mid_x
    return folded


@njit(cache=True, nogil=True)
def compute_hedge_beta(hf: F64, hi: I64, min_samples: int) -> tuple[float, float]:
    """(beta, standard error) of the weighted regression; (NaN, NaN) before min_samples
    (at least 3) pairs, or when the hedge returns have no variance."""
    if hi[HI_SAMPLES] < max(min_samples, 3):
        return np.nan, np.nan
    w = hf[HF_W]
    cxx = hf[HF_SXX] - hf[HF_SX] * hf[HF_SX] / w
    cxy = hf[HF_SXY] - hf[HF_SX] * hf[HF_SY] / w
    cyy = hf[HF_SYY] - hf[HF_SY] * hf[HF_SY] / w
    if not cxx > 0.0:
        return np.nan, np.nan
    beta = cxy / cxx
    n_eff = w * w / hf[HF_W2]
    if not n_eff > 2.0:
        return beta, np.nan
    rss = max(cyy - beta * cxy, 0.0)
    return beta, math.sqrt(rss / (n_eff - 2.0) / cxx)


@njit(cache=True, nogil=True)
def compute_hedge_skew(
    q_hedge_target_lots: float, q_hedge_lots: float, max_lots: float, skew_ticks_per_lot_frac: float
) -> float:
    """Skew of the hedge instrument's quotes, in ticks (+ = quote higher: buy sooner).

    skew = skew_ticks_per_lot_frac * clip((target - position) / max_lots, -1, 1): under-hedged
    (target above the position) quotes higher so the bid fills first, over-hedged quotes lower;
    at a gap of max_lots or more the skew is skew_ticks_per_lot_frac. 0 when an input is not
    finite or max_lots <= 0.
    """
    if not (
        max_lots > 0.0
        and math.isfinite(q_hedge_target_lots)
        and math.isfinite(q_hedge_lots)
        and math.isfinite(skew_ticks_per_lot_frac)
    ):
        return 0.0
    frac = (q_hedge_target_lots - q_hedge_lots) / max_lots
    frac = min(1.0, max(-1.0, frac))
    return skew_ticks_per_lot_frac * frac

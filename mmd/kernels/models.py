"""Model inference kernels: the learned models' forward passes over float64 arrays.

Owns no weights (`mmd.learn.runtime` loads them from model files) and never raises: invalid
input comes back as NaN. The layouts match what `mmd.learn.train` writes:

- inputs: the market feature vector (`M_*` indices, built by `apply_market_features` from the
  FeatureEngine's `x`), then per model its own input vector (the adverse model adds the side);
- standardisation: z = (v - mean) / scale, clipped to [-Z_CLIP, Z_CLIP] (an input far outside
  its training range counts as at the edge of it, not as a huge lever); a missing (non-finite)
  input gives z = 0, i.e. the training mean (the trainers impute the training mean before
  scaling and clip the same way, so both agree);
- a network: `sizes` = [n_in, n_1, ..., n_out=1] (int64); `weights` = each layer's (n_in,
  n_out) matrix flattened row-major (scikit-learn's `coefs_` as they are), layers
  concatenated; `biases` = each layer's biases concatenated. Hidden layers are ReLU; the
  output unit is linear (the caller applies the sigmoid or exp). A logistic regression is
  the network with sizes [n_in, 1].
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.kernels.features import (
    F_AVG_TRADE_LOTS,
    F_CUM_DELTA_LOTS,
    F_DELTA_EW_LOTS,
    F_DEPTH_RATIO,
    F_GK_LOG_PER_S,
    F_IMBALANCE_K,
    F_IMBALANCE_TOUCH,
    F_MICROPRICE_TICKS,
    F_MID_TICKS,
    F_OFI,
    F_QUEUE_PRESSURE,
    F_RV_LOG_PER_S,
    F_RV_TICKS_PER_SQRT_S,
    F_SPREAD_BPS,
    F_SPREAD_TICKS,
    F_SPREAD_Z,
    F_TRADE_RATE_HZ,
    F_VPIN,
)
from mmd.model.codes import NS_PER_DAY

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# -- the market feature vector (mmd.learn.features.MARKET_FEATURES names them, in this order) --
M_IMBALANCE_TOUCH = 0  # [-1, 1], + = more bid size
M_IMBALANCE_K = 1  # [-1, 1] over k levels
M_DEPTH_RATIO = 2  # ln(bid depth / ask depth)
M_MICROPRICE_OFFSET_TICKS = 3  # microprice - mid, ticks
M_QUEUE_PRESSURE = 4  # bid minus ask queue pressure, lots/s
M_OFI = 5  # EW order-flow imbalance, lots
M_CUM_DELTA_LOTS = 6  # buy minus sell aggressor volume since start, lots
M_DELTA_EW_LOTS = 7  # EW signed trade volume, lots
M_TRADE_RATE_HZ = 8  # trades/s
M_AVG_TRADE_LOTS = 9  # lots
M_RV_TICKS = 10  # realized volatility, ticks/sqrt(s)
M_RV_LOG = 11  # realized volatility, log/sqrt(s)
M_GK_LOG = 12  # Garman-Klass volatility, log/sqrt(s)
M_SPREAD_TICKS = 13
M_SPREAD_BPS = 14
M_SPREAD_Z = 15
M_VPIN = 16  # [0, 1]
M_TOD_SIN = 17  # sin(2 pi * UTC second of day / 86400)
M_TOD_COS = 18  # cos of the same
M_INVENTORY = 19  # position in lots (0 in market datasets)
N_MARKET = 20

# buy (+1) / sell (-1) aggressor, as the adverse model's last input
SIDE_INPUT = N_MARKET

# standardised inputs are clipped to +-Z_CLIP (mmd.learn.train clips identically)
Z_CLIP = 5.0


@njit(cache=True)
def apply_market_features(out: F64, fx: F64, ts_ns: int, inventory_lots: float) -> None:
    """The market feature vector from a FeatureEngine `x` at time ts_ns (ns, UTC).

    Mutates: out (float64[>= N_MARKET], first N_MARKET entries). Non-finite features stay
    NaN/inf here; the models treat them as missing.
    """
    out[M_IMBALANCE_TOUCH] = fx[F_IMBALANCE_TOUCH]
    out[M_IMBALANCE_K] = fx[F_IMBALANCE_K]
    out[M_DEPTH_RATIO] = fx[F_DEPTH_RATIO]
    out[M_MICROPRICE_OFFSET_TICKS] = fx[F_MICROPRICE_TICKS] - fx[F_MID_TICKS]
    out[M_QUEUE_PRESSURE] = fx[F_QUEUE_PRESSURE]
    out[M_OFI] = fx[F_OFI]
    out[M_CUM_DELTA_LOTS] = fx[F_CUM_DELTA_LOTS]
    out[M_DELTA_EW_LOTS] = fx[F_DELTA_EW_LOTS]
    out[M_TRADE_RATE_HZ] = fx[F_TRADE_RATE_HZ]
    out[M_AVG_TRADE_LOTS] = fx[F_AVG_TRADE_LOTS]
    out[M_RV_TICKS] = fx[F_RV_TICKS_PER_SQRT_S]
    out[M_RV_LOG] = fx[F_RV_LOG_PER_S]
    out[M_GK_LOG] = fx[F_GK_LOG_PER_S]
    out[M_SPREAD_TICKS] = fx[F_SPREAD_TICKS]
    out[M_SPREAD_BPS] = fx[F_SPREAD_BPS]
    out[M_SPREAD_Z] = fx[F_SPREAD_Z]
    out[M_VPIN] = fx[F_VPIN]
    phase = 2.0 * math.pi * ((ts_ns % NS_PER_DAY) / NS_PER_DAY)
    out[M_TOD_SIN] = math.sin(phase)
    out[M_TOD_COS] = math.cos(phase)
    out[M_INVENTORY] = inventory_lots


@njit(cache=True)
def apply_side_input(out: F64, xm: F64, orient: F64, side: float) -> None:
    """The adverse model's input for an aggressor on `side` (+1 buy, -1 sell).

    Every market feature j with orient[j] = 1 (a signed, bid-minus-ask quantity) is multiplied
    by side, so "+" always means "in the aggressor's direction"; the last input is side.
    Mutates: out (float64[N_MARKET + 1]).
    """
    n = xm.shape[0]
    for j in range(n):
        out[j] = xm[j] * side if orient[j] != 0.0 else xm[j]
    out[n] = side


@njit(cache=True)
def apply_standardise(out: F64, v: F64, mean: F64, scale: F64) -> None:
    """out = clip((v - mean) / scale, -Z_CLIP, Z_CLIP) elementwise; a non-finite v gives 0
    (the training mean).

    Mutates: out.
    """
    for i in range(v.shape[0]):
        x = v[i]
        if math.isfinite(x):
            out[i] = min(max((x - mean[i]) / scale[i], -Z_CLIP), Z_CLIP)
        else:
            out[i] = 0.0


@njit(cache=True)
def compute_sigmoid(s: float) -> float:
    """1 / (1 + exp(-s)), without overflow for large |s|."""
    if s >= 0.0:
        return 1.0 / (1.0 + math.exp(-s))
    e = math.exp(s)
    return e / (1.0 + e)


@njit(cache=True)
def compute_logistic(z: F64, coef: F64, intercept: float) -> float:
    """P(y = 1) of a logistic regression: sigmoid(intercept + coef . z)."""
    s = intercept
    for i in range(z.shape[0]):
        s += coef[i] * z[i]
    return compute_sigmoid(s)


@njit(cache=True)
def apply_mlp(buf_a: F64, buf_b: F64, z: F64, weights: F64, biases: F64, sizes: I64) -> float:
    """The output unit's linear value of a ReLU network (layout in the module docstring).

    Mutates: buf_a, buf_b (scratch, each float64[>= max(sizes)]). Returns NaN when sizes
    does not end in one output unit or z is shorter than sizes[0].
    """
    n_layers = sizes.shape[0] - 1
    if n_layers < 1 or sizes[n_layers] != 1 or z.shape[0] < sizes[0]:
        return math.nan
    for i in range(sizes[0]):
        buf_a[i] = z[i]
    src = buf_a
    dst = buf_b
    w_off = 0
    b_off = 0
    for layer in range(n_layers):
        n_in = sizes[layer]
        n_out = sizes[layer + 1]
        # dst = b + sum_i src[i] * W[i, :], the terms added in order of i for every output
        # (the dot product's order), with independent outputs in the inner loop
        for j in range(n_out):
            dst[j] = biases[b_off + j]
        for i in range(n_in):
            si = src[i]
            row = w_off + i * n_out
            for j in range(n_out):
                dst[j] += weights[row + j] * si
        if layer < n_layers - 1:
            for j in range(n_out):
                if dst[j] < 0.0:
                    dst[j] = 0.0
        w_off += n_in * n_out
        b_off += n_out
        src, dst = dst, src
    return float(src[0])


@njit(cache=True)
def apply_adverse_pair(
    buf_a: F64,
    buf_b: F64,
    v: F64,
    z: F64,
    xm: F64,
    orient: F64,
    stats: F64,
    weights: F64,
    biases: F64,
    sizes: I64,
) -> tuple[float, float]:
    """(P(adverse | buy aggressor), P(adverse | sell aggressor)) at the market state xm.

    stats is float64[2, n_in] flattened: the standardisation means then scales. A buy
    aggressor lifts our ask, so the first probability threatens the ask, the second the bid.
    Mutates: buf_a, buf_b, v, z (scratch: v and z float64[n_in], buffers >= max(sizes)).
    """
    n_in = sizes[0]
    mean = stats[:n_in]
    scale = stats[n_in : 2 * n_in]
    out0 = 0.0
    out1 = 0.0
    for k in range(2):
        side = 1.0 if k == 0 else -1.0
        apply_side_input(v, xm, orient, side)
        apply_standardise(z, v, mean, scale)
        if sizes.shape[0] == 2:
            p = compute_logistic(z, weights, biases[0])
        else:
            p = compute_sigmoid(apply_mlp(buf_a, buf_b, z, weights, biases, sizes))
        if k == 0:
            out0 = p
        else:
            out1 = p
    return out0, out1


@njit(cache=True)
def compute_adverse_policy(
    p_buy: float, p_sell: float, p0: float, k: float, p_withdraw: float
) -> tuple[float, float, bool, bool]:
    """Per-side quote adjustment from the adverse-selection probabilities.

    A buy aggressor fills our ask, so p_buy threatens the ask and p_sell the bid. Each side's
    half-spread multiplier is 1 + k * max(0, p - p0); the side is withdrawn (its flag False)
    when p >= p_withdraw. A NaN probability leaves that side neutral (1.0, quoted).
    Returns: (bid_mult, ask_mult, quote_bid, quote_ask).
    """
    bid_mult = 1.0
    ask_mult = 1.0
    quote_bid = True
    quote_ask = True
    if p_sell == p_sell:
        bid_mult = 1.0 + k * max(0.0, p_sell - p0)
        quote_bid = p_sell < p_withdraw
    if p_buy == p_buy:
        ask_mult = 1.0 + k * max(0.0, p_buy - p0)
        quote_ask = p_buy < p_withdraw
    return bid_mult, ask_mult, quote_bid, quote_ask


@njit(cache=True)
def apply_spread_model(
    buf_a: F64, buf_b: F64, z: F64, xm: F64, stats: F64, weights: F64, biases: F64, sizes: I64
) -> float:
    """The spread predictor's half spread in ticks: exp(network(standardised xm)).

    The network was fitted to the log of the half spread, so exp makes the output positive.
    stats as in apply_adverse_pair. Mutates: buf_a, buf_b, z (scratch).
    """
    n_in = sizes[0]
    apply_standardise(z, xm, stats[:n_in], stats[n_in : 2 * n_in])
    return math.exp(apply_mlp(buf_a, buf_b, z, weights, biases, sizes))

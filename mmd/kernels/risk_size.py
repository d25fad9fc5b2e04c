"""Risk-scaled order size: a risk score from volatility regime, drawdown, the daily loss budget
and inventory, turned into a size multiplier in (0, 1].

The formula (all terms >= 0; a NaN input makes its term 0):

    risk = w_vol * max(0, sigma / sigma_ref - 1)          volatility above its recent level
         + w_drawdown * max(0, drawdown) / drawdown_scale  drawdown from the peak PnL (quote)
         + w_loss * clip(loss_used, 0, 1)                  share of the daily loss budget lost
         + w_inventory * min(1, |q| / max_q)               inventory use
    mult = 1 / (1 + risk)

so the multiplier is 1 with no risk, never above 1, halves when the weighted risk reaches 1 and
tends to 0 as it grows (the quote decision floors the scaled size at one lot, see
`mmd.kernels.strategy.ML_SIZE_MULT`). sigma_ref is an exponential average of sigma with a
half-life in seconds (`apply_vol_reference`).

Layouts: rsp float64[RSP_SIZE] (slots RSP_*); ref float64[2] = (sigma_ref, last update time in
seconds), NaN until the first finite sigma.
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]

RSP_W_VOL = 0
RSP_W_DRAWDOWN = 1
RSP_W_LOSS = 2
RSP_W_INVENTORY = 3
RSP_DRAWDOWN_SCALE = 4  # quote: the drawdown at which its term equals w_drawdown
RSP_HALFLIFE_S = 5  # half-life of sigma_ref, seconds
RSP_SIZE = 6

REF_SIGMA = 0
REF_T_S = 1


@njit(cache=True, nogil=True)
def apply_vol_reference(ref: F64, sigma_ticks: float, t_s: float, halflife_s: float) -> float:
    """Move the reference volatility towards sigma_ticks: ref += a (sigma - ref) with
    a = 1 - 2^(-dt / halflife_s), dt the seconds since the last update; the first finite sigma
    sets it. A NaN sigma or a time going back leaves it alone.

    Mutates: ref (REF_SIGMA, REF_T_S). Returns: the reference (NaN until the first sigma).
    """
    if math.isnan(sigma_ticks):
        return float(ref[REF_SIGMA])
    if math.isnan(ref[REF_SIGMA]):
        ref[REF_SIGMA] = sigma_ticks
        ref[REF_T_S] = t_s
        return sigma_ticks
    dt = t_s - ref[REF_T_S]
    if dt > 0.0:
        a = 1.0 - 2.0 ** (-dt / halflife_s)
        ref[REF_SIGMA] += a * (sigma_ticks - ref[REF_SIGMA])
        ref[REF_T_S] = t_s
    return float(ref[REF_SIGMA])


@njit(cache=True, nogil=True)
def compute_risk_score(
    rsp: F64,
    sigma_ticks: float,
    sigma_ref_ticks: float,
    drawdown_quote: float,
    loss_used: float,
    inventory_frac: float,
) -> float:
    """The weighted risk score (>= 0) of the module docstring; NaN inputs add nothing.

    Args:
        rsp: float64[RSP_SIZE] weights and scales.
        sigma_ticks, sigma_ref_ticks: current and reference volatility (ticks / sqrt(s)).
        drawdown_quote: peak PnL minus current PnL (quote).
        loss_used: share of the daily loss budget lost today (0 = none or no limit).
        inventory_frac: position / position limit (signed; its magnitude is used).
    """
    risk = 0.0
    if sigma_ref_ticks > 0.0 and not math.isnan(sigma_ticks):
        risk += rsp[RSP_W_VOL] * max(0.0, sigma_ticks / sigma_ref_ticks - 1.0)
    if drawdown_quote > 0.0 and rsp[RSP_DRAWDOWN_SCALE] > 0.0:
        risk += rsp[RSP_W_DRAWDOWN] * drawdown_quote / rsp[RSP_DRAWDOWN_SCALE]
    if loss_used > 0.0:
        risk += rsp[RSP_W_LOSS] * min(loss_used, 1.0)
    if not math.isnan(inventory_frac):
        risk += rsp[RSP_W_INVENTORY] * min(abs(inventory_frac), 1.0)
    return risk


@njit(cache=True, nogil=True)
def compute_size_mult(
    rsp: F64,
    sigma_ticks: float,
    sigma_ref_ticks: float,
    drawdown_quote: float,
    loss_used: float,
    inventory_frac: float,
) -> float:
    """1 / (1 + compute_risk_score(...)): the order-size multiplier, in (0, 1]."""
    return 1.0 / (
        1.0
        + compute_risk_score(
            rsp, sigma_ticks, sigma_ref_ticks, drawdown_quote, loss_used, inventory_frac
        )
    )

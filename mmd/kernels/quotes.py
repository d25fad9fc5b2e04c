"""Quote kernels: Avellaneda-Stoikov and GLFT raw quotes, and the post-processing into a ladder.

Owns no state (`mmd.strategy.quoter.Quoter` owns the out arrays and the config scalars).
Units: prices in ticks (float64 until rounded), sizes and positions in lots, time in seconds,
sigma in ticks per sqrt(second), kappa per tick, A per second, gamma per lot.
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.model.codes import ERR_BAD_INPUT, ERR_CROSSED, OK

I64 = npt.NDArray[np.int64]

# largest |price| in ticks the ladder accepts: every integer below 2**53 is exact in float64
_MAX_ABS_TICKS = 9.0e15


@njit(cache=True, nogil=True)
def compute_as_quotes(
    mid_ticks: float,
    position_lots: int,
    sigma_ticks: float,
    gamma: float,
    kappa: float,
    tau_s: float,
) -> tuple[float, float, float, float]:
    """Avellaneda-Stoikov (2008) raw quotes around the mid, finite horizon. Pure.

    With s the mid, q the position, tau = T - t the time left in the session:

        r      = s - q * gamma * sigma^2 * tau                       (reservation price)
        spread = gamma * sigma^2 * tau + (2 / gamma) * ln(1 + gamma / kappa)
        bid    = r - spread / 2,   ask = r + spread / 2

    so the bid and ask offsets from the mid are spread/2 + q*gamma*sigma^2*tau and
    spread/2 - q*gamma*sigma^2*tau: a long position lowers both quotes. sigma^2 (not sigma,
    as in Hummingbot) is the paper's formula.

    Args:
        mid_ticks: mid price s in ticks (float64; .5 for an odd spread).
        position_lots: inventory q in lots (int64, negative = short).
        sigma_ticks: mid volatility in ticks per sqrt(second), >= 0.
        gamma: risk aversion per lot, > 0.
        kappa: fill-intensity decay per tick of distance from the mid, > 0.
        tau_s: time left to the horizon T - t in seconds, >= 0.

    Returns:
        (bid_ticks, ask_ticks, reservation_ticks, half_spread_ticks) as float64, unrounded;
        all four NaN when an input is non-finite or out of range, or the result overflows.
    """
    nan = math.nan
    if not (
        math.isfinite(mid_ticks)
        and math.isfinite(sigma_ticks)
        and sigma_ticks >= 0.0
        and math.isfinite(gamma)
        and gamma > 0.0
        and math.isfinite(kappa)
        and kappa > 0.0
        and math.isfinite(tau_s)
        and tau_s >= 0.0
    ):
        return nan, nan, nan, nan
    var_tau = sigma_ticks * sigma_ticks * tau_s
    reservation = mid_ticks - position_lots * gamma * var_tau
    half = 0.5 * (gamma * var_tau + (2.0 / gamma) * math.log1p(gamma / kappa))
    bid = reservation - half
    ask = reservation + half
    if not (math.isfinite(bid) and math.isfinite(ask)):
        return nan, nan, nan, nan
    return bid, ask, reservation, half


@njit(cache=True, nogil=True)
def compute_glft_quotes(
    mid_ticks: float,
    position_lots: int,
    sigma_ticks: float,
    gamma: float,
    kappa: float,
    a: float,
    order_lots: int,
) -> tuple[float, float, float, float]:
    """GLFT infinite-horizon closed-form approximation of the optimal quotes. Pure.

    Gueant, Lehalle & Fernandez-Tapia (2013) asymptotics, as written in Gueant (2017) and in
    hftbacktest's GLFT tutorial (eq. 4.6/4.7), with xi = gamma and Delta = order size in lots
    (the unit of q):

        c1     = 1 / (xi * Delta) * ln(1 + xi * Delta / kappa)
        c2     = sqrt( gamma / (2 * A * Delta * kappa)
                       * (1 + xi * Delta / kappa) ^ (kappa / (xi * Delta) + 1) )
        half   = c1 + Delta / 2 * c2 * sigma               (half spread)
        skew   = c2 * sigma                                (per lot of position)
        bid    = s - (half + skew * q),   ask = s + (half - skew * q)

    which is delta_b(q) = c1 + (2q + Delta)/2 * c2 * sigma of the paper. The power is
    evaluated as exp((kappa/(xi*Delta) + 1) * ln(1 + xi*Delta/kappa)) for accuracy at small
    xi*Delta/kappa. The reservation price returned is the quotes' centre s - skew * q.

    Args:
        mid_ticks: mid price s in ticks.
        position_lots: inventory q in lots (int64).
        sigma_ticks: mid volatility in ticks per sqrt(second), >= 0.
        gamma: risk aversion per lot (also used as xi), > 0.
        kappa: fill-intensity decay per tick, > 0.
        a: fill intensity at the mid A, per second, > 0.
        order_lots: order size Delta in lots, > 0.

    Returns:
        (bid_ticks, ask_ticks, reservation_ticks, half_spread_ticks) as float64, unrounded;
        all four NaN when an input is non-finite or out of range, or an intermediate
        underflows/overflows (e.g. A * kappa below ~1e-308, or a power above e^700).
    """
    nan = math.nan
    if not (
        math.isfinite(mid_ticks)
        and math.isfinite(sigma_ticks)
        and sigma_ticks >= 0.0
        and math.isfinite(gamma)
        and gamma > 0.0
        and math.isfinite(kappa)
        and kappa > 0.0
        and math.isfinite(a)
        and a > 0.0
        and order_lots > 0
    ):
        return nan, nan, nan, nan
    delta = float(order_lots)
    xd = gamma * delta
    ln_term = math.log1p(xd / kappa)
    expo = (kappa / xd + 1.0) * ln_term
    denom = 2.0 * a * delta * kappa
    # an underflowing denominator or an overflowing power is an out-of-range input, not an
    # exception (CPython's math.exp raises on overflow, so py_func keeps the same contract)
    if not (denom > 0.0 and expo < 700.0):
        return nan, nan, nan, nan
    c1 = ln_term / xd
    c2 = math.sqrt(gamma / denom * math.exp(expo))
    skew = c2 * sigma_ticks
    half = c1 + 0.5 * delta * skew
    reservation = mid_ticks - skew * position_lots
    bid = reservation - half
    ask = reservation + half
    if not (math.isfinite(bid) and math.isfinite(ask)):
        return nan, nan, nan, nan
    return bid, ask, reservation, half


@njit(cache=True, nogil=True)
def compute_quote_ladder(
    bid_px: I64,
    bid_qty: I64,
    ask_px: I64,
    ask_qty: I64,
    raw_bid: float,
    raw_ask: float,
    reservation: float,
    best_bid: int,
    best_ask: int,
    position_lots: int,
    max_position_lots: int,
    min_spread_ticks: float,
    levels: int,
    spacing_ticks: int,
    base_lots: int,
    size_eta: float,
    bid_mult: float,
    ask_mult: float,
    skew_ticks: float,
    spread_override_ticks: float,
) -> int:
    """Turn raw model quotes into a post-only, inventory-limited ladder of int orders.

    Steps, in order (r = reservation, q = position, Q = max position):

    1. Distances from the reservation: d_b = r - raw_bid, d_a = raw_ask - r; a spread
       override (not NaN) replaces both by override / 2.
    2. ML adjustments: d_b *= bid_mult, d_a *= ask_mult; bid = r - d_b + skew_ticks,
       ask = r + d_a + skew_ticks (the skew shifts both prices).
    3. Minimum spread m = max(min_spread_ticks, 1): when ask - bid < m, both move
       symmetrically to centre -+ m/2 (the 1-tick floor keeps bid < ask after rounding).
    4. Tick rounding away from the centre: bid = floor(bid), ask = ceil(ask).
    5. Post-only, never crossing the book: a bid >= best_ask becomes best_ask - 1, an ask
       <= best_bid becomes best_bid + 1 (one tick inside the opposite best).
    6. Ladder: level i (0-based) sits at bid - i * spacing and ask + i * spacing.
    7. Sizes: base_lots, except on the side that grows |q| (bids when q > 0, asks when
       q < 0) where it is max(1, round(base_lots * exp(-size_eta * |q| / Q))). Inventory
       limit: bid levels share Q - q lots and ask levels Q + q lots, best level first, so
       even if every bid (ask) fills, |q| stays <= Q; a side without room gets qty 0.
       A level whose price would be <= 0 ticks gets qty 0.

    Mutates: bid_px, bid_qty, ask_px, ask_qty (every slot; qty 0 and px 0 = no quote there).

    Args:
        bid_px: int64[>= levels] out: bid prices in ticks, best first.
        bid_qty: int64[>= levels] out: bid sizes in lots (0 = no quote).
        ask_px: int64[>= levels] out: ask prices in ticks, best first.
        ask_qty: int64[>= levels] out: ask sizes in lots (0 = no quote).
        raw_bid: model bid in ticks (float64), <= reservation.
        raw_ask: model ask in ticks (float64), >= reservation.
        reservation: model reservation price in ticks (the centre the distances run from).
        best_bid: best bid of the real book in ticks.
        best_ask: best ask of the real book in ticks.
        position_lots: position q in lots.
        max_position_lots: position limit Q in lots, >= 0.
        min_spread_ticks: minimum total spread in ticks, >= 0.
        levels: levels per side, 1 <= levels <= len of every out array.
        spacing_ticks: distance between ladder levels in ticks, >= 1.
        base_lots: size of a level in lots before shaping and limits, >= 1.
        size_eta: size shaping factor eta, >= 0.
        bid_mult: multiplier of the bid's distance from the reservation, >= 0.
        ask_mult: multiplier of the ask's distance from the reservation, >= 0.
        skew_ticks: shift added to both prices in ticks.
        spread_override_ticks: total spread in ticks replacing the model's (>= 0), NaN = none.

    Returns:
        OK; ERR_CROSSED when best_bid >= best_ask; ERR_BAD_INPUT when an input is out of range
        or non-finite or a price leaves the exactly representable range. On failure every qty
        and px slot is 0.
    """
    n_out = bid_px.shape[0]
    if bid_qty.shape[0] != n_out or ask_px.shape[0] != n_out or ask_qty.shape[0] != n_out:
        return ERR_BAD_INPUT
    for i in range(n_out):
        bid_px[i] = 0
        bid_qty[i] = 0
        ask_px[i] = 0
        ask_qty[i] = 0
    override = not math.isnan(spread_override_ticks)
    override_ok = not override or (
        math.isfinite(spread_override_ticks) and spread_override_ticks >= 0.0
    )
    if not (
        math.isfinite(raw_bid)
        and math.isfinite(raw_ask)
        and math.isfinite(reservation)
        and raw_bid <= reservation <= raw_ask
        and max_position_lots >= 0
        and math.isfinite(min_spread_ticks)
        and min_spread_ticks >= 0.0
        and 1 <= levels <= n_out
        and spacing_ticks >= 1
        and base_lots >= 1
        and math.isfinite(size_eta)
        and size_eta >= 0.0
        and math.isfinite(bid_mult)
        and bid_mult >= 0.0
        and math.isfinite(ask_mult)
        and ask_mult >= 0.0
        and math.isfinite(skew_ticks)
        and override_ok
    ):
        return ERR_BAD_INPUT
    if best_bid >= best_ask:
        return ERR_CROSSED

    # 1-2: distances from the reservation, ML multipliers, shift
    if override:
        d_bid = 0.5 * spread_override_ticks
        d_ask = d_bid
    else:
        d_bid = reservation - raw_bid
        d_ask = raw_ask - reservation
    bid = reservation - d_bid * bid_mult + skew_ticks
    ask = reservation + d_ask * ask_mult + skew_ticks

    # 3: minimum spread, widened symmetrically around the current centre
    min_spread = max(min_spread_ticks, 1.0)
    if ask - bid < min_spread:
        centre = 0.5 * (bid + ask)
        bid = centre - 0.5 * min_spread
        ask = centre + 0.5 * min_spread
    if not (abs(bid) < _MAX_ABS_TICKS and abs(ask) < _MAX_ABS_TICKS):
        return ERR_BAD_INPUT  # also catches inf/NaN from the arithmetic above

    # 4-5: round away from the centre, then never cross the real book
    bid0 = math.floor(bid)
    ask0 = math.ceil(ask)
    if bid0 >= best_ask:
        bid0 = best_ask - 1
    if ask0 <= best_bid:
        ask0 = best_bid + 1

    # 7: sizes; shaping shrinks the side that grows |q|
    shaped = base_lots
    if size_eta > 0.0 and max_position_lots > 0 and position_lots != 0:
        factor = math.exp(-size_eta * abs(position_lots) / max_position_lots)
        shaped = max(1, math.floor(base_lots * factor + 0.5))
    bid_size = shaped if position_lots > 0 else base_lots
    ask_size = shaped if position_lots < 0 else base_lots
    buy_room = max_position_lots - position_lots
    sell_room = max_position_lots + position_lots

    # 6: the ladder, best level first, sharing the room left under the limit
    for i in range(levels):
        px = bid0 - i * spacing_ticks
        qty = min(bid_size, buy_room)
        if qty > 0 and px > 0:
            bid_px[i] = px
            bid_qty[i] = qty
            buy_room -= qty
        px = ask0 + i * spacing_ticks
        qty = min(ask_size, sell_room)
        if qty > 0 and px > 0:
            ask_px[i] = px
            ask_qty[i] = qty
            sell_room -= qty
    return OK

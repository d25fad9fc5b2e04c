"""mmd.kernels.quotes: the AS 2008 tables by Monte Carlo, GLFT closed form, properties, parity."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numba import njit

from mmd.kernels import quotes as kq
from mmd.model.codes import ERR_BAD_INPUT, ERR_CROSSED, OK

I64 = np.int64
NAN = math.nan

# -- Avellaneda & Stoikov (2008), Tables 1-2, by Monte Carlo ------------------------------------
#
# Setting of section 4 of the paper: S0 = 100, T = 1, sigma = 2, dt = 0.005 (200 steps),
# A = 140, k = 1.5, 1000 paths. The mid moves S += +-sigma*sqrt(dt) with probability 1/2 each.
# At each step the agent quotes from the state at t (quotes from OUR kernel), each side is
# filled with probability A*exp(-k*delta)*dt (delta = distance of the quote from the mid, one
# unit per fill), then the mid moves. Profit = cash + q*S_T. The symmetric strategy quotes
# mid -+ half of the inventory strategy's spread (the AS spread does not depend on q). Both
# strategies see the same mid path and the same fill uniforms (common random numbers).
# Random numbers: numpy's PCG64 Generator, np.random.default_rng(MC_SEED), MC_SEED = 0.

MC_SEED = 0
MC_PATHS = 1000
AS_S0, AS_T, AS_SIGMA, AS_DT, AS_A, AS_K = 100.0, 1.0, 2.0, 0.005, 140.0, 1.5


@njit(cache=True)
def _simulate_as_paper(gamma: float, rng: np.random.Generator, n_paths: int) -> np.ndarray:
    # one row per path: profit_inv, q_inv, profit_sym, q_sym, mean spread over the path
    n_steps = round(AS_T / AS_DT)
    out = np.empty((n_paths, 5))
    step = AS_SIGMA * math.sqrt(AS_DT)
    for p in range(n_paths):
        s = AS_S0
        q_inv = 0
        q_sym = 0
        cash_inv = 0.0
        cash_sym = 0.0
        spread_sum = 0.0
        for k in range(n_steps):
            tau = AS_T - k * AS_DT
            bid, ask, _, half = kq.compute_as_quotes(s, q_inv, AS_SIGMA, gamma, AS_K, tau)
            spread_sum += 2.0 * half
            u_bid = rng.random()
            u_ask = rng.random()
            if u_bid < AS_A * math.exp(-AS_K * (s - bid)) * AS_DT:
                q_inv += 1
                cash_inv -= bid
            if u_ask < AS_A * math.exp(-AS_K * (ask - s)) * AS_DT:
                q_inv -= 1
                cash_inv += ask
            sym_fill_prob = AS_A * math.exp(-AS_K * half) * AS_DT
            if u_bid < sym_fill_prob:
                q_sym += 1
                cash_sym -= s - half
            if u_ask < sym_fill_prob:
                q_sym -= 1
                cash_sym += s + half
            s += step if rng.random() < 0.5 else -step
        out[p, 0] = cash_inv + q_inv * s
        out[p, 1] = q_inv
        out[p, 2] = cash_sym + q_sym * s
        out[p, 3] = q_sym
        out[p, 4] = spread_sum / n_steps
    return out


_MC_CACHE: dict[float, np.ndarray] = {}


def mc(gamma: float) -> np.ndarray:
    if gamma not in _MC_CACHE:
        rng = np.random.default_rng(MC_SEED)
        _MC_CACHE[gamma] = _simulate_as_paper(gamma, rng, MC_PATHS)
    return _MC_CACHE[gamma]


# Paper values: (gamma, column, statistic, paper value, paper std of that column).
#
# Tolerance. The paper's figure and ours are two independent 1000-path estimates of the same
# quantity, so their difference has standard error SE_diff = sqrt(SE_paper^2 + SE_ours^2),
# and each figure must be within 3 * SE_diff, with (n = 1000)
#   SE of a mean = std / sqrt(n)
#       e.g. inventory profit 65.0, std 6.6: SE = 0.209, SE_diff ~ sqrt(2) * 0.209, tol 0.89;
#   SE of a std  ~ std * sqrt((kurt - 1) / (4 (n - 1))), kurt = the column's kurtosis,
#       which is the usual std / sqrt(2 (n - 1)) for normal data (kurt = 3). Profit and final q
#       of the inventory strategy are close to normal (kurt 3.0-3.6), but the symmetric
#       strategy's profit is heavy-tailed (kurt ~5.1-5.7: unhedged inventory times the price
#       move), which makes the normal formula understate its SE by ~1.5x. We use our sample's
#       kurtosis for both estimates, e.g. symmetric profit std 12.7 at gamma 0.1 with kurt 5.4:
#       SE = 12.7 * sqrt(4.4 / 3996) = 0.42, tol = 3 * sqrt(2) * 0.42 = 1.79 (normal: 1.21).
# Robustness: with this exact procedure, seeds 0..59 pass every row for 58 seeds; the two
# misses are both the gamma = 0.01 symmetric profit std (our 40-seed average is 13.6 against
# the paper's 12.8, within 3 * SE_diff for a typical seed). MC_SEED = 0 was fixed beforehand.
PAPER_ROWS = [
    # gamma = 0.1 (Table 1)
    (0.1, 0, "mean", 65.0, 6.6),  # inventory profit
    (0.1, 0, "std", 6.6, 6.6),
    (0.1, 1, "mean", 0.08, 2.9),  # inventory final q
    (0.1, 1, "std", 2.9, 2.9),
    (0.1, 2, "mean", 68.4, 12.7),  # symmetric profit
    (0.1, 2, "std", 12.7, 12.7),
    (0.1, 3, "mean", 0.26, 8.4),  # symmetric final q
    (0.1, 3, "std", 8.4, 8.4),
    # gamma = 0.01 (Table 2)
    (0.01, 0, "mean", 68.6, 8.7),
    (0.01, 0, "std", 8.7, 8.7),
    (0.01, 1, "mean", 0.12, 5.1),
    (0.01, 1, "std", 5.1, 5.1),
    (0.01, 2, "mean", 68.8, 12.8),
    (0.01, 2, "std", 12.8, 12.8),
    (0.01, 3, "mean", 0.09, 8.7),
    (0.01, 3, "std", 8.7, 8.7),
]
COLUMN = {
    0: "inventory profit",
    1: "inventory final q",
    2: "symmetric profit",
    3: "symmetric final q",
}


def kurtosis(x: np.ndarray) -> float:
    d = x - x.mean()
    return float((d**4).mean() / (d**2).mean() ** 2)


def test_as_paper_simulation_jit_matches_interpreted_on_a_few_paths() -> None:
    # numba's cache only watches this file, so a cached _simulate_as_paper could still hold
    # an older compute_as_quotes inlined; the interpreted loop calls the current kernel
    for gamma in (0.1, 0.01):
        jit = _simulate_as_paper(gamma, np.random.default_rng(5), 20)
        py = _simulate_as_paper.py_func(gamma, np.random.default_rng(5), 20)
        np.testing.assert_array_equal(jit, py)


@pytest.mark.parametrize(("gamma", "paper_spread"), [(0.1, 1.49), (0.01, 1.35)])
def test_as_kernel_paper_setting_mean_spread_matches_tables(
    gamma: float, paper_spread: float
) -> None:
    # the spread is deterministic in t: the paper's 2-decimal rounding is the tolerance
    spreads = mc(gamma)[:, 4]
    assert spreads.std() < 1e-12
    assert abs(spreads.mean() - paper_spread) <= 0.005


@pytest.mark.parametrize(("gamma", "col", "stat", "paper", "paper_std"), PAPER_ROWS)
def test_as_kernel_paper_monte_carlo_within_three_standard_errors(
    gamma: float, col: int, stat: str, paper: float, paper_std: float
) -> None:
    x = mc(gamma)[:, col]
    if stat == "mean":
        ours = float(x.mean())
        se_paper, se_ours = paper_std / math.sqrt(MC_PATHS), float(x.std()) / math.sqrt(MC_PATHS)
    else:
        ours = float(x.std(ddof=1))
        factor = math.sqrt((kurtosis(x) - 1.0) / (4 * (MC_PATHS - 1)))
        se_paper, se_ours = paper * factor, ours * factor
    tol = 3.0 * math.hypot(se_paper, se_ours)
    assert abs(ours - paper) <= tol, (
        f"gamma={gamma} {COLUMN[col]} {stat}: ours {ours:.3f} vs paper {paper} (tol {tol:.3f})"
    )


def test_as_kernel_paper_inventory_strategy_less_risky_than_symmetric() -> None:
    # the paper's qualitative finding: lower profit and inventory dispersion with inventory skew
    for gamma in (0.1, 0.01):
        out = mc(gamma)
        assert out[:, 0].std() < out[:, 2].std()
        assert out[:, 1].std() < out[:, 3].std()


# -- worked examples ------------------------------------------------------------------------------


def test_compute_as_quotes_long_position_skews_both_quotes_down() -> None:
    mid, q, sigma, gamma, kappa, tau = 1000.0, 3, 2.0, 0.1, 1.5, 0.5
    bid, ask, r, half = kq.compute_as_quotes(mid, q, sigma, gamma, kappa, tau)
    skew = q * gamma * sigma**2 * tau  # 0.6
    spread = gamma * sigma**2 * tau + 2 / gamma * math.log(1 + gamma / kappa)  # 0.2 + 1.2908
    assert r == pytest.approx(mid - skew)
    assert half == pytest.approx(spread / 2)
    assert bid == pytest.approx(mid - skew - spread / 2)
    assert ask == pytest.approx(mid - skew + spread / 2)
    # the bid sits further from the mid than the ask by twice the skew (not the same q-term)
    assert (mid - bid) - (ask - mid) == pytest.approx(2 * skew)


def test_compute_as_quotes_zero_horizon_gives_symmetric_intensity_spread() -> None:
    bid, ask, r, half = kq.compute_as_quotes(50.5, -7, 3.0, 0.5, 2.0, 0.0)
    assert r == 50.5
    assert half == pytest.approx(math.log(1.25) / 0.5)
    assert (bid, ask) == pytest.approx((50.5 - half, 50.5 + half))


@pytest.mark.parametrize(
    "args",
    [
        (NAN, 0, 1.0, 0.1, 1.0, 1.0),
        (100.0, 0, -1.0, 0.1, 1.0, 1.0),
        (100.0, 0, math.inf, 0.1, 1.0, 1.0),
        (100.0, 0, 1.0, 0.0, 1.0, 1.0),
        (100.0, 0, 1.0, 0.1, 0.0, 1.0),
        (100.0, 0, 1.0, 0.1, 1.0, -1.0),
        (100.0, 0, 1.0, 0.1, NAN, 1.0),
    ],
)
def test_compute_as_quotes_invalid_input_returns_nan(args: tuple[Any, ...]) -> None:
    assert all(math.isnan(v) for v in kq.compute_as_quotes(*args))


def glft_reference(
    mid: float, q: int, sigma: float, gamma: float, kappa: float, a: float, delta: int
) -> tuple[float, float, float, float]:
    # GLFT (2013) asymptotic closed form, hftbacktest tutorial eq. 4.6/4.7, xi = gamma
    xi = gamma
    c1 = 1 / (xi * delta) * math.log(1 + xi * delta / kappa)
    c2 = math.sqrt(
        gamma / (2 * a * delta * kappa) * (1 + xi * delta / kappa) ** (kappa / (xi * delta) + 1)
    )
    half_spread = c1 + delta / 2 * c2 * sigma
    skew = c2 * sigma
    bid = mid - (half_spread + skew * q)
    ask = mid + (half_spread - skew * q)
    return bid, ask, mid - skew * q, half_spread


def test_compute_glft_quotes_random_points_match_independent_closed_form() -> None:
    rng = np.random.default_rng(20240518)
    for _ in range(2000):
        mid = float(rng.uniform(1.0, 1e6))
        q = int(rng.integers(-50, 51))
        sigma = float(rng.uniform(0.0, 50.0))
        gamma = float(10 ** rng.uniform(-4, 0))
        kappa = float(10 ** rng.uniform(-2, 1))
        a = float(10 ** rng.uniform(-1, 3))
        delta = int(rng.integers(1, 20))
        got = kq.compute_glft_quotes(mid, q, sigma, gamma, kappa, a, delta)
        want = glft_reference(mid, q, sigma, gamma, kappa, a, delta)
        assert got[2:] == pytest.approx(want[2:], rel=1e-9)
        # prices are compared on the offsets from the mid (the mid dwarfs them)
        assert got[0] - mid == pytest.approx(want[0] - mid, rel=1e-9, abs=1e-9 * mid)
        assert got[1] - mid == pytest.approx(want[1] - mid, rel=1e-9, abs=1e-9 * mid)


def test_compute_glft_quotes_hftbacktest_tutorial_point_gives_expected_offsets() -> None:
    # xi = gamma = 0.05, Delta = 1, kappa = 1.5, A = 140, sigma = 2, flat: half spread only
    bid, ask, r, half = kq.compute_glft_quotes(100.0, 0, 2.0, 0.05, 1.5, 140.0, 1)
    c1 = 20 * math.log(1 + 0.05 / 1.5)
    c2 = math.sqrt(0.05 / (2 * 140 * 1.5) * (1 + 0.05 / 1.5) ** (1.5 / 0.05 + 1))
    assert half == pytest.approx(c1 + 0.5 * c2 * 2.0)
    assert r == 100.0
    assert (bid, ask) == pytest.approx((100.0 - half, 100.0 + half))


@pytest.mark.parametrize(
    "args",
    [
        (100.0, 0, 1.0, 0.1, 1.0, 0.0, 1),
        (100.0, 0, 1.0, 0.1, 1.0, 1.0, 0),
        (100.0, 0, 1.0, -0.1, 1.0, 1.0, 1),
        (100.0, 0, NAN, 0.1, 1.0, 1.0, 1),
        (math.inf, 0, 1.0, 0.1, 1.0, 1.0, 1),
    ],
)
def test_compute_glft_quotes_invalid_input_returns_nan(args: tuple[Any, ...]) -> None:
    assert all(math.isnan(v) for v in kq.compute_glft_quotes(*args))


def out_arrays(n: int = 5) -> list[np.ndarray]:
    # garbage so nothing relies on zeroed memory
    return [np.full(n, -9, I64) for _ in range(4)]


def ladder(
    raw_bid: float = 95.3,
    raw_ask: float = 106.2,
    reservation: float = 100.0,
    best_bid: int = 100,
    best_ask: int = 102,
    q: int = 0,
    max_q: int = 10,
    min_spread: float = 0.0,
    levels: int = 1,
    spacing: int = 1,
    base: int = 2,
    eta: float = 0.0,
    bid_mult: float = 1.0,
    ask_mult: float = 1.0,
    skew: float = 0.0,
    override: float = NAN,
    n_out: int = 5,
    kernel: Callable[..., int] = kq.compute_quote_ladder,
) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
    bpx, bqty, apx, aqty = out_arrays(n_out)
    code = kernel(
        bpx,
        bqty,
        apx,
        aqty,
        raw_bid,
        raw_ask,
        reservation,
        best_bid,
        best_ask,
        q,
        max_q,
        min_spread,
        levels,
        spacing,
        base,
        eta,
        bid_mult,
        ask_mult,
        skew,
        override,
    )
    bids = list(zip(bpx.tolist(), bqty.tolist(), strict=True))
    asks = list(zip(apx.tolist(), aqty.tolist(), strict=True))
    return code, bids, asks


def test_compute_quote_ladder_neutral_inputs_round_away_from_centre() -> None:
    code, bids, asks = ladder()
    assert code == OK
    assert bids[0] == (95, 2)
    assert asks[0] == (107, 2)
    assert bids[1:] == [(0, 0)] * 4
    assert asks[1:] == [(0, 0)] * 4


def test_compute_quote_ladder_levels_step_out_by_spacing() -> None:
    code, bids, asks = ladder(levels=3, spacing=4)
    assert code == OK
    assert bids[:3] == [(95, 2), (91, 2), (87, 2)]
    assert asks[:3] == [(107, 2), (111, 2), (115, 2)]
    assert bids[3] == asks[3] == (0, 0)


def test_compute_quote_ladder_ml_mults_scale_distance_from_reservation() -> None:
    # distances 4.7 and 6.2: bid x2 -> 90.6, ask x0.5 -> 103.1, then +1.5 on both: 92 / 105
    code, bids, asks = ladder(bid_mult=2.0, ask_mult=0.5, skew=1.5)
    assert code == OK
    assert bids[0][0] == math.floor(100 - 9.4 + 1.5)
    assert asks[0][0] == math.ceil(100 + 3.1 + 1.5)


def test_compute_quote_ladder_spread_override_replaces_model_spread() -> None:
    code, bids, asks = ladder(override=7.0)
    assert code == OK
    assert (bids[0][0], asks[0][0]) == (96, 104)  # 100 -+ 3.5, rounded away


def test_compute_quote_ladder_min_spread_widens_symmetrically() -> None:
    # raw 99.6 / 100.2 (centre 99.9) widened to 12 ticks: 93.9 / 105.9 -> 93 / 106
    code, bids, asks = ladder(
        raw_bid=99.6, raw_ask=100.2, reservation=100.0, best_bid=90, best_ask=110, min_spread=12.0
    )
    assert code == OK
    assert (bids[0][0], asks[0][0]) == (93, 106)


def test_compute_quote_ladder_zero_spread_keeps_one_tick() -> None:
    code, bids, asks = ladder(
        raw_bid=100.0, raw_ask=100.0, reservation=100.0, best_bid=90, best_ask=110
    )
    assert code == OK
    assert asks[0][0] - bids[0][0] >= 1


def test_compute_quote_ladder_crossing_bid_clamped_inside_best_ask() -> None:
    # a big long skew (+8) pushes the bid to 103.3 >= best ask 102: it sits at 101
    code, bids, asks = ladder(skew=8.0)
    assert code == OK
    assert bids[0][0] == 101
    assert asks[0][0] == math.ceil(106.2 + 8.0)


def test_compute_quote_ladder_crossing_ask_clamped_inside_best_bid() -> None:
    code, bids, asks = ladder(skew=-9.0)  # ask 97.2 <= best bid 100: sits at 101
    assert code == OK
    assert asks[0][0] == 101
    assert bids[0][0] == math.floor(95.3 - 9.0)


def test_compute_quote_ladder_at_max_long_quotes_no_bids() -> None:
    code, bids, asks = ladder(q=10, max_q=10, levels=2)
    assert code == OK
    assert [qty for _, qty in bids] == [0] * 5
    assert [qty for _, qty in asks[:2]] == [2, 2]


def test_compute_quote_ladder_near_limit_caps_total_size() -> None:
    # room to buy is 10 - 7 = 3 lots over three levels of 2: 2 + 1 + 0
    code, bids, asks = ladder(q=7, max_q=10, levels=3)
    assert code == OK
    assert [qty for _, qty in bids[:3]] == [2, 1, 0]
    assert bids[2] == (0, 0)
    assert [qty for _, qty in asks[:3]] == [2, 2, 2]


def test_compute_quote_ladder_size_eta_shrinks_inventory_growing_side() -> None:
    # q = -5 of 10, eta = 2: asks get round(10 * exp(-1)) = 4 lots, bids keep 10
    code, bids, asks = ladder(q=-5, max_q=100, base=10, eta=2.0)
    _, bids2, asks2 = ladder(q=-5, max_q=10, base=10, eta=2.0)
    assert code == OK
    assert bids[0][1] == 10
    assert asks[0][1] == round(10 * math.exp(-2.0 * 5 / 100))  # 9
    assert asks2[0][1] == 4  # room 10 - 5 = 5 > 4
    assert bids2[0][1] == 10


def test_compute_quote_ladder_size_eta_keeps_at_least_one_lot() -> None:
    code, _, asks = ladder(q=-9, max_q=10, base=1, eta=50.0)
    assert code == OK
    assert asks[0][1] == 1


def test_compute_quote_ladder_non_positive_price_not_quoted() -> None:
    code, bids, asks = ladder(
        raw_bid=-3.0, raw_ask=4.0, reservation=1.0, best_bid=1, best_ask=2, levels=2
    )
    assert code == OK
    assert bids[0] == (0, 0)
    assert asks[:2] == [(4, 2), (5, 2)]


def test_compute_quote_ladder_crossed_book_returns_err_and_zeroes() -> None:
    code, bids, asks = ladder(best_bid=102, best_ask=102)
    assert code == ERR_CROSSED
    assert bids == asks == [(0, 0)] * 5


@pytest.mark.parametrize(
    "overrides",
    [
        {"raw_bid": NAN},
        {"raw_bid": 101.0},  # above the reservation
        {"raw_ask": math.inf},
        {"levels": 0},
        {"levels": 6},
        {"spacing": 0},
        {"base": 0},
        {"max_q": -1},
        {"eta": -1.0},
        {"bid_mult": -0.5},
        {"ask_mult": NAN},
        {"skew": math.inf},
        {"override": -1.0},
        {"override": math.inf},
        {"min_spread": NAN},
        {"skew": 1e300},
    ],
)
def test_compute_quote_ladder_bad_input_returns_err_and_zeroes(overrides: dict[str, Any]) -> None:
    code, bids, asks = ladder(**overrides)
    assert code == ERR_BAD_INPUT
    assert bids == asks == [(0, 0)] * 5


def test_compute_quote_ladder_mismatched_out_lengths_returns_err() -> None:
    bpx, bqty, apx, _ = out_arrays(3)
    aqty = np.zeros(2, I64)
    code = kq.compute_quote_ladder(
        bpx,
        bqty,
        apx,
        aqty,
        95.0,
        105.0,
        100.0,
        99,
        101,
        0,
        5,
        0.0,
        1,
        1,
        1,
        0.0,
        1.0,
        1.0,
        0.0,
        NAN,
    )
    assert code == ERR_BAD_INPUT


# -- properties ---------------------------------------------------------------------------------

mids = st.floats(1.0, 1e6)
positions = st.integers(-1000, 1000)
sigmas = st.floats(0.0, 100.0)
gammas = st.floats(1e-4, 10.0)
kappas = st.floats(1e-3, 10.0)
taus = st.floats(0.0, 7200.0)
intensities = st.floats(1e-3, 1000.0)
order_sizes = st.integers(1, 100)


@settings(max_examples=300, deadline=None)
@given(
    mid=mids,
    q=positions,
    sigma=sigmas,
    gamma=gammas,
    kappa=kappas,
    tau=taus,
    a=intensities,
    delta=order_sizes,
)
def test_raw_quotes_valid_inputs_bid_below_ask(
    mid: float,
    q: int,
    sigma: float,
    gamma: float,
    kappa: float,
    tau: float,
    a: float,
    delta: int,
) -> None:
    for bid, ask, r, half in (
        kq.compute_as_quotes(mid, q, sigma, gamma, kappa, tau),
        kq.compute_glft_quotes(mid, q, sigma, gamma, kappa, a, delta),
    ):
        assert half > 0
        assert bid < ask
        assert bid <= r <= ask


@settings(max_examples=300, deadline=None)
@given(
    q=st.integers(1, 1000),
    sigma=st.floats(0.01, 100.0),
    gamma=gammas,
    kappa=kappas,
    tau=st.floats(0.01, 7200.0),
    a=intensities,
    delta=order_sizes,
)
def test_raw_quotes_position_sign_skews_quotes_against_inventory(
    q: int, sigma: float, gamma: float, kappa: float, tau: float, a: float, delta: int
) -> None:
    mid = 0.0  # quotes are translation invariant; at 0 a tiny skew is not lost to rounding

    def as_quote(pos: int) -> tuple[float, float, float, float]:
        return kq.compute_as_quotes(mid, pos, sigma, gamma, kappa, tau)

    def glft_quote(pos: int) -> tuple[float, float, float, float]:
        return kq.compute_glft_quotes(mid, pos, sigma, gamma, kappa, a, delta)

    for quote in (as_quote, glft_quote):
        long_, flat, short = quote(q), quote(0), quote(-q)
        assert flat[2] == mid
        # long: reservation below the mid and both quotes lower; short: the mirror image
        assert long_[2] < mid < short[2]
        assert long_[0] < flat[0] < short[0]
        assert long_[1] < flat[1] < short[1]
        # a long position puts the ask closer to the mid than the bid
        assert long_[1] - mid < mid - long_[0]


@settings(max_examples=300, deadline=None)
@given(
    mid=mids,
    q=positions,
    sigma=st.floats(0.0, 50.0),
    bump=st.floats(1.01, 4.0),
    gamma=gammas,
    kappa=kappas,
    tau=st.floats(0.01, 7200.0),
    a=intensities,
    delta=order_sizes,
)
def test_raw_quotes_higher_sigma_gives_wider_spread(
    mid: float,
    q: int,
    sigma: float,
    bump: float,
    gamma: float,
    kappa: float,
    tau: float,
    a: float,
    delta: int,
) -> None:
    hi = sigma * bump + 0.01
    assert (
        kq.compute_as_quotes(mid, q, hi, gamma, kappa, tau)[3]
        > kq.compute_as_quotes(mid, q, sigma, gamma, kappa, tau)[3]
    )
    assert (
        kq.compute_glft_quotes(mid, q, hi, gamma, kappa, a, delta)[3]
        > kq.compute_glft_quotes(mid, q, sigma, gamma, kappa, a, delta)[3]
    )


@settings(max_examples=300, deadline=None)
@given(
    q=st.integers(1, 1000),
    sigma=st.floats(0.01, 50.0),
    gamma=st.floats(1e-4, 5.0),
    bump=st.floats(1.01, 4.0),
    kappa=kappas,
    tau=st.floats(0.01, 7200.0),
    a=intensities,
    delta=order_sizes,
)
def test_raw_quotes_higher_gamma_gives_wider_risk_terms(
    q: int,
    sigma: float,
    gamma: float,
    bump: float,
    kappa: float,
    tau: float,
    a: float,
    delta: int,
) -> None:
    mid = 0.0  # as above: the skew is compared exactly
    hi = gamma * bump
    as_lo = kq.compute_as_quotes(mid, q, sigma, gamma, kappa, tau)
    as_hi = kq.compute_as_quotes(mid, q, sigma, hi, kappa, tau)
    # the inventory skew grows with gamma in both models ...
    assert mid - as_hi[2] > mid - as_lo[2]
    glft_lo = kq.compute_glft_quotes(mid, q, sigma, gamma, kappa, a, delta)
    glft_hi = kq.compute_glft_quotes(mid, q, sigma, hi, kappa, a, delta)
    assert mid - glft_hi[2] > mid - glft_lo[2]
    # ... and the AS total spread grows with gamma whenever the inventory-risk term dominates:
    # d/dgamma [(2/gamma) ln(1 + gamma/kappa)] >= -2/kappa^2, so sigma^2 tau > 2/kappa^2 is
    # enough (the intensity term alone falls with gamma, so the spread is not monotone always)
    if sigma * sigma * tau > 2.0 / (kappa * kappa):
        assert as_hi[3] > as_lo[3]


def test_as_spread_small_horizon_falls_with_gamma() -> None:
    # documents the non-monotonicity the property above works around
    lo = kq.compute_as_quotes(100.0, 0, 1.0, 0.1, 1.0, 0.0)[3]
    hi = kq.compute_as_quotes(100.0, 0, 1.0, 1.0, 1.0, 0.0)[3]
    assert hi < lo


def plain_adjusted(
    raw_bid: float,
    raw_ask: float,
    r: float,
    min_spread: float,
    bid_mult: float,
    ask_mult: float,
    skew: float,
    override: float,
) -> tuple[float, float]:
    # steps 1-3 of compute_quote_ladder, written independently
    if math.isnan(override):
        d_b, d_a = r - raw_bid, raw_ask - r
    else:
        d_b = d_a = override / 2
    bid = r - d_b * bid_mult + skew
    ask = r + d_a * ask_mult + skew
    m = max(min_spread, 1.0)
    if ask - bid < m:
        c = (bid + ask) / 2
        bid, ask = c - m / 2, c + m / 2
    return bid, ask


ladder_inputs = st.fixed_dictionaries(
    {
        "best_bid": st.integers(1, 10_000),
        "book_spread": st.integers(1, 20),
        "r_off": st.floats(-30.0, 30.0),
        "d_bid": st.floats(0.0, 50.0),
        "d_ask": st.floats(0.0, 50.0),
        "q": st.integers(-25, 25),
        "max_q": st.integers(0, 20),
        "min_spread": st.floats(0.0, 30.0),
        "levels": st.integers(1, 5),
        "spacing": st.integers(1, 5),
        "base": st.integers(1, 10),
        "eta": st.floats(0.0, 3.0),
        "bid_mult": st.floats(0.0, 3.0),
        "ask_mult": st.floats(0.0, 3.0),
        "skew": st.floats(-20.0, 20.0),
        "override": st.one_of(st.just(NAN), st.floats(0.0, 40.0)),
    }
)


Levels = list[tuple[int, int]]


def run_ladder(p: dict[str, Any]) -> tuple[int, Levels, Levels, float]:
    best_ask = p["best_bid"] + p["book_spread"]
    r = 0.5 * (p["best_bid"] + best_ask) + p["r_off"]
    code, bids, asks = ladder(
        raw_bid=r - p["d_bid"],
        raw_ask=r + p["d_ask"],
        reservation=r,
        best_bid=p["best_bid"],
        best_ask=best_ask,
        q=p["q"],
        max_q=p["max_q"],
        min_spread=p["min_spread"],
        levels=p["levels"],
        spacing=p["spacing"],
        base=p["base"],
        eta=p["eta"],
        bid_mult=p["bid_mult"],
        ask_mult=p["ask_mult"],
        skew=p["skew"],
        override=p["override"],
    )
    return code, bids, asks, r


@settings(max_examples=500, deadline=None)
@given(p=ladder_inputs)
def test_compute_quote_ladder_random_inputs_never_cross_book_or_limit(p: dict[str, Any]) -> None:
    code, bids, asks, _ = run_ladder(p)
    assert code == OK
    best_bid, best_ask = p["best_bid"], p["best_bid"] + p["book_spread"]
    q, max_q = p["q"], p["max_q"]
    quoted_bids = [(px, qty) for px, qty in bids if qty > 0]
    quoted_asks = [(px, qty) for px, qty in asks if qty > 0]
    # quoted levels come first, and unquoted slots are zeroed
    assert bids[: len(quoted_bids)] == quoted_bids
    assert asks[: len(quoted_asks)] == quoted_asks
    assert all(b == (0, 0) for b in bids[len(quoted_bids) :])
    assert all(a == (0, 0) for a in asks[len(quoted_asks) :])
    # post-only: never cross the real book, never cross ourselves, positive prices
    assert all(0 < px < best_ask for px, _ in quoted_bids)
    assert all(px > best_bid for px, _ in quoted_asks)
    if quoted_bids and quoted_asks:
        assert quoted_bids[0][0] < quoted_asks[0][0]
    # ladder geometry
    for i in range(1, len(quoted_bids)):
        assert quoted_bids[i - 1][0] - quoted_bids[i][0] == p["spacing"]
    for i in range(1, len(quoted_asks)):
        assert quoted_asks[i][0] - quoted_asks[i - 1][0] == p["spacing"]
    # inventory: even if every bid (ask) fills, |q| never goes beyond the limit
    total_bid = sum(qty for _, qty in quoted_bids)
    total_ask = sum(qty for _, qty in quoted_asks)
    assert total_bid == 0 or q + total_bid <= max_q
    assert total_ask == 0 or q - total_ask >= -max_q
    if q >= max_q:
        assert total_bid == 0
    if q <= -max_q:
        assert total_ask == 0
    assert all(1 <= qty <= p["base"] for _, qty in quoted_bids + quoted_asks)


@settings(max_examples=500, deadline=None)
@given(p=ladder_inputs)
def test_compute_quote_ladder_random_inputs_round_bid_down_ask_up(p: dict[str, Any]) -> None:
    code, bids, asks, r = run_ladder(p)
    assert code == OK
    bid, ask = plain_adjusted(
        r - p["d_bid"],
        r + p["d_ask"],
        r,
        p["min_spread"],
        p["bid_mult"],
        p["ask_mult"],
        p["skew"],
        p["override"],
    )
    best_bid, best_ask = p["best_bid"], p["best_bid"] + p["book_spread"]
    if bids[0][1] > 0:
        if math.floor(bid) < best_ask:
            assert bids[0][0] == math.floor(bid)  # rounded down, not to nearest
        else:
            assert bids[0][0] == best_ask - 1  # clamped one tick inside the best ask
    if asks[0][1] > 0:
        if math.ceil(ask) > best_bid:
            assert asks[0][0] == math.ceil(ask)
        else:
            assert asks[0][0] == best_bid + 1
    if bids[0][1] > 0 and asks[0][1] > 0:
        assert asks[0][0] - bids[0][0] >= max(p["min_spread"], 1.0)


@settings(max_examples=200, deadline=None)
@given(p=ladder_inputs, extra=st.integers(1, 50))
def test_compute_quote_ladder_beyond_limit_quotes_only_reducing_side(
    p: dict[str, Any], extra: int
) -> None:
    assume(p["max_q"] > 0)
    p = {**p, "q": p["max_q"] + extra}
    code, bids, asks, _ = run_ladder(p)
    assert code == OK
    assert all(qty == 0 for _, qty in bids)
    assert p["q"] - sum(qty for _, qty in asks) >= -p["max_q"]


# -- jit vs interpreted parity ----------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


# any float at all (subnormals, +-inf, NaN, 1e308): a kernel must answer NaN, never raise
odd_floats = st.one_of(st.floats(-1e3, 1e6), st.floats(), st.just(NAN), st.just(0.0))


@settings(max_examples=300, deadline=None)
@given(
    mid=odd_floats,
    q=positions,
    sigma=odd_floats,
    gamma=odd_floats,
    kappa=odd_floats,
    tau=odd_floats,
    a=odd_floats,
    delta=st.integers(-1, 50),
)
def test_raw_quote_kernels_jit_and_py_func_agree(
    mid: float,
    q: int,
    sigma: float,
    gamma: float,
    kappa: float,
    tau: float,
    a: float,
    delta: int,
) -> None:
    for kernel, args in (
        (kq.compute_as_quotes, (mid, q, sigma, gamma, kappa, tau)),
        (kq.compute_glft_quotes, (mid, q, sigma, gamma, kappa, a, delta)),
    ):
        jit = kernel(*args)
        py = kernel.py_func(*args)
        for x, y in zip(jit, py, strict=True):
            assert same(x, y) or x == pytest.approx(y, rel=1e-13)


@settings(max_examples=300, deadline=None)
@given(p=ladder_inputs, bad=st.sampled_from(["", "raw_bid", "levels", "crossed", "eta"]))
def test_compute_quote_ladder_jit_and_py_func_agree(p: dict[str, Any], bad: str) -> None:
    best_ask = p["best_bid"] + p["book_spread"]
    r = 0.5 * (p["best_bid"] + best_ask) + p["r_off"]
    kwargs: dict[str, Any] = {
        "raw_bid": r - p["d_bid"],
        "raw_ask": r + p["d_ask"],
        "reservation": r,
        "best_bid": p["best_bid"],
        "best_ask": best_ask,
        "q": p["q"],
        "max_q": p["max_q"],
        "min_spread": p["min_spread"],
        "levels": p["levels"],
        "spacing": p["spacing"],
        "base": p["base"],
        "eta": p["eta"],
        "bid_mult": p["bid_mult"],
        "ask_mult": p["ask_mult"],
        "skew": p["skew"],
        "override": p["override"],
    }
    if bad == "raw_bid":
        kwargs["raw_bid"] = NAN
    elif bad == "levels":
        kwargs["levels"] = 9
    elif bad == "crossed":
        kwargs["best_ask"] = p["best_bid"]
    elif bad == "eta":
        kwargs["eta"] = -1.0
    jit = ladder(**kwargs)
    py = ladder(**kwargs, kernel=kq.compute_quote_ladder.py_func)
    assert jit == py


@settings(max_examples=300, deadline=None)
@given(
    floats=st.lists(odd_floats, min_size=9, max_size=9),
    ints=st.lists(st.integers(-(2**40), 2**40), min_size=6, max_size=6),
    levels=st.integers(-1, 6),
)
def test_compute_quote_ladder_arbitrary_inputs_never_raise_and_agree(
    floats: list[float], ints: list[int], levels: int
) -> None:
    raw_bid, raw_ask, r, min_spread, eta, bid_mult, ask_mult, skew, override = floats
    best_bid, best_ask, q, max_q, spacing, base = ints
    kwargs: dict[str, Any] = {
        "raw_bid": raw_bid,
        "raw_ask": raw_ask,
        "reservation": r,
        "best_bid": best_bid,
        "best_ask": best_ask,
        "q": q,
        "max_q": max_q,
        "min_spread": min_spread,
        "levels": levels,
        "spacing": spacing,
        "base": base,
        "eta": eta,
        "bid_mult": bid_mult,
        "ask_mult": ask_mult,
        "skew": skew,
        "override": override,
    }
    jit = ladder(**kwargs)
    assert jit == ladder(**kwargs, kernel=kq.compute_quote_ladder.py_func)
    assert jit[0] in (OK, ERR_BAD_INPUT, ERR_CROSSED)

"""Hedge kernels: the online weighted beta and its standard error against numpy's weighted least
squares on synthetic correlated returns with a known beta; the clock sampling; the skew rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmd.kernels.hedge import (
    HF_SIZE,
    HI_SAMPLES,
    HI_SIZE,
    apply_return_pair,
    compute_hedge_beta,
    compute_hedge_skew,
    reset_hedge_pair,
    update_hedge_pair,
)

SEC = 1_000_000_000


def fresh(halflife_s: float, sample_ns: int = SEC) -> tuple[np.ndarray, np.ndarray]:
    hf, hi = np.zeros(HF_SIZE), np.zeros(HI_SIZE, np.int64)
    reset_hedge_pair(hf, hi, sample_ns, halflife_s)
    return hf, hi


def numpy_wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares of y on [1, x] by numpy's lstsq on sqrt(w)-scaled rows; the
    standard error with the weighted residual variance over (n_eff - 2), n_eff = (sum w)^2 /
    sum w^2 (the classic sum e^2 / (n - 2) with equal weights)."""
    a = np.column_stack([np.ones_like(x), x])
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)
    resid = y - a @ coef
    n_eff = w.sum() ** 2 / (w**2).sum()
    sigma2 = (w * resid**2).sum() / w.sum() * n_eff / (n_eff - 2.0)
    # (A' W A)^-1 scaled to normalised weights: cov = sigma2 * inv(A' (W / sum w) A) / n_eff
    cov = sigma2 * np.linalg.inv(a.T @ (a * (w / w.sum())[:, None])) / n_eff
    return float(coef[1]), float(math.sqrt(cov[1, 1]))


@pytest.mark.parametrize("halflife_s", [1e9, 200.0, 50.0])
def test_beta_and_se_match_numpy_weighted_least_squares(halflife_s: float) -> None:
    rng = np.random.default_rng(11)
    n, beta_true = 2000, 0.8
    x = rng.normal(0.0, 1e-4, n)
    y = 2e-6 + beta_true * x + rng.normal(0.0, 5e-5, n)
    hf, hi = fresh(halflife_s)
    for k in range(n):
        apply_return_pair(hf, hi, float(x[k]), float(y[k]))
    beta, se = compute_hedge_beta(hf, hi, 10)
    d = 0.5 ** (1.0 / halflife_s)
    w = d ** np.arange(n - 1, -1, -1, dtype=float)  # the newest weighs 1
    ref_beta, ref_se = numpy_wls(x, y, w)
    assert beta == pytest.approx(ref_beta, rel=1e-9)
    assert se == pytest.approx(ref_se, rel=1e-7)
    # the estimate is near the true beta: within 5 standard errors
    assert abs(beta - beta_true) < 5 * se


def test_equal_weights_give_the_textbook_ols_standard_error() -> None:
    # five points by hand: x = 1..5, y = 2x + (0, 1, -1, 1, -1) / 10
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    e = np.array([0.0, 0.1, -0.1, 0.1, -0.1])
    y = 2.0 * x + e
    hf, hi = fresh(1e12)
    for k in range(5):
        apply_return_pair(hf, hi, float(x[k]), float(y[k]))
    beta, se = compute_hedge_beta(hf, hi, 3)
    # Sxx = sum (x - 3)^2 = 10; Sxe = sum (x - 3) e = -2*0 - 1*0.1 + 0 + 1*0.1 - 2*0.1 = -0.2
    # beta = 2 + Sxe / Sxx = 1.98; mean e = 0 so intercept = mean(y) - 1.98 * 3 = 6 - 5.94 = 0.06
    assert beta == pytest.approx(1.98, abs=1e-9)
    # residuals 0.02 x + e - 0.06 = (-0.04, 0.08, -0.10, 0.12, -0.06): RSS = 0.036
    # SE = sqrt(RSS / (n - 2) / Sxx) = sqrt(0.036 / 3 / 10) = sqrt(0.0012)
    assert se == pytest.approx(math.sqrt(0.0012), rel=1e-6)


def test_beta_is_nan_before_min_samples_and_for_flat_hedge_returns() -> None:
    hf, hi = fresh(60.0)
    for k in range(4):
        apply_return_pair(hf, hi, 0.001 * (k % 2), 0.002)
    assert math.isnan(compute_hedge_beta(hf, hi, 5)[0])
    assert not math.isnan(compute_hedge_beta(hf, hi, 4)[0])
    flat_f, flat_i = fresh(60.0)
    for _ in range(10):
        apply_return_pair(flat_f, flat_i, 0.0, 0.001)
    assert math.isnan(compute_hedge_beta(flat_f, flat_i, 3)[0])


def test_clock_samples_the_mids_in_force_at_each_tick() -> None:
    hf, hi = fresh(1e12)
    t0 = 1_700_000_000 * SEC
    # t0 + 0.2 s: first update starts the clock (next tick t0 + 1 s), mids in force 100 / 50
    assert update_hedge_pair(hf, hi, t0 + SEC // 5, 100.0, 50.0) == 0
    # t0 + 1.1 s: tick t0 + 1 s passed: samples (100, 50) as the first sample; no pair yet
    assert update_hedge_pair(hf, hi, t0 + SEC + SEC // 10, 110.0, 55.0) == 0
    # t0 + 1.5 s: no tick; replaces the mids in force with (121, 60.5)
    assert update_hedge_pair(hf, hi, t0 + 3 * SEC // 2, 121.0, 60.5) == 0
    # t0 + 2.0 s: the tick: pair from (100, 50) to (121, 60.5): both log(1.21)
    assert update_hedge_pair(hf, hi, t0 + 2 * SEC, 1.0, 1.0) == 1
    assert hi[HI_SAMPLES] == 1
    # a NaN mid in force at a tick folds nothing and no return spans it
    assert update_hedge_pair(hf, hi, t0 + 3 * SEC, np.nan, 1.0) == 1  # (1, 1) vs (121, 60.5)
    assert update_hedge_pair(hf, hi, t0 + 4 * SEC, 2.0, 2.0) == 0
    assert update_hedge_pair(hf, hi, t0 + 5 * SEC, 3.0, 3.0) == 0  # sample before was NaN
    assert update_hedge_pair(hf, hi, t0 + 6 * SEC, 3.0, 3.0) == 1
    assert hi[HI_SAMPLES] == 3


def test_clock_recovers_beta_of_mid_paths() -> None:
    # mids built from returns with beta 1.5 against the hedge; one update of each per 0.5 s
    rng = np.random.default_rng(3)
    n = 1200
    rx = rng.normal(0, 2e-4, n)
    ry = 1.5 * rx + rng.normal(0, 1e-4, n)
    px, py = 60000.0 * np.exp(np.cumsum(rx)), 3000.0 * np.exp(np.cumsum(ry))
    hf, hi = fresh(1e12)
    t0 = 1_700_000_000 * SEC
    for k in range(n):
        update_hedge_pair(hf, hi, t0 + k * SEC + SEC // 4, float(py[k]), float(px[k]))
        update_hedge_pair(hf, hi, t0 + k * SEC + 3 * SEC // 4, float(py[k]), float(px[k]))
    beta, se = compute_hedge_beta(hf, hi, 10)
    # the pairs folded are the one-second log returns of the paths: rx[k], ry[k] for k >= 1
    ref_beta, ref_se = numpy_wls(rx[1 : n - 1], ry[1 : n - 1], np.ones(n - 2))
    assert hi[HI_SAMPLES] == n - 2
    assert beta == pytest.approx(ref_beta, rel=1e-6)
    assert se == pytest.approx(ref_se, rel=1e-5)


def test_hedge_skew_sign_and_cap() -> None:
    # under-hedged (target 4 lots above the position, max 10): +0.4 of 3 ticks: buy sooner
    assert compute_hedge_skew(4.0, 0.0, 10.0, 3.0) == pytest.approx(1.2)
    # over-hedged: quotes lower
    assert compute_hedge_skew(-2.0, 3.0, 10.0, 3.0) == pytest.approx(-1.5)
    # a gap beyond max_lots is capped at skew_ticks
    assert compute_hedge_skew(50.0, 0.0, 10.0, 3.0) == 3.0
    assert compute_hedge_skew(-50.0, 0.0, 10.0, 3.0) == -3.0
    assert compute_hedge_skew(1.0, 1.0, 10.0, 3.0) == 0.0
    assert compute_hedge_skew(np.nan, 0.0, 10.0, 3.0) == 0.0
    assert compute_hedge_skew(1.0, 0.0, 0.0, 3.0) == 0.0

"""IntensityCalibrator: online fit of the fill intensity lambda(d) = A exp(-kappa d) and of sigma.

Owns the calibration window's arrays and the parameters quoting uses; the loops are in
`mmd.kernels.calibration`. Pure core: no clock reads (times arrive as arguments), no I/O.
"""

from __future__ import annotations

import math

import numpy as np

from mmd.config import CalibrationConfig
from mmd.errors import InvariantViolation
from mmd.kernels.calibration import (
    FIT_NON_POSITIVE_SLOPE,
    FIT_OK,
    FIT_POOR_R2,
    FIT_TOO_FEW_POINTS,
    FIT_TOO_FEW_TRADES,
    I_N_OBS,
    I_WIN_TRADES,
    STATE_F_SIZE,
    STATE_I_SIZE,
    advance_steps,
    compute_intensity_fit,
    compute_sigma,
    reset_window,
    update_arrival_counts,
    update_mid,
    update_trade,
)
from mmd.model.codes import ERR_BAD_INPUT

# kernel status -> `last_status`
STATUS_NAMES: dict[int, str] = {
    FIT_OK: "ok",
    FIT_TOO_FEW_TRADES: "too_few_trades",
    FIT_TOO_FEW_POINTS: "too_few_points",
    FIT_NON_POSITIVE_SLOPE: "non_positive_slope",
    FIT_POOR_R2: "poor_fit",
}
# the regression ran and was rejected (as opposed to: not enough data to run it)
_POOR = (FIT_NON_POSITIVE_SLOPE, FIT_POOR_R2)

# the hftbacktest GLFT tutorial's step (not in CalibrationConfig)
DEFAULT_STEP_S = 0.1
# a line through two points always has R^2 = 1: ask for three depths at least
DEFAULT_MIN_POINTS = 3


class IntensityCalibrator:
    """Fits A (per second), kappa (per tick) and sigma (ticks per sqrt(second)) from the feed.

    Feed it every mid (`on_mid`) and every public trade (`on_trade`) in time order, and call
    `maybe_refit(now_ns)` from the quote loop. Each refit counts, over the last `window_s`
    (cut into `step_s` steps), the steps whose deepest trade reached d ticks from the mid at
    the step's start, fits ln(count(d) / window) = ln A - kappa d by OLS for d = 0 ..
    max_depth_ticks, and measures sigma as the std of the step mid changes / sqrt(step_s).

    A good fit (enough trades, >= min_points depths, negative slope, R^2 >= min_r2) sets
    `kappa`, `a` and `sigma`, with kappa and A clipped to the config bounds (sigma is kept
    when the window gives NaN or 0). Any other refit leaves them as they were: the last good fit,
    or the config fallbacks when there never was one. `source` says which ("calibrated" or
    "fallback") and `last_status` what the latest refit found.

    Args:
        cfg: the `[strategy.calibration]` section.
        step_s: step length in seconds (the tutorial's 100 ms).
        min_points: fewest depths with at least one arrival a fit needs (>= 2).

    Attributes:
        kappa, a, sigma: the values quoting uses (per tick, per second, ticks per sqrt(s)).
        source: "fallback" or "calibrated".
        last_status: "none" before the first refit, then one of STATUS_NAMES' values.
        r2: R^2 of the latest refit's regression (NaN when it did not run).
        raw_kappa, raw_a, raw_sigma: the latest refit's unclipped estimates (NaN when absent).
        n_points: depths used by the latest regression.
        n_trades_window: trades in the window of the latest refit.
        window_s_used: seconds of observed completed steps the latest refit covered (<= window_s).
        fits: refits run; good_fits: refits accepted; poor_fits: regressions rejected for a
            non-negative slope or a low R^2.
        last_refit_ns: time of the latest refit, -1 before the first.
    """

    def __init__(
        self,
        cfg: CalibrationConfig,
        *,
        step_s: float = DEFAULT_STEP_S,
        min_points: int = DEFAULT_MIN_POINTS,
    ) -> None:
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s}")
        if min_points < 2:
            raise ValueError(f"min_points must be >= 2, got {min_points}")
        n_steps = round(cfg.window_s / step_s)
        if n_steps < 2:
            raise ValueError(f"window_s {cfg.window_s} holds fewer than two {step_s} s steps")
        self.cfg = cfg
        self.step_s = float(step_s)
        self.step_ns = round(step_s * 1e9)
        self.n_steps = n_steps
        self.min_points = min_points
        self._refit_ns = round(cfg.refit_s * 1e9)
        self._clip = (cfg.kappa_min, cfg.kappa_max, cfg.a_min, cfg.a_max)

        self.step_depth = np.empty(n_steps, np.int64)
        self.step_trades = np.empty(n_steps, np.int64)
        self.step_dmid = np.empty(n_steps, np.float64)
        self.state_i = np.empty(STATE_I_SIZE, np.int64)
        self.state_f = np.empty(STATE_F_SIZE, np.float64)
        self.counts = np.zeros(cfg.max_depth_ticks + 1, np.int64)
        self._reset_arrays()

        self.kappa = cfg.fallback_kappa
        self.a = cfg.fallback_a
        self.sigma = cfg.fallback_sigma
        self.source = "fallback"
        self.last_status = "none"
        self.r2 = math.nan
        self.raw_kappa = math.nan
        self.raw_a = math.nan
        self.raw_sigma = math.nan
        self.n_points = 0
        self.n_trades_window = 0
        self.window_s_used = 0.0
        self.fits = 0
        self.good_fits = 0
        self.poor_fits = 0
        self.last_refit_ns = -1
        self._next_refit_ns = -1

    def _reset_arrays(self) -> None:
        rc = reset_window(
            self.step_depth, self.step_trades, self.step_dmid, self.state_i, self.state_f
        )
        if rc != FIT_OK:
            raise InvariantViolation(f"calibration reset_window returned {rc}")

    @property
    def calibrated(self) -> bool:
        """True once a good fit has set the parameters."""
        return self.source == "calibrated"

    def reset(self) -> None:
        """Forget the window (e.g. after a feed gap); the current parameters are kept."""
        self._reset_arrays()

    def on_mid(self, ts_ns: int, mid_ticks: float) -> None:
        """Record the mid after a book update (a NaN mid of a one-sided book is ignored).

        Args:
            ts_ns: venue time of the book update in ns.
            mid_ticks: (best bid + best ask) / 2 in ticks.
        """
        update_mid(
            self.step_depth,
            self.step_trades,
            self.step_dmid,
            self.state_i,
            self.state_f,
            ts_ns,
            mid_ticks,
            self.step_ns,
        )

    def on_trade(self, ts_ns: int, px_ticks: int, qty_lots: int, side: int) -> None:
        """Record one public trade.

        qty_lots is not used on purpose: the fit counts arrivals, not volume (Hummingbot
        issue #6144); it stays in the signature so callers need not change if a size filter
        is added.

        Args:
            ts_ns: venue time of the trade in ns.
            px_ticks: trade price in ticks.
            qty_lots: trade size in lots (unused).
            side: codes.BUY when the taker bought, codes.SELL when it sold.

        Raises:
            InvariantViolation: side is not BUY/SELL or ts_ns is negative (a caller bug).
        """
        rc = update_trade(
            self.step_depth,
            self.step_trades,
            self.step_dmid,
            self.state_i,
            self.state_f,
            ts_ns,
            px_ticks,
            side,
            self.step_ns,
        )
        if rc == ERR_BAD_INPUT:
            raise InvariantViolation(f"calibration trade rejected: ts_ns={ts_ns} side={side}")

    def maybe_refit(self, now_ns: int) -> bool:
        """Refit when refit_s has passed since the previous refit (the first call refits).

        Refits stay on a fixed grid of refit_s from the first one; missed slots are skipped.

        Args:
            now_ns: current time in ns, on the same clock as the event times.

        Returns:
            True when a refit ran (whatever its status), False otherwise.
        """
        if self._next_refit_ns >= 0 and now_ns < self._next_refit_ns:
            return False
        if self._next_refit_ns < 0:
            self._next_refit_ns = now_ns
        missed = (now_ns - self._next_refit_ns) // self._refit_ns
        self._next_refit_ns += (missed + 1) * self._refit_ns
        self.refit(now_ns)
        return True

    def refit(self, now_ns: int) -> int:
        """Close the steps up to now_ns and fit the window now (maybe_refit's worker).

        Args:
            now_ns: current time in ns.

        Returns:
            The kernel status code (FIT_OK, FIT_TOO_FEW_TRADES, ...).
        """
        cfg = self.cfg
        advance_steps(
            self.step_depth,
            self.step_trades,
            self.step_dmid,
            self.state_i,
            self.state_f,
            now_ns,
            self.step_ns,
        )
        update_arrival_counts(self.counts, self.step_depth)
        n_trades = int(self.state_i[I_WIN_TRADES])
        window_s = self.window_s_observed()
        if window_s > 0:
            status, kappa, a, r2, n_points = compute_intensity_fit(
                self.counts,
                window_s,
                n_trades,
                int(cfg.min_trades),
                self.min_points,
                float(cfg.min_r2),
            )
        else:  # no completed step yet: nothing to fit
            status, kappa, a, r2, n_points = FIT_TOO_FEW_TRADES, math.nan, math.nan, math.nan, 0
        sigma = float(compute_sigma(self.state_i, self.state_f, self.step_s))

        self.fits += 1
        self.last_refit_ns = now_ns
        self.n_trades_window = n_trades
        self.window_s_used = window_s
        self.raw_kappa, self.raw_a, self.r2 = float(kappa), float(a), float(r2)
        self.raw_sigma = sigma
        self.n_points = int(n_points)
        self.last_status = STATUS_NAMES.get(int(status), f"error_{int(status)}")
        if status == FIT_OK:
            k_lo, k_hi, a_lo, a_hi = self._clip
            self.kappa = min(max(float(kappa), k_lo), k_hi)
            self.a = min(max(float(a), a_lo), a_hi)
            if sigma > 0:
                self.sigma = sigma
            self.source = "calibrated"
            self.good_fits += 1
        elif status in _POOR:
            self.poor_fits += 1
        return int(status)

    def window_s_observed(self) -> float:
        """Seconds of observed completed steps in the window (grows to window_s in warm-up)."""
        return int(self.state_i[I_N_OBS]) * self.step_s

    def arrival_rates(self) -> np.ndarray:
        """lambda(d) per second for d = 0..max_depth_ticks as of the latest refit (a copy)."""
        window_s = self.window_s_used
        if window_s <= 0:
            return np.zeros(self.counts.shape[0], np.float64)
        return self.counts / window_s

    @property
    def nbytes(self) -> int:
        """Bytes held by the window arrays (fixed for the calibrator's life)."""
        arrays = (
            self.step_depth,
            self.step_trades,
            self.step_dmid,
            self.state_i,
            self.state_f,
            self.counts,
        )
        return sum(int(x.nbytes) for x in arrays)

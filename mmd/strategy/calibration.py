"""IntensityCalibrator: online fit of the fill intensity lambda(d) = A exp(-kappa d) and of sigma.

Owns the calibration window's arrays and the parameters quoting uses; the loops are in
`mmd.kernels.calibration` and the refit schedule and acceptance in `mmd.kernels.strategy`
(`update_calibration_schedule`, `apply_calibration_refit`), the kernels the backtest loop runs.
Pure core: no clock reads (times arrive as arguments), no I/O.
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
    STATE_F_SIZE,
    STATE_I_SIZE,
    reset_window,
    update_mid,
    update_trade,
)
from mmd.kernels.strategy import (
    CAL_STATUS_NONE,
    CF_A,
    CF_KAPPA,
    CF_R2,
    CF_RAW_A,
    CF_RAW_KAPPA,
    CF_RAW_SIGMA,
    CF_SIGMA,
    CF_SIZE,
    CF_WINDOW_S,
    CI_CALIBRATED,
    CI_FITS,
    CI_GOOD_FITS,
    CI_LAST_REFIT_NS,
    CI_N_POINTS,
    CI_N_TRADES,
    CI_NEXT_REFIT_NS,
    CI_POOR_FITS,
    CI_SIZE,
    CI_STATUS,
    CPF_A_MAX,
    CPF_A_MIN,
    CPF_KAPPA_MAX,
    CPF_KAPPA_MIN,
    CPF_MIN_R2,
    CPF_SIZE,
    CPF_STEP_S,
    CPI_MIN_POINTS,
    CPI_MIN_TRADES,
    CPI_REFIT_NS,
    CPI_SIZE,
    CPI_STEP_NS,
    apply_calibration_refit,
    update_calibration_schedule,
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

        # the kernels' state: window tuple, results (CI_* / CF_*) and parameters (CPI_* / CPF_*)
        self.win = (
            self.step_depth,
            self.step_trades,
            self.step_dmid,
            self.state_i,
            self.state_f,
            self.counts,
        )
        self.cal_i = np.zeros(CI_SIZE, np.int64)
        self.cal_i[CI_STATUS] = CAL_STATUS_NONE
        self.cal_i[CI_LAST_REFIT_NS] = -1
        self.cal_i[CI_NEXT_REFIT_NS] = -1
        self.cal_f = np.full(CF_SIZE, math.nan)
        self.cal_f[CF_KAPPA] = cfg.fallback_kappa
        self.cal_f[CF_A] = cfg.fallback_a
        self.cal_f[CF_SIGMA] = cfg.fallback_sigma
        self.cal_f[CF_WINDOW_S] = 0.0
        self.cal_pi = np.zeros(CPI_SIZE, np.int64)
        self.cal_pi[CPI_STEP_NS] = self.step_ns
        self.cal_pi[CPI_REFIT_NS] = self._refit_ns
        self.cal_pi[CPI_MIN_TRADES] = int(cfg.min_trades)
        self.cal_pi[CPI_MIN_POINTS] = min_points
        self.cal_pf = np.zeros(CPF_SIZE, np.float64)
        self.cal_pf[CPF_STEP_S] = self.step_s
        self.cal_pf[CPF_MIN_R2] = float(cfg.min_r2)
        self.cal_pf[CPF_KAPPA_MIN], self.cal_pf[CPF_KAPPA_MAX] = self._clip[:2]
        self.cal_pf[CPF_A_MIN], self.cal_pf[CPF_A_MAX] = self._clip[2:]

    # the public attributes read the kernels' state arrays
    @property
    def kappa(self) -> float:
        return float(self.cal_f[CF_KAPPA])

    @property
    def a(self) -> float:
        return float(self.cal_f[CF_A])

    @property
    def sigma(self) -> float:
        return float(self.cal_f[CF_SIGMA])

    @property
    def source(self) -> str:
        return "calibrated" if self.cal_i[CI_CALIBRATED] else "fallback"

    @property
    def last_status(self) -> str:
        status = int(self.cal_i[CI_STATUS])
        if status == CAL_STATUS_NONE:
            return "none"
        return STATUS_NAMES.get(status, f"error_{status}")

    @property
    def r2(self) -> float:
        return float(self.cal_f[CF_R2])

    @property
    def raw_kappa(self) -> float:
        return float(self.cal_f[CF_RAW_KAPPA])

    @property
    def raw_a(self) -> float:
        return float(self.cal_f[CF_RAW_A])

    @property
    def raw_sigma(self) -> float:
        return float(self.cal_f[CF_RAW_SIGMA])

    @property
    def n_points(self) -> int:
        return int(self.cal_i[CI_N_POINTS])

    @property
    def n_trades_window(self) -> int:
        return int(self.cal_i[CI_N_TRADES])

    @property
    def window_s_used(self) -> float:
        return float(self.cal_f[CF_WINDOW_S])

    @property
    def fits(self) -> int:
        return int(self.cal_i[CI_FITS])

    @property
    def good_fits(self) -> int:
        return int(self.cal_i[CI_GOOD_FITS])

    @property
    def poor_fits(self) -> int:
        return int(self.cal_i[CI_POOR_FITS])

    @property
    def last_refit_ns(self) -> int:
        return int(self.cal_i[CI_LAST_REFIT_NS])

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
        return bool(
            update_calibration_schedule(
                self.win, self.cal_i, self.cal_f, self.cal_pi, self.cal_pf, now_ns
            )
        )

    def refit(self, now_ns: int) -> int:
        """Close the steps up to now_ns and fit the window now (maybe_refit's worker).

        Args:
            now_ns: current time in ns.

        Returns:
            The kernel status code (FIT_OK, FIT_TOO_FEW_TRADES, ...).
        """
        return int(
            apply_calibration_refit(
                self.win, self.cal_i, self.cal_f, self.cal_pi, self.cal_pf, now_ns
            )
        )

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

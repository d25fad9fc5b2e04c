"""The synthetic feed's latent order-flow process: the mid path, hidden regimes, information
episodes and order arrival counts. Draws from the run's Generator; builds no book and no frames.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from mmd.config import SyntheticConfig
from mmd.feeds.synthetic.truth import CALM, UP, VOLATILE, SyntheticTruth

# the volatile regime's sigma stays within sigma_ticks' own bound
MAX_SIGMA_TICKS = 200.0


class OrderFlow:
    """The latent state of one synthetic run, advanced one step (point of the path) at a time.

    `t_ns` and `mid` (float ticks, information offset included) are the current step's time and
    public mid; the information-episode state (`info_dir` 0 = none, `info_gap`, `episode_no`)
    and `horizon_ns` are read by the run that executes the orders.
    """

    def __init__(
        self,
        cfg: SyntheticConfig,
        rng: np.random.Generator,
        *,
        start_ns: int,
        mid: float,
        floor_ticks: float,
        truth: SyntheticTruth | None,
    ) -> None:
        reg = cfg.regimes
        self.cfg = cfg
        self.rng = rng
        self.truth = truth
        self.t_ns = start_ns
        self.mid = mid
        self.floor_ticks = floor_ticks
        self.regime = CALM
        self.switch_ns = 0  # when the current regime ends (switching only)
        if reg.switching:
            self.switch_ns = self.t_ns + self._regime_duration_ns(CALM)
        # information events: the public mid's offset from the random walk, the episode in
        # progress (direction 0 = none) and the value's lead over the public mid
        self.info_offset = 0.0
        self.info_dir = 0
        self.info_gap = 0.0
        self.info_start_ns = 0
        self.episode_no = 0
        self.info_next_ns = 0
        if reg.info_rate_hz > 0:
            self.info_next_ns = self.t_ns + self._info_wait_ns()
        if truth is not None:
            truth.horizon_s = reg.informed_horizon_s if reg.informed_share > 0 else math.nan
            truth.regime_start_ns.append(self.t_ns)
            truth.regime.append(CALM)
        # Hawkes excitation of the buy and sell order intensities (orders per second)
        self.excite = [0.0, 0.0]
        # informed flow needs the mid path ahead: drawn horizon_s in advance, consumed per step
        self.horizon_ns = round(reg.informed_horizon_s * 1e9)
        self.path_t = self.t_ns  # the last drawn point of the path
        self.path_mid = self.mid
        self.ahead_t: list[int] = []  # drawn points not consumed yet start at ahead_i
        self.ahead_mid: list[float] = []
        self.ahead_i = 0

    def _regime_duration_ns(self, regime: int) -> int:
        reg = self.cfg.regimes
        mean_s = (reg.calm_mean_s, reg.volatile_mean_s, reg.trend_mean_s, reg.trend_mean_s)
        return max(1, round(self.rng.exponential(mean_s[regime] * 1e9)))

    def _draw_point(self) -> None:
        """Draw the next point (time, mid) of the latent path after (path_t, path_mid).

        A step uses the regime in force at its start; switches are exact exponential times
        (recorded as drawn), each to one of the other three regimes with equal probability.
        """
        cfg, rng = self.cfg, self.rng
        prev_ns = self.path_t
        self.path_t += max(1, round(rng.exponential(1e9 / cfg.frame_rate_hz)))
        dt_s = (self.path_t - prev_ns) / 1e9
        sigma, drift = cfg.sigma_ticks, 0.0
        if cfg.regimes.switching:
            if self.regime == VOLATILE:  # capped: the generator's cost grows with sigma
                sigma = min(sigma * cfg.regimes.volatile_sigma_mult, MAX_SIGMA_TICKS)
            elif self.regime != CALM:
                drift = cfg.regimes.trend_drift_ticks_per_s * (1.0 if self.regime == UP else -1.0)
            while self.switch_ns <= self.path_t:
                self.regime = (self.regime + 1 + int(rng.integers(0, 3))) % 4
                if self.truth is not None:
                    self.truth.regime_start_ns.append(self.switch_ns)
                    self.truth.regime.append(self.regime)
                self.switch_ns += self._regime_duration_ns(self.regime)
            self.path_mid += drift * dt_s
        self.path_mid += sigma * math.sqrt(dt_s) * rng.standard_normal()
        if self.path_mid < self.floor_ticks:  # reflect off the floor
            self.path_mid = 2 * self.floor_ticks - self.path_mid

    def advance(self) -> None:
        """Move (t_ns, mid) to the next point of the path, keeping horizon_ns drawn ahead when
        informed traders need to see it."""
        if self.cfg.regimes.informed_share <= 0:
            self._draw_point()
            self.t_ns, self.mid = self.path_t, self.path_mid + self.info_offset
            return
        if self.ahead_i == len(self.ahead_t):
            self._draw_point()
            self.ahead_t.append(self.path_t)
            self.ahead_mid.append(self.path_mid)
        self.t_ns = self.ahead_t[self.ahead_i]
        self.mid = self.ahead_mid[self.ahead_i] + self.info_offset
        self.ahead_i += 1
        if self.ahead_i >= 4096 and 2 * self.ahead_i >= len(self.ahead_t):
            del self.ahead_t[: self.ahead_i], self.ahead_mid[: self.ahead_i]
            self.ahead_i = 0
        while self.path_t < self.t_ns + self.horizon_ns + 1_000_000:  # + the trades' last ms
            self._draw_point()
            self.ahead_t.append(self.path_t)
            self.ahead_mid.append(self.path_mid)

    def mid_at(self, t_ns: int) -> float:
        """The latent mid at t_ns (t_ns >= the current step's time, within the drawn path)."""
        i = bisect.bisect_right(self.ahead_t, t_ns, lo=self.ahead_i) - 1
        return self.mid if i < self.ahead_i else self.ahead_mid[i] + self.info_offset

    def _info_wait_ns(self) -> int:
        """Time to the next information event (exponential, rate info_rate_hz)."""
        return max(1, round(self.rng.exponential(1e9 / self.cfg.regimes.info_rate_hz)))

    def start_episode(self) -> None:
        """The value jumps: informed traders start working toward it."""
        self.info_dir = 1 if self.rng.random() < 0.5 else -1
        self.info_gap = self.cfg.regimes.info_jump_ticks
        self.info_start_ns = self.info_next_ns
        self.episode_no += 1
        if self.truth is not None:
            self.truth.episode_start_ns.append(self.info_start_ns)
            self.truth.episode_dir.append(self.info_dir)

    def informed_impact(self, t_ms: int) -> None:
        """An episode's order moved the public mid toward the value; close the episode when
        the gap is gone."""
        move = min(self.cfg.regimes.info_impact_ticks, self.info_gap)
        self.info_gap -= move
        self.info_offset += self.info_dir * move
        self.mid += self.info_dir * move
        if self.info_gap <= 1e-9:
            end_ns = t_ms * 1_000_000
            if self.truth is not None:
                self.truth.episode_end_ns.append(end_ns)
            self.info_dir = 0
            self.info_gap = 0.0
            self.info_next_ns = end_ns + self._info_wait_ns()

    def order_count(self, side: int, dt_s: float) -> int:
        """Orders of one side in dt_s: Poisson, or Hawkes with the mean rate kept."""
        reg, rate = self.cfg.regimes, self.cfg.trade_rate_hz
        if reg.hawkes_branching <= 0:
            return int(self.rng.poisson(rate * dt_s))
        beta = reg.hawkes_decay_per_s
        base = rate * (1.0 - reg.hawkes_branching)  # stationary mean = base / (1 - branching)
        decay = math.exp(-beta * dt_s)
        # the intensity integrated over the step, excitation decaying from its start value
        n = int(self.rng.poisson(base * dt_s + self.excite[side] * (1.0 - decay) / beta))
        self.excite[side] = self.excite[side] * decay + reg.hawkes_branching * beta * n
        return n

"""PortfolioHedge: the book's beta hedge through one instrument's quotes.

Pure core: fed mids with their exchange times, asked for the hedge target and skew. For every
symbol other than the hedge instrument it keeps an online regression of the symbol's log returns
on the hedge instrument's (`mmd.kernels.hedge`: sampled on a clock of exchange time,
exponentially weighted), giving beta and its standard error. The hedge target, in the hedge
instrument's lots, offsets the betas times the other positions' notionals:

    q_hedge = -sum_i beta_i * q_i * lot_i * mid_i / (mid_h * lot_h)

A symbol whose beta is not yet defined (fewer than min_samples return pairs) counts 0.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from mmd.config import HedgeConfig
from mmd.kernels import hedge as kh
from mmd.model.instrument import Instrument


class PortfolioHedge:
    """Betas against the hedge instrument, the hedge target and the hedge skew.

    Args:
        cfg: the [hedge] section.
    """

    def __init__(self, cfg: HedgeConfig) -> None:
        self.cfg = cfg
        self.instrument = cfg.instrument
        self._sample_ns = max(1, round(cfg.sample_s * 1e9))
        self.mids: dict[str, float] = {}  # the mid in force per symbol, quote currency
        self._pairs: dict[str, tuple[NDArray[np.float64], NDArray[np.int64]]] = {}
        self.target_lots = math.nan  # the last hedge target (NaN: no hedge instrument mid)
        self.skew_ticks = 0.0  # the last skew given to the hedge instrument's quotes

    def _pair(self, symbol: str) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        pair = self._pairs.get(symbol)
        if pair is None:
            hf, hi = np.zeros(kh.HF_SIZE, np.float64), np.zeros(kh.HI_SIZE, np.int64)
            kh.reset_hedge_pair(hf, hi, self._sample_ns, self.cfg.halflife_s)
            pair = self._pairs[symbol] = (hf, hi)
        return pair

    def on_mid(self, symbol: str, ts_exch_ns: int, mid_quote: float) -> None:
        """A symbol's mid changed at ts_exch_ns (NaN: no two-sided book); the hedge
        instrument's mid advances every pair's clock."""
        self.mids[symbol] = mid_quote
        mid_h = self.mids.get(self.instrument, math.nan)
        if symbol == self.instrument:
            for sym, (hf, hi) in self._pairs.items():
                kh.update_hedge_pair(hf, hi, ts_exch_ns, self.mids[sym], mid_h)
        else:
            hf, hi = self._pair(symbol)
            kh.update_hedge_pair(hf, hi, ts_exch_ns, mid_quote, mid_h)

    def beta(self, symbol: str) -> tuple[float, float]:
        """(beta, standard error) of the symbol against the hedge instrument (NaN: not yet)."""
        pair = self._pairs.get(symbol)
        if pair is None:
            return math.nan, math.nan
        return kh.compute_hedge_beta(pair[0], pair[1], self.cfg.min_samples)

    def betas(self) -> dict[str, tuple[float, float]]:
        return {sym: self.beta(sym) for sym in sorted(self._pairs)}

    def compute_target(
        self, positions: dict[str, int], instruments: dict[str, Instrument]
    ) -> float:
        """The hedge target in the hedge instrument's lots (NaN without its mid and lot)."""
        inst_h = instruments.get(self.instrument)
        mid_h = self.mids.get(self.instrument, math.nan)
        if inst_h is None or not mid_h > 0.0:
            self.target_lots = math.nan
            return self.target_lots
        target = 0.0
        for sym, q in positions.items():
            inst = instruments.get(sym)
            if sym == self.instrument or q == 0 or inst is None:
                continue
            b, _ = self.beta(sym)
            mid = self.mids.get(sym, math.nan)
            if b == b and mid == mid:
                target -= b * q * inst.lot * mid / (mid_h * inst_h.lot)
        self.target_lots = target
        return target

    def compute_skew(self, hedge_position_lots: int, max_lots: int) -> float:
        """Skew of the hedge instrument's quotes (ticks) toward the last target."""
        self.skew_ticks = float(
            kh.compute_hedge_skew(
                self.target_lots, float(hedge_position_lots), float(max_lots), self.cfg.skew_ticks
            )
        )
        return self.skew_ticks

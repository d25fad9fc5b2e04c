"""FeatureEngine: owns one symbol's feature state arrays; feeds them book, trade, kline events.

State and glue only: the formulas are in `mmd.kernels.features` (see its docstrings for each
feature's definition and units). No I/O and no clock: every time arrives as an ns argument.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mmd.config import FeaturesConfig
from mmd.errors import InvariantViolation
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
    F_QUEUE_PRESSURE_ASK,
    F_QUEUE_PRESSURE_BID,
    F_RV_LOG_PER_S,
    F_RV_TICKS_PER_SQRT_S,
    F_SPREAD_BPS,
    F_SPREAD_TICKS,
    F_SPREAD_Z,
    F_TRADE_RATE_HZ,
    F_VPIN,
    I_VOL_LOG_RING,
    N_FEATURES,
    apply_book_gap,
    apply_reset,
    compute_state_sizes,
    update_kline,
    update_trade,
)

__all__ = [
    "FEATURE_INDEX",
    "FEATURE_NAMES",
    "F_AVG_TRADE_LOTS",
    "F_CUM_DELTA_LOTS",
    "F_DELTA_EW_LOTS",
    "F_DEPTH_RATIO",
    "F_GK_LOG_PER_S",
    "F_IMBALANCE_K",
    "F_IMBALANCE_TOUCH",
    "F_MICROPRICE_TICKS",
    "F_MID_TICKS",
    "F_OFI",
    "F_QUEUE_PRESSURE",
    "F_QUEUE_PRESSURE_ASK",
    "F_QUEUE_PRESSURE_BID",
    "F_RV_LOG_PER_S",
    "F_RV_TICKS_PER_SQRT_S",
    "F_SPREAD_BPS",
    "F_SPREAD_TICKS",
    "F_SPREAD_Z",
    "F_TRADE_RATE_HZ",
    "F_VPIN",
    "KLINE_S",
    "N_FEATURES",
    "READY_MIN_RETURNS",
    "FeatureEngine",
]

# the hub subscribes to 1-minute klines (`kline.1.SYM`)
KLINE_S = 60.0
# ready() once the volatility window holds this many sampled returns
READY_MIN_RETURNS = 10

# values() key -> index in x; the unit is in the name or in the kernel constant's comment
FEATURE_INDEX: dict[str, int] = {
    "mid_ticks": F_MID_TICKS,
    "spread_ticks": F_SPREAD_TICKS,
    "spread_bps": F_SPREAD_BPS,
    "spread_z": F_SPREAD_Z,
    "imbalance_touch": F_IMBALANCE_TOUCH,
    "imbalance_k": F_IMBALANCE_K,
    "depth_ratio": F_DEPTH_RATIO,
    "microprice_ticks": F_MICROPRICE_TICKS,
    "queue_pressure": F_QUEUE_PRESSURE,
    "queue_pressure_bid": F_QUEUE_PRESSURE_BID,
    "queue_pressure_ask": F_QUEUE_PRESSURE_ASK,
    "ofi": F_OFI,
    "cum_delta_lots": F_CUM_DELTA_LOTS,
    "delta_ew_lots": F_DELTA_EW_LOTS,
    "trade_rate_hz": F_TRADE_RATE_HZ,
    "avg_trade_lots": F_AVG_TRADE_LOTS,
    "rv_ticks_per_sqrt_s": F_RV_TICKS_PER_SQRT_S,
    "rv_log_per_s": F_RV_LOG_PER_S,
    "gk_log_per_s": F_GK_LOG_PER_S,
    "vpin": F_VPIN,
}
# values() keys, in x order
FEATURE_NAMES: tuple[str, ...] = tuple(sorted(FEATURE_INDEX, key=FEATURE_INDEX.__getitem__))

F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]


class FeatureEngine:
    """Incremental microstructure features of one symbol, in fixed memory.

    Call `on_book` after every applied book update, `on_trade` for every public trade and
    `on_kline` for every kline push; read `values()` (by name) or `x` (by the `F_*` index, no
    copy: the hot path). Every feature is as of the latest event passed in. Features that need
    data not seen yet are NaN.

    Args:
        cfg: the `[features]` config.
        tick_size: price step of the instrument (> 0); features are in ticks, this converts
            them for callers (`ticks_to_px`).
        lot_size: quantity step (> 0); needed only to turn a fixed `vpin_bucket_volume` (base
            units) into lots.

    Attributes:
        x: float64[N_FEATURES] the features, indexed by the `F_*` constants (a view of the
            kernels' state array: read it, never write it).
        tick_size: as given.
        bucket_lots_configured: the fixed VPIN bucket volume in lots (0 = auto).
        rejected_klines: klines ignored as malformed (prices not > 0 or O/C outside [L, H]).

    Raises:
        ValueError: tick_size <= 0, or a fixed VPIN bucket volume without a positive lot_size.
    """

    __slots__ = (
        "_istate",
        "_params",
        "_state",
        "bucket_lots_configured",
        "rejected_klines",
        "tick_size",
        "x",
    )

    def __init__(
        self, cfg: FeaturesConfig, tick_size: float, lot_size: float | None = None
    ) -> None:
        if not tick_size > 0:
            raise ValueError(f"tick_size must be > 0, got {tick_size}")
        bucket_lots = 0
        if cfg.vpin_bucket_volume > 0:
            if lot_size is None or not lot_size > 0:
                raise ValueError("a fixed vpin_bucket_volume needs the instrument's lot_size")
            bucket_lots = max(1, round(cfg.vpin_bucket_volume / lot_size))
        self.tick_size = float(tick_size)
        self.bucket_lots_configured = bucket_lots
        self.rejected_klines = 0
        windows = (cfg.vol_window, cfg.spread_window, cfg.gk_window, cfg.vpin_buckets)
        # apply_reset's arguments after the two arrays
        self._params = (
            cfg.imbalance_levels,
            max(1, round(cfg.vol_sample_s * 1e9)),  # sampling period, ns
            float(cfg.flow_halflife_s),
            float(cfg.queue_halflife_s),
            KLINE_S,
            bucket_lots,
            *windows,
        )
        n_float, n_int = compute_state_sizes(*windows)
        self._state: F64Array = np.zeros(n_float, np.float64)
        self._istate: I64Array = np.zeros(n_int, np.int64)
        self.x: F64Array = self._state[:N_FEATURES]
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (e.g. the instrument changed); the arrays are kept."""
        code = apply_reset(self._state, self._istate, *self._params)
        if code < 0:
            raise InvariantViolation(f"feature parameters rejected by kernel: {self._params}")
        self.rejected_klines = 0

    def kernel_state(self) -> tuple[F64Array, I64Array]:
        """(state, istate): the arrays the feature kernels update, for a caller that runs
        them inside a larger compiled call (`kernels.frame`); kept for the engine's life."""
        return self._state, self._istate

    def on_book_gap(self, ts_ns: int) -> None:
        """The book was lost at ts_ns (resync or disconnect): no feature will bridge the gap.

        The book features read NaN until the next `on_book`; the OFI/queue chain and the
        sampled-return chain restart there. Trade, kline and window state are kept.
        """
        apply_book_gap(self._state, self._istate, ts_ns)

    def on_trade(self, ts_ns: int, px_ticks: int, qty_lots: int, side: int) -> None:
        """Update the trade features with one public trade.

        Args:
            ts_ns: venue trade time, ns.
            px_ticks: trade price in ticks (not used by the current features).
            qty_lots: trade size in lots (> 0).
            side: aggressor side, codes.BUY or codes.SELL.

        Raises:
            InvariantViolation: qty_lots <= 0 or an unknown side (the hub never passes those).
        """
        code = update_trade(self._state, self._istate, ts_ns, qty_lots, side)
        if code < 0:
            raise InvariantViolation(
                f"trade rejected by feature kernel: px={px_ticks} qty={qty_lots} side={side}"
            )

    def on_kline(
        self,
        start_ns: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        confirm: bool,
    ) -> None:
        """Take a 1-minute kline push; only closed candles (confirm=True) count, once each.

        Args:
            start_ns: candle start, ns.
            open, high, low, close: candle prices (any one unit).
            volume: candle volume (not used by the current features).
            confirm: True when the candle is closed.
        """
        if not confirm:
            return
        code = update_kline(
            self._state,
            self._istate,
            start_ns,
            float(open),
            float(high),
            float(low),
            float(close),
        )
        if code < 0:
            self.rejected_klines += 1

    def values(self) -> dict[str, float]:
        """Every feature by name (see FEATURE_NAMES), NaN where not defined yet.

        Keys and units: mid_ticks, spread_ticks (ticks); spread_bps (bps); spread_z (z of the
        tick spread); imbalance_touch, imbalance_k ([-1, 1]); depth_ratio (ln of bid/ask
        depth); microprice_ticks (ticks); queue_pressure, queue_pressure_bid,
        queue_pressure_ask (lots/s); ofi, cum_delta_lots, delta_ew_lots (lots); trade_rate_hz
        (trades/s); avg_trade_lots (lots); rv_ticks_per_sqrt_s (ticks/sqrt(s)); rv_log_per_s,
        gk_log_per_s (log-price std per sqrt(s)); vpin ([0, 1]).
        """
        return dict(zip(FEATURE_NAMES, self.x.tolist(), strict=True))

    def ready(self) -> bool:
        """True once the volatility window holds at least READY_MIN_RETURNS sampled returns."""
        return int(self._istate[I_VOL_LOG_RING + 1]) >= READY_MIN_RETURNS

    def ticks_to_px(self, ticks: float) -> float:
        """A tick-denominated feature (mid, microprice) in price units."""
        return ticks * self.tick_size if math.isfinite(ticks) else math.nan

    @property
    def nbytes(self) -> int:
        """Bytes held by the state arrays (fixed for the engine's life)."""
        return int(self._state.nbytes + self._istate.nbytes)

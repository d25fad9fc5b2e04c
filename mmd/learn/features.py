"""The models' input vectors: names, order and the side orientation of the adverse model.

The vectors themselves are built by `mmd.kernels.models` (`apply_market_features`,
`apply_side_input`), the same kernels at training and at inference time. Pure: no I/O.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mmd.kernels import models as km

F64Array = npt.NDArray[np.float64]

# index i of the market vector = the kernels' M_* constant of the same name
MARKET_FEATURES: tuple[str, ...] = (
    "imbalance_touch",
    "imbalance_k",
    "depth_ratio",
    "microprice_offset_ticks",
    "queue_pressure",
    "ofi",
    "cum_delta_lots",
    "delta_ew_lots",
    "trade_rate_hz",
    "avg_trade_lots",
    "rv_ticks_per_sqrt_s",
    "rv_log_per_s",
    "gk_log_per_s",
    "spread_ticks",
    "spread_bps",
    "spread_z",
    "vpin",
    "time_of_day_sin",
    "time_of_day_cos",
    "inventory_lots",
)
assert len(MARKET_FEATURES) == km.N_MARKET

# signed bid-minus-ask / buy-minus-sell quantities: the adverse model sees them times the side
ORIENTED: frozenset[str] = frozenset(
    {
        "imbalance_touch",
        "imbalance_k",
        "depth_ratio",
        "microprice_offset_ticks",
        "queue_pressure",
        "ofi",
        "cum_delta_lots",
        "delta_ew_lots",
    }
)

# the adverse model's inputs: the market vector oriented by the aggressor's side, then the side
ADVERSE_FEATURES: tuple[str, ...] = (*MARKET_FEATURES, "side")


def orient_vector() -> F64Array:
    """float64[N_MARKET]: 1 where a market feature is multiplied by the side, else 0."""
    return np.array([1.0 if n in ORIENTED else 0.0 for n in MARKET_FEATURES])


def market_matrix(
    fx: F64Array, ts_ns: npt.NDArray[np.int64], inventory_lots: float = 0.0
) -> F64Array:
    """Market vectors (rows) from FeatureEngine `x` rows at their times.

    Market datasets hold no strategy state, so inventory_lots is a constant (0 by default): the
    column exists so that models trained later with a strategy's inventory keep the layout.
    """
    out = np.empty((fx.shape[0], km.N_MARKET))
    for i in range(fx.shape[0]):
        km.apply_market_features(out[i], fx[i], int(ts_ns[i]), inventory_lots)
    return out


def side_matrix(xm: F64Array, side: F64Array) -> F64Array:
    """Adverse-model inputs: each market row oriented by its aggressor side (+1 / -1)."""
    orient = orient_vector()
    out = np.empty((xm.shape[0], km.N_MARKET + 1))
    for i in range(xm.shape[0]):
        km.apply_side_input(out[i], xm[i], orient, float(side[i]))
    return out

"""The synthetic feed: a seeded generator of Bybit-V5-shaped frames (`market`), its latent
order-flow process (`flow`) and the truth it keeps on the side (`truth`). Pure: no clock, no I/O
but the truth sidecar's own file.
"""

from mmd.feeds.synthetic.market import SyntheticMarket
from mmd.feeds.synthetic.truth import (
    CALM,
    DOWN,
    REGIME_NAMES,
    TRUTH_SUFFIX,
    UP,
    VOLATILE,
    SyntheticTruth,
    load_truth,
    truth_path,
)

__all__ = [
    "CALM",
    "DOWN",
    "REGIME_NAMES",
    "TRUTH_SUFFIX",
    "UP",
    "VOLATILE",
    "SyntheticMarket",
    "SyntheticTruth",
    "load_truth",
    "truth_path",
]

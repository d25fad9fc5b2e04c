"""The synthetic feed's truth: what the generator knew that its frames do not say, and its
`.truth.npz` sidecar (written and read here). No generation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# hidden regimes, in the order of their integer codes in the truth
REGIME_NAMES = ("calm", "volatile", "up", "down")
CALM, VOLATILE, UP, DOWN = range(4)
TRUTH_SUFFIX = ".truth.npz"


class SyntheticTruth:
    """What the generator knew, collected while `frames(truth=...)` is iterated.

    Per trade item, in the order the frames carry them: `trade_ts_ms` (T), `trade_id` (i),
    `trade_buy` (taker side), `trade_px` (price), `trade_order` (the aggressive order it belongs
    to: one order may sweep several levels), `trade_informed`, `trade_mid` (latent mid when the
    order was executed) and `trade_future_mid` (the latent mid `horizon_s` after the trade: what
    an informed trader knew; NaN when informed_share is 0; for an information event's order, the
    value it trades toward) and `trade_episode` (the information episode, numbered from 1, whose
    informed order it belongs to; 0 for every other order). Per aggressive order (numbered from
    1 as in `trade_order`, whether or not it reached the book): `order_ts_ms`, `order_informed`,
    `order_buy`, `order_mid`, `order_future_mid` and `order_episode`. Regime path:
    `regime_start_ns` and `regime` (codes into REGIME_NAMES), a regime lasting until the next
    start. Information episodes (numbered from 1): `episode_start_ns` (the value's jump),
    `episode_end_ns` (the informed order that closed the gap; -1 while still open) and
    `episode_dir` (+1 the value jumped up, -1 down). A step's truth is appended when the step is
    generated, so it may run a few frames ahead of the consumer.
    """

    TRADE_FIELDS = (
        "trade_ts_ms",
        "trade_id",
        "trade_buy",
        "trade_px",
        "trade_order",
        "trade_informed",
        "trade_mid",
        "trade_future_mid",
        "trade_episode",
    )
    ORDER_FIELDS = (
        "order_ts_ms",
        "order_informed",
        "order_buy",
        "order_mid",
        "order_future_mid",
        "order_episode",
    )

    def __init__(self) -> None:
        self.horizon_s = math.nan
        self.trade_ts_ms: list[int] = []
        self.trade_id: list[str] = []
        self.trade_buy: list[bool] = []
        self.trade_px: list[float] = []
        self.trade_order: list[int] = []
        self.trade_informed: list[bool] = []
        self.trade_mid: list[float] = []
        self.trade_future_mid: list[float] = []
        self.trade_episode: list[int] = []
        self.order_ts_ms: list[int] = []
        self.order_informed: list[bool] = []
        self.order_buy: list[bool] = []
        self.order_mid: list[float] = []
        self.order_future_mid: list[float] = []
        self.order_episode: list[int] = []
        self.regime_start_ns: list[int] = []
        self.regime: list[int] = []
        self.episode_start_ns: list[int] = []
        self.episode_end_ns: list[int] = []
        self.episode_dir: list[int] = []

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The truth as numpy arrays (the sidecar's content)."""
        n_open = len(self.episode_start_ns) - len(self.episode_end_ns)
        return {
            "trade_ts_ms": np.asarray(self.trade_ts_ms, dtype=np.int64),
            "trade_id": np.asarray(self.trade_id, dtype=np.str_),
            "trade_buy": np.asarray(self.trade_buy, dtype=np.bool_),
            "trade_px": np.asarray(self.trade_px, dtype=np.float64),
            "trade_order": np.asarray(self.trade_order, dtype=np.int64),
            "trade_informed": np.asarray(self.trade_informed, dtype=np.bool_),
            "trade_mid": np.asarray(self.trade_mid, dtype=np.float64),
            "trade_future_mid": np.asarray(self.trade_future_mid, dtype=np.float64),
            "trade_episode": np.asarray(self.trade_episode, dtype=np.int64),
            "order_ts_ms": np.asarray(self.order_ts_ms, dtype=np.int64),
            "order_informed": np.asarray(self.order_informed, dtype=np.bool_),
            "order_buy": np.asarray(self.order_buy, dtype=np.bool_),
            "order_mid": np.asarray(self.order_mid, dtype=np.float64),
            "order_future_mid": np.asarray(self.order_future_mid, dtype=np.float64),
            "order_episode": np.asarray(self.order_episode, dtype=np.int64),
            "regime_start_ns": np.asarray(self.regime_start_ns, dtype=np.int64),
            "regime": np.asarray(self.regime, dtype=np.int8),
            "regime_names": np.asarray(REGIME_NAMES, dtype=np.str_),
            "episode_start_ns": np.asarray(self.episode_start_ns, dtype=np.int64),
            "episode_end_ns": np.asarray(self.episode_end_ns + [-1] * n_open, dtype=np.int64),
            "episode_dir": np.asarray(self.episode_dir, dtype=np.int8),
            "horizon_s": np.asarray(self.horizon_s, dtype=np.float64),
        }

    def save(self, path: str | Path) -> Path:
        """Write the arrays as a compressed .npz (read back with `load_truth`)."""
        path = Path(path)
        with open(path, "wb") as fh:  # a file object: numpy would append .npz to a name
            # numpy's stub types **kwds as if they could be allow_pickle: bool
            np.savez_compressed(fh, **self.arrays())  # type: ignore[arg-type]
        return path


def truth_path(recording: str | Path) -> Path:
    """The truth sidecar of a recording: `<recording>.truth.npz`."""
    return Path(f"{recording}{TRUTH_SUFFIX}")


def load_truth(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    """The arrays of a truth sidecar (see SyntheticTruth)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}

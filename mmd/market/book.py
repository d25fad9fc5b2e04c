"""L2Book: owns one symbol's preallocated bid/ask arrays and their level counts and update ids.

The daemon applies frames to it with the compiled frame call (`mmd.kernels.frame`, driven by
`mmd.market.hub`); the local venue applies its replayed frames with `apply_snapshot` /
`apply_delta`. It does not check update-id continuity or crossing policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from mmd.errors import InvariantViolation
from mmd.kernels.book import apply_levels, compute_mid_ticks, compute_spread_ticks

I64Array = npt.NDArray[np.int64]
_INT64 = np.dtype(np.int64)


def _as_i64(values: npt.ArrayLike, name: str) -> I64Array:
    # kernels take C-contiguous 1-D int64 only; refuse floats rather than truncate them silently
    if (
        type(values) is np.ndarray
        and values.dtype is _INT64
        and values.ndim == 1
        and values.flags.c_contiguous
    ):
        return values
    arr = np.asarray(values)
    if arr.dtype != np.int64:
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected integer ticks/lots, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


class L2Book:
    """An L2 order book of int64 ticks and lots with a fixed number of levels per side.

    Each side keeps its best `capacity` levels, best first (bids descending, asks ascending);
    only levels `[0, n_bids)` / `[0, n_asks)` are meaningful. The arrays are allocated once, so
    `nbytes` never changes.

    Args:
        capacity: levels kept per side (>= 1).

    Attributes:
        bid_px, bid_qty, ask_px, ask_qty: int64[capacity] prices in ticks and sizes in lots.
        n_bids, n_asks: live level counts.
        u: venue update id of the last applied message, -1 when empty.
        seq: venue cross sequence of the last applied message, -1 when empty.
        ts_exch_ns: venue timestamp (ns) of the last applied message, -1 when empty.
    """

    __slots__ = (
        "ask_px",
        "ask_qty",
        "bid_px",
        "bid_qty",
        "capacity",
        "n_asks",
        "n_bids",
        "seq",
        "ts_exch_ns",
        "u",
    )

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"L2Book capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.bid_px: I64Array = np.zeros(capacity, np.int64)
        self.bid_qty: I64Array = np.zeros(capacity, np.int64)
        self.ask_px: I64Array = np.zeros(capacity, np.int64)
        self.ask_qty: I64Array = np.zeros(capacity, np.int64)
        self.n_bids = 0
        self.n_asks = 0
        self.u = -1
        self.seq = -1
        self.ts_exch_ns = -1

    def clear(self) -> None:
        """Empty both sides and forget the update id (the arrays are kept)."""
        self.n_bids = 0
        self.n_asks = 0
        self.u = -1
        self.seq = -1
        self.ts_exch_ns = -1

    def _commit(self, n_b: int, n_a: int, u: int, seq: int, ts_exch_ns: int, what: str) -> None:
        if n_b < 0 or n_a < 0:
            self.clear()
            raise InvariantViolation(
                f"book {what} u={u} rejected by kernel (codes bids={n_b} asks={n_a}): "
                "negative size or mismatched lengths"
            )
        self.n_bids = int(n_b)
        self.n_asks = int(n_a)
        self.u = u
        self.seq = seq
        self.ts_exch_ns = ts_exch_ns

    def apply_snapshot(
        self,
        bid_px: npt.ArrayLike,
        bid_qty: npt.ArrayLike,
        ask_px: npt.ArrayLike,
        ask_qty: npt.ArrayLike,
        *,
        u: int,
        seq: int,
        ts_exch_ns: int,
    ) -> None:
        """Replace the whole book with a snapshot (any order; qty 0 skipped; best levels kept).

        Raises:
            InvariantViolation: a negative size or mismatched lengths (the book is cleared).
        """
        # a snapshot is a batch of inserts into an empty side
        n_b = apply_levels(
            self.bid_px,
            self.bid_qty,
            0,
            _as_i64(bid_px, "bid_px"),
            _as_i64(bid_qty, "bid_qty"),
            True,
        )
        n_a = apply_levels(
            self.ask_px,
            self.ask_qty,
            0,
            _as_i64(ask_px, "ask_px"),
            _as_i64(ask_qty, "ask_qty"),
            False,
        )
        self._commit(n_b, n_a, u, seq, ts_exch_ns, "snapshot")

    def apply_delta(
        self,
        bid_px: npt.ArrayLike,
        bid_qty: npt.ArrayLike,
        ask_px: npt.ArrayLike,
        ask_qty: npt.ArrayLike,
        *,
        u: int,
        seq: int,
        ts_exch_ns: int,
    ) -> None:
        """Apply absolute-size level updates to both sides (qty 0 deletes; any order).

        Raises:
            InvariantViolation: a negative size or mismatched lengths (the book is cleared, so a
                half-applied delta is never visible).
        """
        n_b = apply_levels(
            self.bid_px,
            self.bid_qty,
            self.n_bids,
            _as_i64(bid_px, "bid_px"),
            _as_i64(bid_qty, "bid_qty"),
            True,
        )
        n_a = apply_levels(
            self.ask_px,
            self.ask_qty,
            self.n_asks,
            _as_i64(ask_px, "ask_px"),
            _as_i64(ask_qty, "ask_qty"),
            False,
        )
        self._commit(n_b, n_a, u, seq, ts_exch_ns, "delta")

    def best_bid(self) -> tuple[int, int] | None:
        """(px_ticks, qty_lots) of the best bid, or None when there are no bids."""
        if self.n_bids == 0:
            return None
        return int(self.bid_px[0]), int(self.bid_qty[0])

    def best_ask(self) -> tuple[int, int] | None:
        """(px_ticks, qty_lots) of the best ask, or None when there are no asks."""
        if self.n_asks == 0:
            return None
        return int(self.ask_px[0]), int(self.ask_qty[0])

    def mid_ticks(self) -> float:
        """(best bid + best ask) / 2 in ticks, NaN when a side is empty."""
        return float(compute_mid_ticks(self.bid_px, self.n_bids, self.ask_px, self.n_asks))

    def spread_ticks(self) -> float:
        """Best ask - best bid in ticks, NaN when a side is empty."""
        return float(compute_spread_ticks(self.bid_px, self.n_bids, self.ask_px, self.n_asks))

    def top(self, n: int) -> tuple[I64Array, I64Array, I64Array, I64Array]:
        """Copies of the best n levels of each side (fewer when a side has fewer).

        Returns:
            (bid_px, bid_qty, ask_px, ask_qty) int64 arrays, best first.
        """
        if n < 0:
            raise ValueError(f"top(n) needs n >= 0, got {n}")
        nb = min(n, self.n_bids)
        na = min(n, self.n_asks)
        return (
            self.bid_px[:nb].copy(),
            self.bid_qty[:nb].copy(),
            self.ask_px[:na].copy(),
            self.ask_qty[:na].copy(),
        )

    def levels(self, n: int) -> dict[str, Any]:
        """The best n levels as plain JSON-ready data.

        Returns:
            {"bids": [[px_ticks, qty_lots], ...], "asks": [...], "u": int, "seq": int}.
        """
        bpx, bqty, apx, aqty = self.top(n)
        return {
            "bids": np.column_stack((bpx, bqty)).tolist(),
            "asks": np.column_stack((apx, aqty)).tolist(),
            "u": self.u,
            "seq": self.seq,
        }

    @property
    def nbytes(self) -> int:
        """Bytes held by the level arrays (fixed for the book's life)."""
        arrays = (self.bid_px, self.bid_qty, self.ask_px, self.ask_qty)
        return sum(int(a.nbytes) for a in arrays)

"""L2Book: owns one symbol's preallocated bid/ask arrays and their level counts and update ids.

State and reads only: frames are applied to it by the compiled frame call (`mmd.kernels.frame`,
driven by `mmd.market.hub`). It does not check update-id continuity or crossing policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from mmd.kernels.book import compute_mid_ticks, compute_spread_ticks

I64Array = npt.NDArray[np.int64]


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

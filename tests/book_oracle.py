"""Step-by-step book and feature updates for tests and benchmarks: one snapshot or delta at a time
into an `L2Book`, the book features after it. The product applies a whole frame in one compiled
call (`mmd.kernels.frame`); these are the reference steps the tests compare it with."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mmd.errors import InvariantViolation
from mmd.kernels.book import apply_levels, compute_is_crossed
from mmd.kernels.features import update_book
from mmd.market.book import L2Book
from mmd.market.features import FeatureEngine

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


def _commit(book: L2Book, n_b: int, n_a: int, u: int, seq: int, ts_exch_ns: int, what: str) -> None:
    if n_b < 0 or n_a < 0:
        book.clear()
        raise InvariantViolation(
            f"book {what} u={u} rejected by kernel (codes bids={n_b} asks={n_a}): "
            "negative size or mismatched lengths"
        )
    book.n_bids = int(n_b)
    book.n_asks = int(n_a)
    book.u = u
    book.seq = seq
    book.ts_exch_ns = ts_exch_ns


def apply_snapshot(
    book: L2Book,
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
        book.bid_px, book.bid_qty, 0, _as_i64(bid_px, "bid_px"), _as_i64(bid_qty, "bid_qty"), True
    )
    n_a = apply_levels(
        book.ask_px, book.ask_qty, 0, _as_i64(ask_px, "ask_px"), _as_i64(ask_qty, "ask_qty"), False
    )
    _commit(book, n_b, n_a, u, seq, ts_exch_ns, "snapshot")


def apply_delta(
    book: L2Book,
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
        book.bid_px,
        book.bid_qty,
        book.n_bids,
        _as_i64(bid_px, "bid_px"),
        _as_i64(bid_qty, "bid_qty"),
        True,
    )
    n_a = apply_levels(
        book.ask_px,
        book.ask_qty,
        book.n_asks,
        _as_i64(ask_px, "ask_px"),
        _as_i64(ask_qty, "ask_qty"),
        False,
    )
    _commit(book, n_b, n_a, u, seq, ts_exch_ns, "delta")


def is_crossed(book: L2Book) -> bool:
    """True when both sides have levels and best bid >= best ask."""
    return bool(compute_is_crossed(book.bid_px, book.n_bids, book.ask_px, book.n_asks))


def features_on_book(engine: FeatureEngine, book: L2Book, ts_ns: int) -> None:
    """Update the book features after `book` changed at ts_ns (venue time, ns); also advances
    the sampling clock (clock points before ts_ns are sampled with the book before it)."""
    state, istate = engine.kernel_state()
    code = update_book(
        state,
        istate,
        book.bid_px,
        book.bid_qty,
        book.n_bids,
        book.ask_px,
        book.ask_qty,
        book.n_asks,
        ts_ns,
    )
    if code < 0:
        raise InvariantViolation(
            f"book features rejected by kernel (code {code}): "
            f"n_bids={book.n_bids} n_asks={book.n_asks}"
        )

"""Step-by-step references for tests and benchmarks: the book features after one snapshot or
delta applied to an `L2Book` (`L2Book.apply_snapshot` / `apply_delta`), and `replay_book_tops`
(the event cache walked with the book-sync kernel, the tops recorded). The product applies a
whole frame in one compiled call (`mmd.kernels.frame`); these are the references the tests
compare it with. Not cached."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.errors import InvariantViolation
from mmd.kernels.book import compute_is_crossed
from mmd.kernels.book_sync import (
    SYNC_N_ASKS,
    SYNC_N_BIDS,
    SYNC_SYNCED,
    apply_cached_frame,
    reset_book_sync,
)
from mmd.kernels.features import I_VPIN_BUCKET_LOTS, update_book
from mmd.market.book import L2Book
from mmd.market.features import FeatureEngine
from mmd.model.codes import EV_BOOK, EV_INSTRUMENT, INST_CHANGED, INST_NEW

I64Array = npt.NDArray[np.int64]
_INT64 = np.dtype(np.int64)


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


def vpin_bucket_lots(engine: FeatureEngine) -> int:
    """The VPIN bucket volume in lots (0 while auto mode is still measuring it)."""
    return int(engine.kernel_state()[1][I_VPIN_BUCKET_LOTS])


@njit(nogil=True)
def replay_book_tops(
    books_px: I64Array,
    books_qty: I64Array,
    states: I64Array,
    stream: I64Array,
    frames: I64Array,
    lv_px: I64Array,
    lv_qty: I64Array,
    inst_flags: I64Array,
    out_top: I64Array,
    out_state: I64Array,
) -> int:
    """Walk the merged event stream, rebuild every symbol's book, record its top after each
    book frame (the reference loop: what a backtest loop does before its strategy).

    Mutates: books_px, books_qty (int64[n_sym, 2, capacity]), states (int64[n_sym,
    SYNC_WIDTH]), out_top (int64[n_frames, 4, n_top]: bid px, bid qty, ask px, ask qty; 0 past
    the live levels), out_state (int64[n_frames, 4]: action, synced, n_bids, n_asks).

    Args:
        stream: int64[n_events, 3] the event cache's (ev_kind, ev_sym, ev_idx) columns.
        frames: int64[n_frames, 6] (flags, u, seq, first level row, first ask row, end row)
            per book frame (EventArrays.book_table()).
        lv_px, lv_qty: int64 level rows in ticks and lots.
        inst_flags: int64 INST_* bits per instrument row.

    Returns:
        The number of book frames walked.
    """
    n_top = out_top.shape[2]
    walked = 0
    for i in range(stream.shape[0]):
        kind = stream[i, 0]
        sym = stream[i, 1]
        idx = stream[i, 2]
        if kind == EV_INSTRUMENT:
            if inst_flags[idx] & (INST_NEW | INST_CHANGED):
                reset_book_sync(states[sym])
            continue
        if kind != EV_BOOK:
            continue
        st = states[sym]
        action = apply_cached_frame(books_px, books_qty, states, sym, frames, idx, lv_px, lv_qty)
        out_state[idx, 0] = action
        out_state[idx, 1] = st[SYNC_SYNCED]
        out_state[idx, 2] = st[SYNC_N_BIDS]
        out_state[idx, 3] = st[SYNC_N_ASKS]
        for side in range(2):
            n = st[SYNC_N_BIDS + side]
            for j in range(n_top):
                if j < n:
                    out_top[idx, 2 * side, j] = books_px[sym, side, j]
                    out_top[idx, 2 * side + 1, j] = books_qty[sym, side, j]
                else:
                    out_top[idx, 2 * side, j] = 0
                    out_top[idx, 2 * side + 1, j] = 0
        walked += 1
    return walked

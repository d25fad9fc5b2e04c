"""Book sync kernels: one symbol's update-id continuity and book apply, over event-cache arrays.

The compiled twin of `mmd.feeds.book_sync.BookSync` plus `MarketHub._on_book`'s book steps, so a
jitted loop over the event cache (`mmd.feeds.convert.events`) rebuilds exactly the book the live
pipeline builds. Owns no state: the caller preallocates one symbol's book and its sync row.

Sync row (int64[SYNC_WIDTH]): `[last_u, last_seq, synced (0/1), n_bids, n_asks]`.
Book (int64[2, capacity] prices and sizes): row 0 bids (best = highest first), row 1 asks.
"""

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.kernels.book import apply_levels, compute_is_crossed
from mmd.model.codes import (
    BOOK_BAD,
    BOOK_REST,
    BOOK_SNAPSHOT,
    ERR_BAD_INPUT,
    SYNC_APPLY_DELTA,
    SYNC_APPLY_SNAPSHOT,
    SYNC_BAD_FRAME,
    SYNC_CROSSED,
    SYNC_DROP,
    SYNC_RESYNC,
)

I64 = npt.NDArray[np.int64]

SYNC_LAST_U = 0
SYNC_LAST_SEQ = 1
SYNC_SYNCED = 2
SYNC_N_BIDS = 3
SYNC_N_ASKS = 4
SYNC_WIDTH = 5


@njit(cache=True, nogil=True)
def reset_book_sync(state: I64) -> None:
    """Forget the book and its continuity (a new or re-stepped instrument).

    Mutates: state (int64[SYNC_WIDTH]): last_u = last_seq = -1, unsynced, no levels.
    """
    state[SYNC_LAST_U] = -1
    state[SYNC_LAST_SEQ] = -1
    state[SYNC_SYNCED] = 0
    state[SYNC_N_BIDS] = 0
    state[SYNC_N_ASKS] = 0


@njit(cache=True, nogil=True)
def advance_book_sync(state: I64, flags: int, u: int, seq: int) -> int:
    """The continuity decision for one book frame (BookSync.on_snapshot / on_delta).

    A snapshot resets, except a REST one older (by seq) than a synced book, which is dropped;
    a delta needs `u == last_u + 1`: older or repeated `u` (or no snapshot yet) is dropped,
    a jump unsyncs the book until the next snapshot.

    Mutates: state[last_u, last_seq, synced].

    Args:
        state: int64[SYNC_WIDTH] sync row of the symbol.
        flags: the frame's BOOK_* bits (BOOK_SNAPSHOT, BOOK_REST).
        u: venue update id of the frame.
        seq: venue cross sequence (0 when absent).

    Returns:
        SYNC_APPLY_SNAPSHOT, SYNC_APPLY_DELTA, SYNC_DROP or SYNC_RESYNC.
    """
    if flags & BOOK_SNAPSHOT:
        if (
            (flags & BOOK_REST)
            and state[SYNC_SYNCED] == 1
            and seq != 0
            and seq < state[SYNC_LAST_SEQ]
        ):
            return SYNC_DROP
        state[SYNC_SYNCED] = 1
        state[SYNC_LAST_U] = u
        state[SYNC_LAST_SEQ] = seq
        return SYNC_APPLY_SNAPSHOT
    if state[SYNC_SYNCED] == 0:
        return SYNC_DROP
    if u <= state[SYNC_LAST_U]:
        return SYNC_DROP
    if u != state[SYNC_LAST_U] + 1:
        state[SYNC_SYNCED] = 0
        return SYNC_RESYNC
    state[SYNC_LAST_U] = u
    state[SYNC_LAST_SEQ] = seq
    return SYNC_APPLY_DELTA


@njit(cache=True, nogil=True)
def apply_book_frame(
    book_px: I64,
    book_qty: I64,
    state: I64,
    flags: int,
    u: int,
    seq: int,
    upd_px: I64,
    upd_qty: I64,
    n_bid_upd: int,
) -> int:
    """One book frame, as the live pipeline takes it: sync decision, apply, crossed check.

    The frame's level rows are bids first, then asks (the event cache's order), and are applied
    as one batch per side (`apply_levels`: deletions before insertions), never row by row.
    A dropped or resynced frame leaves the levels as they were (they stay stale until the
    next snapshot, as in MarketHub); so does a crossed book, which is kept but unsynced.

    Mutates: book_px, book_qty (int64[2, capacity]), state (int64[SYNC_WIDTH]).

    Args:
        book_px: int64[2, capacity] prices in ticks, row 0 bids, row 1 asks, best first.
        book_qty: int64[2, capacity] sizes in lots, parallel to book_px.
        state: int64[SYNC_WIDTH] sync row of the symbol.
        flags: the frame's BOOK_* bits.
        u: venue update id; seq: venue cross sequence.
        upd_px: int64[k] the frame's level prices in ticks (bids then asks).
        upd_qty: int64[k] the frame's level sizes in lots (0 deletes).
        n_bid_upd: how many of the k rows are bids.

    Returns:
        SYNC_APPLY_SNAPSHOT or SYNC_APPLY_DELTA (applied), SYNC_DROP, SYNC_RESYNC,
        SYNC_BAD_FRAME (refused levels: unsynced), SYNC_CROSSED (applied, then unsynced), or
        ERR_BAD_INPUT (the book kernel refused the levels: the book is cleared and unsynced).
    """
    action = advance_book_sync(state, flags, u, seq)
    if action in (SYNC_DROP, SYNC_RESYNC):
        return action
    if flags & BOOK_BAD:
        state[SYNC_SYNCED] = 0
        return SYNC_BAD_FRAME
    k = upd_px.shape[0]
    n_b0 = 0 if action == SYNC_APPLY_SNAPSHOT else state[SYNC_N_BIDS]
    n_a0 = 0 if action == SYNC_APPLY_SNAPSHOT else state[SYNC_N_ASKS]
    n_b = apply_levels(book_px[0], book_qty[0], n_b0, upd_px[:n_bid_upd], upd_qty[:n_bid_upd], True)
    n_a = apply_levels(
        book_px[1], book_qty[1], n_a0, upd_px[n_bid_upd:k], upd_qty[n_bid_upd:k], False
    )
    if n_b < 0 or n_a < 0:
        state[SYNC_N_BIDS] = 0
        state[SYNC_N_ASKS] = 0
        state[SYNC_SYNCED] = 0
        return ERR_BAD_INPUT
    state[SYNC_N_BIDS] = n_b
    state[SYNC_N_ASKS] = n_a
    if compute_is_crossed(book_px[0], n_b, book_px[1], n_a):
        state[SYNC_SYNCED] = 0
        return SYNC_CROSSED
    return action


@njit(cache=True, nogil=True)
def apply_cached_frame(
    books_px: I64,
    books_qty: I64,
    states: I64,
    sym: int,
    frames: I64,
    idx: int,
    lv_px: I64,
    lv_qty: I64,
) -> int:
    """Book frame idx of the event cache through apply_book_frame, for symbol sym.

    Mutates: books_px[sym], books_qty[sym] (int64[n_sym, 2, capacity]), states[sym]
    (int64[n_sym, SYNC_WIDTH]).

    Args:
        frames: int64[n_frames, 6] (flags, u, seq, first level row, first ask row, end row).
        idx: the frame's row in frames.
        lv_px, lv_qty: int64 level rows in ticks and lots.

    Returns:
        apply_book_frame's code.
    """
    r0 = frames[idx, 3]
    r1 = frames[idx, 5]
    return apply_book_frame(
        books_px[sym],
        books_qty[sym],
        states[sym],
        frames[idx, 0],
        frames[idx, 1],
        frames[idx, 2],
        lv_px[r0:r1],
        lv_qty[r0:r1],
        frames[idx, 4] - r0,
    )

"""Book kernels: merge level updates into one sorted int64 book side, and read the top of book.

Owns no state (`mmd.market.book.L2Book` owns the arrays). A side is two parallel arrays,
`side_px` (int64 ticks) and `side_qty` (int64 lots), best level first: bids by descending price,
asks by ascending price. Levels `[0, n)` are live and have qty > 0; slots from n on are don't-care.
A side holds at most `capacity = len(side_px)` levels and always keeps the best ones: levels
pushed past the capacity are forgotten until the next snapshot.
"""

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.model.codes import ERR_BAD_INPUT

I64 = npt.NDArray[np.int64]


@njit(cache=True, nogil=True)
def _is_better(px_a: int, px_b: int, is_bid: bool) -> bool:
    # a bid is better when higher, an ask when lower
    if is_bid:
        return px_a > px_b
    return px_a < px_b


@njit(cache=True, nogil=True)
def _find_level(side_px: I64, n_levels: int, px: int, is_bid: bool) -> int:
    # binary search: first index in [0, n_levels) whose price is not better than px
    lo = 0
    hi = n_levels
    while lo < hi:
        mid = (lo + hi) >> 1
        if _is_better(side_px[mid], px, is_bid):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def apply_levels(
    side_px: I64, side_qty: I64, n_levels: int, upd_px: I64, upd_qty: I64, is_bid: bool
) -> int:
    """Merge absolute-size level updates into one sorted book side, in place.

    Each update sets the size at a price: qty 0 deletes the level (a no-op when the price is
    absent), an unknown price with qty > 0 inserts a level, a known price gets its size
    replaced. Updates may come in any order and the batch is applied as a whole, so the result
    does not depend on their order; when a price repeats in one batch the last occurrence wins.
    Deletions are applied before insertions, then the side keeps its best `capacity` levels:
    when full, an insert worse than every level is dropped and an insert inside the book pushes
    the worst level out.

    Mutates: side_px, side_qty (only when the return value is >= 0).

    Args:
        side_px: int64[capacity] level prices in ticks, best first (bids descending, asks
            ascending).
        side_qty: int64[capacity] level sizes in lots, parallel to side_px.
        n_levels: number of live levels in side_px/side_qty, 0 <= n_levels <= capacity.
        upd_px: int64[k] update prices in ticks, any order.
        upd_qty: int64[k] absolute update sizes in lots (>= 0), parallel to upd_px.
        is_bid: True for the bid side (descending), False for the ask side (ascending).

    Returns:
        The new level count (0..capacity), or ERR_BAD_INPUT when a qty is negative, the
        array lengths mismatch or n_levels is out of range; the side is then left untouched.
    """
    cap: int = side_px.shape[0]
    k: int = upd_px.shape[0]
    if side_qty.shape[0] != cap or upd_qty.shape[0] != k or n_levels < 0 or n_levels > cap:
        return ERR_BAD_INPUT
    for i in range(k):
        if upd_qty[i] < 0:
            return ERR_BAD_INPUT
    n = n_levels

    # pass 1: sizes of known prices are set in place (qty 0 marks a deletion); unknown prices
    # are remembered. Positions stay valid because only sizes change in this pass.
    ins = np.empty(k, np.int64)
    n_ins = 0
    first_del = n
    for i in range(k):
        px = upd_px[i]
        pos = _find_level(side_px, n, px, is_bid)
        if pos < n and side_px[pos] == px:
            side_qty[pos] = upd_qty[i]
            if upd_qty[i] == 0 and pos < first_del:
                first_del = pos
        else:
            ins[n_ins] = i
            n_ins += 1

    # pass 2: squeeze out deleted levels (a later update in the batch may have revived one)
    if first_del < n:
        w = first_del
        for r in range(first_del, n):
            if side_qty[r] != 0:
                side_px[w] = side_px[r]
                side_qty[w] = side_qty[r]
                w += 1
        n = w
    if n_ins == 0:
        return n

    # pass 3: put the inserts in book order, one per price (last wins), without qty 0.
    # Venue deltas usually arrive sorted, which skips the sort.
    in_order = True
    for j in range(1, n_ins):
        if not _is_better(upd_px[ins[j - 1]], upd_px[ins[j]], is_bid):
            in_order = False
            break
    m = 0
    if in_order:
        for j in range(n_ins):
            src = ins[j]
            if upd_qty[src] > 0:
                ins[m] = src
                m += 1
    else:
        keys = np.empty(n_ins, np.int64)
        for j in range(n_ins):
            keys[j] = upd_px[ins[j]]
        order = np.argsort(keys, kind="mergesort")  # stable: equal prices keep batch order
        uniq = np.empty(n_ins, np.int64)
        for j in range(n_ins):
            if j + 1 < n_ins and keys[order[j + 1]] == keys[order[j]]:
                continue  # a later update of the same price wins
            src = ins[order[j]]
            if upd_qty[src] > 0:
                uniq[m] = src
                m += 1
        # uniq is ascending by price: that is book order for asks, reversed for bids
        for j in range(m):
            ins[j] = uniq[m - 1 - j] if is_bid else uniq[j]
    if m == 0:
        return n

    # pass 4: merge from the back so every write lands at or after the slot it reads from;
    # writes at or past the capacity are the worst levels and are dropped.
    total = n + m
    i = n - 1
    j = m - 1
    w = total - 1
    while j >= 0:
        src = ins[j]
        if i >= 0 and _is_better(upd_px[src], side_px[i], is_bid):
            if w < cap:
                side_px[w] = side_px[i]
                side_qty[w] = side_qty[i]
            i -= 1
        else:
            if w < cap:
                side_px[w] = upd_px[src]
                side_qty[w] = upd_qty[src]
            j -= 1
        w -= 1
    return min(total, cap)


@njit(cache=True, nogil=True)
def compute_is_crossed(bid_px: I64, n_bid: int, ask_px: I64, n_ask: int) -> bool:
    """Whether the book is crossed or locked (best bid >= best ask). Pure.

    Args:
        bid_px: int64[capacity] bid prices in ticks, best (highest) first.
        n_bid: number of live bid levels.
        ask_px: int64[capacity] ask prices in ticks, best (lowest) first.
        n_ask: number of live ask levels.

    Returns:
        True when both sides have levels and best bid >= best ask; False otherwise.
    """
    if n_bid <= 0 or n_ask <= 0:
        return False
    return bool(bid_px[0] >= ask_px[0])


@njit(cache=True, nogil=True)
def compute_mid_ticks(bid_px: I64, n_bid: int, ask_px: I64, n_ask: int) -> float:
    """Mid price in ticks, (best bid + best ask) / 2 as float64. Pure.

    Args:
        bid_px: int64[capacity] bid prices in ticks, best (highest) first.
        n_bid: number of live bid levels.
        ask_px: int64[capacity] ask prices in ticks, best (lowest) first.
        n_ask: number of live ask levels.

    Returns:
        The mid in ticks (a .5 fraction for an odd spread), or NaN when a side is empty.
    """
    if n_bid <= 0 or n_ask <= 0:
        return np.nan
    return 0.5 * (float(bid_px[0]) + float(ask_px[0]))


@njit(cache=True, nogil=True)
def compute_spread_ticks(bid_px: I64, n_bid: int, ask_px: I64, n_ask: int) -> float:
    """Spread in ticks, best ask - best bid as float64. Pure.

    Args:
        bid_px: int64[capacity] bid prices in ticks, best (highest) first.
        n_bid: number of live bid levels.
        ask_px: int64[capacity] ask prices in ticks, best (lowest) first.
        n_ask: number of live ask levels.

    Returns:
        The spread in ticks (<= 0 on a crossed or locked book), or NaN when a side is empty.
    """
    if n_bid <= 0 or n_ask <= 0:
        return np.nan
    return float(ask_px[0] - bid_px[0])

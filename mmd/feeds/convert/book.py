"""The converters' order book: one side of a full book (price -> size), kept sorted best first.

Pure state, no I/O. The Binance converter keeps it in int ticks/lots and reads the changes of
its top-`depth` view; the hftbacktest converter keeps it in float price/size units.
"""

from __future__ import annotations

import bisect
from typing import Generic, TypeVar

# prices and sizes: int ticks/lots, or floats in price/base-coin units
N = TypeVar("N", int, float)


class BookSide(Generic[N]):
    """One side of the full book. Keys are sign * px so that ascending = best first."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, *, is_bid: bool) -> None:
        self.sign = -1 if is_bid else 1
        self.levels: dict[N, N] = {}  # key -> qty
        self.keys: list[N] = []  # sorted ascending

    def __len__(self) -> int:
        return len(self.keys)

    def reset(self, pairs: list[tuple[N, N]]) -> None:
        """Replace the side with these (px, qty) levels (qty 0 ones are left out)."""
        self.levels = {self.sign * p: q for p, q in pairs if q}
        self.keys = sorted(self.levels)

    def set(self, px: N, qty: N) -> None:
        """Set one level's absolute size (0 deletes it)."""
        k = self.sign * px
        cur = self.levels.get(k)
        if qty:
            if cur is None:
                bisect.insort(self.keys, k)
            self.levels[k] = qty
        elif cur is not None:
            del self.levels[k]
            del self.keys[bisect.bisect_left(self.keys, k)]

    def farthest(self) -> N | None:
        """The price of the level farthest from the touch (lowest bid, highest ask), if any."""
        return self.sign * self.keys[-1] if self.keys else None

    def top(self, depth: int) -> list[tuple[N, N]]:
        """(px, qty) of the best `depth` levels, best first."""
        s, lv = self.sign, self.levels
        return [(s * k, lv[k]) for k in self.keys[:depth]]

    def apply(self, changes: list[tuple[N, N]], depth: int) -> list[tuple[N, N]]:
        """Apply absolute sizes (0 deletes) and return how the top-`depth` view changed.

        Returns:
            (px, qty) best first: changed or entering levels with their size,
            levels gone from the view with 0.
        """
        keys, levels, sign = self.keys, self.levels, self.sign
        old_edge = keys[depth - 1] if len(keys) >= depth else None  # None: every level shows
        before: dict[N, N] = {}
        for px, qty in changes:
            k = sign * px
            cur = levels.get(k, 0)
            before.setdefault(k, cur)
            if qty:
                if not cur:
                    bisect.insort(keys, k)
                levels[k] = qty
            elif cur:
                del levels[k]
                del keys[bisect.bisect_left(keys, k)]
        new_edge = keys[depth - 1] if len(keys) >= depth else None
        out: dict[N, N] = {}
        for k, old_q in before.items():
            new_q = levels.get(k, 0)
            was = bool(old_q) and (old_edge is None or k <= old_edge)
            now = bool(new_q) and (new_edge is None or k <= new_edge)
            if now and (not was or old_q != new_q):
                out[k] = new_q
            elif was and not now:
                out[k] = 0
        # untouched levels pushed across the view's edge by inserts/deletes above them
        if old_edge != new_edge:
            old_end = len(keys) if old_edge is None else bisect.bisect_right(keys, old_edge)
            new_end = len(keys) if new_edge is None else bisect.bisect_right(keys, new_edge)
            if new_end > old_end:  # the view reaches further: levels entered
                for k in keys[old_end:new_end]:
                    if k not in before:
                        out[k] = levels[k]
            else:  # the view got shorter: levels left
                for k in keys[new_end:old_end]:
                    if k not in before:
                        out[k] = 0
        return [(sign * k, out[k]) for k in sorted(out)]

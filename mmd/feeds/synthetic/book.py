"""The synthetic book's side: `depth` contiguous price levels from the touch, with the changes of
the current step. Pure state; the sizes are drawn by the generator (`market`).
"""

from __future__ import annotations


class ContiguousSide:
    """One book side: exactly `depth` contiguous price levels starting at `best`.

    `sign` is +1 for asks (prices grow away from the touch) and -1 for bids. `depleted` is set
    when trades emptied a level; until a refill the best may stay behind the target touch.
    """

    __slots__ = ("before", "best", "depleted", "depth", "sign", "sizes")

    def __init__(self, sign: int, depth: int) -> None:
        self.sign = sign
        self.depth = depth
        self.best = 0
        self.depleted = False
        self.sizes: dict[int, int] = {}
        self.before: dict[int, int] = {}  # px -> size at the start of the step (0 = absent)

    def price(self, level: int) -> int:
        return self.best + self.sign * level

    def set(self, px: int, qty: int) -> None:
        if px not in self.before:
            self.before[px] = self.sizes.get(px, 0)
        if qty:
            self.sizes[px] = qty
        else:
            self.sizes.pop(px, None)

    def changes(self) -> list[tuple[int, int]]:
        """(px, qty) that differ from the start of the step, best first; then forget them."""
        out = [
            (px, self.sizes.get(px, 0))
            for px, old in self.before.items()
            if self.sizes.get(px, 0) != old
        ]
        self.before = {}
        out.sort(key=lambda pq: self.sign * pq[0])
        return out

"""Markouts: side * (mid at fill time + h - fill price), in ticks, per symbol and horizon.

Pure: fed fills and mids on exchange time; keeps running sums for the metrics.
"""

from __future__ import annotations

import collections

from mmd.model.codes import NS_PER_S
from mmd.model.events import OrderFilled

# markout horizons (seconds)
MARKOUT_HORIZONS_S = (1, 5, 30)


class Markouts:
    """Fills waiting for their horizons, and the running [sum, count] per (symbol, horizon)."""

    def __init__(self) -> None:
        self._wait: dict[tuple[str, int], collections.deque[tuple[int, int, int]]] = {}
        self.sums: dict[tuple[str, int], list[float]] = {}

    def on_fill(self, fill: OrderFilled) -> None:
        """Start waiting for this fill's horizons."""
        for h in MARKOUT_HORIZONS_S:
            self._wait.setdefault((fill.symbol, h), collections.deque()).append(
                (fill.ts_exch_ns + h * NS_PER_S, fill.side, fill.px_ticks)
            )

    def on_mid(self, symbol: str, ts_ns: int, mid_ticks: float) -> None:
        """Fills whose horizon has passed get their markout at the first mid after it."""
        for h in MARKOUT_HORIZONS_S:
            wait = self._wait.get((symbol, h))
            while wait and wait[0][0] <= ts_ns:
                _, side, px = wait.popleft()
                acc = self.sums.setdefault((symbol, h), [0.0, 0.0])
                acc[0] += side * (mid_ticks - px)
                acc[1] += 1

    def forget(self, symbol: str) -> None:
        """Drop a symbol's waiting fills (its prices changed units)."""
        for h in MARKOUT_HORIZONS_S:
            self._wait.pop((symbol, h), None)

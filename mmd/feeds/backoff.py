"""Capped exponential backoff with jitter (pure: the caller sleeps)."""

from __future__ import annotations

import random


class Backoff:
    """Delays base*2^k capped at max_s, each scaled by a random factor in [0.5, 1].

    The jitter keeps many daemons (or symbols) from retrying in lock-step after a venue outage.
    """

    def __init__(self, base_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self, floor_s: float = 0.0) -> float:
        """The delay before the next try (at least floor_s, e.g. 10 s after an HTTP 403)."""
        cap = min(self.max_s, self.base_s * (2.0 ** min(self.attempt, 30)))
        self.attempt += 1
        return max(floor_s, cap * (0.5 + 0.5 * self._rng.random()))

    def reset(self) -> None:
        """After a success: the next failure starts from base_s again."""
        self.attempt = 0

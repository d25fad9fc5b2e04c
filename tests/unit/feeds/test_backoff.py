"""Capped exponential backoff with jitter."""

import random

from mmd.feeds.backoff import Backoff


def test_backoff_doubles_then_caps_with_jitter_in_half_to_full() -> None:
    b = Backoff(0.5, 8.0, random.Random(1))
    delays = [b.next_delay() for _ in range(12)]
    caps = [min(8.0, 0.5 * 2**k) for k in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert max(delays) <= 8.0 and delays[-1] >= 4.0
    # jitter: two daemons with different seeds do not retry in lock-step
    other = Backoff(0.5, 8.0, random.Random(2))
    assert [other.next_delay() for _ in range(12)] != delays


def test_backoff_floor_and_reset() -> None:
    b = Backoff(0.5, 8.0, random.Random(3))
    assert b.next_delay(floor_s=10.0) == 10.0
    b.next_delay()
    b.reset()
    assert b.next_delay() <= 0.5

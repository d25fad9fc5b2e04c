"""Clock protocol, LiveClock and ManualClock. Nobody else reads the wall clock.

Time is int nanoseconds since the epoch (`now_ns`) and a monotonic counter (`mono_ns`).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Where components get the time from (injected, never global)."""

    def now_ns(self) -> int:
        """Wall-clock nanoseconds since the epoch."""
        ...

    def mono_ns(self) -> int:
        """Monotonic nanoseconds (for intervals and timeouts)."""
        ...


class LiveClock:
    """The real clock."""

    def now_ns(self) -> int:
        """Wall-clock nanoseconds since the epoch."""
        return time.time_ns()

    def mono_ns(self) -> int:
        """Monotonic nanoseconds."""
        return time.monotonic_ns()


class ManualClock:
    """A clock that moves only when told to (replay, tests)."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        """The time last set."""
        return self._now_ns

    def mono_ns(self) -> int:
        """Same as now_ns: a manual clock never goes backwards."""
        return self._now_ns

    def set_ns(self, ts_ns: int) -> None:
        """Move to ts_ns; moving backwards is ignored (replayed stamps can tie or jitter)."""
        if ts_ns > self._now_ns:
            self._now_ns = ts_ns

    def advance_ns(self, delta_ns: int) -> None:
        """Move forward by delta_ns."""
        self._now_ns += max(0, delta_ns)

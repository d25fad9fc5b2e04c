"""Order latency models of the paper exchange: how long a submit or a cancel takes to reach it.

Pure: samples and times arrive as arguments (ns); nothing here reads a clock. `FeedDerivedLatency`
follows hftbacktest's advice for venues without order-latency data: use the measured feed
latency (ts_recv_ns - ts_exch_ns) as the one-way order latency.
"""

from __future__ import annotations

import bisect
import collections

from mmd.config import ExchangeConfig

_NS_PER_MS = 1_000_000


class ConstantLatency:
    """Fixed entry and cancel latency.

    Args:
        entry_ns: submit -> exchange latency (ns, >= 0).
        cancel_ns: cancel -> exchange latency (ns, >= 0).
    """

    __slots__ = ("_cancel_ns", "_entry_ns")

    def __init__(self, entry_ns: int, cancel_ns: int) -> None:
        if entry_ns < 0 or cancel_ns < 0:
            raise ValueError(f"latencies must be >= 0 ns, got {entry_ns}, {cancel_ns}")
        self._entry_ns = int(entry_ns)
        self._cancel_ns = int(cancel_ns)

    def on_feed_sample(self, ts_exch_ns: int, ts_recv_ns: int) -> None:
        """Ignored (same interface as FeedDerivedLatency)."""

    def entry_latency_ns(self) -> int:
        """Submit latency (ns)."""
        return self._entry_ns

    def cancel_latency_ns(self) -> int:
        """Cancel latency (ns)."""
        return self._cancel_ns


class FeedDerivedLatency:
    """Entry/cancel latency from configured values, or from the running median feed latency.

    A configured latency < 0 means "derive": it is then `scale` x the median of the last `window`
    feed-latency samples (ts_recv_ns - ts_exch_ns, clamped at 0 since venue and local clocks
    may disagree), or `fallback_ns` before `min_samples` samples have been seen. The median
    ignores the occasional GC pause or burst a mean would chase.

    Args:
        entry_ns: configured entry latency (ns); < 0 = derive.
        cancel_ns: configured cancel latency (ns); < 0 = derive.
        window: samples kept for the median (>= 1).
        min_samples: samples needed before the median replaces fallback_ns (>= 1).
        fallback_ns: derived latency before enough samples (ns, >= 0).
        scale: multiplier applied to the median (> 0).
    """

    __slots__ = (
        "_cancel_cfg",
        "_entry_cfg",
        "_fallback_ns",
        "_min_raw",
        "_min_samples",
        "_recent",
        "_scale",
        "_sorted",
    )

    def __init__(
        self,
        entry_ns: int,
        cancel_ns: int,
        *,
        window: int = 255,
        min_samples: int = 10,
        fallback_ns: int = 10 * _NS_PER_MS,
        scale: float = 1.0,
    ) -> None:
        if window < 1 or min_samples < 1 or fallback_ns < 0 or not scale > 0:
            raise ValueError("window, min_samples >= 1, fallback_ns >= 0 and scale > 0 required")
        self._entry_cfg = int(entry_ns)
        self._cancel_cfg = int(cancel_ns)
        self._min_samples = min(min_samples, window)
        self._fallback_ns = int(fallback_ns)
        self._scale = float(scale)
        self._min_raw = 0
        self._recent: collections.deque[int] = collections.deque(maxlen=window)
        self._sorted: list[int] = []

    def on_feed_sample(self, ts_exch_ns: int, ts_recv_ns: int) -> None:
        """Record one feed latency sample: a frame stamped ts_exch_ns by the venue and received
        at ts_recv_ns locally."""
        raw = int(ts_recv_ns) - int(ts_exch_ns)
        # A receive clock behind the venue's (recordings: the recorder's clock ran ~1.5 s
        # behind Binance's) gives negative raw latencies; the most negative one seen bounds
        # that offset, so samples are measured above it instead of being clipped to zero.
        if raw < self._min_raw:
            self._min_raw = raw
        sample = max(0, raw - min(0, self._min_raw))
        recent = self._recent
        if len(recent) == recent.maxlen:
            old = recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        recent.append(sample)
        bisect.insort(self._sorted, sample)

    def feed_latency_ns(self) -> int:
        """Median feed latency over the window (ns), or -1 before min_samples samples."""
        s = self._sorted
        n = len(s)
        if n < self._min_samples:
            return -1
        mid = n // 2
        return s[mid] if n % 2 else (s[mid - 1] + s[mid]) // 2

    def _derived_ns(self) -> int:
        med = self.feed_latency_ns()
        return self._fallback_ns if med < 0 else round(med * self._scale)

    def entry_latency_ns(self) -> int:
        """Submit latency (ns): the configured value, or derived when it is negative."""
        return self._entry_cfg if self._entry_cfg >= 0 else self._derived_ns()

    def cancel_latency_ns(self) -> int:
        """Cancel latency (ns): the configured value, or derived when it is negative."""
        return self._cancel_cfg if self._cancel_cfg >= 0 else self._derived_ns()


def build_latency(cfg: ExchangeConfig) -> ConstantLatency | FeedDerivedLatency:
    """The latency model `[exchange]` asks for: constant when both latencies are >= 0 ms, else
    feed-derived for the negative ones."""
    entry_ns = -1 if cfg.entry_latency_ms < 0 else round(cfg.entry_latency_ms * _NS_PER_MS)
    cancel_ns = -1 if cfg.cancel_latency_ms < 0 else round(cfg.cancel_latency_ms * _NS_PER_MS)
    if entry_ns >= 0 and cancel_ns >= 0:
        return ConstantLatency(entry_ns, cancel_ns)
    return FeedDerivedLatency(entry_ns, cancel_ns)

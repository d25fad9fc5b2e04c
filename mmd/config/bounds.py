"""Bounded value types, the path and URL checks and the resource budgets the config Structs use.

Pure definitions: no reading of files or the environment (that is loader.py).
"""

# Every value is bounded here, so a config that `mmd check-config` accepts also runs: numbers are
# finite (NaN and infinities are refused before the types are checked), durations and rates stay
# in ranges the timers, the int64 nanosecond clocks and the numba kernels can represent, ring
# capacities keep memory fixed and small, paths are non-empty and outside /proc, /sys and /dev,
# and URLs have the scheme and host their client needs. Each bound is documented in config.toml.

from __future__ import annotations

import os
from typing import Annotated
from urllib.parse import urlsplit

from msgspec import Meta

DAY_S = 86_400.0

Port = Annotated[int, Meta(ge=0, le=65535)]
Symbol = Annotated[str, Meta(pattern=r"^[A-Z0-9]{2,30}$")]
# a filesystem path: non-empty, no control characters (a NUL cannot reach the OS)
PathStr = Annotated[str, Meta(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f\x7f]+$")]
# a host name or IP literal to listen on
Host = Annotated[str, Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:-]+$")]
Url = Annotated[str, Meta(min_length=1, max_length=2048)]

# durations in seconds; each stays far inside what asyncio/uvloop timers and int64 ns accept
PollS = Annotated[float, Meta(ge=0.01, le=DAY_S)]  # REST poll periods (token bucket caps rate)
TimeoutS = Annotated[float, Meta(ge=0.1, le=600.0)]  # one request / one connection attempt
BackoffS = Annotated[float, Meta(ge=0.01, le=3600.0)]  # retry delays
HalfLifeS = Annotated[float, Meta(ge=0.001, le=DAY_S)]  # exponential decay half-lives
# fees as a fraction of notional: at most 1 % either way (Bybit's are 0.02-0.1 %)
FeeRate = Annotated[float, Meta(ge=-0.01, le=0.01)]
# latency of the paper exchange in ms, up to 1 min; negative (-1) = derived from the feed
LatencyMs = Annotated[float, Meta(ge=-1.0, le=60_000.0)]
# ring buffer rows per symbol: 2^20 rows cap the mid ring at 16 MiB, the trade ring at 32 MiB
RingRows = Annotated[int, Meta(ge=1, le=1 << 20)]
# sizes in base units: the bounds keep lots within int64 for lots down to 1e-8
BaseQty = Annotated[float, Meta(gt=0, le=1e9)]
# money in quote currency; 0 = no limit
QuoteLimit = Annotated[float, Meta(ge=0, le=1e12)]
RlBins = Annotated[int, Meta(ge=1, le=10)]  # bins of one RL state variable (<= 1e5 states)

# directories no state, recording or model file may live in (kernel pseudo-filesystems)
_PSEUDO_FS = ("/proc", "/sys", "/dev")
# all symbols' ring buffers together (MarketConfig) must fit in this
RING_BUDGET_BYTES = 1 << 30
# frames per second (all symbols) the synthetic feed may generate. It runs inside the event loop
# and awaits only while it is ahead of its schedule: once behind (its frames cost more than the
# CPU it gets), it never yields and /healthz stops answering. One core handles ~500 frames/s of
# 1000-level books at sigma_ticks 200 with a 20-level ladder trading; 100 leaves a 5x margin
# for a shared machine.
SYNTHETIC_MAX_FRAMES_PER_S = 100.0
RING_ROW_BYTES = {"mid_capacity": 16, "trade_capacity": 32, "kline_capacity": 48}


def check_path(value: str, key: str) -> None:
    """Refuse a path inside a kernel pseudo-filesystem (after resolving `..` and symlinks)."""
    real = os.path.realpath(value)
    for top in _PSEUDO_FS:
        if real == top or real.startswith(top + "/"):
            raise ValueError(f"must not be under {top} (resolves to {real}) - at `$.{key}`")


def check_url(value: str, key: str, schemes: tuple[str, ...]) -> None:
    """Refuse a URL without one of schemes or a host, with a bad port, a query, a fragment or
    whitespace."""
    want = "URL starting with " + " or ".join(f"{s}://" for s in schemes)
    if any(c.isspace() for c in value):
        raise ValueError(f"Expected a {want} without spaces - at `$.{key}`")
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"Expected a {want} and a valid host and port - at `$.{key}`") from None
    if parts.scheme not in schemes or not host:
        raise ValueError(f"Expected a {want} and a host - at `$.{key}`")
    if port == 0:
        raise ValueError(f"Expected a port in 1..65535 - at `$.{key}`")
    if parts.query or parts.fragment:
        raise ValueError(f"Expected a URL without a query or fragment - at `$.{key}`")


# the options of every config Struct: frozen, keyword-only, unknown keys refused
STRUCT = {"frozen": True, "kw_only": True, "forbid_unknown_fields": True}

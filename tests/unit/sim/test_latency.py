"""mmd.sim.latency: constant latency, the feed-derived running median, building from config."""

from __future__ import annotations

import pytest

from mmd.config import ExchangeConfig
from mmd.sim.latency import ConstantLatency, FeedDerivedLatency, build_latency

MS = 1_000_000


def test_constant_latency_returns_configured_values() -> None:
    lat = ConstantLatency(3 * MS, 2 * MS)
    lat.on_feed_sample(0, 99 * MS)  # ignored
    assert (lat.entry_latency_ns(), lat.cancel_latency_ns()) == (3 * MS, 2 * MS)
    with pytest.raises(ValueError):
        ConstantLatency(-1, 0)


def test_feed_derived_latency_uses_fallback_until_min_samples() -> None:
    lat = FeedDerivedLatency(-1, -1, min_samples=3, fallback_ns=7 * MS)
    lat.on_feed_sample(1_000 * MS, 1_020 * MS)
    lat.on_feed_sample(1_001 * MS, 1_031 * MS)
    assert lat.feed_latency_ns() == -1
    assert lat.entry_latency_ns() == 7 * MS
    lat.on_feed_sample(1_002 * MS, 1_012 * MS)
    # samples 20, 30, 10 ms -> median 20 ms
    assert lat.feed_latency_ns() == 20 * MS
    assert lat.entry_latency_ns() == lat.cancel_latency_ns() == 20 * MS


def test_feed_derived_latency_median_window_forgets_old_samples() -> None:
    lat = FeedDerivedLatency(-1, 5 * MS, window=3, min_samples=1)
    for d in (100, 1, 2, 3):  # the 100 ms outlier falls out of the 3-sample window
        lat.on_feed_sample(0, d * MS)
    assert lat.feed_latency_ns() == 2 * MS  # median of 1, 2, 3 (with 100 kept: 2.5)
    assert lat.entry_latency_ns() == 2 * MS
    assert lat.cancel_latency_ns() == 5 * MS  # configured >= 0: not derived


def test_feed_derived_latency_even_window_and_negative_samples() -> None:
    lat = FeedDerivedLatency(-1, -1, window=4, min_samples=1, scale=2.0)
    for d in (-5, 4, 6, 10):  # clock skew: the receive clock is >= 5 ms behind the venue's
        lat.on_feed_sample(0, d * MS)
    # samples are measured above the most negative raw latency (-5 ms) once it is seen:
    # -5 -> 0, 4 -> 9, 6 -> 11, 10 -> 15; median (9 + 11) / 2 = 10 ms, scaled x2 = 20 ms
    assert lat.feed_latency_ns() == 10 * MS
    assert lat.entry_latency_ns() == 20 * MS


def test_build_latency_from_config_picks_model() -> None:
    fixed = build_latency(ExchangeConfig(entry_latency_ms=1.5, cancel_latency_ms=0.0))
    assert isinstance(fixed, ConstantLatency)
    assert (fixed.entry_latency_ns(), fixed.cancel_latency_ns()) == (1_500_000, 0)
    derived = build_latency(ExchangeConfig(entry_latency_ms=-1.0, cancel_latency_ms=2.0))
    assert isinstance(derived, FeedDerivedLatency)
    assert derived.cancel_latency_ns() == 2 * MS
    assert derived.entry_latency_ns() == 10 * MS  # fallback before samples


def test_feed_derived_latency_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        FeedDerivedLatency(-1, -1, window=0)
    with pytest.raises(ValueError):
        FeedDerivedLatency(-1, -1, scale=0.0)

"""SyntheticMarket regimes: unchanged bytes when off; informed flow, hidden regimes and Hawkes
arrivals checked against the truth the generator exposes and the frames it writes."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from typing import Any

import numpy as np
import orjson
import pytest

from mmd.config import RegimesConfig, SyntheticConfig
from mmd.feeds.synthetic import (
    CALM,
    DOWN,
    UP,
    VOLATILE,
    SyntheticMarket,
    SyntheticTruth,
)

START_NS = 1_786_310_816_000_000_000  # 2026-08-09 21:26:56 UTC


def _digest(n: int, **kw: Any) -> str:
    market = SyntheticMarket("BTCUSDT", SyntheticConfig(seed=7), start_ns=START_NS, **kw)
    h = hashlib.sha256()
    for ts, frame in itertools.islice(market.frames(), n):
        h.update(b"%d %s\n" % (ts, frame))
    return h.hexdigest()


def test_regimes_off_by_default_and_the_seeded_bytes_are_those_of_the_plain_generator() -> None:
    # Golden digests: sha256 over "<ts_recv_ns> <frame>\n" of the first frames, produced by the
    # generator as it was at commit 0005e06, before regimes existed. Existing recordings, tests
    # and benchmarks rely on a seed fixing these bytes, so the default config must keep them.
    assert not RegimesConfig().active
    assert _digest(3000) == "9a9269b25f38fb53d57da8f0993d95430327a06754b5cfd01a3711d9a8e35222"
    assert _digest(800, depth=200, category="spot") == (
        "6c06da2df141ec3adffbf7bd5d85c57b36790bc82cf3b6c5b95037cf9086bad3"
    )


def _session(
    duration_s: float, seed: int = 5, **kw: Any
) -> tuple[list[tuple[int, bytes]], dict[str, np.ndarray]]:
    """duration_s simulated seconds of frames and the truth of exactly those frames."""
    base = {k: kw.pop(k) for k in list(kw) if k in SyntheticConfig.__struct_fields__}
    cfg = SyntheticConfig(seed=seed, regimes=RegimesConfig(**kw), **base)
    truth = SyntheticTruth()
    frames = []
    end = START_NS + round(duration_s * 1e9)
    for ts, frame in SyntheticMarket("BTCUSDT", cfg, depth=20, start_ns=START_NS).frames(truth):
        if ts >= end:
            break
        frames.append((ts, frame))
    n_trades = sum(
        len(orjson.loads(f)["data"]) for _, f in frames if f.startswith(b'{"topic":"publicTrade.')
    )
    arrays = truth.arrays()
    for key in SyntheticTruth.TRADE_FIELDS:
        arrays[key] = arrays[key][:n_trades]
    return frames, arrays


def _book_mids(frames: list[tuple[int, bytes]]) -> tuple[list[int], list[float]]:
    """(cts ms, mid) after every book frame, from the frames alone."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    ts: list[int] = []
    mids: list[float] = []
    for _, raw in frames:
        if not raw.startswith(b'{"topic":"orderbook.'):
            continue
        msg = orjson.loads(raw)
        if msg["type"] == "snapshot":
            bids.clear()
            asks.clear()
        for side, levels in ((bids, msg["data"]["b"]), (asks, msg["data"]["a"])):
            for p, q in levels:
                if float(q):
                    side[float(p)] = float(q)
                else:
                    side.pop(float(p), None)
        ts.append(msg["cts"])
        mids.append((max(bids) + min(asks)) / 2)
    return ts, mids


def _binomial_ok(hits: int, n: int, p: float, z: float = 4.0) -> bool:
    return abs(hits / n - p) <= z * math.sqrt(p * (1 - p) / n)


def test_informed_share_of_orders_matches_the_config_and_informed_trades_see_the_future() -> None:
    share, horizon = 0.3, 5.0
    frames, t = _session(
        400.0, sigma_ticks=5.0, frame_rate_hz=5.0, informed_share=share, informed_horizon_s=horizon
    )
    # the truth the frames carry: one truth row per recorded trade, same ids, same order
    ids = [
        i["i"]
        for _, f in frames
        if f.startswith(b'{"topic":"publicTrade.')
        for i in orjson.loads(f)["data"]
    ]
    assert ids == list(t["trade_id"])
    assert t["horizon_s"] == horizon
    # each aggressive order is informed with probability `share` (Bernoulli, 4 standard errors)
    last = t["trade_order"].max()
    orders = t["order_informed"][:last]
    assert len(orders) > 3000
    assert _binomial_ok(int(orders.sum()), len(orders), share)
    # per order (traded or not), by the latent truth: informed sides follow the future mid,
    # uninformed ones are a coin
    up = t["order_future_mid"][:last] > t["order_mid"][:last]
    moved = t["order_future_mid"][:last] != t["order_mid"][:last]
    follows = (up == t["order_buy"][:last])[moved]
    informed_moved = orders[moved]
    assert follows[informed_moved].all()
    assert _binomial_ok(int(follows[~informed_moved].sum()), int((~informed_moved).sum()), 0.5)
    # per trade item: the same share (informed orders reach the book like the others; one
    # order may leave several items, so allow for the clustering with a wider band)
    assert abs(t["trade_informed"].mean() - share) < 0.05, t["trade_informed"].mean()
    # prediction, judged on the recorded book only: the side of each order against the move of
    # the book mid from the trade to horizon_s later (orders with no move left out)
    ts, mids = _book_mids(frames)
    first = np.unique(t["trade_order"], return_index=True)[1]  # first trade of each order
    agree = {True: [], False: []}  # type: dict[bool, list[bool]]
    for k in first:
        t_ms = int(t["trade_ts_ms"][k])
        if t_ms + horizon * 1000 > ts[-1]:
            continue
        before = mids[max(bisect.bisect_right(ts, t_ms - 1) - 1, 0)]  # book the order met
        after = mids[bisect.bisect_right(ts, t_ms + int(horizon * 1000)) - 1]
        if after != before:
            agree[bool(t["trade_informed"][k])].append((after > before) == bool(t["trade_buy"][k]))
    informed, uninformed = np.mean(agree[True]), np.mean(agree[False])
    assert len(agree[True]) > 500 and len(agree[False]) > 1000
    assert informed > 0.8, informed  # 0.90 at this seed; the book mid is quantized
    # Uninformed orders that TRADE lean slightly against the move (0.46 here): informed ones
    # take the touch on the side of the coming move first, so an uninformed order on that side
    # more often finds it gone and does not reach the book (with informed_share 0 this is 0.51).
    assert 0.4 < uninformed < 0.55, uninformed


def test_regime_durations_match_their_means_and_switches_go_to_another_regime() -> None:
    means = {CALM: 10.0, VOLATILE: 5.0, UP: 7.5, DOWN: 7.5}
    # a low frame rate keeps this cheap: switch times are drawn exactly, not per frame
    frames, t = _session(
        3000.0,
        frame_rate_hz=1.0,
        sigma_ticks=5.0,
        trade_rate_hz=0.1,
        switching=True,
        calm_mean_s=means[CALM],
        volatile_mean_s=means[VOLATILE],
        trend_mean_s=means[UP],
        volatile_sigma_mult=4.0,
        trend_drift_ticks_per_s=5.0,
    )
    starts, regimes = t["regime_start_ns"], t["regime"]
    assert regimes[0] == CALM and starts[0] == START_NS
    assert np.all(regimes[1:] != regimes[:-1])  # a switch always changes the regime
    durations = np.diff(starts) / 1e9
    for code, mean in means.items():
        d = durations[regimes[:-1] == code]
        assert len(d) > 60, (code, len(d))
        # exponential durations: standard error of the mean = mean / sqrt(n); 4 of them
        assert abs(d.mean() - mean) < 4 * mean / math.sqrt(len(d)), (code, d.mean())
    # the next regime is uniform over the other three
    nxt = regimes[1:][regimes[:-1] == CALM]
    assert all(_binomial_ok(int(np.sum(nxt == c)), len(nxt), 1 / 3) for c in (VOLATILE, UP, DOWN))
    # and the regimes show in the book: per-step mid changes by the regime in force
    ts, mids = _book_mids(frames)
    steps: dict[int, list[tuple[float, float]]] = {c: [] for c in means}  # (change, dt s)
    for i in range(1, len(ts)):
        at = bisect.bisect_right(starts, ts[i - 1] * 1_000_000) - 1
        if bisect.bisect_right(starts, ts[i] * 1_000_000) - 1 == at:  # no switch inside
            steps[int(regimes[at])].append((mids[i] - mids[i - 1], (ts[i] - ts[i - 1]) / 1e3))
    move = {c: np.array(v) for c, v in steps.items()}
    # per-step changes scaled by sqrt(dt): sd sigma_ticks calm, 4 x that volatile
    scaled = {c: m[:, 0] / np.sqrt(m[:, 1]) for c, m in move.items()}
    ratio = np.std(scaled[VOLATILE]) / np.std(scaled[CALM])
    assert 3.0 < ratio < 5.0, ratio
    # drift: total change over total time, +-5 ticks/s (in ticks of 0.1 = 0.5 in price)
    tick = 0.1
    for code, sign in ((UP, 1), (DOWN, -1)):
        drift = move[code][:, 0].sum() / move[code][:, 1].sum() / tick
        assert 3.0 < sign * drift < 7.0, (code, drift)


def _dispersion(t: dict[str, np.ndarray], duration_s: float, window_s: float) -> float:
    """Variance / mean of the number of aggressive orders per window (1 for Poisson)."""
    t_s = (t["order_ts_ms"] - START_NS // 1_000_000) / 1e3
    counts = np.bincount((t_s // window_s).astype(np.int64), minlength=int(duration_s // window_s))[
        : int(duration_s // window_s)
    ]
    return float(counts.var(ddof=1) / counts.mean())


@pytest.mark.parametrize("branching", [0.0, 0.7])
def test_hawkes_arrivals_cluster_when_on_and_are_poisson_when_off(branching: float) -> None:
    duration, window = 2000.0, 10.0
    _, t = _session(
        duration,
        frame_rate_hz=2.0,
        sigma_ticks=2.0,
        trade_rate_hz=1.0,
        hawkes_branching=branching,
        hawkes_decay_per_s=0.5,
    )
    ratio = _dispersion(t, duration, window)
    if branching == 0:
        # 200 windows: the index of dispersion of Poisson counts has a standard error of about
        # sqrt(2 / 199) = 0.1
        assert 0.6 < ratio < 1.4, ratio
    else:
        # stationary Hawkes, exponential kernel, window T: with k = decay (1 - branching) =
        # 0.15/s, D = 1/(1-n)^2 - (1/(1-n)^2 - 1)(1 - exp(-kT))/(kT) = 11.1 - 10.1 x 0.518 = 5.9
        # for T = 10 s (5.3 measured at this seed; steps of 0.5 s blur the fastest part)
        assert ratio > 3.0, ratio
    # the mean rate stays trade_rate_hz per side whatever the branching: 2 x 2000 s x 1 Hz =
    # 4000 orders (numbered, traded or not); the Hawkes count's sd is about
    # sqrt(4000) / (1 - 0.7) = 210, so 20 % is over 3.5 of them
    orders = int(t["trade_order"].max())
    assert abs(orders / 4000 - 1) < 0.2, orders


def test_information_episodes_trade_the_jump_into_the_book_on_one_side() -> None:
    rate_hz, jump, order_hz, impact = 0.05, 10.0, 2.0, 0.5
    frames, t = _session(
        1500.0,
        frame_rate_hz=5.0,
        sigma_ticks=0.3,
        trade_rate_hz=1.0,
        info_rate_hz=rate_hz,
        info_jump_ticks=jump,
        info_order_rate_hz=order_hz,
        info_impact_ticks=impact,
    )
    start, end, direction = t["episode_start_ns"], t["episode_end_ns"], t["episode_dir"]
    closed = end >= 0
    assert closed[:-1].all()  # only the last episode may still be open
    assert len(start) > 25 and set(direction.tolist()) <= {-1, 1}
    assert np.all(end[closed] > start[closed]) and np.all(start[1:] > end[:-1])
    # each closed episode took exactly jump / impact = 20 informed orders, all on its side,
    # all between its start and end
    last = t["trade_order"].max()
    ep = t["order_episode"][:last]
    ts_ns = t["order_ts_ms"][:last] * 1_000_000
    for k in range(1, int(closed.sum()) + 1):
        mine = ep == k
        assert mine.sum() == round(jump / impact), (k, mine.sum())
        assert np.all(t["order_buy"][:last][mine] == (direction[k - 1] > 0))
        assert t["order_informed"][:last][mine].all()
        # an order's ms may round down below the start's ns within that ms
        assert ts_ns[mine].min() >= start[k - 1] - 1_000_000 and ts_ns[mine].max() == end[k - 1]
    # nothing but episode orders is informed (informed_share is 0), and each of them traded:
    # they take at least the touch
    assert np.array_equal(t["order_informed"][:last], ep > 0)
    assert set(np.flatnonzero(ep > 0) + 1) <= set(t["trade_order"].tolist())
    # an episode lasts the time of 20 arrivals at 2/s: Gamma(20, 0.5 s), mean 10 s, sd
    # sqrt(20) x 0.5 = 2.24 s; the next event comes Exp(mean 20 s) after an episode ends
    length_s = (end[closed] - start[closed]) / 1e9
    assert abs(length_s.mean() - 10.0) < 4 * 2.24 / math.sqrt(len(length_s)), length_s.mean()
    wait_s = (start[1:] - end[:-1]) / 1e9
    assert abs(wait_s.mean() - 20.0) < 4 * 20.0 / math.sqrt(len(wait_s)), wait_s.mean()
    # the recorded book carries the jump: over each closed episode the book mid moves `jump`
    # ticks its way on average (per episode: noise 0.3 sqrt(10 s) = 0.95 ticks, the half-tick
    # quantization at both ends and a touch a sweep left behind; sd about 2 ticks, so the mean
    # of 40 has an error of about 0.3); between episodes it barely moves
    ts_ms, mids = _book_mids(frames)
    tick = 0.1

    def mid_at(ns: int) -> float:
        return mids[max(bisect.bisect_right(ts_ms, ns // 1_000_000) - 1, 0)]

    moves = np.array(
        [
            (mid_at(int(e) + 200_000_000) - mid_at(int(s))) / tick * d
            for s, e, d in zip(start[closed], end[closed], direction[closed], strict=True)
        ]
    )
    assert moves.min() > jump / 2 and abs(moves.mean() - jump) < 1.0, moves
    quiet = np.array(
        [
            (mid_at(int(s)) - mid_at(int(e) + 200_000_000)) / tick
            for e, s in zip(end[closed][:-1], start[1:], strict=False)
        ]
    )
    assert np.abs(quiet).mean() < 4.0, np.abs(quiet).mean()

"""SyntheticMarket: a seeded generator of Bybit-V5-shaped frames (book, trades, klines).

Pure: no clock, no sleeping, no I/O. Time is generated (exponential inter-arrivals from start_ns)
and every random draw comes from one numpy Generator(PCG64(seed)), so a seed fixes the bytes.
This module keeps the book and executes the orders into frames; the latent process that says
when and what arrives is `flow.OrderFlow`.

`[feed.synthetic.regimes]` adds hidden structure whose truth the frames do not carry (informed
traders, information events, volatility/trend regimes, self-exciting arrivals);
`frames(truth=SyntheticTruth())` collects it on the side. With every knob off the generator
draws exactly what it always drew.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np

from mmd.config import SyntheticConfig
from mmd.feeds.convert.frames import (
    FrameFormat,
    KlineBuilder,
    TickDirection,
    instruments_info_envelope,
    orderbook_frame,
    trade_frame,
    trade_item,
)
from mmd.feeds.synthetic.book import ContiguousSide
from mmd.feeds.synthetic.flow import OrderFlow
from mmd.feeds.synthetic.truth import SyntheticTruth
from mmd.model.instrument import Instrument

# Book shape: the mean size (lots) of a level d ticks behind its side's touch is
# TOUCH_LOTS * (1 + PROFILE_GROWTH * d); sizes are refreshed toward it at random.
TOUCH_LOTS = 200.0
PROFILE_GROWTH = 0.15
# each level is refreshed this often (Poisson), moving this fraction toward a noisy target
LEVEL_REFRESH_HZ = 1.0
REFRESH_PULL = 0.5
SIZE_NOISE_SIGMA = 0.5  # lognormal sigma of a level's target size
# a touch level emptied by trades is refilled at each later frame with this probability
REFILL_PROB = 0.5
# aggressive order sizes: lognormal, median in lots
TRADE_MEDIAN_LOTS = 20.0
TRADE_SIZE_SIGMA = 1.0
# feed timing: ts - cts (ms, uniform 1..MAX) and the local receive latency
MAX_PUBLISH_DELAY_MS = 5
RECV_LATENCY_NS = 20_000_000


def _step_string(step: float) -> str:
    """A config float step as the decimal string Bybit would write (0.1 -> "0.1")."""
    return f"{Decimal(repr(step)).normalize():f}"


class SyntheticMarket:
    """Endless, seeded Bybit-shaped market data for one symbol.

    Model: the latent mid m (float ticks) is a Gaussian random walk with `sigma_ticks` per
    sqrt(second), sampled at exponential inter-arrival times of mean 1/`frame_rate_hz`. The
    bid touch targets floor(m), the ask floor(m)+1; each side holds exactly `depth` contiguous
    levels whose sizes mean-revert toward a profile growing away from the touch. Aggressive
    orders arrive per side as a Poisson process of rate `trade_rate_hz`, each reaching an
    Exp(`trade_decay_per_tick`) distance D from m, so a level d ticks from m trades at rate
    trade_rate_hz * exp(-trade_decay_per_tick * d). An order consumes the levels it reaches,
    the last one partially; emptied touch levels come back with probability REFILL_PROB per
    frame. Each step re-anchors the book to the new mid first, then executes the step's
    orders against it, so trades always start at the current touch.

    Frames per step: publicTrade (if trades), orderbook delta (if the book changed), kline.1
    (every 5 s, and `confirm:true` when a minute closes).

    Regimes (`cfg.regimes`, each off by default; off, no extra number is drawn): a hidden
    Markov regime scales sigma (volatile) or adds a drift (trend up / down); order counts per
    side follow a discretised Hawkes process whose integrated intensity over a step is
    mu dt + E (1 - exp(-beta dt)) / beta, E decaying at beta and jumping by branching x beta
    per order, mu = trade_rate_hz (1 - branching); with informed_share > 0 the path is drawn
    informed_horizon_s ahead and each order is, with that probability, informed: it buys when
    the latent mid horizon_s after it is above the current one, sells when below, and reaches
    the book like any other order.

    Information events (`info_rate_hz` > 0): the public mid is the random walk plus what
    informed traders have pushed into it. At exponential times (rate `info_rate_hz`, counted
    from the end of the previous episode) the value jumps `info_jump_ticks` up or down (a coin);
    while the public mid is behind it, informed orders arrive on that side at
    `info_order_rate_hz` (Poisson, on top of the ordinary flow), each at least taking the touch,
    and each moves the public mid `info_impact_ticks` toward the value (the last one what is
    left). The episode ends with the order that closes the gap. Nothing but the trades and the
    book they move tells the frames about it.
    """

    def __init__(
        self,
        symbol: str,
        cfg: SyntheticConfig,
        *,
        category: str = "linear",
        depth: int = 50,
        start_ns: int,
    ) -> None:
        """Set up the generator (no frames are produced until `frames()` is iterated).

        Args:
            symbol: e.g. BTCUSDT.
            cfg: seed, start mid, tick/lot size, volatility and rates.
            category: linear, spot or inverse (spot trades carry no `L`).
            depth: the `orderbook.{depth}` topic depth and the levels kept per side.
            start_ns: exchange time of the first frame (ns since the epoch).
        """
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if category not in ("linear", "spot", "inverse"):
            raise ValueError(f"category must be linear, spot or inverse, got {category!r}")
        self.cfg = cfg
        self.depth = depth
        self.start_ns = start_ns
        self.instrument = Instrument(
            symbol=symbol,
            category=category,
            tick_size=_step_string(cfg.tick_size),
            lot_size=_step_string(cfg.lot_size),
        )

    def frames(self, truth: SyntheticTruth | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield (ts_recv_ns, frame) forever; each call starts again from the seed.

        The first frame is the instruments-info envelope, the second the orderbook snapshot.
        With `truth`, what the frames do not say (informed orders, future mids, the regime
        path) is appended to it as the frames are generated.
        """
        return _Run(self, truth).frames()


class _Run:
    """The state of one pass of SyntheticMarket.frames()."""

    def __init__(self, market: SyntheticMarket, truth: SyntheticTruth | None = None) -> None:
        cfg = market.cfg
        self.cfg = cfg
        self.depth = market.depth
        self.inst = market.instrument
        self.fmt = FrameFormat(self.inst)
        self.rng = np.random.Generator(np.random.PCG64(cfg.seed))
        # keep the whole book above zero even for tiny prices
        floor_ticks = float(self.depth + 2)
        mid = max(cfg.mid_price / cfg.tick_size, floor_ticks)
        self.bids = ContiguousSide(-1, self.depth)
        self.asks = ContiguousSide(+1, self.depth)
        self.klines = KlineBuilder(self.fmt)
        self.ticks = TickDirection() if self.inst.category != "spot" else None
        self.u = 0
        self.seq = int(self.rng.integers(10**10, 10**11))
        self.trade_no = int(self.rng.integers(10**18, 2 * 10**18))
        self.last_recv_ns = 0
        self.truth = truth
        self.order_no = 0
        # regimes and information events (no draws at all while every knob is off)
        self.flow = OrderFlow(
            cfg,
            self.rng,
            start_ns=market.start_ns,
            mid=mid,
            floor_ticks=floor_ticks,
            truth=truth,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _recv(self, exch_ms: int) -> int:
        self.last_recv_ns = max(self.last_recv_ns, exch_ms * 1_000_000 + RECV_LATENCY_NS)
        return self.last_recv_ns

    def _targets(self) -> tuple[int, int]:
        bid = math.floor(self.flow.mid)
        return bid, bid + 1

    def _level_size(self, distance: int) -> int:
        mean = TOUCH_LOTS * (1.0 + PROFILE_GROWTH * max(distance, 0))
        return max(1, round(mean * self.rng.lognormal(0.0, SIZE_NOISE_SIGMA)))

    def _reanchor(self, side: ContiguousSide, best: int, target: int) -> None:
        """Move `side` to the contiguous range starting at `best`: drop and add levels."""
        old_lo, old_hi = sorted((side.best, side.price(side.depth - 1)))
        side.best = best
        new_lo, new_hi = sorted((best, side.price(side.depth - 1)))
        if old_lo == new_lo:
            return
        for px in range(old_lo, old_hi + 1):
            if not new_lo <= px <= new_hi:
                side.set(px, 0)
        # new levels, nearest the touch first so the draws do not depend on direction
        for level in range(side.depth):
            px = side.price(level)
            if not old_lo <= px <= old_hi:
                side.set(px, self._level_size(side.sign * (px - target)))

    def _book_frame(
        self, kind: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]]
    ) -> tuple[int, bytes]:
        self.u += 1
        self.seq += int(self.rng.integers(1, 64))
        cts_ms = self.flow.t_ns // 1_000_000
        ts_ms = cts_ms + int(self.rng.integers(1, MAX_PUBLISH_DELAY_MS + 1))
        frame = orderbook_frame(
            self.fmt,
            self.depth,
            kind,
            bids,
            asks,
            u=self.u,
            seq=self.seq,
            ts_ms=ts_ms,
            cts_ms=cts_ms,
        )
        return self._recv(ts_ms), frame

    # -- the stream ---------------------------------------------------------------------------

    def frames(self) -> Iterator[tuple[int, bytes]]:
        start_ms = self.flow.t_ns // 1_000_000
        yield self._recv(start_ms), instruments_info_envelope(self.inst, start_ms)
        bid_t, ask_t = self._targets()
        for side, target in ((self.bids, bid_t), (self.asks, ask_t)):
            side.best = target
            for level in range(self.depth):
                side.sizes[side.price(level)] = self._level_size(level)
        yield self._book_frame(
            "snapshot",
            [(self.bids.price(i), self.bids.sizes[self.bids.price(i)]) for i in range(self.depth)],
            [(self.asks.price(i), self.asks.sizes[self.asks.price(i)]) for i in range(self.depth)],
        )
        self.klines.open_flat(start_ms, bid_t)
        while True:
            yield from self._step()

    # -- the step -------------------------------------------------------------------------

    def _step(self) -> Iterator[tuple[int, bytes]]:
        rng = self.rng
        prev_ns = self.flow.t_ns
        self.flow.advance()
        dt_s = (self.flow.t_ns - prev_ns) / 1e9

        bid_t, ask_t = self._targets()
        for side, target in ((self.bids, bid_t), (self.asks, ask_t)):
            # a touch eaten by trades comes back with probability REFILL_PROB per step
            behind = side.depleted and side.sign * (side.best - target) > 0
            best = side.best if behind and rng.random() >= REFILL_PROB else target
            side.depleted = best != target
            self._reanchor(side, best, target)

        out: list[tuple[int, bytes]] = []
        items = self._trades(prev_ns, out)
        if items:
            ts_ms = items[-1]["T"]
            out.append((self._recv(ts_ms), trade_frame(self.inst.symbol, ts_ms, items)))
        self._refresh(self.bids, bid_t, dt_s)
        self._refresh(self.asks, ask_t, dt_s)
        bids, asks = self.bids.changes(), self.asks.changes()
        if bids or asks:
            out.append(self._book_frame("delta", bids, asks))
        now_ms = self.flow.t_ns // 1_000_000
        out.extend((self._recv(now_ms), k) for k in self.klines.on_time(now_ms))
        return iter(out)

    def _refresh(self, side: ContiguousSide, target: int, dt_s: float) -> None:
        """Random levels drift toward the profile (adds and cancels by passive traders)."""
        n = int(self.rng.poisson(side.depth * LEVEL_REFRESH_HZ * dt_s))
        if not n:
            return
        for level in self.rng.integers(0, side.depth, size=n):
            px = side.price(int(level))
            old = side.sizes[px]
            goal = self._level_size(side.sign * (px - target))
            side.set(px, max(1, round(old + REFRESH_PULL * (goal - old))))

    def _trades(self, prev_ns: int, out: list[tuple[int, bytes]]) -> list[dict[str, Any]]:
        """Aggressive orders of the elapsed interval, executed in time order on the book."""
        cfg, rng, flow = self.cfg, self.rng, self.flow
        share = cfg.regimes.informed_share
        dt_s = (flow.t_ns - prev_ns) / 1e9
        if cfg.regimes.info_rate_hz > 0 and not flow.info_dir and flow.info_next_ns <= flow.t_ns:
            flow.start_episode()
        n_buy = flow.order_count(0, dt_s)
        n_sell = flow.order_count(1, dt_s)
        n_info = 0
        if flow.info_dir:
            lo_ns = max(prev_ns, flow.info_start_ns)
            n_info = int(rng.poisson(cfg.regimes.info_order_rate_hz * (flow.t_ns - lo_ns) / 1e9))
        if not n_buy + n_sell + n_info:
            return []
        lo_ms, hi_ms = prev_ns // 1_000_000, flow.t_ns // 1_000_000
        # (ms, buy, reach in units of 1/decay, an information episode's order)
        orders = [
            (int(rng.integers(lo_ms, hi_ms + 1)), i < n_buy, float(rng.exponential(1.0)), False)
            for i in range(n_buy + n_sell)
        ]
        if n_info:
            info_lo_ms = max(prev_ns, flow.info_start_ns) // 1_000_000
            orders += [
                (
                    int(rng.integers(info_lo_ms, hi_ms + 1)),
                    flow.info_dir > 0,
                    float(rng.exponential(1.0)),
                    True,
                )
                for _ in range(n_info)
            ]
        orders.sort()
        items: list[dict[str, Any]] = []
        truth = self.truth
        for t_ms, is_buy, reach_units, episode_order in orders:
            informed, future, episode = False, math.nan, 0
            if episode_order:
                if not flow.info_dir:  # the gap closed earlier in this step: nothing to trade on
                    continue
                informed, episode = True, flow.episode_no
                future = flow.mid + flow.info_dir * flow.info_gap
            elif share > 0:
                future = flow.mid_at(t_ms * 1_000_000 + flow.horizon_ns)
                # an informed order trades toward the mid it knows (Glosten-Milgrom)
                informed = bool(rng.random() < share)
                if informed and future != flow.mid:
                    is_buy = future > flow.mid
            self.order_no += 1
            reach = reach_units / cfg.trade_decay_per_tick  # Exp(decay) ticks from the mid
            side = self.asks if is_buy else self.bids
            if episode:  # informed traders take at least the touch
                reach = max(reach, side.sign * (side.best - flow.mid))
            if truth is not None:
                truth.order_ts_ms.append(t_ms)
                truth.order_informed.append(informed)
                truth.order_buy.append(is_buy)
                truth.order_mid.append(flow.mid * cfg.tick_size)
                truth.order_future_mid.append(future * cfg.tick_size)
                truth.order_episode.append(episode)
            first_item = len(items)
            remaining = max(1, round(TRADE_MEDIAN_LOTS * rng.lognormal(0.0, TRADE_SIZE_SIGMA)))
            out.extend((self._recv(t_ms), k) for k in self.klines.on_time(t_ms))
            # sweep from the touch while the level is within reach; keep half the side
            for _ in range(max(1, side.depth // 2)):
                px = side.best
                if side.sign * (px - flow.mid) > reach or not remaining:
                    break
                size = side.sizes[px]
                beyond = side.sign * (px + side.sign - flow.mid) <= reach
                qty = size if beyond else min(size, remaining)
                remaining = remaining if beyond else 0
                items.append(self._trade(t_ms, is_buy, px, qty))
                if qty == size:  # the level is gone: the side steps back one tick
                    side.set(px, 0)
                    side.depleted = True
                    side.best += side.sign
                    far = side.price(side.depth - 1)
                    side.set(far, self._level_size(side.depth - 1))
                else:
                    side.set(px, size - qty)
            mid_before = flow.mid
            if episode:
                flow.informed_impact(t_ms)
            if truth is not None:
                tick = cfg.tick_size
                for item in items[first_item:]:
                    truth.trade_ts_ms.append(t_ms)
                    truth.trade_id.append(item["i"])
                    truth.trade_buy.append(is_buy)
                    truth.trade_px.append(float(item["p"]))
                    truth.trade_order.append(self.order_no)
                    truth.trade_informed.append(informed)
                    truth.trade_mid.append(mid_before * tick)
                    truth.trade_future_mid.append(future * tick)
                    truth.trade_episode.append(episode)
        return items

    def _trade(self, t_ms: int, is_buy: bool, px: int, qty: int) -> dict[str, Any]:
        self.seq += int(self.rng.integers(1, 64))
        self.trade_no += 1
        if self.inst.category == "spot":
            trade_id = str(self.trade_no)
        else:
            h = f"{self.trade_no * 0x9E3779B97F4A7C15 % (1 << 128):032x}"
            trade_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        self.klines.add_trade(t_ms, px, qty)
        return trade_item(
            self.fmt,
            t_ms=t_ms,
            taker_buy=is_buy,
            px_ticks=px,
            qty_lots=qty,
            trade_id=trade_id,
            seq=self.seq,
            tick_direction=self.ticks.next(px) if self.ticks is not None else None,
        )

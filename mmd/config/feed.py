"""Config sections of the market data: `[feed]` (replay, synthetic, regimes), `[venue]`, `[rest]`,
`[ws]` and `[record]`. Structs and their checks only; nothing here reads settings.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from mmd.config.bounds import (
    DAY_S,
    STRUCT,
    BackoffS,
    PathStr,
    PollS,
    Symbol,
    TimeoutS,
    Url,
    check_path,
    check_url,
)


class ReplayConfig(msgspec.Struct, **STRUCT):
    """`[feed.replay]`: recordings driven through the pipeline with a manual clock."""

    paths: Annotated[list[PathStr], Meta(max_length=10_000)] = msgspec.field(default_factory=list)
    # 0 = as fast as possible; 1 = recorded pace; 10 = ten times faster.
    speed: Annotated[float, Meta(ge=0, le=1e6)] = 0.0

    def __post_init__(self) -> None:
        for i, path in enumerate(self.paths):
            check_path(path, f"paths[{i}]")


class RegimesConfig(msgspec.Struct, **STRUCT):
    """`[feed.synthetic.regimes]`: hidden structure with known truth (all off by default, so the
    generator's bytes for a seed do not change unless a knob is set)."""

    # share of aggressive orders sent by traders who know the mid informed_horizon_s ahead and
    # trade toward it (Glosten-Milgrom); 0 = none
    informed_share: Annotated[float, Meta(ge=0, le=1)] = 0.0
    informed_horizon_s: Annotated[float, Meta(ge=0.01, le=300.0)] = 5.0
    # hidden Markov regime (calm / volatile / trend up / trend down); false = always calm
    switching: bool = False
    # mean time spent in each regime before a switch to one of the other three (exponential)
    calm_mean_s: Annotated[float, Meta(ge=1.0, le=DAY_S)] = 600.0
    volatile_mean_s: Annotated[float, Meta(ge=1.0, le=DAY_S)] = 120.0
    trend_mean_s: Annotated[float, Meta(ge=1.0, le=DAY_S)] = 180.0
    # volatile regime: sigma_ticks times this (at most 200, sigma_ticks' own bound); trends:
    # this drift (ticks per second, signed by the direction) on top of the calm volatility
    volatile_sigma_mult: Annotated[float, Meta(ge=1.0, le=10.0)] = 3.0
    trend_drift_ticks_per_s: Annotated[float, Meta(ge=0, le=100.0)] = 2.0
    # self-exciting (Hawkes) trade arrivals: each order raises the intensity of its side by
    # branching * decay, decaying at decay_per_s; 0 = Poisson. The mean rate stays trade_rate_hz.
    hawkes_branching: Annotated[float, Meta(ge=0, le=0.95)] = 0.0
    hawkes_decay_per_s: Annotated[float, Meta(ge=0.01, le=100.0)] = 1.0
    # information events: at this rate (per second, counted from the end of the previous
    # episode; 0 = none) the value jumps info_jump_ticks up or down; informed traders then send
    # info_order_rate_hz orders per second on that side, each moving the public mid
    # info_impact_ticks toward the value, until it has caught up (the episode's end)
    info_rate_hz: Annotated[float, Meta(ge=0, le=10.0)] = 0.0
    info_jump_ticks: Annotated[float, Meta(gt=0, le=10_000.0)] = 20.0
    info_order_rate_hz: Annotated[float, Meta(gt=0, le=100.0)] = 2.0
    info_impact_ticks: Annotated[float, Meta(gt=0, le=1000.0)] = 0.5

    @property
    def active(self) -> bool:
        """Whether any knob departs from the plain generator."""
        return (
            self.informed_share > 0
            or self.switching
            or self.hawkes_branching > 0
            or self.info_rate_hz > 0
        )


class SyntheticConfig(msgspec.Struct, **STRUCT):
    """`[feed.synthetic]`: the seeded generator of Bybit-shaped frames."""

    seed: Annotated[int, Meta(ge=0, le=2**63 - 1)] = 7
    mid_price: Annotated[float, Meta(gt=0, le=1e9)] = 65000.0
    tick_size: Annotated[float, Meta(ge=1e-8, le=1e4)] = 0.1
    lot_size: Annotated[float, Meta(ge=1e-8, le=1e4)] = 0.001
    # volatility of the mid, in ticks per sqrt(second) (the generator's cost grows with it: every
    # tick the mid moves rewrites book levels)
    sigma_ticks: Annotated[float, Meta(gt=0, le=200.0)] = 20.0
    # frames per second (book deltas), per symbol; trades arrive as a Poisson process on top
    frame_rate_hz: Annotated[float, Meta(ge=0.01, le=100.0)] = 20.0
    # trade intensity at the touch (trades per second) and its decay per tick of distance
    trade_rate_hz: Annotated[float, Meta(ge=0, le=100.0)] = 5.0
    trade_decay_per_tick: Annotated[float, Meta(ge=0.001, le=1000.0)] = 0.5
    regimes: RegimesConfig = msgspec.field(default_factory=RegimesConfig)

    def __post_init__(self) -> None:
        if self.mid_price > 1e12 * self.tick_size:
            # prices are int64 ticks; a trillion ticks leaves room for every product with sizes
            raise ValueError("must be <= 1e12 ticks (mid_price / tick_size) - at `$.mid_price`")


class FeedConfig(msgspec.Struct, **STRUCT):
    """`[feed]`: what to trade and where the market data comes from."""

    source: Literal["bybit", "synthetic", "replay"] = "bybit"
    category: Literal["linear", "spot", "inverse"] = "linear"
    symbols: Annotated[list[Symbol], Meta(min_length=1, max_length=50)] = msgspec.field(
        default_factory=lambda: ["BTCUSDT"]
    )
    websocket: bool = True
    # orderbook.N topic depth (Bybit linear: 1, 50, 200, 1000)
    book_depth: Literal[1, 50, 200, 1000] = 50
    # a book with no update for this long is flagged stale (and the socket is recycled)
    stale_after_s: Annotated[float, Meta(ge=1.0, le=3600.0)] = 10.0
    replay: ReplayConfig = msgspec.field(default_factory=ReplayConfig)
    synthetic: SyntheticConfig = msgspec.field(default_factory=SyntheticConfig)


class VenueConfig(msgspec.Struct, **STRUCT):
    """`[venue]`: where Bybit (or `mmd serve-venue`) answers."""

    rest_url: Url = "https://api.bybit.com"
    ws_url: Url = "wss://stream.bybit.com/v5/public/linear"

    def __post_init__(self) -> None:
        check_url(self.rest_url, "rest_url", ("http", "https"))
        check_url(self.ws_url, "ws_url", ("ws", "wss"))


class RestConfig(msgspec.Struct, **STRUCT):
    """`[rest]`: polling intervals, timeouts, backoff and the client-side rate limit."""

    orderbook_interval_s: PollS = 1.0
    kline_interval_s: PollS = 15.0
    trades_interval_s: PollS = 5.0
    # orderbook limit requested in REST-only mode (linear: 1..1000)
    orderbook_limit: Annotated[int, Meta(ge=1, le=1000)] = 50
    timeout_s: TimeoutS = 5.0
    # Bybit allows 600 requests per 5 s per IP; stay far below it
    max_requests_per_s: Annotated[float, Meta(ge=0.01, le=100.0)] = 20.0
    backoff_base_s: BackoffS = 0.5
    backoff_max_s: BackoffS = 30.0
    # after HTTP 403 (Bybit's IP ban) wait at least this long before the next request
    forbidden_backoff_s: Annotated[float, Meta(ge=0, le=3600.0)] = 10.0
    # a response body (decompressed) larger than this is refused unread and retried later
    max_body_bytes: Annotated[int, Meta(ge=1024, le=256 << 20)] = 8 << 20

    def __post_init__(self) -> None:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("must be >= backoff_base_s - at `$.backoff_max_s`")


class WsConfig(msgspec.Struct, **STRUCT):
    """`[ws]`: the public websocket."""

    ping_interval_s: Annotated[float, Meta(ge=0.1, le=600.0)] = 20.0
    # no message of any kind for this long = dead connection
    idle_timeout_s: Annotated[float, Meta(ge=0.2, le=3600.0)] = 60.0
    connect_timeout_s: TimeoutS = 10.0
    backoff_base_s: BackoffS = 0.5
    backoff_max_s: BackoffS = 30.0
    # a message larger than this closes the connection (counted; reconnect with backoff)
    max_frame_bytes: Annotated[int, Meta(ge=1024, le=64 << 20)] = 4 << 20

    def __post_init__(self) -> None:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("must be >= backoff_base_s - at `$.backoff_max_s`")
        if self.idle_timeout_s <= self.ping_interval_s:
            # pongs are what keep a quiet but healthy connection from looking dead
            raise ValueError("must be > ping_interval_s - at `$.idle_timeout_s`")


class RecordConfig(msgspec.Struct, **STRUCT):
    """`[record]`: raw-frame recording while running (`mmd record` always records)."""

    enabled: bool = False
    dir: PathStr = "./recordings"
    # start a new file after this many seconds
    rotate_s: Annotated[float, Meta(ge=1.0, le=7 * DAY_S)] = 3600.0

    def __post_init__(self) -> None:
        check_path(self.dir, "dir")

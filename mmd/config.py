"""Typed configuration: msgspec Structs mirroring config.toml, plus load_config().

The sole reader of settings. Every Struct is frozen, keyword-only and forbids unknown fields, so a
typo is a start-up error naming the key. Environment variables MMD_<SECTION>__<KEY> override keys,
and `--set section.key=value` on the command line overrides both.

Every value is bounded here, so a config that `mmd check-config` accepts also runs: numbers are
finite (NaN and infinities are refused before the types are checked), durations and rates stay in
ranges the timers, the int64 nanosecond clocks and the numba kernels can represent, ring
capacities keep memory fixed and small, paths are non-empty and outside /proc, /sys and /dev, and
URLs have the scheme and host their client needs. Each bound is documented in config.toml.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from mmd.errors import ConfigError

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
_RING_ROW_BYTES = {"mid_capacity": 16, "trade_capacity": 32, "kline_capacity": 48}


def _check_path(value: str, key: str) -> None:
    """Refuse a path inside a kernel pseudo-filesystem (after resolving `..` and symlinks)."""
    real = os.path.realpath(value)
    for top in _PSEUDO_FS:
        if real == top or real.startswith(top + "/"):
            raise ValueError(f"must not be under {top} (resolves to {real}) - at `$.{key}`")


def _check_url(value: str, key: str, schemes: tuple[str, ...]) -> None:
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


_STRUCT = {"frozen": True, "kw_only": True, "forbid_unknown_fields": True}


class ReplayConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[feed.replay]`: recordings driven through the pipeline with a manual clock."""

    paths: Annotated[list[PathStr], Meta(max_length=10_000)] = msgspec.field(default_factory=list)
    # 0 = as fast as possible; 1 = recorded pace; 10 = ten times faster.
    speed: Annotated[float, Meta(ge=0, le=1e6)] = 0.0

    def __post_init__(self) -> None:
        for i, path in enumerate(self.paths):
            _check_path(path, f"paths[{i}]")


class RegimesConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
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


class SyntheticConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
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


class FeedConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
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


class VenueConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[venue]`: where Bybit (or `mmd serve-venue`) answers."""

    rest_url: Url = "https://api.bybit.com"
    ws_url: Url = "wss://stream.bybit.com/v5/public/linear"

    def __post_init__(self) -> None:
        _check_url(self.rest_url, "rest_url", ("http", "https"))
        _check_url(self.ws_url, "ws_url", ("ws", "wss"))


class RestConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
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


class WsConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
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


class MarketConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[market]`: fixed-size market state (memory does not grow with run length).

    A row costs 16 bytes in the mid ring, 32 in the trade ring and 48 in the kline ring, per
    symbol; AppConfig refuses capacities whose rings for every symbol exceed RING_BUDGET_BYTES.
    """

    book_levels: Annotated[int, Meta(ge=1, le=5000)] = 200
    mid_capacity: RingRows = 65536
    trade_capacity: RingRows = 65536
    kline_capacity: Annotated[int, Meta(ge=1, le=1 << 16)] = 4096

    def ring_bytes(self) -> int:
        """Bytes of one symbol's rings."""
        return sum(getattr(self, k) * n for k, n in _RING_ROW_BYTES.items())


class MetricsConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[metrics]`: the HTTP server for /metrics, /healthz, /readyz."""

    host: Host = "127.0.0.1"
    # 0 = any free port
    port: Port = 9464
    # serve /debug/book/{symbol} (the book as held; off: 404)
    debug: bool = False
    # a client must send its request, and take the answer, within this (seconds)
    request_timeout_s: Annotated[float, Meta(ge=0.1, le=600.0)] = 5.0
    # open connections at most; over it the oldest one still sending its request is closed
    max_connections: Annotated[int, Meta(ge=1, le=1024)] = 32


class StateConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[state]`: the ledger (SQLite, WAL) directory and its snapshots."""

    # the ledger is <dir>/<feed source>/ledger.sqlite (bybit, synthetic and replay never mix)
    dir: PathStr = "./state"
    # portfolio snapshots (position, cash, PnL) and ledger checkpoints are written this often
    # (seconds)
    snapshot_interval_s: Annotated[float, Meta(ge=0.1, le=DAY_S)] = 10.0

    def __post_init__(self) -> None:
        if not self.dir.strip():
            # a blank name would put the ledger in (or beside) the working directory
            raise ValueError("must not be blank - at `$.dir`")
        _check_path(self.dir, "dir")


class ExchangeConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[exchange]`: the paper exchange that matches our quotes against the real market."""

    # queue position model: "risk_averse" (only trades at our price advance us),
    # "prob_power" (a depth decrease is behind us with prob f(back)/(f(back)+f(front)),
    # f(x) = x^n) or "prob_log" (f(x) = log(1 + x))
    queue_model: Literal["risk_averse", "prob_power", "prob_log"] = "prob_power"
    # n of the power queue model
    queue_power: Annotated[float, Meta(ge=0.01, le=10.0)] = 2.0
    # order entry and cancel latency (ms); negative (-1) = derive from the measured feed latency
    entry_latency_ms: LatencyMs = -1.0
    cancel_latency_ms: LatencyMs = -1.0
    # allow partial fills (trade quantity smaller than our remaining size fills part of it)
    partial_fills: bool = True
    # Bybit linear defaults (fee rates; a negative maker fee is a rebate)
    maker_fee: FeeRate = 0.0002
    taker_fee: FeeRate = 0.00055
    # funding: apply payments at funding times from the venue's funding rate
    funding: bool = True


class RiskConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[risk]`: pre-trade limits and the kill switch."""

    # absolute notional limit per symbol (quote currency); 0 = none
    max_notional: QuoteLimit = 0.0
    # kill switch: stop quoting when the day's PnL (UTC day, fees and funding included) falls
    # below -max_loss_per_day (quote currency); 0 = none. The daemon keeps running and reporting.
    # Evaluated on every mark; the day's baseline and a trip survive restarts the same UTC day;
    # `mmd risk status|reset` inspects and clears it.
    max_loss_per_day: QuoteLimit = 50.0
    # at most this many order commands (submits + cancels) per second per symbol
    max_orders_per_s: Annotated[float, Meta(ge=0.01, le=1000.0)] = 20.0


class ModelsConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[models]`: the learned models the daemon and `backtest --strategy ml` quote with."""

    dir: PathStr = "./models"
    # use the adverse-selection detector (<dir>/adverse, written by `mmd train adverse`)
    adverse: bool = False
    # use the spread predictor (<dir>/spread, written by `mmd train spread`)
    spread: bool = False
    # a missing or incompatible model file: "error" (exit 2 naming the file) or "neutral"
    # (log model_missing and quote without that model)
    missing: Literal["error", "neutral"] = "error"
    # adjust gamma and skew with the Q-learning table (<dir>/rl, written by `mmd train rl`)
    rl: bool = False
    # with rl: keep learning online (epsilon-greedy updates of the table in memory; paper only)
    rl_online: bool = False
    # `mmd train rl` (the table records them; the daemon uses the table's): seconds between
    # RL decisions, and bins of inventory, volatility, order-flow imbalance, the detector's
    # probability and the session's elapsed time (at most 10 each; OFI 1 = not binned: the
    # jitted training loop runs no feature engine, more bins train through the frame driver)
    rl_step_s: Annotated[float, Meta(ge=0.1, le=3600.0)] = 5.0
    rl_inventory_bins: RlBins = 5
    rl_volatility_bins: RlBins = 3
    rl_ofi_bins: RlBins = 1
    rl_adverse_bins: RlBins = 3
    rl_time_bins: RlBins = 2
    # sigma (ticks per sqrt s) at the middle of the volatility bins; OFI (in average trade
    # sizes) at tanh 0.76 of the OFI bins
    rl_vol_ref_ticks: Annotated[float, Meta(gt=0, le=1e9)] = 20.0
    rl_ofi_scale: Annotated[float, Meta(gt=0, le=1e9)] = 5.0
    # learning (training and rl_online): rate, discount, exploration probability
    rl_alpha: Annotated[float, Meta(gt=0, le=1.0)] = 0.1
    rl_discount: Annotated[float, Meta(ge=0, le=0.999)] = 0.9
    rl_epsilon: Annotated[float, Meta(ge=0, le=1.0)] = 0.1
    # reward: share of a speculative (inventory) gain taken off, and the inventory cost in
    # ticks per lot per step at the position limit (quadratic in the position)
    rl_damp: Annotated[float, Meta(ge=0, le=1.0)] = 0.5
    rl_penalty_ticks: Annotated[float, Meta(ge=0, le=1e6)] = 1.0
    # quote with the deep order-flow model <dir>/lstm (`mmd train lstm` or `multitask`)
    lstm: bool = False
    # ticks of reservation shift at full conviction (direction P(up) 1 or 0, position head
    # +-1 away from the inventory)
    deep_skew_ticks: Annotated[float, Meta(ge=0, le=100.0)] = 2.0

    def __post_init__(self) -> None:
        _check_path(self.dir, "dir")


class FeaturesConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[features]`: microstructure features, updated incrementally on every book/trade event."""

    # levels summed for the k-level imbalance and the depth ratio
    imbalance_levels: Annotated[int, Meta(ge=1, le=200)] = 5
    # the mid is sampled on this fixed clock for realized volatility (seconds)
    vol_sample_s: Annotated[float, Meta(ge=0.001, le=3600.0)] = 1.0
    # number of sampled log returns in the realized-volatility window
    vol_window: Annotated[int, Meta(ge=2, le=100_000)] = 300
    # half-life of the exponentially weighted flow features (OFI, delta, trade rate, size)
    flow_halflife_s: HalfLifeS = 30.0
    # half-life of queue pressure (rate of change of touch volume)
    queue_halflife_s: HalfLifeS = 5.0
    # number of spread samples (one per vol_sample_s) in the spread z-score window
    spread_window: Annotated[int, Meta(ge=2, le=100_000)] = 600
    # VPIN: volume per bucket in base units (0 = auto: from the first minute of trades)
    vpin_bucket_volume: Annotated[float, Meta(ge=0, le=1e9)] = 0.0
    # VPIN: number of buckets averaged
    vpin_buckets: Annotated[int, Meta(ge=1, le=10_000)] = 50
    # Garman-Klass volatility: number of 1-minute klines
    gk_window: Annotated[int, Meta(ge=1, le=10_000)] = 30


class CalibrationConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[strategy.calibration]`: online fit of the fill intensity lambda(d) = A exp(-kappa d)."""

    # trades older than this are out of the fit window (seconds; 0.1 s steps are kept for it)
    window_s: Annotated[float, Meta(ge=1.0, le=7200.0)] = 600.0
    # refit every this many seconds
    refit_s: Annotated[float, Meta(ge=0.1, le=3600.0)] = 5.0
    # distances (in ticks from the mid) fitted: 0 .. max_depth_ticks
    max_depth_ticks: Annotated[int, Meta(ge=2, le=100_000)] = 50
    # fewer trades than this in the window = no fit (keep the previous or the fallback)
    min_trades: Annotated[int, Meta(ge=2, le=1_000_000)] = 30
    # a fit whose R^2 is below this is rejected as poor
    min_r2: Annotated[float, Meta(ge=0, le=1)] = 0.5
    # bounds the fitted values are clipped to
    kappa_min: Annotated[float, Meta(gt=0, le=1000.0)] = 0.001
    kappa_max: Annotated[float, Meta(gt=0, le=1000.0)] = 10.0
    a_min: Annotated[float, Meta(gt=0, le=1e6)] = 0.001
    a_max: Annotated[float, Meta(gt=0, le=1e6)] = 1000.0
    # used until the first good fit, and whenever a fit is poor (kappa per tick, A per second,
    # sigma in ticks per sqrt(second))
    fallback_kappa: Annotated[float, Meta(gt=0, le=1000.0)] = 0.05
    fallback_a: Annotated[float, Meta(gt=0, le=1e6)] = 0.5
    fallback_sigma: Annotated[float, Meta(gt=0, le=1e6)] = 20.0

    def __post_init__(self) -> None:
        if self.kappa_max <= self.kappa_min:
            raise ValueError("must be > kappa_min - at `$.kappa_max`")
        if self.a_max <= self.a_min:
            raise ValueError("must be > a_min - at `$.a_max`")


class StrategyConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[strategy]`: the quote model and the rules applied after it."""

    # "as" (Avellaneda-Stoikov) or "glft" (Gueant-Lehalle-Fernandez-Tapia, infinite horizon)
    model: Literal["as", "glft"] = "as"
    # risk aversion gamma, per lot of inventory: the AS inventory term gamma*sigma^2*(T-t) is in
    # ticks, so with sigma ~20 ticks/sqrt(s) and T-t ~300 s, gamma 1e-4 skews ~12 ticks per lot
    gamma: Annotated[float, Meta(gt=0, le=1000.0)] = 1e-4
    # AS horizon: T - t runs down from session_s to 0 over each rolling session (seconds)
    session_s: Annotated[float, Meta(ge=1.0, le=DAY_S)] = 300.0
    # quote size of the first level, in base units (rounded to lots)
    order_size: BaseQty = 0.001
    # no quote on a side that would take |position| beyond this (base units, Instrument.limit_lots)
    max_position: Annotated[float, Meta(gt=0, le=1e10)] = 0.01
    # minimum total spread in basis points of the mid (0 = none)
    min_spread_bps: Annotated[float, Meta(ge=0, le=10_000.0)] = 0.0
    # price levels per side (a ladder); level i sits level_spacing_ticks further out
    levels: Annotated[int, Meta(ge=1, le=20)] = 1
    level_spacing_ticks: Annotated[int, Meta(ge=1, le=10_000)] = 1
    # size shaping: the side that grows inventory quotes size * exp(-eta * |q| / max_q)
    size_eta: Annotated[float, Meta(ge=0, le=100.0)] = 0.0
    # keep a resting quote whose price is within this many ticks of the new target
    requote_tolerance_ticks: Annotated[int, Meta(ge=0, le=10_000)] = 1
    # after this long (seconds) without calibrated parameters, quote from the fallbacks
    warmup_s: Annotated[float, Meta(gt=0, le=DAY_S)] = 30.0
    # quotes are recomputed at least this often even without market updates (seconds)
    requote_interval_s: Annotated[float, Meta(ge=0.01, le=3600.0)] = 1.0
    # live: a book frame is quoted at once unless a newer frame is already waiting; under such a
    # backlog quotes are coalesced but decided at least every this many book frames ...
    backlog_quote_every_frames: Annotated[int, Meta(ge=1, le=100_000)] = 16
    # ... or this often (seconds), whichever comes first
    backlog_quote_every_s: Annotated[float, Meta(ge=0.0001, le=10.0)] = 0.002
    # risk-scaled order size (mmd.kernels.risk_size): the order size times 1 / (1 + risk),
    # risk = w_vol * max(0, sigma / sigma_ref - 1) + w_drawdown * drawdown / drawdown_quote
    #      + w_loss * share of [risk] max_loss_per_day lost today + w_inventory * |q| / max_q,
    # floored at one lot; sigma_ref is an exponential average of sigma (half-life vol_halflife_s)
    risk_size: bool = False
    risk_size_w_vol: Annotated[float, Meta(ge=0, le=1000.0)] = 1.0
    risk_size_w_drawdown: Annotated[float, Meta(ge=0, le=1000.0)] = 1.0
    risk_size_w_loss: Annotated[float, Meta(ge=0, le=1000.0)] = 1.0
    risk_size_w_inventory: Annotated[float, Meta(ge=0, le=1000.0)] = 0.5
    risk_size_drawdown_quote: Annotated[float, Meta(gt=0, le=1e12)] = 10.0
    risk_size_vol_halflife_s: Annotated[float, Meta(gt=0, le=DAY_S)] = 300.0
    calibration: CalibrationConfig = msgspec.field(default_factory=CalibrationConfig)


class HedgeConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[hedge]`: beta hedge of the book through the hedge instrument's quotes."""

    enabled: bool = False
    # the hedge instrument (one of feed.symbols; without it nothing is hedged)
    instrument: Symbol = "BTCUSDT"
    # returns are sampled every this many seconds of exchange time
    sample_s: Annotated[float, Meta(ge=0.01, le=3600.0)] = 1.0
    # half-life of the regression weights
    halflife_s: HalfLifeS = 600.0
    # skew of the hedge instrument's quotes (ticks) at a gap of max_position lots or more
    # between the hedge target and its position
    skew_ticks: Annotated[float, Meta(ge=0, le=1e6)] = 5.0
    # return pairs before a beta counts
    min_samples: Annotated[int, Meta(ge=3, le=1_000_000)] = 30


class RecordConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[record]`: raw-frame recording while running (`mmd record` always records)."""

    enabled: bool = False
    dir: PathStr = "./recordings"
    # start a new file after this many seconds
    rotate_s: Annotated[float, Meta(ge=1.0, le=7 * DAY_S)] = 3600.0

    def __post_init__(self) -> None:
        _check_path(self.dir, "dir")


class LogsConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[logs]`: structlog output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    # auto = console on a TTY, JSON otherwise
    format: Literal["auto", "json", "console"] = "auto"


class AppConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """The whole config.toml."""

    feed: FeedConfig = msgspec.field(default_factory=FeedConfig)
    venue: VenueConfig = msgspec.field(default_factory=VenueConfig)
    rest: RestConfig = msgspec.field(default_factory=RestConfig)
    ws: WsConfig = msgspec.field(default_factory=WsConfig)
    market: MarketConfig = msgspec.field(default_factory=MarketConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    models: ModelsConfig = msgspec.field(default_factory=ModelsConfig)
    record: RecordConfig = msgspec.field(default_factory=RecordConfig)
    features: FeaturesConfig = msgspec.field(default_factory=FeaturesConfig)
    exchange: ExchangeConfig = msgspec.field(default_factory=ExchangeConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)
    hedge: HedgeConfig = msgspec.field(default_factory=HedgeConfig)
    logs: LogsConfig = msgspec.field(default_factory=LogsConfig)

    def __post_init__(self) -> None:
        if len(set(self.feed.symbols)) != len(self.feed.symbols):
            raise ValueError("duplicate symbol - at `$.feed.symbols`")
        if self.feed.book_depth > self.market.book_levels:
            raise ValueError("must be >= feed.book_depth - at `$.market.book_levels`")
        if self.feed.source == "synthetic":
            # ConfigError, not ValueError: `mmd run --feed synthetic` sets the source with
            # msgspec.structs.replace, which runs this check outside msgspec's validation
            n, rate = len(self.feed.symbols), self.feed.synthetic.frame_rate_hz
            if n * rate > SYNTHETIC_MAX_FRAMES_PER_S:
                raise ConfigError(
                    f"feed.synthetic.frame_rate_hz: {n} symbols x {rate:g} Hz = {n * rate:g} "
                    f"frames/s, more than the {SYNTHETIC_MAX_FRAMES_PER_S:g} the synthetic feed "
                    "sustains; lower it"
                )
        need = len(self.feed.symbols) * self.market.ring_bytes()
        if need > RING_BUDGET_BYTES:
            # name the ring that costs most
            key = max(_RING_ROW_BYTES, key=lambda k: getattr(self.market, k) * _RING_ROW_BYTES[k])
            raise ValueError(
                f"the rings of {len(self.feed.symbols)} symbols would take {need / 2**20:.0f} MiB"
                f" (more than {RING_BUDGET_BYTES >> 20} MiB); lower it - at `$.market.{key}`"
            )


ENV_PREFIX = "MMD_"


def _parse_env_value(raw: str) -> Any:
    """A TOML value if it parses as one (numbers, booleans, arrays), else the raw string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):  # not TOML, or nested beyond the stack
        return raw


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay MMD_<SECTION>__<KEY>[__<KEY>...] variables onto the decoded TOML table.

    Args:
        data: the TOML table (modified in place and returned).
        environ: usually os.environ.

    Returns:
        The same table with the overrides applied.
    """
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in parts):
            raise ConfigError(f"{name}: malformed override name")
        table = data
        for part in parts[:-1]:
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{name}: `{part}` is not a section")
            table = nxt
        table[parts[-1]] = _parse_env_value(raw)
    return data


def apply_set_overrides(data: dict[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """Overlay `--set section.key=value` items (command line) onto the decoded table.

    Values parse as in MMD_* variables (a TOML value when it is one, else the raw string);
    the result is validated like config.toml by the caller. Later items win.

    Args:
        data: the table after the file and the environment (modified in place and returned).
        items: `section.key=value` or `section.sub.key=value` strings.

    Raises:
        ConfigError: an item without `=` or with an empty key part, naming the item.
    """
    for item in items:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or any(not p.strip() for p in parts):
            raise ConfigError(f"--set {item}: expected section.key=value")
        table = data
        for part in parts[:-1]:
            nxt = table.setdefault(part.strip(), {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item}: `{part}` is not a section")
            table = nxt
        table[parts[-1].strip()] = _parse_env_value(raw.strip())
    return data


_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")


def _error_message(exc: msgspec.ValidationError) -> str:
    """Rewrite msgspec's `reason - at `$.x` - at `$.feed`` into `feed.x: reason`.

    A __post_init__ check names its own field (inner path); msgspec appends the outer path.
    """
    text = str(exc)
    parts = [m for m in _PATH_RE.findall(text) if m]
    key = ".".join(reversed(parts)).replace(".[", "[")
    reason = _PATH_RE.sub("", text).replace(" - ", "").rstrip(" -")
    if reason.startswith("Object contains unknown field"):
        field = re.search(r"`([^`]*)`", reason)
        unknown = field.group(1) if field else "?"
        key = f"{key}.{unknown}" if key else unknown
        reason = "unknown key"
    return f"{key or '<root>'}: {reason}"


def _check_finite(value: Any, key: str) -> None:
    """Refuse NaN and infinities anywhere in a decoded table, naming the key (TOML has `nan` and
    `inf`; a NaN fee or limit would otherwise reach the ledger and the kernels)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{key}[{i}]")


def config_from_mapping(data: dict[str, Any]) -> AppConfig:
    """Validate a decoded table into an AppConfig; raise ConfigError naming the bad key."""
    _check_finite(data, "")
    try:
        return msgspec.convert(data, type=AppConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(_error_message(exc)) from None


def load_config(
    path: str | Path | None, environ: Mapping[str, str] | None = None, sets: Sequence[str] = ()
) -> AppConfig:
    """Read config.toml (or defaults when path is None), apply env overrides, validate.

    Precedence: the file < MMD_* variables < `--set` items.

    Args:
        path: the TOML file, or None for the built-in defaults.
        environ: the environment to read MMD_* overrides from (default os.environ).
        sets: `--set section.key=value` items (apply_set_overrides).

    Returns:
        The validated config.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key, wrong type or out-of-range value;
            the message names the key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read config ({exc.strerror})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML ({exc})") from None
        except RecursionError:
            raise ConfigError(f"{p}: invalid TOML (nested too deeply)") from None
    data = apply_env_overrides(data, os.environ if environ is None else environ)
    return config_from_mapping(apply_set_overrides(data, sets))


def dump_config(cfg: AppConfig) -> str:
    """The effective config as TOML text (what `mmd check-config` prints)."""
    return msgspec.toml.encode(cfg).decode()

"""The root of the config tree: AppConfig (the whole config.toml, its cross-section checks) and
the daemon's own sections `[metrics]`, `[state]` and `[logs]`. Structs only; loader.py reads.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from mmd.config.bounds import (
    DAY_S,
    RING_BUDGET_BYTES,
    RING_ROW_BYTES,
    STRUCT,
    SYNTHETIC_MAX_FRAMES_PER_S,
    Host,
    PathStr,
    Port,
    check_path,
)
from mmd.config.feed import FeedConfig, RecordConfig, RestConfig, VenueConfig, WsConfig
from mmd.config.trading import (
    ExchangeConfig,
    FeaturesConfig,
    HedgeConfig,
    MarketConfig,
    ModelsConfig,
    RiskConfig,
    StrategyConfig,
)
from mmd.errors import ConfigError


class MetricsConfig(msgspec.Struct, **STRUCT):
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


class StateConfig(msgspec.Struct, **STRUCT):
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
        check_path(self.dir, "dir")


class LogsConfig(msgspec.Struct, **STRUCT):
    """`[logs]`: structlog output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    # auto = console on a TTY, JSON otherwise
    format: Literal["auto", "json", "console"] = "auto"


class AppConfig(msgspec.Struct, **STRUCT):
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
            key = max(RING_ROW_BYTES, key=lambda k: getattr(self.market, k) * RING_ROW_BYTES[k])
            raise ValueError(
                f"the rings of {len(self.feed.symbols)} symbols would take {need / 2**20:.0f} MiB"
                f" (more than {RING_BUDGET_BYTES >> 20} MiB); lower it - at `$.market.{key}`"
            )

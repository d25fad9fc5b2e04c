"""Typed configuration: msgspec Structs mirroring config.toml, plus load_config().

The sole reader of settings. Every Struct is frozen, keyword-only and forbids unknown fields, so a
typo is a start-up error naming the key. Environment variables MMD_<SECTION>__<KEY> override keys.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from mmd.errors import ConfigError

PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegFloat = Annotated[float, Meta(ge=0)]
PositiveInt = Annotated[int, Meta(gt=0)]
Port = Annotated[int, Meta(ge=0, le=65535)]
Symbol = Annotated[str, Meta(pattern=r"^[A-Z0-9]{2,30}$")]

_STRUCT = {"frozen": True, "kw_only": True, "forbid_unknown_fields": True}


class ReplayConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[feed.replay]`: recordings driven through the pipeline with a manual clock."""

    paths: list[str] = msgspec.field(default_factory=list)
    # 0 = as fast as possible; 1 = recorded pace; 10 = ten times faster.
    speed: NonNegFloat = 0.0


class SyntheticConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[feed.synthetic]`: the seeded generator of Bybit-shaped frames."""

    seed: int = 7
    mid_price: PositiveFloat = 65000.0
    tick_size: PositiveFloat = 0.1
    lot_size: PositiveFloat = 0.001
    # volatility of the mid, in ticks per sqrt(second)
    sigma_ticks: PositiveFloat = 20.0
    # frames per second (book deltas); trades arrive as a Poisson process on top
    frame_rate_hz: PositiveFloat = 20.0
    # trade intensity at the touch (trades per second) and its decay per tick of distance
    trade_rate_hz: NonNegFloat = 5.0
    trade_decay_per_tick: PositiveFloat = 0.5


class FeedConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[feed]`: what to trade and where the market data comes from."""

    source: Literal["bybit", "synthetic", "replay"] = "bybit"
    category: Literal["linear", "spot", "inverse"] = "linear"
    symbols: Annotated[list[Symbol], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["BTCUSDT"]
    )
    websocket: bool = True
    # orderbook.N topic depth (Bybit linear: 1, 50, 200, 1000)
    book_depth: Literal[1, 50, 200, 1000] = 50
    # a book with no update for this long is flagged stale (and the socket is recycled)
    stale_after_s: PositiveFloat = 10.0
    replay: ReplayConfig = msgspec.field(default_factory=ReplayConfig)
    synthetic: SyntheticConfig = msgspec.field(default_factory=SyntheticConfig)


class VenueConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[venue]`: where Bybit (or `mmd serve-venue`) answers."""

    rest_url: str = "https://api.bybit.com"
    ws_url: str = "wss://stream.bybit.com/v5/public/linear"

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.rest_url):
            raise ValueError("Expected an http:// or https:// URL - at `$.rest_url`")
        if not re.match(r"^wss?://", self.ws_url):
            raise ValueError("Expected a ws:// or wss:// URL - at `$.ws_url`")


class RestConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[rest]`: polling intervals, timeouts, backoff and the client-side rate limit."""

    orderbook_interval_s: PositiveFloat = 1.0
    kline_interval_s: PositiveFloat = 15.0
    trades_interval_s: PositiveFloat = 5.0
    # orderbook limit requested in REST-only mode (linear: 1..1000)
    orderbook_limit: Annotated[int, Meta(ge=1, le=1000)] = 50
    timeout_s: PositiveFloat = 5.0
    # Bybit allows 600 requests per 5 s per IP; stay far below it
    max_requests_per_s: Annotated[float, Meta(gt=0, le=100)] = 20.0
    backoff_base_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 30.0
    # after HTTP 403 (Bybit's IP ban) wait at least this long before the next request
    forbidden_backoff_s: NonNegFloat = 10.0

    def __post_init__(self) -> None:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("must be >= backoff_base_s - at `$.backoff_max_s`")


class WsConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[ws]`: the public websocket."""

    ping_interval_s: PositiveFloat = 20.0
    # no message of any kind for this long = dead connection
    idle_timeout_s: PositiveFloat = 60.0
    connect_timeout_s: PositiveFloat = 10.0
    backoff_base_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 30.0

    def __post_init__(self) -> None:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("must be >= backoff_base_s - at `$.backoff_max_s`")
        if self.idle_timeout_s <= self.ping_interval_s:
            # pongs are what keep a quiet but healthy connection from looking dead
            raise ValueError("must be > ping_interval_s - at `$.idle_timeout_s`")


class MarketConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[market]`: fixed-size market state (memory does not grow with run length)."""

    book_levels: Annotated[int, Meta(ge=1, le=5000)] = 200
    mid_capacity: PositiveInt = 65536
    trade_capacity: PositiveInt = 65536
    kline_capacity: PositiveInt = 4096


class MetricsConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[metrics]`: the HTTP server for /metrics, /healthz, /readyz."""

    host: str = "127.0.0.1"
    port: Port = 9464


class StateConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[state]`: the ledger (SQLite, WAL) directory and its snapshots."""

    # the ledger is <dir>/<feed source>/ledger.sqlite (bybit, synthetic and replay never mix)
    dir: str = "./state"
    # portfolio snapshots (position, cash, PnL) and ledger checkpoints are written this often
    # (seconds)
    snapshot_interval_s: PositiveFloat = 10.0


class ExchangeConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[exchange]`: the paper exchange that matches our quotes against the real market."""

    # queue position model: "risk_averse" (only trades at our price advance us),
    # "prob_power" (a depth decrease is behind us with prob f(back)/(f(back)+f(front)),
    # f(x) = x^n) or "prob_log" (f(x) = log(1 + x))
    queue_model: Literal["risk_averse", "prob_power", "prob_log"] = "prob_power"
    # n of the power queue model
    queue_power: PositiveFloat = 2.0
    # order entry and cancel latency (ms); negative = derive from the measured feed latency
    entry_latency_ms: float = -1.0
    cancel_latency_ms: float = -1.0
    # allow partial fills (trade quantity smaller than our remaining size fills part of it)
    partial_fills: bool = True
    # Bybit linear defaults (fee rates; a negative maker fee is a rebate)
    maker_fee: float = 0.0002
    taker_fee: float = 0.00055
    # funding: apply payments at funding times from the venue's funding rate
    funding: bool = True


class RiskConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[risk]`: pre-trade limits and the kill switch."""

    # absolute notional limit per symbol (quote currency); 0 = none
    max_notional: NonNegFloat = 0.0
    # kill switch: stop quoting when the day's PnL (UTC day, fees and funding included) falls
    # below -max_loss_per_day (quote currency); 0 = none. The daemon keeps running and reporting.
    # Evaluated on every mark; the day's baseline and a trip survive restarts the same UTC day;
    # `mmd risk status|reset` inspects and clears it.
    max_loss_per_day: NonNegFloat = 50.0
    # at most this many order commands (submits + cancels) per second per symbol
    max_orders_per_s: PositiveFloat = 20.0
    # quote size is scaled by (1 - |position| / max_position) ** size_scale_power (0 = off)
    size_scale_power: NonNegFloat = 0.0


class ModelsConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[models]`: model files."""

    dir: str = "./models"


class FeaturesConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[features]`: microstructure features, updated incrementally on every book/trade event."""

    # levels summed for the k-level imbalance and the depth ratio
    imbalance_levels: Annotated[int, Meta(ge=1, le=200)] = 5
    # the mid is sampled on this fixed clock for realized volatility (seconds)
    vol_sample_s: PositiveFloat = 1.0
    # number of sampled log returns in the realized-volatility window
    vol_window: Annotated[int, Meta(ge=2, le=100_000)] = 300
    # half-life of the exponentially weighted flow features (OFI, delta, trade rate, size)
    flow_halflife_s: PositiveFloat = 30.0
    # half-life of queue pressure (rate of change of touch volume)
    queue_halflife_s: PositiveFloat = 5.0
    # number of spread samples (one per vol_sample_s) in the spread z-score window
    spread_window: Annotated[int, Meta(ge=2, le=100_000)] = 600
    # VPIN: volume per bucket in base units (0 = auto: from the first minute of trades)
    vpin_bucket_volume: NonNegFloat = 0.0
    # VPIN: number of buckets averaged
    vpin_buckets: Annotated[int, Meta(ge=1, le=10_000)] = 50
    # Garman-Klass volatility: number of 1-minute klines
    gk_window: Annotated[int, Meta(ge=1, le=10_000)] = 30


class CalibrationConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[strategy.calibration]`: online fit of the fill intensity lambda(d) = A exp(-kappa d)."""

    # trades older than this are out of the fit window (seconds)
    window_s: PositiveFloat = 600.0
    # refit every this many seconds
    refit_s: PositiveFloat = 5.0
    # distances (in ticks from the mid) fitted: 0 .. max_depth_ticks
    max_depth_ticks: Annotated[int, Meta(ge=2, le=100_000)] = 50
    # fewer trades than this in the window = no fit (keep the previous or the fallback)
    min_trades: Annotated[int, Meta(ge=2)] = 30
    # a fit whose R^2 is below this is rejected as poor
    min_r2: Annotated[float, Meta(ge=0, le=1)] = 0.5
    # bounds the fitted values are clipped to
    kappa_min: PositiveFloat = 0.001
    kappa_max: PositiveFloat = 10.0
    a_min: PositiveFloat = 0.001
    a_max: PositiveFloat = 1000.0
    # used until the first good fit, and whenever a fit is poor (kappa per tick, A per second,
    # sigma in ticks per sqrt(second))
    fallback_kappa: PositiveFloat = 0.05
    fallback_a: PositiveFloat = 0.5
    fallback_sigma: PositiveFloat = 20.0

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
    gamma: PositiveFloat = 1e-4
    # AS horizon: T - t runs down from session_s to 0 over each rolling session (seconds)
    session_s: PositiveFloat = 300.0
    # quote size of the first level, in base units (rounded to lots)
    order_size: PositiveFloat = 0.001
    # no quote on a side that would take |position| beyond this (base units)
    max_position: PositiveFloat = 0.01
    # minimum total spread in basis points of the mid (0 = none)
    min_spread_bps: NonNegFloat = 0.0
    # price levels per side (a ladder); level i sits level_spacing_ticks further out
    levels: Annotated[int, Meta(ge=1, le=20)] = 1
    level_spacing_ticks: Annotated[int, Meta(ge=1)] = 1
    # size shaping: the side that grows inventory quotes size * exp(-eta * |q| / max_q)
    size_eta: NonNegFloat = 0.0
    # keep a resting quote whose price is within this many ticks of the new target
    requote_tolerance_ticks: Annotated[int, Meta(ge=0)] = 1
    # after this long (seconds) without calibrated parameters, quote from the fallbacks
    warmup_s: PositiveFloat = 30.0
    # quotes are recomputed at least this often even without market updates (seconds)
    requote_interval_s: PositiveFloat = 1.0
    calibration: CalibrationConfig = msgspec.field(default_factory=CalibrationConfig)


class RecordConfig(msgspec.Struct, **_STRUCT):  # type: ignore[call-arg]
    """`[record]`: raw-frame recording while running (`mmd record` always records)."""

    enabled: bool = False
    dir: str = "./recordings"
    # start a new file after this many seconds
    rotate_s: PositiveFloat = 3600.0


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
    logs: LogsConfig = msgspec.field(default_factory=LogsConfig)

    def __post_init__(self) -> None:
        if len(set(self.feed.symbols)) != len(self.feed.symbols):
            raise ValueError("duplicate symbol - at `$.feed.symbols`")
        if self.feed.book_depth > self.market.book_levels:
            raise ValueError("must be >= feed.book_depth - at `$.market.book_levels`")


ENV_PREFIX = "MMD_"


def _parse_env_value(raw: str) -> Any:
    """A TOML value if it parses as one (numbers, booleans, arrays), else the raw string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
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


def config_from_mapping(data: dict[str, Any]) -> AppConfig:
    """Validate a decoded table into an AppConfig; raise ConfigError naming the bad key."""
    try:
        return msgspec.convert(data, type=AppConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(_error_message(exc)) from None


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read config.toml (or defaults when path is None), apply env overrides, validate.

    Args:
        path: the TOML file, or None for the built-in defaults.
        environ: the environment to read MMD_* overrides from (default os.environ).

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
    data = apply_env_overrides(data, os.environ if environ is None else environ)
    return config_from_mapping(data)


def dump_config(cfg: AppConfig) -> str:
    """The effective config as TOML text (what `mmd check-config` prints)."""
    return msgspec.toml.encode(cfg).decode()

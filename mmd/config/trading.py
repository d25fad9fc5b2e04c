"""Config sections of the trading loop: `[market]`, `[features]`, `[strategy]` (calibration),
`[hedge]`, `[models]`, `[exchange]` and `[risk]`. Structs and their checks only.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from mmd.config.bounds import (
    DAY_S,
    RING_ROW_BYTES,
    STRUCT,
    BaseQty,
    FeeRate,
    HalfLifeS,
    LatencyMs,
    PathStr,
    QuoteLimit,
    RingRows,
    RlBins,
    Symbol,
    check_path,
)


class MarketConfig(msgspec.Struct, **STRUCT):
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
        return sum(getattr(self, k) * n for k, n in RING_ROW_BYTES.items())


class ExchangeConfig(msgspec.Struct, **STRUCT):
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


class RiskConfig(msgspec.Struct, **STRUCT):
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


class ModelsConfig(msgspec.Struct, **STRUCT):
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
        check_path(self.dir, "dir")


class FeaturesConfig(msgspec.Struct, **STRUCT):
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


class CalibrationConfig(msgspec.Struct, **STRUCT):
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


class StrategyConfig(msgspec.Struct, **STRUCT):
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


class HedgeConfig(msgspec.Struct, **STRUCT):
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

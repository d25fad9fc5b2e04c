"""Quoter: book + volatility/intensity estimates + position + ML inputs -> QuoteTarget.

Glue only: the formulas and the ladder rules are in `mmd.kernels.quotes`. It does not place
orders (`order_diff` does) and does not read the clock (time arrives as `now_ns`).
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec
import numpy as np

from mmd.config import StrategyConfig
from mmd.kernels.quotes import compute_as_quotes, compute_glft_quotes, compute_quote_ladder
from mmd.market.book import L2Book
from mmd.model.codes import ERR_CROSSED, OK
from mmd.model.instrument import Instrument

ModelName = Literal["as", "glft"]
ParamsSource = Literal["calibrated", "fallback"]


class MlInputs(msgspec.Struct, frozen=True):
    """Adjustments from the learned models, applied by the quote kernels.

    The defaults are neutral (they leave the model's quotes unchanged) and are what the Quoter
    uses until the ML models exist.

    Attributes:
        bid_mult: multiplier of the bid's distance from the reservation price (>= 0).
        ask_mult: multiplier of the ask's distance from the reservation price (>= 0).
        gamma_mult: multiplier of the configured risk aversion gamma (> 0).
        skew_ticks: shift added to both prices, in ticks (+ = quote higher).
        spread_override_ticks: total spread in ticks replacing the model's; NaN = none.
    """

    bid_mult: float = 1.0
    ask_mult: float = 1.0
    gamma_mult: float = 1.0
    skew_ticks: float = 0.0
    spread_override_ticks: float = math.nan


NEUTRAL = MlInputs()


class QuoteTarget(msgspec.Struct, frozen=True, kw_only=True):
    """The orders the strategy wants resting right now, for one symbol.

    Attributes:
        symbol: venue symbol.
        ts_ns: the `now_ns` the target was computed for.
        bids: (px_ticks, qty_lots) per level, best (highest) first; empty = no bids.
        asks: (px_ticks, qty_lots) per level, best (lowest) first; empty = no asks.
        reservation_ticks: the model's reservation price (centre of its raw quotes), before
            the ML adjustments and rounding.
        half_spread_ticks: the model's half spread (gamma_mult included), before the ML
            adjustments, minimum spread and rounding.
        model: "as" (Avellaneda-Stoikov) or "glft".
        params_source: "calibrated" when every parameter the model uses came from the
            caller's estimates, "fallback" when one of them was the configured fallback.
    """

    symbol: str
    ts_ns: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    reservation_ticks: float
    half_spread_ticks: float
    model: ModelName
    params_source: ParamsSource


class Quoter:
    """Computes one symbol's quote target from the book and the model parameters.

    Config is unpacked into scalars once and the kernels' out arrays are allocated once, so
    `decide` does no config lookups and allocates only the returned target.

    AS horizon: the session rolls, aligned to the Unix epoch, so T - t at `now_ns` is
    tau = session_s - (now_s mod session_s), in (0, session_s]. It depends on now_ns only
    (replays and restarts give the same quotes), and with session_s = 3600 the sessions are
    UTC hours. GLFT is the infinite-horizon model and ignores it.

    Args:
        cfg: the `[strategy]` config.
        instrument: tick and lot sizes for converting the config's base-unit sizes to lots.

    Attributes:
        reject_reason: why the last `decide` returned None ("one_sided_book",
            "crossed_book", "bad_model_input", "bad_ladder_input"), or None after a target.

    Sizes: `order_size` and `max_position` are in base units; the order size is rounded to the
    nearest lot, the limit down (`Instrument.limit_lots`), and never below one lot (order) or
    one order (position): one daemon trades symbols whose lots differ by orders of magnitude
    (BTCUSDT 0.001, SOLUSDT 0.1, DOGEUSDT 1 on Bybit linear).
    """

    def __init__(self, cfg: StrategyConfig, instrument: Instrument) -> None:
        order_lots = max(1, instrument.qty_to_lots(cfg.order_size))
        self.symbol = instrument.symbol
        self.model: ModelName = cfg.model
        self._is_glft = cfg.model == "glft"
        self._gamma = float(cfg.gamma)
        self._session_ns = max(1, round(cfg.session_s * 1e9))
        self._order_lots = int(order_lots)
        self._max_lots = max(self._order_lots, instrument.limit_lots(cfg.max_position))
        self._min_spread_frac = cfg.min_spread_bps * 1e-4
        self._levels = int(cfg.levels)
        self._spacing_ticks = int(cfg.level_spacing_ticks)
        self._size_eta = float(cfg.size_eta)
        cal = cfg.calibration
        self._fallback_sigma = float(cal.fallback_sigma)
        self._fallback_kappa = float(cal.fallback_kappa)
        self._fallback_a = float(cal.fallback_a)
        self._bid_px = np.zeros(self._levels, np.int64)
        self._bid_qty = np.zeros(self._levels, np.int64)
        self._ask_px = np.zeros(self._levels, np.int64)
        self._ask_qty = np.zeros(self._levels, np.int64)
        self.reject_reason: str | None = None

    def tau_s(self, now_ns: int) -> float:
        """Time left in the current AS session, in seconds (see the class docstring)."""
        return (self._session_ns - now_ns % self._session_ns) * 1e-9

    def decide(
        self,
        now_ns: int,
        book: L2Book,
        sigma_ticks: float,
        kappa: float,
        a: float,
        position_lots: int,
        ml: MlInputs = NEUTRAL,
    ) -> QuoteTarget | None:
        """Compute the quote target at now_ns.

        A NaN estimate (sigma_ticks, kappa, or a for GLFT) means "not calibrated yet" and is
        replaced by the configured fallback; params_source then says "fallback". A finite
        estimate out of range (e.g. kappa <= 0) or an infinite one is invalid.

        Args:
            now_ns: current time in ns (exchange or local clock; only the AS horizon uses it).
            book: the symbol's L2 book.
            sigma_ticks: mid volatility in ticks per sqrt(second), or NaN.
            kappa: fill-intensity decay per tick, or NaN.
            a: fill intensity at the mid per second (GLFT only), or NaN.
            position_lots: current position in lots (negative = short).
            ml: adjustments from the learned models (neutral by default).

        Returns:
            The target, or None when the book lacks a side or is crossed, or an input is
            invalid (`reject_reason` says which). A target may have no levels on a side
            (inventory limit): that means "cancel everything on that side".
        """
        if book.n_bids == 0 or book.n_asks == 0:
            self.reject_reason = "one_sided_book"
            return None
        best_bid = int(book.bid_px[0])
        best_ask = int(book.ask_px[0])
        mid = 0.5 * (best_bid + best_ask)
        source: ParamsSource = "calibrated"
        if math.isnan(sigma_ticks):
            sigma_ticks = self._fallback_sigma
            source = "fallback"
        if math.isnan(kappa):
            kappa = self._fallback_kappa
            source = "fallback"
        gamma = self._gamma * ml.gamma_mult
        if self._is_glft:
            if math.isnan(a):
                a = self._fallback_a
                source = "fallback"
            raw_bid, raw_ask, reservation, half = compute_glft_quotes(
                mid, position_lots, sigma_ticks, gamma, kappa, a, self._order_lots
            )
        else:
            raw_bid, raw_ask, reservation, half = compute_as_quotes(
                mid, position_lots, sigma_ticks, gamma, kappa, self.tau_s(now_ns)
            )
        if math.isnan(raw_bid):
            self.reject_reason = "bad_model_input"
            return None
        code = compute_quote_ladder(
            self._bid_px,
            self._bid_qty,
            self._ask_px,
            self._ask_qty,
            raw_bid,
            raw_ask,
            reservation,
            best_bid,
            best_ask,
            position_lots,
            self._max_lots,
            self._min_spread_frac * mid,
            self._levels,
            self._spacing_ticks,
            self._order_lots,
            self._size_eta,
            ml.bid_mult,
            ml.ask_mult,
            ml.skew_ticks,
            ml.spread_override_ticks,
        )
        if code != OK:
            self.reject_reason = "crossed_book" if code == ERR_CROSSED else "bad_ladder_input"
            return None
        self.reject_reason = None
        bid_px = self._bid_px.tolist()
        bid_qty = self._bid_qty.tolist()
        ask_px = self._ask_px.tolist()
        ask_qty = self._ask_qty.tolist()
        return QuoteTarget(
            symbol=self.symbol,
            ts_ns=now_ns,
            bids=[(p, q) for p, q in zip(bid_px, bid_qty, strict=True) if q > 0],
            asks=[(p, q) for p, q in zip(ask_px, ask_qty, strict=True) if q > 0],
            reservation_ticks=float(reservation),
            half_spread_ticks=float(half),
            model=self.model,
            params_source=source,
        )

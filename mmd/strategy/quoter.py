"""Quoter: book + volatility/intensity estimates + position + ML inputs -> QuoteTarget.

Glue only: the decision is one call of `mmd.kernels.strategy.compute_quote_decision` (the
formulas and the ladder rules are in `mmd.kernels.quotes`), the same kernel the backtest loop
runs. It does not place orders (`order_diff` does) and does not read the clock (time arrives as
`now_ns`).
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from mmd.config import StrategyConfig
from mmd.kernels.frame import QuoteArgs
from mmd.kernels.strategy import (
    DF_FALLBACK,
    DF_HALF_SPREAD,
    DF_RESERVATION,
    DF_SIZE,
    ML_SIZE,
    ML_SIZE_MULT,
    QPF_FALLBACK_A,
    QPF_FALLBACK_KAPPA,
    QPF_FALLBACK_SIGMA,
    QPF_GAMMA,
    QPF_MIN_SPREAD_FRAC,
    QPF_SIZE,
    QPF_SIZE_ETA,
    QPI_IS_GLFT,
    QPI_LEVELS,
    QPI_MAX_LOTS,
    QPI_ORDER_LOTS,
    QPI_SESSION_NS,
    QPI_SIZE,
    QPI_SPACING_TICKS,
    QPI_TOLERANCE_TICKS,
    QUOTE_BAD_LADDER,
    QUOTE_BAD_MODEL,
    QUOTE_CROSSED,
    QUOTE_ONE_SIDED,
    TG_ASK_PX,
    TG_ASK_QTY,
    TG_BID_PX,
    TG_BID_QTY,
    compute_quote_decision,
)
from mmd.market.book import L2Book
from mmd.model.codes import OK
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
        quote_bid: False = withdraw the bid side (the target has no bids).
        quote_ask: False = withdraw the ask side (the target has no asks).
        size_mult: order size multiplier in (0, 1] (risk-scaled size); the scaled size is
            rounded down to lots, never below one lot.
    """

    bid_mult: float = 1.0
    ask_mult: float = 1.0
    gamma_mult: float = 1.0
    skew_ticks: float = 0.0
    spread_override_ticks: float = math.nan
    quote_bid: bool = True
    quote_ask: bool = True
    size_mult: float = 1.0


NEUTRAL = MlInputs()

# compute_quote_decision code -> Quoter.reject_reason
REJECT_REASONS: dict[int, str] = {
    QUOTE_ONE_SIDED: "one_sided_book",
    QUOTE_CROSSED: "crossed_book",
    QUOTE_BAD_MODEL: "bad_model_input",
    QUOTE_BAD_LADDER: "bad_ladder_input",
}


def ml_array(ml: MlInputs, out: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """The ML inputs as the kernels' float64[ML_SIZE] (slots ML_*)."""
    arr = np.empty(ML_SIZE, np.float64) if out is None else out
    arr[0] = ml.bid_mult
    arr[1] = ml.ask_mult
    arr[2] = ml.gamma_mult
    arr[3] = ml.skew_ticks
    arr[4] = ml.spread_override_ticks
    arr[ML_SIZE_MULT] = ml.size_mult
    return arr


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
        # the kernel's parameter arrays, built once (slots QPI_* / QPF_* of kernels.strategy)
        self.qpi = np.zeros(QPI_SIZE, np.int64)
        self.qpi[QPI_IS_GLFT] = int(self._is_glft)
        self.qpi[QPI_SESSION_NS] = self._session_ns
        self.qpi[QPI_ORDER_LOTS] = self._order_lots
        self.qpi[QPI_MAX_LOTS] = self._max_lots
        self.qpi[QPI_LEVELS] = self._levels
        self.qpi[QPI_SPACING_TICKS] = self._spacing_ticks
        self.qpi[QPI_TOLERANCE_TICKS] = int(cfg.requote_tolerance_ticks)
        self.qpf = np.zeros(QPF_SIZE, np.float64)
        self.qpf[QPF_GAMMA] = self._gamma
        self.qpf[QPF_MIN_SPREAD_FRAC] = self._min_spread_frac
        self.qpf[QPF_SIZE_ETA] = self._size_eta
        self.qpf[QPF_FALLBACK_SIGMA] = self._fallback_sigma
        self.qpf[QPF_FALLBACK_KAPPA] = self._fallback_kappa
        self.qpf[QPF_FALLBACK_A] = self._fallback_a
        # the decision's out arrays: target levels (rows TG_*) and (reservation, half, fallback)
        self.tgt = np.zeros((4, self._levels), np.int64)
        self.dec_f = np.zeros(DF_SIZE, np.float64)
        self._ml = ml_array(NEUTRAL)
        self._ml_of: MlInputs = NEUTRAL
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
        self.set_ml(ml)
        tgt = self.tgt
        has_book = book.n_bids > 0 and book.n_asks > 0
        code = compute_quote_decision(
            tgt,
            self.dec_f,
            self.qpi,
            self.qpf,
            self._ml,
            now_ns,
            int(book.bid_px[0]) if has_book else 0,
            int(book.ask_px[0]) if has_book else 0,
            book.n_bids,
            book.n_asks,
            float(sigma_ticks),
            float(kappa),
            float(a),
            position_lots,
        )
        if code != OK:
            self.reject_reason = REJECT_REASONS.get(code, "bad_ladder_input")
            return None
        self.reject_reason = None
        return self.target_of(now_ns, ml)

    def kernel_arrays(self) -> QuoteArgs:
        """(tgt, dec_f, qpi, qpf, ml): the decision kernel's arrays, for a caller that runs it
        inside a larger compiled call (`kernels.frame.decide_symbol_quotes`)."""
        return self.tgt, self.dec_f, self.qpi, self.qpf, self._ml

    def set_ml(self, ml: MlInputs) -> None:
        """Load ml into the kernel's ML array (the array the next decision reads)."""
        if ml is not self._ml_of:
            ml_array(ml, self._ml)
            self._ml_of = ml

    def reject(self, code: int) -> None:
        """Record why a decision made in compiled code gave no target (its kernel code)."""
        self.reject_reason = REJECT_REASONS.get(code, "bad_ladder_input")

    def target_of(self, now_ns: int, ml: MlInputs) -> QuoteTarget:
        """The target the last successful decision left in the kernel's arrays (tgt, dec_f),
        as decided at now_ns with ml."""
        tgt = self.tgt
        self.reject_reason = None
        bid_px = tgt[TG_BID_PX].tolist()
        bid_qty = tgt[TG_BID_QTY].tolist()
        ask_px = tgt[TG_ASK_PX].tolist()
        ask_qty = tgt[TG_ASK_QTY].tolist()
        dec_f = self.dec_f
        return QuoteTarget(
            symbol=self.symbol,
            ts_ns=now_ns,
            bids=[(p, q) for p, q in zip(bid_px, bid_qty, strict=True) if q > 0]
            if ml.quote_bid
            else [],
            asks=[(p, q) for p, q in zip(ask_px, ask_qty, strict=True) if q > 0]
            if ml.quote_ask
            else [],
            reservation_ticks=float(dec_f[DF_RESERVATION]),
            half_spread_ticks=float(dec_f[DF_HALF_SPREAD]),
            model=self.model,
            params_source="fallback" if dec_f[DF_FALLBACK] != 0.0 else "calibrated",
        )

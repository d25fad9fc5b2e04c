"""SymbolStrategy: one symbol's calibration, warm-up gate and quoter.

Pure core: time arrives as arguments, nothing awaits. It pulls new mids and trades from the
market rings (so the feed path stays untouched), refits the intensity model on its schedule,
decides the target quotes and diffs them against the open orders the order manager reports.
It sends nothing: the caller passes the commands through risk to the paper exchange.

Every step runs the kernels of `mmd.kernels.strategy` (ring reads and calibration, warm-up gate,
quote decision, order diff), the same ones the backtest loop runs: as one compiled call
(`mmd.kernels.frame.decide_symbol_quotes`) when no learned model and no risk-scaled size is
configured, else one by one with the models' inputs computed in between.
"""

from __future__ import annotations

import math
import zlib

import msgspec
import numpy as np

from mmd.config import StrategyConfig
from mmd.errors import InvariantViolation
from mmd.kernels import models as km
from mmd.kernels import risk_size as krs
from mmd.kernels.frame import (
    DI_CODE,
    DI_GATE,
    DI_N_CMDS,
    DI_SIZE,
    ERR_DECIDE_CALIBRATION,
    NO_DECISION,
    BookArgs,
    CalArgs,
    QuoteArgs,
    RingArgs,
    decide_symbol_quotes,
)
from mmd.kernels.strategy import (
    CMD_CANCEL,
    COMMAND_DTYPE,
    QPI_MAX_LOTS,
    QPI_SESSION_NS,
    update_calibration_from_rings,
)
from mmd.learn.deep_runtime import DeepOrderFlowModel
from mmd.learn.runtime import LoadedModels, RlAgent
from mmd.market.hub import SymbolState
from mmd.market.ring import RingBuffer
from mmd.model.events import Command
from mmd.model.instrument import Instrument
from mmd.strategy.calibration import IntensityCalibrator
from mmd.strategy.order_diff import CancelOrder, OpenOrder, SubmitOrder, diff_quotes, orders_array
from mmd.strategy.quoter import NEUTRAL, MlInputs, Quoter, QuoteTarget
from mmd.strategy.warmup import WarmupGate

# (the mids ring the arrays belong to, then decide_symbol_quotes' argument groups)
_KernelArgs = tuple[tuple[RingBuffer], CalArgs, RingArgs, QuoteArgs, BookArgs]


class AccountRisk(msgspec.Struct, frozen=True):
    """What the trader knows of the account's risk at a decision (for the risk-scaled size).

    Attributes:
        total_pnl_quote: total PnL (fees and funding included), quote.
        loss_used: share of `[risk] max_loss_per_day` lost today, in [0, 1] (0 without a limit;
            RiskGate.loss_budget_used).
    """

    total_pnl_quote: float = 0.0
    loss_used: float = 0.0


class SymbolStrategy:
    """Everything the quoter task does for one symbol.

    Args:
        cfg: the [strategy] section.
        instrument: the symbol's instrument.
        start_ns: when the daemon started (the warm-up clock runs from here).
        models: the learned models to quote with (None = neutral ML inputs).
    """

    def __init__(
        self,
        cfg: StrategyConfig,
        instrument: Instrument,
        start_ns: int,
        models: LoadedModels | None = None,
    ) -> None:
        self.cfg = cfg
        self.instrument = instrument
        self.quoter = Quoter(cfg, instrument)
        self.calibrator = IntensityCalibrator(cfg.calibration)
        self.gate = WarmupGate(cfg.warmup_s, start_ns)
        self.ml: MlInputs = NEUTRAL
        self.models = models if models is not None and models.active else None
        self.xm = np.full(km.N_MARKET, np.nan)  # the models' market vector at the last decision
        self.p_adverse = (np.nan, np.nan)  # detector's (p_buy, p_sell) at the last decision
        self.widened = 0  # decisions with a side widened (multiplier > 1) or withdrawn
        # the RL agent (its own running state and generator; the table is the policy's)
        self.rl: RlAgent | None = None
        if self.models is not None and self.models.rl is not None:
            self.rl = self.models.rl.new_agent(zlib.crc32(instrument.symbol.encode()))
        # the deep order-flow model: this symbol's runner (own recurrent state, one step per
        # book update: on_book_update) and its heads at the last decision
        self.deep: DeepOrderFlowModel | None = None
        if self.models is not None and self.models.deep is not None:
            self.deep = self.models.deep.fork()
        self.deep_heads: dict[str, float] = {}
        self._target: QuoteTarget | None = None
        # (now_ns, ml) of a compiled decision whose target is still only in the quoter's arrays
        self._target_at: tuple[int, MlInputs] | None = None
        self.decisions = 0
        self.submits = 0
        self.cancels = 0
        # rows of the mids / trades rings already read (RingBuffer.since cursors)
        self._cursor = np.zeros(2, np.int64)
        self._oid = np.ones(1, np.int64)  # the next client id number (1, 2, ...)
        self._id_prefix = f"{instrument.symbol}-{start_ns // 1_000_000}-"
        # one compiled call per decision (kernels.frame.decide_symbol_quotes) for a strategy
        # the kernels cover whole; learned models and the risk-scaled size take the step by
        # step path (their inputs are computed in Python between the kernels)
        self.compiled = self.models is None and not cfg.risk_size
        self._dec_i = np.zeros(DI_SIZE, np.int64)
        self._cmds = np.zeros(8 + 2 * cfg.levels, COMMAND_DTYPE)
        self._done = np.zeros(2 * cfg.levels, np.int64)
        self._totals = np.zeros(2, np.int64)
        self._book_counts = np.zeros(2, np.int64)
        self._kernel_args: _KernelArgs | None = None
        # risk-scaled size: weights (slots RSP_*), reference sigma, peak PnL seen
        self._rsp = np.array(
            [
                cfg.risk_size_w_vol,
                cfg.risk_size_w_drawdown,
                cfg.risk_size_w_loss,
                cfg.risk_size_w_inventory,
                cfg.risk_size_drawdown_quote,
                cfg.risk_size_vol_halflife_s,
            ],
            np.float64,
        )
        self._vol_ref = np.full(2, np.nan)
        self._pnl_peak = -np.inf
        self.size_mult = 1.0  # the last decision's risk-scaled size multiplier

    @property
    def target(self) -> QuoteTarget | None:
        """The quote target of the latest decision, None when it gave none (or none yet)."""
        at = self._target_at
        if at is not None:
            self._target = self.quoter.target_of(*at)
            self._target_at = None
        return self._target

    @target.setter
    def target(self, value: QuoteTarget | None) -> None:
        self._target = value
        self._target_at = None

    @property
    def has_target(self) -> bool:
        """True when the latest decision gave a target (without building it)."""
        return self._target_at is not None or self._target is not None

    def _next_id(self) -> str:
        n = int(self._oid[0])
        self._oid[0] = n + 1
        return f"{self._id_prefix}{n}"

    def _pull_market(self, st: SymbolState) -> None:
        """Feed the calibrator every mid and trade recorded since the last call, in time order."""
        mids, trades = st.mids, st.trades
        cal = self.calibrator
        rc = update_calibration_from_rings(
            cal.win,
            self._cursor,
            (mids.column("ts_ns"), mids.column("mid_ticks")),
            (
                trades.column("ts_ns"),
                trades.column("px_ticks"),
                trades.column("qty_lots"),
                trades.column("side"),
            ),
            mids.total,
            trades.total,
            cal.step_ns,
        )
        if rc != 0:
            raise InvariantViolation(f"calibration trade rejected (code {rc})")

    def step(
        self,
        now_ns: int,
        st: SymbolState,
        open_orders: list[OpenOrder],
        position_lots: int,
        *,
        halted: bool = False,
        pnl_quote: float = math.nan,
        account: AccountRisk | None = None,
        hedge_skew_ticks: float = 0.0,
    ) -> list[Command]:
        """Recalibrate if due, then decide quotes; returns the order commands to send.

        Args:
            now_ns: the daemon clock (drives the warm-up gate).
            st: the symbol's market state.
            open_orders: our live and in-flight orders (from the order manager).
            position_lots: the current position.
            halted: the kill switch holds: cancel everything, decide nothing.
            pnl_quote: the symbol's total PnL (the RL reward when learning online; NaN: no
                update for that step).
            account: the account's PnL and loss budget (risk-scaled size; None = no
                drawdown and no budget used).
            hedge_skew_ticks: the portfolio hedge's skew, added to the models' skew
                (mmd.strategy.hedge; 0 for every symbol but the hedge instrument).
        """
        if self.compiled:
            return self._step_compiled(
                now_ns, st, open_orders, position_lots, halted, hedge_skew_ticks
            )
        self._pull_market(st)
        market_ns = st.book.ts_exch_ns
        if market_ns > 0:
            self.calibrator.maybe_refit(market_ns)
        usable = st.sync.synced and not st.stale
        self.gate.update(now_ns, usable, self.calibrator.source == "calibrated")
        if halted or not (self.gate.ready and usable):
            self.target = None
            return self._count(self._cancel_all(open_orders))
        cal = self.calibrator
        if self.models is not None:
            self.ml = self.ml_inputs(now_ns, st)
            if self.deep is not None:
                self.ml = self.deep_inputs(self.ml, position_lots)
            if self.rl is not None:
                self.ml = self.rl_inputs(self.ml, now_ns, st, position_lots, pnl_quote)
        if self.cfg.risk_size:
            self.size_mult = self.risk_size_mult(market_ns, cal.sigma, position_lots, account)
            self.ml = msgspec.structs.replace(self.ml, size_mult=self.size_mult)
        ml = self.ml
        if hedge_skew_ticks != 0.0:
            ml = msgspec.structs.replace(ml, skew_ticks=ml.skew_ticks + hedge_skew_ticks)
        target = self.quoter.decide(now_ns, st.book, cal.sigma, cal.kappa, cal.a, position_lots, ml)
        self.decisions += 1
        self.target = target
        if target is None:
            return self._count(self._cancel_all(open_orders))
        return self._count(
            diff_quotes(target, open_orders, self.cfg.requote_tolerance_ticks, self._next_id)
        )

    def _step_compiled(
        self,
        now_ns: int,
        st: SymbolState,
        open_orders: list[OpenOrder],
        position_lots: int,
        halted: bool,
        hedge_skew_ticks: float,
    ) -> list[Command]:
        """`step` as one compiled call: rings -> calibration -> gate -> decision -> diff."""
        ml = self.ml
        if hedge_skew_ticks != 0.0:
            ml = msgspec.structs.replace(ml, skew_ticks=ml.skew_ticks + hedge_skew_ticks)
        quoter = self.quoter
        quoter.set_ml(ml)
        args = self._kernel_args
        if args is None or args[0][0] is not st.mids:
            args = self._kernel_args = self._bind(st)
        cal, rings, quote, book = args[1], args[2], args[3], args[4]
        n_open = len(open_orders)
        orders = orders_array(open_orders)
        if self._cmds.shape[0] < n_open + self._done.shape[0]:
            self._cmds = np.zeros(2 * n_open + self._done.shape[0], COMMAND_DTYPE)
        cmds = self._cmds
        totals = self._totals
        totals[0] = st.mids.total
        totals[1] = st.trades.total
        counts = self._book_counts
        b = st.book
        counts[0] = b.n_bids
        counts[1] = b.n_asks
        dec_i = self._dec_i
        usable = st.sync.synced and not st.stale
        rc = decide_symbol_quotes(
            dec_i,
            cal,
            rings,
            quote,
            book,
            orders,
            cmds,
            (self._oid, self._done),
            now_ns,
            b.ts_exch_ns,
            self.gate.deadline_ns,
            usable,
            halted,
            position_lots,
        )
        if rc == ERR_DECIDE_CALIBRATION:
            raise InvariantViolation(f"calibration trade rejected (code {rc})")
        if rc < 0:
            raise InvariantViolation(f"decision kernel refused its buffers (code {rc})")
        self.gate.set_code(int(dec_i[DI_GATE]))
        code = int(dec_i[DI_CODE])
        if code == NO_DECISION:
            self.target = None
        else:
            self.decisions += 1
            if code == 0:
                self._target_at = (now_ns, ml)
                quoter.reject_reason = None
            else:
                quoter.reject(code)
                self.target = None
        out: list[Command] = []
        sym = self.instrument.symbol
        prefix = self._id_prefix
        for kind, side, px, qty, oid, _reason in cmds[: int(dec_i[DI_N_CMDS])].tolist():
            if kind == CMD_CANCEL:
                out.append(
                    CancelOrder(client_order_id=open_orders[oid].client_order_id, symbol=sym)
                )
                self.cancels += 1
            else:
                out.append(
                    SubmitOrder(
                        client_order_id=f"{prefix}{oid}",
                        symbol=sym,
                        side=side,
                        px_ticks=px,
                        qty_lots=qty,
                    )
                )
                self.submits += 1
        return out

    def _bind(self, st: SymbolState) -> _KernelArgs:
        """The kernel's argument tuples over st's and this strategy's arrays (built once per
        market state: the arrays live as long as it)."""
        mids, trades, cal = st.mids, st.trades, self.calibrator
        return (
            (mids,),
            (cal.win, self._cursor, cal.cal_i, cal.cal_f, cal.cal_pi, cal.cal_pf),
            (
                (mids.column("ts_ns"), mids.column("mid_ticks")),
                (
                    trades.column("ts_ns"),
                    trades.column("px_ticks"),
                    trades.column("qty_lots"),
                    trades.column("side"),
                ),
                self._totals,
            ),
            self.quoter.kernel_arrays(),
            (st.book.bid_px, st.book.ask_px, self._book_counts),
        )

    def ml_inputs(self, now_ns: int, st: SymbolState) -> MlInputs:
        """The models' adjustments at the current market state.

        The market vector is the training one (features.market_matrix: the FeatureEngine's `x`
        at now_ns, inventory 0 as in the market datasets). The detector widens each side by
        its policy multiplier and withdraws a side above p_withdraw (p_buy threatens the ask,
        p_sell the bid); the spread predictor's spread replaces the quote model's, floored by
        the model's spread at the previous decision.
        """
        km.apply_market_features(self.xm, st.features.x, now_ns, 0.0)
        ml = NEUTRAL
        m = self.models
        assert m is not None
        if m.adverse is not None:
            adj = m.adverse.adjust(self.xm)
            self.p_adverse = (adj.p_buy, adj.p_sell)
            ml = MlInputs(
                bid_mult=adj.bid_mult,
                ask_mult=adj.ask_mult,
                quote_bid=adj.quote_bid,
                quote_ask=adj.quote_ask,
            )
            if adj.bid_mult > 1.0 or adj.ask_mult > 1.0 or not (adj.quote_bid and adj.quote_ask):
                self.widened += 1
        if m.spread is not None:
            h = m.spread.half_spread_ticks(self.xm)
            if self.target is not None:
                h = max(h, self.target.half_spread_ticks)
            if h == h:
                ml = msgspec.structs.replace(ml, spread_override_ticks=2.0 * h)
        return ml

    def on_book_update(self, st: SymbolState, ts_recv_ns: int) -> None:
        """One LSTM step on the book update just applied (the trainer's vector: the
        FeatureEngine's `x` at its receive time, mmd.learn.deep_data.sequence_dataset)."""
        if self.deep is not None:
            self.deep.update_engine(st.features.x, ts_recv_ns)

    def deep_inputs(self, ml: MlInputs, position_lots: int) -> MlInputs:
        """ml with the deep model's heads at the current state: P(up) p adds (2 p - 1) x
        [models] deep_skew_ticks to the skew; a multi-task model's spread head replaces the
        quote model's spread when wider (than the model's at the previous decision, and than
        any spread already overriding it), and its position head q* adds (q* - q) x
        deep_skew_ticks, q = position / max position, the difference clipped to [-1, 1]."""
        d = self.deep
        assert d is not None and self.models is not None
        k = self.models.deep_skew_ticks
        p = d.head("price")
        heads = {"price": p}
        skew = (2.0 * p - 1.0) * k
        override = ml.spread_override_ticks
        if "spread" in d.heads:
            max_lots = int(self.quoter.qpi[QPI_MAX_LOTS])
            q = min(max(position_lots / max_lots, -1.0), 1.0) if max_lots > 0 else 0.0
            h = d.head("spread", q)
            q_star = d.head("position", q)
            heads.update(spread=h, position=q_star)
            skew += min(max(q_star - q, -1.0), 1.0) * k
            model_h = self.target.half_spread_ticks if self.target is not None else math.nan
            if h == h and not h <= model_h and not 2.0 * h <= override:
                override = 2.0 * h
        self.deep_heads = heads
        if skew != skew:
            return ml
        return msgspec.structs.replace(
            ml, skew_ticks=ml.skew_ticks + skew, spread_override_ticks=override
        )

    def rl_inputs(
        self, ml: MlInputs, now_ns: int, st: SymbolState, position_lots: int, pnl_quote: float
    ) -> MlInputs:
        """ml with the RL action in force (rl_decide: a new action every step_s of now_ns,
        held in between): its gamma multiplier and skew. The observation is the position
        against the limit, the calibrated sigma (as the jitted loop sees it), the
        FeatureEngine's OFI in average trade sizes, the detector's larger side probability
        (NaN without a detector) and the AS session's elapsed share.
        The risk gate checks what this produces like any other quote.
        """
        agent = self.rl
        assert agent is not None
        qpi = self.quoter.qpi
        p_adv = (
            max(self.p_adverse)
            if self.models is not None and self.models.adverse is not None
            else math.nan
        )
        inst = self.instrument
        g, k = agent.decide(
            now_ns,
            st.features.x,
            position_lots,
            int(qpi[QPI_MAX_LOTS]),
            self.calibrator.sigma,
            p_adv,
            int(qpi[QPI_SESSION_NS]),
            pnl_quote,
            st.book.mid_ticks(),
            inst.tick * inst.lot,
        )
        if g == 1.0 and k == 0.0:
            return ml
        return msgspec.structs.replace(ml, gamma_mult=g, skew_ticks=k)

    def risk_size_mult(
        self, market_ns: int, sigma_ticks: float, position_lots: int, account: AccountRisk | None
    ) -> float:
        """The order-size multiplier of `mmd.kernels.risk_size` at this decision: the
        calibrated sigma against its exponential average, the drawdown of the account's total
        PnL from the highest value this strategy has seen, the daily loss budget used, and
        |position| / the position limit."""
        vol_ref = krs.apply_vol_reference(
            self._vol_ref,
            float(sigma_ticks),
            market_ns * 1e-9,
            float(self._rsp[krs.RSP_HALFLIFE_S]),
        )
        acct = account if account is not None else AccountRisk()
        self._pnl_peak = max(self._pnl_peak, acct.total_pnl_quote)
        max_lots = int(self.quoter.qpi[QPI_MAX_LOTS])
        return float(
            krs.compute_size_mult(
                self._rsp,
                float(sigma_ticks),
                vol_ref,
                self._pnl_peak - acct.total_pnl_quote,
                acct.loss_used,
                position_lots / max_lots if max_lots > 0 else 0.0,
            )
        )

    def _cancel_all(self, open_orders: list[OpenOrder]) -> list[Command]:
        return [
            CancelOrder(client_order_id=o.client_order_id, symbol=self.instrument.symbol)
            for o in open_orders
        ]

    def _count(self, cmds: list[Command]) -> list[Command]:
        for c in cmds:
            if isinstance(c, CancelOrder):
                self.cancels += 1
            else:
                self.submits += 1
        return cmds

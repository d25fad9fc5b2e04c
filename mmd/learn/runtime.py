"""Loaded models at run time: the adverse-selection detector, the spread predictor and the
Q-learning table.

Glue only: the weights of loaded model files (mmd.learn.model_loader reads them) become the
kernel arrays; the arithmetic is in mmd.kernels.models. No file I/O here. No scikit-learn here:
the daemon needs only the core dependencies. Scratch arrays are allocated once per model, so a
call allocates nothing but its result.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from mmd.kernels import models as km
from mmd.kernels import rl as krl
from mmd.kernels.strategy import ML_SIZE
from mmd.learn.model_file import ModelMeta

F64Array = npt.NDArray[np.float64]

ADVERSE_KINDS = ("adverse_logistic", "adverse_mlp")
SPREAD_KINDS = ("spread_mlp",)
RL_KINDS = ("rl_q",)
# what an RL state is binned from, in mmd.kernels.rl OBS_* order
RL_OBSERVATIONS = (
    "inventory_fraction",
    "volatility_ticks_per_sqrt_s",
    "ofi_trades",
    "p_adverse",
    "session_fraction",
)


class AdverseAdjustment(msgspec.Struct, frozen=True):
    """The detector's verdict for both sides at one market state.

    p_buy threatens our ask (a buy aggressor lifts it), p_sell our bid. bid_mult/ask_mult are
    the quoter's MlInputs multipliers; quote_bid/quote_ask False = withdraw that side (MlInputs
    has no such field: whoever wires the detector drops that side of the QuoteTarget).
    """

    p_buy: float
    p_sell: float
    bid_mult: float
    ask_mult: float
    quote_bid: bool
    quote_ask: bool


class _Network:
    def __init__(self, arrays: dict[str, Any]) -> None:
        self.stats: F64Array = arrays["stats"].astype(np.float64)
        self.weights: F64Array = arrays["weights"].astype(np.float64)
        self.biases: F64Array = arrays["biases"].astype(np.float64)
        self.sizes = arrays["sizes"].astype(np.int64)
        width = int(self.sizes.max())
        self.buf_a = np.zeros(width)
        self.buf_b = np.zeros(width)
        self.z = np.zeros(int(self.sizes[0]))
        self.v = np.zeros(int(self.sizes[0]))


class AdverseSelectionDetector:
    """P(adverse fill | market state, side) and the widening/withdraw policy.

    Args:
        meta, arrays: a loaded adverse model (mmd.learn.model_loader.load_detector).
        p0, k, p_withdraw: override the policy stored in the model file (None: keep it).
    """

    def __init__(
        self,
        meta: ModelMeta,
        arrays: dict[str, Any],
        *,
        p0: float | None = None,
        k: float | None = None,
        p_withdraw: float | None = None,
    ) -> None:
        self.meta = meta
        self._net = _Network(arrays)
        self._orient = np.asarray(meta.orient, np.float64)
        pol = meta.policy or {}
        self.p0 = float(pol.get("p0", 1.0) if p0 is None else p0)
        self.k = float(pol.get("k", 0.0) if k is None else k)
        self.p_withdraw = float(pol.get("p_withdraw", 2.0) if p_withdraw is None else p_withdraw)

    @property
    def version(self) -> str:
        return self.meta.version

    def probabilities(self, xm: F64Array) -> tuple[float, float]:
        """(p_buy, p_sell) at the market vector xm (float64[N_MARKET], features.market_matrix)."""
        n = self._net
        return km.apply_adverse_pair(
            n.buf_a, n.buf_b, n.v, n.z, xm, self._orient, n.stats, n.weights, n.biases, n.sizes
        )

    def adjust(self, xm: F64Array) -> AdverseAdjustment:
        """The probabilities and what the policy makes of them."""
        p_buy, p_sell = self.probabilities(xm)
        bm, am, qb, qa = km.compute_adverse_policy(p_buy, p_sell, self.p0, self.k, self.p_withdraw)
        return AdverseAdjustment(p_buy, p_sell, bm, am, qb, qa)

    def predict_rows(self, x: F64Array) -> F64Array:
        """P(adverse) of ready-made input rows (float64[n, N_MARKET + 1], side included), as
        the trainer saw them (tests, evaluation)."""
        n = self._net
        out = np.empty(x.shape[0])
        mean, scale = n.stats[: n.sizes[0]], n.stats[n.sizes[0] :]
        for i in range(x.shape[0]):
            km.apply_standardise(n.z, np.ascontiguousarray(x[i]), mean, scale)
            if len(n.sizes) == 2:
                out[i] = km.compute_logistic(n.z, n.weights, n.biases[0])
            else:
                out[i] = km.compute_sigmoid(
                    km.apply_mlp(n.buf_a, n.buf_b, n.z, n.weights, n.biases, n.sizes)
                )
        return out


class SpreadPredictor:
    """The neural spread predictor: market vector -> half spread in ticks (> 0)."""

    def __init__(self, meta: ModelMeta, arrays: dict[str, Any]) -> None:
        self.meta = meta
        self._net = _Network(arrays)
        lo, hi = meta.hyper_parameters.get("clip_ticks", [0.0, math.inf])
        self.min_ticks, self.max_ticks = float(lo), float(hi)

    @property
    def version(self) -> str:
        return self.meta.version

    def half_spread_ticks(self, xm: F64Array) -> float:
        """exp(network(xm)) clipped to the training grid's range: the predicted best half
        spread, ticks. For the quoter's spread_override_ticks (a total spread), pass twice
        this."""
        n = self._net
        h = km.apply_spread_model(n.buf_a, n.buf_b, n.z, xm, n.stats, n.weights, n.biases, n.sizes)
        return min(max(h, self.min_ticks), self.max_ticks)


class RlPolicy:
    """The Q-learning table and its parameters (mmd.kernels.rl layout).

    from_arrays takes a loaded table to act greedily (MODE_GREEDY: the best action tried in
    training per state) or, online, to keep learning (MODE_LEARN, epsilon-greedy) into an
    in-memory copy: the file is never rewritten, so a restart starts again from the trained
    table. The state bins, the decision step and the action grid are the file's; the learning
    rate, discount, exploration, damping and penalty of online learning are given to
    from_arrays (the [models] keys). Every symbol's agent shares the table.

    The constructor takes the arrays as they are (no copy, the mode left as set in rpi): the
    trainer shares its arrays with the live strategy this way.

    Args:
        meta: the model file's metadata (None while training).
        q, visits, rpi, rpf, actions: the kernel arrays.
        seed: the exploration generator's seed; symbols draw from seed + a per-symbol salt.
        rs, rng: a running state and generator every new agent uses instead of fresh ones
            (training: one symbol per run, the caller's arrays).
    """

    def __init__(
        self,
        meta: ModelMeta | None,
        q: F64Array,
        visits: npt.NDArray[np.int64],
        rpi: npt.NDArray[np.int64],
        rpf: F64Array,
        actions: F64Array,
        *,
        seed: int = 1,
        rs: F64Array | None = None,
        rng: npt.NDArray[np.uint64] | None = None,
    ) -> None:
        self.meta = meta
        self.q, self.visits, self.rpi, self.rpf, self.actions = q, visits, rpi, rpf, actions
        self.seed = seed
        self.rs, self.rng = rs, rng
        self.labels = [action_label(g, k) for g, k in actions.tolist()]

    @classmethod
    def from_arrays(
        cls,
        meta: ModelMeta,
        arrays: dict[str, Any],
        *,
        online: bool = False,
        learning: dict[str, float] | None = None,
        seed: int = 1,
    ) -> RlPolicy:
        """The policy of a loaded model file (mmd.learn.model_loader.load_rl_policy reads it).

        online: MODE_LEARN with `learning` ({"alpha", "discount", "epsilon", "damp",
        "penalty"}) overriding the file's values; else MODE_GREEDY.
        """
        rpi = arrays["rpi"].astype(np.int64)  # copies: online updates stay in memory
        rpf = arrays["rpf"].astype(np.float64)
        rpi[krl.RPI_MODE] = krl.MODE_LEARN if online else krl.MODE_GREEDY
        slots = {
            "alpha": krl.RPF_ALPHA,
            "discount": krl.RPF_DISCOUNT,
            "epsilon": krl.RPF_EPSILON,
            "damp": krl.RPF_DAMP,
            "penalty": krl.RPF_INV_PENALTY,
        }
        for key, value in (learning or {}).items() if online else ():
            rpf[slots[key]] = float(value)
        return cls(
            meta,
            arrays["q"].astype(np.float64),
            arrays["visits"].astype(np.int64),
            rpi,
            rpf,
            np.ascontiguousarray(arrays["actions"], np.float64),
            seed=seed,
        )

    @property
    def version(self) -> str:
        return self.meta.version if self.meta is not None else "unsaved"

    @property
    def online(self) -> bool:
        return int(self.rpi[krl.RPI_MODE]) == krl.MODE_LEARN

    @property
    def step_ns(self) -> int:
        return int(self.rpi[krl.RPI_STEP_NS])

    def new_agent(self, salt: int = 0) -> RlAgent:
        """One symbol's running state (its own generator stream: seed + salt)."""
        return RlAgent(self, salt)


def action_label(gamma_mult: float, skew_ticks: float) -> str:
    """`g{gamma multiplier}_s{skew ticks}`, the mmd_rl_action_total label (g0.5_s-1)."""
    return f"g{gamma_mult:g}_s{skew_ticks:g}"


class RlAgent:
    """One symbol's RL state: the running slots, generator, observation and the ML scratch
    array rl_decide writes; counts each decision's action (mmd_rl_action_total)."""

    def __init__(self, policy: RlPolicy, salt: int = 0) -> None:
        self.policy = policy
        self.rs = krl.new_agent_state() if policy.rs is None else policy.rs
        self.rng = krl.new_rng(policy.seed + salt) if policy.rng is None else policy.rng
        self.obs = np.full(krl.OBS_SIZE, np.nan)
        self.ml = np.ones(ML_SIZE)
        self.action = -1  # the action in force (-1: none yet, or RL off)
        self._held = (1.0, 0.0)
        self.counts = np.zeros(len(policy.actions), np.int64)

    def decide(
        self,
        now_ns: int,
        fx: F64Array,
        position_lots: int,
        max_lots: int,
        sigma_ticks: float,
        p_adverse: float,
        session_ns: int,
        pnl_quote: float,
        mid_ticks: float,
        qty_per_tick_lot: float,
    ) -> tuple[float, float]:
        """rl_decide at one quote decision (fx: the FeatureEngine vector, for the OFI; sigma:
        the calibrated one); returns the (gamma multiplier, skew ticks) in force."""
        p = self.policy
        nxt = self.rs[krl.RS_NEXT_NS]
        if self.action >= 0 and nxt >= 0 and float(now_ns) < nxt:  # as the kernel compares
            # between decisions: the held action, as rl_decide would return it (without the
            # two kernel dispatches, most of this call's cost)
            return self._held
        krl.fill_rl_obs(
            self.obs,
            position_lots,
            max_lots,
            sigma_ticks,
            krl.compute_ofi_trades(fx),
            p_adverse,
            now_ns,
            session_ns,
        )
        before = self.rs[krl.RS_DECISIONS]
        a = krl.rl_decide(
            p.q,
            p.visits,
            p.rpi,
            p.rpf,
            p.actions,
            self.rs,
            self.rng,
            self.ml,
            self.obs,
            now_ns,
            pnl_quote,
            mid_ticks,
            position_lots,
            max_lots,
            qty_per_tick_lot,
        )
        if self.rs[krl.RS_DECISIONS] != before:
            self.counts[a] += 1
        self.action = a
        self._held = (float(p.actions[a, 0]), float(p.actions[a, 1])) if a >= 0 else (1.0, 0.0)
        return self._held


class LoadedModels:
    """The models quoting uses, loaded once at start (None = not used)."""

    def __init__(
        self,
        adverse: AdverseSelectionDetector | None = None,
        spread: SpreadPredictor | None = None,
        rl: RlPolicy | None = None,
        deep: Any = None,
        deep_skew_ticks: float = 0.0,
    ) -> None:
        self.adverse = adverse
        self.spread = spread
        self.rl = rl
        self.deep = deep  # mmd.learn.deep_runtime.DeepOrderFlowModel (the file's; per-symbol
        # state: deep.fork())
        self.deep_skew_ticks = deep_skew_ticks

    @property
    def active(self) -> bool:
        return (
            self.adverse is not None
            or self.spread is not None
            or self.rl is not None
            or self.deep is not None
        )

    def versions(self) -> dict[str, str]:
        """{"adverse": version, "spread": version, "rl": version} of the loaded models."""
        out = {}
        if self.adverse is not None:
            out["adverse"] = self.adverse.version
        if self.spread is not None:
            out["spread"] = self.spread.version
        if self.rl is not None:
            out["rl"] = self.rl.version
        if self.deep is not None:
            out["lstm"] = self.deep.version
        return out

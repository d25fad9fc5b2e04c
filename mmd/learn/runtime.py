"""Loaded models at run time: the adverse-selection detector and the spread predictor.

Glue only: weights come from model files (mmd.learn.model_file), the arithmetic is in
mmd.kernels.models. No scikit-learn here: the daemon needs only the core dependencies. Scratch
arrays are allocated once per model, so a call allocates nothing but its result.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from mmd.kernels import models as km
from mmd.learn.features import ADVERSE_FEATURES, MARKET_FEATURES
from mmd.learn.model_file import IncompatibleModel, ModelMeta, load_model

F64Array = npt.NDArray[np.float64]

ADVERSE_KINDS = ("adverse_logistic", "adverse_mlp")
SPREAD_KINDS = ("spread_mlp",)


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
        meta, arrays: a loaded adverse model (see from_dir).
        p0, k, p_withdraw: override the policy stored in the model file (None: keep it).
    """

    def __init__(self, meta: ModelMeta, arrays: dict[str, Any], *, p0: float | None = None,
                 k: float | None = None, p_withdraw: float | None = None) -> None:
        self.meta = meta
        self._net = _Network(arrays)
        self._orient = np.asarray(meta.orient, np.float64)
        pol = meta.policy or {}
        self.p0 = float(pol.get("p0", 1.0) if p0 is None else p0)
        self.k = float(pol.get("k", 0.0) if k is None else k)
        self.p_withdraw = float(pol.get("p_withdraw", 2.0) if p_withdraw is None else p_withdraw)

    @classmethod
    def from_dir(cls, model_dir: str | Path, **policy: float | None) -> AdverseSelectionDetector:
        """Load and validate a model directory (raises IncompatibleModel, exit 2)."""
        meta, arrays = load_model(model_dir, ADVERSE_KINDS, ADVERSE_FEATURES)
        return cls(meta, arrays, **policy)

    @property
    def version(self) -> str:
        return self.meta.version

    def probabilities(self, xm: F64Array) -> tuple[float, float]:
        """(p_buy, p_sell) at the market vector xm (float64[N_MARKET], features.market_matrix)."""
        n = self._net
        return km.apply_adverse_pair(n.buf_a, n.buf_b, n.v, n.z, xm, self._orient, n.stats,
                                     n.weights, n.biases, n.sizes)

    def adjust(self, xm: F64Array) -> AdverseAdjustment:
        """The probabilities and what the policy makes of them."""
        p_buy, p_sell = self.probabilities(xm)
        bm, am, qb, qa = km.compute_adverse_policy(p_buy, p_sell, self.p0, self.k,
                                                    self.p_withdraw)
        return AdverseAdjustment(p_buy, p_sell, bm, am, qb, qa)

    def predict_rows(self, x: F64Array) -> F64Array:
        """P(adverse) of ready-made input rows (float64[n, N_MARKET + 1], side included), as
        the trainer saw them (tests, evaluation)."""
        n = self._net
        out = np.empty(x.shape[0])
        mean, scale = n.stats[: n.sizes[0]], n.stats[n.sizes[0]:]
        for i in range(x.shape[0]):
            km.apply_standardise(n.z, np.ascontiguousarray(x[i]), mean, scale)
            if len(n.sizes) == 2:
                out[i] = km.compute_logistic(n.z, n.weights, n.biases[0])
            else:
                out[i] = km.compute_sigmoid(km.apply_mlp(n.buf_a, n.buf_b, n.z, n.weights,
                                                         n.biases, n.sizes))
        return out


class SpreadPredictor:
    """The neural spread predictor: market vector -> half spread in ticks (> 0)."""

    def __init__(self, meta: ModelMeta, arrays: dict[str, Any]) -> None:
        self.meta = meta
        self._net = _Network(arrays)
        lo, hi = meta.hyper_parameters.get("clip_ticks", [0.0, math.inf])
        self.min_ticks, self.max_ticks = float(lo), float(hi)

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> SpreadPredictor:
        """Load and validate a model directory (raises IncompatibleModel, exit 2)."""
        meta, arrays = load_model(model_dir, SPREAD_KINDS, MARKET_FEATURES)
        return cls(meta, arrays)

    @property
    def version(self) -> str:
        return self.meta.version

    def half_spread_ticks(self, xm: F64Array) -> float:
        """exp(network(xm)) clipped to the training grid's range: the predicted best half
        spread, ticks. For the quoter's spread_override_ticks (a total spread), pass twice
        this."""
        n = self._net
        h = km.apply_spread_model(n.buf_a, n.buf_b, n.z, xm, n.stats, n.weights, n.biases,
                                  n.sizes)
        return min(max(h, self.min_ticks), self.max_ticks)

    def predict_rows(self, x: F64Array) -> F64Array:
        """half_spread_ticks of each row of x (float64[n, N_MARKET])."""
        return np.array([self.half_spread_ticks(np.ascontiguousarray(r)) for r in x])


class LoadedModels:
    """The models quoting uses, loaded once at start (None = not used)."""

    def __init__(self, adverse: AdverseSelectionDetector | None = None,
                 spread: SpreadPredictor | None = None) -> None:
        self.adverse = adverse
        self.spread = spread

    @property
    def active(self) -> bool:
        return self.adverse is not None or self.spread is not None

    def versions(self) -> dict[str, str]:
        """{"adverse": version, "spread": version} of the loaded models."""
        out = {}
        if self.adverse is not None:
            out["adverse"] = self.adverse.version
        if self.spread is not None:
            out["spread"] = self.spread.version
        return out


def load_models(model_dir: str | Path, *, adverse: bool, spread: bool, missing: str,
                on_missing: Any = None) -> LoadedModels:
    """Load the enabled models from model_dir/adverse and model_dir/spread.

    missing "error": a missing or incompatible file raises IncompatibleModel (exit 2, one line
    naming the config key and the file); "neutral": on_missing(name, reason) is called and
    that model is left out.
    """
    root = Path(model_dir)
    loaded: dict[str, Any] = {}
    for name, wanted, cls in (("adverse", adverse, AdverseSelectionDetector),
                              ("spread", spread, SpreadPredictor)):
        if not wanted:
            continue
        try:
            loaded[name] = cls.from_dir(root / name)
        except IncompatibleModel as exc:
            if missing != "neutral":
                raise IncompatibleModel(f"models.{name}: {exc}") from None
            if on_missing is not None:
                on_missing(name, str(exc))
    return LoadedModels(loaded.get("adverse"), loaded.get("spread"))

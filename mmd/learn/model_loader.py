"""Model directories read into the run-time models (mmd.learn.runtime, mmd.learn.deep_runtime):
each file checked by mmd.learn.model_file.load_model, then handed over as arrays.

Shell: reads files; the models' arithmetic is not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmd.learn.deep_data import SEQUENCE_FEATURES
from mmd.learn.deep_runtime import DEEP_KINDS, DeepOrderFlowModel
from mmd.learn.features import ADVERSE_FEATURES, MARKET_FEATURES
from mmd.learn.model_file import IncompatibleModel, load_model
from mmd.learn.runtime import (
    ADVERSE_KINDS,
    RL_KINDS,
    RL_OBSERVATIONS,
    SPREAD_KINDS,
    AdverseSelectionDetector,
    LoadedModels,
    RlPolicy,
    SpreadPredictor,
)


def load_detector(model_dir: str | Path, **policy: float | None) -> AdverseSelectionDetector:
    """The adverse-selection detector of a model directory; policy: p0, k, p_withdraw
    overrides (raises IncompatibleModel, exit 2)."""
    meta, arrays = load_model(model_dir, ADVERSE_KINDS, ADVERSE_FEATURES)
    return AdverseSelectionDetector(meta, arrays, **policy)


def load_spread_predictor(model_dir: str | Path) -> SpreadPredictor:
    """The spread predictor of a model directory (raises IncompatibleModel, exit 2)."""
    meta, arrays = load_model(model_dir, SPREAD_KINDS, MARKET_FEATURES)
    return SpreadPredictor(meta, arrays)


def load_rl_policy(
    model_dir: str | Path,
    *,
    online: bool = False,
    learning: dict[str, float] | None = None,
    seed: int = 1,
) -> RlPolicy:
    """The Q-learning policy of a model directory (RlPolicy.from_arrays: online, learning,
    seed); raises IncompatibleModel, exit 2."""
    meta, arrays = load_model(model_dir, RL_KINDS, RL_OBSERVATIONS)
    return RlPolicy.from_arrays(meta, arrays, online=online, learning=learning, seed=seed)


def load_deep_model(model_dir: str | Path) -> DeepOrderFlowModel:
    """The deep order-flow model of a model directory (raises IncompatibleModel, exit 2)."""
    meta, arrays = load_model(model_dir, DEEP_KINDS, SEQUENCE_FEATURES)
    return DeepOrderFlowModel(meta, arrays)


def load_models(
    model_dir: str | Path,
    *,
    adverse: bool,
    spread: bool,
    missing: str,
    on_missing: Any = None,
    rl: bool = False,
    rl_options: dict[str, Any] | None = None,
    lstm: bool = False,
    deep_skew_ticks: float = 0.0,
) -> LoadedModels:
    """Load the enabled models from model_dir/adverse, model_dir/spread, model_dir/rl and
    model_dir/lstm (the deep order-flow model, kind deep_lstm or deep_multitask).

    missing "error": a missing or incompatible file raises IncompatibleModel (exit 2, one line
    naming the config key and the file); "neutral": on_missing(name, reason) is called and
    that model is left out. rl_options: RlPolicy keyword arguments (online, learning, seed).
    """
    root = Path(model_dir)
    loaded: dict[str, Any] = {}
    for name, wanted, load in (
        ("adverse", adverse, load_detector),
        ("spread", spread, load_spread_predictor),
        ("rl", rl, lambda d: load_rl_policy(d, **(rl_options or {}))),
        ("lstm", lstm, load_deep_model),
    ):
        if not wanted:
            continue
        try:
            loaded[name] = load(root / name)
        except IncompatibleModel as exc:
            if missing != "neutral":
                raise IncompatibleModel(f"models.{name}: {exc}") from None
            if on_missing is not None:
                on_missing(name, str(exc))
    return LoadedModels(
        loaded.get("adverse"),
        loaded.get("spread"),
        loaded.get("rl"),
        loaded.get("lstm"),
        deep_skew_ticks,
    )

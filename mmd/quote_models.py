"""Loads the [models] the strategy quotes with (once, at start), logs each one and records its
version in the ledger. Shell: reads model files; how a model quotes lives in mmd.learn and strategy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmd.config import AppConfig
from mmd.logs import get_logger
from mmd.metrics import Metrics
from mmd.trading.trader import Trader

if TYPE_CHECKING:
    from mmd.learn.runtime import LoadedModels


def load_quote_models(
    cfg: AppConfig,
    trader: Trader | None,
    now_ns: int,
    *,
    force: bool = False,
    metrics: Metrics | None = None,
    deep: bool = False,
) -> LoadedModels | None:
    """Load the [models] the strategy quotes with, once (force: the adverse and spread models,
    as `--strategy ml`; deep: the deep order-flow model, as `--strategy deep`; the RL table
    only when [models] rl is on).

    Logs model_loaded per model; with a ledger, records each version and logs model_changed
    when it differs from the version recorded last (a restart with the same files records
    nothing new). A missing or incompatible model raises IncompatibleModel (exit 2) unless
    [models] missing = "neutral" (then model_missing is logged and that model is left out).
    """
    from mmd.learn.model_loader import load_models

    mc = cfg.models
    adverse, spread, lstm = mc.adverse or force, mc.spread or force, mc.lstm or deep
    if not (adverse or spread or mc.rl or lstm):
        return None
    log = get_logger("models")
    models = load_models(
        mc.dir,
        adverse=adverse,
        spread=spread,
        missing=mc.missing,
        on_missing=lambda name, reason: log.warning(
            "model_missing", model=name, reason=reason, fallback="neutral"
        ),
        rl=mc.rl,
        rl_options=rl_options(cfg),
        lstm=lstm,
        deep_skew_ticks=mc.deep_skew_ticks,
    )
    ledger = trader.ledger if trader is not None else None
    before = ledger.model_versions() if ledger is not None else {}
    for name, version in models.versions().items():
        path = str(Path(mc.dir) / name)
        log.info("model_loaded", model=name, version=version, path=path)
        if metrics is not None:
            metrics.model_info.labels(name, version).set(1)
        if ledger is not None and before.get(name) != version:
            if name in before:
                log.warning("model_changed", model=name, previous=before[name], version=version)
            ledger.record_model(name, version, path, now_ns)
    return models


def rl_options(cfg: AppConfig) -> dict[str, Any]:
    """RlPolicy options from [models]: online learning and its parameters (exploration
    seeded by feed.synthetic.seed, the config's seed)."""
    mc = cfg.models
    return {
        "online": mc.rl_online,
        "seed": cfg.feed.synthetic.seed,
        "learning": {
            "alpha": mc.rl_alpha,
            "discount": mc.rl_discount,
            "epsilon": mc.rl_epsilon,
            "damp": mc.rl_damp,
            "penalty": mc.rl_penalty_ticks,
        },
    }

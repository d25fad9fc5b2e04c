"""Typed configuration: msgspec Structs mirroring config.toml, plus load_config(); the sole
reader of settings. Every Struct is frozen, keyword-only and forbids unknown fields, so a typo is
a start-up error naming the key. Precedence: config.toml < MMD_<SECTION>__<KEY> < `--set`.
"""

from mmd.config.bounds import DAY_S, RING_BUDGET_BYTES, SYNTHETIC_MAX_FRAMES_PER_S
from mmd.config.feed import (
    FeedConfig,
    RecordConfig,
    RegimesConfig,
    ReplayConfig,
    RestConfig,
    SyntheticConfig,
    VenueConfig,
    WsConfig,
)
from mmd.config.loader import (
    ENV_PREFIX,
    apply_env_overrides,
    apply_set_overrides,
    config_from_mapping,
    dump_config,
    load_config,
)
from mmd.config.root import AppConfig, LogsConfig, MetricsConfig, StateConfig
from mmd.config.trading import (
    CalibrationConfig,
    ExchangeConfig,
    FeaturesConfig,
    HedgeConfig,
    MarketConfig,
    ModelsConfig,
    RiskConfig,
    StrategyConfig,
)

__all__ = [
    "DAY_S",
    "ENV_PREFIX",
    "RING_BUDGET_BYTES",
    "SYNTHETIC_MAX_FRAMES_PER_S",
    "AppConfig",
    "CalibrationConfig",
    "ExchangeConfig",
    "FeaturesConfig",
    "FeedConfig",
    "HedgeConfig",
    "LogsConfig",
    "MarketConfig",
    "MetricsConfig",
    "ModelsConfig",
    "RecordConfig",
    "RegimesConfig",
    "ReplayConfig",
    "RestConfig",
    "RiskConfig",
    "StateConfig",
    "StrategyConfig",
    "SyntheticConfig",
    "VenueConfig",
    "WsConfig",
    "apply_env_overrides",
    "apply_set_overrides",
    "config_from_mapping",
    "dump_config",
    "load_config",
]

"""The evaluated strategies, the command's options and the figures of a table row.

Pure declarations: no I/O, nothing run here.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

FIGURES = (
    "pnl",
    "pnl_bps",
    "sharpe",
    "max_drawdown",
    "fills",
    "mean_abs_position",
    "pnl_to_map",
    "markout_1s",
    "markout_5s",
    "markout_30s",
    "detector_auc",
    "detector_logloss",
    "net_delta",
)
TEST_METRICS = ("pnl", "pnl_to_map", "pnl_bps")


@dataclasses.dataclass(frozen=True, slots=True)
class StrategySpec:
    """One evaluated strategy.

    Attributes:
        key: short name (CSV/JSON).
        label: table name.
        model: quote model of `mmd backtest --strategy` ("as", "glft" or "ml": AS + models).
        tuned: built on the tuned AS config of the split instead of the base config.
        models: learned models it quotes with ("adverse", "spread", "rl").
        risk_size: quotes with `[strategy] risk_size` on.
        hedge: quotes with the `[hedge]` beta hedge on through this instrument (every symbol
            in one book; "" = off).
        unavailable: why it cannot run here ("" = it runs).

    model "deep" is `--strategy deep`: AS with the deep model of models ("lstm" or
    "multitask", loaded as `[models] dir/lstm`) plus the other models it lists.
    """

    key: str
    label: str
    model: str
    tuned: bool = False
    models: tuple[str, ...] = ()
    risk_size: bool = False
    hedge: str = ""
    unavailable: str = ""


def rl_trainer() -> Callable[..., Any] | None:
    """`mmd.learn.rl.train_rl` when that module exists and has it, else None."""
    try:
        mod = importlib.import_module("mmd.learn.rl")
    except ImportError:
        return None
    fn = getattr(mod, "train_rl", None)
    return fn if callable(fn) else None


def deep_available() -> bool:
    """PyTorch (the `deep` extra) is installed: the deep models can be trained."""
    return importlib.util.find_spec("torch") is not None


DEEP_MODELS = ("lstm", "multitask")


def strategy_specs(
    rl_available: bool, deep: bool = True, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
) -> list[StrategySpec]:
    """The evaluated strategies. The RL rows run only when an RL trainer exists, the deep rows
    only with PyTorch, the hedge row only with two symbols or more (hedged through BTCUSDT
    when it is one of them, else the first symbol by name); the full stacks take every
    model there is (and say which in their labels). The deep full stack is the full stack
    with the multi-task model added (fixed here, never chosen on scored data)."""
    no_rl = "" if rl_available else "not available (no RL trainer: mmd.learn.rl.train_rl)"
    no_deep = "" if deep else "not available (PyTorch, the `deep` extra, is not installed)"
    no_hedge = (
        ""
        if len(symbols) >= 2
        else "not available (one symbol: the hedge needs two or more in the data)"
    )
    hedge_via = "BTCUSDT" if "BTCUSDT" in symbols else (sorted(symbols) or [""])[0]
    full_models = ("adverse", "spread", "rl") if rl_available else ("adverse", "spread")
    return [
        StrategySpec("as", "AS", "as"),
        StrategySpec("glft", "GLFT", "glft"),
        StrategySpec("as_tuned", "tuned AS", "as", tuned=True),
        StrategySpec("as_adverse", "AS + adverse", "ml", models=("adverse",)),
        StrategySpec(
            "as_adverse_rl", "AS + adverse + RL", "ml", models=("adverse", "rl"), unavailable=no_rl
        ),
        StrategySpec(
            "as_adverse_spread", "AS + adverse + spread", "ml", models=("adverse", "spread")
        ),
        StrategySpec("full", "full stack", "ml", tuned=True, models=full_models, risk_size=True),
        StrategySpec("as_lstm", "AS + LSTM", "deep", models=("lstm",), unavailable=no_deep),
        StrategySpec(
            "as_multitask", "AS + multitask", "deep", models=("multitask",), unavailable=no_deep
        ),
        StrategySpec(
            "full_deep",
            "deep full stack",
            "deep",
            tuned=True,
            models=(*full_models, "multitask"),
            risk_size=True,
            unavailable=no_deep,
        ),
        StrategySpec("as_hedge", "AS + hedge", "as", hedge=hedge_via, unavailable=no_hedge),
    ]


@dataclasses.dataclass(frozen=True, slots=True)
class EvalOptions:
    """The command's options (see `add_arguments`)."""

    splits: int = 2
    purge_s: float = 5.0
    trials: int = 20
    batch: int = 4
    seed: int = 0
    workers: int = 1
    objective: str = "pnl_to_map"
    test_metric: str = "pnl"
    space: str | None = None


def add_arguments(p: Any) -> None:
    """The `mmd evaluate` options."""
    p.add_argument("data", nargs="+", help="recordings (files or directories)")
    p.add_argument(
        "--models",
        required=True,
        metavar="DIR",
        help="where each split's models are trained (DIR/split_K/...)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write evaluation.csv, evaluation.json and PNG plots here",
    )
    p.add_argument(
        "-c",
        "--config",
        default=None,
        help="config file (default: ./config.toml if present, else built-in)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training setting (as `mmd train`), a deep-model setting "
        "deep.KEY=VALUE (as `mmd train lstm`), or a config override "
        "SECTION.KEY=VALUE (repeatable)",
    )
    p.add_argument(
        "--splits",
        type=int,
        default=2,
        help="K: K+1 folds by time, K out-of-sample splits (default 2)",
    )
    p.add_argument(
        "--purge",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="gap dropped at the start of every fold after the first (default 5)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=20,
        help="tuning trials per split for the tuned AS (default 20)",
    )
    p.add_argument("--batch", type=int, default=4, help="tuning trials per batch (default 4)")
    p.add_argument("--seed", type=int, default=0, help="tuning sampler seed (default 0)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local processes for the tuning trials (default 1: in process)",
    )
    p.add_argument(
        "--objective",
        choices=["pnl_to_map", "sharpe", "pnl_dd"],
        default="pnl_to_map",
        help="the tuning objective (default pnl_to_map)",
    )
    p.add_argument(
        "--test-metric",
        choices=list(TEST_METRICS),
        default="pnl",
        help="per-split figure of the paired test (default pnl)",
    )
    p.add_argument(
        "--space",
        default=None,
        metavar="FILE.toml",
        help="tuning space file (default: the built-in AS space of `mmd tune`)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def table_row(
    spec: StrategySpec, split: int | str, figures: dict[str, Any] | None, note: str
) -> dict[str, Any]:
    """One row of evaluation.csv: the strategy, the split ("all" overall), its figures (None:
    not available) and a note."""
    row: dict[str, Any] = {
        "strategy": spec.key,
        "label": spec.label,
        "split": split,
        "available": figures is not None,
        "note": note,
    }
    for k in (*FIGURES, "volume_quote", "fees", "duration_s"):
        row[k] = None if figures is None else figures.get(k)
    return row

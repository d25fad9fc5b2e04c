"""`mmd evaluate DATA... --models DIR`: the walk-forward, out-of-sample comparison of the
strategies, from plain AS to the full learned stack.

Shell: reads recordings, writes model directories, evaluation.csv/json and plots. The pieces it
runs are the product's own: the walk-forward folds of `mmd.tune.splits`, a seeded Optuna search
through `mmd.tune.search` / `mmd.tune.engine.run_folds` (the tuned AS), the trainers of
`mmd.learn.cli` and `mmd.learn.deep_cli` (models; the deep models' direction figures by
`deep_cli.direction_report`), and `mmd.backtest_run.backtest` with a time window (every figure).
Whatever is reported for a split was never seen by anything chosen for it: tuning, model fitting
and model selection see only the folds before the split's test fold.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import importlib
import importlib.util
import json
import math
import os
import platform
import shutil
import sys
import time
import tomllib
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from mmd.config import AppConfig
from mmd.errors import ConfigError

if TYPE_CHECKING:
    from mmd.learn.cli import Recording, TrainParams
    from mmd.learn.dataset import LabelParams, MarketSeries
    from mmd.learn.deep_data import DeepParams

Window = tuple[int, int]

# the per-row figures, in table order (money in quote, sizes in base units, markouts in ticks)
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


# -- pure helpers --------------------------------------------------------------------------------


def eval_splits(folds: list[list[Window]]) -> list[tuple[list[list[Window]], list[Window]]]:
    """Expanding-window splits over K+1 folds: split k (1..K) trains on folds 0..k-1 (kept as
    separate folds, for the tuner) and tests on fold k."""
    return [(folds[:k], folds[k]) for k in range(1, len(folds))]


def slice_series(ms: MarketSeries, start_ns: int | None, end_ns: int) -> MarketSeries:
    """The rows and trades of ms received in [start_ns, end_ns) (None = from the start)."""
    lo = -(2**62) if start_ns is None else start_ns
    r = (ms.ts_ns >= lo) & (ms.ts_ns < end_ns)
    t = (ms.trade_ts_ns >= lo) & (ms.trade_ts_ns < end_ns)
    return dataclasses.replace(
        ms,
        ts_ns=ms.ts_ns[r],
        fx=ms.fx[r],
        is_book=ms.is_book[r],
        trade_ts_ns=ms.trade_ts_ns[t],
        trade_px_ticks=ms.trade_px_ticks[t],
        trade_qty_lots=ms.trade_qty_lots[t],
        trade_side=ms.trade_side[t],
    )


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _weighted(pairs: list[tuple[float | None, float]]) -> float | None:
    num = den = 0.0
    for v, w in pairs:
        if v is not None and w > 0:
            num += v * w
            den += w
    return num / den if den > 0 else None


def aggregate(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One split's figures from its backtest summaries (one per window and symbol).

    PnL, fills, volume and fees add up; pnl_bps = PnL / traded notional x 1e4; max_drawdown is
    the worst window's; mean_abs_position is the duration-weighted mean; pnl_to_map = PnL /
    that mean; markouts are fill-weighted; sharpe is the summary's (hourly PnL changes,
    annualised: n/a under 24 h) when there is one summary, else n/a. With one summary every
    figure is the summary's own.
    """
    if not summaries:
        return dict.fromkeys(FIGURES) | {"volume_quote": None, "fees": None, "duration_s": None}
    pnl = math.fsum(float(s["pnl"]) for s in summaries)
    vol = math.fsum(float(s.get("volume_quote", 0.0)) for s in summaries)
    fills = sum(int(s.get("fills", 0)) for s in summaries)
    dur = [float(s.get("duration_s") or 0.0) for s in summaries]
    if len(summaries) == 1:
        s = summaries[0]
        out = {
            k: _finite(s.get(k))
            for k in (
                "pnl",
                "sharpe",
                "max_drawdown",
                "mean_abs_position",
                "pnl_to_map",
                "markout_1s",
                "markout_5s",
                "markout_30s",
            )
        }
        out["pnl_bps"] = _finite(s.get("pnl_per_notional_bps"))
    else:
        map_ = _weighted(
            [(_finite(s.get("mean_abs_position")), d) for s, d in zip(summaries, dur, strict=True)]
        )
        out = {
            "pnl": pnl,
            "sharpe": None,
            "max_drawdown": max(float(s["max_drawdown"]) for s in summaries),
            "mean_abs_position": map_,
            "pnl_to_map": pnl / map_ if map_ else None,
            "pnl_bps": pnl / vol * 1e4 if vol > 0 else None,
        }
        for h in ("markout_1s", "markout_5s", "markout_30s"):
            out[h] = _weighted([(_finite(s.get(h)), float(s.get("fills", 0))) for s in summaries])
    # the book's mean |net delta| (quote) of a multi-symbol window, duration-weighted
    books = {
        id(s["book"]): (s["book"], d) for s, d in zip(summaries, dur, strict=True) if s.get("book")
    }
    out["net_delta"] = _weighted(
        [(_finite(b.get("net_delta_mean_abs_quote")), d) for b, d in books.values()]
    )
    out["fills"] = fills
    out["volume_quote"] = vol
    out["fees"] = math.fsum(float(s.get("fees", 0.0)) for s in summaries)
    out["duration_s"] = math.fsum(dur)
    return out


def overall(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A strategy's figures over its split rows: sums, the worst drawdown, duration-weighted
    mean |position|, fill-weighted markouts and AUC/log-loss means; `sharpe` here is over
    splits: mean(split PnL) / std(split PnL, ddof=1), not annualised (n/a under 2 splits)."""
    pnls = [r["pnl"] for r in rows if r["pnl"] is not None]
    pnl = math.fsum(pnls) if pnls else None
    vol = math.fsum(r["volume_quote"] or 0.0 for r in rows)
    map_ = _weighted([(r["mean_abs_position"], r["duration_s"] or 0.0) for r in rows])
    sd = float(np.std(pnls, ddof=1)) if len(pnls) > 1 else math.nan
    out: dict[str, Any] = {
        "pnl": pnl,
        "pnl_bps": pnl / vol * 1e4 if pnl is not None and vol > 0 else None,
        "sharpe": float(np.mean(pnls)) / sd if sd > 0 else None,
        "max_drawdown": max(
            (r["max_drawdown"] for r in rows if r["max_drawdown"] is not None), default=None
        ),
        "fills": sum(r["fills"] or 0 for r in rows),
        "mean_abs_position": map_,
        "pnl_to_map": pnl / map_ if pnl is not None and map_ else None,
        "volume_quote": vol,
        "fees": math.fsum(r["fees"] or 0.0 for r in rows),
        "duration_s": math.fsum(r["duration_s"] or 0.0 for r in rows),
    }
    for h in ("markout_1s", "markout_5s", "markout_30s"):
        out[h] = _weighted([(r[h], float(r["fills"] or 0)) for r in rows])
    for k in ("detector_auc", "detector_logloss"):
        vals = [r[k] for r in rows if r[k] is not None]
        out[k] = float(np.mean(vals)) if vals else None
    out["net_delta"] = _weighted([(r.get("net_delta"), r["duration_s"] or 0.0) for r in rows])
    return out


def paired_test(a: list[float | None], b: list[float | None]) -> dict[str, Any]:
    """Wilcoxon signed-rank test of a - b over the splits where both exist (two-sided).

    Returns n, the differences, the statistic and the p-value (1.0 when every difference is 0,
    None under one pair), and a note on its power: with n pairs the smallest two-sided p the
    exact test can give is 2 / 2^n (0.0625 at n = 5), so under 6 splits it cannot reach 0.05.
    """
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    d = [x - y for x, y in pairs]
    out: dict[str, Any] = {
        "n": len(d),
        "differences": d,
        "statistic": None,
        "p_value": None,
        "min_attainable_p": (2.0 / 2 ** len(d)) if d else None,
    }
    if len(d) >= 1:
        from scipy.stats import wilcoxon

        if all(x == 0 for x in d):
            out["statistic"], out["p_value"] = 0.0, 1.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = wilcoxon(d)
            p = float(res.pvalue)
            out["statistic"] = float(res.statistic)
            out["p_value"] = min(1.0, max(0.0, p)) if p == p else 1.0
    out["note"] = (
        "little power: with n splits the smallest attainable two-sided p is 2/2^n"
        if len(d) < 6
        else ""
    )
    return out


# -- the command ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _executor(workers: int) -> Iterator[Executor]:
    if workers <= 1:
        with ThreadPoolExecutor(max_workers=1) as ex:
            yield ex
        return
    from mmd.tune.executors import open_executor

    with open_executor(workers, None) as (ex, _):
        yield ex


@dataclasses.dataclass(slots=True)
class _Split:
    number: int
    train_folds: list[list[Window]]
    test: list[Window]
    dir: Path
    tuned_table: dict[str, Any] | None = None
    tune: dict[str, Any] = dataclasses.field(default_factory=dict)
    models: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> version
    model_errors: dict[str, str] = dataclasses.field(default_factory=dict)
    detector: dict[str, Any] = dataclasses.field(default_factory=dict)
    direction: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def train_end_ns(self) -> int:
        return self.train_folds[-1][-1][1]


def _tune_split(
    sp: _Split,
    table: dict[str, Any],
    space: list[Any],
    recs: list[tuple[str, int, int]],
    opts: EvalOptions,
    ex: Executor,
    tick: Callable[[], None],
) -> None:
    """The tuned AS of a split: the search scored on its training folds only."""
    from mmd.config import config_from_mapping
    from mmd.tune.engine import run_folds
    from mmd.tune.executors import run_batch
    from mmd.tune.search import best_results, make_study, run_search
    from mmd.tune.space import with_params

    def task(number: int, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "number": number,
            "config": with_params(table, params),
            "folds": sp.train_folds,
            "recordings": [list(r) for r in recs],
            "objective": opts.objective,
            "dd_lambda": 1.0,
        }

    study = make_study("tpe", opts.seed)
    results = run_search(
        study,
        space,
        opts.trials,
        opts.batch,
        task,
        lambda ts: run_batch(ex, run_folds, ts, lambda r: tick()),
    )
    windows = sorted(
        {
            tuple(s["window_ns"])
            for r in results
            for s in r.get("summaries", [])
            if s.get("window_ns")
        }
    )
    best = best_results(results, 1)
    sp.tune = {
        "trials": len(results),
        "objective": opts.objective,
        "failed": sum(1 for r in results if r["score"] is None),
        "train_windows": sp.train_folds,
        "trial_windows": [list(w) for w in windows],
        "best": None,
    }
    if best:
        b = best[0]
        sp.tuned_table = with_params(table, b["params"])
        config_from_mapping(sp.tuned_table)  # the best trial's config is valid
        sp.tune["best"] = {"number": b["number"], "score": b["score"], "params": b["params"]}
    else:  # every trial failed: the tuned AS is the base config (said in the JSON)
        sp.tuned_table = table


def _train_split(
    sp: _Split,
    recs: list[Recording],
    lp: LabelParams,
    tp: TrainParams,
    rl: Callable[..., Any] | None,
    echo: Callable[[str], None],
    dp: DeepParams | None = None,
) -> None:
    """Train every model on the split's training part (each recording cut at its end); the
    deep models (dp given) without their own walk-forward (this split scores them)."""
    from mmd import __version__
    from mmd.learn.cli import train_adverse, train_spread

    end = sp.train_end_ns
    part = [dataclasses.replace(r, series=slice_series(r.series, None, end)) for r in recs]
    part = [r for r in part if len(r.series.ts_ns)]
    trainers: list[tuple[str, Callable[..., Any]]] = [
        ("adverse", train_adverse),
        ("spread", train_spread),
    ]
    if rl is not None:
        trainers.append(("rl", rl))
    if dp is not None:
        from mmd.learn.deep_cli import train_deep

        for kind in DEEP_MODELS:

            def fn(
                part: list[Any],
                _lp: Any,
                _tp: Any,
                out: Path,
                version: str,
                progress: bool,
                echo: Callable[[str], None],
                kind: str = kind,
            ) -> Any:
                return train_deep(kind, part, dp, out, version, progress, echo, walk_forward=False)

            trainers.append((kind, fn))
    for name, fn in trainers:
        try:
            if not part:
                raise ConfigError("no training data before the test fold")
            meta = fn(part, lp, tp, sp.dir, __version__, False, echo)
            sp.models[name] = str(getattr(meta, "version", ""))
        except ConfigError as exc:
            sp.model_errors[name] = str(exc)
        except TypeError as exc:  # an RL trainer with another signature
            if name != "rl":
                raise
            sp.model_errors[name] = f"train_rl: {exc}"


def _detector_metrics(sp: _Split, recs: list[Recording], lp: LabelParams) -> None:
    """AUC and log-loss of the split's detector on the adverse samples of its test windows."""
    from mmd.learn import train as tr
    from mmd.learn.dataset import adverse_dataset
    from mmd.learn.runtime import AdverseSelectionDetector

    if "adverse" not in sp.models:
        return
    det = AdverseSelectionDetector.from_dir(sp.dir / "adverse")
    ys, ps = [], []
    for r in recs:
        for a, b in sp.test:
            d = adverse_dataset(slice_series(r.series, a, b), lp)
            if len(d):
                ys.append(d.y)
                ps.append(det.predict_rows(d.x))
    if not ys:
        sp.detector = {"n": 0, "auc": None, "logloss": None}
        return
    y, p = np.concatenate(ys), np.concatenate(ps)
    auc, ll = tr.auc_and_logloss(y, p)
    sp.detector = {
        "n": len(y),
        "auc": _finite(auc),
        "logloss": _finite(ll),
        "base_rate": float(np.mean(y)),
    }


def _direction_metrics(sp: _Split, recs: list[Recording], dp: DeepParams) -> None:
    """Direction figures of the split's deep models and logistic baselines on the sequences
    of its test windows (mmd.learn.deep_cli.direction_report), fitted on its training part."""
    from mmd.learn.deep_cli import direction_report

    dirs = {k: sp.dir / k for k in DEEP_MODELS if k in sp.models}
    if not dirs:
        return
    train = [
        s for s in (slice_series(r.series, None, sp.train_end_ns) for r in recs) if len(s.ts_ns)
    ]
    test = []
    for r in recs:
        for a, b in sp.test:
            s = slice_series(r.series, a, b)
            if len(s.ts_ns):
                test.append(s)
    sp.direction = direction_report(train, test, dp, dirs)


def _variant_dir(sp: _Split, models: tuple[str, ...]) -> Path:
    """A models directory holding exactly `models` (copies of the split's files; a deep
    model goes where `--strategy deep` reads it, `lstm/`)."""
    d = sp.dir / "variants" / "+".join(models)
    for name in models:
        dest = "lstm" if name in DEEP_MODELS else name
        if not (d / dest).exists() and (sp.dir / name).exists():
            shutil.copytree(sp.dir / name, d / dest)
    return d


def _strategy_config(spec: StrategySpec, sp: _Split, table: dict[str, Any]) -> AppConfig:
    from mmd.config import config_from_mapping
    from mmd.tune.space import with_params

    base = sp.tuned_table if spec.tuned and sp.tuned_table is not None else table
    sets: dict[str, Any] = {}
    if spec.risk_size:
        sets["strategy.risk_size"] = True
    if spec.models:
        sets["models.dir"] = str(_variant_dir(sp, spec.models))
        sets["models.missing"] = "neutral"
        if "rl" in spec.models and "rl" in table.get("models", {}):
            sets["models.rl"] = True
        if spec.model == "deep":  # --strategy deep loads the others by their switches
            sets["models.adverse"] = "adverse" in spec.models
            sets["models.spread"] = "spread" in spec.models
    if spec.hedge:
        sets["hedge.enabled"] = True
        sets["hedge.instrument"] = spec.hedge
    return config_from_mapping(with_params(base, sets))


def _missing_models(spec: StrategySpec, sp: _Split) -> str:
    missing = [m for m in spec.models if m not in sp.models]
    if not missing:
        return ""
    return "; ".join(f"{m} not trained: {sp.model_errors.get(m, 'unknown')}" for m in missing)


def _run_strategy(
    spec: StrategySpec, sp: _Split, table: dict[str, Any], recs: list[tuple[str, int, int]]
) -> tuple[dict[str, Any], list[Any]]:
    from mmd.backtest_run import backtest
    from mmd.tune.engine import overlapping

    cfg = _strategy_config(spec, sp, table)
    sums: list[dict[str, Any]] = []
    for a, b in sp.test:
        paths = overlapping(recs, a, b)
        if paths:
            sums += backtest(
                cfg,
                paths,
                strategy=spec.model,
                report_dir=None,
                progress=False,
                start_ns=a,
                end_ns=b,
            )
    return aggregate(sums), [
        {
            "window_ns": s.get("window_ns"),
            "symbol": s.get("symbol"),
            "pnl": s.get("pnl"),
            "fills": s.get("fills"),
        }
        for s in sums
    ]


def _row(
    spec: StrategySpec, split: int | str, figures: dict[str, Any] | None, note: str
) -> dict[str, Any]:
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


def run_evaluate(
    cfg: AppConfig,
    data: list[str],
    models_dir: str,
    out: str | None,
    lp: LabelParams,
    tp: TrainParams,
    opts: EvalOptions,
    *,
    progress: bool,
    echo: Callable[[str], None] = print,
    dp: DeepParams | None = None,
) -> dict[str, Any]:
    """The command: returns the evaluation (what evaluation.json holds). dp: the deep models'
    settings (default DeepParams(); the deep rows need PyTorch)."""
    from tqdm import tqdm

    from mmd.config import config_from_mapping, dump_config
    from mmd.learn.cli import read_recordings
    from mmd.tune.cli import recording_spans
    from mmd.tune.space import check_space, default_space, parse_space
    from mmd.tune.splits import walk_forward

    _check_options(opts)
    t0 = time.perf_counter()
    cfg = msgspec.structs.replace(cfg, strategy=msgspec.structs.replace(cfg.strategy, model="as"))
    table = tomllib.loads(dump_config(cfg))
    if opts.space is None:
        space = default_space("as")
    else:
        try:
            space = parse_space(
                tomllib.loads(Path(opts.space).read_text(encoding="utf-8")), opts.space
            )
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--space {opts.space}: {exc}") from None
    check_space(space, table, config_from_mapping)
    try:
        spans = recording_spans(data)
    except ConfigError as exc:
        raise ConfigError("evaluate: " + str(exc).removeprefix("tune: ")) from None
    try:
        folds = walk_forward([(a, b) for _, a, b in spans], opts.splits, round(opts.purge_s * 1e9))
    except ValueError as exc:
        raise ConfigError(f"evaluate: {exc}") from None
    all_folds = [*folds.train, folds.test]
    recs = read_recordings(cfg, data, progress)
    rl = rl_trainer()
    if deep_available():
        from mmd.learn.deep_data import DeepParams

        dp = dp if dp is not None else DeepParams()
    else:
        dp = None
    specs = strategy_specs(
        rl is not None, dp is not None, tuple(sorted({r.series.symbol for r in recs}))
    )
    root = Path(models_dir)
    splits = [
        _Split(k, tr_f, te, root / f"split_{k}")
        for k, (tr_f, te) in enumerate(eval_splits(all_folds), 1)
    ]
    steps = len(splits) * (opts.trials + 1 + len(specs))
    bar = tqdm(
        total=steps,
        desc="evaluate",
        unit="step",
        disable=not progress,
        file=sys.stderr,
        mininterval=0.5,
    )
    rows: list[dict[str, Any]] = []
    windows: dict[str, Any] = {}
    quiet: list[str] = []
    try:
        with _executor(opts.workers) as ex:
            for sp in splits:
                bar.set_postfix_str(f"split {sp.number}: tuning")
                _tune_split(sp, table, space, spans, opts, ex, lambda: bar.update(1))
                bar.set_postfix_str(f"split {sp.number}: training")
                _train_split(sp, recs, lp, tp, rl, quiet.append, dp)
                _detector_metrics(sp, recs, lp)
                if dp is not None:
                    _direction_metrics(sp, recs, dp)
                bar.update(1)
                for spec in specs:
                    bar.set_postfix_str(f"split {sp.number}: {spec.key}")
                    rows.append(_split_row(spec, sp, table, spans, windows))
                    bar.update(1)
                if out:  # the splits done so far, so a long run's figures survive a stop
                    write_outputs(
                        _assemble(
                            specs,
                            splits[: sp.number],
                            rows,
                            windows,
                            spans,
                            opts,
                            time.perf_counter() - t0,
                        ),
                        Path(out),
                    )
    finally:
        bar.close()
    result = _assemble(specs, splits, rows, windows, spans, opts, time.perf_counter() - t0)
    echo_table(result, echo)
    if out:
        paths = write_outputs(result, Path(out))
        echo(f"written {', '.join(str(p) for p in paths)}")
    return result


def _split_row(
    spec: StrategySpec,
    sp: _Split,
    table: dict[str, Any],
    spans: list[tuple[str, int, int]],
    windows: dict[str, Any],
) -> dict[str, Any]:
    if spec.unavailable:
        return _row(spec, sp.number, None, spec.unavailable)
    missing = _missing_models(spec, sp)
    if missing:
        return _row(spec, sp.number, None, missing)
    figures, per_window = _run_strategy(spec, sp, table, spans)
    windows[f"{spec.key}/{sp.number}"] = per_window
    if "adverse" in spec.models:
        figures["detector_auc"] = sp.detector.get("auc")
        figures["detector_logloss"] = sp.detector.get("logloss")
    note = "" if figures.get("fills") else "no fills"
    return _row(spec, sp.number, figures, note)


def _check_options(opts: EvalOptions) -> None:
    for name in ("splits", "trials", "batch", "workers"):
        if getattr(opts, name) < 1:
            raise ConfigError(f"--{name} must be >= 1")
    if opts.purge_s < 0:
        raise ConfigError("--purge must be >= 0")
    if opts.test_metric not in TEST_METRICS:
        raise ConfigError(f"--test-metric: one of {', '.join(TEST_METRICS)}")


def _assemble(
    specs: list[StrategySpec],
    splits: list[_Split],
    rows: list[dict[str, Any]],
    windows: dict[str, Any],
    spans: list[tuple[str, int, int]],
    opts: EvalOptions,
    wall_s: float,
) -> dict[str, Any]:
    from mmd import __version__

    overall_rows = []
    for spec in specs:
        mine = [r for r in rows if r["strategy"] == spec.key]
        ran = [r for r in mine if r["available"]]
        note = "" if ran else (mine[0]["note"] if mine else "")
        overall_rows.append(_row(spec, "all", overall(ran) if ran else None, note))
    metric = opts.test_metric

    def per_split(key: str) -> list[float | None]:
        return [
            next(
                (
                    r[metric]
                    for r in rows
                    if r["strategy"] == key and r["split"] == sp.number and r["available"]
                ),
                None,
            )
            for sp in splits
        ]

    test = paired_test(per_split("full"), per_split("as_tuned"))
    test.update(
        a="full",
        b="as_tuned",
        metric=metric,
        hypothesis="two-sided: the per-split differences full - tuned AS are symmetric about 0",
    )
    test_deep = paired_test(per_split("full_deep"), per_split("full"))
    test_deep.update(
        a="full_deep",
        b="full",
        metric=metric,
        hypothesis="two-sided: the per-split differences deep full stack - full "
        "stack are symmetric about 0",
    )
    return {
        "meta": {
            "mmd_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPU(s)",
            "wall_s": wall_s,
            "options": dataclasses.asdict(opts),
            "recordings": [{"path": p, "first_ns": a, "end_ns": b} for p, a, b in spans],
            "sharpe_basis": "per split: the backtest summary's (hourly PnL changes, annualised; "
            "n/a under 24 h of data); overall: mean / std (ddof 1) of the "
            "per-split PnL, not annualised",
            "strategies": [dataclasses.asdict(s) for s in specs],
        },
        "splits": [
            {
                "split": sp.number,
                "train_windows": sp.train_folds,
                "train_end_ns": sp.train_end_ns,
                "test_windows": sp.test,
                "tune": sp.tune,
                "models": sp.models,
                "model_errors": sp.model_errors,
                "models_dir": str(sp.dir),
                "detector": sp.detector,
                "direction": sp.direction,
            }
            for sp in splits
        ],
        "rows": rows,
        "overall": overall_rows,
        "windows": windows,
        "paired_test": test,
        "paired_test_deep": test_deep,
        "direction": direction_rows(splits),
    }


def direction_rows(splits: list[_Split]) -> list[dict[str, Any]]:
    """The direction figures per model and split, then per model over the splits ("all":
    means weighted by the split's labelled test windows)."""
    rows = [{"model": m, "split": sp.number, **f} for sp in splits for m, f in sp.direction.items()]
    models = list(dict.fromkeys(r["model"] for r in rows))
    for m in models:
        mine = [r for r in rows if r["model"] == m and r["split"] != "all"]
        n = sum(r["n"] for r in mine)
        row: dict[str, Any] = {"model": m, "split": "all", "n": n}
        for k in ("accuracy", "macro_f1", "auc"):
            row[k] = _weighted([(_finite(r[k]), float(r["n"])) for r in mine])
        rows.append(row)
    return rows


# -- output --------------------------------------------------------------------------------------


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


_COLUMNS = (
    ("pnl", "PnL", ".4f"),
    ("pnl_bps", "bps", ".2f"),
    ("sharpe", "Sharpe", ".2f"),
    ("max_drawdown", "maxDD", ".4f"),
    ("fills", "fills", "d"),
    ("mean_abs_position", "mean|pos|", ".5f"),
    ("pnl_to_map", "PnL/|pos|", ".1f"),
    ("markout_1s", "mk1s", ".2f"),
    ("markout_5s", "mk5s", ".2f"),
    ("markout_30s", "mk30s", ".2f"),
    ("detector_auc", "AUC", ".3f"),
    ("detector_logloss", "logloss", ".3f"),
    ("net_delta", "|netdelta|", ".2f"),
)


def echo_table(result: dict[str, Any], echo: Callable[[str], None]) -> None:
    """The terminal table: every strategy per split, then overall, then the paired test."""
    full = next((s for s in result["meta"]["strategies"] if s["key"] == "full"), None)
    if full is not None:
        echo(
            f"full stack = tuned AS + {' + '.join(full['models'])} + risk-scaled size"
            + ("" if "rl" in full["models"] else " (no RL trainer)")
        )
    width = max(len(r["label"]) for r in result["rows"] + result["overall"])
    head = f"{'strategy':<{width}} {'split':>5} " + " ".join(
        f"{h:>{max(9, len(h))}}" for _, h, _ in _COLUMNS
    )
    echo(head)
    for r in result["rows"] + result["overall"]:
        if not r["available"]:
            echo(f"{r['label']:<{width}} {r['split']!s:>5} {r['note']}")
            continue
        cells = " ".join(f"{_fmt(r[k], f):>{max(9, len(h))}}" for k, h, f in _COLUMNS)
        echo(
            f"{r['label']:<{width}} {r['split']!s:>5} {cells}"
            + (f"  ({r['note']})" if r["note"] else "")
        )
    t = result["paired_test"]
    p = "n/a" if t["p_value"] is None else f"{t['p_value']:.4f}"
    echo(
        f"paired Wilcoxon signed-rank, full stack - tuned AS, per-split {t['metric']}: "
        f"n={t['n']}, p={p}" + (f" ({t['note']})" if t["note"] else "")
    )
    t = result.get("paired_test_deep")
    if t is not None and t["n"]:
        p = "n/a" if t["p_value"] is None else f"{t['p_value']:.4f}"
        echo(
            f"paired Wilcoxon signed-rank, deep full stack - full stack, per-split "
            f"{t['metric']}: n={t['n']}, p={p}" + (f" ({t['note']})" if t["note"] else "")
        )
    if result.get("direction"):
        echo(
            "direction of the mid over the label horizon, out of sample (test-window "
            "sequences; P(up) > 0.5 = up):"
        )
        echo(f"{'model':<16} {'split':>5} {'n':>6} {'accuracy':>9} {'macro-F1':>9} {'AUC':>7}")
        for r in result["direction"]:
            echo(
                f"{r['model']:<16} {r['split']!s:>5} {r['n']:>6} "
                f"{_fmt(_finite(r['accuracy']), '.3f'):>9} "
                f"{_fmt(_finite(r['macro_f1']), '.3f'):>9} {_fmt(_finite(r['auc']), '.3f'):>7}"
            )
    echo(f"Sharpe basis: {result['meta']['sharpe_basis']}")


def write_outputs(result: dict[str, Any], out: Path) -> list[Path]:
    """evaluation.csv (one row per strategy and split, then "all"), evaluation.json, and the
    plots pnl_to_map.png (per strategy and split) and markouts.png (overall, 1/5/30 s)."""
    out.mkdir(parents=True, exist_ok=True)
    cols = [
        "strategy",
        "label",
        "split",
        "available",
        "note",
        *FIGURES,
        "volume_quote",
        "fees",
        "duration_s",
    ]
    csv_path = out / "evaluation.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(result["rows"] + result["overall"])
    if result.get("direction"):
        d_path = out / "direction.csv"
        with open(d_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(
                fh,
                fieldnames=["model", "split", "n", "accuracy", "macro_f1", "auc"],
                extrasaction="ignore",
            )
            w.writeheader()
            w.writerows(result["direction"])
    js = out / "evaluation.json"
    js.write_text(json.dumps(result, indent=2, default=_json_default) + "\n", encoding="utf-8")
    extra = [out / "direction.csv"] if result.get("direction") else []
    return [csv_path, *extra, js, *_plots(result, out)]


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"not JSON: {type(v)}")


def _plots(result: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["label"] for r in result["overall"]]
    keys = [r["strategy"] for r in result["overall"]]
    splits = [s["split"] for s in result["splits"]]
    paths = []
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(1, len(splits))
    for j, s in enumerate(splits):
        vals = [
            next(
                (r["pnl_to_map"] for r in result["rows"] if r["strategy"] == k and r["split"] == s),
                None,
            )
            for k in keys
        ]
        ax.bar(
            np.arange(len(keys)) + j * width,
            [v if v is not None else 0.0 for v in vals],
            width,
            label=f"split {s}",
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(keys)) + width * (len(splits) - 1) / 2)
    ax.set_xticklabels([lb.split(" (")[0] for lb in labels], rotation=20, ha="right")
    ax.set_ylabel("PnL / mean |position| (quote per base unit)")
    ax.set_title("Out of sample, per split (n/a drawn as 0)")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "pnl_to_map.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    horizons = ("markout_1s", "markout_5s", "markout_30s")
    width = 0.8 / len(horizons)
    for j, h in enumerate(horizons):
        vals = [r[h] if r[h] is not None else 0.0 for r in result["overall"]]
        ax.bar(np.arange(len(keys)) + j * width, vals, width, label=h.split("_")[1])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(keys)) + width)
    ax.set_xticklabels([lb.split(" (")[0] for lb in labels], rotation=20, ha="right")
    ax.set_ylabel("mean markout (ticks, + = in our favour)")
    ax.set_title("Fill markouts over every split")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "markouts.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def run_command(args: Any, config_path: str | None) -> int:
    """`mmd evaluate` from parsed arguments (ConfigError propagates: exit 2)."""
    from mmd.config import load_config
    from mmd.learn.cli import parse_sets

    deep_sets = [x.removeprefix("deep.") for x in args.set if x.startswith("deep.")]
    lp, tp, config_sets = parse_sets([x for x in args.set if not x.startswith("deep.")])
    dp = None
    if deep_sets:
        from mmd.learn.deep_cli import parse_deep_sets

        dp, rest = parse_deep_sets(deep_sets)
        if rest:
            raise ConfigError(f"--set deep.{rest[0]}: not a deep-model key")
    cfg = load_config(config_path, sets=config_sets)
    opts = EvalOptions(
        splits=args.splits,
        purge_s=args.purge,
        trials=args.trials,
        batch=args.batch,
        seed=args.seed,
        workers=args.workers,
        objective=args.objective,
        test_metric=args.test_metric,
        space=args.space,
    )
    run_evaluate(
        cfg,
        args.data,
        args.models,
        args.out,
        lp,
        tp,
        opts,
        progress=not args.no_progress and sys.stderr.isatty(),
        dp=dp,
    )
    sys.stdout.flush()
    return 0

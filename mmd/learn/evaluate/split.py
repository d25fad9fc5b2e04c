"""One walk-forward split of `mmd evaluate`: tune the AS on its training folds, train the
models on its training part, score them, and backtest every strategy on its test fold.

Shell: writes the split's model directories; runs the product's tuner, trainers and backtest.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmd.config import AppConfig
from mmd.errors import ConfigError
from mmd.learn.evaluate.spec import DEEP_MODELS, EvalOptions, StrategySpec, table_row
from mmd.learn.evaluate.stats import Window, aggregate, finite, slice_series

if TYPE_CHECKING:
    from mmd.learn.dataset import LabelParams
    from mmd.learn.deep_data import DeepParams
    from mmd.learn.train_data import Recording, TrainParams


@dataclasses.dataclass(slots=True)
class Split:
    """One split: its training folds and test windows, its models directory, and what was
    learnt and measured on it (filled in as the split is worked through)."""

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
        """Where the training part ends (the last training window's end)."""
        return self.train_folds[-1][-1][1]


def tune_split(
    sp: Split,
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


def train_split(
    sp: Split,
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


def detector_metrics(sp: Split, recs: list[Recording], lp: LabelParams) -> None:
    """AUC and log-loss of the split's detector on the adverse samples of its test windows."""
    from mmd.learn import train as tr
    from mmd.learn.dataset import adverse_dataset
    from mmd.learn.model_loader import load_detector

    if "adverse" not in sp.models:
        return
    det = load_detector(sp.dir / "adverse")
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
        "auc": finite(auc),
        "logloss": finite(ll),
        "base_rate": float(np.mean(y)),
    }


def direction_metrics(sp: Split, recs: list[Recording], dp: DeepParams) -> None:
    """Direction figures of the split's deep models and logistic baselines on the sequences
    of its test windows (mmd.learn.deep_direction.direction_report), fitted on its training part."""
    from mmd.learn.deep_direction import direction_report

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


def _variant_dir(sp: Split, models: tuple[str, ...]) -> Path:
    """A models directory holding exactly `models` (copies of the split's files; a deep
    model goes where `--strategy deep` reads it, `lstm/`)."""
    d = sp.dir / "variants" / "+".join(models)
    for name in models:
        dest = "lstm" if name in DEEP_MODELS else name
        if not (d / dest).exists() and (sp.dir / name).exists():
            shutil.copytree(sp.dir / name, d / dest)
    return d


def _strategy_config(spec: StrategySpec, sp: Split, table: dict[str, Any]) -> AppConfig:
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


def _missing_models(spec: StrategySpec, sp: Split) -> str:
    missing = [m for m in spec.models if m not in sp.models]
    if not missing:
        return ""
    return "; ".join(f"{m} not trained: {sp.model_errors.get(m, 'unknown')}" for m in missing)


def _run_strategy(
    spec: StrategySpec, sp: Split, table: dict[str, Any], recs: list[tuple[str, int, int]]
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


def split_row(
    spec: StrategySpec,
    sp: Split,
    table: dict[str, Any],
    spans: list[tuple[str, int, int]],
    windows: dict[str, Any],
) -> dict[str, Any]:
    """The strategy's row of the split: backtested on the test windows (its per-window
    figures go into windows), or unavailable with the reason."""
    if spec.unavailable:
        return table_row(spec, sp.number, None, spec.unavailable)
    missing = _missing_models(spec, sp)
    if missing:
        return table_row(spec, sp.number, None, missing)
    figures, per_window = _run_strategy(spec, sp, table, spans)
    windows[f"{spec.key}/{sp.number}"] = per_window
    if "adverse" in spec.models:
        figures["detector_auc"] = sp.detector.get("auc")
        figures["detector_logloss"] = sp.detector.get("logloss")
    note = "" if figures.get("fills") else "no fills"
    return table_row(spec, sp.number, figures, note)

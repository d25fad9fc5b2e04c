"""`mmd evaluate DATA... --models DIR`: the walk-forward, out-of-sample comparison of the
strategies, from plain AS to the full learned stack (the command: options, the loop over the
splits, the result it assembles).

Shell: reads recordings, writes model directories, evaluation.csv/json and plots. The pieces it
runs are the product's own: the walk-forward folds of `mmd.tune.splits`, a seeded Optuna search
through `mmd.tune.search` / `mmd.tune.engine.run_folds` (the tuned AS), the trainers of
`mmd.learn.cli` and `mmd.learn.deep_cli` (models; the deep models' direction figures by
`deep_direction.direction_report`), and `mmd.backtest_run.backtest` with a time window (every
figure). Whatever is reported for a split was never seen by anything chosen for it: tuning,
model fitting and model selection see only the folds before the split's test fold.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import platform
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from mmd.config import AppConfig
from mmd.errors import ConfigError
from mmd.learn.evaluate.output import echo_table, write_outputs
from mmd.learn.evaluate.spec import (
    TEST_METRICS,
    EvalOptions,
    StrategySpec,
    deep_available,
    rl_trainer,
    strategy_specs,
    table_row,
)
from mmd.learn.evaluate.split import (
    Split,
    detector_metrics,
    direction_metrics,
    split_row,
    train_split,
    tune_split,
)
from mmd.learn.evaluate.stats import direction_rows, eval_splits, overall, paired_test

if TYPE_CHECKING:
    from mmd.learn.dataset import LabelParams
    from mmd.learn.deep_data import DeepParams
    from mmd.learn.train_data import TrainParams


@contextlib.contextmanager
def _executor(workers: int) -> Iterator[Executor]:
    if workers <= 1:
        with ThreadPoolExecutor(max_workers=1) as ex:
            yield ex
        return
    from mmd.tune.executors import open_executor

    with open_executor(workers, None) as (ex, _):
        yield ex


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
    from mmd.learn.train_data import read_recordings
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
        Split(k, tr_f, te, root / f"split_{k}")
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
                tune_split(sp, table, space, spans, opts, ex, lambda: bar.update(1))
                bar.set_postfix_str(f"split {sp.number}: training")
                train_split(sp, recs, lp, tp, rl, quiet.append, dp)
                detector_metrics(sp, recs, lp)
                if dp is not None:
                    direction_metrics(sp, recs, dp)
                bar.update(1)
                for spec in specs:
                    bar.set_postfix_str(f"split {sp.number}: {spec.key}")
                    rows.append(split_row(spec, sp, table, spans, windows))
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
    splits: list[Split],
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
        overall_rows.append(table_row(spec, "all", overall(ran) if ran else None, note))
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


def run_command(args: Any, config_path: str | None) -> int:
    """`mmd evaluate` from parsed arguments (ConfigError propagates: exit 2)."""
    from mmd.config import load_config
    from mmd.learn.train_data import parse_sets

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

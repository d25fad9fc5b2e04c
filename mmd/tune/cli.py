"""`mmd tune`: the command. Reads the recordings' spans and the space file, runs the search on
an executor, scores the top trials out of sample, writes the output directory.

Shell: files, executors, progress bar. The search itself is mmd.tune.search, a trial's work
mmd.tune.engine.run_folds.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from mmd.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `mmd tune` options (after -c/--set, which every config command has)."""
    p.add_argument("data", nargs="+", help="recordings (files or directories)")
    p.add_argument(
        "--strategy",
        choices=["as", "glft"],
        default=None,
        help="quote model (default: [strategy] model)",
    )
    p.add_argument("--trials", type=int, default=20, help="number of trials (default 20)")
    p.add_argument("--sampler", choices=["tpe", "cmaes", "random", "grid"], default="tpe")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument(
        "--objective",
        choices=["pnl_to_map", "sharpe", "pnl_dd"],
        default="pnl_to_map",
        help="maximised score (default pnl_to_map)",
    )
    p.add_argument(
        "--dd-lambda",
        type=float,
        default=1.0,
        help="pnl_dd = pnl - DD_LAMBDA * max_drawdown (default 1)",
    )
    p.add_argument(
        "--space",
        default=None,
        metavar="FILE.toml",
        help='search space ([space] "section.key" = {low=, high=, log=}); '
        "default: the built-in space of the strategy",
    )
    p.add_argument(
        "--splits",
        type=int,
        default=2,
        help="K training folds; K+1 folds by time, the last one out of sample",
    )
    p.add_argument(
        "--purge",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="gap dropped at the start of every fold after the first (default 5)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=8,
        help="trials asked and evaluated together (default 8); the result depends "
        "on it, not on the number of workers",
    )
    p.add_argument(
        "--top", type=int, default=5, help="best trials scored out of sample (default 5)"
    )
    p.add_argument(
        "--grid-points",
        type=int,
        default=3,
        help="values per numeric parameter with --sampler grid (default 3)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="local worker processes (default: CPU count)"
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run trials on this Dask scheduler's workers instead",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def recording_spans(paths: list[str]) -> list[tuple[str, int, int]]:
    """(absolute path, first receive stamp, last + 1) of every recording under paths."""
    from mmd.feeds.recording import expand_paths, read_recording, recording_meta

    files = expand_paths(paths)
    if not files:
        raise ConfigError("tune: no recordings found in " + ", ".join(paths))
    out = []
    for f in files:
        if not f.exists():
            raise ConfigError(f"tune: {f} does not exist")
        if recording_meta(f) is None:
            raise ConfigError(
                f"tune: {f}: not a recording (its first line is not the "
                "instruments-info answer of one symbol)"
            )
        first = last = None
        for ts, _ in read_recording(f):
            first = ts if first is None else first
            last = ts
        if first is None or last is None:
            raise ConfigError(f"tune: {f}: empty recording")
        out.append((str(f.resolve()), int(first), int(last) + 1))
    return out


def _load_space(args: argparse.Namespace, strategy: str) -> list[Any]:
    from mmd.tune.space import default_space, parse_space

    if args.space is None:
        return default_space(strategy)
    try:
        table = tomllib.loads(Path(args.space).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--space {args.space}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--space {args.space}: invalid TOML ({exc})") from None
    return parse_space(table, args.space)


def run_tune(cfg: Any, args: argparse.Namespace) -> int:
    """The command; returns the exit code (ConfigError propagates: exit 2)."""
    import os

    import msgspec

    from mmd.config import config_from_mapping, dump_config
    from mmd.tune.engine import run_folds
    from mmd.tune.executors import open_executor, run_batch
    from mmd.tune.objective import NO_FILL_SCORE
    from mmd.tune.output import (
        importance,
        write_best_toml,
        write_json,
        write_plots,
        write_results,
    )
    from mmd.tune.search import best_results, grid_for, make_study, run_search
    from mmd.tune.space import check_space, with_params
    from mmd.tune.splits import walk_forward

    for name in ("trials", "splits", "batch", "top", "grid_points"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    if args.purge < 0:
        raise ConfigError("--purge must be >= 0")
    strategy = args.strategy or cfg.strategy.model
    cfg = msgspec.structs.replace(
        cfg, strategy=msgspec.structs.replace(cfg.strategy, model=strategy)
    )
    table = tomllib.loads(dump_config(cfg))
    space = _load_space(args, strategy)
    check_space(space, table, config_from_mapping)
    recs = recording_spans(args.data)
    try:
        splits = walk_forward([(a, b) for _, a, b in recs], args.splits, round(args.purge * 1e9))
    except ValueError as exc:
        raise ConfigError(f"tune: {exc}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workers = args.workers or os.cpu_count() or 1
    grid = grid_for(args.sampler, space, args.grid_points, args.seed)
    n_trials = min(args.trials, len(grid)) if grid is not None else args.trials

    def task(number: int, params: dict[str, Any], folds: list[Any]) -> dict[str, Any]:
        return {
            "number": number,
            "config": with_params(table, params),
            "folds": folds,
            "recordings": [list(r) for r in recs],
            "objective": args.objective,
            "dd_lambda": args.dd_lambda,
        }

    from tqdm import tqdm

    study = make_study(args.sampler, args.seed)
    t0 = time.perf_counter()
    with open_executor(workers, args.scheduler) as (ex, where):
        sys.stderr.write(
            f"tune {strategy}: {n_trials} trials ({args.sampler}, seed {args.seed}, batch "
            f"{args.batch}) on {where}; objective {args.objective}; {len(recs)} recording(s), "
            f"{args.splits} training fold(s) + 1 out of sample\n"
        )
        bar = tqdm(
            total=n_trials,
            desc="tune",
            unit="trial",
            disable=args.no_progress,
            mininterval=0.5,
            file=sys.stderr,
        )
        best = [-math.inf]

        def told(r: dict[str, Any]) -> None:
            if r["score"] is not None and r["score"] > best[0]:
                best[0] = r["score"]
                bar.set_postfix(best=f"{best[0]:.4g} (#{r['number']})")

        try:
            results = run_search(
                study,
                space,
                n_trials,
                args.batch,
                lambda n, p: task(n, p, splits.train),
                lambda tasks: run_batch(ex, run_folds, tasks, lambda r: bar.update(1)),
                grid=grid,
                on_result=told,
            )
        finally:
            bar.close()
        search_s = time.perf_counter() - t0
        top = best_results(results, args.top)
        oos = run_batch(ex, run_folds, [task(r["number"], r["params"], [splits.test]) for r in top])
    oos_rows = []
    for r, o in zip(top, oos, strict=True):
        oos_rows.append(
            {
                "number": r["number"],
                "params": r["params"],
                "train_score": r["score"],
                "train_fold_scores": r["fold_scores"],
                "oos_score": o["score"],
                "oos_figures": o["figures"],
                "error": o["error"],
                "oos_summaries": [
                    {
                        k: s.get(k)
                        for k in (
                            "symbol",
                            "category",
                            "window_ns",
                            "recordings",
                            "pnl",
                            "fills",
                            "max_drawdown",
                            "pnl_to_map",
                            "sharpe",
                            "mean_abs_position",
                            "events",
                        )
                    }
                    for s in o["summaries"]
                ],
            }
        )
    meta = {
        "strategy": strategy,
        "sampler": args.sampler,
        "seed": args.seed,
        "batch": args.batch,
        "trials": n_trials,
        "objective": args.objective,
        "dd_lambda": args.dd_lambda,
        "no_fill_score": NO_FILL_SCORE,
        "executor": where,
        "search_s": search_s,
        "space": [vars(p) | {"choices": list(p.choices)} for p in space],
        "recordings": [{"path": p, "first_ns": a, "end_ns": b} for p, a, b in recs],
        "train_windows": splits.train,
        "test_windows": splits.test,
    }
    write_results(out, results, meta)
    write_json(
        out / "oos.json",
        {
            **{
                k: meta[k]
                for k in ("strategy", "objective", "dd_lambda", "no_fill_score", "test_windows")
            },
            "best": oos_rows[0] if oos_rows else None,
            "top": oos_rows,
        },
    )
    if top:
        b = top[0]
        best_cfg = config_from_mapping(with_params(table, b["params"]))
        header = [
            f"mmd tune: best of {n_trials} trials (#{b['number']}), {args.objective} "
            f"training {b['score']:.6g}, out of sample {oos_rows[0]['oos_score']}",
            f"out-of-sample windows (receive ns): {splits.test}",
        ]
        write_best_toml(out / "best.toml", dump_config(best_cfg), header)
    imp, method = importance(study, results)
    write_json(out / "importance.json", {"method": method, "importance": imp})
    write_plots(out, results, imp, method, oos_rows, args.objective)
    failed = sum(1 for r in results if r["score"] is None)
    _say(
        f"{len(results)} trials in {search_s:.1f} s ({len(results) / search_s:.2f} trials/s)"
        f"{f', {failed} failed (see results.csv)' if failed else ''}"
    )
    _say(f"{'trial':>6} {'train':>12} {'out of sample':>14}  params")
    for row in oos_rows:
        ps = ", ".join(
            f"{k.rsplit('.', 1)[-1]}={v:.4g}"
            if isinstance(v, float)
            else f"{k.rsplit('.', 1)[-1]}={v}"
            for k, v in row["params"].items()
        )
        oos_s = "failed" if row["oos_score"] is None else f"{row['oos_score']:.6g}"
        _say(f"{row['number']:>6} {row['train_score']:>12.6g} {oos_s:>14}  {ps}")
    _say(f"written to {out}")
    return 0

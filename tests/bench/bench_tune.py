"""`mmd tune` throughput: trials/s on a local process pool of 1 and of 2 workers, and the
speed-up (trials/s with 2 / with 1), measured in one run.

The same search both times (random sampler, seed 0, batch 4, the default AS space, walk-forward
with the given splits) through mmd.tune's own search loop and executor. Each pool is warmed
first (one trial per worker: imports and the numba cache load, not timed); the figure is
trials / wall seconds of the search. Quick: the 42 s Bybit BTCUSDT linear recording, 8 trials,
1 training fold. Full: the ~8 min Binance BTCUSDT 2024-07-18/19 recording, 16 trials, 2 folds.
Recordings are converted into a temp dir first (not timed). Without the shared data the row
reports `skipped`. A speed-up below 2 is the pool's overhead plus whatever else the machine runs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "market"


def _recording(tmp: Path, quick: bool) -> Path | None:
    from mmd.feeds.convert.binance_usdm import convert_binance_usdm
    from mmd.feeds.convert.cryptofeed import convert_cryptofeed

    if quick:
        cf = DATA / "bybit_v5_linear_spot_2026-08-09_cryptofeed" / "BYBIT.jsonl"
        if not cf.exists():
            return None
        paths = convert_cryptofeed(cf, tmp, progress=False)
        return next(p for p in paths if "linear_BTCUSDT" in p.name)
    ins = sorted((DATA / "binance_usdm_btcusdt_2024-07-18_19").glob("*.gz"))
    if not ins:
        return None
    (path,) = convert_binance_usdm(ins, tmp, progress=False)
    return path


def _trials_per_s(rec: Path, workers: int, n_trials: int, splits: int) -> float:
    import tomllib

    from mmd.config import dump_config, load_config
    from mmd.tune.cli import recording_spans
    from mmd.tune.engine import run_folds
    from mmd.tune.executors import open_executor, run_batch
    from mmd.tune.search import make_study, run_search
    from mmd.tune.space import default_space, with_params
    from mmd.tune.splits import walk_forward

    table = tomllib.loads(dump_config(load_config(None, environ={})))
    recs = recording_spans([str(rec)])
    folds = walk_forward([(a, b) for _, a, b in recs], splits, 1_000_000_000).train
    space = default_space("as")

    def task(n: int, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "number": n,
            "config": with_params(table, params),
            "folds": folds,
            "recordings": [list(r) for r in recs],
            "objective": "pnl_to_map",
            "dd_lambda": 1.0,
        }

    with open_executor(workers, None) as (ex, _):
        run_batch(ex, run_folds, [task(-1 - i, {}) for i in range(workers)])  # warm, not timed
        t0 = time.perf_counter()
        results = run_search(
            make_study("random", 0),
            space,
            n_trials,
            4,
            task,
            lambda tasks: run_batch(ex, run_folds, tasks),
        )
        elapsed = time.perf_counter() - t0
    failed = [r["error"] for r in results if r["error"]]
    if failed:
        raise RuntimeError(f"{len(failed)} trial(s) failed: {failed[0]}")
    return n_trials / elapsed


def run(quick: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        rec = _recording(Path(tmp), quick)
        if rec is None:
            return [
                {
                    "name": "tune_throughput",
                    "skipped": 1,
                    "reason": "../shared/data/market not present",
                }
            ]
        n_trials, splits = (8, 1) if quick else (16, 2)
        one = _trials_per_s(rec, 1, n_trials, splits)
        two = _trials_per_s(rec, 2, n_trials, splits)
    return [
        {
            "name": "tune_throughput",
            "trials": n_trials,
            "trials_per_s_1_worker": one,
            "trials_per_s_2_workers": two,
            "speedup": two / one,
        }
    ]

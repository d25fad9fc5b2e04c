"""What one trial runs on a worker: the backtest over time windows, scored.

Shell (reads recordings). The only contact with the backtester is `backtest_window`
(config table + recordings + [start_ns, end_ns) -> one summary per symbol); replacing the
backtest engine means replacing that function, nothing else in mmd.tune. Every function here
is a top-level function of plain data so a process pool or a Dask worker can run it.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from mmd.tune.objective import fold_score, key_figures


def backtest_window(
    config: dict[str, Any], recordings: list[str], start_ns: int, end_ns: int
) -> list[dict[str, Any]]:
    """`mmd backtest -c CONFIG --start-ns S --end-ns E RECORDINGS`, in process: one summary
    per symbol (mmd.sim.report.summarize keys plus symbol, recordings, window_ns)."""
    from mmd.backtest_run import backtest
    from mmd.config import config_from_mapping

    cfg = config_from_mapping(config)
    return backtest(
        cfg,
        recordings,
        strategy=cfg.strategy.model,
        report_dir=None,
        progress=False,
        start_ns=start_ns,
        end_ns=end_ns,
    )


def overlapping(recordings: list[tuple[str, int, int]], start_ns: int, end_ns: int) -> list[str]:
    """The recordings (path, first_ns, last_ns + 1) with frames in [start_ns, end_ns)."""
    return [p for p, a, b in recordings if a < end_ns and start_ns < b]


def run_folds(task: dict[str, Any]) -> dict[str, Any]:
    """Score one config on a list of folds.

    task keys: number, config (table), folds (list of lists of [start_ns, end_ns]),
    recordings (list of [path, first_ns, end_ns]), objective, dd_lambda.
    Returns number, score (mean of the fold scores), fold_scores, figures (key figures over
    every window and symbol), summaries (per window, without their config table), duration_s,
    error (the traceback text of a failed trial, else None; score is then None).
    """
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "number": task["number"],
        "score": None,
        "fold_scores": [],
        "figures": {},
        "summaries": [],
        "error": None,
    }
    try:
        every: list[dict[str, Any]] = []
        for fold in task["folds"]:
            fold_sums: list[dict[str, Any]] = []
            for start, end in fold:
                recs = overlapping([tuple(r) for r in task["recordings"]], start, end)
                if recs:
                    fold_sums += backtest_window(task["config"], recs, start, end)
            out["fold_scores"].append(fold_score(fold_sums, task["objective"], task["dd_lambda"]))
            every += fold_sums
        out["score"] = sum(out["fold_scores"]) / len(out["fold_scores"])
        out["figures"] = key_figures(every)
        out["summaries"] = [{k: v for k, v in s.items() if k != "config"} for s in every]
    except Exception:  # a failed trial is reported, the search goes on
        out["error"] = traceback.format_exc(limit=6)
    out["duration_s"] = time.perf_counter() - t0
    return out

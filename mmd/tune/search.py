"""Seeded Optuna search in fixed-size batches, evaluated by any batch runner.

Core: no executor, no files. Determinism: each round asks `batch` trials (parameters drawn
from the sampler's seeded state, which only the results told so far have changed), hands them
to run_batch together, then tells the results in trial-number order. Nothing depends on which
worker ran a trial or when it finished, so a given (seed, batch, trials, space, data) gives the
same trials, scores and best trial on a 1-worker pool, a 2-worker pool or a Dask cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmd.tune.space import Param, grid_params

SAMPLERS = ("tpe", "cmaes", "random", "grid")


def make_study(sampler: str, seed: int) -> Any:
    """A maximising in-memory study with the named seeded sampler ("grid" draws randomly:
    its grid points are enqueued by run_search)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sampler == "tpe":
        s: Any = optuna.samplers.TPESampler(seed=seed)
    elif sampler == "cmaes":
        # categorical parameters fall back to CMA-ES's independent (random, seeded) sampler
        s = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    elif sampler in ("random", "grid"):
        s = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise ValueError(f"sampler {sampler!r}: one of {', '.join(SAMPLERS)}")
    return optuna.create_study(direction="maximize", sampler=s)


def run_search(
    study: Any,
    space: list[Param],
    n_trials: int,
    batch: int,
    make_task: Callable[[int, dict[str, Any]], dict[str, Any]],
    run_batch: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    *,
    grid: list[dict[str, Any]] | None = None,
    on_result: Callable[[dict[str, Any]], None] = lambda r: None,
) -> list[dict[str, Any]]:
    """Run n_trials trials (fewer when a grid runs out) in rounds of `batch`.

    Args:
        study: from make_study.
        space: the parameters every trial suggests.
        make_task: (trial number, params) -> the task run_batch evaluates.
        run_batch: tasks -> results in the same order, each with "score" (float, or None for a
            failed trial, told as FAIL).
        grid: the grid sampler's points (grid_params), consumed in order.
        on_result: called with each result after it is told, in trial-number order.

    Returns:
        The results in trial-number order, each with "params" added.
    """
    from optuna.trial import TrialState

    if batch < 1:
        raise ValueError("batch must be >= 1")
    if grid is not None:
        n_trials = min(n_trials, len(grid))
    results: list[dict[str, Any]] = []
    while len(results) < n_trials:
        asked: list[tuple[Any, dict[str, Any]]] = []
        for _ in range(min(batch, n_trials - len(results))):
            if grid is not None:
                study.enqueue_trial(grid[len(results) + len(asked)])
            trial = study.ask()
            asked.append((trial, {p.name: p.suggest(trial) for p in space}))
        outs = run_batch([make_task(t.number, params) for t, params in asked])
        for (trial, params), res in zip(asked, outs, strict=True):
            if res.get("score") is None:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, res["score"])
            res["params"] = params
            results.append(res)
            on_result(res)
    return results


def grid_for(
    sampler: str, space: list[Param], points: int, seed: int
) -> list[dict[str, Any]] | None:
    """The grid points when sampler is "grid", else None."""
    return grid_params(space, points, seed) if sampler == "grid" else None


def best_results(results: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    """The `top` scored results, best first (ties: the lower trial number first)."""
    scored = [r for r in results if r.get("score") is not None]
    return sorted(scored, key=lambda r: (-r["score"], r["number"]))[:top]

"""Where trials run: a local process pool, or a Dask cluster through its executor interface.

Shell. Both are concurrent.futures Executors; run_batch submits a batch, reports each result as
it completes (progress) and returns them in submission order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from typing import Any

from mmd.errors import ConfigError


def _warm() -> None:
    """Pool initializer: import the backtest stack once per worker process."""
    import mmd.backtest_run
    import mmd.tune.engine  # noqa: F401


@contextlib.contextmanager
def open_executor(workers: int, scheduler: str | None) -> Iterator[tuple[Executor, str]]:
    """(executor, description). With scheduler (tcp://HOST:PORT) a Dask client's executor,
    else a ProcessPoolExecutor of `workers` spawned processes."""
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout="10s")  # type: ignore[no-untyped-call]  # unannotated in distributed
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            n = len(client.scheduler_info().get("workers", {}))
            # pure=False: two trials with the same parameters are two tasks, not one cached key
            ex = client.get_executor(pure=False)  # type: ignore[no-untyped-call]  # as above
            yield ex, f"dask {scheduler} ({n} workers)"
        finally:
            client.close()  # type: ignore[no-untyped-call]  # as above
        return
    if workers < 1:
        raise ConfigError("--workers must be >= 1")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_warm) as ex:
        yield ex, f"local pool ({workers} worker{'s' if workers > 1 else ''})"


def run_batch(
    executor: Executor,
    fn: Callable[[dict[str, Any]], dict[str, Any]],
    tasks: list[dict[str, Any]],
    on_done: Callable[[dict[str, Any]], None] = lambda r: None,
) -> list[dict[str, Any]]:
    """fn over tasks on executor; on_done(result) as each completes; results in task order."""
    futures = [executor.submit(fn, t) for t in tasks]
    index = {f: i for i, f in enumerate(futures)}
    out: list[dict[str, Any] | None] = [None] * len(tasks)
    for f in as_completed(futures):
        res = f.result()
        out[index[f]] = res
        on_done(res)
    return [r for r in out if r is not None]

"""Drives the live pipeline from recordings with a ManualClock, deterministically.

Files of the configured category and symbols are merged by receive time; each frame sets the
manual clock to its ts_recv_ns and goes through the same frame handler as live frames.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterator
from pathlib import Path

from mmd.clock import ManualClock
from mmd.feeds.recording import expand_paths, read_recording, recording_meta


def select_recordings(paths: list[str], category: str, symbols: list[str]) -> list[Path]:
    """The recordings among paths for this category and these symbols.

    Category and symbol come from each file's first line (recording_meta), so any file name
    works; a file that tells neither is kept (its frames carry topics, and frames of other
    symbols are ignored downstream).
    """
    out = []
    for p in expand_paths(paths):
        meta = recording_meta(p)
        if meta is None or (meta.category == category and meta.symbol in symbols):
            out.append(p)
    return out


def merged_frames(files: list[Path]) -> Iterator[tuple[int, bytes]]:
    """(ts_recv_ns, frame) from every file, merged by receive time (stable per file)."""
    return heapq.merge(*(read_recording(f) for f in files), key=lambda x: x[0])


async def run_replay(
    files: list[Path],
    clock: ManualClock,
    on_frame: Callable[[bytes, int], object],
    *,
    speed: float = 0.0,
    sleep: Callable[[float], object] = asyncio.sleep,
    yield_every: int = 256,
    catching_up: Callable[[], bool] = lambda: False,
) -> int:
    """Feed every frame to on_frame; returns the number of frames.

    Args:
        files: recordings (see select_recordings).
        clock: set to each frame's ts_recv_ns before the frame is handled.
        on_frame: the frame handler (the same one live frames go through).
        speed: 0 = as fast as possible; otherwise recorded pace times speed.
        sleep: awaited to pace the replay (and to let the event loop serve HTTP).
        yield_every: at speed 0, give the event loop a turn every this many frames.
        catching_up: while it returns True, frames go as fast as possible whatever the speed
            (a resumed replay re-runs what it had already journaled); the pace then restarts
            from the frame where catching up ended.
    """
    n = 0
    first_ts: int | None = None
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for ts, frame in merged_frames(files):
        if first_ts is None or catching_up():
            first_ts = ts
            t0 = loop.time()
        if speed > 0:
            due = t0 + (ts - first_ts) / 1e9 / speed
            delay = due - loop.time()
            if delay > 0:
                await sleep(delay)  # type: ignore[misc]
        elif n % yield_every == 0:
            await sleep(0)  # type: ignore[misc]
        clock.set_ns(ts)
        on_frame(frame, ts)
        n += 1
    return n

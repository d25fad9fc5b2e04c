"""Event cache: decode throughput, cold convert, warm (memory-mapped) load, compiled book walk.

Figures per recording set: `rows` (level rows + trades + klines + tickers), `decode_rows_per_s`
and `decode_frames_per_s` (codec + instrument conversions into columns), `cold_convert_s`
(`load_events` on an empty cache: sha256, decode, write .npy files, map them), `warm_load_s`
(`load_events` again: sha256 of the recordings plus mapping the cached arrays, min of several),
`open_s` (mapping alone), `cold_over_warm` (how many times faster a later run starts), and
`walk_rows_per_s`: level rows per second of the compiled reference loop (`replay_book_tops`,
200-level books, top 20 recorded after each frame) over the mapped arrays, compile excluded.
Recordings are converted from ../shared/data into a temp dir first (not timed). `--quick`: the
44 s Bybit capture (6 symbols) only; otherwise the Binance BTCUSDT/ETHUSDT 2024 and BTCUSDT 2023
recordings too. Without the shared data the benchmark reports `skipped`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmd.feeds.convert.binance_usdm import convert_binance_usdm
from mmd.feeds.convert.cryptofeed import convert_cryptofeed
from mmd.feeds.convert.event_cache import load_events, open_events
from mmd.feeds.convert.events import EventArrays
from mmd.kernels.book_sync import SYNC_LAST_SEQ, SYNC_LAST_U, SYNC_WIDTH

# test-side helpers in tests/ (run.py loads benches by path; tests/ is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from book_oracle import replay_book_tops

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "market"
CAPACITY = 200
N_TOP = 20


def _walk(ev: EventArrays) -> float:
    """Seconds of one compiled walk over every book frame of ev."""
    n_sym, n_fr = len(ev.symbols), len(ev.book_sym)
    books_px = np.zeros((n_sym, 2, CAPACITY), np.int64)
    books_qty = np.zeros((n_sym, 2, CAPACITY), np.int64)
    states = np.zeros((n_sym, SYNC_WIDTH), np.int64)
    states[:, SYNC_LAST_U] = states[:, SYNC_LAST_SEQ] = -1
    top = np.zeros((n_fr, 4, N_TOP), np.int64)
    state = np.zeros((n_fr, 4), np.int64)
    stream, frames = ev.stream_table(), ev.book_table()
    px = np.ascontiguousarray(ev.level_px_ticks)
    qty = np.ascontiguousarray(ev.level_qty_lots)
    flags = np.ascontiguousarray(ev.inst_flags)
    t0 = time.perf_counter()
    replay_book_tops(books_px, books_qty, states, stream, frames, px, qty, flags, top, state)
    return time.perf_counter() - t0


def _measure(name: str, files: list[Path], cache: Path, reps: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    cold = load_events(files, cache)
    cold_s = time.perf_counter() - t0
    assert not cold.cache_hit
    warm_s = open_s = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        warm = load_events(files, cache)
        warm_s = min(warm_s, time.perf_counter() - t0)
        assert warm.cache_hit
        assert warm.path is not None
        t0 = time.perf_counter()
        open_events(warm.path)
        open_s = min(open_s, time.perf_counter() - t0)
    _walk(warm)  # compile or load the cached kernels: not timed
    walk_s = min(_walk(warm) for _ in range(reps))
    decode_s = float(cold.meta["decode_s"])
    return {
        "name": f"events.{name}",
        "frames": int(cold.meta["frames"]),
        "rows": cold.rows,
        "level_rows": len(cold.level_px_ticks),
        "decode_rows_per_s": round(cold.rows / decode_s),
        "decode_frames_per_s": round(int(cold.meta["frames"]) / decode_s),
        "cold_convert_s": round(cold_s, 4),
        "warm_load_s": round(warm_s, 5),
        "open_s": round(open_s, 5),
        "cold_over_warm": round(cold_s / warm_s, 1),
        "walk_rows_per_s": round(len(cold.level_px_ticks) / walk_s),
        "walk_book_frames_per_s": round(len(cold.book_sym) / walk_s),
    }


def run(quick: bool) -> list[dict[str, Any]]:
    cf = DATA / "bybit_v5_linear_spot_2026-08-09_cryptofeed" / "BYBIT.jsonl"
    if not cf.exists():
        return [{"name": "events.skipped_no_data", "skipped": 1}]
    out = []
    reps = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("bybit_cryptofeed_6sym", sorted(convert_cryptofeed(cf, Path(tmp) / "cf")))]
        if not quick:
            for pair, day in (
                ("btcusdt", "2024-07-18_19"),
                ("ethusdt", "2024-07-18_19"),
                ("btcusdt", "2023-04-04_05"),
            ):
                name = f"binance_usdm_{pair}_{day[:4]}"
                d = Path(tmp) / name
                d.mkdir()
                ins = sorted((DATA / f"binance_usdm_{pair}_{day}").glob("*.gz"))
                sets.append((name, list(convert_binance_usdm(ins, d))))
        for name, files in sets:
            out.append(_measure(name, files, Path(tmp) / "cache", reps))
    return out

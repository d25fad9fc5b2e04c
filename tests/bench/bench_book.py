"""Book benchmarks: `apply_levels` on real Bybit XRPUSDT orderbook.500 deltas, replayed many times.

Figures: `ns_per_level` is wall time per delta level (one bid or ask update) with the per-call
Python overhead included, `ns_per_message` per delta frame (bids and asks), `ref_ns_per_level`
the same stream applied to a plain-Python dict book that yields a sorted view after each frame,
and `ratio = ref_ns_per_level / ns_per_level` (how many times faster the kernel is). Each figure
is the median over passes. Without the shared sample a seeded synthetic stream of the same shape
is used and the names end in `[synthetic]`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mmd.kernels.book import apply_levels
from mmd.market.book import L2Book
from mmd.model.instrument import Instrument

# test-side helpers in tests/ (run.py loads benches by path; tests/ is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[2]
XRP_SAMPLE = (
    REPO.parent
    / "shared"
    / "data"
    / "bybit_samples"
    / "nautilus_test_data"
    / "xrpusdt-ob500.data.zip"
)
XRP = Instrument(symbol="XRPUSDT", tick_size="0.0001", lot_size="1")
CAPACITY = 500

# (bid_px, bid_qty, ask_px, ask_qty) int64 arrays of one frame
Frame = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_xrp() -> list[Frame]:
    """The sample's frames in ticks/lots: a snapshot, then deltas."""
    with zipfile.ZipFile(XRP_SAMPLE) as zf:
        (name,) = zf.namelist()
        lines = zf.read(name).decode().splitlines()
    frames = []
    for line in lines:
        d = json.loads(line)["data"]
        frames.append((*XRP.levels_to_arrays(d["b"]), *XRP.levels_to_arrays(d["a"])))
    return frames


def synthetic(n_deltas: int = 49, seed: int = 1) -> list[Frame]:
    """A seeded 500-level snapshot and deltas concentrated near the top, like the sample."""
    rng = np.random.default_rng(seed)
    mid = 20_000
    bids = mid - 1 - np.arange(CAPACITY, dtype=np.int64)
    asks = mid + 1 + np.arange(CAPACITY, dtype=np.int64)
    frames = [(bids, rng.integers(1, 10_000, CAPACITY), asks, rng.integers(1, 10_000, CAPACITY))]
    for _ in range(n_deltas):
        k = int(rng.integers(2, 40))
        dist = np.unique(rng.geometric(0.05, size=k)).astype(np.int64)
        qty = np.where(rng.random(dist.size) < 0.3, 0, rng.integers(1, 10_000, dist.size))
        frames.append((mid - dist, qty, mid + dist, qty[::-1].copy()))
    return frames


def time_kernel(frames: list[Frame], passes: int) -> tuple[list[int], list[int]]:
    """Per pass: ns to apply all deltas with apply_levels, and ns to apply the snapshot."""
    bpx, bqty, apx, aqty = (np.zeros(CAPACITY, np.int64) for _ in range(4))
    snap, deltas = frames[0], frames[1:]
    delta_ns, snap_ns = [], []
    for _ in range(passes + 1):  # the first pass compiles (or loads the cache) and is not kept
        t0 = time.perf_counter_ns()
        nb = apply_levels(bpx, bqty, 0, snap[0], snap[1], True)
        na = apply_levels(apx, aqty, 0, snap[2], snap[3], False)
        t1 = time.perf_counter_ns()
        for d_bpx, d_bqty, d_apx, d_aqty in deltas:
            nb = apply_levels(bpx, bqty, nb, d_bpx, d_bqty, True)
            na = apply_levels(apx, aqty, na, d_apx, d_aqty, False)
        t2 = time.perf_counter_ns()
        if nb < 0 or na < 0:
            raise RuntimeError(f"apply_levels failed with codes {nb}, {na}")
        snap_ns.append(t1 - t0)
        delta_ns.append(t2 - t1)
    return delta_ns[1:], snap_ns[1:]


def time_l2book(frames: list[Frame], passes: int) -> list[int]:
    """Per pass: ns to apply all deltas through L2Book.apply_delta (glue included)."""
    book = L2Book(CAPACITY)
    snap, deltas = frames[0], frames[1:]
    out = []
    for _ in range(passes + 1):
        book.apply_snapshot(*snap, u=1, seq=1, ts_exch_ns=1)
        t0 = time.perf_counter_ns()
        for u, delta in enumerate(deltas, start=2):
            book.apply_delta(*delta, u=u, seq=u, ts_exch_ns=u)
        out.append(time.perf_counter_ns() - t0)
    return out[1:]


def time_reference(frames: list[Frame], passes: int) -> list[int]:
    """Per pass: ns for a dict book (price -> qty) that sorts its keys after every frame."""
    lists = [tuple(a.tolist() for a in f) for f in frames]
    snap, deltas = lists[0], lists[1:]
    out = []
    for _ in range(passes):
        bids = dict(zip(snap[0], snap[1], strict=True))
        asks = dict(zip(snap[2], snap[3], strict=True))
        t0 = time.perf_counter_ns()
        for d_bpx, d_bqty, d_apx, d_aqty in deltas:
            for side, pxs, qtys in ((bids, d_bpx, d_bqty), (asks, d_apx, d_aqty)):
                for px, qty in zip(pxs, qtys, strict=True):
                    if qty:
                        side[px] = qty
                    else:
                        side.pop(px, None)
            top_bids = sorted(bids, reverse=True)[:CAPACITY]
            top_asks = sorted(asks)[:CAPACITY]
        out.append(time.perf_counter_ns() - t0)
        if not top_bids or not top_asks:
            raise RuntimeError("reference book emptied")
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    """Benchmark rows for run.py."""
    if XRP_SAMPLE.exists():
        frames, suffix = load_xrp(), ""
    else:
        frames, suffix = synthetic(), "[synthetic]"
    deltas = frames[1:]
    levels = sum(len(f[0]) + len(f[2]) for f in deltas)
    snap_levels = len(frames[0][0]) + len(frames[0][2])
    kernel_passes, ref_passes = (30, 5) if quick else (2000, 100)

    delta_ns, snap_ns = time_kernel(frames, kernel_passes)
    kernel_pass_ns = statistics.median(delta_ns)
    ref_pass_ns = statistics.median(time_reference(frames, ref_passes))
    book_pass_ns = statistics.median(time_l2book(frames, kernel_passes))
    return [
        {
            "name": f"book.apply_levels{suffix}",
            "ns_per_level": kernel_pass_ns / levels,
            "ns_per_message": kernel_pass_ns / len(deltas),
            "ref_ns_per_level": ref_pass_ns / levels,
            "ratio": ref_pass_ns / kernel_pass_ns,
            "levels_per_pass": levels,
            "messages_per_pass": len(deltas),
            "passes": kernel_passes,
        },
        {
            "name": f"book.apply_levels_snapshot{suffix}",
            "ns_per_level": statistics.median(snap_ns) / snap_levels,
            "levels": snap_levels,
            "passes": kernel_passes,
        },
        {
            "name": f"book.l2book_apply_delta{suffix}",
            "ns_per_level": book_pass_ns / levels,
            "ns_per_message": book_pass_ns / len(deltas),
            "passes": kernel_passes,
        },
    ]

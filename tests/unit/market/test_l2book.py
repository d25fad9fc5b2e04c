"""mmd.market.book.L2Book: glue behaviour, and a rebuild of a real Bybit book against a dict."""

from __future__ import annotations

import json
import math
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmd.errors import InvariantViolation
from mmd.kernels import warmup as kw
from mmd.market.book import L2Book
from mmd.model.instrument import Instrument
from tests.book_oracle import is_crossed

REPO = Path(__file__).resolve().parents[3]  # tests/unit/market/<this> -> the repository
DATA = REPO.parent / "shared" / "data"
XRP_SAMPLE = DATA / "bybit_samples" / "nautilus_test_data" / "xrpusdt-ob500.data.zip"
# Bybit linear XRPUSDT: prices have 4 decimals and sizes are whole coins (checked below)
XRP = Instrument(symbol="XRPUSDT", tick_size="0.0001", lot_size="1")


def a(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def snapshot_book(capacity: int = 8) -> L2Book:
    book = L2Book(capacity)
    book.apply_snapshot(
        a([100, 99, 98]),
        a([1, 2, 3]),
        a([101, 102, 103]),
        a([4, 5, 6]),
        u=10,
        seq=1000,
        ts_exch_ns=5,
    )
    return book


def test_l2book_new_is_empty_with_unknown_ids() -> None:
    book = L2Book(4)
    assert (book.n_bids, book.n_asks, book.u, book.seq, book.ts_exch_ns) == (0, 0, -1, -1, -1)
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert math.isnan(book.mid_ticks())
    assert math.isnan(book.spread_ticks())
    assert not is_crossed(book)
    assert book.levels(5) == {"bids": [], "asks": [], "u": -1, "seq": -1}


def test_l2book_zero_capacity_raises() -> None:
    with pytest.raises(ValueError, match="capacity"):
        L2Book(0)


def test_l2book_arrays_are_int64_of_capacity() -> None:
    book = L2Book(7)
    for arr in (book.bid_px, book.bid_qty, book.ask_px, book.ask_qty):
        assert arr.dtype == np.int64
        assert arr.shape == (7,)
        assert arr.flags.c_contiguous
    assert book.nbytes == 4 * 7 * 8


def test_l2book_snapshot_sets_top_of_book_and_ids() -> None:
    book = snapshot_book()
    assert book.best_bid() == (100, 1)
    assert book.best_ask() == (101, 4)
    assert book.mid_ticks() == 100.5
    assert book.spread_ticks() == 1.0
    assert (book.u, book.seq, book.ts_exch_ns) == (10, 1000, 5)
    assert isinstance(book.best_bid()[0], int)  # type: ignore[index]


def test_l2book_snapshot_replaces_previous_book() -> None:
    book = snapshot_book()
    book.apply_snapshot(a([50]), a([9]), a([]), a([]), u=1, seq=2, ts_exch_ns=3)
    assert (book.n_bids, book.n_asks) == (1, 0)
    assert book.best_bid() == (50, 9)
    assert book.best_ask() is None
    assert book.u == 1


def test_l2book_delta_replaces_deletes_inserts_and_records_ids() -> None:
    book = snapshot_book()
    book.apply_delta(
        a([99, 100, 97]), a([7, 0, 1]), a([100, 103]), a([2, 0]), u=11, seq=1001, ts_exch_ns=6
    )
    assert book.levels(10) == {
        "bids": [[99, 7], [98, 3], [97, 1]],
        "asks": [[100, 2], [101, 4], [102, 5]],
        "u": 11,
        "seq": 1001,
    }
    assert book.ts_exch_ns == 6


def test_l2book_delta_accepts_lists() -> None:
    book = snapshot_book()
    book.apply_delta([101], [1], [], [], u=11, seq=1, ts_exch_ns=1)
    assert book.best_bid() == (101, 1)
    assert is_crossed(book)  # locked with the 101 ask


def test_l2book_delta_float_prices_raise_type_error() -> None:
    book = snapshot_book()
    with pytest.raises(TypeError, match="bid_px"):
        book.apply_delta(np.array([100.5]), a([1]), a([]), a([]), u=11, seq=1, ts_exch_ns=1)


def test_l2book_delta_negative_size_raises_invariant_violation_and_clears() -> None:
    book = snapshot_book()
    with pytest.raises(InvariantViolation, match="u=11"):
        book.apply_delta(a([97]), a([1]), a([104]), a([-1]), u=11, seq=1, ts_exch_ns=1)
    assert (book.n_bids, book.n_asks, book.u) == (0, 0, -1)


def test_l2book_delta_mismatched_lengths_raises_invariant_violation() -> None:
    book = snapshot_book()
    with pytest.raises(InvariantViolation):
        book.apply_delta(a([97, 96]), a([1]), a([]), a([]), u=11, seq=1, ts_exch_ns=1)


def test_l2book_snapshot_negative_size_raises_invariant_violation() -> None:
    book = snapshot_book()
    with pytest.raises(InvariantViolation):
        book.apply_snapshot(a([1]), a([-1]), a([]), a([]), u=1, seq=1, ts_exch_ns=1)
    assert book.n_bids == 0


def test_l2book_crossed_delta_is_crossed_true() -> None:
    book = snapshot_book()
    assert not is_crossed(book)
    book.apply_delta(a([102]), a([1]), a([]), a([]), u=11, seq=1, ts_exch_ns=1)
    assert is_crossed(book)
    assert book.spread_ticks() == -1.0


def test_l2book_top_returns_copies_clamped_to_levels() -> None:
    book = snapshot_book()
    bpx, bqty, apx, aqty = book.top(2)
    assert (bpx.tolist(), bqty.tolist()) == ([100, 99], [1, 2])
    assert (apx.tolist(), aqty.tolist()) == ([101, 102], [4, 5])
    bpx[0] = 0
    assert book.best_bid() == (100, 1)
    assert [len(x) for x in book.top(50)] == [3, 3, 3, 3]
    assert [len(x) for x in book.top(0)] == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="n >= 0"):
        book.top(-1)


def test_l2book_levels_is_json_serialisable() -> None:
    book = snapshot_book()
    out = json.loads(json.dumps(book.levels(2)))
    assert out == {"bids": [[100, 1], [99, 2]], "asks": [[101, 4], [102, 5]], "u": 10, "seq": 1000}


def test_l2book_full_book_keeps_best_capacity_levels() -> None:
    book = L2Book(2)
    book.apply_snapshot(
        a([1, 2, 3]), a([1, 1, 1]), a([7, 6, 5]), a([1, 1, 1]), u=1, seq=1, ts_exch_ns=1
    )
    assert book.levels(5)["bids"] == [[3, 1], [2, 1]]
    assert book.levels(5)["asks"] == [[5, 1], [6, 1]]


def test_l2book_many_deltas_nbytes_constant() -> None:
    book = snapshot_book(capacity=16)
    before = book.nbytes
    rng = np.random.default_rng(7)
    for u in range(11, 400):
        px = rng.integers(80, 120, size=6)
        qty = rng.integers(0, 4, size=6)
        book.apply_delta(
            px[px < 100], qty[px < 100], px[px > 100], qty[px > 100], u=u, seq=u, ts_exch_ns=u
        )
    assert book.nbytes == before
    assert 0 <= book.n_bids <= 16


def test_l2book_clear_empties_and_forgets_ids() -> None:
    book = snapshot_book()
    book.clear()
    assert (book.n_bids, book.n_asks, book.u, book.seq) == (0, 0, -1, -1)
    assert book.best_ask() is None


def test_l2book_after_warmup_compiles_no_new_signatures() -> None:
    # L2Book must call every kernel with the dtypes warmup compiled, or the app compiles at runtime
    kw.warmup()
    found = kw.dispatchers()
    before = {k: len(d.signatures) for k, d in found.items()}
    book = snapshot_book()
    book.apply_delta([99], [0], a([104]), a([1]), u=11, seq=1, ts_exch_ns=1)
    book.apply_snapshot([], [], [1], [2], u=12, seq=2, ts_exch_ns=2)
    is_crossed(book), book.mid_ticks(), book.spread_ticks(), book.top(1), book.levels(1)
    assert {k: len(d.signatures) for k, d in found.items()} == before


# -- real data: rebuild a Bybit orderbook.500 stream --------------------------------------------


def load_xrp_frames() -> list[dict[str, Any]]:
    if not XRP_SAMPLE.exists():
        pytest.skip(f"real Bybit sample not found at {XRP_SAMPLE} (shared data not mounted)")
    with zipfile.ZipFile(XRP_SAMPLE) as zf:
        (name,) = zf.namelist()
        lines = zf.read(name).decode().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


class DictBook:
    """Plain-dict rebuild: price string -> size string, optionally bounded like L2Book."""

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.sides: dict[str, dict[str, str]] = {"b": {}, "a": {}}

    def apply(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "snapshot":
            self.sides = {"b": {}, "a": {}}
        for key, side in self.sides.items():
            for px, qty in frame["data"][key]:
                if Decimal(qty) == 0:
                    side.pop(px, None)
                else:
                    side[px] = qty
            if self.capacity is not None:
                keep = self.levels(key)[: self.capacity]
                self.sides[key] = {px: qty for px, qty in keep}

    def levels(self, key: str) -> list[tuple[str, str]]:
        return sorted(self.sides[key].items(), key=lambda kv: Decimal(kv[0]), reverse=key == "b")

    def as_ticks(self, key: str) -> list[list[int]]:
        return [[XRP.px_to_ticks(px), XRP.qty_to_lots(qty)] for px, qty in self.levels(key)]


def test_xrpusdt_sample_prices_and_sizes_fit_tick_and_lot() -> None:
    frames = load_xrp_frames()
    assert frames[0]["type"] == "snapshot"
    assert all(f["type"] == "delta" for f in frames[1:])
    for f in frames:
        for key in ("b", "a"):
            for px, qty in f["data"][key]:
                assert Decimal(px) % Decimal(XRP.tick_size) == 0
                assert Decimal(qty) % Decimal(XRP.lot_size) == 0
    us = [f["data"]["u"] for f in frames]
    assert us == list(range(us[0], us[0] + len(us)))  # continuous update ids in this sample


@pytest.mark.parametrize("capacity", [1000, 500, 25])
def test_l2book_xrpusdt_replay_matches_dict_rebuild_every_line(capacity: int) -> None:
    # 500 is the stream depth (the dict holds exactly 500 levels a side on every line), so a
    # 500-level book is full throughout and every insert competes for a slot; 25 exercises the
    # bounded semantics against a dict truncated the same way
    frames = load_xrp_frames()
    book = L2Book(capacity)
    ref = DictBook(capacity)
    for i, f in enumerate(frames):
        d = f["data"]
        bpx, bqty = XRP.levels_to_arrays(d["b"])
        apx, aqty = XRP.levels_to_arrays(d["a"])
        ids = {"u": d["u"], "seq": d["seq"], "ts_exch_ns": f["cts"] * 1_000_000}
        if f["type"] == "snapshot":
            book.apply_snapshot(bpx, bqty, apx, aqty, **ids)
        else:
            book.apply_delta(bpx, bqty, apx, aqty, **ids)
        ref.apply(f)
        got = book.levels(capacity)
        assert got["bids"] == ref.as_ticks("b"), f"bids differ at line {i}"
        assert got["asks"] == ref.as_ticks("a"), f"asks differ at line {i}"
        assert (got["u"], got["seq"]) == (d["u"], d["seq"])
        assert not is_crossed(book)
        assert book.n_bids == min(capacity, 500)

"""mmd.kernels.book: worked examples, properties against a dict book, jit vs py_func parity."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmd.kernels import book as kb
from mmd.kernels import warmup as kw
from mmd.model.codes import ERR_BAD_INPUT

I64 = np.int64


def arr(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=I64)


def side(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    # garbage in the don't-care slots so nothing relies on zeroed memory
    return np.full(capacity, -7, I64), np.full(capacity, -7, I64)


def cols(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return arr([p for p, _ in pairs]), arr([q for _, q in pairs])


def levels(px: np.ndarray, qty: np.ndarray, n: int) -> list[tuple[int, int]]:
    return list(zip(px[:n].tolist(), qty[:n].tolist(), strict=True))


class RefSide:
    """Plain-dict model of one bounded book side: the semantics apply_levels promises."""

    def __init__(self, capacity: int, is_bid: bool) -> None:
        self.capacity = capacity
        self.is_bid = is_bid
        self.book: dict[int, int] = {}

    def apply(self, pxs: list[int], qtys: list[int]) -> None:
        for px, qty in zip(pxs, qtys, strict=True):  # last occurrence of a price wins
            self.book[px] = qty
        kept = sorted((p for p, q in self.book.items() if q > 0), reverse=self.is_bid)
        self.book = {p: self.book[p] for p in kept[: self.capacity]}

    def snapshot(self, pxs: list[int], qtys: list[int]) -> None:
        self.book = {}
        self.apply(pxs, qtys)

    def levels(self) -> list[tuple[int, int]]:
        return sorted(self.book.items(), reverse=self.is_bid)


# -- worked examples ---------------------------------------------------------------------------


def test_apply_levels_unsorted_inserts_into_empty_bids_sorted_descending() -> None:
    px, qty = side(8)
    n = kb.apply_levels(px, qty, 0, arr([100, 102, 101]), arr([1, 2, 3]), True)
    assert n == 3
    assert levels(px, qty, n) == [(102, 2), (101, 3), (100, 1)]


def test_apply_levels_unsorted_inserts_into_empty_asks_sorted_ascending() -> None:
    px, qty = side(8)
    n = kb.apply_levels(px, qty, 0, arr([100, 102, 101]), arr([1, 2, 3]), False)
    assert levels(px, qty, n) == [(100, 1), (101, 3), (102, 2)]


def test_apply_levels_replace_delete_insert_mixed_batch_merges() -> None:
    px, qty = side(8)
    n = kb.apply_levels(px, qty, 0, arr([10, 11, 12, 13]), arr([1, 1, 1, 1]), False)
    # replace 11, delete 12, insert 9 and 14, delete an absent price (no-op)
    n = kb.apply_levels(px, qty, n, arr([14, 12, 11, 9, 50]), arr([4, 0, 7, 2, 0]), False)
    assert levels(px, qty, n) == [(9, 2), (10, 1), (11, 7), (13, 1), (14, 4)]


def test_apply_levels_delete_every_level_returns_zero() -> None:
    px, qty = side(4)
    n = kb.apply_levels(px, qty, 0, arr([5, 6]), arr([1, 1]), True)
    assert kb.apply_levels(px, qty, n, arr([6, 5]), arr([0, 0]), True) == 0


def test_apply_levels_empty_update_keeps_levels() -> None:
    px, qty = side(4)
    n = kb.apply_levels(px, qty, 0, arr([5, 6]), arr([1, 1]), True)
    assert kb.apply_levels(px, qty, n, arr([]), arr([]), True) == 2
    assert levels(px, qty, 2) == [(6, 1), (5, 1)]


def test_apply_levels_full_bids_insert_below_worst_is_dropped() -> None:
    px, qty = side(3)
    n = kb.apply_levels(px, qty, 0, arr([10, 9, 8]), arr([1, 1, 1]), True)
    n = kb.apply_levels(px, qty, n, arr([7]), arr([5]), True)
    assert n == 3
    assert levels(px, qty, n) == [(10, 1), (9, 1), (8, 1)]


def test_apply_levels_full_bids_insert_inside_pushes_worst_out() -> None:
    px, qty = side(3)
    n = kb.apply_levels(px, qty, 0, arr([10, 8, 6]), arr([1, 1, 1]), True)
    n = kb.apply_levels(px, qty, n, arr([11, 7]), arr([5, 5]), True)
    assert levels(px, qty, n) == [(11, 5), (10, 1), (8, 1)]


def test_apply_levels_full_asks_insert_inside_pushes_worst_out() -> None:
    px, qty = side(3)
    n = kb.apply_levels(px, qty, 0, arr([10, 12, 14]), arr([1, 1, 1]), False)
    n = kb.apply_levels(px, qty, n, arr([11, 15]), arr([5, 5]), False)
    assert levels(px, qty, n) == [(10, 1), (11, 5), (12, 1)]


def test_apply_levels_full_insert_listed_before_delete_keeps_worst_level() -> None:
    # deletions apply before inserts, so the batch order cannot evict a level needlessly
    px, qty = side(3)
    n = kb.apply_levels(px, qty, 0, arr([10, 9, 8]), arr([1, 1, 1]), True)
    n = kb.apply_levels(px, qty, n, arr([11, 9]), arr([4, 0]), True)
    assert levels(px, qty, n) == [(11, 4), (10, 1), (8, 1)]


def test_apply_levels_repeated_price_last_occurrence_wins() -> None:
    px, qty = side(8)
    n = kb.apply_levels(px, qty, 0, arr([5, 7]), arr([1, 1]), True)
    # unknown 9 inserted then deleted; known 5 deleted then revived; unknown 3 set twice
    n = kb.apply_levels(px, qty, n, arr([9, 5, 3, 9, 5, 3]), arr([2, 0, 1, 0, 6, 4]), True)
    assert levels(px, qty, n) == [(7, 1), (5, 6), (3, 4)]


@pytest.mark.parametrize(
    ("upd_px", "upd_qty", "n_levels"),
    [
        ([10, 6], [1, -1], 4),  # negative size (after a valid insert: nothing applied)
        ([5, 6], [1], 4),  # mismatched update lengths
        ([5], [1], 5),  # n_levels beyond capacity
        ([5], [1], -1),  # negative n_levels
    ],
)
def test_apply_levels_bad_input_returns_err_and_leaves_side(
    upd_px: list[int], upd_qty: list[int], n_levels: int
) -> None:
    px, qty = arr([9, 8, 7, 6]), arr([1, 1, 1, 1])
    before = (px.copy(), qty.copy())
    code = kb.apply_levels(px, qty, n_levels, arr(upd_px), arr(upd_qty), True)
    assert code == ERR_BAD_INPUT
    assert np.array_equal(px, before[0])
    assert np.array_equal(qty, before[1])


def test_apply_levels_mismatched_side_lengths_returns_err() -> None:
    assert kb.apply_levels(arr([0, 0]), arr([0]), 0, arr([1]), arr([1]), True) == ERR_BAD_INPUT


def test_apply_levels_into_empty_side_unsorted_with_zeros_keeps_best_capacity() -> None:
    px, qty = side(3)
    n = kb.apply_levels(px, qty, 0, arr([4, 9, 1, 7, 8]), arr([1, 2, 3, 0, 5]), True)
    assert levels(px, qty, n) == [(9, 2), (8, 5), (4, 1)]
    n = kb.apply_levels(px, qty, 0, arr([4, 9, 1, 7, 8]), arr([1, 2, 3, 0, 5]), False)
    assert levels(px, qty, n) == [(1, 3), (4, 1), (8, 5)]


def test_apply_levels_into_empty_side_replaces_previous_levels() -> None:
    px, qty = side(4)
    kb.apply_levels(px, qty, 0, arr([1, 2, 3]), arr([1, 1, 1]), False)
    n = kb.apply_levels(px, qty, 0, arr([20]), arr([3]), False)
    assert levels(px, qty, n) == [(20, 3)]


def test_apply_levels_into_empty_side_negative_size_returns_err() -> None:
    px, qty = side(4)
    assert kb.apply_levels(px, qty, 0, arr([1, 2]), arr([1, -3]), False) == ERR_BAD_INPUT


@pytest.mark.parametrize(
    ("bids", "asks", "crossed"),
    [
        ([10], [11], False),
        ([11], [11], True),  # locked counts as crossed
        ([12], [11], True),
        ([], [11], False),
        ([10], [], False),
        ([], [], False),
    ],
)
def test_compute_is_crossed_best_prices_gives_expected(
    bids: list[int], asks: list[int], crossed: bool
) -> None:
    bpx = np.array([*bids, 0], I64)
    apx = np.array([*asks, 0], I64)
    assert kb.compute_is_crossed(bpx, len(bids), apx, len(asks)) is crossed


def test_compute_mid_and_spread_two_sided_book_gives_ticks() -> None:
    bpx, apx = arr([100, 99]), arr([103, 104])
    assert kb.compute_mid_ticks(bpx, 2, apx, 2) == 101.5
    assert kb.compute_spread_ticks(bpx, 2, apx, 2) == 3.0


@pytest.mark.parametrize(("n_bid", "n_ask"), [(0, 1), (1, 0), (0, 0)])
def test_compute_mid_and_spread_empty_side_gives_nan(n_bid: int, n_ask: int) -> None:
    bpx, apx = arr([100]), arr([103])
    assert math.isnan(kb.compute_mid_ticks(bpx, n_bid, apx, n_ask))
    assert math.isnan(kb.compute_spread_ticks(bpx, n_bid, apx, n_ask))


# -- properties ----------------------------------------------------------------------------------

prices = st.integers(min_value=1, max_value=40)
sizes = st.integers(min_value=0, max_value=5)
batch = st.lists(st.tuples(prices, sizes), max_size=16)


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=12),
    is_bid=st.booleans(),
    snap=batch,
    batches=st.lists(batch, min_size=1, max_size=8),
)
def test_apply_levels_random_batches_match_dict_reference(
    capacity: int, is_bid: bool, snap: list[tuple[int, int]], batches: list[list[tuple[int, int]]]
) -> None:
    px, qty = side(capacity)
    ref = RefSide(capacity, is_bid)
    spx, sqty = [p for p, _ in snap], [q for _, q in snap]
    n = kb.apply_levels(px, qty, 0, arr(spx), arr(sqty), is_bid)
    ref.snapshot(spx, sqty)
    assert levels(px, qty, n) == ref.levels()
    for b in batches:
        upx, uqty = [p for p, _ in b], [q for _, q in b]
        n = kb.apply_levels(px, qty, n, arr(upx), arr(uqty), is_bid)
        ref.apply(upx, uqty)
        assert 0 <= n <= capacity
        assert levels(px, qty, n) == ref.levels()


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=10),
    is_bid=st.booleans(),
    data=st.data(),
)
def test_apply_levels_permuted_unique_batch_gives_same_side(
    capacity: int, is_bid: bool, data: st.DataObject
) -> None:
    start = data.draw(st.dictionaries(prices, st.integers(1, 5), max_size=capacity))
    upd = data.draw(st.dictionaries(prices, sizes, max_size=16))
    shuffled = data.draw(st.permutations(list(upd.items())))
    results = []
    for items in (list(upd.items()), shuffled):
        px, qty = side(capacity)
        n = kb.apply_levels(px, qty, 0, arr(list(start)), arr(list(start.values())), is_bid)
        n = kb.apply_levels(
            px, qty, n, arr([p for p, _ in items]), arr([q for _, q in items]), is_bid
        )
        results.append(levels(px, qty, n))
    assert results[0] == results[1]


@settings(max_examples=200, deadline=None)
@given(
    bids=st.lists(st.tuples(prices, st.integers(1, 9)), max_size=6),
    asks=st.lists(st.tuples(prices, st.integers(1, 9)), max_size=6),
)
def test_compute_kernels_random_book_match_reference(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]]
) -> None:
    bpx, bqty = side(6)
    apx, aqty = side(6)
    nb = kb.apply_levels(bpx, bqty, 0, *cols(bids), True)
    na = kb.apply_levels(apx, aqty, 0, *cols(asks), False)
    rb, ra = RefSide(6, True), RefSide(6, False)
    rb.snapshot([p for p, _ in bids], [q for _, q in bids])
    ra.snapshot([p for p, _ in asks], [q for _, q in asks])
    crossed = kb.compute_is_crossed(bpx, nb, apx, na)
    mid = kb.compute_mid_ticks(bpx, nb, apx, na)
    spread = kb.compute_spread_ticks(bpx, nb, apx, na)
    if rb.book and ra.book:
        best_b, best_a = rb.levels()[0][0], ra.levels()[0][0]
        assert crossed == (best_b >= best_a)
        assert mid == (best_b + best_a) / 2
        assert spread == best_a - best_b
    else:
        assert crossed is False
        assert math.isnan(mid)
        assert math.isnan(spread)


# -- jit vs interpreted parity --------------------------------------------------------------------


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=10),
    is_bid=st.booleans(),
    snap=batch,
    upd=st.lists(st.tuples(prices, st.integers(min_value=-1, max_value=5)), max_size=16),
    probe=prices,
)
def test_book_kernels_jit_and_py_func_random_inputs_agree(
    capacity: int,
    is_bid: bool,
    snap: list[tuple[int, int]],
    upd: list[tuple[int, int]],
    probe: int,
) -> None:
    spx, sqty = arr([p for p, _ in snap]), arr([q for _, q in snap])
    upx, uqty = arr([p for p, _ in upd]), arr([q for _, q in upd])
    variants: dict[str, Callable[[Any], Any]] = {
        "jit": lambda kernel: kernel,
        "py": lambda kernel: kernel.py_func,
    }
    sides = {}
    for mode, f in variants.items():
        px, qty = side(capacity)
        n0 = f(kb.apply_levels)(px, qty, 0, spx, sqty, is_bid)
        n1 = f(kb.apply_levels)(px, qty, max(n0, 0), upx, uqty, is_bid)
        n = max(n1, 0) if n1 >= 0 else max(n0, 0)
        opx, oqty = side(capacity)
        f(kb.apply_levels)(opx, oqty, 0, spx, sqty, not is_bid)
        bids, asks = (px, opx) if is_bid else (opx, px)
        sides[mode] = (
            n0,
            n1,
            levels(px, qty, n),
            f(kb._find_level)(px, n, probe, is_bid),
            f(kb._is_better)(probe, 20, is_bid),
            f(kb.compute_is_crossed)(bids, n, asks, n),
            f(kb.compute_mid_ticks)(bids, n, asks, n),
            f(kb.compute_spread_ticks)(bids, n, asks, n),
        )
    assert all(same(a, b) for a, b in zip(sides["jit"], sides["py"], strict=True))


# -- warmup table -----------------------------------------------------------------------------


def test_warmup_every_kernel_has_sample_args_returns_seconds() -> None:
    assert set(kw.dispatchers()) == set(kw.SAMPLE_ARGS)
    assert kw.warmup() >= 0.0


def test_warmup_dispatcher_without_entry_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(kw.SAMPLE_ARGS)
    del table["book.apply_levels"]
    monkeypatch.setattr(kw, "SAMPLE_ARGS", table)
    with pytest.raises(RuntimeError, match=r"book\.apply_levels"):
        kw.warmup()


def test_warmup_entry_without_dispatcher_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kw, "SAMPLE_ARGS", {**kw.SAMPLE_ARGS, "book.gone": lambda: ()})
    with pytest.raises(RuntimeError, match=r"book\.gone"):
        kw.warmup()

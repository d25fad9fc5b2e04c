"""mmd.strategy.order_diff.diff_quotes: worked examples of the minimum-change policy."""

from __future__ import annotations

import itertools

import msgspec

from mmd.model.codes import BUY, SELL
from mmd.strategy.order_diff import CancelOrder, OpenOrder, SubmitOrder, diff_quotes
from mmd.strategy.quoter import QuoteTarget


def target(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> QuoteTarget:
    return QuoteTarget(
        symbol="BTCUSDT",
        ts_ns=1,
        bids=bids,
        asks=asks,
        reservation_ticks=100.0,
        half_spread_ticks=1.0,
        model="as",
        params_source="calibrated",
    )


def ids() -> itertools.count[int]:
    return itertools.count(1)


def next_id_from(counter: itertools.count[int]) -> str:
    return f"q{next(counter)}"


def diff(t: QuoteTarget, orders: list[OpenOrder], tol: int = 0) -> list[SubmitOrder | CancelOrder]:
    counter = ids()
    return diff_quotes(t, orders, tol, lambda: next_id_from(counter))


def submit(cid: str, side: int, px: int, qty: int) -> SubmitOrder:
    return SubmitOrder(client_order_id=cid, symbol="BTCUSDT", side=side, px_ticks=px, qty_lots=qty)


def cancel(cid: str) -> CancelOrder:
    return CancelOrder(client_order_id=cid, symbol="BTCUSDT")


def test_diff_quotes_no_open_orders_submits_bids_then_asks_best_first() -> None:
    cmds = diff(target([(99, 1), (98, 2)], [(101, 1)]), [])
    assert cmds == [submit("q1", BUY, 99, 1), submit("q2", BUY, 98, 2), submit("q3", SELL, 101, 1)]


def test_diff_quotes_open_orders_match_target_gives_nothing() -> None:
    orders = [OpenOrder("a", BUY, 99, 1), OpenOrder("b", SELL, 101, 1)]
    assert diff(target([(99, 1)], [(101, 1)]), orders) == []


def test_diff_quotes_price_moved_within_tolerance_keeps_order() -> None:
    orders = [OpenOrder("a", BUY, 97, 1), OpenOrder("b", SELL, 103, 1)]
    assert diff(target([(99, 1)], [(101, 1)]), orders, tol=2) == []


def test_diff_quotes_price_moved_beyond_tolerance_cancels_first_then_submits() -> None:
    orders = [OpenOrder("a", BUY, 96, 1), OpenOrder("b", SELL, 101, 1)]
    cmds = diff(target([(99, 1)], [(101, 1)]), orders, tol=2)
    assert cmds == [cancel("a"), submit("q1", BUY, 99, 1)]


def test_diff_quotes_size_changed_replaces_order() -> None:
    orders = [OpenOrder("a", BUY, 99, 1)]
    assert diff(target([(99, 2)], []), orders) == [cancel("a"), submit("q1", BUY, 99, 2)]


def test_diff_quotes_exact_price_matched_before_tolerance() -> None:
    # targets 100, 99; resting 99, 98; tolerance 1. Greedy nearest-first would keep both
    # (100<-99, 99<-98) and drift a tick; exact-first keeps 99 for 99 and replaces 98 by 100.
    orders = [OpenOrder("a", BUY, 99, 1), OpenOrder("b", BUY, 98, 1)]
    cmds = diff(target([(100, 1), (99, 1)], []), orders, tol=1)
    assert cmds == [cancel("b"), submit("q1", BUY, 100, 1)]


def test_diff_quotes_nearest_within_tolerance_wins() -> None:
    orders = [OpenOrder("far", SELL, 104, 1), OpenOrder("near", SELL, 102, 1)]
    cmds = diff(target([], [(101, 1)]), orders, tol=3)
    assert cmds == [cancel("far")]


def test_diff_quotes_wrong_side_order_is_cancelled() -> None:
    orders = [OpenOrder("a", SELL, 99, 1)]
    cmds = diff(target([(99, 1)], []), orders, tol=5)
    assert cmds == [cancel("a"), submit("q1", BUY, 99, 1)]


def test_diff_quotes_empty_side_cancels_all_its_orders() -> None:
    orders = [OpenOrder("a", BUY, 99, 1), OpenOrder("b", BUY, 98, 1), OpenOrder("c", SELL, 101, 1)]
    assert diff(target([], [(101, 1)]), orders) == [cancel("a"), cancel("b")]


def test_diff_quotes_duplicate_resting_orders_keep_one() -> None:
    orders = [OpenOrder("a", BUY, 99, 1), OpenOrder("b", BUY, 99, 1)]
    assert diff(target([(99, 1)], []), orders) == [cancel("b")]


def test_diff_quotes_ladder_shift_by_one_level_reuses_overlap() -> None:
    # ladder 100/99/98 -> 99/98/97: only the top is cancelled and the new bottom submitted
    orders = [OpenOrder(c, BUY, px, 1) for c, px in (("a", 100), ("b", 99), ("c", 98))]
    cmds = diff(target([(99, 1), (98, 1), (97, 1)], []), orders)
    assert cmds == [cancel("a"), submit("q1", BUY, 97, 1)]


def test_diff_quotes_commands_roundtrip_as_tagged_union() -> None:
    cmds = diff(target([(99, 1)], []), [OpenOrder("a", SELL, 101, 1)])
    data = msgspec.json.encode(cmds)
    assert b'"type":"CancelOrder"' in data
    assert b'"type":"SubmitOrder"' in data
    assert msgspec.json.decode(data, type=list[SubmitOrder | CancelOrder]) == cmds


def test_diff_quotes_partially_filled_order_keeps_its_place() -> None:
    # sent 3 lots at 99, 2 filled: leaves 1 < target 3, but the strategy's size is unchanged:
    # no cancel, no resubmit (the remainder stays at the front of its queue)
    orders = [OpenOrder("a", BUY, 99, 1, orig_lots=3), OpenOrder("b", SELL, 101, 2, orig_lots=2)]
    assert diff(target([(99, 3)], [(101, 2)]), orders) == []
    # within the price tolerance too (99 -> 100, tolerance 1)
    assert diff(target([(100, 3)], [(101, 2)]), orders, tol=1) == []


def test_diff_quotes_partially_filled_order_requoted_on_price_or_size_change() -> None:
    orders = [OpenOrder("a", BUY, 99, 1, orig_lots=3)]
    # the price moved beyond the tolerance: cancel the remainder, submit the full new size
    assert diff(target([(97, 3)], []), orders, tol=1) == [cancel("a"), submit("q1", BUY, 97, 3)]
    # the strategy's size changed (3 -> 2): requote
    assert diff(target([(99, 2)], []), orders) == [cancel("a"), submit("q1", BUY, 99, 2)]

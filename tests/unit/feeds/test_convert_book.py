"""mmd.feeds.convert.book.BookSide: the one book every converter keeps (ints and floats)."""

from __future__ import annotations

from mmd.feeds.convert.book import BookSide


def test_bid_side_in_ticks_reports_the_changes_of_its_top_view() -> None:
    bids = BookSide[int](is_bid=True)
    bids.reset([(100, 5), (99, 3), (98, 0), (97, 2)])  # qty 0 is left out
    assert len(bids) == 3
    assert bids.top(2) == [(100, 5), (99, 3)]
    assert bids.farthest() == 97
    # a new best bid at 101 pushes 99 out of the 2-level view: 101 enters, 99 leaves (size 0)
    assert bids.apply([(101, 1)], depth=2) == [(101, 1), (99, 0)]
    # deleting 101 reports it gone (size 0) and 99 back in the view with its size
    assert bids.apply([(101, 0)], depth=2) == [(101, 0), (99, 3)]
    # a change below the view is not reported
    assert bids.apply([(97, 4)], depth=2) == []
    bids.set(97, 0)
    assert bids.farthest() == 99
    assert bids.top(5) == [(100, 5), (99, 3)]


def test_ask_side_in_float_units_tracks_its_farthest_level() -> None:
    asks = BookSide[float](is_bid=False)
    assert asks.farthest() is None
    asks.reset([(10.5, 1.0), (10.0, 2.0)])
    assert asks.top(5) == [(10.0, 2.0), (10.5, 1.0)]
    assert asks.farthest() == 10.5
    asks.set(11.25, 0.5)
    assert asks.farthest() == 11.25
    asks.set(11.25, 0.0)
    assert asks.farthest() == 10.5
    asks.set(9.5, 3.0)  # a new best ask
    assert asks.top(1) == [(9.5, 3.0)]

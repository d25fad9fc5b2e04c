"""SimExchange: each fill rule, each queue model, post-only, latency, partial fills, fill ids and
no market impact, on small hand-made event sequences with the expected numbers worked out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmd.config import ExchangeConfig
from mmd.market.book import L2Book
from mmd.model.codes import BUY, SELL
from mmd.model.events import (
    MAKER,
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.model.instrument import Instrument
from mmd.sim.exchange import SimExchange
from tests.exchange_probe import queue_ahead_lots

BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
ETH = Instrument(symbol="ETHUSDT", tick_size="0.01", lot_size="0.01")
MAKER_FEE = 0.0002


def make_sim(
    queue_model: str = "risk_averse",
    *,
    partial: bool = True,
    power: float = 2.0,
    entry_ns: int = 0,
    cancel_ns: int = 0,
    capacity: int = 8,
) -> SimExchange:
    cfg = ExchangeConfig(
        queue_model=queue_model,  # type: ignore[arg-type]
        queue_power=power,
        partial_fills=partial,
        maker_fee=MAKER_FEE,
    )
    return SimExchange(
        cfg,
        {"BTCUSDT": BTC, "ETHUSDT": ETH},
        entry_latency_ns=entry_ns,
        cancel_latency_ns=cancel_ns,
        capacity=capacity,
    )


def make_book(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]], capacity: int = 16
) -> L2Book:
    book = L2Book(capacity)
    set_book(book, bids, asks)
    return book


def set_book(book: L2Book, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
    book.apply_snapshot(
        [p for p, _ in bids],
        [q for _, q in bids],
        [p for p, _ in asks],
        [q for _, q in asks],
        u=1,
        seq=1,
        ts_exch_ns=0,
    )


def submit(coid: str, side: int, px: int, qty: int, symbol: str = "BTCUSDT") -> SubmitOrder:
    return SubmitOrder(client_order_id=coid, symbol=symbol, side=side, px_ticks=px, qty_lots=qty)


def cancel(coid: str, symbol: str = "BTCUSDT") -> CancelOrder:
    return CancelOrder(client_order_id=coid, symbol=symbol)


def fills(events: list) -> list[tuple[str, int, int, int]]:
    """(fill_id, px_ticks, qty_lots, leaves_lots) of the fills among events."""
    return [
        (e.fill_id, e.px_ticks, e.qty_lots, e.leaves_lots)
        for e in events
        if isinstance(e, OrderFilled)
    ]


def rest(sim: SimExchange, book: L2Book, coid: str, side: int, px: int, qty: int, t: int = 0):
    """Show the exchange `book` at t, then send an order that arrives at t (zero latency)."""
    sim.on_book("BTCUSDT", book, t)
    sim.send(submit(coid, side, px, qty), t)
    return sim.advance(t)


# the standard book: bids 99/98, asks 101/102 (ticks); we quote a bid at 99 behind 5 lots
BIDS = [(99, 5), (98, 7)]
ASKS = [(101, 4), (102, 9)]


# -- post-only -------------------------------------------------------------------------------


def test_exchange_post_only_crossing_submit_rejected() -> None:
    sim = make_sim()
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    sim.send(submit("b", BUY, 101, 1), 1)  # buy at the best ask: would take liquidity
    sim.send(submit("s", SELL, 99, 1), 1)  # sell at the best bid
    sim.send(submit("ok", BUY, 100, 1), 1)  # inside the spread: fine
    ev = sim.advance(1)
    assert [type(e) for e in ev] == [OrderRejected, OrderRejected, OrderAccepted]
    assert ev[0].reason == ev[1].reason == "post_only_would_cross"
    assert sim.open_orders("BTCUSDT") == [("ok", BUY, 100, 1)]


def test_exchange_submit_crossing_own_order_rejected() -> None:
    sim = make_sim()
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    sim.send(submit("b", BUY, 100, 1), 1)
    sim.send(submit("s", SELL, 100, 1), 1)  # would match our own resting bid at 100
    ev = sim.advance(1)
    assert isinstance(ev[0], OrderAccepted)
    assert isinstance(ev[1], OrderRejected) and ev[1].reason == "post_only_would_cross"


def test_exchange_submit_without_book_or_symbol_rejected() -> None:
    sim = make_sim()
    sim.send(submit("a", BUY, 100, 1), 0)
    sim.send(submit("b", BUY, 100, 1, symbol="SOLUSDT"), 0)
    sim.send(submit("c", BUY, 100, 0), 0)
    ev = sim.advance(0)
    assert [e.reason for e in ev] == ["no_market_data", "unknown_symbol", "invalid_order"]


def test_exchange_submit_duplicate_id_and_full_capacity_rejected() -> None:
    sim = make_sim(capacity=1)
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    for coid in ("a", "a", "b"):
        sim.send(submit(coid, BUY, 99, 1), 0)
    ev = sim.advance(0)
    assert isinstance(ev[0], OrderAccepted)
    assert [e.reason for e in ev[1:]] == ["duplicate_client_order_id", "too_many_orders"]


def test_exchange_accept_queue_ahead_is_real_level_size() -> None:
    sim = make_sim()
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    sim.send(submit("at", BUY, 99, 1), 0)  # 5 lots ahead
    sim.send(submit("improve", BUY, 100, 1), 0)  # new level, alone at the front
    sim.send(submit("deep", SELL, 102, 1), 0)  # 9 lots ahead
    sim.advance(0)
    assert queue_ahead_lots(sim, "BTCUSDT", "at") == 5.0
    assert queue_ahead_lots(sim, "BTCUSDT", "improve") == 0.0
    assert queue_ahead_lots(sim, "BTCUSDT", "deep") == 9.0


# -- rule (a): the book crosses us ------------------------------------------------------------


def test_exchange_book_cross_fills_full_leaves_at_our_price() -> None:
    sim = make_sim()
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 100, 3)
    rest(sim, book, "s", SELL, 101, 2)
    # asks drop to 99 (<= our bid 100): "filled without a trade" (hftbacktest #158);
    # our ask at 101 is untouched (best bid 98 < 101)
    set_book(book, [(98, 7)], [(99, 1), (101, 4)])
    ev = sim.on_book("BTCUSDT", book, 10)
    assert fills(ev) == [("b#1", 100, 3, 0)]  # our price 100, not the ask at 99
    assert ev[0].liquidity == MAKER and ev[0].ts_exch_ns == 10
    # bids jump to 101 (>= our ask 101): the sell fills at 101
    set_book(book, [(101, 2)], [(103, 1)])
    assert fills(sim.on_book("BTCUSDT", book, 11)) == [("s#1", 101, 2, 0)]
    assert sim.open_orders("BTCUSDT") == []


# -- rule (b): a trade prints through us ------------------------------------------------------


def test_exchange_trade_through_partial_fills_trade_size() -> None:
    sim = make_sim(partial=True)
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 99, 5)
    # sell 2 @ 98 < 99: fill min(2, 5) = 2, leaves 3
    assert fills(sim.on_trade("BTCUSDT", 1, 98, 2, SELL)) == [("b#1", 99, 2, 3)]
    # a BUY taker at 98 does not hit bids; a sell at 100 is above our bid: nothing
    assert sim.on_trade("BTCUSDT", 2, 98, 2, BUY) == []
    assert sim.on_trade("BTCUSDT", 3, 100, 2, SELL) == []
    # sell 10 @ 97: min(10, 3) = 3, done
    assert fills(sim.on_trade("BTCUSDT", 4, 97, 10, SELL)) == [("b#2", 99, 3, 0)]


def test_exchange_trade_through_without_partial_fills_needs_a_print_covering_leaves() -> None:
    sim = make_sim(partial=False)
    book = make_book(BIDS, ASKS)
    rest(sim, book, "s", SELL, 101, 5)
    # buy 1 @ 102 > 101: all-or-nothing, and a 1-lot print cannot fill 5 lots: nothing
    # (hftbacktest fills the whole 5 here; we never fill more than was printed)
    assert sim.on_trade("BTCUSDT", 1, 102, 1, BUY) == []
    # buy 5 @ 102: the print covers the leaves: the whole 5 fill
    assert fills(sim.on_trade("BTCUSDT", 2, 102, 5, BUY)) == [("s#1", 101, 5, 0)]


# -- rule (c) + risk-averse queue ---------------------------------------------------------------


def test_exchange_risk_averse_trades_at_price_advance_then_fill_excess() -> None:
    sim = make_sim("risk_averse", partial=True)
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 99, 3)  # queue_ahead = 5
    # sell 4 @ 99: queue 5 - 4 = 1, nothing past the front
    assert sim.on_trade("BTCUSDT", 1, 99, 4, SELL) == []
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 1.0
    # sell 3 @ 99: queue 1 - 3 = -2 -> 2 lots past the front fill us: min(2, 3, 3) = 2, leaves 1,
    # queue reset to 0 (we are at the front)
    assert fills(sim.on_trade("BTCUSDT", 2, 99, 3, SELL)) == [("b#1", 99, 2, 1)]
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 0.0
    # sell 2 @ 99: queue 0 - 2 = -2 -> min(2, 2, 1) = 1, done
    assert fills(sim.on_trade("BTCUSDT", 3, 99, 2, SELL)) == [("b#2", 99, 1, 0)]


def test_exchange_risk_averse_depth_only_clamps_queue() -> None:
    sim = make_sim("risk_averse")
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 99, 1)  # queue 5
    set_book(book, [(99, 9), (98, 7)], ASKS)  # growth: behind us, queue 5
    sim.on_book("BTCUSDT", book, 1)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 5.0
    set_book(book, [(99, 6), (98, 7)], ASKS)  # 9 -> 6: risk-averse ignores it, min(5, 6) = 5
    sim.on_book("BTCUSDT", book, 2)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 5.0
    set_book(book, [(99, 2), (98, 7)], ASKS)  # 6 -> 2: at most 2 can be ahead, min(5, 2) = 2
    sim.on_book("BTCUSDT", book, 3)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 2.0


def test_exchange_no_partial_fill_waits_for_a_print_that_covers_leaves() -> None:
    sim = make_sim("risk_averse", partial=False)
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 99, 3)  # queue 5
    # sell 5 @ 99: queue 0, nothing went past the front (NoPartialFillExchange needs < 0)
    assert sim.on_trade("BTCUSDT", 1, 99, 5, SELL) == []
    # sell 1 @ 99: queue -1 -> one lot reached us, but all-or-nothing needs 3 from one print
    # (hftbacktest fills the whole 3 here; we never fill more than was printed)
    assert sim.on_trade("BTCUSDT", 2, 99, 1, SELL) == []
    # sell 3 @ 99: queue -1 - 3 = -4 -> k = 4, min(4, print 3) = 3 >= leaves 3: all 3 fill
    assert fills(sim.on_trade("BTCUSDT", 3, 99, 3, SELL)) == [("b#1", 99, 3, 0)]


# -- probabilistic queue models ---------------------------------------------------------------


def _behind_six(sim: SimExchange, book: L2Book) -> None:
    # rest a bid at 99 behind 4 lots, then 6 lots join behind us: front 4, back 6, level 10
    set_book(book, [(99, 4), (98, 7)], ASKS)
    rest(sim, book, "b", BUY, 99, 1)
    set_book(book, [(99, 10), (98, 7)], ASKS)
    sim.on_book("BTCUSDT", book, 1)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 4.0  # growth goes behind


def test_exchange_prob_power_depth_decrease_advances_expected_share() -> None:
    sim = make_sim("prob_power", power=2.0)
    book = make_book(BIDS, ASKS)
    _behind_six(sim, book)
    # level 10 -> 7: chg = 3, front 4, back 10 - 4 = 6
    # p(behind) = 6^2 / (6^2 + 4^2) = 36/52; ahead share 1 - p = 16/52
    # queue = 4 - (16/52) * 3 + min(6 - (36/52) * 3, 0) = 4 - 48/52 = 3.076923...
    set_book(book, [(99, 7), (98, 7)], ASKS)
    sim.on_book("BTCUSDT", book, 2)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(4 - 48 / 52)


def test_exchange_prob_log_depth_decrease_advances_expected_share() -> None:
    sim = make_sim("prob_log")
    book = make_book(BIDS, ASKS)
    _behind_six(sim, book)
    # level 10 -> 7: chg 3, p = ln(7) / (ln(7) + ln(5)) = 1.94591 / 3.55535 = 0.54732
    # queue = 4 - (1 - 0.54732) * 3 = 2.64195
    set_book(book, [(99, 7), (98, 7)], ASKS)
    sim.on_book("BTCUSDT", book, 2)
    p = math.log(7) / (math.log(7) + math.log(5))
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(4 - (1 - p) * 3)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(2.64195, abs=1e-5)


def test_exchange_prob_power_trade_size_not_counted_twice() -> None:
    sim = make_sim("prob_power", power=2.0)
    book = make_book(BIDS, ASKS)
    _behind_six(sim, book)
    # sell 2 @ 99: queue 4 - 2 = 2 (traded 2 remembered)
    assert sim.on_trade("BTCUSDT", 2, 99, 2, SELL) == []
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 2.0
    # level 10 -> 7: chg = 3 - 2 (the trade, already applied) = 1; front 2, back 10 - 2 = 8
    # p = 64 / (64 + 4) = 64/68; queue = 2 - (4/68) * 1 = 1.941176...
    set_book(book, [(99, 7), (98, 7)], ASKS)
    sim.on_book("BTCUSDT", book, 3)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(2 - 4 / 68)


def test_exchange_prob_power_decrease_beyond_back_takes_front() -> None:
    sim = make_sim("prob_power", power=2.0)
    book = make_book(BIDS, ASKS)
    set_book(book, [(99, 2), (98, 7)], ASKS)
    rest(sim, book, "b", BUY, 99, 2)  # front 2
    set_book(book, [(99, 3), (98, 7)], ASKS)
    sim.on_book("BTCUSDT", book, 1)  # +1 behind: front 2, back 1
    # level 3 -> 0: chg 3, p = 1/(1+4) = 0.2; queue = 2 - 0.8*3 + min(1 - 0.6, 0) = -0.4,
    # min(-0.4, new 0) = -0.4 (the level emptied: we are at the front)
    set_book(book, [(98, 7)], ASKS)
    sim.on_book("BTCUSDT", book, 2)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(-0.4)
    # sell 1 @ 99: queue -1.4 -> floor(1.4) = 1 lot past the front: fill 1, leaves 1
    assert fills(sim.on_trade("BTCUSDT", 3, 99, 1, SELL)) == [("b#1", 99, 1, 1)]


def test_exchange_prob_power_depth_increase_goes_behind() -> None:
    sim = make_sim("prob_power")
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 100, 1)  # improves the touch: queue 0
    set_book(book, [(100, 8), (99, 5)], ASKS)  # others join at 100 behind us
    sim.on_book("BTCUSDT", book, 1)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 0.0
    # sell 1 @ 100: queue -1 -> we are first: fill 1
    assert fills(sim.on_trade("BTCUSDT", 2, 100, 1, SELL)) == [("b#1", 100, 1, 0)]


# -- latency ----------------------------------------------------------------------------------


def test_exchange_order_arrives_after_entry_latency() -> None:
    sim = make_sim(entry_ns=1_000)
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    sim.send(submit("b", BUY, 100, 1), 0)
    assert sim.advance(999) == []
    assert sim.open_orders("BTCUSDT") == []
    (ev,) = sim.advance(1_000)
    assert isinstance(ev, OrderAccepted) and ev.ts_exch_ns == 1_000


def test_exchange_cross_before_arrival_does_not_fill() -> None:
    sim = make_sim(entry_ns=1_000)
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    sim.send(submit("b", BUY, 100, 1), 0)
    set_book(book, [(99, 5)], [(100, 1)])  # t=500: ask at 100 would cross our bid, not there yet
    assert sim.on_book("BTCUSDT", book, 500) == []
    assert sim.on_trade("BTCUSDT", 600, 99, 5, SELL) == []  # a trade through it: not there yet
    set_book(book, BIDS, ASKS)  # t=800: back to normal
    assert sim.on_book("BTCUSDT", book, 800) == []
    ev = sim.advance(1_000)
    assert [type(e) for e in ev] == [OrderAccepted]


def test_exchange_due_command_sees_book_before_the_event() -> None:
    sim = make_sim(entry_ns=1_000)
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    sim.send(submit("b", BUY, 99, 1), 0)  # arrives at 1000
    # the next event is at 1500 and grows 99 from 5 to 8: the order was there since 1000 with 5
    # ahead, and the 3 new lots joined behind it -> queue 5 (not 8)
    set_book(book, [(99, 8), (98, 7)], ASKS)
    ev = sim.on_book("BTCUSDT", book, 1_500)
    assert isinstance(ev[0], OrderAccepted) and ev[0].ts_exch_ns == 1_000
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 5.0


def test_exchange_fill_while_cancel_in_flight_then_cancel_unknown() -> None:
    sim = make_sim(cancel_ns=1_000)
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 99, 2)
    sim.send(cancel("b"), 2_000)  # arrives at 3000
    # t=2500: sell 5 @ 98 goes through our bid: 2 fill before the cancel lands
    assert fills(sim.on_trade("BTCUSDT", 2_500, 98, 5, SELL)) == [("b#1", 99, 2, 0)]
    (ev,) = sim.advance(3_000)
    assert isinstance(ev, OrderRejected) and ev.reason == "unknown_order"


def test_exchange_partial_fill_while_cancel_in_flight_then_rest_canceled() -> None:
    sim = make_sim(cancel_ns=1_000)
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 99, 5)
    sim.send(cancel("b"), 2_000)
    assert fills(sim.on_trade("BTCUSDT", 2_500, 98, 2, SELL)) == [("b#1", 99, 2, 3)]
    (ev,) = sim.on_trade("BTCUSDT", 3_000, 98, 2, SELL)  # the cancel lands first
    assert isinstance(ev, OrderCanceled) and ev.ts_exch_ns == 3_000
    assert sim.open_orders("BTCUSDT") == []


def test_exchange_cancel_never_overtakes_its_submit() -> None:
    sim = make_sim(entry_ns=1_000, cancel_ns=10)
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    sim.send(submit("b", BUY, 99, 1), 0)  # arrives 1000
    sim.send(cancel("b"), 1)  # 1 + 10 = 11, held behind the submit: 1000
    assert sim.in_flight == 2
    ev = sim.advance(1_000)
    assert [type(e) for e in ev] == [OrderAccepted, OrderCanceled]


def test_exchange_set_latency_applies_to_later_commands() -> None:
    sim = make_sim(entry_ns=100)
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    sim.set_latency(5_000, 5_000)
    sim.send(submit("b", BUY, 99, 1), 0)
    assert sim.advance(4_999) == []
    assert len(sim.advance(5_000)) == 1
    with pytest.raises(ValueError):
        sim.set_latency(-1, 0)


# -- ids, fees, symbols, impact ---------------------------------------------------------------


def _scripted_run() -> list:
    sim = make_sim("prob_power")
    book = make_book(BIDS, ASKS)
    out = rest(sim, book, "b", BUY, 99, 4)
    out += sim.on_trade("BTCUSDT", 1, 99, 6, SELL)  # queue 5 - 6 = -1: fill 1
    out += sim.on_trade("BTCUSDT", 2, 98, 2, SELL)  # through: fill 2
    out += sim.on_trade("BTCUSDT", 3, 98, 9, SELL)  # through: fill the last 1
    return out


def test_exchange_fill_ids_are_deterministic_per_order() -> None:
    first, second = _scripted_run(), _scripted_run()
    assert first == second
    assert fills(first) == [("b#1", 99, 1, 3), ("b#2", 99, 2, 1), ("b#3", 99, 1, 0)]


def test_exchange_fill_fee_is_maker_rate_times_notional() -> None:
    sim = make_sim()
    book = make_book([(650_000, 5)], [(650_010, 5)])
    rest(sim, book, "b", BUY, 650_005, 3)
    (f,) = sim.on_trade("BTCUSDT", 1, 650_000, 3, SELL)
    # 0.0002 * 65000.5 USDT * 0.003 BTC = 0.0390003 USDT
    assert f.liquidity == MAKER
    assert f.fee_quote == pytest.approx(0.0002 * 65_000.5 * 0.003)


def test_exchange_symbols_are_independent() -> None:
    sim = make_sim()
    btc = make_book(BIDS, ASKS)
    eth = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", btc, 0)
    sim.on_book("ETHUSDT", eth, 0)
    sim.send(submit("b", BUY, 99, 1), 0)
    sim.send(submit("e", BUY, 99, 1, symbol="ETHUSDT"), 0)
    assert [type(e) for e in sim.advance(0)] == [OrderAccepted, OrderAccepted]
    ev = sim.on_trade("ETHUSDT", 1, 98, 1, SELL)
    assert fills(ev) == [("e#1", 99, 1, 0)]
    assert ev[0].symbol == "ETHUSDT"
    assert sim.open_orders("BTCUSDT") == [("b", BUY, 99, 1)]
    set_book(eth, [(98, 1)], [(99, 1)])  # ETH crosses 99; BTC's order is not affected
    assert sim.on_book("ETHUSDT", eth, 2) == []
    assert sim.open_orders("BTCUSDT") == [("b", BUY, 99, 1)]


def test_exchange_never_modifies_the_book_and_a_print_fills_at_most_its_size() -> None:
    sim = make_sim("prob_power")
    book = make_book(BIDS, ASKS)
    before = [a.copy() for a in (book.bid_px, book.bid_qty, book.ask_px, book.ask_qty)]
    counts = (book.n_bids, book.n_asks)
    rest(sim, book, "a", BUY, 100, 3)
    rest(sim, book, "b", BUY, 100, 3)
    # one sell 3 @ 99 goes through both of our bids (6 lots): the print's 3 lots go to the
    # first in time priority, "a": min(3, 3) = 3, budget 3 - 3 = 0 -> "b" gets nothing.
    # 3 lots in total, not 3 + 3 = 6.
    ev = sim.on_trade("BTCUSDT", 1, 99, 3, SELL)
    assert fills(ev) == [("a#1", 100, 3, 0)]
    # the next print (sell 2 @ 99) reaches "b": min(2, 3) = 2, leaves 1
    assert fills(sim.on_trade("BTCUSDT", 2, 99, 2, SELL)) == [("b#1", 100, 2, 1)]
    after = (book.bid_px, book.bid_qty, book.ask_px, book.ask_qty)
    assert all(np.array_equal(x, y) for x, y in zip(before, after, strict=True))
    assert (book.n_bids, book.n_asks) == counts


def test_exchange_sell_side_mirrors_buy_side() -> None:
    sim = make_sim("risk_averse")
    book = make_book(BIDS, ASKS)
    rest(sim, book, "s", SELL, 101, 3)  # 4 ahead
    assert sim.on_trade("BTCUSDT", 1, 101, 4, SELL) == []  # a taker sell hits bids, not us
    # buy 5 @ 101: queue 4 - 5 = -1 -> fill 1
    assert fills(sim.on_trade("BTCUSDT", 2, 101, 5, BUY)) == [("s#1", 101, 1, 2)]
    # buy 1 @ 102 > 101: through, fill min(1, 2) = 1
    assert fills(sim.on_trade("BTCUSDT", 3, 102, 1, BUY)) == [("s#2", 101, 1, 1)]


def test_exchange_bad_trade_raises() -> None:
    sim = make_sim()
    with pytest.raises(ValueError):
        sim.on_trade("BTCUSDT", 0, 100, 0, SELL)
    with pytest.raises(ValueError):
        sim.on_trade("BTCUSDT", 0, 100, 1, 0)


# -- time order: backfilled and out-of-order prints ----------------------------------------------


def test_exchange_backfilled_trade_before_activation_neither_fills_nor_advances() -> None:
    sim = make_sim("risk_averse", entry_ns=1_000)
    book = make_book(BIDS, ASKS)
    sim.on_book("BTCUSDT", book, 0)
    sim.send(submit("b", BUY, 99, 2), 0)  # active at 0 + 1000
    (acc,) = sim.on_book("BTCUSDT", book, 1_500)
    assert isinstance(acc, OrderAccepted) and acc.ts_exch_ns == 1_000
    # a REST backfill arrives now with prints stamped 400 (before the order existed):
    # through us (sell 5 @ 98) and at our price (sell 4 @ 99): no fill, queue still 5
    assert sim.on_trade("BTCUSDT", 400, 98, 5, SELL) == []
    assert sim.on_trade("BTCUSDT", 400, 99, 4, SELL) == []
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 5.0
    # stamped exactly at the activation: still not ours
    assert sim.on_trade("BTCUSDT", 1_000, 98, 5, SELL) == []
    # a print stamped after it: sell 1 @ 98 fills min(1, 2) = 1, leaves 1
    assert fills(sim.on_trade("BTCUSDT", 1_600, 98, 1, SELL)) == [("b#1", 99, 1, 1)]


def test_exchange_out_of_order_print_after_activation_still_fills() -> None:
    sim = make_sim("risk_averse")
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 99, 2, t=100)  # active at 100, queue 5
    sim.on_book("BTCUSDT", book, 300)  # the book moves on to 300 (level unchanged)
    # a print stamped 200 (after our activation) arrives late: it counts. Our level did not
    # change in the book, so nothing of it was counted yet: queue 5 - 6 = -1 -> fill 1
    assert fills(sim.on_trade("BTCUSDT", 200, 99, 6, SELL)) == [("b#1", 99, 1, 1)]


@pytest.mark.parametrize("book_first", [False, True])
def test_exchange_prob_power_book_and_trade_in_either_order(book_first: bool) -> None:
    sim = make_sim("prob_power", power=2.0)
    book = make_book(BIDS, ASKS)
    _behind_six(sim, book)  # level 10 at 99: front 4, back 6 (book at t=1)
    # sell 2 @ 99 stamped 2 and the book delta 10 -> 7 stamped 2 (2 traded + 1 canceled)
    set_book(book, [(99, 7), (98, 7)], ASKS)
    if book_first:
        sim.on_book("BTCUSDT", book, 2)  # chg 3: queue 4 - (16/52) * 3 = 4 - 48/52
        assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(4 - 48 / 52)
        assert sim.on_trade("BTCUSDT", 2, 99, 2, SELL) == []
        # the trade is in that decrease (stamped <= the book): of its 2 lots the model
        # counted 16/52 ahead of us, the rest 2 * 36/52 now: 4 - 48/52 - 72/52 = 4 - 120/52
        # = 1.6923 = 4 - 2 (the trade) - (16/52) * 1 (the cancel). The old rule subtracted
        # the whole 2 again: 4 - 48/52 - 2 = 1.0769.
        assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(4 - 120 / 52)
    else:
        assert sim.on_trade("BTCUSDT", 2, 99, 2, SELL) == []  # queue 4 - 2 = 2
        sim.on_book("BTCUSDT", book, 3)
        # chg = 3 - 2 = 1, front 2, back 8: p = 64/68 -> queue 2 - (4/68) * 1
        assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(2 - 4 / 68)


@pytest.mark.parametrize("book_first", [False, True])
def test_exchange_prob_log_book_and_trade_in_either_order(book_first: bool) -> None:
    sim = make_sim("prob_log")
    book = make_book(BIDS, ASKS)
    _behind_six(sim, book)  # front 4, back 6, level 10
    set_book(book, [(99, 7), (98, 7)], ASKS)  # 10 -> 7: a 2-lot print + a 1-lot cancel
    if book_first:
        sim.on_book("BTCUSDT", book, 2)
        # p = ln 7 / (ln 7 + ln 5) = 0.54732; queue 4 - 0.45268 * 3 = 2.64195 (dec 3, adv
        # 1.35805); late print of 2: + 2 * (1 - 0.45268) = 1.09463 -> 1.54732
        # = 4 - 2 - 0.45268 * 1
        sim.on_trade("BTCUSDT", 2, 99, 2, SELL)
        p = math.log(7) / (math.log(7) + math.log(5))
        assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(4 - 2 - (1 - p))
        assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(1.54732, abs=1e-5)
    else:
        sim.on_trade("BTCUSDT", 2, 99, 2, SELL)  # queue 2
        sim.on_book("BTCUSDT", book, 3)
        # chg 1, front 2, back 8: p = ln 9 / (ln 9 + ln 3) = 2/3 -> queue 2 - 1/3
        assert queue_ahead_lots(sim, "BTCUSDT", "b") == pytest.approx(2 - 1 / 3)


# -- several orders share one print ------------------------------------------------------------


def test_exchange_ladder_one_print_fills_at_most_its_size() -> None:
    sim = make_sim("risk_averse")
    book = make_book(BIDS, ASKS)
    # a 3-level bid ladder of 2 lots each at 100 (improves: queue 0), 99 (5 ahead), 98 (7 ahead)
    rest(sim, book, "l0", BUY, 100, 2)
    rest(sim, book, "l1", BUY, 99, 2)
    rest(sim, book, "l2", BUY, 98, 2)
    # sell 3 @ 97 sweeps through all three levels (6 lots of ours): best price first:
    # l0 min(3, 2) = 2 (budget 1), l1 min(1, 2) = 1 (budget 0), l2 nothing -> 3 lots in total
    ev = sim.on_trade("BTCUSDT", 1, 97, 3, SELL)
    assert fills(ev) == [("l0#1", 100, 2, 0), ("l1#1", 99, 1, 1)]
    assert sum(f.qty_lots for f in ev if isinstance(f, OrderFilled)) == 3


def test_exchange_ladder_print_at_inner_level_serves_through_orders_first() -> None:
    sim = make_sim("risk_averse")
    book = make_book(BIDS, ASKS)
    rest(sim, book, "in", BUY, 100, 2)  # queue 0 at 100
    rest(sim, book, "at", BUY, 99, 2)  # queue 5 at 99
    # sell 8 @ 99: through "in" (100 > 99): min(8, 2) = 2, budget 6; at "at": queue
    # 5 - 8 = -3 -> k 3, min(3, 6, 2) = 2 -> 4 lots in total (<= 8)
    ev = sim.on_trade("BTCUSDT", 1, 99, 8, SELL)
    assert fills(ev) == [("in#1", 100, 2, 0), ("at#1", 99, 2, 0)]


def test_exchange_two_orders_same_price_time_priority() -> None:
    sim = make_sim("risk_averse")
    book = make_book(BIDS, ASKS)
    rest(sim, book, "first", SELL, 101, 3, t=0)  # 4 ahead
    rest(sim, book, "second", SELL, 101, 3, t=1)  # 4 ahead (we are not in the real book)
    # buy 6 @ 101: "first": queue 4 - 6 = -2 -> k 2: fill 2 (budget 4); "second": queue -2 ->
    # k 2: min(2, 4, 3) = 2 (budget 2). 4 lots <= 6
    ev = sim.on_trade("BTCUSDT", 2, 101, 6, BUY)
    assert fills(ev) == [("first#1", 101, 2, 1), ("second#1", 101, 2, 1)]
    # buy 1 @ 101: both at the front (queue 0): "first" takes the only lot
    assert fills(sim.on_trade("BTCUSDT", 3, 101, 1, BUY)) == [("first#2", 101, 1, 0)]


# -- partial fills keep the order's place --------------------------------------------------------


def test_exchange_partial_fill_then_rest_fills_from_the_front() -> None:
    sim = make_sim("risk_averse", partial=True)
    book = make_book(BIDS, ASKS)
    rest(sim, book, "b", BUY, 99, 4)  # queue 5
    # sell 7 @ 99: queue 5 - 7 = -2 -> fill 2, leaves 2, queue 0 (front of the level)
    assert fills(sim.on_trade("BTCUSDT", 1, 99, 7, SELL)) == [("b#1", 99, 2, 2)]
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 0.0
    # others join behind (5 -> 9 at 99): we stay at the front
    set_book(book, [(99, 9), (98, 7)], ASKS)
    sim.on_book("BTCUSDT", book, 2)
    assert queue_ahead_lots(sim, "BTCUSDT", "b") == 0.0
    # sell 1 @ 99: -1 -> 1 lot, leaves 1; sell 5 @ 99: min(5, 5, 1) = 1, done
    assert fills(sim.on_trade("BTCUSDT", 3, 99, 1, SELL)) == [("b#2", 99, 1, 1)]
    assert fills(sim.on_trade("BTCUSDT", 4, 99, 5, SELL)) == [("b#3", 99, 1, 0)]

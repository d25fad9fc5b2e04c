"""Orders: every legal transition, and illegal ones raising InvariantViolation."""

from __future__ import annotations

import pytest

from mmd.errors import InvariantViolation
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
from mmd.strategy.order_diff import OpenOrder
from mmd.trading.orders import Orders, OrderStatus

SYM = "BTCUSDT"


def submit(coid: str = "o1", side: int = BUY, px: int = 1000, qty: int = 5) -> SubmitOrder:
    return SubmitOrder(client_order_id=coid, symbol=SYM, side=side, px_ticks=px, qty_lots=qty)


def accepted(coid: str = "o1", side: int = BUY, px: int = 1000, qty: int = 5) -> OrderAccepted:
    return OrderAccepted(
        client_order_id=coid, symbol=SYM, side=side, px_ticks=px, qty_lots=qty, ts_exch_ns=1
    )


def fill(
    coid: str = "o1", qty: int = 2, leaves: int = 3, side: int = BUY, fid: str = "f1"
) -> OrderFilled:
    return OrderFilled(
        fill_id=fid,
        client_order_id=coid,
        symbol=SYM,
        side=side,
        px_ticks=1000,
        qty_lots=qty,
        leaves_lots=leaves,
        liquidity=MAKER,
        fee_quote=0.0,
        ts_exch_ns=2,
    )


def cancel(coid: str = "o1") -> CancelOrder:
    return CancelOrder(client_order_id=coid, symbol=SYM)


def canceled(coid: str = "o1") -> OrderCanceled:
    return OrderCanceled(client_order_id=coid, symbol=SYM, ts_exch_ns=3)


def rejected(coid: str = "o1") -> OrderRejected:
    return OrderRejected(client_order_id=coid, symbol=SYM, reason="post_only", ts_exch_ns=1)


def status(oms: Orders, coid: str = "o1") -> OrderStatus | None:
    """The status of a non-terminal order, as the trader sees it (`orders()`), or None."""
    return next((o.status for o in oms.orders() if o.client_order_id == coid), None)


def live(oms: Orders) -> Orders:
    oms.on_command(submit())
    oms.on_event(accepted())
    return oms


def test_oms_submit_then_accept_is_accepted() -> None:
    oms = Orders()
    oms.on_command(submit())
    assert status(oms) is OrderStatus.PENDING_NEW
    order = oms.on_event(accepted())
    assert order.status is OrderStatus.ACCEPTED
    assert oms.counters.submitted == 1 and oms.counters.accepted == 1


def test_oms_submit_then_reject_is_terminal() -> None:
    oms = Orders()
    oms.on_command(submit())
    assert oms.on_event(rejected()).status is OrderStatus.REJECTED
    assert status(oms) is None and oms.open_orders(SYM) == []
    assert oms.counters.rejected == 1


def test_oms_partial_then_full_fill_is_filled() -> None:
    oms = live(Orders())
    assert oms.on_event(fill(qty=2, leaves=3)).status is OrderStatus.PARTIALLY_FILLED
    assert oms.open_orders(SYM) == [OpenOrder("o1", BUY, 1000, 3)]
    assert oms.on_event(fill(qty=1, leaves=2, fid="f2")).status is OrderStatus.PARTIALLY_FILLED
    assert oms.on_event(fill(qty=2, leaves=0, fid="f3")).status is OrderStatus.FILLED
    assert status(oms) is None and oms.open_orders(SYM) == []
    assert (oms.counters.fills, oms.counters.filled, oms.counters.filled_lots) == (3, 1, 5)


def test_oms_accepted_full_fill_is_filled() -> None:
    oms = live(Orders())
    assert oms.on_event(fill(qty=5, leaves=0)).status is OrderStatus.FILLED


def test_oms_cancel_then_canceled_is_canceled() -> None:
    oms = live(Orders())
    oms.on_command(cancel())
    assert status(oms) is OrderStatus.PENDING_CANCEL
    assert oms.on_event(canceled()).status is OrderStatus.CANCELED
    assert oms.counters.cancel_requests == 1 and oms.counters.canceled == 1


def test_oms_cancel_partially_filled_is_pending_cancel() -> None:
    oms = live(Orders())
    oms.on_event(fill(qty=2, leaves=3))
    oms.on_command(cancel())
    assert status(oms) is OrderStatus.PENDING_CANCEL
    assert oms.on_event(canceled()).status is OrderStatus.CANCELED


def test_oms_fill_while_pending_cancel_is_legal() -> None:
    oms = live(Orders())
    oms.on_command(cancel())
    assert oms.on_event(fill(qty=2, leaves=3)).status is OrderStatus.PENDING_CANCEL
    assert [o.leaves_lots for o in oms.orders()] == [3]
    assert oms.on_event(canceled()).status is OrderStatus.CANCELED


def test_oms_fill_wins_cancel_race_is_filled() -> None:
    oms = live(Orders())
    oms.on_command(cancel())
    assert oms.on_event(fill(qty=5, leaves=0)).status is OrderStatus.FILLED
    # the venue refuses the late cancel (mmd.sim: OrderRejected "unknown_order"): legal once
    assert oms.on_event(rejected()).status is OrderStatus.FILLED
    assert oms.counters.cancel_rejects == 1
    with pytest.raises(InvariantViolation, match="finished"):
        oms.on_event(rejected())
    # an OrderCanceled after the order filled is a bug
    with pytest.raises(InvariantViolation, match="finished"):
        oms.on_event(canceled())


def test_oms_cancel_rejected_order_rests_again() -> None:
    oms = live(Orders())
    oms.on_command(cancel())
    assert oms.on_event(rejected()).status is OrderStatus.ACCEPTED
    oms.on_event(fill(qty=2, leaves=3))
    oms.on_command(cancel())
    assert oms.on_event(rejected()).status is OrderStatus.PARTIALLY_FILLED
    assert oms.open_orders(SYM) == [OpenOrder("o1", BUY, 1000, 3)]
    assert oms.counters.cancel_rejects == 2


def test_oms_reject_of_plain_filled_order_raises() -> None:
    oms = live(Orders())
    oms.on_event(fill(qty=5, leaves=0))
    with pytest.raises(InvariantViolation):
        oms.on_event(rejected())


@pytest.mark.parametrize(
    "setup,step",
    [
        # accepted twice
        ("live", accepted()),
        # fill or cancel ack while pending new
        ("pending", fill()),
        ("pending", canceled()),
        # reject after accept
        ("live", rejected()),
        # canceled without a cancel request
        ("live", canceled()),
        # cancel of a pending-new order, of a pending-cancel order
        ("pending", cancel()),
        ("pending_cancel", cancel()),
        # events for an unknown order
        ("empty", accepted()),
        ("empty", fill()),
        ("empty", cancel()),
        # reused id
        ("pending", submit()),
        ("filled", submit()),
        # fill inconsistent with leaves / side / oversize / zero size
        ("live", fill(qty=2, leaves=2)),
        ("live", fill(qty=6, leaves=-1)),
        ("live", fill(qty=2, leaves=3, side=SELL)),
        ("live", fill(qty=0, leaves=5)),
        # events after a terminal state
        ("filled", fill(fid="f9")),
        ("filled", cancel()),
        ("rejected", accepted()),
    ],
)
def test_oms_illegal_transition_raises_invariant_violation(setup: str, step: object) -> None:
    oms = Orders()
    if setup != "empty":
        oms.on_command(submit())
    if setup in ("live", "pending_cancel", "filled"):
        oms.on_event(accepted())
    if setup == "pending_cancel":
        oms.on_command(cancel())
    if setup == "filled":
        oms.on_event(fill(qty=5, leaves=0))
    if setup == "rejected":
        oms.on_event(rejected())
    with pytest.raises(InvariantViolation):
        if isinstance(step, SubmitOrder | CancelOrder):
            oms.on_command(step)
        else:
            oms.on_event(step)  # type: ignore[arg-type]


def test_oms_accept_not_matching_submit_raises() -> None:
    oms = Orders()
    oms.on_command(submit())
    with pytest.raises(InvariantViolation):
        oms.on_event(accepted(px=1001))


def test_oms_bad_submit_raises() -> None:
    with pytest.raises(InvariantViolation):
        Orders().on_command(submit(qty=0))
    with pytest.raises(InvariantViolation):
        Orders().on_command(submit(side=0))


def test_oms_event_for_other_symbol_raises() -> None:
    oms = Orders()
    oms.on_command(submit())
    with pytest.raises(InvariantViolation):
        oms.on_event(
            OrderAccepted(
                client_order_id="o1",
                symbol="ETHUSDT",
                side=BUY,
                px_ticks=1000,
                qty_lots=5,
                ts_exch_ns=1,
            )
        )


def test_oms_open_orders_include_pending_new_exclude_pending_cancel() -> None:
    oms = Orders()
    oms.on_command(submit("a", BUY, 1000, 1))
    oms.on_command(submit("b", SELL, 1010, 2))
    oms.on_event(accepted("b", SELL, 1010, 2))
    oms.on_command(submit("c", SELL, 1011, 3))
    oms.on_event(accepted("c", SELL, 1011, 3))
    oms.on_command(cancel("c"))
    assert oms.open_orders(SYM) == [OpenOrder("a", BUY, 1000, 1), OpenOrder("b", SELL, 1010, 2)]
    assert oms.open_orders("ETHUSDT") == []
    # the risk gate's worst case counts every non-terminal order
    assert oms.open_lots(SYM, BUY) == 1 and oms.open_lots(SYM, SELL) == 5


def test_oms_filter_cancels_drops_pending_new_and_pending_cancel() -> None:
    oms = Orders()
    oms.on_command(submit("a"))
    oms.on_command(submit("b"))
    oms.on_event(accepted("b"))
    oms.on_command(submit("c"))
    oms.on_event(accepted("c"))
    oms.on_command(cancel("c"))
    new = submit("d")
    cmds = [cancel("a"), cancel("b"), cancel("c"), new]
    assert oms.filter_cancels(cmds) == [cancel("b"), new]


def test_oms_terminal_memory_is_bounded() -> None:
    oms = Orders(terminal_memory=3)
    for i in range(10):
        oms.on_command(submit(f"o{i}"))
        oms.on_event(rejected(f"o{i}"))
    # a late event for a remembered order names it finished; o0 is forgotten (unknown)
    with pytest.raises(InvariantViolation, match=r"finished \(REJECTED\) order o9"):
        oms.on_event(canceled("o9"))
    with pytest.raises(InvariantViolation, match="unknown order o0"):
        oms.on_event(canceled("o0"))

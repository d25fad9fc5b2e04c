"""Order state machine keyed by client_order_id: commands sent and order events received.

Owns the lifecycle of every order of ours; an illegal transition is a bug and raises
InvariantViolation (crash). It sends nothing and does no I/O.

    PENDING_NEW --OrderAccepted--> ACCEPTED --OrderFilled--> PARTIALLY_FILLED --...--> FILLED
    PENDING_NEW --OrderRejected--> REJECTED
    ACCEPTED | PARTIALLY_FILLED --CancelOrder--> PENDING_CANCEL --OrderCanceled--> CANCELED
    PENDING_CANCEL --OrderFilled--> PENDING_CANCEL (leaves > 0) | FILLED (the fill won the race)

Cancel rejects: the venue answers a cancel it cannot honour with OrderRejected (mmd.sim.exchange:
"unknown_order" when the order filled in full before the cancel arrived). So OrderRejected is
also legal on PENDING_CANCEL (the venue kept the order: back to ACCEPTED / PARTIALLY_FILLED) and,
once, on an order that FILLED while PENDING_CANCEL (no change). Everything else raises.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from mmd.errors import InvariantViolation
from mmd.model.codes import BUY, SELL
from mmd.model.events import (
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.strategy.order_diff import OpenOrder


class OrderStatus(enum.IntEnum):
    """Where an order is in its lifecycle."""

    PENDING_NEW = 1
    ACCEPTED = 2
    PARTIALLY_FILLED = 3
    PENDING_CANCEL = 4
    FILLED = 5
    CANCELED = 6
    REJECTED = 7


# states in which the venue may still fill the order
_FILLABLE = frozenset(
    {OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL}
)
_CANCELABLE = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})


@dataclass(slots=True)
class Order:
    """Mutable working state of one order.

    Attributes:
        client_order_id: our id.
        symbol: venue symbol.
        side: codes.BUY or codes.SELL.
        px_ticks: limit price in ticks.
        qty_lots: original size in lots.
        leaves_lots: size still open in lots.
        status: the lifecycle state.
        ts_exch_ns: venue time of the last event applied (0 before the first event).
    """

    client_order_id: str
    symbol: str
    side: int
    px_ticks: int
    qty_lots: int
    leaves_lots: int
    status: OrderStatus
    ts_exch_ns: int = 0


@dataclass(slots=True)
class OmsCounters:
    """Monotonic counts for metrics (mmd_orders_*_total)."""

    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    cancel_requests: int = 0
    canceled: int = 0
    fills: int = 0
    filled: int = 0
    filled_lots: int = 0
    cancel_rejects: int = 0


class Orders:
    """The order state machine for every symbol (our orders, keyed by client_order_id).

    Args:
        terminal_memory: how many recently finished order ids are remembered, so that a late
            event for a finished order or a reused id is reported as such (bounded memory).
    """

    def __init__(self, terminal_memory: int = 10_000) -> None:
        self._active: dict[str, Order] = {}
        self._by_symbol: dict[str, dict[str, Order]] = {}
        self._done: OrderedDict[str, Order] = OrderedDict()
        # orders that filled in full while a cancel was in flight: the venue's cancel reject
        # for them is still to come (and is legal once)
        self._raced: set[str] = set()
        self._terminal_memory = terminal_memory
        self.counters = OmsCounters()

    # -- commands ---------------------------------------------------------------------------

    def on_command(self, cmd: SubmitOrder | CancelOrder) -> None:
        """Record a command that is being sent to the exchange.

        Raises:
            InvariantViolation: a reused id, a malformed order, or a cancel of an order that is
                not ACCEPTED or PARTIALLY_FILLED.
        """
        if isinstance(cmd, SubmitOrder):
            self._on_submit(cmd)
        elif isinstance(cmd, CancelOrder):
            order = self._require(cmd.client_order_id, "CancelOrder")
            self._check_symbol(order, cmd.symbol, "CancelOrder")
            if order.status not in _CANCELABLE:
                self._illegal(order, "CancelOrder")
            order.status = OrderStatus.PENDING_CANCEL
            self.counters.cancel_requests += 1
        else:
            raise InvariantViolation(f"unknown command {type(cmd).__name__}")

    def _on_submit(self, cmd: SubmitOrder) -> None:
        coid = cmd.client_order_id
        if coid in self._active or coid in self._done:
            raise InvariantViolation(f"order {coid}: client_order_id reused")
        if cmd.side not in (BUY, SELL) or cmd.qty_lots <= 0 or cmd.px_ticks <= 0:
            raise InvariantViolation(
                f"order {coid}: bad submit side={cmd.side} px={cmd.px_ticks} qty={cmd.qty_lots}"
            )
        order = Order(
            client_order_id=coid,
            symbol=cmd.symbol,
            side=cmd.side,
            px_ticks=cmd.px_ticks,
            qty_lots=cmd.qty_lots,
            leaves_lots=cmd.qty_lots,
            status=OrderStatus.PENDING_NEW,
        )
        self._add(order)
        self.counters.submitted += 1

    # -- events -----------------------------------------------------------------------------

    def on_event(self, ev: OrderAccepted | OrderRejected | OrderFilled | OrderCanceled) -> Order:
        """Apply an order event from the exchange.

        Returns:
            The order after the event (terminal orders are no longer tracked as open; a
            late cancel reject returns the finished order unchanged).

        Raises:
            InvariantViolation: an event for an unknown or finished order, an event that is not
                legal in the order's state, or one inconsistent with the order (side, price,
                size, leaves).
        """
        name = type(ev).__name__
        if isinstance(ev, OrderRejected) and ev.client_order_id in self._raced:
            self._raced.discard(ev.client_order_id)
            self.counters.cancel_rejects += 1
            return self._done[ev.client_order_id]
        order = self._require(ev.client_order_id, name)
        self._check_symbol(order, ev.symbol, name)
        if isinstance(ev, OrderAccepted):
            if order.status is not OrderStatus.PENDING_NEW:
                self._illegal(order, name)
            if (ev.side, ev.px_ticks, ev.qty_lots) != (order.side, order.px_ticks, order.qty_lots):
                raise InvariantViolation(f"order {order.client_order_id}: accepted != submitted")
            order.status = OrderStatus.ACCEPTED
            self.counters.accepted += 1
        elif isinstance(ev, OrderRejected):
            if order.status is OrderStatus.PENDING_NEW:
                order.leaves_lots = 0
                self._finish(order, OrderStatus.REJECTED)
                self.counters.rejected += 1
            elif order.status is OrderStatus.PENDING_CANCEL:
                # the cancel was refused and the order still rests
                partial = order.leaves_lots < order.qty_lots
                order.status = OrderStatus.PARTIALLY_FILLED if partial else OrderStatus.ACCEPTED
                self.counters.cancel_rejects += 1
            else:
                self._illegal(order, name)
        elif isinstance(ev, OrderFilled):
            self._on_fill(order, ev)
        elif isinstance(ev, OrderCanceled):
            if order.status is not OrderStatus.PENDING_CANCEL:
                self._illegal(order, name)
            order.leaves_lots = 0
            self._finish(order, OrderStatus.CANCELED)
            self.counters.canceled += 1
        else:
            raise InvariantViolation(f"unknown order event {name}")
        order.ts_exch_ns = ev.ts_exch_ns
        return order

    def _on_fill(self, order: Order, ev: OrderFilled) -> None:
        if order.status not in _FILLABLE:
            self._illegal(order, "OrderFilled")
        leaves = order.leaves_lots - ev.qty_lots
        if ev.qty_lots <= 0 or ev.side != order.side or leaves < 0 or leaves != ev.leaves_lots:
            raise InvariantViolation(
                f"order {order.client_order_id}: fill {ev.fill_id} qty={ev.qty_lots} "
                f"side={ev.side} leaves={ev.leaves_lots} inconsistent with leaves="
                f"{order.leaves_lots} side={order.side}"
            )
        order.leaves_lots = leaves
        self.counters.fills += 1
        self.counters.filled_lots += ev.qty_lots
        if leaves == 0:
            if order.status is OrderStatus.PENDING_CANCEL:
                self._raced.add(order.client_order_id)
            self._finish(order, OrderStatus.FILLED)
            self.counters.filled += 1
        elif order.status is OrderStatus.ACCEPTED:
            order.status = OrderStatus.PARTIALLY_FILLED
        # PARTIALLY_FILLED and PENDING_CANCEL stay as they are

    # -- queries ----------------------------------------------------------------------------

    def open_orders(self, symbol: str) -> list[OpenOrder]:
        """The orders the strategy diffs against: live or in flight, and not being cancelled.

        Includes PENDING_NEW (so an in-flight submit is not sent twice), ACCEPTED and
        PARTIALLY_FILLED (qty_lots = leaves). Excludes PENDING_CANCEL (already leaving: never
        re-cancelled, and its level is free to be quoted again). A PENDING_NEW order cannot be
        cancelled yet: pass the diff through `filter_cancels` before sending.
        """
        book = self._by_symbol.get(symbol)
        if not book:
            return []
        return [
            OpenOrder(o.client_order_id, o.side, o.px_ticks, o.leaves_lots, o.qty_lots)
            for o in book.values()
            if o.status is not OrderStatus.PENDING_CANCEL
        ]

    def open_lots(self, symbol: str, side: int) -> int:
        """Lots that could still fill on one side: every non-terminal order, pending ones too.

        This is the worst case the risk gate adds to the position.
        """
        book = self._by_symbol.get(symbol)
        if not book:
            return 0
        return sum(o.leaves_lots for o in book.values() if o.side == side)

    def filter_cancels(
        self, cmds: Sequence[SubmitOrder | CancelOrder]
    ) -> list[SubmitOrder | CancelOrder]:
        """Drop cancels that must not be sent now; keep everything else in order.

        A cancel of a PENDING_NEW order is deferred (the next diff after its acceptance cancels
        it again); a cancel of a PENDING_CANCEL order is a duplicate. Cancels of unknown or
        finished orders are kept so that `on_command` reports the bug.
        """
        out: list[SubmitOrder | CancelOrder] = []
        for cmd in cmds:
            if isinstance(cmd, CancelOrder):
                order = self._active.get(cmd.client_order_id)
                if order is not None and order.status not in _CANCELABLE:
                    continue
            out.append(cmd)
        return out

    def orders(self, symbol: str | None = None) -> list[Order]:
        """Every non-terminal order (of one symbol, or all), in submission order."""
        if symbol is None:
            return list(self._active.values())
        return list(self._by_symbol.get(symbol, {}).values())

    # -- internals --------------------------------------------------------------------------

    def _add(self, order: Order) -> None:
        self._active[order.client_order_id] = order
        self._by_symbol.setdefault(order.symbol, {})[order.client_order_id] = order

    def _finish(self, order: Order, status: OrderStatus) -> None:
        order.status = status
        del self._active[order.client_order_id]
        del self._by_symbol[order.symbol][order.client_order_id]
        self._done[order.client_order_id] = order
        if len(self._done) > self._terminal_memory:
            old, _ = self._done.popitem(last=False)
            self._raced.discard(old)

    def _require(self, coid: str, what: str) -> Order:
        order = self._active.get(coid)
        if order is None:
            done = self._done.get(coid)
            state = f"finished ({done.status.name})" if done is not None else "unknown"
            raise InvariantViolation(f"{what} for {state} order {coid}")
        return order

    @staticmethod
    def _check_symbol(order: Order, symbol: str, what: str) -> None:
        if symbol != order.symbol:
            raise InvariantViolation(
                f"{what} for order {order.client_order_id}: symbol {symbol} != {order.symbol}"
            )

    @staticmethod
    def _illegal(order: Order, what: str) -> NoReturn:
        raise InvariantViolation(
            f"illegal transition: {what} on order {order.client_order_id} in {order.status.name}"
        )

"""Pure diff of a QuoteTarget against the resting orders: the fewest commands that reach it.

Owns no state and sends nothing: it returns SubmitOrder/CancelOrder commands for the caller
(risk, then the exchange). Ids come from the caller's `next_id`. The matching is
`mmd.kernels.strategy.compute_order_diff` over arrays (the backtest loop's kernel); this module
converts the target and the orders to its arrays and its command buffer back to commands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mmd.kernels.strategy import (
    CMD_CANCEL,
    COMMAND_DTYPE,
    ORDER_DTYPE,
    TG_ASK_PX,
    TG_ASK_QTY,
    TG_BID_PX,
    TG_BID_QTY,
    compute_order_diff,
)
from mmd.model.events import CancelOrder, SubmitOrder
from mmd.strategy.quoter import QuoteTarget

__all__ = ["CancelOrder", "OpenOrder", "SubmitOrder", "diff_quotes", "orders_array"]


@dataclass(slots=True)
class OpenOrder:
    """A resting (or pending) order of ours, as trading.orders tracks it.

    Attributes:
        client_order_id: our id.
        side: codes.BUY or codes.SELL.
        px_ticks: limit price in ticks.
        qty_lots: remaining size in lots (the leaves once partly filled).
        orig_lots: the size it was sent with (lots); 0 = unknown, taken as qty_lots.
    """

    client_order_id: str
    side: int
    px_ticks: int
    qty_lots: int
    orig_lots: int = field(default=0, compare=False)  # not part of equality


def orders_array(open_orders: list[OpenOrder]) -> NDArray[np.void]:
    """The orders as the kernels' ORDER_DTYPE array; oid = the order's index in the list."""
    arr = np.zeros(len(open_orders), ORDER_DTYPE)
    for j, o in enumerate(open_orders):
        arr[j] = (j, o.side, o.px_ticks, o.qty_lots, o.orig_lots, 0)
    return arr


def _target_array(target: QuoteTarget) -> NDArray[np.int64]:
    n = max(1, len(target.bids), len(target.asks))
    tgt = np.zeros((4, n), np.int64)
    for i, (px, qty) in enumerate(target.bids):
        tgt[TG_BID_PX, i] = px
        tgt[TG_BID_QTY, i] = qty
    for i, (px, qty) in enumerate(target.asks):
        tgt[TG_ASK_PX, i] = px
        tgt[TG_ASK_QTY, i] = qty
    return tgt


def diff_quotes(
    target: QuoteTarget,
    open_orders: list[OpenOrder],
    tolerance_ticks: int,
    next_id: Callable[[], str],
) -> list[SubmitOrder | CancelOrder]:
    """Commands that turn the resting orders into the target, changing as little as possible.

    A resting order is kept when it is on the same side as a target level, its price is within
    tolerance_ticks of that level's price and the size it was sent with (`orig_lots`) equals
    the level's size (each order serves at most one level; exact prices are matched first, then
    the nearest within the tolerance). A partial fill alone never requotes: the remainder keeps
    its place in the queue (a cancel and resubmit would put it at the back); only a price move
    beyond the tolerance or a new target size does. When orig_lots is unknown (0) the leaves
    are compared instead. Every other resting order is cancelled and every level left without
    an order is submitted. Orders on a side the target leaves empty are all cancelled. A level
    with qty <= 0 (the Quoter never makes one) is no level.

    Args:
        target: the quote target (its symbol is used for every command).
        open_orders: our resting orders for target.symbol.
        tolerance_ticks: how far (in ticks, >= 0) a resting price may be from the target.
        next_id: returns a fresh client_order_id; called once per submit.

    Returns:
        Cancels first (in open_orders order), then submits (bids best first, then asks best
        first). Empty when the resting orders already match the target.
    """
    tgt = _target_array(target)
    orders = orders_array(open_orders)
    cmds = np.zeros(len(open_orders) + 2 * tgt.shape[1], COMMAND_DTYPE)
    done = np.zeros(2 * tgt.shape[1], np.int64)
    next_oid = np.zeros(1, np.int64)
    n = compute_order_diff(cmds, orders, next_oid, done, tgt, len(open_orders), tolerance_ticks)
    commands: list[SubmitOrder | CancelOrder] = []
    symbol = target.symbol
    for c in cmds[:n].tolist():
        kind, side, px, qty, oid, _reason = c
        if kind == CMD_CANCEL:
            commands.append(
                CancelOrder(client_order_id=open_orders[oid].client_order_id, symbol=symbol)
            )
        else:
            commands.append(
                SubmitOrder(
                    client_order_id=next_id(),
                    symbol=symbol,
                    side=side,
                    px_ticks=px,
                    qty_lots=qty,
                )
            )
    return commands

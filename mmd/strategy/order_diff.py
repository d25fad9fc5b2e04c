"""Pure diff of a QuoteTarget against the resting orders: the fewest commands that reach it.

Owns no state and sends nothing: it returns SubmitOrder/CancelOrder commands for the caller
(risk, then the exchange). Ids come from the caller's `next_id`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mmd.model.codes import BUY, SELL
from mmd.model.events import CancelOrder, SubmitOrder
from mmd.strategy.quoter import QuoteTarget

__all__ = ["CancelOrder", "OpenOrder", "SubmitOrder", "diff_quotes"]


@dataclass(slots=True)
class OpenOrder:
    """A resting (or pending) order of ours, as the order manager tracks it.

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

    def sent_lots(self) -> int:
        """The size the strategy asked for when it sent this order."""
        return self.orig_lots if self.orig_lots > 0 else self.qty_lots


def _match_side(
    levels: list[tuple[int, int]],
    orders: list[OpenOrder],
    tolerance_ticks: int,
) -> tuple[list[bool], list[bool]]:
    # pass 1 keeps exact price matches so a tolerance never drags a level off its own order;
    # pass 2 gives each still-unmatched level the nearest unused order within the tolerance
    # (ties: the earlier order). In both passes the order's size as sent must equal the level's:
    # a partly filled order (leaves < size) is kept, so its remainder keeps its queue place.
    level_done = [False] * len(levels)
    order_kept = [False] * len(orders)
    for i, (px, qty) in enumerate(levels):
        for j, order in enumerate(orders):
            if not order_kept[j] and order.px_ticks == px and order.sent_lots() == qty:
                level_done[i] = order_kept[j] = True
                break
    if tolerance_ticks > 0:
        for i, (px, qty) in enumerate(levels):
            if level_done[i]:
                continue
            best_j, best_dist = -1, tolerance_ticks + 1
            for j, order in enumerate(orders):
                dist = abs(order.px_ticks - px)
                if not order_kept[j] and order.sent_lots() == qty and dist < best_dist:
                    best_j, best_dist = j, dist
            if best_j >= 0:
                level_done[i] = order_kept[best_j] = True
    return level_done, order_kept


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
    an order is submitted. Orders on a side the target leaves empty are all cancelled.

    Args:
        target: the quote target (its symbol is used for every command).
        open_orders: our resting orders for target.symbol.
        tolerance_ticks: how far (in ticks, >= 0) a resting price may be from the target.
        next_id: returns a fresh client_order_id; called once per submit.

    Returns:
        Cancels first (in open_orders order), then submits (bids best first, then asks best
        first). Empty when the resting orders already match the target.
    """
    bids = [o for o in open_orders if o.side == BUY]
    asks = [o for o in open_orders if o.side == SELL]
    bid_done, bid_kept = _match_side(target.bids, bids, tolerance_ticks)
    ask_done, ask_kept = _match_side(target.asks, asks, tolerance_ticks)
    kept_ids = {o.client_order_id for o, k in zip(bids, bid_kept, strict=True) if k}
    kept_ids.update(o.client_order_id for o, k in zip(asks, ask_kept, strict=True) if k)

    commands: list[SubmitOrder | CancelOrder] = [
        CancelOrder(client_order_id=o.client_order_id, symbol=target.symbol)
        for o in open_orders
        if o.client_order_id not in kept_ids
    ]
    for side, levels, done in ((BUY, target.bids, bid_done), (SELL, target.asks, ask_done)):
        for (px, qty), is_done in zip(levels, done, strict=True):
            if not is_done:
                commands.append(
                    SubmitOrder(
                        client_order_id=next_id(),
                        symbol=target.symbol,
                        side=side,
                        px_ticks=px,
                        qty_lots=qty,
                    )
                )
    return commands

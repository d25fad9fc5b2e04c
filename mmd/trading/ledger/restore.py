"""Reading a ledger back: the latest checkpoint, then the journal rows after it, folded into
the fills, funding and open orders a restart rebuilds from. Reads only; never writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from mmd.errors import InvariantViolation, StateError
from mmd.model.events import (
    CancelOrder,
    FundingPaid,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.trading.ledger.records import (
    Checkpoint,
    Journaled,
    ModelVersion,
    Restored,
    RiskReset,
    check_item,
)
from mmd.trading.ledger.rows import last_snapshot
from mmd.trading.orders import Order, OrderStatus


def bad_row(path: Path, hint: str, seq: int, why: str) -> StateError:
    """The error for an undecodable or invalid ledger row (seq 0: the ledger as a whole)."""
    where = f"ledger row {seq}" if seq else "ledger"
    return StateError(f"{where} in {path} is invalid: {why}; {hint}")


def read_restored(
    conn: sqlite3.Connection,
    decoder: msgspec.json.Decoder[Journaled],
    steps: dict[str, tuple[str, str]],
    path: Path,
    hint: str,
) -> Restored:
    """Read the state back: the latest checkpoint, then the journal rows after it.

    Args:
        conn: the open ledger file.
        decoder: decodes a journaled body.
        steps: the latest instrument steps noted per symbol.
        path: the ledger file (for error messages).
        hint: how an operator gets past a ledger this run cannot use.

    Raises:
        StateError: a row is undecodable or invalid (which row, and how to recover).
    """
    fills: list[OrderFilled] = []
    fill_steps: list[tuple[str, str]] = []
    funding: list[FundingPaid] = []
    orders: dict[str, Order] = {}
    cp = last_checkpoint(conn, path, hint)
    after = 0
    if cp is not None:
        after = cp.seq
        for o in cp.orders:
            orders[o.client_order_id] = Order(
                o.client_order_id,
                o.symbol,
                o.side,
                o.px_ticks,
                o.qty_lots,
                o.leaves_lots,
                OrderStatus(o.status),
                o.ts_exch_ns,
            )
    last_seq = after
    tail = 0
    for seq, body, tick, lot in conn.execute(
        "SELECT e.seq, e.body, f.tick_size, f.lot_size FROM events e "
        "LEFT JOIN fills f ON f.seq = e.seq WHERE e.seq > ? ORDER BY e.seq",
        (after,),
    ):
        last_seq = seq
        tail += 1
        try:
            item = decoder.decode(body)
            check_item(item)
        except (msgspec.MsgspecError, InvariantViolation) as exc:
            raise bad_row(path, hint, seq, str(exc)) from None
        if isinstance(item, OrderFilled):
            if tick is None or lot is None:
                raise bad_row(path, hint, seq, "fill without its fills row or steps")
            fills.append(item)
            fill_steps.append((str(tick), str(lot)))
        elif isinstance(item, FundingPaid):
            funding.append(item)
            continue
        elif isinstance(item, RiskReset):
            continue
        fold_order(orders, item)
    live = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL)
    meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    models = [
        ModelVersion(name=n, version=v, path=p, loaded_at=t)
        for n, v, p, t in conn.execute(
            "SELECT name, version, path, loaded_at FROM model_versions ORDER BY rowid"
        )
    ]
    try:
        snapshot = last_snapshot(conn)
    except (TypeError, ValueError, InvariantViolation) as exc:
        raise bad_row(path, hint, 0, f"snapshot: {exc}") from None
    return Restored(
        fills=fills,
        funding=funding,
        open_orders=[o for o in orders.values() if o.status in live],
        in_flight_ids=[
            o.client_order_id for o in orders.values() if o.status is OrderStatus.PENDING_NEW
        ],
        last_snapshot=snapshot,
        meta=meta,
        model_versions=models,
        last_seq=last_seq,
        checkpoint=cp,
        tail_rows=tail,
        fill_steps=fill_steps,
        steps=dict(steps),
    )


def last_checkpoint(conn: sqlite3.Connection, path: Path, hint: str) -> Checkpoint | None:
    """The latest checkpoint, or None.

    Raises:
        StateError: it does not decode.
    """
    row = conn.execute("SELECT seq, body FROM checkpoints ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return None
    try:
        cp = msgspec.json.decode(row[1], type=Checkpoint)
    except msgspec.MsgspecError as exc:
        raise StateError(
            f"ledger checkpoint at row {row[0]} in {path} is invalid: {exc}; {hint}"
        ) from None
    return cp


def fold_order(
    orders: dict[str, Order],
    item: SubmitOrder | CancelOrder | OrderAccepted | OrderRejected | OrderFilled | OrderCanceled,
) -> None:
    """Apply one journaled order command or event to the orders being rebuilt."""
    # lenient replay: the journal is written before the OMS validates, so a record the OMS
    # refused (and crashed on) must not make every later restart crash too
    if isinstance(item, SubmitOrder):
        orders[item.client_order_id] = Order(
            item.client_order_id,
            item.symbol,
            item.side,
            item.px_ticks,
            item.qty_lots,
            item.qty_lots,
            OrderStatus.PENDING_NEW,
        )
        return
    order = orders.get(item.client_order_id)
    if order is None:
        return
    if isinstance(item, CancelOrder):
        if order.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            order.status = OrderStatus.PENDING_CANCEL
        return
    order.ts_exch_ns = item.ts_exch_ns
    if isinstance(item, OrderAccepted):
        if order.status is OrderStatus.PENDING_NEW:
            order.status = OrderStatus.ACCEPTED
    elif isinstance(item, OrderFilled):
        order.leaves_lots = item.leaves_lots
        if item.leaves_lots <= 0:
            del orders[item.client_order_id]
        elif order.status is OrderStatus.ACCEPTED:
            order.status = OrderStatus.PARTIALLY_FILLED
    elif isinstance(item, OrderRejected) and order.status is OrderStatus.PENDING_CANCEL:
        # a refused cancel: the order still rests
        partial = order.leaves_lots < order.qty_lots
        order.status = OrderStatus.PARTIALLY_FILLED if partial else OrderStatus.ACCEPTED
    else:  # OrderRejected of a new order, OrderCanceled
        del orders[item.client_order_id]

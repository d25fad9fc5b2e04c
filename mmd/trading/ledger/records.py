"""The ledger's records: what is journaled, the run identity, checkpoints and what a restore
returns, and the validity check every item passes before it is committed. No SQL here."""

from __future__ import annotations

import math

import msgspec

from mmd.errors import InvariantViolation
from mmd.model.events import (
    CancelOrder,
    FundingPaid,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.trading.orders import Order
from mmd.trading.portfolio import PortfolioSnapshot
from mmd.trading.position import PositionState


class RiskReset(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An operator cleared the kill switch (`mmd risk reset`); ts_exch_ns is the wall time."""

    symbol: str = ""
    reason: str
    ts_exch_ns: int


Journaled = (
    SubmitOrder
    | CancelOrder
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCanceled
    | FundingPaid
    | RiskReset
)
KINDS = frozenset(
    t.__name__
    for t in (
        SubmitOrder,
        CancelOrder,
        OrderAccepted,
        OrderRejected,
        OrderFilled,
        OrderCanceled,
        FundingPaid,
        RiskReset,
    )
)


class RecordingDigest(msgspec.Struct, frozen=True, kw_only=True):
    """A replayed recording: file name and sha256 of its bytes."""

    name: str
    sha256: str


class RunIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """What a ledger belongs to; written once, compared on every open.

    Attributes:
        source: bybit, synthetic or replay.
        category: linear, spot or inverse.
        symbols: the traded symbols, sorted.
        recordings: for a replay, its recordings in order (name and digest).
    """

    source: str
    category: str
    symbols: list[str]
    recordings: list[RecordingDigest] = msgspec.field(default_factory=list)


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    """A non-terminal order as stored in a checkpoint."""

    client_order_id: str
    symbol: str
    side: int
    px_ticks: int
    qty_lots: int
    leaves_lots: int
    status: int
    ts_exch_ns: int


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The state the journal folds to up to (and including) event `seq`.

    Attributes:
        seq: the last event sequence number it includes (set by the ledger on write).
        ts_ns: when it was taken (caller's clock).
        positions: every position's exact accounting (with its instrument steps).
        orders: every non-terminal order.
        funded: per symbol, the last funding time settled.
    """

    seq: int = 0
    ts_ns: int
    positions: list[PositionState]
    orders: list[OrderState]
    funded: dict[str, int] = msgspec.field(default_factory=dict)


class ModelVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A model file the daemon loaded (loaded_at in ns on the caller's clock)."""

    name: str
    version: str
    path: str
    loaded_at: int


class Restored(msgspec.Struct, frozen=True, kw_only=True):
    """Everything needed to rebuild the OMS and the Portfolio after a restart.

    Attributes:
        fills: every journaled fill, once each, in journal order (apply to a fresh Portfolio).
        funding: every journaled funding payment, in journal order.
        open_orders: orders still live at the end of the journal (ACCEPTED, PARTIALLY_FILLED
            or PENDING_CANCEL, leaves > 0); their paper exchange is gone with the process
            that held them, so a restart journals them as canceled.
        in_flight_ids: orders still PENDING_NEW at the end (never acknowledged: the exchange
            that held them is gone; the caller decides what to do with them).
        last_snapshot: the most recent portfolio snapshot, or None.
        meta: the key/value table (kill-switch state, replay cursor, ...).
        model_versions: the model files loaded, oldest first.
        last_seq: the highest event sequence number (0 for an empty journal).
        checkpoint: the latest checkpoint (apply it first, then fills and funding), or None.
        tail_rows: how many journal rows were read (those after the checkpoint).
        fill_steps: the (tick_size, lot_size) of each fill, parallel to fills.
        steps: the latest instrument steps journaled per symbol.
    """

    fills: list[OrderFilled]
    funding: list[FundingPaid]
    open_orders: list[Order]
    in_flight_ids: list[str]
    last_snapshot: PortfolioSnapshot | None
    meta: dict[str, str]
    model_versions: list[ModelVersion]
    last_seq: int
    checkpoint: Checkpoint | None = None
    tail_rows: int = 0
    fill_steps: list[tuple[str, str]] = msgspec.field(default_factory=list)
    steps: dict[str, tuple[str, str]] = msgspec.field(default_factory=dict)


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def check_item(item: Journaled) -> None:
    """Refuse an item no restore could apply (non-finite or out-of-range values).

    Raises:
        InvariantViolation: what is wrong with it.
    """
    bad = ""
    if isinstance(item, SubmitOrder):
        if item.px_ticks <= 0 or item.qty_lots <= 0 or item.side not in (1, -1):
            bad = "price, size or side out of range"
    elif isinstance(item, OrderAccepted):
        if item.px_ticks <= 0 or item.qty_lots <= 0:
            bad = "price or size out of range"
    elif isinstance(item, OrderFilled):
        if not _finite(item.fee_quote):
            bad = f"fee {item.fee_quote} is not finite"
        elif item.px_ticks <= 0 or item.qty_lots <= 0 or item.leaves_lots < 0:
            bad = "price, size or leaves out of range"
        elif item.side not in (1, -1):
            bad = f"side {item.side}"
    elif isinstance(item, FundingPaid):
        if not _finite(item.rate, item.mark_px, item.amount_quote):
            bad = "rate, mark or amount is not finite"
        elif item.mark_px <= 0:
            bad = f"mark {item.mark_px} <= 0"
    if bad:
        raise InvariantViolation(f"ledger: refusing {type(item).__name__} ({bad}): {item!r}")

"""The previous SimExchange, a Python driver over the parallel-array queue kernels, kept unchanged
as the oracle of the parity tests: the kernel-based `mmd.sim.exchange.SimExchange` must give the
same events. Its semantics are the module docstring of `mmd/sim/exchange.py`.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import numpy as np

from mmd.config import ExchangeConfig
from mmd.errors import InvariantViolation
from mmd.kernels.queue import (
    QUEUE_PROB_LOG,
    QUEUE_PROB_POWER,
    QUEUE_RISK_AVERSE,
    SLOT_FREE,
    SLOT_LIVE,
    compute_level_qty,
    update_orders_on_book,
    update_orders_on_trade,
)
from mmd.market.book import L2Book
from mmd.model.codes import BUY, SELL
from mmd.model.events import (
    MAKER,
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.model.instrument import Instrument
from mmd.sim.fees import FeeSchedule

_QUEUE_MODELS = {
    "risk_averse": QUEUE_RISK_AVERSE,
    "prob_power": QUEUE_PROB_POWER,
    "prob_log": QUEUE_PROB_LOG,
}


class _SymbolOrders:
    """One symbol's order slots (kernel arrays + Python ids) and its book as of the last event."""

    __slots__ = (
        "active",
        "adv",
        "book_ns",
        "coid",
        "dec",
        "free",
        "instrument",
        "last_book",
        "leaves",
        "live",
        "n_fills",
        "out_qty",
        "out_slot",
        "pending",
        "px",
        "queue",
        "seen",
        "shadow",
        "shadow_valid",
        "side",
        "slot_of",
        "traded",
    )

    def __init__(self, instrument: Instrument, capacity: int) -> None:
        self.instrument = instrument
        self.live = np.zeros(capacity, np.int64)
        self.leaves = np.zeros(capacity, np.int64)
        self.seen = np.zeros(capacity, np.int64)
        self.traded = np.zeros(capacity, np.int64)
        self.px = np.zeros(capacity, np.int64)
        self.side = np.zeros(capacity, np.int64)
        self.queue = np.zeros(capacity, np.float64)
        self.dec = np.zeros(capacity, np.float64)
        self.adv = np.zeros(capacity, np.float64)
        self.active = np.zeros(capacity, np.int64)
        self.book_ns = -(2**62)  # exchange time of the last book the orders were updated with
        self.out_slot = np.zeros(capacity, np.int64)
        self.out_qty = np.zeros(capacity, np.int64)
        self.coid: list[str] = [""] * capacity
        self.n_fills = [0] * capacity
        self.slot_of: dict[str, int] = {}
        self.free = list(range(capacity - 1, -1, -1))  # pop() hands out the lowest slot first
        self.last_book: L2Book | None = None
        # copy of the book as of the last market event, kept only while commands are in flight
        # (the caller's L2Book is already updated when on_book runs)
        self.shadow: L2Book | None = None
        self.shadow_valid = False
        self.pending = 0

    def copy_shadow(self, book: L2Book) -> None:
        shadow = self.shadow
        if shadow is None or shadow.capacity != book.capacity:
            shadow = self.shadow = L2Book(book.capacity)
        np.copyto(shadow.bid_px, book.bid_px)
        np.copyto(shadow.bid_qty, book.bid_qty)
        np.copyto(shadow.ask_px, book.ask_px)
        np.copyto(shadow.ask_qty, book.ask_qty)
        shadow.n_bids = book.n_bids
        shadow.n_asks = book.n_asks
        self.shadow_valid = True

    def release(self, slot: int) -> None:
        self.live[slot] = SLOT_FREE
        self.leaves[slot] = 0
        del self.slot_of[self.coid[slot]]
        self.coid[slot] = ""
        self.free.append(slot)


class SimExchange:
    """Paper exchange for post-only limit orders on several symbols (see the module docstring).

    Args:
        cfg: `[exchange]` (queue model, queue power, partial fills, fee rates).
        instruments: the tradable symbols.
        entry_latency_ns: submit travel time (ns, >= 0).
        cancel_latency_ns: cancel travel time (ns, >= 0).
        capacity: resting orders per symbol.
    """

    def __init__(
        self,
        cfg: ExchangeConfig,
        instruments: Mapping[str, Instrument],
        *,
        entry_latency_ns: int,
        cancel_latency_ns: int,
        capacity: int = 64,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._model = _QUEUE_MODELS[cfg.queue_model]
        self._power = float(cfg.queue_power)
        self._partial = bool(cfg.partial_fills)
        self._fees = FeeSchedule(cfg.maker_fee, cfg.taker_fee)
        self._capacity = capacity
        self._symbols = {s: _SymbolOrders(inst, capacity) for s, inst in instruments.items()}
        self._pending: collections.deque[tuple[int, SubmitOrder | CancelOrder]] = (
            collections.deque()
        )
        self._last_arrival_ns = -(2**62)
        self._entry_ns = 0
        self._cancel_ns = 0
        self.set_latency(entry_latency_ns, cancel_latency_ns)

    def add_instrument(self, inst: Instrument) -> None:
        """Start trading a symbol learned after construction (instrument-info arrives late).

        A known symbol with the same steps is left as it is; new steps replace it (its resting
        orders are gone with the old units).
        """
        cur = self._symbols.get(inst.symbol)
        if cur is None or cur.instrument != inst:
            self._symbols[inst.symbol] = _SymbolOrders(inst, self._capacity)

    def set_latency(self, entry_latency_ns: int, cancel_latency_ns: int) -> None:
        """Change the travel times of commands sent from now on (ns, >= 0)."""
        if entry_latency_ns < 0 or cancel_latency_ns < 0:
            raise ValueError(
                f"latencies must be >= 0 ns, got {entry_latency_ns}, {cancel_latency_ns}"
            )
        self._entry_ns = int(entry_latency_ns)
        self._cancel_ns = int(cancel_latency_ns)

    def send(self, cmd: SubmitOrder | CancelOrder, now_ns: int) -> None:
        """Put a command on the wire at now_ns; it reaches the exchange at now_ns + latency
        (or right after the previous command, whichever is later)."""
        lat = self._entry_ns if type(cmd) is SubmitOrder else self._cancel_ns
        arrival = max(now_ns + lat, self._last_arrival_ns)
        self._last_arrival_ns = arrival
        self._pending.append((arrival, cmd))
        st = self._symbols.get(cmd.symbol)
        if st is not None:
            if st.pending == 0 and st.last_book is not None:
                st.copy_shadow(st.last_book)
            st.pending += 1

    def on_book(self, symbol: str, book: L2Book, ts_exch_ns: int) -> list[OrderEvent]:
        """The real book of symbol changed to `book` at ts_exch_ns (it is only read).

        Returns:
            Events of due commands, then fills by crossing and queue updates.
        """
        st = self._symbols[symbol]
        events = self._process_due(ts_exch_ns) if self._pending else []
        st.last_book = book
        st.book_ns = max(st.book_ns, ts_exch_ns)
        if st.slot_of:
            n = update_orders_on_book(
                st.live,
                st.leaves,
                st.seen,
                st.traded,
                st.queue,
                st.dec,
                st.adv,
                st.out_slot,
                st.out_qty,
                st.px,
                st.side,
                book.bid_px,
                book.bid_qty,
                book.n_bids,
                book.ask_px,
                book.ask_qty,
                book.n_asks,
                self._model,
                self._power,
            )
            if n < 0:
                raise InvariantViolation(f"update_orders_on_book returned {n}")
            if n:
                self._emit_fills(st, symbol, n, ts_exch_ns, events)
        if st.pending:
            st.copy_shadow(book)
        return events

    def on_trade(
        self, symbol: str, ts_exch_ns: int, px_ticks: int, qty_lots: int, side: int
    ) -> list[OrderEvent]:
        """A public trade of qty_lots at px_ticks; side is the taker's (codes.BUY / SELL).

        Returns:
            Events of due commands, then fills.

        Raises:
            ValueError: qty_lots <= 0 or a side that is not BUY/SELL.
        """
        if qty_lots <= 0 or (side != BUY and side != SELL):
            raise ValueError(f"bad trade: qty_lots={qty_lots} side={side}")
        st = self._symbols[symbol]
        events = self._process_due(ts_exch_ns) if self._pending else []
        if st.slot_of:
            n = update_orders_on_trade(
                st.live,
                st.leaves,
                st.traded,
                st.queue,
                st.dec,
                st.adv,
                st.active,
                st.out_slot,
                st.out_qty,
                st.px,
                st.side,
                ts_exch_ns,
                st.book_ns,
                px_ticks,
                qty_lots,
                side,
                self._partial,
            )
            if n < 0:
                raise InvariantViolation(f"update_orders_on_trade returned {n}")
            if n:
                self._emit_fills(st, symbol, n, ts_exch_ns, events)
        return events

    def advance(self, now_ns: int) -> list[OrderEvent]:
        """Handle the commands that arrived by now_ns (no market event)."""
        return self._process_due(now_ns) if self._pending else []

    def open_orders(self, symbol: str) -> list[tuple[str, int, int, int]]:
        """Resting orders of symbol in acceptance order: (client_order_id, side, px_ticks,
        leaves_lots)."""
        st = self._symbols[symbol]
        return [
            (coid, int(st.side[i]), int(st.px[i]), int(st.leaves[i]))
            for coid, i in st.slot_of.items()
        ]

    def queue_ahead_lots(self, symbol: str, client_order_id: str) -> float:
        """Estimated size ahead of a resting order (lots); NaN when it is not resting."""
        st = self._symbols[symbol]
        slot = st.slot_of.get(client_order_id)
        return float("nan") if slot is None else float(st.queue[slot])

    @property
    def in_flight(self) -> int:
        """Commands sent and not yet arrived."""
        return len(self._pending)

    # -- internals ------------------------------------------------------------------------------

    def _process_due(self, now_ns: int) -> list[OrderEvent]:
        events: list[OrderEvent] = []
        pending = self._pending
        while pending and pending[0][0] <= now_ns:
            arrival, cmd = pending.popleft()
            st = self._symbols.get(cmd.symbol)
            if st is None:
                reason = "unknown_symbol" if type(cmd) is SubmitOrder else "unknown_order"
                events.append(self._reject(cmd, reason, arrival))
                continue
            st.pending -= 1
            if type(cmd) is SubmitOrder:
                events.append(self._accept(st, cmd, arrival))
            else:
                events.append(self._cancel(st, cmd, arrival))  # type: ignore[arg-type]
            if st.pending == 0:
                st.shadow_valid = False  # stop copying books until the next send
        return events

    @staticmethod
    def _reject(cmd: SubmitOrder | CancelOrder, reason: str, ts_ns: int) -> OrderRejected:
        return OrderRejected(
            client_order_id=cmd.client_order_id, symbol=cmd.symbol, reason=reason, ts_exch_ns=ts_ns
        )

    def _accept(self, st: _SymbolOrders, cmd: SubmitOrder, ts_ns: int) -> OrderEvent:
        px, side = cmd.px_ticks, cmd.side
        if cmd.qty_lots <= 0 or px <= 0 or (side != BUY and side != SELL):
            return self._reject(cmd, "invalid_order", ts_ns)
        if cmd.client_order_id in st.slot_of:
            return self._reject(cmd, "duplicate_client_order_id", ts_ns)
        book = st.shadow
        if book is None or not st.shadow_valid:
            return self._reject(cmd, "no_market_data", ts_ns)
        if side == BUY:
            crosses = book.n_asks > 0 and px >= book.ask_px[0]
        else:
            crosses = book.n_bids > 0 and px <= book.bid_px[0]
        if not crosses:
            for slot in st.slot_of.values():
                if st.side[slot] == -side and (
                    st.px[slot] <= px if side == BUY else st.px[slot] >= px
                ):
                    crosses = True
                    break
        if crosses:
            return self._reject(cmd, "post_only_would_cross", ts_ns)
        if not st.free:
            return self._reject(cmd, "too_many_orders", ts_ns)
        if side == BUY:
            level = compute_level_qty(book.bid_px, book.bid_qty, book.n_bids, px, True)
        else:
            level = compute_level_qty(book.ask_px, book.ask_qty, book.n_asks, px, False)
        level = max(int(level), 0)  # beyond a full book's last level: treated as empty
        slot = st.free.pop()
        st.px[slot] = px
        st.side[slot] = side
        st.leaves[slot] = cmd.qty_lots
        st.seen[slot] = level
        st.traded[slot] = 0
        st.queue[slot] = float(level)
        st.dec[slot] = 0.0
        st.adv[slot] = 0.0
        st.active[slot] = ts_ns
        st.live[slot] = SLOT_LIVE
        st.coid[slot] = cmd.client_order_id
        st.n_fills[slot] = 0
        st.slot_of[cmd.client_order_id] = slot
        return OrderAccepted(
            client_order_id=cmd.client_order_id,
            symbol=cmd.symbol,
            side=side,
            px_ticks=px,
            qty_lots=cmd.qty_lots,
            ts_exch_ns=ts_ns,
        )

    def _cancel(self, st: _SymbolOrders, cmd: CancelOrder, ts_ns: int) -> OrderEvent:
        slot = st.slot_of.get(cmd.client_order_id)
        if slot is None:
            return self._reject(cmd, "unknown_order", ts_ns)
        st.release(slot)
        return OrderCanceled(
            client_order_id=cmd.client_order_id, symbol=cmd.symbol, ts_exch_ns=ts_ns
        )

    def _emit_fills(
        self, st: _SymbolOrders, symbol: str, n: int, ts_ns: int, events: list[OrderEvent]
    ) -> None:
        inst = st.instrument
        fees = self._fees
        for j in range(n):
            slot = int(st.out_slot[j])
            qty = int(st.out_qty[j])
            px = int(st.px[slot])
            leaves = int(st.leaves[slot])
            coid = st.coid[slot]
            k = st.n_fills[slot] + 1
            st.n_fills[slot] = k
            events.append(
                OrderFilled(
                    fill_id=f"{coid}#{k}",
                    client_order_id=coid,
                    symbol=symbol,
                    side=int(st.side[slot]),
                    px_ticks=px,
                    qty_lots=qty,
                    leaves_lots=leaves,
                    liquidity=MAKER,
                    fee_quote=fees.fee_quote(inst, MAKER, px, qty),
                    ts_exch_ns=ts_ns,
                )
            )
            if leaves == 0:
                st.release(slot)

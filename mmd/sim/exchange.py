"""SimExchange: our post-only quotes arrive late, rest in a modelled queue, fill against real data.

Pure core: no clock reads, no I/O; every time is an argument on one axis, exchange ns. The logic
is the set of kernels in `mmd.kernels.exchange` over order-slot arrays (a jitted backtest loop
calls the same kernels); this class is their thin Python driver: it turns Commands into kernel
calls, maps client order ids to int ids and slots, and drains the kernels' event buffer into
OrderEvent structs. It never touches the real book:
our orders have NO MARKET IMPACT: the L2Book passed in is only read, and a print that fills us
still counts in full for the real queue; only our own orders share its size (rule (c) below).

Semantics (hftbacktest's exchange and queue models, `docs/order_fill.rst`, then ours):

- Commands travel for the entry or cancel latency and are handled in arrival order when market
  time passes their arrival: every on_book / on_trade / advance call first handles the commands
  due by its time, against the book as it was before that call's market event, then applies the
  event. Arrivals are FIFO over one connection: a command never overtakes an earlier one
  (arrival = max(now + latency, previous arrival)), so a cancel cannot beat its own submit.
- Submit (post-only, GTX): rejected "post_only_would_cross" when a buy's price >= the best ask
  (a sell's <= the best bid); ours: also when it would cross one of our own resting orders.
  Otherwise accepted with queue_ahead = the real size at its price (0 when the price is not a
  level: we improved the touch). Also rejected: "unknown_symbol", "invalid_order" (size <= 0,
  price <= 0, bad side), "duplicate_client_order_id", "no_market_data" (no book yet) and
  "too_many_orders" (capacity slots per symbol in use).
- Cancel: removes the order (OrderCanceled) with whatever leaves it has; an order already filled
  in full (or never accepted) gives OrderRejected "unknown_order". A fill can happen while the
  cancel is in flight.
- Fills, for a resting buy (sells mirror), all MAKER at our own price:
  (a) best ask <= our price on a book update: the whole leaves fill. This is hftbacktest's
      "filled without a trade" (its issue #158): the real book crossed our quote, so a seller
      must have come through us.
  (b) only trades stamped AFTER the order became active at the exchange (its arrival time)
      count: a trade whose exchange time is <= the activation (a REST-backfilled print that
      arrives late with an old time) feeds the features but neither fills the order nor moves
      its queue.
  (c) a print's size is consumed across our orders in price-time priority (best price first,
      then earliest activation): one print of q lots fills at most q lots of ours in total,
      however many orders or ladder levels we have at or through its price.
  (d) a taker-sell print strictly below our price (through us): min(remaining print, leaves)
      with partial fills. hftbacktest fills the whole leaves here; we do not fill more than was
      printed (the print is what we know the taker traded). For an order no larger than the
      print (all 1-lot comparisons) the two rules agree.
  (e) a taker-sell print at our price: queue_ahead -= print size; the whole lots past the
      front, k = floor(-queue_ahead), fill min(k, remaining print, leaves) with partial fills.
      queue_ahead is 0 after a fill.
  Without partial fills (all-or-nothing, hftbacktest's NoPartialFillExchange) an order fills
  its whole leaves when what (d)/(e) would give it covers them, else nothing.
- Queue models on a change of the real size at our price from `prev` to `new`, with
  chg = prev - new - traded (trade size already counted at that price since the last book
  update): risk_averse: queue_ahead = min(queue_ahead, new) (only trades advance us).
  prob_power / prob_log: chg is ahead of us with probability 1 - p,
  p = f(back) / (f(back) + f(front)), front = queue_ahead, back = prev - front (our order is not
  in the real size), f(x) = x**queue_power or log(1 + x); queue_ahead = min(front - (1 - p) chg
  + min(back - p chg, 0), new). An increase goes behind us.
- Book and trade in either order: a trade newer than the last book is counted in `traded` and
  subtracted from the next decrease (above). A trade stamped at or before the last book (the
  book delta that reflects it came first) is already in that decrease, of which the model
  counted a share s ahead of us: the trade, certainly ahead of us, advances the queue only by
  the rest, x (1 - s) with x = min(print, decrease), plus print - x in full. Details in
  `mmd.kernels.exchange`.
- Each fill is an OrderFilled with fill_id f"{client_order_id}#{n}" (n = 1, 2, ... per order), the
  maker fee of `[exchange]` on price x size, and leaves_lots after it. Symbols are independent.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import numpy as np

from mmd.config import ExchangeConfig
from mmd.errors import InvariantViolation
from mmd.kernels import exchange as kx
from mmd.market.book import L2Book
from mmd.model.codes import BUY, ERR_FULL, SELL
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

_QUEUE_MODELS = {
    "risk_averse": kx.QUEUE_RISK_AVERSE,
    "prob_power": kx.QUEUE_PROB_POWER,
    "prob_log": kx.QUEUE_PROB_LOG,
}

_REASONS = kx.REASON_NAMES
_EVT_ACCEPTED = kx.EVT_ACCEPTED
_EVT_REJECTED = kx.EVT_REJECTED
_EVT_CANCELED = kx.EVT_CANCELED


class _Symbol:
    """One symbol's Python side: its index in the kernel arrays, client ids of its slots."""

    __slots__ = ("coid", "index", "instrument", "last_book", "slot_of")

    def __init__(self, instrument: Instrument, index: int, capacity: int) -> None:
        self.instrument = instrument
        self.index = index
        self.last_book: L2Book | None = None
        self.coid: list[str] = [""] * capacity  # client order id resting in each slot
        self.slot_of: dict[str, int] = {}  # resting orders in acceptance order


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
        self._capacity = capacity
        ex, syms, orders, free, cmds, events = kx.alloc_exchange(
            0, capacity, n_events=max(1024, 2 * capacity)
        )
        ex[0]["model"] = _QUEUE_MODELS[cfg.queue_model]
        ex[0]["power"] = float(cfg.queue_power)
        ex[0]["partial"] = 1 if cfg.partial_fills else 0
        ex[0]["maker_fee"] = float(cfg.maker_fee)
        ex[0]["taker_fee"] = float(cfg.taker_fee)
        self._ex = ex
        self._syms = syms
        self._orders = orders
        self._free = free
        self._cmds = cmds
        self._events = events
        # each symbol's book as of its last market event, while commands are in flight (the
        # caller's L2Book is already updated when on_book runs): [n_sym, 2 sides, levels]
        self._book_px = np.zeros((0, 2, 1), np.int64)
        self._book_qty = np.zeros((0, 2, 1), np.int64)
        self._book_n = np.zeros((0, 2), np.int64)
        self._symbols: dict[str, _Symbol] = {}
        self._by_index: list[_Symbol] = []
        self._wire: collections.deque[tuple[str, str]] = collections.deque()  # (coid, symbol)
        self._ids: dict[str, int] = {}  # client order id -> int id, while it is in use
        self._refs: dict[str, int] = {}  # commands in flight + resting order per client id
        self._next_id = 1
        for inst in instruments.values():
            self.add_instrument(inst)
        self.set_latency(entry_latency_ns, cancel_latency_ns)

    def add_instrument(self, inst: Instrument) -> None:
        """Start trading a symbol learned after construction (instrument-info arrives late).

        A known symbol with the same steps is left as it is; new steps replace it (its resting
        orders are gone with the old units).
        """
        cur = self._symbols.get(inst.symbol)
        if cur is not None and cur.instrument == inst:
            return
        if cur is None:
            index = len(self._symbols)
            self._grow_symbols(index + 1)
        else:
            index = cur.index
            for coid in cur.slot_of:
                self._unref(coid)
        st = _Symbol(inst, index, self._capacity)
        self._symbols[inst.symbol] = st
        if index == len(self._by_index):
            self._by_index.append(st)
        else:
            self._by_index[index] = st
        row = self._syms[index]
        row["tick"] = inst.tick
        row["lot"] = inst.lot
        row["price_decimals"] = inst.price_decimals
        row["qty_decimals"] = inst.qty_decimals
        kx.reset_symbol(self._syms, self._orders, self._free, index)

    def set_latency(self, entry_latency_ns: int, cancel_latency_ns: int) -> None:
        """Change the travel times of commands sent from now on (ns, >= 0)."""
        if kx.set_latency(self._ex, int(entry_latency_ns), int(cancel_latency_ns)) < 0:
            raise ValueError(
                f"latencies must be >= 0 ns, got {entry_latency_ns}, {cancel_latency_ns}"
            )

    def send(self, cmd: SubmitOrder | CancelOrder, now_ns: int) -> None:
        """Put a command on the wire at now_ns; it reaches the exchange at now_ns + latency
        (or right after the previous command, whichever is later)."""
        coid = cmd.client_order_id
        st = self._symbols.get(cmd.symbol)
        sym = -1 if st is None else st.index
        if st is not None and st.last_book is not None and self._syms[sym]["pending"] == 0:
            self._copy_shadow(st)
        oid = self._ref(coid)
        while True:
            if type(cmd) is SubmitOrder:
                rc = kx.submit(
                    self._ex,
                    self._syms,
                    self._cmds,
                    sym,
                    oid,
                    cmd.side,
                    cmd.px_ticks,
                    cmd.qty_lots,
                    now_ns,
                )
            else:
                rc = kx.cancel(self._ex, self._syms, self._cmds, sym, oid, now_ns)
            if rc != ERR_FULL:
                break
            grown = np.zeros(2 * self._cmds.shape[0], kx.CMD_DTYPE)
            grown[: self._cmds.shape[0]] = self._cmds
            self._cmds = grown
        self._wire.append((coid, cmd.symbol))

    def on_book(self, symbol: str, book: L2Book, ts_exch_ns: int) -> list[OrderEvent]:
        """The real book of symbol changed to `book` at ts_exch_ns (it is only read).

        Returns:
            Events of due commands, then fills by crossing and queue updates.
        """
        st = self._symbols[symbol]
        events = self._process_due(ts_exch_ns) if self._wire else []
        st.last_book = book
        n = kx.on_book(
            self._ex,
            self._syms,
            self._orders,
            self._free,
            self._events,
            st.index,
            book.bid_px,
            book.bid_qty,
            book.n_bids,
            book.ask_px,
            book.ask_qty,
            book.n_asks,
            ts_exch_ns,
        )
        if n < 0:
            raise InvariantViolation(f"exchange.on_book returned {n}")
        if n:
            self._drain(events)
        if self._syms[st.index]["pending"]:
            self._copy_shadow(st)
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
        events = self._process_due(ts_exch_ns) if self._wire else []
        n = kx.on_trade(
            self._ex,
            self._syms,
            self._orders,
            self._free,
            self._events,
            st.index,
            ts_exch_ns,
            px_ticks,
            qty_lots,
            side,
        )
        if n < 0:
            raise InvariantViolation(f"exchange.on_trade returned {n}")
        if n:
            self._drain(events)
        return events

    def advance(self, now_ns: int) -> list[OrderEvent]:
        """Handle the commands that arrived by now_ns (no market event)."""
        return self._process_due(now_ns) if self._wire else []

    def open_orders(self, symbol: str) -> list[tuple[str, int, int, int]]:
        """Resting orders of symbol in acceptance order: (client_order_id, side, px_ticks,
        leaves_lots)."""
        st = self._symbols[symbol]
        rows = self._orders[st.index]
        out = []
        for coid, i in st.slot_of.items():
            o = rows[i]
            out.append((coid, int(o["side"]), int(o["px_ticks"]), int(o["leaves_lots"])))
        return out

    @property
    def in_flight(self) -> int:
        """Commands sent and not yet arrived."""
        return len(self._wire)

    # -- internals ------------------------------------------------------------------------------

    def _ref(self, coid: str) -> int:
        oid = self._ids.get(coid)
        if oid is None:
            oid = self._next_id
            self._next_id += 1
            self._ids[coid] = oid
            self._refs[coid] = 1
        else:
            self._refs[coid] += 1
        return oid

    def _unref(self, coid: str) -> None:
        n = self._refs[coid] - 1
        if n:
            self._refs[coid] = n
        else:
            del self._refs[coid]
            del self._ids[coid]

    def _grow_symbols(self, n_sym: int) -> None:
        cap = self._capacity
        _, syms, orders, free, _, _ = kx.alloc_exchange(n_sym, cap, n_cmd=1, n_events=1)
        old = self._syms.shape[0]
        syms[:old] = self._syms
        orders[:old] = self._orders
        free[:old] = self._free
        self._syms, self._orders, self._free = syms, orders, free
        levels = self._book_px.shape[2]
        for name in ("_book_px", "_book_qty"):
            arr = np.zeros((n_sym, 2, levels), np.int64)
            arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        book_n = np.zeros((n_sym, 2), np.int64)
        book_n[:old] = self._book_n
        self._book_n = book_n

    def _copy_shadow(self, st: _Symbol) -> None:
        book = st.last_book
        assert book is not None
        cap = book.capacity
        if cap > self._book_px.shape[2]:
            for name in ("_book_px", "_book_qty"):
                old = getattr(self, name)
                arr = np.zeros((old.shape[0], 2, cap), np.int64)
                arr[:, :, : old.shape[2]] = old
                setattr(self, name, arr)
        s = st.index
        px = self._book_px[s]
        qty = self._book_qty[s]
        px[0, :cap] = book.bid_px
        px[1, :cap] = book.ask_px
        qty[0, :cap] = book.bid_qty
        qty[1, :cap] = book.ask_qty
        px[:, cap:] = 0
        qty[:, cap:] = 0
        self._book_n[s, 0] = book.n_bids
        self._book_n[s, 1] = book.n_asks

    def _process_due(self, now_ns: int) -> list[OrderEvent]:
        events: list[OrderEvent] = []
        while True:
            n = kx.process_due(
                self._ex,
                self._syms,
                self._orders,
                self._free,
                self._cmds,
                self._events,
                self._book_px,
                self._book_qty,
                self._book_n,
                now_ns,
            )
            self._drain(events)
            if n != ERR_FULL:
                break
        if n < 0:
            raise InvariantViolation(f"exchange.process_due returned {n}")
        return events

    def _drain(self, events: list[OrderEvent]) -> None:
        ex = self._ex[0]
        n = int(ex["n_events"])
        if n == 0:
            return
        rows = self._events[:n].tolist()
        ex["n_events"] = 0
        symbols = self._by_index
        wire = self._wire
        for kind, reason, sym, slot, _oid, side, px, qty, leaves, fill_no, fee, _liq, ts in rows:
            if kind == kx.EVT_FILLED:
                st = symbols[sym]
                coid = st.coid[slot]
                events.append(
                    OrderFilled(
                        fill_id=f"{coid}#{fill_no}",
                        client_order_id=coid,
                        symbol=st.instrument.symbol,
                        side=side,
                        px_ticks=px,
                        qty_lots=qty,
                        leaves_lots=leaves,
                        liquidity=MAKER,
                        fee_quote=fee,
                        ts_exch_ns=ts,
                    )
                )
                if leaves == 0:
                    del st.slot_of[coid]
                    st.coid[slot] = ""
                    self._unref(coid)
                continue
            coid, symbol = wire.popleft()
            if kind == _EVT_ACCEPTED:
                st = symbols[sym]
                st.coid[slot] = coid
                st.slot_of[coid] = slot
                events.append(
                    OrderAccepted(
                        client_order_id=coid,
                        symbol=symbol,
                        side=side,
                        px_ticks=px,
                        qty_lots=qty,
                        ts_exch_ns=ts,
                    )
                )
                continue  # the command's reference passes to the resting order
            if kind == _EVT_CANCELED:
                st = symbols[sym]
                del st.slot_of[coid]
                st.coid[slot] = ""
                self._unref(coid)  # the resting order's
                events.append(OrderCanceled(client_order_id=coid, symbol=symbol, ts_exch_ns=ts))
            else:
                events.append(
                    OrderRejected(
                        client_order_id=coid, symbol=symbol, reason=_REASONS[reason], ts_exch_ns=ts
                    )
                )
            self._unref(coid)  # the command's

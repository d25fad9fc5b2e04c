"""Paper exchange kernels: commands in flight, order slots, matching, queue models and fees.

The whole per-event logic of the paper exchange as free functions over state arrays, callable
from Python (`mmd.sim.exchange.SimExchange`, the live driver) and from inside another njit
function (a jitted backtest loop). The semantics are those listed in `mmd/sim/exchange.py`;
the queue arithmetic (level lookup, the probabilistic models) is here too.

State (allocate with `alloc_exchange`; dtypes below, all C-contiguous):

- `ex`: EXCH_DTYPE[1], venue-wide: queue model (QUEUE_* below), its power,
  partial fills (0/1), maker and taker fee rates, entry and cancel latency (ns), the arrival
  time (ns) of the last command sent (commands never overtake one another), the FIFO bounds
  of `cmds` (cmd_head, cmd_tail) and the number of events written to `events` (n_events).
- `syms`: SYM_DTYPE[n_sym]: per symbol the exchange time (ns) of the last book the orders were
  updated with (book_ns), has_book (1 once a book was seen), free slot count (n_free), commands
  in flight for it (pending) and its units (tick, lot and their decimals, for fees).
- `orders`: ORDER_DTYPE[n_sym, capacity]: one slot per resting order (module table below).
- `free`: int64[n_sym, capacity]: a stack of free slot indices per symbol (the first n_free);
  the next order takes the slot freed last (the lowest slot first at the start).
- `cmds`: CMD_DTYPE[n_cmd]: commands on the wire, cmds[cmd_head:cmd_tail] in arrival order.
- `events`: EVENT_DTYPE[n_ev]: what the exchange reports, events[:n_events] in order; the
  caller drains it (reads the rows, sets ex[0].n_events = 0).

ORDER_DTYPE fields (prices in ticks, sizes in lots, times in exchange ns):
live (SLOT_LIVE/SLOT_FREE), side (codes.BUY/SELL), px_ticks, qty_lots (original size),
leaves_lots (open size), seen_lots (real size at our price when last looked), traded_lots
(print size at our price since the last book), queue_ahead (f8, estimated real size ahead of
us), dec/adv (f8, the last depth decrease no trade explained yet and the part of it counted
ahead of us), active_ns (arrival at the exchange: earlier prints are not ours), order_id (the
caller's int id), seq (acceptance number), n_fills (fills so far; a fill's number is n_fills).

EVENT_DTYPE fields: kind (EVT_*), reason (REJ_* of a rejection, else 0), sym, slot (-1 for a
command that never got one), order_id, side, px_ticks, qty_lots (the order's size when
accepted, the fill's size when filled), leaves_lots (after a fill), fill_no (1, 2, ... per
order), fee_quote (f8, quote currency, negative = rebate), liquidity (LIQ_MAKER), ts_ns.

Return codes: kernels return codes.OK (or a count), codes.ERR_BAD_INPUT for arguments out of
range (bad trade, unknown symbol index), codes.ERR_FULL when `cmds` or `events` has no room
(nothing is lost: the command is not queued / the call stops before writing).
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.model.codes import BUY, ERR_BAD_INPUT, ERR_FULL, OK, SELL

I8 = np.int64
F8 = np.float64
I64 = npt.NDArray[np.int64]
Rec = npt.NDArray[np.void]  # a structured array of one of the dtypes below

ORDER_DTYPE = np.dtype(
    [
        ("live", I8),
        ("side", I8),
        ("px_ticks", I8),
        ("qty_lots", I8),
        ("leaves_lots", I8),
        ("seen_lots", I8),
        ("traded_lots", I8),
        ("queue_ahead", F8),
        ("dec", F8),
        ("adv", F8),
        ("active_ns", I8),
        ("order_id", I8),
        ("seq", I8),
        ("n_fills", I8),
    ],
    align=True,
)

CMD_DTYPE = np.dtype(
    [
        ("kind", I8),
        ("sym", I8),
        ("order_id", I8),
        ("side", I8),
        ("px_ticks", I8),
        ("qty_lots", I8),
        ("arrival_ns", I8),
    ],
    align=True,
)

EVENT_DTYPE = np.dtype(
    [
        ("kind", I8),
        ("reason", I8),
        ("sym", I8),
        ("slot", I8),
        ("order_id", I8),
        ("side", I8),
        ("px_ticks", I8),
        ("qty_lots", I8),
        ("leaves_lots", I8),
        ("fill_no", I8),
        ("fee_quote", F8),
        ("liquidity", I8),
        ("ts_ns", I8),
    ],
    align=True,
)

SYM_DTYPE = np.dtype(
    [
        ("book_ns", I8),
        ("has_book", I8),
        ("n_free", I8),
        ("pending", I8),
        ("tick", F8),
        ("lot", F8),
        ("price_decimals", I8),
        ("qty_decimals", I8),
    ],
    align=True,
)

EXCH_DTYPE = np.dtype(
    [
        ("model", I8),
        ("power", F8),
        ("partial", I8),
        ("maker_fee", F8),
        ("taker_fee", F8),
        ("entry_ns", I8),
        ("cancel_ns", I8),
        ("last_arrival_ns", I8),
        ("cmd_head", I8),
        ("cmd_tail", I8),
        ("n_events", I8),
        ("next_seq", I8),
    ],
    align=True,
)

# command kinds (CMD_DTYPE.kind)
CMD_SUBMIT = 1
CMD_CANCEL = 2

# event kinds (EVENT_DTYPE.kind)
EVT_ACCEPTED = 1
EVT_REJECTED = 2
EVT_CANCELED = 3
EVT_FILLED = 4

# rejection reasons (EVENT_DTYPE.reason); REASON_NAMES gives the OrderRejected strings
REJ_NONE = 0
REJ_UNKNOWN_SYMBOL = 1
REJ_UNKNOWN_ORDER = 2
REJ_INVALID_ORDER = 3
REJ_DUPLICATE_ID = 4
REJ_NO_MARKET_DATA = 5
REJ_POST_ONLY = 6
REJ_TOO_MANY_ORDERS = 7
REASON_NAMES = (
    "",
    "unknown_symbol",
    "unknown_order",
    "invalid_order",
    "duplicate_client_order_id",
    "no_market_data",
    "post_only_would_cross",
    "too_many_orders",
)

# liquidity (EVENT_DTYPE.liquidity), the values of mmd.model.events.MAKER / TAKER
LIQ_MAKER = 1
LIQ_TAKER = 2

# queue models (EXCH_DTYPE.model)
QUEUE_RISK_AVERSE = 0
QUEUE_PROB_POWER = 1
QUEUE_PROB_LOG = 2

# slot status (ORDER_DTYPE.live)
SLOT_FREE = 0
SLOT_LIVE = 1

# queue_ahead below -(k - _EPS) lots frees k whole lots for us (absorbs float noise of the
# probabilistic models)
_EPS = 1e-9

_NEVER_NS = -(2**62)


def alloc_exchange(
    n_sym: int, capacity: int, n_cmd: int = 256, n_events: int = 1024
) -> tuple[Rec, Rec, Rec, I64, Rec, Rec]:
    """Fresh exchange state: (ex, syms, orders, free, cmds, events), every slot free.

    The caller sets ex[0]'s model/power/partial/fee/latency fields and each syms row's units
    (`reset_symbol` after setting tick/lot/decimals).
    """
    ex = np.zeros(1, EXCH_DTYPE)
    ex[0]["last_arrival_ns"] = _NEVER_NS
    syms = np.zeros(n_sym, SYM_DTYPE)
    orders = np.zeros((n_sym, capacity), ORDER_DTYPE)
    free = np.zeros((n_sym, capacity), I8)
    for s in range(n_sym):
        reset_symbol(syms, orders, free, s)
    return ex, syms, orders, free, np.zeros(n_cmd, CMD_DTYPE), np.zeros(n_events, EVENT_DTYPE)


@njit(cache=True, nogil=True)
def reset_symbol(syms: Rec, orders: Rec, free: I64, sym: int) -> int:
    """Forget one symbol's orders and book (its units stay).

    Mutates: syms[sym] (book_ns, has_book, n_free, pending), orders[sym], free[sym].
    Returns: OK, or ERR_BAD_INPUT for a symbol index out of range.
    """
    if sym < 0 or sym >= syms.shape[0]:
        return ERR_BAD_INPUT
    cap = orders.shape[1]
    for i in range(cap):
        orders[sym, i].live = SLOT_FREE
        orders[sym, i].leaves_lots = 0
        free[sym, i] = cap - 1 - i  # popped from the end: slot 0 first
    r = syms[sym]
    r.book_ns = _NEVER_NS
    r.has_book = 0
    r.n_free = cap
    r.pending = 0
    return OK


@njit(cache=True, nogil=True)
def set_latency(ex: Rec, entry_ns: int, cancel_ns: int) -> int:
    """Travel times (ns, >= 0) of the commands sent from now on.

    Mutates: ex[0].entry_ns, ex[0].cancel_ns. Returns: OK, or ERR_BAD_INPUT (nothing changed)
    for a negative latency.
    """
    if entry_ns < 0 or cancel_ns < 0:
        return ERR_BAD_INPUT
    ex[0].entry_ns = entry_ns
    ex[0].cancel_ns = cancel_ns
    return OK


@njit(cache=True, nogil=True)
def _send(
    ex: Rec,
    syms: Rec,
    cmds: Rec,
    kind: int,
    sym: int,
    order_id: int,
    side: int,
    px: int,
    qty: int,
    now_ns: int,
) -> int:
    e = ex[0]
    head = e.cmd_head
    tail = e.cmd_tail
    if tail >= cmds.shape[0]:
        if head == 0:
            return ERR_FULL
        for j in range(tail - head):  # compact the FIFO to the front
            cmds[j] = cmds[head + j]
        tail -= head
        head = 0
        e.cmd_head = 0
        e.cmd_tail = tail
    lat = e.entry_ns if kind == CMD_SUBMIT else e.cancel_ns
    arrival = max(now_ns + lat, e.last_arrival_ns)
    e.last_arrival_ns = arrival
    c = cmds[tail]
    c.kind = kind
    c.sym = sym
    c.order_id = order_id
    c.side = side
    c.px_ticks = px
    c.qty_lots = qty
    c.arrival_ns = arrival
    e.cmd_tail = tail + 1
    if 0 <= sym < syms.shape[0]:
        syms[sym].pending += 1
    return OK


@njit(cache=True, nogil=True)
def submit(
    ex: Rec,
    syms: Rec,
    cmds: Rec,
    sym: int,
    order_id: int,
    side: int,
    px_ticks: int,
    qty_lots: int,
    now_ns: int,
) -> int:
    """Put a post-only limit order on the wire at now_ns (arrival: now_ns + entry latency, or
    right after the previous command). It is checked only on arrival (`process_due`); a sym
    outside syms is rejected then as unknown_symbol.

    Mutates: ex[0] (last_arrival_ns, cmd bounds), cmds, syms[sym].pending.
    Returns: OK, or ERR_FULL (not queued) when cmds has no room.
    """
    return _send(ex, syms, cmds, CMD_SUBMIT, sym, order_id, side, px_ticks, qty_lots, now_ns)


@njit(cache=True, nogil=True)
def cancel(ex: Rec, syms: Rec, cmds: Rec, sym: int, order_id: int, now_ns: int) -> int:
    """Put a cancel of order_id on the wire at now_ns (cancel latency, FIFO as `submit`).

    Mutates: ex[0], cmds, syms[sym].pending. Returns: OK, or ERR_FULL (not queued).
    """
    return _send(ex, syms, cmds, CMD_CANCEL, sym, order_id, 0, 0, 0, now_ns)


@njit(cache=True, nogil=True)
def _emit(
    ex: Rec,
    events: Rec,
    kind: int,
    reason: int,
    sym: int,
    slot: int,
    order_id: int,
    side: int,
    px: int,
    qty: int,
    leaves: int,
    fill_no: int,
    fee: float,
    ts_ns: int,
) -> None:
    # caller checked room
    e = ex[0]
    v = events[e.n_events]
    v.kind = kind
    v.reason = reason
    v.sym = sym
    v.slot = slot
    v.order_id = order_id
    v.side = side
    v.px_ticks = px
    v.qty_lots = qty
    v.leaves_lots = leaves
    v.fill_no = fill_no
    v.fee_quote = fee
    v.liquidity = LIQ_MAKER if kind == EVT_FILLED else 0
    v.ts_ns = ts_ns
    e.n_events += 1


@njit(cache=True, nogil=True)
def compute_fee_quote(
    rate: float,
    px_ticks: int,
    qty_lots: int,
    tick: float,
    lot: float,
    price_decimals: int,
    qty_decimals: int,
) -> float:
    """Fee of one fill in quote currency: rate x price x size, with the price and size rounded
    to the instrument's decimals as `Instrument.ticks_to_px` / `lots_to_qty` do. Pure."""
    px = round(float(px_ticks) * tick, price_decimals)
    qty = round(float(qty_lots) * lot, qty_decimals)
    return rate * px * qty


@njit(cache=True, nogil=True)
def _fill(
    ex: Rec, syms: Rec, orders: Rec, free: I64, events: Rec, sym: int, i: int, qty: int, ts_ns: int
) -> None:
    # one maker fill of qty lots of slot i at its own price; frees the slot when done
    o = orders[sym, i]
    leaves = o.leaves_lots - qty
    o.leaves_lots = leaves
    o.n_fills += 1
    r = syms[sym]
    fee = compute_fee_quote(
        ex[0].maker_fee, o.px_ticks, qty, r.tick, r.lot, r.price_decimals, r.qty_decimals
    )
    _emit(
        ex,
        events,
        EVT_FILLED,
        REJ_NONE,
        sym,
        i,
        o.order_id,
        o.side,
        o.px_ticks,
        qty,
        leaves,
        o.n_fills,
        fee,
        ts_ns,
    )
    if leaves == 0:
        _release(syms, orders, free, sym, i)


@njit(cache=True, nogil=True)
def _release(syms: Rec, orders: Rec, free: I64, sym: int, i: int) -> None:
    o = orders[sym, i]
    o.live = SLOT_FREE
    o.leaves_lots = 0
    o.traded_lots = 0
    r = syms[sym]
    free[sym, r.n_free] = i
    r.n_free += 1


@njit(cache=True, nogil=True)
def _find_live(orders: Rec, sym: int, order_id: int) -> int:
    for i in range(orders.shape[1]):
        o = orders[sym, i]
        if o.live == SLOT_LIVE and o.order_id == order_id:
            return i
    return -1


@njit(cache=True, nogil=True)
def _accept(
    ex: Rec,
    syms: Rec,
    orders: Rec,
    free: I64,
    events: Rec,
    book_px: I64,
    book_qty: I64,
    book_n: I64,
    c: np.record,
) -> None:
    s = c.sym
    ts = c.arrival_ns
    oid = c.order_id
    side = c.side
    px = c.px_ticks
    qty = c.qty_lots
    reason = REJ_NONE
    if qty <= 0 or px <= 0 or (side != BUY and side != SELL):
        reason = REJ_INVALID_ORDER
    elif _find_live(orders, s, oid) >= 0:
        reason = REJ_DUPLICATE_ID
    elif syms[s].has_book == 0:
        reason = REJ_NO_MARKET_DATA
    else:
        n_bids = book_n[s, 0]
        n_asks = book_n[s, 1]
        if side == BUY:
            crosses = n_asks > 0 and px >= book_px[s, 1, 0]
        else:
            crosses = n_bids > 0 and px <= book_px[s, 0, 0]
        if not crosses:
            for i in range(orders.shape[1]):
                o = orders[s, i]
                if (
                    o.live == SLOT_LIVE
                    and o.side == -side
                    and (o.px_ticks <= px if side == BUY else o.px_ticks >= px)
                ):
                    crosses = True
                    break
        if crosses:
            reason = REJ_POST_ONLY
        elif syms[s].n_free == 0:
            reason = REJ_TOO_MANY_ORDERS
    if reason != REJ_NONE:
        _emit(ex, events, EVT_REJECTED, reason, s, -1, oid, side, px, qty, 0, 0, 0.0, ts)
        return
    if side == BUY:
        level = compute_level_qty(book_px[s, 0], book_qty[s, 0], book_n[s, 0], px, True)
    else:
        level = compute_level_qty(book_px[s, 1], book_qty[s, 1], book_n[s, 1], px, False)
    level = max(level, 0)  # beyond a full book's last level: treated as empty
    r = syms[s]
    r.n_free -= 1
    i = free[s, r.n_free]
    o = orders[s, i]
    o.live = SLOT_LIVE
    o.side = side
    o.px_ticks = px
    o.qty_lots = qty
    o.leaves_lots = qty
    o.seen_lots = level
    o.traded_lots = 0
    o.queue_ahead = float(level)
    o.dec = 0.0
    o.adv = 0.0
    o.active_ns = ts
    o.order_id = oid
    o.seq = ex[0].next_seq
    ex[0].next_seq += 1
    o.n_fills = 0
    _emit(ex, events, EVT_ACCEPTED, REJ_NONE, s, i, oid, side, px, qty, qty, 0, 0.0, ts)


@njit(cache=True, nogil=True)
def process_due(
    ex: Rec,
    syms: Rec,
    orders: Rec,
    free: I64,
    cmds: Rec,
    events: Rec,
    book_px: I64,
    book_qty: I64,
    book_n: I64,
    now_ns: int,
) -> int:
    """Handle, in arrival order, the commands that reached the exchange by now_ns.

    A submit is checked against the book as of the last market event before this call
    (book_px/book_qty int64[n_sym, 2, levels], side 0 bids and 1 asks, best first; book_n
    int64[n_sym, 2] live levels): rejected invalid_order, duplicate_client_order_id (an order
    with its id rests), no_market_data (no book seen yet), post_only_would_cross (the opposite
    touch, or one of our own opposite orders) or too_many_orders; else accepted with
    queue_ahead = the real size at its price. A cancel removes its order (canceled) or is
    rejected unknown_order. Each command writes one event stamped with its arrival.

    Mutates: ex[0] (cmd_head, n_events, next_seq), syms (pending, n_free), orders, free,
        events.
    Returns: the number of commands handled, or ERR_FULL when events had no room for the next
        one (it stays in flight; drain and call again).
    """
    e = ex[0]
    n_sym = syms.shape[0]
    done = 0
    while e.cmd_head < e.cmd_tail:
        c = cmds[e.cmd_head]
        if c.arrival_ns > now_ns:
            break
        if e.n_events >= events.shape[0]:
            return ERR_FULL
        e.cmd_head += 1
        done += 1
        s = c.sym
        if s < 0 or s >= n_sym:
            reason = REJ_UNKNOWN_SYMBOL if c.kind == CMD_SUBMIT else REJ_UNKNOWN_ORDER
            _emit(
                ex,
                events,
                EVT_REJECTED,
                reason,
                s,
                -1,
                c.order_id,
                c.side,
                c.px_ticks,
                c.qty_lots,
                0,
                0,
                0.0,
                c.arrival_ns,
            )
            continue
        syms[s].pending -= 1
        if c.kind == CMD_SUBMIT:
            _accept(ex, syms, orders, free, events, book_px, book_qty, book_n, c)
        else:
            i = _find_live(orders, s, c.order_id)
            if i < 0:
                _emit(
                    ex,
                    events,
                    EVT_REJECTED,
                    REJ_UNKNOWN_ORDER,
                    s,
                    -1,
                    c.order_id,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0.0,
                    c.arrival_ns,
                )
            else:
                o = orders[s, i]
                _emit(
                    ex,
                    events,
                    EVT_CANCELED,
                    REJ_NONE,
                    s,
                    i,
                    c.order_id,
                    o.side,
                    o.px_ticks,
                    o.qty_lots,
                    o.leaves_lots,
                    o.n_fills,
                    0.0,
                    c.arrival_ns,
                )
                _release(syms, orders, free, s, i)
    if e.cmd_head == e.cmd_tail:
        e.cmd_head = 0
        e.cmd_tail = 0
    return done


@njit(cache=True, nogil=True)
def on_book(
    ex: Rec,
    syms: Rec,
    orders: Rec,
    free: I64,
    events: Rec,
    sym: int,
    bid_px: I64,
    bid_qty: I64,
    n_bids: int,
    ask_px: I64,
    ask_qty: I64,
    n_asks: int,
    ts_ns: int,
) -> int:
    """The real book of sym is now (bid_px, bid_qty, n_bids, ask_px, ask_qty, n_asks), int64
    sides best first, stamped ts_ns (exchange). Call `process_due(ts_ns)` first, with the book
    before this change.

    For each live slot in slot order: a buy with best ask <= its price (a sell with best bid
    >= its price) fills its whole leaves (maker, at its price; hftbacktest's "filled without
    a trade"). Otherwise the queue model updates queue_ahead when the real size at its price
    changed: with new the real size at its price (unknown beyond a full side: untouched),
    chg = seen - new - traded, QUEUE_RISK_AVERSE or growth gives min(queue, new); the
    probabilistic models advance by the share (1 - p) of chg ahead of us, p from
    `compute_back_prob`, never raising the queue.

    Mutates: syms[sym] (book_ns, has_book, n_free), orders[sym], free[sym], events, ex[0].
    Returns: the number of fills written, ERR_BAD_INPUT for sym out of range, or ERR_FULL
        (nothing done) when events cannot take a fill of every slot.
    """
    if sym < 0 or sym >= syms.shape[0]:
        return ERR_BAD_INPUT
    cap = orders.shape[1]
    e = ex[0]
    if events.shape[0] - e.n_events < cap:
        return ERR_FULL
    r = syms[sym]
    r.book_ns = max(r.book_ns, ts_ns)
    r.has_book = 1
    if r.n_free == cap:
        return 0
    model = e.model
    power = e.power
    n_fills = 0
    for i in range(cap):
        o = orders[sym, i]
        if o.live != SLOT_LIVE:
            continue
        px = o.px_ticks
        is_bid = o.side == BUY
        crossed = (n_asks > 0 and ask_px[0] <= px) if is_bid else (n_bids > 0 and bid_px[0] >= px)
        if crossed:
            _fill(ex, syms, orders, free, events, sym, i, o.leaves_lots, ts_ns)
            n_fills += 1
            continue
        if is_bid:
            new = compute_level_qty(bid_px, bid_qty, n_bids, px, True)
        else:
            new = compute_level_qty(ask_px, ask_qty, n_asks, px, False)
        if new < 0 or new == o.seen_lots:
            continue  # unknown level, or our level did not change (trades stay pending)
        newf = float(new)
        front = o.queue_ahead
        chg = float(o.seen_lots) - newf - float(o.traded_lots)
        if model == QUEUE_RISK_AVERSE or chg < 0.0:
            q = min(front, newf)
        else:
            back = float(o.seen_lots) - front
            p = compute_back_prob(front, back, model, power)
            est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
            q = min(min(est, front), newf)
        o.dec = max(chg, 0.0)
        o.adv = min(max(front - q, 0.0), max(chg, 0.0))
        o.queue_ahead = q
        o.seen_lots = new
        o.traded_lots = 0
    return n_fills


@njit(cache=True, nogil=True)
def compute_level_qty(side_px: I64, side_qty: I64, n_levels: int, px: int, is_bid: bool) -> int:
    """Real size at one price of one book side.

    Args:
        side_px: int64[capacity] level prices (ticks), best first.
        side_qty: int64[capacity] level sizes (lots), parallel to side_px.
        n_levels: live levels in the side.
        px: the price (ticks) to look up.
        is_bid: True for the bid side (descending prices).

    Returns:
        The size in lots, 0 when the price is not a level, or -1 when it is unknown: the side
        is full (n_levels == capacity) and px is worse than its worst level, so the level may
        exist beyond what the book keeps.
    """
    for i in range(n_levels):
        lvl = side_px[i]
        if lvl == px:
            return int(side_qty[i])
        if (is_bid and lvl < px) or (not is_bid and lvl > px):
            return 0  # passed the price: it is not a level
    if n_levels == side_px.shape[0] and n_levels > 0:
        return -1
    return 0


@njit(cache=True, nogil=True)
def compute_back_prob(front: float, back: float, model: int, power: float) -> float:
    """Probability that a depth decrease at our level happened behind us.

    p = f(back) / (f(back) + f(front)), with f(x) = x**power (QUEUE_PROB_POWER) or
    f(x) = log(1 + x) (QUEUE_PROB_LOG); front and back are clamped at 0. When both f values are
    0 (nothing ahead and nothing behind) p = 1: nothing ahead of us can shrink. QUEUE_RISK_AVERSE
    returns 1 (depth decreases never advance us).

    Args:
        front: size ahead of us (lots).
        back: size behind us (lots).
        model: QUEUE_* code.
        power: n of the power model.

    Returns:
        p in [0, 1].
    """
    if model == QUEUE_RISK_AVERSE:
        return 1.0
    f = max(front, 0.0)
    b = max(back, 0.0)
    if model == QUEUE_PROB_LOG:
        fb = math.log1p(b)
        ff = math.log1p(f)
    else:
        fb = b**power
        ff = f**power
    tot = fb + ff
    if not tot > 0.0 or not math.isfinite(tot):
        # both zero -> nothing ahead can shrink; overflow of x**n -> compare in log space
        if tot > 0.0:
            return 1.0 if b >= f else 0.0
        return 1.0
    return fb / tot


@njit(cache=True, nogil=True)
def _lots_past_front(queue: float) -> int:
    # whole lots of a trade that went past the queue ahead of us
    if queue < 0.0:
        return math.floor(-queue + _EPS)
    return 0


@njit(cache=True, nogil=True)
def _priority(orders: Rec, sym: int, maker_side: int, idx: I64) -> int:
    # live slots on maker_side into idx: best price first, then earliest activation, then
    # lowest slot (insertion sort: few slots)
    n = 0
    for i in range(orders.shape[1]):
        oi = orders[sym, i]
        if oi.live != SLOT_LIVE or oi.side != maker_side:
            continue
        j = n
        while j > 0:
            k = idx[j - 1]
            ok = orders[sym, k]
            better = oi.px_ticks > ok.px_ticks if maker_side == BUY else oi.px_ticks < ok.px_ticks
            before = better
            if not before and oi.px_ticks == ok.px_ticks:
                before = oi.active_ns < ok.active_ns or (oi.active_ns == ok.active_ns and i < k)
            if not before:
                break
            idx[j] = k
            j -= 1
        idx[j] = i
        n += 1
    return n


@njit(cache=True, nogil=True)
def on_trade(
    ex: Rec,
    syms: Rec,
    orders: Rec,
    free: I64,
    events: Rec,
    sym: int,
    ts_ns: int,
    px_ticks: int,
    qty_lots: int,
    taker_side: int,
) -> int:
    """A public trade of qty_lots at px_ticks by a taker on taker_side (codes.BUY/SELL), stamped
    ts_ns (exchange). Call `process_due(ts_ns)` first.

    The print's size is shared by our orders on the side it hits in price-time priority; only
    orders active before ts_ns take part; through-price prints fill min(print left, leaves),
    at-price prints advance the queue first (book-first correction when the book stamped at
    or after ts_ns already showed the trade); all-or-nothing without partial fills.

    Mutates: orders[sym], syms[sym].n_free, free[sym], events, ex[0].n_events.
    Returns: the number of fills written, ERR_BAD_INPUT (nothing done) for qty_lots <= 0, a bad
        taker_side or sym out of range, ERR_FULL when events cannot take a fill of every slot.
    """
    if sym < 0 or sym >= syms.shape[0]:
        return ERR_BAD_INPUT
    if qty_lots <= 0 or (taker_side != BUY and taker_side != SELL):
        return ERR_BAD_INPUT
    cap = orders.shape[1]
    e = ex[0]
    if events.shape[0] - e.n_events < cap:
        return ERR_FULL
    r = syms[sym]
    if r.n_free == cap:
        return 0
    partial = e.partial != 0
    maker_side = -taker_side
    idx = np.empty(cap, np.int64)
    n = _priority(orders, sym, maker_side, idx)
    budget = qty_lots
    book_first = ts_ns <= r.book_ns
    n_fills = 0
    for j in range(n):
        i = idx[j]
        o = orders[sym, i]
        if o.active_ns >= ts_ns:
            continue  # the print happened before the order was there
        px = o.px_ticks
        leaves = o.leaves_lots
        through = px_ticks < px if maker_side == BUY else px_ticks > px
        avail = 0
        at_price = False
        if through:
            avail = budget
        elif px_ticks == px:
            at_price = True
            tq = float(qty_lots)
            if book_first:
                dec = o.dec
                x = min(tq, dec)
                adv = 0.0
                if x > 0.0:
                    rr = o.adv / dec
                    adv = x * (1.0 - rr)
                    o.dec = dec - x
                    o.adv = o.adv - x * rr
                q = o.queue_ahead - adv - (tq - x)
            else:
                q = o.queue_ahead - tq
                o.traded_lots += qty_lots
            k = _lots_past_front(q)
            if k > budget:
                q = max(q, -float(budget))  # the rest of the print went to our better orders
            avail = min(k, budget)
            o.queue_ahead = q
        if avail <= 0:
            continue
        qty = min(avail, leaves) if partial else (leaves if avail >= leaves else 0)
        if qty <= 0:
            continue
        budget -= qty
        if at_price:
            o.queue_ahead = 0.0
        _fill(ex, syms, orders, free, events, sym, i, qty, ts_ns)
        n_fills += 1
    return n_fills

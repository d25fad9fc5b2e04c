"""Queue kernels: our resting orders' queue positions and fills against the real L2 book and trades.

Owns no state (`mmd.sim.exchange.SimExchange` owns the arrays). Our orders are struct-of-arrays
slots, one index per order, all of one symbol:

- `o_px` int64 price (ticks), `o_side` int64 codes.BUY / codes.SELL,
- `o_live` int64 SLOT_LIVE or SLOT_FREE, `o_leaves` int64 open size (lots),
- `o_seen` int64 the real book size (lots) at our price when we last looked,
- `o_traded` int64 trade size (lots) printed at our price since the last book update,
- `o_queue` float64 the estimated size (lots) resting ahead of us at our price,
- `o_dec` float64 the last depth decrease at our price (lots) no trade has explained yet, and
  `o_adv` float64 how much of it the queue model counted ahead of us (a trade that arrives
  after the book delta that already showed it corrects the queue by the difference),
- `o_active` int64 the exchange time (ns) the order became active (trades stamped at or
  before it are not ours).

Our orders are never in the real book (no market impact), so every real level size counts other
participants only. Semantics follow hftbacktest's exchange and queue models (see
`mmd/sim/exchange.py` for the full list and where we differ).
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.model.codes import BUY, ERR_BAD_INPUT, SELL

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# queue models (the `model` argument)
QUEUE_RISK_AVERSE = 0
QUEUE_PROB_POWER = 1
QUEUE_PROB_LOG = 2

# slot status (o_live)
SLOT_FREE = 0
SLOT_LIVE = 1

# queue_ahead below -(k - _EPS) lots frees k whole lots for us (absorbs float noise of the
# probabilistic models)
_EPS = 1e-9


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
def update_orders_on_book(
    o_live: I64,
    o_leaves: I64,
    o_seen: I64,
    o_traded: I64,
    o_queue: F64,
    o_dec: F64,
    o_adv: F64,
    out_slot: I64,
    out_qty: I64,
    o_px: I64,
    o_side: I64,
    bid_px: I64,
    bid_qty: I64,
    n_bids: int,
    ask_px: I64,
    ask_qty: I64,
    n_asks: int,
    model: int,
    power: float,
) -> int:
    """Apply a new real book state to every live order: cross fills, then queue updates.

    For each live slot, in slot order:

    1. Cross: a buy with best ask <= its price (a sell with best bid >= its price) fills its
       whole leaves at its own price (hftbacktest's "filled without a trade", its issue #158).
       The slot is freed.
    2. Otherwise the real size `new` at its price on its own side is read. An unknown level
       (see compute_level_qty) or new == o_seen (this update did not touch our level, like
       hftbacktest's per-level depth events) leaves the slot untouched. Else, with
       `prev = o_seen` and `chg = prev - new - traded` (trade size already taken off the queue
       by update_orders_on_trade is not counted twice):
       - QUEUE_RISK_AVERSE: queue = min(queue, new).
       - QUEUE_PROB_*: chg < 0 (growth) goes behind us: queue = min(queue, new). Otherwise
         front = queue, back = prev - front, p = compute_back_prob(front, back) and
         queue = min(front - (1 - p) * chg + min(back - p * chg, 0), new): the expected part
         of the decrease ahead of us, plus whatever the part attributed behind cannot hold.
       Then o_dec = max(chg, 0) (the decrease not explained by a trade yet) and o_adv = the
       advance this update gave (front - queue): a trade at our price stamped before this
       book, arriving after it, corrects them (update_orders_on_trade). o_seen = new,
       o_traded = 0. A depth change never raises queue.

    Mutates: o_live, o_leaves (freed/zeroed on a cross fill), o_seen, o_traded, o_queue,
        o_dec, o_adv, out_slot, out_qty.

    Args:
        o_live, o_leaves, o_seen, o_traded: int64[slots] order state (module docstring).
        o_queue, o_dec, o_adv: float64[slots] queue ahead and last-decrease memory (lots).
        out_slot, out_qty: int64[>= slots] fill output: slot index and filled lots.
        o_px, o_side: int64[slots] order price (ticks) and side.
        bid_px, bid_qty, ask_px, ask_qty: int64 book sides (ticks, lots), best first.
        n_bids, n_asks: live levels per side.
        model: QUEUE_* code.
        power: n of QUEUE_PROB_POWER.

    Returns:
        The number of fills written to out_*, or ERR_BAD_INPUT (nothing mutated) when the out
        arrays are shorter than the slot arrays.
    """
    n_slots = o_live.shape[0]
    if out_slot.shape[0] < n_slots or out_qty.shape[0] < n_slots:
        return ERR_BAD_INPUT
    n_fills = 0
    for i in range(n_slots):
        if o_live[i] != SLOT_LIVE:
            continue
        px = o_px[i]
        is_bid = o_side[i] == BUY
        crossed = (n_asks > 0 and ask_px[0] <= px) if is_bid else (n_bids > 0 and bid_px[0] >= px)
        if crossed:
            out_slot[n_fills] = i
            out_qty[n_fills] = o_leaves[i]
            n_fills += 1
            o_leaves[i] = 0
            o_live[i] = SLOT_FREE
            o_traded[i] = 0
            continue
        if is_bid:
            new = compute_level_qty(bid_px, bid_qty, n_bids, px, True)
        else:
            new = compute_level_qty(ask_px, ask_qty, n_asks, px, False)
        if new < 0 or new == o_seen[i]:
            continue  # unknown level, or our level did not change (trades stay pending)
        newf = float(new)
        front = o_queue[i]
        chg = float(o_seen[i]) - newf - float(o_traded[i])
        if model == QUEUE_RISK_AVERSE or chg < 0.0:
            q = min(front, newf)
        else:
            back = float(o_seen[i]) - front
            p = compute_back_prob(front, back, model, power)
            est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
            q = min(min(est, front), newf)
        o_dec[i] = max(chg, 0.0)
        o_adv[i] = min(max(front - q, 0.0), max(chg, 0.0))
        o_queue[i] = q
        o_seen[i] = new
        o_traded[i] = 0
    return n_fills


@njit(cache=True, nogil=True)
def _priority_order(
    o_live: I64, o_side: I64, o_px: I64, o_active: I64, maker_side: int, idx: I64
) -> int:
    # live slots on maker_side into idx, best price first (a buy's highest, a sell's lowest),
    # then earliest activation, then lowest slot; returns how many (insertion sort: few slots)
    n = 0
    for i in range(o_live.shape[0]):
        if o_live[i] != SLOT_LIVE or o_side[i] != maker_side:
            continue
        j = n
        while j > 0:
            k = idx[j - 1]
            before = o_px[i] > o_px[k] if maker_side == BUY else o_px[i] < o_px[k]
            if not before and o_px[i] == o_px[k]:
                before = o_active[i] < o_active[k] or (o_active[i] == o_active[k] and i < k)
            if not before:
                break
            idx[j] = k
            j -= 1
        idx[j] = i
        n += 1
    return n


@njit(cache=True, nogil=True)
def update_orders_on_trade(
    o_live: I64,
    o_leaves: I64,
    o_traded: I64,
    o_queue: F64,
    o_dec: F64,
    o_adv: F64,
    o_active: I64,
    out_slot: I64,
    out_qty: I64,
    o_px: I64,
    o_side: I64,
    trade_ts: int,
    book_ts: int,
    trade_px: int,
    trade_qty: int,
    taker_side: int,
    partial_fills: bool,
) -> int:
    """Apply one public trade to our live orders on the side it hits.

    A taker SELL hits our buys, a taker BUY our sells. Only orders active at the exchange
    before the trade take part: o_active < trade_ts (a trade stamped at or before an order's
    activation, e.g. a late REST backfill, neither fills it nor moves its queue).

    The print's size is a budget shared by our orders in price-time priority (best price first,
    then earliest activation): one print of q lots fills at most q lots of ours in total. For a
    buy (sells mirror), with `budget` what higher-priority orders left of the print:

    - trade price < our price (traded through us): `avail = budget`.
    - trade price == our price: the queue ahead shrinks by the whole print (the real queue
      traded it): queue -= trade_qty, or when the book stamped at book_ts >= trade_ts already
      showed it (the book delta came first): only the part of the last depth decrease o_dec
      not yet counted as ahead of us, x = min(trade_qty, o_dec), advances by
      x * (1 - o_adv / o_dec), plus trade_qty - x in full (o_dec, o_adv shrink by x and its
      share). A trade newer than the book adds to traded (the next book subtracts it).
      `avail = min(k, budget)` with k = floor(-queue) the whole lots past the front (when
      k > budget the rest went to our better-placed orders: queue = max(queue, -budget)).
    - trade price > our price: nothing.

    With partial fills the order fills min(avail, leaves); without (all-or-nothing) it fills
    its whole leaves when avail >= leaves, else nothing. The budget shrinks by the fill. After
    an at-price fill queue = 0. Fills are at our own price. A slot whose leaves reach 0 is
    freed.

    Mutates: o_live, o_leaves, o_traded, o_queue, o_dec, o_adv, out_slot, out_qty.

    Args:
        o_live, o_leaves, o_traded: int64[slots] order state (module docstring).
        o_queue, o_dec, o_adv: float64[slots] queue ahead and last-decrease memory (lots).
        o_active: int64[slots] exchange time (ns) each order became active.
        out_slot, out_qty: int64[>= slots] fill output: slot index and filled lots.
        o_px, o_side: int64[slots] order price (ticks) and side.
        trade_ts: the trade's exchange time (ns).
        book_ts: exchange time (ns) of the last book the orders were updated with.
        trade_px: trade price (ticks).
        trade_qty: trade size (lots).
        taker_side: codes.BUY or codes.SELL, the aggressor's side.
        partial_fills: fill by the print's size (True) or all-or-nothing (False).

    Returns:
        The number of fills written to out_*, or ERR_BAD_INPUT (nothing mutated) when the out
        arrays are too short, trade_qty <= 0 or taker_side is not BUY/SELL.
    """
    n_slots = o_live.shape[0]
    if out_slot.shape[0] < n_slots or out_qty.shape[0] < n_slots:
        return ERR_BAD_INPUT
    if trade_qty <= 0 or (taker_side != BUY and taker_side != SELL):
        return ERR_BAD_INPUT
    maker_side = -taker_side
    idx = np.empty(n_slots, np.int64)
    n = _priority_order(o_live, o_side, o_px, o_active, maker_side, idx)
    budget = trade_qty
    book_first = trade_ts <= book_ts
    n_fills = 0
    for j in range(n):
        i = idx[j]
        if o_active[i] >= trade_ts:
            continue  # the print happened before the order was there
        px = o_px[i]
        leaves = o_leaves[i]
        # "through": a sell print below our bid, a buy print above our ask
        through = trade_px < px if maker_side == BUY else trade_px > px
        avail = 0
        at_price = False
        if through:
            avail = budget
        elif trade_px == px:
            at_price = True
            tq = float(trade_qty)
            if book_first:
                dec = o_dec[i]
                x = min(tq, dec)
                adv = 0.0
                if x > 0.0:
                    r = o_adv[i] / dec
                    adv = x * (1.0 - r)
                    o_dec[i] = dec - x
                    o_adv[i] = o_adv[i] - x * r
                q = o_queue[i] - adv - (tq - x)
            else:
                q = o_queue[i] - tq
                o_traded[i] += trade_qty
            k = _lots_past_front(q)
            if k > budget:
                q = max(q, -float(budget))  # the rest of the print went to our better orders
            avail = min(k, budget)
            o_queue[i] = q
        if avail <= 0:
            continue
        # all-or-nothing: the whole leaves once what reached the order covers them
        qty = min(avail, leaves) if partial_fills else (leaves if avail >= leaves else 0)
        if qty <= 0:
            continue
        budget -= qty
        if at_price:
            o_queue[i] = 0.0
        out_slot[n_fills] = i
        out_qty[n_fills] = qty
        n_fills += 1
        o_leaves[i] = leaves - qty
        if leaves - qty == 0:
            o_live[i] = SLOT_FREE
            o_traded[i] = 0
    return n_fills

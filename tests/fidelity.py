"""Fidelity harness: one fixed quoting rule through mmd's SimExchange and through hftbacktest.

Imported by `tests/integration/test_fidelity_hftbacktest.py` and `tests/bench/bench_fidelity.py`.
hftbacktest (dev-only peer, 2.4.4) is used only through its public Python API.

The rule (identical code path `_decide` for both engines), evaluated every `step_ns` of time:
keep one `qty`-lot post-only (GTX) buy at the current best bid while position < max_pos and one
sell at the current best ask while position > -max_pos. A resting order whose price differs from
the wanted one (or that is no longer wanted) is cancelled; a side with an order whose submit or
cancel is still in flight waits (at most one order per side, a replacement only after the cancel
is confirmed).

Settings mapping (hftbacktest -> mmd):

- Exchange model: `no_partial_fill_exchange()` -> `ExchangeConfig(partial_fills=False)`. With 1-lot
  orders every fill is a full fill in both engines anyway.
- Queue model: `risk_adverse_queue_model()` -> `queue_model="risk_averse"`;
  `power_prob_queue_model(2.0)` -> `queue_model="prob_power", queue_power=2.0` (same
  p = f(back) / (f(back) + f(front)), f(x) = x**2).
- Fees: `trading_value_fee_model(maker, taker)` -> `maker_fee=maker, taker_fee=taker` (only maker
  fills happen: every order is post-only).
- Order latency: `constant_order_latency(entry_ns, response_ns)`. In hftbacktest a request (submit
  OR cancel) reaches the exchange after entry_ns and its response (ack, cancel confirmation, fill)
  reaches the strategy response_ns after the exchange handled it. SimExchange models only the
  one-way trip to the exchange: `entry_latency_ns=entry_ns, cancel_latency_ns=entry_ns`; it
  returns its events (acks, fills, cancels) at their exchange time, so the mmd driver below holds
  every event back by response_ns before the rule sees it (position, resting orders). Fills
  themselves happen at the same exchange time in both engines.
- Feed latency: the mmd driver reads the hub's book as of exchange time (no feed latency). To
  compare like with like, hftbacktest gets the same zero-feed-latency view: the converted npz's
  exchange-side rows (EXCH_EVENT, already in exchange-time order) with local_ts := exch_ts and
  both flags set. The recording's real feed latency is thus taken out of BOTH engines.
- Time grid: the data is stamped in whole ms; the rule runs at t0 + offset_ns + k * step_ns with
  offset_ns = 0.25 ms (and latencies are whole ms), so no decision, order arrival or response
  ever ties with a market event: the tie-breaking order of the two engines cannot matter.
- mmd side feeding: frames are decoded once, stably sorted by exchange time (the converter moves
  the ~0.6 % late trade prints the same way for hftbacktest's exchange side), applied to
  MarketHub, and each applied book frame / new trade is passed to SimExchange.on_book / on_trade.

PnL = cash + position x mid - fees, in quote currency, mid from each engine's own final book.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmd.config import ExchangeConfig, MarketConfig
from mmd.feeds.bybit_codec import BookMsg, DecodeError, TradesMsg, decode_frame
from mmd.feeds.convert.hftbacktest import (
    HBT_DEPTH,
    HBT_DEPTH_CLEAR,
    HBT_EXCH,
    HBT_LOCAL,
    hftbacktest_events,
)
from mmd.feeds.recording import read_recording
from mmd.market.hub import MarketHub
from mmd.model.codes import BUY, SELL
from mmd.model.events import (
    CancelOrder,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.sim.exchange import SimExchange

MS = 1_000_000
TRACE: list[tuple] | None = None  # debugging aid: (engine, step, action, side, px) when a list


@dataclass(frozen=True)
class FidelityParams:
    """One comparison's settings (see the module docstring for the mapping)."""

    step_ns: int = 100 * MS
    offset_ns: int = 250_000
    entry_ns: int = 10 * MS
    response_ns: int = 10 * MS
    qty_lots: int = 1
    max_pos_lots: int = 5
    maker_fee: float = 0.0002
    taker_fee: float = 0.00055
    queue: str = "risk_averse"  # or "power2"
    partial: bool = False  # hftbacktest partial_fill_exchange() / ExchangeConfig(partial_fills)


@dataclass
class EngineResult:
    """What one engine did under the rule."""

    engine: str
    fills: int = 0
    buys: int = 0
    sells: int = 0
    position_lots: int = 0
    cash: float = 0.0
    fees: float = 0.0
    mid: float = float("nan")
    pnl: float = 0.0
    notional: float = 0.0
    submits: int = 0
    cancels: int = 0
    rejects: int = 0
    steps: int = 0
    end_ns: int = 0  # the strategy's clock when the run stopped
    start_ns: int = 0  # hftbacktest: its clock before the first step
    undelivered_fills: int = 0  # fills at the exchange whose response had not arrived
    events: int = 0  # market events fed: mmd book frames + trades; hftbacktest rows
    seconds: float = 0.0
    filled_lots: int = 0
    end_fills: int = 0  # hftbacktest: fills first seen by the scan after the last step
    # (time the strategy learned of the fill, side, px_ticks)
    fill_log: list[tuple[int, int, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "fills": self.fills,
            "buys": self.buys,
            "sells": self.sells,
            "position_lots": self.position_lots,
            "pnl": round(self.pnl, 6),
            "fees": round(self.fees, 6),
            "notional": round(self.notional, 2),
            "filled_lots": self.filled_lots,
            "submits": self.submits,
            "cancels": self.cancels,
            "rejects": self.rejects,
            "steps": self.steps,
            "end_ns": self.end_ns,
            "undelivered_fills": self.undelivered_fills,
            "events": self.events,
            "seconds": round(self.seconds, 3),
        }


class _Side:
    """The strategy's local view of its one order on a side."""

    __slots__ = ("cancel_sent", "live", "oid", "px")

    def __init__(self, oid: Any, px: int) -> None:
        self.oid, self.px, self.live, self.cancel_sent = oid, px, False, False


def _decide(
    best_bid: int, best_ask: int, pos: int, cur: dict[int, _Side | None], p: FidelityParams
) -> list[tuple[str, int, int]]:
    """The rule: [("submit", side, px) | ("cancel", side, 0)] for the current state."""
    out: list[tuple[str, int, int]] = []
    for side in (BUY, SELL):
        if side == BUY:
            want = best_bid if pos < p.max_pos_lots else None
        else:
            want = best_ask if pos > -p.max_pos_lots else None
        o = cur[side]
        if o is None:
            if want is not None:
                out.append(("submit", side, want))
        elif o.live and not o.cancel_sent and o.px != want:
            out.append(("cancel", side, 0))
    return out


# ---------------------------------------------------------------------------------------------
# mmd: MarketHub + SimExchange
# ---------------------------------------------------------------------------------------------


def _load_frames(rec: Path) -> tuple[list[tuple[bytes, int]], list[tuple[int, int, Any]]]:
    """(frames to apply first, e.g. instruments-info; [(exch ts, recv ns, msg)] of book and trade
    frames, stably sorted by exchange time)."""
    head: list[tuple[bytes, int]] = []
    rows: list[tuple[int, int, Any]] = []
    for recv_ns, raw in read_recording(rec):
        try:
            msg = decode_frame(raw)
        except DecodeError:
            continue
        if isinstance(msg, BookMsg):
            rows.append((msg.ts_exch_ns, recv_ns, msg))
        elif isinstance(msg, TradesMsg):
            if msg.trades:
                rows.append((min(t.ts_exch_ns for t in msg.trades), recv_ns, msg))
        elif not rows:
            head.append((raw, recv_ns))
    rows.sort(key=lambda r: r[0])
    return head, rows


def run_mmd(rec: Path, symbol: str, t0_ns: int, p: FidelityParams) -> EngineResult:
    """The rule through MarketHub + SimExchange over the recording (see module docstring)."""
    wall = time.perf_counter()
    res = EngineResult("mmd")
    head, rows = _load_frames(rec)
    hub = MarketHub([symbol], MarketConfig())
    for raw, recv_ns in head:
        hub.on_frame(raw, recv_ns)
    st = hub.states[symbol]
    inst = st.instrument
    tick, lot = inst.tick, inst.lot
    cfg = ExchangeConfig(
        queue_model="risk_averse" if p.queue == "risk_averse" else "prob_power",
        queue_power=2.0,
        partial_fills=p.partial,
        maker_fee=p.maker_fee,
        taker_fee=p.taker_fee,
    )
    ex = SimExchange(cfg, {symbol: inst}, entry_latency_ns=p.entry_ns, cancel_latency_ns=p.entry_ns)
    inbox: collections.deque[Any] = collections.deque()  # exchange events, exchange-time order
    cur: dict[int, _Side | None] = {BUY: None, SELL: None}
    by_oid: dict[str, int] = {}
    pos = 0
    seq = 0
    resp = p.response_ns

    def deliver(now: int) -> None:
        nonlocal pos
        while inbox and inbox[0].ts_exch_ns + resp <= now:
            ev = inbox.popleft()
            side = by_oid.get(ev.client_order_id)
            if side is None:
                continue
            o = cur[side]
            if type(ev) is OrderAccepted:
                if o is not None:
                    o.live = True
                continue
            if type(ev) is OrderFilled:
                q = ev.qty_lots
                pos += side * q
                px = ev.px_ticks * tick
                res.cash -= side * px * q * lot
                res.fees += ev.fee_quote
                res.notional += px * q * lot
                res.fills += 1
                res.filled_lots += q
                res.buys += side == BUY
                res.sells += side == SELL
                res.fill_log.append((ev.ts_exch_ns + resp, side, ev.px_ticks))
                if ev.leaves_lots:
                    continue
            elif type(ev) is OrderRejected:
                if o is None or o.oid != ev.client_order_id:
                    continue  # a cancel that came too late (the order had filled)
                res.rejects += 1
            # filled in full, canceled, or its submit rejected: the side is free again
            if o is not None and o.oid == ev.client_order_id:
                cur[side] = None
            del by_oid[ev.client_order_id]

    boundary = t0_ns + p.offset_ns
    n_events = 0
    for ts, _recv, msg in rows:
        while ts > boundary:
            inbox.extend(ex.advance(boundary))
            deliver(boundary)
            res.steps += 1
            book = st.book
            if book.n_bids and book.n_asks:
                for act, side, px in _decide(int(book.bid_px[0]), int(book.ask_px[0]), pos, cur, p):
                    if act == "submit":
                        seq += 1
                        oid = f"f{seq}"
                        cur[side] = _Side(oid, px)
                        by_oid[oid] = side
                        ex.send(
                            SubmitOrder(
                                client_order_id=oid,
                                symbol=symbol,
                                side=side,
                                px_ticks=px,
                                qty_lots=p.qty_lots,
                            ),
                            boundary,
                        )
                        res.submits += 1
                    else:
                        o = cur[side]
                        assert o is not None
                        o.cancel_sent = True
                        ex.send(CancelOrder(client_order_id=o.oid, symbol=symbol), boundary)
                        res.cancels += 1
            boundary += p.step_ns
        if type(msg) is BookMsg:
            before = st.book_updates
            hub.on_message(msg, _recv)
            n_events += 1
            if st.book_updates != before:
                inbox.extend(ex.on_book(symbol, st.book, msg.ts_exch_ns))
        else:
            before_n = st.trades.total
            hub.on_message(msg, _recv)
            added = st.trades.total - before_n
            n_events += len(msg.trades)
            if added == 1:
                tr = st.trades
                inbox.extend(
                    ex.on_trade(
                        symbol,
                        tr.latest("ts_ns"),
                        tr.latest("px_ticks"),
                        tr.latest("qty_lots"),
                        tr.latest("side"),
                    )
                )
            elif added:
                new = st.trades.last(added)
                for j in range(added):
                    inbox.extend(
                        ex.on_trade(
                            symbol,
                            int(new["ts_ns"][j]),
                            int(new["px_ticks"][j]),
                            int(new["qty_lots"][j]),
                            int(new["side"][j]),
                        )
                    )
    last_ts = rows[-1][0] if rows else t0_ns
    inbox.extend(ex.advance(last_ts))
    deliver(last_ts)
    res.end_ns = last_ts
    res.undelivered_fills = sum(type(e) is OrderFilled for e in inbox)
    # the data ran out with responses in flight; hftbacktest's last elapse hands them to the
    # strategy (its final state has them), so the ledger here takes them too
    deliver(2**62)
    res.position_lots = pos
    res.mid = st.book.mid_ticks() * tick
    res.pnl = res.cash - res.fees + pos * lot * res.mid
    res.events = n_events
    res.seconds = time.perf_counter() - wall
    return res


# ---------------------------------------------------------------------------------------------
# hftbacktest
# ---------------------------------------------------------------------------------------------


def drop_pre_snapshot_depth(rows: np.ndarray) -> np.ndarray:
    """rows without the depth rows before the first snapshot (a source's pre-snapshot
    messages): the mmd drivers' book, like the daemon's, starts at the snapshot, so hftbacktest
    must not quote on the partial book those rows build."""
    kind = rows["ev"] & np.uint64(0xFF)
    first_clear = int(np.flatnonzero(kind == HBT_DEPTH_CLEAR)[0])
    pre = (np.arange(len(rows)) < first_clear) & (kind == HBT_DEPTH)
    return rows[~pre]


def hbt_zero_feed_latency(rec: Path) -> tuple[np.ndarray, int]:
    """The converted rows' exchange-side view with local_ts = exch_ts; (rows, first timestamp)."""
    rows, _shift = hftbacktest_events([rec])
    rows = drop_pre_snapshot_depth(rows)
    ex = rows[(rows["ev"] & np.uint64(HBT_EXCH)) != 0].copy()
    ex["ev"] |= np.uint64(HBT_EXCH | HBT_LOCAL)
    ex["local_ts"] = ex["exch_ts"]
    return ex, int(ex["exch_ts"][0])


def run_hftbacktest(
    rows: np.ndarray, tick: float, lot: float, p: FidelityParams, *, response_ns: int | None = None
) -> EngineResult:
    """The rule through hftbacktest (public API) over rows (zero-feed-latency rows, or the
    converter's rows with the recorded feed latency); response_ns overrides p.response_ns."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest
    from hftbacktest.order import (
        CANCELED,
        EXPIRED,
        FILLED,
        GTX,
        LIMIT,
        NEW,
        NONE,
        PARTIALLY_FILLED,
        REJECTED,
    )

    wall = time.perf_counter()
    res = EngineResult("hftbacktest")
    asset = (
        BacktestAsset()
        .data(rows)
        .linear_asset(1.0)
        .constant_order_latency(p.entry_ns, p.response_ns)
        .trading_value_fee_model(p.maker_fee, p.taker_fee)
        .tick_size(tick)
        .lot_size(lot)
        .last_trades_capacity(0)
    )
    asset = asset.partial_fill_exchange() if p.partial else asset.no_partial_fill_exchange()
    asset = (
        asset.risk_adverse_queue_model()
        if p.queue == "risk_averse"
        else (asset.power_prob_queue_model(2.0))
    )
    if response_ns is not None:
        asset = asset.constant_order_latency(p.entry_ns, response_ns)
    bt = HashMapMarketDepthBacktest([asset])
    cur: dict[int, _Side | None] = {BUY: None, SELL: None}
    seq = 0

    def scan() -> None:
        now = bt.current_timestamp
        orders = bt.orders(0)
        for side in (BUY, SELL):
            o = cur[side]
            if o is None:
                continue
            order = orders.get(o.oid)
            if order is None:
                cur[side] = None
                continue
            status = order.status
            if status == FILLED:
                px = order.exec_price_tick
                res.fills += 1
                res.buys += side == BUY
                res.sells += side == SELL
                res.notional += px * tick * p.qty_lots * lot
                res.fill_log.append((now, side, int(px)))
                cur[side] = None
            elif status in (CANCELED, EXPIRED, REJECTED):
                res.rejects += status != CANCELED
                cur[side] = None
            else:
                o.live = status in (NEW, PARTIALLY_FILLED) and order.req == NONE

    try:
        bt.elapse(0)
        res.start_ns = int(bt.current_timestamp)
        if bt.elapse(p.offset_ns) != 0:
            raise RuntimeError("no data")
        while True:
            res.steps += 1
            scan()
            bt.clear_inactive_orders(0)
            depth = bt.depth(0)
            pos = round(bt.position(0) / lot)
            bb, ba = depth.best_bid_tick, depth.best_ask_tick
            if bb > -(2**62) and ba < 2**62 and bb < ba:
                for act, side, px in _decide(int(bb), int(ba), pos, cur, p):
                    if TRACE is not None:
                        TRACE.append(("hbt", res.steps, act, side, px, int(bb), int(ba), pos))
                    if act == "submit":
                        seq += 1
                        cur[side] = _Side(seq, px)
                        submit = bt.submit_buy_order if side == BUY else bt.submit_sell_order
                        submit(0, seq, px * tick, p.qty_lots * lot, GTX, LIMIT, False)
                        res.submits += 1
                    else:
                        o = cur[side]
                        assert o is not None
                        o.cancel_sent = True
                        bt.cancel(0, o.oid, False)
                        res.cancels += 1
            rc = bt.elapse(p.step_ns)
            if rc != 0:
                if rc != 1:  # 1: end of data; anything else is an engine error
                    raise RuntimeError(f"hftbacktest elapse returned {rc} at step {res.steps}")
                break
        before_end = res.fills
        scan()  # fills that reached the strategy after the last step
        res.end_fills = res.fills - before_end
        sv = bt.state_values(0)
        # fill events and volume from the engine itself (partial fills are several events of
        # one order; the scan above only sees orders that finished)
        res.fills = int(sv.num_trades)
        res.filled_lots = round(float(sv.trading_volume) / lot)
        depth = bt.depth(0)
        res.position_lots = round(sv.position / lot)
        res.fees = float(sv.fee)
        res.cash = float(sv.balance)
        res.mid = (depth.best_bid + depth.best_ask) / 2.0
        res.pnl = res.cash - res.fees + sv.position * res.mid
        res.events = len(rows)
        res.end_ns = int(bt.current_timestamp)
    finally:
        bt.close()
    res.seconds = time.perf_counter() - wall
    return res


# ---------------------------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------------------------


def fills_per_step(
    res: EngineResult, grid0: int, step_ns: int, tail: int
) -> tuple[dict[int, collections.Counter[tuple[int, int]]], collections.Counter[tuple[int, int]]]:
    """Fills as multisets of (side, px_ticks) per decision step, and the multiset of the last
    `tail` fills (those handed over when the data ran out).

    Step k is the first grid time grid0 + k * step_ns at or after the time the strategy
    learned of the fill. Within one step the order of fills is not meaningful (a buy and a sell
    filled before the same decision may be logged either way), so only the multiset counts.
    """
    body = res.fill_log[: len(res.fill_log) - tail]
    steps: dict[int, collections.Counter[tuple[int, int]]] = collections.defaultdict(
        collections.Counter
    )
    for t, side, px in body:
        steps[-(-(t - grid0) // step_ns)][(side, px)] += 1
    end = collections.Counter((side, px) for _, side, px in res.fill_log[len(body) :])
    return dict(steps), end


# ---------------------------------------------------------------------------------------------
# product path: MarketHub + Trader (SimExchange + OMS + Portfolio) as `mmd backtest` builds them
# ---------------------------------------------------------------------------------------------


def hbt_with_feed_latency(rec: Path) -> tuple[np.ndarray, int, int, int]:
    """The converter's rows as they are (local_ts = receive stamp + shift: the recorded feed
    latency); (rows, shift_ns, first local timestamp, median feed latency ns)."""
    rows, shift = hftbacktest_events([rec])
    rows = drop_pre_snapshot_depth(rows)
    local = rows[(rows["ev"] & np.uint64(HBT_LOCAL)) != 0]
    both = rows[(rows["ev"] & np.uint64(HBT_EXCH | HBT_LOCAL)) == np.uint64(HBT_EXCH | HBT_LOCAL)]
    feed = int(np.median(both["local_ts"] - both["exch_ts"]))
    return rows, shift, int(local["local_ts"][0]), feed


def run_mmd_product(
    rec: Path, symbol: str, shift_ns: int, t0_local: int, p: FidelityParams
) -> EngineResult:
    """The rule through the product's trading stack, built by `mmd.app.build_trader` exactly as
    `mmd backtest` builds it (no ledger), fed the recording in receive order (feed latency on).

    Local clock = receive stamp + shift_ns (the axis of hftbacktest's local_ts). At each grid
    time b (local), after every frame received by then went through MarketHub and
    `Trader.on_message` (the paper exchange sees it at its exchange time, fills go through the
    OMS and the Portfolio), the rule looks at the hub's book, the Portfolio's position and the
    OMS's orders, and its commands go through `Orders.on_command` and
    `SimExchange.send(cmd, b)` (what `Trader.quote` does after the strategy and the risk
    gate, which the rule replaces). The strategy learns of an exchange event when the market
    frame that triggered it is received (about the feed latency after it happened).
    """
    import msgspec

    from mmd.app import build_trader
    from mmd.config import AppConfig
    from mmd.feeds.replay import merged_frames
    from mmd.trading.orders import OrderStatus

    wall = time.perf_counter()
    res = EngineResult("mmd-product")
    base = AppConfig()
    cfg = msgspec.structs.replace(
        base,
        feed=msgspec.structs.replace(base.feed, symbols=[symbol]),
        exchange=ExchangeConfig(
            queue_model="risk_averse" if p.queue == "risk_averse" else "prob_power",
            queue_power=2.0,
            entry_latency_ms=p.entry_ns / MS,
            cancel_latency_ms=p.entry_ns / MS,
            partial_fills=p.partial,
            maker_fee=p.maker_fee,
            taker_fee=p.taker_fee,
            funding=False,
        ),
    )
    hub = MarketHub([symbol], cfg.market, features_cfg=cfg.features)
    trader = build_trader(cfg, hub, ledger=False)
    oms, ex = trader.oms, trader.exchange
    mine: dict[int, str | None] = {BUY: None, SELL: None}
    seq = 0

    def side_view(side: int) -> _Side | None:
        oid = mine[side]
        if oid is None:
            return None
        # None once it is finished
        order = next((o for o in oms.orders(symbol) if o.client_order_id == oid), None)
        if order is None:
            mine[side] = None
            return None
        o = _Side(oid, order.px_ticks)
        o.live = order.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
        o.cancel_sent = order.status == OrderStatus.PENDING_CANCEL
        return o

    def step(b: int) -> None:
        nonlocal seq
        res.steps += 1
        st = hub.states.get(symbol)
        if st is None or not st.sync.synced:
            return
        book = st.book
        if not (book.n_bids and book.n_asks):
            return
        # what the daemon's quoter does before it quotes: commands that reached the exchange by
        # the latest exchange time seen are handled (acks, rejects) and applied
        for ev in ex.advance(trader.last_exch_ns):
            trader.apply_events([ev])
            if type(ev) is OrderFilled:
                res.fill_log.append((b, ev.side, ev.px_ticks))
        cur = {BUY: side_view(BUY), SELL: side_view(SELL)}
        pos = trader.portfolio.position_lots(symbol)
        for act, side, px in _decide(int(book.bid_px[0]), int(book.ask_px[0]), pos, cur, p):
            if TRACE is not None:
                TRACE.append(
                    ("mmd", res.steps, act, side, px, int(book.bid_px[0]), int(book.ask_px[0]), pos)
                )
            cmd: SubmitOrder | CancelOrder
            if act == "submit":
                seq += 1
                oid = f"f{seq}"
                mine[side] = oid
                cmd = SubmitOrder(
                    client_order_id=oid, symbol=symbol, side=side, px_ticks=px, qty_lots=p.qty_lots
                )
                res.submits += 1
            else:
                o = cur[side]
                assert o is not None
                cmd = CancelOrder(client_order_id=o.oid, symbol=symbol)
                res.cancels += 1
            oms.on_command(cmd)
            ex.send(cmd, b)

    boundary = t0_local + p.offset_ns
    n_frames = 0
    for recv, raw in merged_frames([rec]):
        while recv + shift_ns > boundary:
            step(boundary)
            boundary += p.step_ns
        msg, _refused = hub.decode(raw)
        if msg is None:
            continue
        n_frames += 1
        hub.on_message(msg, recv)
        for ev in trader.on_message(msg, recv):
            if type(ev) is OrderFilled:
                res.fill_log.append((recv + shift_ns, ev.side, ev.px_ticks))
    trader.apply_events(ex.advance(trader.last_exch_ns))
    res.end_ns = boundary - p.step_ns
    res.rejects = oms.counters.rejected  # submits the paper exchange refused
    st = hub.states[symbol]
    inst = st.instrument
    pf = trader.portfolio
    for f in trader.fills:
        res.fills += 1
        res.filled_lots += f.qty_lots
        res.buys += f.side == BUY
        res.sells += f.side == SELL
        res.notional += f.px_ticks * inst.tick * f.qty_lots * inst.lot
    res.position_lots = pf.position_lots(symbol)
    res.fees = pf.fees_quote
    res.mid = st.book.mid_ticks() * inst.tick
    res.pnl = pf.total_pnl_quote
    res.cash = res.pnl - res.position_lots * inst.lot * res.mid + res.fees
    res.events = n_frames
    res.seconds = time.perf_counter() - wall
    return res

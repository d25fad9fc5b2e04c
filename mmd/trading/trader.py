"""Trader: market frames -> paper exchange -> order manager -> portfolio, journaled first.

Pure core (no awaits, no clock reads): live, replay and `mmd backtest` all drive this one object,
so the paper fills of a live run and of a backtest come from the same code. Every order event
and fill is journaled (committed) before it changes anything in memory; every command is
journaled before it is sent. Components are injected; `app.py` builds them.

Time: the paper exchange runs on exchange time. A quote decided after seeing an event stamped
T_exch reaches the exchange at T_exch + feed latency + entry latency (the exchange adds the
latter), so recorded data whose receive clock is offset from the venue's still gets honest
latency.
"""

from __future__ import annotations

import collections

import msgspec

from mmd.config import StrategyConfig
from mmd.errors import InvariantViolation
from mmd.feeds.bybit_codec import BookMsg, Message, TradesMsg
from mmd.market.hub import MarketHub, SymbolState
from mmd.model.codes import BUY, SELL
from mmd.model.events import (
    CancelOrder,
    Command,
    FundingPaid,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    SubmitOrder,
)
from mmd.sim.exchange import SimExchange
from mmd.sim.latency import ConstantLatency, FeedDerivedLatency
from mmd.strategy.engine import SymbolStrategy
from mmd.trading.ledger import Ledger
from mmd.trading.oms import OrderManager
from mmd.trading.portfolio import Portfolio
from mmd.trading.risk import DayPnl, HaltState, RiskGate

_NS = 1_000_000_000
# markout horizons (seconds): side * (mid at fill time + h - fill price), in ticks
MARKOUT_HORIZONS_S = (1, 5, 30)


class Trader:
    """Owns the trading state of one daemon (all symbols).

    Args:
        hub: the market state (books, rings, features).
        exchange: the paper exchange.
        latency: the exchange's latency model (constant, or derived from the feed).
        feed: measures the feed latency (decision time on the exchange clock).
        oms: order state machine.
        portfolio: positions, cash and PnL.
        risk: pre-trade limits and the kill switch.
        strategy_cfg: the [strategy] section (one SymbolStrategy per symbol).
        ledger: the journal; None for a backtest that keeps nothing.
        snapshot_interval_s: how often portfolio snapshots are written.
        derive_latency: push the measured feed latency into the exchange's latency.
    """

    def __init__(
        self,
        hub: MarketHub,
        exchange: SimExchange,
        latency: ConstantLatency | FeedDerivedLatency,
        feed: FeedDerivedLatency,
        oms: OrderManager,
        portfolio: Portfolio,
        risk: RiskGate,
        strategy_cfg: StrategyConfig,
        ledger: Ledger | None = None,
        *,
        snapshot_interval_s: float = 10.0,
        derive_latency: bool = True,
        funding: bool = True,
    ) -> None:
        self.hub = hub
        self.exchange = exchange
        self.latency = latency
        self.feed = feed
        self.oms = oms
        self.portfolio = portfolio
        self.risk = risk
        self.strategy_cfg = strategy_cfg
        self.ledger = ledger
        self.day_pnl = DayPnl()
        self.strategies: dict[str, SymbolStrategy] = {}
        self.fills: list[OrderFilled] = []  # this run's fills, in order (reports, tests)
        self.fills_by_side = {BUY: 0, SELL: 0}
        self.keep_fills = ledger is None
        self._trade_cursor: dict[str, int] = {}
        self._snapshot_ns = int(snapshot_interval_s * _NS)
        self._next_snapshot_ns = 0
        self._derive_latency = derive_latency
        self._known: dict[str, object] = {}
        self._funded: dict[str, int] = {}
        # per (symbol, horizon): fills waiting for their markout, and the running sum/count
        self._markout_wait: dict[tuple[str, int], collections.deque[tuple[int, int, int]]] = {}
        self.markouts: dict[tuple[str, int], list[float]] = {}
        self.funding = funding
        self.funding_payments = 0
        self.restored = False
        self._catchup: list[bytes] = []
        self._catchup_pos = 0
        self._encoder = msgspec.json.Encoder()
        self.last_exch_ns = 0
        self.events = 0

    # -- restart ------------------------------------------------------------------------------

    def restore(self, now_ns: int) -> int:
        """Rebuild portfolio and order state from the ledger (a live restart); returns fills.

        Orders the previous process left resting are gone with its paper exchange: they are
        journaled as canceled, then the strategy quotes afresh.
        """
        self.restored = True
        if self.ledger is None or self._catchup:
            return 0  # nothing kept, or a replay resume that rebuilds everything by re-running
        r = self.ledger.restore()
        halt = r.meta.get("halt_state")
        if halt:
            self.risk.restore_halt(msgspec.json.decode(halt, type=HaltState), now_ns)
        for f in r.fills:
            self.portfolio.apply_fill(f, self._instrument(f.symbol))
        for ev in r.funding:
            self.portfolio.apply_funding(ev)
        # never re-sent: the new paper exchange has no such orders; close them in the journal
        for coid in [o.client_order_id for o in r.open_orders] + list(r.in_flight_ids):
            sym = next((o.symbol for o in r.open_orders if o.client_order_id == coid), "")
            self.ledger.journal(OrderCanceled(client_order_id=coid, symbol=sym,
                                              ts_exch_ns=now_ns))
        return len(r.fills)

    def start_catchup(self) -> int:
        """Replay resume: re-run the recording from its start and check, item by item, that
        it journals exactly what the ledger already holds (deterministic replay), writing only
        what comes after. Returns how many items will be checked."""
        if self.ledger is None:
            return 0
        self._catchup = self.ledger.event_bodies()
        self._catchup_pos = 0
        return len(self._catchup)

    def catching_up(self) -> bool:
        """True while a resumed replay is still re-checking what the ledger already holds."""
        return self._catchup_pos < len(self._catchup)

    def _instrument(self, symbol: str):  # type: ignore[no-untyped-def]
        st = self.hub.states.get(symbol)
        if st is None:
            raise InvariantViolation(f"ledger fill for {symbol}, which this daemon does not trade")
        return st.instrument

    # -- journaling ------------------------------------------------------------------------

    def _journal(self, item: OrderEvent | Command | FundingPaid, ts_ns: int) -> bool:
        if self.ledger is None:
            return True
        if self._catchup_pos < len(self._catchup):
            body = self._encoder.encode(item)
            if body != self._catchup[self._catchup_pos]:
                raise InvariantViolation(
                    f"replay diverged from the ledger at item {self._catchup_pos + 1}: "
                    f"{body[:120]!r} != {self._catchup[self._catchup_pos][:120]!r}"
                )
            self._catchup_pos += 1
            return True
        return self.ledger.journal(item, ts_ns)

    # -- market --------------------------------------------------------------------------------

    def on_message(self, msg: Message, ts_recv_ns: int) -> list[OrderEvent]:
        """After the hub applied msg: let the paper exchange see the market; apply events."""
        events: list[OrderEvent] = []
        if isinstance(msg, BookMsg):
            st = self.hub.states.get(msg.symbol)
            if st is None or not st.sync.synced or st.book.ts_exch_ns != msg.ts_exch_ns:
                return events
            self._ensure_symbol(st)
            ts = st.book.ts_exch_ns
            self.last_exch_ns = max(self.last_exch_ns, ts)
            self.feed.on_feed_sample(ts, ts_recv_ns)
            if self.latency is not self.feed:
                self.latency.on_feed_sample(ts, ts_recv_ns)
            if self._derive_latency:
                self.exchange.set_latency(self.latency.entry_latency_ns(),
                                          self.latency.cancel_latency_ns())
            events = self.exchange.on_book(msg.symbol, st.book, ts)
            mid = st.book.mid_ticks()
            if mid == mid:
                self.portfolio.mark(msg.symbol, mid)
                self._settle_markouts(msg.symbol, ts, mid)
        elif isinstance(msg, TradesMsg):
            st = self.hub.states.get(msg.symbol)
            if st is None:
                return events
            self._ensure_symbol(st)
            ring = st.trades
            t = ring.since(self._trade_cursor.get(msg.symbol, ring.total))
            self._trade_cursor[msg.symbol] = ring.total
            for k in range(len(t["ts_ns"])):
                ts = int(t["ts_ns"][k])
                self.last_exch_ns = max(self.last_exch_ns, ts)
                events += self.exchange.on_trade(msg.symbol, ts, int(t["px_ticks"][k]),
                                                 int(t["qty_lots"][k]), int(t["side"][k]))
        else:
            return events
        self.apply_events(events)
        self._check_funding()
        return events

    def _check_funding(self) -> None:
        """Charge or credit funding once per funding time the exchange clock has passed."""
        for sym, st in self.hub.states.items():
            due = st.next_funding_ns
            if (not self.funding or due is None or st.funding_rate is None
                    or self.last_exch_ns < due or self._funded.get(sym) == due):
                continue
            self._funded[sym] = due
            lots = self.portfolio.position_lots(sym)
            if lots == 0:
                continue
            mark = st.mark_price or st.instrument.ticks_to_px(st.book.mid_ticks())
            base = st.instrument.lots_to_qty(lots)
            ev = FundingPaid(funding_id=f"{sym}@{due}", symbol=sym, rate=st.funding_rate,
                             position_lots=lots, mark_px=mark,
                             amount_quote=-base * mark * st.funding_rate, ts_exch_ns=due)
            if self._journal(ev, due):
                self.portfolio.apply_funding(ev)
                self.funding_payments += 1

    def _ensure_symbol(self, st: SymbolState) -> None:
        if self._known.get(st.instrument.symbol) is not st.instrument:
            inst = st.instrument
            self._known[inst.symbol] = inst
            self.exchange.add_instrument(inst)
            self.portfolio.add_instrument(inst)
            order_lots = max(1, inst.qty_to_lots(self.strategy_cfg.order_size))
            self.risk.add_instrument(inst, min_lots=order_lots)

    def apply_events(self, events: list[OrderEvent]) -> None:
        """Journal, then apply: OMS first, then the portfolio for fills."""
        for ev in events:
            if not self._journal(ev, ev.ts_exch_ns):
                continue  # a fill already journaled before a restart: never count it twice
            self.events += 1
            self.oms.on_event(ev)
            if isinstance(ev, OrderFilled):
                self.portfolio.apply_fill(ev, self.hub.states[ev.symbol].instrument)
                self.fills_by_side[ev.side] += 1
                for h in MARKOUT_HORIZONS_S:
                    self._markout_wait.setdefault((ev.symbol, h), collections.deque()).append(
                        (ev.ts_exch_ns + h * _NS, ev.side, ev.px_ticks))
                if self.keep_fills:
                    self.fills.append(ev)
        if events:
            self._check_pnl(self.last_exch_ns)

    def _settle_markouts(self, symbol: str, ts_ns: int, mid_ticks: float) -> None:
        """Fills whose horizon has passed get their markout at the first mid after it."""
        for h in MARKOUT_HORIZONS_S:
            wait = self._markout_wait.get((symbol, h))
            while wait and wait[0][0] <= ts_ns:
                _, side, px = wait.popleft()
                acc = self.markouts.setdefault((symbol, h), [0.0, 0.0])
                acc[0] += side * (mid_ticks - px)
                acc[1] += 1

    def _check_pnl(self, ts_ns: int) -> None:
        was = self.risk.halted
        day = self.day_pnl.update(ts_ns, self.portfolio.total_pnl_quote)
        self.risk.on_pnl(ts_ns, day)
        if self.risk.halted and not was and self.ledger is not None and not self.catching_up():
            # a restart the same UTC day stays halted
            self.ledger.set_meta("halt_state", self._encoder.encode(self.risk.halt_state).decode())

    # -- quoting -------------------------------------------------------------------------------

    def strategy(self, symbol: str, st: SymbolState, now_ns: int) -> SymbolStrategy:
        """The symbol's strategy (new when the instrument appears or changes)."""
        strat = self.strategies.get(symbol)
        if strat is None or strat.instrument != st.instrument:
            strat = self.strategies[symbol] = SymbolStrategy(self.strategy_cfg, st.instrument,
                                                             now_ns)
        return strat

    def quote(self, now_ns: int, symbols: list[str] | None = None) -> list[Command]:
        """Decide quotes for the symbols (default all), pass them through risk, send them.

        Args:
            now_ns: the daemon clock (drives the strategies' warm-up).
            symbols: which symbols to requote.
        """
        sent: list[Command] = []
        if not self.restored:
            if any(s not in self.hub.states for s in self.hub.symbols):
                return []  # restore needs every instrument: wait until all are known
            self.restore(self.last_exch_ns)
        feed_ns = max(0, self.feed.feed_latency_ns())
        for sym in symbols if symbols is not None else list(self.hub.states):
            st = self.hub.states.get(sym)
            if st is None:
                continue
            strat = self.strategy(sym, st, now_ns)
            position = self.portfolio.position_lots(sym)
            cmds = strat.step(now_ns, st, self.oms.open_orders(sym), position,
                              halted=self.risk.halted)
            if not cmds:
                continue
            cmds = self.oms.filter_cancels(cmds)
            allowed, _rejected = self.risk.check(
                sym, cmds, now_ns=now_ns, position_lots=position,
                open_buy_lots=self.oms.open_lots(sym, BUY),
                open_sell_lots=self.oms.open_lots(sym, SELL),
                book_stale=st.stale or not st.sync.synced,
            )
            # the decision happens on exchange time: after the event it reacted to, plus the
            # feed latency it took to see it
            decided_exch_ns = max(st.book.ts_exch_ns, 0) + feed_ns
            for cmd in allowed:
                self._journal(cmd, decided_exch_ns)
                self.oms.on_command(cmd)
                self.exchange.send(cmd, decided_exch_ns)
                sent.append(cmd)
        return sent

    def cancel_all(self, now_exch_ns: int) -> list[CancelOrder]:
        """Cancel every open order (kill switch, shutdown)."""
        out = []
        for sym in list(self.hub.states):
            cmds = self.oms.filter_cancels(
                [CancelOrder(client_order_id=o.client_order_id, symbol=sym)
                 for o in self.oms.open_orders(sym)])
            for cmd in cmds:
                if isinstance(cmd, CancelOrder):
                    self._journal(cmd, now_exch_ns)
                    self.oms.on_command(cmd)
                    self.exchange.send(cmd, now_exch_ns)
                    out.append(cmd)
        return out

    def maybe_snapshot(self, ts_ns: int) -> bool:
        """Write a portfolio snapshot when the interval has passed (not during catch-up)."""
        if self.ledger is None or ts_ns < self._next_snapshot_ns:
            return False
        if self._catchup_pos < len(self._catchup):
            return False
        self._next_snapshot_ns = ts_ns + self._snapshot_ns
        self.ledger.snapshot(self.portfolio.snapshot(ts_ns))
        return True

    def submits_in_flight(self) -> int:
        """Commands sent but not yet answered by the paper exchange."""
        return int(self.exchange.in_flight)


__all__ = ["SubmitOrder", "Trader"]

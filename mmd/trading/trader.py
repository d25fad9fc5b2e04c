"""Trader: market frames -> paper exchange -> order state -> portfolio, journaled first.

Pure core (no awaits, no clock reads): live, replay and `mmd backtest` all drive this one object,
so the paper fills of a live run and of a backtest come from the same code. Every order event
and fill is journaled (committed) before it changes anything in memory; every command is
journaled before it is sent. Components are injected; `app.py` builds them. The journal writer
(`journal.py`), funding (`funding.py`), markouts (`markouts.py`), quoting (`quoting.py`),
instrument steps (`steps.py`) and the restart state (`restart.py`) live in their own modules.

Time: the paper exchange runs on exchange time. A quote decided after seeing an event stamped
T_exch reaches the exchange at T_exch + feed latency + entry latency (the exchange adds the
latter), so recorded data whose receive clock is offset from the venue's still gets honest
latency.
"""

from __future__ import annotations

import msgspec

from mmd.config import StrategyConfig
from mmd.feeds.bybit_codec import BookMsg, Message, TradesMsg
from mmd.learn.runtime import LoadedModels
from mmd.market.hub import MarketHub
from mmd.model.codes import BUY, NS_PER_S, SELL
from mmd.model.events import (
    CancelOrder,
    Command,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
)
from mmd.model.instrument import Instrument
from mmd.sim.exchange import SimExchange
from mmd.sim.latency import ConstantLatency, FeedDerivedLatency
from mmd.strategy.engine import SymbolStrategy
from mmd.strategy.hedge import PortfolioHedge
from mmd.trading.funding import FundingSettler
from mmd.trading.happened import EXCHANGE_REJECT_REASONS, Happened
from mmd.trading.journal import JournalWriter
from mmd.trading.ledger import Ledger
from mmd.trading.markouts import Markouts
from mmd.trading.orders import Orders
from mmd.trading.portfolio import Portfolio
from mmd.trading.quoting import quote
from mmd.trading.restart import apply_restored, checkpoint_of
from mmd.trading.risk import DayPnl, RiskGate
from mmd.trading.steps import ensure_symbol, rebase


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
        snapshot_interval_s: how often portfolio snapshots (and checkpoints) are written.
        derive_latency: push the measured feed latency into the exchange's latency.
    """

    def __init__(
        self,
        hub: MarketHub,
        exchange: SimExchange,
        latency: ConstantLatency | FeedDerivedLatency,
        feed: FeedDerivedLatency,
        oms: Orders,
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
        self.models: LoadedModels | None = None  # learned models for new strategies
        self.hedge: PortfolioHedge | None = None  # the beta hedge ([hedge] enabled)
        self.exchange = exchange
        self.latency = latency
        self.feed = feed
        self.oms = oms
        self.portfolio = portfolio
        self.risk = risk
        self.strategy_cfg = strategy_cfg
        self.ledger = ledger
        self.journal = JournalWriter(ledger)
        self.day_pnl = DayPnl()
        self.day_today = 0.0  # today's PnL as the kill switch last saw it
        self.strategies: dict[str, SymbolStrategy] = {}
        self.fills: list[OrderFilled] = []  # this run's fills, in order (reports, tests)
        self.fills_by_side = {BUY: 0, SELL: 0}
        self.keep_fills = ledger is None
        self.trade_cursor: dict[str, int] = {}
        self._snapshot_ns = int(snapshot_interval_s * NS_PER_S)
        self._next_snapshot_ns = 0
        self._derive_latency = derive_latency
        self._latency_set: tuple[int, int] | None = None  # what this trader last set
        self.known: dict[str, Instrument] = {}
        # orders a step change closed in the journal while the exchange still had them in
        # flight: whatever the exchange says about them later is dropped
        self.void: set[str] = set()
        self.markout = Markouts()
        self.settler = FundingSettler()
        self.funding = funding
        self.funding_payments = 0
        self.step_changes = 0
        self.restored = False
        self._encoder = msgspec.json.Encoder()
        self.last_exch_ns = 0
        self.events = 0
        self.checkpoints = 0
        # exchange (and step-change) rejections by reason (EXCHANGE_REJECT_REASONS or "other")
        self.rejected_by_reason: dict[str, int] = {}
        # what happened since the shell last drained it; None (the default, a backtest): not kept
        self.happened: list[Happened] | None = None

    def keep_happened(self) -> None:
        """Start keeping what happens for `drain_happened` (the daemon's trading log)."""
        if self.happened is None:
            self.happened = []

    def drain_happened(self) -> list[Happened]:
        """What happened since the last call, oldest first (empty unless `keep_happened`)."""
        out = self.happened
        if not out:
            return []
        self.happened = []
        return out

    def note(self, h: Happened) -> None:
        """Keep h for `drain_happened` (when `keep_happened` was called)."""
        if self.happened is not None:
            self.happened.append(h)

    @property
    def markouts(self) -> dict[tuple[str, int], list[float]]:
        """[sum, count] of markouts (ticks) per (symbol, horizon)."""
        return self.markout.sums

    # -- restart ------------------------------------------------------------------------------

    def restore(self, now_ns: int) -> int:
        """Rebuild portfolio, kill switch and order state from the ledger (a live restart).

        Reads the latest checkpoint plus the journal after it. Orders the previous process left
        resting are gone with its paper exchange: they are journaled as canceled, then the
        strategy quotes afresh. Returns the number of fills applied after the checkpoint.

        Raises:
            StateError: a bad ledger row (exit 2 with how to recover).
        """
        self.restored = True
        if self.ledger is None or self.journal.resuming:
            return 0  # nothing kept, or a replay resume that rebuilds everything by re-running
        r = self.ledger.restore()
        day_pnl = apply_restored(
            r,
            portfolio=self.portfolio,
            risk=self.risk,
            settler=self.settler,
            category_of=self._category,
            now_ns=now_ns,
        )
        if day_pnl is not None:
            self.day_pnl = day_pnl
        # counted in the journaled steps; today's instruments may have other steps
        for st in self.hub.states.values():
            rebase(self, st.instrument, now_ns)
        # never re-sent: the new paper exchange has no such orders; close them in the journal
        syms = {o.client_order_id: o.symbol for o in r.open_orders}
        for coid in list(syms) + list(r.in_flight_ids):
            self.ledger.journal(
                OrderCanceled(client_order_id=coid, symbol=syms.get(coid, ""), ts_exch_ns=now_ns)
            )
        return len(r.fills)

    def _category(self, symbol: str) -> str:
        st = self.hub.states.get(symbol)
        return st.instrument.category if st is not None else "linear"

    def start_catchup(self) -> int:
        """Replay resume: re-run the recording from its start and check, item by item, that
        it journals exactly what the ledger already holds (deterministic replay), writing only
        what comes after. Returns how many items will be checked."""
        return self.journal.start_catchup()

    def catching_up(self) -> bool:
        """True while a resumed replay is still re-checking what the ledger already holds."""
        return self.journal.catching_up()

    def finish_replay(self) -> None:
        """A replay ended: it must have reproduced the whole journal (StateError if not)."""
        self.journal.finish()

    # -- market --------------------------------------------------------------------------------

    def on_message(self, msg: Message, ts_recv_ns: int) -> list[OrderEvent]:
        """After the hub applied msg: let the paper exchange see the market; apply events."""
        events: list[OrderEvent] = []
        if isinstance(msg, BookMsg):
            st = self.hub.states.get(msg.symbol)
            if st is None or not st.sync.synced or st.book.ts_exch_ns != msg.ts_exch_ns:
                return events
            ts = st.book.ts_exch_ns
            self.last_exch_ns = max(self.last_exch_ns, ts)
            ensure_symbol(self, st)
            strat = self.strategies.get(msg.symbol)
            if strat is not None and strat.deep is not None:  # one LSTM step per update
                strat.on_book_update(st, ts_recv_ns)
            self.feed.on_feed_sample(ts, ts_recv_ns)
            if self.latency is not self.feed:
                self.latency.on_feed_sample(ts, ts_recv_ns)
            if self._derive_latency:
                lat = (self.latency.entry_latency_ns(), self.latency.cancel_latency_ns())
                if lat != self._latency_set:  # the exchange keeps it until it changes
                    self.exchange.set_latency(*lat)
                    self._latency_set = lat
            events = self.exchange.on_book(msg.symbol, st.book, ts)
            self.apply_events(events)
            mid = st.book.mid_ticks()
            if mid == mid and self.portfolio.steps(msg.symbol) == (
                st.instrument.tick_size,
                st.instrument.lot_size,
            ):
                self.portfolio.mark(msg.symbol, mid)
                self.markout.on_mid(msg.symbol, ts, mid)
                # the kill switch sees every mark: a loss on an open position trips it too
                self._check_pnl(self.last_exch_ns)  # monotone: never a day back
            if self.hedge is not None:
                self.hedge.on_mid(msg.symbol, ts, mid * st.instrument.tick)
        elif isinstance(msg, TradesMsg):
            st = self.hub.states.get(msg.symbol)
            if st is None:
                return events
            ensure_symbol(self, st)
            ring = st.trades
            t = ring.since(self.trade_cursor.get(msg.symbol, ring.total))
            self.trade_cursor[msg.symbol] = ring.total
            for k in range(len(t["ts_ns"])):
                ts = int(t["ts_ns"][k])
                self.last_exch_ns = max(self.last_exch_ns, ts)
                events += self.exchange.on_trade(
                    msg.symbol, ts, int(t["px_ticks"][k]), int(t["qty_lots"][k]), int(t["side"][k])
                )
            self.apply_events(events)
        else:
            if self.funding:
                self._check_funding()  # a ticker may have moved a funding time forward
            return events
        self._check_funding()
        return events

    def _check_funding(self) -> None:
        """Charge or credit funding once per funding time (see FundingSettler)."""
        if not self.funding:
            return
        for sym, st in self.hub.states.items():
            if sym not in self.known:
                continue
            for ev in self.settler.due(
                sym, st, self.last_exch_ns, self.portfolio.position_lots(sym)
            ):
                if self.journal.write(ev, ev.ts_exch_ns):
                    self.portfolio.apply_funding(ev)
                    self.funding_payments += 1
                    self.note(
                        Happened(
                            kind="funding",
                            symbol=sym,
                            item=ev,
                            position_lots=self.portfolio.position_lots(sym),
                        )
                    )

    def apply_events(self, events: list[OrderEvent]) -> None:
        """Journal, then apply: OMS first, then the portfolio for fills."""
        for ev in events:
            if ev.client_order_id in self.void:
                if isinstance(ev, OrderAccepted):  # a voided submit landed: take it back
                    self.exchange.send(
                        CancelOrder(client_order_id=ev.client_order_id, symbol=ev.symbol),
                        ev.ts_exch_ns,
                    )
                continue
            if not self.journal.write(ev, ev.ts_exch_ns):
                continue  # a fill already journaled before a restart: never count it twice
            self.events += 1
            self.oms.on_event(ev)
            if isinstance(ev, OrderFilled):
                pos = self.portfolio.apply_fill(ev, self.hub.states[ev.symbol].instrument)
                self.fills_by_side[ev.side] += 1
                self.markout.on_fill(ev)
                if self.keep_fills:
                    self.fills.append(ev)
                self.note(
                    Happened(
                        kind="filled", symbol=ev.symbol, item=ev, position_lots=pos.position_lots
                    )
                )
            elif isinstance(ev, OrderRejected):
                self.count_reject(ev)
        if events:
            self._check_pnl(self.last_exch_ns)

    def count_reject(self, ev: OrderRejected) -> None:
        reason = ev.reason if ev.reason in EXCHANGE_REJECT_REASONS else "other"
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        self.note(
            Happened(
                kind="rejected",
                symbol=ev.symbol,
                item=ev,
                source="exchange",
                reason=reason,
                position_lots=self.portfolio.position_lots(ev.symbol),
            )
        )

    def _check_pnl(self, ts_ns: int) -> None:
        """Feed the day's PnL to the kill switch; persist a new day baseline or a trip."""
        if self.ledger is not None and not self.restored:
            return  # the portfolio is not rebuilt yet: its total would set a false baseline
        was = self.risk.halted
        before = self.day_pnl.state()
        day = self.day_pnl.update(ts_ns, self.portfolio.total_pnl_quote)
        after = self.day_pnl.state()
        if after != before:  # a new UTC day: its baseline survives a restart
            self.journal.set_meta("day_pnl", self._encoder.encode(after).decode())
        self.day_today = day
        self.risk.on_pnl(ts_ns, day)
        if self.risk.halted and not was:
            self.persist_halt()
            self.note(Happened(kind="halted", symbol="", reason=self.risk.halt_reason))

    def persist_halt(self) -> None:
        # a restart the same UTC day stays halted
        if self.risk.halt_state is not None:
            self.journal.set_meta("halt_state", self._encoder.encode(self.risk.halt_state).decode())

    # -- quoting -------------------------------------------------------------------------------

    def quote(self, now_ns: int, symbols: list[str] | None = None) -> list[Command]:
        """Decide quotes for the symbols (default all), pass them through risk, send them
        (see `quoting.quote`)."""
        return quote(self, now_ns, symbols)

    def send(self, cmd: Command, exch_ns: int) -> None:
        """Journal a command, record it in the OMS and put it on the wire at exch_ns."""
        self.journal.write(cmd, exch_ns)
        self.oms.on_command(cmd)
        self.exchange.send(cmd, exch_ns)

    def maybe_snapshot(self, ts_ns: int) -> bool:
        """Write a portfolio snapshot and a checkpoint when the interval has passed (not
        during catch-up)."""
        if self.ledger is None or ts_ns <= 0 or ts_ns < self._next_snapshot_ns:
            return False  # (ts 0: a replay before its first book has no time yet)
        if self.catching_up():
            return False
        self._next_snapshot_ns = ts_ns + self._snapshot_ns
        self.ledger.snapshot(self.portfolio.snapshot(ts_ns))
        if (
            self.journal.checkpoint(checkpoint_of(self.portfolio, self.oms, self.settler, ts_ns))
            is not None
        ):
            self.checkpoints += 1
        return True

"""Every frame's path (FrameHandler: decode, record, hub, trader) and when the live trader quotes
(QuoteScheduler). Shell: it holds no trading rule of its own, and starts no task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mmd.clock import Clock
from mmd.feeds.bybit_codec import (
    BookMsg,
    InstrumentsMsg,
    KlineMsg,
    Message,
    TradesMsg,
)
from mmd.feeds.recorder import FrameRecorder
from mmd.logs import get_logger
from mmd.market.hub import MarketHub
from mmd.metrics import Metrics
from mmd.trading.trader import Trader
from mmd.trading_log import TradingLog

# Exceptions a hostile or corrupt frame can provoke while it is handled: absorbed at the frame
# boundary (counted, logged once per kind, the symbol resynced). Anything else, InvariantViolation
# above all (illegal state = crash), still ends the daemon.
_INPUT_ERRORS = (ArithmeticError, ValueError, TypeError, KeyError, IndexError)
_FRAME_HEAD = 200  # bytes of a frame shown in the log


class FrameHandler:
    """Every frame, live or replayed: decode once, record, apply to the hub, then let the
    paper exchange see the market (fills are journaled and applied inside the trader).

    Returns the symbols the feed must resync (the websocket client resubscribes them). With
    `quote_inline` (replay) the strategy requotes right after every book frame, on the frame's
    time, which makes a replay deterministic; live, `after_frame(symbol)` is called after every
    frame (symbol = the book it changed, else None) and the QuoteScheduler decides when to quote.

    It is the crash barrier of the feed tasks: an input-caused exception while one frame is
    handled is counted in `hub.stats.frame_errors[stage]`, logged once per (stage, kind) with
    the frame's head, resyncs that frame's symbol, and the next frame is handled as usual.
    """

    def __init__(
        self,
        hub: MarketHub,
        recorder: FrameRecorder | None = None,
        after_frame: Callable[[str | None], None] | None = None,
        trader: Trader | None = None,
        *,
        quote_inline: bool = False,
        trading_log: TradingLog | None = None,
    ) -> None:
        self.hub = hub
        self.trading_log = trading_log
        self.recorder = recorder
        self.after_frame = after_frame or (lambda _symbol: None)
        self.trader = trader
        self.quote_inline = quote_inline
        self.log = get_logger("feed.frames")
        self._logged: set[tuple[str, str]] = set()

    def __call__(self, raw: bytes, ts_recv_ns: int) -> list[str]:
        hub = self.hub
        stage, msg = "decode", None
        try:
            errors = hub.stats.decode_errors
            msg, refused = hub.decode(raw)
            if msg is None:
                if hub.stats.decode_errors != errors:
                    why = hub.stats.last_refusal
                    # kind = the rule's field (the reason's first word): one log line each
                    self._log_once(
                        "refused",
                        why.split(" ", 1)[0],
                        raw,
                        refused[0].symbol if refused else None,
                        reason=why[:200],
                    )
                return [r.symbol for r in refused]
            if self.recorder is not None:
                stage = "record"
                self._record(msg, raw, ts_recv_ns)
            stage = "hub"
            resyncs = [r.symbol for r in hub.on_message(msg, ts_recv_ns)]
            trader = self.trader
            if trader is not None:
                stage = "trader"
                trader.on_message(msg, ts_recv_ns)
            if isinstance(msg, BookMsg):
                if self.quote_inline and trader is not None:
                    _restore_logged(self.trading_log)
                    trader.quote(ts_recv_ns, [msg.symbol])
                    trader.maybe_snapshot(trader.last_exch_ns)
                else:
                    st = hub.states.get(msg.symbol)
                    applied = st is not None and st.last_book_recv_ns == ts_recv_ns
                    stage = "quote"
                    self.after_frame(msg.symbol if applied and not resyncs else None)
            elif not self.quote_inline:
                stage = "quote"
                self.after_frame(None)
            if trader is not None:
                _log_trading(self.trading_log, ts_recv_ns)
            return resyncs
        except _INPUT_ERRORS as exc:
            hub.stats.frame_errors[stage] += 1
            symbol = getattr(msg, "symbol", None)
            self._log_once(stage, type(exc).__name__, raw, symbol, error=str(exc)[:200])
            return [r.symbol for r in hub.resync_symbol(symbol, "frame_error")]

    def _log_once(
        self, stage: str, kind: str, raw: bytes | str, symbol: str | None, **kw: Any
    ) -> None:
        if (stage, kind) in self._logged:
            return
        self._logged.add((stage, kind))
        head = raw[:_FRAME_HEAD]
        text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
        self.log.warning(
            "frame_refused" if stage == "refused" else "frame_error",
            stage=stage,
            kind=kind,
            symbol=symbol,
            head=text,
            **kw,
        )

    def _record(self, msg: Message, raw: bytes, ts_recv_ns: int) -> None:
        rec = self.recorder
        assert rec is not None
        if isinstance(msg, BookMsg | TradesMsg | KlineMsg):
            if msg.symbol in self.hub.symbols:
                rec.write(msg.symbol, raw, ts_recv_ns)
        elif isinstance(msg, InstrumentsMsg):
            for info in msg.instruments:
                if info.symbol in self.hub.symbols:
                    rec.write(info.symbol, raw, ts_recv_ns, header=True)


class QuoteScheduler:
    """Decides WHEN the trader quotes, live (the trader decides WHAT).

    After a book frame, when the feed holds no newer frame (`backlog()` is False), the symbol is
    quoted at once, in the reader's own call: no task hand-off. Under a backlog the changed
    symbols are coalesced (the latest book wins) and quoted once every `every_frames` book
    frames or every `every_s` seconds, whichever comes first, so a flood delays decisions but
    never starves them; when the backlog drains, the next frame quotes what is left. The
    quoter task adds the requote timer for a quiet market (`tick()`).

    Every decision that reacted to a new book is counted by trigger (`decisions`) and observed
    in `mmd_tick_to_quote_seconds` from the frame's receive stamp and from its exchange stamp.
    """

    TRIGGERS = ("inline", "backlog", "timer")

    def __init__(
        self,
        trader: Trader,
        hub: MarketHub,
        clock: Clock,
        metrics: Metrics,
        *,
        every_frames: int,
        every_s: float,
    ) -> None:
        self.trader = trader
        self.hub = hub
        self.clock = clock
        self.every_frames = every_frames
        self.every_ns = int(every_s * 1e9)
        self.backlog: Callable[[], bool] = lambda: False
        self.dirty: dict[str, None] = {}  # symbols with a book not yet quoted (ordered set)
        self.pending = 0  # book frames coalesced since the last decision
        self.last_mono_ns = self.last_timer_ns = clock.mono_ns()
        self.decisions = dict.fromkeys(self.TRIGGERS, 0)
        self._quoted_recv_ns: dict[str, int] = {}
        self._recv = metrics.tick_to_quote.labels("recv")
        self._exch = metrics.tick_to_quote.labels("exch")
        self._counted = {t: metrics.quote_decisions.labels(t) for t in self.TRIGGERS}
        self.wake: Callable[[], None] = lambda: None  # the quoter task's flush under backlog
        self.trading_log: TradingLog | None = None  # logs what the trader reports (the shell's)

    def __call__(self, symbol: str | None) -> None:
        """After every live frame: symbol is the book it changed (None: no book changed)."""
        if symbol is not None:
            self.dirty[symbol] = None
            self.pending += 1
        if not self.dirty:
            return
        if not self.backlog():
            self.decide("inline")
        elif (
            self.pending >= self.every_frames
            or self.clock.mono_ns() - self.last_mono_ns >= self.every_ns
        ):
            self.decide("backlog")
        else:
            self.wake()

    def tick(self, quiet_ns: int) -> None:
        """From the quoter task: quote what a backlog left, and every symbol once per quiet_ns
        (a quiet market still gets requoted: warm-up ends, the session clock moves)."""
        if self.dirty:
            self.decide("backlog")
        if self.clock.mono_ns() - self.last_timer_ns >= quiet_ns:
            self.last_timer_ns = self.clock.mono_ns()
            self.decide("timer", list(self.hub.states))

    def decide(self, trigger: str, symbols: list[str] | None = None) -> None:
        """Advance the paper exchange, quote the symbols (default: the changed ones), observe."""
        trader = self.trader
        syms = list(self.dirty) if symbols is None else symbols
        self.dirty.clear()
        self.pending = 0
        now = self.clock.now_ns()
        trader.apply_events(trader.exchange.advance(trader.last_exch_ns))
        _restore_logged(self.trading_log)
        trader.quote(now, syms)
        trader.maybe_snapshot(now)
        done_ns = self.clock.now_ns()
        _log_trading(self.trading_log, done_ns)
        self.last_mono_ns = self.clock.mono_ns()
        states, strategies, quoted = self.hub.states, trader.strategies, self._quoted_recv_ns
        n = 0
        for sym in syms:
            st = states.get(sym)
            strat = strategies.get(sym)
            if st is None or strat is None or not strat.has_target:
                continue
            recv = st.last_book_recv_ns
            if recv == quoted.get(sym):
                continue  # no new book since the last decision (the requote timer)
            quoted[sym] = recv
            n += 1
            self._recv.observe((done_ns - recv) / 1e9)
            self._exch.observe(max(done_ns - st.book.ts_exch_ns, 0) / 1e9)
        if n:
            self.decisions[trigger] += n
            self._counted[trigger].inc(n)


def window_frames(
    hub: MarketHub,
    trader: Trader,
    frames: Iterable[tuple[int, bytes]],
    start_ns: int | None,
    end_ns: int | None,
) -> Iterator[int]:
    """The per-frame backtest loop (`mmd backtest --engine python`, the RL python runner):
    frames received before start_ns only build the market state, frames in [start_ns, end_ns)
    go through the trader too (quoting inline, as `--feed replay`), the first one at or after
    end_ns stops it (None = open end). Yields each traded frame's receive time once the
    trader has handled it."""
    handler = FrameHandler(hub, None, None, trader, quote_inline=True)
    market_only = FrameHandler(hub)  # before start_ns: the market state, no trader
    for ts, raw in frames:
        if end_ns is not None and ts >= end_ns:
            break
        if start_ns is not None and ts < start_ns:
            market_only(raw, ts)
            continue
        handler(raw, ts)
        yield ts


def _restore_logged(tlog: TradingLog | None) -> None:
    """Restore the trader from its ledger (once, when due) and log the figures."""
    if tlog is not None and not tlog.trader.restored:
        tlog.restore_if_due()


def _log_trading(tlog: TradingLog | None, now_ns: int) -> None:
    """Log what the trader reports since the last call (fills, rejections, heartbeats...)."""
    if tlog is not None:
        tlog.after_step(now_ns)

"""Pre-trade risk: position and notional limits, order rate, stale book, daily-loss kill switch.

Pure: decides which commands may be sent and why others may not; never sends, logs or reads the
clock (time is the `now_ns` / `ts_ns` argument). Cancels always pass: pulling quotes is never
blocked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import msgspec
import numpy as np
from numpy.typing import NDArray

from mmd.config import RiskConfig
from mmd.errors import InvariantViolation
from mmd.kernels.strategy import (
    ACCT_BOOK_STALE,
    ACCT_HALTED,
    ACCT_MAX_LOTS,
    ACCT_OPEN_BUY_LOTS,
    ACCT_OPEN_SELL_LOTS,
    ACCT_POSITION_LOTS,
    ACCT_SIZE,
    CMD_CANCEL,
    CMD_SUBMIT,
    COMMAND_DTYPE,
    RISK_BUCKET_DTYPE,
    RPF_BURST,
    RPF_LOT,
    RPF_MAX_NOTIONAL,
    RPF_RATE_PER_NS,
    RPF_SIZE,
    RPF_TICK,
    apply_risk_checks,
)
from mmd.model.codes import NS_PER_DAY
from mmd.model.events import CancelOrder, SubmitOrder
from mmd.model.instrument import Instrument

if TYPE_CHECKING:
    from mmd.trading.ledger import Ledger


REASON_HALTED = "halted"
REASON_BOOK_STALE = "book_stale"
REASON_MAX_POSITION = "max_position"
REASON_MAX_NOTIONAL = "max_notional"
REASON_RATE_LIMIT = "rate_limit"
REASONS = (
    REASON_HALTED,
    REASON_BOOK_STALE,
    REASON_MAX_POSITION,
    REASON_MAX_NOTIONAL,
    REASON_RATE_LIMIT,
)


def utc_day(ts_ns: int) -> int:
    """Days since the Unix epoch of a UTC timestamp in ns (the kill switch's day)."""
    return ts_ns // NS_PER_DAY


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """A command the gate refused, and why (one of REASONS)."""

    command: SubmitOrder | CancelOrder
    reason: str


class HaltState(msgspec.Struct, frozen=True, kw_only=True):
    """A tripped kill switch, as persisted in the ledger's meta table.

    Attributes:
        day: UTC day (utc_day) it tripped on.
        ts_ns: when it tripped.
        reason: human-readable cause.
    """

    day: int
    ts_ns: int
    reason: str


class DayPnlState(msgspec.Struct, frozen=True, kw_only=True):
    """DayPnl's persisted state: the UTC day and the total PnL at its start."""

    day: int
    baseline_quote: float


class DayPnl:
    """Today's PnL from samples of the running total PnL (fees and funding included).

    The baseline of a new UTC day is the last total seen before the day boundary (or the first
    sample ever), so a restart restored from `state()` continues the same day's count.
    """

    def __init__(self, state: DayPnlState | None = None) -> None:
        self._day = -1 if state is None else state.day
        self._baseline = 0.0 if state is None else state.baseline_quote
        self._last_total: float | None = None

    def update(self, ts_ns: int, total_pnl_quote: float) -> float:
        """Feed one sample; return today's PnL (total - baseline) in quote."""
        day = utc_day(ts_ns)
        if day != self._day:
            if day < self._day:
                raise InvariantViolation(f"DayPnl: time went back a day ({day} < {self._day})")
            self._baseline = total_pnl_quote if self._last_total is None else self._last_total
            self._day = day
        self._last_total = total_pnl_quote
        return total_pnl_quote - self._baseline

    def state(self) -> DayPnlState:
        """What to persist so a restart keeps counting the same day."""
        return DayPnlState(day=self._day, baseline_quote=self._baseline)


class RiskGate:
    """Pre-trade checks on one symbol's batch of commands, plus the account kill switch.

    Args:
        cfg: the `[risk]` section.
        max_position: the position limit in base units (`[strategy] max_position`).
        instruments: every traded symbol (lot size for the position limit, tick and lot for
            the notional limit).
    """

    def __init__(
        self, cfg: RiskConfig, max_position: float, instruments: Iterable[Instrument]
    ) -> None:
        self._cfg = cfg
        self._max_position = max_position
        self._instruments: dict[str, Instrument] = {}
        self._max_lots: dict[str, int] = {}
        for inst in instruments:
            self.add_instrument(inst)
        self._rate_per_ns = cfg.max_orders_per_s / 1e9
        self._burst = max(1.0, cfg.max_orders_per_s)
        # per symbol: the order-rate token bucket (kernels.strategy.RISK_BUCKET_DTYPE[1])
        self._buckets: dict[str, NDArray[np.void]] = {}
        self.halted = False
        self.halt_reason = ""
        self.halt_state: HaltState | None = None
        self.rejections: dict[str, int] = dict.fromkeys(REASONS, 0)

    def add_instrument(self, inst: Instrument, min_lots: int = 0) -> None:
        """Start (or restart, with new steps) checking a symbol.

        Args:
            inst: the instrument.
            min_lots: a floor for the position limit in lots (the quoter never quotes less
                than one order, so the limit is at least one order).
        """
        self._instruments[inst.symbol] = inst
        self._max_lots[inst.symbol] = max(min_lots, inst.limit_lots(self._max_position))

    def check(
        self,
        symbol: str,
        cmds: Sequence[SubmitOrder | CancelOrder],
        *,
        now_ns: int,
        position_lots: int,
        open_buy_lots: int,
        open_sell_lots: int,
        book_stale: bool,
    ) -> tuple[list[SubmitOrder | CancelOrder], list[Rejection]]:
        """Split one symbol's commands into those allowed and those rejected.

        A submit is rejected when the gate is halted, the book is stale, it could take the
        position beyond the limit in its own direction assuming every open same-side order and
        every earlier submit of this batch fill (cancels in the batch are not counted as done:
        they can still lose the race), its notional at its own price would exceed
        `max_notional`, or the symbol's order-rate token bucket is empty. Cancels always pass
        and take a token when one is left.

        Args:
            symbol: the symbol every command must be for.
            cmds: the commands, in sending order (order is kept).
            now_ns: the current time (refills the token bucket).
            position_lots: signed position.
            open_buy_lots: leaves of every non-terminal buy order (pending ones too).
            open_sell_lots: the same for sells.
            book_stale: the book has not updated within its staleness limit.

        Returns:
            (allowed commands, rejections).

        Raises:
            InvariantViolation: a command for another symbol, or an unknown symbol.
        """
        inst = self._instruments.get(symbol)
        if inst is None:
            raise InvariantViolation(f"risk: unknown symbol {symbol}")
        n = len(cmds)
        arr = np.zeros(n, COMMAND_DTYPE)
        for k, cmd in enumerate(cmds):
            if cmd.symbol != symbol:
                raise InvariantViolation(f"risk: {cmd!r} in a batch for {symbol}")
            if isinstance(cmd, CancelOrder):
                arr[k] = (CMD_CANCEL, 0, 0, 0, k, 0)
            else:
                arr[k] = (CMD_SUBMIT, cmd.side, cmd.px_ticks, cmd.qty_lots, k, 0)
        bucket = self._buckets.get(symbol)
        if bucket is None:
            bucket = self._buckets[symbol] = np.zeros(1, RISK_BUCKET_DTYPE)
        rpf = np.empty(RPF_SIZE, np.float64)
        rpf[RPF_MAX_NOTIONAL] = self._cfg.max_notional
        rpf[RPF_LOT] = inst.lot
        rpf[RPF_TICK] = inst.tick
        rpf[RPF_RATE_PER_NS] = self._rate_per_ns
        rpf[RPF_BURST] = self._burst
        acct = np.empty(ACCT_SIZE, np.int64)
        acct[ACCT_POSITION_LOTS] = position_lots
        acct[ACCT_OPEN_BUY_LOTS] = open_buy_lots
        acct[ACCT_OPEN_SELL_LOTS] = open_sell_lots
        acct[ACCT_BOOK_STALE] = int(bool(book_stale))
        acct[ACCT_HALTED] = int(self.halted)
        acct[ACCT_MAX_LOTS] = self._max_lots[symbol]
        apply_risk_checks(arr, bucket, rpf, acct, n, now_ns)
        allowed: list[SubmitOrder | CancelOrder] = []
        rejected: list[Rejection] = []
        for cmd, code in zip(cmds, arr["reason"].tolist(), strict=True):
            if code == 0:
                allowed.append(cmd)
            else:
                reason = REASONS[code - 1]
                self.rejections[reason] += 1
                rejected.append(Rejection(command=cmd, reason=reason))
        return allowed, rejected

    def on_pnl(self, ts_ns: int, day_pnl_quote: float) -> bool:
        """Feed today's PnL (UTC day of ts_ns, fees and funding included); maybe trip.

        The switch trips when day_pnl_quote <= -max_loss_per_day (0 = no limit). It never
        resets by itself, not even at the next UTC day: a human restarts or calls `reset()`.
        Persist `halt_state` in the ledger: `restore_halt` re-arms it on a restart within the
        same UTC day (a restart on a later day starts unhalted).

        Returns:
            True if the gate is halted (now or before).
        """
        limit = self._cfg.max_loss_per_day
        if not self.halted and limit > 0 and day_pnl_quote <= -limit:
            reason = f"max_loss_per_day: day pnl {day_pnl_quote:.6g} <= -{limit:g}"
            self._halt(HaltState(day=utc_day(ts_ns), ts_ns=ts_ns, reason=reason))
        return self.halted

    def loss_budget_used(self, day_pnl_quote: float) -> float:
        """The share of max_loss_per_day lost today, in [0, 1] (0 without a limit or a loss)."""
        limit = self._cfg.max_loss_per_day
        if limit <= 0 or not day_pnl_quote < 0:
            return 0.0
        return min(1.0, -day_pnl_quote / limit)

    def halt(self, ts_ns: int, reason: str) -> None:
        """Trip the kill switch by hand (operator or another component)."""
        if not self.halted:
            self._halt(HaltState(day=utc_day(ts_ns), ts_ns=ts_ns, reason=reason))

    def restore_halt(self, state: HaltState | None, now_ns: int) -> None:
        """Re-arm a kill switch persisted by a previous run if it tripped on today's UTC day."""
        if state is not None and state.day == utc_day(now_ns):
            self._halt(state)

    def reset(self) -> None:
        """Clear the kill switch (operator action)."""
        self.halted = False
        self.halt_reason = ""
        self.halt_state = None

    def _halt(self, state: HaltState) -> None:
        self.halted = True
        self.halt_reason = state.reason
        self.halt_state = state


class KillSwitchStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The kill switch as a ledger keeps it (for `mmd risk status`).

    Attributes:
        halted: a trip of today's UTC day is recorded (a restart re-arms it).
        reason: why it tripped ("" when not halted).
        day_pnl_quote: today's PnL at the last snapshot, or None when unknown.
    """

    halted: bool
    reason: str
    day_pnl_quote: float | None


def kill_switch_status(ledger: Ledger, now_ns: int) -> KillSwitchStatus:
    """Read the kill switch from a ledger's meta table and its last snapshot."""
    raw = ledger.get_meta("halt_state")
    halt = None if raw is None else msgspec.json.decode(raw, type=HaltState)
    today = utc_day(now_ns)
    halted = halt is not None and halt.day == today
    day_pnl = None
    base = ledger.get_meta("day_pnl")
    snap = ledger.restore_snapshot()
    if base is not None and snap is not None:
        state = msgspec.json.decode(base, type=DayPnlState)
        if state.day == today and utc_day(snap.ts_ns) == today:
            day_pnl = snap.total_pnl_quote - state.baseline_quote
    return KillSwitchStatus(
        halted=halted, reason=halt.reason if halted and halt else "", day_pnl_quote=day_pnl
    )


def reset_kill_switch(ledger: Ledger, now_ns: int) -> bool:
    """Clear a tripped kill switch: journal a RiskReset, forget the trip and the day's
    baseline (the next start counts the day's PnL from its first mark). Returns whether it
    was halted."""
    from mmd.trading.ledger import RiskReset

    was = kill_switch_status(ledger, now_ns).halted
    with ledger.batch():
        ledger.journal(RiskReset(reason="operator reset (mmd risk reset)", ts_exch_ns=now_ns))
        ledger.delete_meta("halt_state")
        ledger.delete_meta("day_pnl")
    return was

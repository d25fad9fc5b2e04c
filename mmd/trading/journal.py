"""JournalWriter: the write-ahead side of the Trader (ledger writes and replay catch-up checks).

Pure core apart from the ledger it is handed: it decides whether an item is written, checked
against what a resumed replay already journaled, or skipped; it never reads the clock.
"""

from __future__ import annotations

import msgspec

from mmd.errors import StateError
from mmd.model.events import Command, FundingPaid, OrderEvent
from mmd.model.instrument import Instrument
from mmd.trading.ledger import Checkpoint, Ledger


class JournalWriter:
    """Journals commands, order events and funding before the caller applies them.

    A resumed replay first re-runs the recording and must journal exactly what the ledger
    already holds (`start_catchup`); `finish` then checks nothing was left unconsumed.

    Args:
        ledger: the ledger, or None (a backtest keeps nothing: every write "succeeds").
    """

    def __init__(self, ledger: Ledger | None) -> None:
        self.ledger = ledger
        self._catchup: list[bytes] = []
        self._pos = 0
        self._encoder = msgspec.json.Encoder()

    def start_catchup(self) -> int:
        """Load what a resumed replay must reproduce; returns how many items."""
        if self.ledger is None:
            return 0
        self._catchup = self.ledger.event_bodies()
        self._pos = 0
        return len(self._catchup)

    @property
    def resuming(self) -> bool:
        """True for a replay resume (restore rebuilds nothing: the recording is re-run)."""
        return bool(self._catchup)

    def catching_up(self) -> bool:
        """True while a resumed replay is still re-checking what the ledger holds."""
        return self._pos < len(self._catchup)

    def write(self, item: OrderEvent | Command | FundingPaid, ts_ns: int) -> bool:
        """Journal one item (or check it during catch-up); False for a duplicate fill/funding.

        Raises:
            StateError: a resumed replay produced something else than the ledger holds.
            InvariantViolation: the ledger refused an invalid item (nothing was written).
        """
        if self.ledger is None:
            return True
        if self._pos < len(self._catchup):
            body = self._encoder.encode(item)
            if body != self._catchup[self._pos]:
                raise StateError(
                    f"replay diverged from ledger {self.ledger.path} at item {self._pos + 1}: "
                    f"{body[:100]!r} != {self._catchup[self._pos][:100]!r}; "
                    f"{self.ledger.recovery_hint()}"
                )
            self._pos += 1
            return True
        return self.ledger.journal(item, ts_ns)

    def finish(self) -> None:
        """The replay ended: every journaled item must have been reproduced.

        Raises:
            StateError: the ledger holds more than this replay produced (another, longer run).
        """
        if self.ledger is not None and self.catching_up():
            raise StateError(
                f"replay ended after reproducing {self._pos} of the {len(self._catchup)} items "
                f"in ledger {self.ledger.path} (it holds a longer or another run); "
                f"{self.ledger.recovery_hint()}"
            )

    def note_instrument(self, inst: Instrument) -> None:
        """Record instrument steps (the steps every later fill is stored with)."""
        if self.ledger is not None:
            self.ledger.note_instrument(inst)

    def set_meta(self, key: str, value: str) -> None:
        """Persist a meta key, except while a resumed replay re-checks (it is re-derived)."""
        if self.ledger is not None and not self.catching_up():
            self.ledger.set_meta(key, value)

    def checkpoint(self, cp: Checkpoint) -> int | None:
        """Write a checkpoint (never during catch-up); returns its sequence number."""
        if self.ledger is None or self.catching_up():
            return None
        return self.ledger.checkpoint(cp)

"""Pure update-id state machine for one symbol's book: snapshot/delta continuity -> an action.

Rules (BYBIT_V5_NOTES.md 3.2): a snapshot, including `u == 1` after a venue restart, resets the
book; a delta needs `u == last_u + 1`; an older or repeated `u` is dropped; a jump means a lost
message, so the symbol is resynced. Nothing here touches the book arrays or the network.
"""

from __future__ import annotations

import enum


class SyncAction(enum.IntEnum):
    """What to do with a book frame."""

    APPLY_SNAPSHOT = 1  # clear the book, then apply
    APPLY_DELTA = 2
    DROP = 3  # stale, duplicate, or waiting for a snapshot
    RESYNC = 4  # gap: the book is invalid until a new snapshot


class BookSync:
    """Continuity state of one symbol's book stream."""

    __slots__ = ("last_seq", "last_u", "synced", "unsynced_reason")

    def __init__(self) -> None:
        self.synced = False
        self.last_u = -1
        self.last_seq = -1
        self.unsynced_reason = "no_snapshot"

    def on_snapshot(self, u: int, seq: int, *, from_rest: bool = False) -> SyncAction:
        """A WS snapshot always resets; a REST snapshot older than the book is dropped."""
        if from_rest and self.synced and seq and seq < self.last_seq:
            return SyncAction.DROP
        self.synced = True
        self.last_u = u
        self.last_seq = seq
        self.unsynced_reason = ""
        return SyncAction.APPLY_SNAPSHOT

    def on_delta(self, u: int, seq: int) -> SyncAction:
        """Check a delta's `u` against the last one applied."""
        if not self.synced:
            return SyncAction.DROP
        if u <= self.last_u:
            return SyncAction.DROP
        if u != self.last_u + 1:
            self.mark_unsynced("gap")
            return SyncAction.RESYNC
        self.last_u = u
        self.last_seq = seq
        return SyncAction.APPLY_DELTA

    def mark_unsynced(self, reason: str) -> None:
        """The book can no longer be trusted (gap, crossed book, disconnect, stale)."""
        self.synced = False
        self.unsynced_reason = reason

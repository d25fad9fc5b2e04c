"""The update-id state machine, rule by rule."""

from mmd.feeds.book_sync import BookSync, SyncAction


def test_book_sync_delta_before_snapshot_is_dropped() -> None:
    s = BookSync()
    assert s.on_delta(5, 5) == SyncAction.DROP
    assert not s.synced


def test_book_sync_contiguous_deltas_apply() -> None:
    s = BookSync()
    assert s.on_snapshot(10, 100) == SyncAction.APPLY_SNAPSHOT
    assert [s.on_delta(u, u * 10) for u in (11, 12, 13)] == [SyncAction.APPLY_DELTA] * 3
    assert s.last_u == 13


def test_book_sync_delta_with_gap_requests_resync() -> None:
    s = BookSync()
    s.on_snapshot(10, 100)
    assert s.on_delta(12, 120) == SyncAction.RESYNC
    assert not s.synced and s.unsynced_reason == "gap"
    assert s.on_delta(13, 130) == SyncAction.DROP  # waits for the next snapshot


def test_book_sync_duplicate_or_older_delta_is_dropped() -> None:
    s = BookSync()
    s.on_snapshot(10, 100)
    s.on_delta(11, 110)
    assert s.on_delta(11, 110) == SyncAction.DROP
    assert s.on_delta(9, 90) == SyncAction.DROP
    assert s.synced and s.on_delta(12, 120) == SyncAction.APPLY_DELTA


def test_book_sync_restart_snapshot_with_u_1_resets() -> None:
    s = BookSync()
    s.on_snapshot(500, 100)
    s.on_delta(501, 101)
    assert s.on_snapshot(1, 102) == SyncAction.APPLY_SNAPSHOT
    assert s.last_u == 1 and s.on_delta(2, 103) == SyncAction.APPLY_DELTA


def test_book_sync_older_rest_snapshot_is_dropped() -> None:
    s = BookSync()
    s.on_snapshot(7, 200, from_rest=True)
    assert s.on_snapshot(6, 150, from_rest=True) == SyncAction.DROP
    assert s.on_snapshot(8, 250, from_rest=True) == SyncAction.APPLY_SNAPSHOT

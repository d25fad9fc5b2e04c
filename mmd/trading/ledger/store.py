"""Ledger: an open ledger file, its transactions, the journal writes and the reads that
`mmd ledger`, `mmd report` and a restart use. The only file I/O of trading/; no trading logic."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import msgspec

from mmd.errors import InvariantViolation, StateError
from mmd.model.events import FundingPaid, OrderFilled
from mmd.model.instrument import Instrument
from mmd.trading.ledger.records import (
    KINDS,
    Checkpoint,
    Journaled,
    Restored,
    RunIdentity,
    check_item,
)
from mmd.trading.ledger.restore import bad_row, read_restored
from mmd.trading.ledger.rows import (
    FillRow,
    FundingRow,
    insert_event,
    insert_fill,
    insert_funding,
    last_snapshot,
    snapshot_rows,
)
from mmd.trading.ledger.schema import (
    KEEP_CHECKPOINTS,
    LEDGER_FILE,
    SCHEMA_VERSION,
    connect,
    identity_conflict,
    write_delay_s,
)
from mmd.trading.portfolio import PortfolioSnapshot


class Ledger:
    """An open ledger file (`Ledger.open`; one writer process per file, never reads the clock).

    Validity: every item is checked (finite, in range) before it is committed; a restore that
    meets an undecodable or invalid row raises StateError naming the row and how to recover.
    Run identity: the first open writes a `run` row (source, category, symbols, replay
    digests); a later open with another identity raises StateError naming the field.
    Checkpoints: the exact portfolio, open orders and the journal seq they include; `restore`
    reads the latest one plus the rows after it.
    Write-ahead: journal a command or event first, apply it only after `journal` returned (the
    transaction is committed by then); a fill whose fill_id is already there returns False.
    Durability: WAL with synchronous=NORMAL keeps every committed transaction through a killed
    process (only an OS crash or power loss can lose the last few); FULL fsyncs every commit.
    Test hook: `MMD_TEST_LEDGER_WRITE_DELAY_S` (seconds, read once by `open`; unset in
    production) sleeps inside every write transaction before its COMMIT, so a test can kill
    the process while a write is open; unset, the commit path has no extra step.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, write_delay_s: float = 0.0) -> None:
        self._conn = conn
        self.path = path
        # the test hook's slow commit, or the plain one (decided here, not per write)
        self._write_delay_s = write_delay_s
        self._commit = self._commit_after_delay if write_delay_s > 0 else self._commit_now
        self._batch_depth = 0
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(Journaled)
        self._steps: dict[str, tuple[str, str]] = {
            str(sym): (str(t), str(lot))
            for sym, t, lot in conn.execute(
                "SELECT symbol, tick_size, lot_size FROM instruments ORDER BY rowid"
            )
        }

    def recovery_hint(self) -> str:
        """How an operator gets past a ledger this run cannot use."""
        return (
            f"move {self.path.parent} aside or point [state] dir (MMD_STATE__DIR) at "
            "another directory"
        )

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        identity: RunIdentity | None = None,
        create: bool = True,
    ) -> Ledger:
        """Open (creating if needed) a ledger file in WAL mode.

        Args:
            path: the SQLite file, or an existing directory (then `<dir>/ledger.sqlite`).
                Missing parent directories are created.
            synchronous: NORMAL (durable against a process kill) or FULL (also against power
                loss, slower).
            identity: the run this process is; written into a new ledger, compared with the
                one an existing ledger holds (None: no check).
            create: False to refuse a missing file (operator commands).

        Returns:
            The open ledger.

        Raises:
            ConfigError: the file cannot be opened or the filesystem does not support WAL.
            StateError: the ledger belongs to another run, or has another schema version.
        """
        p = Path(path)
        if p.is_dir():
            p = p / LEDGER_FILE
        delay_s = write_delay_s()
        if not create and not p.exists():
            raise StateError(f"no ledger at {p}")
        conn, version = connect(p, synchronous)
        led = cls(conn, p, write_delay_s=delay_s)
        if version != SCHEMA_VERSION:
            conn.close()
            raise StateError(
                f"ledger {p} has schema version {version}, this mmd writes "
                f"{SCHEMA_VERSION}; {led.recovery_hint()}"
            )
        if identity is not None:
            led._check_identity(identity)
        return led

    def _check_identity(self, identity: RunIdentity) -> None:
        row = self._conn.execute("SELECT body FROM run WHERE id = 1").fetchone()
        if row is None:
            if self._conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
                self.close()
                raise StateError(
                    f"ledger {self.path} has a journal but no run identity; {self.recovery_hint()}"
                )
            with self._tx() as conn:
                conn.execute(
                    "INSERT INTO run(id, body) VALUES (1, ?)",
                    (self._encoder.encode(identity).decode(),),
                )
            return
        try:
            stored = msgspec.json.decode(row[0], type=RunIdentity)
        except msgspec.MsgspecError as exc:
            self.close()
            raise StateError(
                f"ledger {self.path}: run row is invalid ({exc}); {self.recovery_hint()}"
            ) from None
        conflict = identity_conflict(stored, identity)
        if conflict is not None:
            self.close()
            raise StateError(
                f"ledger {self.path} belongs to another run: {conflict}; {self.recovery_hint()}"
            )

    def note_instrument(self, inst: Instrument) -> bool:
        """Record a symbol's instrument steps (fills are stored with the latest noted).

        Returns:
            True if they are new or changed (a row was written).
        """
        steps = (inst.tick_size, inst.lot_size)
        if self._steps.get(inst.symbol) == steps:
            return False
        with self._tx() as conn:
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            conn.execute(
                "INSERT INTO instruments VALUES (?,?,?,?)",
                (seq, inst.symbol, inst.tick_size, inst.lot_size),
            )
        self._steps[inst.symbol] = steps
        return True

    def steps(self, symbol: str) -> tuple[str, str] | None:
        """The latest (tick_size, lot_size) noted for a symbol."""
        return self._steps.get(symbol)

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Journal several items in one transaction, committed when the block exits.

        Apply the items in memory only after the block has exited without an error; on an
        exception nothing of the batch is kept. Batches nest (the outermost one commits).
        """
        with self._tx():
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._batch_depth > 0:
            yield self._conn
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._commit()

    def _commit_now(self) -> None:
        self._conn.execute("COMMIT")

    def _commit_after_delay(self) -> None:
        # test hook (MMD_TEST_LEDGER_WRITE_DELAY_S): the rows are written, the COMMIT waits
        time.sleep(self._write_delay_s)
        self._conn.execute("COMMIT")

    # -- writes -----------------------------------------------------------------------------

    def journal(self, item: Journaled, ts_ns: int | None = None) -> bool:
        """Append a command or event to the journal and commit it (unless inside `batch`).

        Args:
            item: a SubmitOrder, CancelOrder, order event or FundingPaid.
            ts_ns: the time to file it under (default: the item's ts_exch_ns; commands carry
                no time, so pass the caller's clock for them).

        Returns:
            False if it is a fill (or funding payment) whose id is already journaled: nothing
            was written and the caller must not apply it again. True otherwise.

        Raises:
            InvariantViolation: an item of another type, an invalid one (`check_item`), or a
                fill of a symbol whose steps were never noted (`note_instrument`).
        """
        kind = type(item).__name__
        if kind not in KINDS:
            raise InvariantViolation(f"ledger: cannot journal {kind}")
        check_item(item)
        if ts_ns is None:
            ts_ns = getattr(item, "ts_exch_ns", 0)
        body = self._encoder.encode(item)
        coid = getattr(item, "client_order_id", None)
        with self._tx() as conn:
            if isinstance(item, OrderFilled):
                steps = self._steps.get(item.symbol)
                if steps is None:
                    raise InvariantViolation(
                        f"ledger: fill of {item.symbol} before its instrument steps were noted"
                    )
                return insert_fill(conn, item, ts_ns, body, steps)
            if isinstance(item, FundingPaid):
                return insert_funding(conn, item, ts_ns, body)
            insert_event(conn, ts_ns, kind, coid, item.symbol, body)
        return True

    def checkpoint(self, cp: Checkpoint) -> int:
        """Store the state the journal folds to now (its seq is the last event's); returns it.

        Call it when everything journaled has been applied (no command or event half-way).
        """
        with self._tx() as conn:
            seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
            body = self._encoder.encode(msgspec.structs.replace(cp, seq=seq))
            conn.execute("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?)", (seq, cp.ts_ns, body))
            conn.execute(
                "DELETE FROM checkpoints WHERE seq NOT IN "
                "(SELECT seq FROM checkpoints ORDER BY seq DESC LIMIT ?)",
                (KEEP_CHECKPOINTS,),
            )
        return seq

    def snapshot(self, snap: PortfolioSnapshot) -> None:
        """Store one point of the equity curve: a row per symbol plus a totals row ('*')."""
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO snapshots VALUES (?,?,?,?,?,?,?,?,?,?)", snapshot_rows(snap)
            )

    def record_model(self, name: str, version: str, path: str, loaded_at_ns: int) -> None:
        """Note that a model file was loaded."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO model_versions VALUES (?,?,?,?)", (name, version, path, loaded_at_ns)
            )

    def model_versions(self) -> dict[str, str]:
        """The last recorded version of each model name."""
        rows = self._conn.execute("SELECT name, version FROM model_versions ORDER BY rowid")
        return {str(n): str(v) for n, v in rows}

    def set_meta(self, key: str, value: str) -> None:
        """Set a key of the meta table (committed unless inside `batch`)."""
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        """Remove a key of the meta table (no error if absent)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def get_meta(self, key: str) -> str | None:
        """A value of the meta table, or None."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- reads ------------------------------------------------------------------------------

    def restore(self) -> Restored:
        """Read the state back: the latest checkpoint, then the journal rows after it.

        Raises:
            StateError: a row is undecodable or invalid (which row, and how to recover).
        """
        return read_restored(
            self._conn, self._decoder, self._steps, self.path, self.recovery_hint()
        )

    def restore_snapshot(self) -> PortfolioSnapshot | None:
        """The most recent portfolio snapshot, or None."""
        return last_snapshot(self._conn)

    # -- queries (`mmd ledger`, `mmd report`) ----------------------------------------------------

    def run_identity(self) -> RunIdentity | None:
        """The run row, or None (a ledger opened without identity and never given one)."""
        row = self._conn.execute("SELECT body FROM run WHERE id = 1").fetchone()
        return None if row is None else msgspec.json.decode(row[0], type=RunIdentity)

    def fill_rows(self) -> list[FillRow]:
        """Every fills row in journal order: (fill_id, seq, ts_exch_ns, client_order_id,
        symbol, side, px_ticks, qty_lots, leaves_lots, liquidity, fee_quote, tick_size,
        lot_size)."""
        return self._conn.execute(
            "SELECT fill_id, seq, ts_exch_ns, client_order_id, symbol, side, px_ticks, qty_lots,"
            " leaves_lots, liquidity, fee_quote, tick_size, lot_size FROM fills ORDER BY seq"
        ).fetchall()

    def funding_rows(self) -> list[FundingRow]:
        """Every funding row in journal order: (funding_id, seq, ts_exch_ns, symbol, rate,
        position_lots, mark_px, amount_quote)."""
        return self._conn.execute(
            "SELECT funding_id, seq, ts_exch_ns, symbol, rate, position_lots, mark_px,"
            " amount_quote FROM funding ORDER BY seq"
        ).fetchall()

    def journal_items(self) -> Iterator[tuple[int, int, Journaled]]:
        """(seq, ts_ns, item) of every journaled row, in order (undecodable rows raise
        StateError)."""
        for seq, ts_ns, body in self._conn.execute(
            "SELECT seq, ts_ns, body FROM events ORDER BY seq"
        ):
            try:
                item = self._decoder.decode(body)
            except msgspec.MsgspecError as exc:
                raise bad_row(self.path, self.recovery_hint(), seq, str(exc)) from None
            yield int(seq), int(ts_ns), item

    def snapshot_rows(self) -> list[tuple[object, ...]]:
        """Every snapshots row in time order: (ts_ns, symbol, position_lots, avg_entry_ticks,
        mark_ticks, realized, fees, funding, unrealized, equity); symbol '*' = totals."""
        return self._conn.execute(
            "SELECT ts_ns, symbol, position_lots, avg_entry_ticks, mark_ticks, realized, fees,"
            " funding, unrealized, equity FROM snapshots ORDER BY ts_ns, symbol"
        ).fetchall()

    def checkpoint_rows(self) -> list[tuple[int, int]]:
        """(seq, ts_ns) of the checkpoints kept, oldest first."""
        return [
            (int(a), int(b))
            for a, b in self._conn.execute("SELECT seq, ts_ns FROM checkpoints ORDER BY seq")
        ]

    def instrument_steps(self) -> list[tuple[int, str, str, str]]:
        """(seq, symbol, tick_size, lot_size) of every step change noted, oldest first."""
        return [
            (int(a), str(b), str(c), str(d))
            for a, b, c, d in self._conn.execute(
                "SELECT seq, symbol, tick_size, lot_size FROM instruments ORDER BY rowid"
            )
        ]

    def event_bodies(self) -> list[bytes]:
        """Every journaled item's encoded body, in journal order (replay catch-up checks);
        operator kill-switch resets are not part of what a replay reproduces."""
        return [
            bytes(r[0])
            for r in self._conn.execute(
                "SELECT body FROM events WHERE kind != 'RiskReset' ORDER BY seq"
            )
        ]

    def event_count(self) -> int:
        """Rows in the journal."""
        return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def fill_count(self) -> int:
        """Number of distinct fills journaled."""
        return int(self._conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0])

    def close(self) -> None:
        """Close the file (checkpointing the WAL).

        Raises:
            InvariantViolation: called inside `batch`.
        """
        if self._batch_depth:
            raise InvariantViolation("ledger closed inside a batch")
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

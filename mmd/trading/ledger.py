"""Ledger: the SQLite (WAL) journal of commands, order events, fills, funding and snapshots.

Owns the daemon's durable state under `[state] dir`/<source>/ledger.sqlite and rebuilds it on
start. The only file I/O in trading/; it holds no trading logic beyond folding the journal back
into open orders, and never reads the clock (timestamps are arguments).

Validity: every item is checked (finite, in range) before it is committed, so a NaN fee or
funding rate never reaches the file; a restore that meets an undecodable or invalid row raises
StateError naming the row and how to recover (exit 2), never a crash loop.

Run identity: the first open writes a `run` row (source, category, symbols, replay recording
digests); a later open with another identity raises StateError naming the field. Instrument
steps are kept in `instruments` (one row per symbol and step change) and on every fill row.

Checkpoints: `checkpoint` stores the exact portfolio, the open orders and the journal sequence
they include; `restore` reads the latest checkpoint plus the rows after it (bounded time).

Write-ahead rule: the caller journals a command or event first and applies it in memory only
after `journal` returned (the transaction is committed by then). A fill whose fill_id is already
in the ledger is not written again and `journal` returns False, so the caller skips it.

Durability: `journal_mode=WAL` with `synchronous=NORMAL` survives a killed process (SIGKILL,
OOM, crash) with every committed transaction intact, because a commit has reached the WAL file
in the OS page cache before `journal` returns; only an OS crash or power loss can lose the last
few commits (never corrupting the file). Pass `synchronous="FULL"` to fsync every commit too.

Test hook: `MMD_TEST_LEDGER_WRITE_DELAY_S` (seconds, read once by `Ledger.open`; unset or 0 in
production) sleeps inside every write transaction, after its rows are written and before the
COMMIT: a slow disk, so a test can kill the process while a write is open. Unset, the commit
path has no extra step (the choice is made when the ledger is built).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import msgspec

from mmd.errors import ConfigError, InvariantViolation, StateError
from mmd.model.events import (
    CancelOrder,
    FundingPaid,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.model.instrument import Instrument
from mmd.trading.oms import Order, OrderStatus
from mmd.trading.portfolio import PortfolioSnapshot, PositionSnapshot, PositionState

LEDGER_FILE = "ledger.sqlite"
SCHEMA_VERSION = "2"
TOTAL_SYMBOL = "*"  # the snapshots row holding the portfolio totals
# checkpoints kept (older ones are deleted when a new one is written)
_KEEP_CHECKPOINTS = 2
# test hook: seconds to sleep inside each write transaction before its COMMIT (module docstring)
WRITE_DELAY_ENV = "MMD_TEST_LEDGER_WRITE_DELAY_S"


class RiskReset(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An operator cleared the kill switch (`mmd risk reset`); ts_exch_ns is the wall time."""

    symbol: str = ""
    reason: str
    ts_exch_ns: int


Journaled = (
    SubmitOrder
    | CancelOrder
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCanceled
    | FundingPaid
    | RiskReset
)
_KINDS = frozenset(
    t.__name__
    for t in (
        SubmitOrder,
        CancelOrder,
        OrderAccepted,
        OrderRejected,
        OrderFilled,
        OrderCanceled,
        FundingPaid,
        RiskReset,
    )
)


class RecordingDigest(msgspec.Struct, frozen=True, kw_only=True):
    """A replayed recording: file name and sha256 of its bytes."""

    name: str
    sha256: str


class RunIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """What a ledger belongs to; written once, compared on every open.

    Attributes:
        source: bybit, synthetic or replay.
        category: linear, spot or inverse.
        symbols: the traded symbols, sorted.
        recordings: for a replay, its recordings in order (name and digest).
    """

    source: str
    category: str
    symbols: list[str]
    recordings: list[RecordingDigest] = msgspec.field(default_factory=list)


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    """A non-terminal order as stored in a checkpoint."""

    client_order_id: str
    symbol: str
    side: int
    px_ticks: int
    qty_lots: int
    leaves_lots: int
    status: int
    ts_exch_ns: int


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The state the journal folds to up to (and including) event `seq`.

    Attributes:
        seq: the last event sequence number it includes (set by the ledger on write).
        ts_ns: when it was taken (caller's clock).
        positions: every position's exact accounting (with its instrument steps).
        orders: every non-terminal order.
        funded: per symbol, the last funding time settled.
    """

    seq: int = 0
    ts_ns: int
    positions: list[PositionState]
    orders: list[OrderState]
    funded: dict[str, int] = msgspec.field(default_factory=dict)


class RestoredFill(msgspec.Struct, frozen=True, kw_only=True):
    """A journaled fill with the instrument steps it was counted in."""

    fill: OrderFilled
    tick_size: str
    lot_size: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    client_order_id TEXT,
    symbol TEXT,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    ts_exch_ns INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side INTEGER NOT NULL,
    px_ticks INTEGER NOT NULL,
    qty_lots INTEGER NOT NULL,
    leaves_lots INTEGER NOT NULL,
    liquidity INTEGER NOT NULL,
    fee_quote REAL NOT NULL,
    tick_size TEXT NOT NULL,
    lot_size TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_by_seq ON fills(seq);
CREATE TABLE IF NOT EXISTS funding (
    funding_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    ts_exch_ns INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    rate REAL NOT NULL,
    position_lots INTEGER NOT NULL,
    mark_px REAL NOT NULL,
    amount_quote REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    ts_ns INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    position_lots INTEGER NOT NULL,
    avg_entry_ticks REAL NOT NULL,
    mark_ticks REAL,
    realized REAL NOT NULL,
    fees REAL NOT NULL,
    funding REAL NOT NULL,
    unrealized REAL NOT NULL,
    equity REAL NOT NULL,
    PRIMARY KEY (ts_ns, symbol)
);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    path TEXT NOT NULL,
    loaded_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instruments (
    seq INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    tick_size TEXT NOT NULL,
    lot_size TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    body BLOB NOT NULL
);
"""


class ModelVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A model file the daemon loaded (loaded_at in ns on the caller's clock)."""

    name: str
    version: str
    path: str
    loaded_at: int


class Restored(msgspec.Struct, frozen=True, kw_only=True):
    """Everything needed to rebuild the OMS and the Portfolio after a restart.

    Attributes:
        fills: every journaled fill, once each, in journal order (apply to a fresh Portfolio).
        funding: every journaled funding payment, in journal order.
        open_orders: orders still live at the end of the journal (ACCEPTED, PARTIALLY_FILLED
            or PENDING_CANCEL, leaves > 0), for `OrderManager.restore`.
        in_flight_ids: orders still PENDING_NEW at the end (never acknowledged: the exchange
            that held them is gone; the caller decides what to do with them).
        last_snapshot: the most recent portfolio snapshot, or None.
        meta: the key/value table (kill-switch state, replay cursor, ...).
        model_versions: the model files loaded, oldest first.
        last_seq: the highest event sequence number (0 for an empty journal).
        checkpoint: the latest checkpoint (apply it first, then fills and funding), or None.
        tail_rows: how many journal rows were read (those after the checkpoint).
        fill_steps: the (tick_size, lot_size) of each fill, parallel to fills.
        steps: the latest instrument steps journaled per symbol.
    """

    fills: list[OrderFilled]
    funding: list[FundingPaid]
    open_orders: list[Order]
    in_flight_ids: list[str]
    last_snapshot: PortfolioSnapshot | None
    meta: dict[str, str]
    model_versions: list[ModelVersion]
    last_seq: int
    checkpoint: Checkpoint | None = None
    tail_rows: int = 0
    fill_steps: list[tuple[str, str]] = msgspec.field(default_factory=list)
    steps: dict[str, tuple[str, str]] = msgspec.field(default_factory=dict)


def ledger_path(state_dir: str | Path, source: str | None = None) -> Path:
    """The ledger file of a `[state] dir`: `<dir>/<source>/ledger.sqlite` (one journal per
    feed source, so a replay, a synthetic run and a live run never share one), or
    `<dir>/ledger.sqlite` without a source.

    Raises:
        ConfigError: state_dir is an empty or blank string (it would be the working directory).
    """
    if isinstance(state_dir, str) and not state_dir.strip():
        raise ConfigError("state.dir: must not be empty (it would be the working directory)")
    base = Path(state_dir)
    return (base / source if source else base) / LEDGER_FILE


def _make_private(path: Path) -> None:
    """Create the ledger's missing directories 0700 and the file 0600 (SQLite gives its -wal and
    -shm files the mode of the database file); an existing ledger and its -wal/-shm files are
    set to 0600. A directory that already exists keeps its mode (it may be the operator's)."""
    missing = []
    d = path.parent
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        # another user's file (an operator reading it) is left as it is
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if f.stat().st_mode & 0o077:
                f.chmod(0o600)


def _write_delay_s() -> float:
    """The test hook's delay from MMD_TEST_LEDGER_WRITE_DELAY_S (0 when unset or empty).

    Raises:
        ConfigError: not a finite number >= 0.
    """
    raw = os.environ.get(WRITE_DELAY_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{WRITE_DELAY_ENV}: must be a number of seconds >= 0, got {raw!r}")
    return value


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def check_item(item: Journaled) -> None:
    """Refuse an item no restore could apply (non-finite or out-of-range values).

    Raises:
        InvariantViolation: what is wrong with it.
    """
    bad = ""
    if isinstance(item, SubmitOrder):
        if item.px_ticks <= 0 or item.qty_lots <= 0 or item.side not in (1, -1):
            bad = "price, size or side out of range"
    elif isinstance(item, OrderAccepted):
        if item.px_ticks <= 0 or item.qty_lots <= 0:
            bad = "price or size out of range"
    elif isinstance(item, OrderFilled):
        if not _finite(item.fee_quote):
            bad = f"fee {item.fee_quote} is not finite"
        elif item.px_ticks <= 0 or item.qty_lots <= 0 or item.leaves_lots < 0:
            bad = "price, size or leaves out of range"
        elif item.side not in (1, -1):
            bad = f"side {item.side}"
    elif isinstance(item, FundingPaid):
        if not _finite(item.rate, item.mark_px, item.amount_quote):
            bad = "rate, mark or amount is not finite"
        elif item.mark_px <= 0:
            bad = f"mark {item.mark_px} <= 0"
    if bad:
        raise InvariantViolation(f"ledger: refusing {type(item).__name__} ({bad}): {item!r}")


class Ledger:
    """An open ledger file. Build it with `Ledger.open`; one writer process per file."""

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
        write_delay_s = _write_delay_s()
        if not create and not p.exists():
            raise StateError(f"no ledger at {p}")
        try:
            _make_private(p)
            # autocommit mode: transactions are explicit BEGIN IMMEDIATE ... COMMIT
            conn = sqlite3.connect(p, isolation_level=None, timeout=10.0)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"state.dir: cannot open ledger {p} ({exc})") from None
        if str(mode).lower() != "wal":
            conn.close()
            raise ConfigError(f"state.dir: ledger {p} cannot use WAL (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        try:
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )
            version = conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()[0]
        except sqlite3.Error as exc:
            conn.close()
            raise StateError(
                f"ledger {p} is unreadable ({exc}); move {p.parent} aside or "
                "point [state] dir (MMD_STATE__DIR) at another directory"
            ) from None
        led = cls(conn, p, write_delay_s=write_delay_s)
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
        for field in ("source", "category", "symbols", "recordings"):
            old, new = getattr(stored, field), getattr(identity, field)
            if old != new:
                if field == "recordings":
                    old, new = [r.name for r in old], [r.name for r in new]
                    if old == new:  # same names, other bytes
                        old, new = "other file contents", "these files"
                self.close()
                raise StateError(
                    f"ledger {self.path} belongs to another run: {field} is {old} there, "
                    f"{new} now; {self.recovery_hint()}"
                )

    def identity(self) -> RunIdentity | None:
        """The run identity stored in the ledger, or None."""
        row = self._conn.execute("SELECT body FROM run WHERE id = 1").fetchone()
        return None if row is None else msgspec.json.decode(row[0], type=RunIdentity)

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
        if kind not in _KINDS:
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
                if conn.execute(
                    "SELECT 1 FROM fills WHERE fill_id = ?", (item.fill_id,)
                ).fetchone():
                    return False
                seq = self._insert_event(conn, ts_ns, kind, coid, item.symbol, body)
                conn.execute(
                    "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        item.fill_id,
                        seq,
                        item.ts_exch_ns,
                        item.client_order_id,
                        item.symbol,
                        item.side,
                        item.px_ticks,
                        item.qty_lots,
                        item.leaves_lots,
                        item.liquidity,
                        item.fee_quote,
                        *steps,
                    ),
                )
            elif isinstance(item, FundingPaid):
                if conn.execute(
                    "SELECT 1 FROM funding WHERE funding_id = ?", (item.funding_id,)
                ).fetchone():
                    return False
                seq = self._insert_event(conn, ts_ns, kind, None, item.symbol, body)
                conn.execute(
                    "INSERT OR IGNORE INTO funding VALUES (?,?,?,?,?,?,?,?)",
                    (
                        item.funding_id,
                        seq,
                        item.ts_exch_ns,
                        item.symbol,
                        item.rate,
                        item.position_lots,
                        item.mark_px,
                        item.amount_quote,
                    ),
                )
            else:
                self._insert_event(conn, ts_ns, kind, coid, item.symbol, body)
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
                (_KEEP_CHECKPOINTS,),
            )
        return seq

    @staticmethod
    def _insert_event(
        conn: sqlite3.Connection,
        ts_ns: int,
        kind: str,
        coid: str | None,
        symbol: str,
        body: bytes,
    ) -> int:
        cur = conn.execute(
            "INSERT INTO events(ts_ns, kind, client_order_id, symbol, body) VALUES (?,?,?,?,?)",
            (ts_ns, kind, coid, symbol, body),
        )
        seq = cur.lastrowid
        assert seq is not None  # an INSERT into a rowid table always sets it
        return seq

    def snapshot(self, snap: PortfolioSnapshot) -> None:
        """Store one point of the equity curve: a row per symbol plus a totals row ('*')."""
        rows = [
            (
                snap.ts_ns,
                p.symbol,
                p.position_lots,
                p.avg_entry_ticks,
                p.mark_ticks,
                p.realized_quote,
                p.fees_quote,
                p.funding_quote,
                p.unrealized_quote,
                p.pnl_quote,
            )
            for p in snap.positions
        ]
        rows.append(
            (
                snap.ts_ns,
                TOTAL_SYMBOL,
                0,
                0.0,
                None,
                snap.realized_quote,
                snap.fees_quote,
                snap.funding_quote,
                snap.unrealized_quote,
                snap.equity_quote,
            )
        )
        with self._tx() as conn:
            conn.executemany("INSERT OR REPLACE INTO snapshots VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

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
        fills: list[OrderFilled] = []
        fill_steps: list[tuple[str, str]] = []
        funding: list[FundingPaid] = []
        orders: dict[str, Order] = {}
        cp = self._last_checkpoint()
        after = 0
        if cp is not None:
            after = cp.seq
            for o in cp.orders:
                orders[o.client_order_id] = Order(
                    o.client_order_id,
                    o.symbol,
                    o.side,
                    o.px_ticks,
                    o.qty_lots,
                    o.leaves_lots,
                    OrderStatus(o.status),
                    o.ts_exch_ns,
                )
        last_seq = after
        tail = 0
        for seq, body, tick, lot in self._conn.execute(
            "SELECT e.seq, e.body, f.tick_size, f.lot_size FROM events e "
            "LEFT JOIN fills f ON f.seq = e.seq WHERE e.seq > ? ORDER BY e.seq",
            (after,),
        ):
            last_seq = seq
            tail += 1
            try:
                item = self._decoder.decode(body)
                check_item(item)
            except (msgspec.MsgspecError, InvariantViolation) as exc:
                raise self._bad_row(seq, str(exc)) from None
            if isinstance(item, OrderFilled):
                if tick is None or lot is None:
                    raise self._bad_row(seq, "fill without its fills row or steps")
                fills.append(item)
                fill_steps.append((str(tick), str(lot)))
            elif isinstance(item, FundingPaid):
                funding.append(item)
                continue
            elif isinstance(item, RiskReset):
                continue
            _fold_order(orders, item)
        live = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL)
        meta = {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}
        models = [
            ModelVersion(name=n, version=v, path=p, loaded_at=t)
            for n, v, p, t in self._conn.execute(
                "SELECT name, version, path, loaded_at FROM model_versions ORDER BY rowid"
            )
        ]
        try:
            last_snapshot = self._last_snapshot()
        except (TypeError, ValueError, InvariantViolation) as exc:
            raise self._bad_row(0, f"snapshot: {exc}") from None
        return Restored(
            fills=fills,
            funding=funding,
            open_orders=[o for o in orders.values() if o.status in live],
            in_flight_ids=[
                o.client_order_id for o in orders.values() if o.status is OrderStatus.PENDING_NEW
            ],
            last_snapshot=last_snapshot,
            meta=meta,
            model_versions=models,
            last_seq=last_seq,
            checkpoint=cp,
            tail_rows=tail,
            fill_steps=fill_steps,
            steps=dict(self._steps),
        )

    def _bad_row(self, seq: int, why: str) -> StateError:
        where = f"ledger row {seq}" if seq else "ledger"
        return StateError(f"{where} in {self.path} is invalid: {why}; {self.recovery_hint()}")

    def _last_checkpoint(self) -> Checkpoint | None:
        row = self._conn.execute(
            "SELECT seq, body FROM checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        try:
            cp = msgspec.json.decode(row[1], type=Checkpoint)
        except msgspec.MsgspecError as exc:
            raise StateError(
                f"ledger checkpoint at row {row[0]} in {self.path} is invalid: "
                f"{exc}; {self.recovery_hint()}"
            ) from None
        return cp

    def restore_snapshot(self) -> PortfolioSnapshot | None:
        """The most recent portfolio snapshot, or None."""
        return self._last_snapshot()

    def _last_snapshot(self) -> PortfolioSnapshot | None:
        row = self._conn.execute("SELECT MAX(ts_ns) FROM snapshots").fetchone()
        if row is None or row[0] is None:
            return None
        ts_ns = int(row[0])
        positions: list[PositionSnapshot] = []
        total = None
        for sym, pos_lots, avg, mark, realized, fees, fund, unreal, equity in self._conn.execute(
            "SELECT symbol, position_lots, avg_entry_ticks, mark_ticks, realized, fees, funding,"
            " unrealized, equity FROM snapshots WHERE ts_ns = ? ORDER BY symbol",
            (ts_ns,),
        ):
            if sym == TOTAL_SYMBOL:
                total = (realized, fees, fund, unreal, equity)
                continue
            positions.append(
                PositionSnapshot(
                    symbol=sym,
                    position_lots=pos_lots,
                    avg_entry_ticks=avg,
                    mark_ticks=mark,
                    realized_quote=realized,
                    unrealized_quote=unreal,
                    fees_quote=fees,
                    funding_quote=fund,
                    pnl_quote=equity,
                )
            )
        if total is None:
            raise InvariantViolation(f"ledger: snapshot at {ts_ns} has no totals row")
        realized, fees, fund, unreal, equity = total
        return PortfolioSnapshot(
            ts_ns=ts_ns,
            cash_quote=equity - unreal,
            equity_quote=equity,
            realized_quote=realized,
            unrealized_quote=unreal,
            fees_quote=fees,
            funding_quote=fund,
            total_pnl_quote=realized + unreal - fees + fund,
            positions=tuple(positions),
        )

    # -- queries (`mmd ledger`, `mmd report`) ----------------------------------------------------

    def run_identity(self) -> RunIdentity | None:
        """The run row, or None (a ledger opened without identity and never given one)."""
        row = self._conn.execute("SELECT body FROM run WHERE id = 1").fetchone()
        return None if row is None else msgspec.json.decode(row[0], type=RunIdentity)

    def fill_rows(self) -> list[tuple[object, ...]]:
        """Every fills row in journal order: (fill_id, seq, ts_exch_ns, client_order_id,
        symbol, side, px_ticks, qty_lots, leaves_lots, liquidity, fee_quote, tick_size,
        lot_size)."""
        return self._conn.execute(
            "SELECT fill_id, seq, ts_exch_ns, client_order_id, symbol, side, px_ticks, qty_lots,"
            " leaves_lots, liquidity, fee_quote, tick_size, lot_size FROM fills ORDER BY seq"
        ).fetchall()

    def funding_rows(self) -> list[tuple[object, ...]]:
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
                raise self._bad_row(seq, str(exc)) from None
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

    def integrity_check(self) -> str:
        """SQLite's `PRAGMA integrity_check` result ("ok" when healthy)."""
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def journal_mode(self) -> str:
        """The journal mode in force ("wal")."""
        return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0])

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


def _fold_order(
    orders: dict[str, Order],
    item: SubmitOrder | CancelOrder | OrderAccepted | OrderRejected | OrderFilled | OrderCanceled,
) -> None:
    # lenient replay: the journal is written before the OMS validates, so a record the OMS
    # refused (and crashed on) must not make every later restart crash too
    if isinstance(item, SubmitOrder):
        orders[item.client_order_id] = Order(
            item.client_order_id,
            item.symbol,
            item.side,
            item.px_ticks,
            item.qty_lots,
            item.qty_lots,
            OrderStatus.PENDING_NEW,
        )
        return
    order = orders.get(item.client_order_id)
    if order is None:
        return
    if isinstance(item, CancelOrder):
        if order.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            order.status = OrderStatus.PENDING_CANCEL
        return
    order.ts_exch_ns = item.ts_exch_ns
    if isinstance(item, OrderAccepted):
        if order.status is OrderStatus.PENDING_NEW:
            order.status = OrderStatus.ACCEPTED
    elif isinstance(item, OrderFilled):
        order.leaves_lots = item.leaves_lots
        if item.leaves_lots <= 0:
            del orders[item.client_order_id]
        elif order.status is OrderStatus.ACCEPTED:
            order.status = OrderStatus.PARTIALLY_FILLED
    elif isinstance(item, OrderRejected) and order.status is OrderStatus.PENDING_CANCEL:
        # a refused cancel: the order still rests
        partial = order.leaves_lots < order.qty_lots
        order.status = OrderStatus.PARTIALLY_FILLED if partial else OrderStatus.ACCEPTED
    else:  # OrderRejected of a new order, OrderCanceled
        del orders[item.client_order_id]

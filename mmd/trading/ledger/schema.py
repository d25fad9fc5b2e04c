"""The ledger file: its SQL schema, where it lives, how it is opened (WAL, private modes,
schema version) and how a stored run identity is compared. No journal logic here."""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
from pathlib import Path
from typing import Literal

from mmd.errors import ConfigError, StateError
from mmd.trading.ledger.records import RunIdentity

LEDGER_FILE = "ledger.sqlite"
SCHEMA_VERSION = "2"
TOTAL_SYMBOL = "*"  # the snapshots row holding the portfolio totals
# checkpoints kept (older ones are deleted when a new one is written)
KEEP_CHECKPOINTS = 2
# test hook: seconds to sleep inside each write transaction before its COMMIT (see Ledger)
WRITE_DELAY_ENV = "MMD_TEST_LEDGER_WRITE_DELAY_S"


SCHEMA = """
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


def make_private(path: Path) -> None:
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


def write_delay_s() -> float:
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


def connect(path: Path, synchronous: Literal["NORMAL", "FULL"]) -> tuple[sqlite3.Connection, str]:
    """Open the file in WAL mode (private modes), create the tables if missing, and return the
    connection with the schema version the file holds.

    Raises:
        ConfigError: the file cannot be opened or the filesystem does not support WAL.
        StateError: the file is not a readable SQLite database.
    """
    try:
        make_private(path)
        # autocommit mode: transactions are explicit BEGIN IMMEDIATE ... COMMIT
        conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"state.dir: cannot open ledger {path} ({exc})") from None
    if str(mode).lower() != "wal":
        conn.close()
        raise ConfigError(f"state.dir: ledger {path} cannot use WAL (journal_mode={mode})")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    try:
        conn.executescript(SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    except sqlite3.Error as exc:
        conn.close()
        raise StateError(
            f"ledger {path} is unreadable ({exc}); move {path.parent} aside or "
            "point [state] dir (MMD_STATE__DIR) at another directory"
        ) from None
    return conn, str(version)


def identity_conflict(stored: RunIdentity, identity: RunIdentity) -> str | None:
    """How `identity` differs from the one a ledger holds ("<field> is <old> there, <new>
    now"), or None when they are the same run."""
    for field in ("source", "category", "symbols", "recordings"):
        old, new = getattr(stored, field), getattr(identity, field)
        if old != new:
            if field == "recordings":
                old, new = [r.name for r in old], [r.name for r in new]
                if old == new:  # same names, other bytes
                    old, new = "other file contents", "these files"
            return f"{field} is {old} there, {new} now"
    return None

"""Ledger: the SQLite (WAL) journal of commands, order events, fills, funding and snapshots.

Owns the daemon's durable state under `[state] dir`/ledger.sqlite and rebuilds it on start. The
only file I/O in trading/; it holds no trading logic beyond folding the journal back into open
orders, and never reads the clock (timestamps are arguments).

Write-ahead rule: the caller journals a command or event first and applies it in memory only
after `journal` returned (the transaction is committed by then). A fill whose fill_id is already
in the ledger is not written again and `journal` returns False, so the caller skips it.

Durability: `journal_mode=WAL` with `synchronous=NORMAL` survives a killed process (SIGKILL,
OOM, crash) with every committed transaction intact, because a commit has reached the WAL file
in the OS page cache before `journal` returns; only an OS crash or power loss can lose the last
few commits (never corrupting the file). Pass `synchronous="FULL"` to fsync every commit too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import msgspec

from mmd.errors import ConfigError, InvariantViolation
from mmd.model.events import (
    CancelOrder,
    FundingPaid,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.trading.oms import Order, OrderStatus
from mmd.trading.portfolio import PortfolioSnapshot, PositionSnapshot

LEDGER_FILE = "ledger.sqlite"
SCHEMA_VERSION = "1"
TOTAL_SYMBOL = "*"  # the snapshots row holding the portfolio totals

Journaled = (
    SubmitOrder
    | CancelOrder
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCanceled
    | FundingPaid
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
    )
)

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
    fee_quote REAL NOT NULL
);
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
    """

    fills: list[OrderFilled]
    funding: list[FundingPaid]
    open_orders: list[Order]
    in_flight_ids: list[str]
    last_snapshot: PortfolioSnapshot | None
    meta: dict[str, str]
    model_versions: list[ModelVersion]
    last_seq: int


def ledger_path(state_dir: str | Path) -> Path:
    """The ledger file inside a `[state] dir`."""
    return Path(state_dir) / LEDGER_FILE


class Ledger:
    """An open ledger file. Build it with `Ledger.open`; one writer process per file."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._batch_depth = 0
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(Journaled)

    @classmethod
    def open(cls, path: str | Path, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> Ledger:
        """Open (creating if needed) a ledger file in WAL mode.

        Args:
            path: the SQLite file, or an existing directory (then `<dir>/ledger.sqlite`).
                Missing parent directories are created.
            synchronous: NORMAL (durable against a process kill) or FULL (also against power
                loss, slower).

        Returns:
            The open ledger.

        Raises:
            ConfigError: the file cannot be opened or the filesystem does not support WAL.
        """
        p = Path(path)
        if p.is_dir():
            p = p / LEDGER_FILE
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: transactions are explicit BEGIN IMMEDIATE ... COMMIT
            conn = sqlite3.connect(p, isolation_level=None, timeout=10.0)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"state.dir: cannot open ledger {p} ({exc})") from None
        if str(mode).lower() != "wal":
            conn.close()
            raise ConfigError(f"state.dir: ledger {p} cannot use WAL (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )
        return cls(conn, p)

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
            InvariantViolation: an item of another type.
        """
        kind = type(item).__name__
        if kind not in _KINDS:
            raise InvariantViolation(f"ledger: cannot journal {kind}")
        if ts_ns is None:
            ts_ns = getattr(item, "ts_exch_ns", 0)
        body = self._encoder.encode(item)
        coid = getattr(item, "client_order_id", None)
        with self._tx() as conn:
            if isinstance(item, OrderFilled):
                if conn.execute(
                    "SELECT 1 FROM fills WHERE fill_id = ?", (item.fill_id,)
                ).fetchone():
                    return False
                seq = self._insert_event(conn, ts_ns, kind, coid, item.symbol, body)
                conn.execute(
                    "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
        """Read the whole journal back: fills, funding, open orders, last snapshot, meta."""
        fills: list[OrderFilled] = []
        funding: list[FundingPaid] = []
        orders: dict[str, Order] = {}
        last_seq = 0
        for seq, body in self._conn.execute("SELECT seq, body FROM events ORDER BY seq"):
            last_seq = seq
            item = self._decoder.decode(body)
            if isinstance(item, OrderFilled):
                fills.append(item)
            elif isinstance(item, FundingPaid):
                funding.append(item)
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
        return Restored(
            fills=fills,
            funding=funding,
            open_orders=[o for o in orders.values() if o.status in live],
            in_flight_ids=[
                o.client_order_id for o in orders.values() if o.status is OrderStatus.PENDING_NEW
            ],
            last_snapshot=self._last_snapshot(),
            meta=meta,
            model_versions=models,
            last_seq=last_seq,
        )

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

    def event_bodies(self) -> list[bytes]:
        """Every journaled item's encoded body, in journal order (replay catch-up checks)."""
        return [bytes(r[0]) for r in self._conn.execute("SELECT body FROM events ORDER BY seq")]

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

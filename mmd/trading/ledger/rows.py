"""Rows of the ledger's tables: journal rows with their fills and funding rows, snapshot rows,
and the latest snapshot read back. Runs inside the Ledger's transactions; opens none itself."""

from __future__ import annotations

import sqlite3

from mmd.errors import InvariantViolation
from mmd.model.events import FundingPaid, OrderFilled
from mmd.trading.ledger.schema import TOTAL_SYMBOL
from mmd.trading.portfolio import PortfolioSnapshot
from mmd.trading.position import PositionSnapshot

Row = tuple[object, ...]
# (fill_id, seq, ts_exch_ns, client_order_id, symbol, side, px_ticks, qty_lots, leaves_lots,
#  liquidity, fee_quote, tick_size, lot_size)
FillRow = tuple[str, int, int, str, str, int, int, int, int, int, float, str, str]
# (funding_id, seq, ts_exch_ns, symbol, rate, position_lots, mark_px, amount_quote)
FundingRow = tuple[str, int, int, str, float, int, float, float]


def fill_row(item: OrderFilled, seq: int, steps: tuple[str, str]) -> Row:
    """The `fills` row of a journaled fill (counted in the instrument steps `steps`)."""
    return (
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
    )


def funding_row(item: FundingPaid, seq: int) -> Row:
    """The `funding` row of a journaled funding payment."""
    return (
        item.funding_id,
        seq,
        item.ts_exch_ns,
        item.symbol,
        item.rate,
        item.position_lots,
        item.mark_px,
        item.amount_quote,
    )


def insert_event(
    conn: sqlite3.Connection, ts_ns: int, kind: str, coid: str | None, symbol: str, body: bytes
) -> int:
    """Append one journal row; returns its sequence number."""
    cur = conn.execute(
        "INSERT INTO events(ts_ns, kind, client_order_id, symbol, body) VALUES (?,?,?,?,?)",
        (ts_ns, kind, coid, symbol, body),
    )
    seq = cur.lastrowid
    assert seq is not None  # an INSERT into a rowid table always sets it
    return seq


def insert_fill(
    conn: sqlite3.Connection, item: OrderFilled, ts_ns: int, body: bytes, steps: tuple[str, str]
) -> bool:
    """Journal a fill and its `fills` row; False (nothing written) if its fill_id is there."""
    if conn.execute("SELECT 1 FROM fills WHERE fill_id = ?", (item.fill_id,)).fetchone():
        return False
    seq = insert_event(conn, ts_ns, "OrderFilled", item.client_order_id, item.symbol, body)
    conn.execute(
        "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        fill_row(item, seq, steps),
    )
    return True


def insert_funding(conn: sqlite3.Connection, item: FundingPaid, ts_ns: int, body: bytes) -> bool:
    """Journal a funding payment and its `funding` row; False (nothing written) if its
    funding_id is there."""
    if conn.execute("SELECT 1 FROM funding WHERE funding_id = ?", (item.funding_id,)).fetchone():
        return False
    seq = insert_event(conn, ts_ns, "FundingPaid", None, item.symbol, body)
    conn.execute("INSERT OR IGNORE INTO funding VALUES (?,?,?,?,?,?,?,?)", funding_row(item, seq))
    return True


def snapshot_rows(snap: PortfolioSnapshot) -> list[Row]:
    """One point of the equity curve: a row per symbol plus a totals row ('*')."""
    rows: list[Row] = [
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
    return rows


def last_snapshot(conn: sqlite3.Connection) -> PortfolioSnapshot | None:
    """The most recent portfolio snapshot, or None.

    Raises:
        InvariantViolation: its totals row is missing.
    """
    row = conn.execute("SELECT MAX(ts_ns) FROM snapshots").fetchone()
    if row is None or row[0] is None:
        return None
    ts_ns = int(row[0])
    positions: list[PositionSnapshot] = []
    total = None
    for sym, pos_lots, avg, mark, realized, fees, fund, unreal, equity in conn.execute(
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

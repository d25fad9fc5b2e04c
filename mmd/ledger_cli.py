"""`mmd ledger fills|orders|pnl|summary` and `mmd report --state`: a ledger read without SQL.

Shell: finds and opens the ledger read-only (never creating one), asks mmd.trading.ledger_query
for rows and writes them as a table, CSV, JSON or Parquet (pyarrow, the `export` extra).
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from mmd.errors import ConfigError, StateError
from mmd.report_files import write_text
from mmd.trading.ledger import LEDGER_FILE, Ledger, ledger_path
from mmd.trading.ledger_query import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    PNL_COLUMNS,
    daily_pnl,
    fills,
    orders,
    summary,
)

FORMATS = ("table", "csv", "json", "parquet")
_COLUMNS = {"fills": FILL_COLUMNS, "orders": ORDER_COLUMNS, "pnl": PNL_COLUMNS}


def find_ledger(state: str | None, default_dir: str, source: str) -> Path:
    """The ledger file: `<state>/ledger.sqlite`, else `<state>/<source>/ledger.sqlite`, else
    the only `<state>/*/ledger.sqlite`; without --state, `<[state] dir>/<source>/`.

    Raises:
        StateError: none found (exit 2).
    """
    if state is None:
        p = ledger_path(default_dir, source)
        if p.exists():
            return p
        raise StateError(f"no ledger at {p} (give --state DIR or --feed SOURCE)")
    base = Path(state)
    for p in (base / LEDGER_FILE, ledger_path(base, source)):
        if p.is_file():
            return p
    found = sorted(base.glob(f"*/{LEDGER_FILE}"))
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(f.parent.name for f in found)
        raise StateError(
            f"{base} holds ledgers of several feeds ({names}); pick one with --feed SOURCE"
        )
    raise StateError(f"no ledger under {base} ({LEDGER_FILE} or <source>/{LEDGER_FILE})")


def parse_time(text: str | None, flag: str) -> int | None:
    """--since/--until: an ISO 8601 date or date-time (UTC unless it says otherwise), or ns
    since the epoch."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r}: not an ISO 8601 date/time (e.g. 2024-07-19 or "
            "2024-07-19T00:05:00Z) nor ns since the epoch"
        ) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.UTC)
    return int(d.timestamp()) * 1_000_000_000 + d.microsecond * 1000


def run_ledger(
    what: str,
    path: Path,
    *,
    since: str | None,
    until: str | None,
    symbol: str | None,
    fmt: str,
    out: str | None,
) -> int:
    """`mmd ledger WHAT`: write the rows (or the summary) to out (default stdout)."""
    since_ns, until_ns = parse_time(since, "--since"), parse_time(until, "--until")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--format parquet needs pyarrow: pip install 'mmd[export]' (or pip install pyarrow)"
            ) from None
        if out is None:
            raise ConfigError("--format parquet writes a file: give --out FILE")
    with Ledger.open(path, create=False) as led:
        if what == "summary":
            data: dict[str, Any] = summary(led, time.time_ns())
            _write_summary(data, fmt, out)
            return 0
        query = {"fills": fills, "orders": orders, "pnl": daily_pnl}[what]
        rows = query(led, since_ns=since_ns, until_ns=until_ns, symbol=symbol)
    _write_rows(rows, _COLUMNS[what], fmt, out)
    return 0


def _emit(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        write_text(Path(out), text)


def _write_rows(
    rows: list[dict[str, Any]], columns: tuple[str, ...], fmt: str, out: str | None
) -> None:
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        _emit(buf.getvalue(), out)
    elif fmt == "json":
        _emit(json.dumps(rows, indent=1) + "\n", out)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert out is not None
        table = (
            pa.Table.from_pylist(rows)
            if rows
            else pa.table({c: pa.array([], pa.string()) for c in columns})
        )
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out)
    else:
        _emit(_table(rows, columns), out)


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [list(columns)] + [["" if r[c] is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            v.rjust(w) if j else v.ljust(w)
            for j, (v, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"({len(rows)} rows)")
    return "\n".join(lines) + "\n"


def _flat(prefix: str, v: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(v, dict):
        for k, x in v.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), x, out)
    elif isinstance(v, list) and v and isinstance(v[0], dict):
        for i, x in enumerate(v):
            _flat(f"{prefix}[{i}]", x, out)
    else:
        out.append(
            (
                prefix,
                "" if v is None else (", ".join(map(str, v)) if isinstance(v, list) else str(v)),
            )
        )


def _write_summary(data: dict[str, Any], fmt: str, out: str | None) -> None:
    if fmt == "json":
        _emit(json.dumps(data, indent=1) + "\n", out)
        return
    pairs: list[tuple[str, str]] = []
    _flat("", data, pairs)
    rows = [{"key": k, "value": v} for k, v in pairs]
    if fmt == "table":
        w = max(len(k) for k, _ in pairs)
        _emit("".join(f"{k:<{w}}  {v}\n" for k, v in pairs), out)
    else:
        _write_rows(rows, ("key", "value"), fmt, out)

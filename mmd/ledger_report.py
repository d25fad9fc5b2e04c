"""`mmd report --state DIR --out DIR`: the files of `mmd backtest --report` for a run read back
from its ledger (live, synthetic or replay).

What the ledger holds, and so what the report shows:
- equity and position: the portfolio snapshots (every `[state] snapshot_interval_s`, plus one
  at shutdown), the totals row for the equity (realized + unrealized - fees + funding);
- mids: the marks stored on the snapshot rows (one per snapshot, not every book): markouts
  at horizons shorter than the snapshot interval are read from the last mark before them, so
  they are coarse; `summary.json` says so in `mid_source` / `note`;
- fills: every fill row, exact;
- quotes: our resting best bid and ask, rebuilt from the journaled submits, cancels and order
  events (the strategy's targets themselves are not journaled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mmd.model.events import OrderCanceled, OrderFilled, OrderRejected, SubmitOrder
from mmd.report_files import write_report
from mmd.sim.report import (
    QUOTE_DTYPE,
    fills_array,
    mids_array,
    summarize,
)
from mmd.sim.report_charts import ReportSeries
from mmd.trading.ledger import TOTAL_SYMBOL, Ledger
from mmd.trading.ledger_query import iso_ns


def _int(v: object) -> int:
    """A ledger cell that holds an integer (SQLite INTEGER, or its text)."""
    assert isinstance(v, int | str), v
    return int(v)


def _float(v: object) -> float:
    """A ledger cell that holds a number (SQLite REAL or INTEGER)."""
    assert isinstance(v, float | int | str), v
    return float(v)


def _quotes(led: Ledger, symbol: str) -> npt.NDArray[np.void]:
    """Our best resting bid/ask (ticks) after each change, from the journal."""
    live: dict[str, tuple[int, int]] = {}  # coid -> (side, px_ticks)
    out: list[tuple[int, float, float]] = []
    last: tuple[float, float] | None = None
    for _seq, ts_ns, item in led.journal_items():
        if getattr(item, "symbol", None) != symbol:
            continue
        if isinstance(item, SubmitOrder):
            live[item.client_order_id] = (item.side, item.px_ticks)
        elif (isinstance(item, OrderFilled) and item.leaves_lots <= 0) or isinstance(
            item, OrderCanceled | OrderRejected
        ):
            # the paper exchange refuses a cancel only when the order is gone already
            live.pop(item.client_order_id, None)
        else:
            continue
        bids = [px for side, px in live.values() if side == 1]
        asks = [px for side, px in live.values() if side == -1]
        q = (float(max(bids)) if bids else np.nan, float(min(asks)) if asks else np.nan)
        if last is None or not _same(q, last):
            out.append((ts_ns, q[0], q[1]))
            last = q
    return np.array(out, dtype=QUOTE_DTYPE) if out else np.empty(0, QUOTE_DTYPE)


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


def report_from_ledger(path: Path, out_dir: str) -> list[Path]:
    """Write summary.json, the charts and report.html of the ledger's run to out_dir (one
    subdirectory per symbol when it traded several); returns the written paths."""
    with Ledger.open(path, create=False) as led:
        ident = led.run_identity()
        symbols = (
            sorted(ident.symbols)
            if ident is not None
            else sorted({str(r[4]) for r in led.fill_rows()})
        )
        # a snapshot taken before the first market time (ts 0) is not a point of the curve
        snaps = [r for r in led.snapshot_rows() if _int(r[0]) > 0]
        fill_rows = led.fill_rows()
        written: list[Path] = []
        total = [
            (_int(r[0]), _float(r[5]) + _float(r[8]) - _float(r[6]) + _float(r[7]))
            for r in snaps
            if r[1] == TOTAL_SYMBOL
        ]
        for sym in symbols:
            sym_snaps = [r for r in snaps if r[1] == sym]
            rows = [r for r in fill_rows if r[4] == sym]
            steps = led.steps(sym) or ((str(rows[-1][11]), str(rows[-1][12])) if rows else None)
            if steps is None:
                continue  # never saw the symbol's instrument: nothing to report
            tick, lot = float(steps[0]), float(steps[1])
            fills = fills_array(
                [
                    OrderFilled(
                        fill_id=str(r[0]),
                        client_order_id=str(r[3]),
                        symbol=sym,
                        side=_int(r[5]),
                        px_ticks=_int(r[6]),
                        qty_lots=_int(r[7]),
                        leaves_lots=_int(r[8]),
                        liquidity=_int(r[9]),
                        fee_quote=_float(r[10]),
                        ts_exch_ns=_int(r[2]),
                    )
                    for r in rows
                ]
            )
            if len(symbols) == 1:
                eq_ts = np.array([t for t, _ in total], np.int64)
                eq = np.array([v for _, v in total], np.float64)
            else:
                eq_ts = np.array([_int(r[0]) for r in sym_snaps], np.int64)
                eq = np.array([_float(r[9]) for r in sym_snaps], np.float64)
            by_ts = {_int(r[0]): _int(r[2]) for r in sym_snaps}
            pos = np.array([by_ts.get(int(t), 0) for t in eq_ts], np.int64)
            marked = [(_int(r[0]), _float(r[4])) for r in sym_snaps if r[4] is not None]
            mids = mids_array([t for t, _ in marked], [m for _, m in marked])
            interval = float(np.median(np.diff(eq_ts))) / 1e9 if len(eq_ts) > 2 else None
            # the tag every chart title carries: where its series come from
            tag = "ledger" + (f"; mid = snapshot marks every {interval:.3g} s" if interval else "")
            summary: dict[str, Any] = summarize(
                eq_ts,
                eq,
                pos,
                fills,
                mids,
                lot=lot,
                tick=tick,
                strategy=tag,
                events=led.event_count(),
            )
            summary.update(
                symbol=sym,
                category=ident.category if ident else None,
                source=ident.source if ident else None,
                ledger=str(path),
                recordings=[{"name": d.name, "sha256": d.sha256} for d in ident.recordings]
                if ident
                else [],
                first_snapshot=iso_ns(int(eq_ts[0])) if len(eq_ts) else None,
                last_snapshot=iso_ns(int(eq_ts[-1])) if len(eq_ts) else None,
                snapshots=len(eq_ts),
                mid_source="ledger snapshot marks",
                note=(
                    "from the ledger: equity, position and mids are the portfolio snapshots "
                    f"(every ~{interval:.3g} s), so markouts shorter than that are coarse; "
                    "quotes are our resting orders rebuilt from the journal"
                    if interval
                    else "from the ledger: too few snapshots for a curve"
                ),
            )
            out = Path(out_dir) if len(symbols) == 1 else Path(out_dir) / sym
            series = ReportSeries(
                equity_ts_ns=eq_ts,
                equity_quote=eq,
                position_lots=pos,
                fills=fills,
                mids=mids,
                tick=tick,
                lot=lot,
                quotes=_quotes(led, sym),
                symbol=sym,
            )
            written += write_report(summary, series, out)
    return written

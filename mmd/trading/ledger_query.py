"""What `mmd ledger` and `mmd report` read from a ledger: fills, orders, daily PnL, a summary.

Core: folds the rows an open Ledger returns into plain rows (dicts), prices and sizes in venue
units (each fill with the instrument steps stored on its row; orders with the steps noted
before them). Times are ns since the epoch, UTC; a day is a UTC calendar day. No clock reads:
the caller passes `now_ns` where the kill-switch state needs it.

PnL follows the Portfolio exactly (the fills are applied to a fresh Portfolio in journal
order): realized and fees per fill, funding per payment, net = realized - fees + funding.
"""

from __future__ import annotations

import bisect
import datetime
from decimal import Decimal
from typing import Any

from mmd.model.codes import NS_PER_S
from mmd.model.events import (
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.model.instrument import Instrument
from mmd.trading.ledger import SCHEMA_VERSION, Ledger
from mmd.trading.portfolio import Portfolio
from mmd.trading.risk import kill_switch_status

SIDES = {1: "buy", -1: "sell"}
LIQUIDITY = {1: "maker", 2: "taker"}

FILL_COLUMNS = (
    "ts",
    "symbol",
    "side",
    "price",
    "qty",
    "fee",
    "liquidity",
    "client_order_id",
    "fill_id",
    "leaves",
    "position",
    "realized",
    "ts_ns",
)
ORDER_COLUMNS = (
    "ts",
    "symbol",
    "client_order_id",
    "side",
    "price",
    "qty",
    "filled",
    "status",
    "reason",
    "last_ts",
    "ts_ns",
)
PNL_COLUMNS = (
    "day",
    "symbol",
    "fills",
    "volume",
    "notional",
    "realized",
    "fees",
    "funding",
    "net",
    "max_abs_position",
)


def iso_ns(ts_ns: int) -> str:
    """ns since the epoch -> ISO 8601 UTC with ns ("2024-07-19T00:01:01.442000000Z")."""
    sec, frac = divmod(int(ts_ns), NS_PER_S)
    d = datetime.datetime.fromtimestamp(sec, datetime.UTC)
    return f"{d:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def utc_day(ts_ns: int) -> str:
    """The UTC calendar day of a time, "YYYY-MM-DD"."""
    return datetime.datetime.fromtimestamp(int(ts_ns) // NS_PER_S, datetime.UTC).strftime(
        "%Y-%m-%d"
    )


def _g12(v: float) -> float:
    return float(f"{v:.12g}")


def _in(ts_ns: int, since_ns: int | None, until_ns: int | None) -> bool:
    return (since_ns is None or ts_ns >= since_ns) and (until_ns is None or ts_ns < until_ns)


def _category(led: Ledger) -> str:
    ident = led.run_identity()
    return ident.category if ident is not None else "linear"


def _fold_fills(led: Ledger) -> tuple[list[dict[str, Any]], Portfolio]:
    """Every fill as a row (no filter), applied in order to a fresh Portfolio."""
    category = _category(led)
    pf = Portfolio()
    insts: dict[tuple[str, str, str], Instrument] = {}
    position: dict[str, Decimal] = {}
    rows: list[dict[str, Any]] = []
    for fid, _seq, ts, coid, sym, side, px, qty, leaves, liq, fee, tick, lot in led.fill_rows():
        key = (str(sym), str(tick), str(lot))
        inst = insts.get(key)
        if inst is None:
            inst = insts[key] = Instrument(
                symbol=key[0], category=category, tick_size=key[1], lot_size=key[2]
            )
        fill = OrderFilled(
            fill_id=str(fid),
            client_order_id=str(coid),
            symbol=key[0],
            side=int(side),
            px_ticks=int(px),
            qty_lots=int(qty),
            leaves_lots=int(leaves),
            liquidity=int(liq),
            fee_quote=float(fee),
            ts_exch_ns=int(ts),
        )
        before = pf.position(key[0]).realized_quote if key[0] in pf.symbols else 0.0
        pos = pf.apply_fill(fill, inst)
        pos_base = position.get(key[0], Decimal(0)) + fill.side * fill.qty_lots * Decimal(lot)
        position[key[0]] = pos_base
        rows.append(
            {
                "ts": iso_ns(fill.ts_exch_ns),
                "symbol": key[0],
                "side": SIDES.get(fill.side, str(fill.side)),
                "price": inst.format_px(fill.px_ticks),
                "qty": inst.format_qty(fill.qty_lots),
                "fee": _g12(fill.fee_quote),
                "liquidity": LIQUIDITY.get(fill.liquidity, str(fill.liquidity)),
                "client_order_id": fill.client_order_id,
                "fill_id": fill.fill_id,
                "leaves": inst.format_qty(fill.leaves_lots),
                "position": inst.format_qty(round(pos_base / Decimal(lot))),
                "realized": _g12(pos.realized_quote - before),
                "ts_ns": fill.ts_exch_ns,
                # not a column: for the daily table
                "_notional": fill.qty_lots * inst.lot * fill.px_ticks * inst.tick,
                "_qty": float(fill.qty_lots * Decimal(lot)),
                "_pos": float(pos_base),
            }
        )
    return rows, pf


def fills(
    led: Ledger,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    symbol: str | None = None,
) -> list[dict[str, Any]]:
    """Fills (FILL_COLUMNS), in journal order: price and qty as the venue writes them, fee
    in quote (negative = rebate), position after the fill (venue units), realized = the PnL
    this fill realized (quote, before fees)."""
    rows, _ = _fold_fills(led)
    return [
        {k: r[k] for k in FILL_COLUMNS}
        for r in rows
        if _in(r["ts_ns"], since_ns, until_ns) and (symbol is None or r["symbol"] == symbol)
    ]


class _Steps:
    """The instrument steps in force at a journal position, per symbol."""

    def __init__(self, led: Ledger) -> None:
        self._by: dict[str, tuple[list[int], list[Instrument]]] = {}
        category = _category(led)
        for seq, sym, tick, lot in led.instrument_steps():
            seqs, insts = self._by.setdefault(sym, ([], []))
            seqs.append(seq)
            insts.append(Instrument(symbol=sym, category=category, tick_size=tick, lot_size=lot))

    def at(self, symbol: str, seq: int) -> Instrument | None:
        got = self._by.get(symbol)
        if not got:
            return None
        seqs, insts = got
        # a step row carries the last event seq before it: it applies to later events
        i = bisect.bisect_left(seqs, seq) - 1
        return insts[max(i, 0)]


def orders(
    led: Ledger,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    symbol: str | None = None,
) -> list[dict[str, Any]]:
    """Every order submitted (ORDER_COLUMNS), by submit time: its final status (open,
    filled, canceled, rejected; pending_new when never acknowledged), filled size and the
    reject reason."""
    steps = _Steps(led)
    out: dict[str, dict[str, Any]] = {}
    filled: dict[str, int] = {}
    insts: dict[str, Instrument | None] = {}
    for seq, ts_ns, item in led.journal_items():
        if isinstance(item, SubmitOrder):
            inst = steps.at(item.symbol, seq)
            insts[item.client_order_id] = inst
            out[item.client_order_id] = {
                "ts": iso_ns(ts_ns),
                "symbol": item.symbol,
                "client_order_id": item.client_order_id,
                "side": SIDES.get(item.side, str(item.side)),
                "price": inst.format_px(item.px_ticks) if inst else str(item.px_ticks),
                "qty": inst.format_qty(item.qty_lots) if inst else str(item.qty_lots),
                "filled": "",
                "status": "pending_new",
                "reason": "",
                "last_ts": iso_ns(ts_ns),
                "ts_ns": ts_ns,
            }
            filled[item.client_order_id] = 0
            continue
        if isinstance(item, CancelOrder):
            continue
        row = out.get(getattr(item, "client_order_id", ""))
        if row is None:
            continue
        coid = row["client_order_id"]
        row["last_ts"] = iso_ns(ts_ns)
        if isinstance(item, OrderAccepted):
            if row["status"] == "pending_new":
                row["status"] = "open"
        elif isinstance(item, OrderFilled):
            filled[coid] += item.qty_lots
            row["status"] = "filled" if item.leaves_lots <= 0 else "open"
        elif isinstance(item, OrderRejected):
            if row["status"] == "pending_new":  # a refused cancel leaves the order as it was
                row["status"] = "rejected"
                row["reason"] = item.reason
        elif isinstance(item, OrderCanceled) and row["status"] != "filled":
            row["status"] = "canceled"
    result = []
    for coid, row in out.items():
        inst = insts[coid]
        row["filled"] = inst.format_qty(filled[coid]) if inst else str(filled[coid])
        if _in(row["ts_ns"], since_ns, until_ns) and (symbol is None or row["symbol"] == symbol):
            result.append(row)
    return result


def daily_pnl(
    led: Ledger,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    symbol: str | None = None,
) -> list[dict[str, Any]]:
    """One row per UTC day and symbol (PNL_COLUMNS): fills, volume (base), notional (quote),
    realized, fees, funding (quote, + received), net = realized - fees + funding, and the
    largest |position| held that day (base, the position carried in included). Over all days
    the columns sum to the ledger's totals (`summary`)."""
    rows, _ = _fold_fills(led)
    days: dict[tuple[str, str], dict[str, Any]] = {}
    carried: dict[str, float] = {}

    def day_row(day: str, sym: str) -> dict[str, Any]:
        r = days.get((day, sym))
        if r is None:
            r = days[(day, sym)] = {
                "day": day,
                "symbol": sym,
                "fills": 0,
                "volume": 0.0,
                "notional": 0.0,
                "realized": 0.0,
                "fees": 0.0,
                "funding": 0.0,
                "net": 0.0,
                "max_abs_position": abs(carried.get(sym, 0.0)),
            }
        return r

    events: list[tuple[int, int, Any]] = [(r["ts_ns"], 0, r) for r in rows]
    events += [(int(f[2]), 1, f) for f in led.funding_rows()]
    events.sort(key=lambda e: (e[0], e[1]))
    for ts, kind, ev in events:
        if kind == 0:
            r = day_row(utc_day(ts), ev["symbol"])
            r["fills"] += 1
            r["volume"] += ev["_qty"]
            r["notional"] += ev["_notional"]
            r["realized"] += ev["realized"]
            r["fees"] += ev["fee"]
            carried[ev["symbol"]] = ev["_pos"]
            r["max_abs_position"] = max(r["max_abs_position"], abs(ev["_pos"]))
        else:
            r = day_row(utc_day(ts), str(ev[3]))
            r["funding"] += float(ev[7])
    out = []
    for (day, sym), r in sorted(days.items()):
        r["net"] = r["realized"] - r["fees"] + r["funding"]
        for k in ("volume", "notional", "realized", "fees", "funding", "net", "max_abs_position"):
            r[k] = _g12(r[k])
        start = utc_day(since_ns) if since_ns is not None else None
        end = utc_day(until_ns - 1) if until_ns is not None else None
        if (
            (start is None or day >= start)
            and (end is None or day <= end)
            and (symbol is None or sym == symbol)
        ):
            out.append(r)
    return out


def summary(led: Ledger, now_ns: int) -> dict[str, Any]:
    """Totals (from the journal, as a fresh Portfolio counts them), the run identity, the last
    snapshot, the kill switch, the checkpoints and the model files."""
    rows, pf = _fold_fills(led)
    funding = led.funding_rows()
    for f in funding:
        sym = str(f[3])
        if sym in pf.symbols:
            pf.position(sym).funding_quote += float(f[7])
    ident = led.run_identity()
    r = led.restore()
    snap = r.last_snapshot
    ks = kill_switch_status(led, now_ns)
    positions = {}
    for row in rows:
        positions[row["symbol"]] = row["position"]
    return {
        "ledger": str(led.path),
        "schema_version": SCHEMA_VERSION,
        "run": None
        if ident is None
        else {
            "source": ident.source,
            "category": ident.category,
            "symbols": ident.symbols,
            "recordings": [{"name": d.name, "sha256": d.sha256} for d in ident.recordings],
        },
        "events": led.event_count(),
        "fills": len(rows),
        "funding_payments": len(funding),
        "first_fill": rows[0]["ts"] if rows else None,
        "last_fill": rows[-1]["ts"] if rows else None,
        "volume": {
            s: _g12(sum(x["_qty"] for x in rows if x["symbol"] == s)) for s in sorted(positions)
        },
        "notional": _g12(sum(x["_notional"] for x in rows)),
        "realized": _g12(pf.realized_quote),
        "fees": _g12(pf.fees_quote),
        "funding": _g12(pf.funding_quote),
        "net": _g12(pf.realized_quote - pf.fees_quote + pf.funding_quote),
        "positions": positions,
        "last_snapshot": None
        if snap is None
        else {
            "ts": iso_ns(snap.ts_ns),
            "realized": _g12(snap.realized_quote),
            "fees": _g12(snap.fees_quote),
            "funding": _g12(snap.funding_quote),
            "unrealized": _g12(snap.unrealized_quote),
            "total_pnl": _g12(snap.total_pnl_quote),
        },
        "kill_switch": {"halted": ks.halted, "reason": ks.reason, "day_pnl": ks.day_pnl_quote},
        "checkpoints": [{"seq": s, "ts": iso_ns(t)} for s, t in led.checkpoint_rows()],
        "open_orders": len(r.open_orders),
        "model_versions": [
            {"name": m.name, "version": m.version, "path": m.path} for m in r.model_versions
        ],
    }

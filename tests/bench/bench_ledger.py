"""Ledger restore benchmark: a journal of `rows` rows (1 M; 60 k with --quick) written through
the Ledger API in one transaction, then restored twice: from its latest checkpoint plus the
tail after it (`restore_s`, what a daemon start costs) and, with the checkpoint removed, from
the whole journal (`full_restore_s`). `tail_rows` is what the checkpointed restore decoded.

Each order is three rows (submit, accepted, filled in full), alternating buys and sells around
a fixed price; the checkpoint is written `TAIL` rows before the end with the exact portfolio
at that point. The two restores are checked to fold to the same portfolio before timing is
reported.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from mmd.model.codes import BUY, SELL
from mmd.model.events import MAKER, OrderAccepted, OrderFilled, SubmitOrder
from mmd.model.instrument import Instrument
from mmd.trading.ledger import Checkpoint, Ledger
from mmd.trading.portfolio import Portfolio

BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
TAIL = 1_500  # rows after the checkpoint (about 6 minutes of a busy daemon)


def _order_rows(i: int) -> tuple[SubmitOrder, OrderAccepted, OrderFilled]:
    side = BUY if i % 2 == 0 else SELL
    px = 650_000 + (i % 7) * side
    coid = f"o{i}"
    return (
        SubmitOrder(client_order_id=coid, symbol=BTC.symbol, side=side, px_ticks=px, qty_lots=2),
        OrderAccepted(
            client_order_id=coid,
            symbol=BTC.symbol,
            side=side,
            px_ticks=px,
            qty_lots=2,
            ts_exch_ns=i * 1_000,
        ),
        OrderFilled(
            fill_id=f"{coid}#1",
            client_order_id=coid,
            symbol=BTC.symbol,
            side=side,
            px_ticks=px,
            qty_lots=2,
            leaves_lots=0,
            liquidity=MAKER,
            fee_quote=0.0002 * 130.0,
            ts_exch_ns=i * 1_000 + 500,
        ),
    )


def _portfolio(restored: Any) -> Portfolio:
    pf = Portfolio([BTC])
    if restored.checkpoint is not None:
        pf.load_states(restored.checkpoint.positions)
    for f in restored.fills:
        pf.apply_fill(f, BTC)
    return pf


def run(quick: bool) -> list[dict[str, Any]]:
    """One row: rows, tail_rows, restore_s, full_restore_s, write_s."""
    rows = 60_000 if quick else 1_000_000
    orders = rows // 3
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        t0 = time.perf_counter()
        led = Ledger.open(path)
        led.note_instrument(BTC)
        pf = Portfolio([BTC])
        with led.batch():
            for i in range(orders):
                if i == orders - TAIL // 3:
                    led.checkpoint(Checkpoint(ts_ns=i, positions=pf.states(), orders=[]))
                sub, acc, fill = _order_rows(i)
                led.journal(sub, ts_ns=i * 1_000)
                led.journal(acc)
                led.journal(fill)
                pf.apply_fill(fill, BTC)
        write_s = time.perf_counter() - t0
        led.close()
        led = Ledger.open(path)
        t0 = time.perf_counter()
        part = led.restore()
        restore_s = time.perf_counter() - t0
        led.close()
        with Ledger.open(path) as led:
            led._conn.execute("DELETE FROM checkpoints")  # the same journal, no checkpoint
            t0 = time.perf_counter()
            full = led.restore()
            full_restore_s = time.perf_counter() - t0
        if _portfolio(part).states() != _portfolio(full).states() or part.tail_rows != TAIL:
            raise AssertionError("checkpointed restore disagrees with the full restore")
    return [
        {
            "name": "ledger_restore",
            "rows": orders * 3,
            "tail_rows": part.tail_rows,
            "restore_s": round(restore_s, 6),
            "full_restore_s": round(full_restore_s, 3),
            "write_s": round(write_s, 3),
        }
    ]

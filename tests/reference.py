"""Reference order books rebuilt offline from a recording with plain dicts (no mmd book code).

Used to check what the daemon holds: `ReferenceBooks(path).top(seq, depth)` is the top of the
book after the source frame with that seq was applied.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path


def _steps(path: Path) -> tuple[Decimal, Decimal]:
    with gzip.open(path, "rt") as fh:
        for line in fh:
            obj = json.loads(line.split(" ", 1)[1])
            res = obj.get("result") if isinstance(obj, dict) else None
            if isinstance(res, dict) and res.get("list") and "priceFilter" in res["list"][0]:
                inst = res["list"][0]
                lot = inst["lotSizeFilter"]
                return (
                    Decimal(inst["priceFilter"]["tickSize"]),
                    Decimal(lot.get("qtyStep") or lot["basePrecision"]),
                )
    raise ValueError(f"{path}: no instruments-info frame")


class ReferenceBooks:
    """Every book state of one recording, keyed by the source frame's seq.

    Attributes:
        tick, lot: the instrument's steps.
        symbol: the book's symbol.
        seqs: seq of every book frame in order.
        final_seq: seq of the last book frame.
    """

    def __init__(self, path: Path, depth: int = 50) -> None:
        self.tick, self.lot = _steps(path)
        self.depth = depth
        self.states: dict[int, tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]] = {}
        self.seqs: list[int] = []
        self.ts_recv_ns: dict[int, int] = {}
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        self.symbol = ""
        with gzip.open(path, "rt") as fh:
            for line in fh:
                ts_text, frame = line.split(" ", 1)
                obj = json.loads(frame)
                if not str(obj.get("topic", "")).startswith("orderbook."):
                    continue
                data = obj["data"]
                self.symbol = data["s"]
                if obj["type"] == "snapshot":
                    bids.clear()
                    asks.clear()
                for side, book in ((data["b"], bids), (data["a"], asks)):
                    for px, qty in side:
                        p = int(Decimal(px) / self.tick)
                        q = int(Decimal(qty) / self.lot)
                        if q == 0:
                            book.pop(p, None)
                        else:
                            book[p] = q
                seq = int(data["seq"])
                self.seqs.append(seq)
                self.ts_recv_ns[seq] = int(ts_text)
                self.states[seq] = (
                    tuple(sorted(bids.items(), reverse=True)[:depth]),
                    tuple(sorted(asks.items())[:depth]),
                )
        self.final_seq = self.seqs[-1]

    def top(self, seq: int, depth: int | None = None) -> tuple[list[list[int]], list[list[int]]]:
        """(bids, asks) as [[px_ticks, qty_lots], ...] after the frame with this seq."""
        d = depth or self.depth
        b, a = self.states[seq]
        return [list(x) for x in b[:d]], [list(x) for x in a[:d]]

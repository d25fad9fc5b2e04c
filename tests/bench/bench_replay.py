"""Replay throughput of codec + book + rings (MarketHub.on_frame) on the real recordings.

Figures per recording: `frames_per_s` (every frame: book, trades, klines), `events_per_s` (book
level updates plus trades, per second), `ns_per_frame`, and `peer_*`: the same frames through a
plain-Python baseline in the same process (json.loads + dict book + sorted top 50 after every
book frame, which is what a naive paper trader does), with `ratio = mmd / peer` frames per second.
`pipeline_with_trading.*` runs the whole paper-trading pipeline (features, paper exchange, a quote
decision after every book frame, risk, order manager, portfolio; no ledger): what a daemon that
requotes on every update pays per frame.
Recordings are converted in-process from ../shared/data into a temp dir (conversion not timed).
Without the shared data the benchmark reports `skipped` (the reason in the row name).
"""

from __future__ import annotations

import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from mmd.app import build_trader
from mmd.config import AppConfig, FeedConfig, MarketConfig, StrategyConfig
from mmd.feeds.convert.binance_usdm import convert_binance_usdm
from mmd.feeds.convert.cryptofeed import convert_cryptofeed
from mmd.feeds.recording import parse_recording_name, read_recording
from mmd.frames import FrameHandler
from mmd.market.hub import MarketHub

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "market"


def _events(frames: list[tuple[int, bytes]]) -> int:
    n = 0
    for _, raw in frames:
        obj = json.loads(raw)
        topic = obj.get("topic", "")
        if topic.startswith("orderbook."):
            n += len(obj["data"]["b"]) + len(obj["data"]["a"])
        elif topic.startswith("publicTrade."):
            n += len(obj["data"])
    return n


def _peer(frames: list[tuple[int, bytes]]) -> float:
    """Seconds for the plain-Python baseline over frames."""
    books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
    trades: list[tuple[int, Decimal, Decimal]] = []
    t0 = time.perf_counter()
    for _, raw in frames:
        obj = json.loads(raw)
        topic = obj.get("topic", "")
        if topic.startswith("orderbook."):
            d = obj["data"]
            bids, asks = books.setdefault(d["s"], ({}, {}))
            if obj["type"] == "snapshot":
                bids.clear()
                asks.clear()
            for side, book in ((d["b"], bids), (d["a"], asks)):
                for px, qty in side:
                    q = Decimal(qty)
                    if q == 0:
                        book.pop(Decimal(px), None)
                    else:
                        book[Decimal(px)] = q
            sorted(bids, reverse=True)[:50]
            sorted(asks)[:50]
        elif topic.startswith("publicTrade."):
            for t in obj["data"]:
                trades.append((t["T"], Decimal(t["p"]), Decimal(t["v"])))
    return time.perf_counter() - t0


def _mmd(frames: list[tuple[int, bytes]], symbols: list[str]) -> float:
    hub = MarketHub(symbols, MarketConfig())
    # set-up (instrument frames allocate each symbol's book and rings) is not timed
    for ts, raw in frames:
        if raw.startswith(b'{"retCode"'):
            hub.on_frame(raw, ts)
    t0 = time.perf_counter()
    for ts, raw in frames:
        hub.on_frame(raw, ts)
    dt = time.perf_counter() - t0
    assert hub.stats.decode_errors == 0
    assert sum(st.book_updates for st in hub.states.values()) > 0  # frames were applied
    return dt


def _mmd_quoting(frames: list[tuple[int, bytes]], symbols: list[str]) -> tuple[float, int]:
    """Seconds for the whole paper-trading pipeline (hub, features, paper exchange, a quote
    decision after every book frame, risk, order manager, portfolio); quote decisions made."""
    cfg = AppConfig(
        feed=FeedConfig(symbols=symbols),
        strategy=msgspec.structs.replace(StrategyConfig(), warmup_s=1e-9),
    )
    hub = MarketHub(symbols, cfg.market)
    trader = build_trader(cfg, hub, ledger=False)
    handler = FrameHandler(hub, None, None, trader, quote_inline=True)
    for ts, raw in frames:
        if raw.startswith(b'{"retCode"'):
            handler(raw, ts)
    t0 = time.perf_counter()
    for ts, raw in frames:
        handler(raw, ts)
    dt = time.perf_counter() - t0
    return dt, sum(s.decisions for s in trader.strategies.values())


def run(quick: bool) -> list[dict[str, Any]]:
    cf = DATA / "bybit_v5_linear_spot_2026-08-09_cryptofeed" / "BYBIT.jsonl"
    if not cf.exists():
        return [{"name": "replay_throughput.skipped_no_data", "skipped": 1}]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        recs: list[tuple[str, list[Path]]] = []
        cf_files = convert_cryptofeed(cf, Path(tmp) / "cf")
        recs.append(("bybit_cryptofeed_linear_4sym", [p for p in cf_files if "_linear_" in p.name]))
        sets = [("binance_usdm_btcusdt_2024", "binance_usdm_btcusdt_2024-07-18_19")]
        if not quick:
            sets += [
                ("binance_usdm_ethusdt_2024", "binance_usdm_ethusdt_2024-07-18_19"),
                ("binance_usdm_btcusdt_2023", "binance_usdm_btcusdt_2023-04-04_05"),
            ]
        for name, folder in sets:
            ins = sorted((DATA / folder).glob("*.gz"))
            out_dir = Path(tmp) / name
            out_dir.mkdir()
            recs.append((name, list(convert_binance_usdm(ins, out_dir))))
        for name, files in recs:
            frames = sorted((f for p in files for f in read_recording(p)), key=lambda x: x[0])
            symbols = sorted({meta.symbol for p in files if (meta := parse_recording_name(p))})
            assert symbols, files
            events = _events(frames)
            reps = 1 if quick else 3
            _mmd(frames[:200], symbols)  # compile/cache warm-up, not timed
            mmd_s = min(_mmd(frames, symbols) for _ in range(reps))
            peer_s = min(_peer(frames) for _ in range(reps))
            out.append(
                {
                    "name": f"replay_throughput.{name}",
                    "frames": len(frames),
                    "events": events,
                    "mmd_frames_per_s": round(len(frames) / mmd_s),
                    "mmd_events_per_s": round(events / mmd_s),
                    "mmd_ns_per_frame": round(mmd_s / len(frames) * 1e9),
                    "peer_frames_per_s": round(len(frames) / peer_s),
                    "peer_events_per_s": round(events / peer_s),
                    "ratio": round(peer_s / mmd_s, 2),
                }
            )
            _mmd_quoting(frames[:200], symbols)
            q_s, decisions = min(_mmd_quoting(frames, symbols) for _ in range(reps))
            out.append(
                {
                    "name": f"pipeline_with_trading.{name}",
                    "frames": len(frames),
                    "quote_decisions": decisions,
                    "mmd_frames_per_s": round(len(frames) / q_s),
                    "mmd_ns_per_frame": round(q_s / len(frames) * 1e9),
                    "trading_ns_per_decision": round((q_s - mmd_s) / max(decisions, 1) * 1e9),
                }
            )
    return out

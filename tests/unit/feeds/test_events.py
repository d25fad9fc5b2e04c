"""Event cache: hand-built recordings decoded into arrays, the book sync kernels, the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from mmd.feeds.book_sync import BookSync
from mmd.feeds.convert.event_cache import decode_events, load_events, open_events, save_events
from mmd.feeds.convert.frames import instruments_info_envelope
from mmd.feeds.recording import RecordingWriter
from mmd.feeds.replay import merged_frames
from mmd.kernels.book_sync import (
    SYNC_LAST_SEQ,
    SYNC_LAST_U,
    SYNC_SYNCED,
    SYNC_WIDTH,
    advance_book_sync,
    apply_book_frame,
)
from mmd.model import codes
from mmd.model.instrument import Instrument
from tests.book_oracle import replay_book_tops

MS = 1_000_000
# venue times are ms after T0 (2026-08-09 01:00 UTC): the codec refuses times before 2000
T0 = 1_786_237_200_000
BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
ETH = Instrument(symbol="ETHUSDT", tick_size="0.01", lot_size="0.01")


def _book(
    sym: str,
    typ: str,
    u: int,
    bids: list[list[str]],
    asks: list[list[str]],
    ts_ms: int,
    seq: int = 0,
) -> bytes:
    return orjson.dumps(
        {
            "topic": f"orderbook.50.{sym}",
            "type": typ,
            "ts": T0 + ts_ms,
            "data": {"s": sym, "b": bids, "a": asks, "u": u, "seq": seq},
            "cts": T0 + ts_ms - 1,
        }
    )


def _trades(sym: str, items: list[tuple[int, str, str, str, str]]) -> bytes:
    data = [
        {"T": T0 + t, "s": sym, "S": side, "v": v, "p": p, "i": i} for t, side, p, v, i in items
    ]
    return orjson.dumps({"topic": f"publicTrade.{sym}", "type": "snapshot", "ts": T0, "data": data})


def _write(path: Path, lines: list[tuple[int, bytes]]) -> Path:
    with RecordingWriter(path) as w:
        for ts, frame in lines:
            w.write(ts, frame)
    return path


def _btc_lines() -> list[tuple[int, bytes]]:
    kline = orjson.dumps(
        {
            "topic": "kline.1.BTCUSDT",
            "type": "snapshot",
            "ts": T0,
            "data": [
                {
                    "start": T0 + 1_000,
                    "open": "100.0",
                    "high": "100.5",
                    "low": "99.5",
                    "close": "100.2",
                    "volume": "3.5",
                    "confirm": False,
                }
            ],
        }
    )
    ticker = orjson.dumps(
        {
            "topic": "tickers.BTCUSDT",
            "type": "delta",
            "ts": T0,
            "data": {"symbol": "BTCUSDT", "fundingRate": "0.0001"},
        }
    )
    return [
        (10, instruments_info_envelope(BTC, 0)),
        (20, _book("BTCUSDT", "delta", 4, [["100.0", "9"]], [], 19)),  # before the snapshot
        (
            30,
            _book(
                "BTCUSDT",
                "snapshot",
                5,
                [["100.0", "1.0"], ["99.9", "2.0"]],
                [["100.1", "0.5"]],
                29,
                seq=50,
            ),
        ),
        (40, _book("BTCUSDT", "delta", 6, [["100.0", "0"]], [["100.2", "0.25"]], 39)),
        (
            50,
            _trades(
                "BTCUSDT",
                [(45, "Buy", "100.1", "0.002", "t1"), (46, "Sell", "100.0", "0.003", "t2")],
            ),
        ),
        (
            60,
            _trades(
                "BTCUSDT",
                [
                    (46, "Sell", "100.0", "0.003", "t2"),  # duplicate id
                    (47, "Buy", "100.1", "0", "t3"),
                ],
            ),
        ),  # size 0: frame refused
        (70, b'{"topic":"orderbook.50.BTCUSDT","type":'),  # cut line: not JSON
        (80, kline),
        (90, ticker),
        (100, b'{"success":true,"ret_msg":"pong","op":"ping"}'),
        (110, _book("ETHUSDT", "delta", 1, [["1.0", "1"]], [], 109)),  # other symbol
        (120, _book("BTCUSDT", "delta", 8, [["99.8", "1"]], [], 119)),  # gap (u 7 lost)
        (130, _book("BTCUSDT", "snapshot", 9, [["99.9", "1.5"]], [["100.1", "-1"]], 129)),
        (140, _book("BTCUSDT", "snapshot", 10, [["99.9", "1.5"]], [["100.1", "1"]], 139)),
    ]


def test_decode_hand_built_recording(tmp_path: Path) -> None:
    rec = _write(tmp_path / "btc.rec.gz", _btc_lines())
    ev = decode_events([rec])
    assert ev.symbols == [("linear", "BTCUSDT")]
    assert ev.meta["frames"] == 14
    # the cut line, and the trade frame with a size-0 item (the codec refuses a frame whole)
    assert ev.meta["decode_errors"] == 2
    # pong, the ETH frame: well formed but not for this symbol's state
    assert ev.meta["skipped"] == 2
    assert ev.meta["refused"] == 0  # nothing the codec passed was refused afterwards
    # stream: instrument, 2 book frames, 2 trades, kline, ticker, 3 book frames
    assert ev.ev_kind.tolist() == [
        codes.EV_INSTRUMENT,
        codes.EV_BOOK,
        codes.EV_BOOK,
        codes.EV_BOOK,
        codes.EV_TRADE,
        codes.EV_TRADE,
        codes.EV_KLINE,
        codes.EV_TICKER,
        codes.EV_BOOK,
        codes.EV_BOOK,
        codes.EV_BOOK,
    ]
    assert ev.ev_frame.tolist() == [0, 1, 2, 3, 4, 4, 7, 8, 11, 12, 13]
    assert ev.ev_ts_recv_ns.tolist() == [10, 20, 30, 40, 50, 50, 80, 90, 120, 130, 140]
    # book frames: u, flags, rows. 100.0 / 0.1 = 1000 ticks, 1.0 / 0.001 = 1000 lots
    assert ev.book_u.tolist() == [4, 5, 6, 8, 9, 10]
    snap, bad = codes.BOOK_SNAPSHOT, codes.BOOK_BAD
    assert ev.book_flags.tolist() == [0, snap, 0, 0, snap | bad, snap]
    assert ev.book_seq.tolist() == [0, 50, 0, 0, 0, 0]
    assert ev.book_ts_exch_ns.tolist() == [
        (T0 + ms) * MS for ms in (18, 28, 38, 118, 128, 138)
    ]  # cts = ts - 1 ms
    assert ev.book_row.tolist() == [0, 1, 4, 6, 7, 7]
    assert ev.book_ask_row.tolist() == [1, 3, 5, 7, 7, 8]
    assert ev.book_end.tolist() == [1, 4, 6, 7, 7, 9]
    assert ev.level_px_ticks.tolist() == [1000, 1000, 999, 1001, 1000, 1002, 998, 999, 1001]
    assert ev.level_qty_lots.tolist() == [9000, 1000, 2000, 500, 0, 250, 1000, 1500, 1000]
    b, s = codes.BUY, codes.SELL
    assert ev.level_side.tolist() == [b, b, b, s, b, s, b, b, s]
    assert ev.level_frame.tolist() == [0, 1, 1, 1, 2, 2, 3, 5, 5]
    start, end = codes.BOOK_FRAME_START, codes.BOOK_FRAME_END
    assert ev.level_flags.tolist() == [
        start | end,
        snap | start,
        snap,
        snap | end,
        start,
        end,
        start | end,
        snap | start,
        snap | end,
    ]
    assert ev.level_u.tolist() == [4, 5, 5, 5, 6, 6, 8, 10, 10]
    # trades: t2's repeat is dropped, t3 refused; 100.1 -> 1001 ticks, 0.002 -> 2 lots
    assert ev.trade_px_ticks.tolist() == [1001, 1000]
    assert ev.trade_qty_lots.tolist() == [2, 3]
    assert ev.trade_side.tolist() == [b, s]
    assert ev.trade_ts_exch_ns.tolist() == [(T0 + 45) * MS, (T0 + 46) * MS]
    assert ev.kline_start_ns.tolist() == [(T0 + 1_000) * MS]
    assert ev.kline_close.tolist() == [100.2]
    assert ev.kline_volume.tolist() == [3.5]
    assert ev.ticker_funding_rate.tolist() == [0.0001]
    assert ev.ticker_next_funding_ns.tolist() == [-1]
    assert np.isnan(ev.ticker_mark_price[0])
    assert ev.inst_flags.tolist() == [codes.INST_NEW]
    assert ev.instrument(0) == Instrument(
        symbol="BTCUSDT", category="linear", tick_size="0.1", lot_size="0.001"
    )


def _walk(ev: object, capacity: int = 50, n_top: int = 3) -> tuple[np.ndarray, np.ndarray]:
    n_sym, n_fr = len(ev.symbols), len(ev.book_sym)  # type: ignore[attr-defined]
    books_px = np.zeros((n_sym, 2, capacity), np.int64)
    books_qty = np.zeros((n_sym, 2, capacity), np.int64)
    states = np.zeros((n_sym, SYNC_WIDTH), np.int64)
    top = np.zeros((n_fr, 4, n_top), np.int64)
    state = np.zeros((n_fr, 4), np.int64)
    replay_book_tops(
        books_px,
        books_qty,
        states,
        ev.stream_table(),  # type: ignore[attr-defined]
        ev.book_table(),
        np.ascontiguousarray(ev.level_px_ticks),  # type: ignore[attr-defined]
        np.ascontiguousarray(ev.level_qty_lots),  # type: ignore[attr-defined]
        np.ascontiguousarray(ev.inst_flags),
        top,
        state,
    )  # type: ignore[attr-defined]
    return top, state


def test_reference_loop_applies_hub_sync_rules(tmp_path: Path) -> None:
    ev = decode_events([_write(tmp_path / "btc.rec.gz", _btc_lines())])
    top, state = _walk(ev)
    # delta before any snapshot: dropped; snapshot; delta u=6; gap u=8 (7 lost): resync;
    # snapshot with a negative size: bad frame; the next snapshot resyncs
    assert state[:, 0].tolist() == [
        codes.SYNC_DROP,
        codes.SYNC_APPLY_SNAPSHOT,
        codes.SYNC_APPLY_DELTA,
        codes.SYNC_RESYNC,
        codes.SYNC_BAD_FRAME,
        codes.SYNC_APPLY_SNAPSHOT,
    ]
    assert state[:, 1].tolist() == [0, 1, 1, 0, 0, 1]
    # after the delta: bid 100.0 deleted -> best bid 99.9 (999 ticks, 2000 lots);
    # asks 100.1 x 0.5 and 100.2 x 0.25
    assert top[2].tolist() == [[999, 0, 0], [2000, 0, 0], [1001, 1002, 0], [500, 250, 0]]
    # the gap and the bad frame leave the levels as they were
    assert (top[3] == top[2]).all() and (top[4] == top[2]).all()
    assert top[5].tolist() == [[999, 0, 0], [1500, 0, 0], [1001, 0, 0], [1000, 0, 0]]


def test_sync_kernel_matches_book_sync() -> None:
    # (is_snapshot, from_rest, u, seq): every branch of BookSync
    steps = [
        (False, False, 3, 0),
        (True, False, 10, 100),
        (False, False, 11, 101),
        (False, False, 11, 101),
        (False, False, 9, 99),
        (False, False, 13, 103),
        (False, False, 14, 104),
        (True, True, 20, 90),
        (True, False, 1, 5),
        (True, True, 30, 4),
        (True, True, 31, 6),
        (False, False, 32, 7),
    ]
    py = BookSync()
    state = np.zeros(SYNC_WIDTH, np.int64)
    state[SYNC_LAST_U] = state[SYNC_LAST_SEQ] = -1
    for snap, rest, u, seq in steps:
        want = py.on_snapshot(u, seq, from_rest=rest) if snap else py.on_delta(u, seq)
        flags = (codes.BOOK_SNAPSHOT if snap else 0) | (codes.BOOK_REST if rest else 0)
        got = advance_book_sync(state, flags, u, seq)
        assert got == int(want), (snap, rest, u, seq)
        assert (state[SYNC_LAST_U], state[SYNC_LAST_SEQ], bool(state[SYNC_SYNCED])) == (
            py.last_u,
            py.last_seq,
            py.synced,
        )


def test_crossed_frame_is_kept_but_unsyncs() -> None:
    book_px = np.zeros((2, 4), np.int64)
    book_qty = np.zeros((2, 4), np.int64)
    state = np.array([-1, -1, 0, 0, 0], np.int64)
    px = np.array([100, 101], np.int64)  # bid 100, ask 101
    qty = np.array([1, 1], np.int64)
    assert (
        apply_book_frame(book_px, book_qty, state, codes.BOOK_SNAPSHOT, 1, 0, px, qty, 1)
        == codes.SYNC_APPLY_SNAPSHOT
    )
    # a bid at 102 crosses the ask at 101
    got = apply_book_frame(
        book_px, book_qty, state, 0, 2, 0, np.array([102], np.int64), np.array([1], np.int64), 1
    )
    assert got == codes.SYNC_CROSSED
    assert state[SYNC_SYNCED] == 0 and book_px[0, 0] == 102
    assert (
        apply_book_frame(book_px, book_qty, state, 0, 3, 0, px[:0], qty[:0], 0) == codes.SYNC_DROP
    )


def test_merge_order_equals_replay_and_instrument_change(tmp_path: Path) -> None:
    btc = _write(
        tmp_path / "a.rec.gz",
        [
            (10, instruments_info_envelope(BTC, 0)),
            (30, _trades("BTCUSDT", [(1, "Buy", "100.0", "0.001", "x")])),
            (50, instruments_info_envelope(BTC, 0)),  # same steps: no row, memory kept
            (60, _trades("BTCUSDT", [(2, "Buy", "100.0", "0.001", "x")])),  # duplicate
            (
                70,
                instruments_info_envelope(
                    Instrument(symbol="BTCUSDT", tick_size="0.5", lot_size="0.001"), 0
                ),
            ),
            (80, _trades("BTCUSDT", [(3, "Buy", "100.0", "0.001", "x")])),  # memory forgotten
        ],
    )
    eth = _write(
        tmp_path / "b.rec.gz",
        [
            (10, instruments_info_envelope(ETH, 0)),  # tie with a.rec.gz's first line
            (20, _trades("ETHUSDT", [(1, "Sell", "2.5", "0.02", "e")])),
            (60, _trades("ETHUSDT", [(2, "Sell", "2.5", "0.02", "f")])),  # tie at 60
        ],
    )
    ev = decode_events([btc, eth])
    order = [ts for ts, _ in merged_frames([btc, eth])]
    assert order == [10, 10, 20, 30, 50, 60, 60, 70, 80]  # ties: the first file first
    # line 4 (same steps) and line 5 (a repeated trade id) leave no event
    assert ev.ev_frame.tolist() == [0, 1, 2, 3, 6, 7, 8]
    assert ev.ev_sym.tolist() == [0, 1, 1, 0, 1, 0, 0]
    assert ev.ev_kind.tolist() == [
        codes.EV_INSTRUMENT,
        codes.EV_INSTRUMENT,
        codes.EV_TRADE,
        codes.EV_TRADE,
        codes.EV_TRADE,
        codes.EV_INSTRUMENT,
        codes.EV_TRADE,
    ]
    assert ev.inst_flags.tolist() == [codes.INST_NEW, codes.INST_NEW, codes.INST_CHANGED]
    # ETH 2.5 / 0.01 = 250 ticks; BTC 100.0 / 0.1 = 1000, then 100.0 / 0.5 = 200
    assert ev.trade_px_ticks.tolist() == [250, 1000, 250, 200]
    assert ev.trade_qty_lots.tolist() == [2, 1, 2, 1]


def test_cache_reused_until_a_recording_changes(tmp_path: Path) -> None:
    rec = _write(tmp_path / "btc.rec.gz", _btc_lines())
    cache = tmp_path / "cache"
    first = load_events([rec], cache)
    assert not first.cache_hit and first.path is not None
    assert isinstance(first.level_px_ticks, np.memmap)
    entry = first.path
    stamps = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}
    second = load_events([rec], cache)
    assert second.cache_hit and second.path == entry
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamps
    assert (second.level_px_ticks == first.level_px_ticks).all()
    # copy-on-write: writable in the process, the file keeps its bytes
    second.level_px_ticks[0] = -7
    assert open_events(entry).level_px_ticks[0] == 1000
    assert second.meta["recordings"][0]["path"] == str(rec)
    # one more line: another digest, another entry, decoded again
    _write(rec, [(150, _book("BTCUSDT", "delta", 11, [["99.8", "1"]], [], 149))])
    third = load_events([rec], cache)
    assert not third.cache_hit and third.path != entry
    assert len(third.book_u) == len(first.book_u) + 1
    assert third.meta["recordings"][0]["sha256"] != second.meta["recordings"][0]["sha256"]
    entries = sorted(p.name for p in cache.iterdir() if p.is_dir())
    assert entries == sorted([entry.name, third.path.name])  # no partial directories left
    fourth = load_events([rec], cache)
    assert fourth.cache_hit and fourth.path == third.path


def test_convert_events_cli(tmp_path: Path) -> None:
    rec = _write(tmp_path / "btc.rec.gz", _btc_lines())
    out = tmp_path / "btc.events"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "mmd", "convert", "events", str(rec), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "14 frames -> 11 events" in done.stdout
    ev = open_events(out)
    assert ev.book_u.tolist() == [4, 5, 6, 8, 9, 10]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "convert",
            "events",
            str(tmp_path / "missing.rec.gz"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "no such file" in bad.stderr
    # an --out that is not an event cache is never replaced
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    refused = subprocess.run(
        [sys.executable, "-m", "mmd", "convert", "events", str(rec), "--out", str(keep)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2 and "not an event cache" in refused.stderr
    assert (keep / "notes.txt").read_text() == "mine"
    # converting again over its own output is fine
    again = subprocess.run(
        [sys.executable, "-m", "mmd", "convert", "events", str(rec), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr


def test_not_a_recording_is_refused(tmp_path: Path) -> None:
    junk = _write(tmp_path / "junk.rec.gz", [(1, b'{"op":"pong"}')])
    with pytest.raises(ValueError, match="not a recording"):
        load_events([junk], tmp_path / "cache")


def test_refresh_decodes_again_and_a_finished_entry_is_kept(tmp_path: Path) -> None:
    rec = _write(tmp_path / "btc.rec.gz", _btc_lines())
    cache = tmp_path / "cache"
    first = load_events([rec], cache)
    again = load_events([rec], cache, refresh=True)
    assert not again.cache_hit and again.path == first.path
    # a second writer of the same entry (a concurrent process) leaves the first one's files
    other = decode_events(
        [_write(tmp_path / "eth.rec.gz", [(10, instruments_info_envelope(ETH, 0))])]
    )
    assert again.path is not None
    save_events(other, again.path, replace=False)
    assert open_events(again.path).symbols == [("linear", "BTCUSDT")]
    save_events(other, again.path)
    assert open_events(again.path).symbols == [("linear", "ETHUSDT")]

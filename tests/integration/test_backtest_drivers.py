"""The jitted backtest loop against the Python driver of the same kernels.

The Python side walks the event cache frame by frame, keeps each book with the same book-sync
kernel, feeds SimExchange (the wrapper a live run uses) every synced book frame and every
trade, and sends quotes of its own (every 40th synced book frame: cancel the last pair, join
both touches with QTY lots). Its commands are written to a tape; the jitted loop replays the tape
over the same stream and must produce the very same fills, position and cash.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mmd.config import ExchangeConfig
from mmd.feeds.convert.event_cache import load_events
from mmd.kernels import backtest as kb
from mmd.kernels.book_sync import (
    SYNC_N_ASKS,
    SYNC_N_BIDS,
    SYNC_SYNCED,
    SYNC_WIDTH,
    apply_book_frame,
    reset_book_sync,
)
from mmd.kernels.exchange import CMD_CANCEL, CMD_SUBMIT
from mmd.model.codes import BUY, EV_BOOK, EV_INSTRUMENT, EV_TRADE, INST_CHANGED, INST_NEW, SELL
from mmd.model.events import CancelOrder, OrderFilled, SubmitOrder
from mmd.sim.exchange import SimExchange
from tests.tape_replay import TAPE_WIDTH, run_tape_fast

CAP = 1000  # book levels per side (the converted Binance books hold up to 1000)
EVERY = 40
ENTRY_NS = 5_000_000
CANCEL_NS = 3_000_000
QTY = 5  # lots: big enough that trades fill part of it (partial fills on)


def _python_driver(ev, cfg: ExchangeConfig, max_events: int):
    sym_names = [s for _, s in ev.symbols]
    insts = {}
    for row, s in enumerate(ev.inst_sym.tolist()):
        insts.setdefault(sym_names[s], ev.instrument(row))
    sim = SimExchange(cfg, insts, entry_latency_ns=ENTRY_NS, cancel_latency_ns=CANCEL_NS)
    n_sym = len(sym_names)
    px = np.zeros((n_sym, 2, CAP), np.int64)
    qty = np.zeros_like(px)
    states = np.zeros((n_sym, SYNC_WIDTH), np.int64)
    books = [
        SimpleNamespace(
            bid_px=px[s, 0],
            bid_qty=qty[s, 0],
            ask_px=px[s, 1],
            ask_qty=qty[s, 1],
            n_bids=0,
            n_asks=0,
            capacity=CAP,
        )
        for s in range(n_sym)
    ]
    frames = ev.book_table()
    fills: list[tuple] = []
    tape: list[list[int]] = []
    ids = {"n": 0}
    live: list[list[int]] = [[] for _ in range(n_sym)]
    synced_frames = 0
    kinds, syms, idxs = ev.ev_kind, ev.ev_sym, ev.ev_idx
    for i in range(min(len(kinds), max_events)):
        kind, s, idx = int(kinds[i]), int(syms[i]), int(idxs[i])
        name = sym_names[s]
        out = []
        if kind == EV_INSTRUMENT:
            if ev.inst_flags[idx] & (INST_NEW | INST_CHANGED):
                reset_book_sync(states[s])
        elif kind == EV_BOOK:
            f = frames[idx]
            r0, ra, r1 = int(f[3]), int(f[4]), int(f[5])
            apply_book_frame(
                px[s],
                qty[s],
                states[s],
                f[0],
                f[1],
                f[2],
                ev.level_px_ticks[r0:r1],
                ev.level_qty_lots[r0:r1],
                ra - r0,
            )
            if not states[s, SYNC_SYNCED]:
                continue
            b = books[s]
            b.n_bids = int(states[s, SYNC_N_BIDS])
            b.n_asks = int(states[s, SYNC_N_ASKS])
            ts = int(ev.book_ts_exch_ns[idx])
            out = sim.on_book(name, b, ts)
            synced_frames += 1
            if synced_frames % EVERY == 0 and b.n_bids and b.n_asks:
                for oid in live[s]:
                    tape.append([i, CMD_CANCEL, s, oid, 0, 0, 0, ts])
                    sim.send(CancelOrder(client_order_id=str(oid), symbol=name), ts)
                live[s] = []
                for side, p in ((BUY, int(px[s, 0, 0])), (SELL, int(px[s, 1, 0]))):
                    ids["n"] += 1
                    oid = ids["n"]
                    tape.append([i, CMD_SUBMIT, s, oid, side, p, QTY, ts])
                    sim.send(
                        SubmitOrder(
                            client_order_id=str(oid),
                            symbol=name,
                            side=side,
                            px_ticks=p,
                            qty_lots=QTY,
                        ),
                        ts,
                    )
                    live[s].append(oid)
        elif kind == EV_TRADE:
            out = sim.on_trade(
                name,
                int(ev.trade_ts_exch_ns[idx]),
                int(ev.trade_px_ticks[idx]),
                int(ev.trade_qty_lots[idx]),
                int(ev.trade_side[idx]),
            )
        for e in out:
            if isinstance(e, OrderFilled):
                fills.append(
                    (
                        e.ts_exch_ns,
                        s,
                        int(e.client_order_id.split("#")[0]),
                        e.side,
                        e.px_ticks,
                        e.qty_lots,
                        e.leaves_lots,
                        e.fee_quote,
                    )
                )
    return fills, np.array(tape, np.int64).reshape(-1, TAPE_WIDTH)


@pytest.mark.parametrize("partial", [True, False])
@pytest.mark.parametrize(
    "fixture", ["binance_btc_rec", "binance_eth_rec", "binance_btc_2023_rec", "cryptofeed_dir"]
)
def test_tape_replay_matches_python_driver(
    fixture: str, partial: bool, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    rec: Path = request.getfixturevalue(fixture)
    files = sorted(rec.glob("*")) if rec.is_dir() else [rec]
    if fixture == "cryptofeed_dir":
        files = [f for f in files if "linear" in f.name]
        if not files:
            pytest.skip("no linear recording in the Bybit capture")
    ev = load_events(files, tmp_path / "cache")
    cfg = ExchangeConfig(partial_fills=partial)
    n = min(len(ev.ev_kind), 300_000)
    want, tape = _python_driver(ev, cfg, n)
    assert len(tape) > 20  # the driver did quote
    assert len(want) > 0, "no fills: the comparison would be empty"
    print(f"{fixture}: {len(tape)} commands, {len(want)} fills")
    sub = dataclasses.replace(
        ev, ev_kind=ev.ev_kind[:n], ev_sym=ev.ev_sym[:n], ev_idx=ev.ev_idx[:n]
    )
    got = run_tape_fast(
        sub, cfg, tape, entry_latency_ns=ENTRY_NS, cancel_latency_ns=CANCEL_NS, book_capacity=CAP
    )
    rows = [(*(int(x) for x in r), float(f)) for r, f in zip(got.fills, got.fees, strict=True)]
    assert rows == want
    if partial and fixture != "cryptofeed_dir":  # the 44 s capture has too few trades
        assert any(w[6] > 0 for w in want), "no partial fill: that path went untested"
    for s in range(len(ev.symbols)):
        signed = sum(w[3] * w[5] for w in want if w[1] == s)
        cash = -sum(w[3] * w[5] * w[4] for w in want if w[1] == s)
        assert int(got.positions[s]["position_lots"]) == signed
        assert int(got.positions[s]["cash_ticks_lots"]) == cash
        assert got.positions[s]["fees_quote"] == pytest.approx(
            sum(w[7] for w in want if w[1] == s), abs=0
        )


# --- the whole loop (strategy inside) against `mmd backtest --engine python` -----------------


def _trader_run(cfg, files: list[Path], symbol: str, category: str):
    """What `mmd backtest --engine python` runs for one symbol: FrameHandler + MarketHub +
    Trader, quoting after every book frame on the frame's receive time."""
    import msgspec

    from mmd import app
    from mmd.feeds.replay import merged_frames
    from mmd.frames import FrameHandler
    from mmd.market.hub import MarketHub

    run_cfg = msgspec.structs.replace(
        cfg, feed=msgspec.structs.replace(cfg.feed, category=category, symbols=[symbol])
    )
    hub = MarketHub([symbol], run_cfg.market, features_cfg=run_cfg.features)
    trader = app.build_trader(run_cfg, hub, ledger=False)
    handler = FrameHandler(hub, None, None, trader, quote_inline=True)
    for ts, raw in merged_frames(sorted(files)):
        handler(raw, ts)
    return trader


def _loop_cfg(model: str, partial: bool, **strategy):
    import msgspec

    from mmd.config import AppConfig

    cfg = AppConfig()
    return msgspec.structs.replace(
        cfg,
        strategy=msgspec.structs.replace(cfg.strategy, model=model, **strategy),
        exchange=msgspec.structs.replace(cfg.exchange, partial_fills=partial, funding=False),
    )


def _compare_loop(files: list[Path], cfg, cache: Path):
    """Run both drivers on one symbol's recordings; assert the same fills (time, client id,
    side, price, size, leaves, fee), position, cash, fees, PnL, quoting decisions and kill
    switch. Returns (fills, partial fills, the Python driver's Trader)."""
    import msgspec

    from mmd.sim.backtest import run_backtest_fast, unsupported

    ev = load_events(files, cache)
    assert unsupported(ev, cfg) is None
    category, symbol = ev.symbols[0]
    if cfg.exchange.partial_fills:  # 5-lot quotes: trades smaller than them fill part
        lot = ev.instrument(0).lot
        cfg = msgspec.structs.replace(
            cfg,
            strategy=msgspec.structs.replace(
                cfg.strategy, order_size=5 * lot, max_position=50 * lot
            ),
        )
    trader = _trader_run(cfg, files, symbol, category)
    got = run_backtest_fast(ev, cfg)
    want = [
        (
            f.ts_exch_ns,
            f.client_order_id,
            f.side,
            f.px_ticks,
            f.qty_lots,
            f.leaves_lots,
            f.fee_quote,
        )
        for f in trader.fills
    ]
    rows = [
        (
            int(r[kb.FILL_TS_NS]),
            cid,
            int(r[kb.FILL_SIDE]),
            int(r[kb.FILL_PX]),
            int(r[kb.FILL_QTY]),
            int(r[kb.FILL_LEAVES]),
            float(fee),
        )
        for r, cid, fee in zip(got.fills, got.client_ids, got.fees, strict=True)
    ]
    assert rows == want
    pos = trader.portfolio.position(symbol)
    p = got.positions[0]
    assert int(p["position_lots"]) == pos.position_lots
    assert int(p["cash_ticks_lots"]) == pos.cash_ticks_lots
    assert float(p["fees_quote"]) == pos.fees_quote
    assert got.total_pnl_quote == trader.portfolio.total_pnl_quote  # bit for bit
    strat = trader.strategies[symbol]
    assert int(got.decisions[0]) == strat.decisions
    c = trader.oms.counters
    assert (int(got.submits[0]), int(got.cancels[0])) == (c.submitted, c.cancel_requests)
    assert got.halted == trader.risk.halted
    print(
        f"{symbol} {cfg.strategy.model} partial={cfg.exchange.partial_fills}: "
        f"{len(want)} fills, {strat.decisions} decisions, pnl {got.total_pnl_quote:.6g}"
    )
    return len(want), sum(1 for w in want if w[5] > 0), trader


@pytest.mark.parametrize("partial", [True, False])
@pytest.mark.parametrize("model", ["as", "glft"])
@pytest.mark.parametrize(
    "fixture", ["binance_btc_rec", "binance_eth_rec", "binance_btc_2023_rec", "cryptofeed_dir"]
)
def test_strategy_loop_matches_python_engine(
    fixture: str, model: str, partial: bool, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    rec: Path = request.getfixturevalue(fixture)
    if fixture == "cryptofeed_dir":
        groups = [[f] for f in sorted(rec.glob("*linear*"))]
        if not groups:
            pytest.skip("no linear recording in the Bybit capture")
        # the 44 s capture: a short warm-up and fallbacks that quote at the touch (kappa 10/tick:
        # a 0.2-tick model spread; sigma 0.5 ticks/sqrt(s): a sub-tick inventory term), so
        # that the quotes get filled
        import msgspec

        from mmd.config import CalibrationConfig

        cal = CalibrationConfig(fallback_kappa=10.0, fallback_sigma=0.5)
        cfg = _loop_cfg(model, partial, warmup_s=2.0)
        cfg = msgspec.structs.replace(
            cfg, strategy=msgspec.structs.replace(cfg.strategy, calibration=cal)
        )
    else:
        groups = [[rec]]
        cfg = _loop_cfg(model, partial)
    n_fills = n_partial = 0
    for files in groups:
        f, p, _ = _compare_loop(files, cfg, tmp_path / "cache")
        n_fills += f
        n_partial += p
    if fixture != "cryptofeed_dir":
        assert n_fills > 20, "too few fills: the comparison would say little"
        if partial:
            assert n_partial > 0, "no partial fill: that path went untested"


def test_strategy_loop_kill_switch_ladder_constant_latency(
    binance_btc_rec: Path, tmp_path: Path
) -> None:
    """The paths the default config leaves quiet: a 2-level ladder, constant latencies, a
    rate limit that refuses orders and a kill switch that trips."""
    import msgspec

    cfg = _loop_cfg("as", True, levels=2, level_spacing_ticks=2)
    cfg = msgspec.structs.replace(
        cfg,
        exchange=msgspec.structs.replace(cfg.exchange, entry_latency_ms=3.0, cancel_latency_ms=1.0),
        risk=msgspec.structs.replace(cfg.risk, max_loss_per_day=0.5, max_orders_per_s=2.0),
    )
    _, _, trader = _compare_loop([binance_btc_rec], cfg, tmp_path / "cache")
    assert trader.risk.halted, "the kill switch did not trip: that path went untested"
    assert trader.risk.rejections["rate_limit"] > 0, "no order refused by the rate limit"


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    from procs import base_env

    env = {**base_env(), "MMD_EVENT_CACHE": str(tmp_path / "events")}
    return subprocess.run(
        [sys.executable, "-m", "mmd", "backtest", *args, "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=os.fspath(tmp_path),
    )


@pytest.mark.parametrize("model", ["as", "glft"])
def test_backtest_cli_fast_engine_equals_python_engine(
    model: str, binance_eth_rec: Path, tmp_path: Path
) -> None:
    """`mmd backtest` prints the same summary and writes the same summary.json, report files
    and --fills CSV with either engine."""
    out = {}
    for engine in ("fast", "python"):
        d = tmp_path / engine
        r = _cli(
            [
                str(binance_eth_rec),
                "--strategy",
                model,
                "--engine",
                engine,
                "--report",
                str(d),
                "--fills",
                str(tmp_path / f"{engine}.csv"),
            ],
            tmp_path,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        assert "backtest_engine_python" not in r.stdout + r.stderr
        table = r.stdout.split("report written")[0]
        out[engine] = (
            table,
            json.loads((d / "summary.json").read_text()),
            (tmp_path / f"{engine}.csv").read_text(),
            d,
        )
    fast, slow = out["fast"], out["python"]
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[1]["fills"] > 20
    assert fast[2] == slow[2]
    for f in sorted(slow[3].iterdir()):
        assert (fast[3] / f.name).read_bytes() == f.read_bytes(), f.name


def test_backtest_cli_falls_back_with_one_log_line(cryptofeed_dir: Path, tmp_path: Path) -> None:
    """A --start-ns window is not in the fast loop: the run goes to the python engine, and one
    log line says why; without the window the fast engine runs it (no such line)."""
    rec = next(cryptofeed_dir.glob("bybit_linear_BTCUSDT_*.rec.gz"))
    r = _cli([str(rec), "--start-ns", "0"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    logs = [ln for ln in (r.stdout + r.stderr).splitlines() if "backtest_engine_python" in ln]
    assert len(logs) == 1 and "window" in logs[0]
    r = _cli([str(rec)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "backtest_engine_python" not in r.stdout + r.stderr

"""Backtest tape replay: events/s of the jitted loop (mmd.kernels.backtest.run_tape: book sync
and apply, paper exchange, portfolio, in one call) against the Python driver of the same
kernels (SimExchange fed frame by frame, as tests/integration/test_backtest_drivers.py drives it,
which also writes the command tape both replay). Same events, same commands, same fills.

`tape_events_per_s` counts stream rows (book frames, trades, klines, tickers, instruments);
the jitted figure is the min over several warm runs (compile excluded); the Python figure is one
warm run (it includes the strategy-free quoting that writes the tape, a few µs per 40 frames).
Against hftbacktest 2.4.4 (when installed; single-symbol sets run in full): `ratio` =
mmd level-and-trade rows/s over peer rows/s (its `mmd convert hftbacktest` rows of the same
recording), peer = its tutorial-style @njit loop with the same rule on a time grid of as many
decisions, same queue model, partial fills, latency and fees; mmd time includes building its
state, the peer time only the loop. No strategy computation on either side.
`--quick`: the 44 s Bybit capture (linear symbols); otherwise also the first 300,000 stream rows
of the Binance BTCUSDT 2024 recording. Without the shared data the benchmark reports `skipped`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

from mmd.config import ExchangeConfig
from mmd.feeds.convert import convert_binance_usdm, convert_cryptofeed
from mmd.feeds.events import load_events
from mmd.sim.backtest import run_tape_fast

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "market"


def _driver_module():
    path = ROOT / "tests" / "integration" / "test_backtest_drivers.py"
    spec = importlib.util.spec_from_file_location("_mmd_backtest_drivers", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _measure(name: str, files: list[Path], cache: Path, limit: int, reps: int) -> dict[str, Any]:
    drv = _driver_module()
    ev = load_events(files, cache)
    n = min(len(ev.ev_kind), limit)
    ev = dataclasses.replace(ev, ev_kind=ev.ev_kind[:n], ev_sym=ev.ev_sym[:n],
                             ev_idx=ev.ev_idx[:n])
    cfg = ExchangeConfig(partial_fills=True)
    drv._python_driver(ev, cfg, min(n, 500))  # load the kernels the wrapper calls: not timed
    t0 = time.perf_counter()
    want, tape = drv._python_driver(ev, cfg, n)
    py_s = time.perf_counter() - t0

    def fast() -> Any:
        return run_tape_fast(ev, cfg, tape, entry_latency_ns=drv.ENTRY_NS,
                             cancel_latency_ns=drv.CANCEL_NS, book_capacity=drv.CAP)

    t0 = time.perf_counter()
    got = fast()  # compile or load the cached kernels
    first_s = time.perf_counter() - t0
    fast_s = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        got = fast()
        fast_s = min(fast_s, time.perf_counter() - t0)
    assert len(got.fills) == len(want), "the drivers disagree: see test_backtest_drivers"
    rows = len(ev.level_px_ticks) + len(ev.trade_px_ticks)
    peer: dict[str, Any] = {}
    if n == len(ev.ev_kind) and len(ev.symbols) == 1:
        try:
            peer = _peer(files, ev, len(tape), drv.ENTRY_NS, cfg, reps)
        except ImportError:
            peer = {}
    extra: dict[str, Any] = {}
    if peer:
        extra = {"peer_events_per_s": round(peer["peer_rows"] / peer["peer_s"]),
                 "peer_rows": peer["peer_rows"],
                 "ratio": round((rows / fast_s) / (peer["peer_rows"] / peer["peer_s"]), 3)}
    return {
        "name": f"backtest_tape.{name}",
        "events": n,
        "commands": len(tape),
        "fills": len(want),
        "mmd_events_per_s": round(n / fast_s),
        "python_events_per_s": round(n / py_s),
        "ratio_vs_python": round(py_s / fast_s, 1),
        "first_call_s": round(first_s, 3),
        "rows": rows,
        "mmd_rows_per_s": round(rows / fast_s),
        **extra,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    cf = DATA / "bybit_v5_linear_spot_2026-08-09_cryptofeed" / "BYBIT.jsonl"
    if not cf.exists():
        return [{"name": "backtest_tape", "skipped": 1, "reason": "../shared/data not present"}]
    out = []
    reps = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        linear = [f for f in sorted(convert_cryptofeed(cf, Path(tmp) / "cf")) if "linear" in f.name]
        sets: list[tuple[str, list[Path], int]] = [("bybit_cryptofeed_linear", linear, 10**9)]
        if not quick:
            d = Path(tmp) / "btc"
            d.mkdir()
            ins = sorted((DATA / "binance_usdm_btcusdt_2024-07-18_19").glob("*.gz"))
            sets.append(("binance_usdm_btcusdt_2024", list(convert_binance_usdm(ins, d)),
                         300_000))
        for name, files, limit in sets:
            out.append(_measure(name, files, Path(tmp) / "cache", limit, reps))
    return out


def _hbt_loop_fn():
    """hftbacktest's tutorial-style @njit loop with the tape's rule: on a fixed time grid,
    cancel the resting pair and join both touches (GTX limit orders)."""
    from hftbacktest.order import GTX, LIMIT
    from numba import njit

    @njit
    def loop(hbt, step_ns, qty, tick):  # type: ignore[no-untyped-def]
        oid = 0
        steps = 0
        while hbt.elapse(step_ns) == 0:
            hbt.clear_inactive_orders(0)
            values = hbt.orders(0).values()
            while values.has_next():
                o = values.get()
                if o.cancellable:
                    hbt.cancel(0, o.order_id, False)
            depth = hbt.depth(0)
            bb = depth.best_bid_tick
            ba = depth.best_ask_tick
            if bb < ba:
                oid += 1
                hbt.submit_buy_order(0, oid, bb * tick, qty, GTX, LIMIT, False)
                oid += 1
                hbt.submit_sell_order(0, oid, ba * tick, qty, GTX, LIMIT, False)
            steps += 1
        return steps

    return loop


def _peer(files: list[Path], ev: Any, n_commands: int, entry_ns: int,
          cfg: ExchangeConfig, reps: int) -> dict[str, Any]:
    """hftbacktest 2.4.4 over the same recording (`mmd convert hftbacktest` rows), same queue
    model (power 2), partial fills, fees, latency and a time grid with as many decisions as
    the tape."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    from mmd.feeds.convert import hftbacktest_events

    rows, _ = hftbacktest_events(files)
    inst = ev.instrument(0)
    tick, lot = inst.tick, inst.lot
    span = int(ev.book_ts_exch_ns[-1] - ev.book_ts_exch_ns[0])
    step_ns = max(1, span // max(1, n_commands // 3))  # ~3 commands per decision in the tape
    loop = _hbt_loop_fn()

    def once() -> float:
        asset = (BacktestAsset().data(rows).linear_asset(1.0)
                 .constant_order_latency(entry_ns, entry_ns)
                 .trading_value_fee_model(cfg.maker_fee, cfg.taker_fee)
                 .tick_size(tick).lot_size(lot)
                 .last_trades_capacity(0).partial_fill_exchange().power_prob_queue_model(2.0))
        hbt = HashMapMarketDepthBacktest([asset])
        t0 = time.perf_counter()
        loop(hbt, step_ns, 5 * lot, tick)
        dt = time.perf_counter() - t0
        hbt.close()
        return dt

    once()  # compile: not timed
    return {"peer_rows": len(rows), "peer_s": min(once() for _ in range(reps))}

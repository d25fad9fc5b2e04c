"""Backtest tape replay: events/s of the jitted loop (tests/tape_replay.py run_tape: book sync
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

`backtest_throughput` (run_throughput, below): the whole strategy loop against hftbacktest's GLFT
market maker; `backtest_cli_wall`: `mmd backtest` cold and warm (full size only). Run alone with
`python tests/bench/bench_backtest.py [--quick] [--no-cli]`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mmd.config import ExchangeConfig
from mmd.feeds.convert.binance_usdm import convert_binance_usdm
from mmd.feeds.convert.cryptofeed import convert_cryptofeed
from mmd.feeds.convert.event_cache import load_events

# test-side helpers in tests/ (run.py loads benches by path; tests/ is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tape_replay import run_tape_fast

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
    ev = dataclasses.replace(ev, ev_kind=ev.ev_kind[:n], ev_sym=ev.ev_sym[:n], ev_idx=ev.ev_idx[:n])
    cfg = ExchangeConfig(partial_fills=True)
    drv._python_driver(ev, cfg, min(n, 500))  # load the kernels the wrapper calls: not timed
    t0 = time.perf_counter()
    want, tape = drv._python_driver(ev, cfg, n)
    py_s = time.perf_counter() - t0

    def fast() -> Any:
        return run_tape_fast(
            ev,
            cfg,
            tape,
            entry_latency_ns=drv.ENTRY_NS,
            cancel_latency_ns=drv.CANCEL_NS,
            book_capacity=drv.CAP,
        )

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
        extra = {
            "peer_events_per_s": round(peer["peer_rows"] / peer["peer_s"]),
            "peer_rows": peer["peer_rows"],
            "ratio": round((rows / fast_s) / (peer["peer_rows"] / peer["peer_s"]), 3),
        }
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
    """The tape-replay rows, then the whole-loop throughput rows."""
    return _run_tape(quick) + run_throughput(quick)


def _run_tape(quick: bool) -> list[dict[str, Any]]:
    cf = DATA / "bybit_v5_linear_spot_2026-08-09_cryptofeed" / "BYBIT.jsonl"
    if not cf.exists():
        return [{"name": "backtest_tape.skipped_no_data", "skipped": 1}]
    out = []
    reps = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        linear = [f for f in sorted(convert_cryptofeed(cf, Path(tmp) / "cf")) if "linear" in f.name]
        sets: list[tuple[str, list[Path], int]] = [("bybit_cryptofeed_linear", linear, 10**9)]
        if not quick:
            d = Path(tmp) / "btc"
            d.mkdir()
            ins = sorted((DATA / "binance_usdm_btcusdt_2024-07-18_19").glob("*.gz"))
            sets.append(("binance_usdm_btcusdt_2024", list(convert_binance_usdm(ins, d)), 300_000))
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


def _peer(
    files: list[Path], ev: Any, n_commands: int, entry_ns: int, cfg: ExchangeConfig, reps: int
) -> dict[str, Any]:
    """hftbacktest 2.4.4 over the same recording (`mmd convert hftbacktest` rows), same queue
    model (power 2), partial fills, fees, latency and a time grid with as many decisions as
    the tape."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    from mmd.feeds.convert.hftbacktest import hftbacktest_events

    rows, _ = hftbacktest_events(files)
    inst = ev.instrument(0)
    tick, lot = inst.tick, inst.lot
    span = int(ev.book_ts_exch_ns[-1] - ev.book_ts_exch_ns[0])
    step_ns = max(1, span // max(1, n_commands // 3))  # ~3 commands per decision in the tape
    loop = _hbt_loop_fn()

    def once() -> float:
        asset = (
            BacktestAsset()
            .data(rows)
            .linear_asset(1.0)
            .constant_order_latency(entry_ns, entry_ns)
            .trading_value_fee_model(cfg.maker_fee, cfg.taker_fee)
            .tick_size(tick)
            .lot_size(lot)
            .last_trades_capacity(0)
            .partial_fill_exchange()
            .power_prob_queue_model(2.0)
        )
        hbt = HashMapMarketDepthBacktest([asset])
        t0 = time.perf_counter()
        loop(hbt, step_ns, 5 * lot, tick)
        dt = time.perf_counter() - t0
        hbt.close()
        return dt

    once()  # compile: not timed
    return {"peer_rows": len(rows), "peer_s": min(once() for _ in range(reps))}


# ---------------------------------------------------------------------------------------------
# backtest_throughput: the whole strategy loop (mmd.kernels.backtest.advance) against
# hftbacktest's GLFT market maker as an @njit loop. Both timed in CPU seconds of this process
# (time.process_time: the shared 2-core machine's load inflates wall time, for both alike),
# compile excluded, fresh state per run, min of several runs.
# ---------------------------------------------------------------------------------------------

LATENCY_MS = 5.0  # both engines: constant entry and cancel (response) latency


def _glft_cfg() -> Any:
    import msgspec

    from mmd.config import AppConfig

    cfg = AppConfig()
    return msgspec.structs.replace(
        cfg,
        strategy=msgspec.structs.replace(cfg.strategy, model="glft"),
        exchange=msgspec.structs.replace(
            cfg.exchange,
            entry_latency_ms=LATENCY_MS,
            cancel_latency_ms=LATENCY_MS,
            partial_fills=True,
            queue_model="prob_power",
            queue_power=2.0,
            funding=False,
        ),
    )


def _hbt_glft_fn():
    """The GLFT market maker written as hftbacktest's tutorials write strategies: one @njit
    loop over `elapse(step)`; per step the deepest trade from the previous mid (arrival
    depth), the mid change; every `refit` steps a least-squares fit of ln(arrival intensity)
    against the depth over the window (A, kappa) and sigma from the mid changes; then GLFT's
    half spread and skew, one bid and one ask (post-only), cancel what moved, inventory
    limit. The arithmetic of mmd's calibration and quote kernels, in the peer's own loop."""
    import math

    import numpy as np
    from hftbacktest.order import GTX, LIMIT
    from hftbacktest.types import BUY_EVENT
    from numba import njit

    @njit
    def loop(
        hbt,
        step_ns,
        window,
        refit,
        lot,
        tick,
        gamma,
        order_lots,
        max_lots,
        fb_sigma,
        fb_kappa,
        fb_a,
        max_depth,
    ):  # type: ignore[no-untyped-def]
        step_s = step_ns * 1e-9
        arrival = np.full(window, -1.0)
        dmid = np.zeros(window)
        counts = np.zeros(max_depth + 1)
        t = 0
        prev_mid = math.nan
        kappa = fb_kappa
        a = fb_a
        sigma = fb_sigma
        oid = 0
        decisions = 0
        while hbt.elapse(step_ns) == 0:
            hbt.clear_inactive_orders(0)
            depth = hbt.depth(0)
            bb = depth.best_bid_tick
            ba = depth.best_ask_tick
            trades = hbt.last_trades(0)
            deepest = -1.0
            if prev_mid == prev_mid:
                for k in range(len(trades)):
                    px = trades[k].px / tick
                    d = px - prev_mid if trades[k].ev & BUY_EVENT else prev_mid - px
                    deepest = max(deepest, d)
            hbt.clear_last_trades(0)
            if bb >= ba:
                continue
            mid = 0.5 * (bb + ba)
            slot = t % window
            arrival[slot] = deepest
            dmid[slot] = mid - prev_mid if prev_mid == prev_mid else 0.0
            prev_mid = mid
            t += 1
            if t % refit == 0:
                n = min(t, window)
                counts[:] = 0.0
                for j in range(n):
                    dj = arrival[j]
                    if dj >= 0:
                        top = min(max_depth, int(dj))
                        for k in range(top + 1):
                            counts[k] += 1.0
                # ln(lambda(k)) = ln A - kappa k over the depths reached at least once
                sx = sy = sxx = sxy = 0.0
                m = 0
                for k in range(max_depth + 1):
                    if counts[k] > 0:
                        y = math.log(counts[k] / (n * step_s))
                        sx += k
                        sy += y
                        sxx += k * k
                        sxy += k * y
                        m += 1
                if m >= 3:
                    den = m * sxx - sx * sx
                    slope = (m * sxy - sx * sy) / den
                    if slope < 0:
                        kappa = -slope
                        a = math.exp((sy - slope * sx) / m)
                s1 = s2 = 0.0
                for j in range(n):
                    s1 += dmid[j]
                    s2 += dmid[j] * dmid[j]
                var = s2 / n - (s1 / n) ** 2
                if var > 0:
                    sigma = math.sqrt(var / step_s)
            # GLFT (xi = gamma, delta = one order)
            xd = gamma * order_lots
            c1 = math.log(1.0 + xd / kappa) / xd
            c2 = math.sqrt(
                gamma / (2.0 * a * order_lots * kappa) * (1.0 + xd / kappa) ** (kappa / xd + 1.0)
            )
            half = c1 + 0.5 * order_lots * c2 * sigma
            q = round(hbt.position(0) / lot)
            res = mid - c2 * sigma * q
            bid = min(math.floor(res - half), bb)
            ask = max(math.ceil(res + half), ba)
            want_bid = q + order_lots <= max_lots
            want_ask = -q + order_lots <= max_lots
            have_bid = False
            have_ask = False
            values = hbt.orders(0).values()
            while values.has_next():
                o = values.get()
                if not o.cancellable:
                    continue
                if o.side == 1 and want_bid and o.price_tick == bid and not have_bid:
                    have_bid = True
                elif o.side == -1 and want_ask and o.price_tick == ask and not have_ask:
                    have_ask = True
                else:
                    hbt.cancel(0, o.order_id, False)
            if want_bid and not have_bid:
                oid += 1
                hbt.submit_buy_order(0, oid, bid * tick, order_lots * lot, GTX, LIMIT, False)
            if want_ask and not have_ask:
                oid += 1
                hbt.submit_sell_order(0, oid, ask * tick, order_lots * lot, GTX, LIMIT, False)
            decisions += 1
        return decisions

    return loop


def _peer_glft(files: list[Path], ev: Any, decisions: int, reps: int) -> dict[str, Any]:
    """hftbacktest 2.4.4 running the GLFT loop over `mmd convert hftbacktest` rows of the same
    recording: power-2 queue model, partial fills, mmd's fees and latency, a time grid with as
    many decisions as mmd made."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    from mmd.feeds.convert.hftbacktest import hftbacktest_events

    cfg = _glft_cfg()
    scfg, cal = cfg.strategy, cfg.strategy.calibration
    rows, _ = hftbacktest_events(files)
    inst = ev.instrument(0)
    span = int(ev.book_ts_exch_ns[-1] - ev.book_ts_exch_ns[0])
    step_ns = max(1, span // max(1, decisions))
    window = max(2, round(cal.window_s / (step_ns * 1e-9)))
    refit = max(1, round(cal.refit_s / (step_ns * 1e-9)))
    order_lots = max(1, inst.qty_to_lots(scfg.order_size))
    max_lots = max(order_lots, inst.limit_lots(scfg.max_position))
    lat_ns = int(LATENCY_MS * 1e6)
    loop = _hbt_glft_fn()

    def once() -> tuple[float, int]:
        asset = (
            BacktestAsset()
            .data(rows)
            .linear_asset(1.0)
            .constant_order_latency(lat_ns, lat_ns)
            .trading_value_fee_model(cfg.exchange.maker_fee, cfg.exchange.taker_fee)
            .tick_size(inst.tick)
            .lot_size(inst.lot)
            .last_trades_capacity(10_000)
            .partial_fill_exchange()
            .power_prob_queue_model(2.0)
        )
        hbt = HashMapMarketDepthBacktest([asset])
        t0 = time.process_time()
        n = loop(
            hbt,
            step_ns,
            window,
            refit,
            inst.lot,
            inst.tick,
            scfg.gamma,
            order_lots,
            max_lots,
            cal.fallback_sigma,
            cal.fallback_kappa,
            cal.fallback_a,
            cal.max_depth_ticks,
        )
        dt = time.process_time() - t0
        hbt.close()
        return dt, int(n)

    once()  # compile: not timed
    runs = [once() for _ in range(reps)]
    return {"peer_rows": len(rows), "peer_s": min(r[0] for r in runs), "peer_decisions": runs[0][1]}


def _throughput(name: str, files: list[Path], cache: Path, reps: int) -> dict[str, Any]:
    from mmd.sim.strategy_loop import StrategyLoop

    ev = load_events(files, cache)
    cfg = _glft_cfg()
    loop = StrategyLoop(ev, cfg)
    t0 = time.process_time()
    assert loop.advance() == 0  # compile or load the cached kernels
    first_s = time.process_time() - t0
    res = loop.result()
    best = float("inf")
    for _ in range(reps):
        loop = StrategyLoop(ev, cfg)  # fresh state: not timed
        t0 = time.process_time()
        assert loop.advance() == 0
        best = min(best, time.process_time() - t0)
    rows = len(ev.level_px_ticks) + len(ev.trade_px_ticks)
    decisions = int(res.decisions.sum())
    out: dict[str, Any] = {
        "name": f"backtest_throughput.{name}",
        "stream_rows": len(ev.ev_kind),
        "rows": rows,
        "decisions": decisions,
        "fills": len(res.fills),
        "mmd_events_per_s": round(rows / best),
        "mmd_stream_rows_per_s": round(len(ev.ev_kind) / best),
        "mmd_s": round(best, 4),
        "first_call_s": round(first_s, 3),
    }
    if not out["fills"]:
        del out["fills"]  # the 44 s capture makes none with this config; figures are positive
    try:
        peer = _peer_glft(files, ev, decisions, reps)
    except ImportError:
        return out  # hftbacktest not installed: no peer figures
    peer_rate = peer["peer_rows"] / peer["peer_s"]
    out.update(
        peer_events_per_s=round(peer_rate),
        peer_rows=peer["peer_rows"],
        peer_decisions=peer["peer_decisions"],
        peer_s=round(peer["peer_s"], 4),
        ratio=round((rows / best) / peer_rate, 3),
    )
    return out


def _cli_wall(rec: Path, tmp: Path) -> dict[str, Any]:
    """Wall time of `mmd backtest REC` (summary only) with an empty numba cache (cold: every
    kernel compiles) and then warm (cache and event cache filled)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MMD_")}
    env.update(
        NUMBA_CACHE_DIR=str(tmp / "numba"),
        MMD_EVENT_CACHE=str(tmp / "events"),
        PYTHONPATH=str(ROOT),
    )
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "mmd", "backtest", str(rec), "--no-progress"],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            cwd=tmp,
        )
        walls.append(time.perf_counter() - t0)
        assert r.returncode == 0, r.stderr[-2000:]
    return {
        "name": f"backtest_cli_wall.{rec.stem}",
        "cold_s": round(walls[0], 2),
        "warm_s": round(min(walls[1:]), 2),
    }


def run_throughput(quick: bool, cli: bool = True) -> list[dict[str, Any]]:
    """backtest_throughput rows (and the CLI's cold/warm wall time unless quick)."""
    cf = DATA / "bybit_v5_linear_spot_2026-08-09_cryptofeed" / "BYBIT.jsonl"
    if not cf.exists():
        return [{"name": "backtest_throughput.skipped_no_data", "skipped": 1}]
    out = []
    reps = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        btc = [f for f in convert_cryptofeed(cf, Path(tmp) / "cf") if "linear_BTCUSDT" in f.name]
        sets: list[tuple[str, list[Path]]] = [("bybit_cryptofeed_btcusdt", btc)]
        if not quick:
            for sym, folder in (
                ("btcusdt_2024", "binance_usdm_btcusdt_2024-07-18_19"),
                ("ethusdt_2024", "binance_usdm_ethusdt_2024-07-18_19"),
            ):
                d = Path(tmp) / sym
                d.mkdir()
                ins = sorted((DATA / folder).glob("*.gz"))
                sets.append((f"binance_usdm_{sym}", list(convert_binance_usdm(ins, d))))
        for name, files in sets:
            out.append(_throughput(name, files, Path(tmp) / "cache", reps))
        if cli and not quick:
            out.append(_cli_wall(sets[1][1][0], Path(tmp)))
    return out


if __name__ == "__main__":
    import json
    import sys

    for row in run_throughput("--quick" in sys.argv, cli="--no-cli" not in sys.argv):
        print(json.dumps(row))

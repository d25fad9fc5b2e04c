"""Quote benchmarks: the raw quote kernels, the ladder kernel and Quoter.decide, per call.

Figures: `ns_per_call` is the median (over passes) wall time of one call with the Python call
overhead included. The `quotes.as_and_ladder` row also times a plain-Python peer of the same
formulas (AS quotes + the ladder rules, floats and lists, no numpy) in this process:
`ref_ns_per_call` for the peer, `ratio = ref_ns_per_call / ns_per_call` (how many times faster
the two kernel calls are), and `ratio_decide` for the peer against the whole `Quoter.decide`
(book read, fallbacks, both kernels and the QuoteTarget). The peer's output is checked against
the Quoter's before timing. Called from Python, each kernel call pays numba's dispatch (argument
typing and boxing, ~0.3 us for the raw kernels, ~1 us for the 20-argument ladder), which is
more than the arithmetic; the `[in_njit]` rows time the same kernels called from a jitted loop
(as the Monte-Carlo test and a jitted backtest call them), where that cost is gone.

`strategy.decision[...]` rows time the strategy kernels' whole decision (fallbacks, model quotes
and ladder: `compute_quote_decision`; then the order diff against two resting orders:
`compute_order_diff`) per call from Python and inside one jitted loop (`[in_njit]`).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from mmd.config import StrategyConfig
from mmd.kernels import strategy as ks
from mmd.kernels.quotes import compute_as_quotes, compute_glft_quotes, compute_quote_ladder
from mmd.market.book import L2Book
from mmd.model.instrument import Instrument
from mmd.strategy.quoter import Quoter

# test-side helpers in tests/ (run.py loads benches by path; tests/ is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
NOW_NS = 1_700_000_004_000_000_000
SIGMA, KAPPA, A, POSITION = 3.0, 0.5, 2.0, 3
BEST_BID, BEST_ASK = 650_000, 650_001


def make_book() -> L2Book:
    book = L2Book(50)
    depth = np.arange(50, dtype=np.int64)
    qty = np.full(50, 7, np.int64)
    book.apply_snapshot(BEST_BID - depth, qty, BEST_ASK + depth, qty, u=1, seq=1, ts_exch_ns=1)
    return book


def make_cfg(model: str, levels: int) -> StrategyConfig:
    return StrategyConfig(
        model=model,  # type: ignore[arg-type]
        gamma=0.05,
        session_s=60.0,
        order_size=0.002,
        max_position=0.02,
        min_spread_bps=0.5,
        levels=levels,
        level_spacing_ticks=2,
        size_eta=0.5,
    )


@njit(cache=False)  # run.py loads this file under a private, non-importable module name
def _loop_as(
    n: int, mid: float, q: int, sigma: float, gamma: float, kappa: float, tau: float
) -> float:
    # n AS quotes from a jitted loop; the sum keeps the calls from being optimised away
    acc = 0.0
    for i in range(n):
        bid, ask, _, _ = compute_as_quotes(mid + (i & 7), q, sigma, gamma, kappa, tau)
        acc += ask - bid
    return acc


@njit(cache=False)  # run.py loads this file under a private, non-importable module name
def _loop_as_ladder(
    n: int,
    out_bid_px: np.ndarray,
    out_bid_qty: np.ndarray,
    out_ask_px: np.ndarray,
    out_ask_qty: np.ndarray,
    mid: float,
    q: int,
    sigma: float,
    gamma: float,
    kappa: float,
    tau: float,
    best_bid: int,
    best_ask: int,
) -> int:
    # n full quotes (AS + ladder, 1 level) from a jitted loop
    acc = 0
    for i in range(n):
        bid, ask, r, _ = compute_as_quotes(mid, q + (i & 3), sigma, gamma, kappa, tau)
        compute_quote_ladder(
            out_bid_px,
            out_bid_qty,
            out_ask_px,
            out_ask_qty,
            bid,
            ask,
            r,
            best_bid,
            best_ask,
            q + (i & 3),
            20,
            0.0,
            1,
            2,
            2,
            0.5,
            1.0,
            1.0,
            0.0,
            np.nan,
        )
        acc += out_bid_px[0] + out_ask_qty[0]
    return acc


@njit(cache=False)
def _loop_decision(
    n: int,
    tgt: np.ndarray,
    dec_f: np.ndarray,
    qpi: np.ndarray,
    qpf: np.ndarray,
    ml: np.ndarray,
    orders: np.ndarray,
    cmds: np.ndarray,
    next_oid: np.ndarray,
    done: np.ndarray,
    with_diff: bool,
) -> int:
    # n decisions (and diffs) from a jitted loop, the position moving over -3..3 lots
    acc = 0
    for i in range(n):
        q = (i % 7) - 3
        code = ks.compute_quote_decision(
            tgt, dec_f, qpi, qpf, ml, NOW_NS + i, BEST_BID, BEST_ASK, 50, 50, SIGMA, KAPPA, A, q
        )
        acc += code + tgt[0, 0]
        if with_diff:
            acc += ks.compute_order_diff(
                cmds, orders, next_oid, done, tgt, orders.shape[0], qpi[ks.QPI_TOLERANCE_TICKS]
            )
    return acc


def per_call_jit_ns(fn: Callable[[int], Any], n: int, passes: int) -> float:
    """Median over passes of ns per kernel call inside one jitted loop of n calls."""
    fn(1)  # compile or load the cache outside the timing
    out = []
    for _ in range(passes):
        t0 = time.perf_counter_ns()
        fn(n)
        out.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(out)


def py_as_ladder(
    mid: float,
    q: int,
    sigma: float,
    gamma: float,
    kappa: float,
    tau: float,
    best_bid: int,
    best_ask: int,
    max_q: int,
    min_spread: float,
    levels: int,
    spacing: int,
    base: int,
    eta: float,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The AS formulas and the ladder rules (neutral ML inputs) in plain Python."""
    var_tau = sigma * sigma * tau
    r = mid - q * gamma * var_tau
    half = 0.5 * (gamma * var_tau + 2.0 / gamma * math.log1p(gamma / kappa))
    bid, ask = r - half, r + half
    m = max(min_spread, 1.0)
    if ask - bid < m:
        c = 0.5 * (bid + ask)
        bid, ask = c - 0.5 * m, c + 0.5 * m
    bid0 = min(math.floor(bid), best_ask - 1)
    ask0 = max(math.ceil(ask), best_bid + 1)
    shaped = base
    if eta > 0 and max_q > 0 and q != 0:
        shaped = max(1, math.floor(base * math.exp(-eta * abs(q) / max_q) + 0.5))
    bid_size = shaped if q > 0 else base
    ask_size = shaped if q < 0 else base
    buy_room, sell_room = max_q - q, max_q + q
    bids, asks = [], []
    for i in range(levels):
        qty = min(bid_size, buy_room)
        if qty > 0 and bid0 - i * spacing > 0:
            bids.append((bid0 - i * spacing, qty))
            buy_room -= qty
        qty = min(ask_size, sell_room)
        if qty > 0:
            asks.append((ask0 + i * spacing, qty))
            sell_room -= qty
    return bids, asks


def per_call_ns(fn: Callable[[], Any], calls: int, passes: int) -> float:
    """Median over passes of the mean ns per call (one untimed warm-up pass first)."""
    out = []
    for _ in range(passes + 1):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter_ns() - t0) / calls)
    return statistics.median(out[1:])


def run(quick: bool) -> list[dict[str, Any]]:
    """Benchmark rows for run.py."""
    calls, passes = (2_000, 5) if quick else (50_000, 20)
    book = make_book()
    mid = 0.5 * (BEST_BID + BEST_ASK)
    tau = Quoter(make_cfg("as", 1), BTC).tau_s(NOW_NS)
    o_bpx, o_bqty, o_apx, o_aqty = (np.zeros(5, np.int64) for _ in range(4))

    def as_kernel() -> Any:
        return compute_as_quotes(mid, POSITION, SIGMA, 0.05, KAPPA, tau)

    def glft_kernel() -> Any:
        return compute_glft_quotes(mid, POSITION, SIGMA, 0.05, KAPPA, A, 2)

    raw_bid, raw_ask, reservation, _ = as_kernel()

    def ladder_kernel(levels: int) -> Callable[[], int]:
        def call() -> int:
            return int(
                compute_quote_ladder(
                    o_bpx,
                    o_bqty,
                    o_apx,
                    o_aqty,
                    raw_bid,
                    raw_ask,
                    reservation,
                    BEST_BID,
                    BEST_ASK,
                    POSITION,
                    20,
                    0.5e-4 * mid,
                    levels,
                    2,
                    2,
                    0.5,
                    1.0,
                    1.0,
                    0.0,
                    math.nan,
                )
            )

        return call

    def as_and_ladder() -> int:
        bid, ask, r, _ = compute_as_quotes(mid, POSITION, SIGMA, 0.05, KAPPA, tau)
        return int(
            compute_quote_ladder(
                o_bpx,
                o_bqty,
                o_apx,
                o_aqty,
                bid,
                ask,
                r,
                BEST_BID,
                BEST_ASK,
                POSITION,
                20,
                0.5e-4 * mid,
                1,
                2,
                2,
                0.5,
                1.0,
                1.0,
                0.0,
                math.nan,
            )
        )

    def peer() -> Any:
        return py_as_ladder(
            mid,
            POSITION,
            SIGMA,
            0.05,
            KAPPA,
            tau,
            BEST_BID,
            BEST_ASK,
            20,
            0.5e-4 * mid,
            1,
            2,
            2,
            0.5,
        )

    rows: list[dict[str, Any]] = []
    decide_ns: dict[str, float] = {}
    for model, levels in (("as", 1), ("as", 5), ("glft", 5)):
        quoter = Quoter(make_cfg(model, levels), BTC)
        target = quoter.decide(NOW_NS, book, SIGMA, KAPPA, A, POSITION)
        if target is None or not target.bids or not target.asks:
            raise RuntimeError(f"Quoter.decide gave no two-sided target: {quoter.reject_reason}")
        if model == "as" and levels == 1 and peer() != (target.bids, target.asks):
            raise RuntimeError(f"plain-Python peer disagrees: {peer()} vs {target}")
        ns = per_call_ns(
            partial(quoter.decide, NOW_NS, book, SIGMA, KAPPA, A, POSITION), calls, passes
        )
        decide_ns[f"{model}{levels}"] = ns
        rows.append(
            {
                "name": f"quotes.quoter_decide[{model},levels={levels}]",
                "ns_per_call": ns,
                "calls": calls,
                "passes": passes,
            }
        )

    rows.append(
        {
            "name": "quotes.compute_as_quotes",
            "ns_per_call": per_call_ns(as_kernel, calls, passes),
            "passes": passes,
        }
    )
    rows.append(
        {
            "name": "quotes.compute_glft_quotes",
            "ns_per_call": per_call_ns(glft_kernel, calls, passes),
            "passes": passes,
        }
    )
    for levels in (1, 5):
        rows.append(
            {
                "name": f"quotes.compute_quote_ladder[levels={levels}]",
                "ns_per_call": per_call_ns(ladder_kernel(levels), calls, passes),
                "passes": passes,
            }
        )
    kernels_ns = per_call_ns(as_and_ladder, calls, passes)
    peer_ns = per_call_ns(peer, calls, passes)
    jit_n = 20_000 if quick else 1_000_000
    rows.append(
        {
            "name": "quotes.compute_as_quotes[in_njit]",
            "ns_per_call": per_call_jit_ns(
                lambda n: _loop_as(n, mid, POSITION, SIGMA, 0.05, KAPPA, tau), jit_n, passes
            ),
            "calls": jit_n,
            "passes": passes,
        }
    )
    rows.append(
        {
            "name": "quotes.as_and_ladder[in_njit]",
            "ns_per_call": per_call_jit_ns(
                lambda n: _loop_as_ladder(
                    n,
                    o_bpx,
                    o_bqty,
                    o_apx,
                    o_aqty,
                    mid,
                    POSITION,
                    SIGMA,
                    0.05,
                    KAPPA,
                    tau,
                    BEST_BID,
                    BEST_ASK,
                ),
                jit_n,
                passes,
            ),
            "calls": jit_n,
            "passes": passes,
        }
    )
    for model, levels in (("as", 1), ("glft", 5)):
        qt = Quoter(make_cfg(model, levels), BTC)
        st = (qt.tgt, qt.dec_f, qt.qpi, qt.qpf, qt._ml)
        orders = np.zeros(2, ks.ORDER_DTYPE)
        orders[0] = (0, 1, BEST_BID - 3, 2, 2, 0)
        orders[1] = (1, -1, BEST_ASK + 3, 2, 2, 0)
        cmds = np.zeros(2 + 2 * levels, ks.COMMAND_DTYPE)
        next_oid = np.zeros(1, np.int64)
        done = np.zeros(2 * levels, np.int64)

        def decision(st: tuple = st) -> int:
            return int(
                ks.compute_quote_decision(
                    *st, NOW_NS, BEST_BID, BEST_ASK, 50, 50, SIGMA, KAPPA, A, POSITION
                )
            )

        def decision_diff(
            st: tuple = st,
            orders: np.ndarray = orders,
            cmds: np.ndarray = cmds,
            next_oid: np.ndarray = next_oid,
            done: np.ndarray = done,
        ) -> int:
            ks.compute_quote_decision(
                *st, NOW_NS, BEST_BID, BEST_ASK, 50, 50, SIGMA, KAPPA, A, POSITION
            )
            return int(ks.compute_order_diff(cmds, orders, next_oid, done, st[0], 2, 1))

        for with_diff, fn in ((False, decision), (True, decision_diff)):
            what = "decision_and_diff" if with_diff else "decision"
            rows.append(
                {
                    "name": f"strategy.{what}[{model},levels={levels}]",
                    "ns_per_call": per_call_ns(fn, calls, passes),
                    "calls": calls,
                    "passes": passes,
                }
            )
            rows.append(
                {
                    "name": f"strategy.{what}[{model},levels={levels},in_njit]",
                    "ns_per_call": per_call_jit_ns(
                        lambda n, st=st, o=orders, c=cmds, i=next_oid, d=done, w=with_diff: (
                            _loop_decision(n, *st, o, c, i, d, w)
                        ),
                        jit_n,
                        passes,
                    ),
                    "calls": jit_n,
                    "passes": passes,
                }
            )
    rows.append(
        {
            "name": "quotes.as_and_ladder",
            "ns_per_call": kernels_ns,
            "ref_ns_per_call": peer_ns,
            "ratio": peer_ns / kernels_ns,
            "ratio_decide": peer_ns / decide_ns["as1"],
            "passes": passes,
        }
    )
    return rows

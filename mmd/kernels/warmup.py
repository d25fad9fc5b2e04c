"""Compile every kernel ahead of time with the dtypes the app uses (`python -m mmd.kernels.warmup`).

Run at Docker build time so the numba cache is warm. Finds every numba dispatcher in the
`mmd.kernels` modules and calls it once with the sample arguments in `SAMPLE_ARGS`; a dispatcher
without an entry (or an entry without a dispatcher) is an error, so a new kernel is added here.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
from numba.core.dispatcher import Dispatcher

import mmd.kernels

I64 = np.int64
Array = npt.NDArray[Any]  # a sample argument (its dtype is the kernel's)


def _side(capacity: int = 4) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    return np.zeros(capacity, I64), np.zeros(capacity, I64)


def _levels() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    return np.array([3, 1, 2], I64), np.array([5, 0, 7], I64)


def _calibration_window(n: int = 4) -> tuple[Array, ...]:
    # (step_depth, step_trades, step_dmid, state_i, state_f) after kernels.calibration.reset_window
    state_i = np.array([-1, -1, 0, 0, 0], I64)
    state_f = np.array([np.nan, np.nan, 0.0, 0.0])
    return np.full(n, -1, I64), np.zeros(n, I64), np.full(n, np.nan), state_i, state_f


def _rl() -> tuple[Array, ...]:
    # (q, visits, rpi, rpf, actions, rs, rng) of kernels.rl, 2 states x 2 actions, learning
    rpi = np.array([2, 1, 1, 1, 1, 5, 2], I64)
    rpf = np.array([0.1, 0.9, 0.1, 0.5, 1.0, 20.0, 5.0])
    rs = np.array([-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    return (
        np.zeros((2, 2)),
        np.zeros((2, 2), I64),
        rpi,
        rpf,
        np.ones((2, 2)),
        rs,
        np.array([7], np.uint64),
    )


def _lstm() -> tuple[Array, ...]:
    # (state, gates, xbuf, z, weights, biases, sizes) of kernels.lstm: one layer, 3 inputs, 2
    # units (weights: W_ih^T 3 x 8 then W_hh^T 2 x 8)
    f4 = np.float32
    return (
        np.zeros(4, f4),
        np.zeros(8, f4),
        np.zeros(8, f4),
        np.zeros(3, f4),
        np.zeros(40, f4),
        np.zeros(8, f4),
        np.array([3, 2], I64),
    )


def _strategy_state() -> dict[str, Any]:
    # the state arrays of kernels.strategy as the strategy wrappers build them
    from mmd.kernels import strategy as ks

    win = (*_calibration_window(), np.zeros(51, I64))
    cal_i = np.array([0, ks.CAL_STATUS_NONE, 0, 0, 0, 0, 0, -1, -1], I64)
    cal_f = np.array([0.5, 1.0, 5.0, *([np.nan] * 4), 0.0])
    tgt = np.zeros((4, 2), I64)
    orders = np.zeros(2, ks.ORDER_DTYPE)
    orders[0] = (0, 1, 99, 1, 1, 0)
    orders[1] = (1, -1, 102, 1, 0, 0)
    cmds = np.zeros(6, ks.COMMAND_DTYPE)
    cmds[0] = (ks.CMD_SUBMIT, 1, 99, 1, 0, 0)
    cmds[1] = (ks.CMD_CANCEL, -1, 102, 1, 1, 0)
    return {
        "mids": (np.zeros(4, I64), np.zeros(4)),
        "trades": tuple(np.zeros(4, I64) for _ in range(4)),
        "win": win,
        "cal": (
            cal_i,
            cal_f,
            np.array([10**8, 10**9, 10, 3], I64),
            np.array([0.1, 0.5, 0.01, 10.0, 0.01, 100.0]),
        ),
        "qpi": np.array([0, 3600 * 10**9, 1, 10, 2, 1, 1], I64),
        "qpf": np.array([0.05, 0.0, 0.0, 5.0, 0.5, 1.0]),
        "ml": np.array([1.0, 1.0, 1.0, 0.0, np.nan]),
        "tgt": tgt,
        "orders": orders,
        "cmds": cmds,
        "bucket": np.zeros(1, ks.RISK_BUCKET_DTYPE),
        "rpf": np.array([0.0, 0.001, 0.1, 5e-9, 5.0]),
        "acct": np.array([0, 0, 0, 0, 0, 10], I64),
    }


def _strategy(*keys: str) -> tuple[Any, ...]:
    st = _strategy_state()
    out: list[Any] = []
    for key in keys:
        if key == "cal":
            out.extend(st[key])
        else:
            out.append(st[key])
    return tuple(out)


def _mlp(width: int = 4) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    # the two scratch buffers of kernels.models.apply_mlp
    return np.zeros(width), np.zeros(width)


def _exchange() -> tuple[Array, ...]:
    # kernels.exchange state of 1 symbol, 4 slots, slot 0 resting (a buy of 2 lots at 100):
    # (ex, syms, orders, free, cmds, events, book_px, book_qty, book_n)
    from mmd.kernels.exchange import SLOT_LIVE, alloc_exchange

    ex, syms, orders, free, cmds, events = alloc_exchange(1, 4, n_cmd=4, n_events=16)
    syms[0]["tick"], syms[0]["lot"] = 0.1, 0.001
    syms[0]["price_decimals"], syms[0]["qty_decimals"] = 1, 3
    syms[0]["n_free"] = 3
    orders[0, 0]["live"], orders[0, 0]["side"] = SLOT_LIVE, 1
    orders[0, 0]["px_ticks"], orders[0, 0]["qty_lots"], orders[0, 0]["leaves_lots"] = 100, 2, 2
    cmds[0]["kind"], cmds[0]["side"], cmds[0]["px_ticks"], cmds[0]["qty_lots"] = 1, 1, 99, 1
    return (
        ex,
        syms,
        orders,
        free,
        cmds,
        events,
        np.zeros((1, 2, 4), I64),
        np.zeros((1, 2, 4), I64),
        np.zeros((1, 2), I64),
    )


def _exchange_book() -> tuple[Any, ...]:
    # (ex, syms, orders, free, events, sym, bid_px, bid_qty, n_bids, ask_px, ask_qty, n_asks, ts)
    ex, syms, orders, free, _, events, _, _, _ = _exchange()
    return (ex, syms, orders, free, events, 0, *_side(), 1, *_side(), 1, 5)


def _exchange_emit() -> tuple[Any, ...]:
    st = _exchange()
    return (st[0], st[5], 4, 0, 0, 0, 7, 1, 100, 1, 1, 1, 0.0, 5)


def _loop() -> tuple[Any, ...]:
    from mmd.kernels.backtest import sample_state

    return sample_state()


def _positions() -> npt.NDArray[np.void]:
    from mmd.kernels.portfolio import alloc_positions

    return alloc_positions(np.array([1e-4]))


# "<module>.<function>" -> factory of a fresh argument tuple (kernels mutate their first arrays).
# Scalar types matter as much as array dtypes: Python int -> int64, Python bool -> boolean.
SAMPLE_ARGS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "book._is_better": lambda: (2, 1, True),
    "book._find_level": lambda: (np.array([3, 2, 1], I64), 3, 2, True),
    "book.apply_levels": lambda: (*_side(), 0, *_levels(), True),
    "book.compute_is_crossed": lambda: (_side()[0], 1, _side()[0], 1),
    "book.compute_mid_ticks": lambda: (_side()[0], 1, _side()[0], 1),
    "book.compute_spread_ticks": lambda: (_side()[0], 1, _side()[0], 1),
    # book_sync: one symbol's sync row int64[5], a book int64[2, capacity]; the reference loop
    # over an empty event stream (n_sym=1, capacity 4, top 2)
    "book_sync.reset_book_sync": lambda: (np.zeros(5, I64),),
    "book_sync.advance_book_sync": lambda: (np.array([-1, -1, 0, 0, 0], I64), 1, 5, 0),
    "book_sync.apply_book_frame": lambda: (
        np.zeros((2, 4), I64),
        np.zeros((2, 4), I64),
        np.array([-1, -1, 0, 0, 0], I64),
        1,
        5,
        0,
        *_levels(),
        1,
    ),
    "book_sync.apply_cached_frame": lambda: (
        np.zeros((1, 2, 4), I64),
        np.zeros((1, 2, 4), I64),
        np.array([[-1, -1, 0, 0, 0]], I64),
        0,
        np.array([[1, 5, 0, 0, 1, 2]], I64),
        0,
        *_levels(),
    ),
    "features.compute_imbalance": lambda: (_side()[1], 1, _side()[1], 1, 5),
    "features.compute_log_depth_ratio": lambda: (_side()[1], 1, _side()[1], 1, 5),
    "features.compute_weighted_mid_ticks": lambda: (*_side(), 1, *_side(), 1),
    "features.compute_ofi_increment": lambda: (100, 2, 101, 3, 100, 4, 102, 1),
    "features.compute_gk_variance": lambda: (100.0, 101.0, 99.0, 100.5),
    "features.compute_window_std": lambda: (3.0, 5.0, 2),
    "features.compute_state_sizes": lambda: (4, 4, 4, 4),
    "features._ring_push": lambda: (np.zeros(64), np.zeros(64, I64), 2, 7, 33, 19, 0.5),
    "features._vpin_push": lambda: (np.zeros(64), np.ones(64, I64), 3),
    "features.apply_reset": lambda: (
        np.zeros(64),
        np.zeros(64, I64),
        5,
        10**9,
        30.0,
        5.0,
        60.0,
        0,
        4,
        4,
        4,
        4,
    ),
    "features._refresh_flow": lambda: (np.zeros(64),),
    "features.advance_decay": lambda: (np.zeros(64), np.zeros(64, I64), 0),
    "features._take_sample": lambda: (np.full(64, np.nan), np.zeros(64, I64)),
    "features.advance_clock": lambda: (np.zeros(64), np.zeros(64, I64), 0),
    "features._refresh_spread_z": lambda: (np.zeros(64), np.zeros(64, I64)),
    "features._clear_book_features": lambda: (np.zeros(64), np.zeros(64, I64)),
    "features.update_book": lambda: (np.zeros(64), np.zeros(64, I64), *_side(), 1, *_side(), 1, 0),
    "features.apply_book_gap": lambda: (np.zeros(64), np.zeros(64, I64), 0),
    "features.update_vpin": lambda: (np.zeros(64), np.zeros(64, I64), 0, 3, 1),
    "features.update_trade": lambda: (np.zeros(64), np.zeros(64, I64), 0, 3, 1),
    "features.update_kline": lambda: (
        np.ones(64),
        np.ones(64, I64),
        60 * 10**9,
        100.0,
        101.0,
        99.0,
        100.5,
    ),
    # quotes: (mid, q, sigma, gamma, kappa, tau_s) / (..., a, order_lots), as Quoter.decide calls
    "quotes.compute_as_quotes": lambda: (100.5, 2, 5.0, 0.05, 0.5, 1800.0),
    "quotes.compute_glft_quotes": lambda: (100.5, 2, 5.0, 0.05, 0.5, 1.0, 1),
    "quotes.compute_quote_ladder": lambda: (
        *_side(),
        *_side(),
        95.2,
        105.7,
        100.4,
        100,
        101,
        2,
        10,
        0.0,
        3,
        1,
        1,
        0.5,
        1.0,
        1.0,
        0.0,
        float("nan"),
    ),
    # calibration: ts and step in ns, mid in ticks, side codes.BUY, as IntensityCalibrator calls
    "calibration.reset_window": lambda: _calibration_window(),
    "calibration._write_slot": lambda: (*_calibration_window(), 3, 2, 1, 0.5),
    "calibration.advance_steps": lambda: (*_calibration_window(), 10**9, 10**8),
    "calibration.update_mid": lambda: (*_calibration_window(), 10**9, 100.5, 10**8),
    "calibration.update_trade": lambda: (*_calibration_window(), 10**9, 101, 1, 10**8),
    "calibration.update_arrival_counts": lambda: (np.zeros(51, I64), np.array([-1, 0, 3], I64)),
    "calibration.compute_intensity_fit": lambda: (np.array([4, 2, 1], I64), 6.0, 10, 3, 3, 0.5),
    "calibration.compute_sigma": lambda: (*_calibration_window()[3:], 0.1),
    # strategy: rings, calibration (win tuple, cal_i, cal_f, cal_pi, cal_pf), the decision
    # (tgt, dec_f, qpi, qpf, ml, now, best bid/ask, level counts, sigma, kappa, A, position),
    # the order diff (cmds, orders, next_oid, done, tgt, n, tolerance) and the risk checks
    "strategy.append_ring_mid": lambda: (*_strategy("mids")[0], np.zeros(1, I64), 10**9, 100.5),
    "strategy.append_ring_trade": lambda: (
        *_strategy("trades"),
        np.zeros(1, I64),
        10**9,
        101,
        2,
        1,
    ),
    "strategy.compute_ring_since": lambda: (5, 4, 2),
    "strategy.update_calibration_from_rings": lambda: (
        *_strategy("win"),
        np.zeros(2, I64),
        *_strategy("mids", "trades"),
        0,
        0,
        10**8,
    ),
    "strategy.apply_calibration_refit": lambda: (*_strategy("win", "cal"), 10**9),
    "strategy.update_calibration_schedule": lambda: (*_strategy("win", "cal"), 10**9),
    "strategy.compute_gate_state": lambda: (10**9, 0, True, False),
    "strategy.compute_quote_decision": lambda: (
        *_strategy("tgt"),
        np.zeros(3),
        *_strategy("qpi", "qpf", "ml"),
        10**9,
        100,
        101,
        1,
        1,
        5.0,
        0.5,
        1.0,
        0,
    ),
    "strategy._sent_lots": lambda: (*_strategy("orders"), 0),
    "strategy._match_side": lambda: (
        *_strategy("orders"),
        2,
        1,
        np.array([99, 98], I64),
        np.array([1, 1], I64),
        np.zeros(2, I64),
        1,
    ),
    "strategy._put_command": lambda: (*_strategy("cmds"), 0, 1, 1, 99, 1, 0),
    "strategy.compute_order_diff": lambda: (
        *_strategy("cmds", "orders"),
        np.zeros(1, I64),
        np.zeros(4, I64),
        *_strategy("tgt"),
        2,
        1,
    ),
    "strategy.compute_cancel_all": lambda: (*_strategy("cmds", "orders"), 2),
    "strategy.apply_risk_checks": lambda: (*_strategy("cmds", "bucket", "rpf", "acct"), 2, 10**9),
    # frame: one book frame (book side arrays, counts, feature state, mids ring + total, the
    # frame's levels, snapshot flag, ts); one symbol's decision (dec_i, calibration tuple,
    # rings tuple, quoter tuple, book tuple, orders, cmds, scratch, now, market ts, warm-up
    # deadline, usable, halted, position)
    "frame.advance_book_frame": lambda: (
        (*_side(), *_side()),
        np.zeros(2, I64),
        (np.zeros(64), np.zeros(64, I64)),
        _strategy("mids")[0],
        np.zeros(1, I64),
        (*_levels(), *_levels()),
        True,
        10**9,
    ),
    "frame.decide_symbol_quotes": lambda: (
        np.zeros(3, I64),
        (*_strategy("win"), np.zeros(2, I64), *_strategy("cal")),
        (*_strategy("mids", "trades"), np.zeros(2, I64)),
        (*_strategy("tgt"), np.zeros(3), *_strategy("qpi", "qpf", "ml")),
        (_side()[0], _side()[0], np.ones(2, I64)),
        *_strategy("orders", "cmds"),
        (np.zeros(1, I64), np.zeros(4, I64)),
        10**9,
        10**9,
        0,
        True,
        False,
        0,
    ),
    # models: a 3-input network with one hidden layer of 4 ([3, 4, 1]) and a logistic ([3, 1])
    "models.apply_market_features": lambda: (np.zeros(20), np.zeros(20), 0, 0.0),
    "models.apply_side_input": lambda: (np.zeros(3), np.zeros(2), np.ones(2), 1.0),
    "models.apply_standardise": lambda: (np.zeros(3), np.zeros(3), np.zeros(3), np.ones(3)),
    "models.compute_sigmoid": lambda: (0.5,),
    "models.compute_logistic": lambda: (np.zeros(3), np.zeros(3), 0.0),
    "models.apply_mlp": lambda: (
        *_mlp(),
        np.zeros(3),
        np.zeros(16),
        np.zeros(5),
        np.array([3, 4, 1], I64),
    ),
    "models.apply_adverse_pair": lambda: (
        *_mlp(),
        np.zeros(3),
        np.zeros(3),
        np.zeros(2),
        np.ones(2),
        np.ones(6),
        np.zeros(3),
        np.zeros(1),
        np.array([3, 1], I64),
    ),
    "models.compute_adverse_policy": lambda: (0.5, 0.5, 0.4, 2.0, 0.9),
    "models.apply_spread_model": lambda: (
        *_mlp(),
        np.zeros(3),
        np.zeros(3),
        np.ones(6),
        np.zeros(16),
        np.zeros(5),
        np.array([3, 4, 1], I64),
    ),
    # exchange: one symbol's paper exchange state (_exchange), commands / book / trade scalars
    # (sym, order id, side, px ticks, qty lots, ns) as SimExchange passes them
    "exchange.reset_symbol": lambda: (*_exchange()[1:4], 0),
    "exchange.set_latency": lambda: (_exchange()[0], 5, 7),
    "exchange._send": lambda: (*_exchange()[:2], _exchange()[4], 1, 0, 7, 1, 99, 1, 5),
    "exchange.submit": lambda: (*_exchange()[:2], _exchange()[4], 0, 7, 1, 99, 1, 5),
    "exchange.cancel": lambda: (*_exchange()[:2], _exchange()[4], 0, 7, 5),
    "exchange._emit": _exchange_emit,
    "exchange.compute_level_qty": lambda: (*_side(), 1, 3, True),
    "exchange.compute_back_prob": lambda: (2.0, 3.0, 1, 2.0),
    "exchange._lots_past_front": lambda: (-1.5,),
    "exchange.compute_fee_quote": lambda: (0.0002, 651142, 3, 0.1, 0.001, 1, 3),
    "exchange._fill": lambda: (*_exchange()[:4], _exchange()[5], 0, 0, 1, 5),
    "exchange._release": lambda: (*_exchange()[1:4], 0, 0),
    "exchange._find_live": lambda: (_exchange()[2], 0, 7),
    "exchange._accept": lambda: (*(st := _exchange())[:4], st[5], *st[6:9], st[4][0]),
    "exchange.process_due": lambda: (*_exchange(), 5),
    "exchange.on_book": _exchange_book,
    "exchange._priority": lambda: (_exchange()[2], 0, 1, np.zeros(4, I64)),
    "exchange.on_trade": lambda: (*_exchange_book()[:6], 5, 100, 2, -1),
    # portfolio: a POSITION_DTYPE[1] row with tick*lot 1e-4; a fill (side, px ticks, qty lots,
    # fee), a funding amount, a mark in ticks
    # the whole strategy loop (kernels.backtest.advance) over its sample state, and its steps
    "backtest.advance": lambda: (*_loop(), 0),
    "backtest._on_book_event": lambda: (*_loop(), 0, 0, 5),
    "backtest._quote": lambda: (*_loop(), 0, 5),
    "backtest._sample": lambda: (lambda a: (a[1], a[5], a[3][0], a[8], a[6], 0))(_loop()),
    "backtest._rl_step": lambda: (
        lambda a: (
            a[7],
            a[3][12],
            a[5][0],
            a[3][8],
            a[6][0],
            a[6][1],
            a[3][0],
            a[6][5],
            a[1][0],
            a[1][2][0],
            0,
            5,
        )
    )(_loop()),
    "backtest._apply_events": lambda: (
        lambda a: (a[2][0], a[2][5], a[5][0], a[5][2], a[4], a[3][0], a[8][0], a[8][1])
    )(_loop()),
    "backtest._due_and_apply": lambda: (
        lambda a: (a[2], a[5][0], a[5][2], a[4], a[3][0], a[8][0], a[8][1], 5)
    )(_loop()),
    "backtest._send_commands": lambda: (
        lambda a: (
            a[2][0],
            a[2][1],
            a[2][4],
            a[1][0],
            a[1][1],
            a[1][2],
            a[2][6],
            a[2][7],
            a[2][8],
            a[4],
            a[3][0],
            a[3][13],
            0,
            0,
            5,
        )
    )(_loop()),
    "backtest._feed_sample": lambda: (lambda a: (a[5][2], a[5][4], a[5][5], 1, 2))(_loop()),
    "backtest._feed_latency": lambda: (lambda a: (a[5][2], a[5][5], 1))(_loop()),
    "backtest._total_pnl": lambda: (_positions(),),
    "backtest._check_pnl": lambda: (lambda a: (a[5][2], a[5][3], a[5][0], a[3][0], a[6][7], 5))(
        _loop()
    ),
    "backtest._oms_find": lambda: (lambda a: (a[4], a[3][0], 0, 1))(_loop()),
    "backtest._oms_remove": lambda: (lambda a: (a[4], a[3][0], 0, 0))(_loop()),
    "backtest._copy_shadow": lambda: (
        lambda a: (a[1][0], a[1][1], a[1][2], a[2][6], a[2][7], a[2][8], 0)
    )(_loop()),
    "rl._bin": lambda: (0.5, -1.0, 1.0, 3),
    "rl.compute_rl_state": lambda: (*_rl()[2:4], np.zeros(5)),
    "rl.fill_rl_obs": lambda: (np.zeros(5), 1, 10, 20.0, 0.5, 0.5, 7, 300),
    "rl.compute_ofi_trades": lambda: (np.ones(20),),
    "rl.next_uniform": lambda: (np.array([7], np.uint64),),
    "rl.greedy_action": lambda: (_rl()[0], 0),
    "rl.greedy_visited_action": lambda: (*_rl()[:2], 0),
    "rl.select_action": lambda: (_rl()[0], 0, 0.1, np.array([7], np.uint64)),
    "rl.update_q": lambda: (*_rl()[:2], 0, 0, 1.0, 1, 0.1, 0.9),
    "rl.compute_reward": lambda: (1.0, 0.5, 2.0, 10.0, 0.5, 1.0),
    "rl.rl_decide": lambda: (*_rl(), np.ones(5), np.zeros(5), 7, 0.0, 1000.0, 1, 10, 0.01),
    "lstm.compute_state_size": lambda: (np.array([3, 2], I64),),
    "lstm.compute_top_offset": lambda: (np.array([3, 2], I64),),
    "lstm.compute_exp": lambda: (0.5,),
    "lstm.compute_fast_sigmoid": lambda: (0.5,),
    "lstm.compute_fast_tanh": lambda: (0.5,),
    "lstm.apply_gates": lambda: (
        np.zeros(8, np.float32),
        np.zeros(3, np.float32),
        0,
        np.zeros(24, np.float32),
        0,
        3,
        8,
    ),
    "lstm.apply_cell": lambda: (
        np.zeros(4, np.float32),
        np.zeros(8, np.float32),
        np.zeros(8, np.float32),
        0,
        2,
    ),
    "lstm.apply_lstm_step": lambda: _lstm(),
    "lstm.apply_lstm_input": lambda: (
        np.zeros(3, np.float32),
        np.zeros(3),
        np.concatenate([np.zeros(3), np.ones(3)]),
    ),
    "lstm.apply_lstm_update": lambda: (
        lambda a: (*a[:4], np.zeros(3), np.concatenate([np.zeros(3), np.ones(3)]), *a[4:])
    )(_lstm()),
    "lstm.compute_head": lambda: (
        np.zeros(4),
        np.zeros(4),
        _lstm()[0],
        np.array([3, 2], I64),
        0.0,
        np.zeros(2),
        np.zeros(1),
        np.array([2, 1], I64),
    ),
    "lstm.apply_lstm_window": lambda: (
        lambda a: (*a[:4], np.zeros(6), np.concatenate([np.zeros(3), np.ones(3)]), *a[4:])
    )(_lstm()),
    "portfolio.compute_fill": lambda: (2, -1300, 1300.0, -1, 651, 1),
    "portfolio.apply_fill": lambda: (_positions(), 0, 1, 651, 2, 0.01),
    "portfolio.apply_funding": lambda: (_positions(), 0, -0.5),
    "portfolio.compute_realized_quote": lambda: (_positions(), 0),
    "portfolio.compute_unrealized_quote": lambda: (_positions(), 0),
    "portfolio.update_mark": lambda: (_positions(), 0, 651.5),
    "portfolio.compute_pnl_quote": lambda: (_positions(), 0),
    # risk_size: weights float64[RSP_SIZE]; the reference (sigma, time s) starts NaN
    "risk_size.apply_vol_reference": lambda: (np.full(2, np.nan), 20.0, 1.0, 300.0),
    "risk_size.compute_risk_score": lambda: (np.ones(6), 25.0, 20.0, 1.0, 0.5, 0.3),
    "risk_size.compute_size_mult": lambda: (np.ones(6), 25.0, 20.0, 1.0, 0.5, 0.3),
    "hedge.reset_hedge_pair": lambda: (np.zeros(12), np.zeros(3, I64), 10**9, 60.0),
    "hedge.apply_return_pair": lambda: (np.zeros(12), np.zeros(3, I64), 0.001, 0.002),
    "hedge.update_hedge_pair": lambda: (
        np.zeros(12),
        np.array([10**9, 0, 0], I64),
        5,
        100.0,
        200.0,
    ),
    "hedge.compute_hedge_beta": lambda: (np.ones(12), np.array([10**9, 0, 5], I64), 3),
    "hedge.compute_hedge_skew": lambda: (2.0, 0.0, 10.0, 3.0),
}


def kernel_modules() -> list[ModuleType]:
    """Import and return every module of the `mmd.kernels` package except this one."""
    mods = []
    for info in sorted(pkgutil.iter_modules(mmd.kernels.__path__), key=lambda m: m.name):
        if info.name != "warmup":
            mods.append(importlib.import_module(f"mmd.kernels.{info.name}"))
    return mods


def dispatchers() -> dict[str, Dispatcher]:
    """Every numba dispatcher defined (not merely imported) in a kernel module, by table key."""
    found: dict[str, Dispatcher] = {}
    for mod in kernel_modules():
        short = mod.__name__.rsplit(".", 1)[1]
        for name, obj in vars(mod).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod.__name__:
                found[f"{short}.{name}"] = obj
    return found


# kernel modules only offline commands run (the jitted backtest loop: the largest compile)
OFFLINE_MODULES = frozenset({"backtest"})


def warmup(*, offline: bool = True) -> float:
    """Compile (or load from the numba cache) every kernel once.

    Args:
        offline: also the kernels of OFFLINE_MODULES (the daemon leaves them out: it never
            runs them, and the backtest loop alone takes over a minute to compile cold).

    Returns:
        Seconds taken.

    Raises:
        RuntimeError: a dispatcher has no entry in SAMPLE_ARGS, or an entry names no dispatcher.
    """
    t0 = time.perf_counter()
    found = dispatchers()
    missing = sorted(set(found) - set(SAMPLE_ARGS))
    stale = sorted(set(SAMPLE_ARGS) - set(found))
    if missing or stale:
        raise RuntimeError(
            f"mmd.kernels.warmup.SAMPLE_ARGS out of date: no entry for {missing}, "
            f"entry without a kernel for {stale}"
        )
    for key in sorted(found):
        if offline or key.split(".", 1)[0] not in OFFLINE_MODULES:
            found[key](*SAMPLE_ARGS[key]())
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"numba kernels warmed up in {warmup():.2f} s")  # noqa: T201

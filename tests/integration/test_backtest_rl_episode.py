"""The RL hook of the jitted backtest loop: run_episode learns a Q-table in place, is
reproducible from its seed, leaves the strategy alone when RL is off, and the loop resumes by
stream row exactly where it stopped (what a trainer stepping it as an environment relies on)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from mmd.config import AppConfig
from mmd.feeds.convert.event_cache import load_events
from mmd.kernels import backtest as kb
from mmd.kernels import rl as krl
from mmd.sim.backtest import run_backtest_fast, run_episode
from mmd.sim.strategy_loop import StrategyLoop


def _cfg() -> AppConfig:
    cfg = AppConfig()
    return msgspec.structs.replace(
        cfg,
        strategy=msgspec.structs.replace(cfg.strategy, model="glft"),
        exchange=msgspec.structs.replace(cfg.exchange, funding=False),
    )


def _agent(mode: int, seed: int = 7):
    rpi = np.zeros(krl.RPI_SIZE, np.int64)
    rpi[
        [krl.RPI_INV_BINS, krl.RPI_VOL_BINS, krl.RPI_OFI_BINS, krl.RPI_PADV_BINS, krl.RPI_TIME_BINS]
    ] = (5, 3, 1, 1, 4)
    rpi[krl.RPI_STEP_NS] = 5_000_000_000  # one RL decision per 5 s of exchange time
    rpi[krl.RPI_MODE] = mode
    rpf = np.zeros(krl.RPF_SIZE, np.float64)
    rpf[
        [
            krl.RPF_ALPHA,
            krl.RPF_DISCOUNT,
            krl.RPF_EPSILON,
            krl.RPF_DAMP,
            krl.RPF_INV_PENALTY,
            krl.RPF_VOL_REF,
            krl.RPF_OFI_SCALE,
        ]
    ] = (0.2, 0.9, 0.3, 0.5, 0.01, 20.0, 1.0)
    actions = krl.default_actions()
    q = np.zeros((krl.n_states(rpi), len(actions)), np.float64)
    return (
        q,
        np.zeros(q.shape, np.int64),
        rpi,
        rpf,
        actions,
        krl.new_agent_state(),
        np.array([seed], np.uint64),
    )


def _rows(res) -> list[tuple]:
    return [(*map(int, r), float(f)) for r, f in zip(res.fills, res.fees, strict=True)]


def test_episode_learns_in_place_reproducibly(binance_btc_rec: Path, tmp_path: Path) -> None:
    ev = load_events([binance_btc_rec], tmp_path / "cache")
    cfg = _cfg()
    plain = run_backtest_fast(ev, cfg)
    off = run_episode(ev, cfg, *_agent(krl.MODE_OFF))
    assert _rows(off) == _rows(plain)  # RL off: the strategy's own quotes
    a1 = _agent(krl.MODE_LEARN)
    r1 = run_episode(ev, cfg, *a1)
    q1, visits1, rs1 = a1[0], a1[1], a1[5]
    # 8 minutes of data, one decision per 5 s once quoting starts: dozens of decisions, each
    # after the first updating one (state, action) cell
    decisions = int(rs1[krl.RS_DECISIONS])
    assert decisions > 40
    assert int(visits1.sum()) == decisions - 1
    assert np.count_nonzero(q1) > 0
    assert _rows(r1) != _rows(plain)  # the actions moved the quotes
    a2 = _agent(krl.MODE_LEARN)
    r2 = run_episode(ev, cfg, *a2)
    assert _rows(r2) == _rows(r1)
    assert np.array_equal(a2[0], q1) and np.array_equal(a2[6], a1[6])
    # a second episode goes on learning the same table
    a1[5][:] = krl.new_agent_state()
    run_episode(ev, cfg, *a1)
    assert int(visits1.sum()) > decisions - 1


def test_loop_resumes_by_stream_row(binance_btc_rec: Path, tmp_path: Path) -> None:
    ev = load_events([binance_btc_rec], tmp_path / "cache")
    cfg = _cfg()
    whole = StrategyLoop(ev, cfg, rl=_agent(krl.MODE_LEARN))
    assert whole.advance() == 0
    steps = StrategyLoop(ev, cfg, rl=_agent(krl.MODE_LEARN))
    n = len(ev.ev_kind)
    for stop in range(997, n + 997, 997):  # env steps of ~1000 events
        assert kb.advance(*steps.state(), stop) == 0
        assert int(steps.acct[2][kb.G_ROW]) == min(stop, n)
    a, b = whole.result(), steps.result()
    assert _rows(a) == _rows(b) and len(a.fills) > 20
    assert a.total_pnl_quote == b.total_pnl_quote
    assert np.array_equal(whole.rl[0], steps.rl[0])

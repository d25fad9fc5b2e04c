"""The jitted backtest over the event cache (mmd.feeds.convert.events): `run_backtest_fast`
(the whole strategy loop in one call, what `mmd backtest --engine fast` runs), `run_episode`
(one RL episode) and `unsupported` (what the loop cannot run). The state is
`mmd.sim.strategy_loop`'s.
"""

from __future__ import annotations

import numpy as np

from mmd.config import AppConfig
from mmd.errors import InvariantViolation
from mmd.feeds.convert.events import EventArrays
from mmd.kernels import backtest as kb
from mmd.kernels.backtest import F64, I64, Arrays
from mmd.kernels.rl import U64
from mmd.sim.strategy_loop import LoopResult, StrategyLoop


def unsupported(ev: EventArrays, cfg: AppConfig) -> str | None:
    """Why the jitted loop cannot run this event cache with this config (None = it can):
    the loop has no funding settlement (tickers with `[exchange] funding` on), no
    instrument step change and no risk-scaled size (`[strategy] risk_size`)."""
    from mmd.model.codes import INST_CHANGED

    if cfg.strategy.risk_size:
        return "risk-scaled size ([strategy] risk_size) is not in the fast engine"
    if cfg.exchange.funding and len(ev.ticker_sym) > 0:
        return "funding from tickers is not in the fast engine"
    if np.any(np.asarray(ev.inst_flags) & INST_CHANGED):
        return "an instrument step change is not in the fast engine"
    return None


def run_backtest_fast(
    ev: EventArrays,
    cfg: AppConfig,
    *,
    rl: Arrays | None = None,
    ml: F64 | None = None,
) -> LoopResult:
    """The whole backtest (strategy, risk, paper exchange, portfolio) over the event cache in
    one jitted call; the same fills, positions and PnL as `mmd backtest --engine python`.

    Raises:
        InvariantViolation: a kernel refused a step (a bug, as in the Python driver).
    """
    cap = None
    # a rerun with a larger fill buffer must start from the caller's RL state, not a learnt one
    kept = [a.copy() for a in rl] if rl is not None else []
    while True:
        loop = StrategyLoop(ev, cfg, rl=rl, ml=ml, fills_capacity=cap)
        rc = loop.advance()
        if rc == kb.ERR_FILLS_FULL:
            cap = 2 * loop.out[0].shape[0]
            for a, k in zip(rl or (), kept, strict=True):
                a[...] = k
            continue
        if rc != 0:
            raise InvariantViolation(
                f"backtest.advance returned {rc} at stream row {int(loop.acct[2][kb.G_ROW])}"
            )
        return loop.result()


def run_episode(
    ev: EventArrays,
    cfg: AppConfig,
    q: F64,
    visits: I64,
    rpi: I64,
    rpf: F64,
    actions: F64,
    rs: F64,
    rng: U64,
) -> LoopResult:
    """One reinforcement-learning episode: the whole backtest over the event cache with the
    RL layer of `mmd.kernels.rl` making its call (`rl_decide`) at every quote decision, before
    the quote decision itself, exactly where the live strategy makes it.

    The RL arrays are used and updated in place (the Q-table learnt, the agent state and the
    random generator advanced), so a trainer calls this once per episode with the same arrays:

        q = np.zeros((krl.n_states(rpi), len(actions))); visits = np.zeros_like(q, np.int64)
        rs = krl.new_agent_state(); rng = np.array([seed], np.uint64)
        for _ in range(episodes):
            rs[:] = krl.new_agent_state()  # each episode starts afresh
            res = run_episode(ev, cfg, q, visits, rpi, rpf, actions, rs, rng)

    Args:
        ev: the event cache (mmd.feeds.convert.event_cache.load_events); every symbol in it
            is traded.
        cfg: the config (strategy model "as" or "glft"; `[exchange] funding` off or no
            tickers, no instrument step change: see `unsupported`).
        q: float64[n_states, n_actions]; visits: int64[n_states, n_actions].
        rpi: int64[RPI_SIZE] (RPI_MODE: MODE_LEARN to learn, MODE_GREEDY to evaluate,
            MODE_OFF = the plain strategy); rpf: float64[RPF_SIZE].
        actions: float64[n_actions, 2] (gamma multiplier, skew ticks).
        rs: float64[RS_SIZE] agent state (one symbol) or float64[n_sym, RS_SIZE].
        rng: uint64[1] xorshift state (non-zero).

    Observation at each decision (obs, slots OBS_*): position / max position, the
    calibrated sigma (ticks per sqrt s; the fallback before a fit), OFI 0.0 (the loop runs no
    feature engine: the neutral middle bin), adverse-selection probability NaN (no
    detector), the elapsed fraction of the AS session (now mod session_s). Reward inputs:
    the symbol's total PnL (quote), the mid and the position at the decision.

    Returns:
        The LoopResult (fills with client ids, fees, positions, total PnL, equity curve,
        decisions).

    For steps inside compiled code (an env step = advance to a later stream row), build a
    `StrategyLoop(ev, cfg, rl=(q, visits, rpi, rpf, actions, rs, rng))` and call
    `mmd.kernels.backtest.advance(*loop.state(), stop_row)` from the trainer's own njit
    function, as often as it likes: the loop resumes at `loop.acct[2][kb.G_ROW]`.
    """
    return run_backtest_fast(ev, cfg, rl=(q, visits, rpi, rpf, actions, rs, rng))

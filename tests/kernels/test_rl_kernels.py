"""Q-learning kernels (mmd.kernels.rl): bins, the generator, the update and the reward by hand,
a tiny MDP whose optimal policy is known, and rl_decide's decision clock."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from mmd.kernels import rl
from mmd.kernels.features import F_AVG_TRADE_LOTS, F_OFI, N_FEATURES
from mmd.kernels.strategy import ML_GAMMA_MULT, ML_SIZE, ML_SKEW_TICKS

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a multiple of 512 ns: exact as float64 (rs holds times as floats)


def _obs(
    inv: float = 0.0,
    sigma: float = math.nan,
    ofi: float = math.nan,
    p: float = math.nan,
    t: float = math.nan,
) -> np.ndarray:
    o = np.empty(rl.OBS_SIZE)
    o[rl.OBS_INV_FRAC], o[rl.OBS_SIGMA], o[rl.OBS_OFI] = inv, sigma, ofi
    o[rl.OBS_P_ADVERSE], o[rl.OBS_TIME_FRAC] = p, t
    return o


@pytest.mark.parametrize(
    ("inv", "expected"),
    [
        (-1.0, 0),
        (-5.0, 0),
        (-math.inf, 0),  # at or below the range: first bin
        (-0.51, 0),  # (-0.51 + 1) / 2 * 4 = 0.98 -> 0
        (-0.5, 1),  # (-0.5 + 1) / 2 * 4 = 1.0 -> 1
        (0.0, 2),
        (0.49, 2),  # 1.49 * 2 = 2.98 -> 2
        (0.5, 3),
        (0.99, 3),
        (1.0, 3),
        (7.0, 3),
        (math.inf, 3),
        (math.nan, 2),  # missing: the middle bin, 4 // 2
    ],
)
def test_inventory_bins_by_hand(inv: float, expected: int) -> None:
    rpi, rpf = rl.make_params((4, 1, 1, 1, 1), 5 * S, rl.MODE_GREEDY)
    assert rl.compute_rl_state(rpi, rpf, _obs(inv=inv)) == expected


def test_state_index_is_mixed_radix_inventory_slowest() -> None:
    # bins (inv 3, vol 2, ofi 2, adverse 3, time 2): 72 states
    rpi, rpf = rl.make_params((3, 2, 2, 3, 2), 5 * S, rl.MODE_GREEDY, vol_ref=10.0, ofi_scale=2.0)
    assert rl.n_states(rpi) == 72
    # inv 0.9 -> (1.9 / 2) * 3 = 2.85 -> 2; sigma 25 / 10 = 2.5 >= 2 -> 1;
    # ofi -4 / 2 -> tanh(-2) = -0.964 -> (0.036 / 2) * 2 = 0.036 -> 0; p 0.4 -> 1.2 -> 1;
    # time 0.75 -> 1.5 -> 1
    s = rl.compute_rl_state(rpi, rpf, _obs(0.9, 25.0, -4.0, 0.4, 0.75))
    assert s == (((2 * 2 + 1) * 2 + 0) * 3 + 1) * 2 + 1 == 63
    # every NaN but inventory: middle bins 1, 1, 1, 1 (n // 2)
    assert rl.compute_rl_state(rpi, rpf, _obs(-1.0)) == (((0 * 2 + 1) * 2 + 1) * 3 + 1) * 2 + 1


def test_fill_rl_obs_by_hand() -> None:
    obs = np.zeros(rl.OBS_SIZE)
    rl.fill_rl_obs(obs, -3, 12, 12.5, -7.5, 0.7, T0 + 75 * S, 100 * S)
    assert obs[rl.OBS_INV_FRAC] == -0.25  # -3 / 12
    assert obs[rl.OBS_SIGMA] == 12.5 and obs[rl.OBS_OFI] == -7.5
    assert obs[rl.OBS_P_ADVERSE] == 0.7
    # T0 = 1.7e9 s is a multiple of 100 s: 75 s into a 100 s session
    assert obs[rl.OBS_TIME_FRAC] == 0.75
    fx = np.full(N_FEATURES, np.nan)
    fx[F_OFI], fx[F_AVG_TRADE_LOTS] = -30.0, 4.0
    assert rl.compute_ofi_trades(fx) == -7.5  # -30 lots / 4 lots per trade
    fx[F_AVG_TRADE_LOTS] = np.nan  # no trade yet: no OFI scale
    assert math.isnan(rl.compute_ofi_trades(fx))


def _xorshift_star(x: int) -> tuple[int, float]:
    # xorshift64* written out on Python ints (Vigna 2016: shifts 12, 25, 27; multiplier
    # 0x2545F4914F6CDD1D), mantissa from the top 53 bits
    m = (1 << 64) - 1
    x ^= x >> 12
    x ^= (x << 25) & m
    x ^= x >> 27
    y = (x * 0x2545F4914F6CDD1D) & m
    return x, (y >> 11) / 2.0**53


def test_generator_matches_the_written_out_recurrence_and_is_reproducible() -> None:
    a, b = rl.new_rng(42), rl.new_rng(42)
    x = int(a[0])
    draws = []
    for _ in range(1000):
        x, u = _xorshift_star(x)
        got = rl.next_uniform(a)
        assert got == u and int(a[0]) == x
        assert 0.0 <= got < 1.0
        draws.append(got)
    assert [rl.next_uniform(b) for _ in range(1000)] == draws
    assert rl.next_uniform(rl.new_rng(43)) != draws[0]
    assert 0.45 < float(np.mean(draws)) < 0.55  # uniform on [0, 1): mean 0.5, SE 0.009


def test_q_update_arithmetic_by_hand() -> None:
    q = np.array([[1.0, 2.0], [3.0, 5.0]])
    visits = np.zeros((2, 2), np.int64)
    # target = 1 + 0.9 * max(3, 5) = 5.5; Q(0,0) = 1 + 0.5 * (5.5 - 1) = 3.25
    rl.update_q(q, visits, 0, 0, 1.0, 1, 0.5, 0.9)
    assert q[0, 0] == 3.25 and visits[0, 0] == 1
    # a self-loop sees its own updated row: target = -2 + 0.5 * max(3.25, 2) = -0.375;
    # Q(0,1) = 2 + 0.25 * (-0.375 - 2) = 1.40625
    rl.update_q(q, visits, 0, 1, -2.0, 0, 0.25, 0.5)
    assert q[0, 1] == 1.40625 and visits[0, 1] == 1
    assert q[1].tolist() == [3.0, 5.0] and visits.sum() == 2


def test_greedy_and_epsilon_greedy_selection() -> None:
    q = np.array([[0.0, 2.0, 2.0, 1.0]])
    assert rl.greedy_action(q, 0) == 1  # ties: the lowest index
    rng = rl.new_rng(1)
    assert all(rl.select_action(q, 0, 0.0, rng) == 1 for _ in range(50))
    counts = np.bincount([rl.select_action(q, 0, 1.0, rng) for _ in range(4000)], minlength=4)
    # epsilon 1: uniform over 4 actions, 1000 expected each (SD ~27)
    assert counts.min() > 850 and counts.max() < 1150
    counts = np.bincount([rl.select_action(q, 0, 0.2, rng) for _ in range(4000)], minlength=4)
    # epsilon 0.2: greedy 0.8 + 0.2 / 4 = 0.85 -> 3400 expected (SD ~23)
    assert 3250 < counts[1] < 3550 and counts[0] > 100


@njit
def _learn_chain(q, visits, rng, steps: int, alpha: float, discount: float, eps: float):
    # states 0 -> 1 -> 2 -> 0 on action 1 ("advance"), reward 1 only when advancing from 2;
    # action 0 ("stay") pays 0.1 and stays
    s = 0
    for _ in range(steps):
        a = rl.select_action(q, s, eps, rng)
        if a == 1:
            r = 1.0 if s == 2 else 0.0
            s_next = (s + 1) % 3
        else:
            r = 0.1
            s_next = s
        rl.update_q(q, visits, s, a, r, s_next, alpha, discount)
        s = s_next


def test_tiny_mdp_learns_its_known_optimal_policy_and_values() -> None:
    g = 0.9
    # optimal: always advance (a 3-step cycle paying 1, worth 1 / (1 - g^3) = 3.690 at state 2,
    # against 0.1 / (1 - g) = 1 for staying forever). Bellman by hand:
    v2 = 1.0 / (1.0 - g**3)  # 3.6900
    v1 = g * v2  # 3.3210
    v0 = g * v1  # 2.9889
    q_star = np.array(
        [[0.1 + g * v0, g * v1], [0.1 + g * v1, g * v2], [0.1 + g * v2, 1.0 + g * v0]]
    )
    # Q*(0, advance) = g V(1), Q*(1, advance) = g V(2), Q*(2, advance) = 1 + g V(0)
    assert q_star[0, 1] == pytest.approx(v0) and q_star[1, 1] == pytest.approx(v1)
    assert q_star[2, 1] == pytest.approx(v2)
    q = np.zeros((3, 2))
    visits = np.zeros((3, 2), np.int64)
    _learn_chain(q, visits, rl.new_rng(7), 200_000, 0.05, g, 0.3)
    assert [rl.greedy_action(q, s) for s in range(3)] == [1, 1, 1]
    np.testing.assert_allclose(q, q_star, atol=0.05)
    assert visits.min() > 1000  # epsilon 0.3 keeps trying the worse action everywhere
    # the same seed learns the same table, bit for bit
    q2, v2_ = np.zeros((3, 2)), np.zeros((3, 2), np.int64)
    _learn_chain(q2, v2_, rl.new_rng(7), 200_000, 0.05, g, 0.3)
    assert np.array_equal(q, q2) and np.array_equal(visits, v2_)


def test_compute_reward_by_hand() -> None:
    # gain of 4 tick-lots, 2 of them from inventory: 4 - 0.5 * 2 - 0.25 * 2^2 / 4 = 2.75
    assert rl.compute_reward(4.0, 2.0, 2.0, 4.0, 0.5, 0.25) == 2.75
    # an inventory loss is not dampened: -3 - 0 - 0.25 * 9 / 4 = -3.5625
    assert rl.compute_reward(-3.0, -5.0, -3.0, 4.0, 0.5, 0.25) == -3.5625
    # no limit: no penalty
    assert rl.compute_reward(1.0, 0.0, 9.0, 0.0, 0.5, 0.25) == 1.0


def _agent(mode: int, **kw: float) -> tuple[np.ndarray, ...]:
    rpi, rpf = rl.make_params((3, 1, 1, 1, 1), 5 * S, mode, **kw)
    actions = rl.default_actions()
    q = np.zeros((rl.n_states(rpi), len(actions)))
    visits = np.zeros(q.shape, np.int64)
    return q, visits, rpi, rpf, actions, rl.new_agent_state(), rl.new_rng(3)


def test_rl_decide_holds_the_action_between_decision_times() -> None:
    q, visits, rpi, rpf, actions, rs, rng = _agent(rl.MODE_GREEDY)
    visits[:] = 1  # greedy acts on tried actions only
    q[1, 13] = 1.0  # state 1 (inventory 0: the middle of 3 bins) prefers action 13
    ml = np.ones(ML_SIZE)
    args = (0.0, 1000.0, 0, 10, 0.01)

    def decide(t_ns: int, inv: float = 0.0) -> int:
        return rl.rl_decide(q, visits, rpi, rpf, actions, rs, rng, ml, _obs(inv), t_ns, *args)

    assert decide(T0) == 13
    assert (ml[ML_GAMMA_MULT], ml[ML_SKEW_TICKS]) == tuple(actions[13])
    assert rs[rl.RS_DECISIONS] == 1 and rs[rl.RS_NEXT_NS] == T0 + 5 * S
    # before the next decision time: the held action, even where another one is best, and ml
    # is rewritten (a caller that rebuilt ml still quotes with it)
    q[0, 2] = 5.0
    ml[:] = 1.0
    assert decide(T0 + 4 * S, inv=-1.0) == 13 and rs[rl.RS_DECISIONS] == 1
    assert (ml[ML_GAMMA_MULT], ml[ML_SKEW_TICKS]) == tuple(actions[13])
    # at the decision time: a new state (inventory -1: state 0), its greedy action 2
    assert decide(T0 + 5 * S, inv=-1.0) == 2 and rs[rl.RS_DECISIONS] == 2
    assert (ml[ML_GAMMA_MULT], ml[ML_SKEW_TICKS]) == tuple(actions[2])
    # a late call keeps the 5 s grid: 12 s after T0 decides, the next is at T0 + 15 s
    assert decide(T0 + 12 * S) == 13 and rs[rl.RS_NEXT_NS] == T0 + 15 * S
    assert decide(T0 + 14 * S, inv=-1.0) == 13 and rs[rl.RS_DECISIONS] == 3
    assert (visits == 1).all() and q[1, 13] == 1.0  # greedy mode never learns


def test_greedy_mode_acts_only_on_actions_tried_in_training() -> None:
    q, visits, rpi, rpf, actions, rs, rng = _agent(rl.MODE_GREEDY)
    ml = np.ones(ML_SIZE)
    # nothing tried in state 1: the neutral action 0 (gamma x1, no skew), whatever q says
    q[1, 5] = 9.0
    assert (
        rl.rl_decide(
            q, visits, rpi, rpf, actions, rs, rng, ml, _obs(0.0), T0, 0.0, 1000.0, 0, 10, 0.01
        )
        == 0
    )
    assert (ml[ML_GAMMA_MULT], ml[ML_SKEW_TICKS]) == (1.0, 0.0)
    # two tried, both losing: the lesser loss, not the untried zeros (nor the untried 9)
    visits[1, 7], q[1, 7] = 3, -2.0
    visits[1, 9], q[1, 9] = 1, -0.5
    assert rl.greedy_visited_action(q, visits, 1) == 9
    # greedy mode still scores its steps (RS_REWARD_SUM) without touching the table:
    # PnL 0 -> 0.05 quote at 0.01 per tick-lot = 5 tick-lots, flat, no penalty
    before, seen = q.copy(), visits.copy()
    rl.rl_decide(
        q, visits, rpi, rpf, actions, rs, rng, ml, _obs(0.0), T0 + 5 * S, 0.05, 1001.0, 0, 10, 0.01
    )
    assert rs[rl.RS_REWARD_SUM] == pytest.approx(5.0)
    assert np.array_equal(q, before) and np.array_equal(visits, seen)


def test_rl_decide_off_leaves_ml_alone() -> None:
    q, visits, rpi, rpf, actions, rs, rng = _agent(rl.MODE_OFF)
    ml = np.array([1.0, 1.0, 1.0, 0.0, np.nan])
    assert (
        rl.rl_decide(
            q, visits, rpi, rpf, actions, rs, rng, ml, _obs(), T0, 0.0, 1000.0, 0, 10, 0.01
        )
        == -1
    )
    assert ml[ML_GAMMA_MULT] == 1.0 and ml[ML_SKEW_TICKS] == 0.0 and rs[rl.RS_DECISIONS] == 0


def test_rl_decide_learns_the_hand_computed_reward() -> None:
    # alpha 1, discount 0: the Q value of the last step's (state, action) becomes its reward
    q, visits, rpi, rpf, actions, rs, rng = _agent(
        rl.MODE_LEARN, alpha=1.0, discount=0.0, epsilon=0.0, damp=0.5, penalty=0.25
    )
    ml = np.ones(ML_SIZE)
    unit = 0.5  # quote per tick-lot
    a0 = rl.rl_decide(
        q, visits, rpi, rpf, actions, rs, rng, ml, _obs(0.5), T0, 10.0, 100.0, 2, 4, unit
    )
    assert a0 == 0 and visits.sum() == 0  # the first decision has no step behind it
    s0 = int(rs[rl.RS_STATE])
    assert s0 == 2  # inventory 0.5 of 3 bins: 1.5 / 2 * 3 = 2.25 -> 2
    # 5 s later: PnL 10 -> 12 quote = 4 tick-lots; the 2 lots held saw the mid 100 -> 101:
    # 2 tick-lots of inventory gain, half dampened; penalty 0.25 * 2^2 / 4 = 0.25
    # r = 4 - 0.5 * 2 - 0.25 = 2.75
    rl.rl_decide(
        q, visits, rpi, rpf, actions, rs, rng, ml, _obs(0.0), T0 + 5 * S, 12.0, 101.0, 0, 4, unit
    )
    assert q[s0, a0] == 2.75 and visits[s0, a0] == 1 and rs[rl.RS_REWARD_SUM] == 2.75
    # the next step: flat, PnL 12 -> 11 (fees): r = -2 tick-lots, no inventory term
    s1, a1 = int(rs[rl.RS_STATE]), int(rs[rl.RS_ACTION])
    rl.rl_decide(
        q, visits, rpi, rpf, actions, rs, rng, ml, _obs(0.0), T0 + 10 * S, 11.0, 90.0, 0, 4, unit
    )
    assert q[s1, a1] == -2.0 and rs[rl.RS_REWARD_SUM] == 0.75
    # a NaN PnL (no mark yet) skips the update instead of poisoning the table
    before = q.copy()
    rl.rl_decide(
        q,
        visits,
        rpi,
        rpf,
        actions,
        rs,
        rng,
        ml,
        _obs(0.0),
        T0 + 15 * S,
        math.nan,
        90.0,
        0,
        4,
        unit,
    )
    assert np.array_equal(q, before) and visits.sum() == 2
    assert rs[rl.RS_DECISIONS] == 4


def test_default_actions_are_alpha_as_grid() -> None:
    a = rl.default_actions()
    assert a.shape == (20, 2) and a.dtype == np.float64
    assert sorted(set(a[:, 0].tolist())) == [0.25, 0.5, 1.0, 2.0]
    assert sorted(set(a[:, 1].tolist())) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert (a[0] == [1.0, 0.0]).all()  # neutral first: an empty table's ties pick it
    assert len({tuple(r) for r in a.tolist()}) == 20

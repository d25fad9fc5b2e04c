"""mmd.kernels.features: worked examples, hypothesis properties, jit vs py_func parity."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmd.kernels import features as kf
from mmd.model.codes import BUY, ERR_BAD_INPUT, OK, SELL

I64 = np.int64
SEC = 1_000_000_000
LN2 = math.log(2.0)


def arr(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=I64)


class St:
    """One pair of feature state arrays, reset with the given parameters, plus named views."""

    def __init__(
        self,
        *,
        levels: int = 2,
        sample_ns: int = SEC,
        flow_h: float = 10.0,
        queue_h: float = 5.0,
        kline_s: float = 60.0,
        bucket: int = 0,
        vol_window: int = 4,
        spread_window: int = 4,
        gk_window: int = 3,
        vpin_buckets: int = 4,
    ) -> None:
        windows = (vol_window, spread_window, gk_window, vpin_buckets)
        n_float, n_int = kf.compute_state_sizes(*windows)
        # garbage in the arrays first: nothing may rely on zeroed memory
        self.f = np.full(n_float, -3.25)
        self.i = np.full(n_int, 11, I64)
        code = kf.apply_reset(
            self.f, self.i, levels, sample_ns, flow_h, queue_h, kline_s, bucket, *windows
        )
        assert code == OK
        self.x = self.f[: kf.N_FEATURES]
        self.vl = self._window(kf.Q_VOL_LOG_OFF, kf.Q_VOL_WINDOW)
        self.vt = self._window(kf.Q_VOL_TICK_OFF, kf.Q_VOL_WINDOW)
        self.sp = self._window(kf.Q_SPREAD_OFF, kf.Q_SPREAD_WINDOW)
        self.gk = self._window(kf.Q_GK_OFF, kf.Q_GK_WINDOW)
        off = self.i[kf.Q_VPIN_OFF]
        self.vp = self.i[off : off + vpin_buckets]
        assert off + vpin_buckets == n_int

    def _window(self, q_off: int, q_cap: int) -> np.ndarray:
        off, cap = self.i[q_off], self.i[q_cap]
        return self.f[off : off + cap]

    def book(
        self, bids: list[tuple[int, int]], asks: list[tuple[int, int]], ts_ns: int, k: Any = None
    ) -> int:
        f = kf.update_book if k is None else k
        cap = 8
        bpx, bqty, apx, aqty = (np.full(cap, -1, I64) for _ in range(4))
        for j, (p, q) in enumerate(bids):
            bpx[j], bqty[j] = p, q
        for j, (p, q) in enumerate(asks):
            apx[j], aqty[j] = p, q
        return int(f(self.f, self.i, bpx, bqty, len(bids), apx, aqty, len(asks), ts_ns))

    def trade(self, ts_ns: int, qty: int, side: int, k: Any = None) -> int:
        f = kf.update_trade if k is None else k
        return int(f(self.f, self.i, ts_ns, qty, side))

    def arrays(self) -> list[np.ndarray]:
        return [self.f, self.i]


def same_arrays(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(p, q, equal_nan=True) for p, q in zip(a, b, strict=True))


# -- worked examples: book features ------------------------------------------------------------


def test_compute_imbalance_touch_and_two_levels_match_hand_values() -> None:
    bq, aq = arr([5, 3, 9]), arr([1, 1, 9])
    assert kf.compute_imbalance(bq, 3, aq, 3, 1) == pytest.approx((5 - 1) / 6)
    assert kf.compute_imbalance(bq, 3, aq, 3, 2) == pytest.approx((8 - 2) / 10)
    # k beyond the live levels uses what is there
    assert kf.compute_imbalance(bq, 2, aq, 2, 50) == pytest.approx(0.6)


def test_compute_imbalance_empty_side_or_bad_k_is_nan() -> None:
    q = arr([1, 2])
    assert math.isnan(kf.compute_imbalance(q, 0, q, 2, 1))
    assert math.isnan(kf.compute_imbalance(q, 2, q, 0, 1))
    assert math.isnan(kf.compute_imbalance(q, 2, q, 2, 0))


def test_compute_log_depth_ratio_two_levels_is_natural_log_of_ratio() -> None:
    bq, aq = arr([5, 3]), arr([1, 1])
    assert kf.compute_log_depth_ratio(bq, 2, aq, 2, 2) == pytest.approx(math.log(8 / 2))
    assert math.isnan(kf.compute_log_depth_ratio(bq, 2, aq, 0, 2))


def test_compute_weighted_mid_leans_to_the_thin_side() -> None:
    # 3 lots bid at 100, 1 lot offered at 102: (100*1 + 102*3) / 4
    wm = kf.compute_weighted_mid_ticks(arr([100]), arr([3]), 1, arr([102]), arr([1]), 1)
    assert wm == pytest.approx(101.5)
    assert math.isnan(kf.compute_weighted_mid_ticks(arr([100]), arr([3]), 1, arr([0]), arr([0]), 0))


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ((100, 5, 102, 5), (100, 5, 102, 5), 0),  # nothing changed
        ((100, 5, 102, 5), (100, 7, 102, 5), 2),  # bid queue grew by 2
        ((100, 5, 102, 5), (101, 2, 102, 5), 2),  # bid improved: the new queue counts
        ((100, 5, 102, 5), (99, 4, 102, 5), -5),  # bid level gone: the old queue leaves
        ((100, 5, 102, 5), (100, 5, 102, 8), -3),  # ask queue grew
        ((100, 5, 102, 5), (100, 5, 103, 4), 5),  # ask level taken out
        ((100, 5, 102, 5), (100, 5, 101, 1), -1),  # ask improved
    ],
)
def test_compute_ofi_increment_cks_cases_match_hand_values(
    before: tuple[int, int, int, int], after: tuple[int, int, int, int], expected: int
) -> None:
    assert kf.compute_ofi_increment(*before, *after) == expected


def test_compute_gk_variance_flat_candle_is_half_squared_range() -> None:
    hi = 100.0 * math.exp(0.01)
    assert kf.compute_gk_variance(100.0, hi, 100.0, 100.0) == pytest.approx(0.5e-4)
    # a candle that closed at its high: 0.5 u^2 - (2 ln 2 - 1) u^2
    u = math.log(hi / 100.0)
    assert kf.compute_gk_variance(100.0, hi, 100.0, hi) == pytest.approx(
        (0.5 - (2 * LN2 - 1)) * u * u
    )
    assert math.isnan(kf.compute_gk_variance(100.0, 99.0, 101.0, 100.0))
    assert math.isnan(kf.compute_gk_variance(0.0, 1.0, 0.0, 1.0))


def test_compute_window_std_matches_sample_std() -> None:
    v = [1.0, 2.0, 3.0, 4.0]
    s = kf.compute_window_std(sum(v), sum(t * t for t in v), 4)
    assert s == pytest.approx(math.sqrt(5.0 / 3.0))
    assert kf.compute_window_std(6.0, 12.0, 3) == 0.0  # constant window: exactly 0
    assert math.isnan(kf.compute_window_std(1.0, 1.0, 1))


def test_update_book_two_updates_sets_book_features_ofi_and_queue() -> None:
    s = St(levels=2)
    assert s.book([(100, 4), (99, 6)], [(102, 2), (103, 8)], 10 * SEC) == 0
    x = s.x
    assert x[kf.F_MID_TICKS] == 101.0
    assert x[kf.F_SPREAD_TICKS] == 2.0
    assert x[kf.F_SPREAD_BPS] == pytest.approx(2 / 101 * 1e4)
    assert x[kf.F_IMBALANCE_TOUCH] == pytest.approx(2 / 6)
    assert x[kf.F_IMBALANCE_K] == pytest.approx(0.0)
    assert x[kf.F_DEPTH_RATIO] == pytest.approx(0.0)
    assert x[kf.F_MICROPRICE_TICKS] == pytest.approx((100 * 2 + 102 * 4) / 6)
    assert x[kf.F_OFI] == 0.0
    assert math.isnan(x[kf.F_QUEUE_PRESSURE])  # no time has passed: no rate yet
    # one half-life of the queue clock later the bid queue grew by 3 at the same price
    s.book([(100, 7), (99, 6)], [(102, 2), (103, 8)], 15 * SEC)
    assert x[kf.F_OFI] == pytest.approx(3.0)
    w_q = 0.5 * 5.0 / LN2  # integral of the decay kernel over one half-life
    assert x[kf.F_QUEUE_PRESSURE_BID] == pytest.approx(3.0 / w_q)
    assert x[kf.F_QUEUE_PRESSURE_ASK] == 0.0
    assert x[kf.F_QUEUE_PRESSURE] == pytest.approx(3.0 / w_q)


def test_update_book_price_change_adds_ofi_but_no_queue_pressure() -> None:
    s = St()
    s.book([(100, 4)], [(102, 2)], SEC)
    s.book([(101, 1)], [(102, 2)], 2 * SEC)
    assert s.x[kf.F_OFI] == pytest.approx(1.0)  # the new bid queue
    assert s.x[kf.F_QUEUE_PRESSURE_BID] == 0.0


def test_update_book_empty_side_gives_nan_and_breaks_ofi_chain() -> None:
    s = St()
    s.book([(100, 4)], [(102, 2)], SEC)
    s.book([(100, 4)], [], 2 * SEC)
    assert math.isnan(s.x[kf.F_MID_TICKS])
    assert math.isnan(s.x[kf.F_IMBALANCE_TOUCH])
    s.book([(100, 9)], [(102, 2)], 3 * SEC)
    assert s.x[kf.F_OFI] == 0.0  # no increment across the one-sided book


def test_update_book_bad_level_count_returns_error_and_changes_nothing() -> None:
    s = St()
    before = [a.copy() for a in s.arrays()]
    q = arr([1])
    code = kf.update_book(s.f, s.i, q, q, 2, q, q, 1, SEC)
    assert code == ERR_BAD_INPUT
    assert same_arrays(before, s.arrays())


# -- worked examples: sampling clock, RV and spread z ------------------------------------------


def test_advance_clock_samples_book_in_force_at_each_second() -> None:
    s = St(vol_window=8, spread_window=8)
    s.book([(99, 1)], [(101, 1)], SEC // 2)  # mid 100 from 0.5 s; first clock point 1 s
    assert s.book([(100, 1)], [(102, 1)], 1_200_000_000) == 1  # point 1 s: mid 100
    assert s.book([(102, 1)], [(104, 1)], 3_700_000_000) == 2  # points 2 s, 3 s: mid 101
    # mid changes 100 -> 101 -> 101: returns [1, 0] ticks, std = sqrt(0.5)
    assert s.x[kf.F_RV_TICKS_PER_SQRT_S] == pytest.approx(math.sqrt(0.5))
    r = [math.log(101 / 100), 0.0]
    mean = sum(r) / 2
    std = math.sqrt(sum((v - mean) ** 2 for v in r))
    assert s.x[kf.F_RV_LOG_PER_S] == pytest.approx(std)
    # spreads sampled at 1, 2, 3 s: 2, 2, 2 ticks; now 2: z = 0 on a constant window
    assert s.x[kf.F_SPREAD_Z] == 0.0


def test_advance_clock_point_on_update_time_uses_that_update() -> None:
    s = St(vol_window=8)
    s.book([(99, 1)], [(101, 1)], SEC)  # exactly on the 1 s point: it is in force there
    s.book([(109, 1)], [(111, 1)], 2 * SEC)  # sample at 1 s = 100 (emitted now)
    s.book([(119, 1)], [(121, 1)], 3 * SEC)  # sample at 2 s = 110
    n = s.i[kf.I_VOL_TICK_RING + 1]
    assert n == 1
    assert s.vt[0] == 10.0


def test_advance_clock_rv_scales_with_sample_period() -> None:
    s = St(sample_ns=SEC // 4, vol_window=8)
    for j, mid in enumerate([100, 101, 100, 101, 100]):
        s.book([(mid - 1, 1)], [(mid + 1, 1)], j * SEC // 4 + 1)
    s.book([(99, 1)], [(101, 1)], 2 * SEC)
    # points 0.25 .. 1.75 s sample 100 101 100 101 100 100 100: six changes per 0.25 s,
    # std per sqrt(s) = std / sqrt(0.25)
    d = [1.0, -1.0, 1.0, -1.0, 0.0, 0.0]
    mean = sum(d) / len(d)
    std = math.sqrt(sum((v - mean) ** 2 for v in d) / (len(d) - 1))
    assert s.x[kf.F_RV_TICKS_PER_SQRT_S] == pytest.approx(std / 0.5)


def test_spread_z_wider_than_window_is_positive() -> None:
    s = St(spread_window=8)
    for j, spread in enumerate([2, 2, 4, 2]):
        s.book([(100, 1)], [(100 + spread, 1)], j * SEC + 1)
    s.book([(100, 1)], [(106, 1)], 4 * SEC + 1)  # samples 2, 2, 4, 2 ticks; now 6
    mean, std = 2.5, 1.0
    assert s.x[kf.F_SPREAD_Z] == pytest.approx((6 - mean) / std)


def test_spread_z_constant_window_and_different_spread_is_nan() -> None:
    s = St(spread_window=8)
    for j in range(3):
        s.book([(100, 1)], [(102, 1)], j * SEC + 1)
    s.book([(100, 1)], [(105, 1)], 3 * SEC + 1)
    assert math.isnan(s.x[kf.F_SPREAD_Z])


def test_apply_book_gap_cuts_return_chain_and_ofi() -> None:
    s = St(vol_window=8)
    s.book([(99, 1)], [(101, 1)], SEC)
    s.book([(99, 1)], [(101, 1)], 2 * SEC + 1)  # samples at 1 s, 2 s: one zero return
    kf.apply_book_gap(s.f, s.i, 2 * SEC + 5)
    assert math.isnan(s.x[kf.F_MID_TICKS])
    s.book([(199, 1)], [(201, 1)], 5 * SEC)  # points 3, 4 s have no book: skipped
    s.book([(199, 1)], [(201, 1)], 7 * SEC)  # points 5, 6 s: one zero return
    assert s.i[kf.I_VOL_TICK_RING + 1] == 2
    assert s.vt[:2].tolist() == [0.0, 0.0]  # no 100-tick jump across the gap


def test_advance_clock_long_gap_is_bounded_and_matches_step_by_step() -> None:
    a = St(vol_window=4, spread_window=5)
    b = St(vol_window=4, spread_window=5)
    for s in (a, b):
        s.book([(99, 1)], [(101, 1)], SEC)
        s.book([(104, 1)], [(108, 1)], 2 * SEC + 1)
    # a: one update a day later; b: the same book re-sent every second in between
    assert a.book([(104, 1)], [(108, 1)], 86_400 * SEC + 1) == 86_398  # points 3 .. 86400 s
    for t in range(3, 86_401, 997):
        b.book([(104, 1)], [(108, 1)], t * SEC + 1)
    b.book([(104, 1)], [(108, 1)], 86_400 * SEC + 1)
    for f in (kf.F_RV_TICKS_PER_SQRT_S, kf.F_RV_LOG_PER_S, kf.F_SPREAD_Z):
        assert a.x[f] == b.x[f]
    assert sorted(a.vt.tolist()) == sorted(b.vt.tolist()) == [0.0] * 4


# -- worked examples: EW flow, trades, VPIN, GK ------------------------------------------------


def test_update_trade_two_trades_one_half_life_apart_give_ew_rate() -> None:
    s = St(flow_h=10.0)
    assert s.trade(0, 4, BUY) == OK
    assert math.isnan(s.x[kf.F_TRADE_RATE_HZ])  # the clock just started
    s.trade(10 * SEC, 2, SELL)
    count = 0.5 + 1.0
    w = 0.5 * 10.0 / LN2
    assert s.x[kf.F_TRADE_RATE_HZ] == pytest.approx(count / w)
    assert s.x[kf.F_AVG_TRADE_LOTS] == pytest.approx((4 * 0.5 + 2) / count)
    assert s.x[kf.F_CUM_DELTA_LOTS] == 2.0
    assert s.x[kf.F_DELTA_EW_LOTS] == pytest.approx(4 * 0.5 - 2)


def test_update_trade_steady_stream_rate_converges_to_true_rate() -> None:
    s = St(flow_h=5.0)
    for j in range(2000):  # 4 trades/s of 3 lots for 500 s
        s.trade(j * SEC // 4, 3, BUY)
    assert s.x[kf.F_TRADE_RATE_HZ] == pytest.approx(4.0, rel=0.1)
    assert s.x[kf.F_AVG_TRADE_LOTS] == pytest.approx(3.0)


def test_update_trade_bad_side_or_size_returns_error() -> None:
    s = St()
    before = [a.copy() for a in s.arrays()]
    assert s.trade(SEC, 0, BUY) == ERR_BAD_INPUT
    assert s.trade(SEC, 3, 0) == ERR_BAD_INPUT
    assert same_arrays(before, s.arrays())


def test_advance_decay_earlier_event_applies_without_decay() -> None:
    s = St(flow_h=10.0)
    s.trade(10 * SEC, 1, BUY)
    s.trade(5 * SEC, 1, BUY)  # stamped earlier: added at 10 s
    assert s.i[kf.I_EW_LAST_NS] == 10 * SEC
    assert s.x[kf.F_DELTA_EW_LOTS] == 2.0


def test_update_vpin_split_trades_match_hand_buckets() -> None:
    s = St(bucket=10, vpin_buckets=8)
    assert s.trade(SEC, 6, BUY) == OK
    assert math.isnan(s.x[kf.F_VPIN])  # no full bucket yet
    s.trade(SEC, 8, SELL)  # bucket 1 = 6 buy + 4 sell -> |2|; 4 sell carried over
    assert s.x[kf.F_VPIN] == pytest.approx(0.2)
    s.trade(SEC, 26, BUY)  # bucket 2 = 4 sell + 6 buy -> |2|; then two 10-lot buy buckets
    assert s.x[kf.F_VPIN] == pytest.approx((2 + 2 + 10 + 10) / 40)
    assert s.i[kf.I_VPIN_BUY] == 0
    assert s.i[kf.I_VPIN_SELL] == 0


def test_update_vpin_auto_bucket_is_first_minute_volume_over_ten() -> None:
    s = St(bucket=0)
    for j in range(10):
        s.trade(j * 5 * SEC, 100, BUY if j % 2 else SELL)  # 1000 lots in 45 s
    assert s.i[kf.I_VPIN_BUCKET_LOTS] == 0
    s.trade(60 * SEC, 50, BUY)  # 60 s after the first trade: bucketing starts here
    assert s.i[kf.I_VPIN_BUCKET_LOTS] == 100
    assert s.i[kf.I_VPIN_BUY] == 50


def test_update_vpin_huge_trade_fills_ring_in_bounded_steps() -> None:
    s = St(bucket=1, vpin_buckets=4)
    done = kf.update_vpin(s.f, s.i, SEC, 10**12, SELL)
    assert done == 10**12
    assert s.x[kf.F_VPIN] == 1.0


def test_update_kline_window_mean_and_repeats_ignored() -> None:
    s = St(gk_window=2, kline_s=60.0)
    candles = [
        (100.0, 101.0, 99.0, 100.5),
        (100.5, 102.0, 100.0, 101.0),
        (101.0, 101.5, 100.5, 101.0),
    ]
    for j, c in enumerate(candles):
        assert kf.update_kline(s.f, s.i, j * 60 * SEC, *c) == 1
    assert kf.update_kline(s.f, s.i, 2 * 60 * SEC, *candles[2]) == 0  # repeat
    v = [kf.compute_gk_variance(*c) for c in candles[1:]]
    assert s.x[kf.F_GK_LOG_PER_S] == pytest.approx(math.sqrt(sum(v) / 2 / 60.0))
    assert kf.update_kline(s.f, s.i, 10**15, 1.0, 0.5, 2.0, 1.0) == ERR_BAD_INPUT


def test_apply_reset_bad_parameters_or_sizes_return_error() -> None:
    s = St()
    w = (4, 4, 3, 4)
    assert kf.apply_reset(s.f, s.i, 0, SEC, 1.0, 1.0, 60.0, 0, *w) == ERR_BAD_INPUT
    assert kf.apply_reset(s.f, s.i, 1, 0, 1.0, 1.0, 60.0, 0, *w) == ERR_BAD_INPUT
    assert kf.apply_reset(s.f, s.i, 1, SEC, 0.0, 1.0, 60.0, 0, *w) == ERR_BAD_INPUT
    assert kf.apply_reset(s.f, s.i, 1, SEC, 1.0, 1.0, 60.0, -1, *w) == ERR_BAD_INPUT
    assert kf.apply_reset(s.f, s.i, 1, SEC, 1.0, 1.0, 60.0, 0, 5, 4, 3, 4) == ERR_BAD_INPUT
    assert kf.apply_reset(s.f[:-1], s.i, 1, SEC, 1.0, 1.0, 60.0, 0, *w) == ERR_BAD_INPUT
    assert kf.apply_reset(s.f, s.i, 1, SEC, 1.0, 1.0, 60.0, 0, 0, 4, 3, 4) == ERR_BAD_INPUT


def test_compute_state_sizes_lays_windows_after_the_heads() -> None:
    assert kf.compute_state_sizes(10, 20, 3, 7) == (kf.N_FHEAD + 2 * 10 + 20 + 3, kf.N_IHEAD + 7)
    s = St(vol_window=10, spread_window=20, gk_window=3, vpin_buckets=7)
    views = [s.vl, s.vt, s.sp, s.gk]
    # the float windows tile state[N_FHEAD:] in order, without overlap
    assert [v.shape[0] for v in views] == [10, 10, 20, 3]
    assert s.i[kf.Q_VOL_LOG_OFF] == kf.N_FHEAD
    ends = [s.i[q] for q in (kf.Q_VOL_TICK_OFF, kf.Q_SPREAD_OFF, kf.Q_GK_OFF)]
    assert ends == [kf.N_FHEAD + 10, kf.N_FHEAD + 20, kf.N_FHEAD + 40]
    assert kf.F_VPIN < kf.N_FEATURES <= kf.P_FLOW_LAMBDA and kf.S_GK_SUM + 1 < kf.N_FHEAD
    assert kf.I_VPIN_SUM < kf.N_IHEAD


# -- hypothesis properties ---------------------------------------------------------------------

sizes = st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(bq=sizes, aq=sizes, k=st.integers(min_value=1, max_value=8))
def test_imbalance_bounded_antisymmetric_and_tied_to_depth_ratio(
    bq: list[int], aq: list[int], k: int
) -> None:
    b, a = arr(bq), arr(aq)
    imb = kf.compute_imbalance(b, len(bq), a, len(aq), k)
    assert -1.0 <= imb <= 1.0
    assert kf.compute_imbalance(a, len(aq), b, len(bq), k) == pytest.approx(-imb)
    ratio = kf.compute_log_depth_ratio(b, len(bq), a, len(aq), k)
    if abs(imb) < 0.999:
        assert ratio == pytest.approx(2.0 * math.atanh(imb), abs=1e-9)


touch = st.tuples(
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=1, max_value=100),
)


@settings(max_examples=300, deadline=None)
@given(t0=touch, t1=touch, mid=st.integers(min_value=1000, max_value=2000))
def test_ofi_increment_mirrored_book_flips_sign(
    t0: tuple[int, int, int, int], t1: tuple[int, int, int, int], mid: int
) -> None:
    def book(t: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        # bid t[0] ticks below mid, ask t[2] ticks above
        return mid - t[0], t[1], mid + t[2], t[3]

    def mirror(t: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        # negate prices and swap sides: bids become asks
        return -t[2], t[3], -t[0], t[1]

    b0, b1 = book(t0), book(t1)
    e = kf.compute_ofi_increment(*b0, *b1)
    assert kf.compute_ofi_increment(*mirror(b0), *mirror(b1)) == -e
    wm = kf.compute_weighted_mid_ticks(arr([b1[0]]), arr([b1[1]]), 1, arr([b1[2]]), arr([b1[3]]), 1)
    assert b1[0] <= wm <= b1[2]


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-1e-3, max_value=1e-3), min_size=1, max_size=60),
    cap=st.integers(min_value=1, max_value=7),
)
def test_ring_push_running_sums_equal_window_sums(values: list[float], cap: int) -> None:
    s = St(gk_window=cap)
    for v in values:
        kf._ring_push(s.f, s.i, kf.Q_GK_OFF, kf.Q_GK_WINDOW, kf.S_GK_SUM, kf.I_GK_RING, v)
    window = values[-cap:]
    assert s.i[kf.I_GK_RING + 1] == len(window)
    assert sorted(s.gk[: len(window)].tolist()) == sorted(window)
    assert s.f[kf.S_GK_SUM] == pytest.approx(sum(window), abs=1e-15)
    assert s.f[kf.S_GK_SUM + 1] == pytest.approx(sum(v * v for v in window), abs=1e-18)
    assert s.vl.tolist() == [-3.25] * 4  # the neighbours are untouched


@settings(max_examples=200, deadline=None)
@given(
    trades=st.lists(
        st.tuples(st.integers(min_value=1, max_value=40), st.sampled_from([BUY, SELL])),
        min_size=1,
        max_size=30,
    ),
    cut=st.integers(min_value=1, max_value=39),
    bucket=st.integers(min_value=1, max_value=25),
)
def test_update_vpin_splitting_a_trade_changes_nothing_and_stays_in_unit_interval(
    trades: list[tuple[int, int]], cut: int, bucket: int
) -> None:
    whole = St(bucket=bucket, vpin_buckets=5)
    split = St(bucket=bucket, vpin_buckets=5)
    for q, side in trades:
        kf.update_vpin(whole.f, whole.i, SEC, q, side)
        if q > cut:
            kf.update_vpin(split.f, split.i, SEC, cut, side)
            kf.update_vpin(split.f, split.i, SEC, q - cut, side)
        else:
            kf.update_vpin(split.f, split.i, SEC, q, side)
    # the ring's head may differ (a long one-sided run is pushed only as often as the ring
    # holds), its contents and every figure may not
    assert np.array_equal(whole.x, split.x, equal_nan=True)
    block = [kf.I_VPIN_BUY, kf.I_VPIN_SELL, kf.I_VPIN_COUNT, kf.I_VPIN_SUM]
    assert whole.i[block].tolist() == split.i[block].tolist()
    assert sorted(whole.vp.tolist()) == sorted(split.vp.tolist())
    v = whole.x[kf.F_VPIN]
    assert math.isnan(v) or 0.0 <= v <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=10**11), min_size=1, max_size=10),
    h=st.floats(min_value=0.1, max_value=100.0),
)
def test_advance_decay_in_steps_equals_one_decay(gaps: list[int], h: float) -> None:
    a = St(flow_h=h, queue_h=h)
    b = St(flow_h=h, queue_h=h)
    for s in (a, b):
        s.trade(0, 5, BUY)
    t = 0
    for g in gaps:
        t += g
        kf.advance_decay(a.f, a.i, t)
    kf.advance_decay(b.f, b.i, t)
    for f in (kf.F_DELTA_EW_LOTS, kf.F_TRADE_RATE_HZ):
        assert a.x[f] == pytest.approx(b.x[f], rel=1e-9, nan_ok=True)


# -- jit vs interpreted parity -----------------------------------------------------------------


def both(kernel: Any) -> list[Callable[..., Any]]:
    return [kernel, kernel.py_func]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b)


@settings(max_examples=100, deadline=None)
@given(
    bq=sizes,
    aq=sizes,
    k=st.integers(min_value=0, max_value=8),
    t0=touch,
    t1=touch,
    candle=st.tuples(*[st.floats(min_value=0.5, max_value=2.0)] * 4),
    win=st.lists(st.integers(min_value=-50, max_value=50), max_size=8),
)
def test_pure_kernels_jit_and_py_func_agree(
    bq: list[int],
    aq: list[int],
    k: int,
    t0: tuple[int, int, int, int],
    t1: tuple[int, int, int, int],
    candle: tuple[float, float, float, float],
    win: list[int],
) -> None:
    b, a = arr(bq), arr(aq)
    px_b = arr([1000 - j for j in range(len(bq))])
    px_a = arr([1001 + j for j in range(len(aq))])
    o, h, lo, c = candle
    ws = (float(sum(win)), float(sum(v * v for v in win)), len(win))
    out = []
    for mode in (0, 1):
        out.append(
            (
                both(kf.compute_imbalance)[mode](b, len(bq), a, len(aq), k),
                both(kf.compute_log_depth_ratio)[mode](b, len(bq), a, len(aq), k),
                both(kf.compute_weighted_mid_ticks)[mode](px_b, b, len(bq), px_a, a, len(aq)),
                both(kf.compute_ofi_increment)[mode](*t0, *t1),
                both(kf.compute_gk_variance)[mode](o, max(candle), min(candle), c),
                both(kf.compute_gk_variance)[mode](o, h, lo, c),
                both(kf.compute_window_std)[mode](*ws),
                both(kf.compute_state_sizes)[mode](len(bq), len(aq), k + 1, len(win) + 1),
            )
        )
    assert all(same(p, q) for p, q in zip(out[0], out[1], strict=True))


event = st.one_of(
    st.tuples(
        st.just("book"),
        st.integers(min_value=0, max_value=3_000_000_000),  # time step, ns
        st.integers(min_value=-3, max_value=3),  # mid move, ticks
        st.integers(min_value=1, max_value=3),  # spread, ticks
        st.integers(min_value=0, max_value=2),  # bid levels
        st.integers(min_value=0, max_value=2),  # ask levels
        st.integers(min_value=1, max_value=9),  # size
    ),
    st.tuples(
        st.just("trade"),
        st.integers(min_value=-500_000_000, max_value=3_000_000_000),
        st.sampled_from([BUY, SELL]),
        st.integers(min_value=1, max_value=30),
        st.just(0),
        st.just(0),
        st.just(0),
    ),
    st.tuples(
        st.just("kline"),
        st.integers(min_value=0, max_value=120_000_000_000),
        st.floats(min_value=0.9, max_value=1.1),
        st.floats(min_value=0.9, max_value=1.1),
        st.just(0),
        st.just(0),
        st.just(0),
    ),
    st.tuples(st.just("gap"), st.integers(0, SEC), *[st.just(0)] * 5),
)


@settings(max_examples=100, deadline=None)
@given(events=st.lists(event, max_size=60), bucket=st.sampled_from([0, 7]))
def test_stateful_kernels_jit_and_py_func_random_streams_agree(
    events: list[tuple[Any, ...]], bucket: int
) -> None:
    results = []
    for mode in (0, 1):
        s = St(bucket=bucket, vol_window=3, spread_window=4, gk_window=2, vpin_buckets=3)
        t = 10 * SEC
        mid = 1000
        codes = []
        for ev in events:
            kind, dt = ev[0], ev[1]
            t += dt
            if kind == "book":
                _, _, move, spread, nb, na, q = ev
                mid += move
                bids = [(mid - j, q + j) for j in range(nb)]
                asks = [(mid + spread + j, q + 2 * j) for j in range(na)]
                codes.append(s.book(bids, asks, t, both(kf.update_book)[mode]))
            elif kind == "trade":
                codes.append(s.trade(t, ev[3], ev[2], both(kf.update_trade)[mode]))
            elif kind == "kline":
                lo, hi = min(ev[2], ev[3]), max(ev[2], ev[3])
                codes.append(both(kf.update_kline)[mode](s.f, s.i, t, lo, hi, lo, hi))
            else:
                codes.append(both(kf.apply_book_gap)[mode](s.f, s.i, t))
        results.append((codes, s.arrays()))
    assert results[0][0] == results[1][0]
    assert same_arrays(results[0][1], results[1][1])


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-5.0, max_value=5.0), max_size=20),
    imb=st.lists(st.integers(min_value=0, max_value=9), max_size=10),
    mids=st.lists(st.one_of(st.just(math.nan), st.floats(min_value=90.0, max_value=110.0))),
)
def test_helper_kernels_jit_and_py_func_agree(
    values: list[float], imb: list[int], mids: list[float]
) -> None:
    states = []
    for mode in (0, 1):
        s = St(bucket=3, vol_window=3, spread_window=3, vpin_buckets=3)
        s.trade(SEC, 1, BUY)
        for v in values:
            both(kf._ring_push)[mode](
                s.f, s.i, kf.Q_GK_OFF, kf.Q_GK_WINDOW, kf.S_GK_SUM, kf.I_GK_RING, v
            )
        for q in imb:
            both(kf._vpin_push)[mode](s.f, s.i, q)
        both(kf.update_vpin)[mode](s.f, s.i, 2 * SEC, 5, SELL)
        both(kf.advance_decay)[mode](s.f, s.i, 3 * SEC)
        both(kf._refresh_flow)[mode](s.f)
        for j, m in enumerate(mids):
            s.f[kf.S_LAST_MID] = m
            s.f[kf.S_LAST_SPREAD] = 1.0 + j % 3
            both(kf._take_sample)[mode](s.f, s.i)
        both(kf.advance_clock)[mode](s.f, s.i, 5 * SEC)
        both(kf._refresh_spread_z)[mode](s.f, s.i)
        both(kf._clear_book_features)[mode](s.f, s.i)
        code = both(kf.apply_reset)[mode](s.f[:0], s.i, 1, 1, 1.0, 1.0, 1.0, 0, 1, 1, 1, 1)
        states.append((code, s.arrays()))
    assert states[0][0] == states[1][0] == ERR_BAD_INPUT
    assert same_arrays(states[0][1], states[1][1])


def test_every_feature_kernel_is_covered_by_a_parity_test() -> None:
    # the parity tests above call each of these through `both(...)`
    covered = {
        "compute_imbalance", "compute_log_depth_ratio", "compute_weighted_mid_ticks",
        "compute_ofi_increment", "compute_gk_variance", "compute_window_std", "_ring_push",
        "_vpin_push", "apply_reset", "_refresh_flow", "advance_decay", "_take_sample",
        "advance_clock", "_refresh_spread_z", "update_book", "apply_book_gap", "update_vpin",
        "update_trade", "update_kline", "compute_state_sizes", "_clear_book_features",
    }  # fmt: skip
    from numba.core.dispatcher import Dispatcher

    found = {n for n, o in vars(kf).items() if isinstance(o, Dispatcher)}
    assert found == covered

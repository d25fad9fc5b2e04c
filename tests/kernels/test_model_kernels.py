"""Model kernels: hand-checked arithmetic, and parity with scikit-learn's outputs to 1e-9."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmd.kernels import models as km
from mmd.kernels.features import (
    F_CUM_DELTA_LOTS,
    F_IMBALANCE_TOUCH,
    F_MICROPRICE_TICKS,
    F_MID_TICKS,
    F_VPIN,
    N_FEATURES,
)
from mmd.learn.features import ADVERSE_FEATURES, MARKET_FEATURES, ORIENTED, orient_vector

pytest.importorskip("sklearn", reason="scikit-learn (the `train` extra) is not installed")

from mmd.learn import train as tr


def test_market_vector_maps_engine_features_and_time_of_day() -> None:
    fx = np.full(N_FEATURES, np.nan)
    fx[F_MID_TICKS], fx[F_MICROPRICE_TICKS] = 1000.5, 1000.75
    fx[F_IMBALANCE_TOUCH], fx[F_CUM_DELTA_LOTS], fx[F_VPIN] = 0.25, -7.0, 0.4
    out = np.zeros(km.N_MARKET)
    six_hours_ns = 6 * 3600 * 10**9 + 3 * 86_400 * 10**9  # 06:00 UTC, three days in
    km.apply_market_features(out, fx, six_hours_ns, 3.0)
    assert out[km.M_MICROPRICE_OFFSET_TICKS] == 0.25  # 1000.75 - 1000.5
    assert out[km.M_IMBALANCE_TOUCH] == 0.25 and out[km.M_CUM_DELTA_LOTS] == -7.0
    assert out[km.M_VPIN] == 0.4 and out[km.M_INVENTORY] == 3.0
    # a quarter of the day: phase pi/2
    assert out[km.M_TOD_SIN] == pytest.approx(1.0) and abs(out[km.M_TOD_COS]) < 1e-12
    assert math.isnan(out[km.M_OFI])
    assert MARKET_FEATURES.index("vpin") == km.M_VPIN
    assert MARKET_FEATURES.index("inventory_lots") == km.M_INVENTORY


def test_side_input_flips_only_oriented_features() -> None:
    xm = np.arange(1.0, km.N_MARKET + 1.0)
    out = np.zeros(km.N_MARKET + 1)
    km.apply_side_input(out, xm, orient_vector(), -1.0)
    for j, name in enumerate(MARKET_FEATURES):
        assert out[j] == (-xm[j] if name in ORIENTED else xm[j]), name
    assert out[km.SIDE_INPUT] == -1.0 and ADVERSE_FEATURES[km.SIDE_INPUT] == "side"


def test_mlp_forward_by_hand() -> None:
    # layer 1 (2 -> 2): W = [[1, 2], [-1, 1]] (input i, output j), biases [0, -1]; layer 2
    # (2 -> 1): W = [[3], [-2]], bias 0.5. z = [1, 2]: h = relu([1*1 - 1*2 + 0, 2*1 + 1*2 - 1])
    # = [0, 3]; out = 3*0 - 2*3 + 0.5 = -5.5
    w = np.array([1.0, 2.0, -1.0, 1.0, 3.0, -2.0])
    b = np.array([0.0, -1.0, 0.5])
    sizes = np.array([2, 2, 1], np.int64)
    out = km.apply_mlp(np.zeros(2), np.zeros(2), np.array([1.0, 2.0]), w, b, sizes)
    assert out == -5.5
    assert math.isnan(
        km.apply_mlp(
            np.zeros(2), np.zeros(2), np.array([1.0, 2.0]), w, b, np.array([2, 2, 2], np.int64)
        )
    )


def test_standardise_treats_missing_as_mean() -> None:
    out = np.zeros(3)
    km.apply_standardise(
        out, np.array([3.0, np.nan, np.inf]), np.array([1.0, 5.0, 0.0]), np.array([2.0, 1.0, 1.0])
    )
    assert out.tolist() == [1.0, 0.0, 0.0]  # (3 - 1) / 2; missing -> 0


def test_sigmoid_is_finite_at_extremes() -> None:
    assert km.compute_sigmoid(0.0) == 0.5
    assert km.compute_sigmoid(-800.0) == 0.0 and km.compute_sigmoid(800.0) == 1.0
    assert km.compute_sigmoid(math.log(3.0)) == pytest.approx(0.75)  # 1 / (1 + 1/3)


def test_policy_widens_and_withdraws_the_threatened_side() -> None:
    # p0 = 0.4, k = 2, withdraw at 0.9: p_buy 0.6 -> ask x (1 + 2 * 0.2) = 1.4, quoted;
    # p_sell 0.95 -> bid x (1 + 2 * 0.55) = 2.1, withdrawn
    bm, am, qb, qa = km.compute_adverse_policy(0.6, 0.95, 0.4, 2.0, 0.9)
    assert (round(bm, 12), round(am, 12), qb, qa) == (2.1, 1.4, False, True)
    # below p0: neutral; NaN: neutral and quoted
    assert km.compute_adverse_policy(0.1, math.nan, 0.4, 2.0, 0.9) == (1.0, 1.0, True, True)


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, km.N_MARKET + 1)) * rng.uniform(0.1, 50, km.N_MARKET + 1)
    x[:, -1] = rng.choice([-1.0, 1.0], n)
    logit = 0.8 * x[:, 0] / x[:, 0].std() - 0.5 * x[:, 3] / x[:, 3].std() * x[:, -1]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    x[rng.uniform(size=x.shape) < 0.03] = np.nan  # missing values take the imputer's path
    x[:, 16] = np.nan  # a feature never seen (all missing)
    t = np.arange(n, dtype=np.int64) * 10**9
    return x, y, t


def _kernel_proba(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    sizes = arrays["sizes"]
    n_in = int(sizes[0])
    mean, scale = arrays["stats"][:n_in], arrays["stats"][n_in:]
    z = np.zeros(n_in)
    bufs = np.zeros(int(sizes.max())), np.zeros(int(sizes.max()))
    out = np.empty(len(x))
    for i, row in enumerate(x):
        km.apply_standardise(z, np.ascontiguousarray(row), mean, scale)
        if len(sizes) == 2:
            out[i] = km.compute_logistic(z, arrays["weights"], arrays["biases"][0])
        else:
            out[i] = km.compute_sigmoid(
                km.apply_mlp(*bufs, z, arrays["weights"], arrays["biases"], sizes)
            )
    return out


def test_logistic_and_mlp_kernels_match_sklearn_predict_proba() -> None:
    x, y, t = _toy(1500, 3)
    train, held = slice(0, 1200), slice(1200, None)
    lr, _ = tr.fit_logistic(x[train], y[train], t[train], purge_ns=0)
    mlp = tr.fit_mlp(x[train], y[train], alpha=1e-3, seed=1)
    for pipe in (lr, mlp):
        want = pipe.predict_proba(x[held])[:, 1]
        got = _kernel_proba(tr.export_network(pipe), x[held])
        assert np.max(np.abs(got - want)) < 1e-9
        assert 0.05 < want.mean() < 0.95  # a real fit, not a constant


def test_adverse_pair_equals_sklearn_on_both_oriented_rows() -> None:
    x, y, t = _toy(800, 5)
    pipe, _ = tr.fit_logistic(x, y, t, purge_ns=0)
    arrays = tr.export_network(pipe)
    orient = orient_vector()
    xm = np.ascontiguousarray(x[7, :-1])
    rows = np.zeros((2, km.N_MARKET + 1))
    km.apply_side_input(rows[0], xm, orient, 1.0)
    km.apply_side_input(rows[1], xm, orient, -1.0)
    want = pipe.predict_proba(rows)[:, 1]
    n = km.N_MARKET + 1
    got = km.apply_adverse_pair(
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        xm,
        orient,
        arrays["stats"],
        arrays["weights"],
        arrays["biases"],
        arrays["sizes"],
    )
    assert abs(got[0] - want[0]) < 1e-9 and abs(got[1] - want[1]) < 1e-9
    assert got[0] != got[1]  # the side matters


def test_spread_kernel_matches_sklearn_predict() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(600, km.N_MARKET))
    h = np.exp(1.0 + 0.5 * x[:, 10] + 0.1 * rng.normal(size=600))
    pipe = tr.fit_spread(x[:500], h[:500], alpha=1e-3, seed=2)
    a = tr.export_network(pipe)
    assert a["sizes"].tolist() == [km.N_MARKET, *tr.SPREAD_HIDDEN, 1]
    want = np.exp(pipe.predict(x[500:]))
    w = int(a["sizes"].max())
    got = np.array(
        [
            km.apply_spread_model(
                np.zeros(w),
                np.zeros(w),
                np.zeros(km.N_MARKET),
                np.ascontiguousarray(r),
                a["stats"],
                a["weights"],
                a["biases"],
                a["sizes"],
            )
            for r in x[500:]
        ]
    )
    assert np.max(np.abs(got - want) / want) < 1e-9

"""LSTM kernels: hand-checked cell arithmetic, the activations, and parity with PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmd.kernels import lstm as kl
from mmd.kernels import models as km


def _scratch(sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    width = int(sizes[1:].max())
    return (
        np.zeros(kl.compute_state_size(sizes), np.float32),
        np.zeros(4 * width, np.float32),
        np.zeros(width, np.float32),
        np.zeros(int(sizes[0]), np.float32),
    )


def test_cell_step_by_hand() -> None:
    # one input, one unit; raw v = 3 with mean 1, scale 2 -> z = 1. W_ih^T = [0, ln 3, 0, 0]
    # (gates i, f, g, o), W_hh = 0, biases [ln 3, 0, ln(3)/2, -ln 3]:
    # i = sigmoid(ln 3) = 3/4, f = sigmoid(ln 3 * z) = 3/4, g = tanh(ln(3)/2) = (3-1)/(3+1) = 1/2,
    # o = sigmoid(-ln 3) = 1/4.
    # step 1 from zero: c = 3/4 * 0 + 3/4 * 1/2 = 0.375, h = 1/4 tanh(0.375);
    # step 2: c = 3/4 * 0.375 + 0.375 = 0.65625, h = 1/4 tanh(0.65625)
    ln3 = math.log(3.0)
    sizes = np.array([1, 1], np.int64)
    w = np.array([0.0, ln3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], np.float32)
    b = np.array([ln3, 0.0, ln3 / 2, -ln3], np.float32)
    stats = np.array([1.0, 2.0])
    state, gates, xbuf, z = _scratch(sizes)
    kl.apply_lstm_update(state, gates, xbuf, z, np.array([3.0]), stats, w, b, sizes)
    assert state[1] == pytest.approx(0.375, abs=1e-6)
    assert state[0] == pytest.approx(0.25 * math.tanh(0.375), abs=1e-6)
    kl.apply_lstm_update(state, gates, xbuf, z, np.array([3.0]), stats, w, b, sizes)
    assert state[1] == pytest.approx(0.65625, abs=1e-6)
    assert state[0] == pytest.approx(0.25 * math.tanh(0.65625), abs=1e-6)
    # a missing input is the training mean: z = 0, so f = sigmoid(0) = 1/2
    kl.apply_lstm_update(state, gates, xbuf, z, np.array([np.nan]), stats, w, b, sizes)
    assert z[0] == 0.0 and state[1] == pytest.approx(0.5 * 0.65625 + 0.375, abs=1e-6)


def test_head_reads_the_top_layer_and_the_inventory() -> None:
    # two layers (1 -> 2 -> 3 units): the top h is state[4:7]; head 4 -> 1 linear:
    # weights [1, 2, 3, 10] . [h0, h1, h2, inventory] + 0.5
    sizes = np.array([1, 2, 3], np.int64)
    state = np.zeros(kl.compute_state_size(sizes), np.float32)
    assert state.shape == (10,) and kl.compute_top_offset(sizes) == 4
    state[4:7] = [0.5, -0.25, 0.125]
    hw, hb = np.array([1.0, 2.0, 3.0, 10.0]), np.array([0.5])
    out = kl.compute_head(
        np.zeros(5), np.zeros(5), state, sizes, -0.5, hw, hb, np.array([4, 1], np.int64)
    )
    assert out == pytest.approx(0.5 - 0.5 + 0.375 - 5.0 + 0.5)
    assert math.isnan(
        kl.compute_head(
            np.zeros(5), np.zeros(5), state, sizes, 0.0, hw, hb, np.array([5, 1], np.int64)
        )
    )


def test_fast_activations_match_libm() -> None:
    for x in np.linspace(-45.0, 45.0, 3601):
        e = kl.compute_exp(float(x))
        ref = math.exp(min(max(x, -40.0), 40.0))
        assert abs(e - ref) <= 1e-12 * ref
        assert abs(kl.compute_fast_sigmoid(float(x)) - km.compute_sigmoid(float(x))) < 1e-13
        assert abs(kl.compute_fast_tanh(float(x)) - math.tanh(x)) < 1e-12


torch = pytest.importorskip("torch", reason="PyTorch (the `deep` extra) is not installed")

from mmd.learn import deep_train as dt  # noqa: E402
from mmd.learn.deep_data import (  # noqa: E402
    DeepParams,
    fit_stats,
    gather_windows,
    standardise,
)
from mmd.learn.deep_runtime import DeepOrderFlowModel  # noqa: E402
from mmd.learn.model_file import ModelMeta  # noqa: E402


def _model(
    kind: str, heads: tuple[str, ...], seed: int
) -> tuple[dt.OrderFlowNet, np.ndarray, DeepOrderFlowModel]:
    dt.seed_everything(seed, 1)
    n_in = 5
    net = dt.OrderFlowNet(n_in, (16, 8), 4, heads, inventory=len(heads) > 1)
    # larger weights than the default init, so the gates saturate and the parity is tested
    # away from the linear regime too
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    net.eval()
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(400, n_in)) * [1.0, 10.0, 0.1, 5.0, 100.0] + [0, 3, 0, -2, 50]
    rows[rng.uniform(size=rows.shape) < 0.05] = np.nan
    stats = fit_stats(rows)
    meta = ModelMeta(kind=kind, format_version=1, version="t", features=list("abcde"))
    return net, rows, DeepOrderFlowModel(meta, dt.export_arrays(net, stats))


@pytest.mark.parametrize(
    "kind,heads", [("deep_lstm", dt.HEADS_LSTM), ("deep_multitask", dt.HEADS_MULTITASK)]
)
def test_kernel_matches_torch_on_windows_to_1e_5(kind: str, heads: tuple[str, ...]) -> None:
    net, rows, model = _model(kind, heads, 3)
    window = 32
    ends = np.arange(window - 1, len(rows), 7, dtype=np.int64)
    z = standardise(rows, model.stats)
    inv = np.linspace(-1.0, 1.0, len(ends))
    dp = DeepParams(window=window)
    b = dt.Batches(
        z=z,
        ends=ends,
        y_dir=np.zeros(len(ends)),
        y_spread=np.zeros(len(ends)),
        y_position=np.zeros(len(ends)),
        inventory=inv,
    )
    ref = dt.predict(net, b, dp.window)
    raw = rows[ends[:, None] + np.arange(1 - window, 1)[None, :]]
    got = model.predict_windows(raw, inv)
    for h in heads:
        assert np.max(np.abs(got[h] - ref[h])) < 1e-5, h
        assert np.std(ref[h]) > 1e-3, h  # the outputs vary: the comparison says something
    # the standardised windows the trainer feeds are those the kernel builds from raw rows
    assert gather_windows(z, ends, window).shape == (len(ends), window, 5)


def test_incremental_steps_equal_the_window_rerun() -> None:
    _, rows, model = _model("deep_lstm", dt.HEADS_LSTM, 5)
    window = 24
    model.reset()
    for r in rows[:window]:
        model.update(np.ascontiguousarray(r))
    p_step = model.head("price")
    state_step = model.state.copy()
    p_win = model.predict_windows(rows[None, :window])["price"][0]
    assert p_step == p_win and model.updates == 0
    # carrying the state on is not a re-run of the last window: a longer history differs
    model.reset()
    for r in rows[: window + 50]:
        model.update(np.ascontiguousarray(r))
    assert not np.array_equal(model.state, state_step)

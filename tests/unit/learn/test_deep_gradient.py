"""Gradient flow through the deep trainers: on a tiny task whose labels are exact functions of
the window, `mmd.learn.deep_train.fit_network` (the code path of `mmd train lstm|multitask`:
the same network, losses, Adam loop and early stopping) drives the training loss from its
starting value to near zero, for the LSTM (direction head) and the multi-task network (three
heads). Seeded, CPU, a few seconds."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the `deep` extra) is not installed")

from mmd.learn import deep_train as dtr  # noqa: E402
from mmd.learn.deep_data import DeepParams  # noqa: E402

N_IN = 3
WINDOW = 4


def _task(n: int, seed: int) -> dtr.Batches:
    """n windows of WINDOW standard normal vectors, laid end to end (window i ends at row
    WINDOW * i + WINDOW - 1). Labels read only the window:

    - direction: 1 when the last two values of input 0 sum above 0; windows with |sum| < 0.5
      are left unlabelled (NaN: the trainer's "mid unchanged"), so the classes are separable
      with a margin and the cross-entropy can approach 0;
    - spread (log half spread): 0.5 x input 1 of the last vector;
    - position: 0.6 x tanh(input 2 of the last vector), inside (-1, 1) so the tanh head can
      reach it; the inventory input is a draw in [-1, 1] the label ignores.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n * WINDOW, N_IN)).astype(np.float32)
    ends = np.arange(n, dtype=np.int64) * WINDOW + WINDOW - 1
    s = z[ends, 0].astype(np.float64) + z[ends - 1, 0]
    y_dir = np.where(s > 0, 1.0, 0.0)
    y_dir[np.abs(s) < 0.5] = np.nan
    return dtr.Batches(
        z=z,
        ends=ends,
        y_dir=y_dir,
        y_spread=0.5 * z[ends, 1].astype(np.float64),
        y_position=0.6 * np.tanh(z[ends, 2].astype(np.float64)),
        inventory=rng.uniform(-1.0, 1.0, n),
    )


def _params() -> DeepParams:
    # a tiny network, full-batch-ish Adam with a high rate, no early stop before the end
    return DeepParams(
        window=WINDOW,
        hidden=(16,),
        head=16,
        epochs=40,
        patience=1000,
        batch=64,
        lr=2e-2,
        seed=3,
        threads=1,
    )


@pytest.mark.parametrize("heads", [dtr.HEADS_LSTM, dtr.HEADS_MULTITASK], ids=["lstm", "multitask"])
def test_training_loss_falls_to_near_zero_on_a_learnable_task(heads: tuple[str, ...]) -> None:
    dp = _params()
    train = _task(256, seed=1)
    # the starting loss: fit_network seeds torch, then builds the network; doing the same
    # here builds the identical untrained network
    dtr.seed_everything(dp.seed, dp.threads)
    start = dtr.evaluate_loss(
        dtr.OrderFlowNet(N_IN, dp.hidden, dp.head, heads, inventory=len(heads) > 1), train, dp
    )
    fit = dtr.fit_network(train, train, dp, heads, N_IN)
    end = dtr.evaluate_loss(fit.net, train, dp)
    print({k: (round(start[k], 4), round(end[k], 4)) for k in start})
    # an untrained network answers about 0.5: the cross-entropy starts near ln 2 = 0.69
    assert start["price"] > 0.5
    for head in heads:
        # every head learned: its loss at most 5 % of where it started, and small in absolute
        # terms (cross-entropy 0.05 = a mean probability of about 0.95 on the true class;
        # squared errors against targets of standard deviation ~0.5: below 0.01)
        assert end[head] < 0.05 * start[head], (head, start[head], end[head])
        assert end[head] < (0.05 if head == "price" else 0.01), (head, end[head])
    # the loss went down over the epochs (the history the trainer itself recorded)
    hist = fit.history["train_total"]
    assert hist[-1] < 0.1 * hist[0]
    # and the fit generalises on fresh windows of the same task, i.e. it learned the rule
    fresh = _task(256, seed=2)
    pred = dtr.predict(fit.net, fresh, WINDOW)
    lab = np.isfinite(fresh.y_dir)
    assert np.mean((pred["price"][lab] > 0.5) == (fresh.y_dir[lab] > 0.5)) > 0.9

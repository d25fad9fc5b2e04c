"""The deep order-flow networks in PyTorch: LSTM trunk + dense heads, training, export.

Core of `mmd train lstm|multitask`: arrays in, a fitted network, its loss history and the
kernel arrays out; no file I/O but the loss plot's PNG. torch is imported here only (the
`deep` extra): the daemon never imports this module, it runs the exported arrays through
mmd.kernels.lstm.

The trunk is a stack of single-layer nn.LSTM modules (units `hidden`, e.g. 64 then 32; h0 =
c0 = 0 at the start of every window); a head is Linear(top units [+1 inventory], head) ->
ReLU -> Linear(head, 1). Heads: "price" (logit of an up move: sigmoid, binary cross-entropy
on the samples whose mid moved), "spread" (log of the best half spread, squared error on the
samples that have one), "position" (tanh -> the ex-post best inventory, squared error).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from mmd.learn.deep_data import (
    DeepParams,
    PooledSequences,
    gather_windows,
    position_label,
)

F32Array = npt.NDArray[np.float32]
F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]

HEADS_LSTM = ("price",)
HEADS_MULTITASK = ("price", "spread", "position")


def seed_everything(seed: int, threads: int) -> None:
    """Seed torch and make its CPU kernels deterministic (same seed, same weights)."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, threads))


class OrderFlowNet(nn.Module):
    """LSTM trunk over a window of standardised vectors, then one dense head per output.

    Args:
        n_in: inputs per book update.
        hidden: LSTM units per layer.
        head: hidden units of each head.
        heads: head names (HEADS_LSTM or HEADS_MULTITASK).
        inventory: the heads also read the inventory (multi-task).
    """

    def __init__(
        self, n_in: int, hidden: tuple[int, ...], head: int, heads: tuple[str, ...], inventory: bool
    ) -> None:
        super().__init__()
        sizes = (n_in, *hidden)
        self.lstms = nn.ModuleList(
            nn.LSTM(sizes[i], sizes[i + 1], batch_first=True) for i in range(len(hidden))
        )
        self.inventory = inventory
        n_head_in = hidden[-1] + (1 if inventory else 0)
        self.heads = nn.ModuleDict(
            {
                name: nn.Sequential(nn.Linear(n_head_in, head), nn.ReLU(), nn.Linear(head, 1))
                for name in heads
            }
        )

    def forward(self, x: torch.Tensor, inv: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each head's linear output, float32[batch], for windows x float32[batch, T, n_in]."""
        h = x
        for lstm in self.lstms:
            h, _ = lstm(h)
        top = h[:, -1, :]
        if self.inventory:
            assert inv is not None
            top = torch.cat([top, inv[:, None]], dim=1)
        return {name: head(top)[:, 0] for name, head in self.heads.items()}


@dataclass(slots=True)
class Fit:
    """A trained network and its history (per epoch: losses on training and validation)."""

    net: OrderFlowNet
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0


@dataclass(frozen=True, slots=True)
class Batches:
    """The standardised sequence and what one sample set needs to be fed."""

    z: F32Array
    ends: I64Array
    y_dir: F64Array
    y_spread: F64Array
    y_position: F64Array
    inventory: F64Array

    def __len__(self) -> int:
        return int(self.ends.shape[0])


def make_batches(z: F32Array, pooled: PooledSequences, idx: I64Array, dp: DeepParams) -> Batches:
    """The samples idx of pooled, over the standardised rows z."""
    return Batches(
        z=z,
        ends=pooled.ends[idx],
        y_dir=pooled.y_dir[idx],
        y_spread=pooled.y_spread[idx],
        y_position=position_label(
            pooled.move_ticks[idx],
            pooled.half_spread_ticks[idx],
            pooled.inventory[idx],
            dp.position_penalty_ticks,
        ),
        inventory=pooled.inventory[idx],
    )


def _losses(
    out: dict[str, torch.Tensor], b: Batches, sel: I64Array, dp: DeepParams
) -> dict[str, torch.Tensor]:
    """Per-head mean losses on the samples sel of b (a head with no labelled sample gives 0)."""
    losses: dict[str, torch.Tensor] = {}
    y = torch.from_numpy(b.y_dir[sel])
    m = torch.isfinite(y)
    losses["price"] = (
        nn.functional.binary_cross_entropy_with_logits(out["price"][m], y[m].float())
        if bool(m.any())
        else out["price"].sum() * 0.0
    )
    if "spread" in out:
        ys = torch.from_numpy(b.y_spread[sel])
        ms = torch.isfinite(ys)
        losses["spread"] = (
            ((out["spread"][ms] - ys[ms].float()) ** 2).mean()
            if bool(ms.any())
            else out["spread"].sum() * 0.0
        )
    if "position" in out:
        yp = torch.from_numpy(b.y_position[sel]).float()
        losses["position"] = ((torch.tanh(out["position"]) - yp) ** 2).mean()
    return losses


def _total(losses: dict[str, torch.Tensor], dp: DeepParams) -> torch.Tensor:
    w = {"price": dp.loss_price, "spread": dp.loss_spread, "position": dp.loss_position}
    return sum((w[k] * v for k, v in losses.items()), torch.zeros(()))


def _forward(net: OrderFlowNet, b: Batches, sel: I64Array, window: int) -> dict[str, torch.Tensor]:
    x = torch.from_numpy(gather_windows(b.z, b.ends[sel], window))
    inv = torch.from_numpy(b.inventory[sel].astype(np.float32)) if net.inventory else None
    out: dict[str, torch.Tensor] = net(x, inv)
    return out


def evaluate_loss(net: OrderFlowNet, b: Batches, dp: DeepParams) -> dict[str, float]:
    """Sample-weighted mean of each head's loss and of the weighted total over b."""
    sums: dict[str, float] = {}
    n = 0
    with torch.no_grad():
        for lo in range(0, len(b), dp.batch * 4):
            sel = np.arange(lo, min(lo + dp.batch * 4, len(b)))
            losses = _losses(_forward(net, b, sel, dp.window), b, sel, dp)
            losses["total"] = _total(losses, dp)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(sel)
            n += len(sel)
    return {k: v / max(n, 1) for k, v in sums.items()}


def fit_network(
    train: Batches,
    valid: Batches,
    dp: DeepParams,
    heads: tuple[str, ...],
    n_in: int,
    progress: bool = False,
    desc: str = "epochs",
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> Fit:
    """Adam on minibatches of train; early stopping on valid's weighted loss (the weights of
    the best epoch are kept; training stops after `patience` epochs without improvement)."""
    from tqdm import tqdm

    seed_everything(dp.seed, dp.threads)
    net = OrderFlowNet(n_in, dp.hidden, dp.head, heads, inventory=len(heads) > 1)
    opt = torch.optim.Adam(net.parameters(), lr=dp.lr, weight_decay=dp.weight_decay)
    rng = np.random.default_rng(dp.seed)
    fit = Fit(net)
    best = math.inf
    best_state: dict[str, torch.Tensor] = {}
    stale = 0
    bar = tqdm(range(1, dp.epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        net.train()
        order = rng.permutation(len(train))
        for lo in range(0, len(order), dp.batch):
            sel = order[lo : lo + dp.batch]
            opt.zero_grad()
            loss = _total(_losses(_forward(net, train, sel, dp.window), train, sel, dp), dp)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward unannotated
            opt.step()
        net.eval()
        tr_loss = evaluate_loss(net, train, dp)
        va_loss = evaluate_loss(net, valid, dp) if len(valid) else tr_loss
        for k, v in tr_loss.items():
            fit.history.setdefault(f"train_{k}", []).append(v)
        for k, v in va_loss.items():
            fit.history.setdefault(f"valid_{k}", []).append(v)
        fit.epochs_run = epoch
        bar.set_postfix(train=f"{tr_loss['total']:.4f}", valid=f"{va_loss['total']:.4f}")
        if on_epoch is not None:
            on_epoch(epoch, va_loss)
        if va_loss["total"] < best - 1e-6:
            best = va_loss["total"]
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            fit.best_epoch = epoch
            stale = 0
        else:
            stale += 1
            if stale >= dp.patience:
                break
    if best_state:
        net.load_state_dict(best_state)
    net.eval()
    return fit


def predict(net: OrderFlowNet, b: Batches, window: int, batch: int = 1024) -> dict[str, F64Array]:
    """Each head's output on b: price P(up), spread exp(.) half spread ticks, position
    tanh(.)."""
    outs: dict[str, list[F64Array]] = {}
    with torch.no_grad():
        for lo in range(0, len(b), batch):
            sel = np.arange(lo, min(lo + batch, len(b)))
            for k, v in _forward(net, b, sel, window).items():
                outs.setdefault(k, []).append(v.double().numpy())
    res = {k: np.concatenate(v) for k, v in outs.items()}
    out: dict[str, F64Array] = {}
    if "price" in res:
        out["price"] = 1.0 / (1.0 + np.exp(-res["price"]))
    if "spread" in res:
        out["spread"] = np.exp(res["spread"])
    if "position" in res:
        out["position"] = np.tanh(res["position"])
    return out


# -- export to mmd.kernels.lstm ----------------------------------------------------------------


def _parameter(m: nn.Module, name: str) -> torch.Tensor:
    """A layer's parameter by name, detached (nn.LSTM registers its weights by name)."""
    p = getattr(m, name)
    assert isinstance(p, torch.Tensor)
    return p.detach()


def export_arrays(net: OrderFlowNet, stats: F64Array) -> dict[str, npt.NDArray[Any]]:
    """The kernel arrays (layouts in mmd.kernels.lstm): stats, lstm_sizes, lstm_weights,
    lstm_biases (float32), and per head <name>_weights, <name>_biases, <name>_sizes
    (mmd.kernels.models.apply_mlp layout, float64)."""
    sizes = [net.lstms[0].input_size] + [m.hidden_size for m in net.lstms]
    ws: list[F32Array] = []
    bs: list[F32Array] = []
    for m in net.lstms:
        w_ih = _parameter(m, "weight_ih_l0").numpy()  # (4H, n_in), rows i, f, g, o
        w_hh = _parameter(m, "weight_hh_l0").numpy()
        ws += [np.ascontiguousarray(w_ih.T).ravel(), np.ascontiguousarray(w_hh.T).ravel()]
        bs.append((_parameter(m, "bias_ih_l0") + _parameter(m, "bias_hh_l0")).numpy())
    out: dict[str, npt.NDArray[Any]] = {
        "stats": np.ascontiguousarray(stats, np.float64),
        "lstm_sizes": np.array(sizes, np.int64),
        "lstm_weights": np.concatenate(ws).astype(np.float32),
        "lstm_biases": np.concatenate(bs).astype(np.float32),
    }
    for name, head in net.heads.items():
        assert isinstance(head, nn.Sequential)
        lin = [m for m in head if isinstance(m, nn.Linear)]
        out[f"{name}_weights"] = np.concatenate(
            [np.ascontiguousarray(m.weight.detach().double().numpy().T).ravel() for m in lin]
        )
        out[f"{name}_biases"] = np.concatenate([m.bias.detach().double().numpy() for m in lin])
        out[f"{name}_sizes"] = np.array(
            [lin[0].in_features, *(m.out_features for m in lin)], np.int64
        )
    return out


def plot_losses(
    history: dict[str, list[float]], best_epoch: int, path: str | Path, title: str
) -> Path:
    """Loss curves (training and validation per head and total, by epoch) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = sorted({k.split("_", 1)[1] for k in history})
    fig, axes = plt.subplots(1, len(heads), figsize=(4.0 * len(heads), 3.2), squeeze=False)
    for ax, head in zip(axes[0], heads, strict=True):
        for split, style in (("train", "-"), ("valid", "--")):
            ys = history.get(f"{split}_{head}", [])
            ax.plot(range(1, len(ys) + 1), ys, style, label=split)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", lw=0.8, ls=":", label="kept")
        ax.set_title(head)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("loss")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out

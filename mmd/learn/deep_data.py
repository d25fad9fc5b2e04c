"""Sequence datasets for the deep order-flow models: windows of book-update vectors, labels.

Core: market series in (mmd.learn.dataset.extract_market), arrays out; no file I/O, no torch.
The sequence is the market vector (mmd.learn.features.MARKET_FEATURES without the inventory,
which these market datasets do not know) after each book update. A sample ends at a book
update at time t: its window is that update's vector and the T - 1 before it (never reaching
before its recording's first update), so the window has seen exactly the frames received at or
before t; every label looks only after t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from mmd.kernels.features import F_SPREAD_TICKS
from mmd.kernels.models import Z_CLIP
from mmd.learn.dataset import LabelParams, MarketSeries, best_half_spread
from mmd.learn.features import MARKET_FEATURES, market_matrix

F32Array = npt.NDArray[np.float32]
_F = TypeVar("_F", np.float32, np.float64)
F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]

# the per-update input vector: the market vector without inventory_lots (the multi-task heads
# take the inventory as their own input, next to the sequence summary)
SEQUENCE_FEATURES: tuple[str, ...] = tuple(n for n in MARKET_FEATURES if n != "inventory_lots")
N_SEQUENCE = len(SEQUENCE_FEATURES)
assert MARKET_FEATURES[:N_SEQUENCE] == SEQUENCE_FEATURES


class DeepParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Labels, network and training settings of `mmd train lstm|multitask` (`--set key=value`).

    Samples and labels:
        window: T, book updates per window.
        stride: a sample ends at every stride-th book update.
        horizon_s: direction and position labels read the mid this long after t.
        window_s, grid_ticks, inventory_penalty_ticks: the spread label (as `mmd train
            spread`: the best symmetric half spread over the next window_s).
        position_penalty_ticks: lambda of the position label (see position_label).
    Network: hidden (LSTM units per layer), head (hidden units of each dense head).
    Training: epochs, patience (early stopping: epochs without a better validation loss),
        batch, lr (Adam), weight_decay, valid_share (the latest share of the training samples,
        by time and purged, is the validation split), n_splits and purge_s (walk-forward, the
        purge raised to the longest label), seed, threads (torch CPU threads), loss_price,
        loss_spread, loss_position (multi-task loss weights), baselines (fit the logistic
        baselines on each split).
    """

    window: int = 64
    stride: int = 4
    horizon_s: float = 5.0
    window_s: float = 10.0
    grid_ticks: tuple[float, ...] = LabelParams().grid_ticks
    inventory_penalty_ticks: float = 0.5
    position_penalty_ticks: float = 1.0
    hidden: tuple[int, ...] = (64, 32)
    head: int = 16
    epochs: int = 30
    patience: int = 5
    batch: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.0
    valid_share: float = 0.2
    n_splits: int = 3
    purge_s: float = 0.0
    seed: int = 7
    threads: int = 1
    loss_price: float = 1.0
    loss_spread: float = 2.0
    loss_position: float = 1.5
    baselines: bool = True

    def __post_init__(self) -> None:
        if self.window < 1 or self.stride < 1 or self.epochs < 1 or self.batch < 1:
            raise ValueError("window, stride, epochs and batch must be >= 1")
        if not self.hidden or min(self.hidden) < 1 or self.head < 1:
            raise ValueError("hidden and head units must be >= 1")
        if not 0.0 < self.valid_share < 1.0:
            raise ValueError("valid_share must be in (0, 1)")


@dataclass(frozen=True, slots=True)
class SequenceData:
    """One recording's sequence and samples.

    Attributes:
        x: float64[n_updates, N_SEQUENCE] the raw vector after each book update (NaN missing).
        ends: int64[n] the row of x each sample ends at (its window: ends - T + 1 .. ends).
        t_ns: int64[n] the sample time (the receive time of that book update).
        y_dir: float64[n] 1 when the mid horizon_s later is above the mid at t, 0 below, NaN
            unchanged (left out of the direction loss and figures).
        move_ticks: float64[n] mid(t + horizon_s) - mid(t).
        half_spread_ticks: float64[n] half the quoted spread at t (the position label's cost
            of trading one unit).
        y_spread: float64[n] log of the best half spread over (t, t + window_s], NaN where no
            grid quote would have filled.
        label_end_ns: int64[n] the last time any label looks at.
    """

    x: F64Array
    ends: I64Array
    t_ns: I64Array
    y_dir: F64Array
    move_ticks: F64Array
    half_spread_ticks: F64Array
    y_spread: F64Array
    label_end_ns: I64Array

    def __len__(self) -> int:
        return int(self.ends.shape[0])


def position_label(
    move_ticks: F64Array, half_spread_ticks: F64Array, inventory: F64Array, penalty_ticks: float
) -> F64Array:
    """The ex-post best inventory in [-1, 1], holding `inventory` at t.

    q maximises q * move - lambda * q^2 - kappa * |q - inventory| (the move earned on the held
    position, a quadratic risk penalty, and half the spread paid per unit traded). Its concave
    pieces peak at q_up = (move - kappa) / (2 lambda) when buying and q_down = (move + kappa) /
    (2 lambda) when selling, so q = clip(min(max(inventory, q_up), q_down), -1, 1): no trade
    inside the band [q_up, q_down].
    """
    lam = 2.0 * max(penalty_ticks, 1e-12)
    kappa = np.where(np.isfinite(half_spread_ticks), half_spread_ticks, 0.0)
    q_up = (move_ticks - kappa) / lam
    q_down = (move_ticks + kappa) / lam
    out: F64Array = np.clip(np.minimum(np.maximum(inventory, q_up), q_down), -1.0, 1.0)
    return out


def sequence_dataset(ms: MarketSeries, dp: DeepParams) -> SequenceData:
    """Windows and labels of one recording (see SequenceData).

    A sample ends at the book update received at t (a stride-th one with T - 1 updates before
    it). mid(t + h) is the mid of the last state row received at or before t + h (book or trade
    rows: the market as a live daemon would see it then); samples whose labels run past the
    recording's last row are left out. The spread label scores the trades received in (t, t +
    window_s] exactly as mmd.learn.dataset.spread_dataset does.
    """
    book = np.flatnonzero(ms.is_book).astype(np.int64)
    ts_book = ms.ts_ns[book]
    x = market_matrix(ms.fx[book], ts_book)[:, :N_SEQUENCE].copy()
    x[~np.isfinite(x)] = np.nan
    last = int(ms.ts_ns[-1]) if len(ms.ts_ns) else -1
    h_ns = round(dp.horizon_s * 1e9)
    w_ns = round(dp.window_s * 1e9)
    ends: I64Array = np.arange(dp.window - 1, len(book), dp.stride, dtype=np.int64)
    t = ts_book[ends]
    ends = ends[t + max(h_ns, w_ns) <= last]
    t = ts_book[ends]
    mids = ms.mid_ticks
    m0 = mids[book[ends]]
    m_h = mids[np.searchsorted(ms.ts_ns, t + h_ns, side="right") - 1] if len(ends) else m0
    move = m_h - m0
    y_dir = np.where(move > 0, 1.0, np.where(move < 0, 0.0, np.nan))
    half = ms.fx[book[ends], F_SPREAD_TICKS] / 2.0
    grid = np.asarray(sorted(dp.grid_ticks), np.float64)
    y_spread = np.full(len(ends), np.nan)
    lo_all = np.searchsorted(ms.trade_ts_ns, t, side="right")
    hi_all = np.searchsorted(ms.trade_ts_ns, t + w_ns, side="right")
    end_rows = np.searchsorted(ms.ts_ns, t + w_ns, side="right") - 1
    for i in range(len(ends)):
        lo, hi = lo_all[i], hi_all[i]
        if hi == lo:
            continue
        side = ms.trade_side[lo:hi].astype(np.float64)
        d = side * (ms.trade_px_ticks[lo:hi] - m0[i])
        best, _, fills = best_half_spread(
            d, side, float(mids[end_rows[i]] - m0[i]), grid, dp.inventory_penalty_ticks
        )
        if fills:
            y_spread[i] = math.log(grid[best])
    return SequenceData(
        x=x,
        ends=ends,
        t_ns=t.astype(np.int64),
        y_dir=y_dir,
        move_ticks=move,
        half_spread_ticks=half,
        y_spread=y_spread,
        label_end_ns=(t + max(h_ns, w_ns)).astype(np.int64),
    )


@dataclass(frozen=True, slots=True)
class PooledSequences:
    """Every recording's sequences stacked: x rows concatenated, ends shifted into them, and
    t_rel_ns the time since the recording's first state (walk-forward cuts every recording at
    the same relative times); group = the recording's index; inventory = a seeded uniform
    draw in [-1, 1] per sample (the multi-task input), fixed once so every fit sees the same."""

    x: F64Array
    ends: I64Array
    t_rel_ns: I64Array
    group: I64Array
    y_dir: F64Array
    move_ticks: F64Array
    half_spread_ticks: F64Array
    y_spread: F64Array
    inventory: F64Array

    def __len__(self) -> int:
        return int(self.ends.shape[0])


def pool_sequences(data: list[SequenceData], starts: list[int], seed: int) -> PooledSequences:
    """Stack recordings (starts[i]: recording i's first state time, ns)."""
    offsets = np.cumsum([0] + [d.x.shape[0] for d in data])
    n = sum(len(d) for d in data)
    rng = np.random.default_rng(seed)
    return PooledSequences(
        x=np.concatenate([d.x for d in data]) if data else np.zeros((0, N_SEQUENCE)),
        ends=np.concatenate([d.ends + offsets[i] for i, d in enumerate(data)]).astype(np.int64),
        t_rel_ns=np.concatenate([d.t_ns - starts[i] for i, d in enumerate(data)]).astype(np.int64),
        group=np.concatenate([np.full(len(d), i, np.int64) for i, d in enumerate(data)]),
        y_dir=np.concatenate([d.y_dir for d in data]),
        move_ticks=np.concatenate([d.move_ticks for d in data]),
        half_spread_ticks=np.concatenate([d.half_spread_ticks for d in data]),
        y_spread=np.concatenate([d.y_spread for d in data]),
        inventory=rng.uniform(-1.0, 1.0, n),
    )


def fit_stats(x: F64Array) -> F64Array:
    """Standardisation statistics of the rows x: float64[2 F], the means then the scales.

    Non-finite values are ignored; a column with no finite value gets mean 0, and a scale that
    is 0 or undefined becomes 1 (a constant input standardises to 0).
    """
    f = x.shape[1]
    mean = np.zeros(f)
    scale = np.ones(f)
    for j in range(f):
        col = x[:, j]
        col = col[np.isfinite(col)]
        if len(col):
            mean[j] = float(np.mean(col))
            s = float(np.std(col))
            scale[j] = s if s > 0 and math.isfinite(s) else 1.0
    return np.concatenate([mean, scale])


def standardise(x: F64Array, stats: F64Array) -> F32Array:
    """float32 z = clip((x - mean) / scale, +-Z_CLIP), non-finite -> 0: the kernel's
    mmd.kernels.lstm.apply_lstm_input, row by row."""
    f = x.shape[1]
    with np.errstate(invalid="ignore"):
        z = np.clip((x - stats[:f]) / stats[f:], -Z_CLIP, Z_CLIP)
    z[~np.isfinite(z)] = 0.0
    return z.astype(np.float32)


def gather_windows(z: npt.NDArray[_F], ends: I64Array, window: int) -> npt.NDArray[_F]:
    """float32[len(ends), window, F]: rows ends - window + 1 .. ends of z, oldest first."""
    idx = ends[:, None] + np.arange(1 - window, 1, dtype=np.int64)[None, :]
    out: npt.NDArray[_F] = z[idx]
    return out

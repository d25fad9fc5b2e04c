"""The deep order-flow models at run time: one LSTM step per book update, heads on demand.

Glue only: the weights of loaded model files (kinds deep_lstm and deep_multitask, read by
mmd.learn.model_loader) become the kernel arrays; the arithmetic is mmd.kernels.lstm. No file
I/O and no torch here: the daemon never imports it. Scratch arrays are allocated once; the
recurrent state is carried between updates, so a book update costs one cell step, not a re-run
of the window.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from mmd.kernels import lstm as kl
from mmd.kernels import models as km
from mmd.learn.deep_data import N_SEQUENCE
from mmd.learn.model_file import DEEP_HEADS, ModelMeta

F64Array = npt.NDArray[np.float64]

DEEP_KINDS = tuple(DEEP_HEADS)


class DeepOrderFlowModel:
    """An LSTM trunk and its heads: price (P(up move)), and for the multi-task kind spread
    (best half spread, ticks) and position (ex-post best inventory in [-1, 1]).

    Args:
        meta, arrays: a loaded model (mmd.learn.model_loader.load_deep_model).
    """

    def __init__(self, meta: ModelMeta, arrays: dict[str, Any]) -> None:
        self.meta = meta
        self.heads = DEEP_HEADS[meta.kind]
        self.stats = np.ascontiguousarray(arrays["stats"], np.float64)
        self.sizes = np.ascontiguousarray(arrays["lstm_sizes"], np.int64)
        self.weights = np.ascontiguousarray(arrays["lstm_weights"], np.float32)
        self.biases = np.ascontiguousarray(arrays["lstm_biases"], np.float32)
        self.head_arrays = {
            h: (
                np.ascontiguousarray(arrays[f"{h}_weights"], np.float64),
                np.ascontiguousarray(arrays[f"{h}_biases"], np.float64),
                np.ascontiguousarray(arrays[f"{h}_sizes"], np.int64),
            )
            for h in self.heads
        }
        self.window = int(meta.hyper_parameters.get("window", 0))
        width = int(self.sizes[1:].max())
        self.state = np.zeros(kl.compute_state_size(self.sizes), np.float32)
        self._gates = np.zeros(4 * width, np.float32)
        self._xbuf = np.zeros(width, np.float32)
        self._z = np.zeros(int(self.sizes[0]), np.float32)
        head_width = max(int(a[2].max()) for a in self.head_arrays.values()) + 1
        self._buf_a = np.zeros(head_width)
        self._buf_b = np.zeros(head_width)
        self._xm = np.zeros(km.N_MARKET)
        self.updates = 0

    @property
    def version(self) -> str:
        return self.meta.version

    def fork(self) -> DeepOrderFlowModel:
        """A runner sharing this model's weights with its own zero state and scratch (one per
        symbol: each carries its own recurrent state)."""
        arrays = {
            "stats": self.stats,
            "lstm_sizes": self.sizes,
            "lstm_weights": self.weights,
            "lstm_biases": self.biases,
        }
        for h, (w, b, sz) in self.head_arrays.items():
            arrays.update({f"{h}_weights": w, f"{h}_biases": b, f"{h}_sizes": sz})
        return DeepOrderFlowModel(self.meta, arrays)

    def reset(self) -> None:
        """Back to the zero state (as at the start of a training window)."""
        self.state[:] = 0.0
        self.updates = 0

    def update(self, v: F64Array) -> None:
        """One book update's raw input vector (float64[N_SEQUENCE], SEQUENCE_FEATURES)."""
        kl.apply_lstm_update(
            self.state,
            self._gates,
            self._xbuf,
            self._z,
            v,
            self.stats,
            self.weights,
            self.biases,
            self.sizes,
        )
        self.updates += 1

    def update_engine(self, fx: F64Array, ts_ns: int) -> None:
        """One book update from the FeatureEngine's `x` at receive time ts_ns."""
        km.apply_market_features(self._xm, fx, ts_ns, 0.0)
        self.update(self._xm[:N_SEQUENCE])

    def head(self, name: str, inventory: float = 0.0) -> float:
        """A head's output at the current state: price P(up), spread half spread (ticks),
        position in [-1, 1]; inventory (in [-1, 1], position / max position) for the
        multi-task heads."""
        w, b, s = self.head_arrays[name]
        out = kl.compute_head(self._buf_a, self._buf_b, self.state, self.sizes, inventory, w, b, s)
        if name == "price":
            return km.compute_sigmoid(out)
        if name == "spread":
            return math.exp(out)
        return math.tanh(out)

    def predict_windows(
        self, windows: F64Array, inventory: F64Array | None = None
    ) -> dict[str, F64Array]:
        """Each head on each window (float64[n, T, N_SEQUENCE] raw vectors), every window
        run from the zero state (what the trainer computes); the state is left reset."""
        out: dict[str, F64Array] = {h: np.empty(windows.shape[0]) for h in self.heads}
        for i in range(windows.shape[0]):
            self.reset()
            kl.apply_lstm_window(
                self.state,
                self._gates,
                self._xbuf,
                self._z,
                np.ascontiguousarray(windows[i]).ravel(),
                self.stats,
                self.weights,
                self.biases,
                self.sizes,
            )
            inv = 0.0 if inventory is None else float(inventory[i])
            for h in self.heads:
                out[h][i] = self.head(h, inv)
        self.reset()
        return out

"""LSTM inference kernels: one incremental cell step per book update, and the dense heads.

Owns no weights (`mmd.learn.deep_runtime` loads them from model files) and never raises. The
recurrent state is carried between calls, so a decision costs one step, not a re-run of the
window. Layouts (what `mmd.learn.deep_train.export_arrays` writes):

- `sizes` int64[L + 1] = [n_in, H_1, ..., H_L]: L stacked LSTM layers, layer l reads layer
  l - 1's h (layer 1 reads the standardised input vector z);
- `weights` float32: per layer, W_ih^T (n_in_l rows x 4 H_l columns) then W_hh^T (H_l x 4 H_l),
  each row-major, layers concatenated; the 4 H_l gate columns are in PyTorch's order i, f, g, o;
- `biases` float32: per layer, b_ih + b_hh (4 H_l), concatenated;
- `state` float32[2 * sum(H)]: per layer h then c, concatenated (zeros = the state at the start
  of a window, as PyTorch's default h0 = c0 = 0);
- the input: the raw vector standardised with the training statistics (`stats`, float64:
  means then scales) into float32, as `mmd.kernels.models.apply_standardise` does;
- heads are float64 `mmd.kernels.models.apply_mlp` networks (ReLU hidden layers, one linear output)
  reading the top layer's h, followed by its inventory input for the multi-task heads.

The weight matrices are stored transposed (input-major) so that the inner loop runs over
independent gate outputs: it vectorises without fastmath, and every gate sums its terms in
input order. The recurrent part is float32, as the trained network is (the weights lose
nothing) and as PyTorch runs it; float32 halves the bytes read per step and doubles the SIMD
lanes (`tests/bench/bench_deep.py`).
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from mmd.kernels.models import Z_CLIP, apply_mlp

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(cache=True)
def compute_state_size(sizes: I64) -> int:
    """Length of the state array for these layer sizes: 2 * sum(H)."""
    n = 0
    for layer in range(1, sizes.shape[0]):
        n += 2 * sizes[layer]
    return n


@njit(cache=True)
def compute_top_offset(sizes: I64) -> int:
    """Index of the top layer's h in the state array."""
    off = 0
    for layer in range(1, sizes.shape[0] - 1):
        off += 2 * sizes[layer]
    return off


# exp, sigmoid and tanh below are plain arithmetic (no libm call) and the loops over units
# use error_model="numpy" (no zero-division branch), so they vectorise: exp(x) = exp(x / 256)
# ** 256, the inner exp by its Taylor series to degree 9 (|x / 256| <= 40 / 256: truncation
# < 1e-15 relative), the 8 squarings multiplying the relative error by 256 (sigmoid within
# 2e-14 of 1 / (1 + exp(-x)) everywhere, far below the float32 weights' precision)
_EXP_CLIP = 40.0


@njit(cache=True, inline="always", error_model="numpy")
def compute_exp(x: float) -> float:
    """exp(x) for |x| <= 40 (x is clipped there), relative error < 1e-12, no libm call."""
    y = x if x > -_EXP_CLIP else -_EXP_CLIP
    y = (y if y < _EXP_CLIP else _EXP_CLIP) * (1.0 / 256.0)
    p = 1.0 + y * (
        1.0
        + y
        * (
            0.5
            + y
            * (
                1.0 / 6.0
                + y
                * (
                    1.0 / 24.0
                    + y
                    * (
                        1.0 / 120.0
                        + y
                        * (
                            1.0 / 720.0
                            + y * (1.0 / 5040.0 + y * (1.0 / 40320.0 + y * (1.0 / 362880.0)))
                        )
                    )
                )
            )
        )
    )
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(cache=True, inline="always", error_model="numpy")
def compute_fast_sigmoid(x: float) -> float:
    """1 / (1 + exp(-x)) through compute_exp (|x| beyond 40 saturates within 5e-18)."""
    return 1.0 / (1.0 + compute_exp(-x))


@njit(cache=True, inline="always", error_model="numpy")
def compute_fast_tanh(x: float) -> float:
    """tanh(x) = 2 sigmoid(2 x) - 1 through compute_exp (absolute error < 1e-12)."""
    return 2.0 / (1.0 + compute_exp(-2.0 * x)) - 1.0


@njit(cache=True)
def apply_gates(
    gates: F32, x: F32, x_off: int, weights: F32, w_off: int, n_in: int, n_g: int
) -> None:
    """gates[:n_g] += x[x_off : x_off + n_in] @ W, W the (n_in, n_g) row-major block of
    weights at w_off.

    Mutates: gates. Each gate sums its terms in input order; the inner loop over gates
    vectorises (float32: twice the lanes of float64 and half the weight bytes to read).
    """
    for k in range(n_in):
        xk = x[x_off + k]
        # a row as its own view: indices from range(n_g) are provably non-negative, so no
        # wraparound check blocks the vectoriser (a computed index `row + j` is not)
        w_row = weights[w_off + k * n_g : w_off + (k + 1) * n_g]
        for j in range(n_g):
            gates[j] += w_row[j] * xk


@njit(cache=True, error_model="numpy")
def apply_cell(state: F32, gates: F32, xbuf: F32, s_off: int, n_h: int) -> None:
    """The gate nonlinearities and the (h, c) update of one layer from its pre-activations.

    Mutates: gates (activated in place), state[s_off : s_off + 2 n_h] (h then c), xbuf[:n_h]
    (a copy of the new h: the next layer's input).
    """
    # views, so that every loop indexes with its own non-negative range (see apply_gates)
    g_i = gates[:n_h]
    g_f = gates[n_h : 2 * n_h]
    g_g = gates[2 * n_h : 3 * n_h]
    g_o = gates[3 * n_h : 4 * n_h]
    h = state[s_off : s_off + n_h]
    c = state[s_off + n_h : s_off + 2 * n_h]
    for j in range(n_h):
        g_i[j] = compute_fast_sigmoid(g_i[j])
        g_f[j] = compute_fast_sigmoid(g_f[j])
        g_g[j] = compute_fast_tanh(g_g[j])
        g_o[j] = compute_fast_sigmoid(g_o[j])
    for j in range(n_h):
        c_j = g_f[j] * c[j] + g_i[j] * g_g[j]
        c[j] = c_j
        h_j = g_o[j] * compute_fast_tanh(c_j)
        h[j] = h_j
        xbuf[j] = h_j


@njit(cache=True)
def apply_lstm_step(
    state: F32, gates: F32, xbuf: F32, z: F32, weights: F32, biases: F32, sizes: I64
) -> None:
    """Advance every layer by one input vector z (already standardised).

    For each layer, with x its input and (h, c) its state: a = W_ih x + W_hh h + b; i, f, o =
    sigmoid(a_i, a_f, a_o), g = tanh(a_g); c <- f c + i g; h <- o tanh(c).
    Mutates: state (layout in the module docstring), gates (scratch, float32[>= 4 max(H)]),
    xbuf (scratch, float32[>= max(H)]: the previous layer's h).
    """
    w_off = 0
    b_off = 0
    s_off = 0
    for layer in range(1, sizes.shape[0]):
        n_in = sizes[layer - 1]
        n_h = sizes[layer]
        n_g = 4 * n_h
        for j in range(n_g):
            gates[j] = biases[b_off + j]
        if layer == 1:
            apply_gates(gates, z, 0, weights, w_off, n_in, n_g)
        else:
            apply_gates(gates, xbuf, 0, weights, w_off, n_in, n_g)
        w_off += n_in * n_g
        apply_gates(gates, state, s_off, weights, w_off, n_h, n_g)
        w_off += n_h * n_g
        b_off += n_g
        apply_cell(state, gates, xbuf, s_off, n_h)
        s_off += 2 * n_h


@njit(cache=True)
def apply_lstm_input(z: F32, v: F64, stats: F64) -> None:
    """z = float32(clip((v - mean) / scale, -Z_CLIP, Z_CLIP)), a non-finite v giving 0 (the
    training mean), exactly as mmd.kernels.models.apply_standardise but into float32.

    stats: float64[2 n_in], the means then the scales. Mutates: z (float32[n_in]).
    """
    n_in = z.shape[0]
    for i in range(n_in):
        x = v[i]
        if math.isfinite(x):
            z[i] = min(max((x - stats[i]) / stats[n_in + i], -Z_CLIP), Z_CLIP)
        else:
            z[i] = 0.0


@njit(cache=True)
def apply_lstm_update(
    state: F32,
    gates: F32,
    xbuf: F32,
    z: F32,
    v: F64,
    stats: F64,
    weights: F32,
    biases: F32,
    sizes: I64,
) -> None:
    """Standardise one raw input vector v (apply_lstm_input) and step the layers.

    Mutates: state, gates, xbuf, z (scratch float32[n_in]).
    """
    apply_lstm_input(z, v, stats)
    apply_lstm_step(state, gates, xbuf, z, weights, biases, sizes)


@njit(cache=True)
def compute_head(
    buf_a: F64,
    buf_b: F64,
    state: F32,
    lstm_sizes: I64,
    inventory: float,
    head_w: F64,
    head_b: F64,
    head_sizes: I64,
) -> float:
    """A head's linear output on the top layer's h (then the inventory, when the head has one
    input more than the top layer has units): mmd.kernels.models.apply_mlp in float64.

    Mutates: buf_a, buf_b (scratch, float64[>= max(head_sizes)]). NaN on a bad layout or
    short buffers.
    """
    top = compute_top_offset(lstm_sizes)
    n_h = lstm_sizes[lstm_sizes.shape[0] - 1]
    n_in = head_sizes[0]
    if n_in != n_h and n_in != n_h + 1:
        return math.nan
    width = 0
    for k in range(head_sizes.shape[0]):
        width = max(width, head_sizes[k])
    if buf_a.shape[0] < width or buf_b.shape[0] < width:
        return math.nan
    for j in range(n_h):
        buf_b[j] = state[top + j]
    if n_in == n_h + 1:
        buf_b[n_h] = inventory
    return apply_mlp(buf_a, buf_b, buf_b, head_w, head_b, head_sizes)


@njit(cache=True)
def apply_lstm_window(
    state: F32,
    gates: F32,
    xbuf: F32,
    z: F32,
    window: F64,
    stats: F64,
    weights: F32,
    biases: F32,
    sizes: I64,
) -> None:
    """Run a whole window from the zero state: state <- the state after its last row.

    window: float64[T * n_in], T raw input vectors row-major, oldest first.
    Mutates: state, gates, xbuf, z.
    """
    n_in = sizes[0]
    state[:] = 0.0
    for t in range(window.shape[0] // n_in):
        apply_lstm_update(
            state, gates, xbuf, z, window[t * n_in : (t + 1) * n_in], stats, weights, biases, sizes
        )

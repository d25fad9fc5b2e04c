"""Model files: one directory per model, `weights.npz` + `model.json`; write, read, validate.

Reading validates everything a consumer relies on (format, kind, input names and order, array
shapes, the content hash) and raises IncompatibleModel (a ConfigError: `mmd` exits 2 with one
line) instead of running a model on inputs it was not trained for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from mmd.errors import ConfigError

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.npz"
META_FILE = "model.json"
# arrays every network model file holds (mmd.kernels.models layout)
NETWORK_ARRAYS = ("stats", "weights", "biases", "sizes")
KINDS = ("adverse_logistic", "adverse_mlp", "spread_mlp", "deep_lstm", "deep_multitask", "rl_q")
# the deep order-flow models (mmd.kernels.lstm layout) and the heads each kind holds
DEEP_HEADS = {"deep_lstm": ("price",), "deep_multitask": ("price", "spread", "position")}
# arrays of a Q-learning table (mmd.kernels.rl layout)
RL_ARRAYS = ("q", "visits", "rpi", "rpf", "actions")


class IncompatibleModel(ConfigError):
    """A model file is missing, corrupt, or not made for the inputs the caller has."""


class ModelMeta(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """model.json.

    Attributes:
        kind: one of KINDS ("rl_q": a Q-learning table; features are then its observation
            names, mmd.kernels.rl OBS_*).
        format_version: FORMAT_VERSION when written.
        version: content hash (16 hex digits of sha256 over kind, features and every array).
        features: input names in column order.
        orient: adverse models: which market inputs are multiplied by the side (1) or not (0).
        policy: adverse models: {"p0", "k", "p_withdraw"} of compute_adverse_policy.
        training_data: [{"path", "sha256", "symbol", "category"}] of the recordings used.
        hyper_parameters: everything the trainer was given or chose (C, alpha, labels, ...).
        metrics: training and out-of-sample figures.
        mmd_version: the package version that wrote it.
        created_utc: ISO 8601 time of writing (not part of the version).
    """

    kind: str
    format_version: int
    version: str
    features: list[str]
    orient: list[float] | None = None
    policy: dict[str, float] | None = None
    training_data: list[dict[str, str]] = msgspec.field(default_factory=list)
    hyper_parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)
    mmd_version: str = ""
    created_utc: str = ""


def content_version(
    kind: str,
    features: list[str],
    arrays: dict[str, npt.NDArray[Any]],
    orient: list[float] | None,
    policy: dict[str, float] | None,
) -> str:
    """16 hex digits of sha256 over what the model computes (not when or how it was made)."""
    h = hashlib.sha256()
    h.update(kind.encode())
    h.update("\x00".join(features).encode())
    h.update(msgspec.json.encode([orient, sorted((policy or {}).items())]))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def save_model(
    out_dir: str | Path,
    *,
    kind: str,
    features: list[str],
    arrays: dict[str, npt.NDArray[Any]],
    mmd_version: str,
    orient: list[float] | None = None,
    policy: dict[str, float] | None = None,
    training_data: list[dict[str, str]] | None = None,
    hyper_parameters: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> ModelMeta:
    """Write weights.npz and model.json into out_dir (created); returns the metadata."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    meta = ModelMeta(
        kind=kind,
        format_version=FORMAT_VERSION,
        version=content_version(kind, features, arrays, orient, policy),
        features=list(features),
        orient=orient,
        policy=policy,
        training_data=training_data or [],
        hyper_parameters=hyper_parameters or {},
        metrics=metrics or {},
        mmd_version=mmd_version,
        created_utc=(now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
    )
    buf = io.BytesIO()
    # numpy's stub types **kwds as allow_pickle: bool; the arrays are keyword arrays
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    (path / WEIGHTS_FILE).write_bytes(buf.getvalue())
    (path / META_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(meta), indent=2))
    return meta


def load_model(
    model_dir: str | Path, kinds: tuple[str, ...], features: tuple[str, ...] | list[str]
) -> tuple[ModelMeta, dict[str, Any]]:
    """Read and validate one model directory.

    Args:
        model_dir: the directory save_model wrote.
        kinds: the kinds the caller can run.
        features: the inputs the caller will pass, in order.

    Returns:
        (metadata, arrays as C-contiguous float64/int64 numpy arrays).

    Raises:
        IncompatibleModel: missing files, unreadable JSON or npz, another format version or
            kind, other input names or order, inconsistent shapes, or a content hash that
            does not match the files (edited or corrupt weights).
    """
    path = Path(model_dir)
    where = f"model {path}"
    try:
        raw_meta = (path / META_FILE).read_bytes()
        raw_npz = (path / WEIGHTS_FILE).read_bytes()
    except OSError as exc:
        raise IncompatibleModel(f"{where}: cannot read ({exc.strerror}: {exc.filename})") from None
    try:
        meta = msgspec.json.decode(raw_meta, type=ModelMeta)
    except msgspec.DecodeError as exc:
        raise IncompatibleModel(f"{where}: bad {META_FILE} ({exc})") from None
    if meta.format_version != FORMAT_VERSION:
        raise IncompatibleModel(
            f"{where}: format version {meta.format_version}, this mmd reads {FORMAT_VERSION}"
        )
    if meta.kind not in kinds:
        raise IncompatibleModel(f"{where}: kind {meta.kind!r}, expected one of {list(kinds)}")
    if list(meta.features) != list(features):
        extra = [f for f in meta.features if f not in features]
        missing = [f for f in features if f not in meta.features]
        detail = (
            f"the model lacks {missing}, this mmd does not compute {extra}"
            if extra or missing
            else "the same names in another order"
        )
        raise IncompatibleModel(
            f"{where}: trained on other inputs than this mmd computes "
            f"({detail}); retrain with `mmd train`"
        )
    try:
        with np.load(io.BytesIO(raw_npz), allow_pickle=False) as z:
            arrays = {k: np.ascontiguousarray(z[k]) for k in z.files}
    except (ValueError, OSError, KeyError) as exc:
        raise IncompatibleModel(f"{where}: bad {WEIGHTS_FILE} ({exc})") from None
    if meta.kind == "rl_q":
        _check_rl_table(where, arrays, len(features))
    elif meta.kind in DEEP_HEADS:
        _check_deep(
            where,
            arrays,
            len(features),
            DEEP_HEADS[meta.kind],
            inventory=meta.kind == "deep_multitask",
        )
    else:
        _check_network(where, arrays, len(features))
    if meta.orient is not None and len(meta.orient) != len(features) - 1:
        raise IncompatibleModel(
            f"{where}: orient has {len(meta.orient)} entries, expected {len(features) - 1}"
        )
    if content_version(meta.kind, meta.features, arrays, meta.orient, meta.policy) != meta.version:
        raise IncompatibleModel(
            f"{where}: weights do not match version {meta.version} (edited or corrupt files)"
        )
    return meta, arrays


def _check_network(where: str, arrays: dict[str, Any], n_in: int) -> None:
    missing = [k for k in NETWORK_ARRAYS if k not in arrays]
    if missing:
        raise IncompatibleModel(f"{where}: {WEIGHTS_FILE} lacks {missing}")
    sizes = arrays["sizes"]
    if (
        sizes.dtype != np.int64
        or sizes.ndim != 1
        or len(sizes) < 2
        or sizes[-1] != 1
        or sizes[0] != n_in
        or (sizes < 1).any()
    ):
        raise IncompatibleModel(f"{where}: bad layer sizes {sizes.tolist()} for {n_in} inputs")
    n_w = int(sum(int(sizes[i]) * int(sizes[i + 1]) for i in range(len(sizes) - 1)))
    n_b = int(sizes[1:].sum())
    for name, n in (("stats", 2 * n_in), ("weights", n_w), ("biases", n_b)):
        a = arrays[name]
        if a.dtype != np.float64 or a.shape != (n,):
            raise IncompatibleModel(
                f"{where}: {name} has shape {a.shape} {a.dtype}, expected ({n},) float64"
            )


def _check_rl_table(where: str, arrays: dict[str, Any], n_obs: int) -> None:
    from mmd.kernels import rl

    missing = [k for k in RL_ARRAYS if k not in arrays]
    if missing:
        raise IncompatibleModel(f"{where}: {WEIGHTS_FILE} lacks {missing}")
    rpi, rpf, q, visits, actions = (arrays[k] for k in ("rpi", "rpf", "q", "visits", "actions"))
    if n_obs != rl.OBS_SIZE:
        raise IncompatibleModel(f"{where}: {n_obs} observations, this mmd bins {rl.OBS_SIZE}")
    if (
        rpi.dtype != np.int64
        or rpi.shape != (rl.RPI_SIZE,)
        or rpf.dtype != np.float64
        or rpf.shape != (rl.RPF_SIZE,)
    ):
        raise IncompatibleModel(
            f"{where}: parameter arrays rpi {rpi.shape} {rpi.dtype}, rpf "
            f"{rpf.shape} {rpf.dtype}; expected ({rl.RPI_SIZE},) int64, "
            f"({rl.RPF_SIZE},) float64"
        )
    bins = [
        int(rpi[k])
        for k in (
            rl.RPI_INV_BINS,
            rl.RPI_VOL_BINS,
            rl.RPI_OFI_BINS,
            rl.RPI_PADV_BINS,
            rl.RPI_TIME_BINS,
        )
    ]
    if (
        min(bins) < 1
        or max(bins) > 10
        or rpi[rl.RPI_STEP_NS] <= 0
        or not np.isfinite(rpf).all()
        or rpf[rl.RPF_VOL_REF] <= 0
        or rpf[rl.RPF_OFI_SCALE] <= 0
    ):
        raise IncompatibleModel(
            f"{where}: bad parameters bins {bins}, step "
            f"{int(rpi[rl.RPI_STEP_NS])} ns, {rpf.tolist()}"
        )
    if (
        actions.dtype != np.float64
        or actions.ndim != 2
        or actions.shape[1] != 2
        or len(actions) < 1
        or not np.isfinite(actions).all()
        or (actions[:, 0] <= 0).any()
    ):
        raise IncompatibleModel(
            f"{where}: bad action grid {actions.shape} {actions.dtype} "
            "(rows of gamma multiplier > 0, skew ticks)"
        )
    shape = (rl.n_states(rpi), len(actions))
    if (
        q.dtype != np.float64
        or q.shape != shape
        or not np.isfinite(q).all()
        or visits.dtype != np.int64
        or visits.shape != shape
        or (visits < 0).any()
    ):
        raise IncompatibleModel(
            f"{where}: q {q.shape} {q.dtype} / visits {visits.shape} "
            f"{visits.dtype}, expected {shape} finite float64 / int64 >= 0"
        )


def _check_deep(
    where: str, arrays: dict[str, Any], n_in: int, heads: tuple[str, ...], inventory: bool
) -> None:
    """An LSTM stack and its heads (mmd.kernels.lstm layout) with consistent shapes."""
    names = ["stats", "lstm_sizes", "lstm_weights", "lstm_biases"]
    names += [f"{h}_{a}" for h in heads for a in ("weights", "biases", "sizes")]
    missing = [k for k in names if k not in arrays]
    if missing:
        raise IncompatibleModel(f"{where}: {WEIGHTS_FILE} lacks {missing}")
    sizes = arrays["lstm_sizes"]
    if (
        sizes.dtype != np.int64
        or sizes.ndim != 1
        or len(sizes) < 2
        or sizes[0] != n_in
        or (sizes < 1).any()
    ):
        raise IncompatibleModel(f"{where}: bad LSTM sizes {sizes.tolist()} for {n_in} inputs")
    n_w = sum(4 * int(sizes[i]) * (int(sizes[i - 1]) + int(sizes[i])) for i in range(1, len(sizes)))
    n_b = 4 * int(sizes[1:].sum())
    for name, n, dtype in (
        ("stats", 2 * n_in, np.float64),
        ("lstm_weights", n_w, np.float32),
        ("lstm_biases", n_b, np.float32),
    ):
        a = arrays[name]
        if a.dtype != dtype or a.shape != (n,):
            raise IncompatibleModel(
                f"{where}: {name} has shape {a.shape} {a.dtype}, "
                f"expected ({n},) {np.dtype(dtype).name}"
            )
    n_top = int(sizes[-1]) + (1 if inventory else 0)
    for h in heads:
        _check_network(
            where,
            {
                "stats": np.zeros(2 * n_top),
                "weights": arrays[f"{h}_weights"],
                "biases": arrays[f"{h}_biases"],
                "sizes": arrays[f"{h}_sizes"],
            },
            n_top,
        )

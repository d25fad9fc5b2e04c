"""Training: the adverse-selection detector (logistic, MLP) and the spread predictor.

Core: arrays in, fitted scikit-learn estimators and plain arrays out; no file I/O (the model
file module writes them). scikit-learn is imported here only: it is a `train` extra, never
needed by the daemon, which runs the exported weights through `mmd.kernels.models`.

Every estimator is a Pipeline SimpleImputer(mean) -> StandardScaler -> clip to +-Z_CLIP ->
model; the kernels do the same (a missing input is the training mean, z = 0). sklearn's MLP has
no dropout: its L2 penalty `alpha` regularises instead, with early stopping on a validation
share of the training rows (a random, stratified split that sklearn draws: it never sees the
test block).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mmd.kernels.models import Z_CLIP
from mmd.learn.dataset import walk_forward_splits

F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
MLP_HIDDEN = (128, 64, 32)
SPREAD_HIDDEN = (64, 32)


def clip_z(z: F64Array) -> F64Array:
    """Standardised inputs clipped to +-Z_CLIP, as mmd.kernels.models.apply_standardise."""
    return np.clip(z, -Z_CLIP, Z_CLIP)


def _pipeline(model: Any) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="mean", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("clip", FunctionTransformer(clip_z)),
            ("model", model),
        ]
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """sklearn's convergence warnings are expected (early stopping, small folds): silence
    only those."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def make_logistic(c: float) -> Any:
    """StandardScaler + L2 logistic regression with inverse strength c."""
    from sklearn.linear_model import LogisticRegression

    return _pipeline(LogisticRegression(C=c, max_iter=2000))


def make_mlp(alpha: float, seed: int) -> Any:
    """StandardScaler + the 128-64-32 ReLU classifier, L2 alpha, early stopping."""
    from sklearn.neural_network import MLPClassifier

    return _pipeline(
        MLPClassifier(
            hidden_layer_sizes=MLP_HIDDEN,
            activation="relu",
            alpha=alpha,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=10,
            max_iter=300,
            random_state=seed,
        )
    )


def make_spread(alpha: float, seed: int) -> Any:
    """StandardScaler + a 2-hidden-layer ReLU regressor (identity output, log target)."""
    from sklearn.neural_network import MLPRegressor

    return _pipeline(
        MLPRegressor(
            hidden_layer_sizes=SPREAD_HIDDEN,
            activation="relu",
            alpha=alpha,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=10,
            max_iter=500,
            random_state=seed,
        )
    )


def auc_and_logloss(y: I64Array, p: F64Array) -> tuple[float, float]:
    """(ROC AUC, log-loss); AUC is NaN when y holds one class only."""
    from sklearn.metrics import log_loss, roc_auc_score

    ll = float(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12), labels=[0, 1]))
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan
    return auc, ll


def choose_c(
    x: F64Array, y: I64Array, t_ns: I64Array, purge_ns: int, n_inner: int = 3
) -> tuple[float, dict[str, float]]:
    """The L2 strength with the lowest mean log-loss over walk-forward splits of (x, y) only.

    Called with the training part of an outer split, so the test block plays no part.
    Returns (C, {str(C): mean log-loss}); C = 1 when no inner split has both classes.
    """
    scores: dict[str, float] = {}
    inner = [
        (a, b) for a, b in walk_forward_splits(t_ns, n_inner, purge_ns) if len(np.unique(y[a])) == 2
    ]
    if not inner:
        return 1.0, scores
    for c in C_GRID:
        losses = []
        for a, b in inner:
            m = make_logistic(c).fit(x[a], y[a])
            losses.append(auc_and_logloss(y[b], m.predict_proba(x[b])[:, 1])[1])
        scores[str(c)] = float(np.mean(losses))
    best = min(C_GRID, key=lambda c: scores[str(c)])
    return best, scores


def fit_logistic(x: F64Array, y: I64Array, t_ns: I64Array, purge_ns: int) -> tuple[Any, float]:
    """C by inner time-series CV on (x, y), then the pipeline refitted on all of it."""
    with _quiet():
        c, _ = choose_c(x, y, t_ns, purge_ns)
        return make_logistic(c).fit(x, y), c


def fit_mlp(x: F64Array, y: I64Array, alpha: float, seed: int) -> Any:
    """The MLP variant fitted on (x, y)."""
    with _quiet():
        return make_mlp(alpha, seed).fit(x, y)


def fit_spread(x: F64Array, half_spread_ticks: F64Array, alpha: float, seed: int) -> Any:
    """The spread network fitted on log(half spread)."""
    with _quiet():
        return make_spread(alpha, seed).fit(x, np.log(half_spread_ticks))


# -- export to the kernels' layout -------------------------------------------------------------


def export_network(pipe: Any) -> dict[str, npt.NDArray[Any]]:
    """A fitted pipeline as kernel arrays: stats (means then scales), weights, biases, sizes.

    Logistic regression -> sizes [n_in, 1]; MLP -> [n_in, hidden..., 1], each layer's (n_in,
    n_out) matrix flattened row-major (see mmd.kernels.models).
    """
    scaler = pipe.named_steps["scale"]
    model = pipe.named_steps["model"]
    stats = np.concatenate([scaler.mean_, scaler.scale_]).astype(np.float64)
    n_in = int(scaler.mean_.shape[0])
    if hasattr(model, "coefs_"):
        weights = np.concatenate([w.ravel() for w in model.coefs_]).astype(np.float64)
        biases = np.concatenate(list(model.intercepts_)).astype(np.float64)
        sizes = np.array([n_in, *(w.shape[1] for w in model.coefs_)], np.int64)
    else:
        weights = model.coef_[0].astype(np.float64).copy()
        biases = np.array([model.intercept_[0]], np.float64)
        sizes = np.array([n_in, 1], np.int64)
    return {
        "stats": stats,
        "weights": np.ascontiguousarray(weights),
        "biases": biases,
        "sizes": sizes,
    }


# -- the widening / withdraw policy -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyParams:
    """compute_adverse_policy's parameters: mult = 1 + k * max(0, p - p0), off at p_withdraw."""

    p0: float
    k: float
    p_withdraw: float


def choose_policy(
    p_train: F64Array, y_train: I64Array, withdraw_share: float, max_mult: float
) -> PolicyParams:
    """Policy defaults from training predictions and labels only.

    p0 = the training base rate of adverse fills (widen only when a fill looks more toxic than
    the average one); p_withdraw = the (1 - withdraw_share) quantile of the training
    probabilities (the most toxic withdraw_share of fills would have been avoided); k so that
    the multiplier reaches max_mult at p_withdraw (k = 0 when p_withdraw <= p0).
    """
    p0 = float(np.mean(y_train))
    pw = float(np.quantile(p_train, 1.0 - withdraw_share)) if withdraw_share > 0 else 1.0
    pw = min(max(pw, 0.0), 1.0 + 1e-12)
    k = (max_mult - 1.0) / (pw - p0) if pw > p0 else 0.0
    return PolicyParams(p0=p0, k=float(k), p_withdraw=pw if withdraw_share > 0 else 2.0)


def policy_effect(
    p: F64Array, y: I64Array, against: F64Array, pol: PolicyParams
) -> dict[str, float]:
    """What the policy would have done to these fills: withdrawn share, adverse rate and mean
    move against us (ticks) of the withdrawn and of the kept fills."""
    off = p >= pol.p_withdraw
    kept = ~off

    def mean(a: npt.NDArray[Any]) -> float:
        return float(np.mean(a)) if len(a) else math.nan

    return {
        "withdrawn_share": float(np.mean(off)) if len(p) else math.nan,
        "adverse_rate_withdrawn": mean(y[off]),
        "adverse_rate_kept": mean(y[kept]),
        "against_ticks_withdrawn": mean(against[off]),
        "against_ticks_kept": mean(against[kept]),
    }


# -- walk-forward evaluation ---------------------------------------------------------------------


def mean_se(values: list[float]) -> tuple[float, float]:
    """(mean, standard error = std(ddof=1) / sqrt(n)) of the finite values; NaN when none
    (SE NaN with a single value)."""
    v = np.array([x for x in values if x == x], np.float64)
    if len(v) == 0:
        return math.nan, math.nan
    se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(np.mean(v)), se

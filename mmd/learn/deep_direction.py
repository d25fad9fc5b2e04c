"""The direction figures of the deep models: AUC, accuracy and macro-F1 of P(up), the two
logistic baselines fitted on the same training samples, and the out-of-sample direction
report of `mmd evaluate`.

Reads model directories (direction_report); writes nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mmd.learn.deep_data import (
    DeepParams,
    F32Array,
    F64Array,
    I64Array,
    PooledSequences,
    gather_windows,
    pool_sequences,
    sequence_dataset,
    standardise,
)


def auc_acc(y: F64Array, p: F64Array) -> tuple[float, float]:
    """(AUC, accuracy) of the probabilities p of class 1 (p > 0.5 predicts it); AUC NaN with
    one class, both NaN with no sample."""
    from sklearn.metrics import roc_auc_score

    if len(y) == 0:
        return math.nan, math.nan
    acc = float(np.mean((p > 0.5) == (y > 0.5)))
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan
    return auc, acc


def macro_f1(y: F64Array, p: F64Array) -> float:
    """Mean over the two classes of F1 (precision and recall of each class, the prediction
    p > 0.5 as class 1); a class never predicted nor present counts F1 = 0."""
    if len(y) == 0:
        return math.nan
    yt, yp = y > 0.5, p > 0.5
    f1s = []
    for c in (True, False):
        tp = float(np.sum((yp == c) & (yt == c)))
        fp = float(np.sum((yp == c) & (yt != c)))
        fn = float(np.sum((yp != c) & (yt == c)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0)
    return float(np.mean(f1s))


def inner_split(
    t_rel_ns: I64Array, train: I64Array, share: float, purge_ns: int
) -> tuple[I64Array, I64Array]:
    """The latest `share` of train (by time) for validation, purged by purge_ns."""
    t = t_rel_ns[train]
    cut = float(np.quantile(t, 1.0 - share))
    fit = train[t < cut - purge_ns]
    valid = train[t >= cut]
    if len(fit) == 0:  # too few samples to purge: keep the order, drop the purge
        fit, valid = train[t < cut], train[t >= cut]
    return fit, valid


def baselines(
    z: F32Array,
    pooled: PooledSequences,
    a: I64Array,
    b: I64Array,
    dp: DeepParams,
    purge_ns: int,
) -> dict[str, float]:
    """Logistic regressions (mmd.learn.train.make_logistic: imputer, scaler, clip, L2) on the
    flattened standardised window and on its last vector. C is chosen from C_GRID by log-loss
    on the LSTM's own validation split (the latest share of a), then the model is refitted on
    the labelled samples of a and scored on those of b."""
    from mmd.learn import train as tr

    def labelled(idx: I64Array) -> I64Array:
        kept: I64Array = idx[np.isfinite(pooled.y_dir[idx])]
        return kept

    fit_idx, valid_idx = (
        labelled(i) for i in inner_split(pooled.t_rel_ns, a, dp.valid_share, purge_ns)
    )
    la, lb = labelled(a), labelled(b)
    out: dict[str, float] = {}
    if len(np.unique(pooled.y_dir[fit_idx])) < 2 or len(np.unique(pooled.y_dir[la])) < 2:
        return out
    for name, flat in (("logistic_window", True), ("logistic_last", False)):

        def feats(idx: I64Array, flat: bool = flat) -> F64Array:
            w = gather_windows(z, pooled.ends[idx], dp.window if flat else 1)
            return w.reshape(len(idx), -1).astype(np.float64)

        def y(idx: I64Array) -> I64Array:
            return pooled.y_dir[idx].astype(np.int64)

        c_best = 1.0
        if len(valid_idx):
            with tr._quiet():
                scores = {
                    c: tr.auc_and_logloss(
                        y(valid_idx),
                        tr.make_logistic(c)
                        .fit(feats(fit_idx), y(fit_idx))
                        .predict_proba(feats(valid_idx))[:, 1],
                    )[1]
                    for c in tr.C_GRID
                }
            c_best = min(scores, key=lambda c: scores[c])
        with tr._quiet():
            model = tr.make_logistic(c_best).fit(feats(la), y(la))
        p_b = model.predict_proba(feats(lb))[:, 1]
        auc, acc = auc_acc(y(lb).astype(np.float64), p_b)
        out[f"auc_{name}"], out[f"acc_{name}"], out[f"C_{name}"] = auc, acc, c_best
        out[f"f1_{name}"] = macro_f1(y(lb).astype(np.float64), p_b)
    return out


def direction_report(
    train: list[Any], test: list[Any], dp: DeepParams, model_dirs: dict[str, Path]
) -> dict[str, dict[str, float]]:
    """Out-of-sample direction figures on the test series (mmd.learn.dataset.MarketSeries,
    e.g. the test windows of `mmd evaluate`), per model: n (labelled test windows), accuracy,
    macro-F1 and AUC of P(up).

    Models: each deep model of model_dirs (name -> model directory; its direction head run by
    the daemon's kernels, every window from the zero state as in training, the multi-task
    heads at the sample's seeded inventory); the two logistic baselines of `mmd train lstm`
    (flattened window, last vector; C chosen on the latest valid_share of the training
    samples, refitted on all of them), standardised with the first deep model's statistics;
    and the training majority class. Nothing of the test series is used to fit anything.
    """
    from mmd.learn.model_loader import load_deep_model

    data_tr = [sequence_dataset(s, dp) for s in train]
    data_te = [sequence_dataset(s, dp) for s in test]
    starts = [int(s.ts_ns[0]) if len(s.ts_ns) else 0 for s in [*train, *test]]
    pooled = pool_sequences(data_tr + data_te, starts, dp.seed)
    n_tr = sum(len(d) for d in data_tr)
    a = np.arange(n_tr)
    b = np.arange(n_tr, len(pooled))
    yb = pooled.y_dir[b]
    lab = np.isfinite(yb)
    out: dict[str, dict[str, float]] = {}
    if not lab.any() or not np.isfinite(pooled.y_dir[a]).any():
        return out
    y = yb[lab]

    def scores(p: F64Array) -> dict[str, float]:
        auc, acc = auc_acc(y, p)
        return {"n": len(y), "accuracy": acc, "macro_f1": macro_f1(y, p), "auc": auc}

    stats = None
    for name, d in model_dirs.items():
        model = load_deep_model(d)
        stats = model.stats if stats is None else stats
        win = gather_windows(pooled.x, pooled.ends[b[lab]], model.window or dp.window)
        pred = model.predict_windows(
            np.ascontiguousarray(win, np.float64), pooled.inventory[b[lab]]
        )
        out[name] = scores(pred["price"])
    majority = 1.0 if np.nanmean(pooled.y_dir[a]) >= 0.5 else 0.0
    out["majority"] = scores(np.full(len(y), majority))
    if stats is not None:
        purge_ns = round(max(dp.purge_s, dp.horizon_s) * 1e9)
        z = standardise(pooled.x, stats)
        base = baselines(z, pooled, a, b, dp, purge_ns)
        for key in ("logistic_window", "logistic_last"):
            if f"auc_{key}" in base:
                out[key] = {
                    "n": len(y),
                    "accuracy": base[f"acc_{key}"],
                    "macro_f1": base[f"f1_{key}"],
                    "auc": base[f"auc_{key}"],
                }
    return out

"""`mmd train lstm|multitask DATA... --out DIR`: recordings -> sequences -> networks -> model files.

Shell: reads recordings (mmd.learn.train_data.read_recordings), writes DIR/lstm or DIR/multitask
(weights.npz, model.json, loss.png) and prints the walk-forward table. The direction head is
judged out of sample against two logistic regressions fitted on the same training samples: on
the flattened window and on the window's last vector.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from mmd.errors import ConfigError
from mmd.learn.deep_data import (
    N_SEQUENCE,
    SEQUENCE_FEATURES,
    DeepParams,
    PooledSequences,
    fit_stats,
    gather_windows,
    pool_sequences,
    position_label,
    sequence_dataset,
    standardise,
)
from mmd.learn.model_file import ModelMeta, save_model
from mmd.learn.sets import split_sets

KIND_OF = {"lstm": "deep_lstm", "multitask": "deep_multitask"}


def parse_deep_sets(sets: list[str]) -> tuple[DeepParams, list[str]]:
    """`key=value` items set DeepParams fields (value as JSON, else a string); `section.key`
    items are config overrides, returned as they are.

    Raises:
        ConfigError: no `=`, an unknown key, or a bad value.
    """
    values, config_sets = split_sets(sets, set(DeepParams.__struct_fields__))
    try:
        return msgspec.convert(values, DeepParams), config_sets
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"--set: {exc}") from None


def _auc_acc(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    if len(y) == 0:
        return math.nan, math.nan
    acc = float(np.mean((p > 0.5) == (y > 0.5)))
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan
    return auc, acc


def _macro_f1(y: np.ndarray, p: np.ndarray) -> float:
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


def _inner_split(
    t_rel_ns: np.ndarray, train: np.ndarray, share: float, purge_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """The latest `share` of train (by time) for validation, purged by purge_ns."""
    t = t_rel_ns[train]
    cut = float(np.quantile(t, 1.0 - share))
    fit = train[t < cut - purge_ns]
    valid = train[t >= cut]
    if len(fit) == 0:  # too few samples to purge: keep the order, drop the purge
        fit, valid = train[t < cut], train[t >= cut]
    return fit, valid


def fit_split(
    pooled: PooledSequences,
    train: np.ndarray,
    heads: tuple[str, ...],
    dp: DeepParams,
    purge_ns: int,
    progress: bool,
    desc: str,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Standardisation from the training samples' vectors, an inner validation split, and the
    network fitted with early stopping. Returns (Fit, stats, z: the standardised rows)."""
    from mmd.learn import deep_train as dtr

    fit_idx, valid_idx = _inner_split(pooled.t_rel_ns, train, dp.valid_share, purge_ns)
    stats = fit_stats(pooled.x[pooled.ends[fit_idx]])
    z = standardise(pooled.x, stats)
    fit = dtr.fit_network(
        dtr.make_batches(z, pooled, fit_idx, dp),
        dtr.make_batches(z, pooled, valid_idx, dp),
        dp,
        heads,
        N_SEQUENCE,
        progress=progress,
        desc=desc,
    )
    return fit, stats, z


def _baselines(
    z: np.ndarray,
    pooled: PooledSequences,
    a: np.ndarray,
    b: np.ndarray,
    dp: DeepParams,
    purge_ns: int,
) -> dict[str, float]:
    """Logistic regressions (mmd.learn.train.make_logistic: imputer, scaler, clip, L2) on the
    flattened standardised window and on its last vector. C is chosen from C_GRID by log-loss
    on the LSTM's own validation split (the latest share of a), then the model is refitted on
    the labelled samples of a and scored on those of b."""
    from mmd.learn import train as tr

    def labelled(idx: np.ndarray) -> np.ndarray:
        return idx[np.isfinite(pooled.y_dir[idx])]

    fit_idx, valid_idx = (
        labelled(i) for i in _inner_split(pooled.t_rel_ns, a, dp.valid_share, purge_ns)
    )
    la, lb = labelled(a), labelled(b)
    out: dict[str, float] = {}
    if len(np.unique(pooled.y_dir[fit_idx])) < 2 or len(np.unique(pooled.y_dir[la])) < 2:
        return out
    for name, flat in (("logistic_window", True), ("logistic_last", False)):

        def feats(idx: np.ndarray, flat: bool = flat) -> np.ndarray:
            w = gather_windows(z, pooled.ends[idx], dp.window if flat else 1)
            return w.reshape(len(idx), -1).astype(np.float64)

        def y(idx: np.ndarray) -> np.ndarray:
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
        auc, acc = _auc_acc(y(lb).astype(np.float64), p_b)
        out[f"auc_{name}"], out[f"acc_{name}"], out[f"C_{name}"] = auc, acc, c_best
        out[f"f1_{name}"] = _macro_f1(y(lb).astype(np.float64), p_b)
    return out


def _split_row(
    k: int,
    pooled: PooledSequences,
    a: np.ndarray,
    b: np.ndarray,
    heads: tuple[str, ...],
    dp: DeepParams,
    purge_ns: int,
    progress: bool,
) -> dict[str, Any]:
    from mmd.learn import deep_train as dtr

    fit, _, z = fit_split(pooled, a, heads, dp, purge_ns, progress, f"split {k}")
    batches = dtr.make_batches(z, pooled, b, dp)
    pred = dtr.predict(fit.net, batches, dp.window)
    yb = pooled.y_dir[b]
    lab = np.isfinite(yb)
    auc, acc = _auc_acc(yb[lab], pred["price"][lab])
    ya = pooled.y_dir[a]
    majority = 1.0 if np.nanmean(ya) >= 0.5 else 0.0
    row: dict[str, Any] = {
        "split": k,
        "n_train": len(a),
        "n_test": len(b),
        "n_test_labelled": int(lab.sum()),
        "up_rate_test": float(np.mean(yb[lab])) if lab.any() else math.nan,
        "auc_lstm": auc,
        "acc_lstm": acc,
        "acc_majority": float(np.mean(yb[lab] == majority)) if lab.any() else math.nan,
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
    }
    if dp.baselines:
        row.update(_baselines(z, pooled, a, b, dp, purge_ns))
    if "spread" in pred:
        ys = pooled.y_spread[b]
        m = np.isfinite(ys)
        base = float(np.nanmedian(pooled.y_spread[a]))
        row["rmse_log_spread"] = float(np.sqrt(np.mean((np.log(pred["spread"][m]) - ys[m]) ** 2)))
        row["rmse_log_spread_constant"] = float(np.sqrt(np.mean((base - ys[m]) ** 2)))
    if "position" in pred:
        yp = position_label(
            pooled.move_ticks[b],
            pooled.half_spread_ticks[b],
            pooled.inventory[b],
            dp.position_penalty_ticks,
        )
        row["mse_position"] = float(np.mean((pred["position"] - yp) ** 2))
        # the best constant target given the inventory: keep it (no trade)
        row["mse_position_hold"] = float(np.mean((pooled.inventory[b] - yp) ** 2))
    return row


def _fmt(v: Any, spec: str = ".3f") -> str:
    return (
        "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)
    )


def train_deep(
    kind: str,
    recs: list[Any],
    dp: DeepParams,
    out_dir: Path,
    mmd_version: str,
    progress: bool,
    echo: Callable[[str], None],
    *,
    walk_forward: bool = True,
) -> ModelMeta:
    """Walk-forward evaluation, then the network fitted on everything (its validation split
    the latest samples) and written to out_dir/<kind> with its loss curves. walk_forward
    False skips the evaluation (the caller scores the model on data of its own, as `mmd
    evaluate` does)."""
    from mmd.learn import deep_train as dtr
    from mmd.learn import train as tr
    from mmd.learn.train_data import digests

    heads = dtr.HEADS_LSTM if kind == "lstm" else dtr.HEADS_MULTITASK
    data = [sequence_dataset(r.series, dp) for r in recs]
    if sum(len(d) for d in data) == 0:
        raise ConfigError(
            f"train {kind}: the recordings gave no samples (shorter than the "
            f"window of {dp.window} book updates plus the label horizon)"
        )
    starts = [int(r.series.ts_ns[0]) if len(r.series.ts_ns) else 0 for r in recs]
    pooled = pool_sequences(data, starts, dp.seed)
    purge_ns = round(
        max(dp.purge_s, dp.horizon_s, dp.window_s if kind == "multitask" else 0.0) * 1e9
    )
    from mmd.learn.dataset import walk_forward_splits

    splits = walk_forward_splits(pooled.t_rel_ns, dp.n_splits, purge_ns)
    rows = (
        [
            _split_row(k, pooled, a, b, heads, dp, purge_ns, progress)
            for k, (a, b) in enumerate(splits, 1)
            if len(a) >= 10
        ]
        if walk_forward
        else []
    )
    if walk_forward and not rows:
        raise ConfigError(f"train {kind}: too few samples for a walk-forward split")
    summary: dict[str, Any] = {
        "splits": rows,
        "samples": len(pooled),
        "labelled": int(np.isfinite(pooled.y_dir).sum()),
        "up_rate": float(np.nanmean(pooled.y_dir)),
    }
    keys = [k for k in rows[0] if k.startswith(("auc_", "acc_", "rmse_", "mse_"))] if rows else []
    for key in keys:
        summary[key] = list(tr.mean_se([r.get(key, math.nan) for r in rows]))
    fit, stats, _ = fit_split(
        pooled, np.arange(len(pooled)), heads, dp, purge_ns, progress, "final"
    )
    summary["final_best_epoch"], summary["final_epochs_run"] = fit.best_epoch, fit.epochs_run
    summary["history"] = fit.history
    model_dir = out_dir / kind
    meta = save_model(
        model_dir,
        kind=KIND_OF[kind],
        features=list(SEQUENCE_FEATURES),
        arrays=dtr.export_arrays(fit.net, stats),
        mmd_version=mmd_version,
        training_data=digests(recs),
        hyper_parameters={
            **msgspec.to_builtins(dp),
            "heads": list(heads),
            "head_inputs": ["lstm_top"] + (["inventory"] if kind == "multitask" else []),
        },
        metrics=summary,
    )
    dtr.plot_losses(
        fit.history,
        fit.best_epoch,
        model_dir / "loss.png",
        f"{kind}: loss by epoch (final fit, {len(pooled)} samples)",
    )
    _print(kind, summary, meta, echo)
    return meta


def _print(kind: str, s: dict[str, Any], meta: ModelMeta, echo: Callable[[str], None]) -> None:
    echo(
        f"{kind}: {s['samples']} windows, {s['labelled']} with a mid move, up rate "
        f"{_fmt(s['up_rate'])}"
    )
    echo(
        f"{'split':>5} {'train':>6} {'test':>5} {'AUC lstm':>9} {'AUC lr-win':>10} "
        f"{'AUC lr-last':>11} {'acc lstm':>9} {'acc lr-win':>10} {'acc lr-last':>11} "
        f"{'acc major':>9} {'epoch':>5}"
    )
    for r in s["splits"]:
        echo(
            f"{r['split']:>5} {r['n_train']:>6} {r['n_test']:>5} {_fmt(r['auc_lstm']):>9} "
            f"{_fmt(r.get('auc_logistic_window')):>10} {_fmt(r.get('auc_logistic_last')):>11} "
            f"{_fmt(r['acc_lstm']):>9} {_fmt(r.get('acc_logistic_window')):>10} "
            f"{_fmt(r.get('acc_logistic_last')):>11} {_fmt(r['acc_majority']):>9} "
            f"{r['best_epoch']:>5}"
        )
    labels = {
        "auc_lstm": "out-of-sample AUC, LSTM direction head",
        "auc_logistic_window": "the same, logistic on the flattened window",
        "auc_logistic_last": "the same, logistic on the last vector",
        "acc_lstm": "out-of-sample accuracy, LSTM",
        "acc_logistic_window": "accuracy, logistic on the window",
        "acc_logistic_last": "accuracy, logistic on the last vector",
        "acc_majority": "accuracy, the training majority class",
        "rmse_log_spread": "RMSE of log half spread, spread head",
        "rmse_log_spread_constant": "the same, training median",
        "mse_position": "MSE of the position head",
        "mse_position_hold": "the same, holding the inventory",
    }
    for key, label in labels.items():
        if key in s:
            m, se = s[key]
            echo(f"  {label:<44} {_fmt(m)} ± {_fmt(se)} (SE over splits)")
    echo(
        f"  written {meta.kind}, version {meta.version} (best epoch "
        f"{s['final_best_epoch']} of {s['final_epochs_run']})"
    )


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

    def scores(p: np.ndarray) -> dict[str, float]:
        auc, acc = _auc_acc(y, p)
        return {"n": len(y), "accuracy": acc, "macro_f1": _macro_f1(y, p), "auc": auc}

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
        base = _baselines(z, pooled, a, b, dp, purge_ns)
        for key in ("logistic_window", "logistic_last"):
            if f"auc_{key}" in base:
                out[key] = {
                    "n": len(y),
                    "accuracy": base[f"acc_{key}"],
                    "macro_f1": base[f"f1_{key}"],
                    "auc": base[f"auc_{key}"],
                }
    return out


def run_deep(
    kind: str,
    data: list[str],
    out: str,
    sets: list[str],
    config_path: str | None,
    progress: bool,
    echo: Callable[[str], None] = print,
) -> ModelMeta:
    """The `mmd train lstm|multitask` command."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"train {kind}: PyTorch is not installed (pip install '.[deep]')"
        ) from None
    from mmd import __version__
    from mmd.config import load_config
    from mmd.learn.train_data import read_recordings

    dp, config_sets = parse_deep_sets(sets)
    cfg = load_config(config_path, sets=config_sets)
    t0 = dt.datetime.now(dt.UTC)
    recs = read_recordings(cfg, data, progress)
    meta = train_deep(kind, recs, dp, Path(out), __version__, progress, echo)
    secs = (dt.datetime.now(dt.UTC) - t0).total_seconds()
    echo(f"model written to {Path(out) / kind} in {secs:.1f} s")
    sys.stdout.flush()
    return meta

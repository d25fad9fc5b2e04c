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
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from mmd.errors import ConfigError
from mmd.learn.deep_data import (
    N_SEQUENCE,
    SEQUENCE_FEATURES,
    DeepParams,
    F32Array,
    F64Array,
    I64Array,
    PooledSequences,
    fit_stats,
    pool_sequences,
    position_label,
    sequence_dataset,
    standardise,
)
from mmd.learn.deep_direction import auc_acc, baselines, inner_split
from mmd.learn.model_file import ModelMeta, save_model
from mmd.learn.sets import split_sets

if TYPE_CHECKING:
    from mmd.learn.deep_train import Fit

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


def fit_split(
    pooled: PooledSequences,
    train: I64Array,
    heads: tuple[str, ...],
    dp: DeepParams,
    purge_ns: int,
    progress: bool,
    desc: str,
) -> tuple[Fit, F64Array, F32Array]:
    """Standardisation from the training samples' vectors, an inner validation split, and the
    network fitted with early stopping. Returns (Fit, stats, z: the standardised rows)."""
    from mmd.learn import deep_train as dtr

    fit_idx, valid_idx = inner_split(pooled.t_rel_ns, train, dp.valid_share, purge_ns)
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


def _split_row(
    k: int,
    pooled: PooledSequences,
    a: I64Array,
    b: I64Array,
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
    auc, acc = auc_acc(yb[lab], pred["price"][lab])
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
        row.update(baselines(z, pooled, a, b, dp, purge_ns))
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

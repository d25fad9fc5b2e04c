"""`mmd train adverse|spread|rl|all DATA... --out DIR`: recordings -> datasets -> model files
(rl: mmd.learn.rl).

Shell: reads recordings and writes model directories and the printed summary; the datasets,
fits and figures come from the core modules (dataset, train, model_file).
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
from mmd.learn.dataset import (
    LabelParams,
    adverse_dataset,
    spread_dataset,
    walk_forward_splits,
)
from mmd.learn.features import MARKET_FEATURES, orient_vector
from mmd.learn.model_file import ModelMeta, save_model
from mmd.learn.train_data import (
    Recording,
    TrainParams,
    digests,
    parse_sets,
    pool,
    read_recordings,
)


def _fmt(v: float, spec: str = ".3f") -> str:
    return (
        "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)
    )


def train_adverse(
    recs: list[Recording],
    lp: LabelParams,
    tp: TrainParams,
    out_dir: Path,
    mmd_version: str,
    progress: bool,
    echo: Callable[[str], None],
) -> ModelMeta:
    """Walk-forward evaluation of the logistic and MLP detectors, then the kept one fitted on
    everything and written to out_dir/adverse."""
    from tqdm import tqdm

    from mmd.learn import train as tr

    data = [adverse_dataset(r.series, lp) for r in recs]
    pooled = pool(data, [int(r.series.ts_ns[0]) if len(r.series.ts_ns) else 0 for r in recs])
    purge_ns = round(max(tp.purge_s, lp.horizon_s) * 1e9)
    splits = walk_forward_splits(pooled.t_rel_ns, tp.n_splits, purge_ns)
    rows: list[dict[str, Any]] = []
    for k, (a, b) in enumerate(
        tqdm(splits, desc="walk-forward", unit="split", disable=not progress), 1
    ):
        ya, yb = pooled.y[a], pooled.y[b]
        if len(np.unique(ya)) < 2:
            continue
        lr, c = tr.fit_logistic(pooled.x[a], ya, pooled.t_rel_ns[a], purge_ns)
        mlp = tr.fit_mlp(pooled.x[a], ya, tp.mlp_alpha, tp.seed)
        p_lr = lr.predict_proba(pooled.x[b])[:, 1]
        p_mlp = mlp.predict_proba(pooled.x[b])[:, 1]
        auc_lr, ll_lr = tr.auc_and_logloss(yb, p_lr)
        auc_mlp, ll_mlp = tr.auc_and_logloss(yb, p_mlp)
        pol = tr.choose_policy(
            lr.predict_proba(pooled.x[a])[:, 1], ya, tp.withdraw_share, tp.max_mult
        )
        row: dict[str, Any] = {
            "split": k,
            "n_train": len(a),
            "n_test": len(b),
            "C": c,
            "base_rate_test": float(np.mean(yb)),
            "auc_logistic": auc_lr,
            "logloss_logistic": ll_lr,
            "auc_mlp": auc_mlp,
            "logloss_mlp": ll_mlp,
            "logloss_base_rate": tr.auc_and_logloss(yb, np.full(len(b), np.mean(ya)))[1],
            "policy": tr.policy_effect(p_lr, yb, pooled.aux[b], pol),
            "per_recording": {},
        }
        for g, r in enumerate(recs):
            m = pooled.group[b] == g
            if m.any():
                row["per_recording"][r.name] = {
                    "n_test": int(m.sum()),
                    "auc_logistic": tr.auc_and_logloss(yb[m], p_lr[m])[0],
                    "auc_mlp": tr.auc_and_logloss(yb[m], p_mlp[m])[0],
                }
        rows.append(row)
    if not rows:
        raise ConfigError(
            "train adverse: no walk-forward split has both classes in training "
            "(recordings too short or labels constant)"
        )
    diff = [r["auc_mlp"] - r["auc_logistic"] for r in rows]
    d_mean, d_se = tr.mean_se(diff)
    mlp_earns = bool(len(diff) > 1 and d_mean > 0 and d_se == d_se and d_mean > 2 * d_se)
    use_mlp = tp.model == "mlp" or (tp.model == "auto" and mlp_earns)
    summary: dict[str, Any] = {
        "splits": rows,
        "mlp_minus_logistic_auc": [d_mean, d_se],
        "mlp_earns_its_place": mlp_earns,
    }
    for key in ("auc_logistic", "logloss_logistic", "auc_mlp", "logloss_mlp", "logloss_base_rate"):
        summary[key] = list(tr.mean_se([r[key] for r in rows]))
    per_rec: dict[str, Any] = {}
    for r in recs:
        aucs = [
            s["per_recording"][r.name]["auc_logistic"] for s in rows if r.name in s["per_recording"]
        ]
        aucs_m = [
            s["per_recording"][r.name]["auc_mlp"] for s in rows if r.name in s["per_recording"]
        ]
        per_rec[r.name] = {
            "auc_logistic": list(tr.mean_se(aucs)),
            "auc_mlp": list(tr.mean_se(aucs_m)),
            "samples": int((pooled.group == recs.index(r)).sum()),
        }
    summary["per_recording"] = per_rec
    # the kept model, on everything
    if use_mlp:
        final = tr.fit_mlp(pooled.x, pooled.y, tp.mlp_alpha, tp.seed)
        kind, c_all = "adverse_mlp", None
    else:
        final, c_all = tr.fit_logistic(pooled.x, pooled.y, pooled.t_rel_ns, purge_ns)
        kind = "adverse_logistic"
    p_all = final.predict_proba(pooled.x)[:, 1]
    pol = tr.choose_policy(p_all, pooled.y, tp.withdraw_share, tp.max_mult)
    auc_in, ll_in = tr.auc_and_logloss(pooled.y, p_all)
    summary["train_auc"], summary["train_logloss"] = auc_in, ll_in
    summary["samples"], summary["base_rate"] = len(pooled.y), float(np.mean(pooled.y))
    meta = save_model(
        out_dir / "adverse",
        kind=kind,
        features=list(data[0].names),
        arrays=tr.export_network(final),
        mmd_version=mmd_version,
        orient=orient_vector().tolist(),
        policy={"p0": pol.p0, "k": pol.k, "p_withdraw": pol.p_withdraw},
        training_data=digests(recs),
        hyper_parameters={
            "labels": msgspec.to_builtins(lp),
            "train": msgspec.to_builtins(tp),
            "C": c_all,
            "C_grid": list(tr.C_GRID),
            "mlp_hidden": list(tr.MLP_HIDDEN),
        },
        metrics=summary,
    )
    _print_adverse(summary, meta, echo)
    return meta


def _print_adverse(s: dict[str, Any], meta: ModelMeta, echo: Callable[[str], None]) -> None:
    echo(
        f"adverse-selection detector: {s['samples']} samples, adverse base rate "
        f"{s['base_rate']:.3f}"
    )
    echo(
        f"{'split':>5} {'train':>7} {'test':>6} {'AUC lr':>7} {'LL lr':>7} {'AUC mlp':>8} "
        f"{'LL mlp':>7} {'LL base':>8} {'withdrawn':>9} {'adv kept':>8} {'adv off':>8}"
    )
    for r in s["splits"]:
        pe = r["policy"]
        echo(
            f"{r['split']:>5} {r['n_train']:>7} {r['n_test']:>6} {_fmt(r['auc_logistic']):>7} "
            f"{_fmt(r['logloss_logistic']):>7} {_fmt(r['auc_mlp']):>8} "
            f"{_fmt(r['logloss_mlp']):>7} {_fmt(r['logloss_base_rate']):>8} "
            f"{_fmt(pe['withdrawn_share']):>9} {_fmt(pe['adverse_rate_kept']):>8} "
            f"{_fmt(pe['adverse_rate_withdrawn']):>8}"
        )
    for key, label in (
        ("auc_logistic", "out-of-sample AUC, logistic"),
        ("auc_mlp", "out-of-sample AUC, MLP"),
        ("logloss_logistic", "out-of-sample log-loss, logistic"),
        ("logloss_mlp", "out-of-sample log-loss, MLP"),
        ("logloss_base_rate", "log-loss of the base rate"),
    ):
        m, se = s[key]
        echo(f"  {label:<34} {_fmt(m)} ± {_fmt(se)} (SE over splits)")
    for name, v in s["per_recording"].items():
        (m, se), (mm, mse) = v["auc_logistic"], v["auc_mlp"]
        echo(
            f"  {name}: AUC logistic {_fmt(m)} ± {_fmt(se)}, MLP {_fmt(mm)} ± {_fmt(mse)} "
            f"({v['samples']} samples)"
        )
    pol = meta.policy
    assert pol is not None  # an adverse model file always holds its policy
    echo(
        f"  MLP earns its place: {'yes' if s['mlp_earns_its_place'] else 'no'}; kept "
        f"{meta.kind}, version {meta.version}; policy p0={_fmt(pol['p0'])} "
        f"k={_fmt(pol['k'])} p_withdraw={_fmt(pol['p_withdraw'])}"
    )


def train_spread(
    recs: list[Recording],
    lp: LabelParams,
    tp: TrainParams,
    out_dir: Path,
    mmd_version: str,
    progress: bool,
    echo: Callable[[str], None],
) -> ModelMeta:
    """Walk-forward evaluation of the spread network against a constant (the training median),
    then the network fitted on everything and written to out_dir/spread."""
    from tqdm import tqdm

    from mmd.learn import train as tr

    data = [spread_dataset(r.series, lp) for r in recs]
    pooled = pool(data, [int(r.series.ts_ns[0]) if len(r.series.ts_ns) else 0 for r in recs])
    purge_ns = round(max(tp.purge_s, lp.window_s) * 1e9)
    splits = walk_forward_splits(pooled.t_rel_ns, tp.n_splits, purge_ns)
    lo, hi = math.log(min(lp.grid_ticks)), math.log(max(lp.grid_ticks))
    rows = []
    for k, (a, b) in enumerate(
        tqdm(splits, desc="walk-forward", unit="split", disable=not progress), 1
    ):
        if len(a) < 20:
            continue
        net = tr.fit_spread(pooled.x[a], pooled.y[a], tp.spread_alpha, tp.seed)
        log_true = np.log(pooled.y[b])
        pred = np.clip(net.predict(pooled.x[b]), lo, hi)  # as SpreadPredictor clips
        base = np.median(np.log(pooled.y[a]))
        rows.append(
            {
                "split": k,
                "n_train": len(a),
                "n_test": len(b),
                "rmse_log": float(np.sqrt(np.mean((pred - log_true) ** 2))),
                "rmse_log_constant": float(np.sqrt(np.mean((base - log_true) ** 2))),
                "mae_ticks": float(np.mean(np.abs(np.exp(pred) - pooled.y[b]))),
                "mae_ticks_constant": float(np.mean(np.abs(np.exp(base) - pooled.y[b]))),
            }
        )
    if not rows:
        raise ConfigError("train spread: too few samples for a walk-forward split")
    summary: dict[str, Any] = {"splits": rows}
    for key in ("rmse_log", "rmse_log_constant", "mae_ticks", "mae_ticks_constant"):
        summary[key] = list(tr.mean_se([r[key] for r in rows]))
    final = tr.fit_spread(pooled.x, pooled.y, tp.spread_alpha, tp.seed)
    summary["samples"] = len(pooled.y)
    summary["label_quantiles_ticks"] = np.quantile(pooled.y, [0.1, 0.5, 0.9]).tolist()
    summary["train_rmse_log"] = float(
        np.sqrt(np.mean((np.clip(final.predict(pooled.x), lo, hi) - np.log(pooled.y)) ** 2))
    )
    meta = save_model(
        out_dir / "spread",
        kind="spread_mlp",
        features=list(MARKET_FEATURES),
        arrays=tr.export_network(final),
        mmd_version=mmd_version,
        training_data=digests(recs),
        hyper_parameters={
            "labels": msgspec.to_builtins(lp),
            "train": msgspec.to_builtins(tp),
            "hidden": list(tr.SPREAD_HIDDEN),
            "target": "log half spread (ticks)",
            "clip_ticks": [min(lp.grid_ticks), max(lp.grid_ticks)],
        },
        metrics=summary,
    )
    echo(
        f"spread predictor: {summary['samples']} decisions, best half spread (ticks) "
        f"p10/p50/p90 = {', '.join(_fmt(q, '.0f') for q in summary['label_quantiles_ticks'])}"
    )
    echo(
        f"{'split':>5} {'train':>6} {'test':>5} {'RMSE log':>9} {'const':>7} {'MAE ticks':>10} "
        f"{'const':>7}"
    )
    for r in rows:
        echo(
            f"{r['split']:>5} {r['n_train']:>6} {r['n_test']:>5} {_fmt(r['rmse_log']):>9} "
            f"{_fmt(r['rmse_log_constant']):>7} {_fmt(r['mae_ticks'], '.2f'):>10} "
            f"{_fmt(r['mae_ticks_constant'], '.2f'):>7}"
        )
    for key, label in (
        ("rmse_log", "out-of-sample RMSE of log h, network"),
        ("rmse_log_constant", "the same, training median"),
    ):
        m, se = summary[key]
        echo(f"  {label:<38} {_fmt(m)} ± {_fmt(se)} (SE over splits)")
    echo(f"  written {meta.kind}, version {meta.version}")
    return meta


def run_train(
    kind: str,
    data: list[str],
    out: str,
    sets: list[str],
    config_path: str | None,
    progress: bool,
    echo: Callable[[str], None] = print,
) -> ModelMeta:
    """The `mmd train` command (kind "adverse", "spread", "rl", "lstm" or "multitask")."""
    if kind in ("lstm", "multitask"):
        from mmd.learn.deep_cli import run_deep

        return run_deep(kind, data, out, sets, config_path, progress, echo)
    from mmd import __version__
    from mmd.config import load_config

    if kind == "rl":
        from mmd.learn.rl import run_train_rl

        return run_train_rl(data, out, sets, config_path, progress, echo)
    lp, tp, config_sets = parse_sets(sets)
    cfg = load_config(config_path, sets=config_sets)
    t0 = dt.datetime.now(dt.UTC)
    recs = read_recordings(cfg, data, progress)
    out_dir = Path(out)
    fit = train_adverse if kind == "adverse" else train_spread
    meta = fit(recs, lp, tp, out_dir, __version__, progress, echo)
    secs = (dt.datetime.now(dt.UTC) - t0).total_seconds()
    echo(f"model written to {out_dir / kind} in {secs:.1f} s")
    sys.stdout.flush()
    return meta


def _headline(name: str, meta: Any) -> str:
    """One line of a model's out-of-sample figures for the `train all` summary."""
    m = getattr(meta, "metrics", {}) or {}
    if name == "adverse" and "auc_logistic" in m:
        key = "auc_mlp" if meta.kind == "adverse_mlp" else "auc_logistic"
        return (
            f"AUC {_fmt(m[key][0])} ± {_fmt(m[key][1])}, log-loss "
            f"{_fmt(m[key.replace('auc', 'logloss')][0])} (base rate "
            f"{_fmt(m['logloss_base_rate'][0])})"
        )
    if name == "spread" and "rmse_log" in m:
        return (
            f"RMSE log h {_fmt(m['rmse_log'][0])} (training median "
            f"{_fmt(m['rmse_log_constant'][0])})"
        )
    return ""


def run_train_all(
    data: list[str],
    out: str,
    sets: list[str],
    config_path: str | None,
    progress: bool,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """`mmd train all`: the recordings read once, then the adverse-selection detector, the
    spread predictor and, when `mmd.learn.rl.train_rl` exists, the RL agent, each into
    OUT/<name>; ends with one summary (kind, version, out-of-sample figures, time)."""
    import time

    from mmd import __version__
    from mmd.config import load_config
    from mmd.learn.evaluate.spec import rl_trainer

    lp, tp, config_sets = parse_sets(sets)
    cfg = load_config(config_path, sets=config_sets)
    t0 = time.perf_counter()
    recs = read_recordings(cfg, data, progress)
    read_s = time.perf_counter() - t0
    out_dir = Path(out)
    trainers: list[tuple[str, Callable[..., Any]]] = [
        ("adverse", train_adverse),
        ("spread", train_spread),
    ]
    rl = rl_trainer()
    if rl is not None:
        trainers.append(("rl", rl))
    metas: dict[str, Any] = {}
    secs: dict[str, float] = {}
    for name, fn in trainers:
        t = time.perf_counter()
        metas[name] = fn(recs, lp, tp, out_dir, __version__, progress, echo)
        secs[name] = time.perf_counter() - t
    total = time.perf_counter() - t0
    echo(f"summary ({len(recs)} recording(s) read in {read_s:.1f} s):")
    for name, meta in metas.items():
        echo(
            f"  {name:<8} {getattr(meta, 'kind', name):<17} version "
            f"{getattr(meta, 'version', '?')}  {secs[name]:6.1f} s  {_headline(name, meta)}"
        )
    if rl is None:
        echo("  rl       not trained (no RL trainer: mmd.learn.rl.train_rl)")
    echo(f"models written to {out_dir} in {total:.1f} s")
    sys.stdout.flush()
    return {"models": metas, "seconds": secs, "read_s": read_s, "total_s": total}

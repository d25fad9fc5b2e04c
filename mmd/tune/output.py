"""The files `mmd tune` writes: results.csv/json, best.toml, oos.json and PNG plots.

Shell (files, matplotlib). Plots: history.png (every trial's training score and the best so far),
importance.png (parameter importance), oos.png (out-of-sample vs training score of the top
trials). Importance is Optuna's fANOVA with seed 0; when that fails (too few completed trials,
constant scores) it falls back to |Spearman rank correlation| between each parameter and the
score, normalised to sum 1 (the file's title says which).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from mmd.tune.objective import KEY_FIGURES, NO_FILL_SCORE


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def result_row(r: dict[str, Any]) -> dict[str, Any]:
    """One trial as a flat row (results.csv; results.json keeps it nested)."""
    row: dict[str, Any] = {
        "number": r["number"],
        "state": "fail" if r["score"] is None else "complete",
        "score": r["score"],
        "duration_s": round(r["duration_s"], 4),
    }
    for i, s in enumerate(r["fold_scores"]):
        row[f"train_fold_{i}"] = s
    for k, v in r["params"].items():
        row[k] = v
    for k in KEY_FIGURES:
        row[k] = r["figures"].get(k)
    row["error"] = (r["error"] or "").strip().splitlines()[-1] if r["error"] else ""
    return row


def write_results(out: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """results.csv (one flat row per trial) and results.json (meta + every trial)."""
    rows = [result_row(r) for r in results]
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    trials = [
        {
            "number": r["number"],
            "params": r["params"],
            "score": r["score"],
            "fold_scores": r["fold_scores"],
            "figures": r["figures"],
            "duration_s": r["duration_s"],
            "error": r["error"],
        }
        for r in results
    ]
    (out / "results.json").write_text(
        json.dumps({**meta, "trials": trials}, indent=1, default=_finite) + "\n", encoding="utf-8"
    )


def write_json(path: Path, obj: Any) -> None:
    """JSON with NaN written as null."""
    path.write_text(json.dumps(_nan_to_none(obj), indent=1) + "\n", encoding="utf-8")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return _finite(obj)


def write_best_toml(path: Path, config_toml: str, header: list[str]) -> None:
    """The effective config of the best trial, with comment lines saying where it came from."""
    path.write_text("".join(f"# {h}\n" for h in header) + config_toml, encoding="utf-8")


def importance(study: Any, results: list[dict[str, Any]]) -> tuple[dict[str, float], str]:
    """(param -> importance, method)."""
    try:
        import optuna

        ev = optuna.importance.FanovaImportanceEvaluator(seed=0)
        imp = optuna.importance.get_param_importances(study, evaluator=ev)
        if imp and all(math.isfinite(v) for v in imp.values()):
            return dict(imp), "fANOVA (optuna, seed 0)"
    except Exception:  # noqa: S110 - too few trials, a constant score: the simple measure below
        pass
    return spearman_importance(results), "|Spearman rho| with the score, normalised"


def spearman_importance(results: list[dict[str, Any]]) -> dict[str, float]:
    """|rank correlation| of each numeric parameter with the score, normalised to sum 1."""
    import numpy as np

    done = [r for r in results if r["score"] is not None]
    if len(done) < 3:
        return {}
    score = _ranks(np.array([r["score"] for r in done], float))
    out = {}
    for name in done[0]["params"]:
        vals = [r["params"][name] for r in done]
        if not all(isinstance(v, int | float) for v in vals):
            continue
        x = _ranks(np.array(vals, float))
        sx, ss = x.std(), score.std()
        out[name] = (
            abs(float(((x - x.mean()) * (score - score.mean())).mean() / (sx * ss)))
            if sx > 0 and ss > 0
            else 0.0
        )
    total = sum(out.values())
    return {k: v / total if total > 0 else 0.0 for k, v in out.items()}


def _ranks(a: Any) -> Any:
    import numpy as np

    order = np.argsort(a, kind="stable")
    r = np.empty(len(a), float)
    r[order] = np.arange(len(a), dtype=float)
    _, inv = np.unique(a, return_inverse=True)  # ties share their mean rank
    return (np.bincount(inv, weights=r) / np.bincount(inv))[inv]


def write_plots(
    out: Path,
    results: list[dict[str, Any]],
    imp: dict[str, float],
    method: str,
    oos_rows: list[dict[str, Any]],
    objective: str,
) -> list[Path]:
    """history.png, importance.png, oos.png; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=90)
    pts = [
        (r["number"], r["score"])
        for r in results
        if r["score"] is not None and r["score"] > NO_FILL_SCORE
    ]
    pen = sum(1 for r in results if r["score"] is not None and r["score"] <= NO_FILL_SCORE)
    if pts:
        ax.plot(*zip(*pts, strict=True), "o", ms=4, alpha=0.7, label="trial (training score)")
        best, run = -math.inf, []
        for n, s in pts:
            best = max(best, s)
            run.append((n, best))
        ax.step(*zip(*run, strict=True), where="post", color="C3", label="best so far")
        ax.legend(fontsize=8)
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title(f"optimisation history ({pen} trial(s) without fills not shown)", fontsize=9)
    fig.tight_layout()
    paths.append(out / "history.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=90)
    items = sorted(imp.items(), key=lambda kv: kv[1])
    if items:
        ax.barh([k for k, _ in items], [v for _, v in items], color="C0")
    ax.set_xlabel("importance")
    ax.set_title(f"parameter importance: {method}", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    paths.append(out / "importance.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.0, 4.0), dpi=90)
    xy = [
        (r["train_score"], r["oos_score"], r["number"])
        for r in oos_rows
        if r["oos_score"] is not None
        and r["train_score"] > NO_FILL_SCORE
        and r["oos_score"] > NO_FILL_SCORE
    ]
    if xy:
        xs, ys, _ = zip(*xy, strict=True)
        ax.plot(xs, ys, "o", color="C2")
        for x, y, n in xy:
            ax.annotate(f"#{n}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        lo, hi = min(xs + ys), max(xs + ys)
        ax.plot([lo, hi], [lo, hi], ":", color="grey", lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"training {objective}")
    ax.set_ylabel(f"out-of-sample {objective}")
    ax.set_title(f"top {len(oos_rows)} trials: out of sample vs training", fontsize=9)
    fig.tight_layout()
    paths.append(out / "oos.png")
    fig.savefig(paths[-1])
    plt.close(fig)
    return paths

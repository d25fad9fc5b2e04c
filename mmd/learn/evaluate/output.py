"""The outputs of `mmd evaluate`: the terminal table, evaluation.csv/json, direction.csv and
the PNG plots, all from the assembled result.

Shell: writes files; computes no figure.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmd.learn.evaluate.spec import FIGURES
from mmd.learn.evaluate.stats import finite


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


_COLUMNS = (
    ("pnl", "PnL", ".4f"),
    ("pnl_bps", "bps", ".2f"),
    ("sharpe", "Sharpe", ".2f"),
    ("max_drawdown", "maxDD", ".4f"),
    ("fills", "fills", "d"),
    ("mean_abs_position", "mean|pos|", ".5f"),
    ("pnl_to_map", "PnL/|pos|", ".1f"),
    ("markout_1s", "mk1s", ".2f"),
    ("markout_5s", "mk5s", ".2f"),
    ("markout_30s", "mk30s", ".2f"),
    ("detector_auc", "AUC", ".3f"),
    ("detector_logloss", "logloss", ".3f"),
    ("net_delta", "|netdelta|", ".2f"),
)


def echo_table(result: dict[str, Any], echo: Callable[[str], None]) -> None:
    """The terminal table: every strategy per split, then overall, then the paired test."""
    full = next((s for s in result["meta"]["strategies"] if s["key"] == "full"), None)
    if full is not None:
        echo(
            f"full stack = tuned AS + {' + '.join(full['models'])} + risk-scaled size"
            + ("" if "rl" in full["models"] else " (no RL trainer)")
        )
    width = max(len(r["label"]) for r in result["rows"] + result["overall"])
    head = f"{'strategy':<{width}} {'split':>5} " + " ".join(
        f"{h:>{max(9, len(h))}}" for _, h, _ in _COLUMNS
    )
    echo(head)
    for r in result["rows"] + result["overall"]:
        if not r["available"]:
            echo(f"{r['label']:<{width}} {r['split']!s:>5} {r['note']}")
            continue
        cells = " ".join(f"{_fmt(r[k], f):>{max(9, len(h))}}" for k, h, f in _COLUMNS)
        echo(
            f"{r['label']:<{width}} {r['split']!s:>5} {cells}"
            + (f"  ({r['note']})" if r["note"] else "")
        )
    t = result["paired_test"]
    p = "n/a" if t["p_value"] is None else f"{t['p_value']:.4f}"
    echo(
        f"paired Wilcoxon signed-rank, full stack - tuned AS, per-split {t['metric']}: "
        f"n={t['n']}, p={p}" + (f" ({t['note']})" if t["note"] else "")
    )
    t = result.get("paired_test_deep")
    if t is not None and t["n"]:
        p = "n/a" if t["p_value"] is None else f"{t['p_value']:.4f}"
        echo(
            f"paired Wilcoxon signed-rank, deep full stack - full stack, per-split "
            f"{t['metric']}: n={t['n']}, p={p}" + (f" ({t['note']})" if t["note"] else "")
        )
    if result.get("direction"):
        echo(
            "direction of the mid over the label horizon, out of sample (test-window "
            "sequences; P(up) > 0.5 = up):"
        )
        echo(f"{'model':<16} {'split':>5} {'n':>6} {'accuracy':>9} {'macro-F1':>9} {'AUC':>7}")
        for r in result["direction"]:
            echo(
                f"{r['model']:<16} {r['split']!s:>5} {r['n']:>6} "
                f"{_fmt(finite(r['accuracy']), '.3f'):>9} "
                f"{_fmt(finite(r['macro_f1']), '.3f'):>9} {_fmt(finite(r['auc']), '.3f'):>7}"
            )
    echo(f"Sharpe basis: {result['meta']['sharpe_basis']}")


def write_outputs(result: dict[str, Any], out: Path) -> list[Path]:
    """evaluation.csv (one row per strategy and split, then "all"), evaluation.json, and the
    plots pnl_to_map.png (per strategy and split) and markouts.png (overall, 1/5/30 s)."""
    out.mkdir(parents=True, exist_ok=True)
    cols = [
        "strategy",
        "label",
        "split",
        "available",
        "note",
        *FIGURES,
        "volume_quote",
        "fees",
        "duration_s",
    ]
    csv_path = out / "evaluation.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(result["rows"] + result["overall"])
    if result.get("direction"):
        d_path = out / "direction.csv"
        with open(d_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(
                fh,
                fieldnames=["model", "split", "n", "accuracy", "macro_f1", "auc"],
                extrasaction="ignore",
            )
            w.writeheader()
            w.writerows(result["direction"])
    js = out / "evaluation.json"
    js.write_text(json.dumps(result, indent=2, default=_json_default) + "\n", encoding="utf-8")
    extra = [out / "direction.csv"] if result.get("direction") else []
    return [csv_path, *extra, js, *_plots(result, out)]


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"not JSON: {type(v)}")


def _plots(result: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["label"] for r in result["overall"]]
    keys = [r["strategy"] for r in result["overall"]]
    splits = [s["split"] for s in result["splits"]]
    paths = []
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(1, len(splits))
    for j, s in enumerate(splits):
        vals = [
            next(
                (r["pnl_to_map"] for r in result["rows"] if r["strategy"] == k and r["split"] == s),
                None,
            )
            for k in keys
        ]
        ax.bar(
            np.arange(len(keys)) + j * width,
            [v if v is not None else 0.0 for v in vals],
            width,
            label=f"split {s}",
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(keys)) + width * (len(splits) - 1) / 2)
    ax.set_xticklabels([lb.split(" (")[0] for lb in labels], rotation=20, ha="right")
    ax.set_ylabel("PnL / mean |position| (quote per base unit)")
    ax.set_title("Out of sample, per split (n/a drawn as 0)")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "pnl_to_map.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    horizons = ("markout_1s", "markout_5s", "markout_30s")
    width = 0.8 / len(horizons)
    for j, h in enumerate(horizons):
        heights = [r[h] if r[h] is not None else 0.0 for r in result["overall"]]
        ax.bar(np.arange(len(keys)) + j * width, heights, width, label=h.split("_")[1])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(keys)) + width)
    ax.set_xticklabels([lb.split(" (")[0] for lb in labels], rotation=20, ha="right")
    ax.set_ylabel("mean markout (ticks, + = in our favour)")
    ax.set_title("Fill markouts over every split")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "markouts.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths

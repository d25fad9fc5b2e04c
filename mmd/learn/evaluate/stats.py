"""The pure arithmetic of `mmd evaluate`: expanding splits, series slicing, a split's figures
from backtest summaries, figures over splits and the paired Wilcoxon test.

No I/O: numbers in, numbers out.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from mmd.learn.evaluate.spec import FIGURES

if TYPE_CHECKING:
    from mmd.learn.dataset import MarketSeries
    from mmd.learn.evaluate.split import Split

Window = tuple[int, int]


def eval_splits(folds: list[list[Window]]) -> list[tuple[list[list[Window]], list[Window]]]:
    """Expanding-window splits over K+1 folds: split k (1..K) trains on folds 0..k-1 (kept as
    separate folds, for the tuner) and tests on fold k."""
    return [(folds[:k], folds[k]) for k in range(1, len(folds))]


def slice_series(ms: MarketSeries, start_ns: int | None, end_ns: int) -> MarketSeries:
    """The rows and trades of ms received in [start_ns, end_ns) (None = from the start)."""
    lo = -(2**62) if start_ns is None else start_ns
    r = (ms.ts_ns >= lo) & (ms.ts_ns < end_ns)
    t = (ms.trade_ts_ns >= lo) & (ms.trade_ts_ns < end_ns)
    return dataclasses.replace(
        ms,
        ts_ns=ms.ts_ns[r],
        fx=ms.fx[r],
        is_book=ms.is_book[r],
        trade_ts_ns=ms.trade_ts_ns[t],
        trade_px_ticks=ms.trade_px_ticks[t],
        trade_qty_lots=ms.trade_qty_lots[t],
        trade_side=ms.trade_side[t],
    )


def finite(v: Any) -> float | None:
    """v as a finite float, else None."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def weighted(pairs: list[tuple[float | None, float]]) -> float | None:
    """The weighted mean of the (value, weight) pairs with a value and a positive weight."""
    num = den = 0.0
    for v, w in pairs:
        if v is not None and w > 0:
            num += v * w
            den += w
    return num / den if den > 0 else None


def aggregate(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One split's figures from its backtest summaries (one per window and symbol).

    PnL, fills, volume and fees add up; pnl_bps = PnL / traded notional x 1e4; max_drawdown is
    the worst window's; mean_abs_position is the duration-weighted mean; pnl_to_map = PnL /
    that mean; markouts are fill-weighted; sharpe is the summary's (hourly PnL changes,
    annualised: n/a under 24 h) when there is one summary, else n/a. With one summary every
    figure is the summary's own.
    """
    if not summaries:
        return dict.fromkeys(FIGURES) | {"volume_quote": None, "fees": None, "duration_s": None}
    pnl = math.fsum(float(s["pnl"]) for s in summaries)
    vol = math.fsum(float(s.get("volume_quote", 0.0)) for s in summaries)
    fills = sum(int(s.get("fills", 0)) for s in summaries)
    dur = [float(s.get("duration_s") or 0.0) for s in summaries]
    if len(summaries) == 1:
        s = summaries[0]
        out = {
            k: finite(s.get(k))
            for k in (
                "pnl",
                "sharpe",
                "max_drawdown",
                "mean_abs_position",
                "pnl_to_map",
                "markout_1s",
                "markout_5s",
                "markout_30s",
            )
        }
        out["pnl_bps"] = finite(s.get("pnl_per_notional_bps"))
    else:
        map_ = weighted(
            [(finite(s.get("mean_abs_position")), d) for s, d in zip(summaries, dur, strict=True)]
        )
        out = {
            "pnl": pnl,
            "sharpe": None,
            "max_drawdown": max(float(s["max_drawdown"]) for s in summaries),
            "mean_abs_position": map_,
            "pnl_to_map": pnl / map_ if map_ else None,
            "pnl_bps": pnl / vol * 1e4 if vol > 0 else None,
        }
        for h in ("markout_1s", "markout_5s", "markout_30s"):
            out[h] = weighted([(finite(s.get(h)), float(s.get("fills", 0))) for s in summaries])
    # the book's mean |net delta| (quote) of a multi-symbol window, duration-weighted
    books = {
        id(s["book"]): (s["book"], d) for s, d in zip(summaries, dur, strict=True) if s.get("book")
    }
    out["net_delta"] = weighted(
        [(finite(b.get("net_delta_mean_abs_quote")), d) for b, d in books.values()]
    )
    out["fills"] = fills
    out["volume_quote"] = vol
    out["fees"] = math.fsum(float(s.get("fees", 0.0)) for s in summaries)
    out["duration_s"] = math.fsum(dur)
    return out


def overall(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A strategy's figures over its split rows: sums, the worst drawdown, duration-weighted
    mean |position|, fill-weighted markouts and AUC/log-loss means; `sharpe` here is over
    splits: mean(split PnL) / std(split PnL, ddof=1), not annualised (n/a under 2 splits)."""
    pnls = [r["pnl"] for r in rows if r["pnl"] is not None]
    pnl = math.fsum(pnls) if pnls else None
    vol = math.fsum(r["volume_quote"] or 0.0 for r in rows)
    map_ = weighted([(r["mean_abs_position"], r["duration_s"] or 0.0) for r in rows])
    sd = float(np.std(pnls, ddof=1)) if len(pnls) > 1 else math.nan
    out: dict[str, Any] = {
        "pnl": pnl,
        "pnl_bps": pnl / vol * 1e4 if pnl is not None and vol > 0 else None,
        "sharpe": float(np.mean(pnls)) / sd if sd > 0 else None,
        "max_drawdown": max(
            (r["max_drawdown"] for r in rows if r["max_drawdown"] is not None), default=None
        ),
        "fills": sum(r["fills"] or 0 for r in rows),
        "mean_abs_position": map_,
        "pnl_to_map": pnl / map_ if pnl is not None and map_ else None,
        "volume_quote": vol,
        "fees": math.fsum(r["fees"] or 0.0 for r in rows),
        "duration_s": math.fsum(r["duration_s"] or 0.0 for r in rows),
    }
    for h in ("markout_1s", "markout_5s", "markout_30s"):
        out[h] = weighted([(r[h], float(r["fills"] or 0)) for r in rows])
    for k in ("detector_auc", "detector_logloss"):
        vals = [r[k] for r in rows if r[k] is not None]
        out[k] = float(np.mean(vals)) if vals else None
    out["net_delta"] = weighted([(r.get("net_delta"), r["duration_s"] or 0.0) for r in rows])
    return out


def paired_test(a: list[float | None], b: list[float | None]) -> dict[str, Any]:
    """Wilcoxon signed-rank test of a - b over the splits where both exist (two-sided).

    Returns n, the differences, the statistic and the p-value (1.0 when every difference is 0,
    None under one pair), and a note on its power: with n pairs the smallest two-sided p the
    exact test can give is 2 / 2^n (0.0625 at n = 5), so under 6 splits it cannot reach 0.05.
    """
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    d = [x - y for x, y in pairs]
    out: dict[str, Any] = {
        "n": len(d),
        "differences": d,
        "statistic": None,
        "p_value": None,
        "min_attainable_p": (2.0 / 2 ** len(d)) if d else None,
    }
    if len(d) >= 1:
        from scipy.stats import wilcoxon

        if all(x == 0 for x in d):
            out["statistic"], out["p_value"] = 0.0, 1.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = wilcoxon(d)
            p = float(res.pvalue)
            out["statistic"] = float(res.statistic)
            out["p_value"] = min(1.0, max(0.0, p)) if p == p else 1.0
    out["note"] = (
        "little power: with n splits the smallest attainable two-sided p is 2/2^n"
        if len(d) < 6
        else ""
    )
    return out


def direction_rows(splits: list[Split]) -> list[dict[str, Any]]:
    """The direction figures per model and split, then per model over the splits ("all":
    means weighted by the split's labelled test windows)."""
    rows = [{"model": m, "split": sp.number, **f} for sp in splits for m, f in sp.direction.items()]
    models = list(dict.fromkeys(r["model"] for r in rows))
    for m in models:
        mine = [r for r in rows if r["model"] == m and r["split"] != "all"]
        n = sum(r["n"] for r in mine)
        row: dict[str, Any] = {"model": m, "split": "all", "n": n}
        for k in ("accuracy", "macro_f1", "auc"):
            row[k] = weighted([(finite(r[k]), float(r["n"])) for r in mine])
        rows.append(row)
    return rows

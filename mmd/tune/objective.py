"""The score a trial maximises, from backtest summaries (mmd.sim.report.summarize keys).

Pure. One (window, symbol) summary scores:
    pnl_to_map: summary["pnl_to_map"], PnL (quote, net of fees) / time-weighted mean |position|
        (base units);
    pnl_dd: pnl - dd_lambda * max_drawdown (both quote);
    sharpe: summary["sharpe"], annualised from hourly PnL changes (the summary's basis, see
        summarize): it needs >= 24 h of data, so on shorter windows every trial scores the penalty.
A summary without fills, or whose figure is not finite (NaN), scores NO_FILL_SCORE instead: a
finite value below any real score on these data, so the sampler learns "worse than trading"
rather than receiving NaN. The score of a set of summaries (a fold: several windows and symbols)
is the plain mean over those that score (fills and a finite figure): a short window where the
config did not trade does not drown the others in the penalty; a fold where nothing scores
gets NO_FILL_SCORE. A trial's score is the mean over its training folds.
"""

from __future__ import annotations

import math
from typing import Any

OBJECTIVES = ("pnl_to_map", "pnl_dd", "sharpe")
NO_FILL_SCORE = -1e6
# the figures every results row keeps from a summary (summed or averaged over windows)
KEY_FIGURES = (
    "pnl",
    "fees",
    "max_drawdown",
    "fills",
    "volume",
    "mean_abs_position",
    "pnl_to_map",
    "sharpe",
    "markout_5s",
    "events",
)


def summary_score(summary: dict[str, Any], objective: str, dd_lambda: float = 1.0) -> float:
    """The objective of one backtest summary (NO_FILL_SCORE without fills or when not finite)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}: one of {', '.join(OBJECTIVES)}")
    if not summary.get("fills"):
        return NO_FILL_SCORE
    if objective == "pnl_dd":
        v = float(summary["pnl"]) - dd_lambda * float(summary["max_drawdown"])
    else:
        v = float(summary[objective])
    return v if math.isfinite(v) else NO_FILL_SCORE


def fold_score(summaries: list[dict[str, Any]], objective: str, dd_lambda: float = 1.0) -> float:
    """Mean objective over the summaries of a fold that score; NO_FILL_SCORE when none does."""
    scores = [summary_score(s, objective, dd_lambda) for s in summaries]
    scores = [x for x in scores if x != NO_FILL_SCORE]
    return math.fsum(scores) / len(scores) if scores else NO_FILL_SCORE


def key_figures(summaries: list[dict[str, Any]]) -> dict[str, float]:
    """Totals (pnl, fees, fills, volume, events), worst max_drawdown and means of the ratios
    over a set of summaries, NaN as None (JSON-friendly)."""
    out: dict[str, float] = {}
    for key in KEY_FIGURES:
        vals = [float(s.get(key, math.nan)) for s in summaries]
        if key in ("pnl", "fees", "fills", "volume", "events"):
            v = math.fsum(vals)
        elif key == "max_drawdown":
            v = max(vals, default=math.nan)
        else:
            finite = [x for x in vals if math.isfinite(x)]
            v = math.fsum(finite) / len(finite) if finite else math.nan
        out[key] = v if math.isfinite(v) else None  # type: ignore[assignment]
    return out

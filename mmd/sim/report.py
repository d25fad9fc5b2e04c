"""Backtest report: summary statistics of one run (pure numpy). Pure: no file is read or written
here (the charts and file bytes are mmd.sim.report_charts', mmd.report_files writes them).

Inputs are plain numpy arrays (prices in ticks, sizes in lots, money in quote currency, time in
ns since the epoch):

- equity: `equity_ts_ns` int64 (n,), non-decreasing; `equity_quote` float64 (n,): mark-to-market
  PnL of the run in quote currency at those times, fees included (cash + position * mid - fees,
  relative to any constant start); `position_lots` (n,): signed position after each point.
  The series is a step function: a value holds until the next point.
- fills: a structured array with (at least) the fields of FILL_DTYPE: `ts_ns`, `side` (+1 we
  bought, -1 we sold; mmd.model.codes), `px_ticks`, `qty_lots` (> 0), `fee_quote` (negative =
  rebate); `liquidity` (MAKER 1 / TAKER 2, mmd.model.events) is optional. fills_array() builds
  one from OrderFilled events.
- mids: a structured array with MID_DTYPE fields `ts_ns`, `mid_ticks` (float: a mid can sit on a
  half tick), non-decreasing in time; a step function like the equity.
- quotes (plots only): QUOTE_DTYPE `ts_ns`, `bid_ticks`, `ask_ticks`; NaN = no quote on a side.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FILL_DTYPE = np.dtype(
    [
        ("ts_ns", "<i8"),
        ("side", "<i1"),
        ("px_ticks", "<i8"),
        ("qty_lots", "<i8"),
        ("fee_quote", "<f8"),
        ("liquidity", "<i1"),
    ]
)
MID_DTYPE = np.dtype([("ts_ns", "<i8"), ("mid_ticks", "<f8")])
QUOTE_DTYPE = np.dtype([("ts_ns", "<i8"), ("bid_ticks", "<f8"), ("ask_ticks", "<f8")])

SECONDS_PER_YEAR = 365 * 86_400  # crypto trades 24/7: 365 days, not 252
MARKOUT_HORIZONS_S = (1, 5, 30)
# the markouts chart: 0 s is the mid at the fill (the spread captured)
MARKOUT_CURVE_S = (0, 1, 2, 5, 10, 30, 60)
NS = 1_000_000_000
# Sharpe and Sortino are read from PnL changes over this period, and only when the run holds at
# least SHARPE_MIN_SAMPLES of them: a ratio of a few samples, annualised, is noise times a large
# factor (sqrt(31.5e6) ~ 5600 for 1 s samples).
SHARPE_PERIOD_S = 3600.0
SHARPE_MIN_SAMPLES = 24

REQUIRED_KEYS = (
    "pnl",
    "fees",
    "sharpe",
    "sortino",
    "max_drawdown",
    "fills",
    "volume",
    "win_rate",
    "avg_spread_captured",
    "markout_1s",
    "markout_5s",
    "markout_30s",
    "mean_abs_position",
    "pnl_to_map",
    "strategy",
    "events",
)


def fills_array(fills: Iterable[Any]) -> npt.NDArray[np.void]:
    """FILL_DTYPE array from objects with ts_exch_ns, side, px_ticks, qty_lots, fee_quote and
    liquidity attributes (mmd.model.events.OrderFilled)."""
    rows = [(f.ts_exch_ns, f.side, f.px_ticks, f.qty_lots, f.fee_quote, f.liquidity) for f in fills]
    return np.array(rows, FILL_DTYPE) if rows else np.empty(0, FILL_DTYPE)


def mids_array(
    ts_ns: Sequence[int] | npt.NDArray[Any], mid_ticks: Sequence[float] | npt.NDArray[Any]
) -> npt.NDArray[np.void]:
    """MID_DTYPE array from two parallel sequences."""
    out = np.empty(len(ts_ns), MID_DTYPE)
    out["ts_ns"] = ts_ns
    out["mid_ticks"] = mid_ticks
    return out


def _step_at(
    ts: npt.NDArray[np.int64], values: npt.NDArray[Any], query: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """values of a step function (value i holds from ts[i] on) at query times; NaN before ts[0]."""
    out = np.full(len(query), np.nan)
    if len(ts) == 0:
        return out
    idx = np.searchsorted(ts, query, side="right") - 1
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def _nanmean(x: npt.NDArray[np.float64]) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def sampled_returns(
    equity_ts_ns: npt.NDArray[np.int64], equity_quote: npt.NDArray[np.float64], sample_s: float
) -> npt.NDArray[np.float64]:
    """PnL differences on the grid t0, t0 + sample_s, ... <= t_last (the equity step function
    read at each grid time; a last partial interval is dropped)."""
    ts = np.asarray(equity_ts_ns, np.int64)
    step = round(sample_s * NS)
    if step <= 0:
        raise ValueError("sample_s must be > 0")
    n = int((ts[-1] - ts[0]) // step) + 1
    grid = ts[0] + np.arange(n, dtype=np.int64) * step
    return np.diff(_step_at(ts, np.asarray(equity_quote, np.float64), grid))


def sharpe_sortino(returns: npt.NDArray[np.float64], sample_s: float) -> tuple[float, float]:
    """(Sharpe, Sortino) of per-period PnL differences, annualised by sqrt(periods per year).

    Sharpe = mean(r) / std(r, ddof=1) * sqrt(365 * 86400 / sample_s).
    Sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(365 * 86400 / sample_s) (target 0, the
    downside deviation over all samples).
    NaN when undefined (fewer than 2 samples, zero std, no losing sample). No minimum sample
    count here: summarize() applies one.
    """
    ann = math.sqrt(SECONDS_PER_YEAR / sample_s)
    if returns.size < 2:
        return math.nan, math.nan
    mean = float(returns.mean())
    std = float(returns.std(ddof=1))
    sharpe = mean / std * ann if std > 0 else math.nan
    down = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    sortino = mean / down * ann if down > 0 else math.nan
    return sharpe, sortino


def sharpe_basis(period_s: float) -> str:
    """The basis of the Sharpe and Sortino figures in words, for the summary and the charts,
    e.g. "hourly PnL changes, annualised x sqrt(8760)"."""
    per_year = SECONDS_PER_YEAR / period_s
    name = {3600.0: "hourly", 86_400.0: "daily", 60.0: "minutely"}.get(
        float(period_s), f"{period_s:g} s"
    )
    return f"{name} PnL changes, annualised x sqrt({per_year:g})"


def _period_words(period_s: float) -> str:
    if period_s % 3600 == 0:
        return f"{period_s / 3600:g} h"
    return f"{period_s:g} s"


def risk_adjusted(
    equity_ts_ns: npt.NDArray[np.int64],
    equity_quote: npt.NDArray[np.float64],
    *,
    period_s: float = SHARPE_PERIOD_S,
    min_samples: int = SHARPE_MIN_SAMPLES,
) -> dict[str, Any]:
    """Sharpe and Sortino of the equity read every period_s seconds, with their basis.

    The figures are computed only when the run holds at least min_samples PnL changes
    (min_samples * period_s seconds of data); otherwise they are NaN and `sharpe_note` says why.

    Returns:
        sharpe, sortino (NaN when not computed or undefined), sharpe_basis (words),
        sharpe_period_s, sharpe_samples (PnL changes on the grid), sharpe_min_samples and
        sharpe_note (None when the figures stand, else the reason in words).
    """
    ts = np.asarray(equity_ts_ns, np.int64)
    returns = sampled_returns(ts, np.asarray(equity_quote, np.float64), period_s)
    n = int(returns.size)
    span_h = float(ts[-1] - ts[0]) / NS / 3600
    note: str | None = None
    sharpe = sortino = math.nan
    if n < min_samples:
        need_h = min_samples * period_s / 3600
        note = (
            f"needs >= {min_samples} PnL changes of {_period_words(period_s)} "
            f"({need_h:g} h of data), run spans {span_h:.2f} h"
        )
    else:
        sharpe, sortino = sharpe_sortino(returns, period_s)
        if not math.isfinite(sharpe):
            note = "undefined: the PnL never changed between samples"
        elif not math.isfinite(sortino):
            note = "Sortino undefined: no losing period"
    return {
        "sharpe": sharpe,
        "sortino": sortino,
        "sharpe_basis": sharpe_basis(period_s),
        "sharpe_period_s": float(period_s),
        "sharpe_samples": n,
        "sharpe_min_samples": int(min_samples),
        "sharpe_note": note,
    }


def markout_curve(
    fills: npt.NDArray[np.void],
    mids: npt.NDArray[np.void],
    horizons_s: Sequence[float],
    *,
    side: int = 0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Mean markout of fills at each horizon: side * (mid(t + h) - fill px), ticks.

    The mid is the step function's value at t + h (a mid change at exactly t + h counts);
    fills whose t + h lies before the first mid or past the last one are left out.

    Args:
        fills: FILL_DTYPE array; mids: MID_DTYPE array (time-sorted).
        horizons_s: horizons in seconds (0 = the mid at the fill: the spread captured).
        side: 0 for every fill, +1 only our buys, -1 only our sells.

    Returns:
        (mean, standard error of the mean, fills counted) per horizon; mean NaN and count 0
        where no fill counts, standard error NaN below 2 fills.
    """
    sel = fills if side == 0 else fills[fills["side"] == side]
    sd = sel["side"].astype(np.float64)
    px = sel["px_ticks"].astype(np.float64)
    t = sel["ts_ns"].astype(np.int64)
    mid_ts = mids["ts_ns"].astype(np.int64)
    mid_px = mids["mid_ticks"].astype(np.float64)
    mean = np.full(len(horizons_s), np.nan)
    sem = np.full(len(horizons_s), np.nan)
    count = np.zeros(len(horizons_s), np.int64)
    for i, h in enumerate(horizons_s):
        t_h = t + round(h * NS)
        m = _step_at(mid_ts, mid_px, t_h)
        if mid_ts.size:
            m[t_h > mid_ts[-1]] = np.nan
        x = sd * (m - px)
        x = x[np.isfinite(x)]
        count[i] = x.size
        if x.size:
            mean[i] = float(x.mean())
        if x.size > 1:
            sem[i] = float(x.std(ddof=1) / math.sqrt(x.size))
    return mean, sem, count


def max_drawdown(equity_quote: npt.NDArray[np.float64]) -> float:
    """Largest drop from a running peak of the equity series (quote, >= 0)."""
    eq = np.asarray(equity_quote, np.float64)
    return float(np.max(np.maximum.accumulate(eq) - eq)) if eq.size else 0.0


def fifo_round_trips(
    fills: npt.NDArray[np.void],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Match fills FIFO into round trips: (lots, gross PnL in ticks per lot) per matched piece.

    Fills are taken in time order (stable). A fill against the open inventory closes the oldest
    open lots first; each (open fill, closing fill) pair is one round trip of min(open, close)
    lots with PnL per lot = open side * (close px - open px) ticks. What a fill does not close
    opens new lots on its side.
    """
    order = np.argsort(fills["ts_ns"], kind="stable")
    open_lots: deque[list[int]] = deque()  # [px_ticks, lots_left], all of side open_side
    open_side = 0
    lots: list[int] = []
    pnl: list[float] = []
    for i in order:
        side = int(fills["side"][i])
        px = int(fills["px_ticks"][i])
        q = int(fills["qty_lots"][i])
        while q > 0 and open_lots and open_side == -side:
            head = open_lots[0]
            m = min(q, head[1])
            lots.append(m)
            pnl.append(float(open_side * (px - head[0])))
            head[1] -= m
            q -= m
            if head[1] == 0:
                open_lots.popleft()
        if q > 0:
            if not open_lots:
                open_side = side
            open_lots.append([px, q])
    return np.array(lots, np.int64), np.array(pnl, np.float64)


def _time_weighted_abs(ts: npt.NDArray[np.int64], pos: npt.NDArray[np.float64]) -> float:
    if ts.size == 1 or ts[-1] == ts[0]:
        return float(abs(pos[0]))
    dt = np.diff(ts).astype(np.float64)
    return float(np.sum(np.abs(pos[:-1]) * dt) / (ts[-1] - ts[0]))


def summarize(
    equity_ts_ns: npt.NDArray[np.int64],
    equity_quote: npt.NDArray[np.float64],
    position_lots: npt.NDArray[Any],
    fills: npt.NDArray[np.void],
    mids: npt.NDArray[np.void],
    *,
    lot: float,
    tick: float,
    sharpe_period_s: float = SHARPE_PERIOD_S,
    sharpe_min_samples: int = SHARPE_MIN_SAMPLES,
    strategy: str = "",
    events: int = 0,
) -> dict[str, Any]:
    """Summary statistics of one run (see the module docstring for the input arrays).

    Keys (money in quote currency, prices in ticks, sizes in base units unless named _lots):
        pnl: equity_quote[-1] - equity_quote[0] (net of fees, as the equity is).
        fees: sum of fee_quote over fills (negative = net rebate earned).
        sharpe, sortino: of the equity read every `sharpe_period_s` seconds (default 1 h) from
            the first point (PnL differences r_k, quote), annualised:
            mean(r)/std(r, ddof=1) * sqrt(365*86400/sharpe_period_s) (x sqrt(8760) hourly);
            Sortino divides by sqrt(mean(min(r,0)^2)) instead. 365 days because crypto trades
            24/7. Computed only with at least `sharpe_min_samples` changes (24 h of hourly
            data by default), else NaN. The changes are PnL, not returns on capital: the
            ratio is scale-free but says nothing about leverage.
        sharpe_basis (words), sharpe_period_s, sharpe_samples, sharpe_min_samples,
            sharpe_note: the basis, the number of PnL changes used, the minimum, and why the
            figures are missing (None when they stand); see risk_adjusted().
        max_drawdown: largest peak-to-trough drop of equity_quote (>= 0), on the raw points.
        fills, buy_fills, sell_fills, maker_fills, taker_fills: counts.
        volume: traded size in base units; volume_quote: traded notional.
        win_rate: of FIFO-matched round trips, lot-weighted: closed lots whose round trip made
            > 0 ticks gross (before fees) / all closed lots; NaN when nothing closed.
        round_trips, closed_lots, realized_pnl_fifo (gross, quote): of the same matching.
        avg_spread_captured: mean over fills of side * (mid at fill - fill px), ticks; the mid is
            the last one at or before the fill (fills before the first mid are left out).
        markout_1s, markout_5s, markout_30s: mean over fills of side * (mid(t + h) - fill px),
            ticks; fills whose t + h is past the last mid are left out. NaN when no fill counts.
        mean_abs_position: time-weighted mean |position| over [first, last] equity point, base
            units (mean_abs_position_lots in lots); max_abs_position_lots; final_position_lots.
        pnl_to_map: pnl / mean_abs_position (quote per base unit of average inventory); NaN
            when the mean is 0.
        pnl_per_notional_bps: pnl / volume_quote * 1e4, the net PnL per traded notional in
            basis points; NaN when nothing traded.
        strategy, events: passed through. duration_s: last minus first equity point.
    """
    ts = np.asarray(equity_ts_ns, np.int64)
    eq = np.asarray(equity_quote, np.float64)
    pos = np.asarray(position_lots, np.float64)
    if not (ts.size == eq.size == pos.size) or ts.size == 0:
        raise ValueError("equity_ts_ns, equity_quote and position_lots: same non-zero length")
    if np.any(np.diff(ts) < 0):
        raise ValueError("equity_ts_ns must be non-decreasing")
    fills = np.asarray(fills)
    mids = np.asarray(mids)

    risk = risk_adjusted(ts, eq, period_s=sharpe_period_s, min_samples=sharpe_min_samples)

    side = fills["side"].astype(np.float64)
    px = fills["px_ticks"].astype(np.float64)
    qty = fills["qty_lots"].astype(np.float64)
    liq = fills["liquidity"] if "liquidity" in (fills.dtype.names or ()) else None

    mid_ts = mids["ts_ns"].astype(np.int64)
    mid_px = mids["mid_ticks"].astype(np.float64)
    at_fill = _step_at(mid_ts, mid_px, fills["ts_ns"].astype(np.int64))
    captured = _nanmean(side * (at_fill - px))
    mk, _, _ = markout_curve(fills, mids, MARKOUT_HORIZONS_S)
    markouts = {f"markout_{h}s": float(m) for h, m in zip(MARKOUT_HORIZONS_S, mk, strict=True)}

    rt_lots, rt_pnl = fifo_round_trips(fills)
    closed = int(rt_lots.sum())
    win_rate = float(rt_lots[rt_pnl > 0].sum() / closed) if closed else math.nan

    map_lots = _time_weighted_abs(ts, pos)
    map_base = map_lots * lot
    pnl = float(eq[-1] - eq[0])
    notional = float(np.sum(px * qty) * tick * lot)

    return {
        "strategy": strategy,
        "events": int(events),
        "pnl": pnl,
        "fees": float(fills["fee_quote"].sum()) if fills.size else 0.0,
        **risk,
        "max_drawdown": max_drawdown(eq),
        "fills": int(fills.size),
        "buy_fills": int(np.sum(side > 0)),
        "sell_fills": int(np.sum(side < 0)),
        "maker_fills": int(np.sum(liq == 1)) if liq is not None else 0,
        "taker_fills": int(np.sum(liq == 2)) if liq is not None else 0,
        "volume": float(qty.sum() * lot),
        "volume_quote": notional,
        "win_rate": win_rate,
        "round_trips": int(rt_lots.size),
        "closed_lots": closed,
        "realized_pnl_fifo": float(np.sum(rt_lots * rt_pnl) * tick * lot),
        "avg_spread_captured": captured,
        **markouts,
        "mean_abs_position": map_base,
        "mean_abs_position_lots": map_lots,
        "max_abs_position_lots": float(np.max(np.abs(pos))),
        "final_position_lots": float(pos[-1]),
        "pnl_to_map": pnl / map_base if map_base > 0 else math.nan,
        "pnl_per_notional_bps": pnl / notional * 1e4 if notional > 0 else math.nan,
        "duration_s": float(ts[-1] - ts[0]) / NS,
    }

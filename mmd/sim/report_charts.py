"""The series a report plots (ReportSeries), its charts (matplotlib, Agg, rendered into memory)
and every report file's bytes (summary.json, PNGs, report.html). Pure: returns bytes, writes no
file (mmd.report_files does)."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mmd.sim.report import MARKOUT_CURVE_S, NS, QUOTE_DTYPE, markout_curve
from mmd.sim.report_html import render_html


@dataclass
class ReportSeries:
    """The time series render_charts plots (same conventions as summarize's inputs).

    Attributes:
        equity_ts_ns, equity_quote, position_lots: the equity step function.
        fills: FILL_DTYPE array; mids: MID_DTYPE array; quotes: QUOTE_DTYPE array of our
            resting bid/ask after each change (NaN = none on that side), may be empty.
        tick, lot: instrument steps (price = ticks * tick, size = lots * lot).
        symbol, quote_ccy, base_ccy: labels for titles and axes.
        quotes_window_s: the quotes plot shows the window of this length with the most fills
            (the whole run when shorter).
    """

    equity_ts_ns: npt.NDArray[np.int64]
    equity_quote: npt.NDArray[np.float64]
    position_lots: npt.NDArray[Any]
    fills: npt.NDArray[np.void]
    mids: npt.NDArray[np.void]
    tick: float
    lot: float
    quotes: npt.NDArray[np.void] = field(default_factory=lambda: np.empty(0, QUOTE_DTYPE))
    symbol: str = ""
    quote_ccy: str = "quote"
    base_ccy: str = "base"
    quotes_window_s: float = 120.0


def json_value(v: Any) -> Any:
    """A summary value as JSON holds it: numpy scalars as Python numbers, NaN and inf as None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def summary_json(summary: dict[str, Any]) -> str:
    """summary.json's text: indented, non-finite numbers as null, one trailing newline."""
    return json.dumps({k: json_value(v) for k, v in summary.items()}, indent=2) + "\n"


def _times(ts_ns: npt.NDArray[Any]) -> npt.NDArray[np.datetime64]:
    return np.asarray(ts_ns, np.int64).astype("datetime64[ns]").astype("datetime64[ms]")


def _thin(n: int, max_points: int = 20_000) -> slice:
    return slice(None, None, max(1, -(-n // max_points)))


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    # matplotlib leaves these two constructors unannotated
    loc = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")
    ax.grid(True, alpha=0.3, linewidth=0.5)


def _fmt(v: Any, spec: str) -> str:
    v = json_value(v)
    return "n/a" if v is None else format(v, spec)


def _busiest_window(
    fill_ts: npt.NDArray[np.int64], t0: int, t1: int, width_ns: int
) -> tuple[int, int]:
    if t1 - t0 <= width_ns:
        return t0, t1
    if fill_ts.size == 0:
        return t1 - width_ns, t1
    ends = np.searchsorted(fill_ts, fill_ts + width_ns, side="right")
    best = int(np.argmax(ends - np.arange(fill_ts.size)))
    start = max(t0, min(int(fill_ts[best]) - width_ns // 10, t1 - width_ns))
    return start, start + width_ns


# chart file name -> its title on the report page (and the order of the page)
CHARTS = (
    ("equity.png", "Equity and drawdown"),
    ("inventory.png", "Inventory"),
    ("quotes.png", "Our quotes, the mid and our fills"),
    ("markouts.png", "Markouts by horizon"),
)


def risk_text(summary: dict[str, Any]) -> str:
    """Sharpe and Sortino with their basis in one line, or why they are missing."""
    basis = summary.get("sharpe_basis") or "basis unknown"
    n = summary.get("sharpe_samples")
    sharpe = json_value(summary.get("sharpe"))
    if sharpe is None:
        note = summary.get("sharpe_note") or "undefined"
        return f"Sharpe/Sortino n/a ({note}; basis: {basis})"
    return (
        f"Sharpe {_fmt(sharpe, '.2f')}, Sortino {_fmt(summary.get('sortino'), '.2f')} "
        f"({basis}, {n} samples)"
    )


def render_charts(summary: dict[str, Any], series: ReportSeries) -> dict[str, bytes]:
    """The report's charts as PNG bytes, keyed by the file names of CHARTS (in that order).

    Nothing is written: matplotlib (Agg backend, no display) renders into memory. Long series
    are thinned to at most 20k points per line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(fig: Any) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return buf.getvalue()

    out: dict[str, bytes] = {}
    s = series
    name = f"{s.symbol} " if s.symbol else ""
    strat = summary.get("strategy") or ""
    tag = f" ({strat})" if strat else ""
    ts = np.asarray(s.equity_ts_ns, np.int64)
    eq = np.asarray(s.equity_quote, np.float64)
    pos = np.asarray(s.position_lots, np.float64) * s.lot
    t = _times(ts)
    sl = _thin(ts.size)
    lw = 0.8  # thin lines
    text = (
        f"PnL {_fmt(summary.get('pnl'), '.2f')} {s.quote_ccy} "
        f"({_fmt(summary.get('pnl_per_notional_bps'), '.2f')} bps of notional), "
        f"fees {_fmt(summary.get('fees'), '.2f')}, "
        f"max DD {_fmt(summary.get('max_drawdown'), '.2f')}, "
        f"fills {summary.get('fills', 0)}, win rate {_fmt(summary.get('win_rate'), '.1%')}"
        f"\n{risk_text(summary)}"
    )
    plt.rcParams.update({"font.size": 9})

    # equity + drawdown
    fig, (ax, ax_dd) = plt.subplots(
        2, 1, figsize=(10, 5.8), dpi=120, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.step(
        t[sl], eq[sl], where="post", color="tab:blue", label="equity (net of fees)", linewidth=lw
    )
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_ylabel(f"PnL ({s.quote_ccy})")
    ax.set_title(f"{name}equity and drawdown{tag}\n" + text, fontsize=9)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.legend(loc="upper left", fontsize=8)
    dd = eq - np.maximum.accumulate(eq)
    ax_dd.fill_between(
        t[sl],
        dd[sl],
        0.0,
        step="post",
        color="tab:red",
        alpha=0.4,
        linewidth=0,
        label="drawdown from the running peak",
    )
    ax_dd.set_ylabel(f"drawdown ({s.quote_ccy})")
    ax_dd.legend(loc="lower left", fontsize=8)
    _time_axis(ax_dd)
    fig.tight_layout()
    out["equity.png"] = png(fig)

    # inventory
    fig, ax = plt.subplots(figsize=(10, 3.8), dpi=120)
    ax.step(t[sl], pos[sl], where="post", color="tab:purple", label="position", linewidth=lw)
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_ylabel(f"position ({s.base_ccy})")
    ax.set_title(
        f"{name}inventory{tag}: mean |position| "
        f"{_fmt(summary.get('mean_abs_position'), '.4g')} {s.base_ccy}, "
        f"PnL / mean |position| {_fmt(summary.get('pnl_to_map'), '.4g')}"
    )
    ax.legend(loc="upper left", fontsize=8)
    _time_axis(ax)
    fig.tight_layout()
    out["inventory.png"] = png(fig)

    out["quotes.png"] = png(_quotes_figure(plt, s, name, tag, ts, lw))
    out["markouts.png"] = png(_markouts_figure(plt, summary, s, name, tag))
    return out


def _quotes_figure(
    plt: Any, s: ReportSeries, name: str, tag: str, ts: npt.NDArray[np.int64], lw: float
) -> Any:
    # quotes vs mid, fills marked, in the busiest window
    fills = np.asarray(s.fills)
    mids = np.asarray(s.mids)
    quotes = np.asarray(s.quotes)
    fill_ts = np.sort(fills["ts_ns"].astype(np.int64))
    spans = [a for a in (ts, mids["ts_ns"], quotes["ts_ns"], fill_ts) if len(a)]
    t0 = int(min(int(a.min()) for a in spans))
    t1 = int(max(int(a.max()) for a in spans))
    w0, w1 = _busiest_window(fill_ts, t0, t1, round(s.quotes_window_s * NS))

    def window(a: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
        # the step in force at w0 too, so lines start at the window's left edge
        lo = max(0, int(np.searchsorted(a["ts_ns"], w0, side="right")) - 1)
        hi = int(np.searchsorted(a["ts_ns"], w1, side="right"))
        return a[lo:hi]

    fig, ax = plt.subplots(figsize=(11, 5), dpi=120)
    mw = window(mids)
    if mw.size:
        m_sl = _thin(mw.size)
        ax.step(
            _times(np.maximum(mw["ts_ns"][m_sl], w0)),
            mw["mid_ticks"][m_sl] * s.tick,
            where="post",
            color="black",
            label="mid",
            linewidth=0.7,
        )
    qw = window(quotes)
    if qw.size:
        q_sl = _thin(qw.size)
        qt = _times(np.maximum(qw["ts_ns"][q_sl], w0))
        ax.step(
            qt,
            qw["bid_ticks"][q_sl] * s.tick,
            where="post",
            color="tab:green",
            label="our bid",
            linewidth=lw,
        )
        ax.step(
            qt,
            qw["ask_ticks"][q_sl] * s.tick,
            where="post",
            color="tab:red",
            label="our ask",
            linewidth=lw,
        )
    in_w = (fills["ts_ns"] >= w0) & (fills["ts_ns"] <= w1)
    for sd, marker, color, label in (
        (1, "^", "tab:green", "we bought"),
        (-1, "v", "tab:red", "we sold"),
    ):
        sel = in_w & (fills["side"] == sd)
        if np.any(sel):
            ax.scatter(
                _times(fills["ts_ns"][sel]),
                fills["px_ticks"][sel] * s.tick,
                marker=marker,
                s=36,
                color=color,
                edgecolors="black",
                linewidths=0.5,
                zorder=3,
                label=f"{label} ({int(sel.sum())})",
            )
    ax.set_ylabel(f"price ({s.quote_ccy})")
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_title(
        f"{name}our quotes vs mid{tag}, {(w1 - w0) / NS / 60:.1f} min window with the most fills"
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, ncol=3)
    _time_axis(ax)
    ax.set_xlim(_times(np.array([w0]))[0], _times(np.array([w1]))[0])
    fig.tight_layout()
    return fig


def _markouts_figure(
    plt: Any, summary: dict[str, Any], s: ReportSeries, name: str, tag: str
) -> Any:
    # mean markout per horizon, all fills and each side, +-1 standard error
    fills = np.asarray(s.fills)
    mids = np.asarray(s.mids)
    h = np.asarray(MARKOUT_CURVE_S, np.float64)
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=120)
    for sd, color, label, dx in (
        (0, "black", "all fills", 0.0),
        (1, "tab:green", "our buys", -0.08),
        (-1, "tab:red", "our sells", 0.08),
    ):
        mean, sem, n = markout_curve(fills, mids, MARKOUT_CURVE_S, side=sd)
        if not np.any(n):
            continue
        x = np.arange(h.size) + dx
        ax.errorbar(
            x,
            mean,
            yerr=np.nan_to_num(sem),
            marker="o",
            markersize=4,
            capsize=3,
            color=color,
            linewidth=1.2 if sd == 0 else 0.8,
            label=f"{label} ({int(n[0])} fills)",
        )
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_xticks(np.arange(h.size), [f"{v:g} s" for v in h])
    ax.set_xlabel("horizon after the fill (0 s = mid at the fill: spread captured)")
    ax.set_ylabel("side x (mid - fill price), ticks")
    ax.set_title(
        f"{name}markouts by horizon{tag}: mean, +-1 standard error "
        f"(negative = adverse selection); 1/5/30 s: "
        f"{_fmt(summary.get('markout_1s'), '.2f')} / "
        f"{_fmt(summary.get('markout_5s'), '.2f')} / "
        f"{_fmt(summary.get('markout_30s'), '.2f')} ticks",
        fontsize=9,
    )
    ax.grid(True, alpha=0.3, linewidth=0.5)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(
            0.5,
            0.5,
            "no fills: no markouts",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
    fig.tight_layout()
    return fig


def render_report(summary: dict[str, Any], series: ReportSeries) -> dict[str, bytes]:
    """Every file of a report by name, in writing order: `summary.json` (non-finite numbers as
    null), the PNGs of CHARTS, then `report.html` (the page showing them all, images inline)."""
    files = {"summary.json": summary_json(summary).encode("utf-8")}
    charts = render_charts(summary, series)
    files.update(charts)
    titles = dict(CHARTS)
    page = render_html(summary, [(titles[k], k, v) for k, v in charts.items()])
    files["report.html"] = page.encode("utf-8")
    return files

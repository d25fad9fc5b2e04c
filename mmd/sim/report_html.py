"""The report page: a run's summary and its charts as one self-contained HTML document.

Pure: takes the summary dict and PNG bytes, returns text; it reads and writes no file. Images
are inlined as base64 data URIs and the style sheet is inline, so the page needs nothing but
itself (its Content-Security-Policy forbids fetching anything else).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

# (summary key, label, format spec, unit) of the key-figures table, in this order
KEY_FIGURES: tuple[tuple[str, str, str, str], ...] = (
    ("pnl", "PnL (net of fees)", ".4f", "quote"),
    ("fees", "Fees (negative = rebates)", ".4f", "quote"),
    ("pnl_per_notional_bps", "PnL per traded notional", ".3f", "bps"),
    ("pnl_to_map", "PnL / mean |position|", ".4g", "quote per base unit"),
    ("sharpe", "Sharpe", ".3f", ""),
    ("sortino", "Sortino", ".3f", ""),
    ("max_drawdown", "Max drawdown", ".4f", "quote"),
    ("fills", "Fills", "d", ""),
    ("volume", "Volume", ".6g", "base"),
    ("volume_quote", "Traded notional", ".2f", "quote"),
    ("win_rate", "Win rate (FIFO round trips, by lot)", ".1%", ""),
    ("avg_spread_captured", "Spread captured", ".3f", "ticks"),
    ("markout_1s", "Markout 1 s", ".3f", "ticks"),
    ("markout_5s", "Markout 5 s", ".3f", "ticks"),
    ("markout_30s", "Markout 30 s", ".3f", "ticks"),
    ("mean_abs_position", "Mean |position|", ".6g", "base"),
    ("duration_s", "Duration", ".1f", "s"),
    ("events", "Events", "d", ""),
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1240px; color: #222;
       background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin: 1.4em 0 0.4em; border-bottom: 1px solid #ddd; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.92em; }
td, th { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.note { color: #a33; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 0.85em; }
"""


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def format_value(v: Any, spec: str = "") -> str:
    """One summary value as text: "n/a" for None/NaN/inf, spec for numbers, JSON for
    lists and dicts, str otherwise."""
    v = _finite(v)
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int | float):
        if spec:
            try:
                return format(v, spec)
            except ValueError:  # an int spec on a float or the reverse
                pass
        return format(v, ".6g") if isinstance(v, float) else str(v)
    if isinstance(v, Mapping | list | tuple):
        return json.dumps(v, default=str, indent=1)
    return str(v)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(
    summary: Mapping[str, Any],
    charts: Sequence[tuple[str, str, bytes]],
    *,
    title: str | None = None,
) -> str:
    """The report page for one run.

    Args:
        summary: summarize()'s dict (plus anything the caller added: symbol, category,
            recordings, config...); NaN and None read "n/a".
        charts: (title, file name, PNG bytes) per chart, in page order; each becomes an
            <h2> title and an <img> whose src is a data: URI.
        title: the page's <title> and <h1>; default "mmd report: SYMBOL (strategy)".

    Returns:
        The HTML document (UTF-8 text; no external resource).
    """
    esc = html.escape
    sym = summary.get("symbol") or ""
    strat = summary.get("strategy") or ""
    if title is None:
        title = "mmd report" + (f": {sym}" if sym else "") + (f" ({strat})" if strat else "")
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    meta = [
        f"{k} {format_value(summary[k])}"
        for k in ("category", "symbol", "strategy")
        if summary.get(k)
    ]
    dur = _finite(summary.get("duration_s"))
    if dur is not None:
        meta.append(f"{dur / 3600:.2f} h of data")
    recs = summary.get("recordings")
    if isinstance(recs, list | tuple) and recs:
        meta.append(f"{len(recs)} recording(s)")
    if meta:
        out.append(f'<p class="meta">{esc(", ".join(meta))}</p>')

    out.append('<section id="key-figures"><h2>Key figures</h2><table>')
    for key, label, spec, unit in KEY_FIGURES:
        if key not in summary:
            continue
        out.append(
            f'<tr><th>{esc(label)}</th><td class="num">'
            f"{esc(format_value(summary[key], spec))}</td><td>{esc(unit)}</td></tr>"
        )
    basis = summary.get("sharpe_basis")
    if basis:
        n = summary.get("sharpe_samples")
        out.append(
            f'<tr><th>Sharpe / Sortino basis</th><td colspan="2">{esc(str(basis))}'
            f", {esc(format_value(n))} samples</td></tr>"
        )
    note = summary.get("sharpe_note")
    if note:
        out.append(
            f'<tr><th>Sharpe / Sortino note</th><td class="note" colspan="2">'
            f"{esc(str(note))}</td></tr>"
        )
    out.append("</table></section>")

    for chart_title, file_name, png in charts:
        anchor = file_name.rsplit(".", 1)[0]
        out.append(
            f'<section class="chart" id="{esc(anchor)}"><h2>{esc(chart_title)}</h2>'
            f'<img src="{_data_uri(png)}" alt="{esc(chart_title)}" '
            f'title="{esc(file_name)}"></section>'
        )

    out.append('<section id="all-fields"><h2>All summary fields</h2><table>')
    nested: list[tuple[str, Any]] = []
    for key, v in summary.items():
        if isinstance(v, Mapping | list | tuple):
            nested.append((key, v))
            continue
        out.append(f"<tr><th>{esc(str(key))}</th><td>{esc(format_value(v))}</td></tr>")
    out.append("</table>")
    for key, v in nested:
        out.append(
            f"<details><summary>{esc(str(key))}</summary>"
            f"<pre>{esc(format_value(v))}</pre></details>"
        )
    out.append("</section></body></html>")
    return "\n".join(out) + "\n"

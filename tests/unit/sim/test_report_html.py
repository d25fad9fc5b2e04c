"""mmd.sim.report_html: the page from a summary and PNG bytes, parsed back with html.parser."""

from __future__ import annotations

import base64
import math
from html.parser import HTMLParser

from mmd.sim.report_html import format_value, render_html


class _Page(HTMLParser):
    """Collects headings, images and table cells of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.h: list[str] = []
        self.imgs: list[dict[str, str | None]] = []
        self.cells: list[str] = []
        self.links: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag = tag
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        for k in ("href", "src"):
            if a.get(k) and tag != "img":
                self.links.append(str(a[k]))

    def handle_endtag(self, tag: str) -> None:
        self._tag = ""

    def handle_data(self, data: str) -> None:
        if self._tag in ("h1", "h2"):
            self.h.append(data)
        elif self._tag in ("td", "th"):
            self.cells.append(data)


SUMMARY = {
    "strategy": "as",
    "symbol": "BTCUSDT",
    "category": "linear",
    "pnl": 1.25,
    "fees": -0.5,
    "sharpe": math.nan,
    "sortino": math.nan,
    "sharpe_basis": "hourly PnL changes, annualised x sqrt(8760)",
    "sharpe_samples": 0,
    "sharpe_note": "needs >= 24 PnL changes of 1 h (24 h of data), run spans 0.13 h",
    "fills": 7,
    "pnl_per_notional_bps": 0.8125,
    "win_rate": 0.5,
    "duration_s": 480.0,
    "recordings": ["a.rec.gz"],
    "config": {"strategy": {"gamma": 0.1}},
    "note": "<script>alert(1)</script>",
}
PNG_A = b"\x89PNG\r\n\x1a\nAAAA"
PNG_B = b"\x89PNG\r\n\x1a\nBBBB"


def test_render_html_titles_images_and_figures() -> None:
    page = render_html(
        SUMMARY,
        [
            ("Equity and drawdown", "equity.png", PNG_A),
            ("Markouts by horizon", "markouts.png", PNG_B),
        ],
    )
    p = _Page()
    p.feed(page)
    assert p.h == [
        "mmd report: BTCUSDT (as)",
        "Key figures",
        "Equity and drawdown",
        "Markouts by horizon",
        "All summary fields",
    ]
    assert [i["alt"] for i in p.imgs] == ["Equity and drawdown", "Markouts by horizon"]
    assert [i["src"] for i in p.imgs] == [
        "data:image/png;base64," + base64.b64encode(PNG_A).decode(),
        "data:image/png;base64," + base64.b64encode(PNG_B).decode(),
    ]
    assert p.links == []  # nothing but data: URIs
    # 1.25 quote PnL, 0.8125 bps of notional (to 3 decimals: 0.812 or 0.813, banker's rule)
    assert "1.2500" in p.cells and format(0.8125, ".3f") in p.cells
    assert "n/a" in p.cells  # Sharpe NaN
    assert SUMMARY["sharpe_note"] in p.cells
    assert "hourly PnL changes, annualised x sqrt(8760), 0 samples" in p.cells
    assert "50.0%" in p.cells  # win rate
    # text is escaped, nested values shown as JSON
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&quot;gamma&quot;: 0.1" in page


def test_render_html_minimal_summary_and_format_value() -> None:
    page = render_html({"pnl": 0.0}, [])
    assert page.startswith("<!DOCTYPE html>") and "<title>mmd report</title>" in page
    assert format_value(None) == format_value(math.inf) == "n/a"
    assert format_value(3, ".2f") == "3.00" and format_value(7) == "7"
    assert format_value(1 / 3) == "0.333333" and format_value(True) == "true"
    assert format_value(2.5, "d") == "2.5"  # an int spec on a float falls back

"""The report page of a real backtest, opened in real headless Chromium: the screenshot is not
blank and holds the charts' colours, and the DOM has every title and every chart inline.

Needs Debian's `chromium`; a session fixture installs it with apt-get when missing and skips only
if that is impossible.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from procs import base_env

from mmd.sim.report_charts import CHARTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's chromium, installing the package once if needed."""
    path = shutil.which("chromium")
    if path is None:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("chromium missing and apt-get unavailable (not root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(
            "apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium",
            shell=True,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        path = shutil.which("chromium")
        if r.returncode != 0 or path is None:
            pytest.skip(f"could not install chromium with apt-get: {r.stderr[-500:]}")
    return path


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # no network, no first-run or sync machinery: the page must stand on its own
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_report_page_renders_in_headless_chromium(
    chromium: str, binance_btc_rec: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "backtest",
            str(binance_btc_rec),
            "--report",
            str(report),
            "--no-progress",
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # 8 minutes of data: the Sharpe is left out, and the CLI says why and on what basis
    assert "hourly PnL changes, annualised x sqrt(8760)" in r.stdout
    assert "n/a: needs >= 24 PnL changes of 1 h (24 h of data), run spans 0.13 h" in r.stdout
    summary = json.loads((report / "summary.json").read_text())
    assert summary["sharpe"] is None and summary["sharpe_samples"] == 0
    assert summary["fills"] > 0 and summary["pnl_per_notional_bps"] is not None
    _check_page(chromium, report, tmp_path)
    html = (report / "report.html").read_text()
    assert "needs &gt;= 24 PnL changes of 1 h" in html or "needs >= 24 PnL changes" in html


def _check_page(chromium: str, report: Path, tmp_path: Path) -> None:
    """report.html in headless Chromium: a screenshot with the charts' colours, and a DOM with
    every title and every chart inline (the same bytes as the PNG files), nothing fetched."""
    url = (report / "report.html").resolve().as_uri()
    shot = tmp_path / "shot.png"
    r = _chromium(
        chromium, tmp_path / "profile1", f"--screenshot={shot}", "--window-size=1280,2000", url
    )
    assert shot.exists(), r.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (2000, 1280), img.shape
    colours = np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    # a blank page is one colour; text alone is a few dozen greys
    sat = img.max(axis=2) - img.min(axis=2)
    coloured = int(np.sum(sat > 0.15))
    print(f"screenshot: {len(colours)} distinct colours, {coloured} coloured pixels")
    assert len(colours) > 200
    # the equity line and drawdown fill of the first chart (the red Sharpe note is ~1k pixels)
    assert coloured > 20_000

    r = _chromium(chromium, tmp_path / "profile2", "--dump-dom", url)
    dom = r.stdout
    assert r.returncode == 0 and "</html>" in dom, r.stderr[-2000:]
    titles = re.findall(r"<h2>([^<]*)</h2>", dom)
    assert titles == ["Key figures", *(t for _, t in CHARTS), "All summary fields"], titles
    imgs = re.findall(r'<img src="([^"]*)" alt="([^"]*)"', dom)
    assert [alt for _, alt in imgs] == [t for _, t in CHARTS]
    for (src, _), (file_name, _) in zip(imgs, CHARTS, strict=True):
        png = (report / file_name).read_bytes()
        assert src == "data:image/png;base64," + base64.b64encode(png).decode(), file_name
    # nothing fetched from anywhere: every src/href in the DOM is a data: URI
    refs = re.findall(r'(?:src|href)="([^"]*)"', dom)
    assert refs and all(u.startswith("data:") for u in refs), refs


def test_ledger_report_page_renders_in_headless_chromium(
    chromium: str, binance_btc_rec: Path, tmp_path: Path
) -> None:
    """`mmd report` on the state dir of a replay trading run: the same files and page."""
    state = tmp_path / "state"
    env = base_env(
        MMD_FEED__REPLAY__PATHS=json.dumps([str(binance_btc_rec)]),
        MMD_FEED__SYMBOLS='["BTCUSDT"]',
        MMD_METRICS__PORT="0",
        MMD_STATE__DIR=str(state),
        MMD_STRATEGY__WARMUP_S="5",
        MMD_FEED__REPLAY__SPEED="1000",
    )
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "run", "--feed", "replay"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = tmp_path / "report"
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "report", "--state", str(state), "--out", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    written = [Path(line).name for line in r.stdout.split()]
    assert written == ["summary.json", *(f for f, _ in CHARTS), "report.html"]
    summary = json.loads((report / "summary.json").read_text())
    # 83 fills: what `mmd ledger fills` and `mmd backtest --fills` give for this recording
    # (tests/integration/test_ledger_cli.py)
    assert summary["fills"] >= 20 and summary["source"] == "replay"
    assert summary["snapshots"] > 20 and summary["pnl_per_notional_bps"] is not None
    assert "ledger; mid = snapshot marks" in summary["strategy"]
    _check_page(chromium, report, tmp_path)

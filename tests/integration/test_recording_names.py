"""A recording under any file name: `mmd backtest`, `mmd run --feed replay` and
`mmd serve-venue` take symbol and category from its first line (the instruments-info answer).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from procs import base_env, venue

from mmd.feeds.recording import parse_recording_name, recording_meta

pytestmark = pytest.mark.slow


@pytest.fixture
def renamed(cryptofeed_dir: Path, tmp_path: Path) -> Path:
    """The real Bybit linear ETHUSDT capture (44 s), copied to a name with no meaning."""
    (src,) = cryptofeed_dir.glob("bybit_linear_ETHUSDT_*.rec.gz")
    dst = tmp_path / "out.jsonl.gz"
    shutil.copyfile(src, dst)
    return dst


def test_recording_meta_reads_the_first_line(renamed: Path, cryptofeed_dir: Path) -> None:
    assert parse_recording_name(renamed) is None
    meta = recording_meta(renamed)
    assert meta is not None
    assert (meta.category, meta.symbol, meta.venue) == ("linear", "ETHUSDT", "")
    # a spot file of the same symbol says spot; named files agree with their names
    for f in cryptofeed_dir.glob("*.rec.gz"):
        named, read = parse_recording_name(f), recording_meta(f)
        assert named is not None and read is not None
        assert (read.category, read.symbol, read.venue) == (
            named.category,
            named.symbol,
            named.venue,
        )


def test_recording_meta_of_a_non_recording_is_none(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    assert recording_meta(junk) is None


def test_backtest_accepts_any_recording_name(renamed: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmd",
            "backtest",
            str(renamed),
            "--report",
            str(report),
            "--no-progress",
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ETHUSDT (linear, strategy as)")
    summary = json.loads((report / "summary.json").read_text())
    assert (summary["symbol"], summary["category"]) == ("ETHUSDT", "linear")
    assert summary["recordings"][0]["path"] == str(renamed)
    assert summary["events"] > 400


def test_backtest_refuses_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "backtest", str(junk), "--no-progress"],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert "not a recording" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_replay_feed_accepts_any_recording_name(
    renamed: Path, cryptofeed_dir: Path, tmp_path: Path
) -> None:
    # a renamed spot file of the same symbol: its first line says spot, so a linear daemon
    # leaves it out
    (spot_src,) = cryptofeed_dir.glob("bybit_spot_ETHUSDT_*.rec.gz")
    spot = tmp_path / "other.jsonl.gz"
    shutil.copyfile(spot_src, spot)
    env = base_env(
        MMD_FEED__REPLAY__PATHS=json.dumps([str(spot), str(renamed)]),
        MMD_FEED__SYMBOLS='["ETHUSDT"]',
        MMD_METRICS__PORT="0",
        MMD_STATE__DIR=str(tmp_path / "state"),
    )
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "run", "--feed", "replay"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    (done,) = [e for e in events if e["event"] == "replay_finished"]
    assert done["files"] == [str(renamed)]
    book = done["books"]["ETHUSDT"]
    assert book["best_bid"] and book["best_ask"] and book["best_bid"][0] < book["best_ask"][0]


def test_serve_venue_accepts_any_recording_name(renamed: Path, tmp_path: Path) -> None:
    with venue([renamed], tmp_path, speed=4.0) as (_, url):
        with urllib.request.urlopen(
            url + "/v5/market/instruments-info?category=linear&symbol=ETHUSDT", timeout=10
        ) as resp:
            info = json.loads(resp.read())
        assert [i["symbol"] for i in info["result"]["list"]] == ["ETHUSDT"]
        with urllib.request.urlopen(
            url + "/v5/market/orderbook?category=linear&symbol=ETHUSDT&limit=50", timeout=10
        ) as resp:
            book = json.loads(resp.read())
        assert book["retCode"] == 0 and book["result"]["b"] and book["result"]["a"]

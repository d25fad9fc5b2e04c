"""Hardening of the daemon as a real process on loopback: no credential in its logs, private
state files, and an unusable state dir refused (exit 2 naming state.dir)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from procs import base_env, daemon, venue

pytestmark = pytest.mark.slow

SECRET = "s3cretPW0rd"


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_venue_url_credentials_never_reach_the_logs(cryptofeed_dir: Path, tmp_path: Path) -> None:
    with venue([cryptofeed_dir], tmp_path, speed=1.0) as (_, vurl):
        host = vurl.removeprefix("http://")
        env = {
            "MMD_VENUE__REST_URL": f"http://mm:{SECRET}@{host}",
            "MMD_VENUE__WS_URL": f"ws://mm:{SECRET}@{host}/v5/public/linear",
            "MMD_FEED__SYMBOLS": '["BTCUSDT"]',
        }
        with daemon(tmp_path, env, ready_timeout=30) as (proc, _url):
            pass
        out = proc.output()
    connected = [r for r in _json_lines(out) if r.get("event") == "ws_connected"]
    assert connected, out[-2000:]
    # the URL is still logged, only its user info is replaced
    assert connected[0]["url"] == f"ws://***@{host}/v5/public/linear"
    assert SECRET not in out


def test_state_dir_and_ledger_are_private(tmp_path: Path) -> None:
    env = {"MMD_FEED__SOURCE": "synthetic", "MMD_STATE__SNAPSHOT_INTERVAL_S": "0.2"}
    with daemon(tmp_path, env, ready_timeout=30) as (proc, _url):
        pass
    assert proc.p.returncode == 0, proc.output()[-2000:]
    state = tmp_path / "state"
    for d in (state, state / "synthetic"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, (d, oct(d.stat().st_mode))
    files = sorted((state / "synthetic").iterdir())
    assert any(f.name == "ledger.sqlite" for f in files), files
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))


@pytest.mark.parametrize("value", ["", "''", " ", "  "])
def test_blank_state_dir_exits_2_naming_it(tmp_path: Path, value: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mmd", "run", "--feed", "synthetic"],
        env=base_env(MMD_STATE__DIR=value, MMD_METRICS__PORT="0"), cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mmd: config error: state.dir: "), lines
    assert list(tmp_path.iterdir()) == [], "nothing may be written into the working directory"

"""Prometheus ops: the daemon's /metrics passes `promtool check metrics`, a real Prometheus
scraping a real daemon (trading a real recording on the local venue) answers every query of the
Grafana dashboard with data, and the alert rules and config pass promtool (unit tests included).

Needs `promtool` and `prometheus` (Debian bookworm: the `prometheus` package, 2.42); a session
fixture installs it with apt-get when missing and skips only if that is impossible.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import tomllib
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import daemon, free_port, http_json, http_text, metric_values, venue

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "mmd.json"
SYMBOL = "BTCUSDT"
# Grafana's template variables as the test substitutes them
SUBSTITUTIONS = {
    "$__rate_interval": "30s",
    "$__interval": "5s",
    "$__range": "1m",
    "${symbol}": SYMBOL,
    "$symbol": SYMBOL,
    "${job}": "mmd",
    "$job": "mmd",
}


@pytest.fixture(scope="session")
def prom_bins() -> dict[str, str]:
    """Paths of promtool and prometheus, installing Debian's package once if needed."""
    if not (shutil.which("promtool") and shutil.which("prometheus")):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("promtool/prometheus missing and apt-get unavailable (not root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(
            "apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus",
            shell=True,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        if r.returncode != 0 or not shutil.which("promtool"):
            pytest.skip(f"could not install prometheus with apt-get: {r.stderr[-500:]}")
    return {
        "promtool": str(shutil.which("promtool")),
        "prometheus": str(shutil.which("prometheus")),
    }


@pytest.fixture(scope="module")
def trading_daemon(
    binance_btc_rec: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A daemon paper-trading the real BTCUSDT recording (venue at 4x) until it has fills and
    every feature the dashboard shows (VPIN included);
    yields (metrics base url, the /metrics text at that moment)."""
    tmp = tmp_path_factory.mktemp("ops_daemon")
    with venue([binance_btc_rec], tmp, speed=4.0) as (_, vurl):
        env = {
            "MMD_VENUE__REST_URL": vurl,
            "MMD_VENUE__WS_URL": vurl.replace("http", "ws") + "/v5/public/linear",
            "MMD_FEED__SYMBOLS": f'["{SYMBOL}"]',
            # a fixed VPIN bucket (BTC): auto mode first measures a minute of trade time and
            # then fills a bucket, about a minute of wall time even at 4x
            "MMD_FEATURES__VPIN_BUCKET_VOLUME": "1.0",
        }
        with daemon(tmp, env) as (proc, url):
            t0 = time.monotonic()
            text = ""
            while time.monotonic() < t0 + 75:
                text = http_text(url + "/metrics")
                fills = sum(metric_values(text, "mmd_fills_total").values())
                feats = metric_values(text, "mmd_feature_value")
                if fills >= 2 and any('feature="vpin"' in k for k in feats):
                    break
                time.sleep(0.5)
            else:
                pytest.fail(f"no fills or no VPIN within 75 s: {proc.output()[-2000:]}")
            print(f"daemon: {fills:.0f} fills and VPIN after {time.monotonic() - t0:.1f} s")
            yield url, text


def test_metrics_pass_promtool_check_metrics(
    prom_bins: dict[str, str], trading_daemon: tuple[str, str]
) -> None:
    url, _ = trading_daemon
    text = http_text(url + "/metrics")  # fresh: every family populated by now
    assert "mmd_fills_total" in text and "mmd_pnl_quote" in text
    r = subprocess.run(
        [prom_bins["promtool"], "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
    )
    print(f"promtool check metrics: rc={r.returncode}, {len(text.splitlines())} lines checked")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


def _dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows' nested panels included."""
    dash = json.loads(DASHBOARD.read_text())
    out = []

    def walk(panels: list[dict]) -> None:
        for p in panels:
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
            walk(p.get("panels", []))

    walk(dash["panels"])
    return out


def _substitute(expr: str) -> str:
    for k in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(k, SUBSTITUTIONS[k])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def _query(base: str, expr: str) -> dict:
    status, body = http_json(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert status == 200 and body["status"] == "success", (expr, body)
    return body["data"]


@contextlib.contextmanager
def _prometheus(prom_bins: dict[str, str], target: str, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping target (host:port) every second with the alert rules
    loaded; yields its base url once it is up (stopped by pid on exit)."""
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {PROM_DIR / 'alerts.yml'}\n"
        "scrape_configs:\n  - job_name: mmd\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            prom_bins["prometheus"],
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            try:
                if http_json(base + "/-/ready", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


def _scrapes(base: str) -> int:
    """Samples of up{job="mmd"} Prometheus holds from the last minute (0 before any)."""
    try:
        res = _query(base, 'count_over_time(up{job="mmd"}[1m])')["result"]
    except OSError:
        return 0
    return int(float(res[0]["value"][1])) if res else 0


def _empty_dashboard_queries(base: str) -> list[tuple[str, str]]:
    """(panel title, expr) of every dashboard query that returns no series now."""
    exprs = _dashboard_exprs()
    assert len(exprs) >= 20
    empty = []
    for title, raw in exprs:
        expr = _substitute(raw)
        n = len(_query(base, expr)["result"])
        print(f"{n:3d} series  [{title}]  {expr}")
        if n == 0:
            empty.append((title, expr))
    return empty


def test_real_prometheus_answers_every_dashboard_query(
    prom_bins: dict[str, str], trading_daemon: tuple[str, str], tmp_path: Path
) -> None:
    url, _ = trading_daemon
    with _prometheus(prom_bins, url.removeprefix("http://"), tmp_path) as base:
        # wait for a few successful scrapes (rate() over 30 s needs at least two samples)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and _scrapes(base) < 8:
            time.sleep(0.5)
        assert _scrapes(base) >= 8, (tmp_path / "prometheus.log").read_text()[-3000:]
        up = _query(base, 'up{job="mmd"}')["result"]
        assert up and up[0]["value"][1] == "1", up

        empty = _empty_dashboard_queries(base)
        assert not empty, f"queries with no data: {empty}"

        # the alert rules load and evaluate against real data; a healthy daemon fires nothing
        status, rules = http_json(base + "/api/v1/rules")
        assert status == 200
        loaded = {r["name"]: r for g in rules["data"]["groups"] for r in g["rules"]}
        assert set(loaded) == {
            "FeedStale",
            "ResyncStorm",
            "KillSwitchTripped",
            "DrawdownBeyondThreshold",
            "MmdDown",
        }, set(loaded)
        bad = {n: r.get("lastError") for n, r in loaded.items() if r["health"] == "err"}
        assert not bad, bad
        firing = [a["labels"]["alertname"] for a in _query_alerts(base) if a["state"] == "firing"]
        print(f"alert rules loaded: {sorted(loaded)}; firing: {firing}")
        assert "KillSwitchTripped" not in firing and "MmdDown" not in firing


FRESH_START_S = 20.0


def test_fresh_synthetic_start_fills_every_dashboard_query(
    prom_bins: dict[str, str], tmp_path: Path
) -> None:
    """`mmd run --feed synthetic` with the default config (warm-up and VPIN bucket volume
    included): 20 s after the process started, every query of every panel returns data, the
    minute-scale features through their provisional values."""
    defaults = tomllib.loads((ROOT / "config.toml").read_text())
    # procs.daemon shortens the warm-up for other tests: put the documented default back
    env = {"MMD_STRATEGY__WARMUP_S": str(defaults["strategy"]["warmup_s"])}
    t0 = time.monotonic()  # the daemon process starts now
    with (
        daemon(tmp_path, env, args=("--feed", "synthetic")) as (proc, url),
        _prometheus(prom_bins, url.removeprefix("http://"), tmp_path) as base,
    ):
        print(f"/metrics answered and Prometheus up {time.monotonic() - t0:.1f} s after start")
        while time.monotonic() < t0 + FRESH_START_S:
            time.sleep(0.5)
        n = _scrapes(base)
        print(f"{n} scrapes in the first {FRESH_START_S:.0f} s")
        # rate() over the panels' 30 s window needs two samples; take a few more
        assert n >= 5, (tmp_path / "prometheus.log").read_text()[-3000:]
        text = http_text(url + "/metrics")
        # the minute-scale features are still waiting: the panels show provisional values
        ready = metric_values(text, "mmd_feature_ready")
        waiting = sorted(k for k, v in ready.items() if v == 0)
        print(f"features still waiting for data: {waiting}")
        assert any('feature="vpin"' in k for k in waiting), ready
        empty = _empty_dashboard_queries(base)
        assert not empty, f"queries with no data {FRESH_START_S:.0f} s after a fresh start: {empty}"
        assert proc.alive()


def _query_alerts(base: str) -> list[dict]:
    status, body = http_json(base + "/api/v1/alerts")
    assert status == 200, body
    return list(body["data"]["alerts"])


def test_promtool_rules_and_config(prom_bins: dict[str, str]) -> None:
    promtool = prom_bins["promtool"]
    runs = {
        "check rules": [promtool, "check", "rules", str(PROM_DIR / "alerts.yml")],
        "test rules": [promtool, "test", "rules", str(PROM_DIR / "alerts_test.yml")],
        # rule_files in prometheus.yml are relative to the config file: run from elsewhere
        "check config": [promtool, "check", "config", str(PROM_DIR / "prometheus.yml")],
    }
    for name, args in runs.items():
        r = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd="/")
        out = r.stdout + r.stderr
        print(f"promtool {name}: rc={r.returncode}\n{out.strip()}")
        assert r.returncode == 0, out
        assert "SUCCESS" in out, out
    # the unit test covers both alerts the brief asks for, firing and not firing
    test_yml = (PROM_DIR / "alerts_test.yml").read_text()
    for alert in ("KillSwitchTripped", "FeedStale"):
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts: \[\]", test_yml), alert
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", test_yml), alert
    r = subprocess.run(
        [promtool, "check", "config", str(PROM_DIR / "prometheus.yml")],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert "1 rule files found" in r.stdout + r.stderr

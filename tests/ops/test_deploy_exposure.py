"""What the shipped deployment exposes: compose publishes every port on 127.0.0.1 only, Grafana
has no default admin password, /debug is off in every shipped config, the daemon binds 127.0.0.1
unless the image says 0.0.0.0, its containers run read-only, and a config value that reaches a URL
or a path is refused at startup (exit 2 naming the key)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"


def _services() -> dict[str, dict]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_compose_publishes_ports_on_loopback_only() -> None:
    published = []
    for name, svc in _services().items():
        for port in svc.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port}"
            published.append((name, spec))
            assert spec.startswith("127.0.0.1:"), (name, spec)
    # mmd, prometheus, grafana, venue: each publishes one port
    assert {n for n, _ in published} == {"mmd", "prometheus", "grafana", "venue"}, published


def test_grafana_admin_password_is_required_and_has_no_default() -> None:
    env = _services()["grafana"]["environment"]
    value = env["GF_SECURITY_ADMIN_PASSWORD"]
    # `${VAR:?message}`: compose refuses to start without it; `${VAR:-x}` / `${VAR-x}` would
    # ship x as the password
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", value), value
    text = COMPOSE.read_text()
    assert "GRAFANA_ADMIN_PASSWORD:-" not in text and "GRAFANA_ADMIN_PASSWORD-" not in text


def test_debug_endpoint_is_off_in_shipped_configs() -> None:
    from mmd.config import MetricsConfig

    assert MetricsConfig().debug is False
    assert tomllib.loads((ROOT / "config.toml").read_text())["metrics"]["debug"] is False
    k8s = (ROOT / "deploy" / "k8s" / "configmap.yaml").read_text()
    assert "debug = true" not in k8s


def test_default_bind_is_loopback_and_all_interfaces_only_in_the_image() -> None:
    from mmd.config import MetricsConfig

    assert MetricsConfig().host == "127.0.0.1"
    assert tomllib.loads((ROOT / "config.toml").read_text())["metrics"]["host"] == "127.0.0.1"
    # the image listens on every interface (its port is published on 127.0.0.1 by compose)
    env = re.search(r"^ENV ((?:.*\\\n)*.*)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert env and "MMD_METRICS__HOST=0.0.0.0" in env.group(1)
    for name, svc in _services().items():
        assert "MMD_METRICS__HOST" not in (svc.get("environment") or {}), name


def test_compose_runs_the_daemon_read_only_with_a_data_volume_and_tmpfs() -> None:
    services = _services()
    for name in ("mmd", "venue"):
        svc = services[name]
        assert svc["read_only"] is True, name
        assert any(t.split(":")[0] == "/tmp" for t in svc["tmpfs"]), name
    volumes = services["mmd"]["volumes"]
    # the ledger and models on the named volume; the config read-only
    assert "mmd-data:/var/lib/mmd" in volumes
    assert any(v.endswith(":/etc/mmd/config.toml:ro") for v in volumes), volumes


@pytest.mark.parametrize(
    ("args", "env", "key"),
    [
        # compose passes these two from the environment into the container
        ([], {"MMD_VENUE__REST_URL": "ftp://api.example"}, "venue.rest_url"),
        ([], {"MMD_VENUE__WS_URL": "https://stream.example/v5"}, "venue.ws_url"),
        ([], {"MMD_VENUE__REST_URL": "http://evil.example/?x=1"}, "venue.rest_url"),
        # an environment value cannot hold NUL: --set can
        (["--set", 'state.dir="/var/lib/mmd/a\\u0000b"'], {}, "state.dir"),
        ([], {"MMD_STATE__DIR": "/proc/self/fd"}, "state.dir"),
        ([], {"MMD_MODELS__DIR": "/dev/shm/m"}, "models.dir"),
    ],
)
def test_url_and_path_values_exit_2_naming_the_key(
    args: list[str], env: dict[str, str], key: str, tmp_path: Path
) -> None:
    import os

    r = subprocess.run(
        [sys.executable, "-m", "mmd", "check-config", "-c", str(ROOT / "config.toml"), *args],
        env={**os.environ, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"config error: {key}:" in lines[0], r.stderr

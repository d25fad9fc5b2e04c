"""What the shipped deployment exposes: compose publishes every port on 127.0.0.1 only, Grafana
has no default admin password, and /debug is off in every shipped config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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

"""The Grafana dashboard and provisioning: structure checked against a JSON schema written here
(not grafana-foundation-sdk), unique ids, non-overlapping grid, the `symbol` template variable,
and every metric a query (or an alert) names exists in mmd/metrics/."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "mmd.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

DS_REF = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"const": "prometheus"}, "uid": {"type": "string", "minLength": 1}},
}
GRID = {
    "type": "object",
    "required": ["h", "w", "x", "y"],
    "properties": {
        "h": {"type": "integer", "minimum": 1},
        "w": {"type": "integer", "minimum": 1, "maximum": 24},
        "x": {"type": "integer", "minimum": 0, "maximum": 23},
        "y": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
}
TARGET = {
    "type": "object",
    "required": ["refId", "expr", "datasource"],
    "properties": {
        "refId": {"type": "string", "pattern": "^[A-Z]$"},
        "expr": {"type": "string", "minLength": 1},
        "datasource": DS_REF,
        "legendFormat": {"type": "string"},
    },
}
QUERY_PANEL = {
    "type": "object",
    "required": ["id", "type", "title", "gridPos", "datasource", "targets"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": {"enum": ["timeseries", "stat", "state-timeline", "gauge", "bargauge", "table"]},
        "title": {"type": "string", "minLength": 1},
        "gridPos": GRID,
        "datasource": DS_REF,
        "targets": {"type": "array", "minItems": 1, "items": TARGET},
        "fieldConfig": {"type": "object", "required": ["defaults", "overrides"]},
    },
}
OTHER_PANEL = {
    "type": "object",
    "required": ["id", "type", "title", "gridPos"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": {"enum": ["row", "text"]},
        "title": {"type": "string", "minLength": 1},
        "gridPos": GRID,
    },
}
VARIABLE = {
    "type": "object",
    "required": ["name", "type", "datasource", "query", "definition"],
    "properties": {"name": {"type": "string"}, "type": {"const": "query"}},
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "uid": {"const": "mmd"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 36, "maximum": 41},
        "panels": {
            "type": "array",
            "minItems": 10,
            "items": {
                "if": {"properties": {"type": {"enum": ["row", "text"]}}},
                "then": OTHER_PANEL,
                "else": QUERY_PANEL,
            },
        },
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": VARIABLE,
                    "contains": {"properties": {"name": {"const": "symbol"}}},
                }
            },
        },
    },
}


@pytest.fixture(scope="module")
def jsonschema_mod() -> Any:
    try:
        import jsonschema
    except ImportError:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "jsonschema"],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            pytest.skip(f"jsonschema not installable: {r.stderr[-300:]}")
        import jsonschema
    return jsonschema


@pytest.fixture(scope="module")
def dash() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(_all_panels(p.get("panels", [])))
    return out


def _exported_names() -> set[str]:
    """Every series name mmd/metrics/ can expose (counters with _total, histogram series)."""
    src = "\n".join(p.read_text() for p in sorted((ROOT / "mmd" / "metrics").glob("*.py")))
    names: set[str] = set()
    for kind, name in re.findall(
        r"\b(CounterMetricFamily|GaugeMetricFamily|SummaryMetricFamily|Counter|Gauge|"
        r"Histogram)\(\s*\"(mmd_\w+)\"",
        src,
    ):
        if kind.startswith("Counter"):
            names.add(name + "_total")
        elif kind == "Histogram":
            names.update(name + s for s in ("_bucket", "_sum", "_count"))
        elif kind == "SummaryMetricFamily":
            names.update(name + s for s in ("_sum", "_count"))
        else:
            names.add(name)
    assert len(names) > 30, names
    return names


def test_dashboard_matches_schema(jsonschema_mod: Any, dash: dict[str, Any]) -> None:
    jsonschema_mod.validate(dash, SCHEMA)


def test_panels_ids_grid_and_datasource(dash: dict[str, Any]) -> None:
    panels = _all_panels(dash["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
        if p["type"] in ("row", "text"):
            continue
        uid = p["datasource"]["uid"]
        assert all(t["datasource"]["uid"] == uid for t in p["targets"])
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for needed in (
        "pnl",
        "position",
        "quotes",
        "spread",
        "fill",
        "imbalance",
        "vpin",
        "volatility",
        "kappa",
        "lag",
        "messages",
        "resyncs",
        "latency",
        "readiness",
        "kill switch",
    ):
        assert needed in titles, needed
    text = [p for p in panels if p["type"] == "text"]
    assert text and "adverse" in text[0]["options"]["content"].lower()


def test_symbol_variable(dash: dict[str, Any]) -> None:
    (var,) = [v for v in dash["templating"]["list"] if v["name"] == "symbol"]
    assert var["query"]["query"] == "label_values(mmd_market_mid_price, symbol)"
    assert var["definition"] == "label_values(mmd_market_mid_price, symbol)"
    exprs = [t["expr"] for p in _all_panels(dash["panels"]) for t in p.get("targets", [])]
    assert sum('symbol=~"$symbol"' in e for e in exprs) >= 15


def test_every_query_uses_exported_metrics(dash: dict[str, Any]) -> None:
    exported = _exported_names()
    exprs = [t["expr"] for p in _all_panels(dash["panels"]) for t in p.get("targets", [])]
    for v in dash["templating"]["list"]:
        exprs.append(v["query"]["query"])
    rules = yaml.safe_load(ALERTS.read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\bmmd_\w+", e)}
    missing = used - exported
    assert not missing, f"not exported by mmd/metrics/: {sorted(missing)}"
    print(f"{len(exprs)} expressions use {len(used)} metrics, all in mmd/metrics/")


def test_provisioning_points_at_dashboard_and_datasource(dash: dict[str, Any]) -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http")
    uids = {p["datasource"]["uid"] for p in _all_panels(dash["panels"]) if "datasource" in p}
    uids |= {v["datasource"]["uid"] for v in dash["templating"]["list"]}
    assert uids == {source["uid"]}
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "mmd.yml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_schema_rejects_broken_panels(jsonschema_mod: Any, dash: dict[str, Any]) -> None:
    import copy

    for breakage in ("datasource", "targets", "gridPos"):
        bad = copy.deepcopy(dash)
        victim = next(p for p in bad["panels"] if p["type"] == "timeseries")
        del victim[breakage]
        with pytest.raises(jsonschema_mod.ValidationError):
            jsonschema_mod.validate(bad, SCHEMA)
    bad = copy.deepcopy(dash)
    bad["templating"]["list"] = [v for v in bad["templating"]["list"] if v["name"] != "symbol"]
    with pytest.raises(jsonschema_mod.ValidationError):
        jsonschema_mod.validate(bad, SCHEMA)

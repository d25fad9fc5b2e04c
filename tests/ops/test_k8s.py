"""Kubernetes manifests: `kubernetes-validate --strict` against a pinned Kubernetes version
(schemas ship with the package: offline), a typo is caught, and the pieces agree with each
other and with the daemon's config (`mmd check-config` on the ConfigMap's config.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.30.0"


@pytest.fixture(scope="module")
def validator() -> list[str]:
    exe = shutil.which("kubernetes-validate")
    if exe is None:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "kubernetes-validate"],
            capture_output=True,
            text=True,
        )
        exe = shutil.which("kubernetes-validate")
        if r.returncode != 0 or exe is None:
            pytest.skip(f"kubernetes-validate not installable: {r.stderr[-300:]}")
    return [exe, "--strict", "-k", K8S_VERSION]


def _manifests() -> list[Path]:
    files = sorted(K8S.glob("*.yaml"))
    assert len(files) >= 5
    return files


def _docs() -> dict[str, dict[str, Any]]:
    out = {}
    for f in _manifests():
        for d in yaml.safe_load_all(f.read_text()):
            out[d["kind"]] = d
    return out


def test_manifests_pass_strict_validation(validator: list[str]) -> None:
    r = subprocess.run([*validator, *map(str, _manifests())], capture_output=True, text=True)
    out = r.stdout + r.stderr
    print(out)
    assert r.returncode == 0, out
    assert out.count(" passed ") == len(_manifests()), out


def test_strict_validation_catches_a_typo(validator: list[str], tmp_path: Path) -> None:
    bad = (K8S / "deployment.yaml").read_text().replace("readinessProbe:", "readynessProbe:")
    (tmp_path / "bad.yaml").write_text(bad)
    r = subprocess.run([*validator, str(tmp_path / "bad.yaml")], capture_output=True, text=True)
    assert r.returncode != 0 and "readynessProbe" in r.stdout + r.stderr


def test_manifests_agree(tmp_path: Path) -> None:
    docs = _docs()
    assert set(docs) == {"Namespace", "ConfigMap", "Deployment", "PersistentVolumeClaim", "Service"}
    ns = docs["Namespace"]["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == ns for k, d in docs.items() if k != "Namespace")

    cfg_text = docs["ConfigMap"]["data"]["config.toml"]
    (tmp_path / "config.toml").write_text(cfg_text)
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "check-config", "-c", str(tmp_path / "config.toml")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    import tomllib

    cfg = tomllib.loads(cfg_text)
    assert cfg["metrics"]["host"] == "0.0.0.0" and cfg["metrics"]["port"] == 9464

    dep = docs["Deployment"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9464"
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    (c,) = spec["containers"]
    assert c["image"] == "mmd:latest"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["MMD_FEED__SYMBOLS"] == '["BTCUSDT"]'
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 9464}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert cfg["state"]["dir"].startswith(mounts["state"] + "/")
    assert c["args"][-1] == mounts["config"] + "/config.toml"
    vols = {v["name"]: v for v in spec["volumes"]}
    assert (
        vols["state"]["persistentVolumeClaim"]["claimName"]
        == docs["PersistentVolumeClaim"]["metadata"]["name"]
    )
    assert vols["config"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]

    svc = docs["Service"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"][0]["port"] == 9464


def test_pod_runs_read_only_with_the_mounts_it_writes() -> None:
    """readOnlyRootFilesystem: every path the daemon writes is on a writable volume, the config
    is mounted read-only, and nothing points numba at the read-only image."""
    import tomllib

    docs = _docs()
    cfg = tomllib.loads(docs["ConfigMap"]["data"]["config.toml"])
    spec = docs["Deployment"]["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    vols = {v["name"]: v for v in spec["volumes"]}
    writable = []
    for m in c["volumeMounts"]:
        vol = vols[m["name"]]
        if m.get("readOnly"):
            continue
        # only volumes of the pod's own: a claim or a scratch dir, never the ConfigMap
        assert "persistentVolumeClaim" in vol or "emptyDir" in vol, m
        writable.append(m["mountPath"].rstrip("/") + "/")
    config_mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    assert config_mount["readOnly"] is True

    def on_writable(path: str) -> bool:
        return any((path.rstrip("/") + "/").startswith(w) for w in writable)

    # the ledger, the models, and /tmp (the entry point's numba cache copy, SQLite temp files)
    assert on_writable(cfg["state"]["dir"]), (cfg["state"]["dir"], writable)
    assert on_writable(cfg["models"]["dir"]), (cfg["models"]["dir"], writable)
    assert on_writable("/tmp"), writable
    assert vols["tmp"]["emptyDir"].get("sizeLimit")
    env = {e["name"]: e.get("value") for e in c["env"]}
    # the image's NUMBA_CACHE_DIR holds the build-time cache; a path here would bypass it
    assert "NUMBA_CACHE_DIR" not in env or on_writable(env["NUMBA_CACHE_DIR"]), env

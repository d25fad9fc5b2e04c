"""The lock files: requirements.lock (runtime, hashed; the Dockerfile installs it) and
requirements-dev.lock (every extra; `.ci/run` installs with it as constraints) cover every
dependency pyproject.toml declares, agree with it and with each other, and this venv has exactly
the locked versions. The audit step of CI says in one line that it skipped when the advisory
service does not answer, and does not change the exit status."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from procs import free_port

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _pins(path: Path) -> dict[str, str]:
    """name -> pinned version of every requirement line of a pip-compile output."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line[0] in " #-":
            continue  # hashes and `# via` lines are indented; options start with -
        m = PIN.match(line)
        assert m, f"{path.name}: not an exact pin: {line!r}"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = m.group(2)
    return pins


def _declared() -> tuple[list[Requirement], list[Requirement]]:
    """(runtime dependencies, every extra's dependencies) of pyproject.toml, without the
    self-reference mmd[...] of the dev extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    extras = [Requirement(r) for reqs in project["optional-dependencies"].values() for r in reqs]
    return runtime, [r for r in extras if canonicalize_name(r.name) != "mmd"]


def test_locks_pin_every_declared_dependency_within_its_range() -> None:
    runtime, extras = _declared()
    rt, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    assert "mmd" not in rt and "mmd" not in dev, "the project itself is not a locked dependency"
    for lock_name, pins, reqs in (
        ("requirements.lock", rt, runtime),
        ("requirements-dev.lock", dev, runtime + extras),
    ):
        for req in reqs:
            name = canonicalize_name(req.name)
            assert name in pins, f"{lock_name} has no pin for {req} (run deploy/lock.sh)"
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"{lock_name} pins {name}=={pins[name]}, outside pyproject.toml's {req}"
            )
    # the runtime lock is the daemon's closure only: no test, train or deep dependency
    for heavy in ("pytest", "torch", "optuna", "scikit-learn", "pyarrow"):
        assert heavy not in rt, heavy
    # torch keeps the plain pin (no local label): the CPU wheel on a machine's disk satisfies it
    assert dev["torch"] == "2.13.0"


def test_runtime_lock_is_hashed_and_agrees_with_the_dev_lock() -> None:
    rt, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    # one entry per pin, each with at least one sha256 (pip --require-hashes refuses otherwise)
    entries = re.split(r"\n(?=[A-Za-z])", RUNTIME_LOCK.read_text().split("\n", 6)[-1])
    hashed = [e for e in entries if PIN.match(e)]
    assert len(hashed) == len(rt)
    for entry in hashed:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry.splitlines()[0]
    # the build backend is locked too (the Dockerfile builds the package without isolation)
    assert "setuptools" in rt
    shared = set(rt) & set(dev)
    assert len(shared) >= 20, shared
    assert {n: rt[n] for n in shared} == {n: dev[n] for n in shared}


def test_venv_has_the_locked_versions() -> None:
    """Whatever runs the tests was installed with `pip install -c requirements-dev.lock -e
    '.[dev]'` (.ci/run, the README): every locked package is installed at its pin."""
    wrong = {}
    for name, version in _pins(DEV_LOCK).items():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            wrong[name] = f"locked {version}, not installed"
            continue
        # `==2.13.0` admits 2.13.0+cpu (PEP 440: a pin without a local label ignores it)
        if not SpecifierSet(f"=={version}").contains(Version(have), prereleases=True):
            wrong[name] = f"locked {version}, installed {have}"
    assert not wrong, (
        "the venv differs from requirements-dev.lock; reinstall with "
        f"`pip install -c requirements-dev.lock -e '.[dev]'`: {wrong}"
    )


def test_dockerfile_and_ci_install_from_the_locks() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(
        r"pip install [^\n]*--require-hashes \\\n\s*-r /src/requirements\.lock", dockerfile
    ), "the Dockerfile installs requirements.lock with hashes"
    # the package itself adds nothing unlocked: no dependencies, no isolated build env
    assert re.search(r"pip install [^\n]*--no-deps --no-build-isolation /src", dockerfile)
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"pip install [^\n]*-c requirements-dev\.lock -e '\.\[dev\]'", ci), ci
    readme = (ROOT / "README.md").read_text()
    assert "pip install -c requirements-dev.lock -e '.[dev]'" in readme


def test_ci_audit_skips_in_one_line_when_the_service_does_not_answer() -> None:
    # a loopback port with nothing listening: the probe is refused at once
    probe = f"http://127.0.0.1:{free_port()}/pypi/{{name}}/{{version}}/json"
    env = {**os.environ, "MMD_AUDIT_PROBE_URL": probe}
    r = subprocess.run(
        ["bash", str(ROOT / ".ci" / "audit")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pip-audit: skipped"), lines


@pytest.mark.parametrize("body", [b"", b"{}", b'{"info": {}}'])
def test_ci_audit_probe_wants_an_advisory_answer(body: bytes, tmp_path: Path) -> None:
    """A server that answers without advisories (a mirror serving only the index, an error
    page) is no advisory service: skipped as well, not audited against nothing."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/pypi/{{name}}/{{version}}/json"
        r = subprocess.run(
            ["bash", str(ROOT / ".ci" / "audit")],
            cwd=ROOT,
            env={**os.environ, "MMD_AUDIT_PROBE_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.returncode == 0, r.stdout + r.stderr
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pip-audit: skipped"), lines

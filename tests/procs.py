"""Start `mmd serve-venue` and `mmd run` as real processes on loopback, and stop them by pid."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """GET url; (status, parsed JSON body or text)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        body = e.read()
        status = e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def http_text(url: str, timeout: float = 5.0) -> str:
    """GET url as text (raises on errors)."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


class Proc:
    """A child process whose output goes to a file (read it back for diagnostics)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.p = subprocess.Popen(args, stdout=self._fh, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        """Everything the process printed so far (also after stop())."""
        if not self._fh.closed:
            self._fh.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        """True while running."""
        return self.p.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the process by pid and wait; kill it if it does not stop."""
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        self._fh.close()
        return int(self.p.returncode)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for a child: this one, JSON logs, no stray MMD_* keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMD_")}
    env.update(MMD_LOGS__FORMAT="json", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@contextlib.contextmanager
def venue(
    paths: list[Path], tmp: Path, *, speed: float = 1.0, faults: str = "", timeout: float = 60.0
) -> Iterator[tuple[Proc, str]]:
    """`mmd serve-venue` on an ephemeral port; yields (proc, http base url)."""
    args = [
        sys.executable,
        "-m",
        "mmd",
        "serve-venue",
        *map(str, paths),
        "--port",
        "0",
        "--speed",
        str(speed),
    ]
    if faults:
        args += ["--faults", faults]
    proc = Proc(args, base_env(), tmp / f"venue-{time.monotonic_ns()}.log")
    try:
        deadline = time.monotonic() + timeout
        url = None
        while time.monotonic() < deadline and url is None:
            m = re.search(r"listening on (http://[\d.]+:\d+)", proc.output())
            if m:
                url = m.group(1)
                break
            if not proc.alive():
                raise RuntimeError(f"venue exited: {proc.output()}")
            time.sleep(0.05)
        if url is None:
            raise RuntimeError(f"venue did not start: {proc.output()}")
        yield proc, url
    finally:
        proc.stop()


@contextlib.contextmanager
def daemon(
    tmp: Path,
    env: dict[str, str],
    *,
    ready_timeout: float | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[tuple[Proc, str]]:
    """`mmd run` with MMD_* env overrides; yields (proc, metrics base url)."""
    port = free_port()
    # /readyz waits for the strategy's warm-up too: keep it short unless a test sets it
    env = {"MMD_STRATEGY__WARMUP_S": "0.5", **env}
    full = base_env(
        MMD_METRICS__PORT=str(port),
        MMD_STATE__DIR=str(tmp / "state"),
        MMD_MODELS__DIR=str(tmp / "models"),
        **env,
    )
    proc = Proc(
        [sys.executable, "-m", "mmd", "run", *args], full, tmp / f"daemon-{time.monotonic_ns()}.log"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"daemon exited {proc.p.returncode}: {proc.output()}")
            try:
                if http_json(url + "/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"daemon not healthy: {proc.output()}")
        if ready_timeout is not None:
            wait_ready(url, ready_timeout, proc)
        yield proc, url
    finally:
        proc.stop()


def wait_ready(url: str, timeout: float, proc: Proc | None = None) -> None:
    """Wait for /readyz to answer 200."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        status, last = http_json(url + "/readyz")
        if status == 200:
            return
        time.sleep(0.1)
    out = proc.output()[-3000:] if proc else ""
    raise AssertionError(f"not ready after {timeout}s: {last}\n{out}")


def metric_values(text: str, name: str) -> dict[str, float]:
    """Samples of one metric from exposition text: {'{labels}': value}."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, val = line.rpartition(" ")
            out[key[len(name) :]] = float(val)
    return out


def split_recording(src: Path, train_out: Path, n_train: int, n_test: int) -> tuple[int, int]:
    """Write src's first n_train frames to train_out (a training slice) and return the
    receive-time window [start_ns, end_ns) of the next n_test frames (the held-out window:
    from just after the last training frame)."""
    from mmd.feeds.recording import RecordingWriter, read_recording

    stamps = []
    with RecordingWriter(train_out) as w:
        for i, (ts, raw) in enumerate(read_recording(src)):
            if i < n_train:
                w.write(ts, raw)
            stamps.append(ts)
            if i >= n_train + n_test:
                break
    return stamps[n_train] + 1, stamps[n_train + n_test]

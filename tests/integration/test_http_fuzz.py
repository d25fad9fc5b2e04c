"""The HTTP endpoints under hypothesis, over real sockets, against a running `mmd run`.

Hypothesis draws whole requests: methods (the two served, others, garbage), paths (the
endpoints, unknown ones, /debug/book with hostile symbols, percent escapes, very long), query
strings, HTTP versions, zero to hundreds of headers of any size, and requests cut short (the
client half-closes before the blank line). Every answer must be a documented status (200, 400,
404, 405, 431, 503) with the status the rules give where they are plain (405 for a method other
than GET and HEAD, 431 for a head over 8 KiB, 404 for an unknown path, 200 for /healthz), a
truncated request gets no answer, and HEAD gets no body. Then many connections at once: more
half-sent requests than `[metrics] max_connections` plus a burst of complete ones. Afterwards
/healthz still answers 200 and the log holds no traceback.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from procs import Proc, daemon, http_json, http_text

from mmd.metrics.server import MAX_REQUEST_BYTES

pytestmark = pytest.mark.slow

TIMEOUT_S = 1.0  # [metrics] request_timeout_s of the daemon under test
MAX_CONNECTIONS = 8
DOCUMENTED = {200, 400, 404, 405, 431, 503}
KNOWN = ("/metrics", "/healthz", "/readyz")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, str, int]]:
    tmp = tmp_path_factory.mktemp("http_fuzz")
    env = {
        "MMD_FEED__SOURCE": "synthetic",
        "MMD_METRICS__DEBUG": "true",
        "MMD_METRICS__REQUEST_TIMEOUT_S": str(TIMEOUT_S),
        "MMD_METRICS__MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with daemon(tmp, env) as (proc, url):
        yield proc, url, int(url.rsplit(":", 1)[1])


def exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send data, optionally half-close, and read until the server closes. A reset after the
    server answered and closed (it stops reading once it has refused) keeps what arrived."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S + 10) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, BrokenPipeError):
            pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    line = answer.split(b"\r\n", 1)[0].split(b" ")
    assert len(line) >= 2 and line[0] == b"HTTP/1.1", answer[:200]
    return int(line[1])


TOKEN = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=20,
)
METHODS = (
    st.sampled_from(
        [
            "GET",
            "GET",
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "DELETE",
            "OPTIONS",
            "CONNECT",
            "TRACE",
            "PATCH",
            "get",
            "G ET",
            "",
        ]
    )
    | TOKEN
)
PATHS = st.one_of(
    st.sampled_from(
        [
            *KNOWN,
            "/",
            "//",
            "/metrics/",
            "/healthz?x",
            "/readyz#f",
            "*",
            "/debug/book/BTCUSDT",
            "/debug/book/",
            "/debug/book/../../etc/passwd",
            "/debug/book/%00",
            "/debug/book/" + "A" * 41,
            "/%ff%fe",
            "/\x00",
            "http://h/metrics",
            "/" + "x" * 9000,
            "/metrics\x7f",
            "/\u00e9",
        ]
    ),
    st.builds(lambda p: "/" + p, st.text(max_size=40)),
    st.builds(lambda p: "/debug/book/" + p, st.text(max_size=12)),
)
QUERIES = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            "?depth=5",
            "?depth=0",
            "?depth=-1",
            "?depth=10001",
            "?depth=1e3",
            "?depth=5&depth=6",
            "?" + "&".join(f"k{i}=v" for i in range(50)),
            "?%zz",
            "?depth=\u0661",
        ]
    ),
    st.builds(lambda q: "?" + q, st.text(max_size=30)),
)
VERSIONS = st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/9.9", "", "x"])
HEADERS = st.lists(
    st.tuples(
        TOKEN, st.one_of(st.text(max_size=30), st.integers(0, 12_000).map(lambda n: "v" * n))
    ),
    max_size=300,
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method, path, query, version = draw(METHODS), draw(PATHS), draw(QUERIES), draw(VERSIONS)
    headers = draw(HEADERS)
    line = f"{method} {path}{query} {version}".encode("utf-8", "surrogatepass")
    return (
        line
        + b"\r\n"
        + b"".join(f"{k}: {v}\r\n".encode("utf-8", "surrogatepass") for k, v in headers)
        + b"\r\n"
    )


def server_head(data: bytes) -> bytes | None:
    """The head the server reads: up to the first blank line (None: there is none)."""
    end = data.find(b"\r\n\r\n")
    return None if end < 0 else data[: end + 4]


def expected(head: bytes) -> int | None:
    """The status the rules give where they are plain (None: any documented status). Only the
    first blank line ends a head: a header value may hold one."""
    if len(head) > MAX_REQUEST_BYTES + 64:
        return 431
    if len(head) > MAX_REQUEST_BYTES - 64:
        return None  # near the limit: the reader's buffering decides
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1].startswith(b"/"):
        return 400
    if parts[0] not in (b"GET", b"HEAD"):
        return 405
    target = parts[1]
    if not target.isascii():
        return 400
    path, _, query = target.decode().partition("?")
    path = path.partition("#")[0]
    if query.count("&") >= 8:  # more than 8 fields
        return 400
    if path == "/healthz":
        return 200
    if path not in KNOWN and not path.startswith("/debug/book/"):
        return 404
    return None


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=requests(), cut=st.none() | st.floats(0, 1, exclude_max=True))
def test_http_fuzz_every_answer_is_a_documented_status(
    server: tuple[Proc, str, int], data: bytes, cut: float | None
) -> None:
    proc, _url, port = server
    if cut is not None:
        data = data[: int(cut * len(data))]
    head = server_head(data)
    answer = exchange(port, data, half_close=cut is not None)
    if head is None:
        # cut short before the blank line: nothing is answered, or 431 once what arrived
        # already overran the limit
        if answer:
            assert status_of(answer) == 431 and len(data) > MAX_REQUEST_BYTES - 64, answer[:200]
        event("truncated")
        return
    assert answer, f"no answer to {head[:200]!r}"
    status = status_of(answer)
    assert status in DOCUMENTED, answer[:300]
    want = expected(head)
    if want is not None:
        assert status == want, (head[:200], answer[:300])
    sep = answer.index(b"\r\n\r\n")
    declared = [
        int(h.split(b":", 1)[1])
        for h in answer[:sep].split(b"\r\n")
        if h.lower().startswith(b"content-length:")
    ]
    assert len(declared) == 1, answer[:300]
    body = answer[sep + 4 :]
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    routed_head = (
        status != 431
        and len(parts) == 3
        and parts[0] == b"HEAD"
        and parts[1].startswith(b"/")
        and parts[2].startswith(b"HTTP/1.")
    )
    # HEAD of a routed request: the headers alone; every other answer: its whole body, JSON
    # except the metrics text
    assert len(body) == (0 if routed_head else declared[0]), answer[:300]
    if body and not body.startswith(b"# HELP"):
        json.loads(body)
    event(f"status {status}")
    assert proc.alive()


def test_http_fuzz_many_connections_then_still_healthy(server: tuple[Proc, str, int]) -> None:
    proc, url, port = server
    held = []
    for _ in range(4 * MAX_CONNECTIONS):  # half-sent requests, four times the cap
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    # a probe gets in (the oldest half-sent connections make room)
    assert http_json(url + "/healthz", timeout=5)[0] == 200
    # a burst of complete requests from many clients at once: answered (200) or turned away
    # with 503 when every slot is answering; a connection evicted while still sending gets
    # closed without an answer
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(
            pool.map(
                lambda _: exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), range(200)
            )
        )
    statuses = [status_of(a) if a else None for a in answers]
    assert set(statuses) <= {200, 503, None}, set(statuses)
    assert statuses.count(200) >= 20, statuses  # most of the burst is served
    for s in held:
        with contextlib.suppress(OSError):
            s.close()
    time.sleep(TIMEOUT_S)
    assert http_json(url + "/healthz", timeout=5)[0] == 200
    metrics = http_text(url + "/metrics")
    assert 'mmd_http_refused_total{reason="evicted"}' in metrics
    assert proc.alive()
    out = proc.output()
    assert "Traceback" not in out, out[-3000:]

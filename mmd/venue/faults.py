"""The venue's `--faults`: parsing the spec, counting, and shaping the frames a fault changes.

Deterministic and socket-free: it decides which update or request a fault hits and what is sent
instead; sending is `ws.py`'s and `views.py`'s job, answering `rest.py`'s.

Counting is deterministic. Websocket kinds count the book update frames (deltas; the updates
of a depth-1 view) each view produces while it has subscribers, so every N-th update of a view
is affected, for all of its subscribers at once; stream order and `u` of the unaffected frames
are untouched. REST kinds count the requests to `/v5/market/*` (not `/venue/stats`).

* `disconnect`: the N-th delta is sent, then the subscribers' connections are closed (close
  code 1001 "venue fault: disconnect").
* `stall`: from the N-th delta on (it included) nothing more is sent on the subscribers'
  connections: no frames, no acks, no pongs (app-level or websocket protocol), until the
  client closes them (frames queued before it still go out). The connections stay open; the
  idle timeout still applies to a client that stops sending.
* `gap`: the N-th delta is not sent; its `u` is consumed, so the next delta jumps by 2.
* `restart`: the N-th delta is replaced by a `snapshot` of the view with `u = 1`, and `u`
  continues from 1 (a Bybit book-service restart).
* `garbage`: a non-JSON text frame is sent just before the N-th delta (stream otherwise intact).
* `truncate`: the first half of the N-th delta's text is sent just before it (intact otherwise).
* `duplicate`: the N-th delta is sent twice.
* `reorder`: the N-th delta is held and sent right after the next frame of that topic on each
  connection (held frames still pending when the replay ends are then sent).
* `types`: the N-th delta is sent with wrongly typed fields instead (`u` a string, every price
  a JSON number); its `u` is consumed, so a client that refuses it has lost that update.
* `oversized`: the N-th delta is padded with blanks inside its JSON object to
  `oversized_frame_bytes` (default 4 MiB + 1 KiB, just above the daemon's default
  `[ws] max_frame_bytes`): still a valid frame, only too large.
* `outage` (counts the source book frames the replay applies, every symbol together, with or
  without subscribers, so it also hits a REST-only client): after the N-th, the venue stops
  listening and cuts every connection (websocket and REST keep-alive, without a close
  handshake; what was queued before still goes out) for `outage_s` (default 2 s), then listens
  again on the same port; meanwhile connecting is refused and the replay goes on. A frame due
  for `outage` while the venue is already down starts no second outage.
* `http5xx` / `http429` / `http403`: every N-th REST request gets HTTP 503 / 429 / 403 (the
  403 body is "access too frequent", as Bybit's IP rate limit).
* `retcode`: every N-th REST request gets HTTP 200 with `retCode` 10016 "service restarting".
* `slow`: every N-th REST request is answered (correctly) only after `slow_response_s`
  (default 6 s, beyond the daemon's default `[rest] timeout_s` of 5 s).

When several kinds hit the same update: `stall` wins over everything; `restart` wins over
`gap`, `types` and `oversized`; a `gap` leaves nothing for the frame kinds (`types`, `oversized`,
`garbage`, `truncate`, `duplicate`, `reorder`); `types` wins over `oversized`; `garbage`,
`truncate`, `duplicate` and `reorder` see the frame `types`/`oversized` made; `reorder` wins
over `duplicate`; `disconnect` combines with all but `stall`.
For REST the first hit in the order http5xx, http429, http403, retcode, slow wins.
`/venue/stats` counts each injected fault once per occurrence on a view (not per connection),
also when its subscribers are already stalled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import structlog

from mmd.errors import ConfigError

WS_FAULT_KINDS = (
    "disconnect",
    "stall",
    "gap",
    "restart",
    "garbage",
    "truncate",
    "duplicate",
    "reorder",
    "types",
    "oversized",
)
REST_FAULT_KINDS = ("http5xx", "http429", "http403", "retcode", "slow")
VENUE_FAULT_KINDS = ("outage",)
FAULT_KINDS = WS_FAULT_KINDS + REST_FAULT_KINDS + VENUE_FAULT_KINDS

GARBAGE_FRAME = "<html><body><h1>502 Bad Gateway</h1></body></html> (mmd venue fault: garbage)"
OVERSIZED_FRAME_BYTES = (4 << 20) + 1024  # `oversized`: above the daemon's default 4 MiB
SLOW_RESPONSE_S = 6.0  # `slow`: beyond the daemon's default REST timeout (5 s)
OUTAGE_S = 2.0  # `outage`: how long the venue refuses connections

# a lazy proxy: the configuration made later by the CLI applies (`.bind()` here would freeze it)
log = structlog.get_logger(component="venue")


def parse_faults(spec: str | None) -> dict[str, int]:
    """Parse the `--faults` value: comma-separated `KIND:N` (PRODUCT.md).

    Args:
        spec: e.g. "disconnect:500,gap:700,garbage:300,http5xx:5"; empty or None = no faults.

    Returns:
        {kind: N}, N > 0.

    Raises:
        ConfigError: an unknown kind, a missing or non-integer N, N <= 0, or a kind given twice;
            the message names the bad part.
    """
    out: dict[str, int] = {}
    if not spec or not spec.strip():
        return out
    for raw_part in spec.split(","):
        part = raw_part.strip()
        if not part:
            continue
        kind, sep, count = part.partition(":")
        kind = kind.strip().lower()
        if kind not in FAULT_KINDS:
            raise ConfigError(
                f"--faults: unknown fault kind {kind!r} in {part!r} "
                f"(known: {', '.join(FAULT_KINDS)})"
            )
        if not sep:
            raise ConfigError(f"--faults: {part!r} needs a count N, e.g. {kind}:100")
        try:
            n = int(count.strip())
        except ValueError:
            raise ConfigError(f"--faults: {part!r}: N must be an integer") from None
        if n <= 0:
            raise ConfigError(f"--faults: {part!r}: N must be > 0")
        if kind in out:
            raise ConfigError(f"--faults: {kind!r} is given twice")
        out[kind] = n
    return out


def mistyped(frame: str) -> str:
    """The `types` fault: the same book frame with `u` as a string and prices as numbers."""
    obj = orjson.loads(frame)
    data = obj["data"]
    data["u"] = str(data["u"])
    for side in ("b", "a"):
        data[side] = [[float(px), qty] for px, qty in data[side]]
    return orjson.dumps(obj).decode()


@dataclass(slots=True)
class UpdateShape:
    """What the frame kinds make of one view update (after `stall`/`restart`/`gap`).

    Attributes:
        frame: the update as sent (possibly mistyped or padded).
        pre: frames sent just before it (garbage, its truncated half).
        reorder: hold it back until the next frame of the topic.
        duplicate: send it twice.
    """

    frame: str
    pre: list[str] = field(default_factory=list)
    reorder: bool = False
    duplicate: bool = False


class FaultPlan:
    """The configured faults and what was injected, per kind.

    Args:
        faults: {kind: N} as returned by `parse_faults`.
        oversized_frame_bytes: size of a frame made by the `oversized` fault (>= 1024).
        slow_response_s: delay of an answer made by the `slow` fault (> 0).
        outage_s: how long an `outage` fault refuses connections (> 0).

    Raises:
        ConfigError: an unknown kind, N <= 0, a parameter out of range.
    """

    def __init__(
        self,
        faults: dict[str, int],
        *,
        oversized_frame_bytes: int = OVERSIZED_FRAME_BYTES,
        slow_response_s: float = SLOW_RESPONSE_S,
        outage_s: float = OUTAGE_S,
    ) -> None:
        for kind, n in faults.items():
            if kind not in FAULT_KINDS or n <= 0:
                raise ConfigError(f"serve-venue: bad fault {kind}:{n}")
        if oversized_frame_bytes < 1024 or not slow_response_s > 0 or not outage_s > 0:
            raise ConfigError(
                "serve-venue: oversized_frame_bytes must be >= 1024, "
                "slow_response_s and outage_s > 0"
            )
        self.configured = dict(faults)
        self.injected = dict.fromkeys(FAULT_KINDS, 0)
        self.oversized_bytes = oversized_frame_bytes
        self.slow_s = float(slow_response_s)
        self.outage_s = float(outage_s)
        self.outage_n = faults.get("outage", 0)
        self._ws = [(k, faults[k]) for k in WS_FAULT_KINDS if k in faults]
        self._rest = [(k, faults[k]) for k in REST_FAULT_KINDS if k in faults]

    def count(self, kind: str) -> None:
        """Count one injected fault of `kind`."""
        self.injected[kind] += 1
        log.debug("fault_injected", kind=kind, total=self.injected[kind])

    def ws_hits(self, k: int) -> set[str]:
        """The websocket kinds due at a view's k-th update."""
        return {kind for kind, n in self._ws if k % n == 0}

    def rest_hit(self, k: int) -> str | None:
        """The REST kind due at the k-th request (the first in REST_FAULT_KINDS order), counted."""
        for kind, n in self._rest:
            if k % n == 0:
                self.count(kind)
                return kind
        return None

    def outage_due(self, source_books: int) -> bool:
        """True when the `outage` fault is due after that many source book frames."""
        return bool(self.outage_n) and source_books % self.outage_n == 0

    def shape(self, hits: set[str], frame: str) -> UpdateShape:
        """Apply the frame kinds among `hits` to one update's frame, counting each.

        Args:
            hits: the kinds due at this update (`ws_hits`), once `stall`, `restart` and `gap`
                have been handled; `types` and `oversized` only apply to a delta, so the caller
                removes them for a restart snapshot.
            frame: the update's text.
        """
        if "types" in hits:
            frame = mistyped(frame)
            self.count("types")
        elif "oversized" in hits:
            frame = frame[:-1] + " " * max(0, self.oversized_bytes - len(frame)) + "}"
            self.count("oversized")
        out = UpdateShape(frame)
        if "garbage" in hits:
            out.pre.append(GARBAGE_FRAME)
            self.count("garbage")
        if "truncate" in hits:
            out.pre.append(frame[: len(frame) // 2])
            self.count("truncate")
        if "reorder" in hits:
            out.reorder = True
            self.count("reorder")
        elif "duplicate" in hits:
            out.duplicate = True
            self.count("duplicate")
        return out

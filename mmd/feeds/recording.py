"""The recording format: gzip text, one frame a line, `<ts_recv_ns> <raw frame as received>`.

File names carry venue, category, symbol and start time:
`<venue>_<category>_<SYMBOL>_<YYYYMMDDTHHMMSSZ>.rec.gz`, e.g.
`bybit_linear_BTCUSDT_20260809T212656Z.rec.gz`; readers do not rely on the name (a file may be
renamed): recording_meta reads category and symbol from the first line. A file holds the
frames of one symbol: first the `/v5/market/instruments-info` REST answer for it (so readers
know tick and lot size and which symbol it is), then
websocket frames (`orderbook.N.SYM`, `publicTrade.SYM`, `kline.1.SYM`) and/or REST answers, in
the order they arrived. This module reads and writes that format and nothing else.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import msgspec

SUFFIX = ".rec.gz"
_NAME_RE = re.compile(
    r"^(?P<venue>[a-z0-9]+)_(?P<category>linear|spot|inverse)_(?P<symbol>[A-Z0-9]+)_"
    r"(?P<start>\d{8}T\d{6}Z)(?:_(?P<part>\d+))?\.rec\.gz$"
)


class RecordingMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What a recording's file name says."""

    venue: str
    category: str
    symbol: str
    start_ns: int
    part: int = 0


def recording_name(venue: str, category: str, symbol: str, start_ns: int, part: int = 0) -> str:
    """The file name for a recording starting at start_ns (UTC)."""
    t = dt.datetime.fromtimestamp(start_ns / 1e9, tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    tail = f"_{part}" if part else ""
    return f"{venue}_{category}_{symbol}_{t}{tail}{SUFFIX}"


def parse_recording_name(path: str | Path) -> RecordingMeta | None:
    """Parse a recording file name; None when it does not follow the convention."""
    m = _NAME_RE.match(Path(path).name)
    if m is None:
        return None
    start = dt.datetime.strptime(m.group("start"), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return RecordingMeta(
        venue=m.group("venue"),
        category=m.group("category"),
        symbol=m.group("symbol"),
        start_ns=int(start.timestamp()) * 1_000_000_000,
        part=int(m.group("part") or 0),
    )


class _Instrument(msgspec.Struct):
    symbol: str


class _InstrumentsResult(msgspec.Struct):
    category: str
    items: list[_Instrument] = msgspec.field(name="list")


class _InstrumentsEnvelope(msgspec.Struct):
    result: _InstrumentsResult


_ENVELOPE = msgspec.json.Decoder(_InstrumentsEnvelope)


def recording_meta(path: str | Path) -> RecordingMeta | None:
    """What a recording holds, whatever its file name: category and symbol from its first
    line (the instruments-info answer for its one symbol), start from that line's stamp.

    The venue and part come from the name when it follows the convention ("" and 0 otherwise).
    A recording whose first line is not a one-symbol instruments-info answer falls back to
    its name; None when neither tells (or the file cannot be read).
    """
    named = parse_recording_name(path)
    try:
        first = next(read_recording(path), None)
    except OSError:
        first = None
    if first is not None:
        ts, frame = first
        try:
            env = _ENVELOPE.decode(frame)
        except msgspec.DecodeError:
            env = None
        if env is not None and len(env.result.items) == 1:
            return RecordingMeta(
                venue=named.venue if named else "",
                category=env.result.category,
                symbol=env.result.items[0].symbol,
                start_ns=ts,
                part=named.part if named else 0,
            )
    return named


def expand_paths(paths: list[str] | list[Path]) -> list[Path]:
    """Files as given, directories expanded to their *.rec.gz files, in name (= time) order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.glob(f"*{SUFFIX}")))
        else:
            out.append(p)
    return out


class BadRecordingLine(ValueError):
    """A line that is not `<int> <frame>`."""


def parse_line(line: bytes) -> tuple[int, bytes]:
    """Split one recording line into (ts_recv_ns, raw frame bytes)."""
    head, sep, frame = line.rstrip(b"\r\n").partition(b" ")
    if not sep or not head.isdigit():
        raise BadRecordingLine(line[:80].decode("utf-8", "replace"))
    return int(head), frame


def read_recording(path: str | Path, *, skip_bad: bool = True) -> Iterator[tuple[int, bytes]]:
    """Yield (ts_recv_ns, raw frame) from one recording, in file order.

    Args:
        path: a `.rec.gz` file (plain text is accepted too when the name does not end in .gz).
        skip_bad: skip lines that do not parse (a file cut by kill -9 ends in a partial line);
            when False they raise BadRecordingLine.
    """
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as fh:
        while True:
            try:
                line = fh.readline()
            except (EOFError, gzip.BadGzipFile):
                # a gzip stream cut short by a crash: keep what was readable
                if skip_bad:
                    return
                raise
            if not line:
                return
            if not line.strip():
                continue
            try:
                yield parse_line(line)
            except BadRecordingLine:
                if not skip_bad:
                    raise


class RecordingWriter:
    """Appends `<ts_recv_ns> <frame>` lines to one gzip file.

    Each `write` goes into the gzip stream; `flush` pushes a sync point so that a reader (or a
    crash) sees every line written so far.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="ab", compresslevel=6)
        self.lines = 0

    def write(self, ts_recv_ns: int, frame: bytes | str) -> None:
        """Append one frame. Newlines inside the frame are escaped away (JSON never needs them)."""
        if isinstance(frame, str):
            frame = frame.encode()
        if b"\n" in frame or b"\r" in frame:
            frame = frame.replace(b"\r", b"").replace(b"\n", b" ")
        self._gz.write(b"%d %s\n" % (ts_recv_ns, frame))
        self.lines += 1

    def flush(self) -> None:
        """Make every line written so far readable from the file."""
        self._gz.flush()
        self._raw.flush()

    def close(self) -> None:
        """Finish the gzip member and close the file."""
        self._gz.close()
        self._raw.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file's bytes (read in 1 MiB blocks): how recordings are identified in
    summaries, ledgers and the event cache."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

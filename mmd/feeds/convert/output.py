"""The converters' shell helpers: atomic recording output, output paths, gzip sniffing, progress
bars, and the result a conversion returns. No conversion logic.
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from mmd.feeds.recording import RecordingWriter


class ConvertResult(list[Path]):
    """The written recordings (a plain list of paths) plus what the conversion counted.

    Attributes:
        frames: lines written, the instruments-info line included, over all files.
        dropped_trades: trades left out on purpose (Binance prints whose `X` is not MARKET,
            e.g. insurance-fund fills).
        skipped: input records not carried over (bookTicker/markPrice lines, tickers, acks).
    """

    def __init__(
        self, paths: Iterable[Path], *, frames: int, dropped_trades: int = 0, skipped: int = 0
    ) -> None:
        super().__init__(paths)
        self.frames = frames
        self.dropped_trades = dropped_trades
        self.skipped = skipped


def open_maybe_gzip(raw: IO[bytes]) -> gzip.GzipFile | IO[bytes]:
    """`raw` itself, or a gzip reader over it when it starts with the gzip magic."""
    magic = raw.read(2)
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw


def output_path(out: Path | str, name: str) -> Path:
    """`out` itself, or `out/name` when out is a directory (existing, or given with a trailing
    "/"; then it is created)."""
    text = str(out)
    p = Path(out)
    if p.is_dir() or text.endswith(("/", os.sep)):
        p.mkdir(parents=True, exist_ok=True)
        return p / name
    return p


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm[Any]:
    """A byte-counting tqdm bar, shown only when enabled and stderr is a TTY."""
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        disable=not (enabled and sys.stderr.isatty()),
        leave=False,
    )


class AtomicRecording:
    """A RecordingWriter on `<path>.partial`, moved onto `path` only when closed cleanly."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".partial")
        self._tmp.unlink(missing_ok=True)
        self.writer = RecordingWriter(self._tmp)
        self._last_ts = 0

    def write(self, ts_recv_ns: int, frame: bytes) -> None:
        """Append one line (stamp, frame)."""
        # keep the file's stamps non-decreasing even if the source clock stepped back
        self._last_ts = max(self._last_ts, ts_recv_ns)
        self.writer.write(self._last_ts, frame)

    def commit(self) -> None:
        """Close the file and move it onto `path`."""
        self.writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Close the file and delete it (`path` is left untouched)."""
        self.writer.close()
        self._tmp.unlink(missing_ok=True)

"""Appends raw frames to per-symbol rotating recordings (`<ts_recv_ns> <raw frame>` lines)."""

from __future__ import annotations

from pathlib import Path

from mmd.feeds.recording import RecordingWriter, recording_name

# flush the gzip stream at least this often so a crash loses at most this much
_FLUSH_EVERY_NS = 1_000_000_000


class FrameRecorder:
    """One RecordingWriter per symbol, rotated every rotate_s of receive time.

    Args:
        out_dir: where recordings go.
        venue: first part of the file name (bybit).
        category: linear, spot or inverse.
        rotate_s: start a new file after this many seconds.
    """

    def __init__(self, out_dir: str | Path, venue: str, category: str, rotate_s: float) -> None:
        self.out_dir = Path(out_dir)
        self.venue = venue
        self.category = category
        self.rotate_ns = int(rotate_s * 1e9)
        self._writers: dict[str, tuple[RecordingWriter, int]] = {}
        self._header: dict[str, tuple[int, bytes]] = {}
        self._last_flush_ns = 0
        self.paths: list[Path] = []
        self.frames = 0

    def write(self, symbol: str, raw: bytes, ts_recv_ns: int, *, header: bool = False) -> None:
        """Append a frame of symbol. A header frame (instruments-info) opens every new file."""
        if header:
            self._header[symbol] = (ts_recv_ns, raw)
        entry = self._writers.get(symbol)
        if entry is None or ts_recv_ns - entry[1] >= self.rotate_ns:
            if entry is not None:
                entry[0].close()
            w = RecordingWriter(
                self.out_dir / recording_name(self.venue, self.category, symbol, ts_recv_ns)
            )
            self.paths.append(w.path)
            self._writers[symbol] = (w, ts_recv_ns)
            hdr = self._header.get(symbol)
            if hdr is not None and not header:
                w.write(ts_recv_ns, hdr[1])
            entry = self._writers[symbol]
        entry[0].write(ts_recv_ns, raw)
        self.frames += 1
        if ts_recv_ns - self._last_flush_ns >= _FLUSH_EVERY_NS:
            self.flush()
            self._last_flush_ns = ts_recv_ns

    def flush(self) -> None:
        """Make everything written so far readable."""
        for w, _ in self._writers.values():
            w.flush()

    def close(self) -> None:
        """Close every file."""
        for w, _ in self._writers.values():
            w.close()
        self._writers.clear()

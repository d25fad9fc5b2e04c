"""The event cache on disk (shell): recordings -> EventArrays (decoded once by EventBuilder) ->
a directory of `.npy` files, memory-mapped after; sha256 digests and the codec fingerprint name
the entries. No trading logic.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmd.feeds.convert.event_builder import EventBuilder
from mmd.feeds.convert.events import ARRAY_FIELDS, FORMAT_VERSION, EventArrays
from mmd.feeds.recording import file_sha256
from mmd.model import codes

CACHE_ENV = "MMD_EVENT_CACHE"


def default_cache_dir() -> Path:
    """`$MMD_EVENT_CACHE`, else `$XDG_CACHE_HOME/mmd/events`, else `~/.cache/mmd/events`."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "mmd" / "events"


def file_digests(files: list[Path]) -> list[str]:
    """The hex sha256 of each file (read in full)."""
    return [file_sha256(f) for f in files]


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def recording_digests(files: list[Path], cache_dir: Path) -> list[str]:
    """The files' sha256 digests, remembered in `<cache_dir>/digests.json` by device, inode,
    size and mtime, so a warm start does not read the recordings again."""
    memo_path = cache_dir / "digests.json"
    try:
        memo: dict[str, list[str]] = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    out, changed = [], False
    for f in files:
        key, name = _stat_key(f), str(f.resolve())
        known = memo.get(name)
        if known is not None and known[0] == key:
            out.append(known[1])
            continue
        digest = file_sha256(f)
        memo[name] = [key, digest]
        out.append(digest)
        changed = True
    if changed:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_name(f"digests.json.partial-{os.getpid()}")
        tmp.write_text(json.dumps(memo), encoding="utf-8")
        os.replace(tmp, memo_path)  # concurrent writers: the last one wins, nothing breaks
    return out


def codec_fingerprint() -> str:
    """What decides the arrays besides the recordings: the sources of the codec, the instrument
    conversions and the event modules (so a stricter codec invalidates older cache entries)."""
    from mmd import __version__
    from mmd.feeds import bybit_codec
    from mmd.feeds.convert import event_builder, events
    from mmd.model import instrument

    h = hashlib.sha256(f"{FORMAT_VERSION}|{__version__}|".encode())
    h.update(str(getattr(bybit_codec, "CODEC_VERSION", "")).encode())
    codec_files = sorted(Path(str(bybit_codec.__file__)).parent.glob("*.py"))
    own = (instrument.__file__, codes.__file__, events.__file__, event_builder.__file__, __file__)
    for mod_file in (*codec_files, *own):
        h.update(Path(str(mod_file)).read_bytes())
    return h.hexdigest()


def cache_key(digests: list[str]) -> str:
    """The cache entry name of recordings with these sha256 digests, in this order."""
    body = json.dumps(
        {"format": FORMAT_VERSION, "codec": codec_fingerprint(), "recordings": digests}
    )
    return hashlib.sha256(body.encode()).hexdigest()[:40]


def _recording_symbols(files: list[Path]) -> tuple[list[tuple[str, str]], list[int]]:
    from mmd.feeds.recording import recording_meta

    symbols: list[tuple[str, str]] = []
    file_sym = []
    for f in files:
        meta = recording_meta(f)
        if meta is None:
            raise ValueError(
                f"{f}: not a recording (its first line is not the "
                "instruments-info answer of one symbol)"
            )
        key = (meta.category, meta.symbol)
        if key not in symbols:
            symbols.append(key)
        file_sym.append(symbols.index(key))
    return symbols, file_sym


def _tagged(path: Path, sym: int) -> Iterator[tuple[int, bytes, int]]:
    from mmd.feeds.recording import read_recording

    for ts, raw in read_recording(path):
        yield ts, raw, sym


def decode_events(files: list[Path]) -> EventArrays:
    """Decode recordings into EventArrays (in memory), frames in `merged_frames(files)` order.

    Raises:
        ValueError: a file that is not a recording.
    """
    symbols, file_sym = _recording_symbols(files)
    builder = EventBuilder(symbols)
    t0 = time.perf_counter()
    # heapq.merge with the same key and file order as replay.merged_frames: the same order
    for ts, raw, sym in heapq.merge(
        *(_tagged(f, s) for f, s in zip(files, file_sym, strict=True)), key=lambda x: x[0]
    ):
        builder.add_frame(sym, ts, raw)
    ev = builder.finish()
    ev.meta["decode_s"] = time.perf_counter() - t0
    return ev


def save_events(
    ev: EventArrays, out: Path, meta: dict[str, Any] | None = None, *, replace: bool = True
) -> Path:
    """Write ev as a directory of uncompressed `.npy` files plus `meta.json`, atomically.

    Args:
        ev: the arrays.
        out: the directory to write.
        meta: more fields for meta.json.
        replace: replace an existing `out`; when False an existing one (another process
            finished first) is kept and this copy dropped.

    Raises:
        ValueError: out exists and is not an event cache directory (it is left alone).
    """
    out = Path(out)
    if out.exists() and not (out / "meta.json").is_file():
        # never delete what is not an event cache (a typo'd --out must not cost a directory)
        raise ValueError(f"{out} exists and is not an event cache directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name in ARRAY_FIELDS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(ev, name)))
        doc = {
            **ev.meta,
            **(meta or {}),
            "format": FORMAT_VERSION,
            "symbols": [list(s) for s in ev.symbols],
            "inst_tick_size": ev.inst_tick_size,
            "inst_lot_size": ev.inst_lot_size,
        }
        (tmp / "meta.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
        if out.exists():
            if not replace:
                return out
            shutil.rmtree(out)
        try:
            os.replace(tmp, out)
        except OSError:
            if replace or not out.is_dir():
                raise  # not a concurrent writer that got there first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def open_events(path: Path) -> EventArrays:
    """Memory-map a directory written by save_events.

    The arrays are mapped copy-on-write (`mmap_mode="c"`): pages are shared with the page
    cache (and other processes) until written, a write never reaches the file, and numba sees
    the same writable `array(int64, 1d, C)` type as for in-memory arrays, so a kernel compiles
    once for both (read-only maps would be a second type).

    Raises:
        ValueError: not an event cache directory, or one of another format version.
    """
    path = Path(path)
    try:
        doc = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not an event cache ({exc})") from None
    if doc.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: event cache format {doc.get('format')}, expected {FORMAT_VERSION}"
        )
    arrays = {name: np.load(path / f"{name}.npy", mmap_mode="c") for name in ARRAY_FIELDS}
    return EventArrays(
        **arrays,
        symbols=[(c, s) for c, s in doc["symbols"]],
        inst_tick_size=list(doc["inst_tick_size"]),
        inst_lot_size=list(doc["inst_lot_size"]),
        meta=doc,
        path=path,
    )


def load_events(
    paths: list[str] | list[Path], cache_dir: str | Path | None = None, *, refresh: bool = False
) -> EventArrays:
    """The recordings' EventArrays, decoded once and memory-mapped from the cache after that.

    The cache entry is `<cache_dir>/<key>/`, key = sha256 of the format version, the codec
    fingerprint (codec_fingerprint) and the recordings' sha256 digests in the given order (the
    order decides ties in the merge). A changed recording has another digest, so another entry;
    digests are remembered by file identity, size and mtime (recording_digests). Processes
    that build the same entry at once each decode; the first one written is kept.

    Args:
        paths: recordings (files or directories), in the order the replay would merge them.
        cache_dir: the cache directory (default: default_cache_dir()).
        refresh: decode again even when the entry exists.

    Returns:
        Memory-mapped EventArrays; `cache_hit` tells whether decoding was skipped.

    Raises:
        ValueError: no recordings, a missing file, or a file that is not a recording.
    """
    from mmd.feeds.recording import expand_paths

    files = expand_paths([Path(p) for p in paths])
    if not files:
        raise ValueError("no recordings in " + ", ".join(map(str, paths)))
    for f in files:
        if not f.is_file():
            raise ValueError(f"{f}: no such file")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digests = file_digests(files) if refresh else recording_digests(files, root)
    entry = root / cache_key(digests)
    if not refresh and (entry / "meta.json").is_file():
        try:
            ev = open_events(entry)
        except ValueError:
            pass  # a broken entry is rebuilt below
        else:
            ev.cache_hit = True
            return ev
    ev = decode_events(files)
    recs = [{"path": str(f), "sha256": d} for f, d in zip(files, digests, strict=True)]
    save_events(ev, entry, {"recordings": recs, "codec": codec_fingerprint()}, replace=refresh)
    return open_events(entry)


def convert_events(paths: list[str] | list[Path], out: str | Path) -> EventArrays:
    """`mmd convert events REC... --out DIR`: decode recordings into an event cache directory.

    Returns:
        The written arrays, memory-mapped from `out`.
    """
    from mmd.feeds.recording import expand_paths

    files = expand_paths([Path(p) for p in paths])
    if not files:
        raise ValueError("no recordings given")
    for f in files:
        if not f.is_file():
            raise ValueError(f"{f}: no such file")
    ev = decode_events(files)
    recs = [{"path": str(f), "sha256": file_sha256(f)} for f in files]
    save_events(ev, Path(out), {"recordings": recs, "codec": codec_fingerprint()})
    return open_events(Path(out))

"""cryptofeed raw captures (recorder format 2) of Bybit V5 -> one recording per (category, symbol).

The frames are Bybit's own, copied as received; this module only splits and stamps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from mmd.feeds.convert.output import AtomicRecording, ConvertResult, open_maybe_gzip, progress_bar
from mmd.feeds.recording import recording_name

_KEPT_TOPICS = ("orderbook", "publicTrade", "kline")


def _cryptofeed_records(
    path: Path, on_bytes: Callable[[int], object] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as raw:
        if raw.read(4) == b"\x28\xb5\x2f\xfd":
            raise ValueError(f"{path}: zstd-compressed; decompress it first (zstd -d)")
        raw.seek(0)
        fh = open_maybe_gzip(raw)
        done = 0
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON ({exc})") from None
            yield lineno, rec
            if on_bytes is not None and lineno % 512 == 0:
                pos = raw.tell()
                on_bytes(pos - done)
                done = pos
        if on_bytes is not None:
            on_bytes(raw.tell() - done)


def _scan_cryptofeed(path: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """conn -> category (from `connect` addrs) and category -> instruments-info envelope."""
    conns: dict[str, str] = {}
    envelopes: dict[str, dict[str, Any]] = {}
    for lineno, rec in _cryptofeed_records(path):
        t = rec.get("t")
        if t == "connect":
            # wss://stream.bybit.com/v5/public/linear -> linear
            category = str(rec.get("addr", "")).rstrip("/").rpartition("/")[2]
            if category in ("linear", "spot", "inverse"):
                conns[rec["conn"]] = category
        elif t == "http" and "/v5/market/instruments-info" in str(rec.get("url", "")):
            try:
                body = orjson.loads(rec["data"])
            except orjson.JSONDecodeError:
                raise ValueError(f"{path}:{lineno}: instruments-info body is not JSON") from None
            result = body.get("result") or {}
            if body.get("retCode") == 0 and result.get("category"):
                known = envelopes.get(result["category"])
                if known is None:
                    envelopes[result["category"]] = body
                else:  # a second page: merge the lists
                    known["result"]["list"].extend(result.get("list", []))
    return conns, envelopes


def _envelope_for(envelope: dict[str, Any], symbol: str) -> bytes:
    items = [it for it in envelope["result"]["list"] if it.get("symbol") == symbol]
    category = envelope["result"]["category"]
    if not items:
        raise ValueError(f"instruments-info for {category} does not list {symbol}")
    result = {**envelope["result"], "list": items}
    return orjson.dumps({**envelope, "result": result})


def convert_cryptofeed(input: Path, out: Path | str, *, progress: bool = False) -> ConvertResult:
    """Split a cryptofeed raw capture of Bybit V5 into one recording per (category, symbol).

    Args:
        input: the `.jsonl` capture (cryptofeed recorder format 2; SOURCES.md section D).
        out: a directory (created); files are named `bybit_<category>_<SYM>_<start>.rec.gz`.
        progress: show a tqdm bar (only on a TTY).

    Returns:
        The written paths in the order their first frame appeared.

    Raises:
        ValueError: the file is not a readable capture, or a symbol is missing from the
            captured instruments-info answer.
    """
    path = Path(input)
    conns, envelopes = _scan_cryptofeed(path)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    recs: dict[tuple[str, str], AtomicRecording] = {}
    skipped = 0
    frames = 0
    try:
        with progress_bar(path.stat().st_size, f"convert {path.name}", progress) as bar:
            for lineno, rec in _cryptofeed_records(path, bar.update):
                category = conns.get(rec.get("conn", ""))
                if rec.get("t") != "recv" or category is None:
                    continue
                text: str = rec["data"]
                try:
                    topic = orjson.loads(text).get("topic")
                except (orjson.JSONDecodeError, AttributeError):
                    raise ValueError(f"{path}:{lineno}: frame is not a JSON object") from None
                prefix, _, symbol = str(topic).rpartition(".")
                if not topic or prefix.partition(".")[0] not in _KEPT_TOPICS:
                    skipped += 1  # tickers, liquidations, subscribe acks, pongs
                    continue
                ts_ns = round(rec["ts"] * 1e9)
                key = (category, symbol)
                target = recs.get(key)
                if target is None:
                    if category not in envelopes:
                        raise ValueError(f"{path}: no instruments-info answer for {category}")
                    name = recording_name("bybit", category, symbol, ts_ns)
                    target = recs[key] = AtomicRecording(out_dir / name)
                    target.write(ts_ns, _envelope_for(envelopes[category], symbol))
                target.write(ts_ns, text.encode())
    except BaseException:
        for r in recs.values():
            r.abort()
        raise
    for r in recs.values():
        frames += r.writer.lines
        r.commit()
    return ConvertResult([r.path for r in recs.values()], frames=frames, skipped=skipped)

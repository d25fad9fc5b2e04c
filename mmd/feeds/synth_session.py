"""`mmd synth`: a synthetic session written as recordings in simulated time (no waiting).

Each symbol gets one recording (`synthetic_<category>_<SYMBOL>_<start>.rec.gz`, the format
`mmd record` writes, readable by `backtest`, `--feed replay` and `serve-venue`) and its truth
sidecar `<recording>.truth.npz` (see SyntheticTruth).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from mmd.config import AppConfig
from mmd.errors import ConfigError
from mmd.feeds.recording import RecordingWriter, recording_name
from mmd.feeds.synthetic import SyntheticMarket, SyntheticTruth, truth_path

# default first frame time: fixed, so the same command writes the same bytes
DEFAULT_START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
_FLUSH_EVERY_LINES = 100_000
_TRADE_FRAME = b'{"topic":"publicTrade.'


def write_session(
    cfg: AppConfig, out_dir: str | Path, duration_s: float, start_ns: int = DEFAULT_START_NS
) -> list[tuple[Path, Path]]:
    """Write duration_s simulated seconds of `[feed.synthetic]` for every `feed.symbols`.

    Returns (recording, truth sidecar) per symbol. Refuses to touch existing files (a
    recording is appended to, never overwritten, so a second run would corrupt it).
    """
    out = Path(out_dir)
    end_ns = start_ns + round(duration_s * 1e9)
    written = []
    for symbol in cfg.feed.symbols:
        rec = out / recording_name("synthetic", cfg.feed.category, symbol, start_ns)
        side = truth_path(rec)
        for p in (rec, side):
            if p.exists():
                raise ConfigError(f"synth: {p} already exists (choose another --out or --start)")
        market = SyntheticMarket(
            symbol,
            cfg.feed.synthetic,
            category=cfg.feed.category,
            depth=cfg.feed.book_depth,
            start_ns=start_ns,
        )
        truth = SyntheticTruth()
        trades = 0  # trade items written: the truth of later ones is dropped
        with RecordingWriter(rec) as w:
            for ts, frame in market.frames(truth):
                if ts >= end_ns:
                    break
                w.write(ts, frame)
                if frame.startswith(_TRADE_FRAME):
                    trades += len(orjson.loads(frame)["data"])
                if w.lines % _FLUSH_EVERY_LINES == 0:
                    w.flush()
        _trim(truth, trades, end_ns)
        truth.save(side)
        written.append((rec, side))
    return written


def _trim(truth: SyntheticTruth, trades: int, end_ns: int) -> None:
    """Keep the truth of the first `trades` trades and the regimes started before end_ns (the
    generator runs a step ahead of the frames written)."""
    for name in SyntheticTruth.TRADE_FIELDS:
        del getattr(truth, name)[trades:]
    # orders: up to the last one that traded in the recording
    last = truth.trade_order[-1] if truth.trade_order else 0
    for name in SyntheticTruth.ORDER_FIELDS:
        del getattr(truth, name)[last:]
    while len(truth.regime_start_ns) > 1 and truth.regime_start_ns[-1] >= end_ns:
        truth.regime_start_ns.pop()
        truth.regime.pop()
    # information episodes started before end_ns; one that ended after it is open in the file
    while truth.episode_start_ns and truth.episode_start_ns[-1] >= end_ns:
        truth.episode_start_ns.pop()
        truth.episode_dir.pop()
    del truth.episode_end_ns[len(truth.episode_start_ns) :]
    if truth.episode_end_ns and truth.episode_end_ns[-1] >= end_ns:
        truth.episode_end_ns.pop()

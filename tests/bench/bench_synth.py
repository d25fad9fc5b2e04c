"""`mmd synth` throughput: simulated seconds written per wall second (recording + truth sidecar).

Rows: `synth.plain` (default config) and `synth.regimes` (informed flow 0.3, regime switching
and Hawkes arrivals at branching 0.5), each BTCUSDT linear at the default 20 frames/s, depth 50.
Figures: `sim_s_per_wall_s`, `frames_per_wall_s`, `wall_s_per_24h` (what a 24 h session costs
at this pace) and `bytes_per_sim_h` (recording size).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from mmd.config import AppConfig, RegimesConfig
from mmd.feeds.recording import read_recording
from mmd.feeds.synth_session import write_session


def _row(name: str, cfg: AppConfig, duration_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ((rec, truth),) = write_session(cfg, tmp, duration_s)
        wall = time.perf_counter() - t0
        frames = sum(1 for _ in read_recording(rec))
        size = Path(rec).stat().st_size + Path(truth).stat().st_size
    return {
        "name": name,
        "sim_s": duration_s,
        "wall_s": round(wall, 3),
        "sim_s_per_wall_s": round(duration_s / wall, 1),
        "frames_per_wall_s": round(frames / wall),
        "wall_s_per_24h": round(86_400 * wall / duration_s, 1),
        "bytes_per_sim_h": round(size * 3600 / duration_s),
    }


def run(quick: bool) -> list[dict[str, Any]]:
    duration = 30.0 if quick else 600.0
    plain = AppConfig()
    syn = plain.feed.synthetic
    regimes = msgspec.structs.replace(
        plain,
        feed=msgspec.structs.replace(
            plain.feed,
            synthetic=msgspec.structs.replace(
                syn, regimes=RegimesConfig(informed_share=0.3, switching=True, hawkes_branching=0.5)
            ),
        ),
    )
    return [_row("synth.plain", plain, duration), _row("synth.regimes", regimes, duration)]

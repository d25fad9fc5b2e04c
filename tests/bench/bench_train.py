"""`mmd train all` wall time: the recording read once, then every model trained and written
(adverse-selection detector, spread predictor, and the RL agent when its trainer exists).

Figures (seconds, wall): `wall_s` for the whole command in process (recording read, datasets,
walk-forward fits, final fits, model files), `read_s` for reading the recording into market
series, `<model>_s` per model, and `recording_s` the receive time the recording covers. Quick:
the first 120 s of the Binance BTCUSDT 2023-04-04/05 recording with 2 walk-forward splits
(it trades busily from its start). Full: the whole ~8.5 min recording with the defaults (4
splits). The recording is converted into a temp dir first (not timed). Without the shared data
the row says `skipped`.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "market"
QUICK_S = 120


def _recording(tmp: Path, quick: bool) -> tuple[Path, float] | None:
    from mmd.feeds.convert.binance_usdm import convert_binance_usdm

    ins = sorted((DATA / "binance_usdm_btcusdt_2023-04-04_05").glob("*.gz"))
    if not ins:
        return None
    (path,) = convert_binance_usdm(ins, tmp, progress=False)
    out = tmp / "btc.rec.gz"
    first = last = None
    with gzip.open(path, "rb") as src, gzip.open(out, "wb") as dst:
        for line in src:
            head = line.split(b" ", 1)[0]
            if head.isdigit():
                ts = int(head)
                first = ts if first is None else first
                if quick and ts - first > QUICK_S * 10**9:
                    break
                last = ts
            dst.write(line)
    assert first is not None and last is not None
    return out, (last - first) / 1e9


def run(quick: bool) -> list[dict[str, Any]]:
    from mmd.learn.cli import run_train_all

    with tempfile.TemporaryDirectory() as tmp:
        got = _recording(Path(tmp), quick)
        if got is None:
            return [{"name": "train_all", "skipped": 1}]
        rec, span_s = got
        sets = ["n_splits=2"] if quick else []
        res = run_train_all(
            [str(rec)],
            str(Path(tmp) / "models"),
            sets,
            None,
            progress=False,
            echo=lambda line: None,
        )
    row: dict[str, Any] = {
        "name": "train_all",
        "wall_s": res["total_s"],
        "read_s": res["read_s"],
        "recording_s": span_s,
    }
    for name, secs in res["seconds"].items():
        row[f"{name}_s"] = secs
    return [row]

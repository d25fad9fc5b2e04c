"""The training inputs of `mmd train`: the training settings, the recordings read into market
series, their digests, and the samples of several recordings pooled.

Shell: reads recordings; fits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from mmd.config import AppConfig
from mmd.errors import ConfigError
from mmd.learn.dataset import Dataset, F64Array, I64Array, LabelParams, MarketSeries, extract_market
from mmd.learn.sets import split_sets


class TrainParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Training settings (`--set key=value`).

    n_splits: walk-forward splits; purge_s: gap around each boundary (raised to the label
    horizon when smaller); model: adverse model kept ("auto": the logistic regression unless
    the MLP's out-of-sample AUC is higher by more than twice the standard error of the paired
    difference); mlp_alpha / spread_alpha: L2 of the networks; seed: sklearn's random_state;
    withdraw_share, max_mult: the policy defaults (mmd.learn.train.choose_policy).
    """

    n_splits: int = 4
    purge_s: float = 0.0
    model: Literal["auto", "logistic", "mlp"] = "auto"
    mlp_alpha: float = 1e-3
    spread_alpha: float = 1e-3
    seed: int = 7
    withdraw_share: float = 0.05
    max_mult: float = 3.0


_LABEL_KEYS = set(LabelParams.__struct_fields__)
_TRAIN_KEYS = set(TrainParams.__struct_fields__)


def parse_sets(sets: list[str]) -> tuple[LabelParams, TrainParams, list[str]]:
    """Split `--set` items: `key=value` set LabelParams/TrainParams fields (value as JSON, else
    a string); `section.key=value` items are config overrides, returned as they are.

    Raises:
        ConfigError: no `=`, an unknown key, or a value of the wrong type.
    """
    values, config_sets = split_sets(sets, _LABEL_KEYS | _TRAIN_KEYS)
    labels = {k: v for k, v in values.items() if k in _LABEL_KEYS}
    train = {k: v for k, v in values.items() if k in _TRAIN_KEYS}
    try:
        return (
            msgspec.convert(labels, LabelParams),
            msgspec.convert(train, TrainParams),
            config_sets,
        )
    except msgspec.ValidationError as exc:
        raise ConfigError(f"--set: {exc}") from None


@dataclass(frozen=True, slots=True)
class Recording:
    """One recording file and its market series."""

    name: str
    files: list[Path]
    series: MarketSeries


def read_recordings(cfg: AppConfig, data: list[str], progress: bool) -> list[Recording]:
    """Each recording file under data (one symbol each), through extract_market.

    Files are not merged: two recordings of one symbol on different days are two recordings
    (each is cut into walk-forward blocks from its own start)."""
    from tqdm import tqdm

    from mmd.feeds.recording import expand_paths, recording_meta
    from mmd.feeds.replay import merged_frames

    files = expand_paths(data)
    if not files:
        raise ConfigError("train: no recordings found in " + ", ".join(data))
    groups: dict[tuple[str, str, str], list[Path]] = {}
    for f in files:
        if not f.exists():
            raise ConfigError(f"train: {f} does not exist")
        meta = recording_meta(f)
        if meta is None:
            raise ConfigError(
                f"train: {f}: not a recording (its first line is not the "
                "instruments-info answer of one symbol)"
            )
        groups.setdefault((meta.category, meta.symbol, str(f)), []).append(f)
    out = []
    for (category, symbol, _), recs in tqdm(
        sorted(groups.items()), desc="datasets", unit="rec", disable=not progress
    ):
        ms = extract_market(
            merged_frames(sorted(recs)),
            symbol,
            category,
            market_cfg=cfg.market,
            features_cfg=cfg.features,
        )
        out.append(Recording(f"{symbol} {category} ({sorted(recs)[0].name})", sorted(recs), ms))
    return out


def digests(recs: list[Recording]) -> list[dict[str, str]]:
    """Path, sha256, symbol and category of every file of recs (a model's training data)."""
    from mmd.feeds.recording import file_sha256

    return [
        {
            "path": str(f),
            "sha256": file_sha256(f),
            "symbol": r.series.symbol,
            "category": r.series.category,
        }
        for r in recs
        for f in r.files
    ]


@dataclass(frozen=True, slots=True)
class Pooled:
    """Every recording's samples stacked; t_rel_ns is the time since its recording's start,
    so walk-forward blocks cut every recording at the same relative times."""

    x: F64Array
    y: npt.NDArray[Any]  # int64 0/1 (adverse) or float64 ticks (spread)
    aux: F64Array
    t_rel_ns: I64Array
    group: I64Array


def pool(datasets: list[Dataset], starts: list[int]) -> Pooled:
    """Stack datasets; starts[i] is recording i's first state time."""
    keep = [(i, d) for i, d in enumerate(datasets) if len(d)]
    if not keep:
        raise ConfigError(
            "train: the recordings gave no samples (too short for the label horizon, or no trades)"
        )
    return Pooled(
        x=np.concatenate([d.x for _, d in keep]),
        y=np.concatenate([d.y for _, d in keep]),
        aux=np.concatenate([d.aux for _, d in keep]),
        t_rel_ns=np.concatenate([d.t_ns - starts[i] for i, d in keep]),
        group=np.concatenate([np.full(len(d), i) for i, d in keep]),
    )

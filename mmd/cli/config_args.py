"""The config a command runs with: -c FILE (or ./config.toml, or the built-in one), or the one a
summary.json recorded (--config-from), then MMD_* variables and --set; and the recordings that
summary names. Reads files; runs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mmd.config import AppConfig
from mmd.errors import ConfigError


def load_args_config(args: argparse.Namespace) -> AppConfig:
    """The config of a command's -c / --config-from, --set and MMD_* arguments, validated."""
    from mmd.config import load_config

    sets = getattr(args, "set", None) or []
    if getattr(args, "config_from", None):
        if args.config:
            raise ConfigError("-c and --config-from: give one of them")
        return _load_recorded(args.config_from, sets)
    path = args.config
    if path is None and os.path.exists("config.toml"):
        path = "config.toml"
    return load_config(path, sets=sets)


def _read_summary(path: str) -> dict[str, object]:
    try:
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config-from {path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(f"--config-from {path}: not JSON ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
        raise ConfigError(
            f"--config-from {path}: no recorded `config` (a summary.json "
            "written by `mmd backtest --report`)"
        )
    return summary


def _load_recorded(path: str, sets: list[str]) -> AppConfig:
    """The config a summary.json recorded, then MMD_* variables and --set, validated."""
    from mmd.config import apply_env_overrides, apply_set_overrides, config_from_mapping

    table = dict(_read_summary(path)["config"])  # type: ignore[call-overload]
    table = apply_env_overrides(table, os.environ)
    return config_from_mapping(apply_set_overrides(table, sets))


def recorded_data(path: str) -> list[str]:
    """The recordings a summary.json names, each checked against its recorded sha256."""
    from mmd.feeds.recording import file_sha256

    recs = _read_summary(path).get("recordings")
    if not isinstance(recs, list) or not recs:
        raise ConfigError(f"--config-from {path}: no recorded `recordings`")
    out = []
    for r in recs:
        if not isinstance(r, dict) or "path" not in r:
            raise ConfigError(f"--config-from {path}: bad `recordings` entry {r!r}")
        p = Path(str(r["path"]))
        if not p.is_file():
            raise ConfigError(f"--config-from {path}: recording {p} does not exist")
        if r.get("sha256") and file_sha256(p) != r["sha256"]:
            raise ConfigError(
                f"--config-from {path}: {p} differs from the recorded one (sha256 mismatch)"
            )
        out.append(str(p))
    return out

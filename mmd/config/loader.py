"""Loading: config.toml, then MMD_* environment overrides, then `--set` items, validated into an
AppConfig; every error is one line naming the key. The only module that reads settings.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from mmd.config.root import AppConfig
from mmd.errors import ConfigError

ENV_PREFIX = "MMD_"


def _parse_env_value(raw: str) -> Any:
    """A TOML value if it parses as one (numbers, booleans, arrays), else the raw string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):  # not TOML, or nested beyond the stack
        return raw


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay MMD_<SECTION>__<KEY>[__<KEY>...] variables onto the decoded TOML table.

    Args:
        data: the TOML table (modified in place and returned).
        environ: usually os.environ.

    Returns:
        The same table with the overrides applied.
    """
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in parts):
            raise ConfigError(f"{name}: malformed override name")
        table = data
        for part in parts[:-1]:
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{name}: `{part}` is not a section")
            table = nxt
        table[parts[-1]] = _parse_env_value(raw)
    return data


def apply_set_overrides(data: dict[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """Overlay `--set section.key=value` items (command line) onto the decoded table.

    Values parse as in MMD_* variables (a TOML value when it is one, else the raw string);
    the result is validated like config.toml by the caller. Later items win.

    Args:
        data: the table after the file and the environment (modified in place and returned).
        items: `section.key=value` or `section.sub.key=value` strings.

    Raises:
        ConfigError: an item without `=` or with an empty key part, naming the item.
    """
    for item in items:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or any(not p.strip() for p in parts):
            raise ConfigError(f"--set {item}: expected section.key=value")
        table = data
        for part in parts[:-1]:
            nxt = table.setdefault(part.strip(), {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item}: `{part}` is not a section")
            table = nxt
        table[parts[-1].strip()] = _parse_env_value(raw.strip())
    return data


_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")


def _error_message(exc: msgspec.ValidationError) -> str:
    """Rewrite msgspec's `reason - at `$.x` - at `$.feed`` into `feed.x: reason`.

    A __post_init__ check names its own field (inner path); msgspec appends the outer path.
    """
    text = str(exc)
    parts = [m for m in _PATH_RE.findall(text) if m]
    key = ".".join(reversed(parts)).replace(".[", "[")
    reason = _PATH_RE.sub("", text).replace(" - ", "").rstrip(" -")
    if reason.startswith("Object contains unknown field"):
        field = re.search(r"`([^`]*)`", reason)
        unknown = field.group(1) if field else "?"
        key = f"{key}.{unknown}" if key else unknown
        reason = "unknown key"
    return f"{key or '<root>'}: {reason}"


def _check_finite(value: Any, key: str) -> None:
    """Refuse NaN and infinities anywhere in a decoded table, naming the key (TOML has `nan` and
    `inf`; a NaN fee or limit would otherwise reach the ledger and the kernels)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{key}[{i}]")


def config_from_mapping(data: dict[str, Any]) -> AppConfig:
    """Validate a decoded table into an AppConfig; raise ConfigError naming the bad key."""
    _check_finite(data, "")
    try:
        return msgspec.convert(data, type=AppConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(_error_message(exc)) from None


def load_config(
    path: str | Path | None, environ: Mapping[str, str] | None = None, sets: Sequence[str] = ()
) -> AppConfig:
    """Read config.toml (or defaults when path is None), apply env overrides, validate.

    Precedence: the file < MMD_* variables < `--set` items.

    Args:
        path: the TOML file, or None for the built-in defaults.
        environ: the environment to read MMD_* overrides from (default os.environ).
        sets: `--set section.key=value` items (apply_set_overrides).

    Returns:
        The validated config.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key, wrong type or out-of-range value;
            the message names the key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read config ({exc.strerror})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML ({exc})") from None
        except RecursionError:
            raise ConfigError(f"{p}: invalid TOML (nested too deeply)") from None
    data = apply_env_overrides(data, os.environ if environ is None else environ)
    return config_from_mapping(apply_set_overrides(data, sets))


def dump_config(cfg: AppConfig) -> str:
    """The effective config as TOML text (what `mmd check-config` prints)."""
    return msgspec.toml.encode(cfg).decode()

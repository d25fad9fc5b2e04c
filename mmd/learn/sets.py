"""`--set` items of the training commands: `key=value` training keys and `section.key=value`
config overrides."""

from __future__ import annotations

from typing import Any

import msgspec

from mmd.errors import ConfigError


def split_sets(
    sets: list[str], known: set[str], hint: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """Training keys (value as JSON, else the text) and the config overrides, as given.

    Args:
        sets: the `--set` items in command-line order.
        known: the training keys the command takes.
        hint: appended to the unknown-key message.

    Raises:
        ConfigError: an item without `=`, or an unknown training key.
    """
    values: dict[str, Any] = {}
    config_sets: list[str] = []
    for item in sets:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        if "." in key:
            config_sets.append(item)
            continue
        if key not in known:
            raise ConfigError(
                f"--set {key}: unknown training key (known: {', '.join(sorted(known))}{hint})"
            )
        try:
            values[key] = msgspec.json.decode(text)
        except msgspec.DecodeError:
            values[key] = text
    return values, config_sets

"""The search space: config keys by dotted name, their ranges, and configs with a trial's values.

Pure: tables in, tables out (no files; the TOML text is read by the caller). Owns no Optuna
state beyond turning a Param into `trial.suggest_*` calls.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

from mmd.errors import ConfigError

KINDS = ("int", "float", "categorical")
_SPEC_KEYS = {"low", "high", "log", "step", "choices", "type"}


@dataclass(frozen=True)
class Param:
    """One searched config key.

    Attributes:
        name: dotted config key, e.g. "strategy.gamma" or "strategy.calibration.window_s".
        kind: "int", "float" or "categorical".
        low, high: inclusive bounds (int/float).
        log: sample log-uniformly (low > 0).
        step: discretisation step (int/float; None = continuous float, 1 for int).
        choices: the values of a categorical parameter.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = field(default_factory=tuple)

    def suggest(self, trial: Any) -> Any:
        """The trial's value of this parameter (Optuna's suggest_* API)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def grid(self, points: int) -> list[Any]:
        """`points` values spanning the range (all of them for categorical or short int ranges),
        evenly in log space when log; float steps are respected."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            every = list(range(int(self.low), int(self.high) + 1, step))
            if len(every) <= points:
                return every
        if points < 2:
            return [self.low]
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            raw = [math.exp(a + (b - a) * i / (points - 1)) for i in range(points)]
        else:
            raw = [self.low + (self.high - self.low) * i / (points - 1) for i in range(points)]
        raw[0], raw[-1] = self.low, self.high  # exact ends (exp(log(x)) may drift)
        if self.kind == "int":
            step = int(self.step or 1)
            vals = sorted({int(self.low) + step * round((v - self.low) / step) for v in raw})
            return [v for v in vals if self.low <= v <= self.high]
        if self.step:
            grid = sorted({self.low + self.step * round((v - self.low) / self.step) for v in raw})
            return [min(v, self.high) for v in grid]
        return raw


def default_space(strategy: str) -> list[Param]:
    """The default space of a quote model. Sizes are in base units and scaled for BTC (lot
    0.001); give a --space file for other instruments."""
    space = [
        Param("strategy.gamma", "float", 1e-6, 1e-2, log=True),
        Param("strategy.order_size", "float", 0.001, 0.005, step=0.001),
        Param("strategy.levels", "int", 1, 3),
        Param("strategy.requote_tolerance_ticks", "int", 0, 5),
        Param("strategy.min_spread_bps", "float", 0.0, 5.0),
        Param("strategy.max_position", "float", 0.002, 0.02, log=True),
        Param("strategy.calibration.window_s", "float", 60.0, 600.0, log=True),
        Param("strategy.calibration.refit_s", "float", 1.0, 30.0, log=True),
    ]
    if strategy == "as":  # GLFT is the infinite-horizon model: no session
        space.append(Param("strategy.session_s", "float", 30.0, 900.0, log=True))
    return space


def parse_space(table: dict[str, Any], source: str) -> list[Param]:
    """Params from a decoded space file: `[space] "strategy.gamma" = {low=1e-5, high=1e-2,
    log=true}`; int when both bounds are ints (or type="int"), float otherwise (or
    type="float"), categorical with `choices=[...]`; optional `step`.

    Raises:
        ConfigError: naming the file and the key of a malformed entry.
    """
    body = table.get("space")
    if not isinstance(body, dict) or not body or set(table) - {"space"}:
        raise ConfigError(f'{source}: expected one [space] table of "section.key" = {{...}}')
    params = []
    for name, spec in body.items():
        where = f"{source}: {name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected {{low=..., high=...}} or {{choices=[...]}}")
        unknown = set(spec) - _SPEC_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        kind = spec.get("type")
        if kind is not None and kind not in KINDS:
            raise ConfigError(f"{where}: type must be one of {', '.join(KINDS)}")
        if "choices" in spec or kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            params.append(Param(name, "categorical", choices=tuple(choices)))
            continue
        low, high = spec.get("low"), spec.get("high")
        if (
            isinstance(low, bool)
            or isinstance(high, bool)
            or not isinstance(low, int | float)
            or not isinstance(high, int | float)
        ):
            raise ConfigError(f"{where}: low and high must be numbers")
        if kind is None:
            kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
        if not low < high:
            raise ConfigError(f"{where}: low must be < high")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise ConfigError(f"{where}: log needs low > 0")
        step = spec.get("step")
        if step is not None and (not isinstance(step, int | float) or step <= 0):
            raise ConfigError(f"{where}: step must be > 0")
        if step is not None and log:
            raise ConfigError(f"{where}: step and log do not combine")
        params.append(
            Param(
                name,
                kind,
                float(low),
                float(high),
                log=log,
                step=None if step is None else float(step),
            )
        )
    return params


def lookup(table: dict[str, Any], name: str) -> Any:
    """The value of a dotted key in a config table.

    Raises:
        ConfigError: naming the key when it is not a leaf of the table.
    """
    node: Any = table
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{name}: unknown config key")
        node = node[part]
    if isinstance(node, dict):
        raise ConfigError(f"{name}: is a section, not a key")
    return node


def with_params(table: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the config table with each dotted key set to its value. Int-valued
    keys of float fields stay as given (the config accepts ints for floats)."""
    out = _deep_copy(table)
    for name, value in params.items():
        node = out
        parts = name.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return out


def check_space(space: list[Param], table: dict[str, Any], validate: Any) -> None:
    """Every key exists in the config, and the bounds (or every choice) give a valid config.

    Args:
        validate: table -> config, raising ConfigError naming the key (config_from_mapping).
    """
    if not space:
        raise ConfigError("tune: the search space is empty")
    names = [p.name for p in space]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"tune: {', '.join(sorted(dupes))}: given twice")
    for p in space:
        lookup(table, p.name)
        values = (
            list(p.choices)
            if p.kind == "categorical"
            else [
                int(p.low) if p.kind == "int" else p.low,
                int(p.high) if p.kind == "int" else p.high,
            ]
        )
        for v in values:
            try:
                validate(with_params(table, {p.name: v}))
            except ConfigError as exc:
                raise ConfigError(f"search space {p.name} = {v!r}: {exc}") from None


def grid_params(space: list[Param], points: int, seed: int) -> list[dict[str, Any]]:
    """Every combination of the parameters' grid values, in an order shuffled by seed."""
    axes = [p.grid(points) for p in space]
    combos = [
        dict(zip([p.name for p in space], vals, strict=True)) for vals in itertools.product(*axes)
    ]
    random.Random(seed).shuffle(combos)
    return combos


def _deep_copy(table: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _deep_copy(v) if isinstance(v, dict) else (list(v) if isinstance(v, list) else v)
        for k, v in table.items()
    }

"""Environment overrides under hypothesis: every `MMD_<SECTION>__<KEY>` the config knows, with
hostile values as the environment delivers them (strings: TOML values, broken TOML, control
characters, huge numbers, wrong types), alone and several at once.

Each drawn environment is either accepted, and then the daemon `mmd run` builds from it is
built (hub, trader with its SQLite ledger, models) and closed, or refused with a ConfigError of
one line naming a real key (or the variable itself when the name is malformed). Names the config
does not know: `MMD_<A>__<B>` naming no key is refused like a typo in config.toml
(`a.b: unknown key`); an `MMD_` name without `__` is not an override and is ignored. A few
environments go through `mmd check-config` as a real process: exit 2, one line on stderr, no
traceback.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

# tests/ and tests/unit are on sys.path (conftest.py; pytest's rootdir-relative import)
from procs import base_env
from test_config_fuzz import KEYS, LEAVES, SECTIONS, TMP, invalid_values, valid_values

from mmd.config import AppConfig, load_config
from mmd.errors import ConfigError

# raw strings a variable may hold that are neither a TOML value nor a plain word
RAW_HOSTILE = [
    "",
    " ",
    "[",
    "]",
    "{",
    "{a=",
    "[1,",
    '"',
    "'",
    "'''",
    '"""',
    "=",
    "nan",
    "-nan",
    "+inf",
    "-0",
    "0x7fffffffffffffff",
    "0b1",
    "1e999",
    "-1e999",
    "1_000",
    "1__0",
    "9" * 40,
    "-" + "9" * 40,
    "1979-05-27",
    "07:32:00",
    "true",
    "True",
    "yes",
    "[[]]",
    "[{}]",
    "{}",
    "{x = 1}",
    '[1, "a"]',
    "\\",
    "\\n",
    "a\nb",
    "a\tb",
    "/proc/self\nx",
    "\u202e",
    "\u0661",
    "é",
    "x" * 5000,
    "[" * 600 + "]" * 600,
]


def _toml_value(value: Any) -> str:
    """A Python value as the TOML text an environment variable would carry."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = "".join(
            c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in value
        )
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise AssertionError(f"no TOML form for {value!r}")


def env_name(path: tuple[str, ...]) -> str:
    return "MMD_" + "__".join(p.upper() for p in path)


@st.composite
def env_value(draw: st.DrawFn, path: tuple[str, ...], t: Any) -> str:
    """A valid value, an invalid one (as TOML), a raw hostile string, or a valid value as a
    raw word (a number or list without TOML quoting, as a shell user writes it)."""
    how = draw(st.sampled_from(["valid", "valid", "invalid", "raw", "bare"]))
    if how == "raw":
        return draw(st.sampled_from(RAW_HOSTILE) | st.text(max_size=20))
    if how == "invalid":
        return _toml_value(draw(st.sampled_from(invalid_values(path, t))))
    value = draw(valid_values(path, t))
    return value if how == "bare" and isinstance(value, str) else _toml_value(value)


UNKNOWN = st.sampled_from(
    [
        "MMD_FEED__TYPO",
        "MMD_NOSUCH__KEY",
        "MMD_FEED__REPLAY__NOPE",
        "MMD_FEED__SYMBOLS__X",
        "MMD_FEED__",
        "MMD___FEED",
        "MMD_FEED____SYMBOLS",
        "MMD_feed__websocket",
        "MMD_TEST_FULL",
        "MMD_EVENT_CACHE",
        "MMD_SOMETHING",
        "MMD_",
        "MMD_\u00e9__X",
        "MMD_FEED__SYMBOLS\u0130",
    ]
)


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    """One to four known keys with drawn values, sometimes an unknown name, and the state and
    recording directories in the example's temporary directory unless drawn."""
    chosen = draw(
        st.lists(st.sampled_from(LEAVES), min_size=1, max_size=4, unique_by=lambda leaf: leaf[0])
    )
    env = {env_name(path): draw(env_value(path, t)) for path, t in chosen}
    if draw(st.integers(0, 4)) == 0:
        env[draw(UNKNOWN)] = draw(st.sampled_from(["1", "x", '"BTCUSDT"', "[]"]))
    env.setdefault("MMD_STATE__DIR", f'"{TMP}/state"')
    env.setdefault("MMD_RECORD__DIR", f'"{TMP}/rec"')
    env.setdefault("MMD_MODELS__DIR", f'"{TMP}/models"')
    return env


def _in_tmp(env: dict[str, str], tmp: str) -> dict[str, str]:
    return {k: v.replace(TMP, tmp) for k, v in env.items()}


def refusal_ok(message: str, env: dict[str, str]) -> bool:
    """One line naming a real key or section (`feed.typo: unknown key` names the key the
    variable spelled), or the malformed variable itself."""
    if "\n" in message or "\r" in message:
        return False
    head = message.split(":", 1)[0]
    if head in env:
        return True
    key = head.split("[", 1)[0]
    # what a variable spelled, and its leading sections (`nosuch: unknown key`)
    spelled = {
        ".".join(parts[:i])
        for n in env
        if "__" in n
        for parts in [n[4:].lower().split("__")]
        for i in range(1, len(parts) + 1)
    }
    return key in KEYS | SECTIONS | spelled


def build_daemon(cfg: AppConfig) -> None:
    """What `mmd run` builds before its tasks start (no sockets): then closed."""
    from mmd.app import Daemon

    daemon = Daemon(cfg, serve_http=False)
    if daemon.recorder is not None:
        daemon.recorder.close()
    if daemon.trader is not None and daemon.trader.ledger is not None:
        daemon.trader.ledger.close()


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(env=environments())
def test_env_overrides_are_accepted_and_build_or_refused_naming_the_key(
    env: dict[str, str],
) -> None:
    # in the example's directory: a drawn relative state or record dir is created there
    with tempfile.TemporaryDirectory() as d, contextlib.chdir(d):
        real = _in_tmp(env, d)
        try:
            cfg = load_config(None, environ=real)
        except ConfigError as exc:
            assert refusal_ok(str(exc), real), (str(exc), real)
            event("refused")
            return
        try:
            build_daemon(cfg)
        except ConfigError as exc:  # a [models] model that is not there: refused at start
            assert refusal_ok(str(exc), real), (str(exc), real)
            event("accepted, refused at start")
            return
        event("accepted, built")


@pytest.mark.parametrize(
    "name", ["MMD_TEST_FULL", "MMD_EVENT_CACHE", "MMD_SOMETHING", "MMD_", "MMD_FEED"]
)
def test_env_names_without_double_underscore_are_ignored(name: str) -> None:
    assert load_config(None, environ={name: "[broken"}) == load_config(None, environ={})


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("MMD_FEED__TYPO", "feed.typo"),
        ("MMD_NOSUCH__KEY", "nosuch"),
        ("MMD_FEED__REPLAY__NOPE", "feed.replay.nope"),
    ],
)
def test_env_unknown_keys_are_refused_naming_them(name: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={name: "1"})
    assert str(info.value) == f"{key}: unknown key"


# hand-picked refusals: (variable, value, the key the one-line message must start with)
CLI_CASES = [
    ("MMD_FEED__SYMBOLS", "[", "feed.symbols"),
    ("MMD_EXCHANGE__MAKER_FEE", "nan", "exchange.maker_fee"),
    ("MMD_STATE__DIR", "/proc/self\nx", "state.dir"),
    ("MMD_FEED__REPLAY__PATHS", '["ok", "/proc/a\\nb"]', "feed.replay.paths[1]"),
    ("MMD_FEED__", "1", "MMD_FEED__"),
    ("MMD_FEED__SYMBOLS__X", "1", "feed.symbols: Expected `array`"),
]


@pytest.mark.parametrize(("name", "value", "key"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_check_config_exits_2_with_one_line_naming_the_key(
    name: str, value: str, key: str, tmp_path: Path
) -> None:
    env = base_env(**{"MMD_STATE__DIR": str(tmp_path / "state"), name: value})
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "check-config"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, (r.stdout[-2000:], r.stderr[-2000:])
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"mmd: config error: {key}"), r.stderr
    assert "Traceback" not in r.stderr


def test_env_value_forms_round_trip() -> None:
    # the helper writes TOML that the loader reads back as the same value (else the fuzz above
    # would test the helper, not the config)
    from mmd.config.loader import _parse_env_value

    values = [
        1.5,
        -3,
        True,
        False,
        'a"b\\c\n\x01',
        ["x", 2],
        {"k": [1.0]},
        1e-300,
        2**62,
        math.inf,
        -math.inf,
        "",
    ]
    for value in values:
        assert _parse_env_value(_toml_value(value)) == value, value
    assert math.isnan(_parse_env_value(_toml_value(math.nan)))


DEEP = "[" * 2000 + "]" * 2000  # deeper than the TOML parser's recursion allows


def test_deeply_nested_values_are_refused_naming_the_key(tmp_path: Path) -> None:
    # the parser's RecursionError once escaped as a crash (exit 1 with a traceback)
    for load in (
        lambda: load_config(None, environ={"MMD_FEED__SYMBOLS": DEEP}),
        lambda: load_config(None, environ={}, sets=[f"feed.symbols={DEEP}"]),
    ):
        with pytest.raises(ConfigError) as info:
            load()
        assert str(info.value).startswith("feed.symbols: Expected `array`, got `str`")
    path = tmp_path / "config.toml"
    path.write_text(f"[feed]\nsymbols = {DEEP}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: invalid TOML (nested too deeply)"

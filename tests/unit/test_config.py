"""Config validation: every bad key is named; env overrides; the shipped config.toml is valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmd.config import AppConfig, load_config
from mmd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_config_shipped_file_equals_defaults() -> None:
    assert load_config(ROOT / "config.toml", environ={}) == AppConfig()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[feed]\nsymbolz = ['BTCUSDT']\n", "feed.symbolz"),
        ("[nosuch]\nx = 1\n", "nosuch"),
        ("[feed]\nsymbols = ['btc/usdt']\n", "feed.symbols[0]"),
        ("[feed]\nsymbols = []\n", "feed.symbols"),
        ("[feed]\nwebsocket = 'yes'\n", "feed.websocket"),
        ("[rest]\norderbook_interval_s = -1.0\n", "rest.orderbook_interval_s"),
        ("[rest]\nkline_interval_s = 0\n", "rest.kline_interval_s"),
        ("[metrics]\nport = 70000\n", "metrics.port"),
        ("[venue]\nrest_url = 'ftp://x'\n", "venue.rest_url"),
        ("[feed]\nbook_depth = 30\n", "feed.book_depth"),
        ("[feed.replay]\nspeed = -2.0\n", "feed.replay.speed"),
        ("[feed]\nsymbols = ['BTCUSDT', 'BTCUSDT']\n", "feed.symbols"),
    ],
)
def test_config_bad_value_raises_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p, environ={})
    assert str(info.value).split(":")[0] == key


def test_config_env_overrides_nested_keys_with_toml_values() -> None:
    cfg = load_config(None, environ={
        "MMD_FEED__SYMBOLS": '["BTCUSDT","ETHUSDT"]',
        "MMD_FEED__WEBSOCKET": "false",
        "MMD_VENUE__REST_URL": "http://127.0.0.1:8800",
        "MMD_FEED__REPLAY__SPEED": "4",
        "MMD_METRICS__PORT": "9999",
    })
    assert cfg.feed.symbols == ["BTCUSDT", "ETHUSDT"]
    assert cfg.feed.websocket is False
    assert cfg.venue.rest_url == "http://127.0.0.1:8800"
    assert cfg.feed.replay.speed == 4.0 and cfg.metrics.port == 9999


def test_config_env_unknown_key_raises() -> None:
    with pytest.raises(ConfigError, match=r"^feed\.bogus: unknown key"):
        load_config(None, environ={"MMD_FEED__BOGUS": "1"})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[feed]\nsurprise = 1\n", "feed.surprise"),
        ("[ws]\nping_interval_s = 'often'\n", "ws.ping_interval_s"),
        ("[feed]\nsymbols = ['bad symbol']\n", "feed.symbols[0]"),
        ("[rest]\ntrades_interval_s = -5.0\n", "rest.trades_interval_s"),
    ],
)
def test_cli_check_config_bad_key_exits_2_with_one_line(
    tmp_path: Path, text: str, key: str
) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    r = subprocess.run([sys.executable, "-m", "mmd", "check-config", "-c", str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in r.stderr


def test_cli_check_config_prints_effective_config(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mmd", "check-config", "-c",
                        str(ROOT / "config.toml")],
                       capture_output=True, text=True, timeout=60,
                       env={"MMD_FEED__SYMBOLS": '["ETHUSDT"]', "PATH": ""})
    assert r.returncode == 0, r.stderr
    assert 'symbols = [\n    "ETHUSDT",\n]' in r.stdout or '"ETHUSDT"' in r.stdout


def test_cli_bad_argument_exits_2() -> None:
    r = subprocess.run([sys.executable, "-m", "mmd", "run", "--feed", "nowhere"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1

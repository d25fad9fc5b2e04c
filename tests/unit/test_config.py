"""Config validation: every bad key is named; env overrides; the shipped config.toml is valid."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mmd.config import RING_BUDGET_BYTES, AppConfig, config_from_mapping, load_config
from mmd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_config_shipped_file_equals_defaults() -> None:
    assert load_config(ROOT / "config.toml", environ={}) == AppConfig()


def _key_differences(table: dict[str, Any], struct: msgspec.Struct, prefix: str) -> list[str]:
    """Every way a TOML table differs from a config Struct: keys missing from the table, keys
    the Struct lacks, and values unlike the Struct's (default) value; recursive."""
    out = []
    names = {f.name for f in msgspec.structs.fields(struct)}
    for name in sorted(names - table.keys()):
        out.append(f"{prefix}{name}: missing from config.toml")
    for name in sorted(table.keys() - names):
        out.append(f"{prefix}{name}: not a config field")
    for name in sorted(names & table.keys()):
        default, value = getattr(struct, name), table[name]
        if isinstance(default, msgspec.Struct):
            if isinstance(value, dict):
                out.extend(_key_differences(value, default, f"{prefix}{name}."))
            else:
                out.append(f"{prefix}{name}: should be a table")
        elif value != default or type(value) is not type(default):
            out.append(f"{prefix}{name}: {value!r} in config.toml, default {default!r}")
    return out


def test_config_toml_lists_every_key_with_its_default() -> None:
    table = tomllib.loads((ROOT / "config.toml").read_text())
    assert _key_differences(table, AppConfig(), "") == []


def test_config_key_comparison_fails_on_an_empty_or_partial_file() -> None:
    # the comparison itself must notice a file that lists nothing, or misses one key
    assert "feed: missing from config.toml" in _key_differences({}, AppConfig(), "")
    table = tomllib.loads((ROOT / "config.toml").read_text())
    del table["state"]["snapshot_interval_s"]
    table["risk"]["size_scale_power"] = 0.0
    table["exchange"]["maker_fee"] = 0.0
    assert _key_differences(table, AppConfig(), "") == [
        "exchange.maker_fee: 0.0 in config.toml, default 0.0002",
        "risk.size_scale_power: not a config field",
        "state.snapshot_interval_s: missing from config.toml",
    ]


def test_config_toml_every_key_has_a_comment() -> None:
    # each key line sits in a block (no blank line) that a comment line starts
    lines = (ROOT / "config.toml").read_text().splitlines()
    commented = False
    bare = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("["):
            commented = False
        elif text.startswith("#"):
            commented = True
        elif not commented:
            bare.append(text)
    assert bare == []


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
        # non-finite numbers, anywhere
        ("[exchange]\nmaker_fee = nan\n", "exchange.maker_fee"),
        ("[exchange]\ntaker_fee = -inf\n", "exchange.taker_fee"),
        ("[strategy]\norder_size = inf\n", "strategy.order_size"),
        ("[strategy.calibration]\nfallback_sigma = nan\n", "strategy.calibration.fallback_sigma"),
        ("[risk]\nmax_loss_per_day = inf\n", "risk.max_loss_per_day"),
        # values that used to pass check-config and then crash `mmd run`
        ("[strategy]\norder_size = 1e300\n", "strategy.order_size"),
        ("[strategy]\nmax_position = 1e300\n", "strategy.max_position"),
        ("[feed]\nstale_after_s = 1e300\n", "feed.stale_after_s"),
        ("[state]\nsnapshot_interval_s = 1e300\n", "state.snapshot_interval_s"),
        ("[exchange]\nentry_latency_ms = 1e300\n", "exchange.entry_latency_ms"),
        ("[exchange]\ncancel_latency_ms = -1e300\n", "exchange.cancel_latency_ms"),
        ("[exchange]\nmaker_fee = 0.5\n", "exchange.maker_fee"),
        ("[market]\ntrade_capacity = 1073741824\n", "market.trade_capacity"),  # 32 GiB
        ("[market]\nmid_capacity = 0\n", "market.mid_capacity"),
        ("[strategy.calibration]\nwindow_s = 0.1\n", "strategy.calibration.window_s"),
        (
            "[strategy.calibration]\nmin_trades = 9223372036854775808\n",
            "strategy.calibration.min_trades",
        ),
        ("[feed.synthetic]\nseed = -1\n", "feed.synthetic.seed"),
        ("[feed.synthetic]\nframe_rate_hz = 1e-300\n", "feed.synthetic.frame_rate_hz"),
        ("[feed.synthetic]\ntick_size = 1e-8\n", "feed.synthetic.mid_price"),  # 6.5e12 ticks
        ("[rest]\ntimeout_s = 1e300\n", "rest.timeout_s"),
        ("[strategy]\nrequote_interval_s = 1e-9\n", "strategy.requote_interval_s"),
        # paths
        ("[state]\ndir = ''\n", "state.dir"),
        ("[state]\ndir = '/proc/self'\n", "state.dir"),
        ("[state]\ndir = '/tmp/../sys/x'\n", "state.dir"),
        ("[record]\ndir = '/dev/shm/rec'\n", "record.dir"),
        ("[models]\ndir = '/dev'\n", "models.dir"),
        ('[record]\ndir = "a\\u0000b"\n', "record.dir"),
        ("[feed.replay]\npaths = ['rec', '/proc/1/mem']\n", "feed.replay.paths[1]"),
        ("[feed.replay]\npaths = ['']\n", "feed.replay.paths[0]"),
        # URLs
        ("[venue]\nrest_url = 'http://'\n", "venue.rest_url"),
        ("[venue]\nrest_url = 'wss://api.bybit.com'\n", "venue.rest_url"),
        ("[venue]\nrest_url = 'https://api.bybit.com?x=1'\n", "venue.rest_url"),
        ("[venue]\nrest_url = 'https://api bybit.com'\n", "venue.rest_url"),
        ("[venue]\nws_url = 'https://stream.bybit.com'\n", "venue.ws_url"),
        ("[venue]\nws_url = 'ws://127.0.0.1:99999/x'\n", "venue.ws_url"),
        ("[venue]\nws_url = 'ws://[::1/x'\n", "venue.ws_url"),
        ("[metrics]\nhost = ''\n", "metrics.host"),
        ("[metrics]\nhost = 'two words'\n", "metrics.host"),
        # gone: it did nothing
        ("[risk]\nsize_scale_power = 1.0\n", "risk.size_scale_power"),
    ],
)
def test_config_bad_value_raises_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p, environ={})
    assert str(info.value).split(":")[0] == key


def test_config_env_overrides_nested_keys_with_toml_values() -> None:
    cfg = load_config(
        None,
        environ={
            "MMD_FEED__SYMBOLS": '["BTCUSDT","ETHUSDT"]',
            "MMD_FEED__WEBSOCKET": "false",
            "MMD_VENUE__REST_URL": "http://127.0.0.1:8800",
            "MMD_FEED__REPLAY__SPEED": "4",
            "MMD_METRICS__PORT": "9999",
        },
    )
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
        ("[exchange]\nmaker_fee = nan\n", "exchange.maker_fee"),
        ("[state]\ndir = '/proc/mmd'\n", "state.dir"),
    ],
)
def test_cli_check_config_bad_key_exits_2_with_one_line(
    tmp_path: Path, text: str, key: str
) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "check-config", "-c", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in r.stderr


def test_cli_check_config_prints_effective_config(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "check-config", "-c", str(ROOT / "config.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MMD_FEED__SYMBOLS": '["ETHUSDT"]', "PATH": ""},
    )
    assert r.returncode == 0, r.stderr
    assert 'symbols = [\n    "ETHUSDT",\n]' in r.stdout or '"ETHUSDT"' in r.stdout


def test_cli_bad_argument_exits_2() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "run", "--feed", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "text",
    [
        "[venue]\nrest_url = 'http://127.0.0.1:8800'\nws_url = 'ws://[::1]:8800/v5/public/linear'\n",
        "[state]\ndir = 'relative/state'\n[record]\ndir = '/tmp/mmd-rec'\n",
        "[exchange]\nmaker_fee = -0.0001\nentry_latency_ms = 0.0\ncancel_latency_ms = 60000\n",
        "[market]\nmid_capacity = 1048576\ntrade_capacity = 1048576\nkline_capacity = 65536\n",
        "[feed.synthetic]\ntick_size = 1e-8\nmid_price = 0.5\nlot_size = 1e-8\n",
    ],
)
def test_config_values_at_the_bounds_are_accepted(tmp_path: Path, text: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    load_config(p, environ={})


def test_config_ring_memory_is_bounded_across_symbols() -> None:
    # 21 symbols x (16 + 32 bytes) x 2^20 rows + 21 x 48 x 4096 = 1012 MiB: accepted;
    # 22 symbols: 1060 MiB > 1024 MiB: refused, naming the ring that costs most
    big = {"mid_capacity": 1 << 20, "trade_capacity": 1 << 20}
    syms = [f"S{i:02d}USDT" for i in range(22)]
    ok = config_from_mapping({"feed": {"symbols": syms[:21]}, "market": big})
    assert ok.market.ring_bytes() * 21 <= RING_BUDGET_BYTES
    with pytest.raises(ConfigError, match=r"^market\.trade_capacity: .*1060 MiB"):
        config_from_mapping({"feed": {"symbols": syms}, "market": big})


def test_config_synthetic_feed_load_is_bounded() -> None:
    # 5 symbols x 20 Hz = 100 frames/s: accepted; 6 x 20 = 120: refused (the generator runs in
    # the event loop); the same table with the venue as source is fine
    syms = [f"S{i}USDT" for i in range(6)]
    config_from_mapping({"feed": {"source": "synthetic", "symbols": syms[:5]}})
    config_from_mapping({"feed": {"source": "bybit", "symbols": syms}})
    with pytest.raises(ConfigError, match=r"^feed\.synthetic\.frame_rate_hz: 6 symbols x 20 Hz"):
        config_from_mapping({"feed": {"source": "synthetic", "symbols": syms}})


def test_cli_run_feed_synthetic_over_its_load_exits_2_with_one_line(tmp_path: Path) -> None:
    # `--feed synthetic` changes the source after the file was validated: still exit 2, one line
    p = tmp_path / "c.toml"
    p.write_text("[feed]\nsymbols = ['A1USDT', 'A2USDT', 'A3USDT', 'A4USDT', 'A5USDT', 'A6USDT']\n")
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "run", "--feed", "synthetic", "-c", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "feed.synthetic.frame_rate_hz" in lines[0], r.stderr


@pytest.mark.parametrize(
    ("name", "raw", "key"),
    [
        ("MMD_EXCHANGE__MAKER_FEE", "nan", "exchange.maker_fee"),
        ("MMD_STRATEGY__ORDER_SIZE", "inf", "strategy.order_size"),
        ("MMD_STATE__DIR", "/proc/mmd", "state.dir"),
        ("MMD_MARKET__MID_CAPACITY", "9999999999", "market.mid_capacity"),
    ],
)
def test_config_env_override_is_bounded_like_the_file(name: str, raw: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={name: raw})
    assert str(info.value).split(":")[0] == key

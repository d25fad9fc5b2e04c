"""`--set section.key=value`: validated like config.toml; precedence file < MMD_* < --set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmd.config import apply_set_overrides, load_config
from mmd.errors import ConfigError


def test_set_wins_over_env_which_wins_over_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[strategy]\ngamma = 0.1\nsession_s = 100.0\nwarmup_s = 3.0\n")
    env = {"MMD_STRATEGY__GAMMA": "0.2", "MMD_STRATEGY__SESSION_S": "200.0"}
    cfg = load_config(p, env, sets=["strategy.gamma=0.3"])
    # gamma: all three give it, --set wins; session_s: file and env, env wins; warmup_s: file
    assert (cfg.strategy.gamma, cfg.strategy.session_s, cfg.strategy.warmup_s) == (0.3, 200.0, 3.0)


def test_set_parses_toml_values_and_nested_sections() -> None:
    cfg = load_config(
        None,
        {},
        sets=[
            'feed.symbols=["ETHUSDT", "SOLUSDT"]',
            "feed.replay.speed=2",
            "logs.level=debug",
            "strategy.calibration.min_trades=7",
        ],
    )
    assert cfg.feed.symbols == ["ETHUSDT", "SOLUSDT"]
    assert cfg.feed.replay.speed == 2.0
    assert cfg.logs.level == "debug"
    assert cfg.strategy.calibration.min_trades == 7


def test_later_set_wins() -> None:
    cfg = load_config(None, {}, sets=["strategy.gamma=0.5", "strategy.gamma=0.25"])
    assert cfg.strategy.gamma == 0.25


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ("strategy.gama=1", "strategy.gama: unknown key"),
        ("strategy.gamma=-1", "strategy.gamma:"),
        ("strategy.gamma=abc", "strategy.gamma:"),
        ("nosuch.key=1", "nosuch"),
        ("gamma=1", "--set gamma=1: expected section.key=value"),
        ("strategy.gamma", "--set strategy.gamma: expected section.key=value"),
        ("strategy..gamma=1", "expected section.key=value"),
        ("strategy.gamma.x=1", "strategy.gamma"),
    ],
)
def test_bad_set_names_the_key(item: str, named: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {}, sets=[item])
    assert named in str(exc.value)


def test_apply_set_overrides_leaves_other_keys() -> None:
    data = {"strategy": {"gamma": 0.1, "model": "as"}}
    assert apply_set_overrides(data, ["strategy.gamma=0.2"]) == {
        "strategy": {"gamma": 0.2, "model": "as"}
    }


@pytest.mark.parametrize("command", ["run", "backtest", "check-config"])
def test_cli_bad_set_exits_2_with_one_line_naming_the_key(command: str, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "mmd", command, "--set", "strategy.gama=1"]
    if command == "backtest":
        args.append(str(tmp_path))
    r = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "strategy.gama" in lines[0] and "Traceback" not in r.stderr


def test_cli_check_config_shows_the_set_value(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mmd", "check-config", "--set", "strategy.gamma=0.125"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "gamma = 0.125" in r.stdout

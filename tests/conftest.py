"""Shared fixtures: where the real data lives, one numba cache, converted recordings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
# every test process and every daemon it starts share one compile cache
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CRYPTOFEED = DATA / "market" / "bybit_v5_linear_spot_2026-08-09_cryptofeed" / "BYBIT.jsonl"
BINANCE_BTC = sorted((DATA / "market" / "binance_usdm_btcusdt_2024-07-18_19").glob("*.gz"))
BINANCE_ETH = sorted((DATA / "market" / "binance_usdm_ethusdt_2024-07-18_19").glob("*.gz"))
BINANCE_BTC_2023 = sorted((DATA / "market" / "binance_usdm_btcusdt_2023-04-04_05").glob("*.gz"))


def need(path: Path | list[Path]) -> None:
    """Skip the test with a clear reason when the shared data is absent."""
    paths = path if isinstance(path, list) else [path]
    if not paths or not all(p.exists() for p in paths):
        pytest.skip(
            f"real data not present ({paths[0] if paths else 'binance folder'}): "
            "run with ../shared/data beside the repo"
        )


@pytest.fixture(scope="session")
def cryptofeed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real 44 s Bybit V5 capture, split into one recording per (category, symbol)."""
    need(CRYPTOFEED)
    from mmd.feeds.convert.cryptofeed import convert_cryptofeed

    out = tmp_path_factory.mktemp("cryptofeed")
    convert_cryptofeed(CRYPTOFEED, out, progress=False)
    return out


@pytest.fixture(scope="session")
def binance_btc_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Binance USD-M BTCUSDT 2024-07-18/19 recording as Bybit-shaped frames."""
    need(BINANCE_BTC)
    from mmd.feeds.convert.binance_usdm import convert_binance_usdm

    out = tmp_path_factory.mktemp("binance_btc")
    (path,) = convert_binance_usdm(BINANCE_BTC, out, progress=False)
    return path


@pytest.fixture(scope="session")
def binance_eth_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Binance USD-M ETHUSDT 2024-07-18/19 recording as Bybit-shaped frames."""
    need(BINANCE_ETH)
    from mmd.feeds.convert.binance_usdm import convert_binance_usdm

    out = tmp_path_factory.mktemp("binance_eth")
    (path,) = convert_binance_usdm(BINANCE_ETH, out, progress=False)
    return path


@pytest.fixture(scope="session")
def binance_btc_2023_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Binance USD-M BTCUSDT 2023-04-04/05 recording (older collector format)."""
    need(BINANCE_BTC_2023)
    from mmd.feeds.convert.binance_usdm import convert_binance_usdm

    out = tmp_path_factory.mktemp("binance_btc_2023")
    (path,) = convert_binance_usdm(BINANCE_BTC_2023, out, progress=False)
    return path

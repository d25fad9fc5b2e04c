"""The state dir belongs to one run: `mmd run` as a real process against ledgers of other runs,
of another source, with a bad row, or longer than the replay; each exits 2 with one line saying
which and how to proceed, and never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from procs import base_env

from mmd.model.codes import BUY
from mmd.model.events import SubmitOrder
from mmd.model.instrument import Instrument
from mmd.trading.ledger import Ledger, RunIdentity, ledger_path

pytestmark = pytest.mark.slow

BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")


def _run(state: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    full = base_env(
        MMD_STATE__DIR=str(state), MMD_METRICS__PORT="0", MMD_FEED__SYMBOLS='["BTCUSDT"]', **env
    )
    return subprocess.run(
        [sys.executable, "-m", "mmd", "run", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _one_state_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("mmd: state error: ")
    assert "MMD_STATE__DIR" in lines[0]
    return lines[0]


def test_state_dir_removed_symbol_exits_2(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ident = RunIdentity(source="synthetic", category="linear", symbols=["BTCUSDT", "ETHUSDT"])
    Ledger.open(ledger_path(state, "synthetic"), identity=ident).close()
    line = _one_state_error(_run(state, "--feed", "synthetic"))
    assert "symbols is ['BTCUSDT', 'ETHUSDT'] there, ['BTCUSDT'] now" in line


def test_state_dir_per_source_and_a_synthetic_ledger_under_replay_exits_2(
    binance_btc_rec: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    ident = RunIdentity(source="synthetic", category="linear", symbols=["BTCUSDT"])
    # the default layout keeps sources apart: <dir>/synthetic and <dir>/replay
    assert ledger_path(state, "synthetic") != ledger_path(state, "replay")
    # an operator copies a synthetic run's ledger where the replay's goes
    Ledger.open(ledger_path(state, "replay"), identity=ident).close()
    line = _one_state_error(
        _run(state, "--feed", "replay", MMD_FEED__REPLAY__PATHS=json.dumps([str(binance_btc_rec)]))
    )
    assert "source is synthetic there, replay now" in line


def test_state_dir_bad_row_exits_2_with_recovery_hint(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = ledger_path(state, "synthetic")
    ident = RunIdentity(source="synthetic", category="linear", symbols=["BTCUSDT"])
    with Ledger.open(path, identity=ident) as led:
        led.journal(
            SubmitOrder(
                client_order_id="a", symbol="BTCUSDT", side=BUY, px_ticks=650_000, qty_lots=1
            ),
            ts_ns=1,
        )
    import sqlite3

    con = sqlite3.connect(path)  # what a NaN used to become in the body: null
    con.execute("UPDATE events SET body = replace(body, '650000', 'null') WHERE seq = 1")
    con.commit()
    con.close()
    line = _one_state_error(_run(state, "--feed", "synthetic", timeout=180))
    assert f"ledger row 1 in {path} is invalid" in line and "move" in line


def test_replay_over_a_longer_foreign_journal_exits_2(
    binance_btc_rec: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    env = {
        "MMD_FEED__REPLAY__PATHS": json.dumps([str(binance_btc_rec)]),
        "MMD_STRATEGY__WARMUP_S": "5",
    }
    first = _run(state, "--feed", "replay", timeout=300, **env)
    assert first.returncode == 0, first.stderr[-2000:]
    path = ledger_path(state, "replay")
    with Ledger.open(path) as led:
        n = led.event_count()
        # the same recording, but the journal goes on past what this replay produces
        led.journal(
            SubmitOrder(
                client_order_id="foreign", symbol="BTCUSDT", side=BUY, px_ticks=650_000, qty_lots=1
            ),
            ts_ns=1,
        )
    assert n > 10
    line = _one_state_error(_run(state, "--feed", "replay", timeout=300, **env))
    assert f"reproducing {n} of the {n + 1} items" in line
    # the same replay over its own journal still resumes cleanly once the item is gone
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("DELETE FROM events WHERE client_order_id = 'foreign'")
    con.commit()
    con.close()
    again = _run(state, "--feed", "replay", timeout=300, **env)
    assert again.returncode == 0, again.stderr[-2000:]


def test_mmd_risk_on_a_missing_ledger_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    proc = subprocess.run(
        [sys.executable, "-m", "mmd", "risk", "status", "--state", str(missing)],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"mmd: state error: no ledger at {missing}/ledger.sqlite"
    assert not missing.exists()

"""The SQLite (WAL) ledger: journal of commands, order events, fills, funding and snapshots,
with run identity and checkpoints, under `[state] dir`/<source>/ledger.sqlite (see Ledger)."""

from mmd.trading.ledger.records import (
    Checkpoint,
    Journaled,
    OrderState,
    RecordingDigest,
    Restored,
    RiskReset,
    RunIdentity,
)
from mmd.trading.ledger.schema import (
    LEDGER_FILE,
    SCHEMA_VERSION,
    TOTAL_SYMBOL,
    ledger_path,
)
from mmd.trading.ledger.store import Ledger

__all__ = [
    "LEDGER_FILE",
    "SCHEMA_VERSION",
    "TOTAL_SYMBOL",
    "Checkpoint",
    "Journaled",
    "Ledger",
    "OrderState",
    "RecordingDigest",
    "Restored",
    "RiskReset",
    "RunIdentity",
    "ledger_path",
]

"""Ledger: real SQLite files; journal + restore, idempotent fills, WAL, SIGKILL durability."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

from mmd.errors import InvariantViolation
from mmd.model.codes import BUY, SELL
from mmd.model.events import (
    MAKER,
    TAKER,
    CancelOrder,
    FundingPaid,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from mmd.model.instrument import Instrument
from mmd.trading.ledger import LEDGER_FILE, Ledger, Restored
from mmd.trading.orders import Orders, OrderStatus
from mmd.trading.portfolio import Portfolio
from mmd.trading.risk import HaltState, RiskGate

ROOT = Path(__file__).resolve().parents[3]
BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
SYM = BTC.symbol


def _open(path: Path) -> Ledger:
    """A ledger that knows BTC's steps (every fill is stored with them)."""
    led = Ledger.open(path)
    led.note_instrument(BTC)
    return led


def sub(coid: str, side: int = BUY, px: int = 650_000, qty: int = 5) -> SubmitOrder:
    return SubmitOrder(client_order_id=coid, symbol=SYM, side=side, px_ticks=px, qty_lots=qty)


def acc(cmd: SubmitOrder, ts: int = 1) -> OrderAccepted:
    return OrderAccepted(
        client_order_id=cmd.client_order_id,
        symbol=SYM,
        side=cmd.side,
        px_ticks=cmd.px_ticks,
        qty_lots=cmd.qty_lots,
        ts_exch_ns=ts,
    )


def fill(
    fid: str, coid: str, side: int, px: int, qty: int, leaves: int, fee: float = 0.01, ts: int = 2
) -> OrderFilled:
    return OrderFilled(
        fill_id=fid,
        client_order_id=coid,
        symbol=SYM,
        side=side,
        px_ticks=px,
        qty_lots=qty,
        leaves_lots=leaves,
        liquidity=MAKER,
        fee_quote=fee,
        ts_exch_ns=ts,
    )


class App:
    """The caller's side of the write-ahead rule: journal, then apply if new."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.oms = Orders()
        self.pf = Portfolio([BTC], initial_cash_quote=1000.0)

    def send(self, cmd: SubmitOrder | CancelOrder, now_ns: int) -> None:
        self.ledger.journal(cmd, ts_ns=now_ns)
        self.oms.on_command(cmd)

    def receive(self, ev: OrderAccepted | OrderRejected | OrderFilled | OrderCanceled) -> None:
        if not self.ledger.journal(ev):
            return
        self.oms.on_event(ev)
        if isinstance(ev, OrderFilled):
            self.pf.apply_fill(ev, BTC)

    def fund(self, ev: FundingPaid) -> None:
        if self.ledger.journal(ev):
            self.pf.apply_funding(ev)


def rebuild(restored: Restored) -> Portfolio:
    pf = Portfolio([BTC], initial_cash_quote=1000.0)
    for f in restored.fills:
        pf.apply_fill(f, BTC)
    for fu in restored.funding:
        pf.apply_funding(fu)
    return pf


def run_session(app: App) -> None:
    a, b, c, d, e = (
        sub("a", BUY, 649_990, 5),
        sub("b", SELL, 650_010, 4),
        sub("c", BUY, 649_980, 3),
        sub("d", SELL, 650_500, 2),
        sub("e", BUY, 640_000, 1),
    )
    for i, cmd in enumerate((a, b, c, d, e)):
        app.send(cmd, now_ns=i)
    for cmd in (a, b, c, d):
        app.receive(acc(cmd))
    app.receive(fill("f1", "a", BUY, 649_990, 2, 3))
    app.receive(fill("f1", "a", BUY, 649_990, 2, 3))  # venue repeats a fill: ignored
    app.receive(fill("f2", "b", SELL, 650_010, 4, 0, fee=-0.02))
    app.receive(fill("f3", "a", BUY, 649_990, 1, 2, ts=5))
    app.send(CancelOrder(client_order_id="c", symbol=SYM), now_ns=10)
    app.receive(OrderCanceled(client_order_id="c", symbol=SYM, ts_exch_ns=11))
    app.send(CancelOrder(client_order_id="d", symbol=SYM), now_ns=12)  # ack still in flight
    app.fund(
        FundingPaid(
            funding_id="fu1",
            symbol=SYM,
            rate=0.0001,
            position_lots=-1,
            mark_px=65_000.0,
            amount_quote=0.0065,
            ts_exch_ns=20,
        )
    )
    app.fund(
        FundingPaid(
            funding_id="fu1",
            symbol=SYM,
            rate=0.0001,
            position_lots=-1,
            mark_px=65_000.0,
            amount_quote=0.0065,
            ts_exch_ns=20,
        )
    )


def test_ledger_open_enables_wal_mode(tmp_path: Path) -> None:
    _open(tmp_path / "x" / "l.sqlite").close()
    conn = sqlite3.connect(tmp_path / "x" / "l.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    conn.close()


def test_ledger_open_directory_uses_ledger_file(tmp_path: Path) -> None:
    with _open(tmp_path) as led:
        assert led.path == tmp_path / LEDGER_FILE
    assert (tmp_path / LEDGER_FILE).exists()


def test_ledger_journal_is_committed_before_return(tmp_path: Path) -> None:
    with _open(tmp_path) as led:
        assert led.journal(fill("f1", "a", BUY, 100, 1, 0))
        # another connection (another process after a crash) sees it already
        other = sqlite3.connect(tmp_path / LEDGER_FILE)
        assert other.execute("SELECT fill_id FROM fills").fetchall() == [("f1",)]
        other.close()


def test_ledger_duplicate_fill_returns_false_and_is_stored_once(tmp_path: Path) -> None:
    with _open(tmp_path) as led:
        f = fill("f1", "a", BUY, 100, 1, 0)
        assert led.journal(f) is True
        assert led.journal(f) is False
        assert led.journal(msgspec.structs.replace(f, liquidity=TAKER)) is False
        assert led.fill_count() == 1
        assert led.restore().fills == [f]


def test_ledger_journal_restore_rebuilds_same_portfolio_and_orders(tmp_path: Path) -> None:
    with _open(tmp_path) as led:
        app = App(led)
        run_session(app)
        app.pf.mark(SYM, 650_100)
        before = app.pf.snapshot(99)
        before_orders = app.oms.orders()
    with _open(tmp_path) as led:
        restored = led.restore()
    assert [f.fill_id for f in restored.fills] == ["f1", "f2", "f3"]
    assert [f.funding_id for f in restored.funding] == ["fu1"]
    pf = rebuild(restored)
    pf.mark(SYM, 650_100)
    assert pf.snapshot(99) == before
    assert pf.position_lots(SYM) == -1
    # a: partially filled, d: cancel in flight; e never acknowledged; b filled, c canceled
    assert {o.client_order_id: o.status for o in restored.open_orders} == {
        "a": OrderStatus.PARTIALLY_FILLED,
        "d": OrderStatus.PENDING_CANCEL,
    }
    assert [(o.client_order_id, o.leaves_lots) for o in restored.open_orders] == [
        (o.client_order_id, o.leaves_lots)
        for o in before_orders
        if o.status is not OrderStatus.PENDING_NEW
    ]
    assert restored.in_flight_ids == ["e"]


def test_ledger_batch_commits_together_and_rolls_back_on_error(tmp_path: Path) -> None:
    with _open(tmp_path) as led:
        with led.batch():
            assert led.journal(fill("f1", "a", BUY, 100, 1, 1))
            assert led.journal(fill("f2", "a", BUY, 100, 1, 0))
            assert not led.journal(fill("f1", "a", BUY, 100, 1, 1))  # dup inside the batch
        assert led.fill_count() == 2
        with pytest.raises(RuntimeError), led.batch():
            led.journal(fill("f3", "b", BUY, 100, 1, 0))
            led.set_meta("k", "v")
            raise RuntimeError("boom")
        assert led.fill_count() == 2 and led.get_meta("k") is None
        with pytest.raises(InvariantViolation), led.batch():
            led.close()


def test_ledger_snapshot_restore_returns_latest(tmp_path: Path) -> None:
    pf = Portfolio([BTC], initial_cash_quote=500.0)
    with _open(tmp_path) as led:
        assert led.restore().last_snapshot is None
        led.snapshot(pf.snapshot(1))
        pf.apply_fill(fill("f1", "a", SELL, 650_000, 3, 0, fee=0.05), BTC)
        pf.mark(SYM, 649_000)
        led.snapshot(pf.snapshot(2))
    with _open(tmp_path) as led:
        last = led.restore().last_snapshot
    assert last is not None
    want = pf.snapshot(2)
    assert last.ts_ns == 2 and last.positions == want.positions
    assert last.equity_quote == want.equity_quote
    assert last.cash_quote == pytest.approx(want.cash_quote)
    assert last.total_pnl_quote == pytest.approx(want.total_pnl_quote)


def test_ledger_meta_and_models_survive_reopen(tmp_path: Path) -> None:
    gate = RiskGate(__import__("mmd.config").config.RiskConfig(max_loss_per_day=10.0), 0.01, [BTC])
    gate.on_pnl(5, -11.0)
    assert gate.halt_state is not None
    with _open(tmp_path) as led:
        led.set_meta("kill_switch", msgspec.json.encode(gate.halt_state).decode())
        led.set_meta("replay_cursor", "42")
        led.set_meta("replay_cursor", "43")
        led.set_meta("gone", "x")
        led.delete_meta("gone")
        led.record_model("fill_prob", "v3", "models/fill_prob/v3.npz", 7)
    with _open(tmp_path) as led:
        restored = led.restore()
    assert restored.meta["replay_cursor"] == "43" and "gone" not in restored.meta
    assert restored.meta["schema_version"] == "2"
    state = msgspec.json.decode(restored.meta["kill_switch"], type=HaltState)
    again = RiskGate(__import__("mmd.config").config.RiskConfig(max_loss_per_day=10.0), 0.01, [BTC])
    again.restore_halt(state, now_ns=100)
    assert again.halted
    assert [(m.name, m.version) for m in restored.model_versions] == [("fill_prob", "v3")]


def test_ledger_restore_tolerates_record_the_oms_refused(tmp_path: Path) -> None:
    with _open(tmp_path) as led:
        led.journal(sub("a"), ts_ns=0)
        # journaled first, then the OMS crashed on it: must not crash every restart
        led.journal(OrderCanceled(client_order_id="a", symbol=SYM, ts_exch_ns=1))
        led.journal(
            OrderAccepted(
                client_order_id="zz", symbol=SYM, side=BUY, px_ticks=1, qty_lots=1, ts_exch_ns=1
            )
        )
        restored = led.restore()
    assert restored.open_orders == [] and restored.in_flight_ids == []
    assert restored.last_seq == 3


def test_ledger_restore_refused_cancel_leaves_order_live(tmp_path: Path) -> None:
    a, b = sub("a", qty=5), sub("b", SELL, 650_100, 2)
    with _open(tmp_path) as led:
        app = App(led)
        for cmd in (a, b):
            app.send(cmd, now_ns=0)
            app.receive(acc(cmd))
        app.receive(fill("f1", "a", BUY, 650_000, 1, 4))
        for coid in ("a", "b"):
            app.send(CancelOrder(client_order_id=coid, symbol=SYM), now_ns=1)
        # a: the cancel is refused; b: fills in full first, then its cancel is refused
        app.receive(OrderRejected(client_order_id="a", symbol=SYM, reason="x", ts_exch_ns=2))
        app.receive(fill("f2", "b", SELL, 650_100, 2, 0))
        app.receive(
            OrderRejected(client_order_id="b", symbol=SYM, reason="unknown_order", ts_exch_ns=3)
        )
        restored = led.restore()
    assert [(o.client_order_id, o.status, o.leaves_lots) for o in restored.open_orders] == [
        ("a", OrderStatus.PARTIALLY_FILLED, 4)
    ]
    assert [(o.client_order_id, o.status) for o in app.oms.orders()] == [
        ("a", OrderStatus.PARTIALLY_FILLED)
    ]


def test_ledger_journal_rejects_unknown_type(tmp_path: Path) -> None:
    with _open(tmp_path) as led, pytest.raises(InvariantViolation):
        led.journal(BTC)  # type: ignore[arg-type]


_CHILD = textwrap.dedent(
    """
    import sys
    from mmd.model.events import MAKER, OrderFilled
    from mmd.model.instrument import Instrument
    from mmd.trading.ledger import Ledger

    path, run = sys.argv[1], int(sys.argv[2])
    led = Ledger.open(path)
    led.note_instrument(Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001"))

    def make(i):
        return OrderFilled(fill_id=f"{run}-{i}", client_order_id=f"o{run}", symbol="BTCUSDT",
                           side=1, px_ticks=650000 + i, qty_lots=1, leaves_lots=0,
                           liquidity=MAKER, fee_quote=0.01, ts_exch_ns=i)

    print("ready", flush=True)
    i = 0
    while True:
        if i % 3 == 2:
            with led.batch():
                new = [f.fill_id for f in (make(i), make(i + 1)) if led.journal(f)]
            i += 2
        else:
            new = [make(i).fill_id] if led.journal(make(i)) else []
            i += 1
        # a repeat of an earlier run's first fill must be refused
        if run > 0:
            assert not led.journal(OrderFilled(
                fill_id=f"{run - 1}-0", client_order_id="x", symbol="BTCUSDT", side=1,
                px_ticks=1, qty_lots=1, leaves_lots=0, liquidity=MAKER, fee_quote=0.0,
                ts_exch_ns=0))
        for fid in new:
            print(fid, flush=True)
    """
)


def test_ledger_sigkill_at_random_moments_loses_no_reported_fill(tmp_path: Path) -> None:
    db = tmp_path / LEDGER_FILE
    rng = random.Random(20240807)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reported: list[str] = []
    for run in range(20):
        with subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db), str(run)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        ) as proc:
            try:
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "ready"
                target = rng.randint(1, 400)
                for _ in range(target):
                    line = proc.stdout.readline()
                    assert line, f"child {run} died on its own (rc={proc.poll()})"
                    reported.append(line.strip())
            finally:
                os.kill(proc.pid, signal.SIGKILL)
            rest = proc.stdout.read()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # complete lines only: a torn last line is a fill we simply were not told about
        reported.extend(ln.strip() for ln in rest.splitlines(keepends=True) if ln.endswith("\n"))
    assert len(reported) == len(set(reported))
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = [r[0] for r in conn.execute("SELECT fill_id FROM fills")]
        n_events = conn.execute(
            "SELECT COUNT(*) FROM events WHERE kind = 'OrderFilled'"
        ).fetchone()[0]
        orphans = conn.execute(
            "SELECT COUNT(*) FROM fills LEFT JOIN events USING (seq) WHERE events.seq IS NULL"
        ).fetchone()[0]
    finally:
        conn.close()
    assert len(stored) == len(set(stored)) == n_events and orphans == 0
    assert set(reported) <= set(stored)
    with _open(db) as led:
        restored = led.restore()
    ids = [f.fill_id for f in restored.fills]
    assert len(ids) == len(set(ids)) == len(stored)


# -- validity, identity, checkpoints ------------------------------------------------------------


def test_ledger_refuses_non_finite_values_before_committing(tmp_path: Path) -> None:
    from mmd.trading.ledger import RiskReset  # noqa: F401 - the kinds it knows

    with _open(tmp_path) as led:
        for bad in (
            fill("f1", "a", BUY, 100, 1, 0, fee=float("nan")),
            fill("f2", "a", BUY, 100, 1, 0, fee=float("inf")),
            fill("f3", "a", BUY, 0, 1, 0),
            FundingPaid(
                funding_id="fu",
                symbol=SYM,
                rate=float("nan"),
                position_lots=1,
                mark_px=65_000.0,
                amount_quote=0.0,
                ts_exch_ns=1,
            ),
            FundingPaid(
                funding_id="fu",
                symbol=SYM,
                rate=0.0001,
                position_lots=1,
                mark_px=65_000.0,
                amount_quote=float("-inf"),
                ts_exch_ns=1,
            ),
        ):
            with pytest.raises(InvariantViolation):
                led.journal(bad)
        assert led.event_count() == 0 and led.fill_count() == 0
        # a fill of a symbol whose steps were never noted is refused too
        with pytest.raises(InvariantViolation, match="steps"):
            led.journal(msgspec.structs.replace(fill("f4", "a", BUY, 100, 1, 0), symbol="ETHUSDT"))


@pytest.mark.parametrize(
    "poison",
    [
        "UPDATE events SET body = 'not json' WHERE seq = 2",
        # what a NaN fee used to become: JSON null
        "UPDATE events SET body = replace(body, '\"fee_quote\":0.01', '\"fee_quote\":null')"
        " WHERE seq = 2",
        "UPDATE events SET body = replace(body, '\"px_ticks\":100', '\"px_ticks\":-5')"
        " WHERE seq = 2",
        "UPDATE fills SET tick_size = NULL",
    ],
)
def test_ledger_bad_row_raises_state_error_naming_the_row(tmp_path: Path, poison: str) -> None:
    from mmd.errors import StateError

    with _open(tmp_path) as led:
        led.journal(sub("a", qty=1, px=100), ts_ns=0)
        led.journal(fill("f1", "a", BUY, 100, 1, 0))
        led.journal(sub("b"), ts_ns=3)
    con = sqlite3.connect(tmp_path / LEDGER_FILE)
    if "tick_size = NULL" in poison:  # the schema refuses a NULL step: drop the fills row
        con.execute("DELETE FROM fills")
    else:
        con.execute(poison)
    con.commit()
    con.close()
    with _open(tmp_path) as led, pytest.raises(StateError) as err:
        led.restore()
    msg = str(err.value)
    assert "ledger row 2" in msg and "move" in msg and "\n" not in msg


def test_ledger_run_identity_mismatch_names_the_field(tmp_path: Path) -> None:
    from mmd.errors import StateError
    from mmd.trading.ledger import RecordingDigest, RunIdentity

    rec = [RecordingDigest(name="bybit_linear_BTCUSDT_1.rec.gz", sha256="ab" * 32)]
    ident = RunIdentity(
        source="replay", category="linear", symbols=["BTCUSDT", "ETHUSDT"], recordings=rec
    )
    Ledger.open(tmp_path, identity=ident).close()
    Ledger.open(tmp_path, identity=ident).close()  # the same run opens fine
    cases = {
        "source": msgspec.structs.replace(ident, source="synthetic", recordings=[]),
        "category": msgspec.structs.replace(ident, category="spot"),
        "symbols": msgspec.structs.replace(ident, symbols=["BTCUSDT"]),  # a symbol removed
        "recordings": msgspec.structs.replace(
            ident, recordings=[msgspec.structs.replace(rec[0], sha256="cd" * 32)]
        ),
    }
    for field, other in cases.items():
        with pytest.raises(StateError) as err:
            Ledger.open(tmp_path, identity=other)
        msg = str(err.value)
        assert f"{field} is" in msg and "MMD_STATE__DIR" in msg and "\n" not in msg, msg


def test_ledger_restore_reads_checkpoint_plus_tail_only(tmp_path: Path) -> None:
    """Restore after a checkpoint decodes only the rows after it, and folds to the same state
    as a ledger without any checkpoint."""
    from mmd.trading.ledger import Checkpoint, OrderState

    def session(led: Ledger, app: App, checkpoint_after: int | None) -> None:
        for i in range(40):
            cmd = sub(f"o{i}", BUY if i % 2 else SELL, 650_000 + i, 2)
            app.send(cmd, now_ns=i)
            app.receive(acc(cmd, ts=i))
            if i % 3 == 0:
                app.receive(fill(f"f{i}", f"o{i}", cmd.side, cmd.px_ticks, 2, 0, ts=i))
            if checkpoint_after is not None and i == checkpoint_after:
                led.checkpoint(
                    Checkpoint(
                        ts_ns=i,
                        positions=app.pf.states(),
                        orders=[
                            OrderState(
                                client_order_id=o.client_order_id,
                                symbol=o.symbol,
                                side=o.side,
                                px_ticks=o.px_ticks,
                                qty_lots=o.qty_lots,
                                leaves_lots=o.leaves_lots,
                                status=int(o.status),
                                ts_exch_ns=o.ts_exch_ns,
                            )
                            for o in app.oms.orders()
                        ],
                    )
                )

    with _open(tmp_path / "plain") as a, _open(tmp_path / "cp") as b:
        session(a, App(a), None)
        session(b, App(b), 29)
        full, part = a.restore(), b.restore()
        total = b.event_count()
    # per i: submit + accept (+ a fill every third i); i = 30..39 come after the checkpoint:
    # 10 submits + 10 accepts + fills at 30, 33, 36, 39 = 24 rows
    assert full.tail_rows == total and full.checkpoint is None
    assert part.tail_rows == 24 and part.checkpoint is not None
    assert part.last_seq == full.last_seq == total
    assert [(o.client_order_id, o.status, o.leaves_lots) for o in part.open_orders] == [
        (o.client_order_id, o.status, o.leaves_lots) for o in full.open_orders
    ]
    pf_full, pf_part = Portfolio([BTC]), Portfolio([BTC])
    for f in full.fills:
        pf_full.apply_fill(f, BTC)
    pf_part.load_states(part.checkpoint.positions)
    for f in part.fills:
        pf_part.apply_fill(f, BTC)
    assert pf_part.states() == pf_full.states()

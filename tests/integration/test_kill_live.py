"""kill -9 of a live daemon (`mmd run --feed bybit` against `mmd serve-venue` on loopback) at
random moments, some of them inside a ledger write, restarted each time: no fill the daemon
reported is lost, none is counted twice, and its position, cash, realized PnL and fees equal a
recomputation by hand from the journaled fills, each checked against the venue's trade tape.
It ends with a SIGTERM while trading: exit 0 within 5 s, a final snapshot holding every fill.

The cycle count is KILLS, scaled with tests/sizes.py: 10 in the default suite, 50 under
MMD_TEST_FULL=1. A daemon start (imports, loading the compiled kernels) costs 5-25 s on a busy
2-core machine, so 50 cycles took 17 minutes there; 10 stay under ~5.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import random
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from procs import Proc, base_env, free_port, http_json, http_text, metric_values, venue
from sizes import scaled

pytestmark = pytest.mark.slow

KILLS = scaled(10, 50)
SEED = 20261201  # the kill moments, reproducible
# venue seconds per real second: the 480 s recording lasts ~5 min of test (restarted if not)
SPEED = 1.6
# the configured fee rates (set in the daemon's environment as written here)
MAKER_FEE_TEXT, TAKER_FEE_TEXT = "0.0002", "0.00055"
MAKER_FEE, TAKER_FEE = Fraction(MAKER_FEE_TEXT), Fraction(TAKER_FEE_TEXT)
# the ledger test hook's sleep inside each write transaction in the in-write cycles
WRITE_DELAY_S = "0.02"
# x86_64 clock_nanosleep: time.sleep, the only sleep on the daemon's main thread (the hook's)
SYS_CLOCK_NANOSLEEP = 230
# recording seconds either side of a fill's mapped time in which the tape must show a price
# that could fill it (the mapping's error: venue scheduling lag, ms stamps, loaded machine)
TAPE_WINDOW_NS = 2_000_000_000


# -- the venue's tape, read from the recording file -----------------------------------------


@dataclass
class Tape:
    """The recording's trades: receive time (ns) and price in the tape's own ticks."""

    tick: Decimal
    ts_ns: np.ndarray
    px_ticks: np.ndarray


def _read_tape(rec: Path) -> Tape:
    tick: Decimal | None = None
    ts, px = [], []
    with gzip.open(rec, "rt") as fh:
        for line in fh:
            stamp, _, raw = line.partition(" ")
            msg = json.loads(raw)
            if tick is None and "result" in msg:
                for row in msg["result"].get("list", []):
                    if row.get("symbol") == "BTCUSDT":
                        tick = Decimal(row["priceFilter"]["tickSize"])
            if str(msg.get("topic", "")).startswith("publicTrade."):
                for t in msg["data"]:
                    q = Decimal(t["p"]) / tick  # type: ignore[operator]
                    assert q == q.to_integral_value(), t  # the tape itself is on its grid
                    ts.append(int(stamp))
                    px.append(int(q))
    assert tick is not None and ts, "recording without instruments-info or trades"
    order = np.argsort(np.array(ts, np.int64), kind="stable")
    return Tape(tick, np.array(ts, np.int64)[order], np.array(px, np.int64)[order])


@dataclass
class VenueClock:
    """How a served (re-based) exchange time maps back onto the recording's receive time:
    served ~ wall_start + (recorded - t0) / speed, from `/venue/stats` at the venue's start."""

    wall_start_ns: int
    t0_ns: int
    speed: float

    def recorded_ns(self, served_ns: int) -> int:
        return self.t0_ns + int((served_ns - self.wall_start_ns) * self.speed)


def _venue_clock(vurl: str) -> VenueClock:
    now = time.time_ns()
    st = http_json(vurl + "/venue/stats")[1]
    elapsed_ns = (st["venue_time_ms"] - st["start_time_ms"]) * 1_000_000 / st["speed"]
    return VenueClock(int(now - elapsed_ns), st["start_time_ms"] * 1_000_000, st["speed"])


# -- the ledger, read-only ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fill:
    fill_id: str
    coid: str
    side: int
    px_ticks: int
    qty_lots: int
    liquidity: int
    fee: float
    ts_exch_ns: int
    tick: Decimal
    lot: Decimal


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def _ledger_fills(db: Path) -> list[Fill]:
    """The fills table in journal order; also checks the journal holds each fill exactly once."""
    if not db.exists():
        return []
    con = _connect(db)
    try:
        rows = con.execute(
            "SELECT fill_id, client_order_id, side, px_ticks, qty_lots, liquidity, fee_quote,"
            " ts_exch_ns, tick_size, lot_size FROM fills ORDER BY seq"
        ).fetchall()
        bodies = con.execute("SELECT body FROM events WHERE kind = 'OrderFilled'").fetchall()
    finally:
        con.close()
    journaled = [json.loads(b[0])["fill_id"] for b in bodies]
    assert len(set(journaled)) == len(journaled), "a fill journaled twice"
    assert sorted(journaled) == sorted(r[0] for r in rows), "fills table != journal"
    return [
        Fill(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], Decimal(r[8]), Decimal(r[9]))
        for r in rows
    ]


def _order_times(db: Path) -> dict[str, int]:
    con = _connect(db)
    try:
        return {
            str(c): int(t)
            for c, t in con.execute(
                "SELECT client_order_id, ts_ns FROM events WHERE kind = 'SubmitOrder'"
            )
        }
    finally:
        con.close()


# -- the recomputation, by hand ----------------------------------------------------------------


@dataclass
class Book:
    """Position, average entry, realized PnL, fees and cash folded by hand (exact fractions):
    average cost, a reduction realizes (price - entry) x closed size, a flip opens the rest at
    the fill price; fees = qty x px x the configured rate (maker for liquidity 1, taker for 2);
    cash = realized - fees (the portfolio's cash with no initial balance and no funding: what
    the trades left in quote once the open position is counted at its cost)."""

    position: Fraction = Fraction(0)
    entry: Fraction = Fraction(0)
    realized: Fraction = Fraction(0)
    fees: Fraction = Fraction(0)
    fills: int = 0

    def apply(self, f: Fill) -> None:
        qty = Fraction(f.qty_lots) * Fraction(f.lot)
        px = Fraction(f.px_ticks) * Fraction(f.tick)
        fee = qty * px * (MAKER_FEE if f.liquidity == 1 else TAKER_FEE)
        # the ledger's fee is the configured rate's (float arithmetic in the daemon)
        assert abs(float(fee) - f.fee) <= 1e-9 * max(1.0, abs(f.fee)), (f, float(fee))
        signed = f.side * qty
        self.fees += fee
        pos = self.position
        if pos == 0 or (pos > 0) == (signed > 0):
            self.entry = (abs(pos) * self.entry + qty * px) / (abs(pos) + qty)
        else:
            closed = min(qty, abs(pos))
            self.realized += closed * (px - self.entry) * (1 if pos > 0 else -1)
            if qty > abs(pos):
                self.entry = px
        self.position = pos + signed
        if self.position == 0:
            self.entry = Fraction(0)
        self.fills += 1

    @property
    def cash(self) -> Fraction:
        return self.realized - self.fees


def _fold(fills: list[Fill]) -> Book:
    b = Book()
    for f in fills:
        b.apply(f)
    return b


def _close(a: float, b: Fraction | float, what: str) -> None:
    assert abs(a - float(b)) <= 1e-6 * max(1.0, abs(float(b))), f"{what}: {a} != {float(b)}"


# -- the daemon --------------------------------------------------------------------------------


def _log_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def _events(proc: Proc, name: str) -> list[dict]:
    return [r for r in _log_lines(proc.output()) if r.get("event") == name]


@dataclass
class Reported:
    """What the daemon said before it was killed."""

    applied: int = 0  # fills it had applied (restored + this run's mmd_fills_total)
    position: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    cash: float = 0.0
    logged_fill_ids: list[str] = field(default_factory=list)


def _scrape(url: str) -> dict[str, float]:
    text = http_text(url + "/metrics", timeout=5)
    pnl = metric_values(text, "mmd_pnl_quote")
    return {
        "fills": sum(metric_values(text, "mmd_fills_total").values()),
        "position": metric_values(text, "mmd_position_base").get('{symbol="BTCUSDT"}', 0.0),
        "realized": pnl.get('{component="realized"}', 0.0),
        "fees": pnl.get('{component="fees"}', 0.0),
        "total": pnl.get('{component="total"}', 0.0),
        "unrealized": pnl.get('{component="unrealized"}', 0.0),
        "funding": pnl.get('{component="funding"}', 0.0),
    }


def _in_hook_sleep(pid: int) -> bool:
    """True while the process's main thread sleeps in Python's time.sleep (x86_64
    clock_nanosleep on CLOCK_MONOTONIC with TIMER_ABSTIME): on the daemon's main thread only
    the ledger hook sleeps so (the loop waits in epoll, SQLite's own retries in a
    CLOCK_REALTIME relative sleep), so it is inside an open write transaction."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return fields[:3] == [str(SYS_CLOCK_NANOSLEEP), "0x1", "0x1"]


def _need_syscall_view() -> None:
    """Skip unless this is Linux on x86_64 with /proc/<pid>/syscall readable (how the test
    sees a process inside the hook's sleep)."""
    if platform.machine() != "x86_64" or sys.platform != "linux":
        pytest.skip(
            f"needs Linux x86_64 (syscall numbers), not {sys.platform} {platform.machine()}"
        )
    try:
        Path("/proc/self/syscall").read_text()
    except OSError as exc:
        pytest.skip(f"/proc/self/syscall is not readable here ({exc})")


def _kill_in_write(proc: Proc, timeout: float = 60.0) -> None:
    """SIGKILL the daemon the moment its main thread is inside a ledger write (the hook)."""
    deadline = time.monotonic() + timeout
    while not _in_hook_sleep(proc.p.pid):
        assert proc.alive(), proc.output()[-3000:]
        assert time.monotonic() < deadline, "no ledger write seen"
        time.sleep(0.002)  # well inside the hook's 20 ms, without taking a core from it
    os.kill(proc.p.pid, signal.SIGKILL)


def _start(tmp: Path, venue_url: str, tag: str, *, write_delay: bool) -> tuple[Proc, str]:
    port = free_port()
    env = base_env(
        MMD_METRICS__PORT=str(port),
        MMD_STATE__DIR=str(tmp / "state"),
        MMD_MODELS__DIR=str(tmp / "models"),
        MMD_STRATEGY__WARMUP_S="0.5",
        MMD_VENUE__REST_URL=venue_url,
        MMD_VENUE__WS_URL=venue_url.replace("http", "ws") + "/v5/public/linear",
        MMD_FEED__SYMBOLS='["BTCUSDT"]',
        MMD_EXCHANGE__MAKER_FEE=MAKER_FEE_TEXT,
        MMD_EXCHANGE__TAKER_FEE=TAKER_FEE_TEXT,
    )
    if write_delay:
        env["MMD_TEST_LEDGER_WRITE_DELAY_S"] = WRITE_DELAY_S
    proc = Proc(
        [sys.executable, "-m", "mmd", "run", "--feed", "bybit"], env, tmp / f"daemon-{tag}.log"
    )
    return proc, f"http://127.0.0.1:{port}"


def _wait_restored(proc: Proc, t_start: float, timeout: float = 60.0) -> tuple[dict, float]:
    """The `ledger_restored` line and the seconds from the process start to it."""
    deadline = t_start + timeout
    while time.monotonic() < deadline:
        found = _events(proc, "ledger_restored")
        if found:
            return found[0], time.monotonic() - t_start
        assert proc.alive(), proc.output()[-3000:]
        time.sleep(0.02)
    raise AssertionError(f"no ledger_restored: {proc.output()[-3000:]}")


def _check_metrics_against_ledger(url: str, db: Path, restored_n: int) -> tuple[dict, Book]:
    """A scrape whose fills are exactly the ledger's (the count unchanged around it), and the
    hand recomputation from those fills."""
    for _ in range(200):
        n1 = len(_ledger_fills(db))
        m = _scrape(url)
        fills = _ledger_fills(db)
        if len(fills) == n1 == restored_n + m["fills"]:
            book = _fold(fills)
            _close(m["position"], book.position, "position")
            _close(m["realized"], book.realized, "realized")
            _close(m["fees"], book.fees, "fees")
            # cash: total PnL = cash + unrealized (funding is zero on this recording)
            assert m["funding"] == 0.0
            _close(m["total"] - m["unrealized"], book.cash, "cash")
            return m, book
        time.sleep(0.02)
    raise AssertionError("metrics never matched a quiet ledger")


def _check_tape(
    fills: list[Fill], orders: dict[str, int], tape: Tape, clocks: list[tuple[int, VenueClock]]
) -> list[float]:
    """Each fill: on the tape's tick grid, and the tape shows, within TAPE_WINDOW_NS of the
    fill's mapped time and not before its order was sent, a trade at a price that could fill
    it (a buy: a print at or below its price; a sell: at or above) inside the traded range.
    Returns |recorded - mapped| time (s) of the nearest print at exactly the fill price."""
    gaps = []
    for f in fills:
        price = Decimal(f.px_ticks) * f.tick
        on_grid = price / tape.tick
        assert on_grid == on_grid.to_integral_value(), (f, "off the tape's grid")
        px = int(on_grid)
        clock = [c for start, c in clocks if f.ts_exch_ns >= start][-1]
        at = clock.recorded_ns(f.ts_exch_ns)
        lo = at - TAPE_WINDOW_NS
        sent = orders.get(f.coid)
        assert sent is not None, f"fill of an order never journaled: {f}"
        # the order's own time, mapped, less the window's slack
        lo = max(lo, clock.recorded_ns(sent) - TAPE_WINDOW_NS // 4)
        i, j = np.searchsorted(tape.ts_ns, [lo, at + TAPE_WINDOW_NS])
        window = tape.px_ticks[i:j]
        assert window.size, (f, "no trade on the tape around the fill")
        assert window.min() <= px <= window.max(), (f, px, window.min(), window.max())
        if f.side == 1:
            assert (window <= px).any(), (f, "no print at or below a buy")
        else:
            assert (window >= px).any(), (f, "no print at or above a sell")
        same = tape.ts_ns[i:j][window == px]
        if same.size:
            gaps.append(float(np.abs(same - at).min()) / 1e9)
    return gaps


# -- the test ----------------------------------------------------------------------------------


# ~25 s a cycle on a busy machine, the recording's compile and conversion on top
@pytest.mark.timeout(scaled(600, 2400))
def test_live_kill9_cycles_lose_no_reported_fill_and_match_the_tape(
    binance_btc_rec: Path, tmp_path: Path
) -> None:
    _need_syscall_view()
    rng = random.Random(SEED)
    tape = _read_tape(binance_btc_rec)
    db = tmp_path / "state" / "bybit" / "ledger.sqlite"
    clocks: list[tuple[int, VenueClock]] = []
    reported = Reported()
    figures: list[tuple[int, int, str]] = []  # (fills reported before, in the ledger after, how)
    restore_s: list[float] = []  # process start -> ledger_restored
    restore_log_s: list[float] = []  # the line's own seconds (the ledger read and fold)
    in_write = venue_restarts = 0
    with contextlib.ExitStack() as stack:

        def open_venue() -> str:
            _, vurl = stack.enter_context(venue([binance_btc_rec], tmp_path, speed=SPEED))
            clocks.append((time.time_ns(), _venue_clock(vurl)))
            return vurl

        vurl = open_venue()
        for cycle in range(KILLS + 1):
            last = cycle == KILLS
            if http_json(vurl + "/venue/stats")[1]["finished"]:
                vurl = open_venue()  # the recording is used up: serve it again
                venue_restarts += 1
            if last:
                mode = "sigterm"
            elif cycle % 3 == 2:  # a third of the kills inside a ledger write
                mode = rng.choice(["write-at-start", "write"])
            else:
                mode = rng.choice(["fills", "time"])
            # the slow disk (the hook) for the in-write kills and under the final SIGTERM
            proc, url = _start(
                tmp_path, vurl, str(cycle), write_delay=mode.startswith("write") or last
            )
            t_start = time.monotonic()
            restored_n = len(reported.logged_fill_ids)
            try:
                if mode == "write-at-start":
                    # during the start: the restore journals the orders the last one left
                    _kill_in_write(proc)
                    in_write += 1
                    proc.p.wait(10)
                    figures.append((reported.applied, -1, mode))
                    continue
                line, seconds = _wait_restored(proc, t_start)
                restore_s.append(seconds)
                restore_log_s.append(float(line["seconds"]))
                # the restore holds every fill reported before the kill, none twice ...
                fills = _ledger_fills(db)
                ids = [f.fill_id for f in fills]
                assert ids[: len(reported.logged_fill_ids)] == reported.logged_fill_ids
                restored_n = int(line["fills"])
                assert restored_n >= reported.applied and restored_n <= len(fills)
                # ... and the state it rebuilt is the hand recomputation of those fills
                book = _fold(fills[:restored_n])
                _close(float(line["positions"].get("BTCUSDT", 0.0)), book.position, "position")
                _close(line["realized"], book.realized, "realized")
                _close(line["fees"], book.fees, "fees")
                figures.append((reported.applied, restored_n, mode))
                # what /metrics shows once restored: the same recomputation over the ledger
                while http_json(url + "/healthz", timeout=2)[0] != 200:
                    time.sleep(0.05)
                _check_metrics_against_ledger(url, db, restored_n)
                # the kill moment
                if mode in ("fills", "sigterm"):  # after 1-3 new fills, then 0-0.5 s more
                    want, deadline = rng.randint(1, 3), time.monotonic() + 30
                    while _scrape(url)["fills"] < want and time.monotonic() < deadline:
                        time.sleep(0.02)
                    pause = rng.uniform(0.0, 0.5)
                elif mode == "time":  # 0-2 s after the restore, trading or not
                    pause = rng.uniform(0.0, 2.0)
                else:  # inside a ledger write, 0-1 s after the restore
                    pause = rng.uniform(0.0, 1.0)
                if last:
                    break
                m = _scrape(url)
                reported.applied = restored_n + int(m["fills"])
                reported.position, reported.realized = m["position"], m["realized"]
                reported.fees, reported.cash = m["fees"], m["total"] - m["unrealized"]
                time.sleep(pause)
                if mode == "write":
                    _kill_in_write(proc)
                    in_write += 1
                else:
                    os.kill(proc.p.pid, signal.SIGKILL)
                proc.p.wait(10)
            finally:
                if last:
                    # SIGTERM while trading on a slow disk: exit 0 within 5 s, a final snapshot
                    stop_ns = time.time_ns()
                    t0 = time.monotonic()
                    proc.p.send_signal(signal.SIGTERM)
                    rc = proc.p.wait(5)
                    stop_s = time.monotonic() - t0
                proc.stop(signal.SIGKILL)
                if mode == "write-at-start":
                    # nothing was reported; what it committed before the kill is kept whole
                    assert not _events(proc, "order_filled")
                    assert len(_ledger_fills(db)) >= reported.applied
            # everything it logged as filled is in the ledger, in the order it logged it
            logged = [r["fill_id"] for r in _events(proc, "order_filled")]
            fills = _ledger_fills(db)
            ids = [f.fill_id for f in fills]
            assert ids[restored_n : restored_n + len(logged)] == logged, (cycle, mode)
            reported.logged_fill_ids = ids[: restored_n + len(logged)]
            # what /metrics said before the kill is the recomputation of that many fills
            assert len(fills) >= reported.applied
            book = _fold(fills[: reported.applied])
            _close(reported.position, book.position, "reported position")
            _close(reported.realized, book.realized, "reported realized")
            _close(reported.fees, book.fees, "reported fees")
            _close(reported.cash, book.cash, "reported cash")
        orders = _order_times(db)
        final = _ledger_fills(db)
        gaps = _check_tape(final, orders, tape, clocks)
    assert rc == 0, proc.output()[-3000:]
    assert stop_s < 5.0
    con = _connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        snap_ns = con.execute("SELECT MAX(ts_ns) FROM snapshots").fetchone()[0]
        total = con.execute(
            "SELECT realized, fees, equity - unrealized FROM snapshots "
            "WHERE ts_ns = ? AND symbol = '*'",
            (snap_ns,),
        ).fetchone()
        pos = con.execute(
            "SELECT position_lots FROM snapshots WHERE ts_ns = ? AND symbol = 'BTCUSDT'", (snap_ns,)
        ).fetchone()
    finally:
        con.close()
    book = _fold(final)
    # the final snapshot: taken after the signal, holding every journaled fill
    assert snap_ns >= stop_ns, (snap_ns, stop_ns)
    _close(total[0], book.realized, "snapshot realized")
    _close(total[1], book.fees, "snapshot fees")
    _close(total[2], book.cash, "snapshot cash")
    assert Fraction(pos[0]) * Fraction(final[-1].lot) == book.position
    kills = len(figures) - 1
    print(
        f"\nlive kill -9: {kills} cycles ({in_write} inside a ledger write), venue restarts "
        f"{venue_restarts}; fills reported before -> in the ledger at the restart, per cycle: "
        + " ".join(f"{a}->{b if b >= 0 else 'x'}" for a, b, _ in figures)
        + " (x: killed in a ledger write during its start)"
    )
    print(
        f"restore: max {max(restore_s):.2f} s from process start to ledger_restored "
        f"(median {np.median(restore_s):.2f}); its own seconds max {max(restore_log_s):.4f}"
    )
    print(
        f"final: {len(final)} fills on the tape's grid and range (nearest same-price print "
        f"median {np.median(gaps) if gaps else float('nan'):.3f} s from the mapped time); "
        f"position {float(book.position)}, cash {float(book.cash):.6f}, realized "
        f"{float(book.realized):.6f}, fees {float(book.fees):.6f}; SIGTERM -> exit {rc} in "
        f"{stop_s:.2f} s, final snapshot {(snap_ns - stop_ns) / 1e6:.0f} ms after the signal"
    )
    assert kills == KILLS and in_write >= KILLS // 8
    assert figures[-1][1] > 0, "no fill in the whole run"


# -- the ledger's test hook ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_write_delay_hook_refuses_a_bad_value_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from mmd.errors import ConfigError
    from mmd.trading.ledger import Ledger

    monkeypatch.setenv("MMD_TEST_LEDGER_WRITE_DELAY_S", value)
    with pytest.raises(ConfigError, match="MMD_TEST_LEDGER_WRITE_DELAY_S"):
        Ledger.open(tmp_path / "ledger.sqlite")


_WRITE_ONE = """
import sys
from mmd.trading.ledger import Ledger
with Ledger.open(sys.argv[1]) as led:
    led.set_meta("probe", "1")
"""


def test_write_delay_hook_holds_the_transaction_open_until_killed(tmp_path: Path) -> None:
    from mmd.trading.ledger import Ledger

    _need_syscall_view()
    path = tmp_path / "ledger.sqlite"
    Ledger.open(path).close()
    proc = Proc(
        [sys.executable, "-c", _WRITE_ONE, str(path)],
        base_env(MMD_TEST_LEDGER_WRITE_DELAY_S="60"),
        tmp_path / "writer.log",
    )
    con = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        deadline = time.monotonic() + 60
        while not _in_hook_sleep(proc.p.pid):
            assert proc.alive() and time.monotonic() < deadline, proc.output()[-2000:]
            time.sleep(0.01)
        # the writer sleeps in the hook: its row is written but not committed, so another
        # connection neither sees it nor can start a write of its own
        assert con.execute("SELECT value FROM meta WHERE key = 'probe'").fetchone() is None
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            con.execute("BEGIN IMMEDIATE")
        os.kill(proc.p.pid, signal.SIGKILL)
        proc.p.wait(10)
        # killed inside the transaction: nothing of it is kept, the file is sound and writable
        assert con.execute("SELECT value FROM meta WHERE key = 'probe'").fetchone() is None
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.execute("INSERT INTO meta(key, value) VALUES ('after', '1')")
    finally:
        con.close()
        proc.stop(signal.SIGKILL)

"""Feature benchmarks: FeatureEngine on the real Binance USD-M BTCUSDT recording (8 minutes).

Figures: `ns_per_update` is wall time per book update (tests/book_oracle.py features_on_book), and
`ns_per_trade` per `on_trade` call, glue included; `kernel_ns_*` the same with the kernel called
directly (no Python method in between); `peer_ns_*` the same events through a plain-Python
incremental implementation of the same features in the same process (lists, deques, `math`);
`ratio = peer / mmd`. The book stream and the trade stream are timed separately (each alone
through a fresh engine), and `mixed` times them interleaved as recorded. Each figure is the
median over passes. The recording is converted and its books are rebuilt before timing (not
timed): each book event carries an L2Book of its best 8 levels. Without the shared data the
benchmark reports `skipped`.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from mmd.config import FeaturesConfig
from mmd.feeds.bybit_codec import BookMsg, InstrumentsMsg, TradesMsg, decode_frame
from mmd.feeds.convert.binance_usdm import convert_binance_usdm
from mmd.feeds.recording import read_recording
from mmd.kernels.features import update_book, update_trade
from mmd.market.book import L2Book
from mmd.market.features import FeatureEngine
from mmd.model.codes import BUY
from mmd.model.instrument import Instrument

# test-side helpers in tests/ (run.py loads benches by path; tests/ is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from book_oracle import features_on_book

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "market"
BTC = DATA / "binance_usdm_btcusdt_2024-07-18_19"
TOP = 8  # levels kept per event: more than the features read (imbalance_levels = 5)

# ("book", ts_ns, L2Book of the top levels, bids list, asks list) | ("trade", ts_ns, px, qty, side)
Event = tuple[Any, ...]


def load_events(tmp: Path) -> tuple[list[Event], Instrument]:
    """The recording's book and trade events in order, books rebuilt and cut to TOP levels."""
    (path,) = convert_binance_usdm(sorted(BTC.glob("*.gz")), tmp)
    inst: Instrument | None = None
    book = L2Book(1000)
    events: list[Event] = []
    events_synced = False
    for _, raw in read_recording(path):
        msg = decode_frame(raw)
        if isinstance(msg, InstrumentsMsg):
            info = msg.instruments[0]
            inst = Instrument(symbol=info.symbol, tick_size=info.tick_size, lot_size=info.lot_size)
        elif isinstance(msg, BookMsg) and inst is not None:
            if not (msg.is_snapshot or events_synced):
                continue  # deltas before the first snapshot: dropped, as book_sync does
            events_synced = True
            bpx, bqty = inst.levels_to_arrays(msg.bids)
            apx, aqty = inst.levels_to_arrays(msg.asks)
            apply = book.apply_snapshot if msg.is_snapshot else book.apply_delta
            apply(bpx, bqty, apx, aqty, u=msg.u, seq=msg.seq, ts_exch_ns=msg.ts_exch_ns)
            top = L2Book(TOP)
            top.apply_snapshot(*book.top(TOP), u=msg.u, seq=msg.seq, ts_exch_ns=msg.ts_exch_ns)
            lv = book.levels(TOP)
            bids = [tuple(x) for x in lv["bids"]]
            asks = [tuple(x) for x in lv["asks"]]
            events.append(("book", msg.ts_exch_ns, top, bids, asks))
        elif isinstance(msg, TradesMsg) and inst is not None:
            for t in msg.trades:
                px, qty = inst.px_to_ticks(t.price), inst.qty_to_lots(t.size)
                events.append(("trade", t.ts_exch_ns, px, qty, t.side))
    assert inst is not None
    return events, inst


class PyFeatures:
    """The same features, incrementally, in plain Python (the peer; no numpy)."""

    def __init__(self, cfg: FeaturesConfig) -> None:
        self.k = cfg.imbalance_levels
        self.step = round(cfg.vol_sample_s * 1e9)
        self.root_t = math.sqrt(cfg.vol_sample_s)
        self.lam_f = math.log(2) / cfg.flow_halflife_s
        self.lam_q = math.log(2) / cfg.queue_halflife_s
        self.vol_log: deque[float] = deque(maxlen=cfg.vol_window)
        self.vol_tick: deque[float] = deque(maxlen=cfg.vol_window)
        self.spreads: deque[float] = deque(maxlen=cfg.spread_window)
        self.vpin: deque[int] = deque(maxlen=cfg.vpin_buckets)
        self.sums = [0.0] * 6  # log, log^2, tick, tick^2, spread, spread^2
        self.cap = max(cfg.vol_window, cfg.spread_window) + 1  # samples worth taking after a gap
        self.f: dict[str, float] = {}
        self.last_ns = -1
        self.w_f = self.w_q = self.ofi = self.delta_ew = self.count = self.volume = 0.0
        self.q_bid = self.q_ask = 0.0
        self.cum_delta = 0
        self.prev: tuple[int, int, int, int] | None = None
        self.next_ns = -1
        self.mid = self.spread = self.sample_mid = math.nan
        self.bucket = 0
        self.t0 = -1
        self.calib = 0
        self.buy = self.sell = 0
        self.vpin_sum = 0

    def _decay(self, ts: int) -> None:
        if self.last_ns < 0:
            self.last_ns = ts
            return
        if ts <= self.last_ns:
            return
        dt = (ts - self.last_ns) * 1e-9
        af, aq = math.exp(-self.lam_f * dt), math.exp(-self.lam_q * dt)
        self.ofi *= af
        self.delta_ew *= af
        self.count *= af
        self.volume *= af
        self.w_f = self.w_f * af + (1 - af) / self.lam_f
        self.q_bid *= aq
        self.q_ask *= aq
        self.w_q = self.w_q * aq + (1 - aq) / self.lam_q
        self.last_ns = ts

    def _push(self, ring: deque[float], at: int, v: float) -> None:
        if len(ring) == ring.maxlen:
            old = ring[0]
            self.sums[at] -= old
            self.sums[at + 1] -= old * old
        ring.append(v)
        self.sums[at] += v
        self.sums[at + 1] += v * v

    @staticmethod
    def _std(s1: float, s2: float, n: int) -> float:
        if n < 2:
            return math.nan
        return math.sqrt(max(n * s2 - s1 * s1, 0.0) / (n * (n - 1)))

    def on_book(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]], ts: int) -> None:
        f = self.f
        if self.next_ns >= 0 and ts > self.next_ns:
            m = (ts - 1 - self.next_ns) // self.step + 1
            for _ in range(min(m, self.cap)):
                if self.mid != self.mid:
                    self.sample_mid = math.nan
                    continue
                if self.sample_mid == self.sample_mid:
                    self._push(self.vol_log, 0, math.log(self.mid / self.sample_mid))
                    self._push(self.vol_tick, 2, self.mid - self.sample_mid)
                self.sample_mid = self.mid
                self._push(self.spreads, 4, self.spread)
            self.next_ns += m * self.step
            n = len(self.vol_log)
            f["rv_log_per_s"] = self._std(self.sums[0], self.sums[1], n) / self.root_t
            f["rv_ticks_per_sqrt_s"] = self._std(self.sums[2], self.sums[3], n) / self.root_t
        self._decay(ts)
        (pb, qb), (pa, qa) = bids[0], asks[0]
        sb = sum(q for _, q in bids[: self.k])
        sa = sum(q for _, q in asks[: self.k])
        self.mid = (pb + pa) / 2
        self.spread = float(pa - pb)
        f["spread_bps"] = self.spread / self.mid * 1e4
        f["imbalance_touch"] = (qb - qa) / (qb + qa)
        f["imbalance_k"] = (sb - sa) / (sb + sa)
        f["depth_ratio"] = math.log(sb / sa)
        f["microprice_ticks"] = (pb * qa + pa * qb) / (qb + qa)
        if self.prev is not None:
            pb0, qb0, pa0, qa0 = self.prev
            e = (qb if pb >= pb0 else 0) - (qb0 if pb <= pb0 else 0)
            e += (qa0 if pa >= pa0 else 0) - (qa if pa <= pa0 else 0)
            self.ofi += e
            if pb == pb0:
                self.q_bid += qb - qb0
            if pa == pa0:
                self.q_ask += qa - qa0
        self.prev = (pb, qb, pa, qa)
        f["ofi"] = self.ofi
        if self.w_q > 0:
            f["queue_pressure"] = (self.q_bid - self.q_ask) / self.w_q
        if self.next_ns < 0:
            self.next_ns = -(-ts // self.step) * self.step
        n = len(self.spreads)
        if n >= 2:
            std = self._std(self.sums[4], self.sums[5], n)
            mean = self.sums[4] / n
            f["spread_z"] = (self.spread - mean) / std if std > 0 else 0.0

    def on_trade(self, ts: int, qty: int, side: int) -> None:
        self._decay(ts)
        signed = qty if side == BUY else -qty
        self.cum_delta += signed
        self.delta_ew += signed
        self.count += 1
        self.volume += qty
        f = self.f
        f["cum_delta_lots"] = self.cum_delta
        f["trade_rate_hz"] = self.count / self.w_f if self.w_f > 0 else math.nan
        f["avg_trade_lots"] = self.volume / self.count
        if self.bucket == 0:
            if self.t0 < 0:
                self.t0 = ts
            if ts < self.t0 + 60_000_000_000:
                self.calib += qty
                return
            self.bucket = max(1, (self.calib + 5) // 10)
        v = self.bucket
        while qty > 0:
            take = min(qty, v - self.buy - self.sell)
            if side == BUY:
                self.buy += take
            else:
                self.sell += take
            qty -= take
            if self.buy + self.sell == v:
                if len(self.vpin) == self.vpin.maxlen:
                    self.vpin_sum -= self.vpin[0]
                imb = abs(self.buy - self.sell)
                self.vpin.append(imb)
                self.vpin_sum += imb
                self.buy = self.sell = 0
                f["vpin"] = self.vpin_sum / (len(self.vpin) * v)


def _time_engine(events: list[Event], inst: Instrument, cfg: FeaturesConfig, kinds: str) -> int:
    eng = FeatureEngine(cfg, inst.tick, inst.lot)
    on_trade = eng.on_trade
    t0 = time.perf_counter_ns()
    for ev in events:
        if ev[0] == "book":
            if "b" in kinds:
                features_on_book(eng, ev[2], ev[1])
        elif "t" in kinds:
            on_trade(ev[1], ev[2], ev[3], ev[4])
    return time.perf_counter_ns() - t0


def _time_kernel(events: list[Event], inst: Instrument, cfg: FeaturesConfig, kinds: str) -> int:
    eng = FeatureEngine(cfg, inst.tick, inst.lot)
    fs, ist = eng._state, eng._istate
    t0 = time.perf_counter_ns()
    for ev in events:
        if ev[0] == "book":
            if "b" in kinds:
                b = ev[2]
                update_book(
                    fs, ist, b.bid_px, b.bid_qty, b.n_bids, b.ask_px, b.ask_qty, b.n_asks, ev[1]
                )
        elif "t" in kinds:
            update_trade(fs, ist, ev[1], ev[3], ev[4])
    return time.perf_counter_ns() - t0


def _time_peer(events: list[Event], inst: Instrument, cfg: FeaturesConfig, kinds: str) -> int:
    peer = PyFeatures(cfg)
    t0 = time.perf_counter_ns()
    for ev in events:
        if ev[0] == "book":
            if "b" in kinds:
                peer.on_book(ev[3], ev[4], ev[1])
        elif "t" in kinds:
            peer.on_trade(ev[1], ev[3], ev[4])
    return time.perf_counter_ns() - t0


def run(quick: bool) -> list[dict[str, Any]]:
    """Benchmark rows for run.py."""
    if not BTC.exists():
        return [{"name": "features.skipped_no_data", "skipped": 1}]
    with tempfile.TemporaryDirectory() as tmp:
        events, inst = load_events(Path(tmp))
    cfg = FeaturesConfig()
    n_books = sum(1 for e in events if e[0] == "book")
    n_trades = len(events) - n_books
    passes = 3 if quick else 15
    _time_engine(events[:500], inst, cfg, "bt")  # compile or load the cache: not timed

    def median(fn: Any, kinds: str) -> float:
        return statistics.median(fn(events, inst, cfg, kinds) for _ in range(passes))

    rows = []
    for name, kinds, unit, count in (
        ("features.on_book", "b", "update", n_books),
        ("features.on_trade", "t", "trade", n_trades),
        ("features.mixed", "bt", "event", n_books + n_trades),
    ):
        mmd_ns = median(_time_engine, kinds)
        kernel_ns = median(_time_kernel, kinds)
        peer_ns = median(_time_peer, kinds)
        rows.append(
            {
                "name": name,
                f"ns_per_{unit}": mmd_ns / count,
                f"kernel_ns_per_{unit}": kernel_ns / count,
                f"peer_ns_per_{unit}": peer_ns / count,
                "ratio": peer_ns / mmd_ns,
                "events": count,
                "passes": passes,
            }
        )
    return rows

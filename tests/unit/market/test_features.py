"""mmd.market.features.FeatureEngine against a plain-Python reference on a real recording.

The engine is fed the converted Binance USD-M BTCUSDT recording (8 minutes, about 9,000 book
updates, 10,700 trades, 7 closed klines) through the codec and an L2Book, as the hub does. The
reference rebuilds the book from the same file with dicts and computes every feature from its
definition, with lists, loops and `math` only: EW quantities as explicit sums over all past
events (not as a recursion), the sampling clock from the list of book times, windows by slicing,
VPIN from cumulative volume intervals. Windows are shortened so that they wrap several times in
8 minutes.
"""

from __future__ import annotations

import bisect
import gzip
import itertools
import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import BINANCE_BTC, need

from mmd.config import FeaturesConfig
from mmd.errors import InvariantViolation
from mmd.feeds.bybit_codec import BookMsg, KlineMsg, TradesMsg, decode_frame
from mmd.feeds.recording import read_recording
from mmd.kernels import features as kf
from mmd.kernels import warmup as kw
from mmd.market import features as mf
from mmd.market.book import L2Book
from mmd.market.features import FEATURE_NAMES, FeatureEngine
from mmd.model.codes import BUY, SELL
from mmd.model.instrument import Instrument
from tests.book_oracle import features_on_book, vpin_bucket_lots

SEC = 1_000_000_000
# short windows: every ring wraps (and is re-summed) many times in the 8-minute recording
CFG = FeaturesConfig(
    imbalance_levels=5,
    vol_sample_s=1.0,
    vol_window=60,
    flow_halflife_s=30.0,
    queue_halflife_s=5.0,
    spread_window=45,
    vpin_bucket_volume=0.0,
    vpin_buckets=20,
    gk_window=3,
)
# the same with a fixed VPIN bucket (2 BTC) and a faster clock
CFG_FIXED = FeaturesConfig(
    imbalance_levels=3,
    vol_sample_s=0.25,
    vol_window=100,
    spread_window=30,
    vpin_bucket_volume=2.0,
    vpin_buckets=15,
    gk_window=2,
)
CHECK_EVERY = 101  # events between checkpoints of the O(n)-per-point reference figures


# -- the engine, driven as the hub drives it ---------------------------------------------------


@dataclass
class EngineRun:
    x: list[list[float]]  # x after every event
    kinds: list[str]
    ready_at: int  # first event index where ready() was True
    engine: FeatureEngine


def run_engine(path: Path, cfg: FeaturesConfig) -> EngineRun:
    inst: Instrument | None = None
    book = L2Book(1000)  # wider than the converter's 200-level view: nothing falls off
    engine: FeatureEngine | None = None
    xs: list[list[float]] = []
    kinds: list[str] = []
    ready_at = -1
    book_synced = False
    for _, raw in read_recording(path):
        msg = decode_frame(raw)
        if inst is None:
            info = msg.instruments[0]  # type: ignore[union-attr]
            inst = Instrument(symbol=info.symbol, tick_size=info.tick_size, lot_size=info.lot_size)
            engine = FeatureEngine(cfg, inst.tick, inst.lot)
            continue
        assert engine is not None
        if isinstance(msg, BookMsg) and not (msg.is_snapshot or book_synced):
            continue  # as book_sync does: deltas before the first snapshot are dropped
        if isinstance(msg, BookMsg):
            book_synced = True
            bpx, bqty = inst.levels_to_arrays(msg.bids)
            apx, aqty = inst.levels_to_arrays(msg.asks)
            apply = book.apply_snapshot if msg.is_snapshot else book.apply_delta
            apply(bpx, bqty, apx, aqty, u=msg.u, seq=msg.seq, ts_exch_ns=msg.ts_exch_ns)
            features_on_book(engine, book, msg.ts_exch_ns)
            xs.append(engine.x.tolist())
            kinds.append("book")
        elif isinstance(msg, TradesMsg):
            for t in msg.trades:
                px, qty = inst.px_to_ticks(t.price), inst.qty_to_lots(t.size)
                engine.on_trade(t.ts_exch_ns, px, qty, t.side)
                xs.append(engine.x.tolist())
                kinds.append("trade")
        elif isinstance(msg, KlineMsg):
            for k in msg.klines:
                engine.on_kline(
                    k.start_ns,
                    float(k.open),
                    float(k.high),
                    float(k.low),
                    float(k.close),
                    float(k.volume),
                    k.confirm,
                )
                xs.append(engine.x.tolist())
                kinds.append("kline")
        if ready_at < 0 and engine.ready():
            ready_at = len(xs) - 1
    assert engine is not None
    return EngineRun(xs, kinds, ready_at, engine)


# -- the reference: dicts, lists, loops, math --------------------------------------------------


@dataclass
class Ref:
    """Everything the reference derives from the recording, in processing order."""

    tick: Decimal = Decimal(0)
    lot: Decimal = Decimal(0)
    kinds: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)  # event time as stamped
    t_eff: list[int] = field(default_factory=list)  # running max: the time EW sums decay to
    tops: list[Any] = field(default_factory=list)  # book events: (bids, asks) best first
    trades: list[tuple[int, int]] = field(default_factory=list)  # (qty_lots, side)
    klines: list[tuple[int, float, float, float, float, bool]] = field(default_factory=list)


def load_reference(path: Path, depth: int) -> Ref:
    ref = Ref()
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    t_max = -1
    synced = False
    with gzip.open(path, "rt") as fh:
        for line in fh:
            obj = json.loads(line.split(" ", 1)[1])
            topic = obj.get("topic", "")
            if not topic:
                inst = obj["result"]["list"][0]
                ref.tick = Decimal(inst["priceFilter"]["tickSize"])
                ref.lot = Decimal(inst["lotSizeFilter"]["qtyStep"])
                continue
            events: list[tuple[str, int, Any]] = []
            if topic.startswith("orderbook.") and not (obj["type"] == "snapshot" or synced):
                continue  # deltas before the first snapshot (a converter keeps the source's)
            if topic.startswith("orderbook."):
                synced = True
                data = obj["data"]
                if obj["type"] == "snapshot":
                    bids.clear()
                    asks.clear()
                for levels, side in ((data["b"], bids), (data["a"], asks)):
                    for px, qty in levels:
                        p, q = int(Decimal(px) / ref.tick), int(Decimal(qty) / ref.lot)
                        if q:
                            side[p] = q
                        else:
                            side.pop(p, None)
                top = (sorted(bids.items(), reverse=True)[:depth], sorted(asks.items())[:depth])
                # venue time as the codec takes it: matching-engine time `cts`, else `ts`
                ts_ms = obj.get("cts") or obj["ts"]
                events.append(("book", ts_ms * 1_000_000, top))
            elif topic.startswith("publicTrade."):
                for t in obj["data"]:
                    side = BUY if t["S"] == "Buy" else SELL
                    events.append(
                        ("trade", t["T"] * 1_000_000, (int(Decimal(t["v"]) / ref.lot), side))
                    )
            elif topic.startswith("kline."):
                for k in obj["data"]:
                    kl = (k["start"] * 1_000_000, float(k["open"]), float(k["high"]),
                          float(k["low"]), float(k["close"]), bool(k["confirm"]))  # fmt: skip
                    events.append(("kline", 0, kl))
            for kind, ts, payload in events:
                ref.kinds.append(kind)
                ref.ts.append(ts)
                if kind != "kline":  # klines do not move the EW clock
                    t_max = max(t_max, ts)
                ref.t_eff.append(t_max)
                ref.tops.append(payload if kind == "book" else None)
                ref.trades.append(payload if kind == "trade" else (0, 0))
                ref.klines.append(payload if kind == "kline" else None)  # type: ignore[arg-type]
    return ref


def sample_std(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def close(got: float, want: float, rel: float, abs_: float = 0.0) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    return abs(got - want) <= max(rel * abs(want), abs_)


@pytest.fixture(scope="module")
def recording(binance_btc_rec: Path) -> Path:
    need(BINANCE_BTC)
    return binance_btc_rec


@pytest.fixture(scope="module")
def ref(recording: Path) -> Ref:
    return load_reference(recording, depth=5)


@pytest.fixture(scope="module")
def run(recording: Path) -> EngineRun:
    return run_engine(recording, CFG)


@pytest.fixture(scope="module")
def run_fixed(recording: Path) -> EngineRun:
    return run_engine(recording, CFG_FIXED)


def book_indexes(ref: Ref) -> list[int]:
    return [i for i, k in enumerate(ref.kinds) if k == "book"]


def checkpoints(ref: Ref) -> list[int]:
    return [*list(range(0, len(ref.kinds), CHECK_EVERY)), len(ref.kinds) - 1]


# -- the tests ---------------------------------------------------------------------------------


def test_features_engine_and_reference_see_same_events(run: EngineRun, ref: Ref) -> None:
    assert run.kinds == ref.kinds
    assert ref.kinds.count("book") > 8000
    assert ref.kinds.count("trade") > 10000
    assert sum(1 for k in ref.klines if k is not None and k[5]) >= 6


@pytest.mark.parametrize(("cfg_name", "k"), [("run", 5), ("run_fixed", 3)])
def test_features_book_snapshot_features_match_dict_book_at_every_update(
    cfg_name: str, k: int, ref: Ref, request: pytest.FixtureRequest
) -> None:
    # the same float operations on the same integers: agreement to rounding (1e-12 relative)
    run: EngineRun = request.getfixturevalue(cfg_name)
    for i in book_indexes(ref):
        bids, asks = ref.tops[i]
        x = run.x[i]
        (pb, qb), (pa, qa) = bids[0], asks[0]
        sb = sum(q for _, q in bids[:k])
        sa = sum(q for _, q in asks[:k])
        mid = (pb + pa) / 2
        want = {
            kf.F_MID_TICKS: mid,
            kf.F_SPREAD_TICKS: float(pa - pb),
            kf.F_SPREAD_BPS: (pa - pb) / mid * 1e4,
            kf.F_IMBALANCE_TOUCH: (qb - qa) / (qb + qa),
            kf.F_IMBALANCE_K: (sb - sa) / (sb + sa),
            kf.F_DEPTH_RATIO: math.log(sb / sa),
            kf.F_MICROPRICE_TICKS: (pb * qa + pa * qb) / (qb + qa),
        }
        for f, w in want.items():
            assert close(x[f], w, 1e-12, 1e-12), (i, f, x[f], w)


def ew_sum(
    ref: Ref, marks: list[tuple[int, float]], c: int, half_life_s: float
) -> tuple[float, float]:
    # sum of m * 2^(-(T_c - T_i) / H) over marks (event index i <= c, mark m), and of |m|
    t_c = ref.t_eff[c]
    s = s_abs = 0.0
    for i, m in marks:
        if i > c:
            break
        w = 2.0 ** (-(t_c - ref.t_eff[i]) / 1e9 / half_life_s)
        s += m * w
        s_abs += abs(m) * w
    return s, s_abs


def ew_norm(ref: Ref, c: int, half_life_s: float) -> float:
    # integral of the decay kernel from the first book/trade event to T_c, in seconds
    lam = math.log(2.0) / half_life_s
    t0 = next(ref.t_eff[i] for i, k in enumerate(ref.kinds) if k != "kline")
    return (1.0 - math.exp(-lam * (ref.t_eff[c] - t0) / 1e9)) / lam


def flow_marks(ref: Ref) -> dict[str, list[tuple[int, float]]]:
    ofi: list[tuple[int, float]] = []
    q_bid: list[tuple[int, float]] = []
    q_ask: list[tuple[int, float]] = []
    prev = None
    for i in book_indexes(ref):
        bids, asks = ref.tops[i]
        (pb, qb), (pa, qa) = bids[0], asks[0]
        if prev is not None:
            pb0, qb0, pa0, qa0 = prev
            e = 0
            e += qb if pb >= pb0 else 0
            e -= qb0 if pb <= pb0 else 0
            e -= qa if pa <= pa0 else 0
            e += qa0 if pa >= pa0 else 0
            ofi.append((i, e))
            if pb == pb0:
                q_bid.append((i, qb - qb0))
            if pa == pa0:
                q_ask.append((i, qa - qa0))
        prev = (pb, qb, pa, qa)
    trades = [(i, q, s) for i, (q, s) in enumerate(ref.trades) if ref.kinds[i] == "trade"]
    return {
        "ofi": ofi,
        "q_bid": q_bid,
        "q_ask": q_ask,
        "delta": [(i, q * s) for i, q, s in trades],
        "count": [(i, 1.0) for i, _, _ in trades],
        "volume": [(i, q) for i, q, _ in trades],
    }


def test_features_ew_flow_matches_explicit_sums_at_checkpoints(run: EngineRun, ref: Ref) -> None:
    # The engine decays recursively (one exp per event); the reference sums every past mark
    # with its own weight. Rounding differs by about 1e-16 per event, so over ~20,000 events the
    # gap stays below 1e-10 of the sum of |mark| * weight (the scale the rounding acts on).
    marks = flow_marks(ref)
    h_f, h_q = CFG.flow_halflife_s, CFG.queue_halflife_s
    tol = 1e-10
    for c in checkpoints(ref)[1:]:
        x = run.x[c]
        ofi, ofi_abs = ew_sum(ref, marks["ofi"], c, h_f)
        assert close(x[kf.F_OFI], ofi, 0.0, tol * ofi_abs + 1e-9), (c, x[kf.F_OFI], ofi)
        delta, delta_abs = ew_sum(ref, marks["delta"], c, h_f)
        assert close(x[kf.F_DELTA_EW_LOTS], delta, 0.0, tol * delta_abs + 1e-9)
        w_f, w_q = ew_norm(ref, c, h_f), ew_norm(ref, c, h_q)
        count, _ = ew_sum(ref, marks["count"], c, h_f)
        volume, _ = ew_sum(ref, marks["volume"], c, h_f)
        assert close(x[kf.F_TRADE_RATE_HZ], count / w_f, 1e-9)
        assert close(x[kf.F_AVG_TRADE_LOTS], volume / count, 1e-9)
        qb, qb_abs = ew_sum(ref, marks["q_bid"], c, h_q)
        qa, qa_abs = ew_sum(ref, marks["q_ask"], c, h_q)
        assert close(x[kf.F_QUEUE_PRESSURE_BID], qb / w_q, 0.0, (tol * qb_abs + 1e-9) / w_q)
        assert close(x[kf.F_QUEUE_PRESSURE_ASK], qa / w_q, 0.0, (tol * qa_abs + 1e-9) / w_q)
        assert close(
            x[kf.F_QUEUE_PRESSURE], (qb - qa) / w_q, 0.0, (tol * (qb_abs + qa_abs) + 2e-9) / w_q
        )


def test_features_cum_delta_is_exact_at_every_trade(run: EngineRun, ref: Ref) -> None:
    total = 0
    for i, kind in enumerate(ref.kinds):
        if kind == "trade":
            q, s = ref.trades[i]
            total += q * s
            assert run.x[i][kf.F_CUM_DELTA_LOTS] == total


def clock_samples(ref: Ref, period_ns: int) -> list[tuple[int, float, float]]:
    # (clock point, mid, spread ticks) for every clock point from the first book on: the book
    # in force at t is the last book update stamped <= t (book times are non-decreasing here)
    books = book_indexes(ref)
    times = [ref.ts[i] for i in books]
    assert times == sorted(times)
    t = -(-times[0] // period_ns) * period_ns
    out = []
    while t < times[-1]:
        j = bisect.bisect_right(times, t) - 1
        (pb, _), (pa, _) = ref.tops[books[j]][0][0], ref.tops[books[j]][1][0]
        out.append((t, (pb + pa) / 2, float(pa - pb)))
        t += period_ns
    return out


@pytest.mark.parametrize(("cfg_name", "cfg"), [("run", CFG), ("run_fixed", CFG_FIXED)])
def test_features_realized_vol_and_spread_z_match_window_definitions(
    cfg_name: str, cfg: FeaturesConfig, ref: Ref, request: pytest.FixtureRequest
) -> None:
    # Two-pass sample std over sliced windows vs running sums (re-summed once per window):
    # tick changes and spreads are half-integers, so those sums are exact and we allow 1e-12.
    # Log returns (~1e-5) lose ~1e-16 relative per add/subtract over at most one window: 1e-9
    # relative; and when the window is flat the leftover of the sum of squares (~1e-16 of
    # ~1e-8) under the square root can reach ~1e-13, so 1e-12 absolute (1e-8 of BTC's typical
    # ~1e-4 per sqrt(s)).
    run: EngineRun = request.getfixturevalue(cfg_name)
    period_ns = round(cfg.vol_sample_s * 1e9)
    samples = clock_samples(ref, period_ns)
    assert len(samples) > 3 * max(cfg.vol_window, cfg.spread_window)
    root_t = math.sqrt(cfg.vol_sample_s)
    checked = 0
    books = book_indexes(ref)
    for c in checkpoints(ref):
        last_book = books[bisect.bisect_right(books, c) - 1]
        taken = [s for s in samples if s[0] < ref.ts[last_book]]
        mids = [m for _, m, _ in taken]
        d = [b - a for a, b in itertools.pairwise(mids)][-cfg.vol_window :]
        r = [math.log(b / a) for a, b in itertools.pairwise(mids)][-cfg.vol_window :]
        x = run.x[c]
        assert close(x[kf.F_RV_TICKS_PER_SQRT_S], sample_std(d) / root_t, 1e-12, 1e-12), c
        assert close(x[kf.F_RV_LOG_PER_S], sample_std(r) / root_t, 1e-9, 1e-12), c
        spreads = [s for _, _, s in taken][-cfg.spread_window :]
        (pb, _), (pa, _) = ref.tops[last_book][0][0], ref.tops[last_book][1][0]
        std = sample_std(spreads)
        if len(spreads) < 2:
            want = math.nan
        elif std > 0:
            want = (pa - pb - sum(spreads) / len(spreads)) / std
        else:
            want = 0.0 if pa - pb == spreads[0] else math.nan
        assert close(x[kf.F_SPREAD_Z], want, 1e-9, 1e-12), (c, x[kf.F_SPREAD_Z], want)
        checked += not math.isnan(want)
    assert checked > 100
    assert 0 < run.ready_at < len(ref.kinds) // 2


@pytest.mark.parametrize(("cfg_name", "cfg"), [("run", CFG), ("run_fixed", CFG_FIXED)])
def test_features_garman_klass_matches_closed_candles(
    cfg_name: str, cfg: FeaturesConfig, ref: Ref, request: pytest.FixtureRequest
) -> None:
    # per-candle formula and a mean of at most gk_window terms: 1e-12 relative
    run: EngineRun = request.getfixturevalue(cfg_name)
    taken: list[float] = []
    last_start = -1
    for i, kl in enumerate(ref.klines):
        if kl is not None and kl[5] and kl[0] > last_start:
            last_start = kl[0]
            _, o, h, lo, c, _ = kl
            taken.append(0.5 * math.log(h / lo) ** 2 - (2 * math.log(2) - 1) * math.log(c / o) ** 2)
        window = taken[-cfg.gk_window :]
        want = math.sqrt(sum(window) / len(window) / 60.0) if window else math.nan
        assert close(run.x[i][kf.F_GK_LOG_PER_S], want, 1e-12), i
    assert len(taken) > cfg.gk_window


def vpin_reference(ref: Ref, bucket_lots: int, n_buckets: int) -> tuple[int, list[float]]:
    """(bucket volume, vpin after every event) from cumulative volume intervals."""
    trades = [(i, ref.ts[i], *ref.trades[i]) for i, k in enumerate(ref.kinds) if k == "trade"]
    start = 0
    if bucket_lots == 0:  # auto: the first 60 s of trades measure the volume
        t0 = trades[0][1]
        start = next(j for j, t in enumerate(trades) if t[1] >= t0 + 60 * SEC)
        calib = sum(t[2] for t in trades[:start])
        bucket_lots = max(1, (calib + 5) // 10)
    buy: list[int] = []
    sell: list[int] = []
    done_after: dict[int, int] = {}  # event index -> full buckets so far
    cum = 0
    for i, _, q, s in trades[start:]:
        lo, hi = cum, cum + q  # this trade fills volume [lo, hi)
        b = lo // bucket_lots
        while b * bucket_lots < hi:
            overlap = min(hi, (b + 1) * bucket_lots) - max(lo, b * bucket_lots)
            while len(buy) <= b:
                buy.append(0)
                sell.append(0)
            if s == BUY:
                buy[b] += overlap
            else:
                sell[b] += overlap
            b += 1
        cum = hi
        done_after[i] = cum // bucket_lots
    out = []
    full = 0
    for i in range(len(ref.kinds)):
        full = done_after.get(i, full)
        last = range(max(0, full - n_buckets), full)
        imb = [abs(buy[b] - sell[b]) for b in last]
        out.append(sum(imb) / (len(imb) * bucket_lots) if imb else math.nan)
    return bucket_lots, out


@pytest.mark.parametrize(("cfg_name", "cfg"), [("run", CFG), ("run_fixed", CFG_FIXED)])
def test_features_vpin_matches_volume_interval_buckets(
    cfg_name: str, cfg: FeaturesConfig, ref: Ref, request: pytest.FixtureRequest
) -> None:
    # integer bucket sums on both sides and one division: 1e-12 relative
    run: EngineRun = request.getfixturevalue(cfg_name)
    fixed = round(Decimal(str(cfg.vpin_bucket_volume)) / ref.lot)
    bucket, want = vpin_reference(ref, int(fixed), cfg.vpin_buckets)
    assert vpin_bucket_lots(run.engine) == bucket
    for i, w in enumerate(want):
        assert close(run.x[i][kf.F_VPIN], w, 1e-12), (i, run.x[i][kf.F_VPIN], w)
    assert sum(1 for w in want if not math.isnan(w)) > 1000


# -- glue --------------------------------------------------------------------------------------


def test_features_values_keys_follow_x_and_are_nan_before_data() -> None:
    eng = FeatureEngine(FeaturesConfig(), 0.1)
    vals = eng.values()
    assert list(vals) == list(FEATURE_NAMES)
    assert sorted(mf.FEATURE_INDEX.values()) == list(range(kf.N_FEATURES))
    for name in ("imbalance_touch", "imbalance_k", "depth_ratio", "microprice_ticks",
                 "queue_pressure", "trade_rate_hz", "avg_trade_lots", "rv_ticks_per_sqrt_s",
                 "rv_log_per_s", "gk_log_per_s", "spread_bps", "spread_z", "vpin"):  # fmt: skip
        assert math.isnan(vals[name]), name
    assert vals["ofi"] == vals["cum_delta_lots"] == vals["delta_ew_lots"] == 0.0
    assert not eng.ready()
    # each index constant F_<NAME> is the position of the key "<name>"
    consts = {n: getattr(mf, n) for n in mf.__all__ if n.startswith("F_")}
    assert {FEATURE_NAMES[i]: n[2:].lower() for n, i in consts.items()} == {
        n[2:].lower(): n[2:].lower() for n in consts
    }


def test_features_nbytes_fixed_by_config_not_by_events() -> None:
    eng = FeatureEngine(FeaturesConfig(vol_window=100, spread_window=50), 0.1)
    before = eng.nbytes
    book = L2Book(4)
    book.apply_snapshot([100], [5], [101], [5], u=1, seq=1, ts_exch_ns=0)
    for j in range(500):
        features_on_book(eng, book, j * SEC // 3)
        eng.on_trade(j * SEC // 3, 100, 1 + j % 4, BUY if j % 2 else SELL)
    # the heads plus 2 x 100 returns, 50 spreads, 30 klines, 50 VPIN buckets, 8 bytes each
    assert eng.nbytes == before == 8 * (kf.N_FHEAD + 2 * 100 + 50 + 30 + kf.N_IHEAD + 50)
    assert eng.ready()


def test_features_reset_forgets_everything() -> None:
    eng = FeatureEngine(FeaturesConfig(), 0.1)
    book = L2Book(4)
    book.apply_snapshot([100], [5], [101], [5], u=1, seq=1, ts_exch_ns=0)
    features_on_book(eng, book, SEC)
    eng.on_trade(SEC, 100, 3, BUY)
    eng.reset()
    fresh = FeatureEngine(FeaturesConfig(), 0.1)
    assert np.array_equal(eng.x, fresh.x, equal_nan=True)


def test_features_bad_trade_raises_invariant_violation() -> None:
    eng = FeatureEngine(FeaturesConfig(), 0.1)
    with pytest.raises(InvariantViolation, match="trade"):
        eng.on_trade(SEC, 100, 0, BUY)
    with pytest.raises(InvariantViolation, match="trade"):
        eng.on_trade(SEC, 100, 1, 0)


def test_features_unconfirmed_and_bad_klines_are_not_taken() -> None:
    eng = FeatureEngine(FeaturesConfig(), 0.1)
    eng.on_kline(0, 100.0, 101.0, 99.0, 100.0, 5.0, False)
    assert math.isnan(eng.values()["gk_log_per_s"])
    eng.on_kline(0, 100.0, 99.0, 101.0, 100.0, 5.0, True)
    assert eng.rejected_klines == 1
    eng.on_kline(0, 100.0, 101.0, 99.0, 100.0, 5.0, True)
    assert eng.values()["gk_log_per_s"] > 0


def test_features_fixed_bucket_without_lot_size_raises() -> None:
    with pytest.raises(ValueError, match="lot_size"):
        FeatureEngine(FeaturesConfig(vpin_bucket_volume=1.0), 0.1)
    with pytest.raises(ValueError, match="tick_size"):
        FeatureEngine(FeaturesConfig(), 0.0)
    assert (
        vpin_bucket_lots(FeatureEngine(FeaturesConfig(vpin_bucket_volume=1.0), 0.1, 0.001)) == 1000
    )


def test_features_book_gap_makes_book_features_nan_until_next_book() -> None:
    eng = FeatureEngine(FeaturesConfig(), 0.1)
    book = L2Book(4)
    book.apply_snapshot([100], [5], [101], [5], u=1, seq=1, ts_exch_ns=0)
    features_on_book(eng, book, SEC)
    eng.on_book_gap(2 * SEC)
    assert math.isnan(eng.values()["mid_ticks"])
    features_on_book(eng, book, 3 * SEC)
    assert eng.values()["mid_ticks"] == 100.5
    assert eng.ticks_to_px(100.5) == pytest.approx(10.05)


def test_features_kernels_compile_once_with_engine_types(run: EngineRun) -> None:
    # warmup's sample arguments and the engine's calls give one signature per kernel, so the
    # numba cache warmed at build time is the one the daemon uses
    found = kw.dispatchers()
    for key, disp in found.items():
        if key.startswith("features."):
            disp(*kw.SAMPLE_ARGS[key]())
            assert len(disp.signatures) == 1, (key, disp.signatures)

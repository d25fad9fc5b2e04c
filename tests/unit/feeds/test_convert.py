"""mmd.feeds.convert against the real recordings in ../shared/data/market (SOURCES.md).

The checks rebuild books independently with plain dicts keyed by Decimal price, from the
converted frames and from the raw input, and compare them with the input's own bookTicker.
"""

from __future__ import annotations

import bisect
import gzip
import heapq
import itertools
import json
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mmd.errors import ConfigError
from mmd.feeds.convert.binance_usdm import convert_binance_usdm
from mmd.feeds.convert.cryptofeed import convert_cryptofeed
from mmd.feeds.convert.dispatch import run_convert
from mmd.feeds.recording import parse_recording_name, read_recording

# tests/unit/feeds/<this file>: parents[3] is the repo; the data sits beside it
DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
MARKET = DATA / "market"
BTC_2024 = MARKET / "binance_usdm_btcusdt_2024-07-18_19"
BTC_2023 = MARKET / "binance_usdm_btcusdt_2023-04-04_05"
CRYPTOFEED = MARKET / "bybit_v5_linear_spot_2026-08-09_cryptofeed" / "BYBIT.jsonl"

if not MARKET.is_dir():
    pytest.skip(f"../shared/data not present: {MARKET}", allow_module_level=True)


def _inputs(folder: Path) -> list[Path]:
    # file names carry the UTC day, so name order is time order
    return sorted(folder.glob("*.gz"))


def _raw_lines(folder: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for path in _inputs(folder):
        with gzip.open(path, "rt") as fh:
            for line in fh:
                head, _, body = line.partition(" ")
                out.append((int(head), json.loads(body)))
    return out


class Book:
    """A plain-dict L2 book fed with Bybit orderbook frames."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "snapshot":
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, frame["data"]["b"]), (self.asks, frame["data"]["a"])):
            for px, qty in levels:
                if Decimal(qty) == 0:
                    side.pop(Decimal(px), None)
                else:
                    side[Decimal(px)] = Decimal(qty)

    def top(self) -> tuple[Decimal, Decimal]:
        return max(self.bids), min(self.asks)


@pytest.fixture(scope="module")
def btc_2024(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not BTC_2024.is_dir():
        pytest.skip(f"../shared/data not present: {BTC_2024}")
    out = tmp_path_factory.mktemp("btc2024")
    result = convert_binance_usdm(_inputs(BTC_2024), out, depth=200)
    frames = [(ts, json.loads(raw)) for ts, raw in read_recording(result[0])]
    return {"result": result, "frames": frames, "raw": _raw_lines(BTC_2024)}


@pytest.fixture(scope="module")
def btc_2023(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not BTC_2023.is_dir():
        pytest.skip(f"../shared/data not present: {BTC_2023}")
    out = tmp_path_factory.mktemp("btc2023") / "btc2023.rec.gz"
    result = convert_binance_usdm(_inputs(BTC_2023), out, depth=200)
    frames = [(ts, json.loads(raw)) for ts, raw in read_recording(result[0])]
    return {"result": result, "frames": frames, "out": out}


@pytest.fixture(scope="module")
def cryptofeed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not CRYPTOFEED.is_file():
        pytest.skip(f"../shared/data not present: {CRYPTOFEED}")
    out = tmp_path_factory.mktemp("cryptofeed") / "split"
    result = convert_cryptofeed(CRYPTOFEED, out)
    return {"result": result, "out": out}


# --- Binance USD-M 2024 (dataset A) --------------------------------------------------------


def test_convert_binance_first_line_is_instruments_info_with_inferred_steps(
    btc_2024: dict[str, Any],
) -> None:
    ts, envelope = btc_2024["frames"][0]
    assert ts == btc_2024["raw"][0][0]  # the recorder's first stamp
    assert envelope["retCode"] == 0
    assert envelope["result"]["category"] == "linear"
    (item,) = envelope["result"]["list"]
    assert item["symbol"] == "BTCUSDT"
    # SOURCES.md: BTCUSDT tick / lot 0.10 / 0.001
    assert item["priceFilter"]["tickSize"] == "0.10"
    assert item["lotSizeFilter"]["qtyStep"] == "0.001"
    meta = parse_recording_name(btc_2024["result"][0])
    assert meta is not None
    assert (meta.venue, meta.category, meta.symbol) == ("binanceusdm", "linear", "BTCUSDT")


def _from_snapshot(frames: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The book frames from the first snapshot on (the pre-snapshot deltas left out)."""
    book = [f for _, f in frames if f.get("topic", "").startswith("orderbook.")]
    first = next(i for i, f in enumerate(book) if f["type"] == "snapshot")
    return book[first:]


def test_convert_binance_keeps_depth_messages_before_the_snapshot_whole(
    btc_2024: dict[str, Any],
) -> None:
    # the raw depth messages that precede the REST snapshot line, with their stamps
    raw_pre = []
    for ts, d in btc_2024["raw"]:
        if "lastUpdateId" in d:
            break
        if d.get("stream", "").endswith("@depth@0ms"):
            raw_pre.append((ts, d["data"]))
    assert raw_pre  # SOURCES.md: the snapshot is line 14, after some depth messages
    book = [(ts, f) for ts, f in btc_2024["frames"] if f.get("topic", "").startswith("orderbook.")]
    pre = book[: len(raw_pre)]
    assert book[len(raw_pre)][1]["type"] == "snapshot"
    for (ts, f), (raw_ts, d) in zip(pre, raw_pre, strict=True):
        assert f["type"] == "delta"
        assert ts == raw_ts
        assert (f["ts"], f["cts"], f["data"]["seq"]) == (d["E"], d["T"], d["u"])
        # every level of the message, as sent (sizes as Decimal: "0.000" is written "0")
        for ours, theirs, rev in ((f["data"]["b"], d["b"], True), (f["data"]["a"], d["a"], False)):
            want = sorted(((Decimal(p), Decimal(q)) for p, q in theirs), reverse=rev)
            assert [(Decimal(p), Decimal(q)) for p, q in ours] == want
    # the first book stamp of the output is the input's first depth stamp
    assert book[0][0] == raw_pre[0][0]


def test_convert_binance_book_frames_u_contiguous_and_never_crossed(
    btc_2024: dict[str, Any],
) -> None:
    all_book = [f for _, f in btc_2024["frames"] if f.get("topic") == "orderbook.200.BTCUSDT"]
    assert [f["data"]["u"] for f in all_book] == list(range(1, len(all_book) + 1))
    book_frames = _from_snapshot(btc_2024["frames"])
    assert book_frames[0]["type"] == "snapshot"
    assert all(f["type"] == "delta" for f in book_frames[1:])
    seqs = [f["data"]["seq"] for f in book_frames]
    assert seqs == sorted(set(seqs))
    book = Book()
    for f in book_frames:
        assert set(f) == {"topic", "type", "ts", "data", "cts"}
        assert isinstance(f["ts"], int) and isinstance(f["cts"], int)
        bids = [Decimal(p) for p, _ in f["data"]["b"]]
        asks = [Decimal(p) for p, _ in f["data"]["a"]]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        book.apply(f)
        best_bid, best_ask = book.top()
        assert best_bid < best_ask
        # the Binance book is thousands of levels deep: the view is always full
        assert len(book.bids) == 200 and len(book.asks) == 200
    stamps = [ts for ts, _ in btc_2024["frames"]]
    assert stamps == sorted(stamps)


def test_convert_binance_top_matches_input_bookticker_at_same_update_id(
    btc_2024: dict[str, Any],
) -> None:
    seqs: list[int] = []
    tops: list[tuple[Decimal, Decimal]] = []
    book = Book()
    for f in _from_snapshot(btc_2024["frames"]):
        book.apply(f)
        seqs.append(f["data"]["seq"])
        tops.append(book.top())
    depth_u = {d["data"]["u"] for _, d in btc_2024["raw"] if d.get("stream", "").endswith("0ms")}
    checks = 0
    in_file_order = 0  # SOURCES.md's count: the bookTicker line comes after its depth message
    last_depth_u = None
    for _, d in btc_2024["raw"]:
        stream = d.get("stream", "")
        if stream.endswith("@depth@0ms"):
            last_depth_u = d["data"]["u"]
            continue
        if not stream.endswith("@bookTicker"):
            continue
        t = d["data"]
        # a skipped frame means the view did not change: use the last frame at or before u
        i = bisect.bisect_right(seqs, t["u"]) - 1
        if t["u"] not in depth_u or i < 0:
            continue  # no depth message with this id, or one from before the snapshot
        assert tops[i] == (Decimal(t["b"]), Decimal(t["a"])), t
        checks += 1
        in_file_order += t["u"] == last_depth_u
    assert in_file_order == 106  # SOURCES.md, dataset A: 106 checks, 0 mismatches
    # ids shared by a bookTicker and a depth message regardless of arrival order (measured on
    # this file: 626, one of them from before the REST snapshot)
    assert checks == 625


def test_convert_binance_view_equals_top200_of_independent_full_book(
    btc_2024: dict[str, Any],
) -> None:
    # Oracle: the full Binance book rebuilt from the raw input (sync rule of SOURCES.md).
    raw = btc_2024["raw"]
    snap = next(d for _, d in raw if "lastUpdateId" in d)
    full_b = {Decimal(p): Decimal(q) for p, q in snap["bids"] if Decimal(q)}
    full_a = {Decimal(p): Decimal(q) for p, q in snap["asks"] if Decimal(q)}
    seen_snapshot = False
    out_by_seq: dict[int, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
    book = Book()
    checkpoints: set[int] = set()
    depth_msgs = []
    for _, d in raw:
        if "lastUpdateId" in d:
            seen_snapshot = True
        elif (
            seen_snapshot
            and d.get("stream", "").endswith("@depth@0ms")
            and d["data"]["u"] >= snap["lastUpdateId"]
        ):
            depth_msgs.append(d["data"])
    checkpoints = {m["u"] for m in depth_msgs[::97]} | {depth_msgs[-1]["u"]}
    for f in _from_snapshot(btc_2024["frames"]):
        book.apply(f)
        out_by_seq[f["data"]["seq"]] = (dict(book.bids), dict(book.asks))
    compared = 0
    last_out = None
    for m in depth_msgs:
        for side, levels in ((full_b, m["b"]), (full_a, m["a"])):
            for p, q in levels:
                if Decimal(q):
                    side[Decimal(p)] = Decimal(q)
                else:
                    side.pop(Decimal(p), None)
        last_out = out_by_seq.get(m["u"], last_out)
        if m["u"] in checkpoints:
            assert last_out is not None
            want_b = {p: full_b[p] for p in heapq.nlargest(200, full_b)}
            want_a = {p: full_a[p] for p in heapq.nsmallest(200, full_a)}
            assert last_out == (want_b, want_a)
            compared += 1
    assert compared == len(checkpoints) > 90


def test_convert_binance_trades_all_market_trades_with_bybit_fields(
    btc_2024: dict[str, Any],
) -> None:
    raw_trades = [d["data"] for _, d in btc_2024["raw"] if d.get("stream", "").endswith("@trade")]
    market = [t for t in raw_trades if t["X"] == "MARKET"]
    items = [
        item
        for _, f in btc_2024["frames"]
        if f.get("topic") == "publicTrade.BTCUSDT"
        for item in f["data"]
    ]
    assert len(items) == len(market) == 10_701  # SOURCES.md: 10,701 trade messages
    assert btc_2024["result"].dropped_trades == 0
    for item, t in zip(items, market, strict=True):
        assert item["i"] == str(t["t"])
        assert item["S"] == ("Sell" if t["m"] else "Buy")
        assert Decimal(item["p"]) == Decimal(t["p"]) and Decimal(item["v"]) == Decimal(t["q"])
        assert item["T"] == t["T"]
        assert item["L"] in {"PlusTick", "MinusTick", "ZeroPlusTick", "ZeroMinusTick"}
        assert item["BT"] is False and item["RPI"] is False
    volume = sum(Decimal(i["v"]) for i in items)
    assert volume == Decimal("1122.459")  # SOURCES.md traded volume


def test_convert_binance_klines_every_5s_and_confirmed_minutes_match_trades(
    btc_2024: dict[str, Any],
) -> None:
    klines = [f for _, f in btc_2024["frames"] if f.get("topic") == "kline.1.BTCUSDT"]
    trades = [
        i
        for _, f in btc_2024["frames"]
        if f.get("topic") == "publicTrade.BTCUSDT"
        for i in f["data"]
    ]
    open_pushes = [k for k in klines if not k["data"][0]["confirm"]]
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(open_pushes)]
    assert gaps and max(gaps) < 6_000 and min(gaps) >= 0
    confirmed = [k["data"][0] for k in klines if k["data"][0]["confirm"]]
    assert len(confirmed) >= 7  # the recording spans 8 minute boundaries (479.8 s)
    for c in confirmed:
        assert c["end"] == c["start"] + 59_999 and c["start"] % 60_000 == 0
        inside = [t for t in trades if c["start"] <= t["T"] <= c["end"]]
        if not inside:
            continue
        assert Decimal(c["volume"]) == sum(Decimal(t["v"]) for t in inside)
        assert Decimal(c["high"]) == max(Decimal(t["p"]) for t in inside)
        assert Decimal(c["low"]) == min(Decimal(t["p"]) for t in inside)
        assert c["close"] == inside[-1]["p"]


# --- Binance USD-M 2023 (dataset C: us stamps, markPrice stream, insurance-fund print) ------


def test_convert_binance_2023_insurance_fund_trade_dropped_and_counted(
    btc_2023: dict[str, Any],
) -> None:
    result = btc_2023["result"]
    assert list(result) == [btc_2023["out"]]  # a file path is written exactly
    assert result.dropped_trades == 1
    ids = [
        i["i"] for _, f in btc_2023["frames"] if f.get("topic") == "publicTrade.BTCUSDT"
        for i in f["data"]
    ]  # fmt: skip
    assert "3535191080" not in ids
    assert len(ids) == 12_935 - 1  # SOURCES.md: 12,935 trades, one of them INSURANCE_FUND


def test_convert_binance_2023_microsecond_stamps_become_ns_and_final_top_matches(
    btc_2023: dict[str, Any],
) -> None:
    stamps = [ts for ts, _ in btc_2023["frames"]]
    assert stamps[0] == 1_680_652_700_423_575_000  # first line's 1680652700423575 us
    assert stamps == sorted(stamps)
    book = Book()
    for f in _from_snapshot(btc_2023["frames"]):
        book.apply(f)
        bid, ask = book.top()
        assert bid < ask
    assert book.top() == (Decimal("28140.1"), Decimal("28140.2"))  # SOURCES.md final top


# --- Binance error paths ----------------------------------------------------------------------


def _head_lines(path: Path, n: int) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return [fh.readline() for _ in range(n)]


def test_convert_binance_missing_depth_message_raises_chain_error(tmp_path: Path) -> None:
    if not BTC_2024.is_dir():
        pytest.skip(f"../shared/data not present: {BTC_2024}")
    lines = _head_lines(_inputs(BTC_2024)[0], 300)
    snap_at = next(i for i, line in enumerate(lines) if b"lastUpdateId" in line)
    depth_after = [i for i, line in enumerate(lines) if i > snap_at and b"@depth@0ms" in line]
    del lines[depth_after[3]]
    broken = tmp_path / "btcusdt_broken.gz"
    broken.write_bytes(gzip.compress(b"".join(lines)))
    out = tmp_path / "out.rec.gz"
    with pytest.raises(ValueError, match="chain broken"):
        convert_binance_usdm([broken], out)
    assert list(tmp_path.glob("out.rec.gz*")) == []  # no partial file left behind
    with pytest.raises(ConfigError, match="chain broken") as err:
        run_convert("binance-usdm", [str(broken)], str(out), progress=False)
    assert "\n" not in str(err.value)


def test_run_convert_bad_arguments_raise_one_line_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown kind"):
        run_convert("kraken", [str(tmp_path)], str(tmp_path), progress=False)
    with pytest.raises(ConfigError, match="no such file"):
        run_convert("binance-usdm", [str(tmp_path / "nope.gz")], str(tmp_path), progress=False)
    with pytest.raises(ConfigError, match="no input"):
        run_convert("cryptofeed", [], str(tmp_path), progress=False)
    not_collector = tmp_path / "x.gz"
    not_collector.write_bytes(gzip.compress(b"hello world\n"))
    with pytest.raises(ConfigError, match="not a `<stamp> <json>` line"):
        run_convert("binance-usdm", [str(not_collector)], str(tmp_path), progress=False)


# --- cryptofeed capture (dataset D) -----------------------------------------------------------


def _expected_cryptofeed_frames() -> dict[tuple[str, str], list[tuple[int, bytes]]]:
    # SOURCES.md section D: BYBIT.ws.2 is the linear socket, BYBIT.ws.3 the spot one
    categories = {"BYBIT.ws.2": "linear", "BYBIT.ws.3": "spot"}
    out: dict[tuple[str, str], list[tuple[int, bytes]]] = defaultdict(list)
    with open(CRYPTOFEED, encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["t"] != "recv":
                continue
            topic = json.loads(rec["data"]).get("topic", "")
            if topic.split(".")[0] in ("orderbook", "publicTrade", "kline"):
                key = (categories[rec["conn"]], topic.rsplit(".", 1)[1])
                out[key].append((round(rec["ts"] * 1e9), rec["data"].encode()))
    return out


def test_convert_cryptofeed_splits_by_category_and_symbol_byte_exact(
    cryptofeed: dict[str, Any],
) -> None:
    expected = _expected_cryptofeed_frames()
    written: dict[tuple[str, str], Path] = {}
    for path in cryptofeed["result"]:
        meta = parse_recording_name(path)
        assert meta is not None and meta.venue == "bybit"
        written[(meta.category, meta.symbol)] = path
    assert set(written) == set(expected) == {
        ("linear", "BTCUSDT"), ("linear", "ETHUSDT"), ("linear", "SOLUSDT"),
        ("linear", "DOGEUSDT"), ("spot", "BTCUSDT"), ("spot", "ETHUSDT"),
    }  # fmt: skip
    for key, path in written.items():
        lines = list(read_recording(path))
        envelope = json.loads(lines[0][1])
        assert envelope["result"]["category"] == key[0]
        assert [i["symbol"] for i in envelope["result"]["list"]] == [key[1]]
        assert lines[0][0] == expected[key][0][0]  # stamped with the first frame's ts
        assert lines[1:] == expected[key]
    topics = Counter(
        json.loads(raw)["topic"].split(".")[0]
        for ts, raw in read_recording(written[("linear", "BTCUSDT")])
        if b'"topic"' in raw
    )
    # SOURCES.md: linear BTCUSDT 1 snapshot + 413 deltas, 16 trade frames, 22 klines
    assert topics == {"orderbook": 414, "publicTrade": 16, "kline": 22}


def test_convert_cryptofeed_linear_and_spot_books_kept_apart_final_tops(
    cryptofeed: dict[str, Any],
) -> None:
    tops = {}
    for path in cryptofeed["result"]:
        meta = parse_recording_name(path)
        assert meta is not None
        book = Book()
        last_u = None
        for _, raw in read_recording(path):
            frame = json.loads(raw)
            if not frame.get("topic", "").startswith("orderbook."):
                continue
            u = frame["data"]["u"]
            assert last_u is None or u == last_u + 1
            last_u = u
            book.apply(frame)
            bid, ask = book.top()
            assert bid < ask
        assert len(book.bids) == len(book.asks) == 200
        tops[(meta.category, meta.symbol)] = book.top()
    # SOURCES.md section D final tops
    assert tops[("linear", "BTCUSDT")] == (Decimal("65114.2"), Decimal("65114.3"))
    assert tops[("spot", "BTCUSDT")] == (Decimal("65140.4"), Decimal("65140.5"))
    assert tops[("linear", "ETHUSDT")] == (Decimal("1922.54"), Decimal("1922.55"))


def test_convert_cryptofeed_run_convert_wrong_input_count_raises_config_error(
    tmp_path: Path,
) -> None:
    if not CRYPTOFEED.is_file():
        pytest.skip(f"../shared/data not present: {CRYPTOFEED}")
    with pytest.raises(ConfigError, match="expected one input"):
        run_convert("cryptofeed", [str(CRYPTOFEED), str(CRYPTOFEED)], str(tmp_path), False)

"""Datasets: recording frames -> market series -> (features, label) samples, and time splits.

Core: frames arrive as an iterable (the shell opens the files), nothing here reads a file or a
clock. Time is the frame's receive time `ts_recv_ns` throughout: a decision at t sees exactly
the frames received at or before t (what a live daemon would have seen), so no feature can use
anything after its sample time. Labels look only forward from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import msgspec
import numpy as np
import numpy.typing as npt

from mmd.config import FeaturesConfig, MarketConfig
from mmd.kernels.features import F_MID_TICKS, N_FEATURES
from mmd.learn.features import ADVERSE_FEATURES, MARKET_FEATURES, market_matrix, side_matrix
from mmd.market.hub import MarketHub
from mmd.model.instrument import Instrument

F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class MarketSeries:
    """One symbol's market state over a recording, as arrays.

    Attributes:
        symbol, category: from the recording.
        tick_size: price step.
        ts_ns: int64[n] receive time of each state row (one row per frame that changed the
            symbol's book or trades, once its book is synced and two-sided), nondecreasing.
        fx: float64[n, N_FEATURES] the FeatureEngine's `x` after that frame.
        is_book: bool[n] True when the frame was a book update.
        trade_ts_ns: int64[m] receive time of each public trade (nondecreasing).
        trade_px_ticks, trade_qty_lots: int64[m].
        trade_side: int64[m] aggressor side, +1 buy / -1 sell.
        frames: frames read.
    """

    symbol: str
    category: str
    tick_size: float
    ts_ns: I64Array
    fx: F64Array
    is_book: npt.NDArray[np.bool_]
    trade_ts_ns: I64Array
    trade_px_ticks: I64Array
    trade_qty_lots: I64Array
    trade_side: I64Array
    frames: int

    @property
    def mid_ticks(self) -> F64Array:
        """Mid after each state row, ticks."""
        return self.fx[:, F_MID_TICKS]


def extract_market(
    frames: Iterable[tuple[int, bytes]],
    symbol: str,
    category: str = "linear",
    *,
    market_cfg: MarketConfig | None = None,
    features_cfg: FeaturesConfig | None = None,
    instrument: Instrument | None = None,
) -> MarketSeries:
    """Run the product's MarketHub and FeatureEngine over frames; keep the state after each.

    This is the one place a recording becomes per-decision features: everything downstream
    reads only the returned arrays.

    Args:
        frames: (ts_recv_ns, raw frame) in receive order (replay.merged_frames).
        symbol: the symbol to follow (the recording's instruments-info frame, or `instrument`,
            tells its tick and lot).
        category: reported back only.
        market_cfg, features_cfg: the `[market]` and `[features]` sections (defaults if None).
        instrument: known instrument (hand-built frames carry no instruments-info answer).
    """
    hub = MarketHub(
        [symbol],
        market_cfg or MarketConfig(),
        [instrument] if instrument else (),
        features_cfg=features_cfg,
    )
    ts_rows: list[int] = []
    fx_rows: list[F64Array] = []
    book_rows: list[bool] = []
    tr: dict[str, list[I64Array]] = {"ts": [], "px": [], "qty": [], "side": []}
    n = 0
    last_updates = 0
    trade_cursor = 0
    for ts, raw in frames:
        n += 1
        hub.on_frame(raw, ts)
        st = hub.states.get(symbol)
        if st is None:
            continue
        book_changed = st.book_updates != last_updates
        last_updates = st.book_updates
        traded = st.trades.total != trade_cursor
        if traded:
            new = st.trades.since(trade_cursor)
            trade_cursor = st.trades.total
            k = len(new["ts_ns"])
            tr["ts"].append(np.full(k, ts, np.int64))
            tr["px"].append(new["px_ticks"])
            tr["qty"].append(new["qty_lots"])
            tr["side"].append(new["side"])
        if (book_changed or traded) and st.sync.synced:
            x = st.features.x
            if x[F_MID_TICKS] == x[F_MID_TICKS]:
                ts_rows.append(ts)
                fx_rows.append(x.copy())
                book_rows.append(book_changed)
    st = hub.states.get(symbol)
    tick = st.instrument.tick if st is not None else 1.0

    def cat(parts: list[I64Array]) -> I64Array:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    return MarketSeries(
        symbol=symbol,
        category=category,
        tick_size=float(tick),
        ts_ns=np.array(ts_rows, np.int64),
        fx=np.array(fx_rows, np.float64).reshape(-1, N_FEATURES),
        is_book=np.array(book_rows, bool),
        trade_ts_ns=cat(tr["ts"]),
        trade_px_ticks=cat(tr["px"]),
        trade_qty_lots=cat(tr["qty"]),
        trade_side=cat(tr["side"]),
        frames=n,
    )


# -- labels ------------------------------------------------------------------------------------


class LabelParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How samples and labels are made (`mmd train --set key=value` sets these).

    Adverse selection:
        horizon_s: the mid is read this long after the trade.
        threshold_ticks: a fill is adverse when the mid moved against it by more than this.
        depth_ticks: our quote's distance from the pre-trade mid; a trade is a sample when it
            reaches that price, and the fill is at that price. Negative (the default): a quote
            at the trade's own price, so every trade is a sample.
    Spread:
        decision: "clock" (every interval_s) or "book" (after every book update).
        interval_s: the decision clock period.
        window_s: the window W over which a grid quote's PnL is scored.
        grid_ticks: candidate half spreads, ticks.
        inventory_penalty_ticks: lambda of the risk adjustment, ticks per unit squared.
    """

    horizon_s: float = 5.0
    threshold_ticks: float = 1.0
    depth_ticks: float = -1.0
    decision: Literal["clock", "book"] = "clock"
    interval_s: float = 0.5
    window_s: float = 10.0
    grid_ticks: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
    inventory_penalty_ticks: float = 0.5


@dataclass(frozen=True, slots=True)
class Dataset:
    """Samples in time order.

    Attributes:
        x: float64[n, len(names)] inputs (non-finite values are NaN: missing).
        y: labels (int64 0/1 for adverse, float64 half-spread ticks for spread).
        t_ns: int64[n] sample time (receive time; the features are as of strictly before it
            for adverse samples, at it for spread decisions).
        label_end_ns: int64[n] the last time the label looks at.
        names: the input names, in column order.
        aux: float64[n] the label's raw value (adverse: the markout against us in ticks,
            + = adverse; spread: the best PnL in ticks).
    """

    x: F64Array
    y: npt.NDArray[np.generic]
    t_ns: I64Array
    label_end_ns: I64Array
    names: tuple[str, ...]
    aux: F64Array

    def __len__(self) -> int:
        return int(self.t_ns.shape[0])


def _clean(x: F64Array) -> F64Array:
    x[~np.isfinite(x)] = np.nan
    return x


def adverse_dataset(ms: MarketSeries, p: LabelParams) -> Dataset:
    """One sample per public trade that would have filled our quote.

    For a trade received at t on aggressor side s (+1 buy, -1 sell): the state row is the last
    one received strictly before t (so the trade itself, and its frame, are unseen); m0 its
    mid. Our quote sits on the side the trade hits: at the trade price when depth_ticks < 0,
    else at m0 + s * depth_ticks (the trade is a sample only if s * (px - quote) >= 0). The
    mid at t + horizon (last row received at or before it) is m_h. We sold to a buyer (s = +1)
    or bought from a seller (s = -1) at the quote price q, so the move against us is
    a = s * (m_h - q) ticks, and y = 1 when a > threshold_ticks. Trades with no row before them
    or whose horizon runs past the data's end are left out.
    """
    horizon_ns = round(p.horizon_s * 1e9)
    t = ms.trade_ts_ns
    row = np.searchsorted(ms.ts_ns, t, side="left") - 1
    end_t = t + horizon_ns
    end_row = np.searchsorted(ms.ts_ns, end_t, side="right") - 1
    ok = (row >= 0) & (len(ms.ts_ns) > 0)
    ok &= end_t <= (ms.ts_ns[-1] if len(ms.ts_ns) else -1)
    rows = np.where(ok, row, 0)
    mid0 = ms.mid_ticks[rows] if len(ms.ts_ns) else np.zeros(len(t))
    side = ms.trade_side.astype(np.float64)
    px = ms.trade_px_ticks.astype(np.float64)
    if p.depth_ticks < 0:
        quote = px
    else:
        quote = mid0 + side * p.depth_ticks
        ok &= side * (px - quote) >= 0
    mid_h = ms.mid_ticks[np.where(ok, end_row, 0)] if len(ms.ts_ns) else mid0
    against = side * (mid_h - quote)
    ok &= np.isfinite(against) & np.isfinite(mid0)
    idx = np.flatnonzero(ok)
    xm = market_matrix(ms.fx[rows[idx]], ms.ts_ns[rows[idx]])
    x = _clean(side_matrix(xm, side[idx]))
    return Dataset(
        x=x,
        y=(against[idx] > p.threshold_ticks).astype(np.int64),
        t_ns=t[idx].copy(),
        label_end_ns=end_t[idx].copy(),
        names=ADVERSE_FEATURES,
        aux=against[idx].copy(),
    )


def decision_rows(ms: MarketSeries, p: LabelParams) -> tuple[I64Array, I64Array]:
    """(row index, decision time) of the spread decisions.

    "book": every row that was a book update, at its time. "clock": t_k = t_first + k *
    interval_s, with the last row received at or before t_k.
    """
    if len(ms.ts_ns) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if p.decision == "book":
        rows = np.flatnonzero(ms.is_book).astype(np.int64)
        return rows, ms.ts_ns[rows].copy()
    step = max(1, round(p.interval_s * 1e9))
    times = np.arange(int(ms.ts_ns[0]), int(ms.ts_ns[-1]) + 1, step, dtype=np.int64)
    rows = (np.searchsorted(ms.ts_ns, times, side="right") - 1).astype(np.int64)
    return rows, times


def best_half_spread(
    d_ticks: F64Array, side: F64Array, move_ticks: float, grid: F64Array, penalty: float
) -> tuple[int, float, int]:
    """argmax over the grid of one window's risk-adjusted PnL (see spread_dataset).

    Args:
        d_ticks: each window trade's distance beyond the decision mid in its aggressor's
            direction, s * (px - m0), ticks.
        side: each trade's aggressor side (+1 / -1).
        move_ticks: m_end - m0.
        grid: candidate half spreads (ascending), ticks.
        penalty: lambda, ticks per unit squared.

    Returns:
        (grid index of the best h, its PnL in ticks, total fills over the grid).
    """
    reach = d_ticks[:, None] >= grid[None, :]
    n_ask = (reach & (side[:, None] > 0)).sum(axis=0)
    n_bid = (reach & (side[:, None] < 0)).sum(axis=0)
    q = (n_bid - n_ask).astype(np.float64)
    pnl = grid * (n_ask + n_bid) + q * move_ticks - penalty * q * q
    best = int(np.argmax(pnl))  # first maximum: the narrowest of tied spreads
    return best, float(pnl[best]), int((n_ask + n_bid).sum())


def spread_dataset(ms: MarketSeries, p: LabelParams) -> Dataset:
    """One sample per decision: the ex-post best half spread over the next window_s.

    At a decision at t with mid m0 (state received at or before t), a symmetric one-unit quote
    pair at m0 - h and m0 + h is held for W = window_s. Every trade received in (t, t + W]
    that reaches a quote fills it, one unit per trade: a buy aggressor at px >= m0 + h fills our
    ask, a sell at px <= m0 - h our bid. With n_a asks and n_b bids filled, q = n_b - n_a and
    m_W the mid at t + W, the risk-adjusted PnL in ticks is

        PnL(h) = h * (n_a + n_b) + q * (m_W - m0) - lambda * q^2

    (spread earned, the inventory marked at m_W, minus a quadratic inventory penalty). The
    label is the h of grid_ticks with the highest PnL (the narrowest on ties). Windows where
    no grid quote fills, or that run past the data's end, are left out (the label says nothing).
    """
    rows, times = decision_rows(ms, p)
    w_ns = round(p.window_s * 1e9)
    grid = np.asarray(sorted(p.grid_ticks), np.float64)
    keep: list[int] = []
    ys: list[float] = []
    pnls: list[float] = []
    last = int(ms.ts_ns[-1]) if len(ms.ts_ns) else -1
    lo_all = np.searchsorted(ms.trade_ts_ns, times, side="right")
    hi_all = np.searchsorted(ms.trade_ts_ns, times + w_ns, side="right")
    end_rows = np.searchsorted(ms.ts_ns, times + w_ns, side="right") - 1
    mids = ms.mid_ticks
    for i in range(len(rows)):
        if rows[i] < 0 or times[i] + w_ns > last:
            continue
        m0 = mids[rows[i]]
        lo, hi = lo_all[i], hi_all[i]
        side = ms.trade_side[lo:hi].astype(np.float64)
        d = side * (ms.trade_px_ticks[lo:hi] - m0)
        best, pnl, fills = best_half_spread(
            d, side, float(mids[end_rows[i]] - m0), grid, p.inventory_penalty_ticks
        )
        if fills == 0:
            continue
        keep.append(i)
        ys.append(float(grid[best]))
        pnls.append(pnl)
    idx = np.array(keep, np.int64)
    x = (
        _clean(market_matrix(ms.fx[rows[idx]], times[idx]))
        if len(idx)
        else np.zeros((0, len(MARKET_FEATURES)))
    )
    return Dataset(
        x=x,
        y=np.array(ys, np.float64),
        t_ns=times[idx].copy(),
        label_end_ns=(times[idx] + w_ns).astype(np.int64),
        names=MARKET_FEATURES,
        aux=np.array(pnls, np.float64),
    )


# -- walk-forward splits -----------------------------------------------------------------------


def walk_forward_splits(
    t_ns: I64Array, n_splits: int, purge_ns: int
) -> list[tuple[I64Array, I64Array]]:
    """Expanding-window walk-forward splits by time, purged around each boundary.

    The span [t_min, t_max] is cut into n_splits + 1 equal blocks with boundaries b_1 < ... <
    b_{n_splits + 1} = t_max. Split k (1-based) trains on samples with t < b_k - purge and
    tests on b_k + purge <= t < b_{k+1} (the last block includes t_max). With purge at least
    the label horizon, no training label looks into the test block, and the test block starts
    a full horizon after the last training sample. Splits with an empty side are left out.

    Returns:
        (train indices, test indices) per split, into t_ns.
    """
    if len(t_ns) == 0 or n_splits < 1:
        return []
    t0, t1 = int(t_ns.min()), int(t_ns.max())
    edges = [t0 + (t1 - t0) * j / (n_splits + 1) for j in range(n_splits + 2)]
    out = []
    for k in range(1, n_splits + 1):
        b, nxt = edges[k], edges[k + 1]
        train = np.flatnonzero(t_ns < b - purge_ns)
        last = k == n_splits
        test = np.flatnonzero((t_ns >= b + purge_ns) & ((t_ns <= nxt) if last else (t_ns < nxt)))
        if len(train) and len(test):
            out.append((train, test))
    return out

"""Scrape-time collectors: the metrics read from the hub, the strategies and the trader when
/metrics is scraped, so the hot path never touches prometheus_client. Reads state; changes none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from mmd.market.hub import MarketHub
from mmd.market.provisional import provisional_values
from mmd.strategy.engine import SymbolStrategy
from mmd.strategy.hedge import PortfolioHedge
from mmd.trading.happened import EXCHANGE_REJECT_REASONS
from mmd.trading.trader import Trader


class HubCollector(Collector):
    """Reads MarketHub counters and per-symbol state at scrape time."""

    def __init__(self, hub: MarketHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        stats = hub.stats
        msgs = CounterMetricFamily(
            "mmd_feed_messages", "Frames received and decoded, by topic kind", labels=["topic"]
        )
        for topic, n in sorted(stats.messages.items()):
            msgs.add_metric([topic], n)
        yield msgs
        yield CounterMetricFamily(
            "mmd_feed_decode_errors",
            "Malformed or truncated frames counted and skipped",
            value=stats.decode_errors,
        )
        frame_errors = CounterMetricFamily(
            "mmd_feed_frame_errors",
            "Exceptions absorbed while handling one frame (counted, logged, symbol resynced), "
            "by stage",
            labels=["stage"],
        )
        for stage, n in sorted(stats.frame_errors.items()):
            frame_errors.add_metric([stage], n)
        yield frame_errors
        yield CounterMetricFamily(
            "mmd_feed_dropped_frames",
            "Book frames dropped (duplicate or stale update id, or waiting for a snapshot)",
            value=stats.dropped_frames,
        )
        resyncs = CounterMetricFamily(
            "mmd_feed_resyncs",
            "Book resyncs started, by symbol and reason",
            labels=["symbol", "reason"],
        )
        for (sym, reason), n in sorted(stats.resyncs.items()):
            resyncs.add_metric([sym, reason], n)
        yield resyncs
        rest_err = CounterMetricFamily(
            "mmd_feed_rest_retcode_errors",
            "REST answers with a non-zero retCode",
            labels=["retcode"],
        )
        for code, n in sorted(stats.rest_errors.items()):
            rest_err.add_metric([str(code)], n)
        yield rest_err

        lag = GaugeMetricFamily(
            "mmd_feed_lag_seconds",
            "Receive time minus venue time of the last book frame",
            labels=["symbol"],
        )
        synced = GaugeMetricFamily(
            "mmd_feed_book_synced", "1 while the symbol's book is in sync", labels=["symbol"]
        )
        stale = GaugeMetricFamily(
            "mmd_feed_book_stale",
            "1 while the symbol's book had no recent update",
            labels=["symbol"],
        )
        updates = CounterMetricFamily(
            "mmd_feed_book_updates", "Book frames applied", labels=["symbol"]
        )
        mid = GaugeMetricFamily("mmd_market_mid_price", "Mid price", labels=["symbol"])
        spread = GaugeMetricFamily(
            "mmd_market_spread_bps",
            "Best ask minus best bid over mid, in basis points",
            labels=["symbol"],
        )
        levels = GaugeMetricFamily(
            "mmd_market_book_levels", "Price levels held in the book", labels=["symbol", "side"]
        )
        ring_bytes = GaugeMetricFamily(
            "mmd_market_state_bytes",
            "Bytes held by the book and ring buffers (fixed)",
            labels=["symbol"],
        )
        trades = CounterMetricFamily(
            "mmd_market_trades", "Public trades recorded", labels=["symbol"]
        )
        feats = GaugeMetricFamily(
            "mmd_feature_value",
            "Microstructure features (units in the feature name; see the README)",
            labels=["symbol", "feature"],
        )
        ready = GaugeMetricFamily(
            "mmd_feature_ready",
            "1 once the feature has a value, 0 while it waits for data (e.g. gk_log_per_s for "
            "the first closed 1-minute kline, vpin for its first full volume bucket)",
            labels=["symbol", "feature"],
        )
        provisional = GaugeMetricFamily(
            "mmd_feature_provisional",
            "Stand-in for a feature that has no value yet, only while it has none: "
            "gk_log_per_s of the open 1-minute kline, vpin as |buy - sell| / volume of the "
            "trades so far (one open bucket); never used for trading",
            labels=["symbol", "feature"],
        )
        for sym, st in sorted(hub.states.items()):
            lag.add_metric([sym], st.lag_s)
            synced.add_metric([sym], 1.0 if st.sync.synced else 0.0)
            stale.add_metric([sym], 1.0 if st.stale else 0.0)
            updates.add_metric([sym], st.book_updates)
            trades.add_metric([sym], st.trades.total)
            for name, value in st.features.values().items():
                ready.add_metric([sym, name], 1.0 if value == value else 0.0)
                if value == value:  # NaN until defined: leave the series out
                    feats.add_metric([sym, name], value)
            for name, value in provisional_values(st).items():
                provisional.add_metric([sym, name], value)
            levels.add_metric([sym, "bid"], st.book.n_bids)
            levels.add_metric([sym, "ask"], st.book.n_asks)
            ring_bytes.add_metric([sym], st.nbytes)
            m = st.book.mid_ticks()
            if st.sync.synced and m == m:
                mid.add_metric([sym], m * st.instrument.tick)
                spread.add_metric([sym], 1e4 * st.book.spread_ticks() / m)
        yield from (
            lag,
            synced,
            stale,
            updates,
            mid,
            spread,
            levels,
            ring_bytes,
            trades,
            feats,
            ready,
            provisional,
        )


_GATE_STATES = ("waiting", "fallback", "calibrated")


class StrategyCollector(Collector):
    """Reads each symbol's strategy (quotes, model parameters, warm-up) at scrape time."""

    def __init__(self, strategies: Mapping[str, SymbolStrategy]) -> None:
        self.strategies = strategies

    def collect(self) -> Iterator[Metric]:
        bid = GaugeMetricFamily("mmd_quote_bid_price", "Our best bid quote", labels=["symbol"])
        ask = GaugeMetricFamily("mmd_quote_ask_price", "Our best ask quote", labels=["symbol"])
        half = GaugeMetricFamily(
            "mmd_quote_half_spread_bps",
            "Half of our quoted spread over the mid, in bps",
            labels=["symbol"],
        )
        resv = GaugeMetricFamily(
            "mmd_quote_reservation_price",
            "The model's reservation (indifference) price",
            labels=["symbol"],
        )
        vol = GaugeMetricFamily(
            "mmd_model_volatility",
            "Volatility used for quoting: std of relative mid changes per sqrt(second)",
            labels=["symbol"],
        )
        kappa = GaugeMetricFamily(
            "mmd_model_kappa",
            "Fill-intensity decay kappa, per tick from the mid",
            labels=["symbol"],
        )
        a = GaugeMetricFamily(
            "mmd_model_intensity_a", "Fill intensity at the mid A, per second", labels=["symbol"]
        )
        ready = GaugeMetricFamily(
            "mmd_strategy_ready",
            "1 for the strategy's current warm-up state: waiting, fallback (quoting from "
            "fallback parameters after warmup_s) or calibrated",
            labels=["symbol", "state"],
        )
        fits = CounterMetricFamily(
            "mmd_model_fits", "Intensity refits by outcome", labels=["symbol", "outcome"]
        )
        orders = CounterMetricFamily(
            "mmd_quote_orders", "Quote orders sent by kind", labels=["symbol", "kind"]
        )
        p_adv = GaugeMetricFamily(
            "mmd_adverse_selection_probability",
            "The adverse-selection detector's probability that a fill of our quote on this "
            "side is adverse, at the last decision (side=ask: a buyer lifts it)",
            labels=["symbol", "side"],
        )
        rl_actions = CounterMetricFamily(
            "mmd_rl_action",
            "RL decisions by the action chosen (g<gamma multiplier>_s<skew ticks>), every symbol",
            labels=["action"],
        )
        rl_counts: dict[str, int] = {}
        for sym, s in sorted(self.strategies.items()):
            if s.rl is not None:
                for label, n in zip(s.rl.policy.labels, s.rl.counts.tolist(), strict=True):
                    rl_counts[label] = rl_counts.get(label, 0) + n
            p_buy, p_sell = s.p_adverse
            if p_buy == p_buy and p_sell == p_sell:
                p_adv.add_metric([sym, "ask"], p_buy)
                p_adv.add_metric([sym, "bid"], p_sell)
            cal = s.calibrator
            inst = s.instrument
            for state in _GATE_STATES:
                ready.add_metric([sym, state], 1.0 if s.gate.state == state else 0.0)
            kappa.add_metric([sym], cal.kappa)
            a.add_metric([sym], cal.a)
            fits.add_metric([sym, "good"], cal.fits - cal.poor_fits)
            fits.add_metric([sym, "poor"], cal.poor_fits)
            orders.add_metric([sym, "submit"], s.submits)
            orders.add_metric([sym, "cancel"], s.cancels)
            t = s.target
            if t is None:
                continue
            mid = (t.bids[0][0] + t.asks[0][0]) / 2 if t.bids and t.asks else t.reservation_ticks
            if mid > 0:
                vol.add_metric([sym], cal.sigma / mid)
                half.add_metric([sym], 1e4 * t.half_spread_ticks / mid)
            resv.add_metric([sym], inst.ticks_to_px(t.reservation_ticks))
            if t.bids:
                bid.add_metric([sym], inst.ticks_to_px(t.bids[0][0]))
            if t.asks:
                ask.add_metric([sym], inst.ticks_to_px(t.asks[0][0]))
        for label, n in sorted(rl_counts.items()):
            rl_actions.add_metric([label], n)
        yield from (bid, ask, half, resv, vol, kappa, a, ready, fits, orders, p_adv, rl_actions)


class TraderCollector(Collector):
    """Reads positions, PnL, fills, open orders and the kill switch at scrape time."""

    def __init__(self, trader: Trader) -> None:
        self.trader = trader

    def collect(self) -> Iterator[Metric]:
        tr = self.trader
        pf = tr.portfolio
        pos = GaugeMetricFamily(
            "mmd_position_base", "Position in base units (+ long)", labels=["symbol"]
        )
        pnl = GaugeMetricFamily(
            "mmd_pnl_quote",
            "PnL in quote currency: realized, unrealized (marked to mid), fees (paid, so "
            "subtracted from total; negative = rebates), funding, total",
            labels=["component"],
        )
        sym_pnl = GaugeMetricFamily(
            "mmd_symbol_pnl_quote", "Total PnL per symbol", labels=["symbol"]
        )
        open_orders = GaugeMetricFamily(
            "mmd_orders_open", "Our resting or in-flight orders", labels=["symbol", "side"]
        )
        net_delta = 0.0  # sum of position x mid, quote currency
        for sym, st in sorted(tr.hub.states.items()):
            inst = st.instrument
            lots = pf.position_lots(sym)
            pos.add_metric([sym], inst.lots_to_qty(lots))
            if lots != 0:
                net_delta += lots * inst.lot * st.book.mid_ticks() * inst.tick
            if sym in pf.symbols:
                sym_pnl.add_metric([sym], pf.position(sym).pnl_quote)
            orders = tr.oms.open_orders(sym)
            for side, name in ((1, "buy"), (-1, "sell")):
                open_orders.add_metric([sym, name], sum(1 for o in orders if o.side == side))
        pnl.add_metric(["realized"], pf.realized_quote)
        pnl.add_metric(["unrealized"], pf.unrealized_quote)
        pnl.add_metric(["fees"], pf.fees_quote)
        pnl.add_metric(["funding"], pf.funding_quote)
        pnl.add_metric(["total"], pf.total_pnl_quote)
        fills = CounterMetricFamily("mmd_fills", "Paper fills by side", labels=["side"])
        fills.add_metric(["buy"], tr.fills_by_side[1])
        fills.add_metric(["sell"], tr.fills_by_side[-1])
        rej = CounterMetricFamily(
            "mmd_orders_rejected",
            "Commands refused by the paper exchange or the risk gate",
            labels=["source", "reason"],
        )
        # every label of the bounded sets, zeros included (a stable series set)
        for reason in (*EXCHANGE_REJECT_REASONS, "other"):
            rej.add_metric(["exchange", reason], tr.rejected_by_reason.get(reason, 0))
        for reason, n in sorted(tr.risk.rejections.items()):
            rej.add_metric(["risk", reason], n)
        markout = SummaryMetricFamily(
            "mmd_fill_markout_ticks",
            "Markout of our fills: side * (mid h seconds after the fill - fill price), in ticks "
            "(negative = adverse selection); mean = _sum / _count",
            labels=["symbol", "horizon"],
        )
        for (sym, h), (total, count) in sorted(tr.markouts.items()):
            # the count is kept as a float beside the sum; rendered the same as an int
            markout.add_metric([sym, f"{h}s"], count_value=int(count), sum_value=total)
        halted = GaugeMetricFamily("mmd_risk_halted", "1 while the kill switch holds quotes")
        halted.add_metric([], 1.0 if tr.risk.halted else 0.0)
        net = GaugeMetricFamily(
            "mmd_net_delta_quote",
            "Net delta of the book: sum of position x mid over the symbols, "
            "quote currency (NaN while a held symbol has no mid)",
        )
        net.add_metric([], net_delta)
        yield from (pos, pnl, sym_pnl, open_orders, fills, rej, markout, halted, net)
        if tr.hedge is not None:
            yield from _hedge_metrics(tr.hedge)


def _hedge_metrics(hedge: PortfolioHedge) -> Iterator[Metric]:
    """The beta hedge's betas, their standard errors and the hedge target ([hedge] enabled)."""
    beta = GaugeMetricFamily(
        "mmd_hedge_beta",
        "Beta of the symbol's log returns on the hedge instrument's (NaN until min_samples)",
        labels=["symbol"],
    )
    se = GaugeMetricFamily(
        "mmd_hedge_beta_se", "Standard error of mmd_hedge_beta", labels=["symbol"]
    )
    for sym, (b, s) in hedge.betas().items():
        beta.add_metric([sym], b)
        se.add_metric([sym], s)
    target = GaugeMetricFamily(
        "mmd_hedge_target_lots",
        "Hedge target in the hedge instrument's lots: -sum beta_i x "
        "notional_i / (mid x lot) of the hedge instrument",
    )
    target.add_metric([], hedge.target_lots)
    skew = GaugeMetricFamily(
        "mmd_hedge_skew_ticks", "Skew given to the hedge instrument's quotes, ticks"
    )
    skew.add_metric([], hedge.skew_ticks)
    yield from (beta, se, target, skew)

"""Portfolio: worked examples and properties of average-cost PnL accounting."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmd.errors import InvariantViolation
from mmd.model.codes import BUY, SELL
from mmd.model.events import MAKER, TAKER, FundingPaid, OrderFilled
from mmd.model.instrument import Instrument
from mmd.trading.portfolio import Portfolio, PortfolioSnapshot

UNIT = Instrument(symbol="UNITUSDT", tick_size="1", lot_size="1")
BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
_ids = itertools.count()


def fill(side: int, px: int, qty: int, fee: float = 0.0, inst: Instrument = UNIT) -> OrderFilled:
    return OrderFilled(
        fill_id=f"f{next(_ids)}",
        client_order_id="o",
        symbol=inst.symbol,
        side=side,
        px_ticks=px,
        qty_lots=qty,
        leaves_lots=0,
        liquidity=MAKER,
        fee_quote=fee,
        ts_exch_ns=0,
    )


def test_portfolio_open_long_sets_position_and_entry() -> None:
    pf = Portfolio()
    pos = pf.apply_fill(fill(BUY, 100, 2), UNIT)
    assert (pos.position_lots, pos.avg_entry_ticks, pos.realized_quote) == (2, 100.0, 0.0)


def test_portfolio_add_averages_entry() -> None:
    pf = Portfolio()
    pf.apply_fill(fill(BUY, 100, 2), UNIT)
    pos = pf.apply_fill(fill(BUY, 110, 2), UNIT)
    assert (pos.position_lots, pos.avg_entry_ticks, pos.realized_quote) == (4, 105.0, 0.0)


def test_portfolio_reduce_realizes_at_average_cost() -> None:
    pf = Portfolio()
    pf.apply_fill(fill(BUY, 100, 2), UNIT)
    pf.apply_fill(fill(BUY, 110, 2), UNIT)
    pos = pf.apply_fill(fill(SELL, 120, 1), UNIT)
    assert pos.position_lots == 3
    assert pos.avg_entry_ticks == pytest.approx(105.0)
    assert pos.realized_quote == pytest.approx(15.0)


def test_portfolio_close_realizes_all_and_resets_entry() -> None:
    pf = Portfolio()
    pf.apply_fill(fill(BUY, 100, 2), UNIT)
    pf.apply_fill(fill(BUY, 110, 2), UNIT)
    pf.apply_fill(fill(SELL, 120, 1), UNIT)
    pos = pf.apply_fill(fill(SELL, 100, 3), UNIT)
    # 15 on the first lot, 3 * (100 - 105) = -15 on the rest
    assert (pos.position_lots, pos.avg_entry_ticks, pos.realized_quote) == (0, 0.0, 0.0)
    assert pos.unrealized_quote == 0.0


def test_portfolio_flip_long_to_short_opens_at_fill_price() -> None:
    pf = Portfolio()
    pf.apply_fill(fill(BUY, 100, 1), UNIT)
    pos = pf.apply_fill(fill(SELL, 90, 3), UNIT)
    assert (pos.position_lots, pos.avg_entry_ticks, pos.realized_quote) == (-2, 90.0, -10.0)
    pos = pf.apply_fill(fill(BUY, 80, 2), UNIT)
    assert (pos.position_lots, pos.realized_quote) == (0, 10.0)


def test_portfolio_short_unrealized_gains_when_price_falls() -> None:
    pf = Portfolio()
    pf.apply_fill(fill(SELL, 100, 2), UNIT)
    assert pf.mark(UNIT.symbol, 95.5) == pytest.approx(9.0)
    assert pf.unrealized_quote == pytest.approx(9.0)
    assert pf.total_pnl_quote == pytest.approx(9.0)


def test_portfolio_fees_subtract_and_rebates_add() -> None:
    pf = Portfolio(initial_cash_quote=1000.0)
    pf.apply_fill(fill(BUY, 100, 1, fee=0.5), UNIT)
    pf.apply_fill(fill(SELL, 101, 1, fee=-0.25), UNIT)
    assert pf.realized_quote == 1.0
    assert pf.fees_quote == pytest.approx(0.25)
    assert pf.total_pnl_quote == pytest.approx(0.75)
    assert pf.cash_quote == pytest.approx(1000.75)
    assert pf.equity_quote == pytest.approx(1000.75)


def test_portfolio_funding_long_pays_positive_rate() -> None:
    pf = Portfolio([BTC])
    pf.apply_fill(fill(BUY, 650_000, 2, inst=BTC), BTC)
    amount = -0.013  # a long pays: 2 lots x 0.001 BTC x 65,000 x 0.0001
    pf.apply_funding(
        FundingPaid(
            funding_id="fu1",
            symbol=BTC.symbol,
            rate=0.0001,
            position_lots=2,
            mark_px=65_000.0,
            amount_quote=amount,
            ts_exch_ns=0,
        )
    )
    assert pf.funding_quote == pytest.approx(-0.013)
    assert pf.total_pnl_quote == pytest.approx(-0.013)


def test_portfolio_unrealized_in_quote_uses_tick_and_lot() -> None:
    pf = Portfolio()
    pf.apply_fill(fill(BUY, 650_000, 10, inst=BTC), BTC)  # 0.01 BTC at 65000.0
    # mark 65010.0: 0.01 * 10 = 0.1 quote
    assert pf.mark(BTC.symbol, 650_100) == pytest.approx(0.1)


def test_portfolio_snapshot_totals_and_msgspec_roundtrip() -> None:
    pf = Portfolio([UNIT, BTC], initial_cash_quote=100.0)
    pf.apply_fill(fill(BUY, 100, 2, fee=0.1), UNIT)
    pf.apply_fill(fill(SELL, 650_000, 10, fee=0.2, inst=BTC), BTC)
    pf.mark(UNIT.symbol, 103)
    pf.mark(BTC.symbol, 649_000)
    snap = pf.snapshot(123)
    assert [p.symbol for p in snap.positions] == ["BTCUSDT", "UNITUSDT"]
    assert snap.unrealized_quote == pytest.approx(6.0 + 1.0)
    assert snap.total_pnl_quote == pytest.approx(7.0 - 0.3)
    assert snap.equity_quote == pytest.approx(100.0 + 6.7)
    assert snap.cash_quote == pytest.approx(100.0 - 0.3)
    again = msgspec.json.decode(msgspec.json.encode(snap), type=PortfolioSnapshot)
    assert again == snap


def test_portfolio_bad_inputs_raise_invariant_violation() -> None:
    pf = Portfolio([UNIT])
    with pytest.raises(InvariantViolation):
        pf.apply_fill(fill(BUY, 100, 0), UNIT)
    with pytest.raises(InvariantViolation):
        pf.apply_fill(fill(BUY, 100, 1, inst=BTC), UNIT)
    with pytest.raises(InvariantViolation):
        pf.apply_fill(fill(BUY, 100, 1, fee=float("nan")), UNIT)
    with pytest.raises(InvariantViolation):
        pf.mark(UNIT.symbol, float("nan"))
    with pytest.raises(InvariantViolation):
        pf.apply_funding(
            FundingPaid(
                funding_id="x",
                symbol="NOPE",
                rate=0.0,
                position_lots=0,
                mark_px=1.0,
                amount_quote=0.0,
                ts_exch_ns=0,
            )
        )


fills_st = st.lists(
    st.tuples(st.sampled_from([BUY, SELL]), st.integers(600_000, 700_000), st.integers(1, 50)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(fills=fills_st, mark=st.integers(600_000, 700_000))
def test_portfolio_realized_plus_unrealized_equals_mark_to_market(
    fills: list[tuple[int, int, int]], mark: int
) -> None:
    pf = Portfolio()
    for side, px, qty in fills:
        pf.apply_fill(fill(side, px, qty, inst=BTC), BTC)
    pf.mark(BTC.symbol, mark)
    # independent: every fill's cash flow plus the final position at the mark, in ints
    cash = sum(-side * px * qty for side, px, qty in fills)
    position = sum(side * qty for side, _, qty in fills)
    expected = (cash + position * mark) * BTC.tick * BTC.lot
    pos = pf.position(BTC.symbol)
    assert pos.position_lots == position
    assert pf.realized_quote + pf.unrealized_quote == pytest.approx(expected, rel=1e-9, abs=1e-6)
    if position != 0:
        # the open position's entry lies within the prices traded
        pxs = [px for _, px, _ in fills]
        assert min(pxs) - 1e-6 <= pos.avg_entry_ticks <= max(pxs) + 1e-6


@settings(max_examples=200, deadline=None)
@given(fills=fills_st, data=st.data())
def test_portfolio_flat_realized_is_exact_and_order_independent(
    fills: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    position = sum(side * qty for side, _, qty in fills)
    if position != 0:
        fills = [*fills, (SELL if position > 0 else BUY, 650_000, abs(position))]
    shuffled = data.draw(st.permutations(fills))
    cash = sum(-side * px * qty for side, px, qty in fills)
    results = []
    for seq in (fills, shuffled):
        pf = Portfolio()
        for side, px, qty in seq:
            pf.apply_fill(fill(side, px, qty, inst=BTC), BTC)
        assert pf.position_lots(BTC.symbol) == 0
        results.append(pf.realized_quote)
    # bit-identical, and equal to the integer cash flow converted once
    assert results[0] == results[1] == cash * (BTC.tick * BTC.lot)


@settings(max_examples=200, deadline=None)
@given(
    first=st.tuples(st.integers(1, 100), st.integers(1, 1000)),
    second=st.tuples(st.integers(1, 100), st.integers(1, 1000)),
)
def test_portfolio_same_side_fills_average_is_weighted_mean(
    first: tuple[int, int], second: tuple[int, int]
) -> None:
    pf = Portfolio()
    pf.apply_fill(fill(SELL, first[1], first[0], fee=0.0), UNIT)
    pos = pf.apply_fill(fill(SELL, second[1], second[0], fee=0.0), UNIT)
    mean = (first[0] * first[1] + second[0] * second[1]) / (first[0] + second[0])
    assert pos.avg_entry_ticks == pytest.approx(mean)
    assert pos.realized_quote == 0.0


def test_portfolio_taker_flag_is_irrelevant_to_pnl() -> None:
    a, b = Portfolio(), Portfolio()
    a.apply_fill(fill(BUY, 100, 1), UNIT)
    b.apply_fill(msgspec.structs.replace(fill(BUY, 100, 1), liquidity=TAKER), UNIT)
    assert a.snapshot(0) == b.snapshot(0)

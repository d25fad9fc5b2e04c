"""RiskGate: position/notional limits, order rate, stale book, kill switch; DayPnl."""

from __future__ import annotations

import pytest

from mmd.config import RiskConfig
from mmd.errors import InvariantViolation
from mmd.model.codes import BUY, SELL
from mmd.model.events import CancelOrder, SubmitOrder
from mmd.model.instrument import Instrument
from mmd.trading.risk import (
    NS_PER_DAY,
    REASON_BOOK_STALE,
    REASON_HALTED,
    REASON_MAX_NOTIONAL,
    REASON_MAX_POSITION,
    REASON_RATE_LIMIT,
    DayPnl,
    RiskGate,
    utc_day,
)

BTC = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
SYM = BTC.symbol
S = 1_000_000_000


def sub(coid: str, side: int = BUY, qty: int = 1, px: int = 650_000) -> SubmitOrder:
    return SubmitOrder(client_order_id=coid, symbol=SYM, side=side, px_ticks=px, qty_lots=qty)


def cxl(coid: str) -> CancelOrder:
    return CancelOrder(client_order_id=coid, symbol=SYM)


def gate(**cfg: float) -> RiskGate:
    return RiskGate(RiskConfig(**cfg), max_position=0.01, instruments=[BTC])  # type: ignore[arg-type]


def check(
    g: RiskGate,
    cmds: list[SubmitOrder | CancelOrder],
    *,
    now_ns: int = 0,
    pos: int = 0,
    buys: int = 0,
    sells: int = 0,
    stale: bool = False,
):  # type: ignore[no-untyped-def]
    return g.check(
        SYM,
        cmds,
        now_ns=now_ns,
        position_lots=pos,
        open_buy_lots=buys,
        open_sell_lots=sells,
        book_stale=stale,
    )


def test_risk_max_position_lots_from_base_units() -> None:
    # 0.01 / 0.001 = 10 lots (not floored to 9 by binary rounding): a buy to 10 passes, to 11
    # is refused
    allowed, rejected = check(gate(), [sub("a", BUY, 1)], pos=9)
    assert [c.client_order_id for c in allowed] == ["a"] and rejected == []
    allowed, rejected = check(gate(), [sub("b", BUY, 1)], pos=10)
    assert allowed == [] and [r.reason for r in rejected] == [REASON_MAX_POSITION]


def test_risk_submit_within_limit_passes() -> None:
    allowed, rejected = check(gate(), [sub("a", BUY, 2)], pos=5, buys=3)
    assert [c.client_order_id for c in allowed] == ["a"] and rejected == []


def test_risk_submit_beyond_position_with_open_orders_rejected() -> None:
    allowed, rejected = check(gate(), [sub("a", BUY, 3)], pos=5, buys=3)
    assert allowed == [] and rejected[0].reason == REASON_MAX_POSITION


def test_risk_batch_submits_accumulate_against_limit() -> None:
    allowed, rejected = check(
        gate(), [sub("a", SELL, 4), sub("b", SELL, 4), sub("c", SELL, 4)], pos=-1
    )
    assert [c.client_order_id for c in allowed] == ["a", "b"]
    assert [r.command.client_order_id for r in rejected] == ["c"]


def test_risk_reducing_submit_beyond_limit_passes() -> None:
    # already long beyond the limit: a sell only reduces exposure
    allowed, rejected = check(gate(), [sub("a", SELL, 1), sub("b", BUY, 1)], pos=12)
    assert [c.client_order_id for c in allowed] == ["a"]
    assert rejected[0].reason == REASON_MAX_POSITION


def test_risk_max_notional_rejects_large_exposure() -> None:
    # 5 lots = 0.005 BTC at 65000 = 325 quote > 300
    g = gate(max_notional=300.0)
    allowed, rejected = check(g, [sub("a", BUY, 4), sub("b", BUY, 1)])
    assert [c.client_order_id for c in allowed] == ["a"]
    assert rejected[0].reason == REASON_MAX_NOTIONAL


def test_risk_stale_book_blocks_submits_not_cancels() -> None:
    allowed, rejected = check(gate(), [cxl("x"), sub("a")], stale=True)
    assert allowed == [cxl("x")] and rejected[0].reason == REASON_BOOK_STALE


def test_risk_rate_limit_token_bucket_refills_over_time() -> None:
    g = gate(max_orders_per_s=2.0)
    allowed, rejected = check(g, [sub("a"), sub("b"), sub("c")], now_ns=0)
    assert len(allowed) == 2 and rejected[0].reason == REASON_RATE_LIMIT
    allowed, _ = check(g, [sub("d")], now_ns=S // 4)  # half a token
    assert allowed == []
    allowed, _ = check(g, [sub("e")], now_ns=S // 2)  # one token
    assert len(allowed) == 1
    allowed, _ = check(g, [sub("f"), sub("g"), sub("h")], now_ns=100 * S)  # capped at burst
    assert len(allowed) == 2
    assert g.rejections[REASON_RATE_LIMIT] == 3


def test_risk_cancels_pass_when_rate_exhausted_and_consume_tokens() -> None:
    g = gate(max_orders_per_s=2.0)
    allowed, rejected = check(g, [cxl("x"), cxl("y"), cxl("z"), sub("a")], now_ns=0)
    assert allowed == [cxl("x"), cxl("y"), cxl("z")]
    assert rejected[0].reason == REASON_RATE_LIMIT


def test_risk_rate_buckets_are_per_symbol() -> None:
    eth = Instrument(symbol="ETHUSDT", tick_size="0.01", lot_size="0.01")
    g = RiskGate(RiskConfig(max_orders_per_s=1.0), max_position=1.0, instruments=[BTC, eth])
    assert len(check(g, [sub("a")])[0]) == 1
    e = SubmitOrder(client_order_id="e", symbol="ETHUSDT", side=BUY, px_ticks=300_000, qty_lots=1)
    allowed, _ = g.check(
        "ETHUSDT",
        [e],
        now_ns=0,
        position_lots=0,
        open_buy_lots=0,
        open_sell_lots=0,
        book_stale=False,
    )
    assert allowed == [e]


def test_risk_command_for_other_symbol_raises() -> None:
    with pytest.raises(InvariantViolation):
        gate().check(
            "BTCUSDT",
            [CancelOrder(client_order_id="x", symbol="ETHUSDT")],
            now_ns=0,
            position_lots=0,
            open_buy_lots=0,
            open_sell_lots=0,
            book_stale=False,
        )


def test_risk_kill_switch_trips_at_max_loss_and_only_cancels_pass() -> None:
    g = gate(max_loss_per_day=100.0)
    assert g.on_pnl(5 * S, -99.99) is False
    assert g.on_pnl(6 * S, -100.0) is True
    assert g.halted and "max_loss_per_day" in g.halt_reason
    allowed, rejected = check(g, [sub("a"), cxl("x")])
    assert allowed == [cxl("x")] and rejected[0].reason == REASON_HALTED


def test_risk_kill_switch_does_not_auto_reset_next_day() -> None:
    g = gate(max_loss_per_day=100.0)
    g.on_pnl(10 * S, -150.0)
    assert g.on_pnl(NS_PER_DAY + 10 * S, 0.0) is True
    g.reset()
    assert not g.halted and g.halt_state is None


def test_risk_kill_switch_zero_limit_never_trips() -> None:
    assert gate(max_loss_per_day=0.0).on_pnl(0, -1e12) is False


def test_risk_restore_halt_same_utc_day_stays_halted() -> None:
    g = gate(max_loss_per_day=100.0)
    g.on_pnl(3 * NS_PER_DAY + 10 * S, -150.0)
    state = g.halt_state
    same_day = gate(max_loss_per_day=100.0)
    same_day.restore_halt(state, 4 * NS_PER_DAY - 1)
    assert same_day.halted and same_day.halt_reason == g.halt_reason
    next_day = gate(max_loss_per_day=100.0)
    next_day.restore_halt(state, 4 * NS_PER_DAY)
    assert not next_day.halted


def test_day_pnl_baseline_resets_at_utc_midnight() -> None:
    d = DayPnl()
    assert d.update(10 * S, 50.0) == 0.0
    assert d.update(20 * S, 30.0) == -20.0
    # the new day's baseline is the last total of the previous day
    assert d.update(NS_PER_DAY + 5, 25.0) == -5.0
    assert utc_day(NS_PER_DAY + 5) == 1


def test_day_pnl_restored_state_continues_the_day() -> None:
    d = DayPnl()
    d.update(10 * S, 50.0)
    restarted = DayPnl(d.state())
    assert restarted.update(11 * S, 40.0) == -10.0

"""Trading states an operator trusts: each cause keeps its own setting and only its
owner clears it, the strictest applies, REDUCING lets only reducing trades through,
the daily loss breaker trips by itself, and everything survives a restart. Also the
levers by hand: the kill switch, a dry run that changes nothing, an order placed by
a person, and limits changed at run time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from audit.memory_store import InMemoryEventStore
from client.marketdata import batches, load_bars
from domain.errors import InvalidInput
from domain.market import MarketBatch
from domain.orders import ManualOrder, OrderStatus, Side
from domain.risk import TradingCause, TradingState
from engines.clock import datetime_to_ns
from server.bootstrap import build_core
from server.settings import Settings
from tests.core.harness import Harness, failed_codes, make_harness
from tests.support.market import SESSION_START

AUDIT = TradingCause.AUDIT_STORE
BREAKER = TradingCause.DAILY_LOSS_BREAKER


@pytest.fixture
def paper(calendar: Any) -> Harness:
    return make_harness(calendar)


def _buy_and_fill(harness: Harness, quantity: str = "40", price: str = "100") -> None:
    decision = harness.signal(quantity=quantity, price=price)
    assert decision.approved, decision.rejections
    assert harness.core.portfolio.quantity("SPY") == Decimal(quantity)


def test_each_cause_keeps_its_setting_and_the_strictest_applies(paper: Harness) -> None:
    core = paper.core
    core.set_trading_state(TradingState.REDUCING, "alice", "risk review")
    core.set_trading_state(TradingState.HALTED, "system:audit-store", "db down", cause=AUDIT)
    assert core.risk.state is TradingState.HALTED

    resumed = core.set_trading_state(TradingState.ACTIVE, "alice", "review done")

    assert resumed.changed  # the operator's own setting is cleared ...
    assert core.risk.state is TradingState.HALTED  # ... the store's halt is not theirs
    assert set(core.risk.causes) == {AUDIT}
    core.set_trading_state(TradingState.ACTIVE, "system:audit-store", "db back", cause=AUDIT)
    assert core.risk.trading.state is TradingState.ACTIVE and not core.risk.causes


def test_setting_what_is_in_force_records_nothing_and_says_who_and_since(paper: Harness) -> None:
    core = paper.core
    first = core.set_trading_state(TradingState.HALTED, "alice", "broker incident")
    before = paper.store.last_seq()

    again = core.set_trading_state(TradingState.HALTED, "bob", "me too")

    assert first.changed and not again.changed
    assert "already HALTED by alice" in again.message and "since" in again.message
    assert "broker incident" in again.message
    assert paper.store.last_seq() == before
    assert core.risk.trading.changed_by == "alice"


def test_a_state_change_records_who_why_and_the_previous_state(paper: Harness) -> None:
    paper.core.set_trading_state(TradingState.REDUCING, "alice", "too much risk")
    paper.core.set_trading_state(TradingState.HALTED, "alice", "worse")

    [first, second] = paper.payloads("TradingStateChanged")
    assert (first["previous"], first["status"]["state"]) == ("ACTIVE", "REDUCING")
    assert (second["previous"], second["status"]["state"]) == ("REDUCING", "HALTED")
    assert second["status"]["changed_by"] == "alice"
    assert second["status"]["reason"] == "worse"
    assert second["status"]["cause"] == "OPERATOR"


def test_before_any_change_the_state_has_no_time(paper: Harness) -> None:
    assert paper.core.risk.trading.changed_at is None  # "since start", never the epoch


def test_reducing_refuses_new_exposure_and_lets_a_reducing_trade_through(paper: Harness) -> None:
    _buy_and_fill(paper)
    paper.core.set_trading_state(TradingState.REDUCING, "alice", "cutting risk")

    more = paper.signal(quantity="1", price="100")
    cut = paper.signal(side=Side.SELL, quantity="40", price="100", confidence=0.0)

    assert "TRADING_REDUCING" in failed_codes(more)
    assert cut.approved  # even at confidence 0: cutting risk is always possible
    assert paper.core.portfolio.quantity("SPY") == 0


def test_halted_refuses_even_a_reducing_trade(paper: Harness) -> None:
    _buy_and_fill(paper)
    paper.core.set_trading_state(TradingState.HALTED, "alice", "stop everything")

    cut = paper.signal(side=Side.SELL, quantity="40", price="100")

    assert "RISK_ENGINE_DEACTIVATED" in failed_codes(cut)


def test_the_daily_loss_breaker_trips_by_itself_and_a_new_session_clears_it(
    paper: Harness,
) -> None:
    core = paper.core
    core.update_risk_limits({"daily_loss_pct": "0.001"}, "alice", "tight for the test")
    _buy_and_fill(paper, quantity="40", price="100")  # the session opens at 100,000

    falling = paper.signal(symbol="QQQ", quantity="1", price="100", marks={"SPY": 90.0})

    assert core.risk.causes[BREAKER].state is TradingState.REDUCING
    assert core.risk.causes[BREAKER].changed_by == "system:daily-loss-breaker"
    assert "below the session's opening equity" in core.risk.causes[BREAKER].reason
    assert "TRADING_REDUCING" in failed_codes(falling)
    paper.at(SESSION_START.replace(day=SESSION_START.day + 1))
    next_day = paper.signal(symbol="QQQ", quantity="1", price="100")
    assert BREAKER not in core.risk.causes
    assert "TRADING_REDUCING" not in failed_codes(next_day)


def test_only_an_operator_reset_or_a_new_session_clears_the_breaker(paper: Harness) -> None:
    core = paper.core
    core.set_trading_state(
        TradingState.REDUCING, "system:daily-loss-breaker", "loss", cause=BREAKER
    )
    core.set_trading_state(TradingState.ACTIVE, "alice", "operator resumes")
    assert core.risk.state is TradingState.REDUCING  # the operator's own cause was clear

    core.set_trading_state(TradingState.ACTIVE, "alice", "reset the breaker", cause=BREAKER)

    assert core.risk.trading.state is TradingState.ACTIVE


def test_states_and_limits_survive_a_restart(calendar: Any) -> None:
    store = InMemoryEventStore()
    core = build_core(Settings(trading_clock="event"), store, calendar)
    core.set_trading_state(TradingState.REDUCING, "alice", "review")
    core.set_trading_state(TradingState.REDUCING, "system:daily-loss-breaker", "x", cause=BREAKER)
    core.update_risk_limits({"max_order_quantity": "7"}, "alice", "new desk limit")
    store.flush()

    restarted = build_core(Settings(trading_clock="event"), store, calendar)

    assert {c: s.state for c, s in restarted.risk.causes.items()} == {
        TradingCause.OPERATOR: TradingState.REDUCING,
        BREAKER: TradingState.REDUCING,
    }
    assert restarted.risk.config.as_limits()["max_order_quantity"] == "7"


def test_counts_since_the_log_began_are_rebuilt_at_start_up(calendar: Any) -> None:
    harness = make_harness(calendar)
    harness.signal(quantity="40")
    harness.signal(quantity="99999")
    restarted = build_core(Settings(trading_clock="event"), harness.store, calendar)

    counts = restarted.risk.stats.per_rule["MaxPositionSizeRule"]
    assert (counts.passed, counts.rejected) == (0, 0)  # since this start
    assert (counts.passed_total, counts.rejected_total) == (1, 1)  # since the log began


def test_limits_are_validated_as_a_whole_and_audited_with_old_and_new(paper: Harness) -> None:
    core = paper.core
    before = (paper.store.last_seq(), core.risk.config)

    with pytest.raises(InvalidInput, match="no_such_limit"):
        core.update_risk_limits({"max_order_quantity": "5", "no_such_limit": "1"}, "alice", "")

    assert (paper.store.last_seq(), core.risk.config) == before
    core.update_risk_limits({"max_order_quantity": "5"}, "alice", "smaller orders")
    [change] = paper.payloads("RiskLimitsChanged")
    assert change["previous"]["max_order_quantity"] != "5"
    assert change["limits"]["max_order_quantity"] == "5"
    assert change["changed_by"] == "alice"
    assert "ORDER_QUANTITY_EXCEEDS_LIMIT" in failed_codes(paper.signal(quantity="6"))


# --- by hand -----------------------------------------------------------------------------


def test_a_manual_order_meets_the_same_gate_and_is_placed(paper: Harness) -> None:
    paper.signal(quantity="1", price="100")  # gives SPY a price

    decision, order = paper.core.submit_order(ManualOrder("SPY", Side.BUY, Decimal(5)), "carol")

    assert decision.approved and decision.signal.source == "manual:carol"
    assert order is not None and order.status is OrderStatus.FILLED


def test_a_manual_order_for_an_unknown_symbol_changes_nothing(paper: Harness) -> None:
    before = paper.store.last_seq()
    with pytest.raises(InvalidInput, match="unknown symbol"):
        paper.core.submit_order(ManualOrder("ZZZZ", Side.BUY, Decimal(5)), "carol")
    assert paper.store.last_seq() == before


def _scenario(harness: Harness, check: bool) -> list[tuple[str, str]]:
    harness.signal(quantity="10", price="100")
    order = ManualOrder("SPY", Side.BUY, Decimal(10))
    if check:  # a dry run of exactly the next order: were it counted, the duplicate
        # window and the throttle would see it
        decision, reduces = harness.core.check_order(order, "x")
        assert decision.approved and not reduces
    harness.core.submit_order(order, "x")
    harness.core.submit_order(order, "x")  # refused as a duplicate of the one before
    return [(r.event_type, r.payload) for r in harness.records()]


def test_a_dry_run_changes_nothing_a_later_decision_sees(calendar: Any) -> None:
    without = _scenario(make_harness(calendar), check=False)
    with_check = _scenario(make_harness(calendar), check=True)

    assert with_check == without
    decisions = [p for kind, p in without if kind == "RiskDecisionMade"]
    assert "DUPLICATE_SIGNAL" in decisions[-1] and "DUPLICATE_SIGNAL" not in decisions[-2]


def test_flatten_cancels_closes_and_halts_each_step_audited(paper: Harness) -> None:
    _buy_and_fill(paper)
    core = paper.core

    halted, report = core.flatten("alice", "bad day")

    assert halted.trading.state is TradingState.HALTED
    assert [d.approved for d in report.decisions] == [True]
    assert [o.status for o in report.orders] == [OrderStatus.FILLED]
    assert core.portfolio.quantity("SPY") == 0
    states = [p["status"]["state"] for p in paper.payloads("TradingStateChanged")]
    assert states == ["REDUCING", "HALTED"]
    reasons = [p["status"]["reason"] for p in paper.payloads("TradingStateChanged")]
    assert reasons == ["flatten: bad day"] * 2


def test_the_bundled_daily_bars_never_trap_a_position(calendar: Any) -> None:
    """Streaming the demo's bars used to refuse AAPL sells at confidence 0.33, 0.00 and
    so on while the price fell from 26.8 to about 7: a sell of what is held reduces
    the position, so the confidence rule does not judge it."""
    symbols = ["AAPL", "IBM", "MSFT", "GOOG"]
    harness = make_harness(calendar, start=None, trading_strategy_symbols=",".join(symbols))
    for chunk in batches(load_bars(symbols=symbols), 250):
        harness.core.ingest(_as_batch(chunk), "stream:demo")
    sells = [
        d["decision"]
        for d in harness.payloads("RiskDecisionMade")
        if d["decision"]["signal"]["side"] == "SELL"
    ]

    assert sells, "the bundled data should make the strategy sell"
    refused = [(s["signal"]["symbol"], _codes(s)) for s in sells if not s["approved"]]
    assert refused == []


def _codes(decision: dict[str, Any]) -> set[str]:
    return {v["code"] for v in decision["verdicts"] if not v["passed"]}


def _as_batch(bars: list[Any]) -> MarketBatch:
    return MarketBatch(
        [b.symbol for b in bars],
        [float(b.close) for b in bars],
        [float(b.volume) for b in bars],
        [datetime_to_ns(b.timestamp) for b in bars],
    )

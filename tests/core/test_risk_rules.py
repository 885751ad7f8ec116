"""Each risk rule refuses what it should through the whole core, says why with a
stable code, and a trade that only reduces a position is never refused by a rule
that judges new exposure only (the engine's exemption). Every rule on its own,
with hand-made contexts, is tested in test_risk_limits.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.orders import OrderStatus, Side
from domain.risk import TradingState
from engines.risk.rules import REDUCES_POSITION
from tests.core.fakes import HoldingBroker
from tests.core.harness import Harness, failed_codes, make_harness
from tests.support.market import SESSION_START


@pytest.fixture
def paper(calendar: Any) -> Harness:
    return make_harness(calendar)


@pytest.fixture
def holding(calendar: Any) -> tuple[Harness, HoldingBroker]:
    broker = HoldingBroker()
    return make_harness(calendar, broker), broker


def test_a_trade_within_every_limit_is_approved_with_each_verdict_recorded(paper: Harness) -> None:
    decision = paper.signal(quantity="40", price="100")  # 4,000 of 100,000

    assert decision.approved
    rules = paper.core.risk.rules
    assert [v.rule for v in decision.verdicts] == [r.name for r in rules]
    assert [v.code for v in decision.verdicts] == ["OK"] * len(rules) == ["OK"] * 15
    [payload] = paper.payloads("RiskDecisionMade")
    [size] = [v for v in payload["decision"]["verdicts"] if v["rule"] == "MaxPositionSizeRule"]
    assert size == {
        "rule": "MaxPositionSizeRule",
        "passed": True,
        "code": "OK",
        "detail": "notional=4000.00 limit=5000.00",
    }


def test_position_size_limit_refuses_more_than_five_percent_of_equity(paper: Harness) -> None:
    decision = paper.signal(quantity="62", price="100")

    assert failed_codes(decision) == {"POSITION_SIZE_EXCEEDS_LIMIT"}
    [verdict] = decision.rejections
    assert verdict.detail == "notional=6200.00 limit=5000.00"
    assert str(verdict) == "POSITION_SIZE_EXCEEDS_LIMIT: notional=6200.00 limit=5000.00"
    assert paper.core.execution.stats.submitted == 0
    rule = {r.name: r for r in paper.core.risk.rules}["MaxPositionSizeRule"]
    assert paper.core.risk.stats.per_rule[rule.name].rejected == 1


def test_position_size_counts_orders_still_in_flight(
    holding: tuple[Harness, HoldingBroker],
) -> None:
    harness, broker = holding
    first = harness.signal(quantity="30", price="100", source="strategy:a")
    second = harness.signal(quantity="30", price="100", source="strategy:b")

    assert first.approved
    assert failed_codes(second) == {"POSITION_SIZE_EXCEEDS_LIMIT"}
    assert second.rejections[0].detail == "notional=6000.00 limit=5000.00"
    assert len(broker.submitted) == 1


def test_at_most_two_open_entries_per_symbol_counting_orders_in_flight(
    holding: tuple[Harness, HoldingBroker],
) -> None:
    harness, broker = holding
    decisions = [harness.signal(quantity="5", source=f"strategy:{n}") for n in "abc"]

    assert [d.approved for d in decisions] == [True, True, False]
    assert failed_codes(decisions[2]) == {"MAX_POSITIONS_PER_SYMBOL"}
    assert decisions[2].rejections[0].detail == "open=2 limit=2"
    # Filling them does not free a slot: they are now entries of the position.
    for order in list(broker.open.values()):
        broker.fill(order.client_order_id, Decimal("100"))
    assert failed_codes(harness.signal(quantity="5", source="strategy:d")) == {
        "MAX_POSITIONS_PER_SYMBOL"
    }


def test_reducing_a_position_is_never_refused_by_size_or_count(
    holding: tuple[Harness, HoldingBroker],
) -> None:
    harness, broker = holding
    for n in "ab":
        harness.signal(quantity="24", source=f"strategy:{n}")
    for order in list(broker.open.values()):
        broker.fill(order.client_order_id, Decimal("100"))
    assert harness.core.portfolio.quantity("SPY") == 48
    # Equity halves: the 48 held would now be far beyond 5%, and 2 entries are open.
    harness.core.portfolio.cash = Decimal("-50000")

    sell = harness.signal(side=Side.SELL, quantity="48", source="strategy:exit")

    assert sell.approved
    codes = {v.rule: v.code for v in sell.verdicts}
    assert codes["MaxPositionSizeRule"] == codes["MaxPositionsPerSymbolRule"] == "REDUCES_POSITION"
    # Selling more than held (the 48 are already being sold) is not a reduction:
    # it is judged as a new short position.
    harness.core.portfolio.cash = Decimal("100000")
    oversell = harness.signal(side=Side.SELL, quantity="500", source="strategy:flip")
    assert "POSITION_SIZE_EXCEEDS_LIMIT" in failed_codes(oversell)


# The rules that judge new exposure only (applies_to_reducing False), and those
# that judge every trade.
EXEMPT_WHEN_REDUCING = {
    "BrokerHealthRule",
    "StaleDataRule",
    "MinConfidenceRule",
    "MaxOrderQuantityRule",
    "MaxOrderNotionalRule",
    "MaxPositionSizeRule",
    "MaxPositionsPerSymbolRule",
    "GrossExposureRule",
    "DailyLossRule",
    "DuplicateSignalRule",
}
JUDGE_EVERY_TRADE = {
    "NumericDomainRule",
    "MarketHoursRule",
    "UnresolvedOrderRule",
    "PriceCollarRule",
    "OrderRateRule",
}


def test_the_engine_exempts_reducing_trades_from_exactly_the_rules_that_say_so(
    paper: Harness,
) -> None:
    assert {r.name for r in paper.core.risk.rules if not r.applies_to_reducing} == (
        EXEMPT_WHEN_REDUCING
    )
    assert {r.name for r in paper.core.risk.rules if r.applies_to_reducing} == JUDGE_EVERY_TRADE


def test_a_reducing_trade_passes_limits_it_would_break_but_not_the_order_rate(
    paper: Harness,
) -> None:
    core = paper.core
    assert paper.signal(quantity="40", source="strategy:exit").approved
    assert core.portfolio.quantity("SPY") == 40
    # Every limit a reducing trade is exempt from is now far below what it does.
    core.update_risk_limits(
        {
            "min_confidence": "0.99",
            "max_order_quantity": "1",
            "max_order_notional": "1",
            "max_position_pct": "0.0001",
            "max_gross_exposure_pct": "0.0001",
            "max_orders_per_window": "3",
            "max_orders_per_symbol_per_window": "3",
        },
        "alice",
        "squeeze",
    )

    first = paper.signal(side=Side.SELL, quantity="10", confidence=0.1, source="strategy:exit")
    # The same source, symbol and side 0 s later: a duplicate, but it reduces.
    second = paper.signal(side=Side.SELL, quantity="10", confidence=0.1, source="strategy:exit")

    for cut in (first, second):
        assert cut.approved, cut.rejections
        codes = {v.rule: v.code for v in cut.verdicts}
        assert {r for r, c in codes.items() if c == REDUCES_POSITION} == EXEMPT_WHEN_REDUCING
        assert {codes[r] for r in JUDGE_EVERY_TRADE} == {"OK"}
    assert core.portfolio.quantity("SPY") == 20
    # Three orders in the last minute: a fourth, reducing or not, is a loop.
    third = paper.signal(side=Side.SELL, quantity="10", confidence=0.1, source="strategy:exit")
    assert failed_codes(third) == {"ORDER_RATE_EXCEEDED"}


def test_duplicate_signal_within_sixty_seconds_is_refused(paper: Harness) -> None:
    assert paper.signal(quantity="1").approved
    harness_time = SESSION_START + timedelta(seconds=30)
    paper.at(harness_time)
    duplicate = paper.signal(quantity="1")
    assert failed_codes(duplicate) == {"DUPLICATE_SIGNAL"}
    assert duplicate.rejections[0].detail == "same signal approved 30s ago, window=60s"

    paper.at(SESSION_START + timedelta(seconds=61))
    assert paper.signal(quantity="1").approved
    # Another source, side or symbol is not a duplicate.
    assert paper.signal(quantity="1", side=Side.SELL).approved
    assert paper.signal(quantity="1", symbol="QQQ").approved


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (datetime(2024, 3, 5, 14, 31, tzinfo=UTC), True),  # Tuesday 09:31 New York
        (datetime(2024, 3, 5, 14, 29, tzinfo=UTC), False),  # 09:29, before the open
        (datetime(2024, 3, 5, 21, 0, tzinfo=UTC), False),  # 16:00, the close
        (datetime(2024, 3, 9, 15, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2024, 7, 4, 15, 0, tzinfo=UTC), False),  # Independence Day
        (datetime(2024, 11, 29, 17, 59, tzinfo=UTC), True),  # day after Thanksgiving, 12:59
        (datetime(2024, 11, 29, 18, 30, tzinfo=UTC), False),  # early close at 13:00
        (datetime(2024, 7, 8, 13, 45, tzinfo=UTC), True),  # 09:45 EDT: summer time
    ],
)
def test_market_hours_follow_the_nyse_calendar(
    calendar: Any, moment: datetime, open_: bool
) -> None:
    harness = make_harness(calendar, start=moment)
    decision = harness.signal(quantity="1")

    assert decision.approved is open_
    if not open_:
        assert failed_codes(decision) == {"OUTSIDE_MARKET_HOURS"}


def test_confidence_below_the_minimum_is_refused(paper: Harness) -> None:
    decision = paper.signal(quantity="1", confidence=0.59)

    assert failed_codes(decision) == {"CONFIDENCE_BELOW_MINIMUM"}
    assert decision.rejections[0].detail == "confidence=0.59 minimum=0.60"


def test_every_rule_is_evaluated_even_after_one_fails(paper: Harness) -> None:
    paper.at(datetime(2024, 3, 9, 15, 0, tzinfo=UTC))
    decision = paper.signal(quantity="100", confidence=0.1)

    assert len(decision.verdicts) == len(paper.core.risk.rules) == 15
    assert failed_codes(decision) == {
        "POSITION_SIZE_EXCEEDS_LIMIT",
        "OUTSIDE_MARKET_HOURS",
        "CONFIDENCE_BELOW_MINIMUM",
    }


def test_a_halt_rejects_everything_but_cancelling_still_works(
    holding: tuple[Harness, HoldingBroker],
) -> None:
    harness, broker = holding
    assert harness.signal(quantity="5").approved
    [open_order] = harness.core.execution.orders(open_only=True)

    harness.core.set_trading_state(TradingState.HALTED, "alice", "broker incident")
    halted = harness.signal(quantity="1", source="strategy:other")

    assert failed_codes(halted) == {"RISK_ENGINE_DEACTIVATED"}
    [halt] = halted.rejections
    assert "alice" in halt.detail
    assert "broker incident" in halt.detail
    assert len(broker.submitted) == 1
    cancelled = harness.core.cancel_order(open_order.order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert [p["status"]["state"] for p in harness.payloads("TradingStateChanged")] == ["HALTED"]


def test_only_the_risk_gate_hands_a_trade_to_execution(paper: Harness) -> None:
    """An approved decision published on the bus by anyone but the gate (a replayed
    or forged event) places nothing: the gate hands its approvals to execution
    directly, and execution listens to no decision event."""
    from domain.events import RiskDecisionMade

    approved = paper.signal(quantity="1")
    orders = paper.core.execution.orders(open_only=False)
    paper.core.bus.process(lambda: paper.core.bus.publish(RiskDecisionMade(approved)))

    assert paper.core.execution.orders(open_only=False) == orders
    assert paper.core.execution.stats.submitted == 1  # only the genuine one

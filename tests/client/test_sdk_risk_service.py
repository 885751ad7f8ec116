"""The SDK's risk-gate methods against the real service (event clock, SQLite, paper broker).

A few ticks inside an NYSE session give IBM and MSFT a price (IBM 124, MSFT 30
after the last ones); neither is a strategy's symbol, so every order here is one
a person placed. A second buy of the same symbol within a minute would be a
DUPLICATE_SIGNAL, so a test that places two buys uses both symbols.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.conftest import TOKEN, RunningService, StartService
from tests.support.market import ticks
from trading_sdk import AsyncTradingClient
from trading_sdk.v1 import orders_pb2, risk_pb2

SYMBOL = "IBM"
PRICES = [120.0, 121.0, 122.0, 123.0, 124.0]
LAST = Decimal("124")
OTHER = "MSFT"


@pytest.fixture
def priced(start_service: StartService) -> RunningService:
    """A fresh service whose IBM and MSFT have a last price, under the event clock."""
    handle = start_service()
    handle.client.stream_market_data([ticks(SYMBOL, PRICES) + ticks(OTHER, [30.0] * 5)])
    return handle


def _codes(verdicts: list[risk_pb2.RuleVerdict]) -> set[str]:
    return {v.code for v in verdicts if not v.passed}


def test_set_trading_state_reducing_then_halted_then_the_same_again(
    start_service: StartService,
) -> None:
    client = start_service().client

    reducing = client.set_trading_state("reducing", "cut exposure")
    halted = client.set_trading_state(risk_pb2.TRADING_STATE_HALTED, "broker incident")
    again = client.set_trading_state("halted", "broker incident")

    assert reducing.changed
    assert reducing.trading.state == risk_pb2.TRADING_STATE_REDUCING
    assert halted.changed
    assert halted.trading.state == risk_pb2.TRADING_STATE_HALTED
    assert [(c.cause, c.state, c.reason) for c in halted.causes] == [
        (risk_pb2.TRADING_CAUSE_OPERATOR, risk_pb2.TRADING_STATE_HALTED, "broker incident")
    ]
    assert not again.changed
    assert again.message.startswith("already HALTED by operator")
    status = client.get_risk_status()
    assert status.trading.state == risk_pb2.TRADING_STATE_HALTED
    assert [c.cause for c in status.causes] == [risk_pb2.TRADING_CAUSE_OPERATOR]

    resumed = client.set_trading_state("active")

    assert resumed.changed
    assert resumed.trading.state == risk_pb2.TRADING_STATE_ACTIVE
    assert list(resumed.causes) == []


def test_resetting_the_daily_loss_breaker_when_it_has_not_tripped_changes_nothing(
    start_service: StartService,
) -> None:
    response = start_service().client.set_trading_state("active", cause="daily_loss_breaker")

    assert not response.changed
    assert response.trading.state == risk_pb2.TRADING_STATE_ACTIVE


def test_check_order_judges_without_any_side_effect(priced: RunningService) -> None:
    client = priced.client
    before = client.verify_audit().last_seq

    small = client.check_order(SYMBOL, "buy", 5)
    large = client.check_order(SYMBOL, "buy", Decimal("500"), limit_price=Decimal("124.00"))

    assert small.approved
    assert Decimal(small.reference_price) == LAST
    assert not small.reduces_position
    assert {v.rule for v in small.verdicts} == {r.name for r in client.get_risk_status().rules}
    assert not large.approved
    assert "POSITION_SIZE_EXCEEDS_LIMIT" in _codes(list(large.verdicts))
    assert client.verify_audit().last_seq == before
    assert list(client.list_order_history().orders) == []


def test_submit_order_places_a_market_order_and_a_limit_order(priced: RunningService) -> None:
    client = priced.client

    market = client.submit_order(SYMBOL, "buy", 10, reason="by hand")
    limit = client.submit_order(OTHER, orders_pb2.SIDE_BUY, "5", limit_price=Decimal("29.5"))

    assert market.decision.approved
    assert market.decision.signal.source == "manual:operator"
    assert (market.order.type, market.order.status) == (
        orders_pb2.ORDER_TYPE_MARKET,
        orders_pb2.ORDER_STATUS_FILLED,
    )
    assert market.order.filled_quantity == "10"
    assert limit.decision.approved
    assert limit.order.type == orders_pb2.ORDER_TYPE_LIMIT
    assert Decimal(limit.order.limit_price) == Decimal("29.5")
    [position] = client.list_positions().positions
    assert (position.symbol, position.quantity) == (SYMBOL, "10")


def test_a_refused_order_has_the_codes_and_no_order(priced: RunningService) -> None:
    client = priced.client
    client.set_trading_state("reducing", "no new exposure")

    refused = client.submit_order(SYMBOL, "buy", 1)

    assert not refused.decision.approved
    assert "TRADING_REDUCING" in _codes(list(refused.decision.verdicts))
    assert not refused.HasField("order")


def test_update_risk_limits_changes_what_the_gate_judges_by(priced: RunningService) -> None:
    client = priced.client

    response = client.update_risk_limits(
        {
            "max_order_quantity": 3,
            "duplicate_window": timedelta(seconds=30),
            "daily_loss_resets_next_session": False,
        },
        "tighter for the test",
    )

    assert response.previous["max_order_quantity"] == "10000"
    assert response.limits["max_order_quantity"] == "3"
    assert response.limits["duplicate_window"] == "30"
    assert response.limits["daily_loss_resets_next_session"] == "false"
    assert dict(client.get_risk_status().limits) == dict(response.limits)
    check = client.check_order(SYMBOL, "buy", 5)
    assert not check.approved
    assert _codes(list(check.verdicts)) == {"ORDER_QUANTITY_EXCEEDS_LIMIT"}


def test_flatten_cancels_closes_and_halts(priced: RunningService) -> None:
    client = priced.client
    client.submit_order(SYMBOL, "buy", 10)
    working = client.submit_order(OTHER, "buy", 5, limit_price="29.5").order

    report = client.flatten("end of day")

    assert report.trading.state == risk_pb2.TRADING_STATE_HALTED
    assert [(o.order_id, o.status) for o in report.cancelled] == [
        (working.order_id, orders_pb2.ORDER_STATUS_CANCELLED)
    ]
    [decision] = report.closing_decisions
    assert decision.approved
    assert (decision.signal.side, decision.signal.quantity) == (orders_pb2.SIDE_SELL, "10")
    [closing] = report.closing_orders
    assert (closing.side, closing.status) == (orders_pb2.SIDE_SELL, orders_pb2.ORDER_STATUS_FILLED)
    assert list(client.list_positions().positions) == []


def test_risk_status_counts_each_rule_and_says_whether_it_judges_reducing_trades(
    priced: RunningService,
) -> None:
    client = priced.client
    client.submit_order(SYMBOL, "buy", 10)
    client.submit_order(OTHER, "buy", 5, limit_price="20")  # outside the price collar

    rules = {rule.name: rule for rule in client.get_risk_status().rules}

    collar = rules["PriceCollarRule"]
    assert (collar.passed, collar.rejected) == (1, 1)
    assert (collar.passed_total, collar.rejected_total) == (1, 1)
    assert collar.applies_to_reducing
    assert not rules["MaxPositionSizeRule"].applies_to_reducing


def test_the_async_client_sets_the_state_checks_and_submits(priced: RunningService) -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        async with AsyncTradingClient(priced.target, TOKEN) as client:
            await client.set_trading_state("reducing", "only cuts")
            check = await client.check_order(SYMBOL, "buy", 1)
            await client.set_trading_state("active")
            placed = await client.submit_order(SYMBOL, "buy", 2)
            limits = await client.update_risk_limits({"min_confidence": "0.7"}, "review")
            flattened = await client.flatten("done")
            return (
                check.approved,
                placed.decision.approved and limits.limits["min_confidence"] == "0.7",
                flattened.trading.state == risk_pb2.TRADING_STATE_HALTED,
            )

    assert asyncio.run(scenario()) == (False, True, True)

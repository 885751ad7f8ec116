"""The risk RPCs at the edge: bad input is INVALID_ARGUMENT (or the right status)
and changes nothing; a role that may not trade cannot; a limit change and a state
change survive a restart of the real service."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from tests.conftest import RunningService, StartService
from tests.support.calls import bearer, failure_of
from tests.support.market import SESSION, ticks
from tests.support.state import snapshot
from trading_sdk.client import TradingClient
from trading_sdk.v1 import orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb
from trading_sdk.v1 import trading_service_pb2_grpc as pb_grpc

PEOPLE = {
    "bob": {"token": "bob-token-0123456789ab", "roles": ["viewer"]},
    "carol": {"token": "carol-token-0123456789", "roles": ["trader"]},
}


@pytest.fixture
def priced(start_service: StartService) -> RunningService:
    running = start_service()
    running.client.stream_market_data([ticks("SPY", [100.0, 100.1])])
    return running


def _raw(running: RunningService) -> tuple[grpc.Channel, pb_grpc.TradingServiceStub]:
    """A plain stub, to send requests the SDK would not build."""
    channel = grpc.insecure_channel(running.target)
    return channel, pb_grpc.TradingServiceStub(channel)


BAD_ORDERS = [
    pytest.param(
        pb.SubmitOrderRequest(side=orders_pb2.SIDE_BUY, quantity="1"), "symbol", id="no-symbol"
    ),
    pytest.param(pb.SubmitOrderRequest(symbol="SPY", quantity="1"), "side", id="no-side"),
    pytest.param(
        pb.SubmitOrderRequest(symbol="SPY", side=orders_pb2.SIDE_BUY, quantity="0"),
        "quantity",
        id="zero",
    ),
    pytest.param(
        pb.SubmitOrderRequest(symbol="SPY", side=orders_pb2.SIDE_BUY, quantity="-3"),
        "quantity",
        id="negative",
    ),
    pytest.param(
        pb.SubmitOrderRequest(symbol="SPY", side=orders_pb2.SIDE_BUY, quantity="1.0000000001"),
        "more than 9 decimals",
        id="too-fine-a-fraction",
    ),
    pytest.param(
        pb.SubmitOrderRequest(
            symbol="SPY",
            side=orders_pb2.SIDE_BUY,
            quantity="1.5",
            time_in_force=orders_pb2.TIME_IN_FORCE_GTC,
        ),
        "fractional orders are DAY orders only",
        id="fractional-gtc",
    ),
    pytest.param(
        pb.SubmitOrderRequest(
            symbol="SPY",
            side=orders_pb2.SIDE_BUY,
            quantity="1",
            time_in_force=orders_pb2.TimeInForce.ValueType(99),
        ),
        "not a known TimeInForce",
        id="unknown-time-in-force",
    ),
    pytest.param(
        pb.SubmitOrderRequest(symbol="SPY", side=orders_pb2.SIDE_BUY, quantity="NaN"),
        "finite",
        id="nan",
    ),
    pytest.param(
        pb.SubmitOrderRequest(
            symbol="SPY", side=orders_pb2.SIDE_BUY, quantity="1", limit_price="100"
        ),
        "MARKET",
        id="limit-on-market",
    ),
    pytest.param(
        pb.SubmitOrderRequest(
            symbol="SPY", side=orders_pb2.SIDE_BUY, quantity="1", type=orders_pb2.ORDER_TYPE_LIMIT
        ),
        "limit_price",
        id="limit-without-price",
    ),
    pytest.param(
        pb.SubmitOrderRequest(symbol="ZZZZ", side=orders_pb2.SIDE_BUY, quantity="1"),
        "unknown symbol",
        id="unknown-symbol",
    ),
]


@pytest.mark.parametrize(("request_", "says"), BAD_ORDERS)
def test_a_bad_manual_order_is_invalid_and_changes_nothing(
    priced: RunningService, request_: pb.SubmitOrderRequest, says: str
) -> None:
    before = snapshot(priced.client)
    channel, stub = _raw(priced)
    with channel:
        failure = failure_of(lambda: stub.SubmitOrder(request_, metadata=bearer(), timeout=10))

    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert says in failure.details
    assert snapshot(priced.client) == before


def test_a_viewer_may_check_an_order_but_not_place_one(
    start_service: StartService, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(PEOPLE))
    path.chmod(0o600)
    running = start_service(trading_tokens_file=str(path))
    feed = running.client  # the operator token still works
    feed.stream_market_data([ticks("SPY", [100.0])])
    with TradingClient(running.target, "bob-token-0123456789ab") as bob:
        assert bob.check_order("SPY", "buy", 1).verdicts
        before = snapshot(running.client)
        failure = failure_of(lambda: bob.submit_order("SPY", "buy", 1))
        assert failure.code is grpc.StatusCode.PERMISSION_DENIED
        assert snapshot(running.client) == before
    with TradingClient(running.target, "carol-token-0123456789") as carol:
        placed = carol.submit_order("SPY", "buy", 1, reason="by hand")
        assert placed.decision.signal.source == "manual:carol"
        assert failure_of(lambda: carol.flatten("no")).code is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pb.SetTradingStateRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.SetTradingStateRequest(state=risk_pb2.TRADING_STATE_HALTED),
            grpc.StatusCode.INVALID_ARGUMENT,  # a halt needs a reason
        ),
        (
            pb.SetTradingStateRequest(
                state=risk_pb2.TRADING_STATE_REDUCING,
                reason="x",
                cause=risk_pb2.TRADING_CAUSE_DAILY_LOSS_BREAKER,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,  # the breaker can only be reset
        ),
        (
            pb.SetTradingStateRequest(
                state=risk_pb2.TRADING_STATE_ACTIVE, cause=risk_pb2.TRADING_CAUSE_AUDIT_STORE
            ),
            grpc.StatusCode.FAILED_PRECONDITION,  # the system's cause clears by itself
        ),
        (
            pb.SetTradingStateRequest(
                state=risk_pb2.TRADING_STATE_ACTIVE, cause=risk_pb2.TradingCause.ValueType(99)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
def test_a_bad_state_request_changes_nothing(
    priced: RunningService, request_: pb.SetTradingStateRequest, code: grpc.StatusCode
) -> None:
    before = snapshot(priced.client)
    channel, stub = _raw(priced)
    with channel:
        failure = failure_of(lambda: stub.SetTradingState(request_, metadata=bearer(), timeout=10))
    assert failure.code is code
    assert snapshot(priced.client) == before


def test_bad_limits_are_refused_whole(priced: RunningService) -> None:
    before = priced.client.get_risk_status().limits
    failure = failure_of(
        lambda: priced.client.update_risk_limits(
            {"max_order_quantity": "5", "price_collar_pct": "-1"}, "typo"
        )
    )
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "price_collar_pct" in failure.details
    assert priced.client.get_risk_status().limits == before


def test_states_limits_and_counts_survive_a_restart_of_the_service(
    start_service: StartService, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'restart.db'}"
    first = start_service(database_url=db)
    first.client.stream_market_data([ticks("SPY", [100.0], start=SESSION)])
    first.client.set_trading_state("reducing", "end of quarter")
    first.client.update_risk_limits({"max_order_quantity": "7"}, "desk limit")
    refused = first.client.submit_order("SPY", "buy", 1)
    assert not refused.decision.approved
    first.stop()

    second = start_service(database_url=db)
    status = second.client.get_risk_status()

    assert status.trading.state == risk_pb2.TRADING_STATE_REDUCING
    assert [c.cause for c in status.causes] == [risk_pb2.TRADING_CAUSE_OPERATOR]
    assert status.limits["max_order_quantity"] == "7"
    rule = next(r for r in status.rules if r.name == "MaxOrderQuantityRule")
    assert (rule.passed, rule.passed_total) == (0, 1)
    assert second.client.set_trading_state("reducing", "again").changed is False

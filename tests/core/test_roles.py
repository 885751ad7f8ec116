"""Several principals from a tokens file: the audit log records who did what, and
each role can call only what it needs (PERMISSION_DENIED otherwise, changing nothing)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from server.auth import METHOD_ROLES, ROLES
from server.tokens import read_tokens_file
from tests.conftest import RunningService, StartService
from tests.support.calls import failure_of
from tests.support.market import minute_ticks, v_reversal
from trading_sdk import TradingClient
from trading_sdk.v1 import risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

PEOPLE = {
    "alice": {"token": "alice-token-0123456789", "roles": ["operator"]},
    "bob": {"token": "bob-token-0123456789ab", "roles": ["viewer"]},
    "carol": {"token": "carol-token-0123456789", "roles": ["trader"]},
    "feeder": {"token": "feeder-token-012345678", "roles": ["feed"]},
}
OPERATOR_ONLY = {
    "ActivateStrategy",
    "DeactivateStrategy",
    "ActivateRisk",
    "DeactivateRisk",
    "SetTradingState",
    "Flatten",
    "UpdateRiskLimits",
}


@pytest.fixture
def team(start_service: StartService, tmp_path: Path) -> RunningService:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(PEOPLE))
    path.chmod(0o600)  # a tokens file others may read is refused
    return start_service(trading_tokens_file=str(path))


def as_(running: RunningService, name: str) -> TradingClient:
    return TradingClient(running.target, PEOPLE[name]["token"])  # type: ignore[arg-type]


def denied(call: Callable[[], object]) -> str:
    """The details of a call refused with PERMISSION_DENIED."""
    failure = failure_of(call)
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    return failure.details


def test_the_audit_log_records_who_halted_trading(team: RunningService) -> None:
    with as_(team, "alice") as alice:
        trading = alice.deactivate_risk("suspicious fills").trading

    assert (trading.state, trading.changed_by) == (risk_pb2.TRADING_STATE_HALTED, "alice")
    [record] = team.client.query_audit(event_types=["TradingStateChanged"])
    assert json.loads(record.payload_json)["status"]["changed_by"] == "alice"


def test_a_viewer_reads_but_cannot_halt_trading(team: RunningService) -> None:
    before = team.client.verify_audit().last_seq
    with as_(team, "bob") as bob:
        assert bob.get_status().trading.state == risk_pb2.TRADING_STATE_ACTIVE
        message = denied(lambda: bob.deactivate_risk("oops"))
        denied(lambda: bob.stream_market_data([minute_ticks("SPY", v_reversal()[:5])]))

    assert message == "bob (viewer) may not call DeactivateRisk"
    assert team.client.get_risk_status().trading.state == risk_pb2.TRADING_STATE_ACTIVE
    assert team.client.verify_audit().last_seq == before


def test_a_trader_and_a_feed_get_only_their_own_calls(team: RunningService) -> None:
    with as_(team, "feeder") as feeder:
        assert feeder.stream_market_data([minute_ticks("SPY", v_reversal())]).orders == 1
        denied(lambda: feeder.deactivate_strategy("ma_crossover"))
        denied(lambda: feeder.analyze(["SPY"]))
    with as_(team, "carol") as carol:
        [order] = carol.list_order_history().orders
        with pytest.raises(grpc.RpcError) as filled:
            carol.cancel_order(order.order_id)  # allowed, but the order is filled
        assert filled.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        denied(lambda: carol.activate_risk())


def test_every_rpc_has_a_role_or_is_deliberately_operator_only() -> None:
    methods = set(pb.DESCRIPTOR.services_by_name["TradingService"].methods_by_name)

    assert set(METHOD_ROLES) | OPERATOR_ONLY == methods
    assert not set(METHOD_ROLES) & OPERATOR_ONLY


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "cannot read it"),
        ('{"x": {"token": "short", "roles": ["viewer"]}}', "at least 16 characters"),
        ('{"x": {"token": "long-enough-token-1", "roles": ["king"]}}', "roles must be a list"),
    ],
)
def test_a_bad_tokens_file_is_refused_with_the_reason(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ValueError, match=problem):
        read_tokens_file(path, ROLES)

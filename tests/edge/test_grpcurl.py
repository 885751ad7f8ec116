"""The README's grpcurl examples, run as a user types them, against a real server.

grpcurl knows nothing of the project: it learns the service through server
reflection and speaks the JSON mapping of the messages, so these tests check
reflection, health and the auth header the way any outside client sees them.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from audit.batch_codec import decode_batch
from tests.conftest import TOKEN, RunningService, StartService
from tests.support.calls import TRADING_SERVICE
from tests.support.tools import venv_tool

AUTH = f"authorization: Bearer {TOKEN}"


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv_tool("grpcurl")), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def grpcurl_json(*args: str) -> Any:
    """Run grpcurl, insist it succeeded, and parse the JSON it printed."""
    result = grpcurl(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def wall_svc(start_service: StartService) -> RunningService:
    """A service on the wall clock, the default the README's examples assume."""
    return start_service(trading_clock="wall")


def test_list_shows_the_services(svc: RunningService) -> None:
    result = grpcurl("-plaintext", svc.target, "list")
    assert result.returncode == 0, result.stderr
    services = result.stdout.split()
    assert TRADING_SERVICE in services
    assert "grpc.health.v1.Health" in services


def test_describe_shows_the_rpcs(svc: RunningService) -> None:
    result = grpcurl("-plaintext", svc.target, "describe", TRADING_SERVICE)
    assert result.returncode == 0, result.stderr
    assert f"{TRADING_SERVICE} is a service" in result.stdout
    for rpc in (
        "rpc GetStatus ( .trading.v1.GetStatusRequest )",
        "rpc StreamMarketData ( stream .trading.v1.StreamMarketDataRequest )",
        "rpc SubscribeEvents ( .trading.v1.SubscribeEventsRequest ) returns ( stream",
        "rpc DeactivateRisk",
        "rpc QueryAudit",
    ):
        assert rpc in result.stdout


def test_get_status_with_the_token(svc: RunningService) -> None:
    status = grpcurl_json(
        "-plaintext", "-H", AUTH, "-d", "{}", svc.target, f"{TRADING_SERVICE}/GetStatus"
    )
    names = {c["name"] for c in status["components"]}
    assert {"strategy", "risk", "execution", "broker", "audit"} <= names
    assert all(c["healthy"] for c in status["components"])
    assert status["trading"]["state"] == "TRADING_STATE_ACTIVE"
    assert status["clock"] == "event"


def test_get_status_without_the_token_is_unauthenticated(svc: RunningService) -> None:
    result = grpcurl("-plaintext", "-d", "{}", svc.target, f"{TRADING_SERVICE}/GetStatus")
    assert result.returncode != 0
    assert "Code: Unauthenticated" in result.stderr
    assert "authorization: Bearer <token>" in result.stderr
    assert result.stdout.strip() == ""


def test_health_check_is_serving(svc: RunningService) -> None:
    assert grpcurl_json("-plaintext", svc.target, "grpc.health.v1.Health/Check") == {
        "status": "SERVING"
    }


def test_simulate_market_event_as_in_the_readme(wall_svc: RunningService) -> None:
    """Verbatim README example: wall clock, so the timestamp may be left out."""
    answer = grpcurl_json(
        "-plaintext",
        "-H",
        AUTH,
        "-d",
        '{"event": {"symbol": "SPY", "price": 512.3}}',
        wall_svc.target,
        f"{TRADING_SERVICE}/SimulateMarketEvent",
    )
    assert int(answer["seq"]) >= 1
    assert wall_svc.client.get_status().counters.market_events == 1


def test_simulate_market_event_with_a_timestamp_under_the_event_clock(
    svc: RunningService,
) -> None:
    answer = grpcurl_json(
        "-plaintext",
        "-H",
        AUTH,
        "-d",
        '{"event": {"symbol": "SPY", "price": 512.3, "volume": 100,'
        ' "timestamp": "2024-03-05T15:00:00Z"}}',
        svc.target,
        f"{TRADING_SERVICE}/SimulateMarketEvent",
    )
    seq = int(answer["seq"])
    (record,) = svc.client.query_audit(from_seq=seq, to_seq=seq)
    assert record.event_type == "MarketDataReceived"
    assert decode_batch(json.loads(record.payload_json)["batch"]).symbols == ["SPY"]


def test_a_refused_event_shows_the_reason(svc: RunningService) -> None:
    """Under the event clock the README example without a timestamp is refused, clearly."""
    result = grpcurl(
        "-plaintext",
        "-H",
        AUTH,
        "-d",
        '{"event": {"symbol": "SPY", "price": 512.3}}',
        svc.target,
        f"{TRADING_SERVICE}/SimulateMarketEvent",
    )
    assert result.returncode != 0
    assert "Code: InvalidArgument" in result.stderr
    assert "timestamp is required when TRADING_CLOCK=event" in result.stderr


def test_deactivate_risk_then_health_reports_trading_not_serving(svc: RunningService) -> None:
    halted = grpcurl_json(
        "-plaintext",
        "-H",
        AUTH,
        "-d",
        '{"reason": "end of day"}',
        svc.target,
        f"{TRADING_SERVICE}/DeactivateRisk",
    )
    assert halted["trading"]["state"] == "TRADING_STATE_HALTED"
    assert halted["trading"]["reason"] == "end of day"
    check = ("-plaintext", "-d", json.dumps({"service": TRADING_SERVICE}), svc.target)
    assert grpcurl_json(*check, "grpc.health.v1.Health/Check") == {"status": "NOT_SERVING"}
    # The process itself is still up.
    assert grpcurl_json("-plaintext", svc.target, "grpc.health.v1.Health/Check") == {
        "status": "SERVING"
    }

"""Authentication at the edge: every RPC of trading.v1.TradingService refuses a
call without a valid bearer token, and the refused call changes nothing; the
standard health and reflection services answer anyone.

The RPCs are enumerated from the generated descriptor and called over a raw
channel with the serializers of their own message classes, so an RPC added to
the proto later is covered without touching this file.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.conftest import TOKEN, RunningService
from tests.support.calls import TRADING_SERVICE, bearer, failure_of, health_of
from tests.support.state import snapshot
from trading_sdk.v1 import risk_pb2, trading_service_pb2, trading_service_pb2_grpc

METHODS: list[MethodDescriptor] = list(
    trading_service_pb2.DESCRIPTOR.services_by_name["TradingService"].methods
)
METHOD_IDS = [m.name for m in METHODS]
Metadata = tuple[tuple[str, str], ...]

# With a valid token a call gets in; these requests make each server stream
# answer at once (the log is replayed from seq 1) instead of waiting for news.
AUTHENTICATED_REQUESTS: dict[str, Message] = {
    "SubscribeEvents": trading_service_pb2.SubscribeEventsRequest(from_seq=1),
}
# A backstop only: no call here is expected to take more than a moment.
DEADLINE_SECONDS = 10.0


def _multicallable(channel: grpc.Channel, method: MethodDescriptor) -> Any:
    request_class = GetMessageClass(method.input_type)
    response_class = GetMessageClass(method.output_type)
    factory = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(method.client_streaming, method.server_streaming)]
    return factory(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )


def _call(
    channel: grpc.Channel, method: MethodDescriptor, metadata: Metadata | None
) -> grpc.StatusCode:
    """Call `method` once with `metadata` and return the status it ended with
    (OK for a server stream that delivered its first message)."""
    request = AUTHENTICATED_REQUESTS.get(method.name) or GetMessageClass(method.input_type)()
    argument: Any = iter([request]) if method.client_streaming else request
    multicallable = _multicallable(channel, method)
    try:
        if not method.server_streaming:
            multicallable(argument, metadata=metadata, timeout=DEADLINE_SECONDS)
            return grpc.StatusCode.OK
        responses = multicallable(argument, metadata=metadata, timeout=DEADLINE_SECONDS)
        try:
            next(responses, None)
        finally:
            responses.cancel()
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code


def test_the_descriptor_lists_the_rpcs_this_file_checks() -> None:
    """Guards the enumeration itself: an empty list would make every test vacuous."""
    names = set(METHOD_IDS)
    assert {"GetStatus", "StreamMarketData", "SubscribeEvents", "QueryAudit"} <= names
    assert any(m.client_streaming for m in METHODS)
    assert any(m.server_streaming for m in METHODS)


@pytest.mark.parametrize("method", METHODS, ids=METHOD_IDS)
def test_every_rpc_refuses_a_call_without_a_valid_token(
    channel: grpc.Channel, method: MethodDescriptor
) -> None:
    assert _call(channel, method, None) == grpc.StatusCode.UNAUTHENTICATED
    assert _call(channel, method, bearer("not-the-token")) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("method", METHODS, ids=METHOD_IDS)
def test_every_rpc_lets_a_valid_token_past_authentication(
    svc: RunningService, channel: grpc.Channel, method: MethodDescriptor
) -> None:
    svc.client.activate_risk("an audit record for SubscribeEvents to replay")
    code = _call(channel, method, bearer())
    # Default (empty) requests may well be invalid; anything but UNAUTHENTICATED
    # proves the token was accepted.
    assert code != grpc.StatusCode.UNAUTHENTICATED


def test_refused_calls_change_nothing(svc: RunningService, channel: grpc.Channel) -> None:
    """DeactivateRisk, DeactivateStrategy, StreamMarketData... all refused: trading
    stays active, the strategy stays on, and not even a refusal is journaled."""
    before = snapshot(svc.client)
    for method in METHODS:
        _call(channel, method, None)
        _call(channel, method, bearer("not-the-token"))
    after = snapshot(svc.client)
    assert after == before
    assert svc.client.get_risk_status().trading.state == risk_pb2.TRADING_STATE_ACTIVE
    assert all(s.active for s in after.strategies.strategies)


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer",
        "Bearer ",
        "Bearer    ",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Bearer x{TOKEN}",
        f"Bearer {TOKEN.upper()}",
    ],
    ids=[
        "basic-scheme",
        "no-scheme",
        "scheme-only",
        "empty-token",
        "blank-token",
        "prefix-of-token",
        "token-plus-suffix",
        "prefix-plus-token",
        "token-in-other-case",
    ],
)
def test_a_malformed_or_near_miss_authorization_header_is_refused(
    channel: grpc.Channel, header: str
) -> None:
    stub = trading_service_pb2_grpc.TradingServiceStub(channel)
    failure = failure_of(
        lambda: stub.GetStatus(
            trading_service_pb2.GetStatusRequest(),
            metadata=(("authorization", header),),
            timeout=DEADLINE_SECONDS,
        )
    )
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer <token>" in failure.details or "token is not valid" in failure.details


def test_generated_stub_with_token_metadata_works_as_any_grpc_client(
    channel: grpc.Channel,
) -> None:
    """What a client in another language does: the generated stub plus metadata."""
    stub = trading_service_pb2_grpc.TradingServiceStub(channel)
    status = stub.GetStatus(
        trading_service_pb2.GetStatusRequest(), metadata=bearer(), timeout=DEADLINE_SECONDS
    )
    assert {c.name for c in status.components} == {
        "strategy",
        "risk",
        "execution",
        "broker",
        "audit",
    }
    assert status.trading.state == risk_pb2.TRADING_STATE_ACTIVE

    failure = failure_of(
        lambda: stub.DeactivateRisk(
            trading_service_pb2.DeactivateRiskRequest(reason="no token"),
            timeout=DEADLINE_SECONDS,
        )
    )
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert "missing 'authorization: Bearer <token>' metadata" in failure.details
    after = stub.GetRiskStatus(
        trading_service_pb2.GetRiskStatusRequest(), metadata=bearer(), timeout=DEADLINE_SECONDS
    )
    assert after.trading.state == risk_pb2.TRADING_STATE_ACTIVE


def test_lowercase_bearer_scheme_is_accepted(channel: grpc.Channel) -> None:
    """HTTP auth schemes are case-insensitive (RFC 9110); the token itself is not."""
    stub = trading_service_pb2_grpc.TradingServiceStub(channel)
    status = stub.GetStatus(
        trading_service_pb2.GetStatusRequest(),
        metadata=(("authorization", f"bearer {TOKEN}"),),
        timeout=DEADLINE_SECONDS,
    )
    assert status.version


@pytest.mark.parametrize("service", ["", TRADING_SERVICE], ids=["process", "trading"])
def test_health_check_needs_no_token(channel: grpc.Channel, service: str) -> None:
    assert health_of(channel, service) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_needs_no_token_and_describes_the_service(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {TRADING_SERVICE, "grpc.health.v1.Health"} <= services

    pool = DescriptorPool(database)
    described = pool.FindServiceByName(TRADING_SERVICE)
    assert {m.name for m in described.methods} == set(METHOD_IDS)

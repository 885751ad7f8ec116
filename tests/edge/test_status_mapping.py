"""Domain errors become the right gRPC status, through the server's interceptor
chain (server/interceptors/chain.py), which maps them in one place: the real
core on an in-memory audit store, the session's NYSE calendar, called over a
loopback channel as any client would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from audit.memory_store import InMemoryEventStore
from tests.conftest import StartService
from tests.support.calls import bearer
from tests.support.market import crossover_prices, ticks
from trading_sdk.v1 import events_pb2, orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb
from trading_sdk.v1 import trading_service_pb2_grpc as pb_grpc

Metadata = tuple[tuple[str, str], ...]
TOKEN_METADATA = bearer()


@dataclass
class Outcome:
    response: Any
    code: grpc.StatusCode
    details: str


@dataclass
class Harness:
    stub: pb_grpc.TradingServiceStub
    store: InMemoryEventStore
    started_at_seq: int  # the service's own start-up records

    def journaled(self) -> int:
        """Records journaled since the service started."""
        return self.store.last_seq() - self.started_at_seq

    def _call(self, invoke: Any) -> Outcome:
        try:
            return Outcome(invoke(), grpc.StatusCode.OK, "")
        except grpc.RpcError as error:
            return Outcome(None, error.code(), error.details() or "")

    def unary(self, method: str, request: Message, metadata: Metadata = TOKEN_METADATA) -> Outcome:
        return self._call(lambda: getattr(self.stub, method)(request, metadata=metadata))

    def server_stream(
        self, method: str, request: Message, metadata: Metadata = TOKEN_METADATA
    ) -> Outcome:
        """Invoke a server-streaming RPC that is expected to end by itself."""
        outcome = self._call(lambda: list(getattr(self.stub, method)(request, metadata=metadata)))
        return Outcome(None, outcome.code, outcome.details)

    def client_stream(
        self, method: str, requests: list[Message], metadata: Metadata = TOKEN_METADATA
    ) -> Outcome:
        return self._call(lambda: getattr(self.stub, method)(iter(requests), metadata=metadata))


@pytest.fixture
def harness(start_service: StartService) -> Iterator[Harness]:
    store = InMemoryEventStore()
    running = start_service(store=store)
    journaled_at_start = store.last_seq()  # the service's start is on record
    with grpc.insecure_channel(running.target) as channel:
        yield Harness(pb_grpc.TradingServiceStub(channel), store, journaled_at_start)


def test_a_good_request_is_ok(harness: Harness) -> None:
    """The control: the harness itself answers OK when nothing is wrong."""
    outcome = harness.unary("ListStrategies", pb.ListStrategiesRequest())
    assert outcome.code == grpc.StatusCode.OK
    assert [s.name for s in outcome.response.strategies] == ["ma_crossover"]


@pytest.mark.parametrize(
    ("method", "request_message", "code", "fragment"),
    [
        pytest.param(
            "ActivateStrategy",
            pb.ActivateStrategyRequest(name="no_such"),
            grpc.StatusCode.NOT_FOUND,
            "no strategy named 'no_such'",
            id="unknown-strategy",
        ),
        pytest.param(
            "DeactivateStrategy",
            pb.DeactivateStrategyRequest(name=""),
            grpc.StatusCode.INVALID_ARGUMENT,
            "name is empty",
            id="empty-strategy-name",
        ),
        pytest.param(
            "ListOrderHistory",
            pb.ListOrderHistoryRequest(page_token="not-a-token"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
            id="bad-page-token",
        ),
        pytest.param(
            "GetRiskStatus",
            pb.GetRiskStatusRequest(recent_decisions=1001),
            grpc.StatusCode.INVALID_ARGUMENT,
            "at most 1000",
            id="too-many-decisions",
        ),
        pytest.param(
            "CancelOrder",
            pb.CancelOrderRequest(order_id="o404"),
            grpc.StatusCode.NOT_FOUND,
            "o404",
            id="unknown-order",
        ),
        pytest.param(
            "SimulateMarketEvent",
            pb.SimulateMarketEventRequest(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "event is required",
            id="simulate-without-event",
        ),
    ],
)
def test_unary_domain_errors_map_to_their_status(
    harness: Harness, method: str, request_message: Message, code: grpc.StatusCode, fragment: str
) -> None:
    outcome = harness.unary(method, request_message)
    assert outcome.code == code
    assert fragment in outcome.details
    assert harness.journaled() == 0


def test_cancelling_a_filled_order_is_a_failed_precondition(harness: Harness) -> None:
    streamed = harness.client_stream(
        "StreamMarketData", [pb.StreamMarketDataRequest(events=ticks("SPY", crossover_prices()))]
    )
    assert streamed.code == grpc.StatusCode.OK
    assert streamed.response.orders == 1
    (order,) = harness.unary("ListOrderHistory", pb.ListOrderHistoryRequest()).response.orders
    assert order.status == orders_pb2.ORDER_STATUS_FILLED
    journaled = harness.journaled()

    outcome = harness.unary("CancelOrder", pb.CancelOrderRequest(order_id=order.order_id))

    assert outcome.code == grpc.StatusCode.FAILED_PRECONDITION
    assert order.order_id in outcome.details
    assert "FILLED" in outcome.details
    assert harness.journaled() == journaled
    (after,) = harness.unary("ListOrderHistory", pb.ListOrderHistoryRequest()).response.orders
    assert after == order


@pytest.mark.parametrize(
    ("method", "request_message", "fragment"),
    [
        pytest.param(
            "SubscribeEvents",
            pb.SubscribeEventsRequest(types=[events_pb2.EVENT_TYPE_UNSPECIFIED]),
            "UNSPECIFIED is not allowed",
            id="subscribe-unspecified",
        ),
        pytest.param(
            "QueryAudit",
            pb.QueryAuditRequest(from_seq=9, to_seq=3),
            "from_seq must not be greater than to_seq",
            id="audit-reversed-range",
        ),
        pytest.param(
            "QueryAudit",
            pb.QueryAuditRequest(event_types=["Nope"]),
            "unknown event_types ['Nope']",
            id="audit-unknown-type",
        ),
    ],
)
def test_server_stream_errors_map_to_invalid_argument(
    harness: Harness, method: str, request_message: Message, fragment: str
) -> None:
    outcome = harness.server_stream(method, request_message)
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in outcome.details


def test_a_bad_stream_message_maps_to_invalid_argument(harness: Harness) -> None:
    outcome = harness.client_stream("StreamMarketData", [pb.StreamMarketDataRequest()])
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "message 0 refused" in outcome.details


def test_an_operator_action_without_a_principal_is_unauthenticated(harness: Harness) -> None:
    """Behind the interceptor, the servicer still names who acted, so a call that
    somehow reached it without a token is refused, not recorded as nobody's."""
    outcome = harness.unary("DeactivateRisk", pb.DeactivateRiskRequest(reason="x"), metadata=())
    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED
    status = harness.unary("GetRiskStatus", pb.GetRiskStatusRequest()).response
    assert status.trading.state == risk_pb2.TRADING_STATE_ACTIVE
    assert harness.journaled() == 0

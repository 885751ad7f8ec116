"""The SDK retries reads that meet UNAVAILABLE, with gRPC's own retry policy, and
never a call that changes something: a server that fails the first calls shows it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from server.auth import METHOD_ROLES, VIEWER
from trading_sdk.client import TradingClient
from trading_sdk.retries import MAX_ATTEMPTS, SAFE_TO_RETRY
from trading_sdk.v1 import trading_service_pb2 as pb


class Flaky:
    """Answers UNAVAILABLE to the first `failures` calls of each method, then OK."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def handler(self, name: str, response: Any) -> grpc.RpcMethodHandler[Any, Any]:
        def behave(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls[name] = seen = self.calls.get(name, 0) + 1
            if seen <= self.failures:
                context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            return response

        return grpc.unary_unary_rpc_method_handler(
            behave,
            request_deserializer=lambda b: b,
            response_serializer=lambda m: m.SerializeToString(),
        )


@pytest.fixture
def flaky_server(request: pytest.FixtureRequest) -> Iterator[tuple[Flaky, str]]:
    flaky = Flaky(request.param)
    server = grpc.server(futures.ThreadPoolExecutor(4))
    handlers = {
        "GetStatus": flaky.handler("GetStatus", pb.GetStatusResponse(version="9")),
        "SubmitOrder": flaky.handler("SubmitOrder", pb.SubmitOrderResponse()),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("trading.v1.TradingService", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield flaky, f"127.0.0.1:{port}"
    server.stop(0)


@pytest.mark.parametrize("flaky_server", [MAX_ATTEMPTS - 1], indirect=True)
def test_a_read_is_retried_until_it_succeeds(flaky_server: tuple[Flaky, str]) -> None:
    flaky, target = flaky_server
    with TradingClient(target, "token") as client:
        assert client.get_status().version == "9"
    assert flaky.calls["GetStatus"] == MAX_ATTEMPTS


@pytest.mark.parametrize("flaky_server", [MAX_ATTEMPTS], indirect=True)
def test_a_read_gives_up_after_its_attempts(flaky_server: tuple[Flaky, str]) -> None:
    flaky, target = flaky_server
    with TradingClient(target, "token") as client, pytest.raises(grpc.RpcError) as failed:
        client.get_status()
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert flaky.calls["GetStatus"] == MAX_ATTEMPTS


@pytest.mark.parametrize("flaky_server", [1], indirect=True)
def test_an_order_is_never_resent(flaky_server: tuple[Flaky, str]) -> None:
    flaky, target = flaky_server
    with TradingClient(target, "token") as client, pytest.raises(grpc.RpcError) as failed:
        client.submit_order("SPY", "buy", 1)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert flaky.calls["SubmitOrder"] == 1


def test_only_reads_are_retried() -> None:
    """Every retried method is one a viewer may call (a read), and unary."""
    methods = pb.DESCRIPTOR.services_by_name["TradingService"].methods_by_name
    for name in SAFE_TO_RETRY:
        assert VIEWER in METHOD_ROLES[name], name
        method = methods[name]
        assert not (method.client_streaming or method.server_streaming), name


def test_token_and_target_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRADING_API_KEY", raising=False)
    with pytest.raises(ValueError, match="TRADING_API_KEY"):
        TradingClient("127.0.0.1:1")
    monkeypatch.setenv("TRADING_API_KEY", "from-env")
    with TradingClient("127.0.0.1:1") as client:
        assert client._unary["metadata"] == (("authorization", "Bearer from-env"),)

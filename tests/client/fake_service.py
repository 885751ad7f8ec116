"""A fake TradingService (served on a loopback port by the `fake` fixture) for client tests.

The fake is built from the service descriptor rather than by subclassing the
generated servicer, so it answers every RPC of the contract (including ones
added later) from one table, and records what each call carried.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from trading_sdk.v1 import trading_service_pb2

SERVICE = trading_service_pb2.DESCRIPTOR.services_by_name["TradingService"]
TOKEN = "test-token"
# How long a held-open server stream waits for the client to cancel before giving up.
HOLD_LIMIT_SECONDS = 30.0


@dataclass
class Call:
    """One RPC as the fake received it."""

    method: str
    requests: list[Message]
    metadata: dict[str, str | bytes]

    @property
    def request(self) -> Message:
        return self.requests[0]


@dataclass
# The ignore is for when grpc has no type stubs (it is then Any); unused-ignore for when it has.
class FakeTradingService(grpc.GenericRpcHandler):  # type: ignore[misc, unused-ignore]
    """Answers each method with its `replies` (default: an empty response), or aborts per `errors`.

    A server-streaming method sends all its replies; one listed in `hold_open`
    then stays open until the client cancels, like a live subscription.
    """

    target: str = ""
    calls: list[Call] = field(default_factory=list)
    replies: dict[str, list[Message]] = field(default_factory=dict)
    errors: dict[str, tuple[grpc.StatusCode, str]] = field(default_factory=dict)
    hold_open: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._handlers = {
            f"/{SERVICE.full_name}/{m.name}": _handler(self, m) for m in SERVICE.methods
        }

    def service(self, handler_call_details: Any) -> Any:
        return self._handlers.get(handler_call_details.method)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def answer(
        self, method: str, requests: list[Message], context: grpc.ServicerContext
    ) -> list[Message]:
        self.calls.append(Call(method, requests, dict(context.invocation_metadata())))
        if method in self.errors:
            code, details = self.errors[method]
            context.abort(code, details)
        return self.replies.get(method, [])

    def hold(self, method: str, context: grpc.ServicerContext) -> None:
        if method in self.hold_open:
            cancelled = threading.Event()
            context.add_callback(cancelled.set)
            cancelled.wait(HOLD_LIMIT_SECONDS)


def _handler(fake: FakeTradingService, method: MethodDescriptor) -> Any:
    response_type = message_factory.GetMessageClass(method.output_type)
    decode = message_factory.GetMessageClass(method.input_type).FromString
    encode = response_type.SerializeToString

    def first(replies: list[Message]) -> Message:
        return replies[0] if replies else response_type()

    if method.client_streaming:

        def client_stream(requests: Iterable[Message], context: grpc.ServicerContext) -> Message:
            return first(fake.answer(method.name, list(requests), context))

        return grpc.stream_unary_rpc_method_handler(
            client_stream, request_deserializer=decode, response_serializer=encode
        )
    if method.server_streaming:

        def server_stream(request: Message, context: grpc.ServicerContext) -> Iterator[Message]:
            yield from fake.answer(method.name, [request], context)
            fake.hold(method.name, context)

        return grpc.unary_stream_rpc_method_handler(
            server_stream, request_deserializer=decode, response_serializer=encode
        )

    def unary(request: Message, context: grpc.ServicerContext) -> Message:
        return first(fake.answer(method.name, [request], context))

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=decode, response_serializer=encode
    )

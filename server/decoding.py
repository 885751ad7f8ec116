"""A request that does not decode (truncated bytes, a string field that is not
UTF-8) is the caller's mistake, not ours: answer INVALID_ARGUMENT, not the
INTERNAL grpcio gives when a deserializer raises."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from domain.errors import InvalidInput
from server.handlers import Handler, behavior_of, with_behavior


@dataclass(frozen=True, slots=True)
class _Undecodable:
    reason: str


def _message(bad: _Undecodable) -> str:
    return (
        f"the request could not be decoded as this method's message ({bad.reason}); "
        "string fields must be valid UTF-8"
    )


def _abort(context: grpc.ServicerContext, bad: _Undecodable) -> None:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, _message(bad))


def _checked(requests: Iterator[Any]) -> Iterator[Any]:
    """A stream's undecodable message raises where the servicer reads it, as a domain
    error, so the servicer can say what it kept of the messages before."""
    for request in requests:
        if isinstance(request, _Undecodable):
            raise InvalidInput(_message(request), reason="UNDECODABLE_MESSAGE")
        yield request


def _guard_behavior(behavior: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        if streaming:
            return behavior(_checked(request), context)
        if isinstance(request, _Undecodable):
            _abort(context, request)
        return behavior(request, context)

    return guarded


class DecodeErrorInterceptor(grpc.ServerInterceptor):
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer

        def deserialize(raw: bytes) -> Any:
            try:
                return decode(raw)
            except DecodeError as exc:
                return _Undecodable(str(exc) or "malformed message")

        guarded = _guard_behavior(behavior_of(handler), streaming=handler.request_streaming)
        return with_behavior(handler, guarded, request_deserializer=deserialize)
